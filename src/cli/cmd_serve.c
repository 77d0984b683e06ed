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
 * The admin dashboard (GET /admin) and the guard's admin API routes (guard_admin_routes) are
 * always on: they read the guard tables, which exist once a guard has run on this database.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../defend/defend.h"
#include "../mark/mark.h"
#include "../serve/serve.h"
#include "cli.h"

int cmd_serve(int argc, char **argv) {
    serve_options o;
    serve_options_defaults(&o);
    const char *port_file = NULL;
    size_t port = 8080;
    int verbose = 0;
    size_t keyless_rpm = 60, conn_timeout = 20;
    guard_options go;
    guard_options_defaults(&go);
    int guard_on = 0;
    mark_options mo;
    mark_options_init(&mo);
    cli_opt opts[40] = {
        {"--model", CLI_STR, &o.model_path, "M.gguf: the model to serve", 1, 0},
        {"--model-name", CLI_STR, &o.model_name, "NAME: the model id clients send (default: file name without .gguf)", 0, 0},
        {"--db", CLI_STR, &o.db_path, "FILE: gateway database (accounts, keys, ledger); created if absent", 1, 0},
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
        {"--sim-clock", CLI_FLAG, &o.sim_clock,
         "testing aid: take limits/ledger time from the X-Retort-Sim-Time header (loopback --host only)", 0, 0},
        {"--unsafe-sim-clock-on-public-interface", CLI_FLAG, &o.sim_clock_public,
         "allow --sim-clock on a non-loopback --host: every client can then set its own clock and pass the limits",
         0, 0},
        {"--trusted-proxy", CLI_STR, &o.trusted_proxy,
         "CIDR[,CIDR..]: proxies whose X-Forwarded-For names the client (default: none)", 0, 0},
        {"--keyless-rpm", CLI_SIZE, &keyless_rpm,
         "N: requests without a valid key per minute per address before 429 (default 60, 0 = no limit)", 0, 0},
        {"--max-conn-per-ip", CLI_SIZE, &o.max_conn_per_ip, "N: open connections per client address (default 32)", 0, 0},
        {"--conn-timeout", CLI_SIZE, &conn_timeout, "S: close connections idle this long (default 20)", 0, 0},
        {"--verbose", CLI_FLAG, &verbose, "log every admin action and microhttpd message", 0, 0},
        {"--guard", CLI_FLAG, &guard_on, "run the extraction guard: detect, link, throttle and suspend (docs/guard.md)", 0, 0},
        {"--guard-shadow", CLI_FLAG, &go.shadow, "run the guard but only record what it would do", 0, 0},
        {"--guard-policy", CLI_STR, &go.policy_path, "FILE: guard policy JSON (default: built-in; retort guard policy)", 0, 0},
        {"--guard-reference", CLI_STR, &go.reference_path, "FILE: benign reference from retort guard calibrate", 0, 0},
    };
    size_t n_opts = 0; /* the listed options (the rest of the array is zero), then the watermark's */
    while (n_opts < RT_ARRAY_LEN(opts) && opts[n_opts].name) n_opts++;
    if (n_opts + 8 > RT_ARRAY_LEN(opts)) {
        fprintf(stderr, "retort serve: internal error: no room for the watermark options\n");
        return 1;
    }
    n_opts += cli_mark_opts(opts + n_opts, &mo, 1);
    cli_cmd_info info = {
        "serve",
        "retort serve --model M.gguf --db gateway.db [--model-name NAME --host 127.0.0.1 --port 8080 "
        "--threads N --max-batch N --max-queue N] [--watermark-key-file K --watermark-scheme S ...]",
        "Serves the model over an OpenAI-compatible HTTP API: GET /v1/models, POST /v1/completions,\n"
        "POST /v1/chat/completions (SSE streaming, logprobs), GET /health, GET /metrics, the admin\n"
        "API under /admin/api/ and the admin dashboard at /admin (it asks for a key from\n"
        "`retort keys create --admin`). Every request needs a key from `retort keys create`; each account's\n"
        "limits are enforced and every request is written to the usage ledger in the --db database.\n"
        "Concurrent requests share decode steps (continuous batching). With --watermark-key-file every\n"
        "generated token carries the watermark; its parameters and key id (not the key) are recorded\n"
        "in the database for `retort watermark detect --server-db` (docs/watermark.md). Stop with Ctrl-C."};
    int prc = cli_parse(argc, argv, opts, n_opts, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (port > 65535) {
        fprintf(stderr, "retort serve: error: --port: %zu is not a TCP port (0..65535)\n", port);
        return 2;
    }
    o.port = (int)port;
    o.keyless_rpm = keyless_rpm == 0 ? -1 : (double)keyless_rpm;
    if (conn_timeout == 0 || conn_timeout > 3600) {
        fprintf(stderr, "retort serve: error: --conn-timeout: expected 1..3600 seconds, got %zu\n", conn_timeout);
        return 2;
    }
    o.conn_timeout = (unsigned)conn_timeout;
    if (verbose) rt_log_set_level(RT_LOG_DEBUG);
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
    const char *config_rows[] = {"watermark", wm_on ? wm_json.data : "none", NULL};
    o.config = config_rows;
    /* block the stop signals in every thread; this one waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    guard *g = NULL;
    serve_hooks hooks;
    if (guard_on || go.shadow || go.policy_path || go.reference_path) {
        go.db_path = o.db_path;
        if (guard_open(&g, &go)) {
            rt_buf_free(&wm_json);
            return cli_fail("serve");
        }
        guard_serve_hooks(g, &hooks);
        o.hooks = &hooks;
    }
    serve_admin_routes admin_routes;
    guard_admin_routes(&admin_routes);
    o.admin_routes = &admin_routes;
    serve_server *s = NULL;
    if (serve_start(&s, &o)) {
        int rc = cli_fail("serve");
        guard_close(g);
        rt_buf_free(&wm_json);
        return rc;
    }
    char shown[200];
    fprintf(stderr, "retort serve: model '%s' on http://%s:%d (max batch %zu, queue %zu, db %s); dashboard /admin\n",
            rt_utf8_printable(shown, sizeof shown, serve_model_name(s)), o.host, serve_port(s), o.max_batch,
            o.max_queue, o.db_path);
    if (o.sim_clock)
        fprintf(stderr, "retort serve: %s--sim-clock: clients set the clock with X-Retort-Sim-Time (testing only)\n",
                o.sim_clock_public ? "WARNING: " : "");
    if (wm_on) fprintf(stderr, "retort serve: watermark %s\n", wm_json.data);
    if (port_file) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", serve_port(s));
        if (rt_write_file_atomic(port_file, buf, (size_t)n)) {
            cli_fail("serve");
            serve_stop(s);
            guard_close(g);
            rt_buf_free(&wm_json);
            return 1;
        }
    }
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "retort serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    serve_stop(s);
    guard_close(g);
    rt_buf_free(&wm_json);
    return 0;
}
