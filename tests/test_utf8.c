/* test_utf8.c — src/base/utf8.c: validation, sanitizing, cutting on a boundary, escaping.
 * The sanitizer's expected outputs are Python's bytes.decode("utf-8", errors="replace")
 * re-encoded (an independent implementation of Unicode's maximal-subpart replacement),
 * pasted here; the rest are worked out by hand from RFC 3629's table. */
#include "base/base.h"
#include "testlib.h"

static int san_is(const char *in, size_t n, const char *want) {
    rt_buf b = {0};
    int ok = rt_utf8_sanitize(&b, in, n) == 0 && b.data && b.len == strlen(want) && !memcmp(b.data, want, b.len);
    if (!ok) fprintf(stderr, "  sanitize gave '%s', expected '%s'\n", b.data ? b.data : "(null)", want);
    rt_buf_free(&b);
    return ok;
}

static int esc_is(const char *in, size_t n, const char *want) {
    rt_buf b = {0};
    int ok = rt_utf8_escape(&b, in, n) == 0 && b.data && !strcmp(b.data, want);
    if (!ok) fprintf(stderr, "  escape gave '%s', expected '%s'\n", b.data ? b.data : "(null)", want);
    rt_buf_free(&b);
    return ok;
}

#define S(lit) lit, sizeof lit - 1

static void test_sanitize_vs_python(void) {
    CHECK(san_is(S("ok \xC3\xA9 \xE2\x82 \xFF \xF0\x9F\x98\x80"), "ok \xC3\xA9 \xEF\xBF\xBD \xEF\xBF\xBD \xF0\x9F\x98\x80"));
    CHECK(san_is(S("\xED\xA0\x80x"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx"));      /* surrogate */
    CHECK(san_is(S("\xE0\x80\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));        /* overlong */
    CHECK(san_is(S("\xF4\x90\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD")); /* > U+10FFFF */
    CHECK(san_is(S("\xF0\x9F\x98"), "\xEF\xBF\xBD"));                                  /* cut short: one */
    CHECK(san_is(S("a\xC0\xAF" "b"), "a\xEF\xBF\xBD\xEF\xBF\xBD" "b"));
    CHECK(san_is(S("\xE2\x82\xE2\x82\xAC"), "\xEF\xBF\xBD\xE2\x82\xAC"));
    rt_buf b = {0};
    CHECK(rt_utf8_sanitize(&b, "", 0) == 0 && b.data && b.len == 0);
    rt_buf_free(&b);
    CHECK(rt_utf8_sanitize(&b, S("nul\0ok")) == 0 && b.len == 6); /* NUL is a character */
    rt_buf_free(&b);
}

static void test_valid(void) {
    CHECK(rt_utf8_valid(S("")));
    CHECK(rt_utf8_valid(S("plain \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80")));
    CHECK(!rt_utf8_valid(S("\xC3")));
    CHECK(!rt_utf8_valid(S("\xC1\xBF")));  /* overlong 2-byte */
    CHECK(!rt_utf8_valid(S("\xED\xBF\xBF"))); /* surrogate */
    CHECK(!rt_utf8_valid(S("\xF5\x80\x80\x80")));
    CHECK(!rt_utf8_valid(S("\x80")));
}

static void test_truncate(void) {
    /* "a" é(2) €(3) 😀(4): boundaries at 0 1 3 6 10 */
    const char s[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10};
    for (size_t m = 0; m < RT_ARRAY_LEN(want); m++)
        CHECK_MSG(rt_utf8_truncate(s, 10, m) == want[m], "max %zu: %zu, expected %zu", m, rt_utf8_truncate(s, 10, m), want[m]);
    /* invalid bytes are never "inside" a character: cut where asked */
    CHECK(rt_utf8_truncate("\xFF\x80\x80", 3, 2) == 2);
    CHECK(rt_utf8_truncate("a\xE2\x82" "b", 4, 2) == 2);
    /* the case of issue 17 item 4: 255 bytes of "é" cut to fit 255 bytes (with NUL: 254) */
    char big[600], dst[256];
    for (int i = 0; i < 300; i++) big[i * 2] = (char)0xC3, big[i * 2 + 1] = (char)0xA9;
    big[599] = '\0';
    big[598] = 'x';
    size_t n = rt_utf8_copy(dst, sizeof dst, big);
    CHECK(n == 254 && strlen(dst) == 254 && rt_utf8_valid(dst, n));
    char small[4];
    CHECK(rt_utf8_copy(small, sizeof small, "\xFF\xC3\xA9") == 3 && !strcmp(small, "\xEF\xBF\xBD")); /* sanitized, then cut */
    CHECK(rt_utf8_copy(small, sizeof small, "ab\xC3\xA9") == 2 && !strcmp(small, "ab"));
}

static void test_complete_prefix(void) {
    CHECK(rt_utf8_complete_prefix("ab\xE2\x82", 4) == 2);
    CHECK(rt_utf8_complete_prefix("ab\xE2\x82\xAC", 5) == 5);
    CHECK(rt_utf8_complete_prefix("ab\xF0", 3) == 2);
    CHECK(rt_utf8_complete_prefix("ab\xFF", 3) == 3); /* invalid, not incomplete */
    CHECK(rt_utf8_complete_prefix("", 0) == 0);
}

static void test_escape(void) {
    CHECK(esc_is(S("reason\nINFO fake line\x1B[31mred\\"), "reason\\nINFO fake line\\x1B[31mred\\\\"));
    CHECK(esc_is(S("tab\there\r\x7F"), "tab\\there\\r\\x7F"));
    CHECK(esc_is(S("caf\xC3\xA9 \xE2\x82\xAC"), "caf\xC3\xA9 \xE2\x82\xAC")); /* printable UTF-8 kept */
    CHECK(esc_is(S("c1 \xC2\x9B" "2J"), "c1 \\u{9B}2J"));                     /* CSI as a C1 control */
    CHECK(esc_is(S("bad \xFF\xE2\x82!"), "bad \\xFF\\xE2\\x82!"));
    CHECK(esc_is(S("nul\0"), "nul\\x00"));
    char out[12];
    CHECK(!strcmp(rt_utf8_printable(out, sizeof out, "a\nb\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"), "a\\nb\xC3\xA9\xC3\xA9\xC3\xA9"));
    CHECK(!strcmp(rt_utf8_printable(out, sizeof out, "\x1B\x1B\x1B"), "\\x1B\\x1B"));
}

TEST_MAIN("utf8", TEST_CASE(test_sanitize_vs_python), TEST_CASE(test_valid), TEST_CASE(test_truncate),
          TEST_CASE(test_complete_prefix), TEST_CASE(test_escape))
