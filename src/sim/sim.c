/*
 * sim.c — `retort simulate`: a day of labelled traffic against a running `retort serve`
 * (started with --sim-clock), on an accelerated clock.
 *
 * A scenario (JSON) lists personas; each becomes one or more actors with accounts created
 * directly in the server's gateway database (so sign-up times can be in the past, and sybil
 * keys can be created in a burst) and labelled in guard_sim_accounts:
 *   benign   chat questions in a personal style, human sessions in waking hours of a time
 *            zone, lognormal think times, follow-ups that carry the conversation, mostly the
 *            default max_tokens; some share an address (households) or signed up together
 *   power    heavy but benign humans: long sessions, explicit max_tokens, some log-probs
 *   app      a product built on the API: a fixed system prompt around many end users'
 *            questions, around the clock (diurnal Poisson), concurrent, a fixed max_tokens
 *   bulk     corpus passages as fast as the limits allow, concurrent, max max_tokens
 *   logprob  corpus passages with logprobs and top_logprobs 20
 *   slow     one passage every interval_s (under any rate limit), all day
 *   template one instruction template expanded with corpus names, books, themes
 *   mimicry  benign-looking questions mixed with passages, on human sessions
 *   sybil    template expansion spread over >= 20 keys created in a burst, few addresses
 *   walk     the corpus in order, passage after passage
 * Every request carries X-Retort-Sim-Time; with speed S a simulated second lasts 1/S real
 * seconds (0: as fast as the server answers). Requests leave from distinct 127.x.y.z source
 * addresses (the whole 127/8 is loopback on Linux), so the server sees per-actor clients.
 * Attackers stop when all their keys are refused with 403; what each received before that
 * is written as harvest JSONL (the format `retort harvest` writes) for `retort sft`.
 *
 * Not the guard: the simulator knows nothing of detection; eval.c joins its labels with the
 * guard's actions afterwards.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../client/client.h"
#include "../defend/defend.h"
#include "../record/record.h"
#include "sim.h"

typedef enum {
    P_BENIGN = 0, P_POWER, P_APP, P_EVALJOB,                                   /* benign */
    P_BULK, P_LOGPROB, P_SLOW, P_TEMPLATE, P_MIMICRY, P_SYBIL, P_WALK,         /* attackers */
    P_PROBER, P_SWARM, P_WARMUP, P_CAREFUL, P_PARAPHRASE, P_KINDS
} pkind;
static const char *const kind_names[P_KINDS] = {"benign",  "power", "app",    "evaljob", "bulk",    "logprob",
                                                "slow",    "template", "mimicry", "sybil", "walk", "prober",
                                                "swarm",   "warmup", "careful", "paraphrase"};

typedef struct {
    char name[48];
    pkind kind;
    size_t count;
    double rpd_lo, rpd_hi;   /* requests per day (benign, power, app) */
    size_t requests;         /* attackers: served requests wanted (0 = until the day ends) */
    double rate_per_hour;    /* attackers' pace */
    size_t concurrency;
    double start_hour, end_hour; /* < 0: random start in [1, 5] */
    size_t max_tokens;       /* 0: the scenario's */
    size_t top_logprobs;
    double mix;              /* mimicry: share of benign-looking questions */
    size_t keys, addresses;  /* sybil */
    double interval_s;       /* slow */
    int chat;                /* 1 chat, 0 completions */
    gw_limits limits;
    int has_limits;
    size_t cohort;           /* benign: sign-up cohorts of this size (0 = none) */
    double shared_address;   /* benign: share of accounts that share an address with another */
    guard_source_spec src;   /* where its prompts come from (default: the scenario's) */
    int has_src;
    guard_source_spec hsrc;  /* warmup: where its harvest comes from (default: src) */
    int has_hsrc;
    double warmup_hours;     /* warmup: benign use this long, then the harvest */
    double period_hours;     /* evaljob: a run of the suite every period (default 24: nightly) */
    size_t suite_size;       /* evaljob: prompts in its fixed suite */
    double signup_days;      /* swarm: sign-ups spread over this many days before the day */
    size_t per_key;          /* swarm: requests per key (about; each key's own sessions) */
    char tier[32];           /* "": none; else the guard tier an operator put its accounts in */
} persona;

struct guard_scenario {
    char name[48];
    char origin[256];
    uint64_t seed;
    double start, hours;
    char model[128];
    gw_limits limits;
    size_t max_tokens;
    persona *p;
    size_t n_p;
    guard_source_spec src;   /* default prompt source of its personas */
    char fortunes_dir[256], man_dir[256]; /* "" = the system's */
    int forwarded_for;       /* every request names its client in X-Forwarded-For */
};

void guard_scenario_free(guard_scenario *s) {
    if (!s) return;
    free(s->p);
    free(s);
}

size_t guard_scenario_accounts(const guard_scenario *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->n_p; i++)
        n += s->p[i].count * (s->p[i].kind == P_SYBIL || s->p[i].kind == P_SWARM ? s->p[i].keys : 1);
    return n;
}

/* ---------------------------------------------------------------- scenario parsing */

typedef struct {
    const char *origin;
    char path[160];
} sctx;

static int sfail(sctx *c, const char *field, const char *fmt, ...) RT_PRINTF(3, 4);
static int sfail(sctx *c, const char *field, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return RT_FAIL("%s: %s%s%s: %s", c->origin, c->path, *c->path && *field ? "." : "", field, msg);
}

static int s_keys(sctx *c, json_t *o, const char *const *allowed, size_t n) {
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        size_t i = 0;
        while (i < n && strcmp(k, allowed[i])) i++;
        if (i == n) {
            rt_buf b = {0};
            for (size_t j = 0; j < n; j++) rt_buf_printf(&b, "%s%s", j ? ", " : "", allowed[j]);
            int rc = sfail(c, k, "unknown field (expected one of: %s)", b.data ? b.data : "");
            rt_buf_free(&b);
            return rc;
        }
    }
    return 0;
}

static int s_num(sctx *c, json_t *o, const char *k, double lo, double hi, double *out) {
    json_t *v = json_object_get(o, k);
    if (!v) return 0;
    if (!json_is_number(v)) return sfail(c, k, "expected a number");
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return sfail(c, k, "%g is out of range [%g, %g]", x, lo, hi);
    *out = x;
    return 0;
}

static int s_size(sctx *c, json_t *o, const char *k, size_t lo, size_t hi, size_t *out) {
    json_t *v = json_object_get(o, k);
    if (!v) return 0;
    if (!json_is_integer(v)) return sfail(c, k, "expected an integer");
    json_int_t x = json_integer_value(v);
    if (x < (json_int_t)lo || x > (json_int_t)hi)
        return sfail(c, k, "%lld is out of range [%zu, %zu]", (long long)x, lo, hi);
    *out = (size_t)x;
    return 0;
}

static int s_limits(sctx *c, json_t *o, const char *k, gw_limits *l, int *given) {
    json_t *v = json_object_get(o, k);
    if (!v) return 0;
    if (!json_is_object(v)) return sfail(c, k, "expected an object {\"rpm\", \"tpm\", \"daily_tokens\"}");
    char save[64];
    snprintf(save, sizeof save, "%.60s", c->path);
    snprintf(c->path, sizeof c->path, "%s%s%.60s", save, *save ? "." : "", k);
    static const char *const lk[] = {"rpm", "tpm", "daily_tokens"};
    double r = (double)l->rpm, t = (double)l->tpm, d = (double)l->daily_tokens;
    int rc = s_keys(c, v, lk, 3) || s_num(c, v, "rpm", 0, 1e9, &r) || s_num(c, v, "tpm", 0, 1e12, &t) ||
             s_num(c, v, "daily_tokens", 0, 1e15, &d);
    snprintf(c->path, sizeof c->path, "%s", save);
    if (rc) return -1;
    l->rpm = (int64_t)r;
    l->tpm = (int64_t)t;
    l->daily_tokens = (int64_t)d;
    if (given) *given = 1;
    return 0;
}

static int s_source(sctx *c, json_t *o, guard_source_spec *out, int *given) {
    json_t *v = json_object_get(o, "source");
    if (!v) return 0;
    if (!json_is_string(v) || guard_source_spec_parse(json_string_value(v), out))
        return sfail(c, "source", "expected one of corpus, fortunes, man, everyday (the last three optionally /a or /b: "
                                  "one half of the source)");
    if (given) *given = 1;
    return 0;
}

static int s_path(sctx *c, json_t *o, const char *k, char *out, size_t cap) {
    json_t *v = json_object_get(o, k);
    if (!v) return 0;
    if (!json_is_string(v) || !*json_string_value(v) || strlen(json_string_value(v)) >= cap)
        return sfail(c, k, "expected a directory path (1..%zu bytes)", cap - 1);
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

static void persona_defaults(persona *p, pkind k) {
    memset(p, 0, sizeof *p);
    p->kind = k;
    snprintf(p->name, sizeof p->name, "%s", kind_names[k]);
    p->count = 1;
    p->concurrency = 1;
    p->start_hour = -1;
    p->end_hour = 24 * 30; /* the scenario's end */
    p->chat = 1;
    p->mix = 0.5;
    p->keys = 1;
    p->addresses = 1;
    p->interval_s = 75;
    p->period_hours = 24;
    p->suite_size = 60;
    p->signup_days = 60;
    p->per_key = 25;
    switch (k) {
    case P_BENIGN:
        p->rpd_lo = 4, p->rpd_hi = 60, p->start_hour = 0, p->shared_address = 0.05;
        break;
    case P_POWER: p->rpd_lo = 150, p->rpd_hi = 600, p->start_hour = 0; break;
    case P_APP: p->rpd_lo = 300, p->rpd_hi = 1200, p->concurrency = 3, p->start_hour = 0; break;
    case P_BULK: p->requests = 3000, p->rate_per_hour = 3000, p->concurrency = 4, p->chat = 0; break;
    case P_LOGPROB: p->requests = 2000, p->rate_per_hour = 1200, p->concurrency = 2, p->top_logprobs = 20; break;
    case P_SLOW: p->requests = 0, p->start_hour = 0; break;
    case P_TEMPLATE: p->requests = 2000, p->rate_per_hour = 800, p->concurrency = 2; break;
    case P_MIMICRY: p->requests = 1500, p->rate_per_hour = 240; break;
    case P_SYBIL: p->requests = 2400, p->rate_per_hour = 1200, p->concurrency = 4, p->keys = 24, p->addresses = 3; break;
    case P_WALK: p->requests = 2000, p->rate_per_hour = 800, p->concurrency = 2; break;
    case P_EVALJOB: p->start_hour = 2, p->interval_s = 20; break;
    case P_PROBER: p->requests = 2000, p->rate_per_hour = 1200, p->concurrency = 2, p->top_logprobs = 20, p->max_tokens = 1; break;
    case P_SWARM: p->requests = 0, p->keys = 40, p->start_hour = 0; break;
    case P_WARMUP: p->requests = 1000, p->rate_per_hour = 300, p->warmup_hours = 20, p->rpd_lo = 60, p->rpd_hi = 200, p->start_hour = 0; break;
    case P_CAREFUL: p->requests = 1500, p->rate_per_hour = 60, p->start_hour = 0; break;
    case P_PARAPHRASE: p->requests = 2000, p->rate_per_hour = 800, p->concurrency = 2; break;
    default: break;
    }
}

/* personas[i] of a scenario into s->p[i] (defaults of its kind, then its fields; names unique
 * among the earlier ones) */
static int parse_persona(sctx *c, json_t *po, guard_scenario *s, size_t i) {
    json_t *v;
    snprintf(c->path, sizeof c->path, "personas[%zu]", i);
    if (!json_is_object(po)) {
        sfail(c, "", "expected an object");
        return -1;
    }
    static const char *const pk[] = {"name",       "kind",     "count",        "requests_per_day", "requests",
                                     "rate_per_hour", "concurrency", "start_hour", "end_hour",     "max_tokens",
                                     "top_logprobs", "mix",    "keys",         "addresses",        "interval_s",
                                     "endpoint",   "limits",   "cohort",       "shared_address",   "comment",
                                     "source",     "warmup_hours", "period_hours", "suite_size",     "signup_days",
                                     "requests_per_key", "tier", "harvest_source"};
    if (s_keys(c, po, pk, RT_ARRAY_LEN(pk))) return -1;
    const char *kind = json_string_value(json_object_get(po, "kind"));
    int k = -1;
    for (int j = 0; kind && j < P_KINDS; j++)
        if (!strcmp(kind, kind_names[j])) k = j;
    if (k < 0) {
        rt_buf b = {0};
        for (int j = 0; j < P_KINDS; j++) rt_buf_printf(&b, "%s%s", j ? ", " : "", kind_names[j]);
        sfail(c, "kind", "required, one of: %s", b.data ? b.data : "");
        rt_buf_free(&b);
        return -1;
    }
    persona *p = &s->p[i];
    persona_defaults(p, (pkind)k);
    p->limits = s->limits;
    if ((v = json_object_get(po, "name"))) {
        const char *n = json_string_value(v);
        if (!n || !*n || strlen(n) > 24 ||
            strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(n)) {
            sfail(c, "name", "expected 1..24 letters, digits, '-' or '_'");
            return -1;
        }
        snprintf(p->name, sizeof p->name, "%s", n);
    }
    for (size_t j = 0; j < i; j++)
        if (!strcmp(s->p[j].name, p->name)) {
            sfail(c, "name", "'%s' is already the name of personas[%zu] (names must differ)", p->name, j);
            return -1;
        }
    json_t *rpd = json_object_get(po, "requests_per_day");
    if (rpd) {
        if (!json_is_array(rpd) || json_array_size(rpd) != 2 || !json_is_number(json_array_get(rpd, 0)) ||
            !json_is_number(json_array_get(rpd, 1)) || !(json_number_value(json_array_get(rpd, 0)) > 0) ||
            !(json_number_value(json_array_get(rpd, 0)) <= json_number_value(json_array_get(rpd, 1))) ||
            json_number_value(json_array_get(rpd, 1)) > 1e6) {
            sfail(c, "requests_per_day", "expected [lo, hi] with 0 < lo <= hi <= 1e6");
            return -1;
        }
        p->rpd_lo = json_number_value(json_array_get(rpd, 0));
        p->rpd_hi = json_number_value(json_array_get(rpd, 1));
    }
    double mix = p->mix, sh = p->shared_address;
    if (s_size(c, po, "count", 0, 100000, &p->count) || s_size(c, po, "requests", 0, 10000000, &p->requests) ||
        s_num(c, po, "rate_per_hour", 0.01, 1e7, &p->rate_per_hour) ||
        s_size(c, po, "concurrency", 1, 64, &p->concurrency) ||
        s_num(c, po, "start_hour", 0, 24 * 30, &p->start_hour) || s_num(c, po, "end_hour", 0, 24 * 30, &p->end_hour) ||
        s_size(c, po, "max_tokens", 1, 1 << 20, &p->max_tokens) ||
        s_size(c, po, "top_logprobs", 0, 20, &p->top_logprobs) || s_num(c, po, "mix", 0, 1, &mix) ||
        s_size(c, po, "keys", 1, 4096, &p->keys) || s_size(c, po, "addresses", 1, 4096, &p->addresses) ||
        s_num(c, po, "interval_s", 0.001, 1e7, &p->interval_s) || s_size(c, po, "cohort", 0, 1000, &p->cohort) ||
        s_num(c, po, "shared_address", 0, 1, &sh) || s_limits(c, po, "limits", &p->limits, &p->has_limits) ||
        s_source(c, po, &p->src, &p->has_src) || s_num(c, po, "warmup_hours", 0, 24 * 30, &p->warmup_hours) ||
        s_num(c, po, "period_hours", 0.01, 24 * 30, &p->period_hours) ||
        s_size(c, po, "suite_size", 1, 100000, &p->suite_size) || s_num(c, po, "signup_days", 0, 3650, &p->signup_days) ||
        s_size(c, po, "requests_per_key", 1, 1000000, &p->per_key))
        return -1;
    if (!p->has_src) p->src = s->src;
    json_t *hs = json_object_get(po, "harvest_source");
    if (hs) {
        if (!json_is_string(hs) || guard_source_spec_parse(json_string_value(hs), &p->hsrc)) {
            sfail(c, "harvest_source", "expected one of corpus, fortunes, man, everyday (optionally /a or /b)");
            return -1;
        }
        p->has_hsrc = 1;
    } else {
        p->hsrc = p->src;
    }
    if ((v = json_object_get(po, "tier"))) {
        const char *t = json_string_value(v);
        if (!t || !*t || strlen(t) >= sizeof p->tier) {
            sfail(c, "tier", "expected a tier name (e.g. \"eval\", \"trusted\", \"allow\")");
            return -1;
        }
        snprintf(p->tier, sizeof p->tier, "%s", t);
    }
    p->mix = mix;
    p->shared_address = sh;
    if ((v = json_object_get(po, "endpoint"))) {
        const char *e = json_string_value(v);
        if (e && !strcmp(e, "chat")) p->chat = 1;
        else if (e && !strcmp(e, "completions")) p->chat = 0;
        else {
            sfail(c, "endpoint", "expected \"chat\" or \"completions\"");
            return -1;
        }
    }
    if (p->kind != P_SYBIL && p->kind != P_SWARM && json_object_get(po, "keys") && p->keys != 1) {
        sfail(c, "keys", "only sybil and swarm personas have several keys");
        return -1;
    }
    if (p->kind == P_SYBIL && p->addresses > p->keys) {
        sfail(c, "addresses", "%zu addresses for %zu keys: at most one per key", p->addresses, p->keys);
        return -1;
    }
    if (p->start_hour >= 0 && p->end_hour <= p->start_hour) {
        sfail(c, "end_hour", "%g is not after start_hour %g", p->end_hour, p->start_hour);
        return -1;
    }
    return 0;
}

int guard_scenario_parse(guard_scenario **out, const char *text, size_t len, const char *origin) {
    *out = NULL;
    sctx c = {origin ? origin : "scenario", ""};
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) return RT_FAIL("%s: invalid JSON: %s (line %d, column %d)", c.origin, je.text, je.line, je.column);
    guard_scenario *s = rt_calloc(1, sizeof *s, "scenario");
    int rc = -1;
    if (!s) goto out;
    snprintf(s->origin, sizeof s->origin, "%s", c.origin);
    snprintf(s->name, sizeof s->name, "sim");
    s->seed = 1;
    s->start = 1736121600; /* 2025-01-06T00:00:00Z, a Monday */
    s->hours = 24;
    s->limits = (gw_limits){60, 0, 0};
    s->max_tokens = 48;
    if (!json_is_object(root)) {
        sfail(&c, "", "the scenario must be a JSON object");
        goto out;
    }
    static const char *const top[] = {"name",   "seed",     "start",        "hours",   "model",        "limits", "max_tokens",
                                      "personas", "comment", "source", "fortunes_dir", "man_dir", "forwarded_for"};
    if (s_keys(&c, root, top, RT_ARRAY_LEN(top))) goto out;
    json_t *v;
    if ((v = json_object_get(root, "name"))) {
        const char *n = json_string_value(v);
        if (!n || !*n || strlen(n) > 24 || strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(n)) {
            sfail(&c, "name", "expected 1..24 letters, digits, '-' or '_' (it prefixes account names)");
            goto out;
        }
        snprintf(s->name, sizeof s->name, "%s", n);
    }
    double seed = 1, mt = (double)s->max_tokens;
    if (s_num(&c, root, "seed", 0, 9e15, &seed) || s_num(&c, root, "start", 0, 4e9, &s->start) ||
        s_num(&c, root, "hours", 0.01, 24 * 30, &s->hours) || s_num(&c, root, "max_tokens", 1, 1 << 20, &mt) ||
        s_limits(&c, root, "limits", &s->limits, NULL))
        goto out;
    s->seed = (uint64_t)seed;
    s->max_tokens = (size_t)mt;
    if ((v = json_object_get(root, "model"))) {
        if (!json_is_string(v)) {
            sfail(&c, "model", "expected a string");
            goto out;
        }
        snprintf(s->model, sizeof s->model, "%s", json_string_value(v));
    }
    if (s_source(&c, root, &s->src, NULL) || s_path(&c, root, "fortunes_dir", s->fortunes_dir, sizeof s->fortunes_dir) ||
        s_path(&c, root, "man_dir", s->man_dir, sizeof s->man_dir))
        goto out;
    if ((v = json_object_get(root, "forwarded_for"))) {
        if (!json_is_boolean(v)) {
            sfail(&c, "forwarded_for", "expected true or false");
            goto out;
        }
        s->forwarded_for = json_is_true(v);
    }
    json_t *ps = json_object_get(root, "personas");
    if (!json_is_array(ps) || json_array_size(ps) == 0) {
        sfail(&c, "personas", "required: a non-empty array of {\"kind\": ..., \"count\": ...}");
        goto out;
    }
    s->n_p = json_array_size(ps);
    s->p = rt_calloc(s->n_p, sizeof *s->p, "personas");
    if (!s->p) goto out;
    for (size_t i = 0; i < s->n_p; i++)
        if (parse_persona(&c, json_array_get(ps, i), s, i)) goto out;
    c.path[0] = '\0';
    rc = 0;
out:
    json_decref(root);
    if (rc) guard_scenario_free(s);
    else *out = s;
    return rc;
}

int guard_scenario_load(guard_scenario **out, const char *path) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    if (rt_read_file(path, &text, &len)) return RT_FAIL("scenario: %s", rt_errmsg());
    int rc = guard_scenario_parse(out, text, len, path);
    free(text);
    return rc;
}

void guard_sim_options_defaults(guard_sim_options *o) {
    memset(o, 0, sizeof *o);
    o->corpus_path = "build/data/kjv.txt";
    o->speed = 300;
    o->concurrency = 16;
    o->scale = 1;
    o->bind_addresses = 1;
}

/* ---------------------------------------------------------------- actors */

typedef struct {
    char name[GW_NAME_MAX];
    char key[GW_KEY_MAX];
    int64_t account_id;
    char addr[20];
    double created_at;
    int dead;      /* refused with 403 */
    int busy;      /* a request in flight (sybil keys are sequential) */
    double dead_at;
    char xff[20];  /* the public address it names in X-Forwarded-For */
    char ua[160];  /* its User-Agent */
    int horder;    /* the order of its extra headers (a client library's habit) */
} key_t_;

typedef struct {
    const persona *p;
    size_t instance;
    char label[80];     /* group name: persona-instance */
    key_t_ *keys;
    size_t n_keys, key_rr, live_keys;
    rt_rng rng;
    guard_prompt_style style;
    double start, end;  /* sim time window */
    double next_t;
    double *sched;      /* precomputed request times (human personas) */
    size_t n_sched, sched_pos;
    size_t in_flight;
    int in_heap, stopped;
    size_t sent, ok, r403, r429, errors;
    size_t max_tokens;  /* app: fixed */
    char system[200];   /* app: system prompt */
    rt_buf last_q, last_a; /* the conversation so far (follow-ups) */
    double last_t;
    rt_buf retry;       /* prompt to resend after a 429 */
    int has_retry;
    FILE *harvest;
    char harvest_path[600];
    size_t harvested;
    double stopped_at;
    double switch_t;    /* warmup: when the harvest starts */
    int switched;       /* warmup: harvesting now */
    size_t warm_ok;     /* warmup: answers served before the switch */
    uint64_t suite;     /* evaljob: its suite */
} actor;

typedef struct {
    const guard_sim_options *o;
    const guard_scenario *sc;
    guard_corpus *corpus;
    actor *a;
    size_t n_a;
    size_t *heap; /* actor indices by next_t */
    size_t n_heap;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t in_flight;
    double real0;
    char base[1000];
    char model[256];
    guard_sim_stats *st;
    int failed;
    char fail_msg[512];
    rt_progress prog;
    double sim_max;
    guard_texts *texts[GUARD_SRC_KINDS][3]; /* loaded sources, by kind and half */
    FILE *dry;          /* --dry-run: no server; every request written here, answered 200 */
} sim_t;

static int heap_less(sim_t *S, size_t x, size_t y) { return S->a[S->heap[x]].next_t < S->a[S->heap[y]].next_t; }

static void heap_push(sim_t *S, size_t ai) {
    size_t i = S->n_heap++;
    S->heap[i] = ai;
    S->a[ai].in_heap = 1;
    while (i > 0 && heap_less(S, i, (i - 1) / 2)) {
        size_t p = (i - 1) / 2, t = S->heap[p];
        S->heap[p] = S->heap[i];
        S->heap[i] = t;
        i = p;
    }
}

static size_t heap_pop(sim_t *S) {
    size_t top = S->heap[0];
    S->heap[0] = S->heap[--S->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < S->n_heap && heap_less(S, l, m)) m = l;
        if (r < S->n_heap && heap_less(S, r, m)) m = r;
        if (m == i) break;
        size_t t = S->heap[m];
        S->heap[m] = S->heap[i];
        S->heap[i] = t;
        i = m;
    }
    S->a[top].in_heap = 0;
    return top;
}

static int is_attack(pkind k) { return k >= P_BULK; }

static double lognormal(rt_rng *r, double median, double sigma) { return median * exp(sigma * rt_rng_normal(r)); }

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* human schedule: sessions in waking hours of a time zone, on any day of [start, end) */
static int make_sessions(actor *A, size_t n, double mean_session, double think_median, double awake_hours) {
    rt_rng *r = &A->rng;
    A->sched = rt_malloc_array(n + 1, sizeof(double), "schedule");
    if (!A->sched) return -1;
    double tz = -8 + 18 * rt_rng_double(r);                 /* hours east of UTC */
    double wake = fmod(7.0 - tz + 48.0, 24.0) * 3600.0;      /* local 07:00 in UTC seconds of the day */
    size_t k = 0, attempts = 0;
    double day = 86400;
    size_t days = (size_t)fmax(1, ceil((A->end - A->start) / day));
    while (k < n && attempts++ < 50 * n + 100) {
        size_t len = 1 + (size_t)floor(-log(1 - rt_rng_double(r)) * (mean_session - 1)); /* geometric-ish */
        double t = A->start + day * (double)rt_rng_below(r, days) + fmod(wake + rt_rng_double(r) * awake_hours * 3600.0, day);
        for (size_t j = 0; j < len && k < n; j++) {
            if (t >= A->start && t < A->end) A->sched[k++] = t;
            else break;
            t += lognormal(r, think_median, 0.9);
        }
    }
    qsort(A->sched, k, sizeof(double), cmp_dbl);
    A->n_sched = k;
    return 0;
}

static double next_gap(actor *A) {
    const persona *p = A->p;
    rt_rng *r = &A->rng;
    switch (p->kind) {
    case P_SLOW: return p->interval_s * (0.7 + 0.6 * rt_rng_double(r));
    case P_CAREFUL: { /* irregular: lognormal gaps, now and then a break of 1-4 hours, never under 2 s */
        double g = lognormal(r, 3600.0 / p->rate_per_hour / 1.38, 0.8);
        if (rt_rng_double(r) < 0.003) g += 3600 * (1 + 3 * rt_rng_double(r));
        return fmax(g, 2.0);
    }
    case P_APP: {
        /* diurnal Poisson by thinning: rate(t) = peak * (0.6 + 0.4 sin), averaging 0.6 peak */
        double mean = exp(0.5 * (log(p->rpd_lo) + log(p->rpd_hi))) / 86400.0, peak = mean / 0.6, t = A->next_t;
        for (int i = 0; i < 10000; i++) {
            t += -log(1 - rt_rng_double(r)) / peak;
            double ph = 2 * M_PI * (t - A->start) / 86400.0 + (double)A->instance;
            if (rt_rng_double(r) < 0.6 + 0.4 * sin(ph)) break;
        }
        return t - A->next_t;
    }
    default: return 3600.0 / p->rate_per_hour * (0.6 + 0.8 * rt_rng_double(r));
    }
}

/* ---------------------------------------------------------------- accounts */

/* Every key's label, for guard_sim_accounts (eval and calibration read them). */
static int write_labels(sim_t *S, gw_db *db) {
    size_t n = 0, k = 0;
    for (size_t i = 0; i < S->n_a; i++) n += S->a[i].n_keys;
    guard_label *l = rt_calloc(n ? n : 1, sizeof *l, "simulator labels");
    if (!l) return -1;
    for (size_t i = 0; i < S->n_a; i++) {
        const actor *A = &S->a[i];
        for (size_t j = 0; j < A->n_keys; j++, k++) {
            l[k].account_id = A->keys[j].account_id;
            snprintf(l[k].name, sizeof l[k].name, "%s", A->keys[j].name);
            snprintf(l[k].persona, sizeof l[k].persona, "%s", A->p->name);
            snprintf(l[k].strategy, sizeof l[k].strategy, "%s", kind_names[A->p->kind]);
            l[k].attack = is_attack(A->p->kind);
            snprintf(l[k].group, sizeof l[k].group, "%s", A->label);
            snprintf(l[k].client, sizeof l[k].client, "%s", S->sc->forwarded_for ? A->keys[j].xff : A->keys[j].addr);
            l[k].created_at = A->keys[j].created_at;
            l[k].seed = S->sc->seed;
            char nb[24];
            snprintf(l[k].source, sizeof l[k].source, "%s", A->p->kind == P_EVALJOB ? "bench" : guard_source_spec_name(A->p->src, nb));
        }
    }
    int rc = guard_labels_write(db, l, n);
    free(l);
    return rc;
}

static void addr_of(size_t k, char out[20]) {
    snprintf(out, 20, "127.%u.%u.%u", (unsigned)(10 + k / 62500 % 200), (unsigned)(k / 250 % 250),
             (unsigned)(k % 250 + 2));
}

static int can_bind(const char *addr) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, addr, &sa.sin_addr);
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static const char *const app_purposes[] = {"a Bible study app", "a daily devotional newsletter", "a church chatbot",
                                           "a homework helper", "a sermon preparation tool", "a museum guide",
                                           "a language learning app", "a customer support bot for a bookshop"};

/* A client's User-Agent, drawn from common API clients and browsers with their versions, and
 * the order its library sends the extra headers in (one habit per family). */
static void pick_client(rt_rng *r, char *ua, size_t cap, int *order) {
    static const char *const fam[] = {"OpenAI/Python 1.%u.%u", "OpenAI/JS 4.%u.%u", "python-requests/2.%u.%u",
                                      "curl/7.%u.%u", "axios/1.%u.%u", "okhttp/4.%u.%u",
                                      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                                      "Chrome/1%02u.0.%u.0 Safari/537.36",
                                      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
                                      "Gecko) Version/17.%u Safari/605.1.15 (%u)",
                                      "langchain-openai/0.%u.%u", "Go-http-client/1.1 (%u.%u)"};
    static const unsigned ver_lo[] = {30, 40, 28, 74, 4, 9, 18, 0, 1, 1}, ver_n[] = {26, 30, 5, 15, 4, 4, 9, 5, 3, 4};
    size_t f = rt_rng_below(r, RT_ARRAY_LEN(fam));
    snprintf(ua, cap, fam[f], ver_lo[f] + (unsigned)rt_rng_below(r, ver_n[f]), (unsigned)rt_rng_below(r, 4));
    *order = (int)(f % 3);
}

/* A public-looking client address (the first octet from common residential ranges). */
static void public_addr(rt_rng *r, char out[20]) {
    static const unsigned first[] = {24, 31, 37, 46, 50, 62, 68, 71, 73, 76, 78, 81, 84, 86, 88, 90, 92, 94, 96, 98, 99,
                                     108, 109, 151, 173, 174, 176, 178, 185, 188, 190, 201};
    snprintf(out, 20, "%u.%u.%u.%u", first[rt_rng_below(r, RT_ARRAY_LEN(first))], (unsigned)rt_rng_below(r, 256),
             (unsigned)rt_rng_below(r, 256), 1 + (unsigned)rt_rng_below(r, 254));
}

/* The sources the personas use, each loaded once. */
static int load_sources(sim_t *S) {
    for (size_t i = 0; i < 2 * S->sc->n_p; i++) {
        guard_source_spec sp = i % 2 ? S->sc->p[i / 2].hsrc : S->sc->p[i / 2].src;
        if ((sp.kind != GUARD_SRC_FORTUNES && sp.kind != GUARD_SRC_MAN) || S->texts[sp.kind][sp.half]) continue;
        const char *dir = sp.kind == GUARD_SRC_FORTUNES ? S->sc->fortunes_dir : S->sc->man_dir;
        if (guard_texts_load(&S->texts[sp.kind][sp.half], sp, *dir ? dir : NULL)) return -1;
    }
    return 0;
}

/* Actors of a persona: one per instance, but one per key for a swarm (each key its own
 * schedule; they share the instance's label). */
static size_t actors_of(const persona *p, double scale) {
    size_t cnt = (size_t)llround((double)p->count * (is_attack(p->kind) ? 1.0 : scale));
    if (p->count > 0 && cnt == 0) cnt = 1;
    return p->kind == P_SWARM ? cnt * p->keys : cnt;
}

/* Sign-up time, addresses and client of every key of A. */
static void actor_keys(sim_t *S, actor *A, size_t inst, size_t sub, rt_rng *master, size_t *addr_k, double *cohort_base,
                       char prev_benign[2][20]) {
    const persona *p = A->p;
    const guard_scenario *sc = S->sc;
    double created;
    if (p->kind == P_SYBIL) created = A->start - 600 - 3000 * rt_rng_double(&A->rng);
    else if (p->kind == P_SWARM) created = sc->start - 86400 * (0.2 + p->signup_days * rt_rng_double(&A->rng));
    else if (p->cohort > 0) {
        if (inst % p->cohort == 0) *cohort_base = sc->start - 86400 * (1 + 179 * rt_rng_double(master));
        created = *cohort_base + 1200 * rt_rng_double(&A->rng);
    } else created = sc->start - 86400 * (0.5 + 179.5 * rt_rng_double(&A->rng));
    char sy_addr[64][20], sy_pub[20];
    size_t n_sy = RT_MIN(p->addresses, (size_t)64);
    if (p->kind == P_SYBIL) {
        for (size_t k = 0; k < n_sy; k++) addr_of((*addr_k)++, sy_addr[k]);
        public_addr(&A->rng, sy_pub); /* the naive sybil's addresses share a /24 */
    }
    for (size_t k = 0; k < A->n_keys; k++) {
        key_t_ *K = &A->keys[k];
        if (p->kind == P_SWARM) snprintf(K->name, sizeof K->name, "%.24s-%.24s-%zu-k%zu", sc->name, p->name, inst, sub);
        else if (A->n_keys > 1) snprintf(K->name, sizeof K->name, "%.24s-%.24s-%zu-k%zu", sc->name, p->name, inst, k);
        else snprintf(K->name, sizeof K->name, "%.24s-%.24s-%zu", sc->name, p->name, inst);
        K->created_at = p->kind == P_SYBIL ? created + 600.0 * (double)k / (double)A->n_keys : created;
        if (p->kind == P_SYBIL) {
            snprintf(K->addr, sizeof K->addr, "%s", sy_addr[k % n_sy]);
            char *dot = strrchr(sy_pub, '.');
            snprintf(K->xff, sizeof K->xff, "%.*s.%zu", (int)(dot - sy_pub), sy_pub, 10 + k % n_sy);
            snprintf(K->ua, sizeof K->ua, "python-requests/2.31.0");
            K->horder = 0;
            continue;
        }
        if (p->kind == P_BENIGN && prev_benign[0][0] && rt_rng_double(&A->rng) < p->shared_address) {
            snprintf(K->addr, sizeof K->addr, "%s", prev_benign[0]);
            snprintf(K->xff, sizeof K->xff, "%s", prev_benign[1]);
        } else {
            addr_of((*addr_k)++, K->addr);
            public_addr(&A->rng, K->xff);
        }
        if (p->kind == P_BENIGN) {
            snprintf(prev_benign[0], 20, "%s", K->addr);
            snprintf(prev_benign[1], 20, "%s", K->xff);
        }
        pick_client(&A->rng, K->ua, sizeof K->ua, &K->horder);
    }
}

/* An evaluation job's schedule: the suite every period_hours from start_hour, one prompt
 * every interval_s (a machine's regular pace, 2% jitter). */
static int evaljob_schedule(actor *A) {
    const persona *p = A->p;
    size_t runs = 0;
    for (double t = A->start; t < A->end; t += p->period_hours * 3600) runs++;
    A->sched = rt_malloc_array(runs * p->suite_size + 1, sizeof(double), "schedule");
    if (!A->sched) return -1;
    size_t k = 0;
    for (size_t r = 0; r < runs; r++)
        for (size_t i = 0; i < p->suite_size; i++) {
            double t = A->start + (double)r * p->period_hours * 3600 + ((double)i + 0.02 * rt_rng_normal(&A->rng)) * p->interval_s;
            if (t >= A->end) break;
            A->sched[k++] = t;
        }
    qsort(A->sched, k, sizeof(double), cmp_dbl);
    A->n_sched = k;
    A->next_t = k ? A->sched[0] : INFINITY;
    return 0;
}

static int actor_schedule(sim_t *S, actor *A) {
    const persona *p = A->p;
    const guard_scenario *sc = S->sc;
    switch (p->kind) {
    case P_BENIGN:
    case P_POWER:
    case P_MIMICRY:
    case P_SWARM:
    case P_WARMUP: {
        double want, day_share = fmax((A->end - A->start) / 86400.0, 0.01); /* days of the scenario */
        if (p->kind == P_MIMICRY) want = (p->requests ? (double)p->requests : 1000) * day_share;
        else if (p->kind == P_SWARM) want = (double)p->per_key * exp(0.3 * rt_rng_normal(&A->rng));
        else if (p->kind == P_WARMUP) {
            A->switch_t = fmin(A->start + p->warmup_hours * 3600, A->end);
            want = exp(log(p->rpd_lo) + (log(p->rpd_hi) - log(p->rpd_lo)) * rt_rng_double(&A->rng)) * p->warmup_hours / 24;
        } else want = exp(log(p->rpd_lo) + (log(p->rpd_hi) - log(p->rpd_lo)) * rt_rng_double(&A->rng)) * day_share;
        size_t nr = (size_t)llround(want);
        if (nr == 0) nr = 1;
        double mean_s = p->kind == P_BENIGN ? 6 : p->kind == P_SWARM ? 4 : p->kind == P_MIMICRY ? 40 : 30;
        double think = p->kind == P_BENIGN || p->kind == P_SWARM ? 40 : p->kind == P_MIMICRY ? 15 : 20;
        double awake = p->kind == P_BENIGN || p->kind == P_SWARM ? 16 : 19;
        double end = A->end;
        if (p->kind == P_WARMUP) A->end = A->switch_t; /* the sessions fill the warm-up only */
        int rc = make_sessions(A, nr, mean_s, think, awake);
        A->end = end;
        if (rc) return -1;
        A->next_t = A->n_sched ? A->sched[0] : p->kind == P_WARMUP ? A->switch_t : INFINITY;
        if (p->kind == P_WARMUP && !A->n_sched) A->switched = 1;
        return 0;
    }
    case P_EVALJOB:
        A->suite = rt_splitmix64(sc->seed * 31 + A->instance + 7);
        A->max_tokens = sc->max_tokens;
        return evaljob_schedule(A);
    case P_APP:
        A->next_t = A->start;
        A->next_t += next_gap(A);
        A->max_tokens = rt_rng_double(&A->rng) < 0.5 ? sc->max_tokens : 1 + rt_rng_below(&A->rng, sc->max_tokens);
        snprintf(A->system, sizeof A->system,
                 "You are the assistant of %s. Answer the user's question %s in at most %zu sentences.",
                 app_purposes[rt_rng_below(&A->rng, RT_ARRAY_LEN(app_purposes))],
                 p->src.kind == GUARD_SRC_CORPUS ? "about the King James Bible" : "helpfully",
                 2 + rt_rng_below(&A->rng, 4));
        return 0;
    default: A->next_t = A->start; return 0;
    }
}

static int build_actors(sim_t *S) {
    const guard_scenario *sc = S->sc;
    double scale = S->o->scale > 0 ? S->o->scale : 1;
    size_t n = 0;
    for (size_t i = 0; i < sc->n_p; i++) n += actors_of(&sc->p[i], scale);
    S->a = rt_calloc(n ? n : 1, sizeof *S->a, "actors");
    S->heap = rt_calloc(n ? n : 1, sizeof *S->heap, "actor heap");
    if (!S->a || !S->heap) return -1;
    if (load_sources(S)) return -1;
    rt_rng master;
    rt_rng_seed(&master, sc->seed);
    size_t addr_k = 0;
    char prev_benign[2][20] = {"", ""};
    for (size_t i = 0; i < sc->n_p; i++) {
        const persona *p = &sc->p[i];
        size_t cnt = actors_of(p, scale), per = p->kind == P_SWARM ? p->keys : 1;
        double cohort_base = 0;
        for (size_t j = 0; j < cnt; j++) {
            actor *A = &S->a[S->n_a++];
            size_t inst = j / per, sub = j % per;
            A->p = p;
            A->instance = inst;
            snprintf(A->label, sizeof A->label, "%s-%zu", p->name, inst);
            rt_rng_seed(&A->rng, rt_splitmix64(sc->seed * 1000003ULL + i * 7919ULL + j));
            guard_prompt_style_random(&A->style, S->corpus, &A->rng);
            if (p->kind == P_SWARM) A->style.part = sub, A->style.parts = per; /* the keys tile the source */
            double sh = p->start_hour >= 0 ? p->start_hour : 1 + 4 * rt_rng_double(&A->rng);
            A->start = sc->start + sh * 3600;
            A->end = sc->start + fmin(p->end_hour, sc->hours) * 3600;
            if (p->kind == P_BENIGN || p->kind == P_POWER || p->kind == P_APP || p->kind == P_SLOW)
                A->start = sc->start + (p->start_hour >= 0 ? p->start_hour : 0) * 3600;
            A->n_keys = p->kind == P_SYBIL ? p->keys : 1;
            A->keys = rt_calloc(A->n_keys, sizeof *A->keys, "actor keys");
            if (!A->keys) return -1;
            A->live_keys = A->n_keys;
            actor_keys(S, A, inst, sub, &master, &addr_k, &cohort_base, prev_benign);
            if (actor_schedule(S, A)) return -1;
            if (A->next_t >= A->end) A->stopped = 1;
        }
    }
    return 0;
}

static int create_accounts(sim_t *S) {
    gw_db *db = NULL;
    if (gw_db_open(&db, S->o->db_path) || guard_db_init(db)) {
        gw_db_close(db);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < S->n_a && !rc; i++) {
        actor *A = &S->a[i];
        gw_limits lim = A->p->limits;
        for (size_t k = 0; k < A->n_keys && !rc; k++) {
            gw_account acc;
            rc = gw_key_create(db, A->keys[k].name, &lim, 0, A->keys[k].created_at, A->keys[k].key, &acc);
            A->keys[k].account_id = acc.id;
            if (!rc && acc.status == GW_ACCOUNT_SUSPENDED) /* a rerun on the same database */
                rc = gw_account_set_status(db, acc.id, GW_ACCOUNT_ACTIVE, NULL, S->sc->start);
            if (!rc && A->p->tier[0]) /* what an operator who knows the account does (evaluation jobs, apps) */
                rc = guard_tier_set(db, NULL, A->keys[k].name, A->p->tier, "scenario: a known account of this kind",
                                    "simulate", S->sc->start, NULL);
        }
    }
    if (!rc) rc = write_labels(S, db);
    gw_db_close(db);
    return rc;
}

/* ---------------------------------------------------------------- requests */

typedef struct {
    size_t actor;
    size_t key;
    double t;
    int chat;
    char *body;
    rt_buf prompt; /* the user text (harvest "prompt") */
    int want_logprobs;
} req_t;

/* Keep the first 2..n-1 words (a prober's prefix of a corpus passage). */
static void cut_prefix(rt_buf *b, rt_rng *r) {
    size_t words = 0;
    for (size_t i = 1; i < b->len; i++) words += b->data[i] == ' ' && b->data[i - 1] != ' ';
    size_t want = 2 + (words > 3 ? rt_rng_below(r, words - 2) : 0);
    for (size_t i = 1, w = 0; i < b->len; i++)
        if (b->data[i] == ' ' && b->data[i - 1] != ' ' && ++w == want) {
            b->len = i;
            b->data[i] = '\0';
            return;
        }
}

/* The next prompt of an actor: what its persona asks, from its source. */
static int actor_prompt(sim_t *S, actor *A, rt_buf *pr) {
    const persona *p = A->p;
    rt_rng *r = &A->rng;
    guard_prompt_style user, *st = &A->style;
    guard_prompt_kind ck;
    guard_ask_kind ak;
    switch (p->kind) {
    case P_EVALJOB: return guard_bench_prompt(A->suite, A->sched_pos % p->suite_size, pr);
    case P_BENIGN:
    case P_POWER:
    case P_SWARM: ck = GUARD_PROMPT_QUESTION, ak = GUARD_ASK_QUESTION; break;
    case P_APP: /* one of the app's many end users */
        guard_prompt_style_random(&user, S->corpus, r);
        st = &user;
        ck = GUARD_PROMPT_QUESTION, ak = GUARD_ASK_QUESTION;
        break;
    case P_MIMICRY:
        if (rt_rng_double(r) < p->mix) ck = GUARD_PROMPT_QUESTION, ak = GUARD_ASK_QUESTION;
        else ck = GUARD_PROMPT_PASSAGE, ak = GUARD_ASK_RAW;
        break;
    case P_WARMUP:
        if (A->switched) ck = GUARD_PROMPT_PASSAGE, ak = GUARD_ASK_RAW;
        else ck = GUARD_PROMPT_QUESTION, ak = GUARD_ASK_QUESTION;
        break;
    case P_TEMPLATE:
    case P_SYBIL: ck = GUARD_PROMPT_TEMPLATE, ak = GUARD_ASK_TEMPLATE; break;
    case P_WALK: ck = GUARD_PROMPT_WALK, ak = GUARD_ASK_RAW; break;
    case P_PROBER: ck = GUARD_PROMPT_WALK, ak = GUARD_ASK_PREFIX; break;
    case P_CAREFUL:
    case P_PARAPHRASE: /* a new wording of the instruction every time */
        A->style.attack_template = rt_rng_below(r, 1000);
        ck = GUARD_PROMPT_PASSAGE, ak = GUARD_ASK_PARAPHRASE;
        break;
    default: ck = GUARD_PROMPT_PASSAGE, ak = GUARD_ASK_RAW; break;
    }
    guard_source_spec src = p->kind == P_WARMUP && A->switched ? p->hsrc : p->src;
    if (src.kind != GUARD_SRC_CORPUS) return guard_source_prompt(S->texts[src.kind][src.half], src, ak, st, r, pr);
    if (p->kind == P_PROBER) A->style.walk_pos = rt_rng_below(r, guard_corpus_verses(S->corpus)); /* a fresh place */
    if (guard_prompt_make(S->corpus, ck, st, r, pr)) return -1;
    if (p->kind == P_PROBER) cut_prefix(pr, r);
    return 0;
}

static int build_request(sim_t *S, size_t ai, req_t *q) {
    actor *A = &S->a[ai];
    const persona *p = A->p;
    const guard_scenario *sc = S->sc;
    memset(q, 0, sizeof *q);
    q->actor = ai;
    q->t = A->next_t;
    q->chat = p->chat;
    /* key: the next live, idle one */
    size_t k = A->key_rr % A->n_keys;
    for (size_t tries = 0; tries < A->n_keys; tries++) {
        size_t c = (A->key_rr + tries) % A->n_keys;
        if (!A->keys[c].dead && !A->keys[c].busy) {
            k = c;
            break;
        }
    }
    A->key_rr = k + 1;
    q->key = k;
    /* prompt */
    rt_buf *pr = &q->prompt;
    int rc = 0;
    if (A->has_retry) {
        rc = rt_buf_append(pr, A->retry.data, A->retry.len);
        A->has_retry = 0;
    } else {
        rc = actor_prompt(S, A, pr);
    }
    if (rc) return -1;
    /* parameters */
    size_t cap = p->max_tokens ? p->max_tokens : sc->max_tokens;
    json_int_t max_tokens = -1;
    double temperature = -1;
    size_t top = 0;
    int logprobs = 0;
    rt_rng *r = &A->rng;
    /* an explicit max_tokens in [lo, cap] */
#define MT_BETWEEN(lo) ((json_int_t)RT_MIN((size_t)(lo), cap) + (json_int_t)rt_rng_below(r, cap - RT_MIN((size_t)(lo), cap) + 1))
    int harvesting = p->kind != P_WARMUP || A->switched;
    switch (p->kind) {
    case P_WARMUP:
        if (harvesting) max_tokens = (json_int_t)cap;
        else if (rt_rng_double(r) < 0.8) max_tokens = MT_BETWEEN(16);
        break;
    case P_EVALJOB: max_tokens = (json_int_t)cap, temperature = 0; break;
    case P_SWARM: /* natural requests, but the long answers a harvest wants */
        if (rt_rng_double(r) < 0.7) max_tokens = (json_int_t)cap;
        if (rt_rng_double(r) < 0.2) temperature = 0.2 + rt_rng_double(r);
        break;
    case P_BENIGN:
        if (rt_rng_double(r) < 0.4) max_tokens = MT_BETWEEN(8);
        if (rt_rng_double(r) < 0.2) temperature = 0.2 + rt_rng_double(r);
        if (rt_rng_double(r) < 0.02) logprobs = 1, top = rt_rng_below(r, 4);
        break;
    case P_POWER:
        if (rt_rng_double(r) < 0.8) max_tokens = MT_BETWEEN(16);
        if (rt_rng_double(r) < 0.5) temperature = rt_rng_double(r) * 1.2;
        if (rt_rng_double(r) < 0.08) logprobs = 1, top = rt_rng_below(r, 6);
        break;
    case P_APP: max_tokens = (json_int_t)RT_MIN(A->max_tokens, cap); temperature = 0.7; break;
    case P_MIMICRY:
        if (rt_rng_double(r) < 0.5) max_tokens = MT_BETWEEN(8);
        break;
    default:
        max_tokens = (json_int_t)cap;
        if (p->kind == P_LOGPROB || p->kind == P_PROBER || p->top_logprobs) logprobs = 1, top = p->top_logprobs;
        break;
    }
#undef MT_BETWEEN
    q->want_logprobs = logprobs && top > 0;
    json_t *b = json_object();
    json_object_set_new(b, "model", json_string(S->model));
    if (p->chat) {
        json_t *msgs = json_array();
        if (A->system[0]) json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", A->system));
        /* a follow-up in the same session carries the conversation */
        int follow = (p->kind == P_BENIGN || p->kind == P_POWER) && A->last_q.len && q->t - A->last_t < 900 &&
                     rt_rng_double(r) < 0.35;
        if (follow) {
            json_array_append_new(msgs, json_pack("{s:s, s:s%}", "role", "user", "content", A->last_q.data, A->last_q.len));
            json_array_append_new(msgs, json_pack("{s:s, s:s%}", "role", "assistant", "content",
                                                  A->last_a.data ? A->last_a.data : "", A->last_a.len));
        }
        json_array_append_new(msgs, json_pack("{s:s, s:s%}", "role", "user", "content", pr->data ? pr->data : "", pr->len));
        json_object_set_new(b, "messages", msgs);
        if (logprobs) {
            json_object_set_new(b, "logprobs", json_true());
            if (top) json_object_set_new(b, "top_logprobs", json_integer((json_int_t)top));
        }
    } else {
        json_object_set_new(b, "prompt", json_stringn(pr->data ? pr->data : "", pr->len));
        if (logprobs) json_object_set_new(b, "logprobs", json_integer((json_int_t)top));
    }
    if (max_tokens > 0) json_object_set_new(b, "max_tokens", json_integer(max_tokens));
    if (temperature >= 0) json_object_set_new(b, "temperature", json_real(temperature));
    q->body = rt_json_reals(json_dumps(b, JSON_COMPACT));
    json_decref(b);
    if (!q->body) return RT_FAIL("out of memory building a request");
    return 0;
}

/* The extra header lines of a key's request, in its client's order: the simulated clock (a
 * header the server reads under --sim-clock), its User-Agent and, when the scenario says so,
 * its public address in X-Forwarded-For. Returns how many. */
static size_t key_headers(const key_t_ *K, double t, int forwarded_for, char lines[3][200], const char *out[3]) {
    static const int orders[3][3] = {{0, 1, 2}, {1, 2, 0}, {2, 0, 1}};
    char all[3][200];
    snprintf(all[0], sizeof all[0], "X-Retort-Sim-Time: %.3f", t);
    snprintf(all[1], sizeof all[1], "User-Agent: %s", K->ua);
    snprintf(all[2], sizeof all[2], "X-Forwarded-For: %s", K->xff);
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        int w = orders[K->horder % 3][i];
        if (w == 2 && !forwarded_for) continue;
        memcpy(lines[n], all[w], sizeof lines[n]);
        out[n] = lines[n];
        n++;
    }
    return n;
}

/* One request of the simulation: the actor's key, its headers, and the actor's own local
 * address (so addresses mean something without X-Forwarded-For too). */
static long http_post(client *h, const char *url, const char *key, const char *const *hdr, size_t n_hdr,
                      const char *addr, const char *body, client_response *r) {
    client_request rq = {.key = key,
                         .headers = hdr,
                         .n_headers = n_hdr,
                         .local_addr = addr,
                         .connect_timeout_s = 20,
                         .timeout_s = 600,
                         .fresh_connection = 1};
    return client_call(h, url, &rq, body, r);
}

/* the harvest line of a 200 answer (the record `retort harvest` writes, src/record) */
static char *harvest_line(const req_t *q, json_t *resp, char **completion_out) {
    char err[160];
    json_t *line = record_from_response(q->prompt.data ? q->prompt.data : "", q->prompt.len, resp, q->chat,
                                        q->want_logprobs, err, sizeof err);
    if (!line) return NULL;
    if (completion_out) *completion_out = rt_strdup(json_string_value(json_object_get(line, "completion")));
    char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(line);
    return s;
}

/* ---------------------------------------------------------------- scheduling */

/* --dry-run: one JSON line per request (who, when, from where, which client, the body). */
static int dry_write(sim_t *S, const actor *A, const key_t_ *K, const req_t *q, const char *const *hdr, size_t n_hdr) {
    json_error_t je;
    json_t *body = json_loads(q->body, 0, &je), *names = json_array();
    for (size_t i = 0; i < n_hdr; i++) json_array_append_new(names, json_stringn(hdr[i], strcspn(hdr[i], ":")));
    json_t *o = json_pack("{s:f, s:s, s:s, s:s, s:s, s:b, s:f, s:s, s:s, s:s, s:o, s:s, s:o}", "t", q->t, "account",
                          K->name, "persona", A->p->name, "kind", kind_names[A->p->kind], "group", A->label, "attack",
                          is_attack(A->p->kind), "created_at", K->created_at, "addr", K->addr, "xff", K->xff, "ua", K->ua,
                          "headers", names, "endpoint", q->chat ? "chat" : "completions", "body",
                          body ? body : json_null());
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = 0;
    if (!line) rc = RT_FAIL("out of memory writing --dry-run");
    else if (fprintf(S->dry, "%s\n", line) < 0) rc = RT_FAIL("--dry-run: write failed: %s", strerror(errno));
    free(line);
    return rc;
}

/* push an actor back if it may send */
static void maybe_push(sim_t *S, size_t ai) {
    actor *A = &S->a[ai];
    if (A->stopped || A->in_heap || A->in_flight >= A->p->concurrency) return;
    if (!isfinite(A->next_t)) return;
    if (A->next_t >= A->end) {
        if (A->in_flight == 0) A->stopped = 1;
        return;
    }
    if (A->p->kind == P_SYBIL) { /* keys are sequential: need an idle live key */
        int idle = 0;
        for (size_t k = 0; k < A->n_keys && !idle; k++) idle = !A->keys[k].dead && !A->keys[k].busy;
        if (!idle) return;
    }
    heap_push(S, ai);
}

static void advance_after_dispatch(sim_t *S, actor *A) {
    (void)S;
    if (A->sched) { /* human: the next planned time, once this answer is in */
        A->sched_pos++;
        A->next_t = INFINITY; /* set when the response arrives */
    } else if (A->p->concurrency > 1 || A->p->kind == P_SYBIL) {
        A->next_t += next_gap(A); /* open loop up to the concurrency */
    } else {
        A->next_t = INFINITY;
    }
}

static void on_response(sim_t *S, req_t *q, long status, double latency_real, double retry_after) {
    actor *A = &S->a[q->actor];
    key_t_ *K = &A->keys[q->key];
    A->in_flight--;
    K->busy = 0;
    S->in_flight--;
    S->st->requests++;
    A->sent++;
    double t_done = q->t + latency_real * (S->o->speed > 0 ? S->o->speed : 0);
    if (status == 200) {
        A->ok++;
        S->st->ok++;
    } else if (status == 403) {
        A->r403++;
        S->st->refused_403++;
        if (!K->dead) {
            K->dead = 1;
            K->dead_at = q->t;
            A->live_keys--;
        }
        if (A->live_keys == 0) {
            A->stopped = 1;
            A->stopped_at = q->t;
        }
    } else if (status == 429) {
        A->r429++;
        S->st->limited_429++;
        rt_buf_free(&A->retry);
        rt_buf_append(&A->retry, q->prompt.data ? q->prompt.data : "", q->prompt.len);
        A->has_retry = 1;
    } else {
        A->errors++;
        S->st->errors++;
    }
    if (is_attack(A->p->kind) && A->p->requests && (A->p->kind != P_WARMUP || A->switched) &&
        A->ok - A->warm_ok >= A->p->requests)
        A->stopped = 1, A->stopped_at = q->t;
    if (!A->stopped && A->p->kind == P_WARMUP && !A->switched && A->sched_pos >= A->n_sched) {
        /* the warm-up is over: from now on a harvester at its own pace */
        free(A->sched);
        A->sched = NULL;
        A->switched = 1;
        A->warm_ok = A->ok;
        A->next_t = fmax(A->switch_t, t_done) + next_gap(A);
    } else if (!A->stopped) {
        if (A->sched) {
            double planned = A->sched_pos < A->n_sched ? A->sched[A->sched_pos] : INFINITY;
            if (status == 429) planned = fmax(planned, q->t + (retry_after > 0 ? retry_after : 30));
            A->next_t = fmax(planned, t_done + 1.0);
            if (A->sched_pos >= A->n_sched && !(status == 429)) A->next_t = INFINITY;
            if (!isfinite(A->next_t) && A->in_flight == 0) A->stopped = 1;
        } else if (A->p->concurrency <= 1 && A->p->kind != P_SYBIL) {
            A->next_t = t_done + next_gap(A);
        }
        if (status == 429) A->next_t = fmax(A->next_t, q->t + (retry_after > 0 ? retry_after : 5));
        if (A->next_t < t_done) A->next_t = fmax(A->next_t, q->t);
    }
    if (q->t > S->sim_max) S->sim_max = q->t;
    A->last_t = q->t;
    maybe_push(S, q->actor);
}

static void *sim_worker(void *arg) {
    sim_t *S = arg;
    client *h = NULL;
    client_response r = {{0}, -1};
    char url_chat[1100], url_cmpl[1100];
    snprintf(url_chat, sizeof url_chat, "%s/v1/chat/completions", S->base);
    snprintf(url_cmpl, sizeof url_cmpl, "%s/v1/completions", S->base);
    if (client_new(&h)) {
        pthread_mutex_lock(&S->mu);
        S->failed = 1;
        snprintf(S->fail_msg, sizeof S->fail_msg, "%s", rt_errmsg());
        pthread_cond_broadcast(&S->cv);
        pthread_mutex_unlock(&S->mu);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&S->mu);
        size_t ai = SIZE_MAX;
        for (;;) {
            if (S->failed) break;
            if (S->n_heap == 0) {
                if (S->in_flight == 0) break; /* nothing will ever be pushed again */
                pthread_cond_wait(&S->cv, &S->mu);
                continue;
            }
            actor *top = &S->a[S->heap[0]];
            if (S->o->speed > 0) {
                double due = S->real0 + (top->next_t - S->sc->start) / S->o->speed, now = rt_now();
                if (due > now + 0.0005) {
                    double w = fmin(due - now, 0.25);
                    struct timespec ts;
                    clock_gettime(CLOCK_REALTIME, &ts);
                    long ns = ts.tv_nsec + (long)(w * 1e9);
                    ts.tv_sec += ns / 1000000000L;
                    ts.tv_nsec = ns % 1000000000L;
                    pthread_cond_timedwait(&S->cv, &S->mu, &ts);
                    continue;
                }
            }
            ai = heap_pop(S);
            break;
        }
        if (ai == SIZE_MAX) {
            pthread_cond_broadcast(&S->cv);
            pthread_mutex_unlock(&S->mu);
            break;
        }
        actor *A = &S->a[ai];
        req_t q;
        if (build_request(S, ai, &q)) {
            S->failed = 1;
            snprintf(S->fail_msg, sizeof S->fail_msg, "%s", rt_errmsg());
            pthread_cond_broadcast(&S->cv);
            pthread_mutex_unlock(&S->mu);
            rt_buf_free(&q.prompt);
            free(q.body);
            break;
        }
        A->in_flight++;
        A->keys[q.key].busy = 1;
        S->in_flight++;
        advance_after_dispatch(S, A);
        maybe_push(S, ai);
        const char *key = A->keys[q.key].key, *addr = S->o->bind_addresses ? A->keys[q.key].addr : NULL;
        int harvest = is_attack(A->p->kind) && A->harvest;
        int want_text = (A->p->kind == P_BENIGN || A->p->kind == P_POWER) && !S->dry;
        char hl[3][200];
        const char *hdr[3];
        size_t n_hdr = key_headers(&A->keys[q.key], q.t, S->sc->forwarded_for, hl, hdr);
        long status = 200;
        double lat = 0;
        if (S->dry) { /* no server: the request as it would leave, answered 200 */
            if (dry_write(S, A, &A->keys[q.key], &q, hdr, n_hdr)) {
                S->failed = 1;
                snprintf(S->fail_msg, sizeof S->fail_msg, "%s", rt_errmsg());
            }
            harvest = 0;
        }
        pthread_mutex_unlock(&S->mu);

        if (!S->dry) {
            double t0 = rt_now();
            status = http_post(h, q.chat ? url_chat : url_cmpl, key, hdr, n_hdr, addr, q.body, &r);
            lat = rt_now() - t0;
        }
        char *line = NULL, *completion = NULL;
        if (status == 200 && (harvest || want_text)) {
            json_error_t je;
            json_t *resp = json_loadb(r.body.data ? r.body.data : "", r.body.len, JSON_ALLOW_NUL, &je); /* a token may be a NUL byte */
            if (resp) line = harvest_line(&q, resp, want_text ? &completion : NULL);
            json_decref(resp);
        }
        pthread_mutex_lock(&S->mu);
        if (status == 0 || status >= 500) {
            if (status == 0 && S->st->errors > 50 && S->st->ok == 0) {
                S->failed = 1;
                snprintf(S->fail_msg, sizeof S->fail_msg, "%.300s: no answers (is `retort serve --sim-clock` running there?)",
                         S->base);
            }
        }
        if (line && harvest) {
            size_t ll = strlen(line);
            if (fwrite(line, 1, ll, A->harvest) == ll && fputc('\n', A->harvest) != EOF) {
                A->harvested++;
                S->st->harvested++;
            }
        }
        if (completion && want_text) {
            rt_buf_free(&A->last_q);
            rt_buf_free(&A->last_a);
            rt_buf_append(&A->last_q, q.prompt.data ? q.prompt.data : "", q.prompt.len);
            rt_buf_append(&A->last_a, completion, strlen(completion));
        }
        on_response(S, &q, status, lat, r.retry_after);
        if (!S->o->quiet) {
            char extra[160];
            snprintf(extra, sizeof extra, "sim %+.2fh | %zu req, %zu ok, %zu x403, %zu x429", (S->sim_max - S->sc->start) / 3600.0,
                     S->st->requests, S->st->ok, S->st->refused_403, S->st->limited_429);
            double frac = (S->sim_max - S->sc->start) / (S->sc->hours * 3600.0);
            rt_progress_update(&S->prog, (size_t)(fmax(0, fmin(1, frac)) * 1000), extra);
        }
        pthread_cond_broadcast(&S->cv);
        pthread_mutex_unlock(&S->mu);
        free(line);
        free(completion);
        free(q.body);
        rt_buf_free(&q.prompt);
    }
    client_response_free(&r);
    client_free(h);
    return NULL;
}

static int find_model(sim_t *S) {
    if (S->sc->model[0]) {
        snprintf(S->model, sizeof S->model, "%s", S->sc->model);
        return 0;
    }
    client *h = NULL;
    if (client_new(&h)) return -1;
    client_response r = {{0}, -1};
    char url[1100];
    snprintf(url, sizeof url, "%s/v1/models", S->base);
    client_request rq = {.key = S->a[0].keys[0].key, .connect_timeout_s = 10};
    long status = client_call(h, url, &rq, NULL, &r);
    client_free(h);
    int rc = -1;
    if (status == 0) RT_FAIL("GET %s (is `retort serve --sim-clock` running? --endpoint)", rt_errmsg());
    else if (status != 200) RT_FAIL("GET %s: HTTP %ld (give \"model\" in the scenario)", url, status);
    else {
        json_error_t je;
        json_t *o = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
        json_t *id = json_object_get(json_array_get(json_object_get(o, "data"), 0), "id");
        if (json_is_string(id)) {
            snprintf(S->model, sizeof S->model, "%s", json_string_value(id));
            rc = 0;
        } else {
            RT_FAIL("GET %s: no model in the answer", url);
        }
        json_decref(o);
    }
    client_response_free(&r);
    return rc;
}

/* What one persona's actors did, summed. */
typedef struct {
    size_t actors, keys, req, ok, r403, r429, errors, stopped, harvested;
    double stop_h; /* sum over stopped actors of the hours until they stopped */
} persona_tally;

static persona_tally tally_persona(const sim_t *S, const persona *p) {
    persona_tally t = {0};
    for (size_t i = 0; i < S->n_a; i++) {
        const actor *A = &S->a[i];
        if (A->p != p) continue;
        t.actors++;
        t.keys += A->n_keys;
        t.req += A->sent;
        t.ok += A->ok;
        t.r403 += A->r403;
        t.r429 += A->r429;
        t.errors += A->errors;
        t.harvested += A->harvested;
        if (A->live_keys == 0) {
            t.stopped++;
            t.stop_h += (A->stopped_at - S->sc->start) / 3600.0;
        }
    }
    return t;
}

static void print_personas(const sim_t *S, const guard_sim_stats *st) {
    const guard_scenario *sc = S->sc;
    fprintf(stderr, "%-14s %-9s %6s %8s %8s %6s %6s %6s %9s  %s\n", "persona", "kind", "keys", "requests", "served", "403",
            "429", "errors", "stopped", "harvest");
    for (size_t pi = 0; pi < sc->n_p; pi++) {
        persona_tally t = tally_persona(S, &sc->p[pi]);
        char sb[32];
        if (t.stopped) snprintf(sb, sizeof sb, "%zu@%.1fh", t.stopped, t.stop_h / (double)t.stopped);
        else snprintf(sb, sizeof sb, "0");
        fprintf(stderr, "%-14s %-9s %6zu %8zu %8zu %6zu %6zu %6zu %9s  %zu lines\n", sc->p[pi].name,
                kind_names[sc->p[pi].kind], t.keys, t.req, t.ok, t.r403, t.r429, t.errors, sb, t.harvested);
    }
    fprintf(stderr, "simulated %.1f h in %.1f s real (%zu requests, %zu served)\n", st->sim_seconds / 3600.0,
            st->real_seconds, st->requests, st->ok);
}

/* The JSON summary (--summary): per persona its numbers and harvest files. */
static int write_summary(const sim_t *S, const guard_sim_stats *st, const char *path) {
    const guard_scenario *sc = S->sc;
    json_t *ps = json_array();
    for (size_t pi = 0; pi < sc->n_p; pi++) {
        persona_tally t = tally_persona(S, &sc->p[pi]);
        json_t *files = json_array();
        for (size_t i = 0; i < S->n_a; i++) {
            const actor *A = &S->a[i];
            if (A->p != &sc->p[pi] || !A->harvest_path[0]) continue;
            json_array_append_new(files, json_pack("{s:s, s:I, s:b, s:o}", "path", A->harvest_path, "lines",
                                                   (json_int_t)A->harvested, "stopped", A->live_keys == 0, "stopped_at",
                                                   A->live_keys == 0 ? json_real(A->stopped_at) : json_null()));
        }
        json_array_append_new(ps, json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "name",
                                            sc->p[pi].name, "kind", kind_names[sc->p[pi].kind], "attack",
                                            is_attack(sc->p[pi].kind), "accounts", (json_int_t)t.keys, "requests",
                                            (json_int_t)t.req, "served", (json_int_t)t.ok, "refused_403",
                                            (json_int_t)t.r403, "limited_429", (json_int_t)t.r429, "errors",
                                            (json_int_t)t.errors, "stopped_actors", (json_int_t)t.stopped,
                                            "harvest_lines", (json_int_t)t.harvested, "harvest", files));
    }
    json_t *sum = json_pack("{s:s, s:s, s:f, s:f, s:f, s:I, s:I, s:o}", "scenario", S->o->scenario_path, "name", sc->name,
                            "start", sc->start, "sim_hours", st->sim_seconds / 3600.0, "real_seconds", st->real_seconds,
                            "requests", (json_int_t)st->requests, "served", (json_int_t)st->ok, "personas", ps);
    char *js = sum ? rt_json_reals(json_dumps(sum, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) : NULL;
    json_decref(sum);
    if (!js) return RT_FAIL("out of memory writing %s", path);
    int rc = rt_write_file_atomic(path, js, strlen(js));
    free(js);
    return rc;
}

int sim_summary_harvests(const char *summary, sim_harvest_file **out, size_t *n) {
    *out = NULL, *n = 0;
    json_error_t e;
    json_t *j = json_load_file(summary, 0, &e);
    if (!j) return RT_FAIL("%s:%d: %s", summary, e.line, e.text);
    json_t *ps = json_object_get(j, "personas");
    size_t i, cap = 0;
    json_t *p;
    int rc = 0;
    json_array_foreach(ps, i, p) {
        json_t *files = json_object_get(p, "harvest");
        const char *kind = json_string_value(json_object_get(p, "kind"));
        size_t k;
        json_t *f;
        json_array_foreach(files, k, f) {
            const char *path = json_string_value(json_object_get(f, "path"));
            if (!path || !rt_file_exists(path)) continue;
            if (RT_GROW(*out, cap, *n + 1, "harvest list")) {
                rc = -1;
                goto done;
            }
            (*out)[*n].path = rt_strdup(path);
            (*out)[*n].kind = rt_strdup(kind ? kind : "");
            if (!(*out)[*n].path || !(*out)[*n].kind) {
                free((*out)[*n].path), free((*out)[*n].kind);
                rc = -1;
                goto done;
            }
            (*n)++;
        }
    }
done:
    json_decref(j);
    return rc;
}

void sim_harvest_files_free(sim_harvest_file *h, size_t n) {
    for (size_t i = 0; i < n; i++) free(h[i].path), free(h[i].kind);
    free(h);
}

/* One harvest file per attacking actor: DIR/<scenario>-<actor>.jsonl. */
static int open_harvests(sim_t *S, const char *dir) {
    if (rt_mkdir_p(dir)) return -1;
    for (size_t i = 0; i < S->n_a; i++) {
        actor *A = &S->a[i];
        if (!is_attack(A->p->kind)) continue;
        snprintf(A->harvest_path, sizeof A->harvest_path, "%s/%s-%s.jsonl", dir, S->sc->name, A->label);
        A->harvest = fopen(A->harvest_path, "w");
        if (!A->harvest) return RT_FAIL("%s: cannot write: %s", A->harvest_path, strerror(errno));
    }
    return 0;
}

/* The day itself: concurrency workers until every actor is done (or one failed). */
static int run_workers(sim_t *S, size_t concurrency) {
    pthread_t *th = rt_calloc(concurrency, sizeof *th, "simulator threads");
    if (!th) return -1;
    size_t started = 0;
    for (; started < concurrency; started++)
        if (pthread_create(&th[started], NULL, sim_worker, S) != 0) break;
    for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    if (started == 0) return RT_FAIL("cannot start simulator threads");
    if (S->failed) return RT_FAIL("%s", S->fail_msg);
    return 0;
}

static void free_sources(sim_t *S) {
    for (int k = 0; k < GUARD_SRC_KINDS; k++)
        for (int h = 0; h < 3; h++) guard_texts_free(S->texts[k][h]);
}

static void sim_free(sim_t *S, int *rc) {
    for (size_t i = 0; i < S->n_a; i++) {
        actor *A = &S->a[i];
        if (A->harvest && fclose(A->harvest) != 0 && *rc == 0) *rc = RT_FAIL("%s: %s", A->harvest_path, strerror(errno));
        free(A->keys);
        free(A->sched);
        rt_buf_free(&A->last_q);
        rt_buf_free(&A->last_a);
        rt_buf_free(&A->retry);
    }
    free(S->a);
    free(S->heap);
    guard_corpus_free(S->corpus);
    free_sources(S);
    if (S->dry && fclose(S->dry) != 0 && *rc == 0) *rc = RT_FAIL("%s: %s", S->o->dry_run_path, strerror(errno));
    pthread_mutex_destroy(&S->mu);
    pthread_cond_destroy(&S->cv);
}

int guard_simulate(const guard_sim_options *o, guard_sim_stats *st) {
    memset(st, 0, sizeof *st);
    int dry = o->dry_run_path != NULL;
    if (!o->endpoint && !dry) return RT_FAIL("--endpoint: required (the URL of `retort serve --sim-clock`)");
    if (!o->db_path && !dry) return RT_FAIL("--db: required (the server's gateway database; accounts are created there)");
    if (!o->scenario_path) return RT_FAIL("--scenario: required");
    if (o->concurrency == 0 || o->concurrency > 256) return RT_FAIL("--concurrency: expected 1..256");
    if (!(o->speed >= 0)) return RT_FAIL("--speed: expected >= 0 (0 = as fast as the server answers)");
    if (!dry && !rt_file_exists(o->db_path))
        return RT_FAIL("--db: %s does not exist (start `retort serve --db %s --sim-clock` first)", o->db_path, o->db_path);
    guard_scenario *sc = NULL;
    if (guard_scenario_load(&sc, o->scenario_path)) return -1;
    sim_t S;
    memset(&S, 0, sizeof S);
    S.o = o;
    S.sc = sc;
    S.st = st;
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cv, NULL);
    int rc = -1;
    guard_sim_options oo = *o;
    snprintf(S.base, sizeof S.base, "%s", dry ? "dry-run" : o->endpoint);
    size_t bl = strlen(S.base);
    while (bl && S.base[bl - 1] == '/') S.base[--bl] = '\0';
    if (bl >= 3 && !strcmp(S.base + bl - 3, "/v1")) S.base[bl -= 3] = '\0';
    if (client_global_init()) goto out;
    if (guard_corpus_load(&S.corpus, o->corpus_path)) goto out;
    if (build_actors(&S)) goto out;
    if (dry) { /* no server: every request written to the file, none sent */
        oo.bind_addresses = 0;
        oo.speed = 0;
        oo.harvest_dir = NULL;
        S.o = &oo;
        snprintf(S.model, sizeof S.model, "%s", sc->model[0] ? sc->model : "model");
        S.dry = fopen(o->dry_run_path, "w");
        if (!S.dry) {
            RT_FAIL("--dry-run: cannot write %s: %s", o->dry_run_path, strerror(errno));
            goto out;
        }
        for (size_t i = 0; i < S.n_a; i++) {
            st->accounts += S.a[i].n_keys;
            maybe_push(&S, i);
        }
        S.real0 = rt_now();
        S.sim_max = sc->start;
        if (run_workers(&S, 1)) goto out; /* one worker: the file is in the order requests leave */
        st->sim_seconds = S.sim_max - sc->start;
        st->real_seconds = rt_now() - S.real0;
        if (!o->quiet) print_personas(&S, st);
        rc = 0;
        goto out;
    }
    if (oo.bind_addresses && !can_bind("127.10.0.2")) {
        rt_warn("simulate: cannot bind 127.10.0.2 (not Linux?): every request leaves from the default address");
        oo.bind_addresses = 0;
    }
    S.o = &oo;
    if (create_accounts(&S)) goto out;
    for (size_t i = 0; i < S.n_a; i++) st->accounts += S.a[i].n_keys;
    if (find_model(&S)) goto out;
    if (o->harvest_dir && open_harvests(&S, o->harvest_dir)) goto out;
    for (size_t i = 0; i < S.n_a; i++) maybe_push(&S, i);
    if (!o->quiet) rt_progress_init(&S.prog, "simulate", 1000);
    S.real0 = rt_now();
    S.sim_max = sc->start;
    int run = run_workers(&S, o->concurrency);
    if (!o->quiet) rt_progress_finish(&S.prog, NULL);
    if (run) goto out;
    st->sim_seconds = S.sim_max - sc->start;
    st->real_seconds = rt_now() - S.real0;
    if (!o->quiet) print_personas(&S, st);
    if (o->summary_path && write_summary(&S, st, o->summary_path)) goto out;
    rc = 0;
out:
    sim_free(&S, &rc);
    guard_scenario_free(sc);
    client_global_cleanup();
    return rc;
}

int guard_sim_sample(const guard_sim_options *o, size_t per_persona, FILE *out) {
    guard_scenario *sc = NULL;
    if (guard_scenario_load(&sc, o->scenario_path)) return -1;
    sim_t S;
    memset(&S, 0, sizeof S);
    S.o = o;
    S.sc = sc;
    snprintf(S.model, sizeof S.model, "%s", sc->model[0] ? sc->model : "model");
    int rc = -1;
    if (guard_corpus_load(&S.corpus, o->corpus_path) || build_actors(&S)) goto out;
    for (size_t pi = 0; pi < sc->n_p; pi++) {
        for (size_t i = 0; i < S.n_a; i++) {
            actor *A = &S.a[i];
            if (A->p != &sc->p[pi]) continue;
            for (size_t k = 0; k < per_persona; k++) {
                req_t q;
                if (!isfinite(A->next_t)) A->next_t = A->start;
                if (build_request(&S, i, &q)) goto out;
                fprintf(out, "%-10s %-8s %s\n", sc->p[pi].name, kind_names[sc->p[pi].kind], q.body);
                free(q.body);
                rt_buf_free(&q.prompt);
                A->next_t += next_gap(A);
            }
            break;
        }
    }
    rc = 0;
out:
    for (size_t i = 0; i < S.n_a; i++) {
        free(S.a[i].keys);
        free(S.a[i].sched);
        rt_buf_free(&S.a[i].last_q);
        rt_buf_free(&S.a[i].last_a);
        rt_buf_free(&S.a[i].retry);
    }
    free(S.a);
    free(S.heap);
    guard_corpus_free(S.corpus);
    free_sources(&S);
    guard_scenario_free(sc);
    return rc;
}
