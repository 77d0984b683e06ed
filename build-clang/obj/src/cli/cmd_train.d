build-clang/obj/src/cli/cmd_train.o: src/cli/cmd_train.c \
  src/cli/../model/model.h src/cli/../model/../base/base.h \
  src/cli/../model/../formats/gguf.h \
  src/cli/../model/../tokenizer/tokenizer.h \
  src/cli/../model/../tokenizer/../formats/gguf.h \
  src/cli/../train/train.h src/cli/../train/../base/base.h \
  src/cli/../train/../model/model.h \
  src/cli/../train/../tokenizer/tokenizer.h src/cli/cli.h \
  src/cli/../base/base.h

src/cli/../model/model.h:

src/cli/../model/../base/base.h:

src/cli/../model/../formats/gguf.h:

src/cli/../model/../tokenizer/tokenizer.h:

src/cli/../model/../tokenizer/../formats/gguf.h:

src/cli/../train/train.h:

src/cli/../train/../base/base.h:

src/cli/../train/../model/model.h:

src/cli/../train/../tokenizer/tokenizer.h:

src/cli/cli.h:

src/cli/../base/base.h:
