build-clang/obj/src/kernels/gemm.o: src/kernels/gemm.c \
  src/kernels/kernels.h src/kernels/kinternal.h src/kernels/blis_wrap.h

src/kernels/kernels.h:

src/kernels/kinternal.h:

src/kernels/blis_wrap.h:
