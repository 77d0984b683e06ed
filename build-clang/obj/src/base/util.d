build-clang/obj/src/base/util.o: src/base/util.c src/base/base.h

src/base/base.h:
