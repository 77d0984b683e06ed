build-clang/tests/test_kernels: tests/test_kernels.c src/base/base.h \
  src/kernels/kernels.h tests/testlib.h

src/base/base.h:

src/kernels/kernels.h:

tests/testlib.h:
