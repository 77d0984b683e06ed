/*
 * model.h — the Llama-family transformer: config, weights in one flat buffer, the
 * training forward/backward over a (B, T) batch, the KV-cache decoder used for generation
 * and serving, the sampler with its logits-processor hook, and GGUF load/save.
 *
 * Architecture (llama.cpp's "llama", "qwen2", "qwen3"; Mistral is "llama"): token embedding;
 * per layer
 *   q, k, v = Wq·rmsnorm(x) [+ bq], Wk·… [+ bk], Wv·… [+ bv]      (biases: qkv_bias, qwen2)
 *   q, k    = per-head rmsnorm(q; q_norm), rmsnorm(k; k_norm)     (qk_norm, qwen3)
 *   x += Wo · attn(rope(q), rope(k), v)                            (causal, GQA, scale 1/sqrt(hd))
 *   x += Wdown · (silu(Wgate·rmsnorm(x)) * (Wup·rmsnorm(x)))
 * then rmsnorm and the output projection (tied to the embedding or not). RoPE rotates
 * adjacent pairs (2i, 2i+1) (GGUF "normal" RoPE, llama) or the halves (i, i+hd/2) (NEOX,
 * qwen2/qwen3), with a configurable base and optionally Llama 3's per-frequency scaling or
 * linear scaling (theta_i = pos * base^(-2i/hd) / factor_i; factors from the rope_scaling
 * fields or from the file's rope_freqs.weight). head_dim is free (Qwen3: NH*hd != D).
 *
 * Parameters live in ONE flat float buffer in this order, which other buffers of the same
 * size (gradients, AdamW moments) reuse through model_views():
 *   token_embd (V, D)
 *   per layer: attn_norm (D), wq (NH*hd, D), wk (NKV*hd, D), wv (NKV*hd, D),
 *              [bq (NH*hd), bk (NKV*hd), bv (NKV*hd)]  only when qkv_bias,
 *              [q_norm (hd), k_norm (hd)]              only when qk_norm,
 *              wo (D, NH*hd), ffn_norm (D), w_gate (F, D), w_up (F, D), w_down (D, F)
 *   output_norm (D), output (V, D) only when untied.
 * wq|wk|wv are contiguous, so they form one (NH*hd + 2*NKV*hd, D) matrix and Q, K and V come
 * from one GEMM (bq|bk|bv likewise form one bias row); w_gate|w_up form one (2F, D) matrix.
 * A plain llama config (no bias, no qk_norm) has exactly the layout of retort's older files.
 *
 * What this is not: a trainer (optimizer, data, checkpoints live in src/train) or a loss
 * library (distillation losses live in src/distill and write dlogits themselves).
 */
#ifndef RETORT_MODEL_H
#define RETORT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../formats/gguf.h"
#include "../formats/safetensors.h"
#include "../kernels/quant.h"
#include "../tokenizer/tokenizer.h"

/* ---------------------------------------------------------------- config */

typedef enum {
    MODEL_ARCH_LLAMA = 0, /* GGUF "llama" (also Mistral: llama.cpp writes Mistral as "llama") */
    MODEL_ARCH_QWEN2,     /* GGUF "qwen2": Q/K/V biases, NEOX RoPE (R1-Distill-Qwen) */
    MODEL_ARCH_QWEN3,     /* GGUF "qwen3": per-head Q/K RMSNorm, NEOX RoPE */
    MODEL_ARCH_COUNT
} model_arch;

typedef enum {
    MODEL_ROPE_SCALING_NONE = 0,
    MODEL_ROPE_SCALING_LLAMA3, /* Meta's per-frequency blend (llama only, as in llama.cpp) */
    MODEL_ROPE_SCALING_LINEAR, /* every theta divided by rope_factor (position interpolation) */
} model_rope_scaling;

typedef struct {
    size_t dim;        /* D: model width */
    size_t n_layers;   /* L */
    size_t n_heads;    /* NH: query heads */
    size_t n_kv_heads; /* NKV: key/value heads, divides NH */
    size_t head_dim;   /* hd (even); 0 = D / NH (then NH must divide D) */
    size_t ffn_dim;    /* F: SwiGLU hidden width */
    size_t vocab_size; /* V */
    size_t ctx_len;    /* maximum positions (the training sequence length by default) */
    float norm_eps;    /* RMSNorm epsilon (1e-5) */
    float rope_base;   /* RoPE frequency base (10000) */
    int tied;          /* 1: output projection is token_embd */
    /* architecture (all zero = retort's original llama) */
    int arch;          /* model_arch */
    int qkv_bias;      /* 1: attn_q/k/v have biases (set by validate for qwen2) */
    int qk_norm;       /* 1: per-head RMSNorm of q and k before RoPE (set for qwen3) */
    int rope_neox;     /* 1: RoPE rotates (i, i+hd/2) (set for qwen2/qwen3); 0: (2i, 2i+1) */
    /* RoPE frequency scaling (HF rope_scaling {"rope_type": "llama3" | "linear", ...}) */
    int rope_scaling;            /* model_rope_scaling */
    float rope_factor;           /* "factor" (llama3: 8) */
    float rope_low_freq_factor;  /* "low_freq_factor" (1) */
    float rope_high_freq_factor; /* "high_freq_factor" (4) */
    size_t rope_orig_ctx;        /* "original_max_position_embeddings" (8192) */
} model_config;

/* GGUF architecture name ("llama", "qwen2", "qwen3") and back (-1 if unknown; "mistral" maps
 * to llama). */
const char *model_arch_name(int arch);
int model_arch_from_name(const char *name, size_t len);

/* Fill derived fields (head_dim; qkv_bias, qk_norm, rope_neox from arch) and check every
 * constraint; errors say which flag is wrong. */
int model_config_validate(model_config *c);
/* RoPE frequency divisors (hd/2 values; for llama3 what llama.cpp stores as
 * rope_freqs.weight) for c's rope_scaling fields; all 1 when rope_scaling is NONE. */
void model_rope_scaling_factors(const model_config *c, float *factors);
/* Number of parameters (floats) of the flat buffer. */
size_t model_config_n_params(const model_config *c);
/* Training FLOPs per token: 6*N + 12*L*T*D_attn (PaLM's accounting; attention counted at the
 * full context T). N excludes nothing: embeddings are included. */
double model_config_train_flops_per_token(const model_config *c, size_t T);
/* Width of one fused qkv row: (NH + 2*NKV) * hd. */
size_t model_config_qkv_dim(const model_config *c);

/* ---------------------------------------------------------------- tensors */

typedef struct {
    float *attn_norm; /* (D) */
    float *wq;        /* (NH*hd, D) — first rows of the fused (QKV, D) matrix */
    float *wk;        /* (NKV*hd, D) */
    float *wv;        /* (NKV*hd, D) */
    float *bq;        /* (NH*hd) — start of the fused (QKV) bias; NULL unless qkv_bias */
    float *bk;        /* (NKV*hd) */
    float *bv;        /* (NKV*hd) */
    float *q_norm;    /* (hd), NULL unless qk_norm */
    float *k_norm;    /* (hd) */
    float *wo;        /* (D, NH*hd) */
    float *ffn_norm;  /* (D) */
    float *w_gate;    /* (F, D) — first rows of the fused (2F, D) matrix */
    float *w_up;      /* (F, D) */
    float *w_down;    /* (D, F) */
} model_layer;

typedef struct {
    float *token_embd;   /* (V, D) */
    model_layer *layers; /* (L) — owned array of views */
    float *output_norm;  /* (D) */
    float *output;       /* (V, D); aliases token_embd when tied */
} model_tensors;

/* Slice a flat buffer of model_config_n_params floats into views (allocates the layer
 * array; free with model_views_free). */
int model_views(const model_config *c, float *base, model_tensors *t);
void model_views_free(model_tensors *t);

/* One named tensor of the flat buffer, in buffer order (GGUF names, llama.cpp's). */
typedef struct {
    char name[64];  /* "token_embd.weight", "blk.3.attn_q.weight", ... */
    size_t offset;  /* in floats, into the flat buffer */
    size_t rows;    /* row-major (rows, cols); 1-D tensors have rows = 1 */
    size_t cols;
    int n_dims;     /* 1 or 2 */
    int is_matrix;  /* weight decay applies (2-D weights, embeddings included) */
} model_param_info;
/* The table of all tensors (count via *n). Caller frees the array. */
int model_param_table(const model_config *c, model_param_info **out, size_t *n);

/* Weight matrices kept in their file encoding (q8_0, q4_K, ...) for decoding: the decoder's
 * few-row products run on these blocks (quant_matmul_rows). A qmatrix with data == NULL was
 * not block-quantized in the file; the fp32 weights serve it. */
typedef struct {
    qmatrix wq, wk, wv, wo, w_gate, w_up, w_down;
} model_qlayer;
typedef struct model_quant {
    void *mem;            /* owned: every encoded matrix, one allocation */
    model_qlayer *layers; /* (L), owned */
    qmatrix output;       /* output.weight, or token_embd.weight when tied */
    qmatrix token_embd;   /* decode-only models whose token_embd is block-quantized: the decoder
                           * decodes the rows it looks up (data NULL otherwise) */
} model_quant;
void model_quant_free(model_quant *q);

/* ---------------------------------------------------------------- model */

typedef struct model_acts model_acts; /* training activations (model_train.c) */

typedef struct model {
    model_config cfg;
    size_t n_params;
    float *params;           /* (n_params), 64-byte aligned */
    model_tensors w;         /* views into params */
    tokenizer *tok;          /* owned; NULL for a bare model */
    char *chat_template;     /* owned; NULL if none */
    /* training state, allocated on first use by model_forward / model_backward */
    float *grads;            /* (n_params) */
    model_tensors g;         /* views into grads */
    model_acts *acts;
    float *rope_cos;         /* (ctx_len, hd/2) */
    float *rope_sin;         /* (ctx_len, hd/2) */
    float *rope_factors;     /* (hd/2) theta divisors, owned; NULL = none (all 1) */
    /* Encoded copies of the weight matrices a quantized file stored (NULL otherwise): decode
     * uses them; everything else uses params (the same values, decoded once at load). Freed
     * by model_backward and model_init_weights, since the weights are about to change. */
    model_quant *quant;
    /* 1: loaded by model_load_decode_only. Block-quantized matrices exist only in quant: their
     * views in w are NULL and params holds just the other tensors (n_params still counts the
     * whole model). Only the decoder may run; training, forward, saving refuse. */
    int decode_only;
} model;

/* Allocate a model (weights zero). Takes ownership of tok (may be NULL). Llama 3 scaling in
 * cfg sets rope_factors. */
int model_create(model **out, const model_config *cfg, tokenizer *tok);
/* Replace the RoPE frequency divisors (hd/2 values > 0; NULL = none) and rebuild the tables
 * (the loader's path for a file's rope_freqs.weight). */
int model_set_rope_factors(model *m, const float *factors);
void model_free(model *m);
/* GPT-2/Llama-style init: N(0, 0.02) matrices, residual projections (wo, w_down) scaled by
 * 1/sqrt(2L), norms 1, biases 0. Deterministic for the seed. */
void model_init_weights(model *m, uint64_t seed);

/* ---------------------------------------------------------------- training pass */

/* Forward over a batch: inputs (B, T) token ids in [0, V). Fills the logits, returned as
 * (B*T, V) floats owned by the model (valid until the next forward). T <= ctx_len.
 * Activations are kept for model_backward. Returns NULL on error. */
float *model_forward(model *m, const int32_t *inputs, size_t B, size_t T);
/* Cross-entropy of the current logits against targets (B*T; -1 = ignore), mean over
 * non-ignored positions, in nats. If want_grad, the logits buffer is OVERWRITTEN by
 * dLoss/dlogits (ready for model_backward). *n_valid receives the count (may be NULL). */
float model_loss_ce(model *m, const int32_t *targets, int want_grad, size_t *n_valid);
/* The buffer model_backward reads as dLoss/dlogits (B*T, V): the logits buffer itself.
 * Distillation losses write their gradient here. */
float *model_dlogits(model *m);
void model_zero_grad(model *m);
/* Backward from dlogits through the whole network; ACCUMULATES into m->grads. */
int model_backward(model *m);
/* A callback between the parts of the backward pass, for work that can start on gradients
 * that are already final (a data-parallel trainer starts their allreduce). fn(ud, from) says:
 * the gradients at flat offsets [from, n_params) will not change again in this call. It is
 * called with decreasing from: after the output projection and final norm (from = offset of
 * output_norm: with a tied output its gradient goes to token_embd, which is final only at the
 * end), after each layer L-1 .. 0 (from = offset of that layer's first tensor), and after the
 * embedding (from = 0), i.e. L + 2 times. It runs on the calling thread between the kernels'
 * parallel regions (never inside one), so it may call MPI under MPI_THREAD_FUNNELED. A
 * non-zero return stops the backward pass, which then returns -1 (fn sets the error). */
typedef struct {
    int (*fn)(void *ud, size_t from);
    void *ud;
} model_backward_hook;
/* model_backward with a hook (NULL or fn NULL: exactly model_backward). The gradients are
 * the same bits with or without one. */
int model_backward_hooked(model *m, const model_backward_hook *hook);

/* ---------------------------------------------------------------- decoding */

/* Keys and values of one sequence, for every layer. */
typedef struct {
    size_t n_ctx;  /* capacity, positions */
    size_t len;    /* positions filled */
    size_t kv_dim; /* NKV*hd */
    size_t n_layers;
    float *k; /* (L, n_ctx, NKV*hd) */
    float *v; /* (L, n_ctx, NKV*hd) */
} kv_cache;
int kv_cache_init(kv_cache *c, const model_config *cfg, size_t n_ctx);
void kv_cache_free(kv_cache *c);
static inline void kv_cache_clear(kv_cache *c) { c->len = 0; }

/* Scratch for running up to max_rows token rows at once (prefill chunks and/or one token
 * of each of several sequences: continuous batching). */
typedef struct {
    const model *m;
    size_t max_rows;
    float *x;      /* (max_rows, D) residual stream */
    float *xb;     /* (max_rows, D) normed */
    float *qkv;    /* (max_rows, QKV) */
    float *atty;   /* (max_rows, NH*hd) */
    float *gu;     /* (max_rows, 2F) */
    float *h;      /* (max_rows, F) */
    float *logits; /* (max_rows, V) */
    float *rstd;   /* (max_rows * (NH+NKV)): norms' 1/rms scratch */
    float *att;    /* (threads, ctx_len) attention scratch */
    int32_t *pos;  /* (max_rows) */
    size_t n_scratch_threads;
} decoder;
int decoder_init(decoder *d, const model *m, size_t max_rows);
void decoder_free(decoder *d);
/* Run n <= max_rows rows. Row i feeds token tokens[i] to sequence caches[i] at position
 * caches[i]->len (rows of the same cache must be consecutive, in order; each row advances
 * its cache by one). Writes K/V into the caches, then attends causally. If logits is
 * non-NULL, row i's logits go to logits + i*V only where want (n flags) is NULL or want[i];
 * rows not wanted skip the output projection. Fails if a cache is full.
 * After a run with logits != NULL, d->xb holds the wanted rows' final hidden states (after
 * output_norm, the input of the output projection), (n_wanted, D) in row order, until the
 * next run (serve hands the prompt's last one to the guard). */
int decoder_run(decoder *d, kv_cache *const *caches, const int32_t *tokens, size_t n,
                const uint8_t *want, float *logits);
/* Convenience: feed n tokens to one cache in chunks of max_rows; logits of the LAST token
 * to last_logits (V) if non-NULL; all rows' logits to all_logits (n, V) if non-NULL. */
int decoder_prefill(decoder *d, kv_cache *c, const int32_t *tokens, size_t n, float *last_logits,
                    float *all_logits);

/* ---------------------------------------------------------------- sampling */

/* A logits processor sees the raw logits of the next position (V) and the token history
 * (prompt + generated so far) and may change them in place (the watermark adds its bias
 * here). Runs before temperature / top-k / top-p. */
typedef void (*logits_processor_fn)(void *ud, float *logits, size_t V, const int32_t *history,
                                    size_t n_history);
/* A token selector replaces the final random draw: given the filtered, renormalised
 * probabilities (V; zero outside top-k/top-p) it returns the chosen id (distortion-free
 * watermarks decide here). */
typedef int32_t (*token_selector_fn)(void *ud, const float *probs, size_t V,
                                     const int32_t *history, size_t n_history);

typedef struct {
    float temperature; /* 0 = greedy (argmax after processors) */
    size_t top_k;      /* 0 = off */
    float top_p;       /* 1 = off */
    uint64_t seed;
    int mask_filter;   /* 0: draw among the top-k/top-p candidates in logit order; 1: set the
                        * logits outside them to -inf and draw over the vocabulary in id order
                        * (same distribution, another draw for the same seed: the watermark
                        * experiments' order, kept so their results do not move) */
} sampler_params;
sampler_params sampler_defaults(void); /* temperature 0.8, top_k 40, top_p 0.95, seed 0 */

#define SAMPLER_MAX_PROCESSORS 4
typedef struct {
    sampler_params p;
    size_t V;
    rt_rng rng;
    struct {
        logits_processor_fn fn;
        void *ud;
    } procs[SAMPLER_MAX_PROCESSORS];
    size_t n_procs;
    token_selector_fn select;
    void *select_ud;
    float *probs;                /* (V) */
    struct sampler_cand *cand;   /* (V) candidates (logit, id), sorted when filtering */
} sampler;
int sampler_init(sampler *s, size_t V, const sampler_params *p);
void sampler_free(sampler *s);
int sampler_add_processor(sampler *s, logits_processor_fn fn, void *ud);
void sampler_set_selector(sampler *s, token_selector_fn fn, void *ud);
/* Choose the next token. logits (V) is modified (processors, temperature). */
int32_t sampler_sample(sampler *s, float *logits, const int32_t *history, size_t n_history);
/* The filtered distribution the last sampler_sample drew from: probs (V). */
const float *sampler_last_probs(const sampler *s);
/* The sampler's top-k / top-p filter applied to logits (V) in place: logits of tokens
 * outside the top_k (by logit, ties by id), then outside the smallest prefix whose
 * softmax(logits / temperature) mass reaches top_p, become -inf. */
int sampler_filter_logits(float *logits, size_t V, size_t top_k, float top_p, float temperature);

/* ---------------------------------------------------------------- files */

/* Load a llama/qwen2/qwen3 GGUF as llama.cpp's converter writes it: config from {arch}.* keys
 * ({arch}.attention.key_length for head_dim, rope_freqs.weight for Llama 3 scaling), the gpt2
 * tokenizer when present, the chat template. Tensors may be F32, F16, BF16, Q8_0, Q4_0, Q4_K,
 * Q5_K or Q6_K: all are decoded to the fp32 params; block-quantized matrices are also kept
 * encoded (m->quant) for the decoder. Unknown architectures, missing tensors and tensors this
 * model would not use are refused; errors name the file and the key/tensor. */
int model_load(model **out, const char *path);
/* For decoding only (generate, serve, data generate): the block-quantized weight matrices
 * (q8_0, q4_K, ...) are kept only as blocks, never decoded to fp32; norms, biases, and
 * matrices of other types (F32/F16/BF16) are fp32 as in model_load. The fused groups q|k|v and
 * gate|up are block-only when all their members are block-quantized (else fp32, as a whole).
 * The decoder gives the same bits as on model_load's model for the same file when rows per
 * run <= QUANT_MATMUL_MAX_ROWS; larger prefill chunks run on the blocks too (8 rows at a time)
 * and may differ from model_load's fp32 GEMM in float rounding. An unquantized file loads as
 * model_load does (decode_only still set). Training, model_forward and saving refuse. */
int model_load_decode_only(model **out, const char *path);
int model_from_gguf_decode_only(model **out, const gguf_ctx *g);
/* 0 for a fully loaded model; for a decode-only one sets the error "FN: ... load it with
 * model_load" and returns -1 (every entry point that reads or writes the fp32 weights). */
int model_require_full(const model *m, const char *fn);
int model_from_gguf(model **out, const gguf_ctx *ctx);
/* Add config keys ({arch}.*), tokenizer, chat template and all tensors (F32, or F16 when f16;
 * plus rope_freqs.weight when the model has RoPE factors) to w. The chat template is
 * m->chat_template, else model_default_chat_template when the tokenizer has retort's
 * <|user|> and <|assistant|> tokens, else none.
 * The caller may add more keys (retort.*) before gguf_writer_write. Tensor data is
 * borrowed from m->params until the write. */
int model_to_gguf(const model *m, gguf_writer *w, int f16);
/* model_to_gguf + write atomically. */
int model_save(const model *m, const char *path);

/* Import a Hugging Face folder (config.json + model.safetensors or sharded with
 * model.safetensors.index.json; F32/F16/BF16): model_type llama, mistral (run as llama),
 * qwen2, qwen3; Llama 3 rope_scaling; tied or untied. llama/mistral Q/K rows are permuted
 * from HF's rotate-half order to the adjacent pairs of GGUF "llama", as llama.cpp's
 * converter does. Takes ownership of tok (may be NULL) on success only. A tokenizer smaller
 * than config.json's vocab_size is padded to it in place (tokenizer_pad_vocab: "[PAD<id>]",
 * UNUSED, as llama.cpp's converter does); a larger one is refused. Unsupported configs and missing or unknown tensors are refused by name. */
int model_from_hf(model **out, const char *dir, tokenizer *tok);
/* Export to DIR (created): model.safetensors (dtype ST_F32, ST_F16 or ST_BF16) then
 * config.json, each written atomically. Tensors use HF names and HF row order. The tokenizer
 * is not exported (no tokenizer.json writer yet). */
int model_to_hf(const model *m, const char *dir, st_dtype dtype);

/* The default chat template stored in models retort creates (tokenizer.chat_template):
 * "<|system|>{system}<|end|><|user|>{user}<|end|><|assistant|>{reply}<|end|>" — as a Jinja
 * string llama.cpp can render, and rendered natively by serve. */
extern const char *const model_default_chat_template;

#endif /* RETORT_MODEL_H */
