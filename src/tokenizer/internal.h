/*
 * internal.h — what the files of src/tokenizer share and nobody else sees: the tokenizer
 * struct, a bytes→id hash map, the GPT-2 byte↔unicode mapping and the splitter's step.
 *
 * What this is not: an interface for other rooms (that is tokenizer.h).
 */
#ifndef RETORT_TOKENIZER_INTERNAL_H
#define RETORT_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "tokenizer.h"

/* Open-addressing map from a token's bytes to its id; the bytes live in an external store
 * (blob + offsets: token id's bytes are blob[off[id] .. off[id+1])). */
typedef struct {
    int32_t *slot;  /* (cap) ids, -1 = empty */
    uint32_t *hash; /* (cap) low 32 bits of the key's hash, for a cheap first compare */
    size_t cap;     /* power of two */
    size_t n;
} tok_strmap;

uint64_t tok_hash_bytes(const void *p, size_t len);
/* Id whose bytes equal key[0..len), or -1. */
int32_t tok_strmap_get(const tok_strmap *m, const char *blob, const size_t *off, const void *key,
                       size_t len);
/* Insert id (its bytes must not be in the map yet). 0, or -1 on out-of-memory. */
int tok_strmap_put(tok_strmap *m, const char *blob, const size_t *off, int32_t id);
void tok_strmap_free(tok_strmap *m);

/* Open-addressing map from a pair of ids (left << 32 | right) to a 32-bit value, keys mixed
 * with base's rt_mix64. Not base's rt_map: this lookup is inline in encode's merge loop and
 * its 32-bit values keep the table at 12 bytes a slot (rt_map: 17). Nothing iterates it, so
 * the hash decides no result. */
typedef struct {
    uint64_t *key; /* (cap), TOK_PAIR_EMPTY = empty */
    uint32_t *val; /* (cap) */
    size_t cap;
    size_t n;
} tok_pairmap;
#define TOK_PAIR_EMPTY UINT64_MAX
static inline uint64_t tok_pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}
/* Pointer to the value of key, or NULL. */
static inline uint32_t *tok_pairmap_get(const tok_pairmap *m, uint64_t key) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = rt_mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->key[i] == key) return &m->val[i];
        if (m->key[i] == TOK_PAIR_EMPTY) return NULL;
    }
}
/* Insert or overwrite. 0, or -1 on out-of-memory. */
int tok_pairmap_put(tok_pairmap *m, uint64_t key, uint32_t val);
void tok_pairmap_free(tok_pairmap *m);

/* One pre-tokenizer step (pretok_hf.c): a pattern and what to do with its matches. */
enum {
    TOK_PRE_GPT2,       /* GPT-2's pattern (pretok.c), as ByteLevel use_regex does */
    TOK_PRE_LLAMA3,     /* Llama 3's Split regex */
    TOK_PRE_QWEN2,      /* Qwen2's (Llama 3's with single digits) */
    TOK_PRE_DS3_DIGITS, /* DeepSeek-V3: \p{N}{1,3} */
    TOK_PRE_DS3_CJK,    /* DeepSeek-V3: [一-龥぀-ゟ゠-ヿ]+ */
    TOK_PRE_DS3_MAIN,   /* DeepSeek-V3: the third pattern */
    TOK_PRE_STRING,     /* a literal string */
};
enum { /* Split behaviours (tokenizers' SplitDelimiterBehavior) */
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
};
typedef struct {
    int kind, behavior;
    char *str; /* TOK_PRE_STRING: owned */
    size_t str_len;
} tok_stage;
#define TOK_MAX_STAGES 8

/* End of the match of st's pattern at pos (< len) of the subject s[0..len), or 0. */
size_t tok_stage_match(const tok_stage *st, const uint8_t *s, size_t len, size_t pos);
/* The next match at or after pos: 1 with [*mstart, *mend), or 0. */
int tok_stage_find(const tok_stage *st, const uint8_t *s, size_t len, size_t pos, size_t *mstart,
                   size_t *mend);

enum { TOK_MODEL_BYTELEVEL = 0, TOK_MODEL_SPM = 1 };

struct tokenizer {
    size_t n_vocab;
    char *blob;           /* raw bytes of every token, concatenated (NUL after each) */
    size_t *off;          /* (n_vocab + 1) token id's bytes are blob[off[id] .. off[id+1]-1) */
    uint8_t *type;        /* (n_vocab) TOKENIZER_TYPE_* */
    tok_strmap map;       /* NORMAL tokens' bytes -> id */
    int32_t byte_id[256]; /* the NORMAL token of each single byte */

    size_t n_merges;
    int32_t *merges;  /* (n_merges, 3): left id, right id, result id; the index is the rank */
    tok_pairmap rank; /* (left, right) -> rank */

    size_t n_special;
    int32_t *special;           /* (n_special) CONTROL token ids, longest text first */
    uint8_t special_first[256]; /* 1 if some special's text starts with this byte */

    int32_t bos, eos, pad;

    /* --- What tokenizers loaded from tokenizer.json (or a non-gpt-2 GGUF) add. A tokenizer
     * from tokenizer_train / a "gpt-2" GGUF has model BYTELEVEL, one GPT2 stage, no
     * normalizer, and its CONTROL tokens as the only added tokens. */
    int model;            /* TOK_MODEL_* */
    char *kblob;          /* (SPM) each token's vocabulary text (with U+2581), the map's keys; */
    size_t *koff;         /*       NULL: the keys are blob/off (raw bytes) */
    int n_stages;         /* pre-tokenizer steps, applied in order to each piece */
    tok_stage stages[TOK_MAX_STAGES];
    int nfc;              /* NFC normalizer */
    int spm_prepend;      /* prepend U+2581 to each section (Llama 2's Prepend) */
    int spm_escape;       /* ' ' -> U+2581 (SentencePiece's Replace) */
    int ignore_merges;    /* a piece that is a token is taken whole (Llama 3) */
    int strip_lead;       /* decode drops one leading ' ' (Llama 2's Strip decoder) */
    int add_bos, add_eos; /* what tokenizer_config.json asks callers to add */
    int32_t unk;          /* SPM: the unknown token, or -1 */
    int fuse_unk;         /* consecutive unknown characters give one unk */
    char pre_name[32];    /* GGUF tokenizer.ggml.pre ("gpt-2", "llama-bpe", ...) */
    /* Added tokens (CONTROL and USER_DEFINED types) matched before anything else, as a
     * byte trie: trie child (node, byte) in trie_next, terminal id per node (-1 none). */
    tok_pairmap trie_next;
    int32_t *trie_term;
    size_t trie_n;
    uint8_t added_first[256];
    float *scores;        /* (n_vocab) GGUF scores (SPM), or NULL */
};

static inline size_t tok_len(const tokenizer *t, int32_t id) {
    return t->off[id + 1] - t->off[id] - 1;
}
static inline const char *tok_bytes(const tokenizer *t, int32_t id) { return t->blob + t->off[id]; }

/* Build a tokenizer from tokens (raw bytes, NUL-separated store as in the struct: blob and
 * n_vocab+1 offsets, each token followed by one NUL counted in the offsets) and types, and
 * merges given as (left, right) id pairs in rank order. Everything is validated; messages
 * start with `what_tokens` / `what_merges` (e.g. GGUF key names). Copies its inputs. */
int tok_build(tokenizer **out, size_t n_vocab, const char *blob, const size_t *off,
              const uint8_t *types, size_t n_merges, const int32_t *pairs, int32_t bos, int32_t eos,
              int32_t pad, const char *what_tokens, const char *what_merges);

/* Short names for the types beyond NORMAL/CONTROL. */
enum {
    TOK_TYPE_UNKNOWN = TOKENIZER_TYPE_UNKNOWN,
    TOK_TYPE_USER_DEFINED = TOKENIZER_TYPE_USER_DEFINED,
    TOK_TYPE_UNUSED = TOKENIZER_TYPE_UNUSED,
    TOK_TYPE_BYTE = TOKENIZER_TYPE_BYTE,
};

/* What tok_build_hf needs beyond tok_build's arguments. */
typedef struct {
    int model;
    const char *kblob; /* SPM: vocabulary texts (same layout as blob/off), else NULL */
    const size_t *koff;
    int n_stages;
    const tok_stage *stages; /* copied (strings duplicated) */
    int nfc, spm_prepend, spm_escape, ignore_merges, strip_lead, add_bos, add_eos;
    int32_t unk;
    const char *pre_name;
    const float *scores;     /* or NULL */
    const uint8_t *in_model; /* (n_vocab) 1 = a token of the model's vocabulary (BPE may make
                                it); 0 = only an added token. NULL = all */
    int fuse_unk;
} tok_hf_opts;

/* Build an HF-style tokenizer: types may be NORMAL, CONTROL, USER_DEFINED, UNKNOWN, UNUSED
 * or BYTE; every token whose key text is unique goes into the lookup map; merges must join
 * two tokens into a third by key text. bos/eos/pad may be -1. */
int tok_build_hf(tokenizer **out, size_t n_vocab, const char *blob, const size_t *off,
                 const uint8_t *types, size_t n_merges, const int32_t *pairs, int32_t bos,
                 int32_t eos, int32_t pad, const tok_hf_opts *o, const char *what_tokens,
                 const char *what_merges);

/* Build the added-token trie from the CONTROL and USER_DEFINED tokens. */
int tok_build_trie(tokenizer *t);

/* GPT-2 bytes_to_unicode: the code point byte b is written as. */
uint32_t tok_byte_to_cp(uint8_t b);
/* The byte a code point stands for, or -1 if it is not one of the 256. */
int tok_cp_to_byte(uint32_t cp);

/* Decode text written with GPT-2's byte characters back to the bytes (out has room for len
 * bytes). -1 if some character is not one of the 256. */
int tok_unmap(const char *text, size_t len, char *out, size_t *out_len);
/* Write raw bytes in GPT-2's byte characters (replaces out's content; NUL-terminated). */
int tok_map_bytes(const char *raw, size_t len, rt_buf *out);
/* The Split regex of a TOK_PRE_* kind as tokenizer.json files write it (tokenizer_hf.c's
 * table; "" for kinds without one). */
const char *tok_regex_text(int kind);

/* The end (exclusive byte offset) of the pre-token that starts at pos (< len). */
size_t tok_pretok_next(const uint8_t *s, size_t len, size_t pos);

#endif /* RETORT_TOKENIZER_INTERNAL_H */
