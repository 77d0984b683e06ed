/*
 * unicode.h — internal to src/tokenizer: the code point classes and the UTF-8 decoding the
 * GPT-2 pre-tokenizer uses, both chosen to behave exactly like llama.cpp's.
 *
 *  - Classes (letter = \p{L}, number = \p{N}, space = White_Space, other) come from the
 *    generated unicode_tables.c (Unicode 15.1, the version llama.cpp's tables were made from;
 *    scripts/gen_unicode_tables.py --check-llama compares them code point by code point).
 *  - Decoding is llama.cpp's lenient one (unicode_cpt_from_utf8): a lead byte 110xxxxx,
 *    1110xxxx or 11110xxx followed by enough 10xxxxxx bytes is decoded without checking for
 *    overlong forms, surrogates or values above U+10FFFF (F5..F7 leads give up to 0x1FFFFF);
 *    anything else (a stray continuation byte, F8..FF, a truncated sequence) is one byte
 *    that stands for U+FFFD. The splitter classifies these units by the decoded value but
 *    keeps their original bytes, so encoding stays byte-exact.
 *
 * What this is not: a validator or a normaliser.
 */
#ifndef RETORT_TOKENIZER_UNICODE_H
#define RETORT_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
    TOKENIZER_UCD_OTHER = 0,
    TOKENIZER_UCD_LETTER = 1,
    TOKENIZER_UCD_NUMBER = 2,
    TOKENIZER_UCD_SPACE = 3,
};

extern const size_t tokenizer_ucd_n;
extern const uint32_t tokenizer_ucd_start[];
extern const uint8_t tokenizer_ucd_class[];
extern const uint8_t tokenizer_ucd_latin1[256];

/* Class of a code point (values above U+10FFFF, which lenient decoding can produce, are
 * "other", as in llama.cpp). */
static inline int tokenizer_ucd_class_of(uint32_t cp) {
    if (cp < 256) return tokenizer_ucd_latin1[cp];
    if (cp >= 0x110000) return TOKENIZER_UCD_OTHER;
    size_t lo = 0, hi = tokenizer_ucd_n; /* find the last start <= cp */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tokenizer_ucd_start[mid] <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return tokenizer_ucd_class[lo];
}

/* Decode one unit at s[pos] (pos < len) the way llama.cpp does; *nbytes gets its length. */
static inline uint32_t tokenizer_utf8_unit(const uint8_t *s, size_t len, size_t pos,
                                           size_t *nbytes) {
    uint32_t b = s[pos];
    if (b < 0x80) {
        *nbytes = 1;
        return b;
    }
    if ((b & 0x40) == 0) goto invalid; /* stray continuation byte */
    if ((b & 0x20) == 0) {
        if (pos + 1 >= len || (s[pos + 1] & 0xC0) != 0x80) goto invalid;
        *nbytes = 2;
        return ((b & 0x1F) << 6) | (s[pos + 1] & 0x3Fu);
    }
    if ((b & 0x10) == 0) {
        if (pos + 2 >= len || (s[pos + 1] & 0xC0) != 0x80 || (s[pos + 2] & 0xC0) != 0x80)
            goto invalid;
        *nbytes = 3;
        return ((b & 0x0F) << 12) | ((s[pos + 1] & 0x3Fu) << 6) | (s[pos + 2] & 0x3Fu);
    }
    if ((b & 0x08) == 0) {
        if (pos + 3 >= len || (s[pos + 1] & 0xC0) != 0x80 || (s[pos + 2] & 0xC0) != 0x80 ||
            (s[pos + 3] & 0xC0) != 0x80)
            goto invalid;
        *nbytes = 4;
        return ((b & 0x07) << 18) | ((s[pos + 1] & 0x3Fu) << 12) | ((s[pos + 2] & 0x3Fu) << 6) |
               (s[pos + 3] & 0x3Fu);
    }
invalid:
    *nbytes = 1;
    return 0xFFFD;
}

#endif /* RETORT_TOKENIZER_UNICODE_H */
