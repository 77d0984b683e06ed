/*
 * distill.h — the distillation room: a student learns from a teacher, and we measure what
 * it kept.
 *
 *  - losses (kd_loss.c): hard-label CE, forward KL, reverse KL, TRL's generalized JSD(β),
 *    temperature τ with τ² scaling, α-mix with CE; full-vocabulary or top-k + rest teacher;
 *  - teacher cache (kd_cache.c): per position the top-k ids, quantized log-probs and the
 *    rest mass, zstd-compressed, in a GGUF container that also carries the tokenizer;
 *  - prompt/completion data (sft_data.c): harvest JSONL (OpenAI-style top_logprobs as soft
 *    targets, aligned by bytes) tokenized into examples, packed into training rows;
 *  - the arithmetic reasoning task (arith.c): problems with column-by-column working;
 *  - batched generation (gen.c): greedy or sampled continuations for many prompts at once
 *    (on-policy distillation, teacher data generation, task evaluation);
 *  - recipes (recipe.c): train_task hooks for white-box distillation (live teacher, cache,
 *    on-policy λ) and black-box SFT, so both get the trainer's progress bar, logs, eval,
 *    checkpoints and resume;
 *  - evaluation (eval.c): held-out loss/ppl, KL to a teacher and top-1 agreement, task
 *    accuracy.
 *
 * What this is not: the model math (src/model), the trainer loop (src/train), or the HTTP
 * client that harvests an API (src/serve builds `retort harvest`; this room reads its file).
 */
#ifndef RETORT_DISTILL_H
#define RETORT_DISTILL_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../model/generate.h"
#include "../model/model.h"
#include "../tokenizer/tokenizer.h"
#include "../train/train.h"

/* ================================================================ losses */

typedef enum {
    KD_CE = 0, /* hard-label cross-entropy only (the teacher is not used) */
    KD_FKL,    /* forward KL(teacher ‖ student): mass-covering (Hinton, DistillKit) */
    KD_RKL,    /* reverse KL(student ‖ teacher): mode-seeking (MiniLLM) */
    KD_JSD,    /* TRL's generalized JSD(β); β = 0 is forward KL, β = 1 reverse KL */
} kd_kind;

typedef struct {
    kd_kind kind;
    float beta;        /* JSD interpolation in [0, 1] (KD_JSD only; default 0.5) */
    float temperature; /* τ > 0: both distributions softened by τ; the divergence is × τ² */
    float alpha;       /* weight of the distillation term in [0, 1]; 1 − α goes to hard-label
                        * CE at τ = 1 (DistillKit's convention; default 1 = pure distillation) */
} kd_params;

kd_params kd_params_defaults(void); /* fkl, β 0.5, τ 1, α 1 */
int kd_params_validate(const kd_params *p); /* errors name the flag */
const char *kd_kind_name(kd_kind k);          /* "ce", "fkl", "rkl", "jsd" */
int kd_kind_parse(const char *s, kd_kind *out);

/* A top-k teacher at one position: k distinct ids with their log-probs (at the loss
 * temperature, normalised over the full vocabulary) and the log of the mass outside them.
 * The loss renormalises the k + 1 buckets, so slightly inconsistent inputs (quantized
 * caches, API top-n lists) are fine; a rest log-mass of -INFINITY (or below log 1e-8) is
 * floored at log 1e-8 when the student has tokens outside the k. k = 0: no teacher here. */
typedef struct {
    size_t k;
    const int32_t *ids;     /* (k) */
    const float *logprobs;  /* (k) */
    float lp_rest;
} kd_topk_row;

/* Per-thread scratch of kd_row (sized for one vocabulary and top-k width). */
typedef struct {
    float *ls, *q;  /* (V) student log-probs and probs at τ */
    float *q1;      /* (V) student probs at τ = 1 (CE term when τ != 1) */
    float *lt, *p;  /* (V) teacher log-probs and probs at τ (full-vocabulary teacher) */
    float *lm;      /* (V) JSD mixture log-probs; scratch */
    uint32_t *mark; /* (V) 1 + bucket index of a top-k id, else 0 (kept all-zero between rows) */
    double *blq, *blp, *be; /* (kmax + 1) per-bucket student/teacher log-probs, e_b */
} kd_scratch;

typedef struct {
    size_t V, kmax, n_threads;
    kd_scratch *s;      /* (n_threads) */
    double *row_loss, *row_kd, *row_ce; /* (cap_rows) per-row results, summed in order */
    size_t cap_rows;
} kd_workspace;
int kd_workspace_init(kd_workspace *ws, size_t V, size_t kmax);
void kd_workspace_free(kd_workspace *ws);

/* ls (V) = log_softmax(z * inv_tau), q (V) = its exp (vector exp; sums in double). Returns the
 * log-normaliser log Σ exp(z * inv_tau) in double. */
double kd_log_softmax_row(const float *z, size_t V, float inv_tau, float *ls, float *q);

/* One position. z (V) student logits; the teacher is t_logits (V, raw logits) or t_row
 * (top-k), or neither (then CE only). target: the hard label, or -1 for none. use_ce = 0
 * drops the CE term (on-policy rows, whose "labels" are the student's own samples) and gives
 * the divergence full weight. Returns the row loss α·τ²·D + (1−α)·CE (CE alone without a
 * teacher). If dz (V) is non-NULL it receives grad_scale · ∂loss/∂z; dz may alias z.
 * *kd_out = D (unscaled; 0 without a teacher), *ce_out = CE at τ = 1 (0 without a target). */
double kd_row(const kd_params *p, kd_scratch *s, const float *z, const float *t_logits,
              const kd_topk_row *t_row, int32_t target, int use_ce, size_t V, float *dz,
              double grad_scale, double *kd_out, double *ce_out);

typedef struct {
    double loss;   /* mean row loss over counted rows */
    double kd;     /* mean divergence D over counted rows that have a teacher (NAN if none) */
    double ce;     /* mean hard-label CE over counted rows (NAN if none) */
    size_t n_rows; /* counted rows: those with targets[i] >= 0 */
} kd_stats;

/* A batch of N rows: logits (N, V) student logits, OVERWRITTEN with d(mean loss)/dlogits when
 * want_grad (ready for model_backward); teacher t_logits (N, V) or t_rows (N) or neither;
 * targets (N) hard labels, -1 = row not counted (zero gradient). Threaded over rows;
 * deterministic. */
int kd_loss_batch(const kd_params *p, kd_workspace *ws, float *logits, const float *t_logits,
                  const kd_topk_row *t_rows, const int32_t *targets, int use_ce, size_t N, size_t V,
                  int want_grad, kd_stats *st);

/* The k most likely tokens of one row of logits at temperature τ: ids (k) by descending
 * probability (ties: lower id first), their log-probs (k) normalised over all V tokens, and
 * *lp_rest the log of the remaining mass (-INFINITY when k >= V). Returns min(k, V). */
size_t kd_topk_from_logits(const float *logits, size_t V, float temperature, size_t k, int32_t *ids,
                           float *logprobs, float *lp_rest);

/* ================================================================ vocabularies */

/* FNV-1a over the vocabulary size and every token's bytes: equal hashes = same vocabulary. */
uint64_t kd_vocab_hash(const tokenizer *tok);
/* 0 if the two tokenizers have the same tokens (same ids, same bytes); otherwise an error
 * naming both vocabularies (name, size) and the first token that differs, and what to do. */
int kd_vocab_check(const tokenizer *student, const char *student_name, const tokenizer *teacher,
                   const char *teacher_name);

/* ================================================================ teacher cache */

typedef struct {
    size_t vocab_size, top_k, seq_len, n_windows;
    float temperature;       /* the teacher's softmax temperature the log-probs were taken at */
    float lp_step;           /* quantization step of the stored log-probs, nats */
    uint64_t data_hash;      /* FNV-1a of the cached token stream stream[0 .. n_windows*T] */
    uint64_t vocab_hash;     /* kd_vocab_hash of the teacher's tokenizer */
    char teacher[256];       /* teacher file name, for messages */
    uint64_t teacher_params;
    size_t payload_bytes;    /* compressed frame bytes */
} kd_cache_info;

typedef struct {
    size_t top_k;        /* K (64) */
    size_t seq_len;      /* T: window length (256) */
    size_t batch;        /* windows per teacher forward (8) */
    size_t max_windows;  /* 0 = every full window of the stream */
    float temperature;   /* 1 */
    float lp_step;       /* 1/64 nat */
    int zstd_level;      /* 9 */
    int quiet;           /* no progress bar */
} kd_cache_build_opts;
void kd_cache_build_defaults(kd_cache_build_opts *o);

typedef struct {
    size_t n_windows, n_positions;
    uint64_t file_bytes, payload_bytes;
    double seconds;
} kd_cache_build_result;

/* Run the teacher over windows of stream (n tokens) and write the cache to path atomically.
 * The teacher must carry its tokenizer (it is stored in the cache). */
int kd_cache_build(model *teacher, const char *teacher_name, const int32_t *stream, size_t n,
                   const kd_cache_build_opts *o, const char *path, kd_cache_build_result *res);

typedef struct kd_cache kd_cache;
/* Open and validate a cache (errors name the file and the key). */
int kd_cache_open(kd_cache **out, const char *path);
void kd_cache_close(kd_cache *c);
const kd_cache_info *kd_cache_get_info(const kd_cache *c);
/* The teacher's tokenizer, stored in the cache. */
int kd_cache_load_tokenizer(const kd_cache *c, tokenizer **tok);
/* Decode window w: tokens (T+1) (may be NULL), ids (T, k), logprobs (T, k) by descending
 * probability, lp_rest (T) (-INFINITY: no rest mass). Not thread-safe (one zstd context
 * per cache). Corruption (zstd checksum, bad ids, sizes) is an error naming the window. */
int kd_cache_read_window(kd_cache *c, size_t w, int32_t *tokens, int32_t *ids, float *logprobs,
                         float *lp_rest);

/* ================================================================ generation */

typedef struct {
    size_t max_new;     /* tokens to generate per prompt (128) */
    float temperature;  /* 0 = greedy (1) */
    size_t top_k;       /* 0 = off (0) */
    float top_p;        /* 1 = off (1) */
    int32_t stop;       /* stop token, not included in the output; -1 = none (-1) */
    size_t n_logprobs;  /* record the top-n raw log-probs of every generated position (0) */
    size_t batch;       /* sequences decoded together (16) */
    uint64_t seed;      /* sampler of prompt i is seeded from (seed, i) */
    /* each sequence's sampler hook (generator_opts.setup: the watermark, antidistillation);
     * slot < batch. NULL = plain sampling */
    int (*setup)(void *ud, size_t slot, size_t id, void *user, sampler *s);
    /* the generator's step hook (generate.h's before_sample; same setup_ud): batched
     * per-step work of the hooks' owner, e.g. mark_adist_prepare. May be NULL. */
    gen_step_hook before_sample;
    void *setup_ud;
} kd_gen_opts;
void kd_gen_defaults(kd_gen_opts *o);

typedef struct {
    int32_t *tokens;   /* (n) generated tokens (the stop token excluded) */
    size_t n;
    int finished;      /* 1: ended at the stop token; 0: max_new or the context ran out */
    float *chosen_lp;  /* (n) raw log-prob of each generated token (n_logprobs > 0) */
    int32_t *top_ids;  /* (n, n_logprobs) the most likely tokens at each position */
    float *top_lps;    /* (n, n_logprobs) their raw log-probs */
} kd_gen_seq;
void kd_gen_seq_free(kd_gen_seq *s);

/* Continue n_prompts prompts (prompts[i], lens[i] tokens, each shorter than the context)
 * with m; out (n_prompts) receives the continuations (free each with kd_gen_seq_free). */
int kd_generate(const model *m, const int32_t *const *prompts, const size_t *lens, size_t n_prompts,
                const kd_gen_opts *o, kd_gen_seq *out, int show_progress);
/* Write n continuations as harvest records (JSONL, atomically; src/record): prompt and
 * completion text decoded with tok, finish_reason ("stop" at the stop token, else
 * "length"), answers[i] where answers and answers[i] are non-NULL, and with n_logprobs > 0
 * (gen made with that many) each token with its log-prob and top alternatives, as the
 * API's logprobs object. *total (may be NULL) receives the generated tokens. */
int kd_write_generations(const char *path, const tokenizer *tok, const int32_t *const *prompts, const size_t *lens,
                         const kd_gen_seq *gen, size_t n, size_t n_logprobs, char *const *answers, size_t *total);

/* ================================================================ arithmetic task */

typedef struct {
    size_t digits;     /* operands uniform in [0, 10^digits) (3) */
    size_t mul_digits; /* multiplier digits; 1 = multiplication by a single digit (1) */
    int add, mul;      /* which operations (both) */
    int answers_only;  /* completion " answer N" without the working (0); the same problems */
} arith_opts;
void arith_defaults(arith_opts *o);

/* One problem: prompt ("347+589="), completion (" 7+9=16, ...; answer 936") and the answer
 * digits (answer, cap bytes; may be NULL). Buffers are overwritten. */
int arith_make(rt_rng *rng, const arith_opts *o, rt_buf *prompt, rt_buf *completion, char *answer,
               size_t answer_cap);
/* The final answer of a text: the digits after the LAST "answer " that is followed by a
 * digit, leading zeros dropped. 0 and out (cap bytes) on success; -1 if there is none. */
int arith_extract_answer(const char *text, size_t len, char *out, size_t cap);
/* n problems as JSONL lines {"prompt", "completion", "answer"}, written atomically. */
int arith_write_jsonl(const char *path, size_t n, const arith_opts *o, uint64_t seed);

/* ================================================================ prompt/completion data */

typedef enum {
    SFT_FORMAT_RAW = 0, /* prompt tokens, completion tokens, <|eos|> (a /v1/completions call) */
    SFT_FORMAT_CHAT,    /* [system,] user prompt, generation prompt (the chat format), completion, end of turn */
} sft_format;

typedef struct {
    sft_format format;
    const tokenizer_chat *chat; /* SFT_FORMAT_CHAT: the student's chat format (tokenizer_chat_detect) */
    int soft;              /* use top_logprobs as soft targets (1) */
    int skip_bad;          /* report bad lines and continue (0: the load fails) */
    size_t max_examples;   /* 0 = all */
    size_t max_bad_report; /* lines reported one by one (20) */
    int prompts_only;      /* "completion" may be absent (a prompts file): no completion, no end token */
} sft_load_opts;
void sft_load_defaults(sft_load_opts *o);

/* Tokenized examples. Example e is tokens[off[e] .. off[e+1]): n_prompt[e] prompt tokens,
 * then the completion and (unless cut) the end token — the tokens the loss is on. Soft
 * targets of example e are entries soft_off[e] .. soft_off[e+1]: entry s is the teacher's
 * distribution for token soft_tok[s] of the example (an index >= n_prompt[e]), as
 * soft_k_off[s+1] - soft_k_off[s] ids with log-probs, and the rest mass soft_rest[s]. */
typedef struct {
    size_t n_ex;
    size_t *off;          /* (n_ex + 1) */
    uint32_t *n_prompt;   /* (n_ex) */
    uint32_t *line;       /* (n_ex) 1-based line of the example in its file */
    int32_t *tokens;      /* (off[n_ex]) */
    char **answers;       /* (n_ex) the "answer" field, or NULL */
    size_t *soft_off;     /* (n_ex + 1) */
    uint32_t *soft_tok;   /* (n_soft) */
    size_t *soft_k_off;   /* (n_soft + 1) */
    int32_t *soft_ids;    /* (soft_k_off[n_soft]) */
    float *soft_lps;      /* (soft_k_off[n_soft]) */
    float *soft_rest;     /* (n_soft) log rest mass (-INFINITY: none) */
    size_t n_soft;
    size_t n_completion_tokens;   /* loss-bearing tokens (completion + end) */
    size_t n_with_logprobs;       /* examples that carried top_logprobs */
    size_t n_truncated_alignment; /* of those, examples whose teacher tokens could not all be aligned */
    size_t n_bad_lines;           /* skipped (skip_bad) */
    uint64_t hash;                /* of tokens and soft targets: resume checks */
} sft_set;

/* Read a JSONL file (format in sft_data.c) with the student's tokenizer. Bad lines are
 * reported as "FILE:LINE: reason"; the load fails on any unless o->skip_bad. */
int sft_load_jsonl(sft_set *s, const char *path, const tokenizer *tok, const sft_load_opts *o);
void sft_set_free(sft_set *s);
/* The prompts and completions of a JSONL file as one text (for training a tokenizer on them). */
int sft_collect_text(const char *path, rt_buf *text);

/* ================================================================ evaluation */

/* Running sums over scored positions (rows with a target). */
typedef struct {
    size_t n;      /* positions scored */
    double ce_sum; /* Σ -log q(target) */
    double kl_sum; /* Σ KL(teacher ‖ student), τ = 1, full vocabulary (with a teacher) */
    double agree;  /* Σ [argmax student = argmax teacher] (with a teacher) */
} kd_compare;
/* Add N rows: s_logits (N, V), t_logits (N, V) or NULL, targets (N; -1 = skip). */
int kd_compare_rows(kd_workspace *ws, const float *s_logits, const float *t_logits, const int32_t *targets,
                    size_t N, size_t V, kd_compare *acc);
/* Under mpirun (src/train/dist.h): add every rank's sums into acc (collective; a no-op in one
 * process). The scorers below give each rank a contiguous share of the windows/examples. */
int kd_compare_reduce(kd_compare *acc);

typedef struct {
    double loss, ppl;          /* mean nats/token on the scored tokens, exp(loss) */
    size_t n_tokens;
    int has_teacher;
    double kl, top1_agreement; /* NAN without a teacher */
    int has_task;
    double accuracy;           /* exact-match of the final answer */
    size_t n_correct, n_examples;
} distill_eval_result;

/* Non-overlapping windows of T+1 tokens of tokens (n), B per forward, at most max_windows
 * (0 = all). t may be NULL. */
int distill_eval_text(model *s, model *t, const int32_t *tokens, size_t n, size_t T, size_t B,
                      size_t max_windows, distill_eval_result *r);
/* Examples one per row (T = the longest, capped at the context), scored on completion tokens. */
int distill_eval_examples(model *s, model *t, const sft_set *set, size_t max_examples, size_t B,
                          distill_eval_result *r);
/* Arithmetic accuracy: greedy generation (at most max_new tokens, until <|eos|>) from each
 * example's prompt; the answer after the last "answer " must equal the example's "answer"
 * field (or the one in its reference completion). Sets has_task, accuracy, n_correct,
 * n_examples. If samples is non-NULL, one line per example is written to it. */
int distill_eval_arith(model *s, const sft_set *set, size_t max_examples, size_t batch, size_t max_new,
                       FILE *samples, distill_eval_result *r);
/* Example e as one row of T positions: in (T) its tokens padded with its last token,
 * tg (T) the next token where that token is part of the completion, else -1. */
void sft_example_row(const sft_set *set, size_t e, size_t T, int32_t *in, int32_t *tg);

/* ================================================================ recipes */

typedef struct {
    kd_params loss;
    size_t top_k;                /* live teacher: 0 = full vocabulary, else top-k + rest */
    float on_policy;             /* λ: share of batches whose continuations the student samples */
    size_t on_policy_prompt;     /* P: tokens of the window kept as the prompt (0 = T/2) */
    float on_policy_temperature; /* the student's sampling temperature (1) */
    const char *teacher_name;    /* recorded in the model file */
} distill_opts;
void distill_opts_defaults(distill_opts *o);

/* State of a white-box run; fill with distill_run_init, hand distill_run_task to train_run. */
typedef struct {
    distill_opts o;
    model *student, *teacher; /* teacher NULL with a cache */
    kd_cache *cache;
    const dataset *ds;        /* training windows (live teacher) and held-out windows (eval) */
    size_t B, T, k, eval_batches;
    kd_workspace ws;
    int32_t *ids;             /* (B*T, k) teacher top-k of the current batch */
    float *lps;               /* (B*T, k) */
    float *rest;              /* (B*T) */
    kd_topk_row *rows;        /* (B*T) views of the above */
    int32_t *tokens;          /* (T+1) cache window */
    const int32_t **prompts;  /* (B) on-policy prompts */
    size_t *plens;            /* (B) */
    kd_gen_seq *gen;          /* (B) on-policy samples */
    int on_policy_now;        /* the current batch was generated by the student */
    size_t n_on_policy;       /* on-policy batches in this process */
    int32_t *eval_in, *eval_tg; /* (B*T) */
    kd_stats last;
} distill_run;
int distill_run_init(distill_run *r, const distill_opts *o, model *student, model *teacher, kd_cache *cache,
                     const dataset *ds, size_t B, size_t T, size_t eval_batches);
void distill_run_free(distill_run *r);
void distill_run_task(distill_run *r, train_task *task);

/* State of a black-box (SFT) run. Every k-th example (k = round(1/val_fraction)) is held out. */
typedef struct {
    kd_params loss;           /* divergence for soft targets; CE alone where there are none */
    model *student;
    const sft_set *set;
    const char *data_name;    /* recorded in the model file */
    size_t *train_idx, n_train, *val_idx, n_val;
    size_t eval_max;          /* held-out examples scored per eval (0 = all) */
    size_t B, T;
    kd_workspace ws;
    kd_topk_row *rows;        /* (B*T) soft targets of the current batch (k = 0: none) */
    int32_t *row_tok, *row_lab; /* (T+1) packing scratch */
    int64_t *row_soft;        /* (T+1) */
    int32_t *eval_in, *eval_tg; /* (B*T) */
    kd_stats last;
} sft_run;
int sft_run_init(sft_run *r, const kd_params *loss, model *student, const sft_set *set, double val_fraction,
                 size_t B, size_t T);
void sft_run_free(sft_run *r);
void sft_run_task(sft_run *r, train_task *task);

/* ================================================================ setup (for the CLI) */

/* A text file (or a token-shard directory) → the training / held-out split retort train makes. */
int distill_text_dataset(dataset *ds, const tokenizer *tok, const char *path, double val_fraction);
/* A fresh student of shape c (vocab_size set from tok, which the model takes over even on
 * failure), initialised as retort train does for the seed. */
int distill_new_student(model **out, model_config *c, tokenizer *tok, uint64_t seed);

/* One recorded setting a resumed run must share with its checkpoint: a string (str), a u64
 * (is_u64, u) or an f32 (f) under key; flag names the option in messages. */
typedef struct {
    const char *key, *flag, *str;
    int is_u64;
    uint64_t u;
    float f;
} distill_meta_check;
int distill_check_resume_meta(const char *ckpt, const distill_meta_check *want, size_t n);

#endif /* RETORT_DISTILL_H */
