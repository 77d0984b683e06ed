/*
 * cli_adist.c — the antidistillation flags shared by generate, serve and data generate:
 * their table, their checks and the one call that loads the proxy and its task gradient
 * (mark_adist_load). Not the sampler (src/mark/antidistill.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../mark/mark.h"
#include "cli.h"

size_t cli_adist_opts(cli_opt *dst, cli_adist_options *o) {
    mark_adist_params d;
    mark_adist_defaults(&d);
    o->proxy = o->task = NULL;
    o->task_scope = mark_adist_scope_name(d.task_scope);
    o->lambda = NAN;
    o->eps = d.eps;
    o->gate = d.gate;
    o->unbatched = 0;
    cli_opt t[CLI_ADIST_OPTS] = {
        {"--antidistill-proxy", CLI_STR, &o->proxy,
         "P.gguf: antidistillation sampling with this proxy student (same tokenizer as the model)", 0, 0},
        {"--antidistill-task", CLI_STR, &o->task,
         "FILE: the task whose loss the shift raises (JSONL prompt/completion, or text)", 0, 0},
        {"--antidistill-lambda", CLI_DOUBLE, &o->lambda, "X: logits += X * b, b the proxy's directional derivative", 0,
         0},
        {"--antidistill-eps", CLI_DOUBLE, &o->eps, "E: finite-difference step in parameter space (default 0.01)", 0, 0},
        {"--antidistill-gate", CLI_DOUBLE, &o->gate,
         "M: shift only where the model's top-1 logit leads the 2nd by < M (0 = everywhere, default)", 0, 0},
        {"--antidistill-task-scope", CLI_STR, &o->task_scope,
         "all|digits|answer: the task tokens whose loss the shift raises: every completion token (default), "
         "those with a digit, or the final number's",
         0, 0},
        {"--antidistill-unbatched", CLI_FLAG, &o->unbatched,
         "data generate: run the proxy one sequence at a time, not batched per generator step (cost comparisons; generate and serve always do)", 0, 0},
    };
    memcpy(dst, t, sizeof t);
    return CLI_ADIST_OPTS;
}

int cli_adist_setup(const cli_opt *opts, size_t n_opts, const cli_adist_options *o, const tokenizer *teacher_tok,
                    size_t max_seqs, size_t max_ctx, struct mark_adist **out) {
    *out = NULL;
    if (!o->proxy) {
        if (cli_seen(opts, n_opts, "--antidistill-task") || cli_seen(opts, n_opts, "--antidistill-lambda") ||
            cli_seen(opts, n_opts, "--antidistill-eps") || cli_seen(opts, n_opts, "--antidistill-gate") ||
            cli_seen(opts, n_opts, "--antidistill-task-scope") || cli_seen(opts, n_opts, "--antidistill-unbatched"))
            return RT_FAIL("--antidistill-task, --antidistill-lambda, --antidistill-eps, --antidistill-gate, "
                           "--antidistill-task-scope and --antidistill-unbatched need --antidistill-proxy");
        return 0;
    }
    if (!o->task) return RT_FAIL("--antidistill-proxy needs --antidistill-task FILE (the task to protect)");
    if (!cli_seen(opts, n_opts, "--antidistill-lambda"))
        return RT_FAIL("--antidistill-proxy needs --antidistill-lambda X (0 = plain sampling at the same cost)");
    mark_adist_params p;
    mark_adist_defaults(&p);
    p.lambda = o->lambda;
    p.eps = o->eps;
    p.gate = o->gate;
    if (mark_adist_scope_parse(o->task_scope, &p.task_scope))
        return RT_FAIL("--antidistill-task-scope: %s", rt_errmsg());
    p.max_seqs = max_seqs ? max_seqs : 1;
    p.max_ctx = max_ctx;
    return mark_adist_load(out, o->proxy, o->task, teacher_tok, &p); /* errors name the file */
}

void cli_adist_report(const char *cmd, const struct mark_adist *a, double total_seconds) {
    if (!a) return;
    mark_adist_stats st;
    mark_adist_get_stats(a, &st);
    fprintf(stderr,
            "%s: antidistillation: %zu positions shifted (%zu from batched proxy steps, %zu gated off), %.3f ms "
            "each (%.0f%% of %.2f s), %zu proxy tokens decoded twice%s\n",
            cmd, st.positions, st.batched, st.gated, st.positions ? 1e3 * st.seconds / (double)st.positions : 0.0,
            total_seconds > 0 ? 100.0 * st.seconds / total_seconds : 0.0, total_seconds, st.proxy_tokens,
            st.failures ? " (some positions failed: see the warning)" : "");
}
