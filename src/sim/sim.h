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
} guard_prompt_style;
void guard_prompt_style_random(guard_prompt_style *s, const guard_corpus *c, rt_rng *rng);
/* Generate one prompt into out (cleared first). */
int guard_prompt_make(const guard_corpus *c, guard_prompt_kind kind, guard_prompt_style *s, rt_rng *rng,
                      rt_buf *out);

#endif /* RETORT_SIM_H */
