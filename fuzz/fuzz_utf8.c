/* fuzz_utf8.c — src/base/utf8.c on arbitrary bytes, with its contracts as invariants:
 * sanitize always yields valid UTF-8 and is the identity on valid input; truncate never
 * exceeds its bound and never splits a character of valid input; complete_prefix is a
 * prefix; escape and printable never emit a control byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    int valid = rt_utf8_valid(s, size);
    rt_buf b = {0};
    if (rt_utf8_sanitize(&b, s, size) == 0) {
        if (!rt_utf8_valid(b.data, b.len)) abort();
        if (valid && (b.len != size || memcmp(b.data, s, size))) abort();
        if (!valid && b.len == size && !memcmp(b.data, s, size)) abort();
    }
    rt_buf_free(&b);
    size_t max = size ? data[0] % (size + 1) : 0;
    size_t n = rt_utf8_truncate(s, size, max);
    if (n > max || n > size) abort();
    if (valid && !rt_utf8_valid(s, n)) abort();
    if (rt_utf8_complete_prefix(s, size) > size) abort();
    rt_buf e = {0};
    if (rt_utf8_escape(&e, s, size) == 0) {
        if (!rt_utf8_valid(e.data, e.len)) abort();
        for (size_t i = 0; i < e.len; i++) {
            unsigned char c = (unsigned char)e.data[i];
            if (c < 0x20 || c == 0x7F) abort();
            if (c == 0xC2 && i + 1 < e.len && (unsigned char)e.data[i + 1] < 0xA0) abort(); /* C1 */
        }
    }
    rt_buf_free(&e);
    char *z = malloc(size + 1);
    if (!z) return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    char out[40];
    rt_utf8_printable(out, sizeof out, z);
    if (strlen(out) >= sizeof out || !rt_utf8_valid(out, strlen(out))) abort();
    char cp[17];
    size_t k = rt_utf8_copy(cp, sizeof cp, z);
    if (k != strlen(cp) || k >= sizeof cp || !rt_utf8_valid(cp, k)) abort();
    free(z);
    return 0;
}
