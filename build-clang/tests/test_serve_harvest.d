build-clang/tests/test_serve_harvest: tests/test_serve_harvest.c \
  src/base/base.h src/gateway/gateway.h src/gateway/../base/base.h \
  src/model/model.h src/model/../base/base.h src/model/../formats/gguf.h \
  src/model/../tokenizer/tokenizer.h \
  src/model/../tokenizer/../formats/gguf.h src/serve/serve.h \
  src/serve/../base/base.h src/serve/../gateway/gateway.h \
  src/serve/../model/model.h tests/testlib.h

src/base/base.h:

src/gateway/gateway.h:

src/gateway/../base/base.h:

src/model/model.h:

src/model/../base/base.h:

src/model/../formats/gguf.h:

src/model/../tokenizer/tokenizer.h:

src/model/../tokenizer/../formats/gguf.h:

src/serve/serve.h:

src/serve/../base/base.h:

src/serve/../gateway/gateway.h:

src/serve/../model/model.h:

tests/testlib.h:
