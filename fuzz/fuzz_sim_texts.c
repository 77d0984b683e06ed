/*
 * fuzz_sim_texts.c — the simulator's readers of prompt-source files: a Debian fortune file
 * (entries between "%" lines) and a man page's roff (NAME and DESCRIPTION, escapes stripped),
 * through guard_texts_parse. The first byte picks the reader and the half; every item must be
 * NUL-terminated text of its stated length, and prompts built from the items must succeed.
 */
#include <string.h>

#include "fuzz_common.h"

#include "sim/sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    guard_source_spec sp = {data[0] & 1 ? GUARD_SRC_MAN : GUARD_SRC_FORTUNES, (data[0] >> 1) % 3};
    guard_texts *t = NULL;
    if (guard_texts_parse(&t, sp, "fuzz.1", (const char *)data + 1, size - 1) == 0) {
        for (size_t i = 0; i < guard_texts_count(t); i++) {
            size_t len = 0, tl = 0;
            const char *title = NULL;
            const char *s = guard_texts_item(t, i, &len, &title, &tl);
            FZ_CHECK(s && strlen(s) == len && title && strlen(title) == tl);
        }
        if (guard_texts_count(t)) {
            rt_rng r;
            rt_rng_seed(&r, size);
            guard_prompt_style st;
            memset(&st, 0, sizeof st);
            rt_buf b = {0};
            for (int k = GUARD_ASK_QUESTION; k <= GUARD_ASK_PARAPHRASE; k++) {
                FZ_CHECK(guard_source_prompt(t, sp, (guard_ask_kind)k, &st, &r, &b) == 0);
                FZ_CHECK(b.data && strlen(b.data) == b.len);
            }
            rt_buf_free(&b);
        }
        guard_texts_free(t);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
