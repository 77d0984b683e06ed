/*
 * client.c — the HTTP client (client.h): libcurl easy handles with a bearer key, JSON bodies,
 * the body collected into an rt_buf and Retry-After parsed in one place.
 * Not a retry loop: callers own their policy for 429s and transport errors.
 */
#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"

struct client {
    CURL *h;
};

int client_global_init(void) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return RT_FAIL("libcurl failed to initialise");
    return 0;
}
void client_global_cleanup(void) { curl_global_cleanup(); }

int client_new(client **out) {
    *out = NULL;
    client *c = rt_calloc(1, sizeof *c, "HTTP client");
    if (!c) return -1;
    c->h = curl_easy_init();
    if (!c->h) {
        free(c);
        return RT_FAIL("libcurl: cannot create a handle");
    }
    *out = c;
    return 0;
}

void client_free(client *c) {
    if (!c) return;
    curl_easy_cleanup(c->h);
    free(c);
}

void client_response_free(client_response *r) {
    rt_buf_free(&r->body);
    r->retry_after = -1;
}

double client_parse_retry_after(const char *value, size_t len) {
    char tmp[64];
    size_t l = RT_MIN(len, sizeof tmp - 1);
    memcpy(tmp, value, l);
    tmp[l] = '\0';
    char *end = NULL;
    double v = strtod(tmp, &end);
    return end != tmp && isfinite(v) && v >= 0 ? v : -1;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    client_response *r = ud;
    return rt_buf_append(&r->body, p, sz * n) ? 0 : sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    client_response *r = ud;
    size_t len = sz * n;
    if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) r->retry_after = client_parse_retry_after(p + 12, len - 12);
    return len;
}

long client_call(client *c, const char *url, const client_request *rq, const char *body, client_response *r) {
    CURL *h = c->h;
    r->body.len = 0;
    if (r->body.data) r->body.data[0] = '\0';
    r->retry_after = -1;
    struct curl_slist *hdr = NULL;
    char auth[256], iface[80];
    if (rq && rq->key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", rq->key);
        hdr = curl_slist_append(hdr, auth);
    }
    if (rq && rq->header) hdr = curl_slist_append(hdr, rq->header);
    for (size_t i = 0; rq && i < rq->n_headers; i++)
        if (rq->headers[i]) hdr = curl_slist_append(hdr, rq->headers[i]);
    if (body) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        hdr = curl_slist_append(hdr, "Expect:");
    }
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, rq && rq->connect_timeout_s > 0 ? rq->connect_timeout_s : 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, rq && rq->timeout_s > 0 ? rq->timeout_s : 900L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (rq && rq->fresh_connection) curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    if (rq && rq->local_addr && *rq->local_addr) {
        snprintf(iface, sizeof iface, "host!%s", rq->local_addr);
        curl_easy_setopt(h, CURLOPT_INTERFACE, iface);
    }
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    if (cc != CURLE_OK) {
        RT_FAIL_KIND(RT_ERR_IO, "%s: %s", url, curl_easy_strerror(cc));
        return 0;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}
