/*
 * train.h — turning text into token shards, and the training loop: AdamW with decoupled
 * weight decay and bias correction, global-norm gradient clipping, linear warmup + cosine
 * decay, held-out evaluation, a progress bar, a JSONL step log, and atomic checkpoints
 * that let --resume continue to the bit-identical result of an uninterrupted run.
 *
 * The loop is generic: a train_task may supply its own batches, loss (writing dLoss/dlogits
 * into model_dlogits) and evaluation — distillation and SFT plug in there and get the same
 * progress bar, logs, checkpoints and resume for free.
 *
 * Under mpirun (dist.h) the same loop is data-parallel: see "data parallelism" below.
 *
 * What this is not: the model (src/model) or the losses of distillation (src/distill).
 */
#ifndef RETORT_TRAIN_H
#define RETORT_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../model/model.h"
#include "../tokenizer/tokenizer.h"

/* ---------------------------------------------------------------- data */

/* A tokenized corpus split into training and held-out tokens. */
typedef struct {
    int32_t *train; /* (n_train) token ids */
    size_t n_train;
    int32_t *val;   /* (n_val) */
    size_t n_val;
    uint64_t hash;  /* of both streams: a checkpoint only resumes on the same data */
} dataset;

/* Tokenize text and split it: the text is cut into chunks of chunk_bytes (at a newline
 * when one is near) and every k-th chunk (k = round(1/val_fraction)) is held out, so the
 * held-out text is spread through the corpus and never overlaps training windows. */
int dataset_from_text(dataset *ds, const tokenizer *tok, const char *text, size_t len,
                      double val_fraction, size_t chunk_bytes);
/* Token shards on disk: DIR/train.bin and DIR/val.bin ("RTOK" header, version, vocab size,
 * count, u16 or u32 ids, FNV checksum), written atomically. */
int dataset_save(const dataset *ds, const char *dir, size_t vocab_size);
int dataset_load(dataset *ds, const char *dir, size_t vocab_size);
void dataset_free(dataset *ds);
/* B random windows of T+1 tokens from the training stream: inputs/targets (B, T). */
int dataset_sample_batch(const dataset *ds, rt_rng *rng, size_t B, size_t T, int32_t *inputs,
                         int32_t *targets);
/* Advance rng exactly as dataset_sample_batch(ds, rng, B, T, ...) does, building nothing. */
int dataset_skip_batch(const dataset *ds, rt_rng *rng, size_t B, size_t T);
/* Held-out batch i of a fixed, evenly spaced set (deterministic): inputs/targets (B, T).
 * Returns 0, or -1 if the held-out stream is shorter than T+1. */
int dataset_val_batch(const dataset *ds, size_t i, size_t n_batches, size_t B, size_t T,
                      int32_t *inputs, int32_t *targets);
/* Windows first .. first+count-1 of the `total` evenly spaced held-out windows (batch i of
 * dataset_val_batch is windows i*B .. i*B+B-1 of total = n_batches*B): inputs/targets (count, T). */
int dataset_val_windows(const dataset *ds, size_t first, size_t count, size_t total, size_t T,
                        int32_t *inputs, int32_t *targets);
/* Entropy (nats) of the empirical unigram distribution of the held-out tokens. */
double dataset_unigram_entropy(const int32_t *tokens, size_t n, size_t vocab_size);

/* ---------------------------------------------------------------- optimizer */

/* Learning rate at step (0-based): linear warmup over `warmup` steps to lr, then cosine
 * decay to lr*min_lr_frac at `total` steps. */
float lr_schedule(size_t step, size_t warmup, size_t total, float lr, float min_lr_frac);
/* Global L2 norm of g (n), accumulated in double in a fixed order (deterministic). */
double grad_global_norm(const float *g, size_t n);
/* One AdamW step on n parameters: p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p) where
 * m, v are updated with g*grad_scale and bias-corrected for step t (1-based). */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float wd, size_t t, float grad_scale);

/* ---------------------------------------------------------------- loop */

typedef struct {
    size_t batch;        /* B */
    size_t seq_len;      /* T */
    size_t steps;        /* total optimizer steps */
    float lr;            /* peak learning rate */
    float min_lr_frac;   /* final lr = lr * min_lr_frac (0.1) */
    size_t warmup;       /* warmup steps */
    float beta1, beta2, eps;
    float weight_decay;  /* decoupled; matrices only */
    float clip;          /* global-norm clip; 0 = off */
    size_t eval_every;   /* 0 = only at the end */
    size_t eval_batches; /* held-out batches per evaluation */
    size_t save_every;   /* checkpoint period; 0 = only at the end */
    uint64_t seed;
    const char *out_path;  /* final model GGUF */
    const char *ckpt_path; /* checkpoint (default: out_path + ".ckpt") */
    const char *log_path;  /* JSONL step log (default: out_path + ".log.jsonl") */
    int resume;            /* continue from ckpt_path */
    int quiet;             /* no progress bar */
    size_t stop_after;     /* testing aid: stop (as if killed) after this many steps; 0 = off */
    /* data parallelism (see below); all three are inert in a single process with grad_accum 1 */
    size_t grad_accum;     /* micro-batches of `batch` per rank per optimizer step (1) */
    int zero;              /* ZeRO-1: each rank keeps the AdamW moments of its slice only */
    size_t bucket;         /* gradient allreduce bucket, floats (0 = 4 Mi); with 2 ranks any size gives
                              the same sums (a + b), with more the bits may depend on it */
    /* When non-NULL and it becomes non-zero (a signal handler in src/cli sets it), the run
     * stops after the step in progress: its log row written whole, a checkpoint saved, no
     * final model; train_result.interrupted says so. */
    const volatile sig_atomic_t *interrupt;
} train_options;
void train_options_defaults(train_options *o);
/* The options' own ranges (sizes > 0, learning rate, AdamW, clip), with an error naming the
 * flag; train_run checks them too. Commands call it before slow preparation. */
int train_options_check(const train_options *o);

/* Optional hooks. Any may be NULL (then: random windows of ds; cross-entropy on the
 * targets; mean cross-entropy on held-out windows of ds). */
typedef struct {
    void *ud;
    const char *kind; /* "train", "distill", "sft": recorded in logs and the model file */
    /* Fill inputs/targets (B, T) for the next step, drawing only from rng (so resume works). */
    int (*next_batch)(void *ud, rt_rng *rng, size_t B, size_t T, int32_t *inputs, int32_t *targets);
    /* After model_forward(inputs): compute the loss, and write dLoss/dlogits (the mean's
     * gradient) into model_dlogits(m). */
    int (*loss)(void *ud, model *m, const int32_t *inputs, const int32_t *targets, size_t B,
                size_t T, float *loss);
    /* Held-out loss (mean nats/token), and any extra metrics as a JSON fragment
     * ("\"kl\": 0.12, ..." without braces) written into extra (cap bytes) — may stay empty. */
    int (*eval)(void *ud, model *m, float *val_loss, char *extra, size_t cap);
    /* Extra metadata for the checkpoint and the final model file (e.g. distill settings). */
    int (*add_meta)(void *ud, gguf_writer *w);
    /* Advance rng exactly as next_batch(B, T) would, building nothing: a rank passes over the
     * micro-batches of the other ranks this way. NULL: next_batch into scratch buffers. */
    int (*skip_batch)(void *ud, rt_rng *rng, size_t B, size_t T);
    /* The denominator of the last loss call's mean (positions counted); NULL: B*T. Several
     * micro-batches are weighted by it, so their mean equals one batch's mean. */
    size_t (*loss_count)(void *ud);
} train_task;

typedef struct {
    size_t steps_done;
    double tokens;        /* training tokens processed (B*T per step) */
    double flops;         /* model_config_train_flops_per_token * tokens */
    double seconds;       /* wall time of this run (resumed runs add the earlier time) */
    float train_loss;     /* last step */
    float val_loss;       /* last evaluation (NAN if none) */
    double tokens_per_s;  /* training throughput (all ranks together) */
    int ranks;            /* data-parallel ranks */
    double comm_seconds;  /* time in collectives (this rank) */
    size_t opt_bytes;     /* AdamW moments held by one rank */
    size_t peak_rss;      /* peak resident memory, max over ranks (0 if unknown) */
    int interrupted;      /* stopped early through o->interrupt (checkpoint at steps_done) */
} train_result;

/* Data parallelism. Under mpirun with N ranks (dist.h) every rank runs train_run on the same
 * model, options and data. One optimizer step consumes G = N * grad_accum * batch windows,
 * drawn in order from the one training RNG all ranks carry: micro-batch j = k*N + q (step k of
 * the accumulation, rank q) is built by rank q alone; the others advance the RNG past it
 * (skip_batch). So a step sees the windows one process with --batch G would see, in the same
 * order, for any N and grad_accum (not for on-policy distillation, which draws per batch).
 * Gradients are summed with a bucketed MPI allreduce, each bucket started from the last
 * micro-batch's backward pass as soon as the layers it covers are done (model_backward_hooked),
 * and weighted by the loss counts, so the update is that of the mean over all G*T positions; every rank applies the same AdamW step
 * (ZeRO-1: its slice, then an allgather of the parameters). Rank 0 alone writes the log, the
 * progress bar, checkpoints (the same file as one process writes; "retort.train.batch" is G)
 * and the model; --resume reads on rank 0 and broadcasts, so N may change if G does not.
 * Data, tokenizer and checkpoint must be readable by every rank at the same path.
 *
 * Train m (already initialised or loaded) on ds (may be NULL when the task supplies
 * batches and eval). With o->resume, state is restored from the checkpoint, which must
 * match the model shape and options (errors say which differs). */
int train_run(model *m, const dataset *ds, const train_options *o, const train_task *task,
              train_result *res);

#endif /* RETORT_TRAIN_H */
