/*
 * model_hf.c — the Hugging Face folder: config.json and the safetensors tensors of
 * LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM mapped onto
 * model_config and the flat parameter buffer, both ways.
 *
 * The one non-trivial mapping: HF's llama/mistral attention rotates the halves of each head
 * (rotate_half), while GGUF "llama" (and so retort's llama) rotates adjacent pairs; as
 * llama.cpp's converter does, the rows of q_proj/k_proj (and their biases) are permuted per
 * head so that HF row j*hd/2 + i becomes row 2i + j. qwen2/qwen3 run NEOX RoPE in llama.cpp
 * and here, so their rows are copied as they are.
 *
 * Not the safetensors container (src/formats/safetensors.c) and not the tokenizer: the caller
 * passes one (tokenizer.json import lives in src/tokenizer).
 */
#include "model_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../formats/safetensors.h"

/* ---------------------------------------------------------------- names */

/* HF name of a parameter-table entry ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight") */
static int hf_name(const char *gg, char *out, size_t cap) {
    static const char *const map[][2] = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},
        {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},
        {"attn_q_norm.weight", "self_attn.q_norm.weight"},
        {"attn_k_norm.weight", "self_attn.k_norm.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    if (strcmp(gg, "token_embd.weight") == 0) return snprintf(out, cap, "model.embed_tokens.weight") < 0;
    if (strcmp(gg, "output_norm.weight") == 0) return snprintf(out, cap, "model.norm.weight") < 0;
    if (strcmp(gg, "output.weight") == 0) return snprintf(out, cap, "lm_head.weight") < 0;
    unsigned l;
    int used = 0;
    if (sscanf(gg, "blk.%u.%n", &l, &used) != 1 || used == 0) return -1;
    for (size_t i = 0; i < RT_ARRAY_LEN(map); i++)
        if (strcmp(gg + used, map[i][0]) == 0)
            return snprintf(out, cap, "model.layers.%u.%s", l, map[i][1]) < 0;
    return -1;
}

/* Which rows a tensor's llama permutation applies to: the number of heads, or 0. */
static size_t permute_heads(const model_config *c, const char *gg) {
    if (c->rope_neox) return 0;
    const char *p = strrchr(gg, '.');
    if (!p) return 0;
    size_t n = (size_t)(p - gg);
    if (n >= 7 && memcmp(p - 7, ".attn_q", 7) == 0) return c->n_heads;
    if (n >= 7 && memcmp(p - 7, ".attn_k", 7) == 0) return c->n_kv_heads;
    return 0;
}

/* dst row h*hd + 2i + j = src row h*hd + j*hd/2 + i (to_gguf), or the inverse; cols floats a row */
static void permute_rows(float *dst, const float *src, size_t heads, size_t hd, size_t cols, int to_gguf) {
    size_t half = hd / 2;
    for (size_t h = 0; h < heads; h++)
        for (size_t i = 0; i < half; i++)
            for (size_t j = 0; j < 2; j++) {
                size_t g = h * hd + 2 * i + j, f = h * hd + j * half + i;
                memcpy(dst + (to_gguf ? g : f) * cols, src + (to_gguf ? f : g) * cols, cols * sizeof(float));
            }
}

/* ---------------------------------------------------------------- config.json */

static int jsize(json_t *cfg, const char *key, size_t *out, int required, const char *path) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return required ? RT_FAIL("%s: missing \"%s\"", path, key) : 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return RT_FAIL("%s: \"%s\" must be a non-negative integer", path, key);
    *out = (size_t)json_integer_value(v);
    return 0;
}

static int jfloat(json_t *cfg, const char *key, float *out, const char *path) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return RT_FAIL("%s: \"%s\" must be a number", path, key);
    *out = (float)json_number_value(v);
    return 0;
}

static int jbool(json_t *cfg, const char *key, int *out, const char *path) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return RT_FAIL("%s: \"%s\" must be true or false", path, key);
    *out = json_is_true(v);
    return 0;
}

static int rope_scaling_from_json(json_t *rs, model_config *c, const char *path) {
    if (!rs || json_is_null(rs)) return 0;
    json_t *t = json_object_get(rs, "rope_type");
    if (!t) t = json_object_get(rs, "type");
    const char *ts = json_is_string(t) ? json_string_value(t) : "?";
    if (strcmp(ts, "default") == 0) return 0;
    if (strcmp(ts, "linear") == 0) {
        c->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
        if (!json_is_number(json_object_get(rs, "factor")))
            return RT_FAIL("%s: linear rope_scaling needs a \"factor\"", path);
        return jfloat(rs, "factor", &c->rope_factor, path);
    }
    if (strcmp(ts, "llama3") != 0)
        return RT_FAIL("%s: rope_scaling type '%s' is not supported (retort runs llama3 and linear "
                       "scaling)",
                       path, ts);
    c->rope_scaling = MODEL_ROPE_SCALING_LLAMA3;
    c->rope_factor = 8.0f, c->rope_low_freq_factor = 1.0f, c->rope_high_freq_factor = 4.0f;
    c->rope_orig_ctx = 8192;
    return jfloat(rs, "factor", &c->rope_factor, path) ||
           jfloat(rs, "low_freq_factor", &c->rope_low_freq_factor, path) ||
           jfloat(rs, "high_freq_factor", &c->rope_high_freq_factor, path) ||
           jsize(rs, "original_max_position_embeddings", &c->rope_orig_ctx, 0, path);
}

static int config_from_json(json_t *j, model_config *c, const char *path) {
    memset(c, 0, sizeof *c);
    json_t *mt = json_object_get(j, "model_type");
    const char *t = json_is_string(mt) ? json_string_value(mt) : NULL;
    if (!t) return RT_FAIL("%s: missing \"model_type\"", path);
    int arch = model_arch_from_name(t, strlen(t));
    if (arch < 0)
        return RT_FAIL("%s: model_type '%s' is not supported (llama, mistral, qwen2, qwen3)", path, t);
    c->arch = arch;
    c->norm_eps = 1e-6f;
    c->rope_base = 10000.0f;
    json_t *act = json_object_get(j, "hidden_act");
    if (act && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0))
        return RT_FAIL("%s: hidden_act must be \"silu\" (SwiGLU)", path);
    int mlp_bias = 0, attn_bias = 0;
    if (jsize(j, "hidden_size", &c->dim, 1, path) || jsize(j, "num_hidden_layers", &c->n_layers, 1, path) ||
        jsize(j, "num_attention_heads", &c->n_heads, 1, path) ||
        jsize(j, "num_key_value_heads", &c->n_kv_heads, 0, path) ||
        jsize(j, "intermediate_size", &c->ffn_dim, 1, path) || jsize(j, "vocab_size", &c->vocab_size, 1, path) ||
        jsize(j, "max_position_embeddings", &c->ctx_len, 1, path) || jsize(j, "head_dim", &c->head_dim, 0, path) ||
        jfloat(j, "rms_norm_eps", &c->norm_eps, path) || jfloat(j, "rope_theta", &c->rope_base, path) ||
        jbool(j, "tie_word_embeddings", &c->tied, path) || jbool(j, "attention_bias", &attn_bias, path) ||
        jbool(j, "mlp_bias", &mlp_bias, path) ||
        rope_scaling_from_json(json_object_get(j, "rope_scaling"), c, path))
        return -1;
    if (mlp_bias) return RT_FAIL("%s: mlp_bias is true; MLP biases are not supported", path);
    size_t sw = 0;
    int use_sw = arch != MODEL_ARCH_QWEN2; /* qwen2 gates it with use_sliding_window */
    if (jsize(j, "sliding_window", &sw, 0, path) || jbool(j, "use_sliding_window", &use_sw, path))
        return -1;
    if (use_sw && sw && sw < c->ctx_len)
        rt_warn("%s: sliding_window %zu is ignored: retort (like llama.cpp) attends over the whole "
                "context; outputs differ from HF beyond %zu tokens",
                path, sw, sw);
    if (arch == MODEL_ARCH_LLAMA) c->qkv_bias = attn_bias; /* (o_proj.bias is refused by name) */
    if (arch == MODEL_ARCH_QWEN3 && attn_bias)
        return RT_FAIL("%s: qwen3 with attention_bias is not supported", path);
    return 0;
}

static json_t *config_to_json(const model *m, st_dtype dtype) {
    const model_config *c = &m->cfg;
    static const char *const cls[MODEL_ARCH_COUNT] = {"LlamaForCausalLM", "Qwen2ForCausalLM",
                                                       "Qwen3ForCausalLM"};
    json_t *j = json_pack(
        "{s:[s], s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b, s:s, s:b, s:s}",
        "architectures", cls[c->arch], "model_type", model_arch_name(c->arch), "hidden_size",
        (json_int_t)c->dim, "num_hidden_layers", (json_int_t)c->n_layers, "num_attention_heads",
        (json_int_t)c->n_heads, "num_key_value_heads", (json_int_t)c->n_kv_heads, "head_dim",
        (json_int_t)c->head_dim, "intermediate_size", (json_int_t)c->ffn_dim, "vocab_size",
        (json_int_t)c->vocab_size, "max_position_embeddings", (json_int_t)c->ctx_len,
        "rms_norm_eps", (double)c->norm_eps, "rope_theta", (double)c->rope_base,
        "tie_word_embeddings", c->tied, "hidden_act", "silu", "attention_bias",
        c->arch == MODEL_ARCH_LLAMA ? c->qkv_bias : c->arch == MODEL_ARCH_QWEN2,
        "torch_dtype", dtype == ST_BF16 ? "bfloat16" : dtype == ST_F16 ? "float16" : "float32");
    if (j && c->rope_scaling == MODEL_ROPE_SCALING_LINEAR &&
        json_object_set_new(j, "rope_scaling",
                            json_pack("{s:s, s:f}", "rope_type", "linear", "factor", (double)c->rope_factor))) {
        json_decref(j);
        return NULL;
    }
    if (j && c->rope_scaling == MODEL_ROPE_SCALING_LLAMA3) {
        json_t *rs = json_pack("{s:s, s:f, s:f, s:f, s:I}", "rope_type", "llama3", "factor",
                               (double)c->rope_factor, "low_freq_factor", (double)c->rope_low_freq_factor,
                               "high_freq_factor", (double)c->rope_high_freq_factor,
                               "original_max_position_embeddings", (json_int_t)c->rope_orig_ctx);
        if (!rs || json_object_set_new(j, "rope_scaling", rs)) {
            json_decref(j);
            return NULL;
        }
    }
    if (j && m->tok) { /* bos/eos as the tokenizer has them */
        int32_t bos = tokenizer_bos(m->tok), eos = tokenizer_eos(m->tok);
        if (bos >= 0) json_object_set_new(j, "bos_token_id", json_integer(bos));
        if (eos >= 0) json_object_set_new(j, "eos_token_id", json_integer(eos));
    }
    return j;
}

/* ---------------------------------------------------------------- import */

static int is_ignored_hf(const char *name) {
    /* rotary inverse frequencies some checkpoints store: recomputed from the config */
    return strstr(name, "rotary_emb.inv_freq") != NULL;
}

static int tensors_from_hf(model *m, const st_folder *d, const char *dir) {
    const model_config *c = &m->cfg;
    model_param_info *tab;
    size_t n;
    if (model_param_table(c, &tab, &n)) return -1;
    int rc = 0;
    float *tmp = NULL;
    for (size_t i = 0; i < n && !rc; i++) {
        char hn[96];
        if (hf_name(tab[i].name, hn, sizeof hn)) {
            rc = RT_FAIL("internal: no Hugging Face name for %s", tab[i].name);
            break;
        }
        const st_file *f;
        const st_tensor *t = st_folder_find(d, hn, &f);
        if (!t) {
            rc = RT_FAIL("%s: missing tensor '%s' (a %s model with this config.json has %zu tensors)",
                         dir, hn, model_arch_name(c->arch), n);
            break;
        }
        int shape_ok = tab[i].n_dims == 1 ? t->n_dims == 1 && t->shape[0] == tab[i].cols
                                          : t->n_dims == 2 && t->shape[0] == tab[i].rows &&
                                                t->shape[1] == tab[i].cols;
        if (!shape_ok) {
            if (tab[i].n_dims == 1)
                rc = RT_FAIL("%s: tensor '%s' should have shape [%zu] by config.json", st_path(f), hn,
                             tab[i].cols);
            else
                rc = RT_FAIL("%s: tensor '%s' should have shape [%zu, %zu] by config.json", st_path(f),
                             hn, tab[i].rows, tab[i].cols);
            break;
        }
        float *dst = m->params + tab[i].offset;
        size_t cnt = tab[i].rows * tab[i].cols, heads = permute_heads(c, tab[i].name);
        if (heads == 0) {
            rc = st_read_f32(f, t, dst, cnt);
            continue;
        }
        free(tmp);
        tmp = rt_malloc_array(cnt, sizeof(float), "permutation buffer");
        if (!tmp || st_read_f32(f, t, tmp, cnt)) {
            rc = -1;
            break;
        }
        permute_rows(dst, tmp, heads, c->head_dim, tab[i].n_dims == 1 ? 1 : tab[i].cols, 1);
    }
    free(tmp);
    /* tensors this model would not use: refuse, naming the first */
    size_t nt = st_folder_n_tensors(d);
    for (size_t k = 0; k < nt && !rc; k++) {
        const st_tensor *t = st_folder_tensor_at(d, k, NULL);
        if (is_ignored_hf(t->name)) continue;
        if (c->tied && strcmp(t->name, "lm_head.weight") == 0) continue; /* tied: HF ignores it too */
        int known = 0;
        for (size_t i = 0; i < n && !known; i++) {
            char hn[96];
            known = hf_name(tab[i].name, hn, sizeof hn) == 0 && strcmp(hn, t->name) == 0;
        }
        if (!known)
            rc = RT_FAIL("%s: tensor '%.200s' is not part of a %s model as retort runs it (unsupported "
                         "layout)",
                         dir, t->name, model_arch_name(c->arch));
    }
    free(tab);
    return rc;
}

int model_from_hf(model **out, const char *dir, tokenizer *tok) {
    *out = NULL;
    size_t plen = strlen(dir) + 16;
    char *cpath = malloc(plen);
    if (!cpath) return RT_FAIL("out of memory");
    snprintf(cpath, plen, "%s/config.json", dir);
    json_error_t err;
    json_t *j = json_load_file(cpath, JSON_REJECT_DUPLICATES, &err);
    model_config c;
    int rc = 0;
    if (!j) rc = RT_FAIL("%s: line %d: %s", cpath, err.line, err.text);
    else if (!json_is_object(j)) rc = RT_FAIL("%s: not a JSON object", cpath);
    else rc = config_from_json(j, &c, cpath);
    json_decref(j);
    st_folder *d = NULL;
    if (rc == 0) rc = st_folder_open(&d, dir);
    if (rc == 0 && !c.tied && !st_folder_find(d, "lm_head.weight", NULL)) c.tied = 1; /* saved tied */
    if (rc == 0 && model_config_validate(&c)) rc = RT_FAIL("%s: %s", cpath, rt_errmsg());
    if (rc == 0 && tok && tokenizer_vocab_size(tok) > c.vocab_size)
        rc = RT_FAIL("%s: the tokenizer has %zu tokens, more than the model's vocab_size %zu "
                     "(embedding rows): it is not this model's tokenizer",
                     cpath, tokenizer_vocab_size(tok), c.vocab_size);
    /* HF pads vocab_size beyond the tokenizer (e.g. Qwen2); the tokenizer is padded to it
     * with [PAD<id>] tokens, as llama.cpp's converter does, so model_create's sizes agree */
    if (rc == 0 && tok && tokenizer_pad_vocab(tok, c.vocab_size))
        rc = RT_FAIL("%s: %s", cpath, rt_errmsg());
    model *m = NULL;
    if (rc == 0 && model_create(&m, &c, tok)) rc = RT_FAIL("%s: %s", cpath, rt_errmsg());
    if (rc == 0 && tensors_from_hf(m, d, dir)) rc = -1;
    if (rc == 0 && tok && tokenizer_chat_template_load(dir, &m->chat_template)) rc = -1;
    st_folder_close(d);
    free(cpath);
    if (rc) {
        if (m) {
            m->tok = NULL; /* not taken on failure */
            model_free(m);
        }
        return -1;
    }
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------- export */

int model_to_hf(const model *m, const char *dir, st_dtype dtype) {
    if (model_require_full(m, "model_to_hf")) return -1;
    const model_config *c = &m->cfg;
    if (m->rope_factors && c->rope_scaling == MODEL_ROPE_SCALING_NONE)
        return RT_FAIL("%s: the model has RoPE frequency factors (rope_freqs.weight) that match no "
                       "llama3 rope_scaling parameters; config.json could not express them",
                       dir);
    if (rt_mkdir_p(dir)) return -1;
    model_param_info *tab;
    size_t n;
    if (model_param_table(c, &tab, &n)) return -1;
    st_writer *w = st_writer_new();
    float **bufs = rt_calloc(n, sizeof *bufs, "export buffers");
    int rc = !w || !bufs ? -1 : 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char hn[96];
        if (hf_name(tab[i].name, hn, sizeof hn)) {
            rc = RT_FAIL("internal: no Hugging Face name for %s", tab[i].name);
            break;
        }
        const float *src = m->params + tab[i].offset;
        size_t heads = permute_heads(c, tab[i].name), cnt = tab[i].rows * tab[i].cols;
        if (heads) {
            if (!(bufs[i] = rt_malloc_array(cnt, sizeof(float), "permutation buffer"))) {
                rc = -1;
                break;
            }
            permute_rows(bufs[i], src, heads, c->head_dim, tab[i].n_dims == 1 ? 1 : tab[i].cols, 0);
            src = bufs[i];
        }
        uint64_t shape[2] = {tab[i].rows, tab[i].cols};
        rc = tab[i].n_dims == 1 ? st_writer_add(w, hn, dtype, 1, shape + 1, src)
                                : st_writer_add(w, hn, dtype, 2, shape, src);
    }
    size_t plen = strlen(dir) + 32;
    char *path = malloc(plen);
    if (!path) rc = RT_FAIL("out of memory");
    if (rc == 0 && st_writer_set_meta(w, "format", "pt")) rc = -1;
    if (rc == 0) {
        snprintf(path, plen, "%s/model.safetensors", dir);
        rc = st_writer_write(w, path);
    }
    if (rc == 0) { /* config.json last: a folder with a config has its weights */
        json_t *j = config_to_json(m, dtype);
        char *s = j ? rt_json_reals(json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) : NULL;
        snprintf(path, plen, "%s/config.json", dir);
        rc = s ? rt_write_file_atomic(path, s, strlen(s)) : RT_FAIL("%s: cannot build config.json", dir);
        free(s);
        json_decref(j);
    }
    for (size_t i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    free(path);
    free(tab);
    st_writer_free(w);
    return rc;
}
