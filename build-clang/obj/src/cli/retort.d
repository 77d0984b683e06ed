build-clang/obj/src/cli/retort.o: src/cli/retort.c src/cli/cli.h \
  src/cli/../base/base.h

src/cli/cli.h:

src/cli/../base/base.h:
