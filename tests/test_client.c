/* test_client.c — the client room against a real HTTP server (libmicrohttpd, started here):
 * a POST carries the bearer key, the extra header and the JSON body (the server echoes what
 * it received), further headers arrive in the order given (a User-Agent replacing libcurl's), a 429's Retry-After is read, a GET has no body; a closed port is a transport
 * error of kind IO naming the URL; Retry-After values parsed by hand-checked cases. */
#include <microhttpd.h>
#include <string.h>
#include <strings.h>

#include "client/client.h"
#include "testlib.h"

typedef struct {
    char body[512];
    size_t len;
} upload;

/* "/order": the request's header names in the order they came, and its User-Agent values */
static enum MHD_Result add_name(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    char *out = cls;
    size_t n = strlen(out);
    snprintf(out + n, 1024 - n, "%s%s", n ? "," : "", key);
    if (!strcasecmp(key, "User-Agent")) {
        n = strlen(out);
        snprintf(out + n, 1024 - n, "=%s", value);
    }
    return MHD_YES;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *data_size, void **state) {
    (void)cls, (void)version;
    if (!*state) { /* first call: headers only */
        upload *u = calloc(1, sizeof *u);
        if (!u) return MHD_NO;
        *state = u;
        return MHD_YES;
    }
    upload *u = *state;
    if (*data_size) {
        size_t k = RT_MIN(*data_size, sizeof u->body - 1 - u->len);
        memcpy(u->body + u->len, data, k);
        u->len += k;
        *data_size = 0;
        return MHD_YES;
    }
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *extra = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Test");
    char out[1024];
    snprintf(out, sizeof out, "%s %s|%s|%s|%.*s", method, url, auth ? auth : "-", extra ? extra : "-", (int)u->len, u->body);
    if (!strcmp(url, "/order")) {
        out[0] = '\0';
        MHD_get_connection_values(c, MHD_HEADER_KIND, add_name, out);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(out), out, MHD_RESPMEM_MUST_COPY);
    int limited = !strcmp(url, "/limited");
    if (limited) MHD_add_response_header(r, "Retry-After", "3");
    enum MHD_Result ret = MHD_queue_response(c, limited ? 429 : 200, r);
    MHD_destroy_response(r);
    return ret;
}

static void done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t) {
    (void)cls, (void)c, (void)t;
    free(*state);
    *state = NULL;
}

static void test_against_server(void) {
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, answer, NULL,
                                            MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_END);
    CHECK(d != NULL);
    if (!d) return;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : 0;
    CHECK_OK(client_global_init());
    client *c = NULL;
    CHECK_OK(client_new(&c));
    client_response r = {{0}, -1};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/completions", port);
    client_request rq = {.key = "sk-test", .header = "X-Test: 42.5", .fresh_connection = 1};
    CHECK(client_call(c, url, &rq, "{\"prompt\": \"hi\"}", &r) == 200);
    CHECK_MSG(r.body.data && !strcmp(r.body.data, "POST /v1/completions|Bearer sk-test|42.5|{\"prompt\": \"hi\"}"), "%s",
              r.body.data ? r.body.data : "(null)");
    CHECK(r.retry_after == -1);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/limited", port);
    client_request plain = {0};
    CHECK(client_call(c, url, &plain, NULL, &r) == 429);
    CHECK(r.retry_after == 3);
    CHECK(r.body.data && !strcmp(r.body.data, "GET /limited|-|-|")); /* no key, no body: a GET */
    /* extra headers arrive in the order given, and a User-Agent replaces libcurl's (none twice) */
    snprintf(url, sizeof url, "http://127.0.0.1:%u/order", port);
    const char *h1[] = {"User-Agent: ua/1", "X-Forwarded-For: 203.0.113.7"}, *h2[] = {h1[1], h1[0]};
    client_request o1 = {.headers = h1, .n_headers = 2}, o2 = {.headers = h2, .n_headers = 2};
    CHECK(client_call(c, url, &o1, NULL, &r) == 200);
    const char *ua = r.body.data ? strstr(r.body.data, "User-Agent=ua/1") : NULL, *xf = r.body.data ? strstr(r.body.data, "X-Forwarded-For") : NULL;
    CHECK_MSG(ua && xf && ua < xf && !strstr(ua + 1, "User-Agent"), "%s", r.body.data ? r.body.data : "(null)");
    CHECK(client_call(c, url, &o2, NULL, &r) == 200);
    ua = r.body.data ? strstr(r.body.data, "User-Agent=ua/1") : NULL, xf = r.body.data ? strstr(r.body.data, "X-Forwarded-For") : NULL;
    CHECK_MSG(ua && xf && xf < ua, "%s", r.body.data ? r.body.data : "(null)");
    client_response_free(&r);
    client_free(c);
    MHD_stop_daemon(d);
    client_global_cleanup();
}

static void test_transport_error(void) {
    CHECK_OK(client_global_init());
    client *c = NULL;
    CHECK_OK(client_new(&c));
    client_response r = {{0}, -1};
    rt_err_clear();
    CHECK(client_call(c, "http://127.0.0.1:1/v1/models", NULL, NULL, &r) == 0);
    CHECK(rt_errkind() == RT_ERR_IO && strstr(rt_errmsg(), "127.0.0.1:1/v1/models"));
    client_response_free(&r);
    client_free(c);
    client_global_cleanup();
}

static void test_retry_after(void) {
    static const struct {
        const char *v;
        double want;
    } cases[] = {{" 120\r\n", 120}, {"1.5", 1.5}, {"0", 0}, {" -3", -1}, {"soon", -1}, {"", -1},
                 {"Wed, 21 Oct 2015 07:28:00 GMT", -1} /* the HTTP-date form is not read */};
    for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++)
        CHECK_MSG(client_parse_retry_after(cases[i].v, strlen(cases[i].v)) == cases[i].want, "'%s'", cases[i].v);
    char big[200];
    memset(big, '9', sizeof big); /* longer than the parser's buffer: read as a (huge) prefix */
    CHECK(client_parse_retry_after(big, sizeof big) > 1e60);
}

TEST_MAIN("client", TEST_CASE(test_against_server), TEST_CASE(test_transport_error), TEST_CASE(test_retry_after))
