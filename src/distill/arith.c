/*
 * arith.c — the reasoning task: multi-digit addition and multiplication worked column by
 * column, as a school pupil writes them, then the final answer. It makes DeepSeek's
 * R1-Distill story measurable at toy scale: a teacher that learned to write the working can
 * teach a small student through its generated working alone, and exact-match accuracy of
 * the final answer says how much of the skill survived.
 *
 * Operands in the prompt are written with exactly `digits` (and `mul_digits`) digits, zero
 * padded, so every column sits at the same place in every prompt; the working and the answer
 * are plain numbers.
 *
 * Formats (prompt → completion; columns from the right, carries written as "+c"):
 *   addition        "347+589="  →  " 7+9=16, 4+8+1=13, 3+5+1=9; answer 936"
 *                   "029+629="  →  " 9+9=18, 2+2+1=5, 0+6=6; answer 658"
 *   × one digit     "347*6="    →  " 7*6=42, 4*6+4=28, 3*6+2=20; answer 2082"
 *   × several       "347*26="   →  " 347*6: 7*6=42, 4*6+4=28, 3*6+2=20 = 2082; 347*2: 7*2=14,
 *                                    4*2+1=9, 3*2=6 = 694; 2082+6940: 2+0=2, 8+4=12, 0+9+1=10,
 *                                    2+6+1=9; answer 9022"
 * (the second partial product is shifted by appending zeros; the sum is worked by columns).
 * With answers_only the completion is the answer alone (" answer 936") for the very problems
 * the same seed gives with working: the labels-only side of a traces-vs-answers comparison.
 * Operands are uniform in [0, 10^digits); the multiplier in [0, 10^mul_digits).
 *
 * What this is not: a parser of arbitrary maths, or a scorer of the working (only the
 * final answer is scored: "answer " followed by digits, the last such in the text).
 */
#include "distill.h"

#include <stdlib.h>
#include <string.h>

void arith_defaults(arith_opts *o) {
    memset(o, 0, sizeof *o);
    o->digits = 3;
    o->mul_digits = 1;
    o->add = 1;
    o->mul = 1;
}

/* decimal digits of v, least significant first; returns the count (>= 1) */
static size_t digits_of(uint64_t v, int *d) {
    size_t n = 0;
    do {
        d[n++] = (int)(v % 10);
        v /= 10;
    } while (v);
    return n;
}

/* column addition of a and b over at least min_cols columns, working appended to out */
static int work_add(rt_buf *out, uint64_t a, uint64_t b, size_t min_cols, uint64_t *sum) {
    int da[24], db[24];
    size_t na = digits_of(a, da), nb = digits_of(b, db), n = RT_MAX(RT_MAX(na, nb), min_cols);
    int carry = 0;
    for (size_t i = 0; i < n; i++) {
        int x = i < na ? da[i] : 0, y = i < nb ? db[i] : 0, s = x + y + carry;
        if (rt_buf_printf(out, "%s%d+%d", i ? ", " : "", x, y)) return -1;
        if (carry && rt_buf_printf(out, "+%d", carry)) return -1;
        if (rt_buf_printf(out, "=%d", s)) return -1;
        carry = s / 10;
    }
    *sum = a + b;
    return 0;
}

/* column multiplication of a by one digit m over at least min_cols columns */
static int work_mul1(rt_buf *out, uint64_t a, int m, size_t min_cols, uint64_t *prod) {
    int da[24];
    size_t na = digits_of(a, da), n = RT_MAX(na, min_cols);
    int carry = 0;
    for (size_t i = 0; i < n; i++) {
        int x = i < na ? da[i] : 0, v = x * m + carry;
        if (rt_buf_printf(out, "%s%d*%d", i ? ", " : "", x, m)) return -1;
        if (carry && rt_buf_printf(out, "+%d", carry)) return -1;
        if (rt_buf_printf(out, "=%d", v)) return -1;
        carry = v / 10;
    }
    *prod = a * (uint64_t)m;
    return 0;
}

static uint64_t pow10u(size_t n) {
    uint64_t p = 1;
    while (n--) p *= 10;
    return p;
}

int arith_make(rt_rng *rng, const arith_opts *o, rt_buf *prompt, rt_buf *completion, char *answer,
               size_t answer_cap) {
    if (o->digits < 1 || o->digits > 9) return RT_FAIL("--digits must be in 1..9 (got %zu)", o->digits);
    if (o->mul_digits < 1 || o->mul_digits > 9)
        return RT_FAIL("--mul-digits must be in 1..9 (got %zu)", o->mul_digits);
    if (!o->add && !o->mul) return RT_FAIL("--ops must name at least one of add, mul");
    int is_mul = o->add && o->mul ? (int)rt_rng_below(rng, 2) : o->mul;
    uint64_t a = rt_rng_below(rng, pow10u(o->digits)), result = 0;
    prompt->len = completion->len = 0;
    if (!is_mul) {
        uint64_t b = rt_rng_below(rng, pow10u(o->digits));
        if (rt_buf_printf(prompt, "%0*llu+%0*llu=", (int)o->digits, (unsigned long long)a, (int)o->digits,
                          (unsigned long long)b) ||
            rt_buf_printf(completion, " ") || work_add(completion, a, b, o->digits, &result))
            return -1;
    } else {
        uint64_t b = rt_rng_below(rng, pow10u(o->mul_digits));
        if (rt_buf_printf(prompt, "%0*llu*%0*llu=", (int)o->digits, (unsigned long long)a, (int)o->mul_digits,
                          (unsigned long long)b) ||
            rt_buf_printf(completion, " "))
            return -1;
        int db[24];
        size_t nb = RT_MAX(digits_of(b, db), o->mul_digits);
        for (size_t i = digits_of(b, db); i < nb; i++) db[i] = 0;
        if (nb == 1) {
            if (work_mul1(completion, a, db[0], o->digits, &result)) return -1;
        } else {
            uint64_t partial[24];
            for (size_t i = 0; i < nb; i++) {
                if (rt_buf_printf(completion, "%s%llu*%d: ", i ? "; " : "", (unsigned long long)a, db[i]) ||
                    work_mul1(completion, a, db[i], o->digits, &partial[i]) ||
                    rt_buf_printf(completion, " = %llu", (unsigned long long)partial[i]))
                    return -1;
            }
            /* sum the shifted partial products, column by column */
            uint64_t acc = partial[0];
            for (size_t i = 1; i < nb; i++) {
                uint64_t sh = partial[i] * pow10u(i);
                if (rt_buf_printf(completion, "; %llu+%llu: ", (unsigned long long)acc, (unsigned long long)sh) ||
                    work_add(completion, acc, sh, 0, &acc))
                    return -1;
            }
            result = acc;
        }
    }
    if (o->answers_only) completion->len = 0; /* the working was drawn alike: same problems either way */
    if (rt_buf_printf(completion, o->answers_only ? " answer %llu" : "; answer %llu", (unsigned long long)result))
        return -1;
    if (answer) snprintf(answer, answer_cap, "%llu", (unsigned long long)result);
    return 0;
}

int arith_extract_answer(const char *text, size_t len, char *out, size_t cap) {
    static const char key[] = "answer ";
    size_t kl = sizeof key - 1;
    const char *found = NULL;
    for (size_t i = 0; i + kl <= len; i++)
        if (!memcmp(text + i, key, kl) && i + kl < len && text[i + kl] >= '0' && text[i + kl] <= '9')
            found = text + i + kl;
    if (!found || cap < 2) return -1;
    const char *end = text + len, *p = found;
    while (p < end && *p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') p++; /* leading zeros */
    size_t n = 0;
    while (p < end && *p >= '0' && *p <= '9' && n + 1 < cap) out[n++] = *p++;
    out[n] = 0;
    return 0;
}

int arith_write_jsonl(const char *path, size_t n, const arith_opts *o, uint64_t seed) {
    rt_rng rng;
    rt_rng_seed(&rng, seed);
    rt_buf pr = {0}, co = {0}, out = {0};
    char ans[32];
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = arith_make(&rng, o, &pr, &co, ans, sizeof ans);
        /* the texts are ASCII digits and punctuation: no JSON escaping is needed */
        if (rc == 0)
            rc = rt_buf_printf(&out, "{\"prompt\":\"%s\",\"completion\":\"%s\",\"answer\":\"%s\"}\n", pr.data,
                               co.data, ans);
    }
    if (rc == 0) rc = rt_write_file_atomic(path, out.data ? out.data : "", out.len);
    rt_buf_free(&pr);
    rt_buf_free(&co);
    rt_buf_free(&out);
    return rc;
}
