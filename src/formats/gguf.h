/*
 * gguf.h — read and write GGUF v3 files (ggml's self-describing model format).
 *
 * Reader: the whole file is mapped read-only; every length, count and offset is checked
 * against the file size before use, so a truncated or hostile file yields an error
 * (naming the file and the field), never a crash or an out-of-bounds read.
 * Tensor data can be fetched as F32 from F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K
 * (decoded by src/kernels/quant.h, llama.cpp's block layouts); other ggml types are refused
 * with a message naming the tensor and its type. Encoded bytes are reachable through
 * gguf_tensor_info.data for kernels that compute on them directly.
 *
 * Writer: collects key/values and tensors (F32 data borrowed, not copied, until the write;
 * encoded to the tensor's type — F16, BF16 or a quantized type — row by row while writing;
 * key/values can be copied verbatim from an opened file), then writes the file atomically (temp file, fsync, rename) with general.alignment (32)
 * padding, in the order added.
 *
 * What this is not: it knows nothing of llama keys or model configs — src/model maps
 * "llama.*" keys and tensor names onto its own structs; src/tokenizer maps tokenizer.ggml.*.
 * Dimension order is GGUF's: ne[0] is the fastest-varying (a row-major (rows, cols) matrix
 * is ne = {cols, rows}).
 */
#ifndef RETORT_GGUF_H
#define RETORT_GGUF_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* Tensor data types (GGUF's tensor-info type field) retort reads and writes; others exist in
 * files and are refused by name. The ids are the format's (ggml's); they equal
 * src/kernels/quant.h's QTYPE_* values. (GGUF_TYPE_* above are metadata value types.) */
typedef enum {
    GGUF_DTYPE_F32 = 0,
    GGUF_DTYPE_F16 = 1,
    GGUF_DTYPE_Q4_0 = 2,
    GGUF_DTYPE_Q8_0 = 8,
    GGUF_DTYPE_Q4_K = 12,
    GGUF_DTYPE_Q5_K = 13,
    GGUF_DTYPE_Q6_K = 14,
    GGUF_DTYPE_BF16 = 30,
} gguf_dtype;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* ---------------------------------------------------------------- reader */

typedef struct gguf_ctx gguf_ctx;

typedef struct {
    const char *name;          /* NUL-terminated copy */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] fastest; unused dims are 1 */
    uint32_t type;             /* ggml type id as stored */
    const void *data;          /* into the mapping; bounds-checked */
    uint64_t nbytes;           /* 0 if the type's size is unknown to retort */
} gguf_tensor_info;

/* Open and fully validate a GGUF file. On error returns -1 with a message naming path. */
int gguf_open(gguf_ctx **out, const char *path);
/* Parse from a caller-owned memory buffer (kept borrowed; used by tests and fuzzing). */
int gguf_open_memory(gguf_ctx **out, const void *data, size_t len, const char *name);
void gguf_close(gguf_ctx *ctx);
const char *gguf_path(const gguf_ctx *ctx);
uint32_t gguf_version(const gguf_ctx *ctx);

/* Key/value access. Index lookups return -1 when absent. */
size_t gguf_n_kv(const gguf_ctx *ctx);
int64_t gguf_find_key(const gguf_ctx *ctx, const char *key);
const char *gguf_key_name(const gguf_ctx *ctx, size_t idx);
gguf_type gguf_kv_type(const gguf_ctx *ctx, size_t idx);
/* For arrays: element type and count. */
gguf_type gguf_arr_type(const gguf_ctx *ctx, size_t idx);
size_t gguf_arr_n(const gguf_ctx *ctx, size_t idx);

/* Typed getters by key name. Each returns 0 on success, 1 if the key is absent (no error
 * set — callers decide if that is fatal), -1 on a type mismatch or out-of-range value
 * (error names the key, the expected and the found type). Integer getters accept any
 * integer type whose value fits. */
int gguf_get_u32(const gguf_ctx *ctx, const char *key, uint32_t *out);
int gguf_get_i32(const gguf_ctx *ctx, const char *key, int32_t *out);
int gguf_get_u64(const gguf_ctx *ctx, const char *key, uint64_t *out);
int gguf_get_f32(const gguf_ctx *ctx, const char *key, float *out); /* f32 or f64 */
int gguf_get_bool(const gguf_ctx *ctx, const char *key, int *out);
/* String value (not NUL-terminated in the file; *s points into the mapping, *len bytes). */
int gguf_get_str(const gguf_ctx *ctx, const char *key, const char **s, size_t *len);
/* Array of strings: count, then element i. */
int gguf_get_arr_str_n(const gguf_ctx *ctx, const char *key, size_t *n);
int gguf_get_arr_str(const gguf_ctx *ctx, const char *key, size_t i, const char **s, size_t *len);
/* Array of fixed-size numbers: element type, count and a pointer to the packed
 * little-endian data (into the mapping; may be unaligned — memcpy out). */
int gguf_get_arr_data(const gguf_ctx *ctx, const char *key, gguf_type *elem_type, size_t *n,
                      const void **data);

/* Tensors. */
size_t gguf_n_tensors(const gguf_ctx *ctx);
int gguf_tensor_info_at(const gguf_ctx *ctx, size_t i, gguf_tensor_info *info);
int64_t gguf_find_tensor(const gguf_ctx *ctx, const char *name);
/* Copy a tensor as F32 into dst (n floats), decoding F16/BF16/quantized types. Fails (naming
 * the tensor) if absent, if its element count is not n, if its shape differs from ne_expected
 * (when non-NULL; n_dims entries, fastest first), or if its type is not one retort decodes. */
int gguf_read_tensor_f32(const gguf_ctx *ctx, const char *name, float *dst, size_t n,
                         const uint64_t *ne_expected, uint32_t n_dims);
/* Name of a tensor data type id ("f32", "q4_K", ... also for types retort refuses; "type N"
 * for unknown ids). */
const char *gguf_dtype_name(uint32_t type);

/* Additions beyond the first contract (all safe on any opened ctx): */
/* Name of a GGUF value type: "u8".."f64", "bool", "str", "arr"; "invalid" for other ids. */
const char *gguf_type_name(gguf_type t);
/* The file's alignment (general.alignment, default 32) and the file offset where the tensor
 * data section starts (tensor data pointers are data_offset + the stored offset). */
size_t gguf_alignment(const gguf_ctx *ctx);
size_t gguf_data_offset(const gguf_ctx *ctx);

/* ---------------------------------------------------------------- writer */

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
/* Setters copy key and value. Setting an existing key replaces it. Return 0 / -1. */
int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_set_f32(gguf_writer *w, const char *key, float v);
int gguf_set_bool(gguf_writer *w, const char *key, int v);
int gguf_set_str(gguf_writer *w, const char *key, const char *s);
int gguf_set_str_n(gguf_writer *w, const char *key, const char *s, size_t len);
/* Arrays: strings given as pointers + lengths (lens may be NULL for NUL-terminated). */
int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                     size_t n);
/* Arrays of numbers: elem_type one of the fixed-size types; data is n packed elements. */
int gguf_set_arr_data(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                      size_t n);
/* Add a tensor. data (n floats, F32) is borrowed until gguf_writer_write returns. type is any
 * gguf_dtype above: F16/BF16 are converted (round-to-nearest-even) and Q8_0/Q4_0/Q4_K/Q5_K/Q6_K
 * quantized with llama.cpp's reference quantizers, row by row, on write. A quantized type
 * needs ne[0] to be a multiple of its block size (32 or 256); the error says so. */
int gguf_add_tensor(gguf_writer *w, const char *name, gguf_dtype type, uint32_t n_dims,
                    const uint64_t *ne, const float *data);
/* Copy key/value idx of an opened file into w verbatim (same type and bytes; replaces a key of
 * the same name). */
int gguf_writer_copy_kv(gguf_writer *w, const gguf_ctx *src, size_t idx);
/* Write atomically. */
int gguf_writer_write(gguf_writer *w, const char *path);

/* ---------------------------------------------------------------- quantize a file */

typedef struct {
    size_t n_tensors;     /* tensors written */
    size_t n_converted;   /* of which in the requested type */
    size_t n_fallback;    /* 2-D tensors whose rows do not fit the type's block: Q8_0 or F16 */
    size_t n_kept_f32;    /* 1-D tensors (norms, biases), kept F32 as llama.cpp does */
    uint64_t bytes_in, bytes_out; /* tensor data */
} gguf_quantize_stats;

/* Re-encode the tensors of GGUF file in as `type` into out (atomically: temp, fsync, rename),
 * copying every key/value verbatim except general.file_type (set to llama.cpp's LLAMA_FTYPE
 * for the type) and general.quantization_version (2, for quantized types). llama-quantize's
 * rules without --pure tweaks: 1-D tensors stay F32; a 2-D+ tensor whose rows (ne[0]) are not
 * a multiple of the type's block falls back to Q8_0 (rows a multiple of 32) or F16. Input
 * tensors may be of any type gguf_read_tensor_f32 decodes (requantizing loses precision
 * twice; allowed, as llama-quantize --allow-requantize). stats may be NULL. Errors name the
 * file and tensor. Holds the decoded F32 tensors of the whole file in memory. */
int gguf_quantize_file(const char *in, const char *out, gguf_dtype type, gguf_quantize_stats *stats);

/* IEEE half conversion helpers (exposed for tests). */
float gguf_f16_to_f32(uint16_t h);
uint16_t gguf_f32_to_f16(float f);

#endif /* RETORT_GGUF_H */
