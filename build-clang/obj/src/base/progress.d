build-clang/obj/src/base/progress.o: src/base/progress.c src/base/base.h

src/base/base.h:
