/*
 * tokenizer_hf.c — load a Hugging Face tokenizer.json (+ tokenizer_config.json) into a
 * tokenizer: the BPE model (vocab, merges, byte_fallback, ignore_merges, unk), the added
 * tokens, the normalizers and pre-tokenizers we implement exactly, and the decoder's Strip.
 *
 * Two families come out of it:
 *  - byte-level BPE (a ByteLevel pre-tokenizer: GPT-2, Llama 3, Qwen2/3, DeepSeek-V3): token
 *    texts are GPT-2 byte characters, stored here as the raw bytes they stand for;
 *  - SentencePiece-style BPE (Llama 2, Gemma, Mistral): U+2581 for spaces, <0xNN> byte
 *    fallback; the vocabulary texts are kept for lookups, the bytes they decode to for decode.
 * Anything else (WordPiece, Unigram, a normalizer or pre-tokenizer or regex we do not
 * implement, an added token with lstrip/rstrip) is refused with a message that names the file
 * and the JSON path, so that nothing is tokenized approximately.
 *
 * What this is not: a chat-template reader, or a writer of tokenizer.json.
 */
#include "../base/base.h"
#include "internal.h"
#include "tokenizer.h"

#include <jansson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The Split regexes we implement, as they appear in the shipped files (CR/LF written either
 * as the characters or as \r \n escapes: both are accepted). */
static const struct {
    const char *re;
    int kind;
} known_regex[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     TOK_PRE_LLAMA3},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     TOK_PRE_QWEN2},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
     TOK_PRE_GPT2},
    {"\\p{N}{1,3}", TOK_PRE_DS3_DIGITS},
    {"[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+",
     TOK_PRE_DS3_CJK},
    {"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
     "\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     TOK_PRE_DS3_MAIN},
};

const char *tok_regex_text(int kind) {
    for (size_t i = 0; i < sizeof known_regex / sizeof *known_regex; i++)
        if (known_regex[i].kind == kind) return known_regex[i].re;
    return "";
}

#define TOK_HF_MAX_VOCAB (1 << 24) /* 64x the largest vocabulary in use (Gemma's 262,145) */

typedef struct {
    const char *name; /* file name for messages */
    tok_hf_opts o;
    tok_stage stages[TOK_MAX_STAGES];
    int bytelevel, metaspace_first;
} hf_ctx;

static const char *jstr(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jbool(json_t *obj, const char *key) { return json_is_true(json_object_get(obj, key)); }

/* ---------------------------------------------------------------- normalizers */

static int parse_normalizer(hf_ctx *c, json_t *n, const char *path) {
    if (!n || json_is_null(n)) return 0;
    const char *type = jstr(n, "type");
    if (!type) return RT_FAIL("%s: %s: expected an object with a \"type\"", c->name, path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return RT_FAIL("%s: %s.normalizers: expected an array", c->name, path);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
            if (parse_normalizer(c, json_array_get(list, i), sub)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "NFC")) {
        c->o.nfc = 1;
        return 0;
    }
    if (!strcmp(type, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p || strcmp(p, "\xE2\x96\x81"))
            return RT_FAIL("%s: %s: only Prepend of \"\xE2\x96\x81\" (U+2581) is supported",
                           c->name, path);
        c->o.spm_prepend = 1;
        return 0;
    }
    if (!strcmp(type, "Replace")) {
        const char *from = jstr(json_object_get(n, "pattern"), "String");
        const char *to = jstr(n, "content");
        if (!from || !to || strcmp(from, " ") || strcmp(to, "\xE2\x96\x81"))
            return RT_FAIL("%s: %s: only Replace of the String \" \" by \"\xE2\x96\x81\" "
                           "(SentencePiece's space escape) is supported",
                           c->name, path);
        c->o.spm_escape = 1;
        return 0;
    }
    return RT_FAIL("%s: %s: normalizer \"%s\" is not supported (supported: NFC, Prepend "
                   "U+2581, Replace ' ' by U+2581, Sequence)",
                   c->name, path, type);
}

/* ---------------------------------------------------------------- pre-tokenizers */

static int add_stage(hf_ctx *c, tok_stage st, const char *path) {
    if (c->o.n_stages >= TOK_MAX_STAGES)
        return RT_FAIL("%s: %s: more than %d pre-tokenizer steps", c->name, path, TOK_MAX_STAGES);
    c->stages[c->o.n_stages++] = st;
    return 0;
}

/* pat with literal CR/LF written as \r / \n, into buf; 0 or -1 if too long. */
static int canon_regex(const char *pat, char *buf, size_t cap) {
    size_t o = 0;
    for (const char *p = pat; *p; p++) {
        if (o + 3 > cap) return -1;
        if (*p == '\r' || *p == '\n') {
            buf[o++] = '\\';
            buf[o++] = *p == '\r' ? 'r' : 'n';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = 0;
    return 0;
}

static int parse_behavior(hf_ctx *c, json_t *n, const char *path, int *out) {
    const char *b = jstr(n, "behavior");
    static const char *names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext"};
    for (int i = 0; b && i < 4; i++)
        if (!strcmp(b, names[i])) {
            *out = i;
            return 0;
        }
    return RT_FAIL("%s: %s.behavior: \"%s\" is not supported (Isolated, Removed, "
                   "MergedWithPrevious, MergedWithNext)",
                   c->name, path, b ? b : "(missing)");
}

static int parse_pretok(hf_ctx *c, json_t *n, const char *path) {
    if (!n || json_is_null(n)) return 0;
    const char *type = jstr(n, "type");
    if (!type) return RT_FAIL("%s: %s: expected an object with a \"type\"", c->name, path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "pretokenizers");
        if (!json_is_array(list))
            return RT_FAIL("%s: %s.pretokenizers: expected an array", c->name, path);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
            if (parse_pretok(c, json_array_get(list, i), sub)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        if (jbool(n, "add_prefix_space"))
            return RT_FAIL("%s: %s: ByteLevel with add_prefix_space=true is not supported",
                           c->name, path);
        c->bytelevel = 1;
        if (json_object_get(n, "use_regex") && !jbool(n, "use_regex")) return 0;
        return add_stage(c, (tok_stage){.kind = TOK_PRE_GPT2}, path);
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = jstr(n, "replacement");
        if (rep && strcmp(rep, "\xE2\x96\x81"))
            return RT_FAIL("%s: %s.replacement: only U+2581 is supported", c->name, path);
        if (c->o.n_stages)
            return RT_FAIL("%s: %s: Metaspace is supported only as the first pre-tokenizer",
                           c->name, path);
        const char *scheme = jstr(n, "prepend_scheme");
        c->o.spm_escape = 1;
        if (scheme ? !strcmp(scheme, "always") : jbool(n, "add_prefix_space"))
            c->o.spm_prepend = 1;
        else if (scheme && !strcmp(scheme, "first"))
            c->o.spm_prepend = 1, c->metaspace_first = 1;
        else if (scheme && strcmp(scheme, "never"))
            return RT_FAIL("%s: %s.prepend_scheme: \"%s\" (expected always, first or never)",
                           c->name, path, scheme);
        if (!json_object_get(n, "split") || jbool(n, "split"))
            return add_stage(c,
                             (tok_stage){.kind = TOK_PRE_STRING,
                                         .behavior = TOK_SPLIT_MERGED_NEXT,
                                         .str = (char *)"\xE2\x96\x81",
                                         .str_len = 3},
                             path);
        return 0;
    }
    if (!strcmp(type, "Split")) {
        if (jbool(n, "invert"))
            return RT_FAIL("%s: %s.invert: true is not supported", c->name, path);
        tok_stage st = {0};
        if (parse_behavior(c, n, path, &st.behavior)) return -1;
        json_t *pat = json_object_get(n, "pattern");
        const char *str = jstr(pat, "String"), *re = jstr(pat, "Regex");
        if (str) {
            if (!*str) return RT_FAIL("%s: %s.pattern.String is empty", c->name, path);
            st.kind = TOK_PRE_STRING;
            st.str = (char *)str;
            st.str_len = strlen(str);
            return add_stage(c, st, path);
        }
        if (!re)
            return RT_FAIL("%s: %s.pattern: expected {\"Regex\": ...} or {\"String\": ...}",
                           c->name, path);
        char canon[1024];
        if (canon_regex(re, canon, sizeof canon) == 0)
            for (size_t i = 0; i < sizeof known_regex / sizeof *known_regex; i++)
                if (!strcmp(canon, known_regex[i].re)) {
                    if (st.behavior != TOK_SPLIT_ISOLATED)
                        return RT_FAIL("%s: %s.behavior: this regex is supported with "
                                       "\"Isolated\" only",
                                       c->name, path);
                    st.kind = known_regex[i].kind;
                    return add_stage(c, st, path);
                }
        return RT_FAIL("%s: %s.pattern.Regex: \"%.200s\" is not one of the pre-tokenizer "
                       "patterns retort implements (GPT-2, Llama 3, Qwen2, DeepSeek-V3)",
                       c->name, path, re);
    }
    return RT_FAIL("%s: %s: pre-tokenizer \"%s\" is not supported (ByteLevel, Split, "
                   "Metaspace, Sequence)",
                   c->name, path, type);
}

static void parse_decoder(hf_ctx *c, json_t *n) {
    const char *type = jstr(n, "type");
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "decoders");
        for (size_t i = 0; i < json_array_size(list); i++) parse_decoder(c, json_array_get(list, i));
    } else if (!strcmp(type, "Strip")) {
        const char *content = jstr(n, "content");
        if (content && !strcmp(content, " ") &&
            json_integer_value(json_object_get(n, "start")) >= 1)
            c->o.strip_lead = 1;
    } else if (!strcmp(type, "Metaspace")) {
        const char *scheme = jstr(n, "prepend_scheme");
        if (scheme ? strcmp(scheme, "never") != 0 : jbool(n, "add_prefix_space"))
            c->o.strip_lead = 1;
    }
}

/* ---------------------------------------------------------------- vocabulary */

/* The text of a special-token field of tokenizer_config.json: "x" or {"content": "x"}. */
static const char *config_token(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_string(v)) return json_string_value(v);
    return jstr(v, "content");
}

typedef struct {
    json_t *vocab;  /* model.vocab */
    json_t *added;  /* added_tokens */
    size_t n_vocab; /* max id + 1 */
    const char **text;   /* (n_vocab) vocabulary or added-token text */
    int8_t *added_kind;  /* (n_vocab) 0 not added, 1 special, 2 normal added */
    uint8_t *in_model;   /* (n_vocab) from model.vocab */
} vocab_view;

static int32_t find_id(const vocab_view *v, const char *text) {
    if (!text) return -1;
    json_t *id = json_object_get(v->vocab, text);
    if (json_is_integer(id)) return (int32_t)json_integer_value(id);
    for (size_t i = 0; i < json_array_size(v->added); i++) {
        json_t *a = json_array_get(v->added, i);
        const char *content = jstr(a, "content");
        if (content && !strcmp(content, text))
            return (int32_t)json_integer_value(json_object_get(a, "id"));
    }
    return -1;
}

static int load_vocab(hf_ctx *c, json_t *model, json_t *added, vocab_view *v) {
    v->vocab = json_object_get(model, "vocab");
    v->added = added;
    if (!json_is_object(v->vocab))
        return RT_FAIL("%s: model.vocab: expected an object {token: id}", c->name);
    if (added && !json_is_array(added))
        return RT_FAIL("%s: added_tokens: expected an array", c->name);
    json_int_t max = -1;
    const char *key;
    json_t *val;
    json_object_foreach(v->vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (!json_is_integer(val) || id < 0 || id >= INT32_MAX - 1)
            return RT_FAIL("%s: model.vocab[\"%.80s\"]: expected an id in 0..%d", c->name, key,
                           INT32_MAX - 2);
        if (id > max) max = id;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        const char *content = jstr(a, "content");
        if (!json_is_integer(json_object_get(a, "id")) || id < 0 || id >= INT32_MAX - 1 ||
            !content || !*content)
            return RT_FAIL("%s: added_tokens[%zu]: expected {\"id\": 0.., \"content\": "
                           "\"non-empty\"}",
                           c->name, i);
        if (id > max) max = id;
    }
    if (max < 0) return RT_FAIL("%s: model.vocab is empty", c->name);
    if (max >= TOK_HF_MAX_VOCAB)
        return RT_FAIL("%s: token id %lld is beyond retort's limit of %d tokens", c->name,
                       (long long)max, TOK_HF_MAX_VOCAB);
    v->n_vocab = (size_t)max + 1;
    v->text = rt_calloc(v->n_vocab, sizeof *v->text, "token texts");
    v->added_kind = rt_calloc(v->n_vocab, 1, "token kinds");
    v->in_model = rt_calloc(v->n_vocab, 1, "token kinds");
    if (!v->text || !v->added_kind || !v->in_model) return -1;
    json_object_foreach(v->vocab, key, val) {
        size_t id = (size_t)json_integer_value(val);
        if (v->text[id])
            return RT_FAIL("%s: model.vocab: id %zu is given to both \"%.80s\" and \"%.80s\"",
                           c->name, id, v->text[id], key);
        v->text[id] = key;
        v->in_model[id] = 1;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        size_t id = (size_t)json_integer_value(json_object_get(a, "id"));
        if (jbool(a, "lstrip") || jbool(a, "rstrip") || jbool(a, "single_word"))
            return RT_FAIL("%s: added_tokens[%zu] (\"%.80s\"): lstrip/rstrip/single_word are "
                           "not supported",
                           c->name, i, jstr(a, "content"));
        v->text[id] = jstr(a, "content"); /* the added text wins for matching */
        v->added_kind[id] = jbool(a, "special") ? 1 : 2;
    }
    for (size_t id = 0; id < v->n_vocab; id++)
        if (!v->text[id])
            return RT_FAIL("%s: no token has id %zu (model.vocab and added_tokens must cover "
                           "0..%zu)",
                           c->name, id, v->n_vocab - 1);
    return 0;
}

static int byte_token(const char *s) { /* "<0xNN>" -> NN, else -1 */
    static const char hex[] = "0123456789ABCDEF";
    if (strlen(s) != 6 || strncmp(s, "<0x", 3) || s[5] != '>') return -1;
    const char *h = strchr(hex, s[3]), *l = strchr(hex, s[4]);
    if (!h || !l || !s[3] || !s[4]) return -1;
    return (int)((h - hex) * 16 + (l - hex));
}

/* The bytes token id decodes to, appended to raw. */
static int token_raw(hf_ctx *c, const vocab_view *v, size_t id, rt_buf *raw) {
    const char *s = v->text[id];
    size_t len = strlen(s);
    if (v->added_kind[id] && c->o.model == TOK_MODEL_BYTELEVEL) return rt_buf_append(raw, s, len);
    if (c->o.model == TOK_MODEL_BYTELEVEL) {
        if (rt_buf_reserve(raw, len)) return -1;
        size_t n;
        if (tok_unmap(s, len, raw->data + raw->len, &n) == 0) {
            raw->len += n;
            return 0;
        }
        return rt_buf_append(raw, s, len); /* not byte characters: a special in the vocab */
    }
    int b = byte_token(s);
    if (b >= 0 && !v->added_kind[id]) {
        char ch = (char)b;
        return rt_buf_append(raw, &ch, 1);
    }
    for (size_t i = 0; i < len; i++) { /* U+2581 -> ' ' */
        int rc = (i + 2 < len && !memcmp(s + i, "\xE2\x96\x81", 3))
                     ? (i += 2, rt_buf_append(raw, " ", 1))
                     : rt_buf_append(raw, s + i, 1);
        if (rc) return -1;
    }
    return 0;
}

static int load_merges(hf_ctx *c, json_t *model, const vocab_view *v, int32_t **pairs,
                       size_t *n) {
    json_t *m = json_object_get(model, "merges");
    *pairs = NULL;
    *n = 0;
    if (!m || json_is_null(m)) return 0;
    if (!json_is_array(m)) return RT_FAIL("%s: model.merges: expected an array", c->name);
    size_t nm = json_array_size(m);
    int32_t *p = rt_malloc_array(nm ? 2 * nm : 1, sizeof *p, "merges");
    if (!p) return -1;
    rt_buf tmp = {0};
    for (size_t i = 0; i < nm; i++) {
        json_t *e = json_array_get(m, i);
        const char *a = NULL, *b = NULL;
        if (json_is_array(e) && json_array_size(e) == 2) {
            a = json_string_value(json_array_get(e, 0));
            b = json_string_value(json_array_get(e, 1));
        } else if (json_is_string(e)) {
            const char *s = json_string_value(e), *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                tmp.len = 0;
                if (rt_buf_append(&tmp, s, (size_t)(sp - s) + 1)) goto fail;
                tmp.data[sp - s] = 0;
                a = tmp.data;
                b = sp + 1;
            }
        }
        if (!a || !b) {
            RT_FAIL("%s: model.merges[%zu]: expected \"A B\" or [\"A\", \"B\"]", c->name, i);
            goto fail;
        }
        json_t *ia = json_object_get(v->vocab, a), *ib = json_object_get(v->vocab, b);
        if (!ia || !ib) {
            RT_FAIL("%s: model.merges[%zu]: \"%.60s\" is not in model.vocab", c->name, i,
                    ia ? b : a);
            goto fail;
        }
        p[2 * i] = (int32_t)json_integer_value(ia);
        p[2 * i + 1] = (int32_t)json_integer_value(ib);
    }
    rt_buf_free(&tmp);
    *pairs = p;
    *n = nm;
    return 0;
fail:
    rt_buf_free(&tmp);
    free(p);
    return -1;
}

static int parse_model_flags(hf_ctx *c, json_t *model, const vocab_view *v) {
    const char *type = jstr(model, "type");
    if (type && strcmp(type, "BPE"))
        return RT_FAIL("%s: model.type: \"%s\" is not supported (only BPE)", c->name, type);
    if (!type && !json_object_get(model, "merges"))
        return RT_FAIL("%s: model: no \"type\" and no merges; only BPE is supported", c->name);
    const char *keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *s = jstr(model, keys[i]);
        if (s && *s)
            return RT_FAIL("%s: model.%s: \"%s\" is not supported (only empty or null)",
                           c->name, keys[i], s);
    }
    c->o.ignore_merges = jbool(model, "ignore_merges");
    c->o.fuse_unk = jbool(model, "fuse_unk");
    c->o.unk = -1;
    const char *unk = jstr(model, "unk_token");
    if (unk && (c->o.unk = find_id(v, unk)) < 0)
        return RT_FAIL("%s: model.unk_token: \"%.80s\" is not a token", c->name, unk);
    if (jbool(model, "byte_fallback")) c->o.model = TOK_MODEL_SPM;
    return 0;
}

/* Every token's decoded bytes (raw, off) and vocabulary text (keys, koff), and its type:
 * added special -> CONTROL (UNKNOWN for unk), added non-special -> USER_DEFINED, <0xNN> of a
 * SentencePiece vocabulary -> BYTE, the rest NORMAL. */
static int make_tokens(hf_ctx *c, const vocab_view *v, uint8_t *types, size_t *off, size_t *koff,
                       rt_buf *raw, rt_buf *keys) {
    for (size_t id = 0; id < v->n_vocab; id++) {
        off[id] = raw->len;
        koff[id] = keys->len;
        size_t before = raw->len;
        if (token_raw(c, v, id, raw)) return -1;
        if (raw->len == before && /* a token that decodes to nothing: keep its text */
            rt_buf_append(raw, v->text[id], strlen(v->text[id])))
            return -1;
        if (rt_buf_append(raw, "", 1) ||
            rt_buf_append(keys, v->text[id], strlen(v->text[id]) + 1))
            return -1;
        int t = TOKENIZER_TYPE_NORMAL;
        if (v->added_kind[id] == 1)
            t = (int32_t)id == c->o.unk ? TOK_TYPE_UNKNOWN : TOKENIZER_TYPE_CONTROL;
        else if (v->added_kind[id] == 2)
            t = TOK_TYPE_USER_DEFINED;
        else if (c->o.model == TOK_MODEL_SPM && byte_token(v->text[id]) >= 0)
            t = TOK_TYPE_BYTE;
        types[id] = (uint8_t)t;
    }
    off[v->n_vocab] = raw->len;
    koff[v->n_vocab] = keys->len;
    return 0;
}

/* ---------------------------------------------------------------- entry points */

static int build(hf_ctx *c, json_t *root, json_t *cfg, tokenizer **out) {
    vocab_view v = {0};
    int32_t *pairs = NULL;
    size_t n_merges = 0;
    uint8_t *types = NULL;
    size_t *off = NULL, *koff = NULL;
    rt_buf raw = {0}, keys = {0};
    int rc = -1;
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) {
        RT_FAIL("%s: \"model\": expected an object", c->name);
        goto done;
    }
    if (load_vocab(c, model, json_object_get(root, "added_tokens"), &v) ||
        parse_model_flags(c, model, &v) ||
        parse_normalizer(c, json_object_get(root, "normalizer"), "normalizer") ||
        parse_pretok(c, json_object_get(root, "pre_tokenizer"), "pre_tokenizer"))
        goto done;
    parse_decoder(c, json_object_get(root, "decoder"));
    if (c->bytelevel && (c->o.model == TOK_MODEL_SPM || c->o.spm_escape)) {
        RT_FAIL("%s: a ByteLevel pre-tokenizer together with byte_fallback or U+2581 escaping "
                "is not a combination retort supports",
                c->name);
        goto done;
    }
    if (c->o.spm_escape || c->o.spm_prepend) c->o.model = TOK_MODEL_SPM;
    if (!c->bytelevel && c->o.model != TOK_MODEL_SPM) {
        RT_FAIL("%s: neither a ByteLevel pre-tokenizer nor SentencePiece-style settings "
                "(byte_fallback, U+2581); retort supports those two kinds of BPE",
                c->name);
        goto done;
    }
    if (load_merges(c, model, &v, &pairs, &n_merges)) goto done;
    types = rt_malloc(v.n_vocab, "token types");
    off = rt_malloc_array(v.n_vocab + 1, sizeof *off, "token offsets");
    koff = rt_malloc_array(v.n_vocab + 1, sizeof *koff, "token offsets");
    if (!types || !off || !koff || make_tokens(c, &v, types, off, koff, &raw, &keys)) goto done;
    int32_t bos = -1, eos = -1, pad = -1;
    if (cfg) {
        const char *names[3] = {"bos_token", "eos_token", "pad_token"};
        int32_t *ids[3] = {&bos, &eos, &pad};
        for (int i = 0; i < 3; i++) {
            const char *s = config_token(cfg, names[i]);
            if (s && (*ids[i] = find_id(&v, s)) < 0) {
                RT_FAIL("%s: tokenizer_config.json %s \"%.80s\" is not a token", c->name,
                        names[i], s);
                goto done;
            }
        }
    }
    /* add_bos/add_eos: tokenizer_config.json's flags; without them, what the post-processor's
     * TemplateProcessing puts around a single sequence. */
    json_t *pp = json_object_get(root, "post_processor");
    if (json_is_object(pp) && !strcmp(jstr(pp, "type") ? jstr(pp, "type") : "", "Sequence"))
        pp = json_array_get(json_object_get(pp, "processors"), 0);
    json_t *single = json_object_get(pp, "single");
    size_t ns = json_array_size(single);
    if (json_is_array(single) && ns) {
        c->o.add_bos = json_object_get(json_array_get(single, 0), "SpecialToken") != NULL;
        c->o.add_eos = ns > 1 && json_object_get(json_array_get(single, ns - 1), "SpecialToken");
    }
    if (cfg && json_is_boolean(json_object_get(cfg, "add_bos_token")))
        c->o.add_bos = jbool(cfg, "add_bos_token");
    if (cfg && json_is_boolean(json_object_get(cfg, "add_eos_token")))
        c->o.add_eos = jbool(cfg, "add_eos_token");
    c->o.stages = c->stages;
    c->o.in_model = v.in_model;
    if (c->o.model == TOK_MODEL_SPM) {
        c->o.kblob = keys.data;
        c->o.koff = koff;
    }
    /* The llama.cpp pre-tokenizer with exactly these steps, if any (GGUF export needs one). */
    int nst = c->o.n_stages, k0 = nst ? c->stages[0].kind : -1;
    c->o.pre_name = "";
    if (nst == 1 && k0 == TOK_PRE_GPT2) c->o.pre_name = "gpt-2";
    if (nst == 1 && k0 == TOK_PRE_LLAMA3) c->o.pre_name = "llama-bpe";
    if (nst == 1 && k0 == TOK_PRE_QWEN2) c->o.pre_name = "qwen2";
    if (nst == 3 && k0 == TOK_PRE_DS3_DIGITS && c->stages[1].kind == TOK_PRE_DS3_CJK &&
        c->stages[2].kind == TOK_PRE_DS3_MAIN)
        c->o.pre_name = "deepseek-v3";
    char what[300];
    snprintf(what, sizeof what, "%s: model.vocab", c->name);
    char whatm[300];
    snprintf(whatm, sizeof whatm, "%s: model.merges", c->name);
    rc = tok_build_hf(out, v.n_vocab, raw.data, off, types, n_merges, pairs, bos, eos, pad, &c->o,
                      what, whatm);
    if (!rc && c->metaspace_first) (*out)->spm_prepend = 2;
done:
    free(v.text);
    free(v.added_kind);
    free(v.in_model);
    free(pairs);
    free(types);
    free(off);
    free(koff);
    rt_buf_free(&raw);
    rt_buf_free(&keys);
    return rc;
}

int tokenizer_from_hf_json(tokenizer **out, const char *json, size_t len, const char *config,
                           size_t config_len, const char *name) {
    *out = NULL;
    hf_ctx c = {.name = name ? name : "tokenizer.json"};
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return RT_FAIL("%s: line %d column %d: %s", c.name, err.line, err.column, err.text);
    json_t *cfg = NULL;
    if (config) {
        cfg = json_loadb(config, config_len, JSON_DECODE_INT_AS_REAL, &err);
        if (!cfg) {
            json_decref(root);
            return RT_FAIL("%s: tokenizer_config.json line %d column %d: %s", c.name, err.line,
                           err.column, err.text);
        }
    }
    int rc = json_is_object(root) ? build(&c, root, json_is_object(cfg) ? cfg : NULL, out)
                                  : RT_FAIL("%s: expected a JSON object", c.name);
    json_decref(root);
    json_decref(cfg);
    return rc;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int tokenizer_from_hf(tokenizer **out, const char *path) {
    *out = NULL;
    rt_buf jpath = {0}, cpath = {0};
    char *json = NULL, *cfg = NULL;
    size_t jlen = 0, clen = 0;
    int rc = -1;
    if (is_dir(path)) {
        if (rt_buf_printf(&jpath, "%s/tokenizer.json", path) ||
            rt_buf_printf(&cpath, "%s/tokenizer_config.json", path))
            goto done;
    } else {
        const char *slash = strrchr(path, '/');
        int dlen = slash ? (int)(slash - path) : 1;
        if (rt_buf_printf(&jpath, "%s", path) ||
            rt_buf_printf(&cpath, "%.*s/tokenizer_config.json", dlen, slash ? path : "."))
            goto done;
    }
    if (rt_read_file(jpath.data, &json, &jlen)) goto done;
    if (rt_file_exists(cpath.data) && rt_read_file(cpath.data, &cfg, &clen)) goto done;
    rc = tokenizer_from_hf_json(out, json, jlen, cfg, clen, jpath.data);
done:
    free(json);
    free(cfg);
    rt_buf_free(&jpath);
    rt_buf_free(&cpath);
    return rc;
}

int tokenizer_load(tokenizer **out, const char *path) {
    *out = NULL;
    char magic[4] = {0};
    if (!is_dir(path)) { /* a GGUF file whatever its name (M.gguf, M.gguf.ckpt) */
        FILE *f = fopen(path, "rb");
        if (!f) return RT_FAIL_KIND(errno == ENOENT ? RT_ERR_NOT_FOUND : RT_ERR_IO, "%s: %s", path, strerror(errno));
        size_t got = fread(magic, 1, sizeof magic, f);
        fclose(f);
        if (got == sizeof magic && !memcmp(magic, "GGUF", 4)) {
            gguf_ctx *g = NULL;
            if (gguf_open(&g, path)) return -1;
            int rc = tokenizer_from_gguf(out, g);
            gguf_close(g);
            if (rc) return RT_FAIL("%s: no usable tokenizer: %s", path, rt_errmsg());
            return 0;
        }
    }
    return tokenizer_from_hf(out, path);
}

int tokenizer_add_bos(const tokenizer *tok) { return tok->add_bos; }
int tokenizer_add_eos(const tokenizer *tok) { return tok->add_eos; }
const char *tokenizer_pre_name(const tokenizer *tok) { return tok->pre_name; }
int32_t tokenizer_unk(const tokenizer *tok) { return tok->unk; }
