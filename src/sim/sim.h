/*
 * sim.h — the traffic simulator (`retort simulate`): labelled benign and attacking accounts
 * sending a day of traffic to a running `retort serve` on an accelerated clock, and the corpus
 * their prompts are drawn from. It uses no detector symbol: it only produces traffic (and the
 * labels src/defend's eval reads, stored through guard_labels_write).
 *
 * Threading: guard_simulate runs its own HTTP workers; everything else is single-threaded.
 * What this is not: the guard (src/guard, src/defend) or an HTTP client (src/client).
 */
#ifndef RETORT_SIM_H
#define RETORT_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../base/base.h"

/* ---------------------------------------------------------------- simulator */

typedef struct {
    const char *endpoint;     /* http://127.0.0.1:8080 */
    const char *db_path;      /* the server's gateway database: accounts and labels go here */
    const char *scenario_path;
    const char *corpus_path;  /* default build/data/kjv.txt */
    const char *harvest_dir;  /* NULL: no harvest files; else DIR/<attacker>.jsonl */
    double speed;             /* simulated seconds per real second; 0 = as fast as possible */
    size_t concurrency;       /* HTTP workers (default 16) */
    double scale;             /* multiplies account counts and volumes (default 1) */
    int quiet;
    int bind_addresses;       /* send from distinct 127.x.y.z addresses (default 1) */
    const char *summary_path; /* NULL, or write a JSON summary here (per persona, harvest files) */
    const char *dry_run_path; /* no server: write every request (JSON lines) here, each answered 200 */
} guard_sim_options;
void guard_sim_options_defaults(guard_sim_options *o);

typedef struct {
    size_t accounts, requests, ok, refused_403, limited_429, errors;
    size_t harvested;         /* lines written to harvest files */
    double sim_seconds, real_seconds;
} guard_sim_stats;

/* Parse and validate a scenario file (errors name the file and the field). */
typedef struct guard_scenario guard_scenario;
int guard_scenario_load(guard_scenario **out, const char *path);
int guard_scenario_parse(guard_scenario **out, const char *json_text, size_t len, const char *origin);
void guard_scenario_free(guard_scenario *s);
size_t guard_scenario_accounts(const guard_scenario *s);

int guard_simulate(const guard_sim_options *o, guard_sim_stats *st);
/* The harvest files a --summary lists that exist on disk, in the summary's order, each with its
 * persona's kind ("bulk", "mimic", ...). Errors name the file. Free with sim_harvest_files_free. */
typedef struct {
    char *path, *kind;
} sim_harvest_file;
int sim_summary_harvests(const char *summary_path, sim_harvest_file **out, size_t *n);
void sim_harvest_files_free(sim_harvest_file *h, size_t n);
/* Print per_persona sample request bodies of each persona of the scenario (no server). */
int guard_sim_sample(const guard_sim_options *o, size_t per_persona, FILE *out);

/* ---------------------------------------------------------------- prompts (simulator) */

/* The corpus the simulator draws prompts from: verses with book/chapter/verse, names. */
typedef struct guard_corpus guard_corpus;
int guard_corpus_load(guard_corpus **out, const char *path);
void guard_corpus_free(guard_corpus *c);
size_t guard_corpus_verses(const guard_corpus *c);

typedef enum {
    GUARD_PROMPT_QUESTION = 0, /* a benign chat question (persona-flavoured) */
    GUARD_PROMPT_PASSAGE,      /* "continue this passage" style, from a random place */
    GUARD_PROMPT_WALK,         /* the next passage of a sequential walk */
    GUARD_PROMPT_TEMPLATE,     /* an expansion of one of a few fixed templates */
} guard_prompt_kind;

/* A persona's prompt style: which templates, books and quirks it favours. */
typedef struct {
    uint32_t template_mask[4]; /* question templates this persona uses (128 bits) */
    uint16_t books[8];         /* favourite books */
    size_t n_books;
    double typo_rate, lower_rate, polite_rate, quote_rate;
    size_t attack_template;    /* which attack template family (template kind) */
    size_t walk_pos;           /* verse index of a walk */
    size_t part, parts;        /* a tile of the source's items (a swarm's key): parts <= 1 = all */
} guard_prompt_style;
void guard_prompt_style_random(guard_prompt_style *s, const guard_corpus *c, rt_rng *rng);
/* Generate one prompt into out (cleared first). */
int guard_prompt_make(const guard_corpus *c, guard_prompt_kind kind, guard_prompt_style *s, rt_rng *rng,
                      rt_buf *out);

/* ---------------------------------------------------------------- other prompt sources (sources.c) */

/* Where prompts come from: the corpus (above), Debian's fortunes, the installed man pages, or
 * generated everyday requests; each but the corpus may be one half ("fortunes/a", "man/b",
 * "everyday/a") so calibration and evaluation can use disjoint text. */
typedef enum { GUARD_SRC_CORPUS = 0, GUARD_SRC_FORTUNES, GUARD_SRC_MAN, GUARD_SRC_EVERYDAY, GUARD_SRC_KINDS } guard_source_kind;
typedef struct {
    guard_source_kind kind;
    int half; /* 0 = all, 1 = a, 2 = b */
} guard_source_spec;
/* 0, or -1 for an unknown name (no error recorded: the caller names the field). */
int guard_source_spec_parse(const char *s, guard_source_spec *out);
const char *guard_source_spec_name(guard_source_spec sp, char buf[24]);
int guard_source_half_of(const char *s, size_t n); /* 1 (a) or 2 (b) */

/* The items of fortunes or man pages (dir NULL: /usr/share/games/fortunes, /usr/share/man). */
typedef struct guard_texts guard_texts;
int guard_texts_load(guard_texts **out, guard_source_spec spec, const char *dir);
/* The items of one fortune file or one man page (roff) held in memory (name: the page's file
 * name, its title); none is not an error. For tests and fuzzing. */
int guard_texts_parse(guard_texts **out, guard_source_spec spec, const char *name, const char *data, size_t len);
void guard_texts_free(guard_texts *t);
size_t guard_texts_count(const guard_texts *t);
/* Item i's text (and title: a man page's name, "" for a fortune), NUL-terminated. */
const char *guard_texts_item(const guard_texts *t, size_t i, size_t *len, const char **title, size_t *title_len);

typedef enum {
    GUARD_ASK_QUESTION = 0, /* a natural request about an item (everyday: a grammar expansion) */
    GUARD_ASK_RAW,          /* the item itself */
    GUARD_ASK_PREFIX,       /* the first words of an item (a log-prob prober's prefix) */
    GUARD_ASK_TEMPLATE,     /* the item in the style's one fixed instruction */
    GUARD_ASK_PARAPHRASE,   /* the item in a paraphrased instruction, restyled */
} guard_ask_kind;
/* One prompt from a source other than the corpus (t NULL for everyday). */
int guard_source_prompt(const guard_texts *t, guard_source_spec sp, guard_ask_kind k, guard_prompt_style *s,
                        rt_rng *rng, rt_buf *out);
/* Prompt i of evaluation suite `suite` (fixed text for fixed (suite, i)). */
int guard_bench_prompt(uint64_t suite, size_t i, rt_buf *out);

#endif /* RETORT_SIM_H */
