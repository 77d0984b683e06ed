/*
 * model_qkv.c — the attention inputs shared by the training pass and the decoder: the fused
 * Q|K|V projection plus the architecture's extras (qwen2's Q/K/V biases, qwen3's per-head
 * Q/K RMSNorm) and the RoPE variant (adjacent pairs or NEOX halves), forward and backward.
 * Not attention itself (src/kernels) and not the rest of the layer (model_train.c,
 * model_decode.c).
 */
#include "model_internal.h"

#include <math.h>
#include <string.h>

#include "../kernels/kernels.h"

/* Per-head RMSNorm of the NH query and NKV key heads of each row (stride QKV): out = x * r * w
 * with r = 1/sqrt(mean over the head + eps); w is q_norm for query heads, k_norm for key
 * heads. V is copied unchanged when out != in. rstd (N, NH+NKV) receives r. */
static void headnorm_forward(float *out, float *rstd, const float *in, const model_layer *w,
                             const model_config *c, size_t N) {
    size_t hd = c->head_dim, NH = c->n_heads, nh = NH + c->n_kv_heads;
    size_t QKV = model_config_qkv_dim(c);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N * QKV > 65536)
#endif
    for (size_t n = 0; n < N; n++) {
        for (size_t h = 0; h < nh; h++) {
            const float *x = in + n * QKV + h * hd, *g = h < NH ? w->q_norm : w->k_norm;
            float *y = out + n * QKV + h * hd;
            double ss = 0;
            for (size_t i = 0; i < hd; i++) ss += (double)x[i] * x[i];
            float r = (float)(1.0 / sqrt(ss / (double)hd + (double)c->norm_eps));
            rstd[n * nh + h] = r;
            for (size_t i = 0; i < hd; i++) y[i] = x[i] * r * g[i];
        }
        if (out != in) memcpy(out + n * QKV + nh * hd, in + n * QKV + nh * hd, (QKV - nh * hd) * sizeof(float));
    }
}

/* In place on the Q and K parts of dqkv: d(in) from d(out); dq_norm, dk_norm ACCUMULATE.
 * in is the forward's input (pre-norm). dw is summed serially so results do not depend on
 * the thread count. */
static void headnorm_backward(float *dqkv, model_layer *gw, const float *in, const model_layer *w,
                              const float *rstd, const model_config *c, size_t N) {
    size_t hd = c->head_dim, NH = c->n_heads, nh = NH + c->n_kv_heads;
    size_t QKV = model_config_qkv_dim(c);
    for (size_t n = 0; n < N; n++)
        for (size_t h = 0; h < nh; h++) {
            const float *x = in + n * QKV + h * hd, *dy = dqkv + n * QKV + h * hd;
            float *dg = h < NH ? gw->q_norm : gw->k_norm, r = rstd[n * nh + h];
            for (size_t i = 0; i < hd; i++) dg[i] += dy[i] * x[i] * r;
        }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N * QKV > 65536)
#endif
    for (size_t n = 0; n < N; n++)
        for (size_t h = 0; h < nh; h++) {
            const float *x = in + n * QKV + h * hd, *g = h < NH ? w->q_norm : w->k_norm;
            float *d = dqkv + n * QKV + h * hd, r = rstd[n * nh + h];
            double dot = 0;
            for (size_t i = 0; i < hd; i++) dot += (double)g[i] * d[i] * x[i];
            float k = (float)(dot * (double)r * r * r / (double)hd);
            for (size_t i = 0; i < hd; i++) d[i] = r * g[i] * d[i] - x[i] * k;
        }
}

void model_qkv_forward(const model *m, const model_layer *w, float *qkv, float *pre, float *rstd,
                       const float *xn, size_t N, const int32_t *pos) {
    const model_config *c = &m->cfg;
    float *dst = c->qk_norm && pre ? pre : qkv;
    matmul_forward(dst, xn, w->wq, N, c->dim, model_config_qkv_dim(c)); /* wq|wk|wv fused */
    model_qkv_finish(m, w, qkv, pre, rstd, N, pos);
}

void model_qkv_finish(const model *m, const model_layer *w, float *qkv, float *pre, float *rstd, size_t N,
                      const int32_t *pos) {
    const model_config *c = &m->cfg;
    size_t QKV = model_config_qkv_dim(c), AD = c->n_heads * c->head_dim;
    float *dst = c->qk_norm && pre ? pre : qkv;
    if (c->qkv_bias) /* bq|bk|bv is one (QKV) row */
        for (size_t n = 0; n < N; n++)
            for (size_t j = 0; j < QKV; j++) dst[n * QKV + j] += w->bq[j];
    if (c->qk_norm) headnorm_forward(qkv, rstd, dst, w, c, N);
    if (c->rope_neox) {
        rope_neox_forward(qkv, N, QKV, c->n_heads, c->head_dim, pos, m->rope_cos, m->rope_sin);
        rope_neox_forward(qkv + AD, N, QKV, c->n_kv_heads, c->head_dim, pos, m->rope_cos, m->rope_sin);
    } else {
        rope_forward(qkv, N, QKV, c->n_heads, c->head_dim, pos, m->rope_cos, m->rope_sin);
        rope_forward(qkv + AD, N, QKV, c->n_kv_heads, c->head_dim, pos, m->rope_cos, m->rope_sin);
    }
}

void model_qkv_backward(const model *m, const model_layer *w, model_layer *g, float *dqkv,
                        const float *pre, const float *rstd, size_t N, const int32_t *pos) {
    const model_config *c = &m->cfg;
    size_t QKV = model_config_qkv_dim(c), AD = c->n_heads * c->head_dim;
    if (c->rope_neox) {
        rope_neox_backward(dqkv, N, QKV, c->n_heads, c->head_dim, pos, m->rope_cos, m->rope_sin);
        rope_neox_backward(dqkv + AD, N, QKV, c->n_kv_heads, c->head_dim, pos, m->rope_cos, m->rope_sin);
    } else {
        rope_backward(dqkv, N, QKV, c->n_heads, c->head_dim, pos, m->rope_cos, m->rope_sin);
        rope_backward(dqkv + AD, N, QKV, c->n_kv_heads, c->head_dim, pos, m->rope_cos, m->rope_sin);
    }
    if (c->qk_norm) headnorm_backward(dqkv, g, pre, w, rstd, c, N);
    if (c->qkv_bias) /* column sums, rows in order: deterministic */
        for (size_t n = 0; n < N; n++)
            for (size_t j = 0; j < QKV; j++) g->bq[j] += dqkv[n * QKV + j];
}
