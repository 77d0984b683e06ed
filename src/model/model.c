/*
 * model.c — model config checks, the flat parameter layout (views and the named tensor
 * table), allocation and weight initialisation.
 * Not the forward/backward (model_train.c), decoding (model_decode.c) or file I/O
 * (model_gguf.c).
 */
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"

static const char *const arch_names[MODEL_ARCH_COUNT] = {"llama", "qwen2", "qwen3"};

const char *model_arch_name(int arch) {
    return arch >= 0 && arch < MODEL_ARCH_COUNT ? arch_names[arch] : "unknown";
}

int model_arch_from_name(const char *name, size_t len) {
    for (int a = 0; a < MODEL_ARCH_COUNT; a++)
        if (strlen(arch_names[a]) == len && memcmp(arch_names[a], name, len) == 0) return a;
    if (len == 7 && memcmp(name, "mistral", 7) == 0) return MODEL_ARCH_LLAMA;
    return -1;
}

static int validate_arch(model_config *c) {
    if (c->arch < 0 || c->arch >= MODEL_ARCH_COUNT)
        return RT_FAIL("model config: unknown architecture %d", c->arch);
    c->rope_neox = c->arch != MODEL_ARCH_LLAMA;
    if (c->arch == MODEL_ARCH_QWEN2) c->qkv_bias = 1;
    if (c->arch == MODEL_ARCH_QWEN3) c->qk_norm = 1;
    if (c->qk_norm && c->arch != MODEL_ARCH_QWEN3)
        return RT_FAIL("model config: per-head Q/K norms exist only in qwen3, not %s",
                       model_arch_name(c->arch));
    if (c->qkv_bias && c->arch == MODEL_ARCH_QWEN3)
        return RT_FAIL("model config: qwen3 has no Q/K/V biases");
    c->qkv_bias = c->qkv_bias != 0;
    if (c->rope_scaling == MODEL_ROPE_SCALING_NONE) return 0;
    if (c->rope_scaling == MODEL_ROPE_SCALING_LINEAR) {
        if (!(c->rope_factor > 0) || !isfinite(c->rope_factor))
            return RT_FAIL("model config: linear RoPE scaling needs factor > 0 (%g)", (double)c->rope_factor);
        return 0;
    }
    if (c->rope_scaling != MODEL_ROPE_SCALING_LLAMA3)
        return RT_FAIL("model config: unknown RoPE scaling type %d", c->rope_scaling);
    if (c->arch != MODEL_ARCH_LLAMA)
        return RT_FAIL("model config: llama3 RoPE scaling needs the llama architecture (llama.cpp "
                       "applies rope_freqs only there), not %s",
                       model_arch_name(c->arch));
    if (!(c->rope_factor >= 1.0f) || !(c->rope_low_freq_factor > 0) ||
        !(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_orig_ctx == 0)
        return RT_FAIL("model config: llama3 RoPE scaling needs factor >= 1 (%g), 0 < "
                       "low_freq_factor (%g) < high_freq_factor (%g) and "
                       "original_max_position_embeddings > 0 (%zu)",
                       (double)c->rope_factor, (double)c->rope_low_freq_factor,
                       (double)c->rope_high_freq_factor, c->rope_orig_ctx);
    return 0;
}

int model_config_validate(model_config *c) {
    if (c->dim == 0) return RT_FAIL("model config: --dim must be > 0");
    if (c->n_layers == 0) return RT_FAIL("model config: --layers must be > 0");
    if (c->n_heads == 0) return RT_FAIL("model config: --heads must be > 0");
    if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return RT_FAIL("model config: --kv-heads (%zu) must divide --heads (%zu)", c->n_kv_heads,
                       c->n_heads);
    if (c->head_dim == 0 && c->dim % c->n_heads != 0)
        return RT_FAIL("model config: --dim (%zu) must be a multiple of --heads (%zu)", c->dim,
                       c->n_heads);
    if (c->head_dim == 0) c->head_dim = c->dim / c->n_heads;
    if (c->head_dim % 2 != 0)
        return RT_FAIL("model config: head dim %zu must be even for RoPE", c->head_dim);
    if (c->ffn_dim == 0) return RT_FAIL("model config: --ffn must be > 0");
    if (c->vocab_size == 0) return RT_FAIL("model config: vocabulary size must be > 0");
    if (c->vocab_size > (size_t)INT32_MAX) return RT_FAIL("model config: vocabulary too large");
    if (c->ctx_len == 0) return RT_FAIL("model config: context length (--seq-len) must be > 0");
    if (!(c->norm_eps > 0)) c->norm_eps = 1e-5f;
    if (!(c->rope_base > 0)) return RT_FAIL("model config: RoPE base must be > 0");
    if (c->dim > (1u << 20) || c->ffn_dim > (1u << 22) || c->n_layers > 4096 ||
        c->ctx_len > (1u << 24) || c->head_dim > (1u << 14) || c->n_heads > (1u << 14))
        return RT_FAIL("model config: dimensions are implausibly large (dim %zu, ffn %zu, layers "
                       "%zu, context %zu, heads %zu, head dim %zu)",
                       c->dim, c->ffn_dim, c->n_layers, c->ctx_len, c->n_heads, c->head_dim);
    return validate_arch(c);
}

void model_rope_scaling_factors(const model_config *c, float *factors) {
    size_t half = c->head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        factors[i] = c->rope_scaling == MODEL_ROPE_SCALING_LINEAR ? c->rope_factor : 1.0f;
        if (c->rope_scaling != MODEL_ROPE_SCALING_LLAMA3) continue;
        /* Meta's apply_scaling for Llama 3.1 (as HF's _compute_llama3_parameters and
         * llama.cpp's converter): keep high frequencies, divide low ones by factor, blend. */
        double freq = pow((double)c->rope_base, -2.0 * (double)i / (double)c->head_dim);
        double wavelen = 2.0 * M_PI / freq, old = (double)c->rope_orig_ctx;
        double lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor, f = c->rope_factor;
        double lo_wavelen = old / lo, hi_wavelen = old / hi;
        if (wavelen < hi_wavelen) factors[i] = 1.0f;
        else if (wavelen > lo_wavelen) factors[i] = (float)f;
        else {
            double smooth = (old / wavelen - lo) / (hi - lo);
            factors[i] = (float)(1.0 / ((1.0 - smooth) / f + smooth));
        }
    }
}

size_t model_config_qkv_dim(const model_config *c) {
    return (c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
}

size_t model_config_n_params(const model_config *c) {
    size_t D = c->dim, F = c->ffn_dim, V = c->vocab_size;
    size_t per_layer = D + model_config_qkv_dim(c) * D + D * c->n_heads * c->head_dim + D +
                       2 * F * D + D * F + (c->qkv_bias ? model_config_qkv_dim(c) : 0) +
                       (c->qk_norm ? 2 * c->head_dim : 0);
    return V * D + c->n_layers * per_layer + D + (c->tied ? 0 : V * D);
}

double model_config_train_flops_per_token(const model_config *c, size_t T) {
    double N = (double)model_config_n_params(c);
    return 6.0 * N + 12.0 * (double)c->n_layers * (double)T * (double)(c->n_heads * c->head_dim);
}

/* Walk the layout once; both views and the table come from this so they cannot disagree. */
typedef void (*layout_visit)(void *ud, const char *name, size_t offset, size_t rows, size_t cols,
                             int n_dims, int layer, int slot);
enum { SLOT_EMBD, SLOT_ATTN_NORM, SLOT_WQ, SLOT_WK, SLOT_WV, SLOT_BQ, SLOT_BK, SLOT_BV,
       SLOT_QNORM, SLOT_KNORM, SLOT_WO, SLOT_FFN_NORM, SLOT_GATE, SLOT_UP, SLOT_DOWN, SLOT_OUT_NORM,
       SLOT_OUTPUT };

static size_t layout_walk(const model_config *c, layout_visit visit, void *ud) {
    size_t D = c->dim, F = c->ffn_dim, V = c->vocab_size, hd = c->head_dim;
    size_t off = 0;
    char name[64];
#define EMIT(nm, rows, cols, nd, layer, slot)                                                     \
    do {                                                                                          \
        if (visit) visit(ud, nm, off, rows, cols, nd, layer, slot);                               \
        off += (size_t)(rows) * (size_t)(cols);                                                   \
    } while (0)
    EMIT("token_embd.weight", V, D, 2, -1, SLOT_EMBD);
    for (size_t l = 0; l < c->n_layers; l++) {
        /* in slot order; biases and q/k norms only where the config has them */
        static const char *const names[] = {"attn_norm.weight", "attn_q.weight",  "attn_k.weight",
                                            "attn_v.weight",    "attn_q.bias",    "attn_k.bias",
                                            "attn_v.bias",      "attn_q_norm.weight",
                                            "attn_k_norm.weight", "attn_output.weight",
                                            "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight",
                                            "ffn_down.weight"};
        size_t NHd = c->n_heads * hd, NKVd = c->n_kv_heads * hd;
        size_t rows[14] = {1, NHd, NKVd, NKVd, 1, 1, 1, 1, 1, D, 1, F, F, D};
        size_t cols[14] = {D, D, D, D, NHd, NKVd, NKVd, hd, hd, NHd, D, D, D, F};
        for (int s = 0; s < 14; s++) {
            int slot = SLOT_ATTN_NORM + s;
            if (!c->qkv_bias && slot >= SLOT_BQ && slot <= SLOT_BV) continue;
            if (!c->qk_norm && (slot == SLOT_QNORM || slot == SLOT_KNORM)) continue;
            snprintf(name, sizeof name, "blk.%zu.%s", l, names[s]);
            EMIT(name, rows[s], cols[s], rows[s] == 1 ? 1 : 2, (int)l, slot);
        }
    }
    EMIT("output_norm.weight", 1, D, 1, -1, SLOT_OUT_NORM);
    if (!c->tied) EMIT("output.weight", V, D, 2, -1, SLOT_OUTPUT);
#undef EMIT
    return off;
}

/* Point slot (of layer, or the model-wide ones when layer < 0) at p. */
static void set_view(model_tensors *t, int layer, int slot, float *p) {
    model_layer *L = layer >= 0 ? &t->layers[layer] : NULL;
    switch (slot) {
    case SLOT_EMBD: t->token_embd = p; break;
    case SLOT_ATTN_NORM: L->attn_norm = p; break;
    case SLOT_WQ: L->wq = p; break;
    case SLOT_WK: L->wk = p; break;
    case SLOT_WV: L->wv = p; break;
    case SLOT_BQ: L->bq = p; break;
    case SLOT_BK: L->bk = p; break;
    case SLOT_BV: L->bv = p; break;
    case SLOT_QNORM: L->q_norm = p; break;
    case SLOT_KNORM: L->k_norm = p; break;
    case SLOT_WO: L->wo = p; break;
    case SLOT_FFN_NORM: L->ffn_norm = p; break;
    case SLOT_GATE: L->w_gate = p; break;
    case SLOT_UP: L->w_up = p; break;
    case SLOT_DOWN: L->w_down = p; break;
    case SLOT_OUT_NORM: t->output_norm = p; break;
    case SLOT_OUTPUT: t->output = p; break;
    }
}

static void views_visit(void *ud, const char *name, size_t off, size_t rows, size_t cols,
                        int n_dims, int layer, int slot) {
    (void)name, (void)rows, (void)cols, (void)n_dims;
    void **a = ud;
    set_view(a[0], layer, slot, (float *)a[1] + off);
}

int model_views(const model_config *c, float *base, model_tensors *t) {
    memset(t, 0, sizeof *t);
    t->layers = rt_calloc(c->n_layers, sizeof *t->layers, "layer views");
    if (!t->layers) return -1;
    void *ud[2] = {t, base};
    layout_walk(c, views_visit, ud);
    if (c->tied) t->output = t->token_embd;
    return 0;
}

/* A decode-only model's views: tensors in layout order, packed, skipped ones NULL. */
typedef struct {
    model_tensors *t;
    float *base;
    const uint8_t *skip;
    size_t idx, off;
} sparse_ud;

static void sparse_visit(void *ud, const char *name, size_t off, size_t rows, size_t cols, int n_dims, int layer,
                         int slot) {
    (void)name, (void)off, (void)n_dims;
    sparse_ud *s = ud;
    int skip = s->skip[s->idx++];
    if (s->base) set_view(s->t, layer, slot, skip ? NULL : s->base + s->off);
    if (!skip) s->off += rows * cols;
}

size_t model_sparse_size(const model_config *c, const uint8_t *skip) {
    model_tensors t = {0};
    sparse_ud s = {&t, NULL, skip, 0, 0};
    layout_walk(c, sparse_visit, &s);
    return s.off;
}

void model_views_free(model_tensors *t) {
    free(t->layers);
    memset(t, 0, sizeof *t);
}

typedef struct {
    model_param_info *arr;
    size_t n;
} table_ud;

static void table_visit(void *ud, const char *name, size_t off, size_t rows, size_t cols,
                        int n_dims, int layer, int slot) {
    (void)layer, (void)slot;
    table_ud *t = ud;
    if (t->arr) {
        model_param_info *p = &t->arr[t->n];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->offset = off;
        p->rows = rows;
        p->cols = cols;
        p->n_dims = n_dims;
        p->is_matrix = n_dims == 2;
    }
    t->n++;
}

int model_param_table(const model_config *c, model_param_info **out, size_t *n) {
    table_ud t = {NULL, 0};
    layout_walk(c, table_visit, &t);
    t.arr = rt_calloc(t.n, sizeof *t.arr, "parameter table");
    if (!t.arr) return -1;
    t.n = 0;
    layout_walk(c, table_visit, &t);
    *out = t.arr;
    *n = t.n;
    return 0;
}

/* What model_create allocates (parameters and RoPE tables for the whole context), against the
 * memory this process may use: a file that declares shapes no machine here can hold (a 2^24
 * context_length in a 450 KB file) is refused with the numbers, not allocated (issue 17 #9). */
static int check_memory(const model_config *c, size_t n_floats) {
    double params = (double)n_floats * sizeof(float);
    double rope = 2.0 * (double)c->ctx_len * (double)(c->head_dim / 2) * sizeof(float);
    double avail = (double)rt_mem_available();
    if (params + rope <= avail) return 0;
    char need[16], p_s[16], r_s[16], a_s[16];
    rt_fmt_si(need, sizeof need, params + rope), rt_fmt_si(p_s, sizeof p_s, params);
    rt_fmt_si(r_s, sizeof r_s, rope), rt_fmt_si(a_s, sizeof a_s, avail);
    return RT_FAIL("model config: the model needs %sB (parameters %sB; RoPE tables for its context length %zu, %sB) "
                   "but only %sB of memory is available; a smaller context length or model is needed",
                   need, p_s, c->ctx_len, r_s, a_s);
}

int model_create(model **out, const model_config *cfg, tokenizer *tok) {
    return model_create_sparse(out, cfg, tok, NULL);
}

int model_create_sparse(model **out, const model_config *cfg, tokenizer *tok, const uint8_t *skip) {
    *out = NULL;
    model *m = rt_calloc(1, sizeof *m, "model");
    if (!m) return -1;
    m->cfg = *cfg;
    if (model_config_validate(&m->cfg)) goto fail;
    if (tok && tokenizer_vocab_size(tok) != m->cfg.vocab_size) {
        RT_FAIL("model config: vocabulary size %zu differs from the tokenizer's %zu",
                m->cfg.vocab_size, tokenizer_vocab_size(tok));
        goto fail;
    }
    m->n_params = model_config_n_params(&m->cfg);
    size_t n_floats = skip ? model_sparse_size(&m->cfg, skip) : m->n_params, bytes;
    if (check_memory(&m->cfg, n_floats)) goto fail;
    if (rt_mul_size(n_floats ? n_floats : 1, sizeof(float), &bytes)) goto fail;
    m->params = rt_alloc_aligned(bytes, "model parameters");
    if (!m->params) goto fail;
    m->decode_only = skip != NULL;
    if (!skip && model_views(&m->cfg, m->params, &m->w)) goto fail;
    if (skip) {
        if (!(m->w.layers = rt_calloc(m->cfg.n_layers, sizeof *m->w.layers, "layer views"))) goto fail;
        sparse_ud su = {&m->w, m->params, skip, 0, 0};
        layout_walk(&m->cfg, sparse_visit, &su);
        if (m->cfg.tied) m->w.output = m->w.token_embd;
    }
    size_t half = m->cfg.head_dim / 2;
    m->rope_cos = rt_malloc_array(m->cfg.ctx_len * half, sizeof(float), "RoPE tables");
    m->rope_sin = rt_malloc_array(m->cfg.ctx_len * half, sizeof(float), "RoPE tables");
    if (!m->rope_cos || !m->rope_sin) goto fail;
    if (m->cfg.rope_scaling != MODEL_ROPE_SCALING_NONE) {
        float *f = rt_malloc_array(half, sizeof(float), "RoPE factors");
        if (!f) goto fail;
        model_rope_scaling_factors(&m->cfg, f);
        int rc = model_set_rope_factors(m, f);
        free(f);
        if (rc) goto fail;
    } else {
        rope_tables(m->rope_cos, m->rope_sin, m->cfg.ctx_len, m->cfg.head_dim, m->cfg.rope_base);
    }
    m->tok = tok;
    *out = m;
    return 0;
fail:
    m->tok = NULL; /* not taken on failure */
    model_free(m);
    return -1;
}


int model_set_rope_factors(model *m, const float *factors) {
    const model_config *c = &m->cfg;
    size_t half = c->head_dim / 2;
    if (!factors) {
        free(m->rope_factors);
        m->rope_factors = NULL;
        rope_tables(m->rope_cos, m->rope_sin, c->ctx_len, c->head_dim, c->rope_base);
        return 0;
    }
    for (size_t i = 0; i < half; i++)
        if (!(factors[i] > 0) || !isfinite(factors[i]))
            return RT_FAIL("RoPE factor %zu is %g; factors must be finite and > 0", i,
                           (double)factors[i]);
    if (!m->rope_factors && !(m->rope_factors = rt_malloc_array(half, sizeof(float), "RoPE factors")))
        return -1;
    memcpy(m->rope_factors, factors, half * sizeof(float));
    /* as rope_tables, with theta_i divided by factor_i (ggml's freq_factors) */
    for (size_t i = 0; i < half; i++) {
        double freq = pow((double)c->rope_base, -2.0 * (double)i / (double)c->head_dim) / factors[i];
        for (size_t p = 0; p < c->ctx_len; p++) {
            double a = (double)p * freq;
            m->rope_cos[p * half + i] = (float)cos(a);
            m->rope_sin[p * half + i] = (float)sin(a);
        }
    }
    return 0;
}

void model_free(model *m) {
    if (!m) return;
    model_views_free(&m->w);
    model_views_free(&m->g);
    rt_free_aligned(m->params);
    rt_free_aligned(m->grads);
    model_acts_free(m->acts);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->rope_factors);
    tokenizer_free(m->tok);
    free(m->chat_template);
    model_quant_free(m->quant);
    free(m);
}

int model_require_full(const model *m, const char *fn) {
    if (!m->decode_only) return 0;
    return RT_FAIL("%s: this model was loaded for decoding only (its quantized matrices are kept as blocks, "
                   "without fp32 weights); load it with model_load to train, run forward or save it",
                   fn);
}

void model_init_weights(model *m, uint64_t seed) {
    if (model_require_full(m, "model_init_weights")) return; /* no fp32 matrices to write */
    model_quant_free(m->quant); /* the encoded copies would go stale */
    m->quant = NULL;
    model_param_info *tab;
    size_t n;
    if (model_param_table(&m->cfg, &tab, &n)) return;
    float resid_scale = 1.0f / sqrtf(2.0f * (float)m->cfg.n_layers);
    for (size_t i = 0; i < n; i++) {
        /* one RNG stream per tensor: init does not depend on tensor order or threads */
        rt_rng r;
        rt_rng_seed(&r, seed ^ rt_fnv1a64(tab[i].name, strlen(tab[i].name)));
        float *p = m->params + tab[i].offset;
        size_t cnt = tab[i].rows * tab[i].cols;
        if (tab[i].n_dims == 1) {
            float v = strstr(tab[i].name, ".bias") ? 0.0f : 1.0f; /* biases 0, norms 1 */
            for (size_t j = 0; j < cnt; j++) p[j] = v;
            continue;
        }
        float std = 0.02f;
        if (strstr(tab[i].name, "attn_output") || strstr(tab[i].name, "ffn_down")) std *= resid_scale;
        for (size_t j = 0; j < cnt; j++) p[j] = (float)(rt_rng_normal(&r) * std);
    }
    free(tab);
}
