/* test_gateway_relay.c — the gateway's reading of upstream answers (src/serve/proxy.c through
 * serve_proxy_feed), against hand-written expectations: an event stream relayed event by event
 * whatever the delivery boundaries (every split of the bytes gives the same result), the usage
 * chunk the gateway asked for dropped unless the client asked, "data: [DONE]" held back,
 * CRLF event separators, comments passed through, the upstream key scrubbed; a JSON answer's
 * usage and text; tokens estimated when the upstream reports none; and the error bodies a
 * client gets (the upstream's OpenAI error as is, a wrapper otherwise, 502 for a refused
 * gateway key, 502/504 for transport failures). */
#include <string.h>

#include "client/client.h"
#include "serve/serve_internal.h"
#include "testlib.h"

#define KEY "sk-up-0123456789"

static const char SSE[] =
    "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi " KEY "!\"},\"finish_reason\":null}]}\r\n\r\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"id\":\"a\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n"
    "data: [DONE]\n\n";

/* what the client must get (without / with the usage chunk) */
static const char WANT[] =
    "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi ***!\"},\"finish_reason\":null}]}\n\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n";
static const char WANT_USAGE[] =
    "data: {\"id\":\"a\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";

static serve_job *feed_split(const char *body, size_t len, size_t step, int want_usage, const char *ctype) {
    serve_job *j = serve_job_new_upstream(1);
    if (!j) return NULL;
    j->up_want_usage = want_usage;
    size_t at = 0;
    do {
        size_t n = RT_MIN(step, len - at);
        if (serve_proxy_feed(j, KEY, 200, ctype, body + at, n, 0)) break;
        at += n;
    } while (at < len);
    serve_proxy_feed(j, KEY, 200, ctype, "", 0, 1);
    return j;
}

static void test_stream(void) {
    size_t len = strlen(SSE);
    for (size_t step = 1; step <= len; step += (step < 40 ? 1 : 37)) {
        for (int want_usage = 0; want_usage <= 1; want_usage++) {
            serve_job *j = feed_split(SSE, len, step, want_usage, "text/event-stream; charset=utf-8");
            CHECK(j != NULL);
            if (!j) return;
            rt_buf want = {0};
            rt_buf_append(&want, WANT, strlen(WANT));
            if (want_usage) rt_buf_append(&want, WANT_USAGE, strlen(WANT_USAGE));
            CHECK_MSG(j->up_out.len == want.len && !memcmp(j->up_out.data, want.data, want.len),
                      "step %zu usage %d: got [%.*s]", step, want_usage, (int)j->up_out.len, j->up_out.data);
            CHECK(j->up_sse && j->up_saw_done && j->done);
            CHECK(j->up_prompt_tokens == 7 && j->up_completion_tokens == 3 && !j->up_counted);
            CHECK(j->choices[0].text.len == strlen("Hi " KEY "!") && !strcmp(j->choices[0].finish_reason, "length"));
            rt_buf_free(&want);
            serve_job_unref(j);
        }
    }
}

static void test_json_answer(void) {
    const char body[] = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"abc\"},"
                        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2},\"note\":\"" KEY "\"}";
    serve_job *j = feed_split(body, strlen(body), 5, 0, "application/json");
    CHECK(j != NULL);
    if (!j) return;
    const char *want = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"abc\"},"
                       "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2},\"note\":\"***\"}";
    CHECK(!j->up_sse && j->up_out.len == strlen(want) && !memcmp(j->up_out.data, want, strlen(want)));
    CHECK(j->up_prompt_tokens == 11 && j->up_completion_tokens == 2);
    CHECK(j->choices[0].text.len == 3 && !strcmp(j->choices[0].finish_reason, "stop"));
    serve_job_unref(j);
    /* no usage: estimated (no tokenizer): 4 bytes a token, rounded up; prompt = the request's (0 here) */
    const char nousage[] = "{\"choices\":[{\"index\":0,\"text\":\"abcdefghi\",\"finish_reason\":\"length\"}]}";
    j = feed_split(nousage, strlen(nousage), 1000, 0, "application/json");
    CHECK(j && j->up_counted && j->up_completion_tokens == 3 && j->up_prompt_tokens == 0);
    serve_job_unref(j);
}

/* a completion holding U+0000 (a model may emit it; JSON carries it as \u0000): the usage and
 * the text (NUL kept, for the ledger's output hash) are still read, answer and stream alike */
static void test_nul_in_text(void) {
    const char body[] = "{\"choices\":[{\"index\":0,\"text\":\"a\\u0000b\",\"finish_reason\":\"stop\"}],"
                        "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3}}";
    serve_job *j = feed_split(body, strlen(body), 1000, 0, "application/json");
    CHECK(j && j->up_prompt_tokens == 4 && j->up_completion_tokens == 3 && !j->up_counted);
    CHECK(j && j->choices[0].text.len == 3 && !memcmp(j->choices[0].text.data, "a\0b", 3));
    serve_job_unref(j);
    const char sse[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\\u0000y\"},\"finish_reason\":null}]}\n\n"
                       "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n"
                       "data: [DONE]\n\n";
    j = feed_split(sse, strlen(sse), 7, 1, "text/event-stream");
    CHECK(j && j->up_prompt_tokens == 5 && j->up_completion_tokens == 2);
    CHECK(j && j->choices[0].text.len == 3 && !memcmp(j->choices[0].text.data, "x\0y", 3));
    serve_job_unref(j);
}

static serve_job *failed_job(int result, long status, const char *body) {
    serve_job *j = serve_job_new_upstream(1);
    if (!j) return NULL;
    j->up_result = result;
    j->up_status = status;
    if (body) rt_buf_append(&j->up_out, body, strlen(body));
    j->done = 1;
    return j;
}

static void test_errors(void) {
    int st = 0;
    const char *code = NULL;
    const char *oa = "{\"error\":{\"message\":\"The model 'x' does not exist\",\"type\":\"invalid_request_error\","
                     "\"param\":\"model\",\"code\":\"model_not_found\"}}";
    serve_job *j = failed_job(CLIENT_XFER_OK, 404, oa);
    char *b = serve_proxy_error_body(j, &st, &code);
    CHECK(b && st == 404 && !strcmp(b, oa)); /* the upstream's own, unchanged */
    free(b);
    serve_job_unref(j);
    j = failed_job(CLIENT_XFER_OK, 500, "oops <html>");
    b = serve_proxy_error_body(j, &st, &code);
    CHECK(b && st == 500 && strstr(b, "HTTP 500: oops <html>") && strstr(b, "\"type\":\"server_error\"") &&
          !strcmp(code, "upstream_error"));
    free(b);
    serve_job_unref(j);
    j = failed_job(CLIENT_XFER_OK, 401, "{\"error\":{\"message\":\"Incorrect API key provided: ***\"}}");
    b = serve_proxy_error_body(j, &st, &code);
    CHECK(b && st == 502 && !strstr(b, "Incorrect")); /* the gateway's key, not the client's */
    free(b);
    serve_job_unref(j);
    const int res[] = {CLIENT_XFER_CONNECT, CLIENT_XFER_TIMEOUT, CLIENT_XFER_FAILED};
    const int want_st[] = {502, 504, 502};
    const char *want_code[] = {"upstream_unavailable", "upstream_timeout", "upstream_error"};
    for (int i = 0; i < 3; i++) {
        j = failed_job(res[i], 0, NULL);
        b = serve_proxy_error_body(j, &st, &code);
        CHECK(b && st == want_st[i] && !strcmp(code, want_code[i]) && strstr(b, want_code[i]));
        free(b);
        serve_job_unref(j);
    }
}

/* The gateway's lenient message reader (the upstream judges the shape): any role string, and of
 * content that is not all text parts the text there is; a role that is not a string is still
 * refused, naming the message. Compare serve's strict reader (test_serve's chat cases). */
static void test_lenient_messages(void) {
    serve_gen_request r;
    int status;
    char err[256], param[64];
    const char *ok = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                     "{\"role\":\"tool\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
                     "{\"type\":\"text\",\"text\":\"hello \"},{\"type\":\"text\",\"text\":\"world\"}]},"
                     "{\"role\":\"user\",\"content\":7}]}";
    CHECK(serve_parse_upstream(ok, strlen(ok), SERVE_UP_CHAT, NULL, NULL, 16, &r, &status, err, sizeof err, param,
                               sizeof param) == 0);
    CHECK(status == 0);
    CHECK(r.prompt_text && !strcmp(r.prompt_text, "be brief\nhello world\n")); /* the number: no text */
    CHECK(r.n_prompt == (strlen("be brief\nhello world\n") + 3) / 4);
    serve_gen_request_free(&r);
    const char *bad[][3] = {
        {"{\"model\":\"m\",\"messages\":[]}", "messages", "non-empty array"},
        {"{\"model\":", "", "invalid JSON body"},
        {"[{\"model\":\"m\"}]", "", "must be a JSON object"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"content\":\"b\"}]}",
         "messages[1].role", "required, a string"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"us\\u0000er\",\"content\":\"a\"}]}", "messages[0].role",
         "required, a string"},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        CHECK_MSG(serve_parse_upstream(bad[i][0], strlen(bad[i][0]), SERVE_UP_CHAT, NULL, NULL, 16, &r, &status, err,
                                       sizeof err, param, sizeof param) == -1,
                  "case %zu", i);
        CHECK_MSG(status == 400 && !strcmp(param, bad[i][1]) && strstr(err, bad[i][2]), "case %zu: %d %s %s", i, status,
                  param, err);
        serve_gen_request_free(&r);
    }
}

TEST_MAIN("gateway_relay", TEST_CASE(test_stream), TEST_CASE(test_json_answer), TEST_CASE(test_nul_in_text), TEST_CASE(test_errors),
          TEST_CASE(test_lenient_messages))
