build-clang/obj/src/gateway/gw_ledger.o: src/gateway/gw_ledger.c \
  src/gateway/gateway.h src/gateway/../base/base.h

src/gateway/gateway.h:

src/gateway/../base/base.h:
