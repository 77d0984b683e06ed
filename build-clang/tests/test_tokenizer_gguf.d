build-clang/tests/test_tokenizer_gguf: tests/test_tokenizer_gguf.c \
  src/base/base.h src/formats/gguf.h tests/testlib.h \
  src/tokenizer/tokenizer.h src/tokenizer/../formats/gguf.h

src/base/base.h:

src/formats/gguf.h:

tests/testlib.h:

src/tokenizer/tokenizer.h:

src/tokenizer/../formats/gguf.h:
