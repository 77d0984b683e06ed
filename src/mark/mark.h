/*
 * mark.h — text watermarks in the sampler, their detectors with exact p-values, and the
 * radioactivity tests that show a suspect model was trained on watermarked text.
 *
 * Schemes (all keyed by a 32-byte secret; every pseudo-random value is a keyed hash of
 * token ids, never a draw from an RNG stream, so detection needs only the key and the text):
 *
 *  - MARK_KGW (Kirchenbauer et al. 2023, "LeftHash"): token v following the window
 *    w = (x[t-h] .. x[t-1]) is green iff  PRF_green(w, v) < gamma * 2^64.  The sampler adds
 *    delta to the logits of green tokens (a logits processor: before temperature, top-k and
 *    top-p, so the effective bias is delta / temperature).
 *  - MARK_KGW_SELFHASH (Kirchenbauer et al. 2023b, "SelfHash" = anchored min-hash with the
 *    candidate itself in the window): seed(w, v) = min over u in {w[0..h), v} of
 *    PRF_seed(u, v); v is green iff PRF_green(seed, v) < gamma * 2^64. Same bias.
 *  - MARK_GUMBEL (Aaronson 2022, Gumbel-max): r_v = PRF_gumbel(w, v) mapped to (0, 1); the
 *    sampler's final draw is replaced by argmax over candidates with p_v > 0 of
 *    ln(r_v) / p_v (= argmax r_v^(1/p_v)): distortion-free per step, deterministic given w.
 *
 * PRF: SipHash-2-4 (libsodium crypto_shorthash; an inlined copy is used on the hot path and
 * checked against libsodium by the tests) under 16-byte subkeys derived from the master key
 * with crypto_kdf_derive_from_key (context "rtmark01"; subkey ids 1 green, 2 seed, 3 gumbel).
 * Input: the token ids as little-endian int32, window oldest first, then the candidate.
 * Positions before the first token of a sequence are the padding id MARK_PAD (-1), so the
 * sampler marks from the first generated token; the detector scores only positions with a
 * full window of real tokens.
 *
 * The scoring unit. Every scored position contributes its "score key", the exact PRF input
 * that decides it: (w, v) for KGW and Gumbel, (seed(w, v), v) for SelfHash. Each distinct
 * score key is scored at most once (repeats would be copies of one coin flip). Under the null
 * (text independent of the key) distinct score keys give independent Bernoulli(gamma) green
 * flags (KGW) or independent U(0,1) values (Gumbel), so the p-values are exact:
 *   KGW:    p = P(Binomial(n, gamma) >= green)            (exact tail, Loader's method)
 *   Gumbel: p = P(Gamma(n, 1) >= sum -ln(1 - r))         (exact Poisson-sum form)
 * Exclusions (radioactivity): score keys (MARK_EXCLUDE_TUPLES) or windows
 * (MARK_EXCLUDE_WINDOWS) that occur in a reference text — the prompts, or the text read in
 * open mode — are never scored. Windows: the green flags of an excluded-free window never
 * influenced the reference text, so the test stays exact. Tuples: the flags that were not
 * realised in a watermarked reference text are, given that text, tilted towards red (a
 * green alternative only lowers the chosen token's probability), so the test is conservative
 * (Harris's inequality) — valid, and it keeps windows the prompts share with the output.
 *
 * Recorded parameters ("mark config"), written by generate/serve and read by the detector:
 *   {"retort_watermark":1,"scheme":"kgw","gamma":0.25,"delta":2,"context":1,
 *    "prf":"siphash24-kdf-rtmark01","key_id":"0123456789abcdef"}
 * key_id is a fingerprint of the key (BLAKE2b-64 of it), not the key; a detector given a key
 * file whose id differs refuses to run. Serve may store the string as-is in its config table.
 *
 * Key file: 64 hexadecimal characters (32 bytes), optionally followed by whitespace; written
 * with mode 0600 by mark_key_save (`retort watermark keygen`).
 *
 * Threads: a mark_ctx is read-only after mark_ctx_init; one may serve many samplers and
 * detector threads at once. A mark_scorer is single-threaded.
 *
 * What this is not: the sampler itself (src/model), the HTTP side (src/serve), or a
 * training recipe (students for the experiments come from `retort train` / `retort sft`).
 */
#ifndef RETORT_MARK_H
#define RETORT_MARK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../model/generate.h"
#include "../model/model.h"

/* ---------------------------------------------------------------- parameters and key */

typedef enum { MARK_KGW = 0, MARK_KGW_SELFHASH = 1, MARK_GUMBEL = 2 } mark_scheme;

#define MARK_MAX_CONTEXT 8 /* largest window h */
#define MARK_KEY_BYTES 32
#define MARK_PAD (-1)      /* token id of positions before the start of a sequence */

typedef struct {
    mark_scheme scheme;
    double gamma;   /* green fraction, in [0.001, 0.999] (KGW variants) */
    double delta;   /* logit bias of green tokens, >= 0 (KGW variants) */
    size_t context; /* h: tokens of the window, 1..MARK_MAX_CONTEXT */
} mark_params;

/* gamma 0.25, delta 2.0, h 1 (KGW); SelfHash and Gumbel: h 4 (see mark_core.c). */
mark_params mark_params_defaults(mark_scheme s);
/* Errors name the field and the allowed range. */
int mark_params_validate(const mark_params *p);
const char *mark_scheme_name(mark_scheme s); /* "kgw", "kgw-selfhash", "gumbel" */
int mark_scheme_parse(const char *s, mark_scheme *out);

typedef struct mark_key {
    uint8_t bytes[MARK_KEY_BYTES];
} mark_key;

int mark_key_generate(mark_key *k);              /* from the OS CSPRNG */
void mark_key_from_seed(mark_key *k, uint64_t seed); /* deterministic: tests and control keys */
int mark_key_load(mark_key *k, const char *path);
int mark_key_save(const mark_key *k, const char *path); /* atomic, mode 0600 */
/* 16 hex characters + NUL: a fingerprint that identifies the key without revealing it. */
void mark_key_id(const mark_key *k, char out[17]);

/* ---------------------------------------------------------------- context and PRF */

typedef struct mark_ctx {
    mark_params p;
    uint64_t k_green[2]; /* SipHash-2-4 subkeys (k0, k1 as little-endian words) */
    uint64_t k_seed[2];
    uint64_t k_gumbel[2];
    uint64_t threshold;  /* green iff PRF < threshold = gamma * 2^64 */
    char key_id[17];
} mark_ctx;

int mark_ctx_init(mark_ctx *c, const mark_params *p, const mark_key *k);
/* The exact green probability of one score key under the null: threshold / 2^64 (equals
 * gamma for every gamma >= 2^-12). */
double mark_ctx_gamma(const mark_ctx *c);

/* SipHash-2-4 of `len` bytes under a 16-byte key (the inlined copy; equals crypto_shorthash). */
uint64_t mark_siphash24(const uint8_t key[16], const void *data, size_t len);

/* window: the h = c->p.context previous tokens, oldest first (MARK_PAD before the start). */
int mark_is_green(const mark_ctx *c, const int32_t *window, int32_t token);
/* Gumbel: r in (0, 1) for (window, token). */
double mark_gumbel_r(const mark_ctx *c, const int32_t *window, int32_t token);

/* The score key of (window, token): MARK_KEY_WORDS words. */
#define MARK_KEY_WORDS (MARK_MAX_CONTEXT + 1)
typedef struct {
    uint32_t w[MARK_KEY_WORDS]; /* unused words are 0 */
} mark_score_key;
/* Fill *key; returns the number of meaningful words (h+1 for KGW/Gumbel, 3 for SelfHash). */
size_t mark_score_key_of(const mark_ctx *c, const int32_t *window, int32_t token, mark_score_key *key);

/* ---------------------------------------------------------------- sampler hooks */

/* Attach the scheme to a sampler: KGW variants add a logits processor, Gumbel sets the token
 * selector. c must outlive the sampler; it is only read. */
int mark_attach(sampler *s, const mark_ctx *c);
/* The same in callback shape (ud = a const mark_ctx *), e.g. serve_options.sampler_attach. */
int mark_attach_cb(void *ud, sampler *s);
/* The green flags of every token for the window at the end of history (n_history tokens):
 * green (V) gets 0/1. Exposed for tests and for serve's per-token annotations. */
void mark_green_mask(const mark_ctx *c, const int32_t *history, size_t n_history, size_t V, uint8_t *green);

/* ---------------------------------------------------------------- statistics */

/* ln P(Binomial(n, p) >= k), exact up to rounding (Loader's saddle-point dbinom + summed
 * tail; relative error ~1e-13). k > n gives -INFINITY; k == 0 gives 0. */
double mark_binom_log_sf(uint64_t k, uint64_t n, double p);
/* ln P(Gamma(n, 1) >= s) = ln(e^-s sum_{j<n} s^j / j!) for integer n >= 1 (Poisson form). */
double mark_gamma_log_sf(uint64_t n, double s);
/* Kolmogorov–Smirnov test of uniformity on [0, 1]: returns D and sets *pvalue (asymptotic
 * Kolmogorov distribution with Stephens' small-sample correction). Sorts p in place. */
double mark_ks_uniform(double *p, size_t n, double *pvalue);

/* ---------------------------------------------------------------- scoring */

typedef enum { MARK_EXCLUDE_NONE = 0, MARK_EXCLUDE_TUPLES = 1, MARK_EXCLUDE_WINDOWS = 2 } mark_exclude;
const char *mark_exclude_name(mark_exclude e); /* "none", "tuples", "windows" */
int mark_exclude_parse(const char *s, mark_exclude *out);

typedef struct mark_set mark_set; /* hash set of fixed-width word tuples (mark_score.c) */

typedef struct {
    mark_ctx ctx;
    mark_set *seen;     /* score keys already scored */
    mark_set *excl;     /* excluded score keys or windows (NULL when none) */
    mark_exclude excl_mode;
    size_t positions;   /* positions offered for scoring */
    size_t no_window;   /* skipped: window reaches before the start of the sequence */
    size_t duplicates;  /* skipped: score key already scored */
    size_t excluded;    /* skipped: excluded by the reference text */
    size_t scored;      /* distinct score keys scored */
    size_t green;       /* KGW: green among them */
    double score;       /* Gumbel: sum of -ln(1 - r) */
} mark_scorer;

int mark_scorer_init(mark_scorer *s, const mark_ctx *c);
void mark_scorer_free(mark_scorer *s);
/* Clear the counts and the dedup set (keeps exclusions). */
void mark_scorer_reset(mark_scorer *s);
/* Record the reference text toks (n) for exclusion: every (window, token) of it with a full
 * window — its score keys (TUPLES) or its windows (WINDOWS). One mode per scorer. */
int mark_scorer_exclude(mark_scorer *s, const int32_t *toks, size_t n, mark_exclude mode);
/* Score positions [from, n) of toks (n), where toks[0..from) is context (a prompt). */
int mark_scorer_add(mark_scorer *s, const int32_t *toks, size_t n, size_t from);
/* Reading mode: pred[i] is a model's prediction for position i given text[0..i); score the
 * pairs (text[i-h..i), pred[i]) for i in [from, n). */
int mark_scorer_add_predictions(mark_scorer *s, const int32_t *text, const int32_t *pred, size_t n,
                                size_t from);

typedef struct {
    mark_scheme scheme;
    size_t positions, scored, green, duplicates, excluded, no_window;
    double score;      /* Gumbel sum; KGW: green count */
    double z;          /* KGW: (green - gamma n) / sqrt(n gamma (1-gamma)); Gumbel: (score - n)/sqrt(n) */
    double log_p;      /* natural log of the p-value (0 when nothing was scored) */
    double p_value;    /* exp(log_p) (may underflow to 0: use log10_p) */
    double log10_p;
} mark_result;
void mark_scorer_result(const mark_scorer *s, mark_result *r);
/* Add the result to the JSON object obj (after what the caller put first): scheme
 * parameters, key_id, tokens_scored, green, z, p_value, log10_p_value, detected (at alpha)
 * and the skip counts. Print with JSON_REAL_PRECISION(12) (the Gumbel score needs 1e-6 relative). */
int mark_result_json(const mark_result *r, const mark_ctx *c, double alpha, json_t *obj);

/* ---------------------------------------------------------------- recorded parameters */

/* The mark config JSON (see the top of this file); key may be NULL (no key_id). */
int mark_config_to_json(const mark_params *p, const mark_key *key, rt_buf *out);
/* Parse it back. key_id gets the recorded id or "" if none. what: a name for errors. */
int mark_config_from_json(const char *json, size_t len, const char *what, mark_params *p, char key_id[17]);
int mark_config_load(const char *path, mark_params *p, char key_id[17]);
int mark_config_save(const char *path, const mark_params *p, const mark_key *key);

/* What a command line gives (serve and generate parse flags into this; see cli_mark_opts in
 * src/cli/cli.h). Doubles NAN and context 0 mean "not given". */
typedef struct mark_options {
    const char *key_file;    /* the secret */
    const char *config_file; /* mark config JSON written earlier, or NULL */
    const char *config_json; /* or the JSON text itself (serve's server_config row), or NULL */
    const char *config_what; /* config_json's name in errors (e.g. "server_config of gw.db") */
    const char *server_db;   /* src/cli only (cli_mark_setup fills config_json from this gateway
                                database's "watermark" row); src/mark ignores it */
    const char *scheme;      /* NULL: from the config, else "kgw" */
    double gamma, delta;
    size_t context;
} mark_options;
void mark_options_init(mark_options *o);
/* Resolve: config file or JSON (if any; not both) first, then explicit flags, which must agree with the config
 * (a conflict is an error naming both); defaults fill the rest; the key is loaded and, when
 * the config records a key_id, checked against it. */
int mark_options_resolve(const mark_options *o, mark_ctx *c, mark_key *key_out);

/* ---------------------------------------------------------------- batched generation */

/* Generate completions for n prompts with one model, B sequences at a time (continuous
 * batching through the KV-cache decoder). Each prompt's completion stops at max_new tokens
 * or at EOS (not included). When a sequence fills the context, its cache restarts from its
 * last ctx_len/2 tokens (a context shift, as llama.cpp does), so completions may be longer
 * than the context; prompts longer than ctx_len - 1 are cut to their last ctx_len/2 tokens.
 * The watermark always sees the whole history. mark may be NULL (no watermark). Sequence i uses sampler seed
 * p->seed + i, so results do not depend on the batch size. out[i] (malloc'ed, n_out[i]
 * tokens) receives completion i. */
int mark_generate(const model *m, const int32_t *const *prompts, const size_t *prompt_lens, size_t n,
                  size_t max_new, const sampler_params *p, const mark_ctx *mark, size_t batch,
                  int32_t **out, size_t *n_out, int show_progress);

/* Teacher-forced top-1 predictions: pred[i] (n) = argmax of the model's next-token logits
 * after toks[0..i], i.e. its guess for toks[i+1]. The text is cut into consecutive windows
 * of ctx_len tokens (each prediction sees the tokens of its window up to itself). nll (n, may
 * be NULL) gets -ln p(toks[i+1] | ...) for i < n-1 and 0 at n-1. */
int mark_predict(const model *m, const int32_t *toks, size_t n, int32_t *pred, float *nll);

/* ---------------------------------------------------------------- evidence over many texts */

/* A body of evidence: n token sequences, each scored from position from[i] on (what comes
 * before is context: a prompt); with pred == NULL the sequences' own tokens are scored
 * (detection, closed mode), otherwise pred[i][j] is a model's prediction for text[i][j]
 * (open / reading mode). The n_ref reference sequences (prompts, the text read) are recorded
 * for exclusion first. Dedup is global over all sequences. */
typedef struct {
    size_t n;
    const int32_t *const *text; /* (n) sequences */
    const size_t *len;          /* (n) */
    const size_t *from;         /* (n) first scored position; NULL = 0 */
    const int32_t *const *pred; /* (n) predictions aligned with text, or NULL */
    size_t n_ref;
    const int32_t *const *ref;  /* (n_ref) */
    const size_t *ref_len;      /* (n_ref) */
    mark_exclude exclude;
} mark_evidence;
int mark_evidence_score(const mark_ctx *c, const mark_evidence *e, mark_result *r);
/* The same test under n_keys control keys (mark_key_from_seed(seed + i), same parameters):
 * p_values (n_keys) get their p-values. Under the null these are uniform on [0, 1]. */
int mark_evidence_controls(const mark_params *p, const mark_evidence *e, size_t n_keys, uint64_t seed,
                           double *p_values);

/* ---------------------------------------------------------------- text records */

/* Texts for detection and the experiments. A file whose first non-blank character is '{'
 * is JSONL: one object a line with "prompt" (optional) and "completion" (or "text");
 * otherwise the file is plain text: with per_line, each non-empty line is one record whose
 * text goes to prompt (prompt files); without, the whole file is one completion. */
typedef struct {
    char *prompt;     /* NUL-terminated, or NULL */
    size_t prompt_len;
    char *completion; /* NUL-terminated, or NULL */
    size_t completion_len;
} mark_record;
int mark_records_load(const char *path, int per_line, mark_record **out, size_t *n);
void mark_records_free(mark_record *r, size_t n);
/* Append {"prompt": ..., "completion": ...} and a newline to b (bytes that are not valid
 * UTF-8 become U+FFFD, as JSON needs). prompt may be NULL (then omitted). */
int mark_record_jsonl(rt_buf *b, const char *prompt, size_t plen, const char *completion, size_t clen);

/* ---------------------------------------------------------------- experiments on text records */

/* The experiments `retort watermark` runs on loaded records (mark_files.c); the caller reads and
 * writes the files. what: the records' name in errors ("gen.jsonl"). */

/* T(prompt) ++ T(completion) into *out (malloc'ed, *n tokens); *from = the prompt's tokens.
 * prompt or completion may be NULL (none). */
int mark_encode_pc(const tokenizer *tok, const char *prompt, size_t plen, const char *completion, size_t clen,
                   int32_t **out, size_t *n, size_t *from);
/* Detection: each record re-tokenized with tok as prompt ++ completion, the prompt context only
 * (not scored), at most max_tokens completion tokens each (0 = all). per_record: res[i] (n) is
 * record i's own test; otherwise res[0] is one test over all of them (global dedup). */
int mark_detect_records(const mark_ctx *c, const tokenizer *tok, const mark_record *recs, size_t n,
                        const char *what, size_t max_tokens, int per_record, mark_result *res);
/* One completion per record's prompt (every record needs one) by mark_generate (mark NULL: no
 * watermark), appended to jsonl as {"prompt", "completion"} records in order; *total_tokens
 * gets the completion tokens generated. The model must carry its tokenizer. */
int mark_generate_records(const model *m, const mark_record *recs, size_t n, const char *what, size_t max_tokens,
                          const sampler_params *sp, const mark_ctx *mark, size_t batch, int show_progress,
                          rt_buf *jsonl, size_t *total_tokens);
/* The model's summed negative log-likelihood (*nll, nats) of the records' completion tokens
 * given their prompts (teacher-forced by mark_predict), over *count tokens; a record without a
 * prompt scores every token after its first. */
int mark_records_nll(const model *m, const mark_record *recs, size_t n, double *nll, size_t *count);
/* Random token edits of each completion (tokenized with tok): every token independently deleted
 * with probability del, else replaced with probability sub by a uniformly random non-special
 * token (one RNG stream from seed, in record order); decoded back and appended to jsonl with
 * the record's prompt. sub and del in [0, 1]. */
int mark_attack_records(const tokenizer *tok, const mark_record *recs, size_t n, double sub, double del,
                        uint64_t seed, rt_buf *jsonl);

/* ---------------------------------------------------------------- radioactivity */

/* Did a suspect model learn from text watermarked with c's key? Closed mode: the suspect
 * continues each record's prompt (samples times, sampler sp, batch at a time) and its
 * completions, re-tokenized with the watermark's tokenizer, are scored. Open mode: the
 * suspect reads each record's text token by token (it must share the watermark's
 * tokenizer) and its top-1 predictions are scored. The prompts (closed) or the read text
 * (open) are excluded as exclude says, so copying the input does not count. The same test
 * under n_controls fresh keys (from control_seed) gives control p-values (uniform when the
 * test is valid) with a KS test. */
typedef struct {
    model *suspect;             /* with its tokenizer */
    const char *suspect_name;   /* for the report */
    const tokenizer *wtok;      /* the watermark's tokenizer */
    const mark_ctx *mark;
    int closed;
    const mark_record *recs;    /* closed: prompts; open: texts (prompt optional) */
    size_t n_recs;
    const char *recs_name;      /* for errors */
    size_t samples, max_tokens, batch;
    sampler_params sp;
    mark_exclude exclude;
    double alpha;
    size_t n_controls;
    uint64_t control_seed;
    rt_buf *save;               /* closed: the completions as JSONL records, or NULL */
    int quiet;
} mark_radio_opts;
/* *out: {"mode", "suspect", "records", "sequences", "evaluated_tokens", "exclude", the
 * mark_result_json fields, "controls": {"n", "seed", "p_values", "min_p", "below_0.01",
 * "ks_d", "ks_p"}, "seconds": {"model", "scoring"}}. */
int mark_radioactivity(const mark_radio_opts *o, json_t **out);

/* ---------------------------------------------------------------- antidistillation sampling */

/* Antidistillation sampling (Savani et al. 2025, "Antidistillation Sampling"; our own code).
 * A proxy student with weights theta and the gradient g = grad_theta L_task(theta) of its mean
 * cross-entropy on a task's completions: training the proxy on token x after prefix h moves
 * theta by eta * grad log p(x | h), which changes the task loss by eta * (grad log p(x|h) . g).
 * That inner product is the directional derivative of log p(x | h) along g, estimated for the
 * whole vocabulary at once by a central difference of two proxy forward passes:
 *     b(x | h) = [log p(x | h; theta + eps u) - log p(x | h; theta - eps u)] / (2 eps),
 * u = g / |g| (a unit direction: eps is a distance in parameter space and lambda does not
 * depend on the task's loss scale; the paper's b is ours times |g|). The teacher's RAW logits
 * (before temperature, top-k, top-p, like the watermark's bias) become logits + lambda * b:
 * tokens that would lower the student's task loss (b < 0) are penalised. lambda = 0 leaves
 * the logits bit for bit as they were (the processor still runs).
 *
 * Cost per sampled token: two proxy decode rows (batched across the generator's sequences
 * with mark_adist_prepare, else single-row decodes) (KV caches under theta + eps u and
 * theta - eps u, kept per sequence slot) and two log-softmaxes over V. Memory: two copies of
 * the proxy's weights (perturbing one copy in place would rewrite every weight twice per
 * token and would invalidate each cache's keys and values) plus 2 KV caches per slot.
 *
 * Threads: one thread drives a mark_adist (the generator's thread; the processors of its slots
 * share its decoders). The proxy must share the teacher's vocabulary (same size, same bytes
 * for every token id): mark_adist_load refuses otherwise, naming the first differing id.
 * Not the watermark: both are logits processors and combine on one sampler (the shift is
 * added first when attached first, then the green bias; Gumbel replaces the final draw). */
typedef struct {
    double lambda;   /* shift scale (logits += lambda * b), >= 0 */
    double eps;      /* finite-difference step along u (default 1e-2), > 0 */
    size_t max_seqs; /* sequence slots (per-slot caches): the generator's max_seqs/batch (1) */
    size_t max_ctx;  /* proxy cache positions per slot (0 = the proxy's ctx_len); a longer
                      * history keeps its last max_ctx/2 tokens (a context shift) */
    double gate;     /* > 0: shift only positions where the teacher's top-1 raw logit leads the
                      * second by less than this (forced tokens are left alone, and cost no
                      * proxy work); 0 (default): every position */
    int task_scope;  /* mark_adist_load: which completion tokens the task loss scores (a
                      * mark_adist_scope; default MARK_ADIST_SCOPE_ALL) */
} mark_adist_params;
void mark_adist_defaults(mark_adist_params *p);

/* Which completion tokens of a task file the proxy's task loss (and so g) scores:
 * ALL: every completion token and the eos (the trace-learning loss; the default);
 * DIGITS: the tokens whose bytes hold an ASCII digit (the arithmetic, not the wording);
 * ANSWER: the tokens that overlap the completion's LAST run of ASCII digits (its final
 * number; a completion without a digit scores nothing). */
typedef enum { MARK_ADIST_SCOPE_ALL = 0, MARK_ADIST_SCOPE_DIGITS, MARK_ADIST_SCOPE_ANSWER } mark_adist_scope;
/* "all" | "digits" | "answer" -> *out; an error naming the choices otherwise. */
int mark_adist_scope_parse(const char *s, int *out);
const char *mark_adist_scope_name(int scope);

/* One task example: tokens (n), of which the first n_prompt are the prompt (not scored);
 * scored (n entries, may be NULL = every completion token): a completion token t is scored
 * only where scored[t] != 0. */
typedef struct {
    const int32_t *tokens;
    size_t n;
    size_t n_prompt;
    const uint8_t *scored;
} mark_adist_example;
/* g (proxy->n_params, caller's) = gradient of the proxy's mean next-token cross-entropy over
 * every scored completion token of the examples (each cut to the first ctx_len + 1 tokens),
 * by backprop (model_forward / model_loss_ce / model_backward; uses the proxy's training
 * state). *loss (may be NULL) gets the loss. Fails when no example has a scored completion
 * token. */
int mark_adist_task_grad(model *proxy, const mark_adist_example *ex, size_t n, float *g, double *loss);
/* The task file as examples, tokenized with tok: JSONL records {"prompt", "completion"} (the
 * completion gets the eos token when tok has one; prompt optional) or a plain-text file (one
 * completion). scope (a mark_adist_scope) sets each example's scored mask (NULL for ALL);
 * fails, naming the file, when the scope leaves no token. *toks and *scored (one allocation
 * each; *scored NULL for ALL) and *ex are the caller's to free. */
int mark_adist_task_load(const char *path, const tokenizer *tok, int scope, int32_t **toks, uint8_t **scored,
                         mark_adist_example **ex, size_t *n);

typedef struct mark_adist mark_adist;
/* From a proxy (borrowed: its weights and config are copied; it may be freed after) and its
 * task gradient g (n_params; |g| > 0). */
int mark_adist_new(mark_adist **out, const model *proxy, const float *g, const mark_adist_params *p);
/* Load the proxy GGUF, check its vocabulary against teacher_tok (NULL: no check), compute g
 * on the task file and build the sampler state. Errors name the file. */
int mark_adist_load(mark_adist **out, const char *proxy_path, const char *task_path, const tokenizer *teacher_tok,
                    const mark_adist_params *p);
void mark_adist_free(mark_adist *a);
/* The proxy's vocabulary size; the norm |g| of its task gradient. */
size_t mark_adist_vocab(const mark_adist *a);
double mark_adist_grad_norm(const mark_adist *a);
/* Attach the shift as a logits processor of s for the sequence in slot (< max_seqs; its
 * caches are reset). The teacher's vocabulary size (s->V) must be the proxy's. */
int mark_adist_attach(mark_adist *a, size_t slot, sampler *s);
/* slot's sequence has no shift (serve: a trusted account's): mark_adist_prepare skips it. */
void mark_adist_detach(mark_adist *a, size_t slot);
/* b(. | history) into b (V) through slot's caches (tests, benchmarks). */
int mark_adist_delta(mark_adist *a, size_t slot, const int32_t *history, size_t n_history, float *b);
/* The batched path (the generator's step hook, generate.h's before_sample; ud = the state):
 * for every listed sequence whose slot has the processor attached (and that the gate lets
 * through), feed both proxy copies the history's new tokens in ONE decoder pass per copy
 * (more when the rows exceed the decoders' max(64, max_seqs)) and keep b for the slot; the
 * slot's processor then uses it instead of two single-sequence passes when its history has
 * that length. The same b as mark_adist_delta up to the batched GEMM's rounding. On failure
 * the listed slots keep nothing and their processors compute b one by one. */
typedef gen_ready mark_adist_ready;
int mark_adist_prepare(mark_adist *a, const mark_adist_ready *ready, size_t n);
/* The b (V) mark_adist_prepare left for slot's next position at history length n_history,
 * or NULL (none, or for another length). Valid until the next call on the state (tests). */
const float *mark_adist_prepared(const mark_adist *a, size_t slot, size_t n_history);
/* Work done so far: shifted positions, proxy tokens decoded (both copies counted once), the
 * seconds spent in the shift, and failures (a position whose shift could not be computed is
 * left unshifted and counted here; rt_warn says why the first time). */
typedef struct {
    size_t positions, proxy_tokens, failures;
    size_t batched;        /* positions whose b came from mark_adist_prepare */
    size_t batched_passes; /* mark_adist_prepare calls that succeeded */
    size_t gated;          /* positions the gate left unshifted (not in positions) */
    double seconds;
} mark_adist_stats;
void mark_adist_get_stats(const mark_adist *a, mark_adist_stats *st);

#endif /* RETORT_MARK_H */
