/*
 * data.c — corpus → token streams with a held-out split, token shard files, and batch
 * sampling (random training windows; fixed, evenly spaced held-out windows).
 * Not a streaming loader for corpora larger than memory: retort's corpora fit in RAM.
 */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dataset_free(dataset *ds) {
    free(ds->train);
    free(ds->val);
    memset(ds, 0, sizeof *ds);
}

static uint64_t stream_hash(const int32_t *t, size_t n, uint64_t h) {
    /* FNV-1a over the ids' little-endian bytes, chained */
    const unsigned char *p = (const unsigned char *)t;
    for (size_t i = 0; i < n * sizeof(int32_t); i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int append_ids(int32_t **dst, size_t *n, size_t *cap, const int32_t *src, size_t k) {
    if (*n + k > *cap) {
        size_t c = *cap ? *cap : 1 << 16;
        while (c < *n + k) c *= 2;
        int32_t *d = rt_realloc(*dst, c * sizeof(int32_t), "token stream");
        if (!d) return -1;
        *dst = d;
        *cap = c;
    }
    memcpy(*dst + *n, src, k * sizeof(int32_t));
    *n += k;
    return 0;
}

int dataset_from_text(dataset *ds, const tokenizer *tok, const char *text, size_t len,
                      double val_fraction, size_t chunk_bytes) {
    memset(ds, 0, sizeof *ds);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return RT_FAIL("held-out fraction must be in [0, 1) (got %g)", val_fraction);
    if (chunk_bytes == 0) chunk_bytes = 64 * 1024;
    size_t every = val_fraction > 0 ? (size_t)llround(1.0 / val_fraction) : 0;
    size_t cap_t = 0, cap_v = 0, chunk = 0;
    for (size_t s = 0; s < len; chunk++) {
        size_t e = s + chunk_bytes < len ? s + chunk_bytes : len;
        if (e < len) { /* end the chunk at a newline within the last quarter, if any */
            for (size_t j = e; j > e - chunk_bytes / 4; j--)
                if (text[j - 1] == '\n') {
                    e = j;
                    break;
                }
        }
        int32_t *ids;
        size_t n;
        if (tokenizer_encode(tok, text + s, e - s, 0, &ids, &n)) {
            dataset_free(ds);
            return -1;
        }
        int to_val = every > 0 && chunk % every == every - 1;
        int rc = to_val ? append_ids(&ds->val, &ds->n_val, &cap_v, ids, n)
                        : append_ids(&ds->train, &ds->n_train, &cap_t, ids, n);
        free(ids);
        if (rc) {
            dataset_free(ds);
            return -1;
        }
        s = e;
    }
    ds->hash = stream_hash(ds->val, ds->n_val, stream_hash(ds->train, ds->n_train, 0xcbf29ce484222325ull));
    return 0;
}

/* ---- shard files ---- */

typedef struct {
    char magic[4];      /* "RTOK" */
    uint32_t version;   /* 1 */
    uint32_t vocab_size;
    uint32_t id_bytes;  /* 2 or 4 */
    uint64_t count;
    uint64_t checksum;  /* FNV-1a of the ids as int32 */
} shard_header;

static int shard_write(const char *path, const int32_t *ids, size_t n, size_t V) {
    shard_header h = {{'R', 'T', 'O', 'K'}, 1, (uint32_t)V, V <= 65536 ? 2u : 4u, n, 0};
    h.checksum = stream_hash(ids, n, 0xcbf29ce484222325ull);
    rt_atomic_file af;
    if (rt_atomic_open(&af, path)) return -1;
    int rc = rt_fwrite(&h, sizeof h, 1, af.f, path);
    if (h.id_bytes == 2) {
        uint16_t buf[4096];
        for (size_t i = 0; i < n && rc == 0; i += 4096) {
            size_t k = RT_MIN((size_t)4096, n - i);
            for (size_t j = 0; j < k; j++) buf[j] = (uint16_t)ids[i + j];
            rc = rt_fwrite(buf, sizeof(uint16_t), k, af.f, path);
        }
    } else if (rc == 0) {
        rc = rt_fwrite(ids, sizeof(int32_t), n, af.f, path);
    }
    if (rc) {
        rt_atomic_abort(&af);
        return -1;
    }
    return rt_atomic_commit(&af);
}

static int shard_read(const char *path, int32_t **ids, size_t *n, size_t V) {
    *ids = NULL;
    *n = 0;
    char *data;
    size_t len;
    if (rt_read_file(path, &data, &len)) return -1;
    shard_header h;
    int rc = 0;
    if (len < sizeof h) {
        rc = RT_FAIL("%s: too short for a token shard header (truncated?)", path);
        goto done;
    }
    memcpy(&h, data, sizeof h);
    if (memcmp(h.magic, "RTOK", 4) != 0 || h.version != 1) {
        rc = RT_FAIL("%s: not a retort token shard (bad magic or version)", path);
        goto done;
    }
    if (h.vocab_size != V) {
        rc = RT_FAIL("%s: shard was tokenized with a %u-token vocabulary, the model has %zu", path,
                     h.vocab_size, V);
        goto done;
    }
    if ((h.id_bytes != 2 && h.id_bytes != 4) || h.count > (len - sizeof h) / h.id_bytes ||
        h.count * h.id_bytes != len - sizeof h) {
        rc = RT_FAIL("%s: size does not match its header (truncated or corrupt)", path);
        goto done;
    }
    *ids = rt_malloc_array(h.count, sizeof(int32_t), "token shard");
    if (!*ids) {
        rc = -1;
        goto done;
    }
    const unsigned char *p = (const unsigned char *)data + sizeof h;
    for (size_t i = 0; i < h.count; i++) {
        uint32_t v = 0;
        memcpy(&v, p + i * h.id_bytes, h.id_bytes);
        if (v >= V) {
            rc = RT_FAIL("%s: token %zu has id %u outside the vocabulary", path, i, v);
            goto done;
        }
        (*ids)[i] = (int32_t)v;
    }
    if (stream_hash(*ids, h.count, 0xcbf29ce484222325ull) != h.checksum) {
        rc = RT_FAIL("%s: checksum mismatch (corrupt shard)", path);
        goto done;
    }
    *n = h.count;
done:
    if (rc) {
        free(*ids);
        *ids = NULL;
    }
    free(data);
    return rc;
}

int dataset_save(const dataset *ds, const char *dir, size_t V) {
    if (rt_mkdir_p(dir)) return -1;
    char p[4096];
    snprintf(p, sizeof p, "%s/train.bin", dir);
    if (shard_write(p, ds->train, ds->n_train, V)) return -1;
    snprintf(p, sizeof p, "%s/val.bin", dir);
    return shard_write(p, ds->val, ds->n_val, V);
}

int dataset_load(dataset *ds, const char *dir, size_t V) {
    memset(ds, 0, sizeof *ds);
    char p[4096];
    snprintf(p, sizeof p, "%s/train.bin", dir);
    if (shard_read(p, &ds->train, &ds->n_train, V)) return -1;
    snprintf(p, sizeof p, "%s/val.bin", dir);
    if (shard_read(p, &ds->val, &ds->n_val, V)) {
        dataset_free(ds);
        return -1;
    }
    ds->hash = stream_hash(ds->val, ds->n_val, stream_hash(ds->train, ds->n_train, 0xcbf29ce484222325ull));
    return 0;
}

/* ---- batches ---- */

int dataset_sample_batch(const dataset *ds, rt_rng *rng, size_t B, size_t T, int32_t *inputs,
                         int32_t *targets) {
    if (ds->n_train < T + 1)
        return RT_FAIL("training data has %zu tokens, fewer than one window of --seq-len %zu + 1",
                       ds->n_train, T);
    size_t span = ds->n_train - T;
    for (size_t b = 0; b < B; b++) {
        size_t off = (size_t)rt_rng_below(rng, span);
        memcpy(inputs + b * T, ds->train + off, T * sizeof(int32_t));
        memcpy(targets + b * T, ds->train + off + 1, T * sizeof(int32_t));
    }
    return 0;
}

int dataset_skip_batch(const dataset *ds, rt_rng *rng, size_t B, size_t T) {
    if (ds->n_train < T + 1)
        return RT_FAIL("training data has %zu tokens, fewer than one window of --seq-len %zu + 1",
                       ds->n_train, T);
    for (size_t b = 0; b < B; b++) (void)rt_rng_below(rng, ds->n_train - T);
    return 0;
}

int dataset_val_windows(const dataset *ds, size_t first, size_t count, size_t total, size_t T,
                        int32_t *inputs, int32_t *targets) {
    if (ds->n_val < T + 1)
        return RT_FAIL("held-out data has %zu tokens, fewer than one window of %zu + 1", ds->n_val, T);
    size_t span = ds->n_val - T;
    for (size_t b = 0; b < count; b++) {
        size_t w = first + b;
        size_t off = total > 1 ? (size_t)((double)span * (double)w / (double)total) : 0;
        memcpy(inputs + b * T, ds->val + off, T * sizeof(int32_t));
        memcpy(targets + b * T, ds->val + off + 1, T * sizeof(int32_t));
    }
    return 0;
}

int dataset_val_batch(const dataset *ds, size_t i, size_t n_batches, size_t B, size_t T,
                      int32_t *inputs, int32_t *targets) {
    return dataset_val_windows(ds, i * B, B, n_batches * B, T, inputs, targets);
}

double dataset_unigram_entropy(const int32_t *tokens, size_t n, size_t V) {
    if (n == 0) return 0;
    size_t *cnt = rt_calloc(V, sizeof(size_t), "unigram counts");
    if (!cnt) return NAN;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] >= 0 && (size_t)tokens[i] < V) cnt[tokens[i]]++;
    double h = 0;
    for (size_t v = 0; v < V; v++) {
        if (!cnt[v]) continue;
        double p = (double)cnt[v] / (double)n;
        h -= p * log(p);
    }
    free(cnt);
    return h;
}
