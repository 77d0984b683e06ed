build-clang/tests/test_gateway: tests/test_gateway.c src/base/base.h \
  src/gateway/gateway.h src/gateway/../base/base.h tests/testlib.h

src/base/base.h:

src/gateway/gateway.h:

src/gateway/../base/base.h:

tests/testlib.h:
