build-clang/obj/src/gateway/gw_db.o: src/gateway/gw_db.c \
  src/gateway/gateway.h src/gateway/../base/base.h

src/gateway/gateway.h:

src/gateway/../base/base.h:
