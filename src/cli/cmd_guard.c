/*
 * cmd_guard.c — `retort guard status | explain | release | tier | calibrate | eval | plot | policy |
 * worker`:
 * the operator's side of the extraction guard, all from the gateway database (no running
 * server needed). Everything else lives in src/defend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../defend/defend.h"
#include "cli.h"

static int open_db(const char *cmd, const char *path, gw_db **db) {
    if (!gw_db_is_url(path) && !rt_file_exists(path)) {
        fprintf(stderr, "retort %s: error: %s does not exist\n", cmd, path);
        return 1;
    }
    if (gw_db_open(db, path)) return cli_fail(cmd);
    return 0;
}

/* The arguments of the commands on one account (explain, release, tier): parse the flags and
 * want exactly n_pos positionals (ACCOUNT first; `what` says what to give when they are
 * missing). 1 to go on; 0 to return *rc (0 after --help, 2 for a usage error). */
static int account_args(int argc, char **argv, cli_opt *opts, size_t n_opts, const cli_cmd_info *info,
                        const char **pos, size_t n_pos, const char *what, int *rc) {
    size_t got = 0;
    int prc = cli_parse(argc, argv, opts, n_opts, info, pos, n_pos, &got);
    *rc = prc == 1 ? 0 : 2;
    if (prc) return 0;
    if (got == n_pos) return 1;
    fprintf(stderr, "retort %s: error: give %s\n", info->name, what);
    return 0;
}

static int guard_status(int argc, char **argv) {
    const char *db_path = NULL;
    int as_json = 0;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL)", 1, 0},
        {"--json", CLI_FLAG, &as_json, "one JSON object per account", 0, 0},
    };
    cli_cmd_info info = {"guard status", "retort guard status --db gateway.db [--json]",
                         "Accounts the guard has acted on: their latest action (flag, throttle, suspend, release),\n"
                         "reason code, risk then and now, and the group they were linked into."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    gw_db *db = NULL;
    int rc = open_db("guard status", db_path, &db);
    if (rc) return rc;
    rc = guard_status_print(db, stdout, as_json) ? cli_fail("guard status") : 0;
    gw_db_close(db);
    return rc;
}

static int guard_explain(int argc, char **argv) {
    const char *db_path = NULL;
    int as_json = 0;
    const char *pos[1];
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL)", 1, 0},
        {"--json", CLI_FLAG, &as_json, "the stored evidence as JSON", 0, 0},
    };
    cli_cmd_info info = {"guard explain", "retort guard explain --db gateway.db ACCOUNT [--json]",
                         "Why the guard acted on an account, from stored evidence: every action with its signals\n"
                         "(value, benign and attack levels, score, contribution), the windows they were measured\n"
                         "over, the linked group and the pair evidence with each linked account, then the latest\n"
                         "risk. ACCOUNT is a name or an id (#12)."};
    int rc;
    if (!account_args(argc, argv, opts, RT_ARRAY_LEN(opts), &info, pos, 1, "the account (name or #id)", &rc)) return rc;
    gw_db *db = NULL;
    if ((rc = open_db(info.name, db_path, &db))) return rc;
    rc = guard_explain_print(db, pos[0], stdout, as_json) ? cli_fail("guard explain") : 0;
    gw_db_close(db);
    return rc;
}

static int guard_release_cmd(int argc, char **argv) {
    const char *db_path = NULL, *note = NULL;
    int group = 0;
    const char *pos[1];
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL)", 1, 0},
        {"--group", CLI_FLAG, &group, "release every account of its linked group", 0, 0},
        {"--note", CLI_STR, &note, "TEXT: why (stored with the release)", 0, 0},
    };
    cli_cmd_info info = {"guard release", "retort guard release --db gateway.db ACCOUNT [--group] [--note TEXT]",
                         "Reactivates an account the guard suspended (and restores the rate limit a throttle\n"
                         "lowered), records the release, and tells a running guard to start the account afresh and\n"
                         "never to link it again with the accounts it was linked to."};
    int rc;
    if (!account_args(argc, argv, opts, RT_ARRAY_LEN(opts), &info, pos, 1, "the account (name or #id)", &rc)) return rc;
    gw_db *db = NULL;
    if ((rc = open_db(info.name, db_path, &db))) return rc;
    rc = guard_release(db, pos[0], group, note, rt_wall_time(), stdout) ? cli_fail("guard release") : 0;
    gw_db_close(db);
    return rc;
}

static int guard_tier_cmd(int argc, char **argv) {
    const char *db_path = NULL, *note = NULL, *policy_path = NULL;
    const char *pos[2];
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL)", 1, 0},
        {"--note", CLI_STR, &note, "TEXT: why the account is trusted (shown in the dashboard and evidence)", 0, 0},
        {"--policy", CLI_STR, &policy_path, "FILE: the server's guard policy (its tiers; default: the built-in ones)", 0, 0},
    };
    cli_cmd_info info = {"guard tier", "retort guard tier --db gateway.db ACCOUNT TIER [--note TEXT] [--policy FILE]",
                         "Puts an account in a tier of the guard policy: standard (x1), trusted (risk thresholds\n"
                         "x1.5, harvest budgets x4), eval (x2, x8: benchmark and evaluation jobs), allow (exempt:\n"
                         "never throttled or suspended by the guard, flagged at most), or one a policy file defines.\n"
                         "Recorded with the note (who trusted it and why stays on record); a running guard applies it\n"
                         "within a second. 'standard' puts the account back. An account the guard asked to verify\n"
                         "is released too: putting it in a tier confirms the verification (done out of band)."};
    int rc;
    if (!account_args(argc, argv, opts, RT_ARRAY_LEN(opts), &info, pos, 2, "the account (name or #id) and the tier",
                      &rc))
        return rc;
    guard_policy p;
    guard_policy_defaults(&p);
    if (policy_path && guard_policy_load(&p, policy_path)) return cli_fail("guard tier");
    gw_db *db = NULL;
    if ((rc = open_db(info.name, db_path, &db))) return rc;
    rc = guard_tier_set(db, &p, pos[0], pos[1], note, "cli", rt_wall_time(), stdout) ? cli_fail("guard tier") : 0;
    gw_db_close(db);
    return rc;
}

static int guard_calibrate_cmd(int argc, char **argv) {
    guard_calib_options o = {0};
    const char *out = NULL;
    o.quantile = 0.99;
    o.seed = 1;
    o.only_labelled_benign = 1;
    int all = 0;
    cli_opt opts[] = {
        {"--db", CLI_STR, &o.db_path, "FILE: gateway database of a run on benign traffic (guard in shadow mode) (or a postgres:// URL)", 1, 0},
        {"--out", CLI_STR, &out, "FILE: the reference to write (JSON), for serve --guard-reference", 1, 0},
        {"--policy", CLI_STR, &o.policy_path, "FILE: policy whose windows and min_n apply (default: built-in)", 0, 0},
        {"--quantile", CLI_DOUBLE, &o.quantile, "Q: benign level = this quantile of per-account maxima (default 0.99)", 0, 0},
        {"--seed", CLI_U64, &o.seed, "N: split and random features (default 1)", 0, 0},
        {"--all-accounts", CLI_FLAG, &all, "take every account as benign even when simulator labels exist", 0, 0},
    };
    cli_cmd_info info = {"guard calibrate", "retort guard calibrate --db benign.db --out reference.json",
                         "Learns the guard's benign reference from stored traffic of BENIGN accounts only (those the\n"
                         "simulator labelled benign, or every account): the embedding mean and kernel bandwidth for\n"
                         "the MMD shift signal, each signal's benign level (a quantile of per-account maxima over a\n"
                         "held-out half of the accounts), PRADA's threshold, and the common-phrasing stoplist."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!(o.quantile > 0 && o.quantile < 1)) {
        fprintf(stderr, "retort guard calibrate: error: --quantile: expected a number in (0, 1)\n");
        return 2;
    }
    o.only_labelled_benign = !all;
    guard_reference ref;
    if (guard_calibrate(&o, &ref, stderr)) return cli_fail("guard calibrate");
    int rc = guard_reference_save(&ref, out) ? cli_fail("guard calibrate") : 0;
    if (!rc) fprintf(stderr, "wrote %s\n", out);
    guard_reference_free(&ref);
    return rc;
}

static int guard_eval_cmd(int argc, char **argv) {
    guard_eval_options o = {0};
    cli_opt opts[] = {
        {"--db", CLI_STR, &o.db_path, "FILE: gateway database of a simulated run (or a postgres:// URL)", 1, 0},
        {"--reference", CLI_STR, &o.reference_path, "FILE: the benign reference (for the MMD-window baseline, PRADA's delta)", 0, 0},
        {"--json", CLI_FLAG, &o.as_json, "print JSON", 0, 0},
        {"--prada-delta", CLI_DOUBLE, &o.prada_delta, "X: PRADA's threshold on W (default: the reference's, else 0.95)", 0, 0},
        {"--mmd-window", CLI_SIZE, &o.mmd_window, "N: queries per window of the MMD baseline (default 1500)", 0, 0},
        {"--calibration-db", CLI_STR, &o.calib_db_path,
         "FILE: the calibration run's database: report which seeds, prompt sources, strategies and accounts of the "
         "evaluation it never saw",
         0, 0},
    };
    cli_cmd_info info = {"guard eval",
                         "retort guard eval --db gateway.db [--reference ref.json] [--calibration-db calib.db] [--json]",
                         "Per strategy of the simulated traffic: account-level TPR (attackers; a sybil group or swarm\n"
                         "is one attacker) and FPR (benign accounts) with Wilson 95% intervals, queries and tokens\n"
                         "served before suspension (medians with order-statistic intervals), each operation's outcome\n"
                         "(suspended, held by a throttle or other enforcing action, flagged, none) with what it was\n"
                         "served before the first enforcing action, and the same for baselines replayed on the same\n"
                         "stored traffic: PRADA, a 1,500-query-window MMD detector, and rate limiting alone."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    return guard_eval(&o, stdout) ? cli_fail("guard eval") : 0;
}

static int guard_plot_cmd(int argc, char **argv) {
    const char *db_path = NULL, *out = NULL, *title = NULL;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL)", 1, 0},
        {"--out", CLI_STR, &out, "FILE.svg: the timeline to write", 1, 0},
        {"--title", CLI_STR, &title, "TEXT: plot title", 0, 0},
    };
    cli_cmd_info info = {"guard plot", "retort guard plot --db gateway.db --out timeline.svg",
                         "Risk per account over time with the moment of each suspension (SVG)."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    gw_db *db = NULL;
    int rc = open_db("guard plot", db_path, &db);
    if (rc) return rc;
    rc = guard_plot_timeline(db, out, title) ? cli_fail("guard plot") : 0;
    gw_db_close(db);
    if (!rc) fprintf(stderr, "wrote %s\n", out);
    return rc;
}

static int guard_worker_cmd(int argc, char **argv) {
    guard_options go;
    guard_options_defaults(&go);
    guard_worker_options w = {.after_id = -1};
    size_t poll_ms = 50;
    cli_opt opts[] = {
        {"--db", CLI_STR, &go.db_path, "FILE: the database the replicas share (or a postgres:// URL)", 1, 0},
        {"--policy", CLI_STR, &go.policy_path, "FILE: guard policy JSON (default: built-in)", 0, 0},
        {"--reference", CLI_STR, &go.reference_path, "FILE: benign reference from retort guard calibrate", 0, 0},
        {"--shadow", CLI_FLAG, &go.shadow, "only record what the guard would do", 0, 0},
        {"--poll-ms", CLI_SIZE, &poll_ms, "N: look for new events at least this often (default 50)", 0, 0},
        {"--once", CLI_FLAG, &w.once, "judge the events stored so far, then exit", 0, 0},
    };
    cli_cmd_info info = {"guard worker",
                         "retort guard worker --db postgres://... [--policy FILE --reference ref.json --shadow]",
                         "The one detector for N replicas: `retort serve --guard-events-only` replicas store each\n"
                         "request's guard event in the shared database; the worker judges them in order (woken by\n"
                         "LISTEN/NOTIFY on PostgreSQL, polling on SQLite), writes actions and suspends or throttles\n"
                         "accounts there, and every replica refuses a suspended account on its next request."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!gw_db_is_url(go.db_path) && !rt_file_exists(go.db_path)) {
        fprintf(stderr, "retort guard worker: error: %s does not exist\n", go.db_path);
        return 1;
    }
    w.poll_s = (double)poll_ms / 1e3;
    _Static_assert(sizeof(sig_atomic_t) == sizeof(int), "sig_atomic_t is int");
    w.stop = (const volatile int *)cli_catch_interrupt();
    w.log = stderr;
    return guard_worker_run(&go, &w) ? cli_fail("guard worker") : 0;
}

static int guard_policy_cmd(int argc, char **argv) {
    const char *path = NULL, *ref_path = NULL;
    cli_opt opts[] = {
        {"--policy", CLI_STR, &path, "FILE: check this policy file and print it with the defaults filled in", 0, 0},
        {"--reference", CLI_STR, &ref_path, "FILE: apply a reference's benign levels too", 0, 0},
    };
    cli_cmd_info info = {"guard policy", "retort guard policy [--policy FILE] [--reference ref.json]",
                         "Prints the policy the guard would use (the built-in defaults, a file over them, and the\n"
                         "benign levels of a reference) as JSON: a starting point for your own policy file."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    guard_policy p;
    guard_policy_defaults(&p);
    if (path && guard_policy_load(&p, path)) return cli_fail("guard policy");
    if (ref_path) {
        guard_reference r;
        if (guard_reference_load(&r, ref_path)) return cli_fail("guard policy");
        guard_policy_apply_reference(&p, &r);
        guard_reference_free(&r);
    }
    char *s = guard_policy_to_json(&p);
    if (!s) return cli_fail("guard policy");
    printf("%s\n", s);
    free(s);
    return 0;
}

int cmd_guard(int argc, char **argv) {
    static const char *usage =
        "usage: retort guard <action> --db gateway.db ...\n\n"
        "actions:\n"
        "  status     [--json]                         accounts the guard acted on\n"
        "  explain    ACCOUNT [--json]                 signals, scores, windows, linked accounts\n"
        "  release    ACCOUNT [--group] [--note TEXT]  reactivate (and restore limits)\n"
        "  tier       ACCOUNT TIER [--note TEXT]       trust an account: its tier's thresholds and budgets\n"
        "  calibrate  --out reference.json             learn the benign reference from a benign run\n"
        "  eval       [--reference FILE] [--calibration-db FILE] [--json]  TPR/FPR per strategy, with baselines\n"
        "  plot       --out timeline.svg               risk per account over time\n"
        "  policy     [--policy FILE]                  print the effective policy as JSON\n"
        "  worker     [--policy FILE --reference F]    the one detector for serve replicas\n"
        "                                              run with --guard-events-only (docs/deploy.md)\n\n"
        "The guard itself runs inside `retort serve --guard` (see docs/guard.md).\n";
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *a = argv[1];
    if (!strcmp(a, "status")) return guard_status(argc - 1, argv + 1);
    if (!strcmp(a, "explain")) return guard_explain(argc - 1, argv + 1);
    if (!strcmp(a, "release")) return guard_release_cmd(argc - 1, argv + 1);
    if (!strcmp(a, "tier")) return guard_tier_cmd(argc - 1, argv + 1);
    if (!strcmp(a, "calibrate")) return guard_calibrate_cmd(argc - 1, argv + 1);
    if (!strcmp(a, "eval")) return guard_eval_cmd(argc - 1, argv + 1);
    if (!strcmp(a, "plot")) return guard_plot_cmd(argc - 1, argv + 1);
    if (!strcmp(a, "policy")) return guard_policy_cmd(argc - 1, argv + 1);
    if (!strcmp(a, "worker")) return guard_worker_cmd(argc - 1, argv + 1);
    fprintf(stderr, "retort guard: unknown action '%s'\n\n%s", a, usage);
    return 2;
}
