/*
 * generate.h — the one batched generator: every place retort continues prompts with a model
 * (the server's engine, on-policy distillation and teacher data, the watermark experiments
 * and radioactivity tests, `retort generate`) runs through it.
 *
 * A generator owns a fixed set of sequence slots (each with its KV cache, its own sampler
 * and its token history) and one decoder. Every generator_step runs ONE decoder pass over
 * the next token of every decoding sequence (plus, in chunked mode, a chunk of prompt
 * tokens of sequences still in prefill, oldest admission first), then samples the next
 * token of every sequence that has fresh logits (continuous batching: sequences join with
 * generator_add and leave between steps). For each sampled token the owner's on_token hook
 * sees the token, its raw log-prob and the top-n raw log-probs (when asked), and says
 * whether the sequence goes on.
 *
 * Per sequence: its own sampler, seeded by the sequence's own seed (gen_seq_spec.sp.seed),
 * so a continuation does not depend on which other sequences share its batch (up to float
 * rounding of the batched GEMM, which the tests find to be none). The setup hook runs once
 * per sequence after its sampler is made and before its first draw: it attaches logits
 * processors (the watermark's green-list bias, a logit shift) or a token selector; each
 * processor sees the raw logits and the sequence's whole history.
 *
 * The step hook (before_sample) runs once per generator_step, after the decoder pass and
 * before any sequence of the step is sampled, with every sequence about to be sampled (its
 * slot, history and raw logits): an owner that does per-token work for each sequence (the
 * antidistillation proxy) can do it for all of them in one batch there and leave the result
 * for the sequence's processor. It changes nothing by itself: without it, or when it prepares
 * nothing, every processor runs as before.
 *
 * Log-probs are those of the RAW distribution (softmax of the model's logits, before any
 * processor, temperature or filter), as the OpenAI API reports them.
 *
 * Context: without ctx_shift a prompt must leave room for one token (n < ctx_len) and a
 * sequence whose cache is full ends (gen_event.ctx_full tells the hook first). With
 * ctx_shift a full cache restarts from the sequence's last ctx_len/2 tokens (llama.cpp's
 * context shift) and an over-long prompt keeps its last ctx_len/2 tokens; the history
 * (what processors see) stays whole.
 *
 * Threading: one thread drives a generator; hooks run on that thread, inside
 * generator_step. generator_remove may be called from a hook (for any slot).
 *
 * What this is not: a scheduler of requests (serve/engine.c queues jobs and maps them onto
 * slots), a beam search, or a stop-string matcher (the owner's hook does that).
 */
#ifndef RETORT_GENERATE_H
#define RETORT_GENERATE_H

#include "model.h"

typedef struct generator generator;

/* One sampled token, as the on_token hook sees it. Pointers are valid during the call. */
typedef struct {
    size_t slot;                /* the sequence's slot */
    size_t id;                  /* gen_seq_spec.id */
    void *user;                 /* gen_seq_spec.user */
    int32_t token;              /* the sampled token, already appended to the history */
    size_t n_sampled;           /* tokens sampled for this sequence so far, this one included */
    int ctx_full;               /* the cache is full: without ctx_shift the sequence cannot go on */
    float logprob;              /* raw log-prob of token (spec.logprobs or spec.n_top; else 0) */
    const int32_t *top_ids;     /* (spec.n_top) most likely tokens, descending, ties by lower id; NULL if n_top = 0 */
    const float *top_lps;       /* (spec.n_top) their raw log-probs */
    const float *raw_logits;    /* (V) the logits the token was drawn from, before any processor */
    const float *prompt_hidden; /* (D) the prompt's last final hidden state (after output_norm), on a
                                 * sequence's first token when opts.want_hidden; else NULL */
} gen_event;

enum { GEN_CONTINUE = 0, GEN_FINISH = 1 };

/* A sequence about to be sampled, as the step hook sees it. Pointers valid during the call. */
typedef struct {
    size_t slot;
    const int32_t *hist;      /* (n_hist) the history its processors will see */
    size_t n_hist;
    const float *raw_logits;  /* (V) the logits it will be sampled from, before any processor */
} gen_ready;
/* Step hook: 0, or -1 (error: generator_step returns -1 after the step, as for on_token). */
typedef int (*gen_step_hook)(void *ud, const gen_ready *ready, size_t n);

typedef struct {
    size_t max_seqs;      /* slots (>= 1) */
    size_t max_rows;      /* decoder rows per pass; 0 = max(max_seqs + prefill_chunk, min(ctx_len, 128)) */
    size_t prefill_chunk; /* 0: generator_add prefills the whole prompt at once (its own passes);
                           * > 0: at most this many prompt tokens per step, beside the decoding rows */
    size_t max_top;       /* the largest gen_seq_spec.n_top that will be asked for */
    int ctx_shift;        /* see the top of this file */
    int want_hidden;      /* hand the prompt's last hidden state to the first on_token */
    size_t max_ctx;       /* tokens a sequence may hold (KV cache size per slot); 0 = the model's
                           * ctx_len. Size it from what is used: a file may declare 128k. */
    /* Per-sequence sampler hook: attach processors / a selector to s. Nonzero = error (the
     * sequence is not started; rt_errmsg says why). May be NULL. */
    int (*setup)(void *ud, size_t slot, size_t id, void *user, sampler *s);
    /* Every sampled token: GEN_CONTINUE (feed it, go on), GEN_FINISH (the sequence ends,
     * its slot is free), or -1 (error: generator_step returns -1 after the step). Required. */
    int (*on_token)(void *ud, const gen_event *ev);
    /* Once per step before sampling (see the top of this file). May be NULL. */
    gen_step_hook before_sample;
    void *ud;
} generator_opts;

/* One sequence to start. */
typedef struct {
    const int32_t *prompt; /* (n_prompt) token ids in [0, V); copied */
    size_t n_prompt;       /* >= 1 */
    sampler_params sp;     /* this sequence's sampler; sp.seed is its own seed */
    int logprobs;          /* capture each token's raw log-prob */
    size_t n_top;          /* and the top-n raw log-probs (<= generator_opts.max_top) */
    size_t id;             /* handed back in every event */
    void *user;
    long share_with;       /* chunked mode: the slot of a sequence with the same prompt still in
                            * prefill; this one copies its cache and logits instead of prefilling
                            * (n choices of one request). -1 = none. */
} gen_seq_spec;

int generator_init(generator **out, const model *m, const generator_opts *o);
void generator_free(generator *g);
/* Free slots. */
size_t generator_n_free(const generator *g);
/* Start a sequence in the lowest free slot (*slot receives it; may be NULL). In whole-prompt
 * mode the prompt is prefilled here. Fails (no slot taken) on a bad prompt, no free slot,
 * or a setup hook error. */
int generator_add(generator *g, const gen_seq_spec *spec, size_t *slot);
/* End a sequence now (cancellation); no further events for it. Waiting sharers of its
 * prompt take over its prefill. No-op on a free slot. */
void generator_remove(generator *g, size_t slot);
/* One step (see the top). *rows / *seqs (may be NULL) receive the decoder rows and the
 * sequences of the pass. Returns 0, or -1 when a hook returned -1 or the step failed
 * (rt_errmsg): the decoder pass failed or a sequence could not go on (no memory, a failed
 * context shift). The sequences it failed are listed by generator_failed and stay in their
 * slots; the owner removes them. */
int generator_step(generator *g, size_t *rows, size_t *seqs);
/* After generator_step returned -1: did the failure hit slot's sequence? */
int generator_failed(const generator *g, size_t slot);
/* Sequences in any state (prefill, decoding, waiting). */
size_t generator_n_active(const generator *g);

/* ---------------------------------------------------------------- many prompts at once */

/* What generator_run keeps of each sequence. */
typedef struct {
    int32_t *tokens;  /* (n) generated tokens, the stop token excluded */
    size_t n;
    int stopped;      /* 1: ended at the stop token; 0: max_new or the context ran out */
    float *logprob;   /* (n) raw log-probs of the tokens (opts.logprobs or n_top > 0), else NULL */
    int32_t *top_ids; /* (n, n_top) else NULL */
    float *top_lps;   /* (n, n_top) else NULL */
} gen_result;
void gen_result_free(gen_result *r);

typedef struct {
    size_t batch;          /* sequences decoded together (>= 1) */
    size_t max_new;        /* tokens per sequence at most */
    int32_t stop;          /* token that ends a sequence (not kept), -1 = none */
    size_t n_top;          /* top raw log-probs per token (0) */
    int logprobs;          /* keep the chosen tokens' raw log-probs */
    int ctx_shift;         /* as generator_opts */
    const char *progress;  /* label of a progress bar on stderr, NULL = none */
    int (*setup)(void *ud, size_t slot, size_t id, void *user, sampler *s); /* as generator_opts */
    gen_step_hook before_sample; /* as generator_opts (same ud) */
    void *ud;
} gen_run_opts;

/* Continue n prompts (prompts[i], lens[i] tokens): prompt i is sampled with sp and seed
 * seeds[i] (seeds NULL: sp->seed for all). A finished sequence's slot takes the next prompt
 * at once. out (n) receives the continuations (free each with gen_result_free); on failure
 * nothing is kept. */
int generator_run(const model *m, const int32_t *const *prompts, const size_t *lens, size_t n,
                  const sampler_params *sp, const uint64_t *seeds, const gen_run_opts *o, gen_result *out);

#endif /* RETORT_GENERATE_H */
