/*
 * guard.h — the guard room: detect accounts that harvest the API for distillation, link
 * accounts that act as one (sybils), enforce a policy (flag / throttle / suspend) with every
 * action stored beside its evidence, evaluate all that against labelled simulated traffic and
 * two published-style baselines, and the traffic simulator that produces such traffic.
 *
 * Layers, bottom up (each usable on its own; tests drive the lower ones with crafted input):
 *   sketches   O(1) streaming statistics: n-aware exponential means, decaying counters,
 *              MinHash of word shingles, random Fourier features (an RBF kernel for MMD),
 *              SimHash cells of embeddings, and the Shapiro–Wilk W (for the PRADA baseline).
 *   policy     thresholds and weights (JSON file; safe defaults without one).
 *   reference  what was learnt from BENIGN traffic only (`retort guard calibrate`): the RFF
 *              map, the benign mean embedding, per-signal benign levels, benign template bands.
 *   detector   per-account state (bounded: a few KiB each), per-request signals, risk, account
 *              linking (union–find over pair evidence), escalation verdicts, explanations.
 *              No I/O: it sees guard_event values and returns verdicts.
 *   runtime    the serve_hooks that feed the detector inside `retort serve`, the guard tables
 *              in the gateway database (events, scores, links, actions), enforcement through the
 *              gateway (suspend; throttle = lower rpm), and release.
 *   store      reading the guard tables back: status, explain, release.
 *   eval       per-strategy TPR/FPR, queries and tokens served before suspension, and the
 *              baselines (PRADA-style, rate-limit-only, a 1,500-query-window MMD detector)
 *              replayed on the same stored traffic; the timeline SVG.
 *   simulator  `retort simulate`: labelled benign and attacking accounts on an accelerated clock.
 *   views      the guard tables as JSON for the admin API and the dashboard (GET /admin).
 *
 * Signals (see docs/guard.md for the reasoning and the calibration):
 *   behaviour  rate, volume, baseline (rate vs the account's own past), limit_pressure (429s),
 *              concurrency, regularity (inter-arrival), around_clock, linked (group size).
 *              Their weighted sum is CAPPED below the suspend threshold: heavy benign users
 *              exist, so volume and timing alone never suspend.
 *   api use    logprobs, saturation (explicit max_tokens reached), token_ratio.
 *   content    shift (MMD over the served model's own prompt hidden states to the nearest of
 *              the benign profiles: the pooled benign mean and single benign accounts'),
 *              template (density of MinHash near-duplicates and shared prefixes),
 *              coverage (distinct SimHash cells of the embeddings).
 * Each signal's score is 0 at or below its benign level, 1 at or above its attack level,
 * linear between; risk = min(cap, behaviour) + api + content. A linked group is scored on
 * its members' pooled statistics and acted on as one.
 *
 * Threading: the detector is not thread-safe (the runtime holds one lock around it); sketches
 * and policy are plain values.
 *
 * What this is not: a rate limiter (src/gateway), a watermark (src/mark), or the HTTP server
 * (src/serve) — the guard plugs into serve through serve_hooks.
 */
#ifndef RETORT_GUARD_H
#define RETORT_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../gateway/gateway.h"
#include "../serve/serve.h"

/* ---------------------------------------------------------------- sketches */

/* Mean with an n-aware exponential window: the exact mean of the first `window` values,
 * then an exponential moving average with alpha = 1/window. */
typedef struct {
    double mean;
    double n; /* values seen */
} guard_ewm;
void guard_ewm_add(guard_ewm *e, double x, double window);
/* Variance factor of the current mean: Var(mean) = factor * Var(x) for iid x (1/n while n <=
 * window, then alpha/(2-alpha) at steady state, exactly for the recursion used). */
double guard_ewm_var_factor(const guard_ewm *e, double window);

/* Exponentially decaying event counter: c(t) = sum_i w_i exp(-(t - t_i)/tau). Times may go
 * backwards slightly (concurrent requests): such an event is added without decay. */
typedef struct {
    double c;
    double t; /* time of the last update */
} guard_decay;
void guard_decay_add(guard_decay *d, double t, double w, double tau);
double guard_decay_value(const guard_decay *d, double t, double tau);

/* MinHash of a text's word 2-shingles (words: runs of letters and digits, lowercased; a
 * one-word text uses the word). GUARD_MINHASH_K independent 32-bit hashes. Returns the
 * number of shingles (0: empty text, sig all 0xffffffff). */
#define GUARD_MINHASH_K 32
#define GUARD_MINHASH_BANDS 8 /* LSH bands of K/BANDS rows, for cross-account template links */
size_t guard_minhash(const char *text, size_t len, uint32_t sig[GUARD_MINHASH_K]);
/* Hash of the first three words (as MinHash splits them) of a text, 0 if it has none: two
 * prompts of one template whose variable part is long still share it. */
uint64_t guard_prefix_hash(const char *text, size_t len);
/* The key a prefix hash has in the cross-account template index (beside the LSH bands). */
uint64_t guard_prefix_key(uint64_t prefix_hash);
/* Estimated Jaccard similarity: the fraction of equal positions. */
double guard_minhash_similarity(const uint32_t *a, const uint32_t *b);
/* Band keys of a signature (GUARD_MINHASH_BANDS of them), for an LSH index. */
void guard_minhash_bands(const uint32_t sig[GUARD_MINHASH_K], uint64_t bands[GUARD_MINHASH_BANDS]);

/* Random Fourier features of the Gaussian kernel k(x,y) = exp(-|x-y|^2 / (2 sigma^2)):
 * phi(x) = sqrt(2/m) cos(W x + b), W ~ N(0, 1/sigma^2), b ~ U[0, 2pi); phi(x).phi(y) ~ k(x,y). */
typedef struct {
    size_t dim;     /* input width (the model's hidden size) */
    size_t m;       /* features */
    double sigma;   /* bandwidth */
    uint64_t seed;
    float *w;       /* (m, dim) */
    float *b;       /* (m) */
} guard_rff;
int guard_rff_init(guard_rff *r, size_t dim, size_t m, double sigma, uint64_t seed);
void guard_rff_free(guard_rff *r);
void guard_rff_apply(const guard_rff *r, const float *x, float *phi /* (m) */);

/* Sign of 8 fixed pseudo-random +-1 projections of x (dim): a SimHash cell in [0, 256).
 * guard_simhash_sign(bit, d) is projection bit's weight on coordinate d. */
unsigned guard_simhash_cell(const float *x, size_t dim);
int guard_simhash_sign(unsigned bit, size_t d);

/* Shapiro–Wilk W of x (n >= 3; Royston's 1992/1995 approximation of the coefficients, as in
 * R's swilk / AS R94). Returns NaN when n < 3 or all values are equal. x is not modified. */
double guard_shapiro_wilk(const double *x, size_t n);

/* Unit-normalise an embedding and quantise it to int8 with one scale (what the guard stores
 * and computes on, so a replay from the database sees the same numbers as the live guard).
 * q: (dim) int8; returns the scale (x_unit[i] ~ q[i] * scale); 0 for a zero vector. */
float guard_quantize(const float *x, size_t dim, int8_t *q);
void guard_dequantize(const int8_t *q, size_t dim, float scale, float *out);

/* ---------------------------------------------------------------- policy */

/* The signals, in a fixed order (names are what policy files and evidence use). */
typedef enum {
    GUARD_SIG_RATE = 0,     /* requests per hour (decaying, tau 1 h) */
    GUARD_SIG_VOLUME,       /* requests in the last day (decaying, tau 24 h) */
    GUARD_SIG_BASELINE,     /* log2(rate now / the account's own long-run rate) */
    GUARD_SIG_LIMIT,        /* share of requests refused by the rate limits (429) */
    GUARD_SIG_CONCURRENCY,  /* share of requests sent while another was in flight */
    GUARD_SIG_REGULARITY,   /* 2 - std of log inter-arrival gaps (machines are regular) */
    GUARD_SIG_AROUND_CLOCK, /* distinct active hours in the last 24 h */
    GUARD_SIG_LINKED,       /* members of the linked group minus one */
    GUARD_SIG_LOGPROBS,     /* mean of (logprobs ? 0.3 + 0.7*top/20 : 0) */
    GUARD_SIG_SATURATION,   /* share of requests with an explicit max_tokens that was reached */
    GUARD_SIG_TOKEN_RATIO,  /* mean log((completion+1)/(prompt+1)) */
    GUARD_SIG_SHIFT,        /* unbiased MMD^2 estimate to the nearest benign profile (x1000) */
    GUARD_SIG_TEMPLATE,     /* mean share of recent prompts each prompt is a near-duplicate of
                               (MinHash) or shares its first three words with */
    GUARD_SIG_COVERAGE,     /* distinct SimHash cells / prompts, over the recent window */
    GUARD_SIG_COUNT
} guard_signal;
typedef enum { GUARD_FAMILY_BEHAVIOUR = 0, GUARD_FAMILY_API = 1, GUARD_FAMILY_CONTENT = 2 } guard_family;
const char *guard_signal_name(guard_signal s);
guard_family guard_signal_family(guard_signal s);
int guard_signal_from_name(const char *name); /* -1 if unknown */

typedef struct {
    double weight;  /* contribution to risk at full score */
    double benign;  /* score 0 at or below (above, when benign > attack: reversed signals) */
    double attack;  /* score 1 at or beyond */
    double min_n;   /* observations before the signal counts */
} guard_signal_policy;

typedef enum { GUARD_ACT_NONE = 0, GUARD_ACT_FLAG = 1, GUARD_ACT_THROTTLE = 2, GUARD_ACT_SUSPEND = 3 } guard_action;
const char *guard_action_name(guard_action a);

typedef struct {
    guard_signal_policy sig[GUARD_SIG_COUNT];
    double behaviour_cap;      /* behaviour signals together contribute at most this */
    double content_overshoot;  /* a content signal beyond its attack level scores up to 1 + this,
                                  reached at 4x the attack level (log scale); 0 = no overshoot */
    double flag_at, throttle_at, suspend_at; /* risk thresholds */
    double min_requests_act;   /* an account (or group) needs this many served requests before
                                  throttle/suspend (flag: half) */
    int64_t throttle_rpm;      /* rpm given to throttled accounts */
    /* windows */
    double window;             /* requests in the exponential means (signals) */
    double shift_window;       /* embeddings in the shift mean */
    double template_sim;       /* MinHash similarity that counts as a near-duplicate */
    size_t template_recent;    /* prompts compared against (<= GUARD_RECENT) */
    double rate_tau, volume_tau, baseline_tau; /* seconds */
    double baseline_min_age;   /* seconds of history before `baseline` counts */
    double around_clock_min_age;
    /* linking */
    double link_threshold;     /* pair score to link */
    int link_min_kinds;        /* distinct kinds of evidence needed */
    double link_w_ip, link_w_burst, link_w_template, link_w_timing;
    double burst_window;       /* seconds: accounts created this close are a burst ... */
    int burst_min;             /* ... when at least this many */
    int ip_max_accounts;       /* addresses shared by more accounts are ignored (big NATs) */
    double template_link_hits; /* shared-template prompt pairs for full template evidence */
    size_t max_group;          /* largest group formed */
    int enforce;               /* 0: shadow (record would-be actions only) */
} guard_policy;

void guard_policy_defaults(guard_policy *p);
/* Read a JSON policy over the defaults (every field optional; unknown fields are errors that
 * name the file and field). */
int guard_policy_load(guard_policy *p, const char *path);
int guard_policy_parse(guard_policy *p, const char *json_text, size_t len, const char *origin);
/* The policy as JSON text (malloc'ed). */
char *guard_policy_to_json(const guard_policy *p);

/* ---------------------------------------------------------------- reference */

#define GUARD_RFF_M 128
typedef struct {
    int has_shift;         /* the embedding part is present */
    guard_rff rff;
    float *mu;             /* (rff.m) benign mean feature */
    float *profiles;       /* (n_profiles, rff.m) mean features of single benign accounts */
    size_t n_profiles;
    double trace;          /* E |phi - mu|^2 over benign prompts */
    double z_crit;         /* significance floor of |mean - mu|^2 / (trace * varfactor) */
    uint64_t *stop_bands;  /* (n_stop_bands) sorted band and prefix keys seen in benign prompts */
    size_t n_stop_bands;
    int has_levels;        /* levels[] replace the policy's benign levels */
    double levels[GUARD_SIG_COUNT];  /* benign level per signal (NaN = keep the policy's) */
    double prada_delta;    /* PRADA threshold on W calibrated on benign accounts (0 = unset) */
    size_t n_accounts, n_events;     /* what it was calibrated on */
    char source[256];
} guard_reference;
void guard_reference_init(guard_reference *r);
void guard_reference_free(guard_reference *r);
int guard_reference_load(guard_reference *r, const char *path);
int guard_reference_save(const guard_reference *r, const char *path);
/* Apply the reference's benign levels to a policy: benign := level, and the attack level
 * moves with it so the ramp keeps its width (attack - benign) from the policy. */
void guard_policy_apply_reference(guard_policy *p, const guard_reference *r);

/* ---------------------------------------------------------------- events */

/* One request as the detector sees it (built from the hook arguments, or read back). */
typedef struct {
    int64_t row_id;            /* usage ledger row */
    double t;                  /* clock time (simulated under --sim-clock) */
    int64_t account_id;
    double account_created_at;
    uint64_t client_hash;      /* hash of the peer address (0: unknown) */
    int status;                /* HTTP status */
    int64_t prompt_tokens, completion_tokens, max_tokens;
    int max_tokens_given;      /* max_tokens was in the request body */
    int logprobs, top_logprobs;
    int concurrent;            /* another request of the account was in flight */
    uint64_t prompt_hash;      /* of the user text (exact repeats are not templates) */
    uint64_t prefix_hash;      /* of its first three words (0: none): fixed-prefix templates */
    int has_minhash;
    uint32_t minhash[GUARD_MINHASH_K];
    const int8_t *emb;         /* (emb_dim) quantised unit embedding, or NULL */
    size_t emb_dim;
    float emb_scale;
} guard_event;

/* Fill the request-derived fields of an event from hook arguments (no embedding, status or
 * token counts: those come from the result). The user text for templates is the last user
 * message of a chat request, or the completions prompt. */
int guard_event_from_request(guard_event *ev, const serve_request_info *ri);

/* ---------------------------------------------------------------- detector */

typedef struct guard_detector guard_detector;

typedef struct {
    double value[GUARD_SIG_COUNT]; /* raw value (NaN: not enough data yet) */
    double score[GUARD_SIG_COUNT]; /* in [0, 1] (content: up to 1 + content_overshoot) */
    double contrib[GUARD_SIG_COUNT]; /* weight * score (behaviour before the cap) */
    double count[GUARD_SIG_COUNT];   /* observations behind each value (vs min_n) */
    double shift_z;                  /* significance of the shift (NaN without a reference) */
    double risk;
    double n;                      /* requests observed */
    double n_ok;                   /* served */
    double first_t, last_t;
} guard_assessment;

#define GUARD_MAX_AFFECTED 256
typedef struct {
    int64_t account_id;
    int64_t group_id;             /* the group's representative (= account_id when alone) */
    size_t group_size;
    guard_assessment account;     /* this account alone */
    guard_assessment group;       /* pooled over the group (= account when alone) */
    double risk;                  /* max(account.risk, group.risk) */
    guard_action level;           /* current action level of the account after this event */
    int escalated;                /* the level rose on this event */
    guard_action new_level;
    size_t n_affected;            /* accounts whose level rose now (the group acts as one) */
    int64_t affected[GUARD_MAX_AFFECTED];
} guard_verdict;

int guard_detector_init(guard_detector **out, const guard_policy *p, const guard_reference *ref);
void guard_detector_free(guard_detector *d);
/* Feed one event (events of one account in time order; accounts interleave freely). */
int guard_detector_observe(guard_detector *d, const guard_event *ev, guard_verdict *out);
/* Forget an account's state and group membership (after `retort guard release`). */
void guard_detector_release(guard_detector *d, int64_t account_id);
/* Current action level of an account (GUARD_ACT_NONE if unknown). */
guard_action guard_detector_level(const guard_detector *d, int64_t account_id);
/* JSON evidence of an account now: {"account", "risk", "level", "account_assessment",
 * "group": {"id", "members", "assessment"}, "signals": {...}, "window": {...},
 * "linked": [{"account", "score", "ip", "burst", "template", "timing"}]}. malloc'ed text. */
char *guard_detector_evidence(guard_detector *d, int64_t account_id);
/* Short reason code of an assessment's strongest non-behaviour signals, e.g. "G-SHIFT+SAT". */
void guard_reason_code(const guard_assessment *a, int grouped, char *out, size_t cap);
/* Accounts linked with account_id (its group, itself included); *out malloc'ed. */
int guard_detector_group(const guard_detector *d, int64_t account_id, int64_t **out, size_t *n);
/* Number of accounts with state; memory held (bytes); the fixed state of one account. */
size_t guard_detector_accounts(const guard_detector *d);
size_t guard_detector_bytes(const guard_detector *d);
size_t guard_detector_account_bytes(void);

/* ---------------------------------------------------------------- runtime (inside serve) */

typedef struct {
    const char *db_path;         /* the gateway database (guard tables are added to it) */
    const char *policy_path;     /* NULL: defaults */
    const char *reference_path;  /* NULL: no shift signal, no benign levels */
    int shadow;                  /* record would-be actions; change nothing */
    int store_events;            /* keep every request's features (for eval/calibrate); default 1 */
} guard_options;
void guard_options_defaults(guard_options *o);

typedef struct guard guard;
int guard_open(guard **out, const guard_options *o);
/* Flush the writer and close. */
void guard_close(guard *g);
/* The hooks to pass to serve_start (want_hidden set). */
void guard_serve_hooks(guard *g, serve_hooks *h);
/* Wait until everything queued so far is in the database (tests, shutdown). */
int guard_flush(guard *g);
/* Counters: events seen, actions taken. */
void guard_stats(guard *g, uint64_t *events, uint64_t *actions);

/* Create the guard tables in a database if absent (idempotent). */
int guard_db_init(gw_db *db);

/* ---------------------------------------------------------------- store (CLI side) */

/* `retort guard status`: one line per account with guard activity. as_json: JSON lines. */
int guard_status_print(gw_db *db, FILE *out, int as_json);
/* `retort guard explain ACCOUNT`: actions with their evidence, latest signals, links. */
int guard_explain_print(gw_db *db, const char *account, FILE *out, int as_json);
/* `retort guard release ACCOUNT`: reactivate (and the whole group when group), restore the
 * limits a throttle lowered, record the release (a running guard resets the account). */
int guard_release(gw_db *db, const char *account, int group, const char *note, double now, FILE *out);

/* Read stored events of the database in row order. emb of each points into *emb_store
 * (events[i].emb_dim int8 each). Free with guard_events_free. */
typedef struct {
    guard_event *ev;
    size_t n;
    int8_t *emb_store;
} guard_event_list;
int guard_events_read(gw_db *db, guard_event_list *out);
void guard_events_free(guard_event_list *l);

/* ---------------------------------------------------------------- calibration and eval */

typedef struct {
    const char *db_path;      /* a run on benign traffic (guard in shadow or enforce mode) */
    const char *policy_path;  /* NULL: defaults */
    double quantile;          /* of benign per-account maxima, for the levels (default 0.99) */
    uint64_t seed;
    int only_labelled_benign; /* use accounts labelled benign by the simulator (default 1 when
                                 labels exist); otherwise every account is taken as benign */
} guard_calib_options;
int guard_calibrate(const guard_calib_options *o, guard_reference *out, FILE *log);

typedef struct {
    const char *db_path;
    const char *reference_path; /* for the baselines' embeddings (MMD window); may be NULL */
    int as_json;
    double prada_delta;         /* 0: the reference's, else 0.95 */
    size_t mmd_window;          /* the published detector's window (default 1500) */
} guard_eval_options;
/* Print the per-strategy evaluation (text or JSON) to out. */
int guard_eval(const guard_eval_options *o, FILE *out);

/* Timeline SVG: risk per account over time, suspensions marked, thresholds drawn. */
int guard_plot_timeline(gw_db *db, const char *svg_path, const char *title);

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

/* ---------------------------------------------------------------- views (admin API, dashboard) */

/* One guard_scores / guard_actions row as the runtime stores it, for tools and tests that
 * prepare a database (the live guard batches its own writes). Creates the tables if absent.
 * NULL strings store as "" (level: "none", mode: "enforce"); group_id 0 means the account
 * itself; signals and evidence must be JSON objects when given. */
typedef struct {
    double t;
    int64_t account_id, group_id;
    size_t group_size;              /* 0 = 1 */
    double n;                       /* requests observed */
    double risk, account_risk, group_risk;
    const char *level;              /* "none", "flag", "throttle", "suspend" */
    const char *code;               /* e.g. "G-SHIFT+SAT" */
    const char *signals;            /* {"signal": [value, score], ...} or NULL */
} guard_score_row;
int guard_score_insert(gw_db *db, const guard_score_row *r);

typedef struct {
    double t;
    int64_t account_id, group_id;
    const char *action;             /* "flag", "throttle", "suspend", "release" */
    const char *mode;               /* "enforce", "shadow", "operator" */
    const char *code;
    double risk;
    int64_t usage_row_id;           /* the ledger row that decided (0: none) */
    const char *reason;
    const char *evidence;           /* JSON object (NULL: {}) */
    int64_t prev_rpm;               /* throttle: the rpm a release restores; -1: none */
} guard_action_row;
int guard_action_insert(gw_db *db, const guard_action_row *r, int64_t *id_out);

/* Every account (malloc'ed JSON text): {"now", "window_s", "guard_tables", "policy":
 * {"flag_at", "throttle_at", "suspend_at", "enforce", "source"}, "accounts": [{"id", "name",
 * "status", "reason", "status_changed_at", "admin", "created_at", "limits", "usage": {...},
 * "guard": {"level", "risk", "risk_t", "account_risk", "group_risk", "requests_seen", "code",
 * "recent": [risk, ... oldest first], "group": {"id", "size", "members": [id...]} | null,
 * "last_action": {...} | null}, "label": simulator label | null}], "groups": [{"id", "size",
 * "reported_size", "risk", "code", "suspended", "members": [{"id", "name", "status", "risk",
 * "level"}]}]}. level: none, flag, throttle, suspend, or released (after an operator release).
 * Usage windows end at now (24 h). Works on a database without guard tables (no risk). */
int guard_view_accounts(gw_db *db, double now, char **json_out);
/* One account (name or "#id"): {"now", "guard_tables", "policy", "account": (as above),
 * "timeline": [{"t", "risk", "account_risk", "group_risk", "level", "code", "n", "group",
 * "group_size"}] in time order (at most max_points: per bucket of consecutive rows the one of
 * highest risk, the newest always last; 0 = 240), "timeline_rows", "actions": [{"id", "t",
 * "action", "mode", "code", "risk", "group", "usage_row", "reason", "evidence"}], "signals":
 * the latest score's {"signal": [value, score]} | null, "group_members": [...]}. */
int guard_view_account(gw_db *db, const char *name_or_id, double now, size_t max_points, char **json_out);
/* The admin API routes of the guard, for serve_options.admin_routes (admin key required):
 *   GET  /admin/api/guard/accounts                      guard_view_accounts
 *   GET  /admin/api/guard/accounts/{name|#id}?points=N  guard_view_account
 *   POST /admin/api/guard/accounts/{name|#id}/release   {"group": false, "note": "..."}:
 *        guard_release (active again, throttle undone, recorded; a running guard starts the
 *        account afresh), answered with the account's view. */
void guard_admin_routes(serve_admin_routes *out);

#endif /* RETORT_GUARD_H */
