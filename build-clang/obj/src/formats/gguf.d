build-clang/obj/src/formats/gguf.o: src/formats/gguf.c src/formats/gguf.h \
  src/formats/../base/base.h

src/formats/gguf.h:

src/formats/../base/base.h:
