/*
 * model_gguf.c — the model file: map llama.cpp's "llama" GGUF keys and tensor names onto
 * model_config and the flat parameter buffer, both ways.
 * Not the GGUF container itself (src/formats/gguf.c) and not the tokenizer keys
 * (src/tokenizer), which this calls.
 */
#include "model_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const model_default_chat_template =
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

static int need_u32(const gguf_ctx *g, const char *key, size_t *out) {
    uint32_t v;
    int rc = gguf_get_u32(g, key, &v);
    if (rc == 1)
        return RT_FAIL("%s: missing key '%s' (is this a llama-architecture model file?)",
                       gguf_path(g), key);
    if (rc) return RT_FAIL("%s: %s", gguf_path(g), rt_errmsg());
    *out = v;
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
            rc = RT_FAIL("%s: tensor %s is missing (the config needs it)", path, tab[i].name);
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

int model_from_gguf(model **out, const gguf_ctx *g) {
    *out = NULL;
    const char *path = gguf_path(g);
    const char *arch;
    size_t arch_len;
    int rc = gguf_get_str(g, "general.architecture", &arch, &arch_len);
    if (rc == 1) return RT_FAIL("%s: missing key 'general.architecture'", path);
    if (rc) return -1;
    if (arch_len != 5 || memcmp(arch, "llama", 5) != 0)
        return RT_FAIL("%s: general.architecture is '%.*s'; retort reads only 'llama' models", path,
                       (int)RT_MIN(arch_len, 64), arch);
    model_config c = {0};
    if (need_u32(g, "llama.embedding_length", &c.dim) || need_u32(g, "llama.block_count", &c.n_layers) ||
        need_u32(g, "llama.attention.head_count", &c.n_heads) ||
        need_u32(g, "llama.feed_forward_length", &c.ffn_dim) ||
        need_u32(g, "llama.context_length", &c.ctx_len))
        return -1;
    uint32_t u;
    rc = gguf_get_u32(g, "llama.attention.head_count_kv", &u);
    if (rc < 0) return -1;
    c.n_kv_heads = rc == 1 ? c.n_heads : u;
    float f;
    rc = gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f);
    if (rc < 0) return -1;
    c.norm_eps = rc == 1 ? 1e-5f : f;
    rc = gguf_get_f32(g, "llama.rope.freq_base", &f);
    if (rc < 0) return -1;
    c.rope_base = rc == 1 ? 10000.0f : f;

    tokenizer *tok = NULL;
    if (gguf_find_key(g, "tokenizer.ggml.tokens") >= 0) {
        if (tokenizer_from_gguf(&tok, g)) return -1;
        c.vocab_size = tokenizer_vocab_size(tok);
    } else {
        rc = gguf_get_u32(g, "llama.vocab_size", &u);
        if (rc < 0) return -1;
        if (rc == 0) c.vocab_size = u;
        else {
            int64_t ti = gguf_find_tensor(g, "token_embd.weight");
            gguf_tensor_info info;
            if (ti < 0 || gguf_tensor_info_at(g, (size_t)ti, &info))
                return RT_FAIL("%s: no tokenizer, no llama.vocab_size and no token_embd.weight", path);
            c.vocab_size = info.ne[1];
        }
    }
    c.tied = gguf_find_tensor(g, "output.weight") < 0;
    if (model_config_validate(&c)) {
        tokenizer_free(tok);
        return RT_FAIL("%s: %s", path, rt_errmsg());
    }
    rc = gguf_get_u32(g, "llama.rope.dimension_count", &u);
    if (rc < 0 || (rc == 0 && u != c.head_dim)) {
        tokenizer_free(tok);
        return rc < 0 ? -1
                      : RT_FAIL("%s: llama.rope.dimension_count is %u but the head dimension is %zu; "
                                "partial rotary embeddings are not supported",
                                path, u, c.head_dim);
    }
    if (check_tensor_shapes(g, &c, path)) {
        tokenizer_free(tok);
        return -1;
    }
    model *m;
    if (model_create(&m, &c, tok)) {
        tokenizer_free(tok);
        return -1;
    }
    model_param_info *tab;
    size_t n;
    if (model_param_table(&m->cfg, &tab, &n)) {
        model_free(m);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t ne[2] = {tab[i].cols, tab[i].rows};
        if (gguf_read_tensor_f32(g, tab[i].name, m->params + tab[i].offset, tab[i].rows * tab[i].cols,
                                 ne, (uint32_t)tab[i].n_dims)) {
            free(tab);
            model_free(m);
            return -1;
        }
    }
    free(tab);
    const char *tmpl;
    size_t tlen;
    rc = gguf_get_str(g, "tokenizer.chat_template", &tmpl, &tlen);
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

int model_to_gguf(const model *m, gguf_writer *w, int f16) {
    const model_config *c = &m->cfg;
    if (gguf_set_str(w, "general.architecture", "llama") || gguf_set_str(w, "general.name", "retort") ||
        gguf_set_u32(w, "general.file_type", f16 ? 1 : 0) ||
        gguf_set_u32(w, "llama.context_length", (uint32_t)c->ctx_len) ||
        gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim) ||
        gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers) ||
        gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->ffn_dim) ||
        gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads) ||
        gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads) ||
        gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps) ||
        gguf_set_f32(w, "llama.rope.freq_base", c->rope_base) ||
        gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim) ||
        gguf_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size))
        return -1;
    if (m->tok && tokenizer_to_gguf(m->tok, w)) return -1;
    const char *tmpl = m->chat_template ? m->chat_template : (m->tok ? model_default_chat_template : NULL);
    if (tmpl && gguf_set_str(w, "tokenizer.chat_template", tmpl)) return -1;
    model_param_info *tab;
    size_t n;
    if (model_param_table(c, &tab, &n)) return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t ne[2] = {tab[i].cols, tab[i].rows};
        ggml_type t = (f16 && tab[i].n_dims == 2) ? GGML_TYPE_F16 : GGML_TYPE_F32;
        if (gguf_add_tensor(w, tab[i].name, t, (uint32_t)tab[i].n_dims, ne, m->params + tab[i].offset)) {
            free(tab);
            return -1;
        }
    }
    free(tab);
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
