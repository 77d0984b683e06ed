/*
 * container.c — the two containers every room kept writing by hand: a growing array
 * (rt_grow: capacity doubling with a checked size) and a uint64 -> uint64 hash map (rt_map:
 * open addressing with linear probing and backward-shift deletion, so there are no
 * tombstones and a long-running server's tables never degrade).
 * Not a generic container library: values are one word; store an index into your own array
 * when you need more.
 */
#include "base.h"

#include <stdlib.h>
#include <string.h>

int rt_grow(void *pp, size_t *cap, size_t need, size_t elem_size, const char *what) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return RT_FAIL_KIND(RT_ERR_NOMEM, "size overflow growing %s", what ? what : "an array");
        nc *= 2;
    }
    if (elem_size && nc > SIZE_MAX / elem_size)
        return RT_FAIL_KIND(RT_ERR_NOMEM, "size overflow growing %s to %zu elements", what ? what : "an array", need);
    size_t bytes = nc * elem_size;
    void *old;
    memcpy(&old, pp, sizeof old); /* pp is the address of some T *: read it as bytes */
    void *p = rt_realloc(old, bytes, what);
    if (!p) return -1;
    memcpy(pp, &p, sizeof p);
    *cap = nc;
    return 0;
}

/* ---------------------------------------------------------------- hash map */

void rt_map_init(rt_map *m) { memset(m, 0, sizeof *m); }

void rt_map_free(rt_map *m) {
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof *m);
}

static size_t slot_of(const rt_map *m, uint64_t key) {
    RT_ASSERT(m->cap && (m->cap & (m->cap - 1)) == 0);
    size_t mask = m->cap - 1, i = (size_t)rt_mix64(key) & mask;
    while (m->used[i] && m->keys[i] != key) i = (i + 1) & mask;
    return i;
}

uint64_t *rt_map_get(const rt_map *m, uint64_t key) {
    if (!m->cap) return NULL;
    size_t i = slot_of(m, key);
    return m->used[i] ? &m->vals[i] : NULL;
}

static int map_rehash(rt_map *m, size_t nc) {
    rt_map n = {0};
    n.keys = rt_malloc_array(nc, sizeof *n.keys, "hash map");
    n.vals = rt_malloc_array(nc, sizeof *n.vals, "hash map");
    n.used = rt_calloc(nc, 1, "hash map");
    if (!n.keys || !n.vals || !n.used) {
        rt_map_free(&n);
        return -1;
    }
    n.cap = nc;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i]) continue;
        size_t j = slot_of(&n, m->keys[i]);
        n.used[j] = 1;
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
    }
    n.n = m->n;
    rt_map_free(m);
    *m = n;
    return 0;
}

uint64_t *rt_map_put(rt_map *m, uint64_t key, int *created) {
    if (created) *created = 0;
    if ((m->n + 1) * 2 > m->cap) {
        if (m->cap > SIZE_MAX / 4) {
            RT_FAIL_KIND(RT_ERR_NOMEM, "hash map: too many keys");
            return NULL;
        }
        if (map_rehash(m, m->cap ? m->cap * 2 : 16)) return NULL;
    }
    RT_ASSERT(m->n * 2 < m->cap);
    size_t i = slot_of(m, key);
    if (!m->used[i]) {
        m->used[i] = 1;
        m->keys[i] = key;
        m->vals[i] = 0;
        m->n++;
        if (created) *created = 1;
    }
    return &m->vals[i];
}

int rt_map_remove(rt_map *m, uint64_t key) {
    if (!m->cap) return 0;
    size_t mask = m->cap - 1, i = slot_of(m, key);
    if (!m->used[i]) return 0;
    /* backward shift: move later entries of the probe run into the hole when their home slot
     * does not lie (cyclically) in (hole, j] */
    size_t j = i;
    for (;;) {
        m->used[i] = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (!m->used[j]) {
                m->n--;
                return 1;
            }
            size_t home = (size_t)rt_mix64(m->keys[j]) & mask;
            int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) break;
        }
        m->used[i] = 1;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
}

size_t rt_map_bytes(const rt_map *m) { return m->cap * (2 * sizeof(uint64_t) + 1); }
