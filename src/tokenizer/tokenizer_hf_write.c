/*
 * tokenizer_hf_write.c — write a tokenizer as a Hugging Face tokenizer.json and
 * tokenizer_config.json, so that a model retort exports (`retort convert --to hf`) loads in
 * transformers / transformers.js with the same ids (tests/ref_tokenizer_export.sh checks that
 * against @lenml/tokenizers).
 *
 * The JSON states what the tokenizer object does, in the vocabulary tokenizer_hf.c reads:
 *  - model BPE: vocab (byte-level: tokens in GPT-2's byte characters; SentencePiece-style: the
 *    vocabulary texts with U+2581 and <0xNN>), merges by rank, unk_token, fuse_unk,
 *    byte_fallback, ignore_merges;
 *  - added_tokens: CONTROL tokens (special: true) and USER_DEFINED ones (special: false);
 *  - normalizer: NFC; SentencePiece's Prepend/Replace (or a Metaspace pre-tokenizer where
 *    the prepend is for the first section only or the text is split at U+2581);
 *  - pre_tokenizer: the Split regexes (Llama 3, Qwen2, DeepSeek-V3) and ByteLevel (GPT-2's
 *    regex as its use_regex);
 *  - post_processor: TemplateProcessing that adds the bos / eos the model asks for;
 *  - decoder: ByteLevel, or Replace U+2581 + ByteFallback + Fuse (+ Strip of one space).
 * tokenizer_config.json: bos/eos/unk/pad tokens, add_bos_token/add_eos_token, chat_template.
 *
 * Not a general serializer: a tokenizer holds only what retort implements, and that is all
 * this writes. Files are written atomically.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const behavior_name[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext"};

static int is_added(const tokenizer *t, const uint8_t *made, size_t id);

/* A token's vocabulary key (NUL-terminated, in buf); added: the merge-made flags. */
static int vocab_key(const tokenizer *t, const uint8_t *added, int32_t id, rt_buf *buf) {
    buf->len = 0;
    int rc;
    if (t->kblob) rc = rt_buf_append(buf, t->kblob + t->koff[id], t->koff[id + 1] - t->koff[id] - 1);
    else if (t->model == TOK_MODEL_BYTELEVEL && (!added || !is_added(t, added, (size_t)id)))
        rc = tok_map_bytes(tok_bytes(t, id), tok_len(t, id), buf);
    else rc = rt_buf_append(buf, tok_bytes(t, id), tok_len(t, id));
    return rc || rt_buf_append(buf, "", 1) ? -1 : 0;
}

static json_t *split_stage(const tok_stage *st) {
    json_t *pat;
    if (st->kind == TOK_PRE_STRING) pat = json_pack("{s:s%}", "String", st->str, st->str_len);
    else pat = json_pack("{s:s}", "Regex", tok_regex_text(st->kind));
    return json_pack("{s:s, s:o, s:s, s:b}", "type", "Split", "pattern", pat, "behavior",
                     behavior_name[st->behavior], "invert", 0);
}

static int metaspace_style(const tokenizer *t) {
    int split = t->n_stages > 0 && t->stages[0].kind == TOK_PRE_STRING && t->stages[0].str_len == 3 &&
                !memcmp(t->stages[0].str, "\xE2\x96\x81", 3) && t->stages[0].behavior == TOK_SPLIT_MERGED_NEXT;
    return t->model == TOK_MODEL_SPM && t->spm_escape && (split || t->spm_prepend == 2) ? 1 + split : 0;
}

static json_t *normalizer(const tokenizer *t) {
    json_t *list = json_array();
    if (t->nfc) json_array_append_new(list, json_pack("{s:s}", "type", "NFC"));
    if (t->model == TOK_MODEL_SPM && !metaspace_style(t)) {
        if (t->spm_prepend) json_array_append_new(list, json_pack("{s:s, s:s}", "type", "Prepend", "prepend", "\xE2\x96\x81"));
        if (t->spm_escape)
            json_array_append_new(list, json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", " ",
                                                  "content", "\xE2\x96\x81"));
    }
    if (json_array_size(list) == 0) {
        json_decref(list);
        return json_null();
    }
    return json_pack("{s:s, s:o}", "type", "Sequence", "normalizers", list);
}

static json_t *pre_tokenizer(const tokenizer *t) {
    json_t *list = json_array();
    int ms = metaspace_style(t), gpt2 = 0;
    if (ms)
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
                                              "\xE2\x96\x81", "prepend_scheme",
                                              t->spm_prepend == 2 ? "first" : t->spm_prepend ? "always" : "never",
                                              "split", ms == 2));
    for (int i = ms == 2 ? 1 : 0; i < t->n_stages; i++) {
        if (t->stages[i].kind == TOK_PRE_GPT2) gpt2 = 1; /* ByteLevel's own regex, last */
        else json_array_append_new(list, split_stage(&t->stages[i]));
    }
    if (t->model == TOK_MODEL_BYTELEVEL)
        json_array_append_new(list, json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                                              "trim_offsets", 1, "use_regex", gpt2));
    if (json_array_size(list) == 0) {
        json_decref(list);
        return json_null();
    }
    return json_pack("{s:s, s:o}", "type", "Sequence", "pretokenizers", list);
}

static json_t *decoder(const tokenizer *t) {
    if (t->model == TOK_MODEL_BYTELEVEL)
        return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1,
                         "use_regex", 1);
    json_t *list = json_pack("[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}]", "type", "Replace", "pattern", "String",
                             "\xE2\x96\x81", "content", " ", "type", "ByteFallback", "type", "Fuse");
    if (t->strip_lead)
        json_array_append_new(list, json_pack("{s:s, s:s, s:i, s:i}", "type", "Strip", "content", " ", "start", 1,
                                              "stop", 0));
    return json_pack("{s:s, s:o}", "type", "Sequence", "decoders", list);
}

/* bos/eos around a sequence as tokenizer_config.json asks (transformers.js reads only this). */
static json_t *post_processor(const tokenizer *t) {
    int bos = t->add_bos && t->bos >= 0, eos = t->add_eos && t->eos >= 0;
    if (!bos && !eos) return json_null();
    json_t *single = json_array(), *pair = json_array(), *specials = json_object();
    for (int part = 0; part < 2; part++) {
        json_t *seq = part ? pair : single;
        for (int k = 0; k <= part; k++) {
            if (bos) json_array_append_new(seq, json_pack("{s:{s:s, s:i}}", "SpecialToken", "id", tok_bytes(t, t->bos),
                                                          "type_id", k));
            json_array_append_new(seq, json_pack("{s:{s:s, s:i}}", "Sequence", "id", k ? "B" : "A", "type_id", k));
            if (eos) json_array_append_new(seq, json_pack("{s:{s:s, s:i}}", "SpecialToken", "id", tok_bytes(t, t->eos),
                                                          "type_id", k));
        }
    }
    for (int k = 0; k < 2; k++) {
        int32_t id = k ? t->eos : t->bos;
        if (!(k ? eos : bos)) continue;
        json_object_set_new(specials, tok_bytes(t, id),
                            json_pack("{s:s, s:[i], s:[s]}", "id", tok_bytes(t, id), "ids", (int)id, "tokens",
                                      tok_bytes(t, id)));
    }
    return json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
                     "special_tokens", specials);
}

/* Whether token id is an added token: CONTROL or USER_DEFINED, unless merges make it (then it
 * was an ordinary vocabulary token that a GGUF marked CONTROL for its looks, such as Qwen's
 * "</s>": llama.cpp's converter does that). */
static int is_added(const tokenizer *t, const uint8_t *made, size_t id) {
    int ty = t->type[id];
    return (ty == TOKENIZER_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED) && !made[id];
}

/* SentencePiece vocabularies from a GGUF have scores, not merges. Hugging Face's converter
 * (transformers' SentencePieceExtractor) makes the merges from the vocabulary: every split of
 * a token (at a character boundary) into two vocabulary tokens, ordered by the token's score
 * (highest first; ties in id order), within a token by the ids of the two parts. */
typedef struct {
    float score;
    int32_t t, l, r;
} spm_merge;

static int merge_cmp(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    if (a->l != b->l) return a->l < b->l ? -1 : 1;
    return (a->r > b->r) - (a->r < b->r);
}

static int spm_merges(const tokenizer *t, spm_merge **out, size_t *n_out) {
    size_t n = 0, cap = 1024;
    spm_merge *m = rt_malloc_array(cap, sizeof *m, "merges");
    if (!m) return -1;
    for (size_t id = 0; id < t->n_vocab; id++) {
        if (t->type[id] != TOKENIZER_TYPE_NORMAL) continue;
        const char *k = t->kblob + t->koff[id];
        size_t len = t->koff[id + 1] - t->koff[id] - 1;
        for (size_t cut = 1; cut < len; cut++) {
            if (((unsigned char)k[cut] & 0xC0) == 0x80) continue; /* inside a character */
            int32_t l = tok_strmap_get(&t->map, t->kblob, t->koff, k, cut);
            int32_t r = l >= 0 ? tok_strmap_get(&t->map, t->kblob, t->koff, k + cut, len - cut) : -1;
            if (r < 0) continue;
            if (n == cap) {
                spm_merge *g = rt_realloc(m, 2 * cap * sizeof *m, "merges");
                if (!g) {
                    free(m);
                    return -1;
                }
                m = g;
                cap *= 2;
            }
            m[n++] = (spm_merge){t->scores[id], (int32_t)id, l, r};
        }
    }
    qsort(m, n, sizeof *m, merge_cmp);
    *out = m;
    *n_out = n;
    return 0;
}

static json_t *model_json(const tokenizer *t, const uint8_t *made) {
    json_t *vocab = json_object(), *merges = json_array();
    rt_buf a = {0}, b = {0};
    int bad = !vocab || !merges;
    for (size_t i = 0; !bad && i < t->n_vocab; i++) {
        if (is_added(t, made, i) && t->model == TOK_MODEL_BYTELEVEL) continue; /* added tokens only */
        bad = vocab_key(t, made, (int32_t)i, &a) || json_object_set_new(vocab, a.data, json_integer((json_int_t)i));
    }
    spm_merge *sm = NULL;
    size_t n_sm = 0, n_merges = t->n_merges;
    if (!bad && !n_merges && t->model == TOK_MODEL_SPM && t->scores && t->kblob) {
        bad = spm_merges(t, &sm, &n_sm) != 0;
        n_merges = n_sm;
    }
    for (size_t r = 0; !bad && r < n_merges; r++) {
        int32_t l = sm ? sm[r].l : t->merges[3 * r], rr = sm ? sm[r].r : t->merges[3 * r + 1];
        bad = vocab_key(t, made, l, &a) || vocab_key(t, made, rr, &b);
        if (!bad) bad = json_array_append_new(merges, json_pack("[s,s]", a.data, b.data));
    }
    free(sm);
    rt_buf_free(&a);
    if (bad) {
        rt_buf_free(&b);
        json_decref(vocab);
        json_decref(merges);
        return NULL;
    }
    json_t *unk = json_null();
    if (t->unk >= 0 && !vocab_key(t, made, t->unk, &b)) unk = json_string(b.data);
    rt_buf_free(&b);
    return json_pack("{s:s, s:n, s:o, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout", "unk_token",
                     unk, "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", t->fuse_unk, "byte_fallback",
                     t->model == TOK_MODEL_SPM, "ignore_merges", t->ignore_merges, "vocab", vocab, "merges", merges);
}

static json_t *added_tokens(const tokenizer *t, const uint8_t *made) {
    json_t *list = json_array();
    for (size_t i = 0; list && i < t->n_vocab; i++) {
        int ty = t->type[i];
        if (!is_added(t, made, i)) continue;
        json_array_append_new(list, json_pack("{s:i, s:s%, s:b, s:b, s:b, s:b, s:b}", "id", (int)i, "content",
                                              tok_bytes(t, (int32_t)i), tok_len(t, (int32_t)i), "single_word", 0,
                                              "lstrip", 0, "rstrip", 0, "normalized", 0, "special",
                                              ty == TOKENIZER_TYPE_CONTROL));
    }
    return list;
}

static int write_json(const char *dir, const char *name, json_t *j) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = j ? json_dumps(j, JSON_INDENT(1) | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (!s) return RT_FAIL("%s: cannot build the JSON (out of memory)", path);
    int rc = rt_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}

static json_t *token_or_null(const tokenizer *t, int32_t id) {
    return id >= 0 && (size_t)id < t->n_vocab ? json_stringn(tok_bytes(t, id), tok_len(t, id)) : json_null();
}

int tokenizer_to_hf(const tokenizer *t, const char *dir, const char *chat_template) {
    uint8_t *made = rt_calloc(t->n_vocab ? t->n_vocab : 1, 1, "token flags");
    if (!made) return -1;
    for (size_t r = 0; r < t->n_merges; r++) made[t->merges[3 * r + 2]] = 1;
    json_t *m = model_json(t, made), *added = m ? added_tokens(t, made) : NULL;
    free(made);
    if (!m || !added) {
        json_decref(m);
        json_decref(added);
        return RT_FAIL("%s/tokenizer.json: cannot build the vocabulary (out of memory)", dir);
    }
    json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation",
                             "padding", "added_tokens", added, "normalizer", normalizer(t), "pre_tokenizer",
                             pre_tokenizer(t), "post_processor", post_processor(t), "decoder", decoder(t), "model", m);
    if (write_json(dir, "tokenizer.json", root)) return -1;
    json_t *cfg = json_pack("{s:o, s:o, s:o, s:o, s:b, s:b, s:s, s:b}", "bos_token", token_or_null(t, t->bos),
                            "eos_token", token_or_null(t, t->eos), "unk_token", token_or_null(t, t->unk), "pad_token",
                            token_or_null(t, t->pad), "add_bos_token", t->add_bos, "add_eos_token", t->add_eos,
                            "tokenizer_class", "PreTrainedTokenizerFast", "clean_up_tokenization_spaces", 0);
    if (cfg && chat_template) json_object_set_new(cfg, "chat_template", json_string(chat_template));
    return write_json(dir, "tokenizer_config.json", cfg);
}
