/*
 * reference.c — what the guard learns from BENIGN traffic only, and how: guard_reference_fit
 * takes stored events (src/defend's `retort guard calibrate` reads them from a run whose
 * accounts are benign, or labelled benign by the simulator) and splits the accounts in two
 * halves by a keyed hash:
 *   half A  the embedding reference: the RBF bandwidth by the median heuristic over random
 *           pairs, random Fourier features, the benign mean feature mu and trace E|phi-mu|^2;
 *   half B  the levels: every B account is replayed through the detector and the per-account
 *           maximum of each signal is taken (the detector acts at any point of a stream, so
 *           the maximum is what decides a false positive); a signal's benign level is the
 *           `quantile` of those maxima. PRADA's delta is the (1 - quantile) quantile of the
 *           B accounts' minimum W. The shift's significance floor z_crit is the 99th
 *           percentile of iid resamples of B's embeddings against A's mean.
 * MinHash LSH bands and three-word prefixes of every benign prompt become the stoplist of
 * cross-account template links (common phrasings are not a shared template).
 *
 * The reference file is JSON: readable, diffable, and it names what it was calibrated on.
 * Pure: no database (src/defend reads the events). Not the detector; it only produces and
 * loads numbers the detector reads.
 */
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"

void guard_reference_init(guard_reference *r) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < GUARD_SIG_COUNT; i++) r->levels[i] = NAN;
    r->pop_level = r->pop_member_typical = r->pop_member_high = NAN;
}

void guard_reference_free(guard_reference *r) {
    guard_rff_free(&r->rff);
    free(r->mu);
    free(r->profiles);
    free(r->stop_bands);
    guard_reference_init(r);
}

/* ---------------------------------------------------------------- coverage */

static const char *const cov_names[GUARD_COV_COUNT] = {"chat", "completions", "logprobs", "no_max_tokens", "n_gt_1"};
static const char *const pop_names[GUARD_POP_COUNT] = {"light", "medium", "heavy"};

const char *guard_coverage_name(guard_coverage_kind k) { return (unsigned)k < GUARD_COV_COUNT ? cov_names[k] : "?"; }
const char *guard_population_name(guard_population p) { return (unsigned)p < GUARD_POP_COUNT ? pop_names[p] : "?"; }

unsigned guard_event_coverage(const guard_event *ev) {
    unsigned b = 0;
    if (ev->endpoint == 1) b |= 1u << GUARD_COV_CHAT;
    if (ev->endpoint == 2) b |= 1u << GUARD_COV_COMPLETIONS;
    if (ev->logprobs) b |= 1u << GUARD_COV_LOGPROBS;
    if (!ev->max_tokens_given) b |= 1u << GUARD_COV_NO_MAX_TOKENS;
    if (ev->n_choices > 1) b |= 1u << GUARD_COV_MULTI;
    return b;
}

unsigned guard_reference_uncovered(const guard_reference *r, const guard_event *ev) {
    if (!r || !r->has_coverage) return 0;
    unsigned b = guard_event_coverage(ev), u = 0;
    for (int k = 0; k < GUARD_COV_COUNT; k++)
        if ((b >> k & 1u) && r->cov_events[k] < GUARD_COVERAGE_MIN) u |= 1u << k;
    return u;
}

void guard_reference_coverage_print(const guard_reference *r, FILE *f) {
    if (!r->has_coverage) {
        fprintf(f, "coverage: not recorded (a reference from before coverage; recalibrate to have it)\n");
        return;
    }
    fprintf(f, "coverage (benign events of each kind; fewer than %d: the levels may not hold there):\n",
            GUARD_COVERAGE_MIN);
    for (int k = 0; k < GUARD_COV_COUNT; k++)
        fprintf(f, "  %-15s %.0f%s\n", cov_names[k], r->cov_events[k],
                r->cov_events[k] < GUARD_COVERAGE_MIN ? "  NOT COVERED" : "");
    fprintf(f, "populations (benign accounts by answers per active day: light < 50, medium < 500, heavy):\n");
    for (int p = 0; p < GUARD_POP_COUNT; p++)
        fprintf(f, "  %-15s %.0f%s\n", pop_names[p], r->cov_accounts[p], r->cov_accounts[p] < 1 ? "  NOT COVERED" : "");
}

/* signals whose values are shares in [0, 1] */
static int signal_is_share(int s) {
    return s == GUARD_SIG_LIMIT || s == GUARD_SIG_CONCURRENCY || s == GUARD_SIG_LOGPROBS ||
           s == GUARD_SIG_SATURATION || s == GUARD_SIG_TEMPLATE;
}

/* The population budgets from the benign population's aggregate (unless the policy set them),
 * and the member thresholds from its members' maxima (only loosened, as the other levels). */
static void apply_population(guard_policy *p, const guard_reference *r) {
    if (isfinite(r->pop_level) && r->pop_level > 0 && !(p->pop_flag > 0)) {
        p->pop_flag = p->pop_flag_x * r->pop_level;
        p->pop_throttle = p->pop_throttle_x * r->pop_level;
        p->pop_verify = p->pop_verify_x * r->pop_level;
        p->pop_suspend = p->pop_suspend_x * r->pop_level;
        if (!(p->pop_hold > 0)) p->pop_hold = p->pop_hold_x * r->pop_level;
        if (!(p->pop_hold_all > 0)) p->pop_hold_all = p->pop_hold_all_x * r->pop_level;
    }
    if (isfinite(r->pop_member_typical) && r->pop_member_typical > 0) p->pop_member_low = r->pop_member_typical;
    if (isfinite(r->pop_member_high) && r->pop_member_high > p->pop_member_high) p->pop_member_high = r->pop_member_high;
    if (p->pop_member_high < p->pop_member_low) p->pop_member_high = p->pop_member_low;
}

void guard_policy_apply_reference(guard_policy *p, const guard_reference *r) {
    if (!r) return;
    apply_population(p, r);
    if (!r->has_levels) return;
    for (int i = 0; i < GUARD_SIG_COUNT; i++) {
        double lv = r->levels[i];
        if (!isfinite(lv)) continue;
        guard_signal_policy *sp = &p->sig[i];
        double width = sp->attack - sp->benign;
        if (i == GUARD_SIG_HARVEST) {
            /* the budgets: a benign account's day (the quantile of per-account maxima) above the
             * flag budget loosens all three by the same factor; never tightened */
            double f = p->budget_flag > 0 ? lv / p->budget_flag : 0;
            if (f > 1) {
                p->budget_flag *= f;
                p->budget_throttle *= f;
                p->budget_suspend *= f;
            }
            sp->benign = p->budget_flag;
            sp->attack = p->budget_suspend;
            continue;
        }
        if (i == GUARD_SIG_DRIFT || i == GUARD_SIG_COHORT || i == GUARD_SIG_SWITCH) {
            /* the shift's units, but levels that only loosen: benign traffic that never moved
             * (a calibration day without a cohort move or a change of habit) measures ~0, and a
             * level of ~0 would make every small change evidence (and a cohort link) */
            double ratio = sp->benign > 0 ? sp->attack / sp->benign : 3.0;
            sp->benign = fmax(sp->benign, lv);
            sp->attack = sp->benign * fmax(ratio, 1.01);
            continue;
        }
        if (i == GUARD_SIG_SHIFT) {
            /* model-dependent units: the calibration sets the scale, the policy the ratio */
            double ratio = sp->benign > 0 ? sp->attack / sp->benign : 3.0;
            sp->benign = fmax(lv, 1e-9);
            sp->attack = sp->benign * fmax(ratio, 1.01);
        } else if (i == GUARD_SIG_COVERAGE) {
            sp->benign = lv;
            sp->attack = fmin(1.0, lv + width);
            if (!(sp->attack > sp->benign)) sp->attack = sp->benign + 1e-6;
        } else {
            /* calibration may loosen the policy's safe defaults, never tighten them */
            sp->benign = fmax(sp->benign, lv);
            sp->attack = sp->benign + width;
            /* ... nor switch a share (a value in [0, 1]) off: a benign maximum of 1.0 would put
             * the attack level out of reach; the ramp keeps at least half its width below 1 */
            if (signal_is_share(i) && sp->attack > 1.0 && width > 0) {
                sp->attack = 1.0;
                sp->benign = fmin(sp->benign, 1.0 - width / 2);
            }
        }
    }
}

/* ---------------------------------------------------------------- file */

static json_t *u64s_b64(const uint64_t *v, size_t n) {
    size_t bytes = n * 8;
    uint8_t *raw = malloc(bytes ? bytes : 1);
    if (!raw) return NULL;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) raw[i * 8 + (size_t)b] = (uint8_t)(v[i] >> (8 * b));
    size_t cap = sodium_base64_ENCODED_LEN(bytes, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);
    json_t *j = NULL;
    if (s) {
        sodium_bin2base64(s, cap, raw, bytes, sodium_base64_VARIANT_ORIGINAL);
        j = json_string(s);
    }
    free(s);
    free(raw);
    return j;
}

static json_t *f32s_b64(const float *v, size_t n) {
    uint64_t *tmp = malloc((n + 1) / 2 * sizeof *tmp + 8);
    if (!tmp) return NULL;
    /* pack two little-endian float32 per u64 (u64s_b64 writes bytes little-endian) */
    memset(tmp, 0, (n + 1) / 2 * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        tmp[i / 2] |= (uint64_t)u << (32 * (i % 2));
    }
    json_t *j = u64s_b64(tmp, (n + 1) / 2);
    free(tmp);
    return j;
}

/* decode base64 of little-endian bytes; *out malloc'ed */
static int b64_bytes(const char *s, uint8_t **out, size_t *n) {
    size_t sl = strlen(s);
    uint8_t *raw = malloc(sl + 1);
    if (!raw) return -1;
    if (sodium_base642bin(raw, sl + 1, s, sl, NULL, n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(raw);
        return -1;
    }
    *out = raw;
    return 0;
}

int guard_reference_save(const guard_reference *r, const char *path) {
    json_t *root = json_pack("{s:i, s:s, s:I, s:I, s:f}", "version", 1, "source", r->source, "accounts",
                             (json_int_t)r->n_accounts, "events", (json_int_t)r->n_events, "prada_delta", r->prada_delta);
    if (!root) return RT_FAIL("out of memory");
    if (r->has_shift) {
        json_t *mu = json_array();
        for (size_t j = 0; j < r->rff.m; j++) json_array_append_new(mu, json_real(r->mu[j]));
        json_object_set_new(root, "shift",
                            json_pack("{s:I, s:I, s:f, s:s, s:o, s:f, s:f}", "dim", (json_int_t)r->rff.dim, "features",
                                      (json_int_t)r->rff.m, "sigma", r->rff.sigma, "seed",
                                      "", "mu", mu, "trace", r->trace, "z_crit", r->z_crit));
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->rff.seed);
        json_object_set_new(json_object_get(root, "shift"), "seed", json_string(seed));
        if (r->n_profiles) {
            json_t *pj = f32s_b64(r->profiles, r->n_profiles * r->rff.m);
            if (pj) {
                json_object_set_new(json_object_get(root, "shift"), "profiles", pj);
                json_object_set_new(json_object_get(root, "shift"), "n_profiles", json_integer((json_int_t)r->n_profiles));
            }
        }
    }
    if (r->has_coverage) {
        json_t *ce = json_object(), *ca = json_object();
        for (int k = 0; k < GUARD_COV_COUNT; k++) json_object_set_new(ce, cov_names[k], json_real(r->cov_events[k]));
        for (int p = 0; p < GUARD_POP_COUNT; p++) json_object_set_new(ca, pop_names[p], json_real(r->cov_accounts[p]));
        json_object_set_new(root, "coverage", json_pack("{s:o, s:o}", "events", ce, "accounts", ca));
    }
    if (r->has_levels) {
        json_t *lv = json_object();
        for (int i = 0; i < GUARD_SIG_COUNT; i++)
            if (isfinite(r->levels[i]))
                json_object_set_new(lv, guard_signal_name((guard_signal)i), json_real(r->levels[i]));
        json_object_set_new(root, "levels", lv);
    }
    if (isfinite(r->pop_level))
        json_object_set_new(root, "population",
                            json_pack("{s:f, s:o, s:o}", "level", r->pop_level, "member_typical",
                                      isfinite(r->pop_member_typical) ? json_real(r->pop_member_typical) : json_null(),
                                      "member_high",
                                      isfinite(r->pop_member_high) ? json_real(r->pop_member_high) : json_null()));
    json_t *sb = u64s_b64(r->stop_bands, r->n_stop_bands);
    if (sb) json_object_set_new(root, "stop_bands", sb);
    char *s = rt_json_reals(json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER));
    json_decref(root);
    if (!s) return RT_FAIL("out of memory writing %s", path);
    int rc = rt_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}

/* The reference's "shift" object: the random-feature map, the benign mean and profiles. */
static int load_shift(guard_reference *r, json_t *sh, const char *path) {
    json_t *mu = json_object_get(sh, "mu");
    json_int_t dim = json_integer_value(json_object_get(sh, "dim")), m = json_integer_value(json_object_get(sh, "features"));
    double sigma = json_number_value(json_object_get(sh, "sigma"));
    const char *seed_s = json_string_value(json_object_get(sh, "seed"));
    if (dim <= 0 || dim > 65536 || m != GUARD_RFF_M || !json_is_array(mu) || json_array_size(mu) != (size_t)m ||
        !(sigma > 0) || !seed_s) {
        RT_FAIL("%s: shift: expected dim (1..65536), features = %d, sigma > 0, seed, and mu with that many numbers",
                path, GUARD_RFF_M);
        return -1;
    }
    uint64_t seed = strtoull(seed_s, NULL, 10);
    if (guard_rff_init(&r->rff, (size_t)dim, (size_t)m, sigma, seed)) return -1;
    r->mu = rt_malloc_array((size_t)m, sizeof(float), "reference mean");
    if (!r->mu) return -1;
    for (size_t j = 0; j < (size_t)m; j++) {
        json_t *x = json_array_get(mu, j);
        if (!json_is_number(x)) {
            RT_FAIL("%s: shift.mu[%zu]: expected a number", path, j);
            return -1;
        }
        r->mu[j] = (float)json_number_value(x);
    }
    r->trace = json_number_value(json_object_get(sh, "trace"));
    const char *pb = json_string_value(json_object_get(sh, "profiles"));
    if (pb) {
        json_int_t np = json_integer_value(json_object_get(sh, "n_profiles"));
        uint8_t *raw = NULL;
        size_t bytes = 0;
        if (np <= 0 || np > 100000 || b64_bytes(pb, &raw, &bytes) ||
            bytes < (size_t)np * (size_t)m * 4) {
            free(raw);
            RT_FAIL("%s: shift.profiles: expected base64 of n_profiles x %lld float32", path, (long long)m);
            return -1;
        }
        r->profiles = rt_malloc_array((size_t)np * (size_t)m, sizeof(float), "reference profiles");
        if (!r->profiles) {
            free(raw);
            return -1;
        }
        for (size_t i = 0; i < (size_t)np * (size_t)m; i++) {
            uint32_t u = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 | (uint32_t)raw[4 * i + 2] << 16 |
                         (uint32_t)raw[4 * i + 3] << 24;
            memcpy(&r->profiles[i], &u, 4);
            if (!isfinite(r->profiles[i])) {
                free(raw);
                RT_FAIL("%s: shift.profiles: value %zu is not finite", path, i);
                return -1;
            }
        }
        r->n_profiles = (size_t)np;
        free(raw);
    }
    r->z_crit = json_number_value(json_object_get(sh, "z_crit"));
    if (!(r->trace > 0)) {
        RT_FAIL("%s: shift.trace: expected a positive number", path);
        return -1;
    }
    r->has_shift = 1;
    return 0;
}

int guard_reference_load(guard_reference *r, const char *path) {
    guard_reference_init(r);
    char *text = NULL;
    size_t len = 0;
    if (rt_read_file(path, &text, &len)) return RT_FAIL("guard reference: %s", rt_errmsg());
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!root) return RT_FAIL("%s: invalid JSON: %s (line %d) (write it with `retort guard calibrate`)", path, je.text, je.line);
    int rc = -1;
    if (!json_is_object(root) || json_integer_value(json_object_get(root, "version")) != 1) {
        RT_FAIL("%s: not a guard reference (version 1 expected; write it with `retort guard calibrate`)", path);
        goto out;
    }
    snprintf(r->source, sizeof r->source, "%s",
             json_string_value(json_object_get(root, "source")) ? json_string_value(json_object_get(root, "source")) : "");
    r->n_accounts = (size_t)json_integer_value(json_object_get(root, "accounts"));
    r->n_events = (size_t)json_integer_value(json_object_get(root, "events"));
    r->prada_delta = json_number_value(json_object_get(root, "prada_delta"));
    json_t *sh = json_object_get(root, "shift");
    if (sh && load_shift(r, sh, path)) goto out;
    json_t *cov = json_object_get(root, "coverage");
    if (cov) {
        json_t *ce = json_object_get(cov, "events"), *ca = json_object_get(cov, "accounts");
        for (int k = 0; k < GUARD_COV_COUNT; k++) {
            json_t *v = json_object_get(ce, cov_names[k]);
            if (!json_is_number(v) || !(json_number_value(v) >= 0)) {
                RT_FAIL("%s: coverage.events.%s: expected a count", path, cov_names[k]);
                goto out;
            }
            r->cov_events[k] = json_number_value(v);
        }
        for (int p = 0; p < GUARD_POP_COUNT; p++) {
            json_t *v = json_object_get(ca, pop_names[p]);
            if (!json_is_number(v) || !(json_number_value(v) >= 0)) {
                RT_FAIL("%s: coverage.accounts.%s: expected a count", path, pop_names[p]);
                goto out;
            }
            r->cov_accounts[p] = json_number_value(v);
        }
        r->has_coverage = 1;
    }
    json_t *lv = json_object_get(root, "levels");
    if (json_is_object(lv)) {
        const char *k;
        json_t *v;
        json_object_foreach(lv, k, v) {
            int s = guard_signal_from_name(k);
            if (s < 0 || !json_is_number(v)) {
                RT_FAIL("%s: levels.%s: unknown signal or not a number", path, k);
                goto out;
            }
            r->levels[s] = json_number_value(v);
        }
        r->has_levels = 1;
    }
    json_t *pop = json_object_get(root, "population");
    if (pop) {
        static const char *const pk[] = {"level", "member_typical", "member_high"};
        double *dst[] = {&r->pop_level, &r->pop_member_typical, &r->pop_member_high};
        for (size_t k = 0; k < 3; k++) {
            json_t *v = json_object_get(pop, pk[k]);
            if (json_is_null(v) && k > 0) continue;
            if (!json_is_number(v) || !(json_number_value(v) >= 0) || !isfinite(json_number_value(v))) {
                RT_FAIL("%s: population.%s: expected a non-negative number", path, pk[k]);
                goto out;
            }
            *dst[k] = json_number_value(v);
        }
    }
    const char *sb = json_string_value(json_object_get(root, "stop_bands"));
    if (sb && *sb) {
        size_t sl = strlen(sb), cap = sl;
        uint8_t *raw = malloc(cap);
        size_t bytes = 0;
        if (!raw || sodium_base642bin(raw, cap, sb, sl, NULL, &bytes, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
            bytes % 8) {
            free(raw);
            RT_FAIL("%s: stop_bands: not base64 of 8-byte keys", path);
            goto out;
        }
        r->n_stop_bands = bytes / 8;
        r->stop_bands = rt_malloc_array(r->n_stop_bands ? r->n_stop_bands : 1, 8, "stop bands");
        if (!r->stop_bands) {
            free(raw);
            goto out;
        }
        for (size_t i = 0; i < r->n_stop_bands; i++) {
            uint64_t v = 0;
            for (int b = 7; b >= 0; b--) v = (v << 8) | raw[i * 8 + (size_t)b];
            r->stop_bands[i] = v;
            if (i && r->stop_bands[i] <= r->stop_bands[i - 1]) {
                free(raw);
                RT_FAIL("%s: stop_bands: keys must be sorted and distinct", path);
                goto out;
            }
        }
        free(raw);
    }
    rc = 0;
out:
    json_decref(root);
    if (rc) {
        guard_reference_free(r);
    }
    return rc;
}

/* ---------------------------------------------------------------- calibration */

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* q-quantile (linear interpolation) of v (n > 0), sorts v */
static double quantile(double *v, size_t n, double q) {
    qsort(v, n, sizeof *v, cmp_d);
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    if (i + 1 >= n) return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

typedef struct {
    int64_t id;
    int half;   /* 0: A (mean), 1: B (levels) */
    int benign;
    double max[GUARD_SIG_COUNT];
    double max_member; /* the largest harvest value while in the population (NaN: never in it) */
    double min_w;
    guard_prada prada;
    size_t n_prada;
    size_t n_emb, n_emb_fill; /* embeddings taken into the pools (at most CAL_PER_ACCOUNT) */
} cal_acct;

/* Each account gives at most this many prompts to the embedding reference: the reference
 * describes benign users, not the few heaviest ones (apps would otherwise dominate it). */
#define CAL_PER_ACCOUNT 64
#define CAL_PROFILE_MIN 24   /* prompts an account needs to become a profile */
#define CAL_MAX_PROFILES 127

static cal_acct *cal_find(cal_acct *a, size_t n, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && a[lo].id == id ? &a[lo] : NULL;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* What one fit works on; the steps below fill `out` in turn. */
typedef struct {
    const guard_event *ev;
    size_t n_ev;
    const guard_fit_options *o;
    const char *origin;
    guard_policy pol;
    double q;
    cal_acct *acc;  /* sorted by id */
    size_t n_acc, n_benign, n_a, n_b;
    size_t dim, n_emb_a, n_emb_b, n_events_used;
    rt_rng rng;
    double t_first; /* the first benign event's time */
    double pop_est; /* the largest steady-state estimate of the B half's population value */
    guard_reference *out;
    FILE *log;
} fit_ctx;

static int is_benign(const guard_fit_options *o, int64_t id) {
    if (o->all_benign) return 1;
    for (size_t j = 0; j < o->n_benign_ids; j++)
        if (o->benign_ids[j] == id) return 1;
    return 0;
}

/* The accounts of the events, sorted, each benign or not and in half A or B by a keyed hash. */
static int fit_accounts(fit_ctx *c) {
    int64_t *ids = rt_malloc_array(c->n_ev, sizeof *ids, "calibration accounts");
    if (!ids) return -1;
    size_t n = 0;
    for (size_t i = 0; i < c->n_ev; i++) ids[n++] = c->ev[i].account_id;
    qsort(ids, n, sizeof *ids, cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || ids[i] != ids[u - 1]) ids[u++] = ids[i];
    c->acc = rt_calloc(u ? u : 1, sizeof *c->acc, "calibration accounts");
    if (!c->acc) {
        free(ids);
        return -1;
    }
    c->n_acc = u;
    for (size_t k = 0; k < u; k++) {
        cal_acct *a = &c->acc[k];
        a->id = ids[k];
        a->benign = is_benign(c->o, a->id);
        a->half = (int)(rt_splitmix64((uint64_t)a->id ^ (c->o->seed * 0x9e3779b97f4a7c15ULL)) & 1);
        for (int s = 0; s < GUARD_SIG_COUNT; s++) a->max[s] = NAN;
        a->min_w = NAN;
        a->max_member = NAN;
        if (a->benign) {
            c->n_benign++;
            if (a->half) c->n_b++;
            else c->n_a++;
        }
    }
    free(ids);
    if (c->n_a < 2 || c->n_b < 2)
        return RT_FAIL("%s: %zu benign accounts (%zu + %zu after the split): too few to calibrate on (want dozens)",
                       c->origin, c->n_benign, c->n_a, c->n_b);
    return 0;
}

/* The embedding width (one for all events) and how many embeddings each half contributes. */
static int fit_count_embeddings(fit_ctx *c) {
    for (size_t i = 0; i < c->n_ev; i++) {
        const guard_event *e = &c->ev[i];
        cal_acct *a = cal_find(c->acc, c->n_acc, e->account_id);
        if (!a || !a->benign) continue;
        c->n_events_used++;
        if (!e->emb || !e->emb_dim) continue;
        if (!c->dim) c->dim = e->emb_dim;
        if (e->emb_dim != c->dim)
            return RT_FAIL("%s: events have embeddings of %zu and %zu dimensions (two models?)", c->origin, c->dim,
                           e->emb_dim);
        if (a->n_emb >= CAL_PER_ACCOUNT) continue;
        a->n_emb++;
        if (a->half) c->n_emb_b++;
        else c->n_emb_a++;
    }
    return 0;
}

/* Every LSH band and prefix key of a served benign prompt, sorted and unique. */
static int fit_stoplist(fit_ctx *c) {
    uint64_t *bands = NULL;
    size_t cap = 0, nb = 0;
    for (size_t i = 0; i < c->n_ev; i++) {
        const guard_event *e = &c->ev[i];
        cal_acct *a = cal_find(c->acc, c->n_acc, e->account_id);
        if (!a || !a->benign || (!e->has_minhash && !e->prefix_hash) || e->status != 200) continue;
        if (rt_grow((void **)&bands, &cap, nb + GUARD_MINHASH_BANDS + 1, sizeof *bands, "benign bands")) {
            free(bands);
            return -1;
        }
        if (e->has_minhash) {
            guard_minhash_bands(e->minhash, bands + nb);
            nb += GUARD_MINHASH_BANDS;
        }
        if (e->prefix_hash) bands[nb++] = guard_prefix_key(e->prefix_hash);
    }
    if (!nb) {
        free(bands);
        return 0;
    }
    qsort(bands, nb, sizeof *bands, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < nb; i++)
        if (u == 0 || bands[i] != bands[u - 1]) bands[u++] = bands[i];
    c->out->stop_bands = bands;
    c->out->n_stop_bands = u;
    return 0;
}

/* RBF bandwidth: the median distance of random pairs of A's unit embeddings. */
static double fit_bandwidth(fit_ctx *c, const float *ua) {
    size_t n_pairs = 4000, dim = c->dim;
    double *dist = rt_malloc_array(n_pairs, sizeof(double), "calibration distances");
    if (!dist) return NAN;
    size_t nd = 0;
    for (size_t k = 0; k < n_pairs; k++) {
        size_t i = rt_rng_below(&c->rng, c->n_emb_a), j = rt_rng_below(&c->rng, c->n_emb_a);
        if (i == j) continue;
        double s = 0;
        for (size_t t = 0; t < dim; t++) {
            double df = (double)ua[i * dim + t] - ua[j * dim + t];
            s += df * df;
        }
        if (s > 0) dist[nd++] = sqrt(s);
    }
    double sigma = nd ? quantile(dist, nd, 0.5) : 1.0;
    free(dist);
    return sigma > 0 ? sigma : 1.0;
}

/* The benign mean feature mu and the trace E|phi - mu|^2 over A. */
static int fit_mean_trace(fit_ctx *c, const float *ua, float *phi) {
    guard_reference *out = c->out;
    out->mu = rt_calloc(GUARD_RFF_M, sizeof(float), "reference mean");
    if (!out->mu) return -1;
    double mu[GUARD_RFF_M] = {0};
    for (size_t i = 0; i < c->n_emb_a; i++) {
        guard_rff_apply(&out->rff, ua + i * c->dim, phi);
        for (size_t j = 0; j < GUARD_RFF_M; j++) mu[j] += phi[j];
    }
    for (size_t j = 0; j < GUARD_RFF_M; j++) out->mu[j] = (float)(mu[j] / (double)c->n_emb_a);
    double tr = 0;
    for (size_t i = 0; i < c->n_emb_a; i++) {
        guard_rff_apply(&out->rff, ua + i * c->dim, phi);
        for (size_t j = 0; j < GUARD_RFF_M; j++) {
            double df = phi[j] - out->mu[j];
            tr += df * df;
        }
    }
    out->trace = tr / (double)c->n_emb_a;
    return 0;
}

/* Profiles: the mean features of single A accounts with enough prompts, the most active first
 * (apps and power users are the benign accounts furthest from the pooled mean); an account is
 * judged against the nearest profile. ua_acc[i]: the account index of ua's row i. */
static int fit_profiles(fit_ctx *c, const float *ua, const size_t *ua_acc, float *phi) {
    guard_reference *out = c->out;
    size_t *cnt = rt_calloc(c->n_acc, sizeof *cnt, "profiles");
    double *sum = rt_calloc(c->n_acc, GUARD_RFF_M * sizeof(double), "profiles");
    out->profiles = rt_malloc_array(CAL_MAX_PROFILES, GUARD_RFF_M * sizeof(float), "profiles");
    if (!cnt || !sum || !out->profiles) {
        free(cnt);
        free(sum);
        return -1;
    }
    for (size_t i = 0; i < c->n_emb_a; i++) {
        guard_rff_apply(&out->rff, ua + i * c->dim, phi);
        size_t k = ua_acc[i];
        cnt[k]++;
        for (size_t j = 0; j < GUARD_RFF_M; j++) sum[k * GUARD_RFF_M + j] += phi[j];
    }
    size_t n_prof = 0;
    while (n_prof < CAL_MAX_PROFILES) {
        size_t best = SIZE_MAX;
        for (size_t k = 0; k < c->n_acc; k++)
            if (cnt[k] >= CAL_PROFILE_MIN && (best == SIZE_MAX || cnt[k] > cnt[best])) best = k;
        if (best == SIZE_MAX) break;
        for (size_t j = 0; j < GUARD_RFF_M; j++)
            out->profiles[n_prof * GUARD_RFF_M + j] = (float)(sum[best * GUARD_RFF_M + j] / (double)cnt[best]);
        cnt[best] = 0;
        n_prof++;
    }
    out->n_profiles = n_prof;
    free(cnt);
    free(sum);
    return 0;
}

/* The shift's significance floor: the 99th percentile of iid resamples of B against A's mean. */
static int fit_zfloor(fit_ctx *c, const float *pool_b) {
    guard_reference *out = c->out;
    static const size_t ns[] = {24, 48, 96, 192};
    size_t trials = 200, nz = 0;
    double *z = rt_malloc_array(trials * RT_ARRAY_LEN(ns), sizeof(double), "calibration resamples");
    float *fb = rt_malloc_array(c->n_emb_b, GUARD_RFF_M * sizeof(float), "calibration features");
    if (!z || !fb) {
        free(z);
        free(fb);
        return -1;
    }
    for (size_t i = 0; i < c->n_emb_b; i++) guard_rff_apply(&out->rff, pool_b + i * c->dim, fb + i * GUARD_RFF_M);
    for (size_t s = 0; s < RT_ARRAY_LEN(ns); s++)
        for (size_t tr_i = 0; tr_i < trials; tr_i++) {
            double m[GUARD_RFF_M] = {0};
            for (size_t k = 0; k < ns[s]; k++) {
                const float *f = fb + rt_rng_below(&c->rng, c->n_emb_b) * GUARD_RFF_M;
                for (size_t j = 0; j < GUARD_RFF_M; j++) m[j] += f[j];
            }
            double d2 = 0;
            for (size_t j = 0; j < GUARD_RFF_M; j++) {
                double df = m[j] / (double)ns[s] - out->mu[j];
                d2 += df * df;
            }
            z[nz++] = d2 / (out->trace / (double)ns[s]);
        }
    out->z_crit = fmax(1.5, quantile(z, nz, 0.99));
    free(z);
    free(fb);
    return 0;
}

/* The embedding part: unit embeddings of A (mean, bandwidth, profiles) and B (z floor). */
static int fit_shift(fit_ctx *c) {
    size_t dim = c->dim;
    float *ua = rt_malloc_array(c->n_emb_a, dim * sizeof(float), "calibration embeddings");
    size_t *ua_acc = rt_malloc_array(c->n_emb_a, sizeof(size_t), "calibration embeddings");
    float *pool_b = rt_malloc_array(c->n_emb_b, dim * sizeof(float), "calibration embeddings");
    float *phi = rt_malloc_array(GUARD_RFF_M, sizeof(float), "features");
    int rc = -1;
    if (!ua || !ua_acc || !pool_b || !phi) goto out;
    size_t ia = 0, ib = 0;
    for (size_t i = 0; i < c->n_ev; i++) {
        const guard_event *e = &c->ev[i];
        cal_acct *a = cal_find(c->acc, c->n_acc, e->account_id);
        if (!a || !a->benign || !e->emb || e->emb_dim != dim || a->n_emb_fill >= CAL_PER_ACCOUNT) continue;
        a->n_emb_fill++;
        if (a->half) guard_dequantize(e->emb, dim, e->emb_scale, pool_b + ib++ * dim);
        else {
            ua_acc[ia] = (size_t)(a - c->acc);
            guard_dequantize(e->emb, dim, e->emb_scale, ua + ia++ * dim);
        }
    }
    RT_ASSERT(ia == c->n_emb_a && ib == c->n_emb_b); /* fit_count_embeddings counted the same events */
    double sigma = fit_bandwidth(c, ua);
    if (!isfinite(sigma)) goto out;
    uint64_t rseed = rt_splitmix64(c->o->seed ^ 0xf00dULL);
    if (guard_rff_init(&c->out->rff, dim, GUARD_RFF_M, sigma, rseed)) goto out;
    if (fit_mean_trace(c, ua, phi) || fit_profiles(c, ua, ua_acc, phi) || fit_zfloor(c, pool_b)) goto out;
    c->out->has_shift = 1;
    if (c->log)
        fprintf(c->log,
                "embeddings: %zu + %zu of dimension %zu; RBF bandwidth %.4f (median distance); trace %.5f; z floor "
                "%.2f; %zu benign account profiles\n",
                c->n_emb_a, c->n_emb_b, dim, sigma, c->out->trace, c->out->z_crit, c->out->n_profiles);
    rc = 0;
out:
    free(ua);
    free(ua_acc);
    free(pool_b);
    free(phi);
    return rc;
}

/* One B-half event through the detector: per-account signal maxima and PRADA's minimum W. */
static int fit_observe(fit_ctx *c, guard_detector *det, cal_acct *a, const guard_event *e, float *x) {
    guard_verdict v;
    if (guard_detector_observe(det, e, &v)) return -1;
    if (v.population_member) {
        double hv = v.account.value[GUARD_SIG_HARVEST];
        if (isfinite(hv) && (!isfinite(a->max_member) || hv > a->max_member)) a->max_member = hv;
    }
    /* the population's aggregate as a steady state: the decayed sum over the share of its steady
     * state reached since the first event (once half a tau has passed), the largest over time */
    double since = e->t - c->t_first;
    if (since >= c->pol.pop_tau / 2) {
        double est = v.population_value / (1.0 - exp(-since / c->pol.pop_tau));
        if (!(est <= c->pop_est)) c->pop_est = est;
    }
    for (int s = 0; s < GUARD_SIG_COUNT; s++) {
        double val = v.account.value[s];
        if (!isfinite(val) || v.account.count[s] < c->pol.sig[s].min_n) continue;
        if (s == GUARD_SIG_SHIFT && !(v.account.shift_z >= c->out->z_crit)) val = fmin(val, 0);
        if (!isfinite(a->max[s]) || val > a->max[s]) a->max[s] = val;
    }
    if (!e->emb || e->emb_dim != c->dim || e->status != 200) return 0;
    if (!a->prada.dim) guard_prada_init(&a->prada, c->dim);
    guard_dequantize(e->emb, c->dim, e->emb_scale, x);
    if (guard_prada_add(&a->prada, x, 2000)) return -1;
    a->n_prada++;
    if (a->n_prada >= 20 && a->n_prada % 10 == 0) {
        double w = guard_prada_w(&a->prada);
        if (isfinite(w) && (!isfinite(a->min_w) || w < a->min_w)) a->min_w = w;
    }
    return 0;
}

/* Levels: replay the B half through a detector; a signal's level is the quantile of the
 * per-account maxima, PRADA's delta the (1 - quantile) quantile of the minimum W. */
static int fit_levels(fit_ctx *c) {
    guard_detector *det = NULL;
    float *x = rt_malloc_array(c->dim ? c->dim : 1, sizeof(float), "embedding");
    double *vals = rt_malloc_array(c->n_acc + 1, sizeof(double), "levels");
    int rc = -1;
    if (!x || !vals || guard_detector_new(&det, &c->pol, c->out)) goto out;
    c->t_first = INFINITY;
    c->pop_est = NAN;
    for (size_t i = 0; i < c->n_ev; i++) {
        cal_acct *a = cal_find(c->acc, c->n_acc, c->ev[i].account_id);
        if (a && a->benign && c->ev[i].t < c->t_first) c->t_first = c->ev[i].t;
    }
    for (size_t i = 0; i < c->n_ev; i++) {
        cal_acct *a = cal_find(c->acc, c->n_acc, c->ev[i].account_id);
        if (!a || !a->benign || !a->half) continue;
        if (fit_observe(c, det, a, &c->ev[i], x)) goto out;
    }
    /* the population: B is a share of the benign accounts, the aggregate is the whole's */
    if (isfinite(c->pop_est) && c->n_b > 0) c->out->pop_level = c->pop_est * (double)c->n_benign / (double)c->n_b;
    size_t nm = 0;
    for (size_t k = 0; k < c->n_acc; k++)
        if (c->acc[k].benign && c->acc[k].half && isfinite(c->acc[k].max_member)) vals[nm++] = c->acc[k].max_member;
    if (nm >= 5) {
        c->out->pop_member_typical = quantile(vals, nm, 0.75);
        c->out->pop_member_high = quantile(vals, nm, c->q);
    }
    for (int s = 0; s < GUARD_SIG_COUNT; s++) {
        size_t nv = 0;
        for (size_t k = 0; k < c->n_acc; k++)
            if (c->acc[k].benign && c->acc[k].half && isfinite(c->acc[k].max[s])) vals[nv++] = c->acc[k].max[s];
        if (nv >= 5) c->out->levels[s] = quantile(vals, nv, c->q);
    }
    size_t nw = 0;
    for (size_t k = 0; k < c->n_acc; k++)
        if (c->acc[k].benign && c->acc[k].half && isfinite(c->acc[k].min_w)) vals[nw++] = c->acc[k].min_w;
    if (nw >= 5) c->out->prada_delta = quantile(vals, nw, 1 - c->q);
    c->out->has_levels = 1;
    rc = 0;
out:
    free(x);
    free(vals);
    guard_detector_free(det);
    return rc;
}

/* Coverage: the benign events of each kind, and benign accounts by answers per active day. */
static int fit_coverage(fit_ctx *c) {
    guard_reference *out = c->out;
    double *ans = rt_calloc(c->n_acc + 1, sizeof(double), "coverage");
    double *t0 = rt_malloc_array(c->n_acc + 1, sizeof(double), "coverage");
    double *t1 = rt_malloc_array(c->n_acc + 1, sizeof(double), "coverage");
    if (!ans || !t0 || !t1) {
        free(ans), free(t0), free(t1);
        return -1;
    }
    for (size_t k = 0; k < c->n_acc; k++) t0[k] = INFINITY, t1[k] = -INFINITY;
    for (size_t i = 0; i < c->n_ev; i++) {
        const guard_event *e = &c->ev[i];
        cal_acct *a = cal_find(c->acc, c->n_acc, e->account_id);
        if (!a || !a->benign) continue;
        unsigned b = guard_event_coverage(e);
        for (int k = 0; k < GUARD_COV_COUNT; k++) out->cov_events[k] += (double)(b >> k & 1u);
        size_t j = (size_t)(a - c->acc);
        ans[j] += e->n_choices > 1 ? e->n_choices : 1;
        t0[j] = fmin(t0[j], e->t);
        t1[j] = fmax(t1[j], e->t);
    }
    for (size_t j = 0; j < c->n_acc; j++) {
        if (!c->acc[j].benign || !(ans[j] > 0)) continue;
        double per_day = ans[j] / fmax(1.0, (t1[j] - t0[j]) / 86400.0);
        out->cov_accounts[per_day < 50 ? GUARD_POP_LIGHT : per_day < 500 ? GUARD_POP_MEDIUM : GUARD_POP_HEAVY] += 1;
    }
    out->has_coverage = 1;
    free(ans), free(t0), free(t1);
    return 0;
}

static void fit_report(const fit_ctx *c) {
    const guard_reference *out = c->out;
    fprintf(c->log, "benign levels (%.3g quantile of per-account maxima over %zu accounts):\n", c->q, c->n_b);
    for (int s = 0; s < GUARD_SIG_COUNT; s++)
        if (isfinite(out->levels[s])) fprintf(c->log, "  %-15s %.5g\n", guard_signal_name((guard_signal)s), out->levels[s]);
    fprintf(c->log, "  PRADA delta     %.5g\n", out->prada_delta);
    if (isfinite(out->pop_level))
        fprintf(c->log, "population: benign aggregate %.5g (steady state, tau %.0f s); members' value 0.75 quantile %.5g, %.3g quantile %.5g\n",
                out->pop_level, c->pol.pop_tau, out->pop_member_typical, c->q, out->pop_member_high);
    fprintf(c->log, "template stoplist: %zu benign LSH bands\n", out->n_stop_bands);
    guard_reference_coverage_print(out, c->log);
}

int guard_reference_fit(guard_reference *out, const guard_event *ev, size_t n, const guard_fit_options *o, FILE *log) {
    guard_reference_init(out);
    fit_ctx c = {.ev = ev, .n_ev = n, .o = o, .origin = o->origin ? o->origin : "events", .out = out, .log = log};
    c.q = o->quantile > 0 && o->quantile < 1 ? o->quantile : 0.99;
    if (o->policy) c.pol = *o->policy;
    else guard_policy_defaults(&c.pol);
    int rc = -1;
    if (n == 0) {
        RT_FAIL("%s: no events to calibrate on", c.origin);
        goto out;
    }
    if (fit_accounts(&c) || fit_count_embeddings(&c)) goto out;
    if (log)
        fprintf(log, "calibrating on %zu benign accounts (%zu for the mean, %zu for the levels), %zu events%s\n", c.n_benign,
                c.n_a, c.n_b, c.n_events_used, o->all_benign ? " (all accounts taken as benign)" : " (simulator labels)");
    if (fit_stoplist(&c)) goto out;
    rt_rng_seed(&c.rng, o->seed ^ 0x5eed);
    if (c.dim && c.n_emb_a >= 16 && c.n_emb_b >= 16) {
        if (fit_shift(&c)) goto out;
    } else if (log) {
        fprintf(log, "no (or too few) prompt embeddings: the shift signal stays off (serve with --guard-shadow so the "
                     "guard asks for hidden states)\n");
    }
    if (fit_levels(&c) || fit_coverage(&c)) goto out;
    out->n_accounts = c.n_benign;
    out->n_events = c.n_events_used;
    snprintf(out->source, sizeof out->source, "%s", c.origin);
    if (log) fit_report(&c);
    rc = 0;
out:
    for (size_t k = 0; k < c.n_acc; k++) guard_prada_free(&c.acc[k].prada);
    free(c.acc);
    if (rc) guard_reference_free(out);
    return rc;
}
