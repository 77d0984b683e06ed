build-clang/obj/src/tokenizer/tokenizer_gguf.o: \
  src/tokenizer/tokenizer_gguf.c src/tokenizer/../base/base.h \
  src/tokenizer/../formats/gguf.h src/tokenizer/internal.h \
  src/tokenizer/tokenizer.h

src/tokenizer/../base/base.h:

src/tokenizer/../formats/gguf.h:

src/tokenizer/internal.h:

src/tokenizer/tokenizer.h:
