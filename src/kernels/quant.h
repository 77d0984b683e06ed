/*
 * quant.h — ggml's weight encodings as numeric kernels: the block layouts of llama.cpp's
 * quantized types (byte for byte as ggml-common.h declares them), dequantization to fp32,
 * llama.cpp's reference quantizers (the *_ref algorithms llama-quantize uses without an
 * importance matrix, reproduced so the blocks are bit-identical), half/bfloat16 conversion,
 * and the linear layer for a few rows run directly on encoded weights (decode).
 *
 * Types use ggml's numeric ids (they are what GGUF files store):
 *   QTYPE_F32  0  1 elem, 4 bytes           QTYPE_Q8_0  8  32 elems, 34 bytes: f16 d, i8 q[32]
 *   QTYPE_F16  1  1 elem, 2 bytes           QTYPE_Q4_K 12  256 elems, 144 bytes
 *   QTYPE_Q4_0 2  32 elems, 18 bytes        QTYPE_Q5_K 13  256 elems, 176 bytes
 *   QTYPE_BF16 30 1 elem, 2 bytes           QTYPE_Q6_K 14  256 elems, 210 bytes
 * Layouts (little-endian, packed, no padding):
 *   q4_0: f16 d; u8 qs[16]     x[j] = (lo4(qs[j]) - 8)*d, x[j+16] = (hi4(qs[j]) - 8)*d
 *   q8_0: f16 d; i8 qs[32]     x[j] = qs[j]*d
 *   q4_K: f16 d, dmin; u8 scales[12] (8 six-bit scales and mins); u8 qs[128]
 *         sub-block j (32 elems): x = d*sc_j*q - dmin*m_j, q the 4-bit value
 *   q5_K: as q4_K plus u8 qh[32] (the fifth bit) before qs[128]
 *   q6_K: u8 ql[128], u8 qh[64], i8 scales[16], f16 d (d LAST); x = d*sc*(q - 32)
 *
 * Contract: every row length n must be a multiple of the type's block size (qtype_row_bytes
 * returns 0 otherwise); functions here never fail at run time and never allocate, except
 * quant_matmul_rows (one row buffer per thread). Encoded data may be unaligned.
 *
 * What this is not: a file reader (src/formats/gguf.c finds tensors and checks their byte
 * extents), nor the importance-matrix quantizers (imatrix) or the other ggml types.
 */
#ifndef RETORT_QUANT_H
#define RETORT_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    QTYPE_F32 = 0,
    QTYPE_F16 = 1,
    QTYPE_Q4_0 = 2,
    QTYPE_Q8_0 = 8,
    QTYPE_Q4_K = 12,
    QTYPE_Q5_K = 13,
    QTYPE_Q6_K = 14,
    QTYPE_BF16 = 30,
} qtype;

#define QK_32 32   /* elements per q4_0 / q8_0 block */
#define QK_K 256   /* elements per K-quant super-block */

/* 1 if retort can decode type id t (one of the enum values), else 0. */
int qtype_supported(uint32_t t);
/* Elements and bytes per block (1 and the element size for f32/f16/bf16); 0 if unsupported. */
size_t qtype_block_elems(uint32_t t);
size_t qtype_block_bytes(uint32_t t);
/* Bytes of a row of n elements; 0 if unsupported or n is not a multiple of the block size. */
size_t qtype_row_bytes(uint32_t t, size_t n);
/* Lower-case name as llama.cpp prints it ("q4_K", "bf16"); "?" if unsupported. */
const char *qtype_name(uint32_t t);
/* Parse a name as given on a command line, case-insensitive ("q8_0", "Q4_K", "bf16").
 * Returns 0 and sets *out, or -1 (no error message set). */
int qtype_parse(const char *s, qtype *out);
/* 1 for the block-quantized types (q4_0, q8_0, q4_K, q5_K, q6_K). */
int qtype_is_block(uint32_t t);

/* IEEE half and bfloat16 <-> float. f32->f16 and f32->bf16 round to nearest even (NaN stays
 * NaN), as ggml's GGML_FP32_TO_FP16 / GGML_FP32_TO_BF16. */
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);

/* Decode n elements (a multiple of the block size) of type t from src into dst (overwrites).
 * The values equal ggml's dequantize_row_* bit for bit (same operation order; the AVX-512
 * path uses no fused multiply-add). */
void quant_dequantize_row(uint32_t t, const void *src, float *dst, size_t n);
/* Encode n elements with llama.cpp's reference quantizer for t (quantize_row_*_ref; f16,
 * bf16 and f32 by conversion). dst receives qtype_row_bytes(t, n) bytes. NaN or infinite
 * inputs give meaningless blocks but no undefined behaviour (gguf_quantize_file refuses
 * them first, as llama-quantize does). */
void quant_quantize_row(uint32_t t, const float *src, void *dst, size_t n);

/* A (rows, cols) weight matrix held encoded: row r starts at data + r*row_bytes. */
typedef struct {
    uint32_t type;    /* qtype id */
    const void *data; /* borrowed */
    size_t rows;      /* OC */
    size_t cols;      /* C, a multiple of the block size */
    size_t row_bytes; /* qtype_row_bytes(type, cols) */
} qmatrix;

#define QUANT_MATMUL_MAX_ROWS 8
/* out (N, OC) = inp (N, C) · W^T for N <= QUANT_MATMUL_MAX_ROWS rows, W encoded (OC = w->rows,
 * C = w->cols). out row i starts at out + i*ldo (ldo >= OC), so a call can fill a column slice
 * of a wider output (Q, K and V into one fused row). Overwrites those OC columns only.
 * No dequantized copy of the matrix is made: with AVX-512 each 32-element chunk of a weight
 * row is decoded in registers and accumulated in place; otherwise a row is decoded into a
 * per-thread buffer of C floats (in cache) and dotted with the N input rows. Threads split the
 * output columns and every result is computed in a fixed order, so results do not depend on
 * the thread count. Exactness: see quant_matmul_exact. Returns 0, or -1 if N is out of range
 * or a buffer cannot be allocated. */
int quant_matmul_rows(float *out, size_t ldo, const float *inp, const qmatrix *w, size_t N);
/* 1 when quant_matmul_rows on type t gives bit for bit the fp32 product with the decoded
 * matrix (matmul_forward of quant_dequantize_row's floats): fp32 activations. 0 for q4_K on a
 * CPU with AVX-512 VNNI, where, as in llama.cpp, each input row is first rounded to int8 in
 * blocks of 32 (scale max|x|/127) and the 4-bit codes are multiplied in integers; the
 * difference from the fp32 product is then at most sum over blocks j of
 * (max_{i in j}|x_i| / 254) * sum_{i in j} |w_i|, plus float rounding. */
int quant_matmul_exact(uint32_t t);

#endif /* RETORT_QUANT_H */
