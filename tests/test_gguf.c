/* test_gguf.c — the GGUF room: writer/reader round trips of every value type and of F32/F16
 * tensors, half-precision conversion against an independent bit-level formula (and numpy when
 * /usr/bin/python3 has it), files assembled byte by byte from the spec, a catalogue of
 * malformed files (every truncation, hostile counts and lengths, bad offsets, duplicates),
 * and seeded random mutations that must parse or fail cleanly.
 *
 * Also the generator for the llama.cpp reference check: with RETORT_GGUF_TINY_LLAMA=PATH the
 * case tiny_llama writes a small but complete llama GGUF to PATH and the intended weights
 * (row-major (out, in) matrices, in a fixed order) to PATH.ref.bin for tests/ref_llamacpp_gguf.sh.
 * Not a test of any model code: it only exercises src/formats. */
#include "base/base.h"
#include "formats/gguf.h"
#include "testlib.h"

#include <stdint.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

/* A byte builder that writes little-endian fields exactly as the spec lays them out. */
typedef struct {
    uint8_t *d;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n) nc *= 2;
        b->d = realloc(b->d, nc);
        if (!b->d) {
            perror("realloc");
            exit(2);
        }
        b->cap = nc;
    }
    if (n) memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u16(bb *b, uint16_t v) {
    bb_u8(b, (uint8_t)v);
    bb_u8(b, (uint8_t)(v >> 8));
}
static void bb_u32(bb *b, uint32_t v) {
    for (int i = 0; i < 4; i++) bb_u8(b, (uint8_t)(v >> (8 * i)));
}
static void bb_u64(bb *b, uint64_t v) {
    for (int i = 0; i < 8; i++) bb_u8(b, (uint8_t)(v >> (8 * i)));
}
static void bb_f32(bb *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    bb_u32(b, u);
}
static void bb_f64(bb *b, double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    bb_u64(b, u);
}
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_pad(bb *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}
static void bb_hdr(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, GGUF_TYPE_UINT32);
    bb_u32(b, v);
}
static void bb_tinfo(bb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, nd);
    for (uint32_t d = 0; d < nd; d++) bb_u64(b, ne[d]);
    bb_u32(b, type);
    bb_u64(b, off);
}
static void bb_free(bb *b) {
    free(b->d);
    memset(b, 0, sizeof *b);
}

/* Parse a private, exactly-sized copy (so ASan sees any overread) and expect an error that
 * names the file and, if given, contains needle. */
static void expect_fail(const void *d, size_t n, const char *name, const char *needle) {
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, d, n);
    gguf_ctx *c = (gguf_ctx *)1;
    rt_err_clear();
    int rc = gguf_open_memory(&c, copy, n, name);
    CHECK_MSG(rc == -1, "%s: parsed, but should have failed", name);
    CHECK_MSG(c == NULL, "%s: *out not NULL on failure", name);
    if (rc == 0) gguf_close(c);
    CHECK_MSG(strstr(rt_errmsg(), name) != NULL, "%s: error does not name the file: '%s'", name, rt_errmsg());
    if (needle)
        CHECK_MSG(strstr(rt_errmsg(), needle) != NULL, "%s: error '%s' lacks '%s'", name, rt_errmsg(), needle);
    free(copy);
}

static gguf_ctx *expect_ok(const void *d, size_t n, const char *name) {
    gguf_ctx *c = NULL;
    int rc = gguf_open_memory(&c, d, n, name);
    CHECK_MSG(rc == 0, "%s: %s", name, rt_errmsg());
    return rc == 0 ? c : NULL;
}

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tl_tmpdir(), name);
    return buf[k];
}

static int str_eq(const char *s, size_t len, const char *want) {
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* ---------------------------------------------------------------- round trips */

static void test_roundtrip_kv(void) {
    gguf_writer *w = gguf_writer_new();
    CHECK(w != NULL);
    CHECK_OK(gguf_set_str(w, "general.architecture", "llama"));
    CHECK_OK(gguf_set_u32(w, "a.u32", 4000000000u));
    CHECK_OK(gguf_set_i32(w, "a.i32", -123456));
    CHECK_OK(gguf_set_u64(w, "a.u64", 0xfedcba9876543210ull));
    CHECK_OK(gguf_set_f32(w, "a.f32", 1e-5f));
    CHECK_OK(gguf_set_bool(w, "a.bool", 7)); /* any nonzero is true */
    CHECK_OK(gguf_set_str_n(w, "a.bin", "x\0y\xff", 4));
    CHECK_OK(gguf_set_str(w, "a.empty", ""));
    const char *strs[] = {"Ġthe", "", "h e", "<|endoftext|>"};
    CHECK_OK(gguf_set_arr_str(w, "a.strs", strs, NULL, 4));
    const char *bins[] = {"a\0b", "zz"};
    const size_t lens[] = {3, 1};
    CHECK_OK(gguf_set_arr_str(w, "a.bins", bins, lens, 2));
    CHECK_OK(gguf_set_arr_str(w, "a.nostrs", NULL, NULL, 0));
    uint8_t u8s[] = {0, 1, 255};
    int8_t i8s[] = {-128, 0, 127};
    uint16_t u16s[] = {0, 65535, 1234};
    int16_t i16s[] = {-32768, 32767};
    uint32_t u32s[] = {1, 2, 4294967295u};
    int32_t i32s[] = {INT32_MIN, -1, INT32_MAX};
    float f32s[] = {1.5f, -0.0f, 3.4e38f};
    uint8_t bools[] = {1, 0, 1, 1};
    uint64_t u64s[] = {UINT64_MAX, 0};
    int64_t i64s[] = {INT64_MIN, INT64_MAX, -5};
    double f64s[] = {3.141592653589793, -1e300};
    struct {
        const char *key;
        gguf_type t;
        const void *d;
        size_t n, es;
    } arrs[] = {
        {"arr.u8", GGUF_TYPE_UINT8, u8s, 3, 1},      {"arr.i8", GGUF_TYPE_INT8, i8s, 3, 1},
        {"arr.u16", GGUF_TYPE_UINT16, u16s, 3, 2},   {"arr.i16", GGUF_TYPE_INT16, i16s, 2, 2},
        {"arr.u32", GGUF_TYPE_UINT32, u32s, 3, 4},   {"arr.i32", GGUF_TYPE_INT32, i32s, 3, 4},
        {"arr.f32", GGUF_TYPE_FLOAT32, f32s, 3, 4},  {"arr.bool", GGUF_TYPE_BOOL, bools, 4, 1},
        {"arr.u64", GGUF_TYPE_UINT64, u64s, 2, 8},   {"arr.i64", GGUF_TYPE_INT64, i64s, 3, 8},
        {"arr.f64", GGUF_TYPE_FLOAT64, f64s, 2, 8},  {"arr.empty", GGUF_TYPE_UINT32, NULL, 0, 4},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(arrs); i++)
        CHECK_OK(gguf_set_arr_data(w, arrs[i].key, arrs[i].t, arrs[i].d, arrs[i].n));
    /* replacing a key keeps its position (and may change its type) */
    CHECK_OK(gguf_set_u32(w, "a.i32", 99));
    CHECK_OK(gguf_set_i32(w, "a.i32", -7));
    const char *path = tmp_path("kv.gguf");
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);

    gguf_ctx *c = NULL;
    CHECK_OK(gguf_open(&c, path));
    if (!c) return;
    CHECK(gguf_version(c) == 3);
    CHECK(strcmp(gguf_path(c), path) == 0);
    CHECK(gguf_n_tensors(c) == 0);
    CHECK(gguf_n_kv(c) == 11 + RT_ARRAY_LEN(arrs));
    const char *order[] = {"general.architecture", "a.u32", "a.i32", "a.u64", "a.f32", "a.bool",
                           "a.bin", "a.empty", "a.strs", "a.bins", "a.nostrs", "arr.u8"};
    for (size_t i = 0; i < RT_ARRAY_LEN(order); i++) {
        CHECK_MSG(gguf_key_name(c, i) && strcmp(gguf_key_name(c, i), order[i]) == 0, "key %zu is '%s'", i,
                  gguf_key_name(c, i) ? gguf_key_name(c, i) : "(null)");
        CHECK(gguf_find_key(c, order[i]) == (int64_t)i);
    }
    CHECK(gguf_key_name(c, 1000) == NULL);
    CHECK(gguf_find_key(c, "nope") == -1);
    CHECK(gguf_kv_type(c, 2) == GGUF_TYPE_INT32);
    CHECK(gguf_kv_type(c, 1000) == GGUF_TYPE_COUNT);

    const char *s;
    size_t n;
    CHECK_OK(gguf_get_str(c, "general.architecture", &s, &n));
    CHECK(str_eq(s, n, "llama"));
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    float f = 0;
    int bo = 0;
    CHECK_OK(gguf_get_u32(c, "a.u32", &u32));
    CHECK(u32 == 4000000000u);
    CHECK_OK(gguf_get_i32(c, "a.i32", &i32));
    CHECK(i32 == -7);
    CHECK_OK(gguf_get_u64(c, "a.u64", &u64));
    CHECK(u64 == 0xfedcba9876543210ull);
    CHECK_OK(gguf_get_f32(c, "a.f32", &f));
    CHECK(f == 1e-5f);
    CHECK_OK(gguf_get_bool(c, "a.bool", &bo));
    CHECK(bo == 1);
    CHECK_OK(gguf_get_str(c, "a.bin", &s, &n));
    CHECK(n == 4 && memcmp(s, "x\0y\xff", 4) == 0);
    CHECK_OK(gguf_get_str(c, "a.empty", &s, &n));
    CHECK(n == 0);
    CHECK_OK(gguf_get_arr_str_n(c, "a.strs", &n));
    CHECK(n == 4);
    for (size_t i = 0; i < 4; i++) {
        size_t l;
        CHECK_OK(gguf_get_arr_str(c, "a.strs", i, &s, &l));
        CHECK(str_eq(s, l, strs[i]));
    }
    CHECK(gguf_get_arr_str(c, "a.strs", 4, &s, &n) == -1);
    CHECK(strstr(rt_errmsg(), "a.strs") && strstr(rt_errmsg(), "out of range"));
    CHECK_OK(gguf_get_arr_str(c, "a.bins", 0, &s, &n));
    CHECK(n == 3 && memcmp(s, "a\0b", 3) == 0);
    CHECK_OK(gguf_get_arr_str(c, "a.bins", 1, &s, &n));
    CHECK(n == 1 && s[0] == 'z');
    CHECK_OK(gguf_get_arr_str_n(c, "a.nostrs", &n));
    CHECK(n == 0);
    int64_t ki = gguf_find_key(c, "a.strs");
    CHECK(ki >= 0 && gguf_kv_type(c, (size_t)ki) == GGUF_TYPE_ARRAY);
    CHECK(ki >= 0 && gguf_arr_type(c, (size_t)ki) == GGUF_TYPE_STRING && gguf_arr_n(c, (size_t)ki) == 4);
    CHECK(gguf_arr_type(c, 1) == GGUF_TYPE_COUNT && gguf_arr_n(c, 1) == 0);
    for (size_t i = 0; i < RT_ARRAY_LEN(arrs); i++) {
        gguf_type et;
        const void *d;
        CHECK_OK(gguf_get_arr_data(c, arrs[i].key, &et, &n, &d));
        CHECK_MSG(et == arrs[i].t && n == arrs[i].n, "%s", arrs[i].key);
        if (n == arrs[i].n && n) CHECK_MSG(memcmp(d, arrs[i].d, n * arrs[i].es) == 0, "%s values", arrs[i].key);
        int64_t k = gguf_find_key(c, arrs[i].key);
        CHECK(k >= 0 && gguf_arr_type(c, (size_t)k) == arrs[i].t && gguf_arr_n(c, (size_t)k) == arrs[i].n);
    }
    /* absent keys: 1 and no error; type mismatches: -1 naming key and types */
    rt_err_clear();
    CHECK(gguf_get_u32(c, "missing", &u32) == 1);
    CHECK(gguf_get_str(c, "missing", &s, &n) == 1);
    CHECK(gguf_get_arr_data(c, "missing", &(gguf_type){0}, &n, &(const void *){0}) == 1);
    CHECK(rt_errmsg()[0] == '\0');
    CHECK(gguf_get_u32(c, "a.i32", &u32) == -1); /* -7 does not fit */
    CHECK(strstr(rt_errmsg(), "a.i32") && strstr(rt_errmsg(), "out of range"));
    CHECK(gguf_get_u32(c, "a.u64", &u32) == -1);
    CHECK(gguf_get_i32(c, "a.u32", &i32) == -1);
    CHECK_OK(gguf_get_u64(c, "a.u32", &u64)); /* widening is fine */
    CHECK(u64 == 4000000000u);
    CHECK(gguf_get_u64(c, "a.i32", &u64) == -1);
    CHECK(gguf_get_u32(c, "general.architecture", &u32) == -1);
    CHECK(strstr(rt_errmsg(), "general.architecture") && strstr(rt_errmsg(), "str"));
    CHECK(gguf_get_str(c, "a.u32", &s, &n) == -1);
    CHECK(strstr(rt_errmsg(), "'a.u32' has type u32; expected str"));
    CHECK(gguf_get_f32(c, "a.u32", &f) == -1);
    CHECK(gguf_get_bool(c, "a.u32", &bo) == -1);
    CHECK(gguf_get_arr_str_n(c, "arr.u8", &n) == -1);
    CHECK(strstr(rt_errmsg(), "array of u8"));
    CHECK(gguf_get_arr_data(c, "a.strs", &(gguf_type){0}, &n, &(const void *){0}) == -1);
    CHECK(gguf_get_u32(c, "arr.u32", &u32) == -1);
    gguf_close(c);
}

/* deterministic test data */
static void fill(float *x, size_t n, uint64_t seed) {
    rt_rng r;
    rt_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(rt_rng_normal(&r) * 3.0);
}

static void test_roundtrip_tensors(void) {
    static const uint64_t shapes[][4] = {{7, 1, 1, 1}, {5, 3, 1, 1}, {4, 3, 2, 1}, {3, 2, 2, 2}, {64, 1, 1, 1}};
    float *data[10];
    char names[10][32];
    gguf_writer *w = gguf_writer_new();
    CHECK_OK(gguf_set_str(w, "general.name", "tensors"));
    for (int i = 0; i < 10; i++) {
        int s = i % 5;
        uint32_t nd = (uint32_t)(s < 4 ? s + 1 : 1);
        size_t n = shapes[s][0] * shapes[s][1] * shapes[s][2] * shapes[s][3];
        data[i] = malloc(n * sizeof(float));
        fill(data[i], n, (uint64_t)i);
        if (i == 9) { /* specials survive both paths */
            data[i][0] = INFINITY;
            data[i][1] = -0.0f;
            data[i][2] = 65504.0f;
            data[i][3] = 1e-7f; /* f16 subnormal */
        }
        snprintf(names[i], sizeof names[i], "blk.%d.%s", i, i < 5 ? "f32" : "f16");
        CHECK_OK(gguf_add_tensor(w, names[i], i < 5 ? GGUF_DTYPE_F32 : GGUF_DTYPE_F16, nd, shapes[s], data[i]));
    }
    const char *path = tmp_path("tensors.gguf");
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    char *bytes;
    size_t len;
    CHECK_OK(rt_read_file(path, &bytes, &len));
    for (int pass = 0; pass < 2; pass++) {
        gguf_ctx *c = NULL;
        if (pass == 0) CHECK_OK(gguf_open(&c, path));
        else CHECK_OK(gguf_open_memory(&c, bytes, len, "tensors-in-memory"));
        if (!c) continue;
        CHECK(gguf_n_tensors(c) == 10);
        CHECK(gguf_alignment(c) == 32 && gguf_data_offset(c) % 32 == 0);
        const uint8_t *base = NULL;
        for (int i = 0; i < 10; i++) {
            int s = i % 5;
            uint32_t nd = (uint32_t)(s < 4 ? s + 1 : 1);
            size_t n = shapes[s][0] * shapes[s][1] * shapes[s][2] * shapes[s][3];
            gguf_tensor_info ti;
            CHECK_OK(gguf_tensor_info_at(c, (size_t)i, &ti));
            CHECK(strcmp(ti.name, names[i]) == 0);
            CHECK(gguf_find_tensor(c, names[i]) == i);
            CHECK(ti.n_dims == nd);
            for (int d = 0; d < 4; d++) CHECK(ti.ne[d] == shapes[s][d]);
            CHECK(ti.type == (i < 5 ? GGUF_DTYPE_F32 : GGUF_DTYPE_F16));
            CHECK(ti.nbytes == n * (i < 5 ? 4 : 2));
            if (i == 0) base = (const uint8_t *)ti.data - gguf_data_offset(c);
            CHECK(((size_t)((const uint8_t *)ti.data - base)) % 32 == 0);
            float *out = malloc(n * sizeof(float));
            CHECK_OK(gguf_read_tensor_f32(c, names[i], out, n, shapes[s], nd));
            CHECK_OK(gguf_read_tensor_f32(c, names[i], out, n, NULL, 0));
            for (size_t k = 0; k < n; k++) {
                float want = i < 5 ? data[i][k] : gguf_f16_to_f32(gguf_f32_to_f16(data[i][k]));
                CHECK_MSG(memcmp(&out[k], &want, 4) == 0, "%s[%zu] = %g, want %g", names[i], k, out[k], want);
                if (i >= 5 && isfinite(data[i][k]) && fabsf(data[i][k]) > 1e-4f && fabsf(data[i][k]) < 65000)
                    CHECK_NEAR(out[k], data[i][k], 0, 1.0 / 2048);
            }
            free(out);
        }
        CHECK(gguf_tensor_info_at(c, 10, &(gguf_tensor_info){0}) == -1);
        CHECK(gguf_find_tensor(c, "nope") == -1);
        gguf_close(c);
    }
    /* an independent look at the bytes: header fields where the spec puts them */
    CHECK(len > 24 && memcmp(bytes, "GGUF", 4) == 0 && bytes[4] == 3 && bytes[8] == 10 && bytes[16] == 1);
    free(bytes);
    for (int i = 0; i < 10; i++) free(data[i]);
}

/* ---------------------------------------------------------------- f16 */

/* Independent reference: the value of a binary16 pattern by its definition. */
static double half_value(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp((double)m, -24);
    else v = ldexp((double)(1024 + m), e - 25);
    return sign ? -v : v;
}

static void test_f16_exhaustive(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = gguf_f16_to_f32((uint16_t)h);
        double want = half_value((uint16_t)h);
        if (isnan(want)) {
            if (!isnan(f)) bad++;
            /* a NaN stays a NaN with its sign */
            if (!isnan(gguf_f16_to_f32(gguf_f32_to_f16(f))) || (gguf_f32_to_f16(f) & 0x8000) != (h & 0x8000)) bad++;
            continue;
        }
        if ((double)f != want || !!signbit(f) != !!signbit(want)) bad++;
        if (gguf_f32_to_f16(f) != h) bad++; /* every half survives the round trip */
    }
    CHECK_MSG(bad == 0, "%d half patterns wrong", bad);
}

static void test_f32_to_f16_rounding(void) {
    struct {
        float in;
        uint16_t out;
    } cases[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},                     /* max half */
        {65519.99f, 0x7bff},                    /* just below the rounding boundary */
        {65520.0f, 0x7c00},                     /* tie between max and 2^16 -> even -> inf */
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {1.0f + 0x1p-11f, 0x3c00},              /* tie -> even (1.0) */
        {1.0f + 3 * 0x1p-11f, 0x3c02},          /* tie -> even (up) */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},   /* just above the tie */
        {0x1p-14f, 0x0400},                     /* min normal */
        {0x1p-24f, 0x0001},                     /* min subnormal */
        {0x1p-25f, 0x0000},                     /* tie between 0 and min subnormal -> 0 */
        {0x1p-25f * 1.0000001f, 0x0001},        /* above the tie */
        {-0x1p-26f, 0x8000},                    /* underflow keeps the sign */
        {1.5f * 0x1p-24f, 0x0002},              /* tie 1|2 -> 2 */
        {2.5f * 0x1p-24f, 0x0002},              /* tie 2|3 -> 2 */
        {1023.5f * 0x1p-24f, 0x0400},           /* tie max-subnormal|min-normal -> even (0x400) */
        {1022.5f * 0x1p-24f, 0x03fe},
        {0x1p-14f - 0x1p-30f, 0x0400},          /* rounds up into the normals */
        {2049.0f, 0x6800},                      /* 2048 + 1: tie -> even 2048 */
        {2051.0f, 0x6802},                      /* tie -> even 2052 */
        {0.1f, 0x2e66},
        {3.14159265f, 0x4248},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(cases); i++) {
        uint16_t h = gguf_f32_to_f16(cases[i].in);
        CHECK_MSG(h == cases[i].out, "f32_to_f16(%a) = 0x%04x, want 0x%04x", (double)cases[i].in, h, cases[i].out);
    }
    uint16_t hn = gguf_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    /* Property check over a million random floats: the result is the nearest half, ties to even. */
    rt_rng r;
    rt_rng_seed(&r, 1234);
    int bad = 0;
    for (int i = 0; i < 1000000; i++) {
        uint32_t bits = rt_rng_u32(&r);
        if (i % 2) bits = (bits & 0x8fffffffu) | 0x30000000u; /* half the draws near the half range */
        float x;
        memcpy(&x, &bits, 4);
        if (isnan(x)) continue;
        uint16_t h = gguf_f32_to_f16(x);
        double ax = fabs((double)x);
        if (ax >= 65520.0) {
            if ((h & 0x7fff) != 0x7c00) bad++;
            continue;
        }
        uint16_t mag = h & 0x7fff;
        if (mag >= 0x7c00 || ((h >> 15) != (bits >> 31))) {
            bad++;
            continue;
        }
        double v = half_value(mag);
        double err = fabs(ax - v);
        double lo = mag ? half_value((uint16_t)(mag - 1)) : -half_value(1);
        double hi = half_value((uint16_t)(mag + 1));
        if (err > fabs(ax - lo) || err > fabs(ax - hi)) bad++;
        if ((err == fabs(ax - lo) || err == fabs(ax - hi)) && (mag & 1)) bad++;
    }
    CHECK_MSG(bad == 0, "%d random floats rounded wrongly", bad);
}

/* Cross-check against numpy's float16 (IEEE RNE) when /usr/bin/python3 has numpy. */
static void test_f16_numpy(void) {
    if (access("/usr/bin/python3", X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        printf("SKIP numpy f16 cross-check: /usr/bin/python3 with numpy not found\n");
        return;
    }
    enum { N = 200000 };
    uint32_t *in = malloc(N * 4);
    rt_rng r;
    rt_rng_seed(&r, 99);
    for (int i = 0; i < N; i++) {
        uint32_t b = rt_rng_u32(&r);
        if (i % 2) b = (b & 0x8fffffffu) | 0x30000000u;
        in[i] = b;
    }
    const char *pin = tmp_path("f16_in.bin"), *pout = tmp_path("f16_out.bin");
    CHECK_OK(rt_write_file_atomic(pin, in, N * 4));
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import numpy as np,sys; a=np.fromfile('%s',dtype='<f4');"
             "h=np.arange(65536,dtype=np.uint16).view(np.float16).astype(np.float32);"
             "np.concatenate([a.astype(np.float16).view('<u2').astype('<u4'),h.view('<u4')]).tofile('%s')\" "
             "2>/dev/null",
             pin, pout);
    int rc = system(cmd);
    CHECK(rc == 0);
    char *out;
    size_t len;
    if (rc != 0 || rt_read_file(pout, &out, &len) != 0 || len != (size_t)(N + 65536) * 4) {
        CHECK(0);
        free(in);
        return;
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        uint32_t want;
        memcpy(&want, out + 4 * (size_t)i, 4);
        float x;
        memcpy(&x, &in[i], 4);
        uint16_t h = gguf_f32_to_f16(x);
        if (isnan(x) ? !((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) : h != want) bad++;
    }
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t want, got;
        memcpy(&want, out + 4 * ((size_t)N + h), 4);
        float f = gguf_f16_to_f32((uint16_t)h);
        memcpy(&got, &f, 4);
        float wf;
        memcpy(&wf, &want, 4);
        if (isnan(wf) ? !isnan(f) : got != want) bad++;
    }
    CHECK_MSG(bad == 0, "%d values differ from numpy", bad);
    printf("numpy f16 cross-check: %d f32->f16 and 65536 f16->f32 values compared\n", N);
    free(out);
    free(in);
}

/* ---------------------------------------------------------------- hand-assembled files */

static void build_hand_file(bb *b, uint32_t version) {
    bb_hdr(b, version, 3, 9);
    bb_str(b, "general.architecture");
    bb_u32(b, GGUF_TYPE_STRING);
    bb_str(b, "llama");
    bb_kv_u32(b, "general.alignment", 64);
    bb_str(b, "t.u8");
    bb_u32(b, GGUF_TYPE_UINT8);
    bb_u8(b, 200);
    bb_str(b, "t.i8");
    bb_u32(b, GGUF_TYPE_INT8);
    bb_u8(b, 0x80); /* -128 */
    bb_str(b, "t.i16");
    bb_u32(b, GGUF_TYPE_INT16);
    bb_u16(b, 0xfffe); /* -2 */
    bb_str(b, "t.i64");
    bb_u32(b, GGUF_TYPE_INT64);
    bb_u64(b, (uint64_t)-5);
    bb_str(b, "t.f64");
    bb_u32(b, GGUF_TYPE_FLOAT64);
    bb_f64(b, 0.25);
    bb_str(b, "t.arr");
    bb_u32(b, GGUF_TYPE_ARRAY);
    bb_u32(b, GGUF_TYPE_INT32);
    bb_u64(b, 3);
    bb_u32(b, 1);
    bb_u32(b, (uint32_t)-2);
    bb_u32(b, 3);
    bb_str(b, "t.strs");
    bb_u32(b, GGUF_TYPE_ARRAY);
    bb_u32(b, GGUF_TYPE_STRING);
    bb_u64(b, 2);
    bb_str(b, "hello");
    bb_str(b, "wörld");
    /* tensors: a (2 rows x 3 cols, f32) at 0; b (4, f16) at 64; q (32, q8_0: 34 bytes) at 128 */
    bb_tinfo(b, "a", 2, (const uint64_t[]){3, 2}, GGUF_DTYPE_F32, 0);
    bb_tinfo(b, "b", 1, (const uint64_t[]){4}, GGUF_DTYPE_F16, 64);
    bb_tinfo(b, "q", 1, (const uint64_t[]){32}, 8, 128);
    bb_pad(b, 64);
    for (int i = 0; i < 6; i++) bb_f32(b, (float)i + 0.5f);
    bb_pad(b, 64);
    bb_u16(b, 0x3c00); /* 1 */
    bb_u16(b, 0xc000); /* -2 */
    bb_u16(b, 0x0001); /* 2^-24 */
    bb_u16(b, 0x7c00); /* inf */
    bb_pad(b, 64);
    for (int i = 0; i < 34; i++) bb_u8(b, (uint8_t)i);
}

static void test_hand_assembled(void) {
    for (uint32_t version = 2; version <= 3; version++) {
        bb b = {0};
        build_hand_file(&b, version);
        gguf_ctx *c = expect_ok(b.d, b.n, "hand.gguf");
        if (!c) {
            bb_free(&b);
            continue;
        }
        CHECK(gguf_version(c) == version);
        CHECK(gguf_n_kv(c) == 9 && gguf_n_tensors(c) == 3);
        CHECK(gguf_alignment(c) == 64);
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        float f;
        const char *s;
        size_t n;
        CHECK_OK(gguf_get_u32(c, "t.u8", &u32));
        CHECK(u32 == 200);
        CHECK_OK(gguf_get_i32(c, "t.i8", &i32));
        CHECK(i32 == -128);
        CHECK(gguf_get_u32(c, "t.i8", &u32) == -1);
        CHECK_OK(gguf_get_i32(c, "t.i16", &i32));
        CHECK(i32 == -2);
        CHECK_OK(gguf_get_i32(c, "t.i64", &i32));
        CHECK(i32 == -5);
        CHECK(gguf_get_u64(c, "t.i64", &u64) == -1);
        CHECK_OK(gguf_get_f32(c, "t.f64", &f));
        CHECK(f == 0.25f);
        gguf_type et;
        const void *d;
        CHECK_OK(gguf_get_arr_data(c, "t.arr", &et, &n, &d));
        CHECK(et == GGUF_TYPE_INT32 && n == 3);
        int32_t v[3];
        memcpy(v, d, sizeof v);
        CHECK(v[0] == 1 && v[1] == -2 && v[2] == 3);
        CHECK_OK(gguf_get_arr_str(c, "t.strs", 1, &s, &n));
        CHECK(str_eq(s, n, "wörld"));
        float a[6], bf[4];
        CHECK_OK(gguf_read_tensor_f32(c, "a", a, 6, (const uint64_t[]){3, 2}, 2));
        for (int i = 0; i < 6; i++) CHECK(a[i] == (float)i + 0.5f);
        CHECK_OK(gguf_read_tensor_f32(c, "b", bf, 4, (const uint64_t[]){4}, 1));
        CHECK(bf[0] == 1.0f && bf[1] == -2.0f && bf[2] == 0x1p-24f && isinf(bf[3]));
        gguf_tensor_info ti;
        CHECK_OK(gguf_tensor_info_at(c, 2, &ti));
        CHECK(ti.type == 8 && ti.nbytes == 34 && strcmp(gguf_dtype_name(ti.type), "q8_0") == 0);
        CHECK((const uint8_t *)ti.data == b.d + b.n - 34);
        CHECK(((const uint8_t *)ti.data)[33] == 33);
        CHECK_OK(gguf_tensor_info_at(c, 0, &ti));
        CHECK((const uint8_t *)ti.data == b.d + gguf_data_offset(c) && gguf_data_offset(c) % 64 == 0);
        /* q8_0 is decoded now (refusals of types retort does not decode: test_quant.c):
         * d = f16 0x0100 = 2^-16, q[j] = j + 2 */
        float q[32];
        CHECK_OK(gguf_read_tensor_f32(c, "q", q, 32, NULL, 0));
        for (int j = 0; j < 32; j++) CHECK(q[j] == (float)(j + 2) * 0x1p-16f);
        gguf_close(c);
        bb_free(&b);
    }
    /* A file with no tensors needs no data section, and its last bytes may be unpadded. */
    bb b = {0};
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, "x", 1);
    gguf_ctx *c = expect_ok(b.d, b.n, "kv-only.gguf");
    if (c) gguf_close(c);
    bb_free(&b);
    bb_hdr(&b, 3, 0, 0);
    c = expect_ok(b.d, b.n, "empty.gguf");
    if (c) {
        CHECK(gguf_n_kv(c) == 0 && gguf_n_tensors(c) == 0);
        gguf_close(c);
    }
    bb_free(&b);
    /* Unknown (future) tensor types are listed with nbytes 0 but not readable as f32. */
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "future", 1, (const uint64_t[]){8}, 99, 0);
    bb_pad(&b, 32);
    bb_u64(&b, 0);
    c = expect_ok(b.d, b.n, "future.gguf");
    if (c) {
        gguf_tensor_info ti;
        CHECK_OK(gguf_tensor_info_at(c, 0, &ti));
        CHECK(ti.nbytes == 0 && ti.type == 99);
        CHECK(gguf_read_tensor_f32(c, "future", (float[8]){0}, 8, NULL, 0) == -1);
        CHECK(strstr(rt_errmsg(), "'future' has type type 99"));
        gguf_close(c);
    }
    bb_free(&b);
    CHECK(strcmp(gguf_dtype_name(0), "f32") == 0 && strcmp(gguf_dtype_name(1), "f16") == 0);
    CHECK(strcmp(gguf_dtype_name(2), "q4_0") == 0 && strcmp(gguf_dtype_name(12), "q4_K") == 0);
    CHECK(strcmp(gguf_dtype_name(4), "type 4") == 0 && strcmp(gguf_dtype_name(99), "type 99") == 0);
    CHECK(strcmp(gguf_type_name(GGUF_TYPE_STRING), "str") == 0);
    CHECK(strcmp(gguf_type_name((gguf_type)77), "invalid") == 0);
}

/* ---------------------------------------------------------------- malformed files */

/* A valid file from the writer whose last tensor ends exactly at end of file, so that every
 * proper prefix is missing needed bytes. */
static int write_sample(const char *path, float *buf, size_t nbuf) {
    for (size_t i = 0; i < nbuf; i++) buf[i] = (float)i * 0.25f - 3.0f;
    gguf_writer *w = gguf_writer_new();
    const char *toks[] = {"a", "bc", "Ġd"};
    int32_t tt[] = {1, 1, 3};
    int rc = gguf_set_str(w, "general.architecture", "llama") || gguf_set_u32(w, "llama.block_count", 2) ||
             gguf_set_f32(w, "llama.eps", 1e-5f) || gguf_set_bool(w, "b", 1) ||
             gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 3) ||
             gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, tt, 3) ||
             gguf_add_tensor(w, "w1", GGUF_DTYPE_F32, 2, (const uint64_t[]){3, 2}, buf) ||
             gguf_add_tensor(w, "w2", GGUF_DTYPE_F16, 1, (const uint64_t[]){5}, buf) ||
             gguf_add_tensor(w, "w3", GGUF_DTYPE_F32, 2, (const uint64_t[]){4, 4}, buf) ||
             gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc ? -1 : 0;
}

static void test_truncation(void) {
    float buf[16];
    const char *path = tmp_path("sample.gguf");
    CHECK_OK(write_sample(path, buf, 16));
    char *d;
    size_t n;
    if (rt_read_file(path, &d, &n)) {
        CHECK(0);
        return;
    }
    gguf_ctx *c = expect_ok(d, n, "sample.gguf");
    if (c) gguf_close(c);
    int fails = 0;
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, d, len);
        rt_err_clear();
        c = NULL;
        if (gguf_open_memory(&c, copy, len, "cut.gguf") == 0) {
            fails++;
            gguf_close(c);
        } else if (!strstr(rt_errmsg(), "cut.gguf")) {
            fails++;
        }
        free(copy);
    }
    CHECK_MSG(fails == 0, "%d of %zu truncations parsed or gave an unnamed error", fails, n);
    /* the file on disk, truncated: the error names the path and says truncated */
    const char *tp = tmp_path("truncated.gguf");
    CHECK_OK(rt_write_file_atomic(tp, d, n - 10));
    CHECK(gguf_open(&c, tp) == -1 && c == NULL);
    CHECK(strstr(rt_errmsg(), tp) && strstr(rt_errmsg(), "tensor 'w3'") && strstr(rt_errmsg(), "truncated"));
    free(d);
}

static void test_malformed(void) {
    bb b = {0};
    /* too short, bad magic, versions */
    expect_fail("GG", 2, "short.gguf", "too short");
    expect_fail("GGML\3\0\0\0", 8, "magic.gguf", "not a GGUF file");
    bb_hdr(&b, 1, 0, 0);
    expect_fail(b.d, b.n, "v1.gguf", "version 1");
    bb_free(&b);
    bb_hdr(&b, 4, 0, 0);
    expect_fail(b.d, b.n, "v4.gguf", "unsupported GGUF version 4");
    bb_free(&b);
    bb_hdr(&b, 0x03000000u, 0, 0);
    expect_fail(b.d, b.n, "be.gguf", "big-endian");
    bb_free(&b);
    /* huge counts fail fast */
    bb_hdr(&b, 3, 0, 1ull << 63);
    expect_fail(b.d, b.n, "nkv.gguf", "cannot fit");
    bb_free(&b);
    bb_hdr(&b, 3, UINT64_MAX, 0);
    expect_fail(b.d, b.n, "ntensors.gguf", "cannot fit");
    bb_free(&b);
    /* huge string lengths */
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, UINT64_MAX);
    bb_put(&b, "abcdefghijklmnop", 16);
    expect_fail(b.d, b.n, "keylen.gguf", "string length");
    bb_free(&b);
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, 1ull << 62);
    bb_put(&b, "abcdefgh", 8);
    expect_fail(b.d, b.n, "strlen.gguf", "key 'k' value");
    bb_free(&b);
    /* an array of 2^63 strings, of 2^62 u32 */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "tokenizer.ggml.tokens");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, 1ull << 63);
    bb_str(&b, "a");
    expect_fail(b.d, b.n, "strarr.gguf", "strings cannot fit");
    bb_free(&b);
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_UINT32);
    bb_u64(&b, 1ull << 62);
    bb_u32(&b, 1);
    expect_fail(b.d, b.n, "u32arr.gguf", "array of");
    bb_free(&b);
    /* a string array whose strings run past the end */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, 3);
    bb_str(&b, "a");
    bb_u64(&b, 100);
    bb_put(&b, "0123456789abcdef", 16);
    expect_fail(b.d, b.n, "strarr2.gguf", "string #1");
    bb_free(&b);
    /* unknown value types, nested arrays, bad bools, empty/duplicate keys */
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, 13);
    bb_u32(&b, 0);
    expect_fail(b.d, b.n, "kvtype.gguf", "unknown value type 13");
    bb_free(&b);
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, 0xffffffffu);
    bb_u64(&b, 0);
    expect_fail(b.d, b.n, "arrtype.gguf", "unknown element type");
    bb_free(&b);
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u32(&b, GGUF_TYPE_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, GGUF_TYPE_UINT8);
    bb_u64(&b, 1);
    bb_u8(&b, 1);
    expect_fail(b.d, b.n, "nested.gguf", "array of arrays");
    bb_free(&b);
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, GGUF_TYPE_BOOL);
    bb_u8(&b, 2);
    expect_fail(b.d, b.n, "bool.gguf", "neither 0 nor 1");
    bb_free(&b);
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "");
    bb_u32(&b, GGUF_TYPE_UINT32);
    bb_u32(&b, 2);
    expect_fail(b.d, b.n, "emptykey.gguf", "empty name");
    bb_free(&b);
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, 3);
    bb_put(&b, "a\0b", 3);
    bb_u32(&b, GGUF_TYPE_UINT8);
    bb_u8(&b, 2);
    expect_fail(b.d, b.n, "nulkey.gguf", "NUL byte");
    bb_free(&b);
    bb_hdr(&b, 3, 0, 2);
    bb_kv_u32(&b, "general.name", 1);
    bb_kv_u32(&b, "general.name", 2);
    expect_fail(b.d, b.n, "dupkey.gguf", "key 'general.name' appears twice");
    /* where: a 24-byte header, then key #0 = 8 + 12 name bytes + 4 type + 4 value = 28 */
    expect_fail(b.d, b.n, "dupkey.gguf", "key #1 at offset 52 repeats key #0");
    bb_free(&b);
    /* alignment: zero, not a power of two, wrong type */
    uint32_t bad_al[] = {0, 3, 48};
    for (size_t i = 0; i < 3; i++) {
        bb_hdr(&b, 3, 0, 1);
        bb_kv_u32(&b, "general.alignment", bad_al[i]);
        expect_fail(b.d, b.n, "align.gguf", "power of two");
        bb_free(&b);
    }
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, GGUF_TYPE_UINT64);
    bb_u64(&b, 32);
    expect_fail(b.d, b.n, "aligntype.gguf", "must be u32");
    bb_free(&b);
    /* tensor infos: n_dims > 4, negative / overflowing ne, bad block multiple, names */
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "t", 5, (const uint64_t[]){1, 1, 1, 1, 1}, 0, 0);
    expect_fail(b.d, b.n, "ndims.gguf", "5 dimensions");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "t", 2, (const uint64_t[]){1ull << 32, 1ull << 32}, 0, 0);
    expect_fail(b.d, b.n, "neover.gguf", "2^63");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "t", 4, (const uint64_t[]){1ull << 20, 1ull << 20, 1ull << 20, 1ull << 5}, 0, 0);
    expect_fail(b.d, b.n, "neover2.gguf", "2^63");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "t", 1, (const uint64_t[]){UINT64_MAX}, 0, 0);
    expect_fail(b.d, b.n, "neneg.gguf", "negative");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "t", 1, (const uint64_t[]){1ull << 62}, 0, 0); /* 2^62 f32 = 2^64 bytes */
    bb_pad(&b, 32);
    expect_fail(b.d, b.n, "nbytes.gguf", "t");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "q", 1, (const uint64_t[]){33}, 2, 0);
    expect_fail(b.d, b.n, "block.gguf", "not a multiple of its block size 32");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "", 1, (const uint64_t[]){1}, 0, 0);
    expect_fail(b.d, b.n, "noname.gguf", "empty name");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "0123456789012345678901234567890123456789012345678901234567890123", 1,
             (const uint64_t[]){1}, 0, 0);
    expect_fail(b.d, b.n, "longname.gguf", "at most 63 bytes");
    bb_free(&b);
    bb_hdr(&b, 3, 2, 0);
    bb_tinfo(&b, "t", 1, (const uint64_t[]){8}, 0, 0);
    bb_tinfo(&b, "t", 1, (const uint64_t[]){8}, 0, 32);
    bb_pad(&b, 32);
    for (int i = 0; i < 16; i++) bb_f32(&b, 0);
    expect_fail(b.d, b.n, "duptensor.gguf", "tensor 't' appears twice");
    bb_free(&b);
    /* offsets: misaligned, overlapping, beyond the end, huge */
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "blk.0.attn_q.weight", 1, (const uint64_t[]){4}, 0, 4);
    bb_pad(&b, 32);
    for (int i = 0; i < 16; i++) bb_f32(&b, 0);
    expect_fail(b.d, b.n, "misaligned.gguf", "not a multiple of the alignment 32");
    bb_free(&b);
    bb_hdr(&b, 3, 2, 0);
    bb_tinfo(&b, "a", 1, (const uint64_t[]){16}, 0, 0);
    bb_tinfo(&b, "b", 1, (const uint64_t[]){8}, 0, 32);
    bb_pad(&b, 32);
    for (int i = 0; i < 24; i++) bb_f32(&b, 0);
    expect_fail(b.d, b.n, "overlap.gguf", "overlap");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "blk.0.attn_q.weight", 1, (const uint64_t[]){1024}, 0, 0);
    bb_pad(&b, 32);
    for (int i = 0; i < 16; i++) bb_f32(&b, 0);
    expect_fail(b.d, b.n, "short_data.gguf", "tensor 'blk.0.attn_q.weight': data offset 0");
    expect_fail(b.d, b.n, "short_data.gguf", "the file is truncated");
    bb_free(&b);
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "t", 1, (const uint64_t[]){1}, 0, 0xffffffffffffffe0ull);
    bb_pad(&b, 32);
    bb_f32(&b, 0);
    expect_fail(b.d, b.n, "hugeoff.gguf", "beyond the end");
    bb_free(&b);
    /* tensor infos present but the data section would start past the end */
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "t", 1, (const uint64_t[]){0}, 0, 0);
    if (b.n % 32 == 0) bb_u8(&b, 0); /* make sure padding is needed */
    expect_fail(b.d, b.n, "nodata.gguf", "data section");
    bb_free(&b);
    /* degenerate inputs */
    expect_fail(NULL, 0, "null.gguf", NULL);
    expect_fail("", 0, "zero.gguf", NULL);
}

/* Exercise every accessor on a parsed (possibly mutated) file: nothing may crash. */
static void poke_all(gguf_ctx *c) {
    for (size_t i = 0; i < gguf_n_kv(c); i++) {
        const char *k = gguf_key_name(c, i);
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        float f;
        int bo;
        const char *s;
        size_t n;
        gguf_type et;
        const void *d;
        (void)gguf_get_u32(c, k, &u32);
        (void)gguf_get_i32(c, k, &i32);
        (void)gguf_get_u64(c, k, &u64);
        (void)gguf_get_f32(c, k, &f);
        (void)gguf_get_bool(c, k, &bo);
        (void)gguf_get_str(c, k, &s, &n);
        if (gguf_get_arr_str_n(c, k, &n) == 0)
            for (size_t j = 0; j < n && j < 64; j++) {
                size_t l;
                if (gguf_get_arr_str(c, k, j, &s, &l) == 0 && l) {
                    volatile char x = s[l - 1];
                    (void)x;
                }
            }
        if (gguf_get_arr_data(c, k, &et, &n, &d) == 0 && n) {
            volatile uint8_t x = ((const uint8_t *)d)[0];
            (void)x;
        }
    }
    for (size_t i = 0; i < gguf_n_tensors(c); i++) {
        gguf_tensor_info ti;
        if (gguf_tensor_info_at(c, i, &ti)) continue;
        if ((ti.type == GGUF_DTYPE_F32 || ti.type == GGUF_DTYPE_F16) && ti.nbytes <= (1u << 20)) {
            size_t n = (size_t)ti.nbytes / (ti.type == GGUF_DTYPE_F32 ? 4 : 2);
            float *out = malloc((n ? n : 1) * sizeof(float));
            (void)gguf_read_tensor_f32(c, ti.name, out, n, ti.ne, ti.n_dims);
            free(out);
        }
    }
}

static void test_mutations(void) {
    float buf[16];
    const char *path = tmp_path("mut.gguf");
    CHECK_OK(write_sample(path, buf, 16));
    char *d;
    size_t n;
    if (rt_read_file(path, &d, &n)) {
        CHECK(0);
        return;
    }
    gguf_ctx *c0 = expect_ok(d, n, "mut.gguf");
    size_t meta = c0 ? gguf_data_offset(c0) : n;
    if (c0) gguf_close(c0);
    int iters = getenv("RETORT_TEST_QUICK") ? 2000 : 5000;
    if (getenv("RETORT_GGUF_FUZZ_ITERS")) iters = atoi(getenv("RETORT_GGUF_FUZZ_ITERS")); /* longer runs */
    rt_rng r;
    rt_rng_seed(&r, 20240601);
    int ok = 0, failed = 0, unnamed = 0;
    static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x04, 0x08, 0x0c, 0x20, 0x3f,
                                          0x40, 0x7f, 0x80, 0xfe, 0xff};
    for (int it = 0; it < iters; it++) {
        uint8_t *m = malloc(n);
        memcpy(m, d, n);
        int k = 1 + (int)rt_rng_below(&r, 8);
        for (int j = 0; j < k; j++) {
            size_t pos = rt_rng_below(&r, 10) < 8 ? rt_rng_below(&r, meta) : rt_rng_below(&r, n);
            m[pos] = rt_rng_below(&r, 2) ? (uint8_t)rt_rng_u32(&r)
                                          : interesting[rt_rng_below(&r, RT_ARRAY_LEN(interesting))];
        }
        size_t len = rt_rng_below(&r, 10) == 0 ? rt_rng_below(&r, n + 1) : n;
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, m, len);
        free(m);
        gguf_ctx *c = NULL;
        rt_err_clear();
        if (gguf_open_memory(&c, exact, len, "mutant.gguf") == 0) {
            ok++;
            poke_all(c);
            gguf_close(c);
        } else {
            failed++;
            if (!strstr(rt_errmsg(), "mutant.gguf")) {
                if (unnamed++ < 3) fprintf(stderr, "  unnamed error: %s\n", rt_errmsg());
            }
        }
        free(exact);
    }
    CHECK(unnamed == 0);
    CHECK(ok > 0 && failed > 0);
    printf("mutations: %d parsed, %d rejected cleanly\n", ok, failed);
    free(d);
}

/* ---------------------------------------------------------------- tensor reads, writer errors */

static void test_read_tensor_refusals(void) {
    float buf[16];
    const char *path = tmp_path("refuse.gguf");
    CHECK_OK(write_sample(path, buf, 16));
    gguf_ctx *c = NULL;
    CHECK_OK(gguf_open(&c, path));
    if (!c) return;
    float out[16];
    CHECK(gguf_read_tensor_f32(c, "w1", out, 5, NULL, 0) == -1);
    CHECK(strstr(rt_errmsg(), "tensor 'w1' has 6 elements (shape [3, 2]); expected 5"));
    CHECK(gguf_read_tensor_f32(c, "w1", out, 6, (const uint64_t[]){2, 3}, 2) == -1);
    CHECK(strstr(rt_errmsg(), "tensor 'w1' has shape [3, 2]") && strstr(rt_errmsg(), "expected [2, 3]"));
    CHECK(gguf_read_tensor_f32(c, "w1", out, 6, (const uint64_t[]){6}, 1) == -1);
    CHECK_OK(gguf_read_tensor_f32(c, "w1", out, 6, (const uint64_t[]){3, 2, 1}, 3)); /* trailing 1s match */
    CHECK(out[5] == buf[5]);
    CHECK(gguf_read_tensor_f32(c, "w1", out, 6, (const uint64_t[]){3, 2, 1, 1, 1}, 5) == -1);
    CHECK(gguf_read_tensor_f32(c, "nope", out, 6, NULL, 0) == -1);
    CHECK(strstr(rt_errmsg(), "tensor 'nope' not found") && strstr(rt_errmsg(), path));
    CHECK_OK(gguf_read_tensor_f32(c, "w2", out, 5, NULL, 0));
    for (int i = 0; i < 5; i++) CHECK(out[i] == buf[i]); /* exactly representable in f16 */
    gguf_close(c);
}

static void test_writer_errors(void) {
    gguf_writer *w = gguf_writer_new();
    float x[4] = {1, 2, 3, 4};
    CHECK_OK(gguf_add_tensor(w, "t", GGUF_DTYPE_F32, 1, (const uint64_t[]){4}, x));
    CHECK(gguf_add_tensor(w, "t", GGUF_DTYPE_F32, 1, (const uint64_t[]){4}, x) == -1);
    CHECK(strstr(rt_errmsg(), "'t' added twice"));
    CHECK(gguf_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123",
                          GGUF_DTYPE_F32, 1, (const uint64_t[]){4}, x) == -1);
    CHECK(gguf_add_tensor(w, "", GGUF_DTYPE_F32, 1, (const uint64_t[]){4}, x) == -1);
    CHECK(gguf_add_tensor(w, "u", GGUF_DTYPE_F32, 0, (const uint64_t[]){4}, x) == -1);
    CHECK(gguf_add_tensor(w, "u", GGUF_DTYPE_F32, 5, (const uint64_t[]){1, 1, 1, 1, 4}, x) == -1);
    CHECK(gguf_add_tensor(w, "u", GGUF_DTYPE_F32, 1, (const uint64_t[]){0}, x) == -1);
    CHECK(gguf_add_tensor(w, "u", (gguf_dtype)3, 1, (const uint64_t[]){32}, x) == -1);
    CHECK(strstr(rt_errmsg(), "q4_1"));
    CHECK(gguf_add_tensor(w, "u", GGUF_DTYPE_Q4_K, 1, (const uint64_t[]){32}, x) == -1); /* rows < 256 */
    CHECK(strstr(rt_errmsg(), "multiple of 256"));
    CHECK(gguf_add_tensor(w, "u", GGUF_DTYPE_F32, 1, (const uint64_t[]){4}, NULL) == -1);
    CHECK(gguf_add_tensor(w, "u", GGUF_DTYPE_F32, 2, (const uint64_t[]){1ull << 62, 1ull << 62}, x) == -1);
    CHECK(gguf_set_u32(w, "", 1) == -1);
    CHECK(gguf_set_str(w, "k", NULL) == -1);
    CHECK(gguf_set_arr_data(w, "k", GGUF_TYPE_STRING, x, 1) == -1);
    CHECK(gguf_set_arr_data(w, "k", GGUF_TYPE_ARRAY, x, 1) == -1);
    CHECK(gguf_set_arr_data(w, "k", GGUF_TYPE_BOOL, (const uint8_t[]){0, 2}, 2) == -1);
    CHECK(gguf_set_arr_str(w, "k", (const char *const[]){NULL}, (const size_t[]){3}, 1) == -1);
    CHECK(gguf_writer_write(w, "/nonexistent-dir/x.gguf") == -1);
    CHECK(strstr(rt_errmsg(), "/nonexistent-dir/x.gguf") != NULL);
    /* general.alignment is honoured when valid and refused when not */
    CHECK_OK(gguf_set_u32(w, "general.alignment", 64));
    const char *p = tmp_path("align64.gguf");
    CHECK_OK(gguf_writer_write(w, p));
    gguf_ctx *c = NULL;
    CHECK_OK(gguf_open(&c, p));
    if (c) {
        CHECK(gguf_alignment(c) == 64 && gguf_data_offset(c) % 64 == 0);
        float y[4];
        CHECK_OK(gguf_read_tensor_f32(c, "t", y, 4, NULL, 0));
        CHECK(y[3] == 4);
        gguf_close(c);
    }
    CHECK_OK(gguf_set_u32(w, "general.alignment", 48));
    CHECK(gguf_writer_write(w, tmp_path("align48.gguf")) == -1);
    CHECK(!rt_file_exists(tmp_path("align48.gguf")));
    gguf_writer_free(w);
    gguf_writer_free(NULL);
    gguf_close(NULL);
    /* gguf_open on things that are not GGUF files */
    CHECK(gguf_open(&c, "/nonexistent/model.gguf") == -1 && c == NULL);
    CHECK(strstr(rt_errmsg(), "/nonexistent/model.gguf"));
    CHECK(gguf_open(&c, tl_tmpdir()) == -1);
    const char *e = tmp_path("empty.gguf");
    CHECK_OK(rt_write_file_atomic(e, "", 0));
    CHECK(gguf_open(&c, e) == -1 && strstr(rt_errmsg(), "empty"));
}

/* ---------------------------------------------------------------- tiny llama for llama.cpp */

/* GPT-2's byte -> printable code point map (bytes that are printable and not space map to
 * themselves, the rest to 256, 257, ... in byte order). */
static uint32_t byte_to_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (uint32_t)b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256u + (uint32_t)n;
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    o[0] = (char)(0xc0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

enum { TL_VOCAB = 260, TL_DIM = 64, TL_LAYERS = 2, TL_HEADS = 4, TL_KV_HEADS = 2, TL_FF = 96, TL_CTX = 128 };
#define TL_HEAD_DIM (TL_DIM / TL_HEADS)

static int set_tiny_llama_kv(gguf_writer *w, const char *const *toks, const int32_t *types,
                             const char *const *merges) {
    int rc = gguf_set_str(w, "general.architecture", "llama") ||
             gguf_set_str(w, "general.name", "retort-tiny-llama") ||
             gguf_set_u32(w, "llama.context_length", TL_CTX) ||
             gguf_set_u32(w, "llama.embedding_length", TL_DIM) ||
             gguf_set_u32(w, "llama.block_count", TL_LAYERS) ||
             gguf_set_u32(w, "llama.feed_forward_length", TL_FF) ||
             gguf_set_u32(w, "llama.attention.head_count", TL_HEADS) ||
             gguf_set_u32(w, "llama.attention.head_count_kv", TL_KV_HEADS) ||
             gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f) ||
             gguf_set_f32(w, "llama.rope.freq_base", 10000.0f) ||
             gguf_set_u32(w, "llama.rope.dimension_count", TL_HEAD_DIM) ||
             gguf_set_u32(w, "llama.vocab_size", TL_VOCAB) ||
             gguf_set_str(w, "tokenizer.ggml.model", "gpt2") || gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2") ||
             gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, TL_VOCAB) ||
             gguf_set_arr_data(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, TL_VOCAB) ||
             gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 3) ||
             gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 259) ||
             gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 259);
    return rc ? -1 : 0;
}

/* Writes PATH (the GGUF), PATH.vocab.gguf (same metadata, no tensors) and PATH.ref.bin:
 * 8 int32 (vocab, dim, layers, heads, kv_heads, ff, ctx, head_dim), 2 float32 (rms eps,
 * rope base), then float32 tensors in the order written below, each as the row-major matrix
 * (out, in) that y = W x uses. */
static int write_tiny_llama(const char *path) {
    rt_rng r;
    rt_rng_seed(&r, 7);
    size_t kvd = (size_t)TL_KV_HEADS * TL_HEAD_DIM;
    struct {
        char name[48];
        uint32_t n_dims;
        uint64_t ne[2];
        float *d;
    } t[3 + 9 * TL_LAYERS];
    size_t nt = 0;
#define TL_ADD(nm, rows, cols, scale, offset)                                                    \
    do {                                                                                         \
        snprintf(t[nt].name, sizeof t[nt].name, "%s", nm);                                       \
        size_t cnt = (size_t)(rows) * (cols);                                                    \
        t[nt].n_dims = (rows) == 1 ? 1 : 2;                                                      \
        t[nt].ne[0] = (cols);                                                                    \
        t[nt].ne[1] = (rows);                                                                    \
        t[nt].d = malloc(cnt * sizeof(float));                                                   \
        for (size_t q = 0; q < cnt; q++) t[nt].d[q] = (float)((offset) + (scale)*rt_rng_normal(&r)); \
        nt++;                                                                                    \
    } while (0)
    TL_ADD("token_embd.weight", TL_VOCAB, TL_DIM, 1.0, 0.0);
    for (int l = 0; l < TL_LAYERS; l++) {
        char nm[48];
        double s = 1.0 / sqrt((double)TL_DIM);
#define TL_L(suffix, rows, cols, scale, offset)                            \
    snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, suffix);                \
    TL_ADD(nm, rows, cols, scale, offset)
        TL_L("attn_norm", 1, TL_DIM, 0.1, 1.0);
        TL_L("attn_q", TL_DIM, TL_DIM, s, 0.0);
        TL_L("attn_k", kvd, TL_DIM, s, 0.0);
        TL_L("attn_v", kvd, TL_DIM, s, 0.0);
        TL_L("attn_output", TL_DIM, TL_DIM, s, 0.0);
        TL_L("ffn_norm", 1, TL_DIM, 0.1, 1.0);
        TL_L("ffn_gate", TL_FF, TL_DIM, s, 0.0);
        TL_L("ffn_up", TL_FF, TL_DIM, s, 0.0);
        TL_L("ffn_down", TL_DIM, TL_FF, 1.0 / sqrt((double)TL_FF), 0.0);
#undef TL_L
    }
    TL_ADD("output_norm.weight", 1, TL_DIM, 0.1, 1.0);
    TL_ADD("output.weight", TL_VOCAB, TL_DIM, 2.0 / sqrt((double)TL_DIM), 0.0);
#undef TL_ADD

    /* tokenizer: 256 byte tokens, three merges, one control token */
    char tokbuf[TL_VOCAB][16];
    const char *toks[TL_VOCAB];
    int32_t types[TL_VOCAB];
    for (int b = 0; b < 256; b++) {
        size_t k = utf8_put(tokbuf[b], byte_to_cp(b));
        tokbuf[b][k] = '\0';
        toks[b] = tokbuf[b];
        types[b] = 1; /* LLAMA_TOKEN_TYPE_NORMAL */
    }
    toks[256] = "Ġt";
    toks[257] = "he";
    toks[258] = "Ġthe";
    toks[259] = "<|endoftext|>";
    for (int i = 256; i < 259; i++) types[i] = 1;
    types[259] = 3; /* LLAMA_TOKEN_TYPE_CONTROL */
    const char *merges[] = {"Ġ t", "h e", "Ġt he"};

    gguf_writer *w = gguf_writer_new();
    int rc = !w || set_tiny_llama_kv(w, toks, types, merges);
    for (size_t i = 0; !rc && i < nt; i++)
        rc = gguf_add_tensor(w, t[i].name, GGUF_DTYPE_F32, t[i].n_dims, t[i].ne, t[i].d);
    rc = rc || gguf_writer_write(w, path);
    gguf_writer_free(w);
    /* the same metadata without any tensors: a tokenizer-only file for vocab-only loading */
    char vp[1024];
    snprintf(vp, sizeof vp, "%s.vocab.gguf", path);
    w = rc ? NULL : gguf_writer_new();
    rc = rc || !w || set_tiny_llama_kv(w, toks, types, merges) || gguf_writer_write(w, vp);
    gguf_writer_free(w);

    if (!rc) {
        rt_buf b = {0};
        int32_t cfg[8] = {TL_VOCAB, TL_DIM, TL_LAYERS, TL_HEADS, TL_KV_HEADS, TL_FF, TL_CTX, TL_HEAD_DIM};
        float fc[2] = {1e-5f, 10000.0f};
        rc = rt_buf_append(&b, cfg, sizeof cfg) || rt_buf_append(&b, fc, sizeof fc);
        for (size_t i = 0; !rc && i < nt; i++)
            rc = rt_buf_append(&b, t[i].d, (size_t)(t[i].ne[0] * t[i].ne[1]) * sizeof(float));
        char rp[1024];
        snprintf(rp, sizeof rp, "%s.ref.bin", path);
        rc = rc || rt_write_file_atomic(rp, b.data, b.len);
        rt_buf_free(&b);
    }
    for (size_t i = 0; i < nt; i++) free(t[i].d);
    return rc ? -1 : 0;
}

static void test_tiny_llama(void) {
    const char *out = getenv("RETORT_GGUF_TINY_LLAMA");
    const char *path = out && *out ? out : tmp_path("tiny-llama.gguf");
    CHECK_OK(write_tiny_llama(path));
    gguf_ctx *c = NULL;
    CHECK_OK(gguf_open(&c, path));
    if (!c) return;
    CHECK(gguf_n_tensors(c) == 3 + 9 * TL_LAYERS);
    size_t n;
    CHECK_OK(gguf_get_arr_str_n(c, "tokenizer.ggml.tokens", &n));
    CHECK(n == TL_VOCAB);
    const char *s;
    CHECK_OK(gguf_get_arr_str(c, "tokenizer.ggml.tokens", 32, &s, &n));
    CHECK(str_eq(s, n, "Ġ")); /* the space byte */
    CHECK_OK(gguf_get_arr_str(c, "tokenizer.ggml.tokens", 10, &s, &n));
    CHECK(str_eq(s, n, "Ċ")); /* newline */
    gguf_tensor_info ti;
    int64_t k = gguf_find_tensor(c, "blk.0.attn_k.weight");
    CHECK(k >= 0 && gguf_tensor_info_at(c, (size_t)k, &ti) == 0);
    CHECK(ti.ne[0] == TL_DIM && ti.ne[1] == TL_KV_HEADS * TL_HEAD_DIM);
    gguf_close(c);
    char vp[1024];
    snprintf(vp, sizeof vp, "%s.vocab.gguf", path);
    CHECK_OK(gguf_open(&c, vp));
    if (c) {
        CHECK(gguf_n_tensors(c) == 0 && gguf_find_key(c, "tokenizer.ggml.merges") >= 0);
        gguf_close(c);
    }
    if (out && *out) printf("wrote %s, %s.vocab.gguf and %s.ref.bin\n", path, path, path);
}

TEST_MAIN("gguf", TEST_CASE(test_roundtrip_kv), TEST_CASE(test_roundtrip_tensors),
          TEST_CASE(test_f16_exhaustive), TEST_CASE(test_f32_to_f16_rounding), TEST_CASE(test_f16_numpy),
          TEST_CASE(test_hand_assembled), TEST_CASE(test_truncation), TEST_CASE(test_malformed),
          TEST_CASE(test_mutations), TEST_CASE(test_read_tensor_refusals), TEST_CASE(test_writer_errors),
          TEST_CASE(test_tiny_llama))
