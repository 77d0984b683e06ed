/*
 * fuzz_gguf.c — a GGUF file's bytes through the reader (gguf_open_memory: header, every key
 * and value, tensor infos, bounds), then what retort builds from one: every key read back
 * by its type, each small tensor converted to f32, the tokenizer (tokenizer_from_gguf) and
 * the model (model_from_gguf, which must refuse shapes it cannot hold rather than allocate).
 */
#include "fuzz_common.h"

#include "formats/gguf.h"

static void walk_keys(const gguf_ctx *g) {
    size_t nkv = gguf_n_kv(g);
    for (size_t i = 0; i < nkv; i++) {
        const char *key = gguf_key_name(g, i);
        FZ_CHECK(key != NULL);
        FZ_CHECK(gguf_find_key(g, key) >= 0);
        FZ_CHECK((size_t)gguf_find_key(g, key) == i); /* a repeated name is refused when read */
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        float f;
        int b;
        const char *s;
        size_t len, n;
        gguf_type et;
        const void *d;
        switch (gguf_kv_type(g, i)) {
        case GGUF_TYPE_UINT32: FZ_CHECK(gguf_get_u32(g, key, &u32) == 0); break;
        case GGUF_TYPE_INT32: FZ_CHECK(gguf_get_i32(g, key, &i32) == 0); break;
        case GGUF_TYPE_UINT64: FZ_CHECK(gguf_get_u64(g, key, &u64) == 0); break;
        case GGUF_TYPE_FLOAT32: FZ_CHECK(gguf_get_f32(g, key, &f) == 0); break;
        case GGUF_TYPE_FLOAT64: /* may be out of float's range: then a message */
            FZ_CHECK(gguf_get_f32(g, key, &f) == 0 || rt_errmsg()[0]);
            break;
        case GGUF_TYPE_BOOL: FZ_CHECK(gguf_get_bool(g, key, &b) == 0); break;
        case GGUF_TYPE_STRING:
            FZ_CHECK(gguf_get_str(g, key, &s, &len) == 0);
            FZ_CHECK(len == 0 || s[len - 1] == s[len - 1]); /* touch the last byte */
            break;
        case GGUF_TYPE_ARRAY:
            if (gguf_arr_type(g, i) == GGUF_TYPE_STRING) {
                FZ_CHECK(gguf_get_arr_str_n(g, key, &n) == 0 && n == gguf_arr_n(g, i));
                for (size_t k = 0; k < n && k < 4096; k++) FZ_CHECK(gguf_get_arr_str(g, key, k, &s, &len) == 0);
            } else if (gguf_get_arr_data(g, key, &et, &n, &d) == 0) {
                FZ_CHECK(n == gguf_arr_n(g, i));
            }
            break;
        default: break;
        }
    }
}

static void walk_tensors(const gguf_ctx *g) {
    size_t nt = gguf_n_tensors(g);
    for (size_t i = 0; i < nt; i++) {
        gguf_tensor_info ti;
        FZ_CHECK(gguf_tensor_info_at(g, i, &ti) == 0);
        if (gguf_find_tensor(g, ti.name) != (int64_t)i) continue;
        uint64_t ne = 1;
        for (uint32_t d = 0; d < ti.n_dims && d < GGUF_MAX_DIMS; d++) ne *= ti.ne[d] ? ti.ne[d] : 1;
        if (ne > 0 && ne <= 1 << 16) {
            float *dst = malloc((size_t)ne * sizeof *dst);
            FZ_CHECK(dst != NULL);
            (void)gguf_read_tensor_f32(g, ti.name, dst, (size_t)ne, NULL, 0);
            free(dst);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_ctx *g = NULL;
    if (gguf_open_memory(&g, data, size, "fuzz.gguf") == 0) {
        walk_keys(g);
        walk_tensors(g);
        tokenizer *tok = NULL;
        if (tokenizer_from_gguf(&tok, g) == 0) tokenizer_free(tok);
        model *m = NULL;
        if (model_from_gguf(&m, g) == 0) model_free(m);
        gguf_close(g);
    }
    rt_err_clear();
    return 0;
}
