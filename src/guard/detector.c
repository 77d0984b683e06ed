/*
 * detector.c — the guard's detector: per-account streaming state, the signals computed from
 * it, risk, account linking and escalation. Pure computation on guard_event values: no
 * database, no clock, no threads (the runtime holds a lock around it; eval and calibration
 * replay stored events through it).
 *
 * Memory per account is fixed (about 12 KiB: exponential means, decaying counters, the last
 * GUARD_RECENT prompt signatures, the last GUARD_COVER_W embedding cells, 24 hourly and 288
 * five-minute activity stamps, up to GUARD_PARTNERS candidate partners, 512 prompt hashes
 * sent before). Work per event is
 * O(GUARD_RFF_M * dim + GUARD_RECENT * GUARD_MINHASH_K + group size * GUARD_RFF_M): constant
 * in the length of the history.
 *
 * Linking: evidence between two accounts accumulates in a pair table — a shared client
 * address, a shared rare client fingerprint, creation in the same burst of sign-ups, prompts in
 * the same MinHash LSH band (bands that benign calibration traffic also produced are ignored:
 * those are common phrasings, not a shared template), overlapping five-minute activity
 * (Jaccard), and alignment with a significant move of the cohort (the pooled prompts of recent
 * low-volume accounts: population-level detection). A pair
 * links when its weighted score passes the policy threshold with at least min_kinds kinds of
 * evidence; groups are the connected components (union–find). A group is assessed on its
 * members' pooled statistics and its action level is shared by every member.
 *
 * Levels come from the risk (thresholds times the account's tier's risk_x) and from the harvest
 * budget (the decayed value served, per account and summed over a group, against the budgets
 * times the tier's budget_x); an exempt tier stops at flag.
 *
 * Not the enforcement: verdicts say what level an account reached; runtime.c acts on them.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"

#define GUARD_RECENT 32        /* prompt signatures kept per account (template signal) */
#define GUARD_COVER_W 64       /* embedding cells kept per account (coverage signal) */
#define GUARD_PARTNERS 64      /* candidate linked accounts kept per account */
#define GUARD_BINS 288         /* five-minute activity bins over a day */
#define GUARD_BAND_SLOTS 65536 /* LSH band index (lossy, fixed size) */
#define GUARD_BAND_ACCTS 4
#define GUARD_BASELINE_FLOOR 30.0 /* requests/hour added to both rates of the baseline ratio */
#define GAP_FLOOR 0.1             /* seconds: inter-arrival gaps below count as this */
#define GUARD_SEEN_SETS 128       /* prompt hashes an account sent: 128 sets of 4 (lossy) */
#define GUARD_SEEN_WAYS 4
#define GUARD_SW_K 6              /* non-content features of the switch signal */

typedef struct {
    int64_t id;
    double created_at, first_t, last_t;
    guard_action level;
    uint32_t parent, size; /* union-find (size valid at roots) */
    uint32_t next;         /* circular list of the group's members */
    /* statistics */
    double n, n_ok, n_new, n_emb, n_tmpl, n_cover, n_gap;
    double max_end; /* latest end of the account's requests seen (t_end) */
    double last_value; /* harvest value of the last event (0 unless served) */
    guard_decay rate, volume, rate_long, value;
    uint8_t tier; /* index into the policy's tiers (kept across a release) */
    uint8_t by_pop; /* its level came from the population budget alone: not shared with its group */
    uint8_t vouched; /* released by an operator: out of the population (kept across a release) */
    guard_ewm limit, conc, logprobs, sat, ratio, tmpl, lgap, lgap2, emb;
    float mu[GUARD_RFF_M];
    float mu_recent[GUARD_RFF_M]; /* the last ~drift_window prompts' mean feature (drift) */
    guard_ewm emb_recent;
    /* switch: each non-content feature's recent mean (drift_window) and history mean and mean
     * square (shift_window) */
    guard_ewm sw_recent[GUARD_SW_K], sw_hist[GUARD_SW_K], sw_hist2[GUARD_SW_K];
    uint32_t hours[24];
    uint32_t bins[GUARD_BINS];
    uint32_t recent_sig[GUARD_RECENT][GUARD_MINHASH_K];
    uint64_t recent_hash[GUARD_RECENT];
    uint64_t recent_prefix[GUARD_RECENT];
    uint32_t recent_n, recent_pos;
    uint8_t cells[GUARD_COVER_W];
    uint8_t cell_count[256];
    uint32_t cell_n, cell_pos, cell_distinct;
    /* linking */
    uint32_t partners[GUARD_PARTNERS];
    uint32_t n_partners, partner_rr;
    int burst_checked;
    uint64_t last_client, last_fp;
    /* prompts sent before (kept across a release): a repeat adds nothing to the content signals */
    uint64_t seen[GUARD_SEEN_SETS][GUARD_SEEN_WAYS];
} acct;

typedef struct {
    uint64_t a, b; /* account indices + 1 (0 = empty), a < b */
    float ip, burst, fp, cohort;
    float tmpl_hits;
    int linked;
    int veto; /* an operator released one of the two: never link them again */
} pair_ev;

typedef struct {
    uint64_t key;  /* client hash or fingerprint (0 = empty) */
    uint32_t n;
    uint32_t acc[GUARD_PARTNERS];
} ip_entry;

/* accounts by a key they share: the client address, or the client fingerprint */
typedef struct {
    ip_entry *e;
    size_t cap, n;
} key_index;

typedef struct {
    uint64_t key;
    uint32_t acc[GUARD_BAND_ACCTS]; /* account index + 1 */
} band_entry;

typedef struct {
    int64_t bucket;
    uint32_t *acc;
    size_t n, cap;
} burst_bucket;

struct guard_detector {
    guard_policy p;
    const guard_reference *ref;
    int shift_ok;
    float *xbuf;    /* (xbuf_dim) the current event's embedding, dequantised */
    size_t xbuf_dim;
    float *tmp_phi; /* (GUARD_RFF_M) */
    float *sh_w;    /* (8, sh_dim) SimHash projection signs, cached */
    size_t sh_dim;
    uint32_t mem[GUARD_MAX_AFFECTED]; /* scratch: members of the current group */
    acct **acc;
    size_t n_acc, cap_acc;
    rt_map map; /* account id -> index in acc */
    pair_ev *pairs;
    size_t pair_cap, n_pairs;
    key_index ips, fps;
    /* the cohort: recent low-volume accounts' new prompts pooled in one mean feature, and the
     * members whose cohort signal reached its attack level (the candidates it links) */
    guard_ewm coh_emb;
    float coh_mu[GUARD_RFF_M];
    uint32_t coh_ring[GUARD_PARTNERS];
    uint32_t coh_n, coh_pos;
    const float *coh_pr; /* the cohort mean's nearest benign profile (set when the mean moves) */
    double coh_d2;       /* and its squared distance */
    /* the population budget: harvest value served to newly active low-volume accounts */
    guard_decay pop_value;
    band_entry *bands; /* (GUARD_BAND_SLOTS) */
    burst_bucket *bursts;
    size_t burst_cap, n_bursts;
    /* group level, stored at roots */
};

/* ---------------------------------------------------------------- hashing */

/* Slots of the open-addressing tables below come from base's one mixer, rt_mix64: only the
 * layout depends on it, never a result (the tables are iterated in slot order only to rehash
 * or free). */

/* index of account id, or -1 */
static long acct_find(const guard_detector *d, int64_t id) {
    const uint64_t *v = rt_map_get(&d->map, (uint64_t)id);
    return v ? (long)*v : -1;
}

static long acct_get(guard_detector *d, int64_t id, double created_at, double t) {
    long i = acct_find(d, id);
    if (i >= 0) return i;
    if (RT_GROW(d->acc, d->cap_acc, d->n_acc + 1, "guard accounts")) return -1;
    if (d->n_acc >= UINT32_MAX - 1) return RT_FAIL("guard: too many accounts"), -1;
    uint64_t *slot = rt_map_put(&d->map, (uint64_t)id, NULL);
    if (!slot) return -1;
    acct *a = rt_calloc(1, sizeof *a, "guard account state");
    if (!a) {
        rt_map_remove(&d->map, (uint64_t)id);
        return -1;
    }
    a->id = id;
    a->created_at = created_at;
    a->first_t = a->last_t = t;
    a->parent = (uint32_t)d->n_acc;
    a->next = (uint32_t)d->n_acc;
    a->size = 1;
    for (size_t h = 0; h < 24; h++) a->hours[h] = UINT32_MAX;
    for (size_t b = 0; b < GUARD_BINS; b++) a->bins[b] = UINT32_MAX;
    d->acc[d->n_acc] = a;
    *slot = d->n_acc;
    return (long)d->n_acc++;
}

static uint32_t uf_find(guard_detector *d, uint32_t i) {
    RT_ASSERT(i < d->n_acc);
    while (d->acc[i]->parent != i) {
        uint32_t p = d->acc[i]->parent;
        d->acc[i]->parent = d->acc[p]->parent; /* path halving */
        i = p;
    }
    return i;
}

/* ---------------------------------------------------------------- pairs */

static int pair_grow(guard_detector *d) {
    size_t nc = d->pair_cap ? d->pair_cap * 2 : 4096;
    pair_ev *np = rt_calloc(nc, sizeof *np, "guard pair evidence");
    if (!np) return -1;
    for (size_t i = 0; i < d->pair_cap; i++) {
        if (!d->pairs[i].a) continue;
        size_t j = rt_mix64(d->pairs[i].a * 0x9e3779b97f4a7c15ULL ^ d->pairs[i].b) & (nc - 1);
        while (np[j].a) j = (j + 1) & (nc - 1);
        np[j] = d->pairs[i];
    }
    free(d->pairs);
    d->pairs = np;
    d->pair_cap = nc;
    return 0;
}

static pair_ev *pair_lookup(guard_detector *d, uint32_t x, uint32_t y, int create) {
    uint64_t a = (uint64_t)RT_MIN(x, y) + 1, b = (uint64_t)RT_MAX(x, y) + 1;
    if (!d->pair_cap) {
        if (!create || pair_grow(d)) return NULL;
    }
    size_t j = rt_mix64(a * 0x9e3779b97f4a7c15ULL ^ b) & (d->pair_cap - 1);
    while (d->pairs[j].a) {
        if (d->pairs[j].a == a && d->pairs[j].b == b) return &d->pairs[j];
        j = (j + 1) & (d->pair_cap - 1);
    }
    if (!create) return NULL;
    if ((d->n_pairs + 1) * 2 > d->pair_cap) {
        if (pair_grow(d)) return NULL;
        return pair_lookup(d, x, y, 1);
    }
    d->pairs[j].a = a;
    d->pairs[j].b = b;
    d->n_pairs++;
    return &d->pairs[j];
}

static void add_partner(acct *a, uint32_t other) {
    for (uint32_t i = 0; i < a->n_partners; i++)
        if (a->partners[i] == other) return;
    if (a->n_partners < GUARD_PARTNERS) a->partners[a->n_partners++] = other;
    else a->partners[(a->partner_rr++) % GUARD_PARTNERS] = other; /* forget an old candidate */
}

/* five-minute activity overlap of two accounts over the day before t */
static double timing_jaccard(const acct *a, const acct *b, double t) {
    uint32_t now = (uint32_t)(t / 300.0);
    size_t inter = 0, uni = 0, na = 0, nb = 0;
    for (uint32_t k = 0; k < GUARD_BINS; k++) {
        if (now < k) break;
        uint32_t bin = now - k;
        int ia = a->bins[bin % GUARD_BINS] == bin, ib = b->bins[bin % GUARD_BINS] == bin;
        inter += ia && ib;
        uni += ia || ib;
        na += ia;
        nb += ib;
    }
    if (na < 3 || nb < 3 || uni == 0) return 0;
    return (double)inter / (double)uni;
}

typedef struct {
    double score, ip, burst, tmpl, timing, fp, cohort;
    int kinds;
} link_eval;

unsigned guard_link_kinds(double ip, double burst, double tmpl, double fingerprint, double cohort, double timing) {
    return (ip > 0 ? GUARD_LINK_IP : 0) | (burst > 0 ? GUARD_LINK_BURST : 0) | (tmpl >= 0.5 ? GUARD_LINK_TEMPLATE : 0) |
           (fingerprint > 0 ? GUARD_LINK_FINGERPRINT : 0) | (cohort > 0 ? GUARD_LINK_COHORT : 0) |
           (timing >= 0.5 ? GUARD_LINK_TIMING : 0);
}

const char *guard_link_kind_name(unsigned bit) {
    switch (bit) {
    case GUARD_LINK_IP: return "shared client address";
    case GUARD_LINK_BURST: return "same burst of sign-ups";
    case GUARD_LINK_TEMPLATE: return "shared prompt template";
    case GUARD_LINK_FINGERPRINT: return "shared client fingerprint";
    case GUARD_LINK_COHORT: return "aligned with a cohort move";
    case GUARD_LINK_TIMING: return "overlapping activity";
    default: return "unknown";
    }
}

/* full: always compute the timing overlap (explanations); otherwise only when it could make
 * the pair pass (it is the one costly kind of evidence). */
static link_eval pair_eval(const guard_detector *d, const pair_ev *pe, uint32_t x, uint32_t y, double t, int full) {
    const guard_policy *p = &d->p;
    link_eval e = {0};
    e.ip = pe->ip;
    e.burst = pe->burst;
    e.fp = pe->fp;
    e.cohort = pe->cohort;
    e.tmpl = fmin(1.0, pe->tmpl_hits / p->template_link_hits);
    double rest = p->link_w_ip * e.ip + p->link_w_burst * e.burst + p->link_w_template * e.tmpl +
                  p->link_w_fingerprint * e.fp + p->link_w_cohort * e.cohort;
    int kinds = __builtin_popcount(guard_link_kinds(e.ip, e.burst, e.tmpl, e.fp, e.cohort, 0));
    if (full || (rest + p->link_w_timing >= p->link_threshold && kinds + 1 >= p->link_min_kinds))
        e.timing = timing_jaccard(d->acc[x], d->acc[y], t);
    e.score = rest + p->link_w_timing * e.timing;
    e.kinds = __builtin_popcount(guard_link_kinds(e.ip, e.burst, e.tmpl, e.fp, e.cohort, e.timing));
    return e;
}

/* Try to link x and y; returns 1 if their groups merged. */
static int try_link(guard_detector *d, uint32_t x, uint32_t y, double t) {
    pair_ev *pe = pair_lookup(d, x, y, 0);
    if (!pe || pe->linked || pe->veto) return 0;
    link_eval e = pair_eval(d, pe, x, y, t, 0);
    if (e.score < d->p.link_threshold || e.kinds < d->p.link_min_kinds) return 0;
    uint32_t rx = uf_find(d, x), ry = uf_find(d, y);
    pe->linked = 1;
    if (rx == ry) return 0;
    if ((size_t)d->acc[rx]->size + d->acc[ry]->size > d->p.max_group) return 0;
    if (d->acc[rx]->size < d->acc[ry]->size) {
        uint32_t tmp = rx;
        rx = ry;
        ry = tmp;
    }
    d->acc[ry]->parent = rx;
    d->acc[rx]->size += d->acc[ry]->size;
    uint32_t nx = d->acc[rx]->next; /* splice the two member circles */
    d->acc[rx]->next = d->acc[ry]->next;
    d->acc[ry]->next = nx;
    return 1;
}

/* ---------------------------------------------------------------- linking indexes */

static int key_grow(key_index *x) {
    size_t nc = x->cap ? x->cap * 2 : 1024;
    ip_entry *ne = rt_calloc(nc, sizeof *ne, "guard address index");
    if (!ne) return -1;
    for (size_t i = 0; i < x->cap; i++) {
        if (!x->e[i].key) continue;
        size_t j = rt_mix64(x->e[i].key) & (nc - 1);
        while (ne[j].key) j = (j + 1) & (nc - 1);
        ne[j] = x->e[i];
    }
    free(x->e);
    x->e = ne;
    x->cap = nc;
    return 0;
}

/* record that account i used client address (fp 0) or client fingerprint (fp 1) c; partners
 * sharing it get ip or fingerprint evidence, unless more than the policy's maximum share it */
static int note_shared(guard_detector *d, int fp, uint32_t i, uint64_t c, uint32_t *touched, size_t *n_touched,
                       size_t cap) {
    if (!c) return 0;
    acct *a = d->acc[i];
    uint64_t *last = fp ? &a->last_fp : &a->last_client;
    if (*last == c) return 0; /* seen already: nothing new */
    *last = c;
    key_index *x = fp ? &d->fps : &d->ips;
    if ((x->n + 1) * 2 > x->cap && key_grow(x)) return -1;
    size_t j = rt_mix64(c) & (x->cap - 1);
    while (x->e[j].key && x->e[j].key != c) j = (j + 1) & (x->cap - 1);
    ip_entry *e = &x->e[j];
    if (!e->key) {
        e->key = c;
        x->n++;
    }
    for (uint32_t k = 0; k < e->n && k < GUARD_PARTNERS; k++)
        if (e->acc[k] == i) return 0;
    if (e->n < GUARD_PARTNERS) e->acc[e->n] = i;
    e->n++;
    /* a big shared address, a popular client: not evidence */
    if (e->n > (uint32_t)(fp ? d->p.fp_max_accounts : d->p.ip_max_accounts)) return 0;
    for (uint32_t k = 0; k + 1 < e->n && k < GUARD_PARTNERS; k++) {
        uint32_t o = e->acc[k];
        pair_ev *pe = pair_lookup(d, i, o, 1);
        if (!pe) return -1;
        if (fp) pe->fp = 1;
        else pe->ip = 1;
        add_partner(a, o);
        add_partner(d->acc[o], i);
        if (*n_touched < cap) touched[(*n_touched)++] = o;
    }
    return 0;
}

static burst_bucket *burst_bucket_get(guard_detector *d, int64_t b, int create) {
    if (d->burst_cap) {
        size_t j = rt_mix64((uint64_t)b) & (d->burst_cap - 1);
        while (d->bursts[j].acc || d->bursts[j].n) {
            if (d->bursts[j].bucket == b) return &d->bursts[j];
            j = (j + 1) & (d->burst_cap - 1);
        }
    }
    if (!create) return NULL;
    if ((d->n_bursts + 1) * 2 > d->burst_cap) { /* grow the open-addressing table */
        size_t nc = d->burst_cap ? d->burst_cap * 2 : 256;
        burst_bucket *nb = rt_calloc(nc, sizeof *nb, "guard sign-up index");
        if (!nb) return NULL;
        for (size_t i = 0; i < d->burst_cap; i++) {
            if (!d->bursts[i].acc) continue;
            size_t j = rt_mix64((uint64_t)d->bursts[i].bucket) & (nc - 1);
            while (nb[j].acc) j = (j + 1) & (nc - 1);
            nb[j] = d->bursts[i];
        }
        free(d->bursts);
        d->bursts = nb;
        d->burst_cap = nc;
    }
    size_t j = rt_mix64((uint64_t)b) & (d->burst_cap - 1);
    while (d->bursts[j].acc) j = (j + 1) & (d->burst_cap - 1);
    burst_bucket *bb = &d->bursts[j];
    memset(bb, 0, sizeof *bb);
    bb->bucket = b;
    bb->cap = 8;
    bb->acc = rt_malloc_array(bb->cap, sizeof *bb->acc, "guard sign-up bucket");
    if (!bb->acc) return NULL;
    d->n_bursts++;
    return bb;
}

/* at the first event of account i: sign-up burst evidence with accounts created nearby */
static int note_creation(guard_detector *d, uint32_t i, uint32_t *touched, size_t *n_touched, size_t cap) {
    acct *a = d->acc[i];
    if (a->burst_checked || !(a->created_at > 0)) return 0;
    a->burst_checked = 1;
    const double W = d->p.burst_window;
    int64_t b = (int64_t)floor(a->created_at / W);
    burst_bucket *bb = burst_bucket_get(d, b, 1);
    if (!bb) return -1;
    if (bb->n == bb->cap) {
        size_t nc = bb->cap ? bb->cap * 2 : 8;
        uint32_t *na = rt_realloc(bb->acc, nc * sizeof *na, "guard sign-up bucket");
        if (!na) return -1;
        bb->acc = na;
        bb->cap = nc;
    }
    bb->acc[bb->n++] = i;
    /* accounts created within W of a */
    uint32_t near[GUARD_PARTNERS];
    size_t n_near = 0, count = 0;
    for (int64_t k = b - 1; k <= b + 1; k++) {
        burst_bucket *q = burst_bucket_get(d, k, 0);
        if (!q) continue;
        for (size_t m = 0; m < q->n; m++) {
            uint32_t o = q->acc[m];
            if (o == i || fabs(d->acc[o]->created_at - a->created_at) > W) continue;
            count++;
            if (n_near < GUARD_PARTNERS) near[n_near++] = o;
        }
    }
    if ((int)count + 1 < d->p.burst_min) return 0;
    for (size_t k = 0; k < n_near; k++) {
        pair_ev *pe = pair_lookup(d, i, near[k], 1);
        if (!pe) return -1;
        pe->burst = 1;
        add_partner(a, near[k]);
        add_partner(d->acc[near[k]], i);
        if (*n_touched < cap) touched[(*n_touched)++] = near[k];
    }
    return 0;
}

static int band_is_benign(const guard_reference *r, uint64_t key) {
    if (!r || !r->n_stop_bands) return 0;
    size_t lo = 0, hi = r->n_stop_bands;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->stop_bands[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo < r->n_stop_bands && r->stop_bands[lo] == key;
}

static int note_template(guard_detector *d, uint32_t i, const guard_event *ev, uint32_t *touched, size_t *n_touched,
                         size_t cap) {
    /* keys: the MinHash LSH bands, and the three-word prefix (a template's fixed opening) */
    uint64_t bands[GUARD_MINHASH_BANDS + 1];
    size_t n_keys = 0;
    if (ev->has_minhash) {
        guard_minhash_bands(ev->minhash, bands);
        n_keys = GUARD_MINHASH_BANDS;
    }
    if (ev->prefix_hash) bands[n_keys++] = guard_prefix_key(ev->prefix_hash);
    uint32_t hit[(GUARD_MINHASH_BANDS + 1) * GUARD_BAND_ACCTS];
    size_t n_hit = 0;
    for (size_t b = 0; b < n_keys; b++) {
        if (band_is_benign(d->ref, bands[b])) continue;
        band_entry *e = &d->bands[bands[b] & (GUARD_BAND_SLOTS - 1)];
        if (e->key != bands[b]) { /* empty or another band: take the slot over */
            memset(e, 0, sizeof *e);
            e->key = bands[b];
        }
        int present = 0;
        for (size_t k = 0; k < GUARD_BAND_ACCTS; k++) {
            if (!e->acc[k]) continue;
            uint32_t o = e->acc[k] - 1;
            if (o == i) {
                present = 1;
                continue;
            }
            size_t m = 0;
            while (m < n_hit && hit[m] != o) m++;
            if (m == n_hit) hit[n_hit++] = o;
        }
        if (!present) { /* newest first */
            memmove(e->acc + 1, e->acc, (GUARD_BAND_ACCTS - 1) * sizeof e->acc[0]);
            e->acc[0] = i + 1;
        }
    }
    for (size_t m = 0; m < n_hit; m++) {
        pair_ev *pe = pair_lookup(d, i, hit[m], 1);
        if (!pe) return -1;
        pe->tmpl_hits += 1;
        add_partner(d->acc[i], hit[m]);
        add_partner(d->acc[hit[m]], i);
        if (*n_touched < cap) touched[(*n_touched)++] = hit[m];
    }
    return 0;
}

/* ---------------------------------------------------------------- the cohort */

/* A recent, low-volume account: younger than cohort_age_s (since sign-up, or its first
 * request) with at most cohort_max_answers served. */
static int in_cohort(const guard_policy *p, const acct *a, double t) {
    double since = a->created_at > 0 ? a->created_at : a->first_t;
    return t - since < p->cohort_age_s && a->n_ok <= p->cohort_max_answers;
}

/* The benign profile nearest to a mean feature (the pooled mean or a single account's), and
 * the squared distance to it. */
static const float *nearest_profile_of(const guard_reference *ref, const float *m, double *d2_out) {
    const float *best = ref->mu;
    double bd = 0;
    for (size_t j = 0; j < GUARD_RFF_M; j++) bd += ((double)m[j] - ref->mu[j]) * ((double)m[j] - ref->mu[j]);
    for (size_t k = 0; k < ref->n_profiles; k++) {
        const float *p = ref->profiles + k * GUARD_RFF_M;
        double s = 0;
        for (size_t j = 0; j < GUARD_RFF_M && s < bd; j++) s += ((double)m[j] - p[j]) * ((double)m[j] - p[j]);
        if (s < bd) {
            bd = s;
            best = p;
        }
    }
    *d2_out = bd;
    return best;
}

/* The cohort signal of account a: its own shift along the direction the cohort moved. u is the
 * unit offset of the cohort's mean from its nearest benign profile p; the value is 1000 x
 * (proj^2 - noise), proj = <mean_a - p, u> (0 when negative), noise = trace/m x varfactor_a
 * (the noise of a's mean along one direction, taking the benign spread as even over the m
 * features: a calibration sets the level). Along one direction that the population found, a
 * few dozen prompts of an account already stand out, where its whole shift is still noise.
 * Counted only while the cohort's own shift is significant (z >= z_crit). *align: the cosine of
 * a's offset with u. NaN when a is not in the cohort or has fewer than 8 prompt embeddings. */
static double cohort_value(const guard_detector *d, const acct *a, double t, double *align) {
    *align = 0;
    if (!d->shift_ok || a->n_emb < 8 || d->coh_emb.n < 1 || !in_cohort(&d->p, a, t)) return NAN;
    double d2 = d->coh_d2;
    const float *pr = d->coh_pr;
    double null = d->ref->trace * guard_ewm_var_factor(&d->coh_emb, d->p.cohort_window);
    if (!pr || !(null > 0 && d2 > 0 && d2 / null >= d->ref->z_crit)) return 0;
    double dot = 0, na = 0;
    for (size_t j = 0; j < GUARD_RFF_M; j++) {
        double x = (double)a->mu[j] - pr[j];
        dot += x * ((double)d->coh_mu[j] - pr[j]);
        na += x * x;
    }
    double proj = dot / sqrt(d2);
    *align = na > 0 ? proj / sqrt(na) : 0;
    if (proj <= 0) return 0;
    double noise = d->ref->trace / GUARD_RFF_M * guard_ewm_var_factor(&a->emb, d->p.shift_window);
    return 1000.0 * (proj * proj - noise);
}

/* One new prompt feature of a cohort account joins the cohort's mean. */
static void cohort_add(guard_detector *d, const acct *a, double t, const float *phi) {
    if (!in_cohort(&d->p, a, t)) return;
    guard_ewm_add(&d->coh_emb, 0, d->p.cohort_window);
    double alpha = fmax(1.0 / d->coh_emb.n, 1.0 / d->p.cohort_window);
    for (size_t j = 0; j < GUARD_RFF_M; j++) d->coh_mu[j] += (float)(alpha * (phi[j] - d->coh_mu[j]));
    d->coh_pr = nearest_profile_of(d->ref, d->coh_mu, &d->coh_d2);
}

/* A member with 16 prompts or more whose cohort signal is above its benign level and aligned at
 * least cohort_align gets
 * cohort link evidence with the other such members (the last GUARD_PARTNERS of them). */
static int note_cohort(guard_detector *d, uint32_t i, double t, uint32_t *touched, size_t *n_touched, size_t cap) {
    const guard_signal_policy *sp = &d->p.sig[GUARD_SIG_COHORT];
    double align;
    double v = cohort_value(d, d->acc[i], t, &align);
    if (!(v >= sp->benign) || d->coh_emb.n < sp->min_n || align < d->p.cohort_align || d->acc[i]->n_emb < 16)
        return 0;
    int present = 0;
    for (uint32_t k = 0; k < d->coh_n; k++) present |= d->coh_ring[k] == i;
    if (!present) {
        d->coh_ring[d->coh_pos] = i;
        d->coh_pos = (d->coh_pos + 1) % GUARD_PARTNERS;
        if (d->coh_n < GUARD_PARTNERS) d->coh_n++;
    }
    for (uint32_t k = 0; k < d->coh_n; k++) {
        uint32_t o = d->coh_ring[k];
        if (o == i) continue;
        pair_ev *pe = pair_lookup(d, i, o, 1);
        if (!pe) return -1;
        if (pe->cohort > 0) continue;
        pe->cohort = 1;
        add_partner(d->acc[i], o);
        add_partner(d->acc[o], i);
        if (*n_touched < cap) touched[(*n_touched)++] = o;
    }
    return 0;
}

/* ---------------------------------------------------------------- init */

int guard_detector_new(guard_detector **out, const guard_policy *p, const guard_reference *ref) {
    *out = NULL;
    guard_detector *d = rt_calloc(1, sizeof *d, "guard detector");
    if (!d) return -1;
    d->p = *p;
    d->ref = ref;
    if (ref) guard_policy_apply_reference(&d->p, ref);
    d->bands = rt_calloc(GUARD_BAND_SLOTS, sizeof *d->bands, "guard band index");
    if (!d->bands) goto fail;
    if (ref && ref->has_shift) {
        if (ref->rff.m != GUARD_RFF_M) {
            RT_FAIL("guard reference: %zu random features, expected %d", ref->rff.m, GUARD_RFF_M);
            goto fail;
        }
        d->tmp_phi = rt_malloc_array(GUARD_RFF_M, sizeof(float), "guard features");
        if (!d->tmp_phi) goto fail;
        d->shift_ok = 1;
    }
    *out = d;
    return 0;
fail:
    guard_detector_free(d);
    return -1;
}

void guard_detector_free(guard_detector *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_acc; i++) free(d->acc[i]);
    free(d->acc);
    rt_map_free(&d->map);
    free(d->pairs);
    free(d->ips.e);
    free(d->fps.e);
    free(d->bands);
    for (size_t i = 0; i < d->burst_cap; i++) free(d->bursts[i].acc);
    free(d->bursts);
    free(d->xbuf);
    free(d->tmp_phi);
    free(d->sh_w);
    free(d);
}

size_t guard_detector_accounts(const guard_detector *d) { return d->n_acc; }

size_t guard_detector_bytes(const guard_detector *d) {
    size_t b = sizeof *d + d->n_acc * sizeof(acct) + d->cap_acc * sizeof(acct *) +
               rt_map_bytes(&d->map) + d->pair_cap * sizeof(pair_ev) +
               (d->ips.cap + d->fps.cap) * sizeof(ip_entry) + GUARD_BAND_SLOTS * sizeof(band_entry) + d->burst_cap * sizeof(burst_bucket);
    for (size_t i = 0; i < d->burst_cap; i++) b += d->bursts[i].cap * sizeof(uint32_t);
    return b;
}

size_t guard_detector_account_bytes(void) { return sizeof(acct); }

/* ---------------------------------------------------------------- statistics */

/* Was this prompt hash seen from the account before? Records it if not. 0 (unknown) is never
 * seen. A 4-way set-associative table: a set that is full forgets a way chosen by the hash. */
static int seen_before(acct *a, uint64_t h) {
    if (!h) return 0;
    uint64_t *set = a->seen[h % GUARD_SEEN_SETS];
    for (int w = 0; w < GUARD_SEEN_WAYS; w++)
        if (set[w] == h) return 1;
    for (int w = 0; w < GUARD_SEEN_WAYS; w++)
        if (!set[w]) {
            set[w] = h;
            return 0;
        }
    set[(h >> 32) % GUARD_SEEN_WAYS] = h;
    return 0;
}

static int update_stats(guard_detector *d, acct *a, const guard_event *ev, int *concurrent) {
    const guard_policy *p = &d->p;
    const double W = p->window;
    double t = ev->t;
    double answers = ev->n_choices > 1 ? (double)ev->n_choices : 1.0; /* volume counts answers */
    /* concurrency: measured on [t, t_end) when the end is known (events may come in completion
     * order: whichever of two overlapping requests is seen second counts), else as reported */
    int conc = ev->concurrent != 0;
    if (ev->t_end > 0) {
        conc = a->n > 0 && t < a->max_end;
        if (ev->t_end > a->max_end) a->max_end = ev->t_end;
    }
    *concurrent = conc;
    double sw_gap = a->n > 0 ? fmax(t - a->last_t, GAP_FLOOR) : NAN; /* for the switch signal */
    /* timing */
    if (a->n > 0) {
        double gap = fmax(t - a->last_t, GAP_FLOOR);
        double lg = log(gap);
        guard_ewm_add(&a->lgap, lg, W);
        guard_ewm_add(&a->lgap2, lg * lg, W);
        a->n_gap += 1;
    }
    if (t > a->last_t || a->n == 0) a->last_t = t;
    if (t < a->first_t || a->n == 0) a->first_t = t; /* state made before its first event (a tier) */
    a->n += 1;
    guard_decay_add(&a->rate, t, answers, p->rate_tau);
    guard_decay_add(&a->volume, t, answers, p->volume_tau);
    guard_decay_add(&a->rate_long, t, answers, p->baseline_tau);
    guard_ewm_add(&a->limit, ev->status == 429 ? 1 : 0, W);
    guard_ewm_add(&a->conc, conc ? 1 : 0, W);
    double lp = ev->logprobs ? 0.3 + 0.7 * fmin(20, fmax(0, ev->top_logprobs)) / 20.0 : 0;
    guard_ewm_add(&a->logprobs, lp, W);
    if (t >= 0) {
        uint32_t hr = (uint32_t)(t / 3600.0), bin = (uint32_t)(t / 300.0);
        a->hours[hr % 24] = hr;
        a->bins[bin % GUARD_BINS] = bin;
    }
    a->last_value = 0;
    if (ev->status != 200) return 0;
    /* served requests only */
    a->n_ok += answers;
    /* max_tokens is the limit that applied: the client's, or the server's maximum when the body
     * had none (a client that leaves it out to get the longest answers saturates too) */
    double per_answer = (double)ev->completion_tokens / answers; /* completion_tokens sums the choices */
    int saturated = ev->max_tokens > 0 && per_answer >= (double)ev->max_tokens;
    guard_ewm_add(&a->sat, saturated ? 1 : 0, W);
    guard_ewm_add(&a->ratio, log((per_answer + 1) / (double)(ev->prompt_tokens + 1)), W);
    /* a prompt the account sent before (a nightly benchmark rerun) is little new information:
     * the content signals (template, shift, coverage) see each distinct prompt once, and its
     * answers add repeat_value of their harvest value (a resample at temperature > 0 is not
     * nothing). Harvest value: completion tokens, each with its log-prob entries */
    int repeat = seen_before(a, ev->prompt_hash);
    double detail = ev->logprobs ? 1.0 + p->logprob_alt * (1.0 + fmax(0, (double)ev->top_logprobs)) : 1.0;
    double value = (double)RT_MAX(ev->completion_tokens, (int64_t)0) * detail * (repeat ? p->repeat_value : 1.0);
    guard_decay_add(&a->value, t, value, p->budget_tau);
    a->last_value = value;
    /* the switch signal's features, each as "more harvest-like" grows: pace (minus the log gap,
     * a break counted as ten minutes), saturation, token ratio, log-prob detail, a new prompt, an
     * explicit max_tokens */
    double f[GUARD_SW_K] = {isfinite(sw_gap) ? -log(fmin(sw_gap, 600.0)) : NAN,
                            saturated ? 1.0 : 0.0,
                            log((per_answer + 1) / (double)(ev->prompt_tokens + 1)),
                            lp,
                            repeat ? 0.0 : 1.0,
                            ev->max_tokens_given ? 1.0 : 0.0};
    for (int k = 0; k < GUARD_SW_K; k++) {
        if (!isfinite(f[k])) continue;
        guard_ewm_add(&a->sw_recent[k], f[k], p->drift_window);
        guard_ewm_add(&a->sw_hist[k], f[k], p->shift_window);
        guard_ewm_add(&a->sw_hist2[k], f[k] * f[k], p->shift_window);
    }
    if (repeat) return 0;
    a->n_new += 1;
    if (ev->has_minhash) {
        /* density of near-duplicates: the share of recent prompts (exact repeats aside) this one
         * is a near-duplicate of. One template: most of them; a person's dozen habits: few. */
        size_t R = RT_MIN((size_t)a->recent_n, d->p.template_recent), compared = 0, near = 0, pre = 0;
        for (size_t k = 0; k < R; k++) {
            size_t idx = (a->recent_pos + GUARD_RECENT - 1 - k) % GUARD_RECENT;
            if (a->recent_hash[idx] == ev->prompt_hash) continue; /* an exact repeat is not a template */
            compared++;
            near += guard_minhash_similarity(a->recent_sig[idx], ev->minhash) >= p->template_sim;
            pre += ev->prefix_hash && a->recent_prefix[idx] == ev->prefix_hash;
        }
        if (compared > 0) {
            guard_ewm_add(&a->tmpl, (double)RT_MAX(near, pre) / (double)compared, W);
            a->n_tmpl += 1;
        }
        memcpy(a->recent_sig[a->recent_pos], ev->minhash, sizeof a->recent_sig[0]);
        a->recent_hash[a->recent_pos] = ev->prompt_hash;
        a->recent_prefix[a->recent_pos] = ev->prefix_hash;
        a->recent_pos = (a->recent_pos + 1) % GUARD_RECENT;
        if (a->recent_n < GUARD_RECENT) a->recent_n++;
    }
    if (ev->emb && ev->emb_dim) {
        if (ev->emb_dim > d->xbuf_dim) {
            float *nb = rt_realloc(d->xbuf, ev->emb_dim * sizeof(float), "guard embedding");
            if (!nb) return -1;
            d->xbuf = nb;
            d->xbuf_dim = ev->emb_dim;
        }
        guard_dequantize(ev->emb, ev->emb_dim, ev->emb_scale, d->xbuf);
        if (d->shift_ok && ev->emb_dim == d->ref->rff.dim) {
            guard_rff_apply(&d->ref->rff, d->xbuf, d->tmp_phi);
            guard_ewm_add(&a->emb, 0, p->shift_window); /* counts, and gives alpha */
            double alpha = 1.0 / a->emb.n;
            if (alpha < 1.0 / p->shift_window) alpha = 1.0 / p->shift_window;
            for (size_t j = 0; j < GUARD_RFF_M; j++) a->mu[j] += (float)(alpha * (d->tmp_phi[j] - a->mu[j]));
            guard_ewm_add(&a->emb_recent, 0, p->drift_window);
            double ar = fmax(1.0 / a->emb_recent.n, 1.0 / p->drift_window);
            for (size_t j = 0; j < GUARD_RFF_M; j++)
                a->mu_recent[j] += (float)(ar * (d->tmp_phi[j] - a->mu_recent[j]));
            cohort_add(d, a, t, d->tmp_phi);
            a->n_emb += 1;
        }
        /* coverage: SimHash cells of the recent window (needs no reference); the projection
         * signs are cached, and the sums are in double as guard_simhash_cell's */
        if (d->sh_dim != ev->emb_dim) {
            float *w = rt_realloc(d->sh_w, 8 * ev->emb_dim * sizeof(float), "SimHash projections");
            if (!w) return -1;
            d->sh_w = w;
            d->sh_dim = ev->emb_dim;
            for (unsigned bit = 0; bit < 8; bit++)
                for (size_t k = 0; k < ev->emb_dim; k++) w[bit * ev->emb_dim + k] = (float)guard_simhash_sign(bit, k);
        }
        unsigned c = 0;
        for (unsigned bit = 0; bit < 8; bit++) {
            const float *w = d->sh_w + bit * ev->emb_dim;
            double acc = 0;
            for (size_t k = 0; k < ev->emb_dim; k++) acc += w[k] * (double)d->xbuf[k];
            if (acc > 0) c |= 1u << bit;
        }
        if (a->cell_n == GUARD_COVER_W) {
            uint8_t old = a->cells[a->cell_pos];
            if (--a->cell_count[old] == 0) a->cell_distinct--;
        } else {
            a->cell_n++;
        }
        a->cells[a->cell_pos] = (uint8_t)c;
        if (a->cell_count[c]++ == 0) a->cell_distinct++;
        a->cell_pos = (a->cell_pos + 1) % GUARD_COVER_W;
        a->n_cover += 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- signals */

/* squared distance from a mean feature to the nearest benign profile (the pooled benign mean
 * and single benign accounts' means) */
static double nearest_profile_d2(const guard_reference *ref, const double *m) {
    double best = 0;
    for (size_t j = 0; j < GUARD_RFF_M; j++) best += (m[j] - ref->mu[j]) * (m[j] - ref->mu[j]);
    for (size_t k = 0; k < ref->n_profiles; k++) {
        const float *p = ref->profiles + k * GUARD_RFF_M;
        double s = 0;
        for (size_t j = 0; j < GUARD_RFF_M && s < best; j++) s += (m[j] - p[j]) * (m[j] - p[j]);
        if (s < best) best = s;
    }
    return best;
}

/* Drift: the recent mean feature against the account's own history mean, unbiased as the shift
 * is (minus the noise of both means, trace x (varfactor recent + varfactor history): the two
 * overlap, so this overestimates the noise and errs towards 0). x1000, as the shift. */
static double drift_value(const guard_detector *d, const acct *a) {
    double d2 = 0;
    for (size_t j = 0; j < GUARD_RFF_M; j++) {
        double df = (double)a->mu_recent[j] - a->mu[j];
        d2 += df * df;
    }
    double null = d->ref->trace * (guard_ewm_var_factor(&a->emb_recent, d->p.drift_window) +
                                   guard_ewm_var_factor(&a->emb, d->p.shift_window));
    return 1000.0 * (d2 - null);
}

/* Switch: the account's recent requests against its own history on non-content features (pace,
 * saturation, token ratio, log-prob detail, new prompts, explicit max_tokens). Per feature, the
 * change towards harvesting (one-sided: slowing down, repeating a fixed suite or asking for less
 * is no evidence) over its noise, z = max(0, recent - history) / sqrt(var x (vf_recent +
 * vf_history)), var the history's variance (at least a floor: a feature constant so far has
 * some room to move), and the value is the sum of z^2 (about K/2 without a change; a switch in
 * one feature alone adds its z^2). Both means forget at fixed rates, so how soon a switch shows
 * does not depend on the warm-up's length. NaN before the history has one value of each. */
static double switch_value(const guard_detector *d, const acct *a) {
    static const double floor_var[GUARD_SW_K] = {0.25, 0.05, 0.05, 0.01, 0.05, 0.05};
    double sum = 0;
    for (int k = 0; k < GUARD_SW_K; k++) {
        const guard_ewm *r = &a->sw_recent[k], *h = &a->sw_hist[k];
        if (r->n < 1) return NAN;
        double var = fmax(a->sw_hist2[k].mean - h->mean * h->mean, floor_var[k]);
        double vf = guard_ewm_var_factor(r, d->p.drift_window) + guard_ewm_var_factor(h, d->p.shift_window);
        double diff = r->mean - h->mean;
        if (diff > 0) sum += diff * diff / (var * vf);
    }
    return sum;
}

typedef struct {
    double v[GUARD_SIG_COUNT];
    double cnt[GUARD_SIG_COUNT]; /* the count each signal's min_n is checked against */
    double shift_z;
    double n, n_ok, n_new, first_t, last_t;
} raw_values;

static double ew_weight(double n, double W) { return n < W ? n : W; }

static void raw_account(const guard_detector *d, const acct *a, double t, raw_values *r) {
    const guard_policy *p = &d->p;
    for (int i = 0; i < GUARD_SIG_COUNT; i++) r->v[i] = NAN;
    memset(r->cnt, 0, sizeof r->cnt);
    r->n = a->n;
    r->n_ok = a->n_ok;
    r->n_new = a->n_new;
    r->first_t = a->first_t;
    r->last_t = a->last_t;
    r->shift_z = NAN;
    double age = t - a->first_t;
    double rate = guard_decay_value(&a->rate, t, p->rate_tau) * 3600.0 / p->rate_tau;
    r->v[GUARD_SIG_RATE] = rate;
    r->v[GUARD_SIG_VOLUME] = guard_decay_value(&a->volume, t, p->volume_tau);
    r->cnt[GUARD_SIG_RATE] = r->cnt[GUARD_SIG_VOLUME] = a->n;
    if (age >= p->baseline_min_age) {
        double lr = guard_decay_value(&a->rate_long, t, p->baseline_tau) * 3600.0 / p->baseline_tau;
        r->v[GUARD_SIG_BASELINE] = log2((rate + GUARD_BASELINE_FLOOR) / (lr + GUARD_BASELINE_FLOOR));
        r->cnt[GUARD_SIG_BASELINE] = a->n;
    }
    r->v[GUARD_SIG_LIMIT] = a->limit.mean;
    r->v[GUARD_SIG_CONCURRENCY] = a->conc.mean;
    r->v[GUARD_SIG_LOGPROBS] = a->logprobs.mean;
    r->cnt[GUARD_SIG_LIMIT] = r->cnt[GUARD_SIG_CONCURRENCY] = r->cnt[GUARD_SIG_LOGPROBS] = a->n;
    if (a->n_gap >= 2) {
        double var = fmax(0, a->lgap2.mean - a->lgap.mean * a->lgap.mean);
        r->v[GUARD_SIG_REGULARITY] = 2.0 - sqrt(var);
        r->cnt[GUARD_SIG_REGULARITY] = a->n_gap;
    }
    if (age >= p->around_clock_min_age) {
        uint32_t hr = (uint32_t)(fmax(t, 0) / 3600.0);
        int active = 0;
        for (size_t h = 0; h < 24; h++) active += a->hours[h] != UINT32_MAX && hr - a->hours[h] < 24;
        r->v[GUARD_SIG_AROUND_CLOCK] = active;
        r->cnt[GUARD_SIG_AROUND_CLOCK] = a->n;
    }
    r->v[GUARD_SIG_LINKED] = 0;
    r->cnt[GUARD_SIG_LINKED] = 1;
    if (a->n_ok > 0) {
        r->v[GUARD_SIG_SATURATION] = a->sat.mean;
        r->v[GUARD_SIG_TOKEN_RATIO] = a->ratio.mean;
        r->cnt[GUARD_SIG_SATURATION] = r->cnt[GUARD_SIG_TOKEN_RATIO] = a->n_ok;
    }
    if (a->n_tmpl > 0) {
        r->v[GUARD_SIG_TEMPLATE] = a->tmpl.mean;
        r->cnt[GUARD_SIG_TEMPLATE] = a->n_tmpl;
    }
    if (a->cell_n > 0) {
        r->v[GUARD_SIG_COVERAGE] = (double)a->cell_distinct / (double)a->cell_n;
        r->cnt[GUARD_SIG_COVERAGE] = a->n_cover;
    }
    r->v[GUARD_SIG_HARVEST] = guard_decay_value(&a->value, t, p->budget_tau);
    r->cnt[GUARD_SIG_HARVEST] = a->n_ok;
    r->v[GUARD_SIG_SWITCH] = switch_value(d, a);
    r->cnt[GUARD_SIG_SWITCH] = a->n_ok;
    if (d->shift_ok && a->n_emb > 0) {
        double m[GUARD_RFF_M];
        for (size_t j = 0; j < GUARD_RFF_M; j++) m[j] = a->mu[j];
        double d2 = nearest_profile_d2(d->ref, m);
        double vf = guard_ewm_var_factor(&a->emb, p->shift_window);
        double null = d->ref->trace * vf;
        r->v[GUARD_SIG_SHIFT] = 1000.0 * (d2 - null);
        r->shift_z = null > 0 ? d2 / null : INFINITY;
        r->cnt[GUARD_SIG_SHIFT] = a->n_emb;
        r->v[GUARD_SIG_DRIFT] = drift_value(d, a);
        r->cnt[GUARD_SIG_DRIFT] = a->n_emb;
        double align;
        r->v[GUARD_SIG_COHORT] = cohort_value(d, a, t, &align);
        r->cnt[GUARD_SIG_COHORT] = d->coh_emb.n;
    }
}

/* pooled values of a group's members (indices) */
static void raw_group(const guard_detector *d, const uint32_t *mem, size_t n_mem, double t, raw_values *r) {
    const guard_policy *p = &d->p;
    const double W = p->window;
    for (int i = 0; i < GUARD_SIG_COUNT; i++) r->v[i] = NAN;
    memset(r->cnt, 0, sizeof r->cnt);
    r->shift_z = NAN;
    r->n = r->n_ok = r->n_new = 0;
    r->first_t = INFINITY;
    r->last_t = -INFINITY;
    double rate = 0, vol = 0, lr = 0, lr_w = 0, value = 0;
    double wl = 0, sl = 0, sc = 0, slp = 0, wok = 0, ssat = 0, srat = 0, wt = 0, stm = 0, wc = 0, scov = 0;
    double wreg = 0, sreg = 0, nreg = 0, ncov = 0, ntm = 0, nemb = 0, drift = NAN, ndrift = 0, cohort = NAN;
    double sw = NAN, nsw = 0; /* switch: a change is per account, the group's is its largest */
    double inv_vf_sum = 0;
    double mu[GUARD_RFF_M] = {0};
    uint32_t hour_active[24] = {0};
    int any_age_bl = 0, any_age_ac = 0;
    for (size_t k = 0; k < n_mem; k++) {
        const acct *a = d->acc[mem[k]];
        r->n += a->n;
        r->n_ok += a->n_ok;
        r->n_new += a->n_new;
        r->first_t = fmin(r->first_t, a->first_t);
        r->last_t = fmax(r->last_t, a->last_t);
        rate += guard_decay_value(&a->rate, t, p->rate_tau) * 3600.0 / p->rate_tau;
        vol += guard_decay_value(&a->volume, t, p->volume_tau);
        value += guard_decay_value(&a->value, t, p->budget_tau); /* a swarm's harvest is its members' sum */
        if (t - a->first_t >= p->baseline_min_age) any_age_bl = 1;
        lr += guard_decay_value(&a->rate_long, t, p->baseline_tau) * 3600.0 / p->baseline_tau;
        lr_w += 1;
        double w = ew_weight(a->n, W);
        wl += w;
        sl += w * a->limit.mean;
        sc += w * a->conc.mean;
        slp += w * a->logprobs.mean;
        if (a->n_ok > 0) {
            double wo = ew_weight(a->n_ok, W);
            wok += wo;
            ssat += wo * a->sat.mean;
            srat += wo * a->ratio.mean;
        }
        if (a->n_gap >= 2) {
            double var = fmax(0, a->lgap2.mean - a->lgap.mean * a->lgap.mean);
            double wg = ew_weight(a->n_gap, W);
            wreg += wg;
            sreg += wg * (2.0 - sqrt(var));
            nreg += a->n_gap;
        }
        if (a->n_tmpl > 0) {
            double wtm = ew_weight(a->n_tmpl, W);
            wt += wtm;
            stm += wtm * a->tmpl.mean;
            ntm += a->n_tmpl;
        }
        if (a->cell_n > 0) {
            wc += a->cell_n;
            scov += (double)a->cell_distinct;
            ncov += a->n_cover;
        }
        if (t - a->first_t >= p->around_clock_min_age) any_age_ac = 1;
        uint32_t hr = (uint32_t)(fmax(t, 0) / 3600.0);
        for (size_t h = 0; h < 24; h++)
            if (a->hours[h] != UINT32_MAX && hr - a->hours[h] < 24) hour_active[h] = 1;
        if (d->shift_ok && a->n_emb > 0) {
            double iv = 1.0 / guard_ewm_var_factor(&a->emb, p->shift_window);
            inv_vf_sum += iv;
            for (size_t j = 0; j < GUARD_RFF_M; j++) mu[j] += iv * a->mu[j];
            nemb += a->n_emb;
            double dv = drift_value(d, a); /* a change is per account: the group's is its largest */
            if (a->n_emb >= p->sig[GUARD_SIG_DRIFT].min_n && !(dv <= drift)) {
                drift = dv;
                ndrift = a->n_emb;
            }
            double align, cv = cohort_value(d, a, t, &align); /* the group's: its most aligned member's */
            if (isfinite(cv) && !(cv <= cohort)) cohort = cv;
        }
    }
    r->v[GUARD_SIG_RATE] = rate;
    r->v[GUARD_SIG_VOLUME] = vol;
    r->cnt[GUARD_SIG_RATE] = r->cnt[GUARD_SIG_VOLUME] = r->n;
    if (any_age_bl && lr_w > 0) {
        r->v[GUARD_SIG_BASELINE] = log2((rate + GUARD_BASELINE_FLOOR) / (lr + GUARD_BASELINE_FLOOR));
        r->cnt[GUARD_SIG_BASELINE] = r->n;
    }
    if (wl > 0) {
        r->v[GUARD_SIG_LIMIT] = sl / wl;
        r->v[GUARD_SIG_CONCURRENCY] = sc / wl;
        r->v[GUARD_SIG_LOGPROBS] = slp / wl;
        r->cnt[GUARD_SIG_LIMIT] = r->cnt[GUARD_SIG_CONCURRENCY] = r->cnt[GUARD_SIG_LOGPROBS] = r->n;
    }
    if (wreg > 0) {
        r->v[GUARD_SIG_REGULARITY] = sreg / wreg;
        r->cnt[GUARD_SIG_REGULARITY] = nreg;
    }
    if (any_age_ac) {
        int active = 0;
        for (size_t h = 0; h < 24; h++) active += (int)hour_active[h];
        r->v[GUARD_SIG_AROUND_CLOCK] = active;
        r->cnt[GUARD_SIG_AROUND_CLOCK] = r->n;
    }
    r->v[GUARD_SIG_LINKED] = (double)n_mem - 1;
    r->cnt[GUARD_SIG_LINKED] = 1;
    r->v[GUARD_SIG_HARVEST] = value;
    r->cnt[GUARD_SIG_HARVEST] = r->n_ok;
    for (size_t k = 0; k < n_mem; k++) {
        const acct *a = d->acc[mem[k]];
        double sv = switch_value(d, a);
        if (a->n_ok >= p->sig[GUARD_SIG_SWITCH].min_n && isfinite(sv) && !(sv <= sw)) sw = sv, nsw = a->n_ok;
    }
    r->v[GUARD_SIG_SWITCH] = sw;
    r->cnt[GUARD_SIG_SWITCH] = nsw;
    r->v[GUARD_SIG_DRIFT] = drift;
    r->cnt[GUARD_SIG_DRIFT] = ndrift;
    r->v[GUARD_SIG_COHORT] = cohort;
    r->cnt[GUARD_SIG_COHORT] = d->coh_emb.n;
    if (wok > 0) {
        r->v[GUARD_SIG_SATURATION] = ssat / wok;
        r->v[GUARD_SIG_TOKEN_RATIO] = srat / wok;
        r->cnt[GUARD_SIG_SATURATION] = r->cnt[GUARD_SIG_TOKEN_RATIO] = r->n_ok;
    }
    if (wt > 0) {
        r->v[GUARD_SIG_TEMPLATE] = stm / wt;
        r->cnt[GUARD_SIG_TEMPLATE] = ntm;
    }
    if (wc > 0) {
        r->v[GUARD_SIG_COVERAGE] = scov / wc;
        r->cnt[GUARD_SIG_COVERAGE] = ncov;
    }
    if (inv_vf_sum > 0) {
        for (size_t j = 0; j < GUARD_RFF_M; j++) mu[j] /= inv_vf_sum;
        double d2 = nearest_profile_d2(d->ref, mu);
        double null = d->ref->trace / inv_vf_sum;
        r->v[GUARD_SIG_SHIFT] = 1000.0 * (d2 - null);
        r->shift_z = null > 0 ? d2 / null : INFINITY;
        r->cnt[GUARD_SIG_SHIFT] = nemb;
    }
}

static double ramp(double v, double benign, double attack) {
    if (!isfinite(v)) return 0;
    double s = (v - benign) / (attack - benign); /* works reversed too (attack < benign) */
    return s <= 0 ? 0 : s >= 1 ? 1 : s;
}

static void assess(const guard_detector *d, const raw_values *r, guard_assessment *out) {
    const guard_policy *p = &d->p;
    memset(out, 0, sizeof *out);
    double beh = 0, rest = 0;
    for (int i = 0; i < GUARD_SIG_COUNT; i++) {
        const guard_signal_policy *sp = &p->sig[i];
        out->value[i] = r->v[i];
        out->count[i] = r->cnt[i];
        double s = 0;
        if (isfinite(r->v[i]) && r->cnt[i] >= sp->min_n) {
            s = ramp(r->v[i], sp->benign, sp->attack);
            /* far beyond anything benign: api and content evidence may count up to 1 + overshoot */
            if (s >= 1 && p->content_overshoot > 0 && guard_signal_family((guard_signal)i) != GUARD_FAMILY_BEHAVIOUR &&
                sp->attack > 0 && r->v[i] > sp->attack)
                s = 1 + p->content_overshoot * fmin(1.0, log(r->v[i] / sp->attack) / log(4.0));
        }
        if (i == GUARD_SIG_SHIFT && d->ref && !(r->shift_z >= d->ref->z_crit)) s = 0; /* not significant yet */
        out->score[i] = s;
        if (guard_signal_family((guard_signal)i) == GUARD_FAMILY_BUDGET) continue; /* compared with the budgets */
        out->contrib[i] = sp->weight * s;
        if (guard_signal_family((guard_signal)i) == GUARD_FAMILY_BEHAVIOUR) {
            beh += out->contrib[i];
        } else {
            /* no single api or content signal suspends alone: each is capped below suspend_at */
            if (p->signal_cap > 0 && out->contrib[i] > p->signal_cap) out->contrib[i] = p->signal_cap;
            rest += out->contrib[i];
        }
    }
    out->risk = fmin(beh, p->behaviour_cap) + rest;
    out->shift_z = r->shift_z;
    out->n = r->n;
    out->n_ok = r->n_ok;
    out->n_new = r->n_new;
    out->first_t = r->first_t;
    out->last_t = r->last_t;
}

/* Sustained extreme volume: the rate (answers per hour) at extreme_rate times its attack level
 * and the day's volume at its attack level. Behaviour alone never suspends (behaviour_cap),
 * but this much is throttled whatever the content looks like. */
static int extreme_volume(const guard_policy *p, const guard_assessment *a) {
    const guard_signal_policy *r = &p->sig[GUARD_SIG_RATE], *v = &p->sig[GUARD_SIG_VOLUME];
    return p->extreme_rate > 0 && isfinite(a->value[GUARD_SIG_RATE]) && isfinite(a->value[GUARD_SIG_VOLUME]) &&
           a->value[GUARD_SIG_RATE] >= p->extreme_rate * r->attack && a->value[GUARD_SIG_VOLUME] >= v->attack;
}

/* The level the harvest budget asks for under tier tr (no minimum of answers: the budget is a
 * bound, whatever the evidence); noted in the assessment for the evidence and reason code. */
static guard_action budget_level(const guard_policy *p, const guard_tier *tr, guard_assessment *a) {
    double v = a->value[GUARD_SIG_HARVEST], x = tr->budget_x;
    guard_action lv = !isfinite(v)                       ? GUARD_ACT_NONE
                      : v >= p->budget_suspend * x       ? GUARD_ACT_SUSPEND
                      : v >= p->budget_throttle * x      ? GUARD_ACT_THROTTLE
                      : v >= p->budget_flag * x          ? GUARD_ACT_FLAG
                                                         : GUARD_ACT_NONE;
    a->by_budget = lv;
    a->budget_suspend = p->budget_suspend * x;
    return lv;
}

/* The level an assessment asks for under tier tr: risk against the thresholds (times the tier's
 * risk_x), sustained extreme volume, and the harvest budget; an exempt tier stops at flag. */
static guard_action level_for(const guard_policy *p, const guard_tier *tr, guard_assessment *a) {
    double risk = a->risk, n_ok = a->n_ok, x = tr->risk_x;
    guard_action lv = GUARD_ACT_NONE;
    if (risk >= p->suspend_at * x && n_ok >= p->min_requests_act) lv = GUARD_ACT_SUSPEND;
    else if ((risk >= p->throttle_at * x || extreme_volume(p, a)) && n_ok >= p->min_requests_act) lv = GUARD_ACT_THROTTLE;
    else if (risk >= p->flag_at * x && n_ok >= p->min_requests_act / 2) lv = GUARD_ACT_FLAG;
    guard_action b = budget_level(p, tr, a);
    if (b > lv) lv = b;
    if (tr->exempt && lv > GUARD_ACT_FLAG) lv = GUARD_ACT_FLAG;
    return lv;
}

static const guard_tier *tier_of(const guard_detector *d, const acct *a) {
    return &d->p.tiers[a->tier < d->p.n_tiers ? a->tier : 0];
}

/* ---------------------------------------------------------------- the population budget */

/* A member of the population: first seen less than cohort_age_s ago, at most cohort_max_answers
 * served, in a tier neither exempt nor with scaled-up budgets and never released (an operator
 * vouched for those). */
static int in_population(const guard_detector *d, const acct *a, double t) {
    const guard_tier *tr = tier_of(d, a);
    return !a->vouched && !tr->exempt && tr->budget_x <= 1 && t - a->first_t < d->p.cohort_age_s && a->n_ok <= d->p.cohort_max_answers;
}

static double population_value(const guard_detector *d, double t) {
    return guard_decay_value(&d->pop_value, t, d->p.pop_tau);
}

/* The level the population budget asks for member a, whose own harvest value is own: the
 * population's level (its value against the budgets), for the members that took the most —
 * flag, throttle and verification above pop_member_low, suspension above pop_member_high (below
 * it, a member under suspension pressure is asked to verify). A throttle alone does not bound
 * keys that ask at a human pace; verification does: a member is refused from the answer that
 * took it over pop_member_low while the population is over pop_verify (docs/guard.md).
 * None without budgets or for a non-member. */
static guard_action population_level(const guard_detector *d, const acct *a, double t, double own) {
    const guard_policy *p = &d->p;
    if (!(p->pop_flag > 0) || !in_population(d, a, t) || !(own >= p->pop_member_low)) return GUARD_ACT_NONE;
    double v = population_value(d, t);
    double verify = p->pop_verify > 0 ? p->pop_verify : p->pop_throttle;
    guard_action lv = v >= p->pop_suspend    ? GUARD_ACT_SUSPEND
                      : v >= verify          ? GUARD_ACT_VERIFY
                      : v >= p->pop_throttle ? GUARD_ACT_THROTTLE
                      : v >= p->pop_flag     ? GUARD_ACT_FLAG
                                             : GUARD_ACT_NONE;
    if (lv == GUARD_ACT_SUSPEND && !(own >= p->pop_member_high)) lv = GUARD_ACT_VERIFY;
    return lv;
}

/* The population hold: while the population's sum is at pop_hold, its members that took a typical
 * benign new user's value (pop_member_low) or more wait; at pop_hold_all every member does. A
 * member is never served while the sum is at pop_hold_all, so the sum stays under it plus the
 * answers admitted before it got there (docs/guard.md "Population budget"). */
int guard_detector_population_hold(const guard_detector *d, int64_t account_id, double t, double *retry_s) {
    const guard_policy *p = &d->p;
    *retry_s = 0;
    if (!(p->pop_hold > 0) && !(p->pop_hold_all > 0)) return 0;
    double own = 0;
    long li = acct_find(d, account_id);
    if (li >= 0) {
        const acct *a = d->acc[li];
        if (!in_population(d, a, t)) return 0;
        own = guard_decay_value(&a->value, t, p->budget_tau);
    } /* an account not seen yet is new, with nothing served: a member */
    double hold = p->pop_hold_all;
    if (p->pop_hold > 0 && own >= p->pop_member_low && (!(hold > 0) || p->pop_hold < hold)) hold = p->pop_hold;
    if (!(hold > 0)) return 0;
    double v = population_value(d, t);
    if (!(v >= hold)) return 0;
    *retry_s = fmax(1.0, p->pop_tau * log(v / hold));
    return 1;
}

/* members of i's group (at most cap), i first */
static size_t group_members(const guard_detector *d, uint32_t i, uint32_t *mem, size_t cap) {
    size_t n = 0;
    uint32_t k = i;
    do {
        mem[n++] = k;
        k = d->acc[k]->next;
    } while (k != i && n < cap);
    return n;
}

/* ---------------------------------------------------------------- observe */

int guard_detector_observe(guard_detector *d, const guard_event *ev, guard_verdict *out) {
    memset(out, 0, sizeof *out);
    long li = acct_get(d, ev->account_id, ev->account_created_at, ev->t);
    if (li < 0) return -1;
    uint32_t i = (uint32_t)li;
    acct *a = d->acc[i];
    if (a->created_at <= 0 && ev->account_created_at > 0) a->created_at = ev->account_created_at;
    if (update_stats(d, a, ev, &out->concurrent)) return -1;
    out->population_member = in_population(d, a, ev->t);
    if (out->population_member && a->last_value > 0) guard_decay_add(&d->pop_value, ev->t, a->last_value, d->p.pop_tau);
    out->population_value = population_value(d, ev->t);
    /* linking */
    uint32_t touched[GUARD_PARTNERS * 2];
    size_t n_touched = 0;
    if (note_creation(d, i, touched, &n_touched, RT_ARRAY_LEN(touched)) ||
        note_shared(d, 0, i, ev->client_hash, touched, &n_touched, RT_ARRAY_LEN(touched)) ||
        note_shared(d, 1, i, ev->client_fp, touched, &n_touched, RT_ARRAY_LEN(touched)))
        return -1;
    if (ev->status == 200 && (ev->has_minhash || ev->prefix_hash) &&
        note_template(d, i, ev, touched, &n_touched, RT_ARRAY_LEN(touched)))
        return -1;
    if (ev->status == 200 && note_cohort(d, i, ev->t, touched, &n_touched, RT_ARRAY_LEN(touched))) return -1;
    /* re-check two remembered candidates each event (timing evidence grows over time) */
    for (int k = 0; k < 2 && a->n_partners > 0; k++) {
        if (n_touched < RT_ARRAY_LEN(touched)) touched[n_touched++] = a->partners[a->partner_rr % a->n_partners];
        a->partner_rr++;
    }
    guard_action group_level_before = GUARD_ACT_NONE;
    for (size_t k = 0; k < n_touched; k++) try_link(d, i, touched[k], ev->t);
    /* assess */
    uint32_t *mem = d->mem;
    size_t n_mem = group_members(d, i, mem, GUARD_MAX_AFFECTED);
    raw_values rv;
    raw_account(d, a, ev->t, &rv);
    assess(d, &rv, &out->account);
    if (n_mem > 1) {
        raw_group(d, mem, n_mem, ev->t, &rv);
        assess(d, &rv, &out->group);
    } else {
        out->group = out->account;
    }
    out->account_id = a->id;
    out->group_id = d->acc[uf_find(d, i)]->id;
    out->group_size = n_mem;
    out->risk = fmax(out->account.risk, out->group.risk);
    const guard_tier *tr = tier_of(d, a);
    guard_action target = level_for(&d->p, tr, &out->account);
    guard_action gt = level_for(&d->p, tr, &out->group);
    if (gt > target) target = gt;
    /* the population budget acts on this member alone: a group shares the levels its evidence
     * reached, not a throttle that the population's total put on one member */
    guard_action pop = population_level(d, a, ev->t, out->account.value[GUARD_SIG_HARVEST]);
    out->account.by_population = pop;
    if (n_mem == 1) out->group.by_population = pop;
    for (size_t k = 0; k < n_mem; k++) {
        const acct *m = d->acc[mem[k]];
        if (!m->by_pop && m->level > group_level_before) group_level_before = m->level;
    }
    if (group_level_before > target) target = group_level_before; /* a group acts as one */
    if (pop > target && a->level < pop) {
        out->new_level = pop;
        a->level = pop;
        a->by_pop = 1;
        out->affected[out->n_affected++] = a->id;
        out->escalated = 1;
        out->level = a->level;
        return 0;
    }
    out->new_level = target;
    for (size_t k = 0; k < n_mem; k++) {
        acct *m = d->acc[mem[k]];
        guard_action mt = target;
        if (tier_of(d, m)->exempt && mt > GUARD_ACT_FLAG) mt = GUARD_ACT_FLAG; /* allow-listed, even in a group */
        if (m->level < mt) {
            m->level = mt;
            m->by_pop = 0;
            if (out->n_affected < GUARD_MAX_AFFECTED) out->affected[out->n_affected++] = m->id;
            if (m == a) out->escalated = 1;
        }
    }
    out->level = a->level;
    return 0;
}

void guard_detector_release(guard_detector *d, int64_t account_id) {
    long li = acct_find(d, account_id);
    if (li < 0) return;
    uint32_t i = (uint32_t)li;
    acct *a = d->acc[i];
    /* leave the group: unlink from the member circle, re-root the others */
    if (a->next != i) {
        uint32_t pred = i;
        while (d->acc[pred]->next != i) pred = d->acc[pred]->next;
        d->acc[pred]->next = a->next;
        a->next = i;
        size_t n = group_members(d, pred, d->mem, GUARD_MAX_AFFECTED);
        for (size_t k = 0; k < n; k++) {
            d->acc[d->mem[k]]->parent = pred;
            d->acc[d->mem[k]]->size = 1;
        }
        d->acc[pred]->size = (uint32_t)n;
    }
    /* the operator vouched for this account: its pairs never link again */
    for (size_t k = 0; k < a->n_partners; k++) {
        pair_ev *pe = pair_lookup(d, i, a->partners[k], 0);
        if (pe) {
            pe->linked = 0;
            pe->veto = 1;
        }
    }
    /* fresh statistics; identity, sign-up time, address and candidates stay */
    acct keep = *a;
    memset(a, 0, sizeof *a);
    a->id = keep.id;
    a->tier = keep.tier;
    a->vouched = 1;
    a->created_at = keep.created_at;
    a->burst_checked = 1;
    a->last_client = keep.last_client;
    a->last_fp = keep.last_fp;
    memcpy(a->seen, keep.seen, sizeof a->seen); /* a rerun of the same prompts stays old news */
    memcpy(a->partners, keep.partners, sizeof a->partners);
    a->n_partners = keep.n_partners;
    a->parent = a->next = i;
    a->size = 1;
    for (size_t h = 0; h < 24; h++) a->hours[h] = UINT32_MAX;
    for (size_t b = 0; b < GUARD_BINS; b++) a->bins[b] = UINT32_MAX;
}

void guard_detector_reset_levels(guard_detector *d) {
    for (size_t i = 0; i < d->n_acc; i++) d->acc[i]->level = GUARD_ACT_NONE;
}

int guard_detector_set_level(guard_detector *d, int64_t account_id, guard_action level) {
    long li = acct_get(d, account_id, 0, 0);
    if (li < 0) return -1;
    d->acc[li]->level = level;
    return 0;
}

int guard_detector_set_tier(guard_detector *d, int64_t account_id, size_t tier) {
    long li = acct_get(d, account_id, 0, 0);
    if (li < 0) return -1;
    d->acc[li]->tier = (uint8_t)(tier < d->p.n_tiers ? tier : 0);
    return 0;
}

size_t guard_detector_tier(const guard_detector *d, int64_t account_id) {
    long i = acct_find(d, account_id);
    return i < 0 ? 0 : d->acc[i]->tier;
}

guard_action guard_detector_level(const guard_detector *d, int64_t account_id) {
    long i = acct_find(d, account_id);
    return i < 0 ? GUARD_ACT_NONE : d->acc[i]->level;
}

int guard_detector_group(const guard_detector *d, int64_t account_id, int64_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    long li = acct_find(d, account_id);
    if (li < 0) return RT_FAIL("guard: no state for account %lld", (long long)account_id);
    uint32_t *mem = rt_malloc_array(GUARD_MAX_AFFECTED, sizeof *mem, "group members");
    if (!mem) return -1;
    size_t k = group_members(d, (uint32_t)li, mem, GUARD_MAX_AFFECTED);
    int64_t *ids = rt_malloc_array(k, sizeof *ids, "group members");
    if (ids)
        for (size_t j = 0; j < k; j++) ids[j] = d->acc[mem[j]]->id;
    free(mem);
    if (!ids) return -1;
    *out = ids;
    *n = k;
    return 0;
}

/* ---------------------------------------------------------------- explanation */

void guard_reason_code(const guard_assessment *a, int grouped, char *out, size_t cap) {
    /* the two largest non-behaviour contributions, then the largest behaviour one */
    static const char *const code[GUARD_SIG_COUNT] = {
        [GUARD_SIG_RATE] = "RATE",        [GUARD_SIG_VOLUME] = "VOLUME",   [GUARD_SIG_BASELINE] = "BASELINE",
        [GUARD_SIG_LIMIT] = "LIMITS",     [GUARD_SIG_CONCURRENCY] = "CONC", [GUARD_SIG_REGULARITY] = "TIMING",
        [GUARD_SIG_AROUND_CLOCK] = "24H", [GUARD_SIG_LINKED] = "LINKED",   [GUARD_SIG_LOGPROBS] = "LOGPROBS",
        [GUARD_SIG_SATURATION] = "SAT",   [GUARD_SIG_TOKEN_RATIO] = "RATIO", [GUARD_SIG_SHIFT] = "SHIFT",
        [GUARD_SIG_TEMPLATE] = "TEMPLATE", [GUARD_SIG_COVERAGE] = "COVER", [GUARD_SIG_DRIFT] = "DRIFT",
        [GUARD_SIG_HARVEST] = "BUDGET", [GUARD_SIG_COHORT] = "COHORT", [GUARD_SIG_SWITCH] = "SWITCH",
    };
    int best[2] = {-1, -1}, bb = -1;
    for (int i = 0; i < GUARD_SIG_COUNT; i++) {
        if (a->contrib[i] <= 0) continue;
        if (guard_signal_family((guard_signal)i) == GUARD_FAMILY_BEHAVIOUR) {
            if (bb < 0 || a->contrib[i] > a->contrib[bb]) bb = i;
        } else if (best[0] < 0 || a->contrib[i] > a->contrib[best[0]]) {
            best[1] = best[0];
            best[0] = i;
        } else if (best[1] < 0 || a->contrib[i] > a->contrib[best[1]]) {
            best[1] = i;
        }
    }
    size_t o = (size_t)snprintf(out, cap, "G-%s", grouped ? "SYBIL" : "");
    int first = !grouped;
    if (a->by_budget >= GUARD_ACT_FLAG && o < cap) { /* the harvest budget was reached */
        o += (size_t)snprintf(out + o, cap - o, "%sBUDGET", first ? "" : "+");
        first = 0;
    }
    if (a->by_population >= GUARD_ACT_FLAG && o < cap) { /* the population's budget was reached */
        o += (size_t)snprintf(out + o, cap - o, "%sPOPULATION", first ? "" : "+");
        first = 0;
    }
    for (int k = 0; k < 2; k++)
        if (best[k] >= 0 && o < cap) {
            o += (size_t)snprintf(out + o, cap - o, "%s%s", first ? "" : "+", code[best[k]]);
            first = 0;
        }
    if (bb >= 0 && o < cap) o += (size_t)snprintf(out + o, cap - o, "%s%s", first ? "" : "+", code[bb]);
    if (first && o < cap) snprintf(out + o, cap - o, "RISK");
}

static json_t *json_num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *assessment_json(const guard_detector *d, const guard_assessment *a) {
    double shift_z = a->shift_z;
    json_t *sig = json_object();
    for (int i = 0; i < GUARD_SIG_COUNT; i++) {
        const guard_signal_policy *sp = &d->p.sig[i];
        json_t *o = json_pack("{s:o, s:f, s:f, s:f, s:f, s:s}", "value", json_num(a->value[i]), "score", a->score[i],
                              "contribution", a->contrib[i], "benign", sp->benign, "attack", sp->attack, "family",
                              guard_signal_family((guard_signal)i) == GUARD_FAMILY_BEHAVIOUR ? "behaviour"
                              : guard_signal_family((guard_signal)i) == GUARD_FAMILY_API   ? "api"
                              : guard_signal_family((guard_signal)i) == GUARD_FAMILY_BUDGET ? "budget"
                                                                                            : "content");
        if (i == GUARD_SIG_SHIFT && isfinite(shift_z)) json_object_set_new(o, "z", json_real(shift_z));
        json_object_set_new(o, "n", json_real(a->count[i]));
        json_object_set_new(sig, guard_signal_name((guard_signal)i), o);
    }
    return json_pack("{s:f, s:f, s:f, s:f, s:o, s:o, s:o}", "risk", a->risk, "requests", a->n, "served", a->n_ok,
                     "new_prompts", a->n_new, "from",
                     json_num(a->first_t), "to", json_num(a->last_t), "signals", sig);
}

char *guard_detector_evidence(guard_detector *d, int64_t account_id) {
    long li = acct_find(d, account_id);
    if (li < 0) {
        RT_FAIL("guard: no state for account %lld", (long long)account_id);
        return NULL;
    }
    uint32_t i = (uint32_t)li;
    acct *a = d->acc[i];
    double t = a->last_t;
    raw_values rv;
    guard_assessment as, gs;
    raw_account(d, a, t, &rv);
    assess(d, &rv, &as);
    uint32_t *mem = rt_malloc_array(GUARD_MAX_AFFECTED, sizeof *mem, "group");
    if (!mem) return NULL;
    size_t n_mem = group_members(d, i, mem, GUARD_MAX_AFFECTED);
    if (n_mem > 1) {
        raw_group(d, mem, n_mem, t, &rv);
        assess(d, &rv, &gs);
    } else {
        gs = as;
    }
    const guard_tier *tr = tier_of(d, a);
    budget_level(&d->p, tr, &as);
    budget_level(&d->p, tr, &gs);
    as.by_population = population_level(d, a, t, as.value[GUARD_SIG_HARVEST]);
    if (n_mem == 1) gs.by_population = as.by_population;
    json_t *members = json_array();
    for (size_t k = 0; k < n_mem; k++) json_array_append_new(members, json_integer(d->acc[mem[k]]->id));
    json_t *linked = json_array();
    for (size_t k = 0; k < a->n_partners; k++) {
        uint32_t o = a->partners[k];
        pair_ev *pe = pair_lookup(d, i, o, 0);
        if (!pe) continue;
        link_eval e = pair_eval(d, pe, i, o, t, 1);
        if (e.score <= 0) continue;
        json_array_append_new(linked, json_pack("{s:I, s:b, s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "account",
                                                (json_int_t)d->acc[o]->id, "linked", pe->linked, "score", e.score,
                                                "kinds", e.kinds, "ip", e.ip, "burst", e.burst, "template", e.tmpl,
                                                "timing", e.timing, "fingerprint", e.fp, "cohort", e.cohort));
    }
    free(mem);
    char code[64];
    guard_reason_code(n_mem > 1 && gs.risk > as.risk ? &gs : &as, n_mem > 1 && gs.risk > as.risk, code, sizeof code);
    json_t *root = json_pack(
        "{s:I, s:f, s:s, s:s, s:o, s:{s:I, s:I, s:o, s:o}, s:{s:f, s:f, s:f, s:f, s:f}, s:o}", "account",
        (json_int_t)a->id, "risk", fmax(as.risk, gs.risk), "level", guard_action_name(a->level), "code", code,
        "account_assessment", assessment_json(d, &as), "group", "id", (json_int_t)d->acc[uf_find(d, i)]->id,
        "size", (json_int_t)n_mem, "members", members, "assessment", assessment_json(d, &gs), "window",
        "requests", d->p.window, "shift", d->p.shift_window, "rate_tau_s", d->p.rate_tau, "volume_tau_s",
        d->p.volume_tau, "template_recent", (double)d->p.template_recent, "linked", linked);
    if (root) {
        /* the tier that applied and the harvest budget against what was served (tier applied) */
        json_object_set_new(root, "tier",
                            json_pack("{s:s, s:f, s:f, s:b}", "name", tr->name, "risk_x", tr->risk_x, "budget_x",
                                      tr->budget_x, "exempt", tr->exempt));
        /* the population this account was judged in: the cohort and its aligned members */
        double align = 0, cv = cohort_value(d, a, t, &align), cd2 = d->coh_d2;
        double cnull = d->shift_ok ? d->ref->trace * guard_ewm_var_factor(&d->coh_emb, d->p.cohort_window) : 0;
        json_t *cm = json_array();
        for (uint32_t k = 0; k < d->coh_n; k++) json_array_append_new(cm, json_integer(d->acc[d->coh_ring[k]]->id));
        json_object_set_new(root, "cohort",
                            json_pack("{s:f, s:o, s:o, s:b, s:o, s:f, s:o}", "embeddings", d->coh_emb.n, "shift",
                                      json_num(d->shift_ok ? 1000.0 * (cd2 - cnull) : NAN), "z",
                                      json_num(cnull > 0 ? cd2 / cnull : NAN), "member",
                                      in_cohort(&d->p, a, t), "value", json_num(cv), "alignment", align,
                                      "aligned_members", cm));
        /* the population budget: the newly active low-volume accounts' value against its budgets */
        double pv = population_value(d, t), own = as.value[GUARD_SIG_HARVEST];
        json_object_set_new(root, "population",
                            json_pack("{s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:f, s:f, s:s}", "member",
                                      in_population(d, a, t), "value", pv, "tau_s", d->p.pop_tau, "flag", d->p.pop_flag,
                                      "throttle", d->p.pop_throttle, "verify", d->p.pop_verify, "suspend",
                                      d->p.pop_suspend, "hold", d->p.pop_hold, "hold_all", d->p.pop_hold_all, "member_value",
                                      json_num(own), "member_low", d->p.pop_member_low, "member_high",
                                      d->p.pop_member_high, "level",
                                      guard_action_name(population_level(d, a, t, own))));
        json_object_set_new(root, "budget",
                            json_pack("{s:o, s:o, s:f, s:f, s:f, s:f, s:s}", "account_value",
                                      json_num(as.value[GUARD_SIG_HARVEST]), "group_value",
                                      json_num(gs.value[GUARD_SIG_HARVEST]), "flag", d->p.budget_flag * tr->budget_x,
                                      "throttle", d->p.budget_throttle * tr->budget_x, "suspend",
                                      d->p.budget_suspend * tr->budget_x, "tau_s", d->p.budget_tau, "level",
                                      guard_action_name(RT_MAX(as.by_budget, gs.by_budget))));
    }
    char *s = root ? rt_json_reals(json_dumps(root, JSON_COMPACT)) : NULL;
    json_decref(root);
    if (!s) RT_FAIL("out of memory writing evidence");
    return s;
}
