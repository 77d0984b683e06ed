/* test_base.c — base room: RNG against hand-computed xoshiro256** outputs, uniformity of
 * rt_rng_below, atomic file replacement and its stale-temp sweep, refusing non-regular files, buffers,
 * number parsing. */
#include "base/base.h"
#include "testlib.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_rng_reference(void) {
    /* xoshiro256** from state {1,2,3,4}: outputs computed independently (Python, the
     * reference algorithm of Blackman & Vigna). */
    rt_rng r = {{1, 2, 3, 4}};
    CHECK(rt_rng_u64(&r) == 11520ull);
    CHECK(rt_rng_u64(&r) == 0ull);
    CHECK(rt_rng_u64(&r) == 1509978240ull);
    rt_rng a, b;
    rt_rng_seed(&a, 42);
    rt_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) CHECK(rt_rng_u64(&a) == rt_rng_u64(&b));
}

static void test_rng_distributions(void) {
    rt_rng r;
    rt_rng_seed(&r, 7);
    enum { K = 7, N = 70000 };
    size_t counts[K] = {0};
    for (int i = 0; i < N; i++) counts[rt_rng_below(&r, K)]++;
    double chi2 = 0;
    for (int k = 0; k < K; k++) {
        double e = (double)N / K;
        chi2 += (counts[k] - e) * (counts[k] - e) / e;
    }
    CHECK_MSG(chi2 < 22.5, "chi2 = %.2f (df=6, p=0.001 cutoff 22.46)", chi2); /* df=6 */
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        double x = rt_rng_normal(&r);
        s += x;
        s2 += x * x;
    }
    CHECK_NEAR(s / N, 0.0, 0.02, 0);
    CHECK_NEAR(s2 / N, 1.0, 0.03, 0);
    for (int i = 0; i < 1000; i++) {
        double d = rt_rng_double(&r);
        float f = rt_rng_float(&r);
        CHECK(d >= 0 && d < 1 && f >= 0 && f < 1);
    }
}

static void test_atomic_write(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/atomic.txt", tl_tmpdir());
    CHECK_OK(rt_write_file_atomic(path, "first", 5));
    char *d;
    size_t n;
    CHECK_OK(rt_read_file(path, &d, &n));
    CHECK(n == 5 && memcmp(d, "first", 5) == 0 && d[5] == 0);
    free(d);
    /* An aborted write leaves the old content and no temp file behind. */
    rt_atomic_file af;
    CHECK_OK(rt_atomic_open(&af, path));
    fputs("partial", af.f);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", af.tmp_path);
    rt_atomic_abort(&af);
    CHECK(!rt_file_exists(tmp));
    CHECK_OK(rt_read_file(path, &d, &n));
    CHECK(n == 5 && memcmp(d, "first", 5) == 0);
    free(d);
    CHECK(rt_read_file("/nonexistent/dir/file", &d, &n) == -1);
    CHECK(strstr(rt_errmsg(), "/nonexistent/dir/file") != NULL);
    unlink(path);
}

static void test_buf_and_parse(void) {
    rt_buf b = {0};
    for (int i = 0; i < 1000; i++) CHECK_OK(rt_buf_printf(&b, "%d,", i));
    CHECK(b.len == 3890);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    rt_buf_free(&b);
    size_t z;
    double d;
    CHECK(rt_parse_size("12x", "--steps", &z) == -1);
    CHECK(strstr(rt_errmsg(), "--steps") != NULL);
    CHECK(rt_parse_size("-3", "--steps", &z) == -1);
    CHECK_OK(rt_parse_size("300", "--steps", &z));
    CHECK(z == 300);
    CHECK(rt_parse_double("nan", "--lr", &d) == -1);
    CHECK_OK(rt_parse_double("3e-4", "--lr", &d));
    CHECK_NEAR(d, 3e-4, 0, 1e-12);
    size_t out;
    CHECK(rt_mul_size(SIZE_MAX / 2, 3, &out) == -1);
    CHECK(rt_calloc(SIZE_MAX / 2, 3, "x") == NULL);
    CHECK(rt_fnv1a64("", 0) == 0xcbf29ce484222325ull);
    CHECK(rt_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
}

/* Issue 17 #13: a FIFO given as a model blocked `retort info` forever (open() waits for a
 * writer). rt_open_regular refuses it at once, and directories too; SIGALRM fails the test
 * instead of hanging it if the open ever blocks again. */
static void test_not_regular(void) {
    char fifo[600], file[600];
    snprintf(fifo, sizeof fifo, "%s/fifo", tl_tmpdir());
    snprintf(file, sizeof file, "%s/regular.bin", tl_tmpdir());
    CHECK(mkfifo(fifo, 0600) == 0);
    alarm(20);
    CHECK(rt_open_regular(fifo, NULL) == -1);
    CHECK_MSG(strstr(rt_errmsg(), "FIFO") && strstr(rt_errmsg(), fifo), "%s", rt_errmsg());
    CHECK(rt_open_regular(tl_tmpdir(), NULL) == -1);
    CHECK_MSG(strstr(rt_errmsg(), "directory") != NULL, "%s", rt_errmsg());
    char *d = NULL;
    size_t n = 0;
    CHECK(rt_read_file(tl_tmpdir(), &d, &n) == -1);
    CHECK_MSG(strstr(rt_errmsg(), "directory") != NULL, "%s", rt_errmsg());
    alarm(0);
    CHECK_OK(rt_write_file_atomic(file, "12345", 5));
    int64_t size = -1;
    int fd = rt_open_regular(file, &size);
    CHECK(fd >= 0 && size == 5);
    char buf[8] = {0};
    CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 5 && !memcmp(buf, "12345", 5)); /* blocking mode again */
    if (fd >= 0) close(fd);
    unlink(fifo);
    unlink(file);
}

/* Issue 17 #12: "<path>.tmp.<pid>" files of killed writers piled up (15 kills, 20 MB).
 * The next atomic write of the same path removes those of dead processes only. */
static void test_atomic_sweep(void) {
    char path[600], dead[700], live[700], other[700], odd[700];
    snprintf(path, sizeof path, "%s/m.gguf.ckpt", tl_tmpdir());
    pid_t child = fork();
    if (child == 0) _exit(0);
    CHECK(child > 0 && waitpid(child, NULL, 0) == child); /* reaped: its pid is free */
    snprintf(dead, sizeof dead, "%s.tmp.%ld", path, (long)child);
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
    snprintf(other, sizeof other, "%s/n.gguf.ckpt.tmp.%ld", tl_tmpdir(), (long)child);
    snprintf(odd, sizeof odd, "%s.tmp.%ldx", path, (long)child);
    const char *all[] = {dead, live, other, odd};
    for (size_t i = 0; i < RT_ARRAY_LEN(all); i++) {
        FILE *f = fopen(all[i], "w");
        CHECK(f && fputs("partial", f) >= 0 && fclose(f) == 0);
    }
    CHECK_OK(rt_write_file_atomic(path, "done", 4));
    CHECK(!rt_file_exists(dead));
    CHECK(rt_file_exists(live) && rt_file_exists(other) && rt_file_exists(odd) && rt_file_exists(path));
    CHECK(rt_atomic_sweep(path) == 0);
    for (size_t i = 0; i < RT_ARRAY_LEN(all); i++) unlink(all[i]);
    unlink(path);
}

/* fuzz_mark_records found it: an empty file read by rt_read_file came back without its
 * terminating NUL (rt_buf_reserve grew an empty buffer without terminating it), so readers
 * that scan for '\n' or '\0' (log_truncate, the records loader) read uninitialised bytes. A
 * freed chunk full of 'x' is what malloc hands back next, so the check fails without the fix. */
static void test_empty_is_terminated(void) {
    for (int round = 0; round < 2; round++) {
        char *junk = malloc(256);
        if (junk) memset(junk, 'x', 256);
        free(junk);
        rt_buf b = {0};
        CHECK_OK(rt_buf_reserve(&b, 0));
        CHECK(b.data && b.len == 0 && b.data[0] == '\0');
        rt_buf_free(&b);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/empty.txt", tl_tmpdir());
    CHECK_OK(rt_write_file_atomic(path, "", 0));
    char *d = NULL;
    size_t n = 7;
    CHECK_OK(rt_read_file(path, &d, &n));
    CHECK(d && n == 0 && d[0] == '\0');
    free(d);
    unlink(path);
}

TEST_MAIN("base", TEST_CASE(test_rng_reference), TEST_CASE(test_rng_distributions),
          TEST_CASE(test_atomic_write), TEST_CASE(test_buf_and_parse), TEST_CASE(test_not_regular),
          TEST_CASE(test_atomic_sweep), TEST_CASE(test_empty_is_terminated))
