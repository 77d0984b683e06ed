build-clang/obj/src/base/rng.o: src/base/rng.c src/base/base.h

src/base/base.h:
