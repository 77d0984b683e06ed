/* test_safetensors.c — the safetensors container and the Hugging Face folder mapping:
 * bfloat16 conversion against hand-worked bit patterns, writer -> reader round trips
 * (F32 exact, F16/BF16 rounding), hand-built hostile headers (each refused with a message
 * naming the file and the tensor), the shard index (traversal and absent tensors refused),
 * and model_to_hf -> model_from_hf for every architecture (bit-exact F32, permutation undone)
 * plus the import's refusals (missing / misshapen / unknown tensors, unsupported config). */
#include "base/base.h"
#include "formats/safetensors.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#define dir tl_tmpdir()

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

static void test_bf16(void) {
    CHECK(quant_f32_to_bf16(1.0f) == 0x3F80);
    CHECK(quant_f32_to_bf16(-2.0f) == 0xC000);
    float f;
    uint32_t x = 0x3F808000u; /* exactly between 0x3F80 and 0x3F81: ties to even 0x3F80 */
    memcpy(&f, &x, 4);
    CHECK(quant_f32_to_bf16(f) == 0x3F80);
    x = 0x3F818000u; /* between 0x3F81 and 0x3F82: even is 0x3F82 */
    memcpy(&f, &x, 4);
    CHECK(quant_f32_to_bf16(f) == 0x3F82);
    x = 0x3F808001u; /* just above the tie: up */
    memcpy(&f, &x, 4);
    CHECK(quant_f32_to_bf16(f) == 0x3F81);
    CHECK(quant_f32_to_bf16(INFINITY) == 0x7F80);
    CHECK(isnan(quant_bf16_to_f32(quant_f32_to_bf16(NAN))));
    CHECK(quant_bf16_to_f32(0x4049) == 3.140625f);
    for (uint32_t h = 0; h < 0x10000; h += 7) { /* every tested bf16 survives the round trip */
        float v = quant_bf16_to_f32((uint16_t)h);
        if (!isnan(v)) CHECK(quant_f32_to_bf16(v) == h);
    }
}

static void test_roundtrip(void) {
    char p[512];
    path_in(p, sizeof p, "rt.safetensors");
    float a[6] = {1.5f, -2.25f, 3.0e-3f, 65504.0f, -0.0f, 1.0f / 3.0f}, b[3] = {7, 8, 9};
    uint64_t sa[2] = {2, 3}, sb[1] = {3};
    st_writer *w = st_writer_new();
    CHECK_OK(st_writer_add(w, "a32", ST_F32, 2, sa, a));
    CHECK_OK(st_writer_add(w, "a16", ST_F16, 2, sa, a));
    CHECK_OK(st_writer_add(w, "abf", ST_BF16, 2, sa, a));
    CHECK_OK(st_writer_add(w, "b", ST_F32, 1, sb, b));
    CHECK(st_writer_add(w, "b", ST_F32, 1, sb, b) == -1 && strstr(rt_errmsg(), "twice"));
    CHECK_OK(st_writer_set_meta(w, "format", "pt"));
    CHECK_OK(st_writer_write(w, p));
    st_writer_free(w);
    int64_t sz = rt_file_size(p);
    char *raw;
    size_t len;
    CHECK_OK(rt_read_file(p, &raw, &len));
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (uint8_t)raw[i];
    CHECK(hl % 8 == 0 && sz == (int64_t)(8 + hl + 6 * 4 + 6 * 2 * 2 + 3 * 4));
    free(raw);
    st_file *f;
    CHECK_OK(st_open(&f, p));
    if (!f) return;
    CHECK(st_n_tensors(f) == 4);
    const st_tensor *t = st_find(f, "a32");
    CHECK(t && t->dtype == ST_F32 && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    float got[6];
    CHECK_OK(st_read_f32(f, t, got, 6));
    CHECK(memcmp(got, a, sizeof a) == 0);
    CHECK_OK(st_read_f32(f, st_find(f, "a16"), got, 6));
    for (int i = 0; i < 6; i++) CHECK(got[i] == gguf_f16_to_f32(gguf_f32_to_f16(a[i])));
    CHECK_OK(st_read_f32(f, st_find(f, "abf"), got, 6));
    for (int i = 0; i < 6; i++) CHECK(got[i] == quant_bf16_to_f32(quant_f32_to_bf16(a[i])));
    CHECK(st_read_f32(f, st_find(f, "b"), got, 6) == -1 && strstr(rt_errmsg(), "'b' has 3 elements"));
    CHECK(st_find(f, "nope") == NULL);
    st_close(f);
}

/* Build "len8 + header + data" in memory and expect a refusal mentioning want. */
static void expect_bad(const char *header, size_t data_len, const char *want) {
    size_t hl = strlen(header), n = 8 + hl + data_len;
    uint8_t *buf = calloc(1, n);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    st_file *f = NULL;
    int rc = st_open_memory(&f, buf, n, "hostile.safetensors");
    CHECK_MSG(rc == -1 && strstr(rt_errmsg(), want) && strstr(rt_errmsg(), "hostile.safetensors"),
              "header %s: rc %d, error '%s' (wanted '%s')", header, rc, rt_errmsg(), want);
    st_close(f);
    free(buf);
}

static void test_hostile(void) {
    expect_bad("[1, 2]", 0, "not an object");
    expect_bad("{\"x\": 3}", 0, "'x'");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "data_offsets");
    expect_bad("{\"x\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "unknown dtype 'Q4'");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", 8, "data section");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 4]}}", 8, "begin <= end");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, "needs 12");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 8]}}", 8, "shape[0]");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}", 8,
               "overflows");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
               "dimensions");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"x\": 1}", 4, "header JSON");
    expect_bad("{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]", 4, "header JSON");
    /* a header length beyond the file */
    uint8_t buf[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    st_file *f = NULL;
    CHECK(st_open_memory(&f, buf, sizeof buf, "short.safetensors") == -1 && strstr(rt_errmsg(), "header length"));
    CHECK(st_open_memory(&f, buf, 5, "short.safetensors") == -1 && strstr(rt_errmsg(), "too short"));
    /* an I32 tensor is listed but refused on read, by name */
    static const char h[] = "{\"ids\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]}}";
    uint8_t ok[8 + sizeof h - 1 + 8] = {0};
    ok[0] = (uint8_t)(sizeof h - 1);
    memcpy(ok + 8, h, sizeof h - 1);
    CHECK_OK(st_open_memory(&f, ok, sizeof ok, "ints.safetensors"));
    float v[2];
    CHECK(f && st_read_f32(f, st_find(f, "ids"), v, 2) == -1 && strstr(rt_errmsg(), "'ids' has dtype I32"));
    st_close(f);
}

static void test_folder_index(void) {
    char sub[384], p[512];
    snprintf(sub, sizeof sub, "%s/idx", dir);
    CHECK_OK(rt_mkdir_p(sub));
    float a[2] = {1, 2};
    uint64_t s[1] = {2};
    st_writer *w = st_writer_new();
    CHECK_OK(st_writer_add(w, "t1", ST_F32, 1, s, a));
    snprintf(p, sizeof p, "%s/part1.safetensors", sub);
    CHECK_OK(st_writer_write(w, p));
    st_writer_free(w);
    st_folder *d = NULL;
    CHECK(st_folder_open(&d, sub) == -1 && strstr(rt_errmsg(), "neither model.safetensors"));
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", sub);
    const char *idx = "{\"weight_map\": {\"t1\": \"part1.safetensors\"}}";
    CHECK_OK(rt_write_file_atomic(p, idx, strlen(idx)));
    CHECK_OK(st_folder_open(&d, sub));
    const st_file *f;
    CHECK(d && st_folder_find(d, "t1", &f) && st_folder_n_tensors(d) == 1);
    st_folder_close(d);
    idx = "{\"weight_map\": {\"t1\": \"part1.safetensors\", \"t2\": \"part1.safetensors\"}}";
    CHECK_OK(rt_write_file_atomic(p, idx, strlen(idx)));
    CHECK(st_folder_open(&d, sub) == -1 && strstr(rt_errmsg(), "'t2' is listed"));
    idx = "{\"weight_map\": {\"t1\": \"../idx/part1.safetensors\"}}";
    CHECK_OK(rt_write_file_atomic(p, idx, strlen(idx)));
    CHECK(st_folder_open(&d, sub) == -1 && strstr(rt_errmsg(), "not a plain file name"));
}

/* field by field: struct padding is not part of the config */
static int cfg_equal(const model_config *a, const model_config *b) {
    return a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim && a->ffn_dim == b->ffn_dim &&
           a->vocab_size == b->vocab_size && a->ctx_len == b->ctx_len && a->norm_eps == b->norm_eps &&
           a->rope_base == b->rope_base && a->tied == b->tied && a->arch == b->arch &&
           a->qkv_bias == b->qkv_bias && a->qk_norm == b->qk_norm && a->rope_neox == b->rope_neox &&
           a->rope_scaling == b->rope_scaling && a->rope_factor == b->rope_factor &&
           a->rope_low_freq_factor == b->rope_low_freq_factor &&
           a->rope_high_freq_factor == b->rope_high_freq_factor && a->rope_orig_ctx == b->rope_orig_ctx;
}

static model *small_model(int arch, int tied, uint64_t seed) {
    model_config c = {.dim = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 24,
                      .vocab_size = 40, .ctx_len = 32, .tied = tied, .arch = arch,
                      .norm_eps = 1e-5f, .rope_base = 10000.0f};
    if (arch == MODEL_ARCH_QWEN3) c.head_dim = 6;
    if (arch == MODEL_ARCH_LLAMA && !tied) c.qkv_bias = 1; /* the permuted biases too */
    model *m;
    if (model_create(&m, &c, NULL)) return NULL;
    rt_rng r;
    rt_rng_seed(&r, seed);
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = (float)rt_rng_normal(&r);
    return m;
}

static void test_hf_roundtrip(void) {
    char out[384], p[512];
    snprintf(out, sizeof out, "%s/hf", dir);
    int32_t ids[5] = {3, 1, 4, 1, 5};
    for (int k = 0; k < 4; k++) {
        int arch = k < 2 ? MODEL_ARCH_LLAMA : k == 2 ? MODEL_ARCH_QWEN2 : MODEL_ARCH_QWEN3;
        model *m = small_model(arch, k == 1, 10 + (uint64_t)k), *b = NULL;
        if (!m) {
            CHECK(0);
            continue;
        }
        CHECK_OK(model_to_hf(m, out, ST_F32));
        CHECK_OK(model_from_hf(&b, out, NULL));
        if (!b) {
            model_free(m);
            continue;
        }
        CHECK(cfg_equal(&b->cfg, &m->cfg));
        CHECK(b->n_params == m->n_params && memcmp(b->params, m->params, m->n_params * sizeof(float)) == 0);
        float *l1 = malloc(5 * 40 * sizeof(float));
        memcpy(l1, model_forward(m, ids, 1, 5), 5 * 40 * sizeof(float));
        CHECK(memcmp(l1, model_forward(b, ids, 1, 5), 5 * 40 * sizeof(float)) == 0);
        free(l1);
        model_free(b);
        /* the file holds HF's order: for llama the q rows are permuted (row 1 of head 0 in
         * GGUF order is HF row hd/2 = 2), for qwen they are not */
        st_folder *d;
        CHECK_OK(st_folder_open(&d, out));
        const st_file *f;
        const st_tensor *t = st_folder_find(d, "model.layers.0.self_attn.q_proj.weight", &f);
        float *q = malloc(m->cfg.n_heads * m->cfg.head_dim * 16 * sizeof(float));
        CHECK(t && st_read_f32(f, t, q, m->cfg.n_heads * m->cfg.head_dim * 16) == 0);
        size_t hf_row = arch == MODEL_ARCH_LLAMA ? m->cfg.head_dim / 2 : 1;
        CHECK(t && memcmp(q + hf_row * 16, m->w.layers[0].wq + 16, 16 * sizeof(float)) == 0);
        free(q);
        st_folder_close(d);
        model_free(m);
    }
    /* refusals, on the last (qwen3) folder */
    snprintf(p, sizeof p, "%s/config.json", out);
    char *cfg;
    size_t len;
    CHECK_OK(rt_read_file(p, &cfg, &len));
    model *b = NULL;
    const char *edits[][3] = {
        {"\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling type 'yarn'"},
        {"\"head_dim\": 6", "\"head_dim\": 8", "should have shape [32, 16]"},
        {"\"model_type\": \"qwen3\"", "\"model_type\": \"qwen2\"", "missing tensor 'model.layers.0.self_attn.q_proj.bias'"},
        {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1", "'model.layers.1."},
        {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act"},
    };
    for (size_t e = 0; e < RT_ARRAY_LEN(edits); e++) {
        char *at = strstr(cfg, edits[e][0]);
        CHECK_MSG(at != NULL, "config.json lacks %s", edits[e][0]);
        if (!at) continue;
        rt_buf nb = {0};
        rt_buf_append(&nb, cfg, (size_t)(at - cfg));
        rt_buf_append(&nb, edits[e][1], strlen(edits[e][1]));
        rt_buf_append(&nb, at + strlen(edits[e][0]), strlen(at + strlen(edits[e][0])));
        CHECK_OK(rt_write_file_atomic(p, nb.data, nb.len));
        rt_buf_free(&nb);
        CHECK_MSG(model_from_hf(&b, out, NULL) == -1 && strstr(rt_errmsg(), edits[e][2]),
                  "edit %zu: error '%s', wanted '%s'", e, rt_errmsg(), edits[e][2]);
    }
    free(cfg);
}

static void test_cleanup(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

TEST_MAIN("safetensors", TEST_CASE(test_bf16), TEST_CASE(test_roundtrip), TEST_CASE(test_hostile),
          TEST_CASE(test_folder_index), TEST_CASE(test_hf_roundtrip), TEST_CASE(test_cleanup))
