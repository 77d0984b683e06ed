build-clang/tests/test_train: tests/test_train.c src/base/base.h \
  src/model/model.h src/model/../base/base.h src/model/../formats/gguf.h \
  src/model/../tokenizer/tokenizer.h \
  src/model/../tokenizer/../formats/gguf.h tests/testlib.h \
  src/train/train.h src/train/../base/base.h src/train/../model/model.h \
  src/train/../tokenizer/tokenizer.h

src/base/base.h:

src/model/model.h:

src/model/../base/base.h:

src/model/../formats/gguf.h:

src/model/../tokenizer/tokenizer.h:

src/model/../tokenizer/../formats/gguf.h:

tests/testlib.h:

src/train/train.h:

src/train/../base/base.h:

src/train/../model/model.h:

src/train/../tokenizer/tokenizer.h:
