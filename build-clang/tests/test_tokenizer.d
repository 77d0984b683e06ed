build-clang/tests/test_tokenizer: tests/test_tokenizer.c src/base/base.h \
  tests/testlib.h src/tokenizer/tokenizer.h \
  src/tokenizer/../formats/gguf.h

src/base/base.h:

tests/testlib.h:

src/tokenizer/tokenizer.h:

src/tokenizer/../formats/gguf.h:
