/*
 * cmd_serve.c — `retort serve`: load a model, open the gateway database and serve the
 * OpenAI-compatible API until SIGINT/SIGTERM. Everything else lives in src/serve.
 *
 * Watermark: with `--watermark-key-file K` (and the scheme flags generate has) one read-only
 * mark_ctx serves every request: the engine calls serve_options.sampler_attach (mark_attach_cb)
 * for every sequence's sampler, so each generated token of every request passes through the
 * watermark. The parameters and the key's fingerprint (key_id, never the key) go into the
 * server_config table as {"watermark": <mark config JSON>} before the server listens (admins
 * read it at GET /admin/api/config; `retort watermark detect --server-db gateway.db` uses it).
 * Without a key the row says "none", so a stale row from an earlier watermarked run of the
 * same database never misleads detection.
 *
 * Antidistillation: with `--antidistill-proxy` one mark_adist holds the proxy's caches for every
 * engine slot; serve_options.seq_attach shifts the logits of every request except those of the
 * accounts named by --antidistill-trusted or in a tier named by --antidistill-trusted-tiers
 * (plain sampling for them; the tier is read from guard_tiers at each request). The settings go into
 * server_config as {"antidistill": {...}} ("none" without a proxy).
 *
 * The admin dashboard (GET /admin) and the guard's admin API routes (guard_admin_routes) are
 * always on: they read the guard tables, which exist once a guard has run on this database.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "../defend/defend.h"
#include "../mark/mark.h"
#include "../serve/serve.h"
#include "cli.h"

/* The gateway's upstream key file, watched for rotation (cli_gateway_run). */
typedef struct {
    const char *path;
    char *key;               /* what the gateway presents now */
    struct stat seen, last;  /* the file when key was read; at the last look */
    int have_seen, have_last;
} key_watch;

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Reread the key and hand it to the server if it changed. why: "SIGHUP" or "the file changed". */
static void key_reload(serve_server *s, key_watch *w, const char *why) {
    struct stat st;
    int have = stat(w->path, &st) == 0;
    char *k = cli_read_upstream_key(w->path);
    if (!k) {
        rt_warn("gateway: %s: rereading the upstream key: %s; the current key stays", why, rt_errmsg());
        rt_err_clear();
        if (have) w->seen = st, w->have_seen = 1; /* not again until it changes */
        return;
    }
    if (have) w->seen = st, w->have_seen = 1;
    if (w->key && !strcmp(k, w->key)) {
        rt_info("gateway: %s: --upstream-key-file %s holds the key in use; nothing to change", why, w->path);
        sodium_memzero(k, strlen(k));
        free(k);
        return;
    }
    if (serve_set_upstream_key(s, k)) {
        rt_warn("gateway: %s: the new upstream key was not taken (%s); the current key stays", why, rt_errmsg());
        sodium_memzero(k, strlen(k));
        free(k);
        return;
    }
    if (w->key) {
        sodium_memzero(w->key, strlen(w->key));
        free(w->key);
    }
    w->key = k;
    rt_info("gateway: %s: the upstream key from %s is presented from the next request on", why, w->path);
}

/* Every second: a key file that changed and then held still for one look is reread. */
static void key_poll(serve_server *s, key_watch *w) {
    struct stat st;
    if (stat(w->path, &st) != 0) {
        w->have_last = 0; /* gone for now (a rename in progress): keep the key */
        return;
    }
    int changed = !w->have_seen || !same_file(&st, &w->seen);
    int still = w->have_last && same_file(&st, &w->last);
    w->last = st;
    w->have_last = 1;
    if (changed && still) key_reload(s, w, "the file changed");
}

/* What serve and gateway share once their options are set: the guard's hooks (go != NULL,
 * or any guard flag given), the guard's admin routes, start, the banner, --port-file, and
 * the wait for SIGINT/SIGTERM, and SIGHUP: the key file reread where there is one to watch, else only
 * logged (the default action would end the server without stopping it). Returns the exit status. */
static int serve_run(const char *cmd, serve_options *o, guard_options *go, const char *port_file, const char *watermark,
                     key_watch *kw) {
    /* block the stop signals in every thread; this one waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP); /* a reload request; without a key file to reread it is only logged */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    guard *g = NULL;
    serve_hooks hooks;
    if (go) {
        go->db_path = o->db_path;
        if (guard_open(&g, go)) return cli_fail(cmd);
        guard_serve_hooks(g, &hooks);
        o->hooks = &hooks;
    }
    serve_admin_routes admin_routes;
    guard_admin_routes(&admin_routes);
    o->admin_routes = &admin_routes;
    serve_server *s = NULL;
    if (serve_start(&s, o)) {
        int rc = cli_fail(cmd);
        guard_close(g);
        return rc;
    }
    char shown[200];
    const char *db_shown = gw_db_is_url(o->db_path) ? "PostgreSQL" : o->db_path; /* a URL may hold a password */
    if (o->n_upstreams)
        fprintf(stderr, "retort gateway: %zu upstream%s on http://%s:%d (db %s%s%s); dashboard /admin\n", o->n_upstreams,
                o->n_upstreams == 1 ? "" : "s", o->host, serve_port(s), db_shown,
                o->model_path ? ", embeddings from " : "", o->model_path ? o->model_path : "");
    else
        fprintf(stderr, "retort serve: model '%s' on http://%s:%d (max batch %zu, queue %zu, db %s); dashboard /admin\n",
                rt_utf8_printable(shown, sizeof shown, serve_model_name(s)), o->host, serve_port(s), o->max_batch,
                o->max_queue, db_shown);
    if (o->sim_clock)
        fprintf(stderr, "retort %s: %s--sim-clock: clients set the clock with X-Retort-Sim-Time (testing only)\n", cmd,
                o->sim_clock_public ? "WARNING: " : "");
    if (watermark) fprintf(stderr, "retort serve: watermark %s\n", watermark);
    if (port_file) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", serve_port(s));
        if (rt_write_file_atomic(port_file, buf, (size_t)n)) {
            cli_fail(cmd);
            serve_stop(s);
            guard_close(g);
            return 1;
        }
    }
    int sig = 0;
    for (;;) {
        if (!kw) {
            sigwait(&set, &sig);
            if (sig != SIGHUP) break;
            fprintf(stderr, "retort %s: SIGHUP: nothing to reload (no --upstream-key-file), still serving\n", cmd);
            continue;
        }
        struct timespec tick = {1, 0};
        sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGHUP) key_reload(s, kw, "SIGHUP");
        else if (sig < 0) key_poll(s, kw);
        else break;
    }
    fprintf(stderr, "retort %s: %s, stopping\n", cmd, sig == SIGINT ? "SIGINT" : "SIGTERM");
    serve_stop(s);
    guard_close(g);
    return 0;
}

int cli_serve_run(const char *cmd, serve_options *o, guard_options *go, const char *port_file, const char *watermark) {
    return serve_run(cmd, o, go, port_file, watermark, NULL);
}

int cli_gateway_run(serve_options *o, guard_options *go, const char *port_file, const char *key_file) {
    if (!key_file) return serve_run("gateway", o, go, port_file, NULL, NULL);
    key_watch w = {.path = key_file};
    if (stat(key_file, &w.seen) == 0) w.have_seen = 1; /* the file o->upstream_key was read from */
    if (o->upstream_key && !(w.key = rt_strdup(o->upstream_key))) return cli_fail("gateway");
    int rc = serve_run("gateway", o, go, port_file, NULL, &w);
    if (w.key) {
        sodium_memzero(w.key, strlen(w.key));
        free(w.key);
    }
    return rc;
}

typedef struct {
    mark_adist *a;
    const char *trusted;       /* comma-separated account names, or NULL */
    const char *trusted_tiers; /* comma-separated guard tiers, or NULL */
    const char *db_path;       /* where the tiers are read (guard_tiers) */
    gw_conn *tiers_db;         /* the engine thread's own connection, opened at first use */
    int tiers_table;           /* guard_tiers has been seen in it */
    int tiers_warned;
} serve_adist;

static int is_trusted(const char *list, const char *account) {
    size_t n = strlen(account);
    for (const char *p = list; p && *p;) {
        size_t l = strcspn(p, ",");
        if (n && l == n && !memcmp(p, account, n)) return 1;
        p += l + (p[l] == ',');
    }
    return 0;
}

/* Whether the account's tier now (its latest guard_tiers row, as `retort guard tier` and the
 * admin API write it) is one of --antidistill-trusted-tiers. Read at every request on the
 * engine thread's own connection, so a tier change applies to the next request; a database
 * without tiers, or one that cannot be read (warned once), trusts nobody by tier. */
static int tier_trusted(serve_adist *sa, int64_t account_id) {
    if (!sa->trusted_tiers || account_id <= 0) return 0;
    guard_tier_info ti;
    if (!sa->tiers_db && gw_conn_open(&sa->tiers_db, sa->db_path, 0)) {
        sa->tiers_db = NULL;
    } else {
        /* the table, once there, stays: asked for until then, not at every request */
        if (!sa->tiers_table && !(sa->tiers_table = gw_sql_has_table(sa->tiers_db, "guard_tiers")))
            return 0; /* nobody has a tier yet */
        if (guard_tier_get(sa->tiers_db, account_id, &ti) == 0) return is_trusted(sa->trusted_tiers, ti.tier);
    }
    if (!sa->tiers_warned++)
        rt_warn("antidistillation: cannot read account tiers (%s); only --antidistill-trusted accounts get plain "
                "sampling until they can be read", rt_errmsg());
    rt_err_clear();
    return 0;
}

/* The engine's per-sequence hook: the shift for every account that is not trusted, by name or
 * by tier. */
static int serve_adist_attach(void *ud, size_t slot, int64_t account_id, const char *account, sampler *s) {
    serve_adist *sa = ud;
    if (!is_trusted(sa->trusted, account) && !tier_trusted(sa, account_id)) return mark_adist_attach(sa->a, slot, s);
    mark_adist_detach(sa->a, slot); /* plain sampling: the batched step skips this slot */
    return 0;
}

/* 0 when every name in the comma-separated list is a tier of the guard policy the server runs
 * (policy_path, or the built-in one); else -1 naming the first that is not, and the tiers. */
static int check_tiers(const char *list, const char *policy_path) {
    if (!list) return 0;
    guard_policy p;
    guard_policy_defaults(&p);
    if (policy_path && guard_policy_load(&p, policy_path)) return -1;
    for (const char *q = list; *q;) {
        size_t l = strcspn(q, ",");
        char name[GUARD_TIER_NAME_MAX];
        snprintf(name, sizeof name, "%.*s", (int)RT_MIN(l, sizeof name - 1), q);
        if (l == 0 || l >= sizeof name || guard_policy_tier(&p, name) < 0) {
            rt_buf names = {0};
            for (size_t i = 0; i < p.n_tiers; i++) rt_buf_printf(&names, "%s%s", i ? ", " : "", p.tiers[i].name);
            RT_FAIL("--antidistill-trusted-tiers: '%.*s' is not a tier of the guard policy (tiers: %s)", (int)l, q,
                    names.data ? names.data : "");
            rt_buf_free(&names);
            return -1;
        }
        q += l + (q[l] == ',');
    }
    return 0;
}

/* Each engine step: the proxy's rows of every shifted sequence in one batch (a failure
 * leaves those positions to be computed one by one). */
static int serve_adist_step(void *ud, const gen_ready *ready, size_t n) {
    serve_adist *sa = ud;
    if (mark_adist_prepare(sa->a, ready, n))
        rt_warn("antidistillation: a batched proxy step failed (%s); its positions are computed one by one",
                rt_errmsg());
    return 0;
}

/* server_config's "antidistill" row: what an admin (and the report) needs to know. */
static int adist_config_json(const cli_adist_options *o, const serve_adist *sa, rt_buf *out) {
    json_t *j = json_pack("{s:s, s:s, s:f, s:f, s:f, s:s, s:s, s:s}", "proxy", o->proxy, "task", o->task, "lambda",
                          o->lambda, "eps", o->eps, "gate", o->gate, "task_scope", o->task_scope, "trusted",
                          sa->trusted ? sa->trusted : "", "trusted_tiers", sa->trusted_tiers ? sa->trusted_tiers : "");
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) return RT_FAIL("out of memory writing the antidistillation config");
    int rc = rt_buf_append(out, txt, strlen(txt) + 1);
    free(txt);
    return rc;
}

static void serve_adist_free(serve_adist *sa, model *teacher, rt_buf *json) {
    mark_adist_free(sa->a);
    sa->a = NULL;
    gw_conn_close(sa->tiers_db);
    sa->tiers_db = NULL;
    model_free(teacher);
    rt_buf_free(json);
}

void cli_server_flags_defaults(cli_server_flags *f) {
    *f = (cli_server_flags){.keyless_rpm = 60, .conn_timeout = 20};
}

size_t cli_server_opts(cli_opt *dst, serve_options *o, guard_options *go, cli_server_flags *f) {
    const cli_opt src[CLI_SERVER_OPTS] = {
        {"--sim-clock", CLI_FLAG, &o->sim_clock,
         "testing aid: take limits/ledger time from the X-Retort-Sim-Time header (loopback --host only)", 0, 0},
        {"--unsafe-sim-clock-on-public-interface", CLI_FLAG, &o->sim_clock_public,
         "allow --sim-clock on a non-loopback --host: every client can then set its own clock and pass the limits",
         0, 0},
        {"--trusted-proxy", CLI_STR, &o->trusted_proxy,
         "CIDR[,CIDR..]: proxies whose X-Forwarded-For names the client (default: none)", 0, 0},
        {"--keyless-rpm", CLI_SIZE, &f->keyless_rpm,
         "N: requests without a valid key per minute per address before 429 (default 60, 0 = no limit)", 0, 0},
        {"--max-conn-per-ip", CLI_SIZE, &o->max_conn_per_ip, "N: open connections per client address (default 32)", 0,
         0},
        {"--conn-timeout", CLI_SIZE, &f->conn_timeout, "S: close connections idle this long (default 20)", 0, 0},
        {"--verbose", CLI_FLAG, &f->verbose, "log every admin action and microhttpd message", 0, 0},
        {"--guard", CLI_FLAG, &f->guard, "run the extraction guard: detect, link, throttle and suspend (docs/guard.md)",
         0, 0},
        {"--guard-shadow", CLI_FLAG, &go->shadow, "run the guard but only record what it would do", 0, 0},
        {"--guard-events-only", CLI_FLAG, &go->events_only,
         "a replica: store each request's guard event; `retort guard worker` decides (docs/deploy.md)", 0, 0},
        {"--guard-policy", CLI_STR, &go->policy_path, "FILE: guard policy JSON (default: built-in; retort guard policy)",
         0, 0},
        {"--guard-reference", CLI_STR, &go->reference_path, "FILE: benign reference from retort guard calibrate", 0, 0},
    };
    memcpy(dst, src, sizeof src);
    return CLI_SERVER_OPTS;
}

int cli_server_apply(const char *cmd, const cli_server_flags *f, const guard_options *go, serve_options *o,
                     int *guard_on) {
    if (f->conn_timeout == 0 || f->conn_timeout > 3600) {
        fprintf(stderr, "retort %s: error: --conn-timeout: expected 1..3600 seconds, got %zu\n", cmd, f->conn_timeout);
        return 2;
    }
    o->keyless_rpm = f->keyless_rpm == 0 ? -1 : (double)f->keyless_rpm;
    o->conn_timeout = (unsigned)f->conn_timeout;
    if (f->verbose) rt_log_set_level(RT_LOG_DEBUG);
    *guard_on = f->guard || go->shadow || go->events_only || go->policy_path || go->reference_path;
    return 0;
}

int cmd_serve(int argc, char **argv) {
    serve_options o;
    serve_options_defaults(&o);
    const char *port_file = NULL;
    size_t port = 8080;
    cli_server_flags sf;
    cli_server_flags_defaults(&sf);
    guard_options go;
    guard_options_defaults(&go);
    int guard_on = 0;
    mark_options mo;
    mark_options_init(&mo);
    cli_adist_options ado;
    const char *trusted = NULL, *trusted_tiers = NULL;
    cli_opt opts[48] = {
        {"--model", CLI_STR, &o.model_path, "M.gguf: the model to serve", 1, 0},
        {"--model-name", CLI_STR, &o.model_name, "NAME: the model id clients send (default: file name without .gguf)", 0, 0},
        {"--db", CLI_STR, &o.db_path, "FILE: gateway database (accounts, keys, ledger) (or a postgres:// URL); created if absent", 1, 0},
        {"--host", CLI_STR, &o.host, "ADDR: address to listen on (default 127.0.0.1)", 0, 0},
        {"--port", CLI_SIZE, &port, "N: TCP port, 0 = any free port (default 8080)", 0, 0},
        {"--port-file", CLI_STR, &port_file, "FILE: write the port listened on here (with --port 0)", 0, 0},
        {"--threads", CLI_SIZE, &o.threads, "N: kernel threads for the engine (default: all cores)", 0, 0},
        {"--max-batch", CLI_SIZE, &o.max_batch, "N: sequences decoded together (default 16)", 0, 0},
        {"--max-queue", CLI_SIZE, &o.max_queue, "N: requests waiting for a slot before 503 (default 64)", 0, 0},
        {"--max-body", CLI_SIZE, &o.max_body, "BYTES: largest request body before 413 (default 1048576)", 0, 0},
        {"--max-tokens", CLI_SIZE, &o.max_tokens_cap, "N: ceiling (and chat default) of max_tokens (default: context)", 0, 0},
        {"--prefill-chunk", CLI_SIZE, &o.prefill_chunk, "N: prompt tokens per decode step (default 128)", 0, 0},
        {"--ctx", CLI_SIZE, &o.n_ctx,
         "N: context served, tokens per sequence (KV cache per slot); default the model's, at most 4096", 0, 0},
        {"--chat-template", CLI_STR, &o.chat_template,
         "NAME: chat format (retort chatml qwen3 llama3 deepseek-v3 deepseek-r1 llama2 gemma) instead of the one "
         "recognised from the model's template",
         0, 0},
        {"--antidistill-trusted", CLI_STR, &trusted,
         "NAMES: comma-separated accounts that get plain sampling when --antidistill-proxy is on (default: none)", 0, 0},
        {"--antidistill-trusted-tiers", CLI_STR, &trusted_tiers,
         "TIERS: comma-separated guard tiers (retort guard tier) whose accounts get plain sampling too (default: none)",
         0, 0},
    };
    size_t n_opts = 0; /* the listed options (the rest of the array is zero), then the watermark's */
    while (n_opts < RT_ARRAY_LEN(opts) && opts[n_opts].name) n_opts++;
    if (n_opts + CLI_SERVER_OPTS + 8 + CLI_ADIST_OPTS > RT_ARRAY_LEN(opts)) {
        fprintf(stderr, "retort serve: internal error: no room for the watermark options\n");
        return 1;
    }
    n_opts += cli_server_opts(opts + n_opts, &o, &go, &sf);
    n_opts += cli_mark_opts(opts + n_opts, &mo, 1);
    n_opts += cli_adist_opts(opts + n_opts, &ado);
    cli_cmd_info info = {
        "serve",
        "retort serve --model M.gguf --db gateway.db [--model-name NAME --host 127.0.0.1 --port 8080 "
        "--threads N --max-batch N --max-queue N] [--watermark-key-file K --watermark-scheme S ...] "
        "[--antidistill-proxy P.gguf --antidistill-task FILE --antidistill-lambda X --antidistill-trusted A,B]",
        "Serves the model over an OpenAI-compatible HTTP API: GET /v1/models, POST /v1/completions,\n"
        "POST /v1/chat/completions (SSE streaming, logprobs), GET /health, GET /metrics, the admin\n"
        "API under /admin/api/ and the admin dashboard at /admin (it asks for a key from\n"
        "`retort keys create --admin`). Every request needs a key from `retort keys create`; each account's\n"
        "limits are enforced and every request is written to the usage ledger in the --db database.\n"
        "Concurrent requests share decode steps (continuous batching). With --watermark-key-file every\n"
        "generated token carries the watermark; its parameters and key id (not the key) are recorded\n"
        "in the database for `retort watermark detect --server-db` (docs/watermark.md). With\n"
        "--antidistill-proxy every account but the --antidistill-trusted ones gets antidistillation\n"
        "sampling (docs/antidistill.md); its settings go into server_config as \"antidistill\". Stop with Ctrl-C."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (port > 65535) {
        fprintf(stderr, "retort serve: error: --port: %zu is not a TCP port (0..65535)\n", port);
        return 2;
    }
    o.port = (int)port;
    if (cli_server_apply("serve", &sf, &go, &o, &guard_on)) return 2;
    mark_ctx wm;
    mark_key wm_key;
    int wm_on = 0;
    rt_buf wm_json = {0};
    if (cli_mark_setup(opts, n_opts, &mo, 1, &wm, &wm_key, &wm_on)) return cli_fail("serve");
    if (wm_on) {
        int rc = mark_config_to_json(&wm.p, &wm_key, &wm_json);
        sodium_memzero(&wm_key, sizeof wm_key);
        if (rc) return cli_fail("serve");
        o.sampler_attach = mark_attach_cb;
        o.sampler_attach_ud = &wm;
    }
    /* antidistillation: the proxy's state for every engine slot; trusted accounts skip it */
    serve_adist sa = {.trusted = trusted, .trusted_tiers = trusted_tiers, .db_path = o.db_path};
    rt_buf ad_json = {0};
    if ((trusted || trusted_tiers) && !ado.proxy) {
        RT_FAIL("--antidistill-trusted%s names accounts exempt from antidistillation; give --antidistill-proxy too",
                trusted ? "" : "-tiers");
        rt_buf_free(&wm_json);
        return cli_fail("serve");
    }
    if (check_tiers(trusted_tiers, go.policy_path)) {
        rt_buf_free(&wm_json);
        return cli_fail("serve");
    }
    model *teacher = NULL; /* loaded here when the proxy's vocabulary must be checked against it */
    if (ado.proxy && model_load_decode_only(&teacher, o.model_path)) {
        rt_buf_free(&wm_json);
        return cli_fail("serve");
    }
    if (cli_adist_setup(opts, n_opts, &ado, teacher ? teacher->tok : NULL, o.max_batch, 0, &sa.a) ||
        (sa.a && adist_config_json(&ado, &sa, &ad_json))) {
        rt_buf_free(&wm_json);
        mark_adist_free(sa.a);
        model_free(teacher);
        return cli_fail("serve");
    }
    if (teacher) o.model = teacher;
    if (sa.a) {
        o.seq_attach = serve_adist_attach;
        o.seq_step = serve_adist_step;
        o.seq_attach_ud = &sa;
    }
    const char *config_rows[] = {"watermark", wm_on ? wm_json.data : "none", "antidistill",
                                 sa.a ? ad_json.data : "none", NULL};
    o.config = config_rows;
    int rc = cli_serve_run("serve", &o, guard_on ? &go : NULL, port_file, wm_on ? wm_json.data : NULL);
    rt_buf_free(&wm_json);
    cli_adist_report("serve", sa.a, 0); /* what the shift cost over the server's life */
    serve_adist_free(&sa, teacher, &ad_json);
    return rc;
}
