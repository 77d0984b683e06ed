build-clang/obj/src/tokenizer/unicode_tables.o: \
  src/tokenizer/unicode_tables.c src/tokenizer/unicode.h

src/tokenizer/unicode.h:
