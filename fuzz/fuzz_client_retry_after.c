/* fuzz_client_retry_after.c — the client's Retry-After parser on arbitrary header bytes (a
 * server we talk to controls them): no crash, no read past len, and the result is -1 or a
 * finite number >= 0. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "client/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    double v = client_parse_retry_after((const char *)data, size);
    if (!(v == -1 || (isfinite(v) && v >= 0))) abort();
    return 0;
}
