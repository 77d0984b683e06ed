build-clang/obj/src/serve/chat.o: src/serve/chat.c src/serve/serve.h \
  src/serve/../base/base.h src/serve/../gateway/gateway.h \
  src/serve/../gateway/../base/base.h src/serve/../model/model.h \
  src/serve/../model/../base/base.h src/serve/../model/../formats/gguf.h \
  src/serve/../model/../tokenizer/tokenizer.h \
  src/serve/../model/../tokenizer/../formats/gguf.h

src/serve/serve.h:

src/serve/../base/base.h:

src/serve/../gateway/gateway.h:

src/serve/../gateway/../base/base.h:

src/serve/../model/model.h:

src/serve/../model/../base/base.h:

src/serve/../model/../formats/gguf.h:

src/serve/../model/../tokenizer/tokenizer.h:

src/serve/../model/../tokenizer/../formats/gguf.h:
