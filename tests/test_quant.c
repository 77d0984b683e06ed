/*
 * test_quant.c — ggml's encodings (src/kernels/quant.h) and their uses:
 *   - decoding hand-built blocks of every type against values computed here from the layout
 *     description (ggml-common.h), not from retort's decoder;
 *   - the AVX-512 decoders give the same bits as the scalar ones on random blocks;
 *   - encode -> decode error of each quantizer within its resolution (bounds that fail for a
 *     wrong scale or packing);
 *   - quant_matmul_rows equals decode + the fp32 few-row product bit for bit, writes only its
 *     column slice, and does not depend on the thread count;
 *   - GGUF: a type retort does not decode is refused by name; a quantized model file loads,
 *     keeps its matrices encoded, and decodes to the same logits as its fp32 decoding.
 * Byte-identity with llama.cpp's own quantizers is tests/ref_quant_ggml.sh.
 */
#include "base/base.h"
#include "formats/gguf.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "testlib.h"

#include <string.h>
#include <stdint.h>
#include <unistd.h>

void quant_dequantize_row_scalar(uint32_t t, const void *src, float *dst, size_t n);

static const char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/retort-test-quant-%d-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), name);
    return buf[k];
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static float gauss(void) { /* sum of 4 uniforms, roughly normal, mean 0 */
    float s = 0;
    for (int i = 0; i < 4; i++) s += (float)(rnd() & 0xffff) / 65536.0f - 0.5f;
    return s;
}

/* ---------------------------------------------------------------- hand-built blocks */

static void test_table(void) {
    CHECK(qtype_block_elems(QTYPE_Q4_K) == 256 && qtype_block_bytes(QTYPE_Q4_K) == 144);
    CHECK(qtype_block_bytes(QTYPE_Q5_K) == 176 && qtype_block_bytes(QTYPE_Q6_K) == 210);
    CHECK(qtype_block_bytes(QTYPE_Q8_0) == 34 && qtype_block_bytes(QTYPE_Q4_0) == 18);
    CHECK(qtype_row_bytes(QTYPE_Q4_K, 512) == 288 && qtype_row_bytes(QTYPE_Q4_K, 96) == 0);
    CHECK(qtype_row_bytes(QTYPE_BF16, 3) == 6 && qtype_row_bytes(3, 32) == 0);
    qtype t;
    CHECK(qtype_parse("Q4_k", &t) == 0 && t == QTYPE_Q4_K);
    CHECK(qtype_parse("bf16", &t) == 0 && t == QTYPE_BF16);
    CHECK(qtype_parse("q4_1", &t) == -1 && qtype_parse("", &t) == -1);
    CHECK(!qtype_is_block(QTYPE_F16) && qtype_is_block(QTYPE_Q6_K));
}

static void check_decode(uint32_t t, const uint8_t *blk, const float *want, size_t n, const char *what) {
    float got[256], got_s[256];
    quant_dequantize_row(t, blk, got, n);
    quant_dequantize_row_scalar(t, blk, got_s, n);
    int bad = -1;
    for (size_t i = 0; i < n && bad < 0; i++)
        if (got[i] != want[i] || got_s[i] != want[i]) bad = (int)i;
    CHECK_MSG(bad < 0, "%s: element %d: got %g (scalar %g), want %g", what, bad, bad < 0 ? 0.0 : (double)got[bad],
              bad < 0 ? 0.0 : (double)got_s[bad], bad < 0 ? 0.0 : (double)want[bad]);
}

static void test_hand_blocks(void) {
    uint8_t b[256];
    float want[256];
    /* q8_0: d = 0.5 (f16 0x3800), q = -128.. */
    put16(b, 0x3800);
    for (int j = 0; j < 32; j++) {
        int8_t q = (int8_t)(j * 9 - 128);
        b[2 + j] = (uint8_t)q;
        want[j] = q * 0.5f;
    }
    check_decode(QTYPE_Q8_0, b, want, 32, "q8_0");
    /* q4_0: d = 2 (0x4000); byte j holds element j (low nibble) and j+16 (high), minus 8 */
    put16(b, 0x4000);
    for (int j = 0; j < 16; j++) {
        b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
        want[j] = (float)(j - 8) * 2.0f;
        want[j + 16] = (float)(7 - j) * 2.0f;
    }
    check_decode(QTYPE_Q4_0, b, want, 32, "q4_0");

    /* q4_K / q5_K: d = 1, dmin = 0.5; eight 6-bit scales and mins packed into 12 bytes */
    const uint8_t sc[8] = {1, 2, 3, 4, 17, 33, 50, 63}, mn[8] = {0, 5, 10, 63, 16, 31, 2, 47};
    for (int five = 0; five < 2; five++) {
        memset(b, 0, sizeof b);
        put16(b, 0x3c00);
        put16(b + 2, 0x3800);
        uint8_t *s = b + 4;
        for (int j = 0; j < 8; j++) {
            if (j < 4) {
                s[j] = sc[j];
                s[j + 4] = mn[j];
            } else {
                s[j + 4] = (uint8_t)((sc[j] & 15) | ((mn[j] & 15) << 4));
                s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
                s[j] |= (uint8_t)((mn[j] >> 4) << 6);
            }
        }
        uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
        for (int i = 0; i < 128; i++) qs[i] = (uint8_t)(i * 7 + 3);
        if (five)
            for (int i = 0; i < 32; i++) qh[i] = (uint8_t)(i * 37 + 11);
        for (int e = 0; e < 256; e++) {
            int g = e / 64, w = e % 64, sub = e / 32;
            int q = w < 32 ? (qs[32 * g + w] & 15) : (qs[32 * g + w - 32] >> 4);
            if (five) q += ((qh[w % 32] >> (2 * g + (w >= 32))) & 1) * 16;
            want[e] = (float)sc[sub] * (float)q - 0.5f * (float)mn[sub];
        }
        check_decode(five ? QTYPE_Q5_K : QTYPE_Q4_K, b, want, 256, five ? "q5_K" : "q4_K");
    }

    /* q6_K: ql[128] qh[64] scales[16] d (0.25, last) */
    uint8_t *ql = b, *qh = b + 128;
    int8_t *s6 = (int8_t *)(b + 192);
    for (int i = 0; i < 128; i++) ql[i] = (uint8_t)(i * 13 + 5);
    for (int i = 0; i < 64; i++) qh[i] = (uint8_t)(i * 29 + 1);
    for (int i = 0; i < 16; i++) s6[i] = (int8_t)(i * 17 - 128);
    put16(b + 208, 0x3400);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, l = r % 32, k = r / 32;
        int lo = (k & 1) ? ql[64 * h + 32 + l] : ql[64 * h + l];
        lo = k >= 2 ? lo >> 4 : lo & 15;
        int q = (lo | (((qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
        want[e] = 0.25f * (float)s6[8 * h + r / 16] * (float)q;
    }
    check_decode(QTYPE_Q6_K, b, want, 256, "q6_K");

    /* bf16 and f16 */
    put16(b, 0x3f80);
    put16(b + 2, 0xc040);
    put16(b + 4, 0x0001);
    const float wb[3] = {1.0f, -3.0f, 0x1p-133f};
    check_decode(QTYPE_BF16, b, wb, 3, "bf16");
    CHECK(quant_f32_to_bf16(1.00390625f) == 0x3f80);       /* tie: to even */
    CHECK(quant_f32_to_bf16(1.01171875f) == 0x3f82);       /* tie: to even (up) */
    CHECK((quant_f32_to_bf16(NAN) & 0x7fc0) == 0x7fc0);    /* stays a quiet NaN */
}

static void test_vector_equals_scalar(void) {
    const uint32_t types[] = {QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K, QTYPE_F16};
    static uint8_t buf[4096];
    static float a[1024], s[1024];
    for (size_t k = 0; k < RT_ARRAY_LEN(types); k++) {
        uint32_t t = types[k];
        size_t n = 1024, rb = qtype_row_bytes(t, n);
        for (size_t i = 0; i < rb; i++) buf[i] = (uint8_t)rnd();
        /* keep every f16 finite (exponent field below 31): random d's, random halves */
        size_t bb = qtype_block_bytes(t);
        for (size_t off = 0; off < rb; off += bb) {
            if (t == QTYPE_F16) buf[off + 1] &= 0x7b;
            else if (t == QTYPE_Q6_K) buf[off + 209] &= 0x7b;
            else {
                buf[off + 1] &= 0x7b;
                if (t == QTYPE_Q4_K || t == QTYPE_Q5_K) buf[off + 3] &= 0x7b;
            }
        }
        quant_dequantize_row(t, buf, a, n);
        quant_dequantize_row_scalar(t, buf, s, n);
        CHECK_MSG(memcmp(a, s, n * sizeof(float)) == 0, "type %s: vector and scalar decoders differ",
                  qtype_name(t));
    }
}

/* ---------------------------------------------------------------- encode -> decode */

static void test_roundtrip_error(void) {
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 2];
    for (int i = 0; i < N; i++) x[i] = gauss() * (i % 512 < 256 ? 0.02f : 1.5f);
    struct {
        uint32_t t;
        double max_rel_rms; /* rms error / rms value */
    } cases[] = {{QTYPE_Q8_0, 0.006}, {QTYPE_Q6_K, 0.02}, {QTYPE_Q5_K, 0.04},
                 {QTYPE_Q4_K, 0.08},  {QTYPE_Q4_0, 0.12}, {QTYPE_F16, 0.0006}, {QTYPE_BF16, 0.003}};
    for (size_t k = 0; k < RT_ARRAY_LEN(cases); k++) {
        uint32_t t = cases[k].t;
        quant_quantize_row(t, x, q, N);
        quant_dequantize_row(t, q, y, N);
        double e2 = 0, x2 = 0, worst = 0;
        for (int i = 0; i < N; i++) {
            e2 += (double)(x[i] - y[i]) * (x[i] - y[i]);
            x2 += (double)x[i] * x[i];
        }
        /* per 32-element group, the error never exceeds one step of that group's resolution */
        for (int g = 0; g < N / 32; g++) {
            float amax = 0, emax = 0;
            for (int i = 32 * g; i < 32 * g + 32; i++) {
                amax = fmaxf(amax, fabsf(x[i]));
                emax = fmaxf(emax, fabsf(x[i] - y[i]));
            }
            worst = fmax(worst, emax / amax);
        }
        double rel = sqrt(e2 / x2);
        CHECK_MSG(rel < cases[k].max_rel_rms, "%s: relative rms error %.4g (limit %.4g)", qtype_name(t), rel,
                  cases[k].max_rel_rms);
        double step = t == QTYPE_Q8_0 ? 1.0 / 127 : t == QTYPE_Q4_0 ? 1.0 / 8 : t == QTYPE_Q6_K ? 1.0 / 31
                      : t == QTYPE_Q5_K ? 2.0 / 31 : t == QTYPE_Q4_K ? 2.0 / 15 : 0.01;
        CHECK_MSG(worst <= step * 1.01, "%s: worst error %.4g of the group's max (one step %.4g)", qtype_name(t),
                  worst, step);
    }
    /* an all-zero input encodes to zero blocks and decodes to zeros */
    memset(x, 0, sizeof x);
    quant_quantize_row(QTYPE_Q6_K, x, q, 256);
    quant_dequantize_row(QTYPE_Q6_K, q, y, 256);
    int zero = 1;
    for (int i = 0; i < 256; i++) zero = zero && y[i] == 0.0f;
    CHECK(zero);
}

/* ---------------------------------------------------------------- matvec on blocks */

static void test_quant_matmul(void) {
    enum { OC = 37, C = 512, LDO = 50 };
    static float w[OC * C], wd[OC * C], in[8 * C], out[8 * LDO], ref[8 * OC], out1[8 * LDO];
    static uint8_t enc[OC * C * 2];
    for (int i = 0; i < OC * C; i++) w[i] = gauss() * 0.1f;
    for (int i = 0; i < 8 * C; i++) in[i] = gauss();
    const uint32_t types[] = {QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K, QTYPE_BF16, QTYPE_F16};
    int saved = kernels_get_threads();
    for (size_t k = 0; k < RT_ARRAY_LEN(types); k++) {
        uint32_t t = types[k];
        size_t rb = qtype_row_bytes(t, C);
        for (int r = 0; r < OC; r++) {
            quant_quantize_row(t, w + r * C, enc + r * rb, C);
            quant_dequantize_row(t, enc + r * rb, wd + r * C, C);
        }
        qmatrix m = {t, enc, OC, C, rb};
        for (size_t N = 1; N <= 8; N += 3) {
            for (int i = 0; i < 8 * LDO; i++) out[i] = -7.0f;
            kernels_set_threads(2);
            CHECK_OK(quant_matmul_rows(out, LDO, in, &m, N));
            kernels_set_threads(1);
            for (int i = 0; i < 8 * LDO; i++) out1[i] = -7.0f;
            CHECK_OK(quant_matmul_rows(out1, LDO, in, &m, N));
            matmul_forward(ref, in, wd, N, C, OC);
            int same = 1, untouched = 1, thr = memcmp(out, out1, sizeof out) == 0;
            int exact = quant_matmul_exact(t);
            for (size_t n = 0; n < N; n++) {
                for (int o = 0; o < OC; o++) {
                    if (exact) {
                        same = same && out[n * LDO + o] == ref[n * OC + o];
                        continue;
                    }
                    /* int8 activations: within the documented bound of their rounding */
                    double bound = 0, mag = 0;
                    for (int j = 0; j < C / 32; j++) {
                        float amax = 0;
                        double sw = 0;
                        for (int i = 32 * j; i < 32 * j + 32; i++) {
                            amax = fmaxf(amax, fabsf(in[n * C + i]));
                            sw += fabs(wd[o * C + i]);
                            mag += fabs((double)wd[o * C + i] * in[n * C + i]);
                        }
                        bound += amax / 254.0 * sw;
                    }
                    double diff = fabs((double)out[n * LDO + o] - ref[n * OC + o]);
                    same = same && diff <= bound * 1.001 + 1e-6 * mag;
                }
                for (int o = OC; o < LDO; o++) untouched = untouched && out[n * LDO + o] == -7.0f;
            }
            CHECK_MSG(same, "%s N=%zu: not equal to decode + fp32 product (%s)", qtype_name(t), N,
                      quant_matmul_exact(t) ? "bit for bit" : "within the int8-activation bound");
            CHECK_MSG(untouched, "%s N=%zu: wrote outside its columns", qtype_name(t), N);
            CHECK_MSG(thr, "%s N=%zu: depends on the thread count", qtype_name(t), N);
        }
    }
    kernels_set_threads(saved);
    qmatrix bad = {QTYPE_Q4_K, enc, OC, 100, 0};
    CHECK(quant_matmul_rows(out, LDO, in, &bad, 1) == -1);
    qmatrix ok = {QTYPE_Q8_0, enc, OC, C, qtype_row_bytes(QTYPE_Q8_0, C)};
    CHECK(quant_matmul_rows(out, LDO, in, &ok, 9) == -1);
}

/* ---------------------------------------------------------------- files */

static void test_refuse_unknown_type(void) {
    float x[32] = {0};
    const char *path = tmp_path("refuse.gguf");
    gguf_writer *w = gguf_writer_new();
    CHECK_OK(gguf_add_tensor(w, "tq", GGUF_DTYPE_Q4_0, 1, (const uint64_t[]){32}, x));
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    uint8_t *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    buf = malloc(4096);
    len = fread(buf, 1, 4096, f);
    fclose(f);
    unlink(path);
    /* tensor info: u64 name length, "tq", u32 n_dims, u64 ne[0], u32 type: make it iq4_nl (20),
     * which has q4_0's block geometry, so the file stays well-formed */
    uint8_t *p = memmem(buf, len, "tq", 2);
    CHECK(p != NULL && p[2 + 4 + 8] == 2);
    if (p) p[2 + 4 + 8] = 20;
    gguf_ctx *c = NULL;
    CHECK_OK(gguf_open_memory(&c, buf, len, "patched.gguf"));
    if (c) {
        float y[32];
        CHECK(gguf_read_tensor_f32(c, "tq", y, 32, NULL, 0) == -1);
        CHECK(strstr(rt_errmsg(), "tensor 'tq' has type iq4_nl") && strstr(rt_errmsg(), "patched.gguf"));
        gguf_close(c);
    }
    free(buf);
}

static void test_quantize_file_refuses_nan(void) {
    static float x[2 * 256];
    for (int i = 0; i < 512; i++) x[i] = (float)(i % 17) * 0.01f;
    x[300] = NAN;
    const char *in = tmp_path("nan.gguf"), *out = tmp_path("nan-q.gguf");
    gguf_writer *w = gguf_writer_new();
    CHECK_OK(gguf_add_tensor(w, "bad.weight", GGUF_DTYPE_F32, 2, (const uint64_t[]){256, 2}, x));
    CHECK_OK(gguf_writer_write(w, in));
    gguf_writer_free(w);
    CHECK(gguf_quantize_file(in, out, GGUF_DTYPE_Q8_0, NULL) == -1);
    CHECK(strstr(rt_errmsg(), "tensor 'bad.weight' holds a NaN or infinite value at element 300") != NULL);
    CHECK(access(out, F_OK) != 0); /* nothing written */
    CHECK_OK(gguf_quantize_file(in, out, GGUF_DTYPE_F16, NULL)); /* a plain conversion keeps it */
    CHECK(gguf_quantize_file(in, tmp_path("missing/x.gguf"), GGUF_DTYPE_Q8_0, NULL) == -1);
    unlink(in);
    unlink(out);
}

static void decode_logits(model *m, const int32_t *toks, size_t n, float *out) {
    decoder d;
    kv_cache kc;
    CHECK_OK(decoder_init(&d, m, 1));
    CHECK_OK(kv_cache_init(&kc, &m->cfg, 16));
    size_t V = m->cfg.vocab_size;
    for (size_t i = 0; i < n; i++) {
        kv_cache *cs[1] = {&kc};
        CHECK_OK(decoder_run(&d, cs, toks + i, 1, NULL, out + i * V));
    }
    kv_cache_free(&kc);
    decoder_free(&d);
}

static void test_quantized_model(void) {
    model_config c = {.dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 256,
                      .vocab_size = 64, .ctx_len = 16, .norm_eps = 1e-5f, .rope_base = 10000.0f, .tied = 0};
    CHECK_OK(model_config_validate(&c));
    model *m = NULL;
    CHECK_OK(model_create(&m, &c, NULL));
    if (!m) return;
    model_init_weights(m, 3);
    const char *f32 = tmp_path("m32.gguf"), *fq = tmp_path("mq.gguf");
    CHECK_OK(model_save(m, f32));
    CHECK(m->quant == NULL);
    model_free(m);
    const uint32_t types[] = {QTYPE_Q8_0, QTYPE_Q4_K, QTYPE_Q6_K};
    const int32_t toks[6] = {1, 7, 63, 0, 22, 5};
    static float lq[6 * 64], lf[6 * 64];
    for (size_t k = 0; k < RT_ARRAY_LEN(types); k++) {
        gguf_quantize_stats st;
        CHECK_OK(gguf_quantize_file(f32, fq, (gguf_dtype)types[k], &st));
        CHECK(st.n_kept_f32 == 2 * 2 + 1 && st.n_fallback == 0 && st.n_converted == 2 * 7 + 2);
        model *q = NULL;
        CHECK_OK(model_load(&q, fq));
        if (!q) continue;
        CHECK(q->quant != NULL);
        if (!q->quant) {
            model_free(q);
            continue;
        }
        CHECK(q->quant->layers[1].w_down.type == types[k] && q->quant->layers[1].w_down.rows == 256);
        CHECK(q->quant->output.data != NULL && q->quant->output.rows == 64);
        decode_logits(q, toks, 6, lq);
        model_quant_free(q->quant); /* the same weights, decoded: the fp32 path */
        q->quant = NULL;
        decode_logits(q, toks, 6, lf);
        double md = 0;
        for (int i = 0; i < 6 * 64; i++) md = fmax(md, fabs((double)lq[i] - lf[i]));
        /* fp32 activations: only summation order differs; int8 activations (q4_K with VNNI):
         * their rounding, about 0.4% of each block's largest input */
        double tol = quant_matmul_exact(types[k]) ? 1e-4 : 0.1;
        CHECK_MSG(md < tol, "%s: decode on blocks vs decoded fp32 weights: max |diff| %g (tol %g)",
                  qtype_name(types[k]), md, tol);
        model_free(q);
    }
    /* a training step drops the encoded copies (they would be stale) */
    model *q = NULL;
    CHECK_OK(model_load(&q, fq));
    if (q) {
        int32_t in[4] = {1, 2, 3, 4}, tg[4] = {2, 3, 4, 5};
        CHECK(model_forward(q, in, 1, 4) != NULL);
        model_loss_ce(q, tg, 1, NULL);
        model_zero_grad(q);
        CHECK_OK(model_backward(q));
        CHECK(q->quant == NULL);
        model_free(q);
    }
    unlink(f32);
    unlink(fq);
}

/* Prefill n tokens at max_rows rows per run, every position's logits. */
static void prefill_logits(model *m, const int32_t *toks, size_t n, size_t rows, float *out) {
    decoder d;
    kv_cache kc;
    CHECK_OK(decoder_init(&d, m, rows));
    CHECK_OK(kv_cache_init(&kc, &m->cfg, 16));
    CHECK_OK(decoder_prefill(&d, &kc, toks, n, NULL, out));
    kv_cache_free(&kc);
    decoder_free(&d);
}

/* model_load_decode_only: no fp32 copy of the block matrices, the same decode bits as model_load
 * on the same file (each type, tied and untied), big prefill chunks close to model_load's GEMM,
 * an F32 file decodes the same, and training / forward / saving refuse by name. */
static void test_decode_only_model(void) {
    const uint32_t types[] = {QTYPE_Q4_0, QTYPE_Q8_0, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K, QTYPE_Q8_0};
    const int32_t toks[12] = {1, 7, 63, 0, 22, 5, 9, 41, 2, 60, 33, 17};
    static float la[12 * 64], lb[12 * 64];
    char f32[256], fq[256], never[256]; /* tmp_path's buffers rotate */
    snprintf(f32, sizeof f32, "%s", tmp_path("d32.gguf"));
    snprintf(fq, sizeof fq, "%s", tmp_path("dq.gguf"));
    snprintf(never, sizeof never, "%s", tmp_path("never.gguf"));
    for (size_t k = 0; k <= RT_ARRAY_LEN(types); k++) {
        int tied = k == RT_ARRAY_LEN(types) - 1, is_f32 = k == RT_ARRAY_LEN(types);
        model_config c = {.dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 256, .vocab_size = 64,
                          .ctx_len = 16, .norm_eps = 1e-5f, .rope_base = 10000.0f, .tied = tied, .arch = MODEL_ARCH_QWEN2};
        model *m = NULL;
        CHECK_OK(model_create(&m, &c, NULL));
        if (!m) return;
        model_init_weights(m, 5 + k);
        for (size_t i = 0; i < 3 * 256; i++) m->w.layers[0].bq[i] = 0.01f * (float)(i % 7); /* non-zero biases */
        CHECK_OK(model_save(m, f32));
        model_free(m);
        const char *file = is_f32 ? f32 : fq;
        if (!is_f32) CHECK_OK(gguf_quantize_file(f32, fq, (gguf_dtype)types[k], NULL));
        model *full = NULL, *dec = NULL;
        CHECK_OK(model_load(&full, file));
        CHECK_OK(model_load_decode_only(&dec, file));
        if (!full || !dec) {
            model_free(full), model_free(dec);
            continue;
        }
        const char *tn = is_f32 ? "f32" : qtype_name(types[k]);
        CHECK(dec->decode_only && !full->decode_only && dec->n_params == full->n_params);
        CHECK(dec->w.layers[1].attn_norm && dec->w.output_norm && dec->w.layers[0].bq);
        if (!is_f32) {
            CHECK_MSG(!dec->w.token_embd && !dec->w.output && !dec->w.layers[1].wq && !dec->w.layers[1].w_gate &&
                          !dec->w.layers[1].wo && !dec->w.layers[1].w_down,
                      "%s: a block matrix has an fp32 copy", tn);
        } else {
            CHECK(dec->w.token_embd && dec->w.layers[1].wq && dec->quant == NULL);
        }
        decode_logits(full, toks, 6, la);
        decode_logits(dec, toks, 6, lb);
        CHECK_MSG(memcmp(la, lb, 6 * 64 * sizeof(float)) == 0, "%s%s: decode-only logits differ from model_load's",
                  tn, tied ? " (tied)" : "");
        prefill_logits(full, toks, 12, 12, la); /* 12 rows > QUANT_MATMUL_MAX_ROWS: GEMM vs blocks */
        prefill_logits(dec, toks, 12, 12, lb);
        double md = 0, tol = is_f32 || quant_matmul_exact(types[k]) ? 1e-4 : 0.1;
        for (int i = 0; i < 12 * 64; i++) md = fmax(md, fabs((double)la[i] - lb[i]));
        CHECK_MSG(md < tol, "%s: 12-row prefill, decode-only vs model_load: max |diff| %g", tn, md);
        int32_t in[4] = {1, 2, 3, 4};
        CHECK(model_forward(dec, in, 1, 4) == NULL);
        CHECK_MSG(strstr(rt_errmsg(), "model_forward") && strstr(rt_errmsg(), "model_load"), "message: %s",
                  rt_errmsg());
        CHECK(model_backward(dec) == -1 && strstr(rt_errmsg(), "model_backward"));
        CHECK(model_save(dec, never) == -1 && strstr(rt_errmsg(), "model_to_gguf"));
        CHECK(access(never, F_OK) != 0);
        model_free(full);
        model_free(dec);
    }
    unlink(f32);
    unlink(fq);
}

TEST_MAIN("quant", TEST_CASE(test_table), TEST_CASE(test_hand_blocks), TEST_CASE(test_vector_equals_scalar),
          TEST_CASE(test_roundtrip_error), TEST_CASE(test_quant_matmul), TEST_CASE(test_refuse_unknown_type),
          TEST_CASE(test_quantize_file_refuses_nan),
          TEST_CASE(test_quantized_model), TEST_CASE(test_decode_only_model))
