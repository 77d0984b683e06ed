/*
 * model_internal.h — declarations shared between the model room's own files only.
 * Not part of the interface (model.h is).
 */
#ifndef RETORT_MODEL_INTERNAL_H
#define RETORT_MODEL_INTERNAL_H

#include "model.h"

void model_acts_free(model_acts *a);

/* Decode-only models (model_load_decode_only): skip has one flag per tensor of
 * model_param_table's order; flagged tensors get no fp32 storage and a NULL view, the others
 * are packed in table order. model_sparse_size counts the packed floats. */
size_t model_sparse_size(const model_config *c, const uint8_t *skip);
int model_create_sparse(model **out, const model_config *cfg, tokenizer *tok, const uint8_t *skip);

/* Attention inputs of one layer for N rows (model_qkv.c): qkv (N, QKV) = rope(norm(Wqkv·xn +
 * b)) with the config's bias / per-head norm / RoPE variant. pre (N, QKV) receives the
 * pre-norm projection and rstd (N, NH+NKV) the norms' 1/rms when qk_norm (pre may be NULL
 * when nothing is kept for backward; rstd may not). pos (N) positions. */
void model_qkv_forward(const model *m, const model_layer *w, float *qkv, float *pre, float *rstd,
                       const float *xn, size_t N, const int32_t *pos);
/* The same after the projection: the caller has written Wqkv·xn into pre (when qk_norm and
 * pre != NULL) or qkv (the decoder's path, whose projection may run on quantized blocks). */
void model_qkv_finish(const model *m, const model_layer *w, float *qkv, float *pre, float *rstd, size_t N,
                      const int32_t *pos);
/* From dqkv = dL/dqkv (overwritten in place by dL/d(Wqkv·xn + b)): accumulates the norm and
 * bias gradients into g. The weight and input gradients are left to the caller. */
void model_qkv_backward(const model *m, const model_layer *w, model_layer *g, float *dqkv,
                        const float *pre, const float *rstd, size_t N, const int32_t *pos);

#endif
