build-clang/obj/src/cli/cmd_info.o: src/cli/cmd_info.c \
  src/cli/../model/model.h src/cli/../model/../base/base.h \
  src/cli/../model/../formats/gguf.h \
  src/cli/../model/../tokenizer/tokenizer.h \
  src/cli/../model/../tokenizer/../formats/gguf.h src/cli/cli.h \
  src/cli/../base/base.h

src/cli/../model/model.h:

src/cli/../model/../base/base.h:

src/cli/../model/../formats/gguf.h:

src/cli/../model/../tokenizer/tokenizer.h:

src/cli/../model/../tokenizer/../formats/gguf.h:

src/cli/cli.h:

src/cli/../base/base.h:
