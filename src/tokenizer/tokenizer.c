/*
 * tokenizer.c — the byte-level BPE vocabulary (tokens, types, merges, specials), encode and
 * decode, and the small hash maps the tokenizer files share.
 *
 * Encoding follows llama.cpp's llm_tokenizer_bpe_session so that ids agree: the text is cut
 * at special tokens (when asked), each fragment is split into pre-tokens (pretok.c), and each
 * pre-token starts as one symbol per byte; the adjacent pair with the lowest merge rank is
 * merged (ties: the leftmost), repeatedly, with a heap and stale-entry checks. Pieces already
 * seen in the same call come from a per-call cache (a shared cache would need locking; the
 * big inputs, such as a corpus, are single calls anyway).
 *
 * What this is not: training (train.c), GGUF mapping (tokenizer_gguf.c), or a normaliser —
 * bytes go in and the same bytes come out.
 */
#include "../base/base.h"
#include "internal.h"
#include "tokenizer.h"
#include "unicode_hf.h"

#include <stdlib.h>
#include <string.h>

const char *const tokenizer_special_tokens[TOKENIZER_N_SPECIAL] = {
    "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
};

/* ---------------------------------------------------------------- GPT-2 byte mapping */

/* bytes_to_unicode: printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves;
 * the other 68 (0x00..0x20, 0x7F..0xA0, 0xAD) take U+0100.. in byte order. */
uint32_t tok_byte_to_cp(uint8_t b) {
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    if (b == 0xAD) return 256u + 67u;
    return b;
}

int tok_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 256 && cp <= 256 + 32) return (int)(cp - 256);
    if (cp >= 256 + 33 && cp <= 256 + 66) return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

/* ---------------------------------------------------------------- hash maps */

uint64_t tok_hash_bytes(const void *p, size_t len) {
    /* FNV-1a over 8-byte words then a final mix: fast for short keys, fine for long ones. */
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ULL ^ len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
        s += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0x100000001b3ULL;
    return rt_mix64(h);
}

static int strmap_grow(tok_strmap *m, const char *blob, const size_t *off) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    int32_t *slot = rt_malloc_array(ncap, sizeof *slot, "token map");
    uint32_t *hash = rt_malloc_array(ncap, sizeof *hash, "token map");
    if (!slot || !hash) {
        free(slot);
        free(hash);
        return -1;
    }
    for (size_t i = 0; i < ncap; i++) slot[i] = -1;
    for (size_t i = 0; i < m->cap; i++) {
        int32_t id = m->slot[i];
        if (id < 0) continue;
        size_t j = m->hash[i] & (ncap - 1);
        /* hash[] keeps the low 32 bits; ncap stays below 2^32 entries in practice, and
         * placement only needs consistency with lookups, which use the same bits. */
        while (slot[j] >= 0) j = (j + 1) & (ncap - 1);
        slot[j] = id;
        hash[j] = m->hash[i];
    }
    (void)blob;
    (void)off;
    free(m->slot);
    free(m->hash);
    m->slot = slot;
    m->hash = hash;
    m->cap = ncap;
    return 0;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *blob, const size_t *off, const void *key,
                       size_t len) {
    if (!m->cap) return -1;
    uint32_t h = (uint32_t)tok_hash_bytes(key, len);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        if (m->hash[i] == h && off[id + 1] - off[id] - 1 == len &&
            memcmp(blob + off[id], key, len) == 0)
            return id;
    }
}

int tok_strmap_put(tok_strmap *m, const char *blob, const size_t *off, int32_t id) {
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m, blob, off)) return -1;
    size_t len = off[id + 1] - off[id] - 1;
    uint32_t h = (uint32_t)tok_hash_bytes(blob + off[id], len);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slot[i] >= 0) i = (i + 1) & mask;
    m->slot[i] = id;
    m->hash[i] = h;
    m->n++;
    return 0;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slot);
    free(m->hash);
    memset(m, 0, sizeof *m);
}

int tok_pairmap_put(tok_pairmap *m, uint64_t key, uint32_t val) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        uint64_t *k = rt_malloc_array(ncap, sizeof *k, "pair map");
        uint32_t *v = rt_malloc_array(ncap, sizeof *v, "pair map");
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        for (size_t i = 0; i < ncap; i++) k[i] = TOK_PAIR_EMPTY;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->key[i] == TOK_PAIR_EMPTY) continue;
            size_t j = rt_mix64(m->key[i]) & (ncap - 1);
            while (k[j] != TOK_PAIR_EMPTY) j = (j + 1) & (ncap - 1);
            k[j] = m->key[i];
            v[j] = m->val[i];
        }
        free(m->key);
        free(m->val);
        m->key = k;
        m->val = v;
        m->cap = ncap;
    }
    size_t mask = m->cap - 1;
    for (size_t i = rt_mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->key[i] == key) {
            m->val[i] = val;
            return 0;
        }
        if (m->key[i] == TOK_PAIR_EMPTY) {
            m->key[i] = key;
            m->val[i] = val;
            m->n++;
            return 0;
        }
    }
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- building */

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->type);
    tok_strmap_free(&t->map);
    free(t->merges);
    tok_pairmap_free(&t->rank);
    free(t->special);
    free(t->kblob);
    free(t->koff);
    for (int i = 0; i < t->n_stages; i++) free(t->stages[i].str);
    tok_pairmap_free(&t->trie_next);
    free(t->trie_term);
    free(t->scores);
    free(t);
}

/* Printable excerpt of a token for messages. */
static const char *show(const tokenizer *t, int32_t id, char *buf, size_t cap) {
    size_t len = tok_len(t, id), o = 0;
    const unsigned char *s = (const unsigned char *)tok_bytes(t, id);
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7F && s[i] != '\\')
            buf[o++] = (char)s[i];
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", s[i]);
    }
    buf[o] = 0;
    return buf;
}

int tok_unmap(const char *text, size_t len, char *out, size_t *out_len) {
    const uint8_t *s = (const uint8_t *)text;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n;
        if (s[i] < 0x80) {
            cp = s[i];
            n = 1;
        } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < len && (s[i + 1] & 0xC0) == 0x80) {
            cp = ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
            n = 2;
            if (cp < 0x80) return -1; /* overlong */
        } else {
            return -1; /* not a 1- or 2-byte UTF-8 character: no mapped byte is longer */
        }
        int b = tok_cp_to_byte(cp);
        if (b < 0) return -1;
        out[o++] = (char)b;
        i += n;
    }
    *out_len = o;
    return 0;
}

int tok_map_bytes(const char *raw, size_t len, rt_buf *out) {
    out->len = 0;
    if (rt_buf_reserve(out, 2 * len + 1)) return -1;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)raw[i]);
        if (cp < 0x80) {
            out->data[out->len++] = (char)cp;
        } else {
            out->data[out->len++] = (char)(0xC0 | (cp >> 6));
            out->data[out->len++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out->data[out->len] = 0;
    return 0;
}

/* Specials are few: insertion sort, longest text first, then by id. */
static void sort_specials(tokenizer *t) {
    for (size_t i = 1; i < t->n_special; i++) {
        int32_t x = t->special[i];
        size_t j = i;
        while (j > 0 && tok_len(t, t->special[j - 1]) < tok_len(t, x)) {
            t->special[j] = t->special[j - 1];
            j--;
        }
        t->special[j] = x;
    }
}

int tok_build(tokenizer **out, size_t n_vocab, const char *blob, const size_t *off,
              const uint8_t *types, size_t n_merges, const int32_t *pairs, int32_t bos, int32_t eos,
              int32_t pad, const char *what_tokens, const char *what_merges) {
    *out = NULL;
    if (n_vocab < 256 || n_vocab > (size_t)INT32_MAX - 1)
        return RT_FAIL("%s: %zu tokens; a byte-level BPE vocabulary needs at least 256 (one per "
                       "byte) and at most %d",
                       what_tokens, n_vocab, INT32_MAX - 1);
    tokenizer *t = rt_calloc(1, sizeof *t, "tokenizer");
    if (!t) return -1;
    t->n_vocab = n_vocab;
    t->blob = rt_malloc(off[n_vocab] ? off[n_vocab] : 1, "token bytes");
    t->off = rt_malloc_array(n_vocab + 1, sizeof *t->off, "token offsets");
    t->type = rt_malloc(n_vocab, "token types");
    if (!t->blob || !t->off || !t->type) goto fail;
    memcpy(t->blob, blob, off[n_vocab]);
    memcpy(t->off, off, (n_vocab + 1) * sizeof *off);
    memcpy(t->type, types, n_vocab);
    char sbuf[96], sbuf2[96];

    size_t n_control = 0;
    for (size_t i = 0; i < n_vocab; i++) {
        int32_t id = (int32_t)i;
        if (off[i + 1] <= off[i] + 1) {
            RT_FAIL("%s[%zu]: empty token (every token needs at least one byte)", what_tokens, i);
            goto fail;
        }
        if (types[i] == TOKENIZER_TYPE_CONTROL) {
            n_control++;
            continue;
        }
        if (types[i] != TOKENIZER_TYPE_NORMAL) {
            RT_FAIL("%s[%zu]: token type %u is not supported (1 = normal, 3 = control)",
                    what_tokens, i, types[i]);
            goto fail;
        }
        int32_t dup = tok_strmap_get(&t->map, t->blob, t->off, tok_bytes(t, id), tok_len(t, id));
        if (dup >= 0) {
            RT_FAIL("%s[%zu]: token '%s' appears twice (also at %d); tokens must be unique",
                    what_tokens, i, show(t, id, sbuf, sizeof sbuf), dup);
            goto fail;
        }
        if (tok_strmap_put(&t->map, t->blob, t->off, id)) goto fail;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok_strmap_get(&t->map, t->blob, t->off, &c, 1);
        if (t->byte_id[b] < 0) {
            RT_FAIL("%s: no normal token for the single byte 0x%02X (byte-level BPE needs all "
                    "256, written as GPT-2's byte characters)",
                    what_tokens, b);
            goto fail;
        }
    }

    /* Specials: the CONTROL tokens, longest first, unique, and not confusable with a normal
     * token (llama.cpp looks tokens up by their stored text; a normal token whose mapped form
     * equals a special's text would make the two ids ambiguous). */
    t->special = rt_malloc_array(n_control ? n_control : 1, sizeof *t->special, "special ids");
    if (!t->special) goto fail;
    for (size_t i = 0; i < n_vocab; i++)
        if (types[i] == TOKENIZER_TYPE_CONTROL) t->special[t->n_special++] = (int32_t)i;
    sort_specials(t);
    for (size_t i = 0; i < t->n_special; i++) {
        int32_t id = t->special[i];
        size_t len = tok_len(t, id);
        t->special_first[(uint8_t)tok_bytes(t, id)[0]] = 1;
        for (size_t j = i + 1; j < t->n_special && tok_len(t, t->special[j]) == len; j++)
            if (memcmp(tok_bytes(t, id), tok_bytes(t, t->special[j]), len) == 0) {
                RT_FAIL("%s[%d]: special token '%s' appears twice (also at %d)", what_tokens,
                        t->special[j], show(t, id, sbuf, sizeof sbuf), id);
                goto fail;
            }
        char *raw = rt_malloc(len + 1, "special text");
        if (!raw) goto fail;
        size_t raw_len;
        int32_t clash = -1;
        if (tok_unmap(tok_bytes(t, id), len, raw, &raw_len) == 0)
            clash = tok_strmap_get(&t->map, t->blob, t->off, raw, raw_len);
        free(raw);
        if (clash >= 0) {
            RT_FAIL("%s[%d]: special token '%s' has the same text as normal token %d", what_tokens,
                    id, show(t, id, sbuf, sizeof sbuf), clash);
            goto fail;
        }
    }

    t->n_merges = n_merges;
    t->merges = rt_malloc_array(n_merges ? 3 * n_merges : 1, sizeof *t->merges, "merges");
    if (!t->merges) goto fail;
    rt_buf cat = {0};
    for (size_t r = 0; r < n_merges; r++) {
        int32_t a = pairs[2 * r], b = pairs[2 * r + 1];
        if (a < 0 || b < 0 || (size_t)a >= n_vocab || (size_t)b >= n_vocab ||
            types[a] != TOKENIZER_TYPE_NORMAL || types[b] != TOKENIZER_TYPE_NORMAL) {
            RT_FAIL("%s[%zu]: merge (%d, %d) does not name two normal tokens", what_merges, r, a,
                    b);
            rt_buf_free(&cat);
            goto fail;
        }
        cat.len = 0;
        if (rt_buf_append(&cat, tok_bytes(t, a), tok_len(t, a)) ||
            rt_buf_append(&cat, tok_bytes(t, b), tok_len(t, b))) {
            rt_buf_free(&cat);
            goto fail;
        }
        int32_t res = tok_strmap_get(&t->map, t->blob, t->off, cat.data, cat.len);
        if (res < 0) {
            RT_FAIL("%s[%zu]: merge '%s' + '%s' makes a token that is not in the vocabulary",
                    what_merges, r, show(t, a, sbuf, sizeof sbuf), show(t, b, sbuf2, sizeof sbuf2));
            rt_buf_free(&cat);
            goto fail;
        }
        uint64_t key = tok_pair_key(a, b);
        uint32_t *prev = tok_pairmap_get(&t->rank, key);
        if (prev) {
            RT_FAIL("%s[%zu]: merge '%s' + '%s' repeats merge %u", what_merges, r,
                    show(t, a, sbuf, sizeof sbuf), show(t, b, sbuf2, sizeof sbuf2), *prev);
            rt_buf_free(&cat);
            goto fail;
        }
        if (tok_pairmap_put(&t->rank, key, (uint32_t)r)) {
            rt_buf_free(&cat);
            goto fail;
        }
        t->merges[3 * r] = a;
        t->merges[3 * r + 1] = b;
        t->merges[3 * r + 2] = res;
    }
    rt_buf_free(&cat);

    if (bos < 0 || (size_t)bos >= n_vocab || eos < 0 || (size_t)eos >= n_vocab || pad < -1 ||
        (pad >= 0 && (size_t)pad >= n_vocab)) {
        RT_FAIL("tokenizer: bos %d / eos %d / padding %d id outside the vocabulary (0..%zu)", bos,
                eos, pad, n_vocab - 1);
        goto fail;
    }
    t->bos = bos;
    t->eos = eos;
    t->pad = pad;
    t->model = TOK_MODEL_BYTELEVEL;
    t->n_stages = 1;
    t->stages[0].kind = TOK_PRE_GPT2;
    t->unk = -1;
    snprintf(t->pre_name, sizeof t->pre_name, "gpt-2");
    if (tok_build_trie(t)) goto fail;
    *out = t;
    return 0;
fail:
    tokenizer_free(t);
    return -1;
}

/* ---------------------------------------------------------------- added-token trie */

static int is_added_type(int type) {
    return type == TOKENIZER_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED ||
           type == TOK_TYPE_UNKNOWN;
}

/* The text an added token is matched by: its vocabulary text (kblob) when there is one. */
static const uint8_t *added_text(const tokenizer *t, int32_t id, size_t *len) {
    if (t->kblob) {
        *len = t->koff[id + 1] - t->koff[id] - 1;
        return (const uint8_t *)t->kblob + t->koff[id];
    }
    *len = tok_len(t, id);
    return (const uint8_t *)tok_bytes(t, id);
}

int tok_build_trie(tokenizer *t) {
    size_t cap = 1, len;
    for (size_t i = 0; i < t->n_vocab; i++)
        if (is_added_type(t->type[i])) {
            added_text(t, (int32_t)i, &len);
            cap += len;
        }
    t->trie_term = rt_malloc_array(cap, sizeof *t->trie_term, "added-token trie");
    if (!t->trie_term) return -1;
    t->trie_term[0] = -1;
    t->trie_n = 1;
    for (size_t i = 0; i < t->n_vocab; i++) {
        if (!is_added_type(t->type[i])) continue;
        const uint8_t *p = added_text(t, (int32_t)i, &len);
        if (!len) continue;
        uint32_t node = 0;
        for (size_t k = 0; k < len; k++) {
            uint32_t *child = tok_pairmap_get(&t->trie_next, tok_pair_key((int32_t)node, p[k]));
            if (child) {
                node = *child;
                continue;
            }
            uint32_t nn = (uint32_t)t->trie_n++;
            t->trie_term[nn] = -1;
            if (tok_pairmap_put(&t->trie_next, tok_pair_key((int32_t)node, p[k]), nn)) return -1;
            node = nn;
        }
        if (t->trie_term[node] < 0) t->trie_term[node] = (int32_t)i; /* same text: lowest id */
        t->added_first[p[0]] = 1;
    }
    return 0;
}

/* Length of the longest added token at s[0..len) that may match (CONTROL ones only with
 * parse_special; USER_DEFINED ones always), its id in *id; 0 if none. */
static size_t trie_match(const tokenizer *t, const uint8_t *s, size_t len, int parse_special,
                         int32_t *id) {
    uint32_t node = 0;
    size_t best = 0;
    for (size_t k = 0; k < len; k++) {
        const uint32_t *child = tok_pairmap_get(&t->trie_next, tok_pair_key((int32_t)node, s[k]));
        if (!child) break;
        node = *child;
        int32_t term = t->trie_term[node];
        if (term >= 0 && (parse_special || t->type[term] == TOK_TYPE_USER_DEFINED)) {
            best = k + 1;
            *id = term;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- HF-style building */

static const char *key_bytes(const tokenizer *t, int32_t id, size_t *len) {
    if (!t->kblob) {
        *len = tok_len(t, id);
        return tok_bytes(t, id);
    }
    *len = t->koff[id + 1] - t->koff[id] - 1;
    return t->kblob + t->koff[id];
}

static const char *show_key(const tokenizer *t, int32_t id, char *buf, size_t cap) {
    size_t len, o = 0;
    const unsigned char *s = (const unsigned char *)key_bytes(t, id, &len);
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        if (s[i] >= 0x20 && s[i] != 0x7F && s[i] != '\\')
            buf[o++] = (char)s[i];
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", s[i]);
    }
    buf[o] = 0;
    return buf;
}

/* tok_build_hf, step 1: copy the inputs and options into t. */
static int hf_copy(tokenizer *t, size_t n_vocab, const char *blob, const size_t *off,
                   const uint8_t *types, const tok_hf_opts *o, const char *what_tokens) {
    t->n_vocab = n_vocab;
    t->blob = rt_malloc(off[n_vocab] ? off[n_vocab] : 1, "token bytes");
    t->off = rt_malloc_array(n_vocab + 1, sizeof *t->off, "token offsets");
    t->type = rt_malloc(n_vocab, "token types");
    if (!t->blob || !t->off || !t->type) return -1;
    memcpy(t->blob, blob, off[n_vocab]);
    memcpy(t->off, off, (n_vocab + 1) * sizeof *off);
    memcpy(t->type, types, n_vocab);
    if (o->kblob) {
        t->kblob = rt_malloc(o->koff[n_vocab] ? o->koff[n_vocab] : 1, "token texts");
        t->koff = rt_malloc_array(n_vocab + 1, sizeof *t->koff, "token offsets");
        if (!t->kblob || !t->koff) return -1;
        memcpy(t->kblob, o->kblob, o->koff[n_vocab]);
        memcpy(t->koff, o->koff, (n_vocab + 1) * sizeof *o->koff);
    }
    if (o->scores) {
        t->scores = rt_malloc_array(n_vocab, sizeof *t->scores, "token scores");
        if (!t->scores) return -1;
        memcpy(t->scores, o->scores, n_vocab * sizeof *t->scores);
    }
    t->model = o->model;
    t->nfc = o->nfc;
    t->spm_prepend = o->spm_prepend;
    t->spm_escape = o->spm_escape;
    t->ignore_merges = o->ignore_merges;
    t->strip_lead = o->strip_lead;
    t->add_bos = o->add_bos;
    t->add_eos = o->add_eos;
    t->unk = o->unk;
    t->fuse_unk = o->fuse_unk;
    snprintf(t->pre_name, sizeof t->pre_name, "%s", o->pre_name ? o->pre_name : "");
    if (o->n_stages < 0 || o->n_stages > TOK_MAX_STAGES) {
        RT_FAIL("%s: %d pre-tokenizer steps (at most %d)", what_tokens, o->n_stages,
                TOK_MAX_STAGES);
        return -1;
    }
    for (int i = 0; i < o->n_stages; i++) {
        t->stages[i] = o->stages[i];
        t->stages[i].str = NULL;
        if (o->stages[i].str) {
            t->stages[i].str = rt_malloc(o->stages[i].str_len + 1, "split string");
            if (!t->stages[i].str) return -1;
            memcpy(t->stages[i].str, o->stages[i].str, o->stages[i].str_len + 1);
        }
        t->n_stages = i + 1;
    }
    return 0;
}

/* Step 2: the lookup map (tokens of the model's vocabulary, first of equal texts), the byte
 * tokens, the CONTROL list. */
static int hf_index(tokenizer *t, const uint8_t *types, const tok_hf_opts *o,
                    const char *what_tokens) {
    size_t n_vocab = t->n_vocab;
    const size_t *off = t->off;
    size_t n_control = 0;
    for (size_t i = 0; i < n_vocab; i++) {
        int32_t id = (int32_t)i;
        if (off[i + 1] <= off[i] + 1) {
            RT_FAIL("%s[%zu]: empty token (every token needs at least one byte)", what_tokens, i);
            return -1;
        }
        if (types[i] < TOKENIZER_TYPE_NORMAL || types[i] > TOK_TYPE_BYTE) {
            RT_FAIL("%s[%zu]: token type %u is not one of 1..6", what_tokens, i, types[i]);
            return -1;
        }
        if (types[i] == TOKENIZER_TYPE_CONTROL) n_control++;
        if (o->in_model && !o->in_model[i]) continue;
        size_t kl;
        const char *k = key_bytes(t, id, &kl);
        int32_t dup = tok_strmap_get(&t->map, t->kblob ? t->kblob : t->blob,
                                     t->kblob ? t->koff : t->off, k, kl);
        if (dup >= 0) continue; /* same text twice (e.g. a special and a token): first wins */
        if (tok_strmap_put(&t->map, t->kblob ? t->kblob : t->blob, t->kblob ? t->koff : t->off,
                           id))
            return -1;
    }
    const char *kb = t->kblob ? t->kblob : t->blob;
    const size_t *ko = t->kblob ? t->koff : t->off;
    for (int b = 0; b < 256; b++) {
        if (t->model == TOK_MODEL_SPM) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_id[b] = tok_strmap_get(&t->map, kb, ko, name, 6);
        } else {
            char c = (char)b;
            t->byte_id[b] = tok_strmap_get(&t->map, kb, ko, &c, 1);
            if (t->byte_id[b] < 0) {
                RT_FAIL("%s: no token for the single byte 0x%02X (byte-level BPE needs all 256)",
                        what_tokens, b);
                return -1;
            }
        }
    }
    t->special = rt_malloc_array(n_control ? n_control : 1, sizeof *t->special, "special ids");
    if (!t->special) return -1;
    for (size_t i = 0; i < n_vocab; i++)
        if (types[i] == TOKENIZER_TYPE_CONTROL) t->special[t->n_special++] = (int32_t)i;
    sort_specials(t);

    return 0;
}

/* Step 3: merges by rank, each checked to join two tokens into a third. */
static int hf_merges(tokenizer *t, size_t n_merges, const int32_t *pairs,
                     const char *what_merges) {
    size_t n_vocab = t->n_vocab;
    const char *kb = t->kblob ? t->kblob : t->blob;
    const size_t *ko = t->kblob ? t->koff : t->off;
    char sbuf[96], sbuf2[96];
    t->n_merges = n_merges;
    t->merges = rt_malloc_array(n_merges ? 3 * n_merges : 1, sizeof *t->merges, "merges");
    if (!t->merges) return -1;
    rt_buf cat = {0};
    for (size_t r = 0; r < n_merges; r++) {
        int32_t a = pairs[2 * r], b = pairs[2 * r + 1];
        if (a < 0 || b < 0 || (size_t)a >= n_vocab || (size_t)b >= n_vocab) {
            RT_FAIL("%s[%zu]: merge (%d, %d) names a token outside the vocabulary", what_merges,
                    r, a, b);
            rt_buf_free(&cat);
            return -1;
        }
        size_t la, lb;
        const char *pa = key_bytes(t, a, &la), *pb = key_bytes(t, b, &lb);
        cat.len = 0;
        if (rt_buf_append(&cat, pa, la) || rt_buf_append(&cat, pb, lb)) {
            rt_buf_free(&cat);
            return -1;
        }
        int32_t res = tok_strmap_get(&t->map, kb, ko, cat.data, cat.len);
        if (res < 0) {
            RT_FAIL("%s[%zu]: merge '%s' + '%s' makes a token that is not in the vocabulary",
                    what_merges, r, show_key(t, a, sbuf, sizeof sbuf),
                    show_key(t, b, sbuf2, sizeof sbuf2));
            rt_buf_free(&cat);
            return -1;
        }
        uint64_t key = tok_pair_key(a, b);
        /* a repeated merge keeps its first rank (the later entry is kept but never used) */
        if (!tok_pairmap_get(&t->rank, key) && tok_pairmap_put(&t->rank, key, (uint32_t)r)) {
            rt_buf_free(&cat);
            return -1;
        }
        t->merges[3 * r] = a;
        t->merges[3 * r + 1] = b;
        t->merges[3 * r + 2] = res;
    }
    rt_buf_free(&cat);
    return 0;
}

int tok_build_hf(tokenizer **out, size_t n_vocab, const char *blob, const size_t *off,
                 const uint8_t *types, size_t n_merges, const int32_t *pairs, int32_t bos,
                 int32_t eos, int32_t pad, const tok_hf_opts *o, const char *what_tokens,
                 const char *what_merges) {
    *out = NULL;
    if (n_vocab < 1 || n_vocab > (size_t)INT32_MAX - 1)
        return RT_FAIL("%s: %zu tokens (expected 1..%d)", what_tokens, n_vocab, INT32_MAX - 1);
    tokenizer *t = rt_calloc(1, sizeof *t, "tokenizer");
    if (!t) return -1;
    if (hf_copy(t, n_vocab, blob, off, types, o, what_tokens) ||
        hf_index(t, types, o, what_tokens) || hf_merges(t, n_merges, pairs, what_merges))
        goto fail;
    if (bos < -1 || bos >= (int64_t)n_vocab || eos < -1 || eos >= (int64_t)n_vocab || pad < -1 ||
        pad >= (int64_t)n_vocab || o->unk < -1 || o->unk >= (int64_t)n_vocab) {
        RT_FAIL("%s: bos %d / eos %d / padding %d / unknown %d id outside the vocabulary "
                "(0..%zu)",
                what_tokens, bos, eos, pad, o->unk, n_vocab - 1);
        goto fail;
    }
    t->bos = bos;
    t->eos = eos;
    t->pad = pad;
    if (tok_build_trie(t)) goto fail;
    *out = t;
    return 0;
fail:
    tokenizer_free(t);
    return -1;
}

/* ---------------------------------------------------------------- accessors */

size_t tokenizer_vocab_size(const tokenizer *tok) { return tok->n_vocab; }

/* Grow one NUL-separated token store (blob + n+1 offsets) by the padding tokens' texts. On
 * failure the store is unchanged in content (a buffer may have grown). */
static int pad_store(char **blob, size_t **off, size_t n, size_t n_new, const rt_buf *texts,
                     const size_t *toff) {
    size_t old = (*off)[n];
    char *b = rt_realloc(*blob, old + texts->len, "token bytes");
    if (!b) return -1;
    *blob = b;
    size_t *o = rt_realloc(*off, (n_new + 1) * sizeof *o, "token offsets");
    if (!o) return -1;
    *off = o;
    memcpy(b + old, texts->data, texts->len);
    for (size_t i = n; i <= n_new; i++) o[i] = old + toff[i - n];
    return 0;
}

int tokenizer_pad_vocab(tokenizer *tok, size_t n_vocab) {
    size_t n = tok->n_vocab;
    if (n_vocab < n)
        return RT_FAIL("tokenizer: cannot pad %zu tokens down to %zu", n, n_vocab);
    if (n_vocab > (size_t)INT32_MAX - 1)
        return RT_FAIL("tokenizer: %zu tokens (at most %d)", n_vocab, INT32_MAX - 1);
    if (n_vocab == n) return 0;
    rt_buf texts = {0};
    size_t *toff = rt_malloc_array(n_vocab - n + 1, sizeof *toff, "padding offsets");
    int rc = toff ? 0 : -1;
    for (size_t id = n; rc == 0 && id < n_vocab; id++) {
        char name[40];
        int len = snprintf(name, sizeof name, "[PAD%zu]", id);
        toff[id - n] = texts.len;
        rc = rt_buf_append(&texts, name, (size_t)len + 1); /* with its NUL */
    }
    if (rc == 0) toff[n_vocab - n] = texts.len;
    uint8_t *type = rc ? NULL : rt_realloc(tok->type, n_vocab, "token types");
    if (type) tok->type = type;
    float *sc = NULL;
    if (type && tok->scores) {
        sc = rt_realloc(tok->scores, n_vocab * sizeof *sc, "token scores");
        if (sc) tok->scores = sc;
    }
    rc = !type || (tok->scores && !sc) ||
         pad_store(&tok->blob, &tok->off, n, n_vocab, &texts, toff) ||
         (tok->kblob && pad_store(&tok->kblob, &tok->koff, n, n_vocab, &texts, toff))
             ? -1
             : 0;
    if (rc == 0) {
        for (size_t id = n; id < n_vocab; id++) {
            tok->type[id] = TOK_TYPE_UNUSED;
            if (tok->scores) tok->scores[id] = -1000.0f;
        }
        tok->n_vocab = n_vocab;
    }
    free(toff);
    rt_buf_free(&texts);
    return rc;
}
int32_t tokenizer_bos(const tokenizer *tok) { return tok->bos; }
int32_t tokenizer_eos(const tokenizer *tok) { return tok->eos; }
int32_t tokenizer_pad(const tokenizer *tok) { return tok->pad; }
size_t tokenizer_n_merges(const tokenizer *tok) { return tok->n_merges; }

int tokenizer_merge_at(const tokenizer *tok, size_t rank, int32_t *left, int32_t *right,
                       int32_t *result) {
    if (rank >= tok->n_merges)
        return RT_FAIL("tokenizer: merge rank %zu is outside 0..%zu", rank, tok->n_merges);
    if (left) *left = tok->merges[3 * rank];
    if (right) *right = tok->merges[3 * rank + 1];
    if (result) *result = tok->merges[3 * rank + 2];
    return 0;
}

int tokenizer_token_type(const tokenizer *tok, int32_t id) {
    if (id < 0 || (size_t)id >= tok->n_vocab) return -1;
    return tok->type[id];
}

int32_t tokenizer_special_id(const tokenizer *tok, const char *text) {
    size_t len = strlen(text);
    for (size_t i = 0; i < tok->n_special; i++) {
        int32_t id = tok->special[i];
        if (tok_len(tok, id) == len && memcmp(tok_bytes(tok, id), text, len) == 0) return id;
    }
    return -1;
}

int tokenizer_is_special(const tokenizer *tok, int32_t id) {
    return id >= 0 && (size_t)id < tok->n_vocab && tok->type[id] == TOKENIZER_TYPE_CONTROL;
}

const char *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || (size_t)id >= tok->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok_len(tok, id);
    return tok_bytes(tok, id);
}

/* ---------------------------------------------------------------- encode */

typedef struct {
    uint64_t h;
    const uint8_t *p; /* into the caller's text (valid for the call) */
    size_t len;
    size_t start, n; /* ids in pool[start .. start+n) */
} cache_ent;

typedef struct {
    const tokenizer *t;
    int32_t *ids; /* output */
    size_t n, cap;
    cache_ent *ent; /* per-call piece cache; p == NULL marks an empty slot */
    size_t ent_cap, ent_used;
    int32_t *pool;
    size_t pool_n, pool_cap;
    int32_t *sid, *prev, *next; /* BPE scratch, (scap) */
    int32_t *sstart, *slen;     /* score-merged SentencePiece: each symbol's span, (scap) */
    uint64_t *heap;             /* (3 * scap) */
    size_t scap;
} enc_ctx;

#define CACHE_MAX_PIECE 256          /* longer pieces are not cached */
#define CACHE_MAX_ENTRIES (1u << 22) /* then the cache stops growing */

static int grow_ids(int32_t **v, size_t *cap, size_t need) {
    size_t nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    int32_t *nv = rt_realloc(*v, nc * sizeof **v, "token ids");
    if (!nv) return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

static inline int push_ids(int32_t **v, size_t *n, size_t *cap, const int32_t *src, size_t k) {
    if (*n + k > *cap && grow_ids(v, cap, *n + k)) return -1;
    int32_t *d = *v + *n; /* pieces are short: a loop beats a memcpy call */
    for (size_t i = 0; i < k; i++) d[i] = src[i];
    *n += k;
    return 0;
}

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

static inline void push_pair(enc_ctx *c, size_t *hn, int32_t l) {
    if (l < 0) return;
    int32_t r = c->next[l];
    if (r < 0) return;
    const uint32_t *rank = tok_pairmap_get(&c->t->rank, tok_pair_key(c->sid[l], c->sid[r]));
    if (rank) heap_push(c->heap, hn, ((uint64_t)*rank << 32) | (uint32_t)l);
}

static int ensure_scratch(enc_ctx *c, size_t m) {
    if (m > (size_t)INT32_MAX)
        return RT_FAIL("tokenizer_encode: a %zu-byte pre-token is too long", m);
    if (m <= c->scap) return 0;
    size_t nc = c->scap ? c->scap : 64;
    while (nc < m) nc *= 2;
    free(c->sid);
    free(c->prev);
    free(c->next);
    free(c->heap);
    free(c->sstart);
    free(c->slen);
    c->sstart = rt_malloc_array(nc, sizeof *c->sstart, "BPE scratch");
    c->slen = rt_malloc_array(nc, sizeof *c->slen, "BPE scratch");
    c->sid = rt_malloc_array(nc, sizeof *c->sid, "BPE scratch");
    c->prev = rt_malloc_array(nc, sizeof *c->prev, "BPE scratch");
    c->next = rt_malloc_array(nc, sizeof *c->next, "BPE scratch");
    c->heap = rt_malloc_array(3 * nc, sizeof *c->heap, "BPE scratch");
    c->scap = (c->sid && c->prev && c->next && c->heap && c->sstart && c->slen) ? nc : 0;
    return c->scap ? 0 : -1;
}

/* BPE over the m symbols in c->sid (m >= 1): merge by rank until no pair has one; appends
 * the resulting ids to dst. */
static int bpe_run(enc_ctx *c, size_t m, int32_t **dst, size_t *dn, size_t *dcap) {
    const tokenizer *t = c->t;
    int32_t *sid = c->sid, *prev = c->prev, *next = c->next;
    for (size_t i = 0; i < m; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < m; i++) push_pair(c, &hn, (int32_t)i);
    while (hn) {
        uint64_t top = heap_pop(c->heap, &hn);
        uint32_t r = (uint32_t)(top >> 32);
        int32_t l = (int32_t)(uint32_t)top;
        if (sid[l] < 0) continue; /* absorbed by its left neighbour */
        int32_t rr = next[l];
        if (rr < 0 || t->merges[3 * r] != sid[l] || t->merges[3 * r + 1] != sid[rr])
            continue; /* stale: a side changed since the pair was queued */
        sid[l] = t->merges[3 * r + 2];
        sid[rr] = -1;
        next[l] = next[rr];
        if (next[rr] >= 0) prev[next[rr]] = l;
        push_pair(c, &hn, prev[l]);
        push_pair(c, &hn, l);
    }
    for (int32_t i = 0; i >= 0; i = next[i])
        if (push_ids(dst, dn, dcap, &sid[i], 1)) return -1;
    return 0;
}

/* Byte-level BPE of one piece of m >= 2 bytes; appends its ids to dst. */
static int bpe_piece(enc_ctx *c, const uint8_t *p, size_t m, int32_t **dst, size_t *dn,
                     size_t *dcap) {
    if (ensure_scratch(c, m)) return -1;
    for (size_t i = 0; i < m; i++) c->sid[i] = c->t->byte_id[p[i]];
    return bpe_run(c, m, dst, dn, dcap);
}

/* Orderable bits of a score, inverted: smaller = higher score. */
static inline uint32_t score_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}

static inline int32_t span_id(const tokenizer *t, const uint8_t *p, int32_t a, int32_t n) {
    return tok_strmap_get(&t->map, t->kblob, t->koff, p + a, (size_t)n);
}

static inline void push_bigram(enc_ctx *c, const uint8_t *p, size_t *hn, int32_t l) {
    if (l < 0 || c->next[l] < 0) return;
    int32_t r = c->next[l];
    int32_t id = span_id(c->t, p, c->sstart[l], c->slen[l] + c->slen[r]);
    if (id >= 0)
        heap_push(c->heap, hn, ((uint64_t)score_key(c->t->scores[id]) << 32) | (uint32_t)l);
}

/* llama.cpp's SentencePiece (llm_tokenizer_spm) for a vocabulary with scores and no merges:
 * characters are symbols; the adjacent pair whose concatenation is a token with the highest
 * score (then the leftmost) merges, until none is left; a symbol that is not a token comes out
 * as its bytes' <0xNN> tokens (or unk). */
static int spm_score_piece(enc_ctx *c, const uint8_t *p, size_t m) {
    const tokenizer *t = c->t;
    if (ensure_scratch(c, m)) return -1;
    int32_t n = 0;
    for (size_t pos = 0; pos < m;) {
        size_t nb;
        (void)tok_utf8_strict(p, m, pos, &nb);
        c->sstart[n] = (int32_t)pos;
        c->slen[n] = (int32_t)nb;
        c->prev[n] = n - 1;
        c->next[n] = pos + nb < m ? n + 1 : -1;
        n++;
        pos += nb;
    }
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < n; i++) push_bigram(c, p, &hn, i);
    while (hn) {
        uint64_t top = heap_pop(c->heap, &hn);
        int32_t l = (int32_t)(uint32_t)top, r = c->next[l];
        if (c->slen[l] == 0 || r < 0) continue;
        int32_t id = span_id(t, p, c->sstart[l], c->slen[l] + c->slen[r]);
        if (id < 0 || score_key(t->scores[id]) != (uint32_t)(top >> 32)) continue; /* stale */
        c->slen[l] += c->slen[r];
        c->slen[r] = 0;
        c->next[l] = c->next[r];
        if (c->next[r] >= 0) c->prev[c->next[r]] = l;
        push_bigram(c, p, &hn, c->prev[l]);
        push_bigram(c, p, &hn, l);
    }
    for (int32_t i = 0; i >= 0 && n; i = c->next[i]) {
        int32_t id = span_id(t, p, c->sstart[i], c->slen[i]);
        if (id >= 0) {
            if (push_ids(&c->ids, &c->n, &c->cap, &id, 1)) return -1;
            continue;
        }
        for (int32_t k = 0; k < c->slen[i]; k++) {
            int32_t b = t->byte_id[p[c->sstart[i] + k]];
            if (b < 0) b = t->unk;
            if (b < 0)
                return RT_FAIL("tokenizer_encode: a byte is not in the vocabulary and there is "
                               "no unknown token");
            if (push_ids(&c->ids, &c->n, &c->cap, &b, 1)) return -1;
        }
    }
    return 0;
}

/* SentencePiece-style BPE of one piece (already escaped with U+2581): one symbol per
 * character looked up by its text; a character that is not a token becomes its bytes'
 * <0xNN> tokens, or the unknown token (consecutive ones fused when fuse_unk). */
static int spm_piece(enc_ctx *c, const uint8_t *p, size_t m) {
    const tokenizer *t = c->t;
    if (ensure_scratch(c, m)) return -1;
    size_t n = 0;
    int last_unk = 0;
    for (size_t pos = 0; pos < m;) {
        size_t nb;
        int32_t cp = tok_utf8_strict(p, m, pos, &nb);
        int32_t id = cp >= 0 ? tok_strmap_get(&t->map, t->kblob ? t->kblob : t->blob,
                                              t->kblob ? t->koff : t->off, p + pos, nb)
                             : -1;
        if (id >= 0) {
            c->sid[n++] = id;
            last_unk = 0;
        } else {
            int all = 1;
            for (size_t k = 0; k < nb; k++) all &= t->byte_id[p[pos + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < nb; k++) c->sid[n++] = t->byte_id[p[pos + k]];
                last_unk = 0;
            } else if (t->unk < 0) {
                return RT_FAIL("tokenizer_encode: byte offset %zu of a piece is not in the "
                               "vocabulary and the tokenizer has no unknown token",
                               pos);
            } else if (!(last_unk && t->fuse_unk)) {
                c->sid[n++] = t->unk;
                last_unk = 1;
            }
        }
        pos += nb;
    }
    return n ? bpe_run(c, n, &c->ids, &c->n, &c->cap) : 0;
}

static int cache_grow(enc_ctx *c) {
    size_t ncap = c->ent_cap ? c->ent_cap * 2 : 4096;
    cache_ent *ne = rt_calloc(ncap, sizeof *ne, "piece cache");
    if (!ne) return -1;
    for (size_t i = 0; i < c->ent_cap; i++) {
        if (!c->ent[i].p) continue;
        size_t j = c->ent[i].h & (ncap - 1);
        while (ne[j].p) j = (j + 1) & (ncap - 1);
        ne[j] = c->ent[i];
    }
    free(c->ent);
    c->ent = ne;
    c->ent_cap = ncap;
    return 0;
}

static int encode_piece(enc_ctx *c, const uint8_t *p, size_t m) {
    if (m == 1) return push_ids(&c->ids, &c->n, &c->cap, &c->t->byte_id[p[0]], 1);
    if (m > CACHE_MAX_PIECE) return bpe_piece(c, p, m, &c->ids, &c->n, &c->cap);
    uint64_t h = tok_hash_bytes(p, m);
    if (c->ent_cap) {
        size_t mask = c->ent_cap - 1;
        for (size_t i = h & mask; c->ent[i].p; i = (i + 1) & mask) {
            cache_ent *e = &c->ent[i];
            if (e->h == h && e->len == m && memcmp(e->p, p, m) == 0)
                return push_ids(&c->ids, &c->n, &c->cap, c->pool + e->start, e->n);
        }
    }
    size_t start = c->pool_n;
    if (bpe_piece(c, p, m, &c->pool, &c->pool_n, &c->pool_cap)) return -1;
    if (push_ids(&c->ids, &c->n, &c->cap, c->pool + start, c->pool_n - start)) return -1;
    if (c->ent_used >= CACHE_MAX_ENTRIES) {
        c->pool_n = start; /* full: keep the pool from growing too */
        return 0;
    }
    if ((c->ent_used + 1) * 2 > c->ent_cap && cache_grow(c)) return -1;
    size_t mask = c->ent_cap - 1, i = h & mask;
    while (c->ent[i].p) i = (i + 1) & mask;
    c->ent[i] = (cache_ent){h, p, m, start, c->pool_n - start};
    c->ent_used++;
    return 0;
}

/* The model's part: one pre-token. */
static int model_piece(enc_ctx *c, const uint8_t *p, size_t m) {
    const tokenizer *t = c->t;
    if (!m) return 0;
    if (t->model == TOK_MODEL_SPM)
        return t->scores && !t->n_merges ? spm_score_piece(c, p, m) : spm_piece(c, p, m);
    if (t->ignore_merges && m > 1) {
        int32_t id = tok_strmap_get(&t->map, t->blob, t->off, p, m);
        if (id >= 0) return push_ids(&c->ids, &c->n, &c->cap, &id, 1);
    }
    return encode_piece(c, p, m);
}

/* Pre-tokenize s[0..len) from step `stage` on; each final piece goes to the model. */
static int pre_split(enc_ctx *c, int stage, const uint8_t *s, size_t len) {
    const tokenizer *t = c->t;
    if (stage == t->n_stages) return model_piece(c, s, len);
    const tok_stage *st = &t->stages[stage];
    if (st->kind == TOK_PRE_GPT2 || st->kind == TOK_PRE_LLAMA3 || st->kind == TOK_PRE_QWEN2) {
        /* patterns that match at every position, behaviour Isolated */
        for (size_t pos = 0; pos < len;) {
            size_t end = tok_stage_match(st, s, len, pos);
            if (end <= pos) return RT_FAIL("tokenizer_encode: pre-tokenizer made no progress");
            if (pre_split(c, stage + 1, s + pos, end - pos)) return -1;
            pos = end;
        }
        return 0;
    }
    size_t pos = 0, prev = 0, ms, me;
    while (tok_stage_find(st, s, len, pos, &ms, &me)) {
        switch (st->behavior) {
        case TOK_SPLIT_ISOLATED:
            if ((ms > prev && pre_split(c, stage + 1, s + prev, ms - prev)) ||
                pre_split(c, stage + 1, s + ms, me - ms))
                return -1;
            prev = me;
            break;
        case TOK_SPLIT_REMOVED:
            if (ms > prev && pre_split(c, stage + 1, s + prev, ms - prev)) return -1;
            prev = me;
            break;
        case TOK_SPLIT_MERGED_PREV:
            if (pre_split(c, stage + 1, s + prev, me - prev)) return -1;
            prev = me;
            break;
        default: /* TOK_SPLIT_MERGED_NEXT */
            if (ms > prev && pre_split(c, stage + 1, s + prev, ms - prev)) return -1;
            prev = ms;
            break;
        }
        pos = me;
    }
    return prev < len ? pre_split(c, stage + 1, s + prev, len - prev) : 0;
}

/* Normalize one section (text between added tokens) into norm, appending. */
static int normalize_section(const tokenizer *t, const uint8_t *s, size_t len, rt_buf *norm,
                             rt_buf *tmp, int first) {
    if (!len) return 0;
    if (t->nfc) {
        if (tok_nfc((const char *)s, len, tmp)) return -1;
        s = (const uint8_t *)tmp->data;
        len = tmp->len;
    }
    static const char meta[3] = {'\xE2', '\x96', '\x81'}; /* U+2581 */
    if ((t->spm_prepend == 1 || (t->spm_prepend == 2 && first)) && rt_buf_append(norm, meta, 3))
        return -1;
    if (!t->spm_escape) return rt_buf_append(norm, s, len);
    for (size_t i = 0; i < len; i++) {
        int rc = s[i] == ' ' ? rt_buf_append(norm, meta, 3) : rt_buf_append(norm, s + i, 1);
        if (rc) return -1;
    }
    return 0;
}

typedef struct {
    size_t a, b; /* text section [a, b) (of the text, or of the normalized copy) */
    int32_t id;  /* or an added token (a, b unused) */
} section;

/* The added token at s[pos..len): specials only where the caller allows them (parse_special,
 * or, with a mask, only inside one run of allowed bytes), non-special ones anywhere. */
static size_t added_match(const tokenizer *tok, const uint8_t *s, size_t len, size_t pos,
                          int parse_special, const uint8_t *mask, int32_t *hit) {
    if (!mask) return trie_match(tok, s + pos, len - pos, parse_special, hit);
    size_t run = 0;
    while (pos + run < len && mask[pos + run]) run++;
    int32_t h1 = -1, h2 = -1;
    size_t l1 = run ? trie_match(tok, s + pos, run, 1, &h1) : 0;
    size_t l2 = trie_match(tok, s + pos, len - pos, 0, &h2);
    if (l2 > l1) {
        *hit = h2;
        return l2;
    }
    if (l1) *hit = h1;
    return l1;
}

static int encode_impl(const tokenizer *tok, const char *text, size_t len, int parse_special,
                       const uint8_t *mask, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!text && len) return RT_FAIL("tokenizer_encode: text is NULL but len is %zu", len);
    enc_ctx c = {.t = tok};
    /* Room for the usual 3-5 bytes per token up front, so big inputs rarely reallocate. */
    if (len > 4096 && grow_ids(&c.ids, &c.cap, len / 3)) return -1;
    const uint8_t *s = (const uint8_t *)text;
    int rc = 0;
    /* 1. cut at added tokens (leftmost, longest); 2. normalize the sections (into one buffer,
     * so that the piece cache's pointers stay valid); 3. pre-tokenize and run the model. */
    section *sec = NULL;
    size_t nsec = 0, seccap = 0, frag = 0;
    int normalizes = tok->nfc || tok->spm_prepend || tok->spm_escape;
    rt_buf norm = {0}, tmp = {0};
    for (size_t pos = 0;; pos++) {
        int32_t hit = -1;
        size_t hl = 0;
        if (pos < len && tok->added_first[s[pos]])
            hl = added_match(tok, s, len, pos, parse_special, mask, &hit);
        if (pos < len && !hl) continue;
        if (nsec + 2 > seccap) {
            size_t nc = seccap ? 2 * seccap : 16;
            section *ns = rt_realloc(sec, nc * sizeof *ns, "token sections");
            if (!ns) {
                rc = -1;
                break;
            }
            sec = ns;
            seccap = nc;
        }
        if (pos > frag) {
            section x = {frag, pos, -1};
            if (normalizes) {
                x.a = norm.len;
                if ((rc = normalize_section(tok, s + frag, pos - frag, &norm, &tmp, frag == 0))) break;
                x.b = norm.len;
            }
            sec[nsec++] = x;
        }
        if (pos >= len) break;
        sec[nsec++] = (section){0, 0, hit};
        pos += hl - 1;
        frag = pos + 1;
    }
    const uint8_t *base = normalizes ? (const uint8_t *)norm.data : s;
    for (size_t i = 0; !rc && i < nsec; i++)
        rc = sec[i].id >= 0 ? push_ids(&c.ids, &c.n, &c.cap, &sec[i].id, 1)
                            : pre_split(&c, 0, base + sec[i].a, sec[i].b - sec[i].a);
    free(sec);
    rt_buf_free(&norm);
    rt_buf_free(&tmp);
    free(c.ent);
    free(c.pool);
    free(c.sid);
    free(c.prev);
    free(c.next);
    free(c.heap);
    free(c.sstart);
    free(c.slen);
    if (rc) {
        free(c.ids);
        return -1;
    }
    if (!c.ids) { /* empty text: still hand back a freeable pointer */
        c.ids = rt_malloc(sizeof *c.ids, "token ids");
        if (!c.ids) return -1;
    }
    *ids = c.ids;
    *n = c.n;
    return 0;
}

int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, int parse_special,
                     int32_t **ids, size_t *n) {
    return encode_impl(tok, text, len, parse_special, NULL, ids, n);
}

int tokenizer_encode_masked(const tokenizer *tok, const char *text, size_t len, const uint8_t *special_ok,
                            int32_t **ids, size_t *n) {
    if (!special_ok && len) {
        *ids = NULL;
        *n = 0;
        return RT_FAIL("tokenizer_encode_masked: no mask for %zu bytes", len);
    }
    return encode_impl(tok, text, len, 0, special_ok, ids, n);
}

/* ---------------------------------------------------------------- decode */

int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= tok->n_vocab)
            return RT_FAIL("tokenizer_decode: token id %d at position %zu is outside the "
                           "vocabulary (0..%zu)",
                           ids[i], i, tok->n_vocab - 1);
        total += tok_len(tok, ids[i]);
    }
    char *s = rt_malloc(total + 1, "decoded text");
    if (!s) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = tok_len(tok, ids[i]);
        memcpy(s + o, tok_bytes(tok, ids[i]), l);
        o += l;
    }
    s[o] = 0;
    if (tok->strip_lead && o && s[0] == ' ') { /* Llama 2's decoder: Strip(' ', 1, 0) */
        memmove(s, s + 1, o);
        o--;
    }
    *out = s;
    *len = o;
    return 0;
}
