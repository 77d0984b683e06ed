build-clang/obj/src/model/model_decode.o: src/model/model_decode.c \
  src/model/model_internal.h src/model/model.h src/model/../base/base.h \
  src/model/../formats/gguf.h src/model/../tokenizer/tokenizer.h \
  src/model/../tokenizer/../formats/gguf.h \
  src/model/../kernels/kernels.h

src/model/model_internal.h:

src/model/model.h:

src/model/../base/base.h:

src/model/../formats/gguf.h:

src/model/../tokenizer/tokenizer.h:

src/model/../tokenizer/../formats/gguf.h:

src/model/../kernels/kernels.h:
