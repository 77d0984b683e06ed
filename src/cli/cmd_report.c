/*
 * cmd_report.c — `retort report`: write the evidence report (HTML) from a gateway database,
 * print its five-line summary, or record evidence by hand: a harvest file (matched against
 * a ledger), a model (with its training log and eval result), a radioactivity result.
 * `retort demo` records the same evidence through the library.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../report/report.h"
#include "cli.h"

static int report_write_cmd(int argc, char **argv) {
    report_options o;
    report_options_defaults(&o);
    const char *db = NULL, *out = NULL, *title = NULL;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db, "FILE: the gateway database (or a postgres:// URL) (required)", 1, 0},
        {"--out", CLI_STR, &out, "FILE.html: where to write the report (required)", 1, 0},
        {"--title", CLI_STR, &title, "TEXT: the report's title", 0, 0},
        {"--gpu-rate", CLI_DOUBLE, &o.gpu_rate_usd, "USD: dollars per GPU-hour for the cost table (default 2.00)", 0, 0},
        {"--gpu-flops", CLI_DOUBLE, &o.gpu_flops,
         "X: sustained training FLOP/s of one GPU (default 3.3e14, DeepSeek-V3's H800s)", 0, 0},
    };
    cli_cmd_info info = {
        "report", "retort report --db gateway.db --out report.html [--gpu-rate 2 --gpu-flops 3.3e14]",
        "Writes one self-contained HTML file (inline SVG, no network): accounts and suspensions with\n"
        "each harvesting operation's risk over time, tokens harvested with and without the guard, the\n"
        "students built from the harvests and their quality, radioactivity p-values with control keys,\n"
        "the training cost of every model (FLOPs, GPU-hours and dollars at the stated rate), and the\n"
        "evidence chain for each suspended account: ledger rows -> harvested outputs -> suspect model\n"
        "-> p-value. Harvests, models, tests and figures come from `retort demo` or `retort report add-*`.\n"
        "Other forms: retort report summary|add-harvest|add-model|add-test|add-figure (each has --help)."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!(o.gpu_flops > 0) || !(o.gpu_rate_usd >= 0)) {
        fprintf(stderr, "retort report: error: --gpu-flops must be > 0 and --gpu-rate >= 0\n");
        return 2;
    }
    if (!gw_db_is_url(db) && !rt_file_exists(db)) {
        fprintf(stderr, "retort report: error: %s: no such database\n", db);
        return 1;
    }
    o.db_path = db, o.out_path = out, o.title = title;
    if (report_write(&o)) return cli_fail("report");
    printf("%s\n", out);
    return 0;
}

static int open_existing(const char *cmd, const char *db, gw_conn **out) {
    if (!gw_db_is_url(db) && !rt_file_exists(db)) {
        fprintf(stderr, "retort %s: error: %s: no such database\n", cmd, db);
        return 1;
    }
    return report_db_open(out, db) ? cli_fail(cmd) : 0;
}

static int report_summary_cmd(int argc, char **argv) {
    const char *db = NULL;
    cli_opt opts[] = {{"--db", CLI_STR, &db, "FILE: the gateway database (or a postgres:// URL) (required)", 1, 0}};
    cli_cmd_info info = {"report summary", "retort report summary --db gateway.db",
                         "Prints the report's five summary lines."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    gw_conn *c = NULL;
    int rc = open_existing("report summary", db, &c);
    if (rc) return rc;
    char *s = NULL;
    rc = report_summary(c, &s) ? cli_fail("report summary") : 0;
    if (!rc) fputs(s, stdout);
    free(s);
    report_db_close(c);
    return rc;
}

/* A harvest's --guard is on or off; a model's may also be empty or name a variant of the data
 * after a dash ("off-antidistill": the unguarded harvest's prompts served again). */
static int check_guard_word(const char *cmd, const char *g, int model) {
    if (!strcmp(g, "on") || !strcmp(g, "off")) return 0;
    if (model && (!*g || ((!strncmp(g, "on-", 3) && g[3]) || (!strncmp(g, "off-", 4) && g[4])))) return 0;
    fprintf(stderr, "retort %s: error: --guard must be on or off%s, not '%s'\n", cmd,
            model ? " (or on-VARIANT, off-VARIANT)" : "", g);
    return 2;
}

static int report_add_harvest_cmd(int argc, char **argv) {
    report_harvest_spec h = {.guard = "on", .strategy = ""};
    const char *db = NULL;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db, "FILE: the gateway database holding the report (or a postgres:// URL) (required)", 1, 0},
        {"--name", CLI_STR, &h.name, "TEXT: a unique name for this harvest (required)", 1, 0},
        {"--file", CLI_STR, &h.path, "FILE.jsonl: the harvest (retort harvest / simulate output) (required)", 1, 0},
        {"--guard", CLI_STR, &h.guard, "on|off: the server it came from had the guard on or off (default on)", 0, 0},
        {"--strategy", CLI_STR, &h.strategy, "TEXT: how it was harvested (a label)", 0, 0},
        {"--ledger", CLI_STR, &h.ledger_db, "FILE: the ledger to match completions against (default --db)", 0, 0},
    };
    cli_cmd_info info = {"report add-harvest",
                         "retort report add-harvest --db gateway.db --name N --file harvest.jsonl [--guard on|off]",
                         "Records a harvest file: lines, completion tokens, SHA-256, and how many completions\n"
                         "match outputs the server served (by the ledger's output hash), to which accounts."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (check_guard_word("report add-harvest", h.guard, 0)) return 2;
    if (!h.ledger_db) h.ledger_db = db;
    gw_conn *c = NULL;
    int rc = open_existing("report add-harvest", db, &c);
    if (rc) return rc;
    report_harvest_stats st;
    rc = report_harvest_put(c, &h, &st) ? cli_fail("report add-harvest") : 0;
    if (!rc) {
        /* jansson, so that any name comes out as valid JSON */
        json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s}", "name", h.name, "lines", (json_int_t)st.lines,
                              "completion_tokens", (json_int_t)st.completion_tokens, "matched",
                              (json_int_t)st.matched, "sha256", st.sha256, "accounts", st.accounts ? st.accounts : "");
        char *js = j ? rt_json_reals(json_dumps(j, JSON_PRESERVE_ORDER)) : NULL;
        json_decref(j);
        if (js) {
            printf("%s\n", js);
        } else {
            RT_FAIL("out of memory (JSON)");
            rc = cli_fail("report add-harvest");
        }
        free(js);
        report_harvest_stats_free(&st);
    }
    report_db_close(c);
    return rc;
}

static int report_add_model_cmd(int argc, char **argv) {
    report_model_spec m = {.role = "student", .guard = ""};
    const char *db = NULL;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db, "FILE: the gateway database holding the report (or a postgres:// URL) (required)", 1, 0},
        {"--name", CLI_STR, &m.name, "TEXT: a unique name for this model (required)", 1, 0},
        {"--model", CLI_STR, &m.path, "M.gguf: the model file (required)", 1, 0},
        {"--role", CLI_STR, &m.role, "teacher|student|control (default student)", 0, 0},
        {"--guard", CLI_STR, &m.guard,
         "on|off[-VARIANT]: its data came from the server with the guard on or off (off-antidistill: served again)",
         0, 0},
        {"--trained-on", CLI_STR, &m.trained_on, "TEXT: harvest names (comma-separated) or a description", 0, 0},
        {"--train-log", CLI_STR, &m.train_log, "FILE: the trainer's JSONL log (tokens, FLOPs, time)", 0, 0},
        {"--eval", CLI_STR, &m.eval_json, "FILE: retort eval --json-out output (loss, kl, top-1 agreement)", 0, 0},
        {"--command", CLI_STR, &m.command, "TEXT: how it was made", 0, 0},
    };
    cli_cmd_info info = {"report add-model",
                         "retort report add-model --db gateway.db --name N --model S.gguf [--train-log L --eval E]",
                         "Records a model: SHA-256, parameters, training tokens/FLOPs/time, eval quality."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (check_guard_word("report add-model", m.guard, 1)) return 2;
    if (strcmp(m.role, "teacher") && strcmp(m.role, "student") && strcmp(m.role, "control")) {
        fprintf(stderr, "retort report add-model: error: --role must be teacher, student or control, not '%s'\n",
                m.role);
        return 2;
    }
    gw_conn *c = NULL;
    int rc = open_existing("report add-model", db, &c);
    if (rc) return rc;
    rc = report_model_put(c, &m) ? cli_fail("report add-model") : 0;
    report_db_close(c);
    return rc;
}

static int report_add_test_cmd(int argc, char **argv) {
    const char *db = NULL, *model = NULL, *result = NULL, *command = NULL;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db, "FILE: the gateway database holding the report (or a postgres:// URL) (required)", 1, 0},
        {"--model", CLI_STR, &model, "NAME: the model tested (as given to add-model) (required)", 1, 0},
        {"--result", CLI_STR, &result, "FILE: the JSON `retort radioactivity` printed (required)", 1, 0},
        {"--command", CLI_STR, &command, "TEXT: the command that produced it", 0, 0},
    };
    cli_cmd_info info = {"report add-test", "retort report add-test --db gateway.db --model NAME --result r.json",
                         "Records a radioactivity result."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    char *text = NULL;
    size_t len = 0;
    if (rt_read_file(result, &text, &len)) return cli_fail("report add-test");
    gw_conn *c = NULL;
    int rc = open_existing("report add-test", db, &c);
    if (!rc) {
        rc = report_test_put(c, model, text, command) ? cli_fail("report add-test") : 0;
        report_db_close(c);
    }
    free(text);
    return rc;
}

static int report_add_figure_cmd(int argc, char **argv) {
    const char *db = NULL, *name = NULL, *file = NULL, *caption = NULL, *command = NULL;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db, "FILE: the gateway database holding the report (or a postgres:// URL) (required)", 1, 0},
        {"--name", CLI_STR, &name, "NAME: the figure's name (the same name replaces it) (required)", 1, 0},
        {"--file", CLI_STR, &file, "FILE.svg: the image (retort eval-plot writes them) (required)", 1, 0},
        {"--caption", CLI_STR, &caption, "TEXT: what the figure shows", 0, 0},
        {"--command", CLI_STR, &command, "TEXT: the command that produced it", 0, 0},
    };
    cli_cmd_info info = {"report add-figure",
                         "retort report add-figure --db gateway.db --name N --file F.svg [--caption TEXT]",
                         "Records an SVG figure (an experiment's chart) to show in the report, with its SHA-256;\n"
                         "the image is stored in the database and drawn as an <img>, so no script in it runs."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    gw_conn *c = NULL;
    int rc = open_existing("report add-figure", db, &c);
    if (rc) return rc;
    rc = report_figure_put(c, name, file, caption, command) ? cli_fail("report add-figure") : 0;
    report_db_close(c);
    return rc;
}

int cmd_report(int argc, char **argv) {
    if (argc >= 2) {
        if (!strcmp(argv[1], "summary")) return report_summary_cmd(argc - 1, argv + 1);
        if (!strcmp(argv[1], "add-harvest")) return report_add_harvest_cmd(argc - 1, argv + 1);
        if (!strcmp(argv[1], "add-model")) return report_add_model_cmd(argc - 1, argv + 1);
        if (!strcmp(argv[1], "add-test")) return report_add_test_cmd(argc - 1, argv + 1);
        if (!strcmp(argv[1], "add-figure")) return report_add_figure_cmd(argc - 1, argv + 1);
    }
    return report_write_cmd(argc, argv);
}
