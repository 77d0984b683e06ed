/*
 * pretok.c — GPT-2 pre-tokenization: split text into the pieces that BPE merges never cross,
 * with the behaviour of llama.cpp's "gpt-2" pre-tokenizer, i.e. of the pattern
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * applied leftmost-first over units decoded as in unicode.h. Worked out from the regex:
 *   - a contraction is an apostrophe followed by s t m d (lower case only) or re ve ll;
 *   - otherwise one optional ' ' (U+0020 only) joins the run that follows it when that run
 *     is letters, numbers or "other" (not letter, number or space), and the run is maximal;
 *   - a run of k spaces (White_Space) followed by more text gives up its last space (so
 *     that " word" keeps its space) when k > 1; at the end of the text it is kept whole.
 * A unit decoded from invalid UTF-8 counts as U+FFFD (other) but keeps its own byte.
 *
 * What this is not: a regex engine; the Hugging Face Split patterns (Llama 3, Qwen2,
 * DeepSeek-V3) are pretok_hf.c.
 */
#include "../base/base.h"
#include "internal.h"
#include "unicode.h"
#include "tokenizer.h"

#include <stdlib.h>

static inline int unit_class(const uint8_t *s, size_t len, size_t pos, size_t *nb) {
    return tokenizer_ucd_class_of(tokenizer_utf8_unit(s, len, pos, nb));
}

size_t tok_pretok_next(const uint8_t *s, size_t len, size_t pos) {
    size_t n0, n1, n2;
    uint32_t c0 = tokenizer_utf8_unit(s, len, pos, &n0);

    /* 's 't 'm 'd 're 've 'll */
    if (c0 == '\'' && pos + n0 < len) {
        uint32_t c1 = tokenizer_utf8_unit(s, len, pos + n0, &n1);
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + n0 + n1;
        if (pos + n0 + n1 < len) {
            uint32_t c2 = tokenizer_utf8_unit(s, len, pos + n0 + n1, &n2);
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
                return pos + n0 + n1 + n2;
        }
    }

    /* ' ?' then a maximal run of one class (letters, numbers or other). */
    size_t p = pos, nb;
    int cls;
    if (c0 == ' ') { /* (an overlong C0 A0 decodes to ' ' too, as in llama.cpp) */
        p = pos + n0;
        cls = p < len ? unit_class(s, len, p, &nb) : -1;
    } else {
        cls = tokenizer_ucd_class_of(c0);
    }
    if (cls == TOKENIZER_UCD_LETTER || cls == TOKENIZER_UCD_NUMBER || cls == TOKENIZER_UCD_OTHER) {
        while (p < len && unit_class(s, len, p, &nb) == cls) p += nb;
        return p;
    }

    /* Whitespace: \s+(?!\S) then \s+. */
    size_t q = pos, last = pos, k = 0;
    while (q < len && unit_class(s, len, q, &nb) == TOKENIZER_UCD_SPACE) {
        last = q;
        q += nb;
        k++;
    }
    if (k > 1 && q < len) return last;
    if (k > 0) return q;
    return pos + n0; /* not reachable: every unit falls in one of the cases above */
}

int tokenizer_pretokenize(const char *text, size_t len, size_t **ends, size_t *n) {
    *ends = NULL;
    *n = 0;
    if (!text && len) return RT_FAIL("tokenizer_pretokenize: text is NULL but len is %zu", len);
    size_t cap = 16, cnt = 0;
    size_t *e = rt_malloc_array(cap, sizeof *e, "pre-token offsets");
    if (!e) return -1;
    const uint8_t *s = (const uint8_t *)text;
    for (size_t pos = 0; pos < len;) {
        size_t end = tok_pretok_next(s, len, pos);
        if (cnt == cap) {
            size_t *ne = rt_realloc(e, 2 * cap * sizeof *e, "pre-token offsets");
            if (!ne) {
                free(e);
                return -1;
            }
            e = ne;
            cap *= 2;
        }
        e[cnt++] = end;
        pos = end;
    }
    *ends = e;
    *n = cnt;
    return 0;
}
