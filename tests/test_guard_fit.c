/* test_guard_fit.c — the guard's pure reference fit (guard_reference_fit) on crafted events,
 * without a database: which accounts' events it uses, the benign stoplist against an
 * independent union of band and prefix keys, determinism, errors naming the origin.
 * (The fit from a real run is covered end to end by test_guard_e2e.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "guard/guard.h"
#include "testlib.h"

static int cmp_u64_t(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The pure fit from events (no database): which accounts and events it uses, the benign
 * stoplist against an independent union of band keys, errors, determinism. */
static void test_reference_fit(void) {
    enum { ACC = 40, PER = 12 };
    guard_event *ev = calloc(ACC * PER, sizeof *ev);
    CHECK(ev != NULL);
    if (!ev) return;
    char text[128];
    size_t n = 0;
    for (int k = 0; k < PER; k++)
        for (int a = 1; a <= ACC; a++) {
            guard_event *e = &ev[n++];
            e->t = 1000.0 + k * 60.0 + a;
            e->account_id = a;
            e->status = k % 5 == 4 ? 429 : 200;
            e->prompt_tokens = 10, e->completion_tokens = 20, e->max_tokens = 64;
            snprintf(text, sizeof text, "question %d from account %d about verse %d", k, a, a * 7 + k);
            e->has_minhash = guard_minhash(text, strlen(text), e->minhash) > 0;
            e->prefix_hash = guard_prefix_hash(text, strlen(text));
        }
    /* accounts 31..40 are attackers: their events must not count */
    int64_t benign[30];
    for (int i = 0; i < 30; i++) benign[i] = i + 1;
    guard_fit_options o = {.quantile = 0.9, .seed = 3, .benign_ids = benign, .n_benign_ids = 30, .origin = "crafted"};
    guard_reference r, r2;
    CHECK_OK(guard_reference_fit(&r, ev, n, &o, NULL));
    CHECK(r.n_accounts == 30 && r.n_events == 30 * PER);
    CHECK(!r.has_shift && r.has_levels && !strcmp(r.source, "crafted")); /* no embeddings: no shift part */
    /* stoplist: every band and prefix key of served benign events, sorted and unique */
    uint64_t *want = malloc(n * (GUARD_MINHASH_BANDS + 1) * sizeof *want);
    size_t nw = 0;
    for (size_t i = 0; want && i < n; i++) {
        if (ev[i].account_id > 30 || ev[i].status != 200) continue;
        guard_minhash_bands(ev[i].minhash, want + nw);
        nw += GUARD_MINHASH_BANDS;
        want[nw++] = guard_prefix_key(ev[i].prefix_hash);
    }
    qsort(want, nw, sizeof *want, cmp_u64_t);
    size_t u = 0;
    for (size_t i = 0; i < nw; i++)
        if (!u || want[i] != want[u - 1]) want[u++] = want[i];
    CHECK(r.n_stop_bands == u && want && !memcmp(r.stop_bands, want, u * sizeof *want));
    free(want);
    /* the same events and seed give the same reference */
    CHECK_OK(guard_reference_fit(&r2, ev, n, &o, NULL));
    int same = r2.n_stop_bands == r.n_stop_bands && r2.prada_delta == r.prada_delta;
    for (int s = 0; s < GUARD_SIG_COUNT; s++)
        same &= (isnan(r.levels[s]) && isnan(r2.levels[s])) || r.levels[s] == r2.levels[s];
    CHECK(same);
    guard_reference_free(&r2);
    guard_reference_free(&r);
    /* every account benign: all events count */
    guard_fit_options all = o;
    all.all_benign = 1;
    CHECK_OK(guard_reference_fit(&r, ev, n, &all, NULL));
    CHECK(r.n_accounts == ACC && r.n_events == n);
    guard_reference_free(&r);
    /* too few benign accounts to split in two halves: an error naming the origin */
    int64_t two[2] = {1, 2};
    guard_fit_options few = o;
    few.benign_ids = two, few.n_benign_ids = 2;
    CHECK(guard_reference_fit(&r, ev, n, &few, NULL) == -1 && strstr(rt_errmsg(), "crafted") &&
          strstr(rt_errmsg(), "too few"));
    CHECK(guard_reference_fit(&r, ev, 0, &o, NULL) == -1 && strstr(rt_errmsg(), "crafted: no events"));
    free(ev);
}

TEST_MAIN("guard_fit", TEST_CASE(test_reference_fit))
