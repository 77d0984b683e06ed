build-clang/obj/src/tokenizer/tokenizer.o: src/tokenizer/tokenizer.c \
  src/tokenizer/../base/base.h src/tokenizer/internal.h \
  src/tokenizer/tokenizer.h src/tokenizer/../formats/gguf.h

src/tokenizer/../base/base.h:

src/tokenizer/internal.h:

src/tokenizer/tokenizer.h:

src/tokenizer/../formats/gguf.h:
