/*
 * safetensors.h — read and write Hugging Face safetensors files, and open a model folder
 * (one model.safetensors, or shards listed by model.safetensors.index.json).
 *
 * The format: 8 bytes little-endian header length N, N bytes of JSON
 *   {"NAME": {"dtype": "F32", "shape": [r, c], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"k": "v"}}
 * then the data; offsets are relative to the end of the header. Shapes are row-major
 * (the last dimension varies fastest), unlike GGUF's ne[].
 *
 * Reader: the file is mapped read-only; the header is parsed with jansson and every tensor's
 * dtype, shape and offsets are checked (size = product(shape) * element size, inside the
 * data section, no overflow) before anything is returned, so a hostile file is an error
 * naming the file and the tensor, never an out-of-bounds read. Values convert to F32 from
 * F32, F16 and BF16; other dtypes are listed but refused on read, by name.
 * Writer: collects tensors (F32 data borrowed until the write; stored as F32, F16 or BF16)
 * and writes the file atomically (temp file, fsync, rename); the header is padded with
 * spaces to a multiple of 8 bytes as the reference implementation does.
 *
 * What this is not: it knows nothing of model tensor names or config.json — src/model maps
 * Hugging Face names and configs onto its own structs.
 */
#ifndef RETORT_SAFETENSORS_H
#define RETORT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32 = 0, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
               ST_DTYPE_COUNT } st_dtype;

typedef struct {
    char *name;                  /* NUL-terminated, owned by the file */
    st_dtype dtype;
    size_t n_dims;
    uint64_t shape[ST_MAX_DIMS]; /* row-major: shape[n_dims-1] fastest */
    uint64_t n_elems;
    const void *data;            /* into the mapping, bounds-checked */
    uint64_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* Open and validate a .safetensors file. Errors name path and, where it applies, the tensor. */
int st_open(st_file **out, const char *path);
/* Parse a caller-owned buffer (borrowed; tests and fuzzing). */
int st_open_memory(st_file **out, const void *data, size_t len, const char *name);
void st_close(st_file *f);
const char *st_path(const st_file *f);
size_t st_n_tensors(const st_file *f);
const st_tensor *st_tensor_at(const st_file *f, size_t i); /* in header order */
const st_tensor *st_find(const st_file *f, const char *name); /* NULL if absent */
const char *st_dtype_name(st_dtype t);
/* Copy a tensor as F32 into dst (n floats): F32 copied, F16/BF16 converted exactly. Fails
 * (naming file and tensor) if n differs from its element count or its dtype is another. */
int st_read_f32(const st_file *f, const st_tensor *t, float *dst, size_t n);

/* A model folder: DIR/model.safetensors.index.json ("weight_map": name -> shard file in DIR)
 * if present, else DIR/model.safetensors. Shard names must be plain file names. */
typedef struct st_folder st_folder;
int st_folder_open(st_folder **out, const char *dir);
void st_folder_close(st_folder *d);
/* Find a tensor in whichever shard holds it; *file (may be NULL) receives that shard. */
const st_tensor *st_folder_find(const st_folder *d, const char *name, const st_file **file);
/* All tensors, shard by shard, in header order: i in [0, st_folder_n_tensors). */
size_t st_folder_n_tensors(const st_folder *d);
const st_tensor *st_folder_tensor_at(const st_folder *d, size_t i, const st_file **file);

/* ---------------------------------------------------------------- writer */

typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
void st_writer_free(st_writer *w);
/* Add a tensor; data (product(shape) floats) is borrowed until st_writer_write. dtype ST_F32,
 * ST_F16 or ST_BF16 (round to nearest even). Names must be unique. */
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, size_t n_dims,
                  const uint64_t *shape, const float *data);
/* "__metadata__" string entries (copied). */
int st_writer_set_meta(st_writer *w, const char *key, const char *value);
int st_writer_write(st_writer *w, const char *path);

/* bfloat16 <-> fp32: kernels/quant.h (quant_bf16_to_f32, quant_f32_to_bf16), the one owner. */

#endif /* RETORT_SAFETENSORS_H */
