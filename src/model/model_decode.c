/*
 * model_decode.c — inference with a KV cache: runs a set of token rows (a prefill chunk of
 * one sequence, one new token from each of several sequences, or a mix) through the model
 * in one pass, so concurrent sequences share every weight read (continuous batching).
 * When the model came from a quantized file (m->quant), the few-row products (decode steps,
 * small batches) run on the encoded blocks (quant_matmul_rows); larger prefill chunks use the
 * fp32 weights through the GEMM. A decode-only model (model_load_decode_only) has no fp32
 * copy of its block-quantized matrices: every product with them runs on the blocks, 8 rows at
 * a time, and its embedding rows are decoded from the blocks as they are looked up.
 * Not the training pass: nothing here is kept for backward.
 */
#include "model_internal.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../kernels/kernels.h"

int kv_cache_init(kv_cache *c, const model_config *cfg, size_t n_ctx) {
    memset(c, 0, sizeof *c);
    if (n_ctx == 0) return RT_FAIL("KV cache: context size must be > 0");
    c->n_ctx = n_ctx;
    c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
    c->n_layers = cfg->n_layers;
    size_t n, bytes;
    if (rt_mul_size(cfg->n_layers * n_ctx, c->kv_dim, &n) || rt_mul_size(n, sizeof(float), &bytes))
        return -1;
    c->k = rt_alloc_aligned(bytes, "KV cache");
    c->v = rt_alloc_aligned(bytes, "KV cache");
    if (!c->k || !c->v) {
        kv_cache_free(c);
        return -1;
    }
    return 0;
}

void kv_cache_free(kv_cache *c) {
    rt_free_aligned(c->k);
    rt_free_aligned(c->v);
    memset(c, 0, sizeof *c);
}

int decoder_init(decoder *d, const model *m, size_t max_rows) {
    memset(d, 0, sizeof *d);
    const model_config *c = &m->cfg;
    if (max_rows == 0) return RT_FAIL("decoder: max_rows must be > 0");
    d->m = m;
    d->max_rows = max_rows;
    size_t D = c->dim, F = c->ffn_dim, V = c->vocab_size, QKV = model_config_qkv_dim(c);
    size_t AD = c->n_heads * c->head_dim;
#ifdef _OPENMP
    d->n_scratch_threads = (size_t)omp_get_max_threads();
#else
    d->n_scratch_threads = 1;
#endif
    struct {
        float **p;
        size_t n;
    } want[] = {{&d->x, max_rows * D},   {&d->xb, max_rows * D},     {&d->qkv, max_rows * QKV},
                {&d->atty, max_rows * AD}, {&d->gu, max_rows * 2 * F}, {&d->h, max_rows * F},
                {&d->logits, max_rows * V}, {&d->rstd, max_rows * (c->n_heads + c->n_kv_heads)},
                {&d->att, d->n_scratch_threads * c->ctx_len}};
    for (size_t i = 0; i < RT_ARRAY_LEN(want); i++) {
        size_t bytes;
        if (rt_mul_size(want[i].n, sizeof(float), &bytes) ||
            !(*want[i].p = rt_alloc_aligned(bytes, "decoder scratch"))) {
            decoder_free(d);
            return -1;
        }
    }
    d->pos = rt_malloc_array(max_rows, sizeof(int32_t), "decoder positions");
    if (!d->pos) {
        decoder_free(d);
        return -1;
    }
    return 0;
}

void decoder_free(decoder *d) {
    float *f[] = {d->x, d->xb, d->qkv, d->atty, d->gu, d->h, d->logits, d->rstd, d->att};
    for (size_t i = 0; i < RT_ARRAY_LEN(f); i++) rt_free_aligned(f[i]);
    free(d->pos);
    memset(d, 0, sizeof *d);
}

/* Can the product with encoded matrix q run on its blocks for n rows? */
static int q_ok(const qmatrix *q, size_t n) { return q->data && n <= QUANT_MATMUL_MAX_ROWS; }

/* quant_matmul_rows over any n, QUANT_MATMUL_MAX_ROWS rows at a time (a decode-only model,
 * which has no fp32 copy for the GEMM). */
static int q_rows(float *out, size_t ldo, const float *in, const qmatrix *q, size_t n) {
    for (size_t r = 0; r < n; r += QUANT_MATMUL_MAX_ROWS)
        if (quant_matmul_rows(out + r * ldo, ldo, in + r * q->cols, q, RT_MIN(QUANT_MATMUL_MAX_ROWS, n - r)))
            return -1;
    return 0;
}

/* out (n, OC, row stride ldo) = in (n, C) · W^T: on the encoded blocks when q allows it (or when
 * there is no fp32 w: decode-only), else the fp32 weights w (then ldo must be OC). */
static int dec_linear(float *out, size_t ldo, const float *in, const float *w, const qmatrix *q, size_t n,
                      size_t C, size_t OC) {
    if (q && q_ok(q, n)) return quant_matmul_rows(out, ldo, in, q, n);
    if (!w && q && q->data) return q_rows(out, ldo, in, q, n);
    if (!w) return RT_FAIL("decoder: a weight matrix has neither fp32 values nor blocks");
    matmul_forward(out, in, w, n, C, OC);
    return 0;
}

/* Two or three row-stacked matrices (q|k|v, gate|up) that are one fused fp32 matrix: on their
 * blocks, each into its column slice, when all are encoded; else the one fused product. */
static int dec_fused(float *out, const float *in, const float *w, const qmatrix *const *q, size_t nq, size_t n,
                     size_t C, size_t OC) {
    int all = 1;
    for (size_t i = 0; i < nq; i++) all = all && q[i] && q_ok(q[i], n);
    if (!all && w) {
        matmul_forward(out, in, w, n, C, OC);
        return 0;
    }
    size_t col = 0; /* all encoded: fewer rows than the limit, or decode-only (no fused w) */
    for (size_t i = 0; i < nq; i++) {
        if (!q[i] || !q[i]->data) return RT_FAIL("decoder: a fused weight group has neither fp32 values nor blocks");
        if (q_rows(out + col, OC, in, q[i], n)) return -1;
        col += q[i]->rows;
    }
    return 0;
}

int decoder_run(decoder *d, kv_cache *const *caches, const int32_t *tokens, size_t n,
                const uint8_t *want, float *logits) {
    const model *m = d->m;
    const model_config *c = &m->cfg;
    if (n == 0) return 0;
    if (n > d->max_rows) return RT_FAIL("decoder: %zu rows exceed max_rows %zu", n, d->max_rows);
    size_t L = c->n_layers, D = c->dim, F = c->ffn_dim, V = c->vocab_size, hd = c->head_dim;
    size_t NH = c->n_heads, NKV = c->n_kv_heads, QKV = model_config_qkv_dim(c), AD = NH * hd;
    size_t kvd = NKV * hd;
    /* positions: consecutive rows of one cache continue from its length */
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || (size_t)tokens[i] >= V)
            return RT_FAIL("token id %d is outside the vocabulary (size %zu)", tokens[i], V);
        size_t p = (i > 0 && caches[i] == caches[i - 1]) ? (size_t)d->pos[i - 1] + 1 : caches[i]->len;
        if (p >= caches[i]->n_ctx || p >= c->ctx_len)
            return RT_FAIL("context full: position %zu exceeds the context size %zu", p,
                           RT_MIN(caches[i]->n_ctx, c->ctx_len));
        d->pos[i] = (int32_t)p;
    }
    if (m->w.token_embd) {
        embedding_forward(d->x, tokens, m->w.token_embd, n, D);
    } else { /* decode-only, block-quantized embedding: decode the rows looked up */
        const qmatrix *e = m->quant ? &m->quant->token_embd : NULL;
        if (!e || !e->data) return RT_FAIL("decoder: the token embedding has neither fp32 values nor blocks");
        for (size_t i = 0; i < n; i++)
            quant_dequantize_row(e->type, (const uint8_t *)e->data + (size_t)tokens[i] * e->row_bytes, d->x + i * D,
                                 D);
    }
    for (size_t l = 0; l < L; l++) {
        const model_layer *w = &m->w.layers[l];
        const model_qlayer *ql = m->quant ? &m->quant->layers[l] : NULL;
        const qmatrix *qkv_q[3] = {ql ? &ql->wq : NULL, ql ? &ql->wk : NULL, ql ? &ql->wv : NULL};
        const qmatrix *gu_q[2] = {ql ? &ql->w_gate : NULL, ql ? &ql->w_up : NULL};
        rmsnorm_forward(d->xb, d->rstd, d->x, w->attn_norm, n, D, c->norm_eps);
        if (dec_fused(d->qkv, d->xb, w->wq, qkv_q, 3, n, D, QKV)) return -1; /* wq|wk|wv */
        model_qkv_finish(m, w, d->qkv, NULL, d->rstd, n, d->pos);
        for (size_t i = 0; i < n; i++) {
            kv_cache *kc = caches[i];
            size_t off = (l * kc->n_ctx + (size_t)d->pos[i]) * kvd;
            memcpy(kc->k + off, d->qkv + i * QKV + AD, kvd * sizeof(float));
            memcpy(kc->v + off, d->qkv + i * QKV + AD + kvd, kvd * sizeof(float));
        }
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
#endif
        for (size_t i = 0; i < n; i++) {
            int t = 0;
#ifdef _OPENMP
            t = omp_get_thread_num();
#endif
            const kv_cache *kc = caches[i];
            const float *kb = kc->k + l * kc->n_ctx * kvd, *vb = kc->v + l * kc->n_ctx * kvd;
            attention_decode(d->atty + i * AD, d->qkv + i * QKV, kb, vb, (size_t)d->pos[i] + 1, NH,
                             NKV, hd, d->att + (size_t)t * c->ctx_len);
        }
        if (dec_linear(d->xb, D, d->atty, w->wo, ql ? &ql->wo : NULL, n, AD, D)) return -1;
        add_inplace(d->x, d->xb, n * D);
        rmsnorm_forward(d->xb, d->rstd, d->x, w->ffn_norm, n, D, c->norm_eps);
        if (dec_fused(d->gu, d->xb, w->w_gate, gu_q, 2, n, D, 2 * F)) return -1;
        swiglu_forward(d->h, d->gu, n, F);
        if (dec_linear(d->xb, D, d->h, w->w_down, ql ? &ql->w_down : NULL, n, F, D)) return -1;
        add_inplace(d->x, d->xb, n * D);
    }
    for (size_t i = 0; i < n; i++) caches[i]->len = (size_t)d->pos[i] + 1;
    if (!logits) return 0;
    /* gather the wanted rows, then one GEMM for their logits */
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        if (want && !want[i]) continue;
        if (nw != i) memcpy(d->x + nw * D, d->x + i * D, D * sizeof(float));
        nw++;
    }
    if (nw == 0) return 0;
    rmsnorm_forward(d->xb, d->rstd, d->x, m->w.output_norm, nw, D, c->norm_eps);
    if (dec_linear(d->logits, V, d->xb, m->w.output, m->quant ? &m->quant->output : NULL, nw, D, V)) return -1;
    for (size_t i = 0, j = 0; i < n; i++) {
        if (want && !want[i]) continue;
        memcpy(logits + i * V, d->logits + j * V, V * sizeof(float));
        j++;
    }
    return 0;
}

int decoder_prefill(decoder *d, kv_cache *c, const int32_t *tokens, size_t n, float *last_logits,
                    float *all_logits) {
    size_t V = d->m->cfg.vocab_size;
    kv_cache **cs = rt_malloc_array(d->max_rows, sizeof *cs, "prefill rows");
    uint8_t *want = rt_calloc(d->max_rows, 1, "prefill rows");
    float *tmp = NULL;
    int rc = 0;
    if (!cs || !want) {
        rc = -1;
        goto done;
    }
    for (size_t i = 0; i < d->max_rows; i++) cs[i] = c;
    for (size_t s = 0; s < n && rc == 0; s += d->max_rows) {
        size_t k = RT_MIN(d->max_rows, n - s);
        int last_chunk = s + k == n;
        if (all_logits) {
            rc = decoder_run(d, cs, tokens + s, k, NULL, all_logits + s * V);
            if (rc == 0 && last_chunk && last_logits)
                memcpy(last_logits, all_logits + (n - 1) * V, V * sizeof(float));
        } else if (last_chunk && last_logits) {
            memset(want, 0, k);
            want[k - 1] = 1;
            if (!tmp) tmp = rt_malloc_array(k, V * sizeof(float), "prefill logits");
            if (!tmp) rc = -1;
            if (rc == 0) rc = decoder_run(d, cs, tokens + s, k, want, tmp);
            if (rc == 0) memcpy(last_logits, tmp + (k - 1) * V, V * sizeof(float));
        } else {
            rc = decoder_run(d, cs, tokens + s, k, NULL, NULL);
        }
    }
done:
    free(cs);
    free(want);
    free(tmp);
    return rc;
}
