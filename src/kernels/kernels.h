/*
 * kernels.h — the numeric kernels of the transformer, each a forward/backward pair, fp32.
 *
 * All tensors are dense, row-major, and described by the shape comment beside them:
 * "(N, C)" means N rows of C contiguous floats. "Backward" functions ACCUMULATE (+=)
 * into parameter gradients (dw) and into input gradients (dinp) unless the comment says
 * "overwrites". GEMM goes through BLIS; everything else is vectorised C with OpenMP
 * threading over rows (the build works without OpenMP, single-threaded).
 *
 * Determinism: with a fixed thread count every kernel returns bit-identical results run to
 * run (no atomics, fixed reduction orders), and the same bits for ANY thread count too (for
 * GEMM this rests on BLIS splitting only M and N across threads, never K; the tests check it).
 * Threading: the kernels open their own OpenMP parallel regions; call them from serial code.
 * Inside a parallel region use gemm_serial and attention_decode (the others still work there,
 * single-threaded, as OpenMP makes nested regions inactive by default).
 *
 * What this is not: it knows nothing of models, files or tokens. src/model composes
 * these into a Llama block.
 */
#ifndef RETORT_KERNELS_H
#define RETORT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- threads */

/* Threads used by OpenMP loops and by BLIS, for the calling thread (like omp_set_num_threads,
 * which it calls too): a thread's setting does not change another thread's that made its own,
 * so two engines in one process keep their counts. It is also the default for threads that
 * never set one (the last call wins). n <= 0 means all online cores. Before any call the
 * kernels use OMP_NUM_THREADS when it is set, else all online cores. Sets BLIS's global count
 * too (bli_thread_set_num_threads, under BLIS's own lock; our GEMMs pass theirs per call).
 * kernels_get_threads: the calling thread's count. Thread-safe. */
void kernels_set_threads(int n);
int kernels_get_threads(void);
/* Which BLAS does the GEMMs, e.g. "BLIS 0.9.0 (skx kernels)" — for logs and benchmarks.
 * (On CPUs with AVX-512 the library selects BLIS's "skx" kernels unless BLIS_ARCH_TYPE is set;
 * see gemm.c.) */
const char *kernels_blas_info(void);

/* ---------------------------------------------------------------- GEMM */

/* C(M,N) = alpha * op(A)(M,K) · op(B)(K,N) + beta * C(M,N), all row-major.
 * op(A) = A (M,K) with row stride lda, or A^T when trans_a (A stored (K,M), stride lda).
 * Same for B. Multithreaded (kernels_get_threads()). beta == 0 overwrites C (NaNs in C do not
 * survive); K == 0 or alpha == 0 leaves beta*C. */
void gemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
/* The same, single-threaded: safe to call from inside an OpenMP parallel region. (One BLIS
 * call; gemm may sum long K in a few pieces, so the two can differ in the last bits.) */
void gemm_serial(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                 const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                 size_t ldc);

/* Linear layer, PyTorch convention (weight is (out, in), as GGUF stores it).
 * out (N, OC) = inp (N, C) · w (OC, C)^T                      (overwrites out) */
void matmul_forward(float *out, const float *inp, const float *w, size_t N, size_t C, size_t OC);
/* dinp (N, C) += dout (N, OC) · w (OC, C);  dw (OC, C) += dout^T · inp (N, C).
 * Either dinp or dw may be NULL to skip it. */
void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                     size_t N, size_t C, size_t OC);

/* ---------------------------------------------------------------- embedding */

/* out (N, C) = wte[ids[n]] for each row; ids (N) in [0, V) (caller validates). Overwrites. */
void embedding_forward(float *out, const int32_t *ids, const float *wte, size_t N, size_t C);
/* dwte (V, C) += scatter of dout (N, C) by ids (N). Deterministic for any thread count (threads
 * split the columns; each element sums its rows in order). */
void embedding_backward(float *dwte, const float *dout, const int32_t *ids, size_t N, size_t C);

/* ---------------------------------------------------------------- RMSNorm */

/* out (N, C) = inp (N, C) * rstd[n] * w (C), rstd (N) = 1/sqrt(mean(inp^2) + eps). Overwrites
 * out and rstd (rstd is saved for backward; may not be NULL). */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, size_t N, size_t C,
                     float eps);
/* dinp (N, C) += ..., dw (C) += ... given dout (N, C), the forward's inp, w and rstd (N).
 * Either dinp or dw may be NULL to skip it. */
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, size_t N, size_t C);

/* ---------------------------------------------------------------- RoPE */

/* Rotary tables for adjacent pairs (Meta / GGUF "normal" RoPE): for position p and pair i in
 * [0, hd/2): theta = p * base^(-2i/hd); cos_tab, sin_tab (max_pos, hd/2). hd must be even. */
void rope_tables(float *cos_tab, float *sin_tab, size_t max_pos, size_t hd, float base);
/* Rotate in place the n_heads heads of each of N rows: row n starts at x + n*row_stride and
 * holds n_heads*hd floats; pair (2i, 2i+1) of each head is rotated by angle(pos[n], i).
 * pos (N) positions, each < max_pos of the tables. */
void rope_forward(float *x, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                  const int32_t *pos, const float *cos_tab, const float *sin_tab);
/* Gradient through the rotation: rotates dx in place by the inverse angle. */
void rope_backward(float *dx, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                   const int32_t *pos, const float *cos_tab, const float *sin_tab);
/* NEOX RoPE (llama.cpp's LLAMA_ROPE_TYPE_NEOX, HF's rotate_half; qwen2/qwen3): as rope_forward
 * and rope_backward but pair i of each head is (i, i + hd/2). Same tables. */
void rope_neox_forward(float *x, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                       const int32_t *pos, const float *cos_tab, const float *sin_tab);
void rope_neox_backward(float *dx, size_t N, size_t row_stride, size_t n_heads, size_t hd,
                        const int32_t *pos, const float *cos_tab, const float *sin_tab);

/* ---------------------------------------------------------------- attention */

/* Causal grouped-query self-attention over a fused qkv buffer.
 * qkv (B, T, (NH + 2*NKV) * hd): per row, NH query heads, then NKV key heads, then NKV value
 * heads (each hd floats). Query head h uses kv head h / (NH/NKV). Scale 1/sqrt(hd).
 * out (B, T, NH*hd) overwrites; att (B, NH, T, T) receives the softmax probabilities
 * (row t is zero beyond column t) and is needed by backward. */
void attention_forward(float *out, float *att, const float *qkv, size_t B, size_t T, size_t NH,
                       size_t NKV, size_t hd);
/* dqkv (B, T, (NH+2NKV)*hd) OVERWRITTEN with the gradient w.r.t. qkv, given dout (B, T, NH*hd),
 * the forward's att and qkv. scratch (B, NH, T, T) is workspace (its contents afterwards are
 * unspecified; it may go unused when a per-thread (T, T) buffer can be allocated).
 * NH must be a multiple of NKV. With AVX-512 and hd <= 64 the products run in register-blocked
 * micro-kernels that skip the masked upper triangle; other head sizes take plain loops. */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *att,
                        const float *qkv, size_t B, size_t T, size_t NH, size_t NKV, size_t hd);

/* One query position against a KV cache (decode). q (NH*hd); kcache, vcache (len, NKV*hd)
 * rows of keys/values for positions 0..len-1 (the current token included); out (NH*hd)
 * overwrites; scratch (len) floats. Serial: call it from inside a parallel region.
 * Bit-identical to row len-1 of attention_forward on the same q, k, v (same sums in the same
 * order), so cached decoding reproduces a full forward exactly. */
void attention_decode(float *out, const float *q, const float *kcache, const float *vcache,
                      size_t len, size_t NH, size_t NKV, size_t hd, float *scratch);

/* ---------------------------------------------------------------- SwiGLU */

/* gu (N, 2F): per row, F gate values then F up values. out (N, F) = silu(gate) * up. */
void swiglu_forward(float *out, const float *gu, size_t N, size_t F);
/* dgu (N, 2F) OVERWRITTEN from dout (N, F) and the forward's gu. */
void swiglu_backward(float *dgu, const float *dout, const float *gu, size_t N, size_t F);

/* ---------------------------------------------------------------- elementwise */

/* a (n) += b (n) */
void add_inplace(float *a, const float *b, size_t n);
/* out (n) = exp(x (n)), vectorised (within about 2 ulp of expf; -inf -> 0); may alias. */
void kernels_exp(float *out, const float *x, size_t n);

/* ---------------------------------------------------------------- softmax and losses */

/* probs (N, V) = softmax(logits (N, V)) per row; probs may alias logits. */
void softmax_forward(float *probs, const float *logits, size_t N, size_t V);
/* out (N, V) = log_softmax(logits) per row; may alias. */
void log_softmax_forward(float *out, const float *logits, size_t N, size_t V);

/* Fused softmax cross-entropy. targets (N): class id in [0, V), or -1 to ignore the row (any
 * other id outside [0, V) is treated as ignored too, rather than read out of bounds).
 * losses (N) receives -log p[target] (0 for ignored rows; may be NULL).
 * If dlogits is non-NULL it is OVERWRITTEN with (softmax - onehot) * grad_scale for valid rows
 * and 0 for ignored ones; dlogits may alias logits.
 * Returns the SUM of losses over valid rows (in double), and the count in *n_valid (may be
 * NULL). The sum is added over fixed blocks of rows, then over blocks in order. */
double crossentropy_forward_backward(float *dlogits, float *losses, const float *logits,
                                     const int32_t *targets, size_t N, size_t V,
                                     float grad_scale, size_t *n_valid);

#endif /* RETORT_KERNELS_H */
