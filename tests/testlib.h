/*
 * testlib.h — the tiny test harness every tests/test_*.c uses: CHECK/CHECK_NEAR record a
 * failure (with file:line and values) and continue; TEST_MAIN runs the listed cases and
 * exits non-zero if any check failed. Not a framework: no fixtures, no registration magic.
 */
#ifndef RETORT_TESTLIB_H
#define RETORT_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tl_failures = 0;
static int tl_checks = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        tl_checks++;                                                                 \
        if (!(cond)) {                                                               \
            tl_failures++;                                                           \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        tl_checks++;                                                                 \
        if (!(cond)) {                                                               \
            tl_failures++;                                                           \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_NEAR(a, b, atol, rtol)                                                 \
    do {                                                                             \
        double tl_a = (double)(a), tl_b = (double)(b);                               \
        tl_checks++;                                                                 \
        if (!(fabs(tl_a - tl_b) <= (atol) + (rtol)*fabs(tl_b)) || tl_a != tl_a) {    \
            tl_failures++;                                                           \
            fprintf(stderr, "  FAIL %s:%d: %s = %.9g, expected %s = %.9g\n", __FILE__, \
                    __LINE__, #a, tl_a, #b, tl_b);                                   \
        }                                                                            \
    } while (0)

/* Check a retort call returned 0; print rt_errmsg() otherwise. */
#define CHECK_OK(call)                                                               \
    do {                                                                             \
        tl_checks++;                                                                 \
        if ((call) != 0) {                                                           \
            tl_failures++;                                                           \
            fprintf(stderr, "  FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call,     \
                    rt_errmsg());                                                    \
        }                                                                            \
    } while (0)

typedef void (*tl_case_fn)(void);
typedef struct {
    const char *name;
    tl_case_fn fn;
} tl_case;

static inline int tl_run(const char *suite, const tl_case *cases, size_t n, int argc, char **argv) {
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && !strstr(cases[i].name, argv[1])) continue;
        int before = tl_failures;
        fprintf(stderr, "%s: %s\n", suite, cases[i].name);
        cases[i].fn();
        if (tl_failures != before) fprintf(stderr, "  -> %d failure(s)\n", tl_failures - before);
    }
    fprintf(stderr, "%s: %d checks, %d failures\n", suite, tl_checks, tl_failures);
    return tl_failures ? 1 : 0;
}

#define TEST_CASE(fn) {#fn, fn}
#define TEST_MAIN(suite, ...)                                                        \
    int main(int argc, char **argv) {                                                \
        static const tl_case tl_cases[] = {__VA_ARGS__};                             \
        return tl_run(suite, tl_cases, sizeof tl_cases / sizeof tl_cases[0], argc, argv); \
    }

/* A unique scratch directory under $TMPDIR for this test binary. */
static inline const char *tl_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/retort-test-XXXXXX", t ? t : "/tmp");
        extern char *mkdtemp(char *);
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

#endif
