/*
 * unicode_hf.h — internal to src/tokenizer: the Unicode data of the Hugging Face
 * pre-tokenizers (major general category, White_Space) and NFC, from the generated
 * unicode_hf.c (Unicode 15.0, Debian unicode-data; scripts/gen_unicode_hf.py).
 *
 * What this is not: the llama.cpp-exact GPT-2 classes (unicode.h), case mapping, or NFKC.
 */
#ifndef RETORT_TOKENIZER_UNICODE_HF_H
#define RETORT_TOKENIZER_UNICODE_HF_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

/* Major general category (low 4 bits) and the White_Space flag. Unassigned is C. */
enum {
    TOK_UC_C = 0,
    TOK_UC_L = 1,
    TOK_UC_M = 2,
    TOK_UC_N = 3,
    TOK_UC_P = 4,
    TOK_UC_S = 5,
    TOK_UC_Z = 6,
    TOK_UC_WS = 0x10,
};

extern const size_t tok_uc_n;
extern const uint32_t tok_uc_start[];
extern const uint8_t tok_uc_class[];
extern const uint8_t tok_uc_latin1[256];
extern const size_t tok_ccc_n, tok_decomp_n, tok_comp_n;
extern const uint32_t tok_ccc_runs[][3], tok_decomp[][3], tok_comp[][3];

/* TOK_UC_* | TOK_UC_WS of a code point; values above U+10FFFF are C. */
static inline int tok_uc(uint32_t cp) {
    if (cp < 256) return tok_uc_latin1[cp];
    if (cp >= 0x110000) return TOK_UC_C;
    size_t lo = 0, hi = tok_uc_n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tok_uc_start[mid] <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return tok_uc_class[lo];
}

/* Strict UTF-8 decoding of one character at s[pos] (pos < len): shortest forms only, no
 * surrogates, at most U+10FFFF. Returns the code point and its length in *nb, or -1 with
 * *nb = 1 for a byte that does not start a valid character (it then stands for itself:
 * transformers.js would see U+FFFD there). */
static inline int32_t tok_utf8_strict(const uint8_t *s, size_t len, size_t pos, size_t *nb) {
    uint32_t b = s[pos];
    *nb = 1;
    if (b < 0x80) return (int32_t)b;
    size_t need;
    uint32_t cp, min;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1, cp = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2, cp = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3, cp = b & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (len - pos <= need) return -1;
    for (size_t i = 1; i <= need; i++) {
        if ((s[pos + i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[pos + i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *nb = need + 1;
    return (int32_t)cp;
}

/* Append the UTF-8 of cp to out. */
int tok_utf8_put(rt_buf *out, uint32_t cp);

/* Unicode NFC of text[0..len) into out (replaces its content). Bytes that are not valid
 * UTF-8 are copied unchanged and block composition across them. 0, or -1 (out of memory). */
int tok_nfc(const char *text, size_t len, rt_buf *out);

#endif /* RETORT_TOKENIZER_UNICODE_HF_H */
