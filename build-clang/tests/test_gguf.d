build-clang/tests/test_gguf: tests/test_gguf.c src/base/base.h \
  src/formats/gguf.h tests/testlib.h

src/base/base.h:

src/formats/gguf.h:

tests/testlib.h:
