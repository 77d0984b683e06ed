build-clang/obj/src/model/sampler.o: src/model/sampler.c \
  src/model/model_internal.h src/model/model.h src/model/../base/base.h \
  src/model/../formats/gguf.h src/model/../tokenizer/tokenizer.h \
  src/model/../tokenizer/../formats/gguf.h

src/model/model_internal.h:

src/model/model.h:

src/model/../base/base.h:

src/model/../formats/gguf.h:

src/model/../tokenizer/tokenizer.h:

src/model/../tokenizer/../formats/gguf.h:
