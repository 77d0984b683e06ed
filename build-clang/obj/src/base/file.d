build-clang/obj/src/base/file.o: src/base/file.c src/base/base.h

src/base/base.h:
