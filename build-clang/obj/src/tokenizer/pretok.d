build-clang/obj/src/tokenizer/pretok.o: src/tokenizer/pretok.c \
  src/tokenizer/../base/base.h src/tokenizer/internal.h \
  src/tokenizer/tokenizer.h src/tokenizer/../formats/gguf.h \
  src/tokenizer/unicode.h

src/tokenizer/../base/base.h:

src/tokenizer/internal.h:

src/tokenizer/tokenizer.h:

src/tokenizer/../formats/gguf.h:

src/tokenizer/unicode.h:
