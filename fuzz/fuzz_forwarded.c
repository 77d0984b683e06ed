/* fuzz_forwarded.c — the X-Forwarded-For reader (src/serve/peer.c) on arbitrary header
 * values, behind a trusted proxy: it never crashes, and the address it returns is the peer's
 * or an address taken from the header (it parses as IPv4 or IPv6). Bytes: the first picks the
 * trusted ranges, the rest is the header. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *ranges[] = {"127.0.0.0/8", "127.0.0.1,10.0.0.0/8", "::1,fd00::/8,127.0.0.1/32", "0.0.0.0/0"};
    if (size < 1) return 0;
    serve_peers *p = NULL;
    if (serve_peers_init(&p, 60, ranges[data[0] % 4])) abort();
    char *xff = malloc(size);
    if (!xff) return 0;
    memcpy(xff, data + 1, size - 1);
    xff[size - 1] = '\0';
    char out[48];
    serve_peers_client(p, "127.0.0.1", xff, out, sizeof out);
    unsigned char bin[16];
    if (strlen(out) >= sizeof out) abort();
    if (strcmp(out, "127.0.0.1") && inet_pton(AF_INET, out, bin) != 1 && inet_pton(AF_INET6, out, bin) != 1) abort();
    double retry = 0;
    serve_peers_keyless_admit(p, out, 1.0, &retry);
    free(xff);
    serve_peers_free(p);
    return 0;
}
