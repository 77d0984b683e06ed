/*
 * harvest.c — the harvester: send every prompt of a file to an OpenAI-compatible endpoint
 * (the client of client.c, N worker threads, an optional overall request rate) and append one JSONL line
 * per answer in the harvest record format (src/record/record.h) that `retort sft` reads:
 *   {"prompt", "completion", "id", "model", "finish_reason", "usage",
 *    "logprobs"?: the API's own {"content": [{"token","logprob","bytes","top_logprobs"}]}}
 * Resumable: prompts already in the output are skipped (a torn last line is cut off).
 * 429: every worker pauses for Retry-After (or an exponential backoff when absent), and the
 * harvest stops if the server asks for a wait longer than 5 minutes (a spent daily quota);
 * 401/403: stops at once. Why it stopped and every failed prompt go to <out>.errors.jsonl.
 *
 * Not a server, and not a data cleaner: the text is written as the endpoint returned it.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../record/record.h"
#include "client.h"

#define HARVEST_MAX_WAIT 300.0 /* seconds: a longer Retry-After stops the run */

void harvest_options_defaults(harvest_options *o) {
    memset(o, 0, sizeof *o);
    o->concurrency = 4;
    o->max_tokens = 128;
    o->temperature = 1.0;
    o->seed = -1;
    o->max_retries = 8;
}

/* ---------------------------------------------------------------- string set */

typedef struct {
    char **keys;   /* (cap) owned strings or NULL */
    size_t *lens;  /* (cap) */
    size_t cap, n;
} strset;

static int strset_has(const strset *s, const char *k, size_t len) {
    if (!s->cap) return 0;
    size_t i = (size_t)rt_fnv1a64(k, len) & (s->cap - 1);
    while (s->keys[i]) {
        if (s->lens[i] == len && !memcmp(s->keys[i], k, len)) return 1;
        i = (i + 1) & (s->cap - 1);
    }
    return 0;
}

static int strset_add(strset *s, const char *k, size_t len) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        char **nk = rt_calloc(nc, sizeof *nk, "prompt set");
        size_t *nl = rt_calloc(nc, sizeof *nl, "prompt set");
        if (!nk || !nl) {
            free(nk);
            free(nl);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->keys[i]) continue;
            size_t j = (size_t)rt_fnv1a64(s->keys[i], s->lens[i]) & (nc - 1);
            while (nk[j]) j = (j + 1) & (nc - 1);
            nk[j] = s->keys[i];
            nl[j] = s->lens[i];
        }
        free(s->keys);
        free(s->lens);
        s->keys = nk;
        s->lens = nl;
        s->cap = nc;
    }
    size_t i = (size_t)rt_fnv1a64(k, len) & (s->cap - 1);
    while (s->keys[i]) {
        if (s->lens[i] == len && !memcmp(s->keys[i], k, len)) return 0;
        i = (i + 1) & (s->cap - 1);
    }
    char *c = rt_malloc(len + 1, "prompt set");
    if (!c) return -1;
    memcpy(c, k, len);
    c[len] = '\0';
    s->keys[i] = c;
    s->lens[i] = len;
    s->n++;
    return 0;
}

static void strset_free(strset *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->keys[i]);
    free(s->keys);
    free(s->lens);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- inputs */

typedef struct {
    char *text;
    size_t len;
} prompt_t;

static int read_prompts(const char *path, prompt_t **out, size_t *n) {
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    *n = 0;
    if (rt_read_file(path, &data, &len)) return -1;
    strset seen = {0};
    size_t cap = 0, k = 0, lineno = 0;
    prompt_t *ps = NULL;
    int rc = -1;
    for (size_t pos = 0; pos < len;) {
        size_t e = pos;
        while (e < len && data[e] != '\n') e++;
        size_t l = e - pos;
        lineno++;
        const char *line = data + pos;
        pos = e + 1;
        if (l && line[l - 1] == '\r') l--;
        if (l == 0) continue;
        char *text = NULL;
        size_t tl = 0;
        if (line[0] == '{') {
            json_error_t je;
            json_t *o = json_loadb(line, l, JSON_ALLOW_NUL, &je);
            json_t *p = o ? json_object_get(o, "prompt") : NULL;
            if (json_is_string(p)) {
                tl = json_string_length(p);
                text = rt_malloc(tl + 1, "prompt");
                if (text) memcpy(text, json_string_value(p), tl + 1);
            } else if (o) {
                json_decref(o);
                RT_FAIL("%s:%zu: a JSON line needs a \"prompt\" string", path, lineno);
                goto out;
            }
            json_decref(o);
            if (!o) { /* not JSON after all: the line is the prompt */
                tl = l;
                text = rt_malloc(l + 1, "prompt");
                if (text) {
                    memcpy(text, line, l);
                    text[l] = '\0';
                }
            }
        } else {
            tl = l;
            text = rt_malloc(l + 1, "prompt");
            if (text) {
                memcpy(text, line, l);
                text[l] = '\0';
            }
        }
        if (!text) goto out;
        if (tl == 0 || strset_has(&seen, text, tl)) {
            free(text);
            continue;
        }
        if (strset_add(&seen, text, tl)) {
            free(text);
            goto out;
        }
        if (RT_GROW(ps, cap, k + 1, "prompts")) {
            free(text);
            goto out;
        }
        ps[k].text = text;
        ps[k].len = tl;
        k++;
    }
    if (k == 0) {
        RT_FAIL("%s: no prompts (one per line, or JSONL objects with \"prompt\")", path);
        goto out;
    }
    *out = ps;
    *n = k;
    ps = NULL;
    rc = 0;
out:
    if (ps)
        for (size_t i = 0; i < k; i++) free(ps[i].text);
    free(ps);
    strset_free(&seen);
    free(data);
    return rc;
}

/* Prompts already harvested; cuts a torn last line off the file. */
static int read_done(const char *path, strset *done) {
    if (!rt_file_exists(path)) return 0;
    char *data = NULL;
    size_t len = 0;
    if (rt_read_file(path, &data, &len)) return -1;
    size_t good = 0; /* bytes up to the last complete line */
    for (size_t pos = 0; pos < len;) {
        size_t e = pos;
        while (e < len && data[e] != '\n') e++;
        if (e == len) break; /* no newline: torn */
        json_error_t je;
        json_t *o = json_loadb(data + pos, e - pos, JSON_ALLOW_NUL, &je);
        json_t *p = o ? json_object_get(o, "prompt") : NULL;
        if (json_is_string(p) && strset_add(done, json_string_value(p), json_string_length(p))) {
            json_decref(o);
            free(data);
            return -1;
        }
        json_decref(o);
        pos = e + 1;
        good = pos;
    }
    free(data);
    if (good < len) {
        rt_warn("%s: cutting off a torn last line (%zu bytes) from an interrupted run", path, len - good);
        if (truncate(path, (off_t)good) != 0) return RT_FAIL("%s: cannot truncate: %s", path, strerror(errno));
    }
    return 0;
}

/* ---------------------------------------------------------------- HTTP */

/* One request through the client (client.h; Retry-After read there); on a transport error
 * (status 0) err holds the message naming the URL. */
static long http_call(client *h, const char *url, const char *key, const char *body, client_response *r, char *err,
                      size_t err_cap) {
    client_request rq = {.key = key ? key : ""};
    long status = client_call(h, url, &rq, body, r);
    if (status == 0) snprintf(err, err_cap, "%s", rt_errmsg());
    return status;
}

static void error_message(const client_response *r, char *out, size_t cap) {
    json_error_t je;
    json_t *o = r->body.data ? json_loadb(r->body.data, r->body.len, JSON_ALLOW_NUL, &je) : NULL;
    json_t *m = o ? json_object_get(json_object_get(o, "error"), "message") : NULL;
    if (json_is_string(m)) snprintf(out, cap, "%s", json_string_value(m));
    else snprintf(out, cap, "%.200s", r->body.data ? r->body.data : "(empty body)");
    json_decref(o);
}

/* ---------------------------------------------------------------- the run */

typedef struct {
    const harvest_options *o;
    prompt_t *prompts;
    size_t *todo;   /* (n_todo) indices into prompts */
    size_t n_todo;
    size_t next;    /* next todo index to take */
    char url[1024];
    char model[256];
    FILE *out;
    FILE *errf;
    char errpath[1100];
    pthread_mutex_t mu;
    double next_slot;   /* rate limiting: earliest start of the next request (rt_now) */
    double pause_until; /* 429: nobody sends before this */
    int stop;
    harvest_stats *st;
    rt_progress prog;
    size_t finished;
} run_t;

static void sleep_until(double t) {
    for (;;) {
        double d = t - rt_now();
        if (d <= 0) return;
        struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int append_error(run_t *R, const prompt_t *p, long status, const char *msg) {
    json_t *o = json_pack("{s:s%, s:I, s:s, s:f}", "prompt", p ? p->text : "", p ? p->len : (size_t)0, "status",
                          (json_int_t)status, "error", msg, "t", rt_wall_time());
    char *s = o ? rt_json_reals(json_dumps(o, JSON_COMPACT)) : NULL;
    json_decref(o);
    if (!s) return -1;
    int rc = 0;
    if (!R->errf) R->errf = fopen(R->errpath, "a");
    if (!R->errf || fprintf(R->errf, "%s\n", s) < 0 || fflush(R->errf) != 0) rc = -1;
    free(s);
    return rc;
}

/* 1: written; 0: the body was not a usable answer (message in err) */
static int write_answer(run_t *R, const prompt_t *p, const client_response *r, char *err, size_t err_cap) {
    json_error_t je;
    json_t *o = json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_ALLOW_NUL, &je);
    json_t *ch = o ? json_array_get(json_object_get(o, "choices"), 0) : NULL;
    if (!o) {
        snprintf(err, err_cap, "response is not JSON (%s at byte %d): %.120s", je.text, je.position,
                 r->body.data ? r->body.data : "");
        return 0;
    }
    if (!json_is_object(ch)) {
        snprintf(err, err_cap, "response without choices[0]: %.160s", r->body.data ? r->body.data : "");
        json_decref(o);
        return 0;
    }
    json_t *line = record_from_response(p->text, p->len, o, R->o->chat, R->o->top_logprobs > 0, err, err_cap);
    if (!line) {
        json_decref(o);
        return 0;
    }
    json_t *usage = json_object_get(o, "usage");
    char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(line);
    int ok = 0;
    if (s) {
        pthread_mutex_lock(&R->mu);
        size_t sl = strlen(s);
        s[sl] = '\n';
        ok = fwrite(s, 1, sl + 1, R->out) == sl + 1 && fflush(R->out) == 0;
        if (ok) {
            R->st->written++;
            R->st->prompt_tokens += (uint64_t)json_integer_value(json_object_get(usage, "prompt_tokens"));
            R->st->completion_tokens += (uint64_t)json_integer_value(json_object_get(usage, "completion_tokens"));
        } else {
            R->stop = 1;
            snprintf(R->st->stop_reason, sizeof R->st->stop_reason, "cannot write %s: %s", R->o->out_path,
                     strerror(errno));
        }
        pthread_mutex_unlock(&R->mu);
        free(s);
    } else {
        snprintf(err, err_cap, "out of memory");
    }
    json_decref(o);
    return ok;
}

static char *request_body(run_t *R, const prompt_t *p) {
    const harvest_options *o = R->o;
    json_t *b;
    if (o->chat) {
        b = json_pack("{s:s, s:[{s:s, s:s%}], s:I, s:f}", "model", R->model, "messages", "role", "user", "content",
                      p->text, p->len, "max_tokens", (json_int_t)o->max_tokens, "temperature", o->temperature);
        if (b && o->top_logprobs > 0) {
            json_object_set_new(b, "logprobs", json_true());
            json_object_set_new(b, "top_logprobs", json_integer((json_int_t)o->top_logprobs));
        }
    } else {
        b = json_pack("{s:s, s:s%, s:I, s:f}", "model", R->model, "prompt", p->text, p->len, "max_tokens",
                      (json_int_t)o->max_tokens, "temperature", o->temperature);
        if (b && o->top_logprobs > 0) json_object_set_new(b, "logprobs", json_integer((json_int_t)o->top_logprobs));
    }
    if (b && o->seed >= 0) /* kept below 2^31: any server reads it as an integer */
        json_object_set_new(b, "seed", json_integer((json_int_t)(((uint64_t)o->seed + rt_fnv1a64(p->text, p->len)) &
                                                                 0x7fffffffu)));
    char *s = b ? rt_json_reals(json_dumps(b, JSON_COMPACT)) : NULL;
    json_decref(b);
    return s;
}

static void progress(run_t *R) {
    if (R->o->quiet) return;
    char tok[32], extra[128];
    rt_fmt_si(tok, sizeof tok, (double)(R->st->prompt_tokens + R->st->completion_tokens));
    double el = rt_now() - R->prog.t_start;
    snprintf(extra, sizeof extra, "%s tokens | %.1f req/s | retries %zu | failed %zu", tok,
             el > 0 ? (double)R->finished / el : 0.0, R->st->retries, R->st->failed);
    rt_progress_update(&R->prog, R->finished, extra);
}

static void *worker(void *arg) {
    run_t *R = arg;
    const harvest_options *o = R->o;
    client *h = NULL;
    client_response r = {{0}, -1};
    if (client_new(&h)) {
        pthread_mutex_lock(&R->mu);
        R->stop = 1;
        snprintf(R->st->stop_reason, sizeof R->st->stop_reason, "%s", rt_errmsg());
        pthread_mutex_unlock(&R->mu);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&R->mu);
        if (R->stop || R->next >= R->n_todo) {
            pthread_mutex_unlock(&R->mu);
            break;
        }
        const prompt_t *p = &R->prompts[R->todo[R->next++]];
        pthread_mutex_unlock(&R->mu);
        char *body = request_body(R, p);
        if (!body) {
            pthread_mutex_lock(&R->mu);
            R->stop = 1;
            snprintf(R->st->stop_reason, sizeof R->st->stop_reason, "out of memory");
            pthread_mutex_unlock(&R->mu);
            break;
        }
        size_t attempt = 0;
        double backoff = 1.0;
        for (;;) {
            /* wait for a pause to end and for our rate slot */
            pthread_mutex_lock(&R->mu);
            double start = fmax(rt_now(), R->pause_until);
            if (o->rate > 0) {
                start = fmax(start, R->next_slot);
                R->next_slot = start + 1.0 / o->rate;
            }
            int stop = R->stop;
            pthread_mutex_unlock(&R->mu);
            if (stop) break;
            sleep_until(start);
            char err[512] = "";
            long status = http_call(h, R->url, o->api_key, body, &r, err, sizeof err);
            if (status == 200) {
                char why[300] = "";
                if (write_answer(R, p, &r, why, sizeof why)) break;
                if (!why[0]) break; /* write error: stop already set */
                status = -1;
                snprintf(err, sizeof err, "%s", why);
            }
            if (status == 401 || status == 403) {
                char msg[200];
                error_message(&r, msg, sizeof msg);
                pthread_mutex_lock(&R->mu);
                if (!R->stop) {
                    R->stop = 1;
                    R->st->stopped = 1;
                    R->st->stop_status = (int)status;
                    snprintf(R->st->stop_reason, sizeof R->st->stop_reason, "HTTP %ld: %s", status, msg);
                    append_error(R, p, status, msg);
                }
                pthread_mutex_unlock(&R->mu);
                break;
            }
            int retry = status == 0 || status == 429 || status >= 500 || status == -1;
            if (status > 0 && status != 429 && status < 500) {
                error_message(&r, err, sizeof err);
                retry = 0;
            } else if (status == 429 || status >= 500) {
                error_message(&r, err, sizeof err);
            }
            if (retry && status == 429) {
                double wait = r.retry_after >= 0 ? r.retry_after : backoff;
                backoff = fmin(backoff * 2, 60);
                pthread_mutex_lock(&R->mu);
                R->st->retries++;
                if (wait > HARVEST_MAX_WAIT) {
                    if (!R->stop) {
                        R->stop = 1;
                        R->st->stopped = 1;
                        R->st->stop_status = 429;
                        snprintf(R->st->stop_reason, sizeof R->st->stop_reason,
                                 "HTTP 429 asking to wait %.0f s (more than %.0f): %.150s", wait, HARVEST_MAX_WAIT, err);
                        append_error(R, p, 429, R->st->stop_reason);
                    }
                    pthread_mutex_unlock(&R->mu);
                    break;
                }
                R->pause_until = fmax(R->pause_until, rt_now() + wait);
                pthread_mutex_unlock(&R->mu);
                continue; /* a 429 is not the prompt's fault: it does not use up retries */
            }
            if (retry && attempt < o->max_retries) {
                attempt++;
                pthread_mutex_lock(&R->mu);
                R->st->retries++;
                pthread_mutex_unlock(&R->mu);
                sleep_until(rt_now() + (r.retry_after >= 0 ? r.retry_after : backoff));
                backoff = fmin(backoff * 2, 60);
                continue;
            }
            pthread_mutex_lock(&R->mu);
            R->st->failed++;
            append_error(R, p, status, err[0] ? err : "failed");
            pthread_mutex_unlock(&R->mu);
            break;
        }
        free(body);
        pthread_mutex_lock(&R->mu);
        R->finished++;
        progress(R);
        pthread_mutex_unlock(&R->mu);
    }
    client_response_free(&r);
    client_free(h);
    return NULL;
}

static int find_model(run_t *R, const char *base) {
    client *h = NULL;
    if (client_new(&h)) return -1;
    client_response r = {{0}, -1};
    char url[1100], err[512] = "";
    snprintf(url, sizeof url, "%s/v1/models", base);
    long st = http_call(h, url, R->o->api_key, NULL, &r, err, sizeof err);
    int rc = -1;
    if (st == 0) {
        RT_FAIL("%s (is the server running? --endpoint)", err);
    } else if (st != 200) {
        char msg[200];
        error_message(&r, msg, sizeof msg);
        if (st == 401 || st == 403) {
            R->st->stopped = 1;
            R->st->stop_status = (int)st;
            snprintf(R->st->stop_reason, sizeof R->st->stop_reason, "HTTP %ld: %s", st, msg);
            append_error(R, NULL, st, msg);
            rc = 1;
        } else {
            RT_FAIL("GET %s: HTTP %ld: %s (give --model)", url, st, msg);
        }
    } else {
        json_error_t je;
        json_t *o = json_loadb(r.body.data ? r.body.data : "", r.body.len, JSON_ALLOW_NUL, &je);
        json_t *id = json_object_get(json_array_get(json_object_get(o, "data"), 0), "id");
        if (json_is_string(id)) {
            snprintf(R->model, sizeof R->model, "%s", json_string_value(id));
            rc = 0;
        } else {
            RT_FAIL("GET %s: no model in the answer (give --model)", url);
        }
        json_decref(o);
    }
    client_response_free(&r);
    client_free(h);
    return rc;
}

int harvest_run(const harvest_options *o, harvest_stats *st) {
    memset(st, 0, sizeof *st);
    if (!o->endpoint || !*o->endpoint) return RT_FAIL("--endpoint: required (e.g. http://127.0.0.1:8080)");
    if (!o->prompts_path) return RT_FAIL("--prompts: required");
    if (!o->out_path) return RT_FAIL("--out: required");
    if (o->concurrency == 0 || o->concurrency > 1024) return RT_FAIL("--concurrency: expected 1..1024");
    if (o->max_tokens == 0) return RT_FAIL("--max-tokens: expected at least 1");
    if (o->top_logprobs > 20) return RT_FAIL("--top-logprobs: at most 20 (the OpenAI limit)");
    if (!(o->rate >= 0) || !isfinite(o->rate)) return RT_FAIL("--rate: expected requests per second >= 0");
    if (!(o->temperature >= 0 && o->temperature <= 2)) return RT_FAIL("--temperature: expected 0..2");
    if (strlen(o->endpoint) > 900) return RT_FAIL("--endpoint: too long");
    double t0 = rt_now();
    run_t R;
    memset(&R, 0, sizeof R);
    R.o = o;
    R.st = st;
    pthread_mutex_init(&R.mu, NULL);
    snprintf(R.errpath, sizeof R.errpath, "%s.errors.jsonl", o->out_path);
    char base[1000];
    snprintf(base, sizeof base, "%s", o->endpoint);
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') base[--bl] = '\0';
    if (bl >= 3 && !strcmp(base + bl - 3, "/v1")) base[bl -= 3] = '\0';
    snprintf(R.url, sizeof R.url, "%s/v1/%s", base, o->chat ? "chat/completions" : "completions");
    size_t n_prompts = 0;
    strset done = {0};
    int rc = -1;
    pthread_t *th = NULL;
    size_t n_th = 0;
    if (client_global_init()) goto out;
    if (read_prompts(o->prompts_path, &R.prompts, &n_prompts)) goto out;
    st->prompts_total = n_prompts;
    if (read_done(o->out_path, &done)) goto out;
    R.todo = rt_malloc_array(n_prompts, sizeof(size_t), "prompt queue");
    if (!R.todo) goto out;
    for (size_t i = 0; i < n_prompts; i++) {
        if (strset_has(&done, R.prompts[i].text, R.prompts[i].len)) st->skipped++;
        else if (!o->limit || R.n_todo < o->limit) R.todo[R.n_todo++] = i;
    }
    if (R.n_todo == 0) {
        rc = 0;
        goto out;
    }
    if (o->model) {
        snprintf(R.model, sizeof R.model, "%s", o->model);
    } else {
        int fm = find_model(&R, base);
        if (fm < 0) goto out;
        if (fm == 1) {
            rc = 0;
            goto out;
        }
    }
    R.out = fopen(o->out_path, "a");
    if (!R.out) {
        RT_FAIL("%s: cannot open for appending: %s", o->out_path, strerror(errno));
        goto out;
    }
    if (!o->quiet) rt_progress_init(&R.prog, "harvest", R.n_todo);
    else R.prog.t_start = rt_now();
    n_th = RT_MIN(o->concurrency, R.n_todo);
    th = rt_calloc(n_th, sizeof *th, "harvest threads");
    if (!th) goto out;
    size_t started = 0;
    for (; started < n_th; started++)
        if (pthread_create(&th[started], NULL, worker, &R) != 0) break;
    if (started == 0) {
        RT_FAIL("cannot start harvest threads");
        goto out;
    }
    for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    if (!o->quiet) {
        char extra[96];
        snprintf(extra, sizeof extra, "%zu written, %zu failed", st->written, st->failed);
        rt_progress_finish(&R.prog, extra);
    }
    if (R.stop && !st->stopped && st->stop_reason[0]) {
        RT_FAIL("%s", st->stop_reason);
        goto out;
    }
    rc = 0;
out:
    st->seconds = rt_now() - t0;
    if (R.out && fclose(R.out) != 0 && rc == 0) rc = RT_FAIL("%s: %s", o->out_path, strerror(errno));
    if (R.errf) fclose(R.errf);
    free(th);
    if (R.prompts)
        for (size_t i = 0; i < n_prompts; i++) free(R.prompts[i].text);
    free(R.prompts);
    free(R.todo);
    strset_free(&done);
    pthread_mutex_destroy(&R.mu);
    client_global_cleanup();
    return rc;
}
