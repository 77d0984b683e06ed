/*
 * kd_cache.c — the teacher cache: run a teacher once over a token stream and keep, for every
 * position, its top-k token ids, their log-probs and the log of the remaining mass, so that
 * students can be distilled later without the teacher (DistillKit's offline logits).
 *
 * The stream is cut into windows of T+1 tokens (window w = stream[w·T .. w·T+T]); the teacher
 * sees each window from its start, exactly as a distillation batch row does, so the cache
 * reproduces the live top-k teacher on those windows. One window is one zstd frame (with
 * the frame checksum on), so training decodes random windows independently. Inside a frame
 * every field is stored as byte planes (all low bytes, then all high bytes), which is what
 * lets zstd find the redundancy:
 *     tokens    (T+1) ids                     W bytes each (W = 2 if V <= 65536, else 4)
 *     ids       (T, k) top-k ids, by descending probability
 *     q0        (T) u16: round(-logprob_0 / step)
 *     q_rest    (T) u16: round(-log rest / step); 65535 = no rest mass
 *     deltas    (T, k-1) u8: q_i - q_{i-1} >= 0 (quantized log-probs are monotone); 255 escapes
 *     n_esc     u32, then n_esc u16 escaped deltas (byte planes)
 * Log-probs are quantized to `step` nats (default 1/64): each stored log-prob is within
 * step/2 of the teacher's, clamped at 65534·step.
 *
 * Container: a GGUF file (atomic write, bounds-checked reader) holding retort.kdcache.* keys,
 * the teacher's tokenizer (tokenizer.ggml.*, so a student can be built from the cache
 * alone), the frame offsets (u64 array) and the frames (u8 array).
 *
 * Under mpirun (src/train/dist.h) the windows are split into contiguous ranges, one per rank;
 * each rank compresses its frames and rank 0 gathers them in window order and writes the one
 * file, byte-identical to a single process's (a window's frame depends only on the window).
 *
 * What this is not: the loss (kd_loss.c) or the distillation loop (recipe.c).
 */
#include "distill.h"

#include "../train/dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define KD_CACHE_VERSION 1
#define Q_NONE 65535u
#define Q_MAX 65534u

/* ---------------------------------------------------------------- vocabularies */

uint64_t kd_vocab_hash(const tokenizer *tok) {
    size_t V = tokenizer_vocab_size(tok);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i <= V; i++) {
        size_t len = 0;
        const char *b = i < V ? tokenizer_token_bytes(tok, (int32_t)i, &len) : "";
        uint8_t hdr[8];
        uint64_t l = i < V ? (uint64_t)len : (uint64_t)V;
        for (int j = 0; j < 8; j++) hdr[j] = (uint8_t)(l >> (8 * j));
        for (int j = 0; j < 8; j++) h = (h ^ hdr[j]) * 1099511628211ull;
        for (size_t j = 0; b && j < len; j++) h = (h ^ (uint8_t)b[j]) * 1099511628211ull;
    }
    return h;
}

static void fmt_token(char *out, size_t cap, const tokenizer *tok, int32_t id) {
    size_t len = 0;
    const char *b = tokenizer_token_bytes(tok, id, &len);
    size_t o = 0;
    if (cap < 8) {
        if (cap) out[0] = 0;
        return;
    }
    out[o++] = '\'';
    for (size_t i = 0; b && i < len && o + 6 < cap; i++) {
        unsigned char ch = (unsigned char)b[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\') out[o++] = (char)ch;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
    }
    out[o++] = '\'';
    out[o] = 0;
}

int kd_vocab_check(const tokenizer *student, const char *student_name, const tokenizer *teacher,
                   const char *teacher_name) {
    size_t vs = tokenizer_vocab_size(student), vt = tokenizer_vocab_size(teacher);
    size_t n = RT_MIN(vs, vt);
    for (size_t i = 0; i < n; i++) {
        size_t ls, lt;
        const char *bs = tokenizer_token_bytes(student, (int32_t)i, &ls);
        const char *bt = tokenizer_token_bytes(teacher, (int32_t)i, &lt);
        if (ls != lt || (ls && memcmp(bs, bt, ls) != 0)) {
            char a[64], b[64];
            fmt_token(a, sizeof a, student, (int32_t)i);
            fmt_token(b, sizeof b, teacher, (int32_t)i);
            return RT_FAIL("the student and the teacher have different vocabularies: the student's (%s, "
                           "%zu tokens) has token %zu = %s where the teacher's (%s, %zu tokens) has %s. "
                           "White-box distillation compares the two distributions token by token, so "
                           "both must use the same tokenizer: create the student with the teacher's "
                           "tokenizer (retort distill does by default; or --tokenizer TEACHER.gguf), or "
                           "learn from the teacher's text instead (retort sft)",
                           student_name, vs, i, a, teacher_name, vt, b);
        }
    }
    if (vs != vt)
        return RT_FAIL("the student and the teacher have different vocabularies: the student's (%s) has "
                       "%zu tokens and the teacher's (%s) has %zu (the first %zu agree). White-box "
                       "distillation needs the same tokenizer on both sides: create the student with "
                       "the teacher's tokenizer (--tokenizer TEACHER.gguf), or use retort sft",
                       student_name, vs, teacher_name, vt, n);
    return 0;
}

/* ---------------------------------------------------------------- frame layout */

typedef struct {
    size_t T, k, W;
    size_t off_tokens, off_ids, off_q0, off_rest, off_delta, off_nesc, fixed; /* bytes */
} frame_layout;

static void layout_init(frame_layout *L, size_t T, size_t k, size_t V) {
    L->T = T;
    L->k = k;
    L->W = V <= 65536 ? 2 : 4;
    L->off_tokens = 0;
    L->off_ids = L->off_tokens + (T + 1) * L->W;
    L->off_q0 = L->off_ids + T * k * L->W;
    L->off_rest = L->off_q0 + 2 * T;
    L->off_delta = L->off_rest + 2 * T;
    L->off_nesc = L->off_delta + T * (k ? k - 1 : 0);
    L->fixed = L->off_nesc + 4;
}
static size_t layout_max(const frame_layout *L) { return L->fixed + 2 * L->T * (L->k ? L->k - 1 : 0); }

/* byte planes: value i of n, width w bytes, plane b at dst[b*n + i] */
static void put_planes(uint8_t *dst, size_t n, size_t w, size_t i, uint32_t v) {
    for (size_t b = 0; b < w; b++) dst[b * n + i] = (uint8_t)(v >> (8 * b));
}
static uint32_t get_planes(const uint8_t *src, size_t n, size_t w, size_t i) {
    uint32_t v = 0;
    for (size_t b = 0; b < w; b++) v |= (uint32_t)src[b * n + i] << (8 * b);
    return v;
}

static uint32_t quantize(float lp, float step) {
    if (!(lp > -INFINITY)) return Q_NONE;
    double q = floor(-(double)lp / (double)step + 0.5);
    if (q < 0) q = 0;
    if (q > Q_MAX) q = Q_MAX;
    return (uint32_t)q;
}

/* Encode one window into buf (capacity layout_max); returns the used size. */
static size_t frame_encode(const frame_layout *L, float step, const int32_t *tokens, const int32_t *ids,
                           const float *lps, const float *lp_rest, uint8_t *buf, uint16_t *esc) {
    size_t T = L->T, k = L->k, W = L->W;
    for (size_t i = 0; i <= T; i++) put_planes(buf + L->off_tokens, T + 1, W, i, (uint32_t)tokens[i]);
    for (size_t i = 0; i < T * k; i++) put_planes(buf + L->off_ids, T * k, W, i, (uint32_t)ids[i]);
    uint32_t n_esc = 0;
    for (size_t t = 0; t < T; t++) {
        const float *lp = lps + t * k;
        uint32_t prev = k ? quantize(lp[0], step) : 0;
        if (prev == Q_NONE) prev = Q_MAX;
        put_planes(buf + L->off_q0, T, 2, t, prev);
        put_planes(buf + L->off_rest, T, 2, t, quantize(lp_rest[t], step));
        for (size_t i = 1; i < k; i++) {
            uint32_t q = quantize(lp[i], step);
            if (q == Q_NONE) q = Q_MAX;
            if (q < prev) q = prev; /* the input is sorted; float ties cannot go backwards */
            uint32_t d = q - prev;
            prev = q;
            uint8_t *db = buf + L->off_delta + t * (k - 1) + (i - 1);
            if (d >= 255) {
                *db = 255;
                esc[n_esc++] = (uint16_t)d;
            } else {
                *db = (uint8_t)d;
            }
        }
    }
    put_planes(buf + L->off_nesc, 1, 4, 0, n_esc);
    for (uint32_t e = 0; e < n_esc; e++) put_planes(buf + L->fixed, n_esc, 2, e, esc[e]);
    return L->fixed + 2 * (size_t)n_esc;
}

static int frame_decode(const frame_layout *L, float step, size_t V, const uint8_t *buf, size_t len,
                        int32_t *tokens, int32_t *ids, float *lps, float *lp_rest, const char *where) {
    size_t T = L->T, k = L->k, W = L->W;
    if (len < L->fixed) return RT_FAIL("%s: frame is %zu bytes, expected at least %zu", where, len, L->fixed);
    uint32_t n_esc = get_planes(buf + L->off_nesc, 1, 4, 0);
    if (len != L->fixed + 2 * (size_t)n_esc)
        return RT_FAIL("%s: frame is %zu bytes but its %u escapes need %zu", where, len, n_esc,
                       L->fixed + 2 * (size_t)n_esc);
    for (size_t i = 0; i <= T; i++) {
        uint32_t v = get_planes(buf + L->off_tokens, T + 1, W, i);
        if (v >= V) return RT_FAIL("%s: token id %u outside the vocabulary (%zu)", where, v, V);
        if (tokens) tokens[i] = (int32_t)v;
    }
    for (size_t i = 0; i < T * k; i++) {
        uint32_t v = get_planes(buf + L->off_ids, T * k, W, i);
        if (v >= V) return RT_FAIL("%s: top-k id %u outside the vocabulary (%zu)", where, v, V);
        ids[i] = (int32_t)v;
    }
    uint32_t e = 0;
    for (size_t t = 0; t < T; t++) {
        uint32_t q = get_planes(buf + L->off_q0, T, 2, t);
        if (k) lps[t * k] = -(float)q * step;
        for (size_t i = 1; i < k; i++) {
            uint32_t d = buf[L->off_delta + t * (k - 1) + (i - 1)];
            if (d == 255) {
                if (e >= n_esc) return RT_FAIL("%s: more escaped deltas than the %u recorded", where, n_esc);
                d = get_planes(buf + L->fixed, n_esc, 2, e++);
            }
            q += d;
            lps[t * k + i] = -(float)q * step;
        }
        uint32_t qr = get_planes(buf + L->off_rest, T, 2, t);
        lp_rest[t] = qr == Q_NONE ? -INFINITY : -(float)qr * step;
        /* ids within a row must be distinct (the loss relies on it) */
        for (size_t i = 1; i < k; i++)
            for (size_t j = 0; j < i; j++)
                if (ids[t * k + i] == ids[t * k + j])
                    return RT_FAIL("%s: position %zu lists token %d twice", where, t, ids[t * k + i]);
    }
    if (e != n_esc) return RT_FAIL("%s: %u escaped deltas recorded, %u used", where, n_esc, e);
    return 0;
}

/* ---------------------------------------------------------------- writer */

static int set_info_keys(gguf_writer *w, const kd_cache_info *in, uint64_t payload) {
    int rc = gguf_set_str(w, "general.architecture", "retort-kdcache");
    if (!rc) rc = gguf_set_u32(w, "retort.kdcache.version", KD_CACHE_VERSION);
    if (!rc) rc = gguf_set_u64(w, "retort.kdcache.vocab_size", in->vocab_size);
    if (!rc) rc = gguf_set_u64(w, "retort.kdcache.top_k", in->top_k);
    if (!rc) rc = gguf_set_u64(w, "retort.kdcache.seq_len", in->seq_len);
    if (!rc) rc = gguf_set_u64(w, "retort.kdcache.n_windows", in->n_windows);
    if (!rc) rc = gguf_set_f32(w, "retort.kdcache.temperature", in->temperature);
    if (!rc) rc = gguf_set_f32(w, "retort.kdcache.lp_step", in->lp_step);
    if (!rc) rc = gguf_set_u64(w, "retort.kdcache.data_hash", in->data_hash);
    if (!rc) rc = gguf_set_u64(w, "retort.kdcache.vocab_hash", in->vocab_hash);
    if (!rc) rc = gguf_set_str(w, "retort.kdcache.teacher", in->teacher);
    if (!rc) rc = gguf_set_u64(w, "retort.kdcache.teacher_params", in->teacher_params);
    if (!rc) rc = gguf_set_u64(w, "retort.kdcache.payload_bytes", payload);
    return rc;
}

void kd_cache_build_defaults(kd_cache_build_opts *o) {
    memset(o, 0, sizeof *o);
    o->top_k = 64;
    o->seq_len = 256;
    o->batch = 8;
    o->temperature = 1.0f;
    o->lp_step = 1.0f / 64.0f;
    o->zstd_level = 9;
}

int kd_cache_build(model *teacher, const char *teacher_name, const int32_t *stream, size_t n,
                   const kd_cache_build_opts *o, const char *path, kd_cache_build_result *res) {
    memset(res, 0, sizeof *res);
    size_t V = teacher->cfg.vocab_size, T = o->seq_len, B = o->batch;
    size_t k = RT_MIN(o->top_k, V);
    if (!teacher->tok) return RT_FAIL("%s has no tokenizer; the cache stores the teacher's vocabulary", teacher_name);
    if (T == 0 || B == 0 || k == 0) return RT_FAIL("--seq-len, --batch and --top-k must be > 0");
    if (T > teacher->cfg.ctx_len)
        return RT_FAIL("--seq-len %zu exceeds the teacher's context length %zu", T, teacher->cfg.ctx_len);
    if (!(o->lp_step > 0 && o->lp_step <= 1))
        return RT_FAIL("--lp-step must be in (0, 1] nats; got %g", (double)o->lp_step);
    if (!(o->temperature > 0)) return RT_FAIL("--temperature must be > 0");
    if (n < T + 1) return RT_FAIL("the data has %zu tokens; a window needs --seq-len + 1 = %zu", n, T + 1);
    size_t nw = (n - 1) / T;
    if (o->max_windows && nw > o->max_windows) nw = o->max_windows;
    frame_layout L;
    layout_init(&L, T, k, V);
    size_t maxf = layout_max(&L), bound = ZSTD_compressBound(maxf);
    int nt = 1;
    nt = rt_omp_threads();
    int32_t *inputs = rt_malloc_array(B * T, sizeof(int32_t), "cache batch");
    int32_t *ids = rt_malloc_array(B * T * k, sizeof(int32_t), "cache top-k ids");
    float *lps = rt_malloc_array(B * T * k, sizeof(float), "cache top-k log-probs");
    float *rest = rt_malloc_array(B * T, sizeof(float), "cache rest mass");
    uint8_t *raw = rt_malloc_array((size_t)nt, maxf, "cache frame");
    uint16_t *esc = rt_malloc_array((size_t)nt * (T * k + 1), sizeof(uint16_t), "cache frame");
    uint8_t *comp = rt_malloc_array(B, bound, "cache compressed frames");
    size_t *comp_len = rt_calloc(B, sizeof(size_t), "cache compressed frames");
    uint64_t *offsets = rt_calloc(nw + 1, sizeof(uint64_t), "cache offsets");
    size_t lo, hi; /* this rank's windows */
    dist_split(nw, dist_size(), dist_rank(), &lo, &hi);
    rt_buf lens = {0}; /* (hi - lo) u64 frame lengths of this rank's windows */
    ZSTD_CCtx **cctx = rt_calloc((size_t)nt, sizeof *cctx, "zstd contexts");
    rt_buf blob = {0};
    gguf_writer *w = NULL;
    int rc = -1;
    if (!inputs || !ids || !lps || !rest || !raw || !esc || !comp || !comp_len || !offsets || !cctx) goto done;
    for (int t = 0; t < nt; t++) {
        cctx[t] = ZSTD_createCCtx();
        if (!cctx[t]) {
            RT_FAIL("zstd: cannot create a compression context");
            goto done;
        }
        ZSTD_CCtx_setParameter(cctx[t], ZSTD_c_compressionLevel, o->zstd_level);
        ZSTD_CCtx_setParameter(cctx[t], ZSTD_c_checksumFlag, 1);
    }
    rt_progress bar;
    rt_progress_init(&bar, "cache-teacher", hi - lo);
    double t0 = rt_now();
    for (size_t w0 = lo; w0 < hi; w0 += B) {
        size_t nb = RT_MIN(B, hi - w0);
        for (size_t b = 0; b < nb; b++) memcpy(inputs + b * T, stream + (w0 + b) * T, T * sizeof(int32_t));
        const float *logits = model_forward(teacher, inputs, nb, T);
        if (!logits) goto done;
        long long NR = (long long)(nb * T);
RT_OMP(parallel for schedule(static))
        for (long long r = 0; r < NR; r++)
            kd_topk_from_logits(logits + (size_t)r * V, V, o->temperature, k, ids + (size_t)r * k,
                                lps + (size_t)r * k, rest + (size_t)r);
        int bad = 0;
RT_OMP(parallel for schedule(dynamic, 1) reduction(| : bad))
        for (long long bb = 0; bb < (long long)nb; bb++) {
            size_t b = (size_t)bb;
            int th = 0;
            th = rt_omp_thread();
            uint8_t *rb = raw + (size_t)th * maxf;
            size_t used = frame_encode(&L, o->lp_step, stream + (w0 + b) * T, ids + b * T * k, lps + b * T * k,
                                       rest + b * T, rb, esc + (size_t)th * (T * k + 1));
            size_t cl = ZSTD_compress2(cctx[th], comp + b * bound, bound, rb, used);
            if (ZSTD_isError(cl)) bad = 1;
            else comp_len[b] = cl;
        }
        if (bad) {
            RT_FAIL("zstd: compression failed");
            goto done;
        }
        for (size_t b = 0; b < nb; b++) {
            uint64_t cl = comp_len[b];
            if (rt_buf_append(&blob, comp + b * bound, comp_len[b]) || rt_buf_append(&lens, &cl, sizeof cl))
                goto done;
        }
        if (!o->quiet) {
            char extra[96];
            snprintf(extra, sizeof extra, "%.1f bytes/token",
                     (double)blob.len / (double)((w0 + nb - lo) * T));
            rt_progress_update(&bar, w0 + nb - lo, extra);
        }
    }
    if (!o->quiet) rt_progress_finish(&bar, NULL);
    res->n_windows = nw;
    res->n_positions = nw * T;
    if (dist_size() > 1) { /* rank 0 collects every rank's frames, in window order */
        rt_buf all_blob = {0}, all_lens = {0};
        int g = dist_gather_bytes(blob.data, blob.len, &all_blob, 0) ||
                dist_gather_bytes(lens.data, lens.len, &all_lens, 0);
        rt_buf_free(&blob);
        rt_buf_free(&lens);
        blob = all_blob;
        lens = all_lens;
        if (g) goto done;
        if (dist_rank() != 0) {
            res->seconds = rt_now() - t0;
            rc = 0;
            goto done;
        }
    }
    if (lens.len != nw * sizeof(uint64_t)) {
        RT_FAIL("teacher cache: gathered %zu frame lengths for %zu windows", lens.len / sizeof(uint64_t), nw);
        goto done;
    }
    for (size_t i = 0; i < nw; i++) {
        uint64_t cl;
        memcpy(&cl, lens.data + i * sizeof cl, sizeof cl);
        offsets[i + 1] = offsets[i] + cl;
    }
    kd_cache_info in;
    memset(&in, 0, sizeof in);
    in.vocab_size = V;
    in.top_k = k;
    in.seq_len = T;
    in.n_windows = nw;
    in.temperature = o->temperature;
    in.lp_step = o->lp_step;
    in.data_hash = rt_fnv1a64(stream, (nw * T + 1) * sizeof(int32_t));
    in.vocab_hash = kd_vocab_hash(teacher->tok);
    snprintf(in.teacher, sizeof in.teacher, "%s", teacher_name ? teacher_name : "");
    in.teacher_params = teacher->n_params;
    w = gguf_writer_new();
    if (!w) goto done;
    if (set_info_keys(w, &in, blob.len) || tokenizer_to_gguf(teacher->tok, w)) goto done;
    if (gguf_set_arr_data(w, "retort.kdcache.offsets", GGUF_TYPE_UINT64, offsets, nw + 1)) goto done;
    if (gguf_set_arr_data(w, "retort.kdcache.frames", GGUF_TYPE_UINT8, blob.data ? blob.data : "", blob.len))
        goto done;
    if (gguf_writer_write(w, path)) goto done;
    int64_t fsz = rt_file_size(path);
    if (fsz < 0) goto done;
    res->payload_bytes = blob.len;
    res->file_bytes = (uint64_t)fsz;
    res->seconds = rt_now() - t0;
    rc = 0;
done:
    if (cctx)
        for (int t = 0; t < nt; t++) ZSTD_freeCCtx(cctx[t]);
    free(cctx);
    gguf_writer_free(w);
    rt_buf_free(&blob);
    rt_buf_free(&lens);
    free(inputs);
    free(ids);
    free(lps);
    free(rest);
    free(raw);
    free(esc);
    free(comp);
    free(comp_len);
    free(offsets);
    return rc;
}

/* ---------------------------------------------------------------- reader */

struct kd_cache {
    gguf_ctx *g;
    kd_cache_info info;
    frame_layout L;
    const uint8_t *frames;   /* into the mapping */
    size_t frames_len;
    uint64_t *offsets;       /* (n_windows + 1), copied out (the mapping may be unaligned) */
    uint8_t *raw;            /* (layout_max) decompression buffer */
    ZSTD_DCtx *dctx;
};

static int req_u64(const gguf_ctx *g, const char *key, uint64_t *v) {
    int r = gguf_get_u64(g, key, v);
    if (r == 1) return RT_FAIL("%s: not a retort teacher cache (missing %s)", gguf_path(g), key);
    return r;
}

int kd_cache_open(kd_cache **out, const char *path) {
    *out = NULL;
    kd_cache *c = rt_calloc(1, sizeof *c, "teacher cache");
    if (!c) return -1;
    if (gguf_open(&c->g, path)) {
        free(c);
        return -1;
    }
    gguf_ctx *g = c->g;
    uint32_t ver = 0;
    uint64_t V, k, T, nw, dh, vh, tp, payload;
    float temp, step;
    const char *s;
    size_t slen;
    if (gguf_get_u32(g, "retort.kdcache.version", &ver) != 0) {
        RT_FAIL("%s: not a retort teacher cache (no retort.kdcache.version); make one with retort cache-teacher",
                path);
        goto fail;
    }
    if (ver != KD_CACHE_VERSION) {
        RT_FAIL("%s: teacher cache version %u; this retort reads version %d", path, ver, KD_CACHE_VERSION);
        goto fail;
    }
    if (req_u64(g, "retort.kdcache.vocab_size", &V) || req_u64(g, "retort.kdcache.top_k", &k) ||
        req_u64(g, "retort.kdcache.seq_len", &T) || req_u64(g, "retort.kdcache.n_windows", &nw) ||
        req_u64(g, "retort.kdcache.data_hash", &dh) || req_u64(g, "retort.kdcache.vocab_hash", &vh) ||
        req_u64(g, "retort.kdcache.teacher_params", &tp) || req_u64(g, "retort.kdcache.payload_bytes", &payload))
        goto fail;
    if (gguf_get_f32(g, "retort.kdcache.temperature", &temp) || gguf_get_f32(g, "retort.kdcache.lp_step", &step)) {
        RT_FAIL("%s: missing or malformed retort.kdcache.temperature / lp_step", path);
        goto fail;
    }
    if (V == 0 || V > (1u << 30) || k == 0 || k > V || T == 0 || T > (1u << 20) || !(temp > 0) ||
        !(step > 0 && step <= 1)) {
        RT_FAIL("%s: teacher cache header is inconsistent (vocab %llu, top_k %llu, seq_len %llu, "
                "temperature %g, lp_step %g)",
                path, (unsigned long long)V, (unsigned long long)k, (unsigned long long)T, (double)temp,
                (double)step);
        goto fail;
    }
    c->info.vocab_size = V;
    c->info.top_k = k;
    c->info.seq_len = T;
    c->info.n_windows = nw;
    c->info.temperature = temp;
    c->info.lp_step = step;
    c->info.data_hash = dh;
    c->info.vocab_hash = vh;
    c->info.teacher_params = tp;
    if (gguf_get_str(g, "retort.kdcache.teacher", &s, &slen) == 0)
        snprintf(c->info.teacher, sizeof c->info.teacher, "%.*s", (int)RT_MIN(slen, sizeof c->info.teacher - 1), s);
    gguf_type et;
    size_t n;
    const void *d;
    if (gguf_get_arr_data(g, "retort.kdcache.offsets", &et, &n, &d) != 0 || et != GGUF_TYPE_UINT64 ||
        n != nw + 1) {
        RT_FAIL("%s: retort.kdcache.offsets must be %llu u64 values", path, (unsigned long long)(nw + 1));
        goto fail;
    }
    c->offsets = rt_malloc_array(n, sizeof(uint64_t), "cache offsets");
    if (!c->offsets) goto fail;
    memcpy(c->offsets, d, n * sizeof(uint64_t));
    if (gguf_get_arr_data(g, "retort.kdcache.frames", &et, &n, &d) != 0 || et != GGUF_TYPE_UINT8) {
        RT_FAIL("%s: retort.kdcache.frames (u8 array) is missing", path);
        goto fail;
    }
    c->frames = d;
    c->frames_len = n;
    c->info.payload_bytes = n;
    if (c->offsets[0] != 0 || c->offsets[nw] != n) {
        RT_FAIL("%s: frame offsets do not span the %zu frame bytes", path, n);
        goto fail;
    }
    for (size_t i = 0; i < nw; i++)
        if (c->offsets[i + 1] < c->offsets[i]) {
            RT_FAIL("%s: frame offsets decrease at window %zu", path, i);
            goto fail;
        }
    layout_init(&c->L, T, k, V);
    c->raw = rt_malloc(layout_max(&c->L), "cache frame");
    c->dctx = ZSTD_createDCtx();
    if (!c->raw || !c->dctx) {
        if (!c->dctx) RT_FAIL("zstd: cannot create a decompression context");
        goto fail;
    }
    *out = c;
    return 0;
fail:
    kd_cache_close(c);
    return -1;
}

void kd_cache_close(kd_cache *c) {
    if (!c) return;
    gguf_close(c->g);
    free(c->offsets);
    free(c->raw);
    ZSTD_freeDCtx(c->dctx);
    free(c);
}

const kd_cache_info *kd_cache_get_info(const kd_cache *c) { return &c->info; }

int kd_cache_load_tokenizer(const kd_cache *c, tokenizer **tok) { return tokenizer_from_gguf(tok, c->g); }

int kd_cache_read_window(kd_cache *c, size_t w, int32_t *tokens, int32_t *ids, float *logprobs,
                         float *lp_rest) {
    char where[600];
    snprintf(where, sizeof where, "%s: window %zu", gguf_path(c->g), w);
    if (w >= c->info.n_windows)
        return RT_FAIL("%s: out of range (the cache has %zu windows)", where, c->info.n_windows);
    const uint8_t *src = c->frames + c->offsets[w];
    size_t len = (size_t)(c->offsets[w + 1] - c->offsets[w]);
    size_t got = ZSTD_decompressDCtx(c->dctx, c->raw, layout_max(&c->L), src, len);
    if (ZSTD_isError(got)) return RT_FAIL("%s: corrupt frame (zstd: %s)", where, ZSTD_getErrorName(got));
    return frame_decode(&c->L, c->info.lp_step, c->info.vocab_size, c->raw, got, tokens, ids, logprobs,
                        lp_rest, where);
}
