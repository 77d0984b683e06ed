/*
 * train.c — learn byte-level BPE merges from text.
 *
 * The text is split into GPT-2 pre-tokens (the same splitter encoding uses, so merges never
 * cross a piece boundary and encoding the training text reproduces the training
 * segmentation); identical pieces are counted once (hash map piece -> count). Each distinct
 * piece is a sequence of symbol ids, starting with its bytes. Pair counts (weighted by piece
 * counts) live in a hash map, together with the list of pieces each pair occurs in; a
 * max-heap with lazy deletion (an entry is used only if its count is still the pair's count)
 * yields the most frequent pair, ties broken by the smaller left id, then the smaller right
 * id. Merging a pair rewrites only the pieces that contain it, left to right, and updates
 * the counts of the neighbouring pairs in place, so each step costs what it touches.
 *
 * A pair whose merged bytes already exist as a token (two pairs can spell the same string)
 * or spell a special token's text is skipped for good, so token strings stay unique.
 *
 * What this is not: a trainer with min-frequency, dropout, alphabets or special-token
 * awareness in the training text (special strings in the text are plain text here).
 */
#include "../base/base.h"
#include "internal.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p; /* into the training text */
    size_t len;
    uint64_t hash;
    uint64_t count;
} word_t;

typedef struct {
    int64_t count;
    int32_t a, b;
    uint32_t *w; /* pieces the pair has occurred in (may repeat; may be stale) */
    uint32_t wn, wcap;
    uint32_t last_w;  /* last piece appended, to skip the common immediate repeat */
    uint32_t touched; /* merge step that last changed the count */
    uint8_t banned;
} pair_t;

typedef struct {
    int64_t count;
    uint32_t pi;
} heap_ent;

typedef struct {
    /* distinct pieces */
    word_t *words;
    size_t n_words, words_cap;
    uint32_t *wtab; /* open addressing over word indices, UINT32_MAX = empty */
    size_t wtab_cap;
    /* symbols of each piece */
    int32_t *sym;
    size_t *wstart;
    uint32_t *wlen;
    uint32_t *wstamp;
    /* pairs */
    pair_t *pairs;
    size_t n_pairs, pairs_cap;
    tok_pairmap pmap; /* (a,b) -> index into pairs */
    uint32_t *changed;
    size_t n_changed, changed_cap;
    uint32_t step;
    heap_ent *heap;
    size_t heap_n, heap_cap;
    /* vocabulary so far */
    rt_buf blob;
    size_t *off;
    size_t n_tok, off_cap;
    tok_strmap tmap;
    int32_t *merges; /* (n_merges, 2) */
    size_t n_merges;
} trainer;

/* ---------------------------------------------------------------- piece counting */

static int word_add(trainer *T, const uint8_t *p, size_t len) {
    if ((T->n_words + 1) * 2 > T->wtab_cap) {
        size_t nc = T->wtab_cap ? T->wtab_cap * 2 : 1024;
        uint32_t *nt = rt_malloc_array(nc, sizeof *nt, "training piece table");
        if (!nt) return -1;
        memset(nt, 0xFF, nc * sizeof *nt);
        for (size_t i = 0; i < T->n_words; i++) {
            size_t j = T->words[i].hash & (nc - 1);
            while (nt[j] != UINT32_MAX) j = (j + 1) & (nc - 1);
            nt[j] = (uint32_t)i;
        }
        free(T->wtab);
        T->wtab = nt;
        T->wtab_cap = nc;
    }
    uint64_t h = tok_hash_bytes(p, len);
    size_t mask = T->wtab_cap - 1, i = h & mask;
    for (; T->wtab[i] != UINT32_MAX; i = (i + 1) & mask) {
        word_t *w = &T->words[T->wtab[i]];
        if (w->hash == h && w->len == len && memcmp(w->p, p, len) == 0) {
            w->count++;
            return 0;
        }
    }
    if (T->n_words >= UINT32_MAX - 1) return RT_FAIL("tokenizer_train: too many distinct pieces");
    if (RT_GROW(T->words, T->words_cap, T->n_words + 1, "training pieces")) return -1;
    T->words[T->n_words] = (word_t){p, len, h, 1};
    T->wtab[i] = (uint32_t)T->n_words++;
    return 0;
}

/* ---------------------------------------------------------------- pairs and heap */

static int heap_less(const trainer *T, heap_ent x, heap_ent y) { /* x ranks above y */
    if (x.count != y.count) return x.count > y.count;
    const pair_t *p = &T->pairs[x.pi], *q = &T->pairs[y.pi];
    if (p->a != q->a) return p->a < q->a;
    return p->b < q->b;
}

static int heap_push(trainer *T, heap_ent e) {
    if (RT_GROW(T->heap, T->heap_cap, T->heap_n + 1, "training heap")) return -1;
    size_t i = T->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(T, e, T->heap[p])) break;
        T->heap[i] = T->heap[p];
        i = p;
    }
    T->heap[i] = e;
    return 0;
}

static heap_ent heap_pop(trainer *T) {
    heap_ent top = T->heap[0], v = T->heap[--T->heap_n];
    size_t i = 0, n = T->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(T, T->heap[c + 1], T->heap[c])) c++;
        if (!heap_less(T, T->heap[c], v)) break;
        T->heap[i] = T->heap[c];
        i = c;
    }
    if (n) T->heap[i] = v;
    return top;
}

/* Add delta to the count of pair (a, b), which occurs in piece w when delta > 0. */
static int pair_add(trainer *T, int32_t a, int32_t b, int64_t delta, uint32_t w) {
    uint64_t key = tok_pair_key(a, b);
    uint32_t *pv = tok_pairmap_get(&T->pmap, key), pi;
    if (pv) {
        pi = *pv;
    } else {
        if (RT_GROW(T->pairs, T->pairs_cap, T->n_pairs + 1, "training pairs")) return -1;
        pi = (uint32_t)T->n_pairs++;
        T->pairs[pi] = (pair_t){.a = a, .b = b, .last_w = UINT32_MAX, .touched = UINT32_MAX};
        if (tok_pairmap_put(&T->pmap, key, pi)) return -1;
    }
    pair_t *P = &T->pairs[pi];
    P->count += delta;
    if (delta > 0 && P->last_w != w) {
        if (P->wn == P->wcap) {
            uint32_t nc = P->wcap ? P->wcap * 2 : 4;
            uint32_t *nw = rt_realloc(P->w, (size_t)nc * sizeof *nw, "training pair pieces");
            if (!nw) return -1;
            P->w = nw;
            P->wcap = nc;
        }
        P->w[P->wn++] = w;
        P->last_w = w;
    }
    if (P->touched != T->step) {
        P->touched = T->step;
        if (RT_GROW(T->changed, T->changed_cap, T->n_changed + 1, "training changes")) return -1;
        T->changed[T->n_changed++] = pi;
    }
    return 0;
}

/* Push the new counts of the pairs changed in this step. */
static int flush_changed(trainer *T) {
    for (size_t i = 0; i < T->n_changed; i++) {
        uint32_t pi = T->changed[i];
        const pair_t *P = &T->pairs[pi];
        if (P->count > 0 && !P->banned && heap_push(T, (heap_ent){P->count, pi})) return -1;
    }
    T->n_changed = 0;
    return 0;
}

/* ---------------------------------------------------------------- vocabulary */

static int tok_add(trainer *T, const void *bytes, size_t len) {
    if (RT_GROW(T->off, T->off_cap, T->n_tok + 2, "training vocabulary")) return -1;
    if (T->n_tok == 0) T->off[0] = 0;
    char nul = 0;
    if (rt_buf_append(&T->blob, bytes, len) || rt_buf_append(&T->blob, &nul, 1)) return -1;
    T->off[++T->n_tok] = T->blob.len;
    return 0;
}

/* Merge pair P everywhere; the new token's id is z. */
static int apply_merge(trainer *T, uint32_t pi, int32_t z) {
    pair_t *P = &T->pairs[pi];
    int32_t a = P->a, b = P->b;
    uint32_t *list = P->w, n = P->wn;
    P->w = NULL;
    P->wn = P->wcap = 0;
    P->last_w = UINT32_MAX;
    int rc = 0;
    for (uint32_t k = 0; k < n && !rc; k++) {
        uint32_t w = list[k];
        if (T->wstamp[w] == T->step) continue;
        T->wstamp[w] = T->step;
        int32_t *s = T->sym + T->wstart[w];
        uint32_t L = T->wlen[w], wp = 0, r = 0;
        int64_t c = (int64_t)T->words[w].count;
        while (r < L) {
            if (r + 1 < L && s[r] == a && s[r + 1] == b) {
                if (wp > 0) {
                    int32_t x = s[wp - 1];
                    rc |= pair_add(T, x, a, -c, w);
                    rc |= pair_add(T, x, z, c, w);
                }
                if (r + 2 < L) {
                    int32_t y = s[r + 2];
                    rc |= pair_add(T, b, y, -c, w);
                    rc |= pair_add(T, z, y, c, w);
                }
                s[wp++] = z;
                r += 2;
            } else {
                s[wp++] = s[r++];
            }
        }
        T->wlen[w] = wp;
    }
    free(list);
    T->pairs[pi].count = 0; /* no (a, b) is left: the scan merged every occurrence */
    return rc ? -1 : 0;
}

static void trainer_free(trainer *T) {
    free(T->words);
    free(T->wtab);
    free(T->sym);
    free(T->wstart);
    free(T->wlen);
    free(T->wstamp);
    for (size_t i = 0; i < T->n_pairs; i++) free(T->pairs[i].w);
    free(T->pairs);
    tok_pairmap_free(&T->pmap);
    free(T->changed);
    free(T->heap);
    rt_buf_free(&T->blob);
    free(T->off);
    tok_strmap_free(&T->tmap);
    free(T->merges);
}

int tokenizer_train(tokenizer **out, const char *text, size_t len, size_t vocab_size) {
    *out = NULL;
    if (vocab_size < 256 + TOKENIZER_N_SPECIAL)
        return RT_FAIL("tokenizer_train: vocab_size %zu is too small (at least %d: 256 bytes + "
                       "%d special tokens)",
                       vocab_size, 256 + TOKENIZER_N_SPECIAL, TOKENIZER_N_SPECIAL);
    if (vocab_size > (size_t)INT32_MAX)
        return RT_FAIL("tokenizer_train: vocab_size %zu is too large", vocab_size);
    if (!text && len) return RT_FAIL("tokenizer_train: text is NULL but len is %zu", len);
    size_t target = vocab_size - 256 - TOKENIZER_N_SPECIAL;
    trainer T = {0};
    int rc = -1;
    double t0 = rt_now();
    const uint8_t *s = (const uint8_t *)text;

    /* 1. distinct pieces and their counts */
    for (size_t pos = 0; pos < len;) {
        size_t end = tok_pretok_next(s, len, pos);
        if (word_add(&T, s + pos, end - pos)) goto done;
        pos = end;
    }
    size_t total = 0;
    for (size_t i = 0; i < T.n_words; i++) total += T.words[i].len;
    T.sym = rt_malloc_array(total ? total : 1, sizeof *T.sym, "training symbols");
    T.wstart = rt_malloc_array(T.n_words ? T.n_words : 1, sizeof *T.wstart, "training pieces");
    T.wlen = rt_malloc_array(T.n_words ? T.n_words : 1, sizeof *T.wlen, "training pieces");
    T.wstamp = rt_calloc(T.n_words ? T.n_words : 1, sizeof *T.wstamp, "training pieces");
    if (!T.sym || !T.wstart || !T.wlen || !T.wstamp) goto done;
    for (size_t i = 0, o = 0; i < T.n_words; i++) {
        if (T.words[i].len > UINT32_MAX) {
            RT_FAIL("tokenizer_train: a pre-token of %zu bytes is too long", T.words[i].len);
            goto done;
        }
        T.wstart[i] = o;
        T.wlen[i] = (uint32_t)T.words[i].len;
        for (size_t j = 0; j < T.words[i].len; j++) T.sym[o++] = T.words[i].p[j];
    }

    /* 2. the 256 byte tokens, the initial pair counts */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if (tok_add(&T, &c, 1) || tok_strmap_put(&T.tmap, T.blob.data, T.off, b)) goto done;
    }
    T.step = 0;
    for (size_t w = 0; w < T.n_words; w++) {
        const int32_t *ws = T.sym + T.wstart[w];
        for (uint32_t j = 0; j + 1 < T.wlen[w]; j++)
            if (pair_add(&T, ws[j], ws[j + 1], (int64_t)T.words[w].count, (uint32_t)w)) goto done;
    }
    if (flush_changed(&T)) goto done;
    T.merges = rt_malloc_array(target ? 2 * target : 1, sizeof *T.merges, "merges");
    if (!T.merges) goto done;

    /* The special tokens' texts, and the bytes their text would stand for if read as
     * GPT-2 byte characters: no merge may produce either. */
    char special_raw[TOKENIZER_N_SPECIAL][64];
    size_t special_raw_len[TOKENIZER_N_SPECIAL];
    for (int i = 0; i < TOKENIZER_N_SPECIAL; i++) {
        size_t l = strlen(tokenizer_special_tokens[i]);
        if (l >= sizeof special_raw[i] ||
            tok_unmap(tokenizer_special_tokens[i], l, special_raw[i], &special_raw_len[i]))
            special_raw_len[i] = SIZE_MAX;
    }

    /* 3. merge the best pair until the vocabulary is full or no pair is left */
    rt_buf cat = {0};
    size_t n_banned = 0;
    while (T.n_merges < target && T.heap_n) {
        heap_ent e = heap_pop(&T);
        pair_t *P = &T.pairs[e.pi];
        if (P->banned || P->count != e.count || P->count <= 0) continue;
        cat.len = 0;
        size_t la = T.off[P->a + 1] - T.off[P->a] - 1, lb = T.off[P->b + 1] - T.off[P->b] - 1;
        if (rt_buf_append(&cat, T.blob.data + T.off[P->a], la) ||
            rt_buf_append(&cat, T.blob.data + T.off[P->b], lb)) {
            rt_buf_free(&cat);
            goto done;
        }
        int clash = tok_strmap_get(&T.tmap, T.blob.data, T.off, cat.data, cat.len) >= 0;
        for (int i = 0; i < TOKENIZER_N_SPECIAL && !clash; i++) {
            size_t l = strlen(tokenizer_special_tokens[i]);
            clash =
                (cat.len == l && memcmp(cat.data, tokenizer_special_tokens[i], l) == 0) ||
                (cat.len == special_raw_len[i] && memcmp(cat.data, special_raw[i], cat.len) == 0);
        }
        if (clash) {
            P->banned = 1;
            n_banned++;
            continue;
        }
        int32_t z = (int32_t)T.n_tok;
        T.merges[2 * T.n_merges] = P->a;
        T.merges[2 * T.n_merges + 1] = P->b;
        T.n_merges++;
        if (tok_add(&T, cat.data, cat.len) || tok_strmap_put(&T.tmap, T.blob.data, T.off, z)) {
            rt_buf_free(&cat);
            goto done;
        }
        T.step++;
        if (apply_merge(&T, e.pi, z) || flush_changed(&T)) {
            rt_buf_free(&cat);
            goto done;
        }
    }
    rt_buf_free(&cat);
    if (T.n_merges < target)
        rt_warn("tokenizer_train: the text ran out of pairs after %zu merges; the vocabulary has "
                "%zu tokens instead of %zu",
                T.n_merges, 256 + T.n_merges + TOKENIZER_N_SPECIAL, vocab_size);

    /* 4. specials at the end, then build (which validates everything once more) */
    for (int i = 0; i < TOKENIZER_N_SPECIAL; i++)
        if (tok_add(&T, tokenizer_special_tokens[i], strlen(tokenizer_special_tokens[i])))
            goto done;
    uint8_t *types = rt_malloc(T.n_tok, "token types");
    if (!types) goto done;
    for (size_t i = 0; i < T.n_tok; i++)
        types[i] =
            i + TOKENIZER_N_SPECIAL < T.n_tok ? TOKENIZER_TYPE_NORMAL : TOKENIZER_TYPE_CONTROL;
    int32_t first_special = (int32_t)(T.n_tok - TOKENIZER_N_SPECIAL);
    rc = tok_build(out, T.n_tok, T.blob.data, T.off, types, T.n_merges, T.merges, first_special,
                   first_special + 1, first_special + 1, "tokenizer_train: tokens",
                   "tokenizer_train: merges");
    free(types);
    if (!rc) {
        uint64_t n_final = 0; /* the training text's length in tokens, as segmented here */
        for (size_t w = 0; w < T.n_words; w++) n_final += (uint64_t)T.wlen[w] * T.words[w].count;
        rt_debug("tokenizer_train: %zu distinct pieces, %zu pairs, %zu merges (%zu pairs skipped "
                 "as duplicates of a token) in %.2fs; the text is %llu tokens",
                 T.n_words, T.n_pairs, T.n_merges, n_banned, rt_now() - t0,
                 (unsigned long long)n_final);
    }
done:
    trainer_free(&T);
    return rc;
}
