/*
 * fuzz_mark_config.c — a watermark config file (scheme, gamma, delta, context width, key id:
 * what `retort watermark` and `serve --watermark-config` read) through mark_config_from_json.
 * Invariant: accepted parameters are written back by mark_config_to_json and parse to the
 * same text again (a fixed point), and the key id is a NUL-terminated string.
 */
#include "fuzz_common.h"

#include "mark/mark.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mark_params p;
    char key_id[17];
    memset(&p, 0, sizeof p);
    if (mark_config_from_json((const char *)data, size, "fuzz-mark.json", &p, key_id) == 0) {
        FZ_CHECK(strlen(key_id) < sizeof key_id);
        rt_buf a = {0}, b = {0};
        FZ_CHECK(mark_config_to_json(&p, NULL, &a) == 0);
        mark_params q;
        char kid2[17];
        memset(&q, 0, sizeof q);
        FZ_CHECK(mark_config_from_json(a.data, a.len, "round trip", &q, kid2) == 0);
        FZ_CHECK(mark_config_to_json(&q, NULL, &b) == 0);
        FZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        rt_buf_free(&a);
        rt_buf_free(&b);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
