build-clang/obj/src/cli/cmd_keys.o: src/cli/cmd_keys.c \
  src/cli/../gateway/gateway.h src/cli/../gateway/../base/base.h \
  src/cli/cli.h src/cli/../base/base.h

src/cli/../gateway/gateway.h:

src/cli/../gateway/../base/base.h:

src/cli/cli.h:

src/cli/../base/base.h:
