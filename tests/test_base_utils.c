/* test_base_utils.c — base's utilities beside the basics of test_base.c: the one mixer
 * against splitmix64's published outputs, rt_grow, rt_map against a brute-force list under
 * random inserts and removals, error kinds and their HTTP statuses, RT_ASSERT (evaluated
 * only when on; aborts in a forked child when on), JSON reals against Python's repr (the
 * shortest round-trip form) and through jansson. */
#include "base/base.h"
#include "testlib.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_mixer(void) {
    /* splitmix64 from state 1234567 (Vigna's reference generator: state += 0x9e37...; mix):
     * its published first outputs, and rt_mix64 values computed independently in Python. */
    uint64_t st = 1234567, want[3] = {6457827717110365317ull, 3203168211198807973ull, 9817491932198370423ull};
    for (int i = 0; i < 3; i++) {
        st += 0x9E3779B97F4A7C15ull;
        CHECK(rt_mix64(st) == want[i]);
    }
    CHECK(rt_splitmix64(1234567) == want[0]);
    CHECK(rt_mix64(0) == 0);
    CHECK(rt_mix64(1) == 6238072747940578789ull);
    CHECK(rt_mix64(0xdeadbeefull) == 5622224078331092714ull);
}

static void test_grow(void) {
    int *v = NULL;
    size_t cap = 0;
    CHECK_OK(RT_GROW(v, cap, 1, "test ints"));
    CHECK(v != NULL && cap == 16);
    for (int i = 0; i < 16; i++) v[i] = i * 3;
    CHECK_OK(RT_GROW(v, cap, 16, "test ints")); /* enough already: unchanged */
    CHECK(cap == 16);
    CHECK_OK(RT_GROW(v, cap, 17, "test ints"));
    CHECK(cap == 32);
    CHECK_OK(RT_GROW(v, cap, 100, "test ints"));
    CHECK(cap == 128);
    int same = 1;
    for (int i = 0; i < 16; i++) same &= v[i] == i * 3;
    CHECK(same);
    int *before = v;
    CHECK(RT_GROW(v, cap, SIZE_MAX / 2, "test ints") == -1);
    CHECK(v == before && cap == 128 && rt_errkind() == RT_ERR_NOMEM && strstr(rt_errmsg(), "test ints"));
    free(v);
}

static void test_map(void) {
    /* random puts, gets and removes over a small key range (long probe runs, wrap-around,
     * backward shifts) checked against a brute-force list after every operation */
    enum { KEYS = 700, OPS = 30000 };
    uint64_t keyv[KEYS];
    for (int i = 0; i < KEYS; i++) keyv[i] = i == 0 ? 0 : i == 1 ? UINT64_MAX : (uint64_t)i * 1024; /* 0 and ~0 are keys too */
    uint64_t val[KEYS];
    int have[KEYS] = {0};
    size_t n_have = 0;
    rt_map m;
    rt_map_init(&m);
    rt_rng r;
    rt_rng_seed(&r, 7);
    int ok = 1;
    for (int op = 0; op < OPS && ok; op++) {
        int k = (int)rt_rng_below(&r, KEYS);
        unsigned what = (unsigned)rt_rng_below(&r, 3);
        if (what < 2) {
            int created = -1;
            uint64_t *p = rt_map_put(&m, keyv[k], &created);
            ok &= p != NULL && created == !have[k] && (have[k] ? *p == val[k] : *p == 0);
            if (!p) break;
            n_have += !have[k];
            have[k] = 1;
            *p = val[k] = rt_rng_u64(&r);
        } else {
            ok &= rt_map_remove(&m, keyv[k]) == have[k];
            n_have -= have[k];
            have[k] = 0;
        }
        ok &= m.n == n_have;
        if (op % 97 == 0)
            for (int j = 0; j < KEYS; j++) {
                uint64_t *p = rt_map_get(&m, keyv[j]);
                ok &= have[j] ? p && *p == val[j] : p == NULL;
            }
    }
    CHECK(ok);
    CHECK(m.cap >= 2 * m.n && rt_map_bytes(&m) > 0);
    for (int j = 0; j < KEYS; j++) rt_map_remove(&m, keyv[j]);
    CHECK(m.n == 0);
    for (int j = 0; j < KEYS; j++) CHECK(rt_map_get(&m, keyv[j]) == NULL);
    rt_map_free(&m);
    CHECK(rt_map_get(&m, 5) == NULL); /* an empty (freed) map answers too */
}

static void test_error_kinds(void) {
    rt_err_clear();
    CHECK(rt_errkind() == RT_ERR_NONE);
    RT_FAIL("something broke");
    CHECK(rt_errkind() == RT_ERR_OTHER);
    RT_FAIL_KIND(RT_ERR_NOT_FOUND, "no account named 'x'");
    RT_FAIL("%s: %s", "db.sqlite", rt_errmsg()); /* context added: the kind stays */
    CHECK(rt_errkind() == RT_ERR_NOT_FOUND && strstr(rt_errmsg(), "db.sqlite: no account named 'x'"));
    RT_FAIL("an unrelated failure");
    CHECK(rt_errkind() == RT_ERR_OTHER);
    char *data = NULL;
    size_t len = 0;
    CHECK(rt_read_file("/nonexistent/retort/file", &data, &len) == -1 && rt_errkind() == RT_ERR_NOT_FOUND);
    /* overflow caught before malloc (a plain huge malloc would abort under ASan) */
    CHECK(rt_malloc_array(SIZE_MAX / 2, 4, "a huge buffer") == NULL && rt_errkind() == RT_ERR_NOMEM);
    CHECK(rt_err_http_status(RT_ERR_INVALID) == 400);
    CHECK(rt_err_http_status(RT_ERR_NOT_FOUND) == 404);
    CHECK(rt_err_http_status(RT_ERR_BUSY) == 503);
    CHECK(rt_err_http_status(RT_ERR_NOMEM) == 503);
    CHECK(rt_err_http_status(RT_ERR_IO) == 500);
    CHECK(rt_err_http_status(RT_ERR_OTHER) == 500);
    CHECK(!strcmp(rt_err_kind_name(RT_ERR_NOT_FOUND), "not_found"));
    rt_err_clear();
    CHECK(rt_errkind() == RT_ERR_NONE && rt_errmsg()[0] == '\0');
}

static void test_assert(void) {
    int evaluated = 0;
    RT_ASSERT(++evaluated == 1);
    CHECK(evaluated == RT_ASSERTS); /* off: the condition is not evaluated at all */
#if RT_ASSERTS
    pid_t pid = fork();
    if (pid == 0) {
        fclose(stderr); /* the child's message is expected; keep the log clean */
        RT_ASSERT(evaluated == 2);
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
}

#define CHECK_STR(got, want) CHECK_MSG(strcmp((got), (want)) == 0, "got '%s', want '%s'", (got), (want))

static void test_json_reals(void) {
    /* Python 3's repr() of each double (its shortest round-trip digits), computed outside. */
    struct { double v; const char *want; } k[] = {
        {0.8, "0.8"}, {0.1 + 0.2, "0.30000000000000004"}, {1.0, "1.0"}, {1e-05, "1e-05"},
        {2.5e-300, "2.5e-300"}, {1e16, "1e+16"}, {123456789012345680000.0, "1.2345678901234568e+20"},
        {-0.0, "-0.0"}, {1.0 / 3.0, "0.3333333333333333"}, {22490.0, "22490.0"},
    };
    char buf[RT_FMT_DOUBLE_CAP];
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        rt_fmt_double(buf, sizeof buf, k[i].v);
        CHECK_STR(buf, k[i].want);
    }
    rt_fmt_double(buf, sizeof buf, NAN);
    CHECK_STR(buf, "null");
    /* Random doubles of every magnitude read back exactly and use no more digits than needed. */
    rt_rng g;
    rt_rng_seed(&g, 7);
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = rt_rng_u64(&g);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) continue;
        rt_fmt_double(buf, sizeof buf, v);
        CHECK(strtod(buf, NULL) == v);
        char shorter[64];
        snprintf(shorter, sizeof shorter, "%.14g", v);
        if (strtod(shorter, NULL) != v) continue;
        CHECK(strlen(buf) <= strlen(shorter) + 2); /* + ".0" */
    }
    /* jansson's own text (17 digits) rewritten: reals short, integers, strings and keys kept. */
    json_t *o = json_pack("{s:f, s:[f, f, I], s:s, s:f, s:b}", "p", 0.8, "xs", 0.1 + 0.2, 1.0, (json_int_t)12345678901234567,
                          "text", "0.80000000000000004 \\\" 0.1", "neg", -1e-7, "ok", 1);
    char *txt = rt_json_reals(json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
    CHECK_STR(txt, "{\"p\":0.8,\"xs\":[0.30000000000000004,1.0,12345678901234567],"
                   "\"text\":\"0.80000000000000004 \\\\\\\" 0.1\",\"neg\":-1e-07,\"ok\":true}");
    json_t *back = json_loads(txt, 0, NULL);
    CHECK(back && json_equal(back, o)); /* same values, reals still reals */
    json_decref(back);
    free(txt);
    json_decref(o);
    CHECK(rt_json_reals(NULL) == NULL);
}

TEST_MAIN("base_utils", TEST_CASE(test_mixer), TEST_CASE(test_grow), TEST_CASE(test_map), TEST_CASE(test_error_kinds),
          TEST_CASE(test_assert), TEST_CASE(test_json_reals))
