/*
 * fuzz_mark_key.c — a watermark key file (`retort watermark keygen` writes it; serve, detect
 * and radioactivity read it): mark_key_load. A refusal carries a message; an accepted file is,
 * past surrounding white space, exactly 2 x MARK_KEY_BYTES hexadecimal digits, and the key is
 * their value (decoded here independently of libsodium).
 */
#include <ctype.h>

#include "fuzz_common.h"

#include "mark/mark.h"

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_scratch(data, size, ".key");
    mark_key k;
    if (mark_key_load(&k, path) == 0) {
        size_t a = 0, b = size;
        while (a < b && isspace(data[a])) a++;
        while (b > a && isspace(data[b - 1])) b--;
        FZ_CHECK(b - a == 2 * MARK_KEY_BYTES);
        for (size_t i = 0; i < MARK_KEY_BYTES; i++) {
            FZ_CHECK(isxdigit(data[a + 2 * i]) && isxdigit(data[a + 2 * i + 1]));
            FZ_CHECK(k.bytes[i] == (uint8_t)(hexval(data[a + 2 * i]) << 4 | hexval(data[a + 2 * i + 1])));
        }
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
