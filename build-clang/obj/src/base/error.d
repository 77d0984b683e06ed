build-clang/obj/src/base/error.o: src/base/error.c src/base/base.h

src/base/base.h:
