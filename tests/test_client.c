/* test_client.c — the client room against a real HTTP server (libmicrohttpd, started here):
 * a POST carries the bearer key, the extra header and the JSON body (the server echoes what
 * it received), a 429's Retry-After is read, a GET has no body; a closed port is a transport
 * error of kind IO naming the URL; Retry-After values parsed by hand-checked cases. */
#include <microhttpd.h>
#include <string.h>

#include "client/client.h"
#include "testlib.h"

typedef struct {
    char body[512];
    size_t len;
} upload;

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
