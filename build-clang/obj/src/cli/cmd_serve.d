build-clang/obj/src/cli/cmd_serve.o: src/cli/cmd_serve.c \
  src/cli/../serve/serve.h src/cli/../serve/../base/base.h \
  src/cli/../serve/../gateway/gateway.h \
  src/cli/../serve/../gateway/../base/base.h \
  src/cli/../serve/../model/model.h \
  src/cli/../serve/../model/../base/base.h \
  src/cli/../serve/../model/../formats/gguf.h \
  src/cli/../serve/../model/../tokenizer/tokenizer.h \
  src/cli/../serve/../model/../tokenizer/../formats/gguf.h src/cli/cli.h \
  src/cli/../base/base.h

src/cli/../serve/serve.h:

src/cli/../serve/../base/base.h:

src/cli/../serve/../gateway/gateway.h:

src/cli/../serve/../gateway/../base/base.h:

src/cli/../serve/../model/model.h:

src/cli/../serve/../model/../base/base.h:

src/cli/../serve/../model/../formats/gguf.h:

src/cli/../serve/../model/../tokenizer/tokenizer.h:

src/cli/../serve/../model/../tokenizer/../formats/gguf.h:

src/cli/cli.h:

src/cli/../base/base.h:
