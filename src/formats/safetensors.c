/*
 * safetensors.c — the safetensors container (see safetensors.h): a checked reader over a
 * mapped file or a memory buffer, the folder/shard index, and an atomic writer.
 * Not the Hugging Face model mapping (src/model/model_hf.c).
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/base.h"
#include "../kernels/quant.h"
#include "gguf.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};

const char *st_dtype_name(st_dtype t) { return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].name : "?"; }

/* ---------------------------------------------------------------- reader */

struct st_file {
    char *path;
    const uint8_t *base;
    size_t size;
    int mapped;
    st_tensor *t;
    size_t n_t;
};

const char *st_path(const st_file *f) { return f->path; }
size_t st_n_tensors(const st_file *f) { return f->n_t; }
const st_tensor *st_tensor_at(const st_file *f, size_t i) { return i < f->n_t ? &f->t[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name) {
    for (size_t i = 0; i < f->n_t; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

static int get_u64(json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* One header entry into t; data section is [data, data + dlen). */
static int parse_entry(st_file *f, const char *name, json_t *e, const uint8_t *data, uint64_t dlen,
                       st_tensor *t) {
    const char *p = f->path;
    if (!json_is_object(e)) return RT_FAIL("%s: tensor '%.200s': header entry is not an object", p, name);
    json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
           *of = json_object_get(e, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(of) || json_array_size(of) != 2)
        return RT_FAIL("%s: tensor '%.200s': needs \"dtype\" (string), \"shape\" (array) and "
                       "\"data_offsets\" ([begin, end])",
                       p, name);
    const char *ds = json_string_value(dt);
    int d = -1;
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(ds, dtypes[i].name) == 0) d = i;
    if (d < 0) return RT_FAIL("%s: tensor '%.200s': unknown dtype '%.32s'", p, name, ds);
    t->dtype = (st_dtype)d;
    t->n_dims = json_array_size(sh);
    if (t->n_dims > ST_MAX_DIMS)
        return RT_FAIL("%s: tensor '%.200s': %zu dimensions (at most %d)", p, name, t->n_dims, ST_MAX_DIMS);
    uint64_t n = 1, nbytes, begin, end;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (get_u64(json_array_get(sh, i), &t->shape[i]))
            return RT_FAIL("%s: tensor '%.200s': shape[%zu] is not a non-negative integer", p, name, i);
        if (t->shape[i] && n > UINT64_MAX / t->shape[i])
            return RT_FAIL("%s: tensor '%.200s': shape overflows", p, name);
        n *= t->shape[i];
    }
    if (n > UINT64_MAX / dtypes[d].size) return RT_FAIL("%s: tensor '%.200s': shape overflows", p, name);
    nbytes = n * dtypes[d].size;
    if (get_u64(json_array_get(of, 0), &begin) || get_u64(json_array_get(of, 1), &end) || begin > end ||
        end > dlen)
        return RT_FAIL("%s: tensor '%.200s': data_offsets must be 0 <= begin <= end <= %llu (the data "
                       "section)",
                       p, name, (unsigned long long)dlen);
    if (end - begin != nbytes)
        return RT_FAIL("%s: tensor '%.200s': data_offsets span %llu bytes but %s %s needs %llu", p,
                       name, (unsigned long long)(end - begin), dtypes[d].name,
                       t->n_dims ? "of its shape" : "scalar", (unsigned long long)nbytes);
    t->n_elems = n;
    t->nbytes = nbytes;
    t->data = data + begin;
    t->name = strdup(name);
    if (!t->name) return RT_FAIL("%s: out of memory", p);
    return 0;
}

static int parse(st_file *f) {
    const char *p = f->path;
    if (f->size < 8) return RT_FAIL("%s: %zu bytes; too short for a safetensors file", p, f->size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f->base[i];
    if (hl < 2 || hl > f->size - 8)
        return RT_FAIL("%s: header length %llu does not fit the file (%zu bytes); not a "
                       "safetensors file",
                       p, (unsigned long long)hl, f->size);
    if (hl > (100u << 20)) return RT_FAIL("%s: header of %llu bytes is implausibly large", p, (unsigned long long)hl);
    json_error_t err;
    json_t *h = json_loadb((const char *)f->base + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &err);
    if (!h) return RT_FAIL("%s: header JSON: %s (at byte %d)", p, err.text, err.position);
    int rc = 0;
    if (!json_is_object(h)) {
        rc = RT_FAIL("%s: header JSON is not an object", p);
        goto done;
    }
    size_t cap = json_object_size(h);
    f->t = calloc(cap ? cap : 1, sizeof *f->t);
    if (!f->t) {
        rc = RT_FAIL("%s: out of memory", p);
        goto done;
    }
    const uint8_t *data = f->base + 8 + hl;
    uint64_t dlen = f->size - 8 - hl;
    const char *key;
    json_t *val;
    json_object_foreach(h, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        if ((rc = parse_entry(f, key, val, data, dlen, &f->t[f->n_t]))) goto done;
        f->n_t++;
    }
done:
    json_decref(h);
    return rc;
}

static st_file *file_new(const char *name) {
    st_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(name);
    if (!f || !f->path) {
        free(f);
        RT_FAIL("%s: out of memory", name);
        return NULL;
    }
    return f;
}

int st_open_memory(st_file **out, const void *data, size_t len, const char *name) {
    *out = NULL;
    st_file *f = file_new(name);
    if (!f) return -1;
    f->base = data;
    f->size = len;
    if (parse(f)) {
        st_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int st_open(st_file **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return RT_FAIL("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 8) {
        close(fd);
        return RT_FAIL("%s: not a regular file of at least 8 bytes; not a safetensors file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return RT_FAIL("%s: cannot map %zu bytes: %s", path, size, strerror(e));
    st_file *f = file_new(path);
    if (!f) {
        munmap(m, size);
        return -1;
    }
    f->base = m;
    f->size = size;
    f->mapped = 1;
    if (parse(f)) {
        st_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

void st_close(st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_t; i++) free(f->t[i].name);
    free(f->t);
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->path);
    free(f);
}

int st_read_f32(const st_file *f, const st_tensor *t, float *dst, size_t n) {
    if (t->n_elems != n)
        return RT_FAIL("%s: tensor '%s' has %llu elements, expected %zu", f->path, t->name,
                       (unsigned long long)t->n_elems, n);
    const uint8_t *s = t->data;
    switch (t->dtype) {
    case ST_F32: memcpy(dst, s, n * sizeof(float)); return 0;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(s[2 * i] | s[2 * i + 1] << 8);
            dst[i] = t->dtype == ST_F16 ? gguf_f16_to_f32(h) : quant_bf16_to_f32(h);
        }
        return 0;
    default:
        return RT_FAIL("%s: tensor '%s' has dtype %s; retort reads F32, F16 and BF16", f->path,
                       t->name, dtypes[t->dtype].name);
    }
}

/* ---------------------------------------------------------------- folder */

struct st_folder {
    st_file **files;
    size_t n_files;
};

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static int add_file(st_folder *d, const char *dir, const char *name) {
    for (size_t i = 0; i < d->n_files; i++) { /* already open? (compare the file part) */
        const char *p = strrchr(st_path(d->files[i]), '/');
        if (p && strcmp(p + 1, name) == 0) return 0;
    }
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return RT_FAIL("%s/model.safetensors.index.json: shard name '%.200s' is not a plain file "
                       "name",
                       dir, name);
    st_file **nf = realloc(d->files, (d->n_files + 1) * sizeof *nf);
    if (!nf) return RT_FAIL("out of memory");
    d->files = nf;
    char *path = join(dir, name);
    if (!path) return RT_FAIL("out of memory");
    int rc = st_open(&d->files[d->n_files], path);
    free(path);
    if (rc) return -1;
    d->n_files++;
    return 0;
}

static int open_index(st_folder *d, const char *dir, const char *ipath) {
    json_error_t err;
    json_t *j = json_load_file(ipath, JSON_REJECT_DUPLICATES, &err);
    if (!j) return RT_FAIL("%s: line %d: %s", ipath, err.line, err.text);
    json_t *wm = json_object_get(j, "weight_map");
    int rc = 0;
    if (!json_is_object(wm)) {
        rc = RT_FAIL("%s: no \"weight_map\" object", ipath);
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(wm, k, v) {
            if (!json_is_string(v)) {
                rc = RT_FAIL("%s: weight_map[\"%.200s\"] is not a file name", ipath, k);
                break;
            }
            if ((rc = add_file(d, dir, json_string_value(v)))) break;
        }
        /* every indexed tensor must be where the index says */
        json_object_foreach(wm, k, v) {
            if (rc) break;
            const st_file *f;
            if (!st_folder_find(d, k, &f))
                rc = RT_FAIL("%s: tensor '%.200s' is listed in %s but absent from it", ipath, k,
                             json_string_value(v));
        }
    }
    json_decref(j);
    return rc;
}

int st_folder_open(st_folder **out, const char *dir) {
    *out = NULL;
    st_folder *d = calloc(1, sizeof *d);
    char *ipath = join(dir, "model.safetensors.index.json");
    int rc = 0;
    if (!d || !ipath) {
        rc = RT_FAIL("out of memory");
    } else if (rt_file_exists(ipath)) {
        rc = open_index(d, dir, ipath);
    } else {
        char *one = join(dir, "model.safetensors");
        if (!one) rc = RT_FAIL("out of memory");
        else if (!rt_file_exists(one))
            rc = RT_FAIL("%s: neither model.safetensors nor model.safetensors.index.json found", dir);
        else rc = add_file(d, dir, "model.safetensors");
        free(one);
    }
    free(ipath);
    if (rc) {
        st_folder_close(d);
        return -1;
    }
    *out = d;
    return 0;
}

void st_folder_close(st_folder *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_files; i++) st_close(d->files[i]);
    free(d->files);
    free(d);
}

const st_tensor *st_folder_find(const st_folder *d, const char *name, const st_file **file) {
    for (size_t i = 0; i < d->n_files; i++) {
        const st_tensor *t = st_find(d->files[i], name);
        if (t) {
            if (file) *file = d->files[i];
            return t;
        }
    }
    return NULL;
}

size_t st_folder_n_tensors(const st_folder *d) {
    size_t n = 0;
    for (size_t i = 0; i < d->n_files; i++) n += d->files[i]->n_t;
    return n;
}

const st_tensor *st_folder_tensor_at(const st_folder *d, size_t i, const st_file **file) {
    for (size_t k = 0; k < d->n_files; k++) {
        if (i < d->files[k]->n_t) {
            if (file) *file = d->files[k];
            return &d->files[k]->t[i];
        }
        i -= d->files[k]->n_t;
    }
    return NULL;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *name;
    st_dtype dtype;
    size_t n_dims;
    uint64_t shape[ST_MAX_DIMS];
    size_t n;
    const float *data;
} wr_tensor;

struct st_writer {
    wr_tensor *t;
    size_t n_t;
    json_t *meta;
};

st_writer *st_writer_new(void) {
    st_writer *w = calloc(1, sizeof *w);
    if (!w) RT_FAIL("out of memory");
    return w;
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    json_decref(w->meta);
    free(w);
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, size_t n_dims,
                  const uint64_t *shape, const float *data) {
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return RT_FAIL("safetensors writer: tensor '%s': dtype %s is not writable (F32, F16, BF16)",
                       name, st_dtype_name(dtype));
    if (n_dims > ST_MAX_DIMS) return RT_FAIL("safetensors writer: tensor '%s': too many dims", name);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return RT_FAIL("safetensors writer: tensor '%s' added twice", name);
    wr_tensor *nt = realloc(w->t, (w->n_t + 1) * sizeof *nt);
    if (!nt) return RT_FAIL("out of memory");
    w->t = nt;
    wr_tensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return RT_FAIL("out of memory");
    t->dtype = dtype;
    t->n_dims = n_dims;
    t->n = 1;
    for (size_t i = 0; i < n_dims; i++) t->shape[i] = shape[i], t->n *= (size_t)shape[i];
    t->data = data;
    w->n_t++;
    return 0;
}

int st_writer_set_meta(st_writer *w, const char *key, const char *value) {
    if (!w->meta && !(w->meta = json_object())) return RT_FAIL("out of memory");
    if (json_object_set_new(w->meta, key, json_string(value))) return RT_FAIL("out of memory");
    return 0;
}

static char *header_json(const st_writer *w) {
    json_t *h = json_object();
    uint64_t off = 0;
    int bad = !h;
    for (size_t i = 0; !bad && i < w->n_t; i++) {
        const wr_tensor *t = &w->t[i];
        uint64_t nb = (uint64_t)t->n * dtypes[t->dtype].size;
        json_t *sh = json_array();
        for (size_t k = 0; sh && k < t->n_dims; k++) bad |= json_array_append_new(sh, json_integer((json_int_t)t->shape[k]));
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtypes[t->dtype].name, "shape", sh,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + nb));
        bad |= !e || json_object_set_new(h, t->name, e);
        off += nb;
    }
    if (!bad && w->meta) bad = json_object_set(h, "__metadata__", w->meta);
    char *s = bad ? NULL : json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    return s;
}

int st_writer_write(st_writer *w, const char *path) {
    char *hj = header_json(w);
    if (!hj) return RT_FAIL("%s: cannot build the safetensors header", path);
    size_t hl = strlen(hj), pad = (8 - hl % 8) % 8;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)(hl + pad) >> (8 * i));
    rt_atomic_file af;
    if (rt_atomic_open(&af, path)) {
        free(hj);
        return -1;
    }
    int rc = rt_fwrite(len8, 1, 8, af.f, path) || rt_fwrite(hj, 1, hl, af.f, path) ||
             (pad && rt_fwrite("       ", 1, pad, af.f, path));
    free(hj);
    uint16_t chunk[4096];
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        const wr_tensor *t = &w->t[i];
        if (t->dtype == ST_F32) {
            rc = t->n && rt_fwrite(t->data, sizeof(float), t->n, af.f, path);
            continue;
        }
        for (size_t j = 0; !rc && j < t->n; j += RT_ARRAY_LEN(chunk)) {
            size_t k = RT_MIN(RT_ARRAY_LEN(chunk), t->n - j);
            for (size_t q = 0; q < k; q++)
                chunk[q] = t->dtype == ST_F16 ? gguf_f32_to_f16(t->data[j + q]) : quant_f32_to_bf16(t->data[j + q]);
            rc = rt_fwrite(chunk, sizeof chunk[0], k, af.f, path);
        }
    }
    if (rc) {
        rt_atomic_abort(&af);
        return -1;
    }
    return rt_atomic_commit(&af);
}
