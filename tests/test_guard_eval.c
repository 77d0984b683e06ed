/*
 * test_guard_eval.c — the intervals `retort guard eval` reports, against values computed by
 * hand or taken from the standard tables:
 *   Wilson's score interval: 0 of n has upper bound z²/(n + z²), n of n lower bound
 *   n/(n + z²); 3 of 10 is [0.1078, 0.6032] (Newcombe 1998's worked example style values);
 *   the median's order-statistic interval: n = 6 is the sample's range (coverage 1 − 2/64),
 *   n = 10 ranks 2 and 9 (97.85%), n = 20 ranks 6 and 15 (95.86%), n = 100 ranks 40 and 61
 *   (96.48%) — the table values (Conover, Practical Nonparametric Statistics); below n = 6 none.
 */
#include <math.h>

#include "defend/defend_internal.h"
#include "testlib.h"

static void test_wilson(void) {
    const double z2 = 1.959963984540054 * 1.959963984540054;
    double lo, hi;
    guard_wilson95(0, 43, &lo, &hi);
    CHECK_NEAR(lo, 0.0, 1e-12, 0);
    CHECK_NEAR(hi, z2 / (43 + z2), 1e-12, 0);
    guard_wilson95(5, 5, &lo, &hi);
    CHECK_NEAR(lo, 5 / (5 + z2), 1e-12, 0);
    CHECK_NEAR(hi, 1.0, 1e-12, 0);
    guard_wilson95(3, 10, &lo, &hi);
    CHECK_NEAR(lo, 0.1078, 1e-4, 0);
    CHECK_NEAR(hi, 0.6032, 1e-4, 0);
    guard_wilson95(0, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 1);
}

static void test_median_ci(void) {
    static const struct {
        size_t n, lo, hi; /* 0-based order statistics */
        double cover;
    } want[] = {{6, 0, 5, 1 - 2.0 / 64}, {10, 1, 8, 0.978515625}, {20, 5, 14, 0.95861053}, {100, 39, 60, 0.96479980}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        size_t lo = 0, hi = 0;
        double cover = 0;
        CHECK(guard_median_ci95(want[i].n, &lo, &hi, &cover) == 0);
        CHECK_MSG(lo == want[i].lo && hi == want[i].hi, "n %zu: got [%zu, %zu]", want[i].n, lo, hi);
        CHECK_NEAR(cover, want[i].cover, 1e-7, 0);
    }
    size_t lo, hi;
    double cover;
    CHECK(guard_median_ci95(5, &lo, &hi, &cover) == -1); /* the range covers 1 - 2/32 < 0.95 */
}

TEST_MAIN("guard eval intervals", TEST_CASE(test_wilson), TEST_CASE(test_median_ci))
