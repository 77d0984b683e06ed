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
            }
            for (size_t i = 0; i < ns; i++) {
                if (l < L) snprintf(name, sizeof name, "blk.%zu.%s.weight", l, suffix[i]);
                else snprintf(name, sizeof name, "%s", m->cfg.tied ? "token_embd.weight" : "output.weight");
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
    m->quant = q;
    return 0;
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
    if (model_quant_load(m, g)) {
        model_free(m);
        return -1;
    }
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
