build-clang/obj/src/kernels/attention.o: src/kernels/attention.c \
  src/kernels/kernels.h src/kernels/kinternal.h

src/kernels/kernels.h:

src/kernels/kinternal.h:
