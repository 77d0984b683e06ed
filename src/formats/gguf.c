/*
 * gguf.c — GGUF v3 (and v2) reader and writer; the contract is gguf.h.
 *
 * Reader: the file is mapped read-only (or a caller's buffer is borrowed) and parsed once by
 * a cursor that checks every length, count and offset against the bytes that remain before it
 * uses them, so a hostile file can make it fail but never read out of bounds, allocate without
 * bound or crash. Memory grows only with what has actually been parsed (arrays are indexed
 * after they were walked), so a header claiming 2^63 strings fails on the first missing byte.
 * Values are not copied: getters decode little-endian bytes straight from the mapping.
 * Keys and tensor names are copied (NUL-terminated) and hashed for lookup.
 *
 * Writer: key/values are serialised when set (so replacing a key keeps its position); tensors
 * keep a borrowed pointer to the caller's F32 data until gguf_writer_write, which streams the
 * file through rt_atomic_open/commit, converting F16 on the fly.
 *
 * Quantized types: every ggml type's block size is known so that byte extents are checked;
 * the types src/kernels/quant.h implements are decoded on read and encoded on write there.
 * What this is not: no big-endian files, no llama semantics.
 * Assumes a little-endian host for tensor payloads (checked at compile time).
 */
#include "gguf.h"

#include "../base/base.h"
#include "../kernels/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c copies tensor payloads as host floats; it supports little-endian hosts only"
#endif

#define GGUF_MAX_KEY_LEN 65535u /* the spec's limit on key length */
#define GGUF_MAX_NAME_LEN 63u   /* llama.cpp's GGML_MAX_NAME (64) minus the NUL */

/* ---------------------------------------------------------------- type tables */

static const char *const gguf_type_names[GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

const char *gguf_type_name(gguf_type t) {
    if ((unsigned)t < GGUF_TYPE_COUNT) return gguf_type_names[t];
    return "invalid";
}

/* Byte size of a fixed-size value type; 0 for strings, arrays and invalid ids. */
static size_t gguf_type_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

/* ggml tensor types: name, elements per block, bytes per block (from ggml-common.h's
 * block structs). Ids with no entry (removed types, future types) have blck == 0. */
typedef struct {
    const char *name;
    uint32_t blck;
    uint32_t size;
} gguf_dtype_traits;

static const gguf_dtype_traits gguf_dtypes[] = {
    [0] = {"f32", 1, 4},         [1] = {"f16", 1, 2},         [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},      [6] = {"q5_0", 32, 22},      [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},      [9] = {"q8_1", 32, 36},      [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110},   [12] = {"q4_K", 256, 144},   [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},   [15] = {"q8_K", 256, 292},   [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74},  [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},   [21] = {"iq3_s", 256, 110},  [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},         [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},        [27] = {"i64", 1, 8},        [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},   [30] = {"bf16", 1, 2},       [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},   [39] = {"mxfp4", 32, 17},    [40] = {"nvfp4", 64, 36},
    [41] = {"q1_0", 128, 18},    [42] = {"q2_0", 64, 18},
};

static const gguf_dtype_traits *gguf_dtype_traits_of(uint32_t type) {
    if (type >= RT_ARRAY_LEN(gguf_dtypes) || gguf_dtypes[type].blck == 0) return NULL;
    return &gguf_dtypes[type];
}

const char *gguf_dtype_name(uint32_t type) {
    const gguf_dtype_traits *t = gguf_dtype_traits_of(type);
    if (t) return t->name;
    static _Thread_local char buf[32];
    snprintf(buf, sizeof buf, "type %" PRIu32, type);
    return buf;
}

/* ---------------------------------------------------------------- f16 */

/* the conversions live with the other encodings in src/kernels/quant.c */
float gguf_f16_to_f32(uint16_t h) { return quant_f16_to_f32(h); }
uint16_t gguf_f32_to_f16(float f) { return quant_f32_to_f16(f); }

/* ---------------------------------------------------------------- name index */

/* Open-addressing hash from NUL-terminated name to insertion index; the names are owned by
 * the caller and must outlive the index. */
typedef struct {
    size_t *slots;       /* cap entries: index+1, 0 = empty */
    size_t cap;          /* power of two, or 0 */
    const char **names;  /* names[i] for i < n */
    size_t n;
    size_t names_cap;
} name_index;

static void ni_free(name_index *ni) {
    free(ni->slots);
    free(ni->names);
    memset(ni, 0, sizeof *ni);
}

static int64_t ni_find(const name_index *ni, const char *name) {
    if (!ni->cap) return -1;
    size_t mask = ni->cap - 1;
    size_t h = (size_t)rt_fnv1a64(name, strlen(name)) & mask;
    for (;;) {
        size_t s = ni->slots[h];
        if (!s) return -1;
        if (strcmp(ni->names[s - 1], name) == 0) return (int64_t)(s - 1);
        h = (h + 1) & mask;
    }
}

static void ni_place(size_t *slots, size_t cap, const char *name, size_t idx) {
    size_t mask = cap - 1;
    size_t h = (size_t)rt_fnv1a64(name, strlen(name)) & mask;
    while (slots[h]) h = (h + 1) & mask;
    slots[h] = idx + 1;
}

/* Append name as index ni->n (the caller has checked it is not present). */
static int ni_add(name_index *ni, const char *name) {
    if (RT_GROW(ni->names, ni->names_cap, ni->n + 1, "a name index")) return -1;
    if ((ni->n + 1) * 2 > ni->cap) {
        size_t nc = ni->cap ? ni->cap * 2 : 32;
        size_t *ns = rt_calloc(nc, sizeof *ns, "a name hash table");
        if (!ns) return -1;
        for (size_t i = 0; i < ni->n; i++) ni_place(ns, nc, ni->names[i], i);
        free(ni->slots);
        ni->slots = ns;
        ni->cap = nc;
    }
    ni->names[ni->n] = name;
    ni_place(ni->slots, ni->cap, name, ni->n);
    ni->n++;
    return 0;
}

/* ---------------------------------------------------------------- little-endian loads */

static uint16_t ld_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t ld_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t ld_u64(const uint8_t *p) { return (uint64_t)ld_u32(p) | ((uint64_t)ld_u32(p + 4) << 32); }

/* Printable copy of an untrusted name for error messages (escapes, truncated). */
static const char *printable(const char *s, size_t len, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        }
        if (i + 1 < len && o + 8 >= cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* ---------------------------------------------------------------- reader */

typedef struct {
    char *key;          /* NUL-terminated copy */
    gguf_type type;
    gguf_type arr_type; /* arrays only */
    uint64_t n;         /* arrays: element count */
    size_t off;         /* file offset of the value (strings: their length field; arrays: element 0) */
    uint64_t *str_offs; /* arrays of strings: file offset of each element's length field */
} rd_kv;

typedef struct {
    gguf_tensor_info info; /* info.name points at name */
    char *name;
    uint64_t offset;       /* relative to the data section */
} rd_tensor;

struct gguf_ctx {
    char *path;
    const uint8_t *base;
    size_t size;
    int mapped;
    uint32_t version;
    size_t alignment;
    size_t data_start;
    rd_kv *kv;
    size_t n_kv, cap_kv;
    name_index kv_index;
    rd_tensor *t;
    size_t n_t, cap_t;
    name_index t_index;
};

typedef struct {
    const uint8_t *p;
    size_t size;
    size_t pos;
    const char *file;
} cursor;

static int cur_need(cursor *c, uint64_t n, const char *what) {
    size_t left = c->size - c->pos;
    if (n > left)
        return RT_FAIL("%s: %s at offset %zu needs %" PRIu64 " bytes but only %zu remain; the file is "
                       "truncated or corrupt",
                       c->file, what, c->pos, n, left);
    return 0;
}

static int cur_u32(cursor *c, uint32_t *v, const char *what) {
    if (cur_need(c, 4, what)) return -1;
    *v = ld_u32(c->p + c->pos);
    c->pos += 4;
    return 0;
}

static int cur_u64(cursor *c, uint64_t *v, const char *what) {
    if (cur_need(c, 8, what)) return -1;
    *v = ld_u64(c->p + c->pos);
    c->pos += 8;
    return 0;
}

/* A GGUF string: u64 length then bytes. Returns its byte offset and length. */
static int cur_str(cursor *c, size_t *off, size_t *len, const char *what) {
    uint64_t n;
    if (cur_u64(c, &n, what)) return -1;
    if (n > c->size - c->pos)
        return RT_FAIL("%s: %s at offset %zu: string length %" PRIu64 " exceeds the %zu bytes left in "
                       "the file; the file is truncated or corrupt",
                       c->file, what, c->pos - 8, n, c->size - c->pos);
    *off = c->pos;
    *len = (size_t)n;
    c->pos += (size_t)n;
    return 0;
}

static int check_bools(cursor *c, const char *key, size_t off, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t b = c->p[off + i];
        if (b > 1)
            return RT_FAIL("%s: key '%s': bool value %u at offset %zu is neither 0 nor 1; the file is "
                           "corrupt",
                           c->file, key, (unsigned)b, off + i);
    }
    return 0;
}

static int parse_kv(gguf_ctx *ctx, cursor *c, uint64_t i) {
    char what[96], pbuf[96];
    snprintf(what, sizeof what, "key #%" PRIu64 " name", i);
    size_t koff, klen;
    if (cur_str(c, &koff, &klen, what)) return -1;
    const char *kp = (const char *)c->p + koff;
    if (klen == 0) return RT_FAIL("%s: key #%" PRIu64 " has an empty name; the file is corrupt", c->file, i);
    if (klen > GGUF_MAX_KEY_LEN)
        return RT_FAIL("%s: key #%" PRIu64 " is %zu bytes long; GGUF keys are at most %u bytes", c->file,
                       i, klen, GGUF_MAX_KEY_LEN);
    if (memchr(kp, 0, klen))
        return RT_FAIL("%s: key #%" PRIu64 " ('%s') contains a NUL byte; the file is corrupt", c->file, i,
                       printable(kp, klen, pbuf, sizeof pbuf));
    if (RT_GROW(ctx->kv, ctx->cap_kv, ctx->n_kv + 1, "GGUF key/values")) return -1;
    rd_kv *kv = &ctx->kv[ctx->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = rt_malloc(klen + 1, "a GGUF key");
    if (!kv->key) return -1;
    memcpy(kv->key, kp, klen);
    kv->key[klen] = '\0';
    ctx->n_kv++; /* owned by ctx from here on, so it is freed on any error below */
    const char *key = printable(kp, klen, pbuf, sizeof pbuf);
    int64_t first = ni_find(&ctx->kv_index, kv->key);
    if (first >= 0) /* llama.cpp refuses these too; which value would a reader mean? */
        return RT_FAIL("%s: key '%s' appears twice (key #%" PRIu64 " at offset %zu repeats key #%" PRId64
                       "); the file is corrupt", c->file, key, i, koff - sizeof(uint64_t), first);
    if (ni_add(&ctx->kv_index, kv->key)) return -1;

    snprintf(what, sizeof what, "key '%.60s' type", key);
    uint32_t type;
    if (cur_u32(c, &type, what)) return -1;
    if (type >= GGUF_TYPE_COUNT)
        return RT_FAIL("%s: key '%s' has unknown value type %" PRIu32 " (valid: 0..%d); the file is corrupt "
                       "or from a newer GGUF version",
                       c->file, key, type, GGUF_TYPE_COUNT - 1);
    kv->type = (gguf_type)type;
    snprintf(what, sizeof what, "key '%.60s' value", key);
    if (type == GGUF_TYPE_STRING) {
        kv->off = c->pos;
        size_t so, sl;
        return cur_str(c, &so, &sl, what);
    }
    if (type != GGUF_TYPE_ARRAY) {
        size_t es = gguf_type_size(type);
        if (cur_need(c, es, what)) return -1;
        kv->off = c->pos;
        if (type == GGUF_TYPE_BOOL && check_bools(c, kv->key, c->pos, 1)) return -1;
        c->pos += es;
        return 0;
    }
    /* array: element type, count, elements */
    uint32_t et;
    snprintf(what, sizeof what, "key '%.60s' array element type", key);
    if (cur_u32(c, &et, what)) return -1;
    if (et == GGUF_TYPE_ARRAY)
        return RT_FAIL("%s: key '%s' is an array of arrays; nested arrays are not supported (llama.cpp "
                       "refuses them too)",
                       c->file, key);
    if (et >= GGUF_TYPE_COUNT)
        return RT_FAIL("%s: key '%s' is an array of unknown element type %" PRIu32 " (valid: 0..%d); the "
                       "file is corrupt",
                       c->file, key, et, GGUF_TYPE_COUNT - 1);
    kv->arr_type = (gguf_type)et;
    uint64_t n;
    snprintf(what, sizeof what, "key '%.60s' array length", key);
    if (cur_u64(c, &n, what)) return -1;
    kv->n = n;
    kv->off = c->pos;
    size_t left = c->size - c->pos;
    if (et != GGUF_TYPE_STRING) {
        size_t es = gguf_type_size(et);
        if (n > left / es)
            return RT_FAIL("%s: key '%s': array of %" PRIu64 " %s values (%zu bytes each) does not fit in "
                           "the %zu bytes left in the file; the file is truncated or corrupt",
                           c->file, key, n, gguf_type_name((gguf_type)et), es, left);
        if (et == GGUF_TYPE_BOOL && check_bools(c, kv->key, c->pos, (size_t)n)) return -1;
        c->pos += (size_t)n * es;
        return 0;
    }
    /* strings: each needs at least its 8-byte length, which bounds n before any work */
    if (n > left / 8)
        return RT_FAIL("%s: key '%s': array of %" PRIu64 " strings cannot fit in the %zu bytes left in the "
                       "file; the file is truncated or corrupt",
                       c->file, key, n, left);
    size_t start = c->pos;
    for (uint64_t j = 0; j < n; j++) {
        snprintf(what, sizeof what, "key '%.50s' string #%" PRIu64, key, j);
        size_t so, sl;
        if (cur_str(c, &so, &sl, what)) return -1;
    }
    /* walked and valid: now index it (n*8 <= bytes consumed, so this is bounded by the file) */
    kv->str_offs = rt_malloc_array((size_t)n, sizeof *kv->str_offs, "a GGUF string array index");
    if (!kv->str_offs) return -1;
    size_t p = start;
    for (uint64_t j = 0; j < n; j++) {
        kv->str_offs[j] = p;
        p += 8 + (size_t)ld_u64(c->p + p);
    }
    return 0;
}

static int parse_tensor_info(gguf_ctx *ctx, cursor *c, uint64_t i) {
    char what[96], pbuf[96];
    snprintf(what, sizeof what, "tensor #%" PRIu64 " name", i);
    size_t noff, nlen;
    if (cur_str(c, &noff, &nlen, what)) return -1;
    const char *np = (const char *)c->p + noff;
    const char *pname = printable(np, nlen, pbuf, sizeof pbuf);
    if (nlen == 0) return RT_FAIL("%s: tensor #%" PRIu64 " has an empty name; the file is corrupt", c->file, i);
    if (nlen > GGUF_MAX_NAME_LEN)
        return RT_FAIL("%s: tensor #%" PRIu64 " name '%s' is %zu bytes; names are at most %u bytes "
                       "(llama.cpp's GGML_MAX_NAME)",
                       c->file, i, pname, nlen, GGUF_MAX_NAME_LEN);
    if (memchr(np, 0, nlen))
        return RT_FAIL("%s: tensor #%" PRIu64 " name '%s' contains a NUL byte; the file is corrupt", c->file,
                       i, pname);
    if (RT_GROW(ctx->t, ctx->cap_t, ctx->n_t + 1, "GGUF tensor infos")) return -1;
    rd_tensor *t = &ctx->t[ctx->n_t];
    memset(t, 0, sizeof *t);
    t->name = rt_malloc(nlen + 1, "a tensor name");
    if (!t->name) return -1;
    memcpy(t->name, np, nlen);
    t->name[nlen] = '\0';
    t->info.name = t->name;
    ctx->n_t++;
    if (ni_find(&ctx->t_index, t->name) >= 0)
        return RT_FAIL("%s: tensor '%s' appears twice (tensor #%" PRIu64 "); the file is corrupt", c->file,
                       pname, i);
    if (ni_add(&ctx->t_index, t->name)) return -1;

    snprintf(what, sizeof what, "tensor '%.60s' n_dims", pname);
    uint32_t nd;
    if (cur_u32(c, &nd, what)) return -1;
    if (nd > GGUF_MAX_DIMS)
        return RT_FAIL("%s: tensor '%s' has %" PRIu32 " dimensions; GGUF allows at most %d", c->file, pname,
                       nd, GGUF_MAX_DIMS);
    t->info.n_dims = nd;
    uint64_t nelem = 1;
    int overflow = 0;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->info.ne[d] = 1;
        if (d >= nd) continue;
        snprintf(what, sizeof what, "tensor '%.60s' ne[%" PRIu32 "]", pname, d);
        if (cur_u64(c, &t->info.ne[d], what)) return -1;
        if (t->info.ne[d] > (uint64_t)INT64_MAX)
            return RT_FAIL("%s: tensor '%s' ne[%" PRIu32 "] = %" PRIu64 " is negative as int64 (ggml's "
                           "type); the file is corrupt",
                           c->file, pname, d, t->info.ne[d]);
    }
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = t->info.ne[d];
        if (ne == 0) {
            nelem = 0;
            overflow = 0;
            break;
        }
        if (nelem > (uint64_t)INT64_MAX / ne) overflow = 1;
        else nelem *= ne;
    }
    if (overflow)
        return RT_FAIL("%s: tensor '%s' shape [%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 "] has more "
                       "than 2^63 elements; the file is corrupt",
                       c->file, pname, t->info.ne[0], t->info.ne[1], t->info.ne[2], t->info.ne[3]);

    snprintf(what, sizeof what, "tensor '%.60s' type", pname);
    if (cur_u32(c, &t->info.type, what)) return -1;
    const gguf_dtype_traits *tr = gguf_dtype_traits_of(t->info.type);
    t->info.nbytes = 0;
    if (tr) {
        if (t->info.ne[0] % tr->blck != 0)
            return RT_FAIL("%s: tensor '%s' of type %s has %" PRIu64 " elements per row, not a multiple of "
                           "its block size %" PRIu32 "; the file is corrupt",
                           c->file, pname, tr->name, t->info.ne[0], tr->blck);
        uint64_t blocks = nelem / tr->blck;
        if (blocks > UINT64_MAX / tr->size || blocks * tr->size > SIZE_MAX)
            return RT_FAIL("%s: tensor '%s' byte size overflows; the file is corrupt", c->file, pname);
        t->info.nbytes = blocks * tr->size;
    }
    snprintf(what, sizeof what, "tensor '%.60s' data offset", pname);
    return cur_u64(c, &t->offset, what);
}

typedef struct {
    uint64_t start, end;
    size_t idx;
} extent;

static int extent_cmp(const void *a, const void *b) {
    const extent *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static int check_tensor_data(gguf_ctx *ctx) {
    char pbuf[96], pbuf2[96];
    const char *f = ctx->path;
    if (ctx->n_t == 0) return 0;
    size_t data_size = ctx->size - ctx->data_start;
    for (size_t i = 0; i < ctx->n_t; i++) {
        rd_tensor *t = &ctx->t[i];
        const char *pname = printable(t->name, strlen(t->name), pbuf, sizeof pbuf);
        if (t->offset % ctx->alignment != 0)
            return RT_FAIL("%s: tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %zu; "
                           "the file is corrupt",
                           f, pname, t->offset, ctx->alignment);
        if (t->offset > data_size || t->info.nbytes > data_size - t->offset)
            return RT_FAIL("%s: tensor '%s': data offset %" PRIu64 " (file offset %" PRIu64 ") + %" PRIu64
                           " bytes runs beyond the end of the file (size %zu); the file is truncated",
                           f, pname, t->offset, (uint64_t)ctx->data_start + t->offset, t->info.nbytes,
                           ctx->size);
        t->info.data = ctx->base + ctx->data_start + (size_t)t->offset;
    }
    extent *ex = rt_malloc_array(ctx->n_t, sizeof *ex, "tensor extents");
    if (!ex) return -1;
    for (size_t i = 0; i < ctx->n_t; i++) {
        ex[i].start = ctx->t[i].offset;
        ex[i].end = ctx->t[i].offset + ctx->t[i].info.nbytes;
        ex[i].idx = i;
    }
    qsort(ex, ctx->n_t, sizeof *ex, extent_cmp);
    int rc = 0;
    for (size_t i = 1; i < ctx->n_t; i++) {
        if (ex[i].start < ex[i - 1].end) {
            const char *a = ctx->t[ex[i - 1].idx].name, *b = ctx->t[ex[i].idx].name;
            rc = RT_FAIL("%s: tensors '%s' (bytes %" PRIu64 "..%" PRIu64 ") and '%s' (from %" PRIu64 ") "
                         "overlap in the data section; the file is corrupt",
                         f, printable(a, strlen(a), pbuf, sizeof pbuf), ex[i - 1].start, ex[i - 1].end,
                         printable(b, strlen(b), pbuf2, sizeof pbuf2), ex[i].start);
            break;
        }
    }
    free(ex);
    return rc;
}

static int parse(gguf_ctx *ctx) {
    cursor c = {ctx->base, ctx->size, 0, ctx->path};
    const char *f = ctx->path;
    if (ctx->size < 4)
        return RT_FAIL("%s: file is %zu bytes, too short to be a GGUF file (magic 'GGUF' expected)", f,
                       ctx->size);
    if (memcmp(ctx->base, "GGUF", 4) != 0) {
        char pbuf[48];
        return RT_FAIL("%s: not a GGUF file (magic '%s', expected 'GGUF')", f,
                       printable((const char *)ctx->base, 4, pbuf, sizeof pbuf));
    }
    c.pos = 4;
    uint32_t v;
    if (cur_u32(&c, &v, "header version")) return -1;
    if (v == 1)
        return RT_FAIL("%s: GGUF version 1 is not supported (it used 32-bit counts); re-convert the model "
                       "with a current llama.cpp",
                       f);
    if (v != 2 && v != 3) {
        if (v && (v & 0xffffu) == 0)
            return RT_FAIL("%s: GGUF version field reads %" PRIu32 ": this looks like a big-endian file; "
                           "retort reads only little-endian GGUF",
                           f, v);
        return RT_FAIL("%s: unsupported GGUF version %" PRIu32 " (retort reads versions 2 and 3)", f, v);
    }
    ctx->version = v;
    uint64_t n_t, n_kv;
    if (cur_u64(&c, &n_t, "header tensor count")) return -1;
    if (cur_u64(&c, &n_kv, "header key/value count")) return -1;
    /* Cheap plausibility bounds (smallest key/value: 8+1+4+1 bytes; smallest tensor info:
     * 8+1+4+4+8 bytes). The parse below is bounded anyway; this just fails early and clearly. */
    size_t left = c.size - c.pos;
    if (n_kv > left / 14 || n_t > left / 25 || n_kv * 14 > left - n_t * 25)
        return RT_FAIL("%s: header claims %" PRIu64 " key/values and %" PRIu64 " tensors, which cannot fit "
                       "in the %zu bytes that follow; the file is truncated or corrupt",
                       f, n_kv, n_t, left);
    for (uint64_t i = 0; i < n_kv; i++)
        if (parse_kv(ctx, &c, i)) return -1;

    ctx->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = ni_find(&ctx->kv_index, "general.alignment");
    if (ai >= 0) {
        const rd_kv *kv = &ctx->kv[ai];
        if (kv->type != GGUF_TYPE_UINT32)
            return RT_FAIL("%s: key 'general.alignment' has type %s; it must be u32", f,
                           gguf_type_name(kv->type));
        uint32_t a = ld_u32(ctx->base + kv->off);
        if (a == 0 || (a & (a - 1)) != 0)
            return RT_FAIL("%s: general.alignment = %" PRIu32 " is not a nonzero power of two", f, a);
        ctx->alignment = a;
    }
    for (uint64_t i = 0; i < n_t; i++)
        if (parse_tensor_info(ctx, &c, i)) return -1;
    /* the data section starts at the next multiple of the alignment */
    size_t pad = (ctx->alignment - c.pos % ctx->alignment) % ctx->alignment;
    if (n_t > 0 && pad > c.size - c.pos)
        return RT_FAIL("%s: the tensor data section (aligned to %zu, at offset %zu) starts beyond the end "
                       "of the file (size %zu); the file is truncated",
                       f, ctx->alignment, c.pos + pad, c.size);
    ctx->data_start = RT_MIN(c.pos + pad, c.size);
    return check_tensor_data(ctx);
}

static gguf_ctx *ctx_new(const char *name) {
    gguf_ctx *ctx = rt_calloc(1, sizeof *ctx, "a GGUF context");
    if (!ctx) return NULL;
    ctx->path = rt_strdup(name ? name : "(memory)");
    if (!ctx->path) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

int gguf_open_memory(gguf_ctx **out, const void *data, size_t len, const char *name) {
    *out = NULL;
    gguf_ctx *ctx = ctx_new(name);
    if (!ctx) return -1;
    ctx->base = data;
    ctx->size = data ? len : 0;
    if (parse(ctx)) {
        gguf_close(ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

int gguf_open(gguf_ctx **out, const char *path) {
    *out = NULL;
    int64_t fsize = 0;
    int fd = rt_open_regular(path, &fsize); /* a FIFO or directory is refused, never waited on */
    if (fd < 0) return -1;
    if (fsize <= 0) {
        close(fd);
        return RT_FAIL("%s: file is empty; not a GGUF file", path);
    }
    if ((uint64_t)fsize > SIZE_MAX) {
        close(fd);
        return RT_FAIL("%s: file too large to map", path);
    }
    size_t size = (size_t)fsize;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return RT_FAIL("%s: cannot map %zu bytes: %s", path, size, strerror(e));
    gguf_ctx *ctx = ctx_new(path);
    if (!ctx) {
        munmap(m, size);
        return -1;
    }
    ctx->base = m;
    ctx->size = size;
    ctx->mapped = 1;
    if (parse(ctx)) {
        gguf_close(ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

void gguf_close(gguf_ctx *ctx) {
    if (!ctx) return;
    for (size_t i = 0; i < ctx->n_kv; i++) {
        free(ctx->kv[i].key);
        free(ctx->kv[i].str_offs);
    }
    for (size_t i = 0; i < ctx->n_t; i++) free(ctx->t[i].name);
    free(ctx->kv);
    free(ctx->t);
    ni_free(&ctx->kv_index);
    ni_free(&ctx->t_index);
    if (ctx->mapped) munmap((void *)ctx->base, ctx->size);
    free(ctx->path);
    free(ctx);
}

const char *gguf_path(const gguf_ctx *ctx) { return ctx->path; }
uint32_t gguf_version(const gguf_ctx *ctx) { return ctx->version; }
size_t gguf_alignment(const gguf_ctx *ctx) { return ctx->alignment; }
size_t gguf_data_offset(const gguf_ctx *ctx) { return ctx->data_start; }

size_t gguf_n_kv(const gguf_ctx *ctx) { return ctx->n_kv; }

int64_t gguf_find_key(const gguf_ctx *ctx, const char *key) {
    if (!key) return -1;
    return ni_find(&ctx->kv_index, key);
}

const char *gguf_key_name(const gguf_ctx *ctx, size_t idx) {
    return idx < ctx->n_kv ? ctx->kv[idx].key : NULL;
}

gguf_type gguf_kv_type(const gguf_ctx *ctx, size_t idx) {
    return idx < ctx->n_kv ? ctx->kv[idx].type : GGUF_TYPE_COUNT;
}

gguf_type gguf_arr_type(const gguf_ctx *ctx, size_t idx) {
    return idx < ctx->n_kv && ctx->kv[idx].type == GGUF_TYPE_ARRAY ? ctx->kv[idx].arr_type : GGUF_TYPE_COUNT;
}

size_t gguf_arr_n(const gguf_ctx *ctx, size_t idx) {
    return idx < ctx->n_kv && ctx->kv[idx].type == GGUF_TYPE_ARRAY ? (size_t)ctx->kv[idx].n : 0;
}

/* Look a key up; 1 if absent. */
static int kv_lookup(const gguf_ctx *ctx, const char *key, const rd_kv **out) {
    int64_t i = gguf_find_key(ctx, key);
    if (i < 0) return 1;
    *out = &ctx->kv[i];
    return 0;
}

static const char *kv_type_desc(const rd_kv *kv, char *buf, size_t cap) {
    if (kv->type == GGUF_TYPE_ARRAY) snprintf(buf, cap, "array of %s", gguf_type_name(kv->arr_type));
    else snprintf(buf, cap, "%s", gguf_type_name(kv->type));
    return buf;
}

/* Decode any scalar integer value: *neg set when the value is negative (then *mag = -v). */
static int kv_int(const gguf_ctx *ctx, const rd_kv *kv, const char *want, int *neg, uint64_t *mag) {
    const uint8_t *p = ctx->base + kv->off;
    int64_t s = 0;
    int is_signed = 1;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: *mag = p[0]; is_signed = 0; break;
    case GGUF_TYPE_UINT16: *mag = ld_u16(p); is_signed = 0; break;
    case GGUF_TYPE_UINT32: *mag = ld_u32(p); is_signed = 0; break;
    case GGUF_TYPE_UINT64: *mag = ld_u64(p); is_signed = 0; break;
    case GGUF_TYPE_INT8: s = (int8_t)p[0]; break;
    case GGUF_TYPE_INT16: s = (int16_t)ld_u16(p); break;
    case GGUF_TYPE_INT32: s = (int32_t)ld_u32(p); break;
    case GGUF_TYPE_INT64: s = (int64_t)ld_u64(p); break;
    default: {
        char tb[32];
        return RT_FAIL("%s: key '%s' has type %s; expected an integer (%s)", ctx->path, kv->key,
                       kv_type_desc(kv, tb, sizeof tb), want);
    }
    }
    *neg = 0;
    if (is_signed) {
        *neg = s < 0;
        *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    }
    return 0;
}

int gguf_get_u32(const gguf_ctx *ctx, const char *key, uint32_t *out) {
    const rd_kv *kv = NULL;
    if (kv_lookup(ctx, key, &kv)) return 1;
    int neg;
    uint64_t m;
    if (kv_int(ctx, kv, "u32", &neg, &m)) return -1;
    if (neg || m > UINT32_MAX)
        return RT_FAIL("%s: key '%s' = %s%" PRIu64 " is out of range for u32", ctx->path, key, neg ? "-" : "", m);
    *out = (uint32_t)m;
    return 0;
}

int gguf_get_i32(const gguf_ctx *ctx, const char *key, int32_t *out) {
    const rd_kv *kv = NULL;
    if (kv_lookup(ctx, key, &kv)) return 1;
    int neg;
    uint64_t m;
    if (kv_int(ctx, kv, "i32", &neg, &m)) return -1;
    if ((!neg && m > INT32_MAX) || (neg && m > (uint64_t)INT32_MAX + 1))
        return RT_FAIL("%s: key '%s' = %s%" PRIu64 " is out of range for i32", ctx->path, key, neg ? "-" : "", m);
    *out = neg ? (int32_t)(-(int64_t)(m - 1) - 1) : (int32_t)m;
    return 0;
}

int gguf_get_u64(const gguf_ctx *ctx, const char *key, uint64_t *out) {
    const rd_kv *kv = NULL;
    if (kv_lookup(ctx, key, &kv)) return 1;
    int neg;
    uint64_t m;
    if (kv_int(ctx, kv, "u64", &neg, &m)) return -1;
    if (neg) return RT_FAIL("%s: key '%s' = -%" PRIu64 " is out of range for u64", ctx->path, key, m);
    *out = m;
    return 0;
}

int gguf_get_f32(const gguf_ctx *ctx, const char *key, float *out) {
    const rd_kv *kv = NULL;
    if (kv_lookup(ctx, key, &kv)) return 1;
    const uint8_t *p = ctx->base + kv->off;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        uint32_t b = ld_u32(p);
        memcpy(out, &b, 4);
        return 0;
    }
    if (kv->type == GGUF_TYPE_FLOAT64) {
        uint64_t b = ld_u64(p);
        double d;
        memcpy(&d, &b, 8);
        if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
            return RT_FAIL("%s: key '%s' = %g is out of range for f32", ctx->path, key, d);
        *out = (float)d;
        return 0;
    }
    char tb[32];
    return RT_FAIL("%s: key '%s' has type %s; expected f32 (or f64)", ctx->path, key,
                   kv_type_desc(kv, tb, sizeof tb));
}

int gguf_get_bool(const gguf_ctx *ctx, const char *key, int *out) {
    const rd_kv *kv = NULL;
    if (kv_lookup(ctx, key, &kv)) return 1;
    if (kv->type != GGUF_TYPE_BOOL) {
        char tb[32];
        return RT_FAIL("%s: key '%s' has type %s; expected bool", ctx->path, key, kv_type_desc(kv, tb, sizeof tb));
    }
    *out = ctx->base[kv->off] != 0;
    return 0;
}

int gguf_get_str(const gguf_ctx *ctx, const char *key, const char **s, size_t *len) {
    const rd_kv *kv = NULL;
    if (kv_lookup(ctx, key, &kv)) return 1;
    if (kv->type != GGUF_TYPE_STRING) {
        char tb[32];
        return RT_FAIL("%s: key '%s' has type %s; expected str", ctx->path, key, kv_type_desc(kv, tb, sizeof tb));
    }
    *len = (size_t)ld_u64(ctx->base + kv->off);
    *s = (const char *)ctx->base + kv->off + 8;
    return 0;
}

static int kv_str_arr(const gguf_ctx *ctx, const char *key, const rd_kv **out) {
    const rd_kv *kv = NULL;
    if (kv_lookup(ctx, key, &kv)) return 1;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING) {
        char tb[32];
        return RT_FAIL("%s: key '%s' has type %s; expected array of str", ctx->path, key,
                       kv_type_desc(kv, tb, sizeof tb));
    }
    *out = kv;
    return 0;
}

int gguf_get_arr_str_n(const gguf_ctx *ctx, const char *key, size_t *n) {
    const rd_kv *kv = NULL;
    int rc = kv_str_arr(ctx, key, &kv);
    if (rc) return rc;
    *n = (size_t)kv->n;
    return 0;
}

int gguf_get_arr_str(const gguf_ctx *ctx, const char *key, size_t i, const char **s, size_t *len) {
    const rd_kv *kv = NULL;
    int rc = kv_str_arr(ctx, key, &kv);
    if (rc) return rc;
    if (i >= kv->n)
        return RT_FAIL("%s: key '%s': index %zu is out of range (array of %" PRIu64 " strings)", ctx->path,
                       key, i, kv->n);
    size_t off = (size_t)kv->str_offs[i];
    *len = (size_t)ld_u64(ctx->base + off);
    *s = (const char *)ctx->base + off + 8;
    return 0;
}

int gguf_get_arr_data(const gguf_ctx *ctx, const char *key, gguf_type *elem_type, size_t *n,
                      const void **data) {
    const rd_kv *kv = NULL;
    if (kv_lookup(ctx, key, &kv)) return 1;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type == GGUF_TYPE_STRING) {
        char tb[32];
        return RT_FAIL("%s: key '%s' has type %s; expected an array of numbers", ctx->path, key,
                       kv_type_desc(kv, tb, sizeof tb));
    }
    *elem_type = kv->arr_type;
    *n = (size_t)kv->n;
    *data = ctx->base + kv->off;
    return 0;
}

size_t gguf_n_tensors(const gguf_ctx *ctx) { return ctx->n_t; }

int gguf_tensor_info_at(const gguf_ctx *ctx, size_t i, gguf_tensor_info *info) {
    if (i >= ctx->n_t)
        return RT_FAIL("%s: tensor index %zu is out of range (%zu tensors)", ctx->path, i, ctx->n_t);
    *info = ctx->t[i].info;
    return 0;
}

int64_t gguf_find_tensor(const gguf_ctx *ctx, const char *name) {
    if (!name) return -1;
    return ni_find(&ctx->t_index, name);
}

static void fmt_shape(char *buf, size_t cap, const uint64_t *ne, uint32_t n_dims) {
    size_t o = 0;
    buf[0] = '\0';
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (uint32_t d = 0; d < n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRIu64, d ? ", " : "", ne[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

int gguf_read_tensor_f32(const gguf_ctx *ctx, const char *name, float *dst, size_t n,
                         const uint64_t *ne_expected, uint32_t n_dims) {
    int64_t ti = gguf_find_tensor(ctx, name);
    if (ti < 0) return RT_FAIL("%s: tensor '%s' not found", ctx->path, name ? name : "(null)");
    const gguf_tensor_info *t = &ctx->t[ti].info;
    if (!qtype_supported(t->type))
        return RT_FAIL("%s: tensor '%s' has type %s; retort reads f32, f16, bf16, q8_0, q4_0, q4_K, q5_K "
                       "and q6_K (convert with llama.cpp's llama-quantize --allow-requantize MODEL.gguf "
                       "OUT.gguf Q8_0, or re-export the model as f16/f32)",
                       ctx->path, name, gguf_dtype_name(t->type));
    char got[128], want[128];
    if (ne_expected) {
        if (n_dims > GGUF_MAX_DIMS)
            return RT_FAIL("%s: tensor '%s': expected shape has %" PRIu32 " dimensions; at most %d", ctx->path,
                           name, n_dims, GGUF_MAX_DIMS);
        int same = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
            uint64_t e = d < n_dims ? ne_expected[d] : 1;
            if (t->ne[d] != e) same = 0;
        }
        if (!same) {
            fmt_shape(got, sizeof got, t->ne, t->n_dims);
            fmt_shape(want, sizeof want, ne_expected, n_dims);
            return RT_FAIL("%s: tensor '%s' has shape %s (fastest dimension first); expected %s", ctx->path,
                           name, got, want);
        }
    }
    uint64_t nelem = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* bounded by the parser */
    if (nelem != (uint64_t)n) {
        fmt_shape(got, sizeof got, t->ne, t->n_dims);
        return RT_FAIL("%s: tensor '%s' has %" PRIu64 " elements (shape %s); expected %zu", ctx->path, name,
                       nelem, got, n);
    }
    if (n && !dst) return RT_FAIL("%s: tensor '%s': no destination buffer", ctx->path, name);
    /* rows of ne[0] elements; the parser checked ne[0] is a multiple of the block size and
     * that nbytes = rows * row bytes lies inside the file */
    size_t cols = (size_t)t->ne[0], rows = cols ? n / cols : 0;
    size_t rb = qtype_row_bytes(t->type, cols);
    if (rows && (rb == 0 || (uint64_t)rows * rb != t->nbytes))
        return RT_FAIL("%s: tensor '%s': %" PRIu64 " data bytes do not match %zu rows of %zu %s values", ctx->path,
                       name, t->nbytes, rows, cols, gguf_dtype_name(t->type));
    const uint8_t *p = t->data;
    for (size_t r = 0; r < rows; r++) quant_dequantize_row(t->type, p + r * rb, dst + r * cols, cols);
    return 0;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *key;
    gguf_type type;
    rt_buf val; /* the serialised value (everything after the type field) */
} wr_kv;

typedef struct {
    char *name;
    gguf_dtype type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    const float *data; /* borrowed; n floats */
    size_t n;
    size_t nbytes;
} wr_tensor;

struct gguf_writer {
    wr_kv *kv;
    size_t n_kv, cap_kv;
    name_index kv_index;
    wr_tensor *t;
    size_t n_t, cap_t;
    name_index t_index;
};

gguf_writer *gguf_writer_new(void) { return rt_calloc(1, sizeof(gguf_writer), "a GGUF writer"); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        rt_buf_free(&w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    ni_free(&w->kv_index);
    ni_free(&w->t_index);
    free(w);
}

static int put_u32(rt_buf *b, uint32_t v) {
    uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return rt_buf_append(b, p, 4);
}

static int put_u64(rt_buf *b, uint64_t v) {
    if (put_u32(b, (uint32_t)v)) return -1;
    return put_u32(b, (uint32_t)(v >> 32));
}

static int put_str(rt_buf *b, const char *s, size_t len) {
    if (put_u64(b, len)) return -1;
    return rt_buf_append(b, s, len);
}

/* Install a serialised value under key (taking ownership of val), replacing in place. */
static int set_kv(gguf_writer *w, const char *key, gguf_type type, rt_buf *val) {
    if (!w || !key || !*key) {
        rt_buf_free(val);
        return RT_FAIL("gguf writer: a key must be a non-empty string");
    }
    size_t klen = strlen(key);
    if (klen > GGUF_MAX_KEY_LEN) {
        rt_buf_free(val);
        return RT_FAIL("gguf writer: key '%.60s...' is %zu bytes; GGUF keys are at most %u", key, klen,
                       GGUF_MAX_KEY_LEN);
    }
    int64_t i = ni_find(&w->kv_index, key);
    if (i >= 0) {
        rt_buf_free(&w->kv[i].val);
        w->kv[i].val = *val;
        w->kv[i].type = type;
        return 0;
    }
    char *k = rt_strdup(key);
    if (!k || RT_GROW(w->kv, w->cap_kv, w->n_kv + 1, "GGUF writer keys") ||
        ni_add(&w->kv_index, k)) {
        free(k);
        rt_buf_free(val);
        return -1;
    }
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].type = type;
    w->kv[w->n_kv].val = *val;
    w->n_kv++;
    return 0;
}

static int set_fixed(gguf_writer *w, const char *key, gguf_type type, const void *v, size_t size) {
    rt_buf b = {0};
    if (rt_buf_append(&b, v, size)) return -1; /* host order == little-endian (checked above) */
    return set_kv(w, key, type, &b);
}

int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v) { return set_fixed(w, key, GGUF_TYPE_UINT32, &v, 4); }
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v) { return set_fixed(w, key, GGUF_TYPE_INT32, &v, 4); }
int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v) { return set_fixed(w, key, GGUF_TYPE_UINT64, &v, 8); }
int gguf_set_f32(gguf_writer *w, const char *key, float v) { return set_fixed(w, key, GGUF_TYPE_FLOAT32, &v, 4); }

int gguf_set_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v ? 1 : 0;
    return set_fixed(w, key, GGUF_TYPE_BOOL, &b, 1);
}

int gguf_set_str_n(gguf_writer *w, const char *key, const char *s, size_t len) {
    if (!s && len) return RT_FAIL("gguf writer: key '%s': NULL string", key ? key : "(null)");
    rt_buf b = {0};
    if (put_str(&b, s, len)) {
        rt_buf_free(&b);
        return -1;
    }
    return set_kv(w, key, GGUF_TYPE_STRING, &b);
}

int gguf_set_str(gguf_writer *w, const char *key, const char *s) {
    if (!s) return RT_FAIL("gguf writer: key '%s': NULL string", key ? key : "(null)");
    return gguf_set_str_n(w, key, s, strlen(s));
}

int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                     size_t n) {
    if (n && !strs) return RT_FAIL("gguf writer: key '%s': NULL string array", key ? key : "(null)");
    rt_buf b = {0};
    int rc = put_u32(&b, GGUF_TYPE_STRING) || put_u64(&b, n) ? -1 : 0;
    for (size_t i = 0; !rc && i < n; i++) {
        size_t len = lens ? lens[i] : (strs[i] ? strlen(strs[i]) : 0);
        if (!strs[i] && len) rc = RT_FAIL("gguf writer: key '%s': string #%zu is NULL", key ? key : "(null)", i);
        else rc = put_str(&b, strs[i] ? strs[i] : "", len);
    }
    if (rc) {
        rt_buf_free(&b);
        return -1;
    }
    return set_kv(w, key, GGUF_TYPE_ARRAY, &b);
}

int gguf_set_arr_data(gguf_writer *w, const char *key, gguf_type elem_type, const void *data, size_t n) {
    size_t es = gguf_type_size((uint32_t)elem_type);
    if (!es)
        return RT_FAIL("gguf writer: key '%s': element type %s is not a fixed-size number type",
                       key ? key : "(null)", gguf_type_name(elem_type));
    if (n && !data) return RT_FAIL("gguf writer: key '%s': NULL array data", key ? key : "(null)");
    size_t bytes;
    if (rt_mul_size(n, es, &bytes)) return -1;
    if (elem_type == GGUF_TYPE_BOOL) {
        for (size_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return RT_FAIL("gguf writer: key '%s': bool element #%zu is %u; bools must be 0 or 1",
                               key ? key : "(null)", i, ((const uint8_t *)data)[i]);
    }
    rt_buf b = {0};
    if (put_u32(&b, (uint32_t)elem_type) || put_u64(&b, n) || rt_buf_append(&b, data, bytes)) {
        rt_buf_free(&b);
        return -1;
    }
    return set_kv(w, key, GGUF_TYPE_ARRAY, &b);
}

int gguf_add_tensor(gguf_writer *w, const char *name, gguf_dtype type, uint32_t n_dims,
                    const uint64_t *ne, const float *data) {
    if (!w || !name || !*name) return RT_FAIL("gguf writer: a tensor name must be a non-empty string");
    size_t nlen = strlen(name);
    if (nlen > GGUF_MAX_NAME_LEN)
        return RT_FAIL("gguf writer: tensor name '%s' is %zu bytes; llama.cpp allows at most %u", name, nlen,
                       GGUF_MAX_NAME_LEN);
    if (ni_find(&w->t_index, name) >= 0) return RT_FAIL("gguf writer: tensor '%s' added twice", name);
    if (!qtype_supported((uint32_t)type))
        return RT_FAIL("gguf writer: tensor '%s': type %s; retort writes f32, f16, bf16, q8_0, q4_0, q4_K, "
                       "q5_K and q6_K",
                       name, gguf_dtype_name((uint32_t)type));
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne)
        return RT_FAIL("gguf writer: tensor '%s': %" PRIu32 " dimensions; expected 1..%d", name, n_dims,
                       GGUF_MAX_DIMS);
    size_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX || ne[d] > SIZE_MAX)
            return RT_FAIL("gguf writer: tensor '%s': ne[%" PRIu32 "] = %" PRIu64 " is invalid", name, d, ne[d]);
        if (rt_mul_size(n, (size_t)ne[d], &n)) return -1;
    }
    size_t rb = qtype_row_bytes((uint32_t)type, (size_t)ne[0]), nbytes;
    if (rb == 0)
        return RT_FAIL("gguf writer: tensor '%s': type %s needs rows (ne[0]) that are a multiple of %zu "
                       "elements; this one has %" PRIu64 " (keep it f32/f16 or pick a 32-element type)",
                       name, gguf_dtype_name((uint32_t)type), qtype_block_elems((uint32_t)type), ne[0]);
    if (rt_mul_size(n / (size_t)ne[0], rb, &nbytes)) return -1;
    if (!data) return RT_FAIL("gguf writer: tensor '%s': NULL data", name);
    char *nm = rt_strdup(name);
    if (!nm || RT_GROW(w->t, w->cap_t, w->n_t + 1, "GGUF writer tensors") ||
        ni_add(&w->t_index, nm)) {
        free(nm);
        return -1;
    }
    wr_tensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->n = n;
    t->nbytes = nbytes;
    return 0;
}

int gguf_writer_copy_kv(gguf_writer *w, const gguf_ctx *src, size_t idx) {
    if (!w || !src || idx >= src->n_kv) return RT_FAIL("gguf writer: key/value #%zu does not exist", idx);
    const rd_kv *kv = &src->kv[idx];
    size_t start = kv->off, end;
    if (kv->type == GGUF_TYPE_STRING) {
        end = start + 8 + (size_t)ld_u64(src->base + start);
    } else if (kv->type != GGUF_TYPE_ARRAY) {
        end = start + gguf_type_size(kv->type);
    } else {
        start -= 12; /* the element type and count precede element 0 */
        if (kv->arr_type != GGUF_TYPE_STRING) {
            end = kv->off + (size_t)kv->n * gguf_type_size(kv->arr_type);
        } else if (kv->n == 0) {
            end = kv->off;
        } else {
            size_t last = (size_t)kv->str_offs[kv->n - 1];
            end = last + 8 + (size_t)ld_u64(src->base + last);
        }
    }
    rt_buf b = {0};
    if (rt_buf_append(&b, src->base + start, end - start)) return -1;
    return set_kv(w, kv->key, kv->type, &b);
}

static int write_zeros(FILE *f, size_t n, const char *path) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = RT_MIN(n, sizeof zeros);
        if (rt_fwrite(zeros, 1, k, f, path)) return -1;
        n -= k;
    }
    return 0;
}

static size_t pad_to(size_t pos, size_t align) { return (align - pos % align) % align; }

int gguf_writer_write(gguf_writer *w, const char *path) {
    if (!w || !path) return RT_FAIL("gguf writer: no writer or path");
    size_t align = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = ni_find(&w->kv_index, "general.alignment");
    if (ai >= 0) {
        const wr_kv *kv = &w->kv[ai];
        uint32_t a = 0;
        if (kv->type == GGUF_TYPE_UINT32) a = ld_u32((const uint8_t *)kv->val.data);
        if (kv->type != GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)))
            return RT_FAIL("%s: general.alignment must be a u32 power of two", path);
        align = a;
    }
    rt_buf h = {0};
    int rc = rt_buf_append(&h, "GGUF", 4) || put_u32(&h, 3) || put_u64(&h, w->n_t) || put_u64(&h, w->n_kv);
    for (size_t i = 0; !rc && i < w->n_kv; i++) {
        const wr_kv *kv = &w->kv[i];
        rc = put_str(&h, kv->key, strlen(kv->key)) || put_u32(&h, (uint32_t)kv->type) ||
             rt_buf_append(&h, kv->val.data, kv->val.len);
    }
    uint64_t off = 0;
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        const wr_tensor *t = &w->t[i];
        rc = put_str(&h, t->name, strlen(t->name)) || put_u32(&h, t->n_dims);
        for (uint32_t d = 0; !rc && d < t->n_dims; d++) rc = put_u64(&h, t->ne[d]);
        rc = rc || put_u32(&h, (uint32_t)t->type) || put_u64(&h, off);
        off += t->nbytes + pad_to(t->nbytes, align);
    }
    if (rc) {
        rt_buf_free(&h);
        return -1;
    }
    rt_atomic_file af;
    if (rt_atomic_open(&af, path)) {
        rt_buf_free(&h);
        return -1;
    }
    rc = rt_fwrite(h.data, 1, h.len, af.f, path) || write_zeros(af.f, pad_to(h.len, align), path);
    rt_buf_free(&h);
    uint8_t *row = NULL;
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        const wr_tensor *t = &w->t[i];
        if (t->type == GGUF_DTYPE_F32) {
            rc = rt_fwrite(t->data, sizeof(float), t->n, af.f, path);
        } else {
            /* encode one row at a time (ne[0] elements) */
            size_t cols = (size_t)t->ne[0], rb = qtype_row_bytes((uint32_t)t->type, cols);
            free(row);
            row = rt_malloc(rb, "a GGUF row buffer");
            if (!row) rc = -1;
            for (size_t j = 0; !rc && j < t->n; j += cols) {
                quant_quantize_row((uint32_t)t->type, t->data + j, row, cols);
                rc = rt_fwrite(row, 1, rb, af.f, path);
            }
        }
        rc = rc || write_zeros(af.f, pad_to(t->nbytes, align), path);
    }
    free(row);
    if (rc) {
        rt_atomic_abort(&af);
        return -1;
    }
    return rt_atomic_commit(&af);
}
