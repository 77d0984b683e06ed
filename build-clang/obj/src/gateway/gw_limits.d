build-clang/obj/src/gateway/gw_limits.o: src/gateway/gw_limits.c \
  src/gateway/gateway.h src/gateway/../base/base.h

src/gateway/gateway.h:

src/gateway/../base/base.h:
