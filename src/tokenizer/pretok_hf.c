/*
 * pretok_hf.c — the regex Split pre-tokenizers of Hugging Face tokenizer.json files, as
 * hand-written matchers for the exact patterns the model families ship (a pattern we do not
 * know is refused by the loader, never approximated):
 *
 *  LLAMA3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+          (Llama 3, llama.cpp llama-bpe)
 *  QWEN2   the same with \p{N} (one digit per piece)                  (Qwen2/2.5/3, R1-Distill-Qwen)
 *  DS3_*   DeepSeek-V3's three Isolated splits: \p{N}{1,3}; [一-龥぀-ゟ゠-ヿ]+; and
 *          [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
 *           ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *  STRING  a literal string (Gemma's " ").
 *
 * Each matcher answers "does the pattern match at pos, and where does the match end" with
 * the leftmost-first (backtracking) semantics of Oniguruma and JavaScript; the piece being
 * split is the whole subject (lookaheads see its end). Character classes come from
 * unicode_hf.h: \s is White_Space (as in Oniguruma; JavaScript's \s differs at U+0085 and
 * U+FEFF), the case-insensitive contractions are ASCII-only as transformers.js and
 * llama.cpp have them. A byte that is not valid UTF-8 is one unit and counts as U+FFFD (So).
 *
 * What this is not: a regex engine.
 */
#include "internal.h"
#include "unicode_hf.h"

#include <string.h>

typedef struct {
    uint32_t cp;
    int cls; /* TOK_UC_* | TOK_UC_WS */
    size_t nb;
} unit;

static inline unit unit_at(const uint8_t *s, size_t len, size_t pos) {
    unit u;
    int32_t cp = tok_utf8_strict(s, len, pos, &u.nb);
    u.cp = cp < 0 ? 0xFFFD : (uint32_t)cp;
    u.cls = tok_uc(u.cp);
    return u;
}

static inline int is_ws(const unit *u) { return (u->cls & TOK_UC_WS) != 0; }
static inline int major(const unit *u) { return u->cls & 0x0F; }
static inline int is_crlf(const unit *u) { return u->cp == '\r' || u->cp == '\n'; }

/* \s*[\r\n]+ | \s+(?!\S) | \s+ at pos; 0 if s[pos] is not whitespace. */
static size_t match_spaces(const uint8_t *s, size_t len, size_t pos) {
    size_t q = pos, last = pos, last_crlf = 0, k = 0;
    while (q < len) {
        unit u = unit_at(s, len, q);
        if (!is_ws(&u)) break;
        if (is_crlf(&u)) last_crlf = q + u.nb;
        last = q;
        q += u.nb;
        k++;
    }
    if (last_crlf) return last_crlf; /* \s*[\r\n]+: up to the run's last CR/LF */
    if (!k) return 0;
    if (q < len && k > 1) return last; /* \s+(?!\S) gives back its last space */
    return q;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at pos (ASCII case folding). */
static size_t match_contraction(const uint8_t *s, size_t len, size_t pos) {
    if (s[pos] != '\'' || pos + 1 >= len) return 0;
    int c1 = s[pos + 1] | 0x20;
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
    if (pos + 2 >= len) return 0;
    int c2 = s[pos + 2] | 0x20;
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return pos + 3;
    return 0;
}

static size_t run_major(const uint8_t *s, size_t len, size_t p, int m1, int m2) {
    while (p < len) {
        unit u = unit_at(s, len, p);
        if (major(&u) != m1 && major(&u) != m2) break;
        p += u.nb;
    }
    return p;
}

static size_t run_crlf(const uint8_t *s, size_t len, size_t p) {
    while (p < len && (s[p] == '\r' || s[p] == '\n')) p++;
    return p;
}

/* LLAMA3 (max_digits 3) and QWEN2 (max_digits 1). Every position matches. */
static size_t match_llama3(const uint8_t *s, size_t len, size_t pos, int max_digits) {
    size_t e = match_contraction(s, len, pos);
    if (e) return e;
    unit u0 = unit_at(s, len, pos);
    int m0 = major(&u0);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (m0 != TOK_UC_L && m0 != TOK_UC_N && !is_crlf(&u0) && pos + u0.nb < len) {
        unit u1 = unit_at(s, len, pos + u0.nb);
        if (major(&u1) == TOK_UC_L) return run_major(s, len, pos + u0.nb, TOK_UC_L, TOK_UC_L);
    }
    if (m0 == TOK_UC_L) return run_major(s, len, pos, TOK_UC_L, TOK_UC_L);
    /* \p{N}{1,max} */
    if (m0 == TOK_UC_N) {
        size_t p = pos;
        for (int k = 0; k < max_digits && p < len; k++) {
            unit u = unit_at(s, len, p);
            if (major(&u) != TOK_UC_N) break;
            p += u.nb;
        }
        return p;
    }
    /* ' '?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t p = u0.cp == ' ' ? pos + 1 : pos;
    size_t q = p;
    while (q < len) {
        unit u = unit_at(s, len, q);
        if (is_ws(&u) || major(&u) == TOK_UC_L || major(&u) == TOK_UC_N) break;
        q += u.nb;
    }
    if (q > p) return run_crlf(s, len, q);
    e = match_spaces(s, len, pos);
    return e ? e : pos + u0.nb; /* (every unit is covered above; kept for safety) */
}

static int ds3_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x309F) ||
           (cp >= 0x30A0 && cp <= 0x30FF);
}

static int ascii_punct(int c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
}
static int ascii_alpha(int c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

/* DeepSeek-V3's third pattern; 0 where it does not match. */
static size_t match_ds3_main(const uint8_t *s, size_t len, size_t pos) {
    if (ascii_punct(s[pos]) && pos + 1 < len && ascii_alpha(s[pos + 1])) {
        size_t p = pos + 1;
        while (p < len && ascii_alpha(s[p])) p++;
        return p;
    }
    unit u0 = unit_at(s, len, pos);
    int m0 = major(&u0);
    /* [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ */
    if (m0 != TOK_UC_L && m0 != TOK_UC_P && m0 != TOK_UC_S && !is_crlf(&u0) &&
        pos + u0.nb < len) {
        unit u1 = unit_at(s, len, pos + u0.nb);
        if (major(&u1) == TOK_UC_L || major(&u1) == TOK_UC_M)
            return run_major(s, len, pos + u0.nb, TOK_UC_L, TOK_UC_M);
    }
    if (m0 == TOK_UC_L || m0 == TOK_UC_M) return run_major(s, len, pos, TOK_UC_L, TOK_UC_M);
    /* ' '?[\p{P}\p{S}]+[\r\n]* */
    size_t p = u0.cp == ' ' ? pos + 1 : pos;
    size_t q = run_major(s, len, p, TOK_UC_P, TOK_UC_S);
    if (q > p) return run_crlf(s, len, q);
    return match_spaces(s, len, pos);
}

size_t tok_stage_match(const tok_stage *st, const uint8_t *s, size_t len, size_t pos) {
    switch (st->kind) {
    case TOK_PRE_GPT2:
        return tok_pretok_next(s, len, pos);
    case TOK_PRE_LLAMA3:
        return match_llama3(s, len, pos, 3);
    case TOK_PRE_QWEN2:
        return match_llama3(s, len, pos, 1);
    case TOK_PRE_DS3_DIGITS: {
        size_t p = pos;
        for (int k = 0; k < 3 && p < len; k++) {
            unit u = unit_at(s, len, p);
            if (major(&u) != TOK_UC_N) break;
            p += u.nb;
        }
        return p > pos ? p : 0;
    }
    case TOK_PRE_DS3_CJK: {
        size_t p = pos;
        while (p < len) {
            unit u = unit_at(s, len, p);
            if (!ds3_cjk(u.cp)) break;
            p += u.nb;
        }
        return p > pos ? p : 0;
    }
    case TOK_PRE_DS3_MAIN:
        return match_ds3_main(s, len, pos);
    case TOK_PRE_STRING:
        if (st->str_len && st->str_len <= len - pos && memcmp(s + pos, st->str, st->str_len) == 0)
            return pos + st->str_len;
        return 0;
    }
    return 0;
}

/* Where the next match at or after pos starts (*mstart) and ends; 0 if none. Scans unit by
 * unit, so a match never starts inside a multi-byte character. */
int tok_stage_find(const tok_stage *st, const uint8_t *s, size_t len, size_t pos, size_t *mstart,
                   size_t *mend) {
    while (pos < len) {
        size_t e = tok_stage_match(st, s, len, pos);
        if (e > pos) {
            *mstart = pos;
            *mend = e;
            return 1;
        }
        size_t nb;
        (void)tok_utf8_strict(s, len, pos, &nb);
        pos += nb;
    }
    return 0;
}
