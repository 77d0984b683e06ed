build-clang/obj/src/train/optim.o: src/train/optim.c src/train/train.h \
  src/train/../base/base.h src/train/../model/model.h \
  src/train/../model/../base/base.h src/train/../model/../formats/gguf.h \
  src/train/../model/../tokenizer/tokenizer.h \
  src/train/../model/../tokenizer/../formats/gguf.h \
  src/train/../tokenizer/tokenizer.h

src/train/train.h:

src/train/../base/base.h:

src/train/../model/model.h:

src/train/../model/../base/base.h:

src/train/../model/../formats/gguf.h:

src/train/../model/../tokenizer/tokenizer.h:

src/train/../model/../tokenizer/../formats/gguf.h:

src/train/../tokenizer/tokenizer.h:
