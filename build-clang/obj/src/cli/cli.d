build-clang/obj/src/cli/cli.o: src/cli/cli.c src/cli/cli.h \
  src/cli/../base/base.h src/cli/../kernels/kernels.h

src/cli/cli.h:

src/cli/../base/base.h:

src/cli/../kernels/kernels.h:
