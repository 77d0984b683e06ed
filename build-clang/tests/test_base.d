build-clang/tests/test_base: tests/test_base.c src/base/base.h \
  tests/testlib.h

src/base/base.h:

tests/testlib.h:
