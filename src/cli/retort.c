/*
 * retort.c — the `retort` binary: dispatch to a subcommand, top-level help and version.
 * Each subcommand lives in its own cmd_*.c file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../train/dist.h"
#include "cli.h"

#define RETORT_VERSION "0.1.0"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
    {"train", cmd_train, "train a model (and its tokenizer) on a text corpus"},
    {"generate", cmd_generate, "generate text from a model"},
    {"tokenize", cmd_tokenize, "print the token ids of a text as a JSON array"},
    {"forward", cmd_forward, "write the logits of a token sequence as raw float32"},
    {"info", cmd_info, "describe a model file: config, tokenizer, tensors"},
    {"convert", cmd_convert, "convert a Hugging Face folder to GGUF, or a GGUF to a Hugging Face folder"},
    {"quantize", cmd_quantize, "re-encode a GGUF model in llama.cpp's q8_0/q4_0/q4_K/q5_K/q6_K/bf16/f16"},
    {"distill", cmd_distill, "white-box distillation: a student learns a teacher's distributions"},
    {"cache-teacher", cmd_cache_teacher, "store a teacher's top-k log-probs for later distillation"},
    {"sft", cmd_sft, "black-box distillation: learn from prompt/completion pairs (harvest JSONL)"},
    {"data", cmd_data, "make datasets: arithmetic with working, or a model's generations"},
    {"eval", cmd_eval, "held-out loss, KL and agreement to a teacher, task accuracy (JSON)"},
    {"eval-plot", cmd_eval_plot, "SVG charts of eval results or training curves"},
    {"serve", cmd_serve, "serve a model over an OpenAI-compatible API with accounts, limits and a ledger"},
    {"gateway", cmd_gateway, "the same accounts, limits, ledger and guard in front of any OpenAI-compatible server"},
    {"keys", cmd_keys, "create, list, revoke, suspend and resume API keys and accounts"},
    {"harvest", cmd_harvest, "collect completions from an OpenAI-compatible API into JSONL"},
    {"guard", cmd_guard, "extraction guard: status, explain, release, calibrate, eval, plot"},
    {"simulate", cmd_simulate, "drive a server with labelled benign and harvesting accounts on a fast clock"},
    {"watermark", cmd_watermark, "watermark keys, detection, bulk generation, attacks"},
    {"radioactivity", cmd_radioactivity, "test whether a suspect model was trained on watermarked text"},
    {"report", cmd_report, "the evidence report (HTML) from a gateway database, and its summary"},
    {"demo", cmd_demo, "the whole story in one command: teacher, API, guard, watermark, students, report"},
};

static void usage(FILE *f) {
    fprintf(f, "retort %s — train, distil, serve and defend language models\n\n", RETORT_VERSION);
    fprintf(f, "usage: retort <command> [options]   (retort <command> --help for its options)\n\n");
    fprintf(f, "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
}

/* Under mpirun every rank runs the command; only rank 0 logs (unless RETORT_LOG says
 * otherwise), and a rank whose command fails has printed its error (cli_fail names the rank)
 * and then stops the whole job, so no rank waits forever in a collective. */
static int run_command(const command *c, int argc, char **argv) {
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "retort %s: error: %s\n", c->name, rt_errmsg());
        return 1;
    }
    if (dist_rank() > 0 && !getenv("RETORT_LOG")) rt_log_set_level(RT_LOG_WARN);
    int rc = c->fn(argc - 1, argv + 1);
    if (rc != 0 && dist_active()) dist_abort(rc);
    dist_finalize();
    return rc;
}

/* OpenMP threads that spin while waiting at a barrier burn the core their parked partner needs
 * on a busy machine: a 10-step training job took 51 s with libgomp's default (spin, then sleep)
 * and 2.3 s with OMP_WAIT_POLICY=passive while other work loaded the cores (issue 17 #19,
 * bench/busy_machine.sh, docs/performance.md). libgomp reads the variable once, in its own
 * initializer before main (and libc resets the environment after a .preinit_array function
 * could set it), so when the user has not chosen, retort sets it and executes itself again:
 * one exec of a few milliseconds. A value the user set (even an empty one) wins. */
static void omp_defaults(char **argv) {
#ifdef _OPENMP
    if (getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    execv("/proc/self/exe", argv); /* returns only on failure: then run as we are */
#else
    (void)argv;
#endif
}

int main(int argc, char **argv) {
    omp_defaults(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("retort %s (MPI: %s)\n", RETORT_VERSION, dist_compiled() ? "yes" : "no");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return run_command(&commands[i], argc, argv);
    fprintf(stderr, "retort: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
