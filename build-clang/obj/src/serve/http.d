build-clang/obj/src/serve/http.o: src/serve/http.c \
  src/serve/serve_internal.h src/serve/serve.h src/serve/../base/base.h \
  src/serve/../gateway/gateway.h src/serve/../gateway/../base/base.h \
  src/serve/../model/model.h src/serve/../model/../base/base.h \
  src/serve/../model/../formats/gguf.h \
  src/serve/../model/../tokenizer/tokenizer.h \
  src/serve/../model/../tokenizer/../formats/gguf.h

src/serve/serve_internal.h:

src/serve/serve.h:

src/serve/../base/base.h:

src/serve/../gateway/gateway.h:

src/serve/../gateway/../base/base.h:

src/serve/../model/model.h:

src/serve/../model/../base/base.h:

src/serve/../model/../formats/gguf.h:

src/serve/../model/../tokenizer/tokenizer.h:

src/serve/../model/../tokenizer/../formats/gguf.h:
