/*
 * model_train.c — the training forward and backward pass over a (B, T) batch, with every
 * activation kept for backward (llm.c style: one allocation per activation kind, sliced
 * per layer). fp32 throughout.
 * Not the optimizer or the data pipeline (src/train), and not the decode path
 * (model_decode.c), which keeps a KV cache instead of activations.
 */
#include "model_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"

struct model_acts {
    size_t B, T;        /* batch shape of the last forward */
    size_t cap_rows;    /* capacity in rows (B*T) */
    size_t cap_att;     /* capacity in B*T*T */
    int32_t *inputs;    /* (N) */
    int32_t *pos;       /* (N) position of each row: n % T */
    float *resid;       /* (L+1, N, D): resid[l] enters layer l; resid[L] leaves the last */
    float *resid_mid;   /* (L, N, D): after attention's residual add */
    float *ln1;         /* (L, N, D) */
    float *ln1_rstd;    /* (L, N) */
    float *qkv;         /* (L, N, QKV), after RoPE */
    float *qkv_pre;     /* (L, N, QKV) before the per-head norms (qk_norm only) */
    float *qk_rstd;     /* (L, N, NH+NKV) the per-head norms' 1/rms (qk_norm only) */
    float *att;         /* (L, B, NH, T, T) softmax probabilities */
    float *atty;        /* (L, N, NH*hd) */
    float *ln2;         /* (L, N, D) */
    float *ln2_rstd;    /* (L, N) */
    float *gu;          /* (L, N, 2F) */
    float *hb;          /* (L, N, F) swiglu output */
    float *lnf;         /* (N, D) */
    float *lnf_rstd;    /* (N) */
    float *logits;      /* (N, V); overwritten by dlogits before backward */
    /* backward scratch */
    float *dresid;      /* (N, D) */
    float *dln;         /* (N, D) */
    float *datty;       /* (N, NH*hd) */
    float *dqkv;        /* (N, QKV) */
    float *datt;        /* (B, NH, T, T) */
    float *dgu;         /* (N, 2F) */
    float *dh;          /* (N, F) */
};

void model_acts_free(model_acts *a) {
    if (!a) return;
    float **f[] = {&a->resid, &a->resid_mid, &a->ln1, &a->ln1_rstd, &a->qkv, &a->qkv_pre,
                   &a->qk_rstd, &a->att, &a->atty,
                   &a->ln2, &a->ln2_rstd, &a->gu, &a->hb, &a->lnf, &a->lnf_rstd, &a->logits,
                   &a->dresid, &a->dln, &a->datty, &a->dqkv, &a->datt, &a->dgu, &a->dh};
    for (size_t i = 0; i < RT_ARRAY_LEN(f); i++) rt_free_aligned(*f[i]);
    free(a->inputs);
    free(a->pos);
    free(a);
}

static int acts_alloc(model *m, size_t B, size_t T) {
    const model_config *c = &m->cfg;
    size_t N = B * T, att = B * T * T;
    model_acts *a = m->acts;
    if (a && a->cap_rows >= N && a->cap_att >= att) {
        a->B = B;
        a->T = T;
        return 0;
    }
    model_acts_free(a);
    m->acts = a = rt_calloc(1, sizeof *a, "activations");
    if (!a) return -1;
    size_t L = c->n_layers, D = c->dim, F = c->ffn_dim, V = c->vocab_size;
    size_t QKV = model_config_qkv_dim(c), AD = c->n_heads * c->head_dim, NH = c->n_heads;
    size_t QKN = c->qk_norm ? 1 : 0, NHKV = NH + c->n_kv_heads;
    struct {
        float **p;
        size_t n;
    } want[] = {
        {&a->resid, (L + 1) * N * D}, {&a->resid_mid, L * N * D}, {&a->ln1, L * N * D},
        {&a->ln1_rstd, L * N},        {&a->qkv, L * N * QKV},     {&a->att, L * NH * att},
        {&a->atty, L * N * AD},       {&a->ln2, L * N * D},       {&a->ln2_rstd, L * N},
        {&a->gu, L * N * 2 * F},      {&a->hb, L * N * F},        {&a->lnf, N * D},
        {&a->lnf_rstd, N},            {&a->logits, N * V},        {&a->dresid, N * D},
        {&a->dln, N * D},             {&a->datty, N * AD},        {&a->dqkv, N * QKV},
        {&a->datt, NH * att},         {&a->dgu, N * 2 * F},       {&a->dh, N * F},
        {&a->qkv_pre, QKN * L * N * QKV}, {&a->qk_rstd, QKN * L * N * NHKV},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(want); i++) {
        size_t bytes;
        if (want[i].n == 0) continue; /* not used by this architecture */
        if (rt_mul_size(want[i].n, sizeof(float), &bytes)) goto fail;
        *want[i].p = rt_alloc_aligned(bytes, "training activations (reduce --batch or --seq-len)");
        if (!*want[i].p) goto fail;
    }
    a->inputs = rt_malloc_array(N, sizeof(int32_t), "batch inputs");
    a->pos = rt_malloc_array(N, sizeof(int32_t), "positions");
    if (!a->inputs || !a->pos) goto fail;
    a->cap_rows = N;
    a->cap_att = att;
    a->B = B;
    a->T = T;
    return 0;
fail:
    model_acts_free(a);
    m->acts = NULL;
    return -1;
}

/* Views of layer l's activations for the current batch shape. */
typedef struct {
    float *x, *ln1, *rstd1, *qkv, *qkv_pre, *qk_rstd, *att, *atty, *mid, *ln2, *rstd2, *gu, *hb, *out;
} layer_acts;

static layer_acts layer_acts_at(const model_acts *a, const model_config *c, size_t l) {
    size_t B = a->B, T = a->T, N = B * T, D = c->dim, F = c->ffn_dim;
    size_t QKV = model_config_qkv_dim(c), AD = c->n_heads * c->head_dim;
    layer_acts v = {
        .x = a->resid + l * N * D,
        .ln1 = a->ln1 + l * N * D,
        .rstd1 = a->ln1_rstd + l * N,
        .qkv = a->qkv + l * N * QKV,
        .qkv_pre = a->qkv_pre ? a->qkv_pre + l * N * QKV : NULL,
        .qk_rstd = a->qk_rstd ? a->qk_rstd + l * N * (c->n_heads + c->n_kv_heads) : NULL,
        .att = a->att + l * c->n_heads * B * T * T,
        .atty = a->atty + l * N * AD,
        .mid = a->resid_mid + l * N * D,
        .ln2 = a->ln2 + l * N * D,
        .rstd2 = a->ln2_rstd + l * N,
        .gu = a->gu + l * N * 2 * F,
        .hb = a->hb + l * N * F,
        .out = a->resid + (l + 1) * N * D,
    };
    return v;
}

float *model_forward(model *m, const int32_t *inputs, size_t B, size_t T) {
    const model_config *c = &m->cfg;
    if (model_require_full(m, "model_forward")) return NULL;
    if (B == 0 || T == 0) {
        RT_FAIL("model_forward: empty batch (B=%zu, T=%zu)", B, T);
        return NULL;
    }
    if (T > c->ctx_len) {
        RT_FAIL("sequence length %zu exceeds the model's context length %zu", T, c->ctx_len);
        return NULL;
    }
    size_t N = B * T;
    for (size_t i = 0; i < N; i++) {
        if (inputs[i] < 0 || (size_t)inputs[i] >= c->vocab_size) {
            RT_FAIL("token id %d at position %zu is outside the vocabulary (size %zu)", inputs[i], i,
                    c->vocab_size);
            return NULL;
        }
    }
    if (acts_alloc(m, B, T)) return NULL;
    model_acts *a = m->acts;
    size_t L = c->n_layers, D = c->dim, F = c->ffn_dim, V = c->vocab_size, hd = c->head_dim;
    size_t NH = c->n_heads, NKV = c->n_kv_heads, AD = NH * hd;
    memcpy(a->inputs, inputs, N * sizeof(int32_t));
    for (size_t i = 0; i < N; i++) a->pos[i] = (int32_t)(i % T);

    embedding_forward(a->resid, inputs, m->w.token_embd, N, D);
    for (size_t l = 0; l < L; l++) {
        const model_layer *w = &m->w.layers[l];
        layer_acts v = layer_acts_at(a, c, l);
        rmsnorm_forward(v.ln1, v.rstd1, v.x, w->attn_norm, N, D, c->norm_eps);
        model_qkv_forward(m, w, v.qkv, v.qkv_pre, v.qk_rstd, v.ln1, N, a->pos);
        attention_forward(v.atty, v.att, v.qkv, B, T, NH, NKV, hd);
        matmul_forward(v.mid, v.atty, w->wo, N, AD, D);
        add_inplace(v.mid, v.x, N * D);
        rmsnorm_forward(v.ln2, v.rstd2, v.mid, w->ffn_norm, N, D, c->norm_eps);
        matmul_forward(v.gu, v.ln2, w->w_gate, N, D, 2 * F); /* w_gate|w_up fused */
        swiglu_forward(v.hb, v.gu, N, F);
        matmul_forward(v.out, v.hb, w->w_down, N, F, D);
        add_inplace(v.out, v.mid, N * D);
    }
    rmsnorm_forward(a->lnf, a->lnf_rstd, a->resid + L * N * D, m->w.output_norm, N, D, c->norm_eps);
    matmul_forward(a->logits, a->lnf, m->w.output, N, D, V);
    return a->logits;
}

float *model_dlogits(model *m) { return m->acts ? m->acts->logits : NULL; }

float model_loss_ce(model *m, const int32_t *targets, int want_grad, size_t *n_valid) {
    model_acts *a = m->acts;
    size_t N = a->B * a->T, V = m->cfg.vocab_size, nv = 0;
    for (size_t i = 0; i < N; i++) nv += targets[i] >= 0;
    if (n_valid) *n_valid = nv;
    if (nv == 0) {
        if (want_grad) memset(a->logits, 0, N * V * sizeof(float));
        return 0.0f;
    }
    size_t nv2;
    double sum = crossentropy_forward_backward(want_grad ? a->logits : NULL, NULL, a->logits,
                                               targets, N, V, 1.0f / (float)nv, &nv2);
    return (float)(sum / (double)nv);
}

static int ensure_grads(model *m) {
    if (m->grads) return 0;
    size_t bytes;
    if (rt_mul_size(m->n_params, sizeof(float), &bytes)) return -1;
    m->grads = rt_alloc_aligned(bytes, "gradients");
    if (!m->grads) return -1;
    return model_views(&m->cfg, m->grads, &m->g);
}

void model_zero_grad(model *m) {
    if (model_require_full(m, "model_zero_grad") == 0 && ensure_grads(m) == 0) memset(m->grads, 0, m->n_params * sizeof(float));
}

int model_backward(model *m) { return model_backward_hooked(m, NULL); }

/* Tell the hook that the gradients from flat offset `from` on are final. */
static int backward_final(const model *m, const model_backward_hook *hook, const float *from) {
    if (!hook || !hook->fn) return 0;
    return hook->fn(hook->ud, (size_t)(from - m->grads)) ? -1 : 0;
}

int model_backward_hooked(model *m, const model_backward_hook *hook) {
    model_acts *a = m->acts;
    if (model_require_full(m, "model_backward")) return -1;
    if (!a) return RT_FAIL("model_backward called before model_forward");
    if (ensure_grads(m)) return -1;
    model_quant_free(m->quant); /* training changes the weights: decode must not use stale blocks */
    m->quant = NULL;
    const model_config *c = &m->cfg;
    size_t B = a->B, T = a->T, N = B * T;
    size_t L = c->n_layers, D = c->dim, F = c->ffn_dim, V = c->vocab_size, hd = c->head_dim;
    size_t NH = c->n_heads, NKV = c->n_kv_heads, QKV = model_config_qkv_dim(c), AD = NH * hd;
    const float *dlogits = a->logits;

    /* output projection and final norm: dln = dlogits · Wout, dWout += dlogits^T · lnf */
    gemm(0, 0, N, D, V, 1.0f, dlogits, V, m->w.output, D, 0.0f, a->dln, D);
    matmul_backward(NULL, m->g.output, dlogits, a->lnf, m->w.output, N, D, V);
    memset(a->dresid, 0, N * D * sizeof(float));
    rmsnorm_backward(a->dresid, m->g.output_norm, a->dln, a->resid + L * N * D, m->w.output_norm,
                     a->lnf_rstd, N, D);
    /* output_norm (and output, when untied) are final; a tied output went to token_embd */
    if (backward_final(m, hook, m->g.output_norm)) return -1;

    for (size_t l = L; l-- > 0;) {
        const model_layer *w = &m->w.layers[l];
        model_layer *g = &m->g.layers[l];
        layer_acts v = layer_acts_at(a, c, l);

        /* FFN: out = mid + W_down · swiglu(W_gu · rmsnorm(mid)); dresid is dL/dout */
        gemm(0, 0, N, F, D, 1.0f, a->dresid, D, w->w_down, F, 0.0f, a->dh, F);
        matmul_backward(NULL, g->w_down, a->dresid, v.hb, w->w_down, N, F, D);
        swiglu_backward(a->dgu, a->dh, v.gu, N, F);
        gemm(0, 0, N, D, 2 * F, 1.0f, a->dgu, 2 * F, w->w_gate, D, 0.0f, a->dln, D);
        matmul_backward(NULL, g->w_gate, a->dgu, v.ln2, w->w_gate, N, D, 2 * F);
        rmsnorm_backward(a->dresid, g->ffn_norm, a->dln, v.mid, w->ffn_norm, v.rstd2, N, D);
        /* attention: mid = x + Wo · attn(rope(Wqkv · rmsnorm(x))); dresid is dL/dmid */
        gemm(0, 0, N, AD, D, 1.0f, a->dresid, D, w->wo, AD, 0.0f, a->datty, AD);
        matmul_backward(NULL, g->wo, a->dresid, v.atty, w->wo, N, AD, D);
        attention_backward(a->dqkv, a->datt, a->datty, v.att, v.qkv, B, T, NH, NKV, hd);
        model_qkv_backward(m, w, g, a->dqkv, v.qkv_pre, v.qk_rstd, N, a->pos);
        gemm(0, 0, N, D, QKV, 1.0f, a->dqkv, QKV, w->wq, D, 0.0f, a->dln, D);
        matmul_backward(NULL, g->wq, a->dqkv, v.ln1, w->wq, N, D, QKV);
        rmsnorm_backward(a->dresid, g->attn_norm, a->dln, v.x, w->attn_norm, v.rstd1, N, D);
        if (backward_final(m, hook, g->attn_norm)) return -1; /* attn_norm: the layer's first tensor */
    }
    embedding_backward(m->g.token_embd, a->dresid, a->inputs, N, D);
    return backward_final(m, hook, m->grads);
}
