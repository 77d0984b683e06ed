/*
 * gguf_quantize.c — `retort quantize`'s engine: read a GGUF, write it again with its weight
 * matrices in one of llama.cpp's encodings (the contract is gguf_quantize_file in gguf.h).
 * The block encoders are src/kernels/quant.c's reproductions of llama.cpp's reference
 * quantizers, so the output equals llama-quantize's for the same input and type (without an
 * importance matrix and without its per-tensor mixes such as Q4_K_M's Q6_K output).
 *
 * What this is not: a model loader — it knows no architecture, so it works on any GGUF.
 */
#include "gguf.h"

#include "../base/base.h"
#include "../kernels/quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's llama_ftype for a file whose weights are all `type` ("pure"). */
static uint32_t file_type_of(gguf_dtype type) {
    switch (type) {
    case GGUF_DTYPE_F32: return 0;  /* ALL_F32 */
    case GGUF_DTYPE_F16: return 1;  /* MOSTLY_F16 */
    case GGUF_DTYPE_Q4_0: return 2; /* MOSTLY_Q4_0 */
    case GGUF_DTYPE_Q8_0: return 7; /* MOSTLY_Q8_0 */
    case GGUF_DTYPE_Q4_K: return 14; /* MOSTLY_Q4_K_S */
    case GGUF_DTYPE_Q5_K: return 16; /* MOSTLY_Q5_K_S */
    case GGUF_DTYPE_Q6_K: return 18; /* MOSTLY_Q6_K */
    case GGUF_DTYPE_BF16: return 32; /* MOSTLY_BF16 */
    }
    return 0;
}

/* The type tensor t gets. */
static gguf_dtype choose_type(const gguf_tensor_info *t, gguf_dtype want, gguf_quantize_stats *st) {
    if (t->n_dims < 2) {
        st->n_kept_f32++;
        return GGUF_DTYPE_F32;
    }
    if (qtype_row_bytes((uint32_t)want, (size_t)t->ne[0]) != 0) {
        st->n_converted++;
        return want;
    }
    st->n_fallback++;
    return t->ne[0] % 32 == 0 ? GGUF_DTYPE_Q8_0 : GGUF_DTYPE_F16;
}

int gguf_quantize_file(const char *in, const char *out, gguf_dtype type, gguf_quantize_stats *stats) {
    gguf_quantize_stats st = {0};
    if (!qtype_supported((uint32_t)type))
        return RT_FAIL("quantize: type id %d is not one retort writes", (int)type);
    gguf_ctx *g = NULL;
    if (gguf_open(&g, in)) return -1;
    gguf_writer *w = gguf_writer_new();
    size_t nt = gguf_n_tensors(g);
    float **bufs = rt_calloc(nt ? nt : 1, sizeof *bufs, "quantize buffers");
    int rc = (!w || !bufs) ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < gguf_n_kv(g); i++) {
        const char *k = gguf_key_name(g, i);
        if (strcmp(k, "general.file_type") == 0 || strcmp(k, "general.quantization_version") == 0) continue;
        rc = gguf_writer_copy_kv(w, g, i);
    }
    if (rc == 0) rc = gguf_set_u32(w, "general.file_type", file_type_of(type));
    if (rc == 0 && qtype_is_block((uint32_t)type)) rc = gguf_set_u32(w, "general.quantization_version", 2);
    for (size_t i = 0; rc == 0 && i < nt; i++) {
        gguf_tensor_info t;
        if ((rc = gguf_tensor_info_at(g, i, &t))) break;
        size_t n = (size_t)(t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3]);
        if (n == 0) {
            rc = RT_FAIL("tensor '%s' is empty; GGUF writers (retort's and llama.cpp's) refuse those", t.name);
            break;
        }
        bufs[i] = rt_malloc_array(n ? n : 1, sizeof(float), "a decoded tensor");
        if (!bufs[i] || gguf_read_tensor_f32(g, t.name, bufs[i], n, NULL, 0)) {
            rc = -1;
            break;
        }
        gguf_dtype tt = choose_type(&t, type, &st);
        for (size_t j = 0; qtype_is_block((uint32_t)tt) && j < n; j++) {
            if (!isfinite(bufs[i][j])) {
                rc = RT_FAIL("tensor '%s' holds a NaN or infinite value at element %zu; a model with such "
                             "weights cannot be quantized (llama-quantize refuses it too)",
                             t.name, j);
                break;
            }
        }
        if (rc) break;
        rc = gguf_add_tensor(w, t.name, tt, t.n_dims ? t.n_dims : 1, t.ne, bufs[i]);
        st.bytes_in += t.nbytes;
        st.bytes_out += (uint64_t)(n / t.ne[0]) * qtype_row_bytes((uint32_t)tt, (size_t)t.ne[0]);
        st.n_tensors++;
    }
    if (rc == 0) rc = gguf_writer_write(w, out);
    if (rc) rc = RT_FAIL("quantize %s -> %s: %s", in, out, rt_errmsg());
    for (size_t i = 0; bufs && i < nt; i++) free(bufs[i]);
    free(bufs);
    gguf_writer_free(w);
    gguf_close(g);
    if (rc == 0 && stats) *stats = st;
    return rc;
}
