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
 *    accuracy; a small SVG chart writer (svg.c) for experiment plots.
 *
 * What this is not: the model math (src/model), the trainer loop (src/train), or the HTTP
 * client that harvests an API (src/serve builds `retort harvest`; this room reads its file).
 */
#ifndef RETORT_DISTILL_H
#define RETORT_DISTILL_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
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
    double *ls;   /* (V) student log-probs at τ */
    double *lt;   /* (V) teacher log-probs at τ (full-vocabulary teacher) */
    uint32_t *mark; /* (V) 1 + bucket index of a top-k id, else 0 (kept all-zero between rows) */
    double *blq, *blp, *be; /* (max(kmax + 1, V)) per-bucket student/teacher log-probs, e_b */
} kd_scratch;

typedef struct {
    size_t V, kmax, n_threads;
    kd_scratch *s;      /* (n_threads) */
    double *row_loss, *row_kd, *row_ce; /* (cap_rows) per-row results, summed in order */
    size_t cap_rows;
} kd_workspace;
int kd_workspace_init(kd_workspace *ws, size_t V, size_t kmax);
void kd_workspace_free(kd_workspace *ws);

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

#endif /* RETORT_DISTILL_H */
