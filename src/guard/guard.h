/*
 * guard.h — the guard room: the pure detection core. Detect accounts that harvest the API for
 * distillation and link accounts that act as one (sybils), from guard_event values only: no
 * database, no clock, no threads, no HTTP. It depends on src/base alone; the guard inside a
 * server (hooks, enforcement, the guard tables, admin views, calibrate, replay-eval) is
 * src/defend, the traffic simulator src/sim (docs/architecture.md draws the rooms).
 *
 * Layers, bottom up (each usable on its own; tests drive the lower ones with crafted input):
 *   sketches   O(1) streaming statistics: n-aware exponential means, decaying counters,
 *              MinHash of word shingles, random Fourier features (an RBF kernel for MMD),
 *              SimHash cells of embeddings, and the Shapiro–Wilk W (for the PRADA baseline).
 *   policy     thresholds and weights (JSON file; safe defaults without one).
 *   reference  what was learnt from BENIGN traffic only: the RFF map, the benign mean
 *              embedding, per-signal benign levels, benign template bands; fitted from events
 *              (guard_reference_fit; src/defend's `retort guard calibrate` reads them from a
 *              database), saved and loaded as JSON.
 *   detector   per-account state (bounded: a few KiB each), per-request signals, risk, account
 *              linking (union–find over pair evidence), escalation verdicts, explanations.
 *              It sees guard_event values and returns verdicts.
 *   baselines  the streaming state of the PRADA detector (Juuti et al. 2019) the evaluation
 *              and the calibration replay stored traffic through.
 *
 * Signals (see docs/guard.md for the reasoning and the calibration):
 *   behaviour  rate, volume, baseline (rate vs the account's own past), limit_pressure (429s),
 *              concurrency, regularity (inter-arrival), around_clock, linked (group size).
 *              Their weighted sum is CAPPED below the suspend threshold: heavy benign users
 *              exist, so volume and timing alone never suspend.
 *   api use    logprobs, saturation (the max_tokens that applied reached), token_ratio.
 *   content    shift (MMD over the served model's own prompt hidden states to the nearest of
 *              the benign profiles: the pooled benign mean and single benign accounts'),
 *              template (density of MinHash near-duplicates and shared prefixes),
 *              coverage (distinct SimHash cells of the embeddings),
 *              drift (the account's recent prompts against its own history: a switch from use to
 *              harvest is seen within ~drift_window prompts of the switch, however long the warm-up),
 *              switch (api: the recent window of non-content features against the account's own
 *              history: a switch to harvesting that the embedding does not separate),
 *              cohort (population level: the union of recent low-volume accounts' prompts against
 *              the benign profiles, times this account's alignment with that shift; aligned members
 *              get `cohort` link evidence, so a swarm of unremarkable keys can be linked and pooled).
 *   budget     harvest: the value served (completion tokens x log-prob detail, repeats at a tenth),
 *              decaying over budget_tau, per account and summed over a linked group; compared with
 *              the budgets directly (flag / throttle / suspend), not part of the risk sum. Bound:
 *              an account or group is served at most e x budget_suspend (x its tier's budget_x) in
 *              any budget_tau window before it is suspended, plus one answer and those in flight.
 *   population the harvest value served to newly active low-volume accounts, one decaying sum
 *              against budgets calibrated on the benign population's aggregate; while it is
 *              over one, the members that took the most are flagged / throttled / suspended
 *              (a swarm of unlinked keys is seen in total where no key or link fires).
 * Tiers (standard, trusted, eval, allow, or the policy's) scale the risk thresholds and budgets
 * per account; an exempt tier is flagged at most.
 * Each signal's score is 0 at or below its benign level, 1 at or above its attack level,
 * linear between (api and content: up to 1 + content_overshoot far beyond it); risk =
 * min(behaviour_cap, behaviour) + sum of min(signal_cap, api or content contribution), so no
 * single signal suspends alone. Sustained extreme volume throttles (extreme_rate). Volume
 * counts answers (n choices), and a prompt the account sent before adds nothing to the
 * content signals. A linked group is scored on its members' pooled statistics and acted on
 * as one.
 *
 * Threading: the detector is not thread-safe (the runtime holds one lock around it); sketches
 * and policy are plain values.
 *
 * What this is not: a rate limiter (src/gateway), a watermark (src/mark), the HTTP server
 * (src/serve), or anything that stores or enforces (src/defend).
 */
#ifndef RETORT_GUARD_H
#define RETORT_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../base/base.h"

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
    GUARD_SIG_DRIFT,        /* unbiased MMD^2 (x1000) of the account's last drift_window prompts to
                               its own history (the shift window): a switch from use to harvest */
    GUARD_SIG_COHORT,       /* population: the account's own shift (x1000, unbiased) along the
                               direction the union of recent low-volume accounts' prompts moved
                               from the benign profiles (while that move is significant) */
    GUARD_SIG_SWITCH,       /* change of how the API is used: the account's last drift_window
                               requests against its own history (shift_window) on non-content
                               features - pace, saturation, token ratio, log-prob detail, new
                               prompts, explicit max_tokens - each change towards harvesting as a
                               squared z, summed (a switch from use to harvest whatever the text) */
    GUARD_SIG_HARVEST,      /* harvest value served (decaying, tau budget_tau; budget family) */
    GUARD_SIG_COUNT
} guard_signal;
/* The budget family is not part of the risk sum: its one signal, harvest, is compared with the
 * policy's budgets (flag / throttle / suspend) directly. */
typedef enum {
    GUARD_FAMILY_BEHAVIOUR = 0,
    GUARD_FAMILY_API = 1,
    GUARD_FAMILY_CONTENT = 2,
    GUARD_FAMILY_BUDGET = 3
} guard_family;
const char *guard_signal_name(guard_signal s);
guard_family guard_signal_family(guard_signal s);
int guard_signal_from_name(const char *name); /* -1 if unknown */

typedef struct {
    double weight;  /* contribution to risk at full score */
    double benign;  /* score 0 at or below (above, when benign > attack: reversed signals) */
    double attack;  /* score 1 at or beyond */
    double min_n;   /* observations before the signal counts */
} guard_signal_policy;

/* The graded ladder (issue 16): flag, throttle, require verification, suspend. verify is enforced
 * as a suspension is (the account refused until an operator releases it or puts it in a tier:
 * the operator confirms a verification done out of band); it is recorded as its own action, so
 * that evaluations and operators tell an account asked to verify from a suspended one. */
typedef enum {
    GUARD_ACT_NONE = 0,
    GUARD_ACT_FLAG = 1,
    GUARD_ACT_THROTTLE = 2,
    GUARD_ACT_VERIFY = 3,
    GUARD_ACT_SUSPEND = 4
} guard_action;
const char *guard_action_name(guard_action a);

/* Account tiers: an operator puts an account in a tier (`retort guard tier`, the admin API);
 * the tier scales the risk thresholds and the harvest budgets, and an exempt tier (an
 * allow-list) is never throttled or suspended by the guard (flagged at most). Tier 0 is
 * "standard" (x1): every account not put elsewhere. */
#define GUARD_MAX_TIERS 8
#define GUARD_TIER_NAME_MAX 32
typedef struct {
    char name[GUARD_TIER_NAME_MAX];
    double risk_x;   /* flag / throttle / suspend risk thresholds times this */
    double budget_x; /* harvest budgets times this */
    int exempt;      /* 1: never above flag (allow-list) */
} guard_tier;

typedef struct {
    guard_signal_policy sig[GUARD_SIG_COUNT];
    double behaviour_cap;      /* behaviour signals together contribute at most this */
    double content_overshoot;  /* a content signal beyond its attack level scores up to 1 + this,
                                  reached at 4x the attack level (log scale); 0 = no overshoot.
                                  Applies to the api and content families. */
    double signal_cap;         /* one api or content signal contributes at most this (below
                                  suspend_at: suspension needs two signals, or one and behaviour) */
    double extreme_rate;       /* rate at or above this many times its attack level, with volume at
                                  its attack level: at least throttle, whatever the risk (0 = off) */
    /* harvest budget: the value an account (a linked group: its members' sum) was served, in
     * completion-token units — each answer's completion tokens x (1 + logprob_alt x (1 +
     * top_logprobs)) when log-probs were returned, x repeat_value for a prompt the account sent
     * before — kept as a decaying sum (tau budget_tau). At budget_flag the account is flagged, at
     * budget_throttle throttled, at budget_suspend suspended until an operator verifies it
     * (release or a tier), whatever the risk. Bound: docs/guard.md "Signals". */
    double budget_tau;
    double budget_flag, budget_throttle, budget_suspend;
    double logprob_alt;        /* value of one log-prob entry (the chosen token's or an alternative) */
    double repeat_value;       /* share a repeated prompt's answer counts (temperature > 0 resamples) */
    /* population budget (issue 16): the harvest value served to the population of newly active
     * low-volume accounts (first seen less than cohort_age_s ago, at most cohort_max_answers
     * served, in a tier that is not exempt and not scaled up: an operator vouched for those),
     * a decaying sum (tau pop_tau). Its budgets are absolute (pop_flag/throttle/suspend > 0), or
     * pop_*_x times the benign population's steady-state aggregate that a calibration measured
     * (guard_reference.pop_level); off (0) without either. While the sum is over a budget, the
     * members that took the most are acted on: flag, throttle and verification (pop_verify: the
     * member is refused until an operator confirms a verification) above pop_member_low (a typical
     * benign new user's value: the calibration's 0.75 quantile), suspension above pop_member_high (the
     * calibration's benign maximum; below it a member under suspension pressure is asked to
     * verify) - so a swarm of unlinked keys as a whole is held to its
     * stated share even where no account or link fires. docs/guard.md "Population budget".
     * The population hold bounds the total, whatever the number of keys: while the sum is at
     * pop_hold or more, members at pop_member_low or more are held (their requests answered 429
     * with a Retry-After, nothing recorded against them), and while it is at pop_hold_all or
     * more every member is - so the population's decayed sum stays under pop_hold_all (plus the
     * answers in flight), and it is served less than pop_hold_all x (1 + L / pop_tau) in any
     * period of length L (guard_detector_population_hold). Absolute (> 0), or pop_hold_x /
     * pop_hold_all_x times the calibrated aggregate (a policy with absolute budgets and no
     * absolute hold has none); 0 = that step off. */
    double pop_tau;
    double pop_flag, pop_throttle, pop_verify, pop_suspend;
    double pop_flag_x, pop_throttle_x, pop_verify_x, pop_suspend_x;
    double pop_member_low, pop_member_high;
    double pop_hold, pop_hold_all, pop_hold_x, pop_hold_all_x;
    guard_tier tiers[GUARD_MAX_TIERS];
    size_t n_tiers;            /* >= 1; tiers[0] is "standard" */
    double flag_at, throttle_at, suspend_at; /* risk thresholds */
    double min_requests_act;   /* an account (or group) needs this many served answers (a request
                                  with n choices serves n) before throttle/suspend (flag: half) */
    int64_t throttle_rpm;      /* rpm given to throttled accounts */
    /* windows */
    double window;             /* requests in the exponential means (signals) */
    double shift_window;       /* embeddings in the shift mean (also the drift signal's history) */
    double drift_window;       /* embeddings in the drift signal's recent mean (< shift_window) */
    double template_sim;       /* MinHash similarity that counts as a near-duplicate */
    size_t template_recent;    /* prompts compared against (<= GUARD_RECENT) */
    double rate_tau, volume_tau, baseline_tau; /* seconds */
    double baseline_min_age;   /* seconds of history before `baseline` counts */
    double around_clock_min_age;
    /* linking */
    double link_threshold;     /* pair score to link */
    int link_min_kinds;        /* distinct kinds of evidence needed */
    double link_w_ip, link_w_burst, link_w_template, link_w_timing, link_w_fingerprint, link_w_cohort;
    /* the cohort (population-level detection): accounts younger than cohort_age_s (since sign-up,
     * or their first request) with at most cohort_max_answers served; their new prompts' features
     * pooled in one exponential mean (window cohort_window) */
    double cohort_age_s, cohort_max_answers, cohort_window;
    double cohort_align;       /* cosine of a member's offset with the cohort's at which, its cohort
                                  signal at the attack level, it gets cohort link evidence with the
                                  other such members */
    double burst_window;       /* seconds: accounts created this close are a burst ... */
    int burst_min;             /* ... when at least this many */
    int ip_max_accounts;       /* addresses shared by more accounts are ignored (big NATs) */
    int fp_max_accounts;       /* fingerprints shared by more accounts are ignored (a popular client) */
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
/* Index of the tier named name (-1: none). */
int guard_policy_tier(const guard_policy *p, const char *name);

/* ---------------------------------------------------------------- reference */

#define GUARD_RFF_M 128

/* What traffic a reference saw (issue 18: a reference calibrated on chat-only questions does
 * not carry over to completions users or apps). Kinds of request, each an event may have: */
typedef enum {
    GUARD_COV_CHAT = 0,       /* /v1/chat/completions */
    GUARD_COV_COMPLETIONS,    /* /v1/completions */
    GUARD_COV_LOGPROBS,       /* log-probs asked for */
    GUARD_COV_NO_MAX_TOKENS,  /* max_tokens left out (the server's maximum applied) */
    GUARD_COV_MULTI,          /* n > 1 */
    GUARD_COV_COUNT
} guard_coverage_kind;
/* ... and populations: benign accounts by answers per active day */
typedef enum { GUARD_POP_LIGHT = 0 /* < 50 */, GUARD_POP_MEDIUM /* < 500 */, GUARD_POP_HEAVY, GUARD_POP_COUNT } guard_population;
#define GUARD_COVERAGE_MIN 10 /* events of a kind a reference must have seen to cover it */
const char *guard_coverage_name(guard_coverage_kind k);
const char *guard_population_name(guard_population p);
typedef struct guard_event guard_event; /* below */
/* Bit k set: the event is of kind k. */
unsigned guard_event_coverage(const guard_event *ev);

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
    /* the benign population (see guard_policy.pop_*): its steady-state aggregate harvest value
     * (the largest over the calibration of the decayed sum over pop_tau, divided by the share of
     * its steady state reached; NaN = not measured) and its members' per-account maxima */
    double pop_level, pop_member_typical, pop_member_high;
    size_t n_accounts, n_events;     /* what it was calibrated on */
    int has_coverage;                /* 0: a reference from before coverage was recorded */
    double cov_events[GUARD_COV_COUNT];     /* benign events of each kind */
    double cov_accounts[GUARD_POP_COUNT];   /* benign accounts of each population */
    char source[256];
} guard_reference;
void guard_reference_init(guard_reference *r);
void guard_reference_free(guard_reference *r);
int guard_reference_load(guard_reference *r, const char *path);
int guard_reference_save(const guard_reference *r, const char *path);
/* Kinds of the event the reference saw fewer than GUARD_COVERAGE_MIN times (bit k = kind k):
 * its levels may not hold for that traffic. 0 when the reference has no coverage record. */
unsigned guard_reference_uncovered(const guard_reference *r, const guard_event *ev);
/* Print the coverage ("coverage: chat 1200, completions 0 (NOT COVERED), ...") to f. */
void guard_reference_coverage_print(const guard_reference *r, FILE *f);

/* Apply the reference's benign levels to a policy: benign := level, and the attack level
 * moves with it so the ramp keeps its width (attack - benign) from the policy. A share signal
 * (limit_pressure, concurrency, logprobs, saturation, template: values in [0, 1]) is never put
 * out of reach: its attack level is capped at 1 and its benign level at 1 - width/2. */
void guard_policy_apply_reference(guard_policy *p, const guard_reference *r);

/* ---------------------------------------------------------------- events */

/* One request as the detector sees it (built from the hook arguments, or read back). */
struct guard_event {
    int64_t row_id;            /* usage ledger row */
    double t;                  /* clock time (simulated under --sim-clock) */
    int64_t account_id;
    double account_created_at;
    uint64_t client_hash;      /* hash of the peer address (0: unknown) */
    uint64_t client_fp;        /* fingerprint of the client software: User-Agent and header-name
                                  order (serve_client_fingerprint; 0: unknown) */
    int status;                /* HTTP status */
    int64_t prompt_tokens, completion_tokens, max_tokens;
    int max_tokens_given;      /* max_tokens was in the request body */
    int logprobs, top_logprobs;
    int concurrent;            /* another request of the account was in flight (used when
                                  t_end is 0; otherwise the detector measures it, below) */
    double t_end;              /* when the answer was complete, on t's clock (0: unknown). With it
                                  the detector counts a request concurrent when it arrived before
                                  an earlier-seen request of the account had ended: [t, t_end)
                                  intervals, end exclusive, so back-to-back is sequential */
    int n_choices;             /* answers the request asked for (`n`; 0 counts as 1) */
    int endpoint;              /* 1 chat, 2 completions, 0 unknown */
    uint64_t prompt_hash;      /* of the user text: exact repeats are not templates, and a prompt
                                  the account sent before adds nothing to the content signals */
    uint64_t prefix_hash;      /* of its first three words (0: none): fixed-prefix templates */
    int has_minhash;
    uint32_t minhash[GUARD_MINHASH_K];
    const int8_t *emb;         /* (emb_dim) quantised unit embedding, or NULL */
    size_t emb_dim;
    float emb_scale;
};


/* Fit a reference from stored events (in row order; the events of benign accounts are used,
 * split in two halves by a keyed hash of the account id — see reference.c). Pure: no I/O but
 * the optional progress lines to log. On failure *out is empty and the error names origin. */
typedef struct {
    const guard_policy *policy; /* the detector's policy for the levels replay; NULL: defaults */
    double quantile;            /* of benign per-account maxima, for the levels (default 0.99) */
    uint64_t seed;
    int all_benign;             /* 1: every account is benign; 0: only those in benign_ids */
    const int64_t *benign_ids;
    size_t n_benign_ids;
    const char *origin;         /* what the events came from: errors and reference.source */
} guard_fit_options;
int guard_reference_fit(guard_reference *out, const guard_event *ev, size_t n, const guard_fit_options *o, FILE *log);

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
    double n_ok;                   /* answers served (a request with n choices serves n) */
    double n_new;                  /* served requests with a prompt new to the account */
    double first_t, last_t;
    guard_action by_budget;        /* the level the harvest budget alone asks for (tier applied) */
    guard_action by_population;    /* the level the population budget asks for this member (none
                                      when not a member or the population is under its budgets) */
    double budget_suspend;         /* the suspension budget that applied (tier applied) */
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
    int concurrent;               /* this event counted as concurrent */
    guard_action new_level;
    int population_member;        /* the account is in the population (newly active, low volume) */
    double population_value;      /* the population's decayed harvest value now */
    size_t n_affected;            /* accounts whose level rose now (the group acts as one) */
    int64_t affected[GUARD_MAX_AFFECTED];
} guard_verdict;

int guard_detector_new(guard_detector **out, const guard_policy *p, const guard_reference *ref);
void guard_detector_free(guard_detector *d);
/* Feed one event (events of one account in time order; accounts interleave freely). */
int guard_detector_observe(guard_detector *d, const guard_event *ev, guard_verdict *out);
/* Forget an account's state and group membership (after `retort guard release`). */
void guard_detector_release(guard_detector *d, int64_t account_id);
/* Set an account's action level (creating its state if needed): a detector rebuilt from stored
 * events takes the levels that were acted on, not those the replay reached, so anything beyond
 * them escalates (and is enforced) on the next event. -1 when out of memory. */
int guard_detector_set_level(guard_detector *d, int64_t account_id, guard_action level);
/* Put an account in tier `tier` (an index into the policy's tiers; out of range: standard),
 * creating its state if needed. Kept across a release. -1 when out of memory. */
int guard_detector_set_tier(guard_detector *d, int64_t account_id, size_t tier);
size_t guard_detector_tier(const guard_detector *d, int64_t account_id);
/* Every account's action level back to none (state and links kept). */
void guard_detector_reset_levels(guard_detector *d);
/* Current action level of an account (GUARD_ACT_NONE if unknown). */
guard_action guard_detector_level(const guard_detector *d, int64_t account_id);
/* The population hold (guard_policy.pop_hold*): 1 when account_id's request at time t must wait
 * (it is a member of the population - an account not seen yet is one - and the population's
 * sum is at its hold: pop_hold for a member whose own value is at least pop_member_low,
 * pop_hold_all for any member), with *retry_s the seconds until the sum would decay under that
 * hold with nothing more served (at least 1); 0 otherwise (*retry_s 0). The caller answers 429
 * and does not serve the request; the detector records nothing. */
int guard_detector_population_hold(const guard_detector *d, int64_t account_id, double t, double *retry_s);
/* JSON evidence of an account now: {"account", "risk", "level", "account_assessment",
 * "group": {"id", "members", "assessment"}, "signals": {...}, "window": {...},
 * "linked": [{"account", "score", "ip", "burst", "template", "timing"}]}. malloc'ed text. */
char *guard_detector_evidence(guard_detector *d, int64_t account_id);
/* The kinds of evidence a link between two accounts can rest on, a bit each, as the detector
 * counts them toward link_min_kinds; guard_link_kinds gives the bits present in a pair's
 * evidence values (the "ip", "burst", "template", "fingerprint", "cohort" and "timing" of a
 * "linked" entry above). guard_link_kind_name(bit) says what one is, e.g. "shared client address". */
enum {
    GUARD_LINK_IP = 1, GUARD_LINK_BURST = 2, GUARD_LINK_TEMPLATE = 4,
    GUARD_LINK_FINGERPRINT = 8, GUARD_LINK_COHORT = 16, GUARD_LINK_TIMING = 32,
};
#define GUARD_LINK_KIND_COUNT 6
unsigned guard_link_kinds(double ip, double burst, double tmpl, double fingerprint, double cohort, double timing);
const char *guard_link_kind_name(unsigned bit);
/* Short reason code of an assessment's strongest non-behaviour signals, e.g. "G-SHIFT+SAT". */
void guard_reason_code(const guard_assessment *a, int grouped, char *out, size_t cap);
/* Accounts linked with account_id (its group, itself included); *out malloc'ed. */
int guard_detector_group(const guard_detector *d, int64_t account_id, int64_t **out, size_t *n);
/* Number of accounts with state; memory held (bytes); the fixed state of one account. */
size_t guard_detector_accounts(const guard_detector *d);
size_t guard_detector_bytes(const guard_detector *d);
size_t guard_detector_account_bytes(void);

/* ---------------------------------------------------------------- baselines */

/* PRADA (Juuti et al., 2019), streaming over one account's prompts: for each query x, the
 * minimum L2 distance d to the account's growing set G; d joins the distance list D; x joins G
 * when d > mean(D) - std(D). An attack is flagged when Shapiro–Wilk W(D) < delta (checked once
 * |D| >= min_n). Embeddings are the served model's unit prompt hidden states; one class. */
typedef struct {
    size_t dim;
    float *g;         /* (cap_g, dim) the growing set */
    size_t n_g, cap_g;
    double *dist;     /* (cap_d) D */
    size_t n_d, cap_d;
    double sum, sum2; /* of D */
} guard_prada;
void guard_prada_init(guard_prada *p, size_t dim);
void guard_prada_free(guard_prada *p);
/* Add a query (G is capped at max_g: later queries still get distances, G stops growing).
 * Returns -1 when out of memory. */
int guard_prada_add(guard_prada *p, const float *x, size_t max_g);
/* W of D now (NaN while |D| < 3). */
double guard_prada_w(const guard_prada *p);

#endif /* RETORT_GUARD_H */
