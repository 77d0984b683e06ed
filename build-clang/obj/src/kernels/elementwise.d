build-clang/obj/src/kernels/elementwise.o: src/kernels/elementwise.c \
  src/kernels/kernels.h src/kernels/kinternal.h

src/kernels/kernels.h:

src/kernels/kinternal.h:
