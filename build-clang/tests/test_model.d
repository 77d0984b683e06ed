build-clang/tests/test_model: tests/test_model.c src/base/base.h \
  src/model/model.h src/model/../base/base.h src/model/../formats/gguf.h \
  src/model/../tokenizer/tokenizer.h \
  src/model/../tokenizer/../formats/gguf.h tests/testlib.h

src/base/base.h:

src/model/model.h:

src/model/../base/base.h:

src/model/../formats/gguf.h:

src/model/../tokenizer/tokenizer.h:

src/model/../tokenizer/../formats/gguf.h:

tests/testlib.h:
