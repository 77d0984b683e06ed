/*
 * cmd_simulate.c — `retort simulate`: drive a running `retort serve --sim-clock` with a
 * scenario of labelled benign and attacking accounts on an accelerated clock, and write each
 * attacker's harvest. Everything else lives in src/sim/sim.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/sim.h"
#include "cli.h"

int cmd_simulate(int argc, char **argv) {
    guard_sim_options o;
    guard_sim_options_defaults(&o);
    int quiet = 0, no_bind = 0, check = 0;
    size_t sample = 0;
    cli_opt opts[] = {
        {"--endpoint", CLI_STR, &o.endpoint, "URL: the server, e.g. http://127.0.0.1:8080 (run with --sim-clock)", 0, 0},
        {"--db", CLI_STR, &o.db_path, "FILE: the server's gateway database (accounts and labels are created there) (or a postgres:// URL)", 0, 0},
        {"--scenario", CLI_STR, &o.scenario_path, "FILE.json: personas, counts, rates (see docs/guard.md)", 1, 0},
        {"--corpus", CLI_STR, &o.corpus_path, "FILE: text prompts are drawn from (default build/data/kjv.txt)", 0, 0},
        {"--harvest-dir", CLI_STR, &o.harvest_dir, "DIR: write each attacker's harvest JSONL here", 0, 0},
        {"--summary", CLI_STR, &o.summary_path, "FILE.json: per-persona counts and harvest files", 0, 0},
        {"--speed", CLI_DOUBLE, &o.speed, "X: simulated seconds per real second, 0 = as fast as answered (default 300)", 0, 0},
        {"--concurrency", CLI_SIZE, &o.concurrency, "N: HTTP workers (default 16)", 0, 0},
        {"--scale", CLI_DOUBLE, &o.scale, "X: multiply the benign account counts (default 1)", 0, 0},
        {"--no-bind", CLI_FLAG, &no_bind, "send every request from the default address", 0, 0},
        {"--check", CLI_FLAG, &check, "only validate the scenario and print its account count", 0, 0},
        {"--sample", CLI_SIZE, &sample, "N: print N sample request bodies per persona (no server) and exit", 0, 0},
        {"--dry-run", CLI_STR, &o.dry_run_path,
         "FILE.jsonl: no server; run the whole day, every request answered 200, and write each one (time, account, "
         "sign-up, addresses, User-Agent, header order, body) here",
         0, 0},
        {"--quiet", CLI_FLAG, &quiet, "no progress or summary", 0, 0},
    };
    cli_cmd_info info = {
        "simulate", "retort simulate --endpoint URL --db gateway.db --scenario day.json [--harvest-dir DIR --speed 300]",
        "Creates the scenario's accounts in the gateway database (labelled benign or attacker, with\n"
        "their strategy) and drives them against the server on an accelerated clock: benign chat users,\n"
        "power users, apps and nightly evaluation jobs, and harvesters (bulk, log-prob, slow-and-low,\n"
        "template, mimicry, sybil, corpus walk, log-prob prober, careful sybil swarm, warm-up mimic,\n"
        "careful and paraphrasing bulk). Prompts come from the corpus, Debian's fortunes, the man pages\n"
        "or generated everyday requests (\"source\", each splittable in halves). Each attacker's answers\n"
        "are written to DIR/<scenario>-<persona>-<i>.jsonl in `retort harvest` format. Then: retort guard eval."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    o.quiet = quiet;
    o.bind_addresses = !no_bind;
    if (check) {
        guard_scenario *sc = NULL;
        if (guard_scenario_load(&sc, o.scenario_path)) return cli_fail("simulate");
        printf("%s: valid, %zu accounts\n", o.scenario_path, guard_scenario_accounts(sc));
        guard_scenario_free(sc);
        return 0;
    }
    if (sample) return guard_sim_sample(&o, sample, stdout) ? cli_fail("simulate") : 0;
    if (!o.dry_run_path && (!o.endpoint || !o.db_path)) {
        fprintf(stderr, "retort simulate: error: --endpoint and --db are required (unless --check, --sample or --dry-run)\n");
        return 2;
    }
    guard_sim_stats st;
    if (guard_simulate(&o, &st)) return cli_fail("simulate");
    return 0;
}
