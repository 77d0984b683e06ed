/*
 * model_gguf.c — the model file: map llama.cpp's GGUF keys ({arch}.*, arch llama / mistral /
 * qwen2 / qwen3) and tensor names onto model_config and the flat parameter buffer, both ways.
 * Not the GGUF container itself (src/formats/gguf.c) and not the tokenizer keys
 * (src/tokenizer), which this calls.
 */
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const model_default_chat_template =
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

/* "{arch}.suffix" into buf */
static const char *akey(char *buf, size_t cap, const char *arch, const char *suffix) {
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

static int need_u32(const gguf_ctx *g, const char *arch, const char *suffix, size_t *out) {
    char key[128];
    uint32_t v;
    int rc = gguf_get_u32(g, akey(key, sizeof key, arch, suffix), &v);
    if (rc == 1) return RT_FAIL("%s: missing key '%s' (needed for a %s model)", gguf_path(g), key, arch);
    if (rc) return RT_FAIL("%s: %s", gguf_path(g), rt_errmsg());
    *out = v;
    return 0;
}

/* Optional keys: 0 = found or absent (out keeps its default), -1 = malformed. */
static int opt_u32(const gguf_ctx *g, const char *arch, const char *suffix, size_t *out) {
    char key[128];
    uint32_t v;
    int rc = gguf_get_u32(g, akey(key, sizeof key, arch, suffix), &v);
    if (rc < 0) return RT_FAIL("%s: %s", gguf_path(g), rt_errmsg());
    if (rc == 0) *out = v;
    return 0;
}

static int opt_f32(const gguf_ctx *g, const char *arch, const char *suffix, float *out) {
    char key[128];
    float v;
    int rc = gguf_get_f32(g, akey(key, sizeof key, arch, suffix), &v);
    if (rc < 0) return RT_FAIL("%s: %s", gguf_path(g), rt_errmsg());
    if (rc == 0) *out = v;
    return 0;
}

static int has_tensor(const gguf_ctx *g, const char *name) { return gguf_find_tensor(g, name) >= 0; }

/* The config from {arch}.* keys and which optional tensors the file has. */
static int config_from_gguf(const gguf_ctx *g, model_config *c, char prefix[16]) {
    const char *path = gguf_path(g), *arch_s;
    size_t arch_len;
    int rc = gguf_get_str(g, "general.architecture", &arch_s, &arch_len);
    if (rc == 1) return RT_FAIL("%s: missing key 'general.architecture'", path);
    if (rc) return -1;
    int arch = model_arch_from_name(arch_s, arch_len);
    if (arch < 0)
        return RT_FAIL("%s: general.architecture is '%.*s'; retort reads llama, mistral, qwen2 and "
                       "qwen3 models",
                       path, (int)RT_MIN(arch_len, 64), arch_s);
    /* keys are prefixed by the name as written ("mistral.*" for a mistral file) */
    snprintf(prefix, 16, "%.*s", (int)RT_MIN(arch_len, 15), arch_s);
    const char *a = prefix;
    memset(c, 0, sizeof *c);
    c->arch = arch;
    if (need_u32(g, a, "embedding_length", &c->dim) || need_u32(g, a, "block_count", &c->n_layers) ||
        need_u32(g, a, "attention.head_count", &c->n_heads) ||
        need_u32(g, a, "feed_forward_length", &c->ffn_dim) ||
        need_u32(g, a, "context_length", &c->ctx_len))
        return -1;
    c->n_kv_heads = c->n_heads;
    c->norm_eps = 1e-5f;
    c->rope_base = 10000.0f;
    size_t kl = 0, vl = 0;
    if (opt_u32(g, a, "attention.head_count_kv", &c->n_kv_heads) ||
        opt_f32(g, a, "attention.layer_norm_rms_epsilon", &c->norm_eps) ||
        opt_f32(g, a, "rope.freq_base", &c->rope_base) ||
        opt_u32(g, a, "attention.key_length", &kl) || opt_u32(g, a, "attention.value_length", &vl))
        return -1;
    if (kl && vl && kl != vl)
        return RT_FAIL("%s: %s.attention.key_length %zu differs from value_length %zu; retort needs "
                       "equal key and value head sizes",
                       path, a, kl, vl);
    c->head_dim = kl ? kl : vl;
    char key[128];
    const char *st;
    size_t st_len;
    rc = gguf_get_str(g, akey(key, sizeof key, a, "rope.scaling.type"), &st, &st_len);
    if (rc < 0) return -1;
    if (rc == 0 && st_len == 6 && memcmp(st, "linear", 6) == 0) {
        c->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
        c->rope_factor = 0;
        if (opt_f32(g, a, "rope.scaling.factor", &c->rope_factor)) return -1;
        if (!(c->rope_factor > 0))
            return RT_FAIL("%s: linear RoPE scaling without a positive %s.rope.scaling.factor", path, a);
    } else if (rc == 0 && !(st_len == 4 && memcmp(st, "none", 4) == 0)) {
        return RT_FAIL("%s: %s is '%.*s'; retort supports linear RoPE scaling and Llama 3's "
                       "(rope_freqs.weight), no other",
                       path, key, (int)RT_MIN(st_len, 64), st);
    }
    /* retort's own record of Llama 3 scaling parameters (for the HF export) */
    if (gguf_find_key(g, "retort.rope.llama3.factor") >= 0) {
        size_t orig = 0;
        c->rope_scaling = MODEL_ROPE_SCALING_LLAMA3;
        if (gguf_get_f32(g, "retort.rope.llama3.factor", &c->rope_factor) ||
            gguf_get_f32(g, "retort.rope.llama3.low_freq_factor", &c->rope_low_freq_factor) ||
            gguf_get_f32(g, "retort.rope.llama3.high_freq_factor", &c->rope_high_freq_factor) ||
            opt_u32(g, "retort", "rope.llama3.original_context_length", &orig))
            return RT_FAIL("%s: malformed retort.rope.llama3.* keys", path);
        c->rope_orig_ctx = orig;
    }
    c->tied = !has_tensor(g, "output.weight");
    if (arch == MODEL_ARCH_LLAMA) c->qkv_bias = has_tensor(g, "blk.0.attn_q.bias");
    return 0;
}

static int vocab_from_gguf(const gguf_ctx *g, const char *a, model_config *c, tokenizer **tok) {
    *tok = NULL;
    if (gguf_find_key(g, "tokenizer.ggml.tokens") >= 0) {
        if (tokenizer_from_gguf(tok, g)) return -1;
        c->vocab_size = tokenizer_vocab_size(*tok);
        return 0;
    }
    size_t v = 0;
    if (opt_u32(g, a, "vocab_size", &v)) return -1;
    if (v) {
        c->vocab_size = v;
        return 0;
    }
    int64_t ti = gguf_find_tensor(g, "token_embd.weight");
    gguf_tensor_info info;
    if (ti < 0 || gguf_tensor_info_at(g, (size_t)ti, &info))
        return RT_FAIL("%s: no tokenizer, no %s.vocab_size and no token_embd.weight", gguf_path(g), a);
    c->vocab_size = info.ne[1];
    return 0;
}

/* llama.cpp's converter stores Llama 3 scaling only as the factors; recover the parameters
 * (for config.json on export) when Meta's published ones (low 1, high 4, original context
 * 8192; factor = the largest divisor) reproduce every factor to 1e-6. Otherwise the config
 * keeps NONE: the model still runs with the file's factors, and the HF export refuses. */
static void infer_llama3(model_config *c, const float *f) {
    size_t half = c->head_dim / 2;
    model_config t = *c;
    t.rope_scaling = MODEL_ROPE_SCALING_LLAMA3;
    t.rope_factor = 1.0f, t.rope_low_freq_factor = 1.0f, t.rope_high_freq_factor = 4.0f;
    t.rope_orig_ctx = 8192;
    for (size_t i = 0; i < half; i++) t.rope_factor = f[i] > t.rope_factor ? f[i] : t.rope_factor;
    float want[4096];
    if (half > RT_ARRAY_LEN(want) || c->arch != MODEL_ARCH_LLAMA) return;
    model_rope_scaling_factors(&t, want);
    for (size_t i = 0; i < half; i++)
        if (fabsf(want[i] - f[i]) > 1e-6f * f[i]) return;
    *c = t;
}

/* Every tensor the config needs, by name and shape; then refuse model tensors it would
 * ignore (another layout: output biases, MoE experts, ...). */
static int tensors_from_gguf(model *m, const gguf_ctx *g, const uint8_t *skip) {
    const char *path = gguf_path(g);
    model_param_info *tab;
    size_t n, packed = 0;
    if (model_param_table(&m->cfg, &tab, &n)) return -1;
    for (size_t i = 0; i < n; i++) {
        if (!has_tensor(g, tab[i].name)) {
            RT_FAIL("%s: missing tensor '%s' (a %s model with this config has %zu tensors)", path,
                    tab[i].name, model_arch_name(m->cfg.arch), n);
            free(tab);
            return -1;
        }
        if (skip && skip[i]) continue; /* decode-only: kept as blocks (model_quant_load) */
        uint64_t ne[2] = {tab[i].cols, tab[i].rows};
        float *dst = m->params + (skip ? packed : tab[i].offset);
        packed += tab[i].rows * tab[i].cols;
        if (gguf_read_tensor_f32(g, tab[i].name, dst, tab[i].rows * tab[i].cols, ne, (uint32_t)tab[i].n_dims)) {
            free(tab);
            return -1;
        }
    }
    size_t nt = gguf_n_tensors(g);
    for (size_t t = 0; t < nt; t++) {
        gguf_tensor_info info;
        if (gguf_tensor_info_at(g, t, &info)) break;
        /* retort's own extra tensors (a checkpoint's opt.m / opt.v) are not model tensors */
        int known = strcmp(info.name, "rope_freqs.weight") == 0 ||
                    strncmp(info.name, "opt.", 4) == 0 || strncmp(info.name, "retort.", 7) == 0;
        for (size_t i = 0; i < n && !known; i++) known = strcmp(info.name, tab[i].name) == 0;
        if (!known) {
            RT_FAIL("%s: tensor '%s' is not part of a %s model as retort runs it (unsupported "
                    "layout)",
                    path, info.name, model_arch_name(m->cfg.arch));
            free(tab);
            return -1;
        }
    }
    free(tab);
    /* Llama 3 RoPE scaling as llama.cpp's converter stores it: theta divisors (hd/2) */
    if (has_tensor(g, "rope_freqs.weight")) {
        size_t half = m->cfg.head_dim / 2;
        float *f = rt_malloc_array(half, sizeof(float), "RoPE factors");
        uint64_t ne[1] = {half};
        if (!f || gguf_read_tensor_f32(g, "rope_freqs.weight", f, half, ne, 1) ||
            model_set_rope_factors(m, f)) {
            free(f);
            return -1;
        }
        if (m->cfg.rope_scaling == MODEL_ROPE_SCALING_NONE) infer_llama3(&m->cfg, f);
        free(f);
    }
    return 0;
}

void model_quant_free(model_quant *q) {
    if (!q) return;
    free(q->mem);
    free(q->layers);
    free(q);
}

/* Where each decode matrix comes from: its GGUF name. */
static void quant_slots(model_quant *q, size_t l, qmatrix **slot, const char **suffix) {
    static const char *const names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                         "ffn_down"};
    model_qlayer *ql = &q->layers[l];
    qmatrix *s[7] = {&ql->wq, &ql->wk, &ql->wv, &ql->wo, &ql->w_gate, &ql->w_up, &ql->w_down};
    for (int i = 0; i < 7; i++) {
        slot[i] = s[i];
        suffix[i] = names[i];
    }
}

/* Keep the block-quantized matrices of g encoded for the decoder (m->quant; stays NULL when
 * the file has none). Shapes were checked when the same tensors were decoded into params. */
static int model_quant_load(model *m, const gguf_ctx *g) {
    size_t L = m->cfg.n_layers, total = 0;
    model_quant *q = rt_calloc(1, sizeof *q, "quantized weights");
    if (!q || !(q->layers = rt_calloc(L ? L : 1, sizeof *q->layers, "quantized layers"))) {
        model_quant_free(q);
        return -1;
    }
    for (int pass = 0; pass < 2; pass++) { /* 1: sizes; 2: copy */
        size_t off = 0;
        for (size_t l = 0; l <= L; l++) {
            qmatrix *slot[7];
            const char *suffix[7];
            char name[64];
            size_t ns = 1;
            if (l < L) {
                quant_slots(q, l, slot, suffix);
                ns = 7;
            } else {
                slot[0] = &q->output;
                suffix[0] = m->cfg.tied ? "token_embd.weight" : "output.weight";
                slot[1] = &q->token_embd; /* decode-only, untied: the embedding's own blocks */
                suffix[1] = "token_embd.weight";
                ns = m->decode_only && !m->cfg.tied ? 2 : 1;
            }
            for (size_t i = 0; i < ns; i++) {
                if (l < L) snprintf(name, sizeof name, "blk.%zu.%s.weight", l, suffix[i]);
                else snprintf(name, sizeof name, "%s", suffix[i]);
                int64_t ti = gguf_find_tensor(g, name);
                gguf_tensor_info info;
                if (ti < 0 || gguf_tensor_info_at(g, (size_t)ti, &info) || !qtype_is_block(info.type)) continue;
                if (pass == 0) {
                    total += (size_t)info.nbytes;
                    continue;
                }
                memcpy((uint8_t *)q->mem + off, info.data, (size_t)info.nbytes);
                *slot[i] = (qmatrix){info.type, (uint8_t *)q->mem + off, (size_t)info.ne[1], (size_t)info.ne[0],
                                     qtype_row_bytes(info.type, (size_t)info.ne[0])};
                off += (size_t)info.nbytes;
            }
        }
        if (pass == 0 && total == 0) {
            model_quant_free(q); /* nothing quantized: decode stays fp32 */
            return 0;
        }
        if (pass == 0 && !(q->mem = rt_malloc(total, "quantized weights"))) {
            model_quant_free(q);
            return -1;
        }
    }
    if (m->decode_only && m->cfg.tied) q->token_embd = q->output;
    m->quant = q;
    return 0;
}

/* Every tensor the config implies is in the file with the config's shape — checked before the
 * model's memory is allocated, so a small file that declares a huge model (a fuzzed 27 KB GGUF
 * with a 900 MB config) is refused by name at once rather than after zeroing the memory. The
 * reader already bounds-checked each tensor's data against the file. */
static int check_tensor_shapes(const gguf_ctx *g, const model_config *c, const char *path) {
    model_param_info *tab;
    size_t n;
    if (model_param_table(c, &tab, &n)) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t want[2] = {tab[i].cols, tab[i].rows};
        int64_t ti = gguf_find_tensor(g, tab[i].name);
        gguf_tensor_info info;
        if (ti < 0 || gguf_tensor_info_at(g, (size_t)ti, &info)) {
            rc = RT_FAIL("%s: missing tensor '%s' (a %s model with this config has %zu tensors)", path, tab[i].name,
                         model_arch_name(c->arch), n);
            break;
        }
        uint64_t have_n = 1, want_n = 1;
        for (uint32_t d = 0; d < info.n_dims && d < GGUF_MAX_DIMS; d++) have_n *= info.ne[d];
        for (uint32_t d = 0; d < (uint32_t)tab[i].n_dims && d < 2; d++) want_n *= want[d];
        if (have_n != want_n || info.ne[0] != want[0])
            rc = RT_FAIL("%s: tensor %s has %llu x %llu elements but the config (dim %zu, ffn %zu, vocab %zu) "
                         "needs %llu x %llu",
                         path, tab[i].name, (unsigned long long)info.ne[0],
                         (unsigned long long)(info.ne[0] ? have_n / info.ne[0] : 0), c->dim, c->ffn_dim,
                         c->vocab_size, (unsigned long long)want[0],
                         (unsigned long long)(tab[i].n_dims > 1 ? want[1] : 1));
    }
    free(tab);
    return rc;
}

static int block_tensor(const gguf_ctx *g, const char *name) {
    int64_t ti = gguf_find_tensor(g, name);
    gguf_tensor_info info;
    return ti >= 0 && gguf_tensor_info_at(g, (size_t)ti, &info) == 0 && qtype_is_block(info.type);
}

/* Which tensors a decode-only load keeps only as blocks (model_param_table order): the
 * block-quantized matrices, a fused group (q|k|v, gate|up) only when all its members are. */
static int decode_skip(const gguf_ctx *g, const model_config *c, uint8_t **out) {
    static const char *const groups[][3] = {{"attn_q", "attn_k", "attn_v"}, {"ffn_gate", "ffn_up", NULL},
                                            {"attn_output", NULL, NULL}, {"ffn_down", NULL, NULL}};
    model_param_info *tab;
    size_t n;
    if (model_param_table(c, &tab, &n)) return -1;
    uint8_t *skip = rt_calloc(n ? n : 1, 1, "decode-only tensor flags");
    for (size_t i = 0; skip && i < n; i++) {
        size_t l;
        char part[32], name[64];
        if (tab[i].n_dims != 2) continue;
        if (sscanf(tab[i].name, "blk.%zu.%31[^.].weight", &l, part) != 2) {
            skip[i] = (uint8_t)block_tensor(g, tab[i].name); /* token_embd, output */
            continue;
        }
        for (size_t gi = 0; gi < RT_ARRAY_LEN(groups); gi++) {
            int member = 0, all = 1;
            for (int k = 0; k < 3 && groups[gi][k]; k++) {
                member |= strcmp(part, groups[gi][k]) == 0;
                snprintf(name, sizeof name, "blk.%zu.%s.weight", l, groups[gi][k]);
                all &= block_tensor(g, name);
            }
            if (member) skip[i] = (uint8_t)all;
        }
    }
    free(tab);
    *out = skip;
    return skip ? 0 : -1;
}

static int load_gguf(model **out, const gguf_ctx *g, int decode_only);

int model_from_gguf(model **out, const gguf_ctx *g) { return load_gguf(out, g, 0); }
int model_from_gguf_decode_only(model **out, const gguf_ctx *g) { return load_gguf(out, g, 1); }

static int load_gguf(model **out, const gguf_ctx *g, int decode_only) {
    *out = NULL;
    const char *path = gguf_path(g);
    char a[16];
    model_config c;
    tokenizer *tok = NULL;
    if (config_from_gguf(g, &c, a) || vocab_from_gguf(g, a, &c, &tok)) return -1;
    if (model_config_validate(&c)) {
        tokenizer_free(tok);
        return RT_FAIL("%s: %s", path, rt_errmsg());
    }
    size_t rd = 0;
    if (opt_u32(g, a, "rope.dimension_count", &rd) || (rd && rd != c.head_dim)) {
        tokenizer_free(tok);
        return rd == 0 ? -1
                       : RT_FAIL("%s: %s.rope.dimension_count is %zu but the head dimension is %zu; "
                                 "partial rotary embeddings are not supported",
                                 path, a, rd, c.head_dim);
    }
    if (check_tensor_shapes(g, &c, path)) {
        tokenizer_free(tok);
        return -1;
    }
    model *m;
    uint8_t *skip = NULL;
    if (decode_only && decode_skip(g, &c, &skip)) {
        tokenizer_free(tok);
        return -1;
    }
    if (model_create_sparse(&m, &c, tok, skip)) {
        free(skip);
        tokenizer_free(tok);
        return RT_FAIL("%s: %s", path, rt_errmsg());
    }
    int trc = tensors_from_gguf(m, g, skip);
    free(skip);
    if (trc) {
        model_free(m);
        return -1;
    }
    if (model_quant_load(m, g)) {
        model_free(m);
        return -1;
    }
    const char *tmpl;
    size_t tlen;
    int rc = gguf_get_str(g, "tokenizer.chat_template", &tmpl, &tlen);
    if (rc == 0) {
        m->chat_template = rt_malloc(tlen + 1, "chat template");
        if (!m->chat_template) {
            model_free(m);
            return -1;
        }
        memcpy(m->chat_template, tmpl, tlen);
        m->chat_template[tlen] = '\0';
    } else if (rc < 0) {
        model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int model_load(model **out, const char *path) {
    gguf_ctx *g;
    if (gguf_open(&g, path)) return -1;
    int rc = model_from_gguf(out, g);
    gguf_close(g);
    return rc;
}

int model_load_decode_only(model **out, const char *path) {
    gguf_ctx *g;
    if (gguf_open(&g, path)) return -1;
    int rc = model_from_gguf_decode_only(out, g);
    gguf_close(g);
    return rc;
}

static int config_to_gguf(const model_config *c, gguf_writer *w, int f16) {
    const char *a = model_arch_name(c->arch);
    char k[128];
#define U32(suffix, v) gguf_set_u32(w, akey(k, sizeof k, a, suffix), (uint32_t)(v))
#define F32(suffix, v) gguf_set_f32(w, akey(k, sizeof k, a, suffix), (v))
    if (gguf_set_str(w, "general.architecture", a) || gguf_set_str(w, "general.name", "retort") ||
        gguf_set_u32(w, "general.file_type", f16 ? 1 : 0) || U32("context_length", c->ctx_len) ||
        U32("embedding_length", c->dim) || U32("block_count", c->n_layers) ||
        U32("feed_forward_length", c->ffn_dim) || U32("attention.head_count", c->n_heads) ||
        U32("attention.head_count_kv", c->n_kv_heads) ||
        F32("attention.layer_norm_rms_epsilon", c->norm_eps) || F32("rope.freq_base", c->rope_base) ||
        U32("rope.dimension_count", c->head_dim) || U32("vocab_size", c->vocab_size))
        return -1;
    /* key/value head sizes only where they differ from dim/heads, as llama.cpp's converter */
    if (c->head_dim * c->n_heads != c->dim &&
        (U32("attention.key_length", c->head_dim) || U32("attention.value_length", c->head_dim)))
        return -1;
#undef U32
#undef F32
    if (c->rope_scaling == MODEL_ROPE_SCALING_LINEAR &&
        (gguf_set_str(w, akey(k, sizeof k, a, "rope.scaling.type"), "linear") ||
         gguf_set_f32(w, akey(k, sizeof k, a, "rope.scaling.factor"), c->rope_factor)))
        return -1;
    if (c->rope_scaling == MODEL_ROPE_SCALING_LLAMA3 &&
        (gguf_set_f32(w, "retort.rope.llama3.factor", c->rope_factor) ||
         gguf_set_f32(w, "retort.rope.llama3.low_freq_factor", c->rope_low_freq_factor) ||
         gguf_set_f32(w, "retort.rope.llama3.high_freq_factor", c->rope_high_freq_factor) ||
         gguf_set_u32(w, "retort.rope.llama3.original_context_length", (uint32_t)c->rope_orig_ctx)))
        return -1;
    return 0;
}

int model_to_gguf(const model *m, gguf_writer *w, int f16) {
    const model_config *c = &m->cfg;
    if (model_require_full(m, "model_to_gguf")) return -1;
    if (config_to_gguf(c, w, f16)) return -1;
    if (m->tok && tokenizer_to_gguf(m->tok, w)) return -1;
    /* retort's default template names retort's own chat tokens: only a vocabulary that has
     * them gets it (an imported tokenizer without a template gets none, as llama.cpp's) */
    const char *tmpl = m->chat_template;
    if (!tmpl && m->tok && tokenizer_special_id(m->tok, "<|user|>") >= 0 &&
        tokenizer_special_id(m->tok, "<|assistant|>") >= 0)
        tmpl = model_default_chat_template;
    if (tmpl && gguf_set_str(w, "tokenizer.chat_template", tmpl)) return -1;
    model_param_info *tab;
    size_t n;
    if (model_param_table(c, &tab, &n)) return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t ne[2] = {tab[i].cols, tab[i].rows};
        gguf_dtype t = (f16 && tab[i].n_dims == 2) ? GGUF_DTYPE_F16 : GGUF_DTYPE_F32;
        if (gguf_add_tensor(w, tab[i].name, t, (uint32_t)tab[i].n_dims, ne, m->params + tab[i].offset)) {
            free(tab);
            return -1;
        }
    }
    free(tab);
    uint64_t ne[1] = {c->head_dim / 2};
    /* Llama 3 factors as llama.cpp's converter stores them (linear scaling is a key instead) */
    if (m->rope_factors && c->rope_scaling != MODEL_ROPE_SCALING_LINEAR && gguf_add_tensor(w, "rope_freqs.weight", GGUF_DTYPE_F32, 1, ne, m->rope_factors))
        return -1;
    return 0;
}

int model_save(const model *m, const char *path) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return -1;
    int rc = model_to_gguf(m, w, 0);
    if (rc == 0) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}
