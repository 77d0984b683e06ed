/*
 * fixtures.h — what several guard tests build the same way: a detector on the default policy,
 * a plain answered request, a log-prob probe, and a small scripture-like corpus for the prompt
 * simulator. Test code only (CHECK from testlib.h); include after testlib.h. Each test still
 * states what it varies; a fixture holds only what would otherwise be copied.
 */
#ifndef RETORT_TESTS_FIXTURES_H
#define RETORT_TESTS_FIXTURES_H

#include <stdio.h>
#include <string.h>

#include "guard/guard.h"
#include "testlib.h"

/* *p = the default policy; a fresh detector on it (the caller frees it) */
static inline guard_detector *fx_detector(guard_policy *p) {
    guard_policy_defaults(p);
    guard_detector *d = NULL;
    CHECK_OK(guard_detector_new(&d, p, NULL));
    return d;
}

/* one answered request of account acct at time t: 20 prompt tokens, 10 of 64 answered, its
 * own prompt (the hash follows t) */
static inline guard_event fx_event(int64_t acct, double t) {
    guard_event e;
    memset(&e, 0, sizeof e);
    e.account_id = acct;
    e.t = t;
    e.status = 200;
    e.prompt_tokens = 20;
    e.completion_tokens = 10;
    e.max_tokens = 64;
    e.prompt_hash = (uint64_t)(t * 1000) + 1;
    return e;
}

/* the same, as a log-prob probe: max_tokens 1 (given), one token with its top 20 */
static inline guard_event fx_probe(int64_t acct, double t) {
    guard_event e = fx_event(acct, t);
    e.logprobs = 1;
    e.top_logprobs = 20;
    e.max_tokens_given = 1;
    e.max_tokens = 1;
    e.completion_tokens = 1;
    return e;
}

/* A corpus file of books x chapters x verses in the KJV layout guard_corpus_load reads
 * ("Book N" headings, "  V And ..." verses naming people at words 3 and 9), words drawn
 * from a fixed list with seed 1. wrap: break each verse's line after word 10. Returns the
 * path (tmpdir/corpus.txt, static storage). */
typedef struct {
    const char *const *books;
    int n_books, chapters, verses;
    int min_words, extra_words; /* a verse has min_words + [0, extra_words) words */
    int wrap;
} fx_corpus_shape;

static inline const char *fx_write_corpus(const fx_corpus_shape *s) {
    static char path[512];
    snprintf(path, sizeof path, "%s/corpus.txt", tl_tmpdir());
    static const char *names[] = {"Abner", "Boaz", "Caleb", "Deborah", "Eli", "Gideon", "Hannah", "Isaac", "Jethro",
                                  "Korah", "Laban", "Micah"};
    static const char *words[] = {"went", "unto", "the", "city", "and", "spake", "with", "people", "of", "land",
                                  "in", "those", "days", "there", "was", "a", "great", "famine", "field", "house"};
    rt_buf b = {0};
    rt_rng r;
    rt_rng_seed(&r, 1);
    for (int bk = 0; bk < s->n_books; bk++)
        for (int ch = 1; ch <= s->chapters; ch++) {
            rt_buf_printf(&b, "\n%s %d\n\n", s->books[bk], ch);
            for (int v = 1; v <= s->verses; v++) {
                rt_buf_printf(&b, "  %d And", v);
                int nw = s->min_words + (int)rt_rng_below(&r, (uint64_t)s->extra_words);
                for (int w = 0; w < nw; w++) {
                    if (w == 3 || w == 9) rt_buf_printf(&b, " %s", names[rt_rng_below(&r, 12)]);
                    else rt_buf_printf(&b, " %s", words[rt_rng_below(&r, 20)]);
                    if (s->wrap && w == 10) rt_buf_printf(&b, "\n"); /* a wrapped line */
                }
                rt_buf_printf(&b, ".\n");
            }
        }
    CHECK_OK(rt_write_file_atomic(path, b.data, b.len));
    rt_buf_free(&b);
    return path;
}

#endif /* RETORT_TESTS_FIXTURES_H */
