/*
 * eval.c — `retort guard eval`: how well the guard did on labelled (simulated) traffic, per
 * strategy, against baselines replayed on the SAME stored traffic:
 *   guard        from the actions table: an account counts as caught when it was suspended
 *                (enforce, or a would-be suspension in shadow mode); queries and tokens
 *                served up to the ledger row that triggered it;
 *   prada        PRADA (Juuti et al. 2019) over each account's prompt embeddings: minimum
 *                distances to a growing set, flagged when Shapiro–Wilk W < delta;
 *   mmd_window   the published MMD detector's unit of decision: a full window of 1,500 of an
 *                account's queries, tested against the benign reference (same kernel);
 *   rate_limit   what a gateway that only rate-limits sees: accounts that got a 429. It never
 *                stops anyone, so it "serves" everything.
 * Attackers are scored per attacker (a sybil group or swarm is one attacker: caught when any key
 * is suspended, stopped when all are); benign accounts per account. Besides suspension, the
 * guard may hold an account (a throttle, or any enforcing action short of suspension): each
 * attacker's outcome (suspended, held, flagged, none) comes with what it was served before the
 * first enforcing action on it and in all. Rates carry Wilson 95% intervals, medians over units
 * a distribution-free 95% interval from order statistics (n >= 6). With a calibration database
 * the report says what of the evaluation was held out from calibration (seeds, prompt
 * sources, strategies, accounts).
 * PRADA's streaming state is src/guard/baselines.c. Not the detector.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "defend_internal.h"

/* ---------------------------------------------------------------- data */

typedef struct {
    int64_t id;
    const guard_label *label; /* NULL: unlabelled */
    /* ledger */
    int64_t served, tokens, limited;
    /* guard */
    int suspended, flagged, throttled;
    int verify;               /* asked to verify (refused until an operator released it) */
    double t_suspend;
    int64_t trigger_row;      /* usage row of the suspending request */
    int64_t group_id;
    int64_t served_before, tokens_before;
    int acted, held;          /* an enforcing action (throttle, suspend, ...); one short of suspension */
    int64_t act_row;          /* usage row of the first enforcing action */
    int64_t served_act, tokens_act; /* served up to it (everything when never acted on) */
    /* baselines: queries (served) when first flagged; -1 never */
    int64_t prada_at, mmd_at;
    int64_t prada_tokens, mmd_tokens;
} ev_acct;

typedef struct {
    ev_acct *a;
    size_t n;
    int any_shadow, any_enforce;
} ev_data;

static ev_acct *ev_find(ev_data *d, int64_t id) {
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->a[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < d->n && d->a[lo].id == id ? &d->a[lo] : NULL;
}

typedef struct {
    ev_data *d;
    guard_label *labels;
    size_t n_labels;
} load_ctx;

/* One ledger row: what the account was served, and before its suspension. */
static int usage_row(void *ud, const gw_usage_brief *r) {
    ev_acct *a = ev_find(ud, r->account_id);
    if (!a) return 0;
    int64_t tok = r->prompt_tokens + r->completion_tokens;
    if (r->status == 429) a->limited++;
    if (r->status != 200) return 0;
    a->served++;
    a->tokens += tok;
    if (r->id <= a->trigger_row) {
        a->served_before++;
        a->tokens_before += tok;
    }
    if (r->id <= a->act_row) {
        a->served_act++;
        a->tokens_act += tok;
    }
    return 0;
}

static int load_fn(gw_conn *c, void *ud) {
    load_ctx *x = ud;
    ev_data *d = x->d;
    if (guard_labels_read(c, &x->labels, &x->n_labels)) return -1;
    if (x->n_labels == 0)
        return RT_FAIL("no simulator labels (guard_sim_accounts): eval needs traffic from `retort simulate`");
    if (!gw_sql_has_table(c, "guard_actions"))
        return RT_FAIL("no guard tables: was the server run with --guard or --guard-shadow?");
    d->a = rt_calloc(x->n_labels, sizeof *d->a, "eval accounts");
    if (!d->a) return -1;
    d->n = x->n_labels;
    for (size_t i = 0; i < d->n; i++) {
        d->a[i].id = x->labels[i].account_id;
        d->a[i].label = &x->labels[i];
        d->a[i].prada_at = d->a[i].mmd_at = -1;
        d->a[i].trigger_row = d->a[i].act_row = INT64_MAX;
        d->a[i].group_id = d->a[i].id;
    }
    gw_stmt *st = NULL;
    /* the first action of each kind per account */
    if (gw_sql_prepare(c,
                          "SELECT account_id, action, mode, t, usage_row_id, group_id FROM guard_actions "
                          "WHERE action != 'release' ORDER BY id",
                          &st, "reading guard_actions"))
        return -1;
    while (gw_step(st) == GW_ROW) {
        ev_acct *a = ev_find(d, gw_column_int64(st, 0));
        if (!a) continue;
        const char *act = gw_column_text(st, 1), *mode = gw_column_text(st, 2);
        if (!strcmp(mode, "shadow")) d->any_shadow = 1;
        else if (!strcmp(mode, "enforce")) d->any_enforce = 1;
        if (!strcmp(act, "flag")) a->flagged = 1;
        if (!strcmp(act, "throttle")) a->throttled = a->flagged = 1;
        if (!strcmp(act, "verify")) a->verify = a->flagged = 1;
        if (strcmp(act, "flag") && strcmp(act, "release")) { /* enforcing: throttle, suspend, or newer kinds */
            if (!a->acted) {
                a->acted = 1;
                a->act_row = gw_column_is_null(st, 4) ? INT64_MAX : gw_column_int64(st, 4);
            }
            if (strcmp(act, "suspend")) a->held = a->flagged = 1;
        }
        if (!strcmp(act, "suspend") && !a->suspended) {
            a->suspended = a->flagged = 1;
            a->t_suspend = gw_column_double(st, 3);
            a->trigger_row = gw_column_int64(st, 4);
            a->group_id = gw_column_int64(st, 5);
        }
    }
    gw_finalize(st);
    return gw_usage_scan(c, usage_row, d);
}

static int cmp_acct(const void *x, const void *y) {
    int64_t a = ((const ev_acct *)x)->id, b = ((const ev_acct *)y)->id;
    return (a > b) - (a < b);
}

/* replay stored embeddings through PRADA and the 1,500-query MMD window */
static int run_baselines(ev_data *d, const guard_event_list *ev, const guard_reference *ref, double delta,
                         size_t mmd_window) {
    size_t dim = 0;
    for (size_t i = 0; i < ev->n && !dim; i++)
        if (ev->ev[i].emb) dim = ev->ev[i].emb_dim;
    if (!dim) return 0;
    guard_prada *pr = rt_calloc(d->n, sizeof *pr, "PRADA states");
    int64_t *cnt = rt_calloc(d->n, sizeof *cnt, "counts");
    int64_t *tok = rt_calloc(d->n, sizeof *tok, "counts");
    float *x = rt_malloc_array(dim, sizeof(float), "embedding");
    int use_mmd = ref && ref->has_shift && ref->rff.dim == dim;
    /* the MMD window keeps the last mmd_window features per account, allocated when needed */
    float **win = rt_calloc(d->n, sizeof *win, "MMD windows");
    double **wsum = rt_calloc(d->n, sizeof *wsum, "MMD sums");
    float phi[GUARD_RFF_M];
    int rc = -1;
    if (!pr || !cnt || !tok || !x || !win || !wsum) goto out;
    double level = use_mmd && isfinite(ref->levels[GUARD_SIG_SHIFT]) ? ref->levels[GUARD_SIG_SHIFT] : 0;
    for (size_t i = 0; i < ev->n; i++) {
        const guard_event *e = &ev->ev[i];
        if (e->status != 200 || !e->emb || e->emb_dim != dim) continue;
        ev_acct *a = ev_find(d, e->account_id);
        if (!a) continue;
        size_t k = (size_t)(a - d->a);
        cnt[k]++;
        tok[k] += e->prompt_tokens + e->completion_tokens;
        guard_dequantize(e->emb, dim, e->emb_scale, x);
        if (a->prada_at < 0) {
            if (!pr[k].dim) guard_prada_init(&pr[k], dim);
            if (guard_prada_add(&pr[k], x, 1000)) goto out;
            if (cnt[k] >= 20 && cnt[k] % 10 == 0) {
                double w = guard_prada_w(&pr[k]);
                if (isfinite(w) && w < delta) {
                    a->prada_at = cnt[k];
                    a->prada_tokens = tok[k];
                    guard_prada_free(&pr[k]);
                }
            }
        }
        if (use_mmd && a->mmd_at < 0) {
            if (!win[k]) {
                win[k] = rt_calloc(mmd_window, GUARD_RFF_M * sizeof(float), "MMD window");
                wsum[k] = rt_calloc(GUARD_RFF_M, sizeof(double), "MMD window");
                if (!win[k] || !wsum[k]) goto out;
            }
            guard_rff_apply(&ref->rff, x, phi);
            float *slot = win[k] + ((size_t)(cnt[k] - 1) % mmd_window) * GUARD_RFF_M;
            for (size_t j = 0; j < GUARD_RFF_M; j++) {
                if ((size_t)cnt[k] > mmd_window) wsum[k][j] -= slot[j];
                slot[j] = phi[j];
                wsum[k][j] += phi[j];
            }
            if ((size_t)cnt[k] >= mmd_window && cnt[k] % 100 == 0) {
                double d2 = 0;
                for (size_t j = 0; j < GUARD_RFF_M; j++) {
                    double df = wsum[k][j] / (double)mmd_window - ref->mu[j];
                    d2 += df * df;
                }
                double null = ref->trace / (double)mmd_window;
                if (d2 / null >= ref->z_crit && 1000.0 * (d2 - null) > level) {
                    a->mmd_at = cnt[k];
                    a->mmd_tokens = tok[k];
                    free(win[k]);
                    win[k] = NULL;
                }
            }
        }
    }
    rc = 0;
out:
    for (size_t k = 0; pr && k < d->n; k++) guard_prada_free(&pr[k]);
    for (size_t k = 0; win && k < d->n; k++) {
        free(win[k]);
        if (wsum) free(wsum[k]);
    }
    free(win);
    free(wsum);
    free(pr);
    free(cnt);
    free(tok);
    free(x);
    return rc;
}

/* ---------------------------------------------------------------- summary */

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

void guard_wilson95(size_t k, size_t n, double *lo, double *hi) {
    if (n == 0) {
        *lo = 0, *hi = 1;
        return;
    }
    const double z = 1.959963984540054;
    double p = (double)k / (double)n, nn = (double)n, den = 1 + z * z / nn;
    double mid = (p + z * z / (2 * nn)) / den, half = z * sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / den;
    *lo = fmax(0, mid - half);
    *hi = fmin(1, mid + half);
}

static json_t *wilson_json(size_t k, size_t n) {
    if (n == 0) return json_null();
    double lo, hi;
    guard_wilson95(k, n, &lo, &hi);
    return json_pack("[f, f]", lo, hi);
}

int guard_median_ci95(size_t n, size_t *lo_out, size_t *hi_out, double *cover_out) {
    if (n < 6 || n > 100000) return -1;
    double *cdf = malloc((n + 1) * sizeof *cdf); /* P(Bin(n, 1/2) <= k), in logs for large n */
    if (!cdf) return -1;
    double acc = 0;
    for (size_t k = 0; k <= n; k++) {
        acc += exp(lgamma((double)n + 1) - lgamma((double)k + 1) - lgamma((double)(n - k) + 1) - (double)n * log(2.0));
        cdf[k] = fmin(acc, 1.0);
    }
    int rc = -1;
    for (size_t j = (n - 1) / 2 + 1; j-- > 0;) { /* narrowest first: lo = j, hi = n - 1 - j */
        size_t lo = j, hi = n - 1 - j;
        if (lo >= hi) continue;
        double cover = cdf[hi] - cdf[lo]; /* P(lo + 1 <= K <= hi), K = observations below the median */
        if (cover >= 0.95) {
            *lo_out = lo, *hi_out = hi, *cover_out = cover;
            rc = 0;
            break;
        }
    }
    free(cdf);
    return rc;
}

/* The median's interval of sorted v[0..n) as [v[lo], v[hi]], null below n = 6. */
static json_t *median_ci_json(const int64_t *v, size_t n) {
    size_t lo, hi;
    double cover;
    if (guard_median_ci95(n, &lo, &hi, &cover)) return json_null();
    return json_pack("{s:[I, I], s:f}", "median_ci95", (json_int_t)v[lo], (json_int_t)v[hi], "coverage", cover);
}

static json_t *dist_json(int64_t *v, size_t n) {
    if (n == 0) return json_null();
    qsort(v, n, sizeof *v, cmp_i64);
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += (double)v[i];
    mean /= (double)n;
    double med = n % 2 ? (double)v[n / 2] : 0.5 * (double)(v[n / 2 - 1] + v[n / 2]);
    json_t *o = json_pack("{s:f, s:f, s:I, s:I, s:I}", "median", med, "mean", mean, "min", (json_int_t)v[0], "max",
                          (json_int_t)v[n - 1], "n", (json_int_t)n);
    json_t *ci = median_ci_json(v, n);
    json_object_set_new(o, "median_ci95", json_is_object(ci) ? json_incref(json_object_get(ci, "median_ci95")) : json_null());
    json_decref(ci);
    return o;
}

/* One detector's numbers for a set of units (attackers or benign accounts). */
typedef struct {
    size_t units, caught;
    int64_t *q_before, *t_before; /* (units) for caught */
    size_t n_before;
    int64_t served_total, tokens_total;    /* all units, everything they got */
    int64_t served_missed;                 /* what uncaught units got */
} det_sum;

static json_t *det_json(det_sum *s, int attack) {
    json_t *o = json_pack("{s:I, s:I, s:f, s:o}", "units", (json_int_t)s->units, "caught", (json_int_t)s->caught,
                          attack ? "tpr" : "fpr", s->units ? (double)s->caught / (double)s->units : 0.0,
                          attack ? "tpr_ci95" : "fpr_ci95", wilson_json(s->caught, s->units));
    if (attack) {
        json_object_set_new(o, "queries_before_caught", dist_json(s->q_before, s->n_before));
        json_object_set_new(o, "tokens_before_caught", dist_json(s->t_before, s->n_before));
        json_object_set_new(o, "queries_served_total", json_integer(s->served_total));
        json_object_set_new(o, "tokens_served_total", json_integer(s->tokens_total));
    }
    return o;
}

/* ---------------------------------------------------------------- per strategy */

/* The unit an account belongs to: attackers by their persona instance (a sybil group is one
 * attacker), benign accounts each on their own. */
static const char *unit_of(const ev_acct *a, int attack) { return attack ? a->label->group : a->label->name; }

/* Distinct strings in first-appearance order (no limit; the names point into the labels). */
typedef struct {
    const char **v;
    size_t n, cap;
} name_set;
static int name_add(name_set *s, const char *name) {
    for (size_t k = 0; k < s->n; k++)
        if (!strcmp(s->v[k], name)) return 0;
    if (RT_GROW(s->v, s->cap, s->n + 1, "eval names")) return -1;
    s->v[s->n++] = name;
    return 0;
}

/* Totals over all strategies of one label (benign or attack). */
typedef struct {
    size_t units, caught[4], flagged, within_1000, held, verify;
} eval_totals;

/* One strategy's accumulation: the four detectors (guard, prada, mmd, rate limit) and the
 * guard's group-level counts. */
typedef struct {
    const char *name;
    int attack;
    size_t n_accounts;
    det_sum S[4];
    size_t together, keys_total, keys_suspended, flagged, max_linked, within_1000;
    int64_t *gids; /* scratch: guard groups of one unit's suspended keys */
    size_t gids_cap;
    size_t held;       /* units held (an enforcing action) but not suspended */
    size_t verify;     /* units of which a key was asked to verify, none suspended (among held) */
    json_t *units;     /* per unit: outcome, served before the first enforcing action and in all */
} strat_acc;

/* One unit (attacker or benign account) of a strategy: what each detector let it have. */
static int eval_unit(const ev_data *d, strat_acc *sa, const char *unit) {
    int64_t served = 0, tokens = 0, sb = 0, tb = 0, pq = 0, pt = 0, mq = 0, mt = 0, aq = 0, at = 0;
    size_t keys = 0, susp = 0, prada_hit = 0, mmd_hit = 0, rl_hit = 0, fl = 0, n_gids = 0, acted = 0, held = 0,
           ver = 0;
    for (size_t i = 0; i < d->n; i++) {
        const ev_acct *a = &d->a[i];
        if (strcmp(a->label->strategy, sa->name) || strcmp(unit_of(a, sa->attack), unit)) continue;
        keys++;
        served += a->served;
        tokens += a->tokens;
        fl += a->flagged;
        acted += a->acted;
        held += a->held && !a->suspended;
        ver += a->verify && !a->suspended;
        aq += a->served_act;
        at += a->tokens_act;
        if (a->suspended) {
            susp++;
            size_t k = 0;
            while (k < n_gids && sa->gids[k] != a->group_id) k++;
            if (k == n_gids) {
                if (RT_GROW(sa->gids, sa->gids_cap, n_gids + 1, "eval groups")) return -1;
                sa->gids[n_gids++] = a->group_id;
            }
        }
        sb += a->suspended ? a->served_before : a->served;
        tb += a->suspended ? a->tokens_before : a->tokens;
        if (a->prada_at >= 0) prada_hit++;
        pq += a->prada_at >= 0 ? a->prada_at : a->served;
        pt += a->prada_at >= 0 ? a->prada_tokens : a->tokens;
        if (a->mmd_at >= 0) mmd_hit++;
        mq += a->mmd_at >= 0 ? a->mmd_at : a->served;
        mt += a->mmd_at >= 0 ? a->mmd_tokens : a->tokens;
        if (a->limited > 0) rl_hit++;
    }
    sa->keys_total += keys;
    sa->keys_suspended += susp;
    sa->flagged += fl > 0;
    if (susp == keys && keys > 0) sa->together++;
    /* the largest set of keys suspended under one guard group */
    for (size_t k = 0; k < n_gids; k++) {
        size_t c = 0;
        for (size_t i = 0; i < d->n; i++)
            if (!strcmp(d->a[i].label->strategy, sa->name) && !strcmp(unit_of(&d->a[i], sa->attack), unit) &&
                d->a[i].suspended && d->a[i].group_id == sa->gids[k])
                c++;
        if (c > sa->max_linked) sa->max_linked = c;
    }
    int caught[4] = {susp > 0, prada_hit > 0, mmd_hit > 0, rl_hit > 0};
    int64_t qb[4] = {sb, pq, mq, served}, tkb[4] = {tb, pt, mt, tokens};
    for (int k = 0; k < 4; k++) {
        det_sum *S = &sa->S[k];
        S->units++;
        S->served_total += qb[k]; /* what the attacker gets with this detector enforcing */
        S->tokens_total += tkb[k];
        if (caught[k]) {
            RT_ASSERT(S->n_before < d->n); /* at most one entry per unit, units <= accounts */
            S->caught++;
            S->q_before[S->n_before] = qb[k];
            S->t_before[S->n_before++] = tkb[k];
        } else {
            S->served_missed += qb[k];
        }
    }
    if (sa->attack && susp == keys && sb <= 1000) sa->within_1000++;
    const char *outcome = susp == keys ? "suspended"
                          : susp       ? "partly suspended"
                          : ver == keys ? "verify"
                          : ver        ? "partly verify"
                          : acted      ? "held"
                          : fl         ? "flagged"
                                       : "none";
    if (!susp && acted) sa->held++;
    if (!susp && ver) sa->verify++;
    if (sa->attack || acted || fl) /* benign units only when something happened to them */
        json_array_append_new(sa->units,
                              json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "unit", unit, "keys",
                                        (json_int_t)keys, "outcome", outcome, "keys_suspended", (json_int_t)susp,
                                        "keys_held", (json_int_t)held, "keys_verify", (json_int_t)ver, "served_before_action", (json_int_t)aq,
                                        "tokens_before_action", (json_int_t)at, "served", (json_int_t)served, "tokens",
                                        (json_int_t)tokens));
    return 0;
}

/* One strategy as JSON, its units' numbers added to the label's totals. buf: 8 * d->n. */
static json_t *eval_strategy(const ev_data *d, const char *name, int have_ref, int64_t *buf, eval_totals *tot_benign,
                             eval_totals *tot_attack) {
    strat_acc sa = {.name = name, .units = json_array()};
    name_set units = {0};
    json_t *so = NULL;
    if (!sa.units) return NULL;
    for (int k = 0; k < 4; k++) {
        sa.S[k].q_before = buf + (size_t)k * 2 * d->n;
        sa.S[k].t_before = buf + (size_t)k * 2 * d->n + d->n;
    }
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->a[i].label->strategy, name)) continue;
        sa.n_accounts++;
        sa.attack = d->a[i].label->attack;
    }
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->a[i].label->strategy, name) && name_add(&units, unit_of(&d->a[i], sa.attack))) goto out;
    for (size_t u = 0; u < units.n; u++)
        if (eval_unit(d, &sa, units.v[u])) goto out;
    so = json_pack("{s:s, s:I, s:I}", "label", sa.attack ? "attack" : "benign", "accounts", (json_int_t)sa.n_accounts,
                   sa.attack ? "attackers" : "units", (json_int_t)units.n);
    json_t *g = det_json(&sa.S[0], sa.attack);
    json_object_set_new(g, "flagged", json_integer((json_int_t)sa.flagged));
    json_object_set_new(g, "held", json_integer((json_int_t)sa.held));
    json_object_set_new(g, "held_or_suspended_ci95", wilson_json(sa.held + sa.S[0].caught, sa.S[0].units));
    json_object_set_new(g, "units_detail", json_incref(sa.units));
    if (sa.attack) {
        json_object_set_new(g, "stopped", json_integer((json_int_t)sa.together));
        json_object_set_new(g, "keys", json_integer((json_int_t)sa.keys_total));
        json_object_set_new(g, "keys_suspended", json_integer((json_int_t)sa.keys_suspended));
        json_object_set_new(g, "max_keys_in_one_group", json_integer((json_int_t)sa.max_linked));
    }
    json_object_set_new(so, "guard", g);
    json_object_set_new(so, "prada", det_json(&sa.S[1], sa.attack));
    json_object_set_new(so, "mmd_window", have_ref ? det_json(&sa.S[2], sa.attack) : json_null());
    json_t *rl = det_json(&sa.S[3], sa.attack);
    json_object_set_new(rl, "note", json_string("429 seen; rate limits never stop an account"));
    json_object_set_new(so, "rate_limit", rl);
    eval_totals *t = sa.attack ? tot_attack : tot_benign;
    t->units += sa.S[0].units;
    for (int k = 0; k < 4; k++) t->caught[k] += sa.S[k].caught;
    t->flagged += sa.flagged;
    t->within_1000 += sa.within_1000;
    t->held += sa.held;
    t->verify += sa.verify;
out:
    json_decref(sa.units);
    free(units.v);
    free(sa.gids);
    return so;
}

static double ratio(size_t a, size_t b) { return b ? (double)a / (double)b : 0.0; }

static void eval_add_totals(json_t *root, const eval_totals *b, const eval_totals *a, int have_ref) {
    json_object_set_new(
        root, "benign",
        json_pack("{s:I, s:I, s:f, s:I, s:f, s:f, s:o, s:f}", "accounts", (json_int_t)b->units, "suspended",
                  (json_int_t)b->caught[0], "fpr", ratio(b->caught[0], b->units), "flagged", (json_int_t)b->flagged,
                  "flag_rate", ratio(b->flagged, b->units), "prada_fpr", ratio(b->caught[1], b->units), "mmd_window_fpr",
                  have_ref && b->units ? json_real(ratio(b->caught[2], b->units)) : json_null(), "rate_limit_429_rate",
                  ratio(b->caught[3], b->units)));
    json_t *bj = json_object_get(root, "benign");
    json_object_set_new(bj, "fpr_ci95", wilson_json(b->caught[0], b->units));
    json_object_set_new(bj, "held", json_integer((json_int_t)b->held));
    json_object_set_new(bj, "verify", json_integer((json_int_t)b->verify)); /* asked to verify: the price */
    json_object_set_new(
        root, "attack",
        json_pack("{s:I, s:I, s:f, s:I, s:f, s:o, s:f}", "attackers", (json_int_t)a->units, "caught",
                  (json_int_t)a->caught[0], "tpr", ratio(a->caught[0], a->units), "stopped_within_1000_queries",
                  (json_int_t)a->within_1000, "prada_tpr", ratio(a->caught[1], a->units), "mmd_window_tpr",
                  have_ref && a->units ? json_real(ratio(a->caught[2], a->units)) : json_null(), "rate_limit_429_rate",
                  ratio(a->caught[3], a->units)));
    json_t *aj = json_object_get(root, "attack");
    json_object_set_new(aj, "tpr_ci95", wilson_json(a->caught[0], a->units));
    json_object_set_new(aj, "held", json_integer((json_int_t)a->held));
    json_object_set_new(aj, "verify", json_integer((json_int_t)a->verify));
    json_object_set_new(aj, "suspended_or_held_ci95", wilson_json(a->caught[0] + a->held, a->units));
}

static long long jint(json_t *o, const char *k) { return (long long)json_integer_value(json_object_get(o, k)); }

static void print_strategy_line(FILE *out, const char *k, json_t *v) {
    int attack = !strcmp(json_string_value(json_object_get(v, "label")), "attack");
    json_t *gj = json_object_get(v, "guard"), *pj = json_object_get(v, "prada"), *mj = json_object_get(v, "mmd_window"),
           *rj = json_object_get(v, "rate_limit");
    double units = (double)jint(gj, "units");
    char gq[40] = "", pq[24] = "", mq[24] = "";
    json_t *qb = json_object_get(gj, "queries_before_caught");
    if (attack && json_is_object(qb))
        snprintf(gq, sizeof gq, "%.0f/%lld", json_number_value(json_object_get(qb, "median")), jint(qb, "max"));
    json_t *pb = json_object_get(pj, "queries_before_caught");
    if (attack && json_is_object(pb)) snprintf(pq, sizeof pq, "%.0f", json_number_value(json_object_get(pb, "median")));
    json_t *mb = json_is_object(mj) ? json_object_get(mj, "queries_before_caught") : NULL;
    if (attack && json_is_object(mb)) snprintf(mq, sizeof mq, "%.0f", json_number_value(json_object_get(mb, "median")));
    fprintf(out, "%-10s %-6s %5.0f | %4lld/%-4.0f %5.1f%% %-13s | %4lld %5.1f%% %-8s | %4lld %5.1f%% %-8s | %lld\n", k,
            attack ? "attack" : "benign", units, jint(gj, "caught"), units, 100.0 * jint(gj, "caught") / fmax(1, units),
            gq, jint(pj, "caught"), 100.0 * jint(pj, "caught") / fmax(1, units), pq,
            json_is_object(mj) ? jint(mj, "caught") : -1LL,
            json_is_object(mj) ? 100.0 * jint(mj, "caught") / fmax(1, units) : 0.0, mq, jint(rj, "caught"));
}

/* The guard's result per operation: what happened to each attacker (and to any benign account
 * something happened to), with what it was served before the first enforcing action. */
static void print_units(FILE *out, json_t *root) {
    fprintf(out, "\nper operation (guard): outcome; queries/tokens served before the first enforcing action, and in all\n");
    fprintf(out, "%-10s %-6s %-22s %5s %-17s %17s %17s\n", "strategy", "label", "unit", "keys", "outcome", "before action",
            "in all");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(root, "strategies"), k, v) {
        json_t *g = json_object_get(v, "guard"), *u;
        size_t i;
        json_array_foreach(json_object_get(g, "units_detail"), i, u) {
            char b1[40], b2[40];
            snprintf(b1, sizeof b1, "%lld/%lld", jint(u, "served_before_action"), jint(u, "tokens_before_action"));
            snprintf(b2, sizeof b2, "%lld/%lld", jint(u, "served"), jint(u, "tokens"));
            fprintf(out, "%-10s %-6s %-22.22s %5lld %-17s %17s %17s\n", k, json_string_value(json_object_get(v, "label")),
                    json_string_value(json_object_get(u, "unit")), jint(u, "keys"),
                    json_string_value(json_object_get(u, "outcome")), b1, b2);
        }
    }
}

static void print_ci(FILE *out, const char *what, json_t *ci) {
    if (json_is_array(ci))
        fprintf(out, "%s [%.2f%%, %.2f%%]", what, 100 * json_number_value(json_array_get(ci, 0)),
                100 * json_number_value(json_array_get(ci, 1)));
}

static void print_heldout(FILE *out, json_t *h) {
    if (!json_is_object(h)) return;
    json_t *c = json_object_get(h, "calibration"), *e = json_object_get(h, "evaluation");
    char *cs = json_dumps(c, JSON_COMPACT), *es = json_dumps(e, JSON_COMPACT), *sh = json_dumps(json_object_get(h, "shared"), JSON_COMPACT);
    fprintf(out, "\nheld out from calibration (%s):\n  calibration: %s\n  evaluation:  %s\n  shared:      %s\n",
            json_string_value(json_object_get(h, "calibration_db")), cs ? cs : "?", es ? es : "?", sh ? sh : "?");
    free(cs);
    free(es);
    free(sh);
}

static void print_text(FILE *out, json_t *root, const char *db_path, double delta, size_t mmd_window) {
    fprintf(out, "guard evaluation of %s (%s mode; PRADA delta %.4f; MMD window %zu)\n", db_path,
            json_string_value(json_object_get(root, "mode")), delta, mmd_window);
    fprintf(out, "%-10s %-6s %5s | %-34s | %-22s | %-22s | %s\n", "strategy", "label", "units",
            "guard: caught  q-before med/max", "PRADA: caught  q med", "MMD-1500: caught q med", "rate-limit: 429 seen");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(root, "strategies"), k, v) print_strategy_line(out, k, v);
    json_t *b = json_object_get(root, "benign"), *a = json_object_get(root, "attack");
    fprintf(out, "benign accounts: %lld, suspended %lld (FPR %.2f%%), flagged %lld; PRADA FPR %.2f%%; rate limits hit %.1f%%\n",
            jint(b, "accounts"), jint(b, "suspended"), 100 * json_number_value(json_object_get(b, "fpr")),
            jint(b, "flagged"), 100 * json_number_value(json_object_get(b, "prada_fpr")),
            100 * json_number_value(json_object_get(b, "rate_limit_429_rate")));
    fprintf(out, "attackers: %lld, caught %lld (TPR %.1f%%), fully stopped within 1000 queries: %lld; PRADA TPR %.1f%%\n",
            jint(a, "attackers"), jint(a, "caught"), 100 * json_number_value(json_object_get(a, "tpr")),
            jint(a, "stopped_within_1000_queries"), 100 * json_number_value(json_object_get(a, "prada_tpr")));
    print_ci(out, "benign suspended: Wilson 95%", json_object_get(b, "fpr_ci95"));
    fprintf(out, "; asked to verify %lld; held %lld (verify included)\n", jint(b, "verify"), jint(b, "held"));
    print_ci(out, "attackers suspended: Wilson 95%", json_object_get(a, "tpr_ci95"));
    fprintf(out, "; held (not suspended) %lld, of them asked to verify %lld", jint(a, "held"), jint(a, "verify"));
    print_ci(out, "; suspended or held: Wilson 95%", json_object_get(a, "suspended_or_held_ci95"));
    fprintf(out, "\n");
    print_units(out, root);
    print_heldout(out, json_object_get(root, "held_out"));
}

/* ---------------------------------------------------------------- held out from calibration */

static json_t *names_json(const name_set *s) {
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++) json_array_append_new(a, json_string(s->v[i]));
    return a;
}

/* The seeds, prompt sources, strategies and personas of a set of labels. seeds: n * 24 bytes. */
static json_t *label_sets(const guard_label *l, size_t n, char (*seeds)[24], name_set *ss, name_set *so, name_set *st) {
    for (size_t i = 0; i < n; i++) {
        snprintf(seeds[i], sizeof seeds[i], "%llu", (unsigned long long)l[i].seed);
        if (name_add(ss, seeds[i]) || name_add(so, l[i].source) || name_add(st, l[i].strategy)) return NULL;
    }
    return json_pack("{s:I, s:o, s:o, s:o}", "accounts", (json_int_t)n, "seeds", names_json(ss), "sources",
                     names_json(so), "strategies", names_json(st));
}

static int in_set(const name_set *s, const char *x) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) return 1;
    return 0;
}

/* What of the evaluation's traffic calibration never saw: overall, and per strategy. */
static int heldout_add(json_t *root, const char *calib_db, const guard_label *el, size_t en, const guard_label *cl, size_t cn) {
    char(*es)[24] = rt_calloc(en + 1, 24, "eval seeds"), (*cs)[24] = rt_calloc(cn + 1, 24, "calibration seeds");
    name_set e_seed = {0}, e_src = {0}, e_str = {0}, c_seed = {0}, c_src = {0}, c_str = {0}, sh_seed = {0}, sh_src = {0};
    int rc = -1;
    json_t *ej = NULL, *cj = NULL;
    if (!es || !cs) goto out;
    ej = label_sets(el, en, es, &e_seed, &e_src, &e_str);
    cj = label_sets(cl, cn, cs, &c_seed, &c_src, &c_str);
    if (!ej || !cj) goto out;
    for (size_t i = 0; i < e_seed.n; i++)
        if (in_set(&c_seed, e_seed.v[i]) && name_add(&sh_seed, e_seed.v[i])) goto out;
    for (size_t i = 0; i < e_src.n; i++)
        if (in_set(&c_src, e_src.v[i]) && name_add(&sh_src, e_src.v[i])) goto out;
    size_t shared_acc = 0;
    for (size_t i = 0; i < en; i++)
        for (size_t j = 0; j < cn; j++)
            if (!strcmp(el[i].name, cl[j].name)) {
                shared_acc++;
                break;
            }
    json_t *h = json_pack("{s:s, s:O, s:O, s:{s:o, s:o, s:I}}", "calibration_db", calib_db, "calibration", cj,
                          "evaluation", ej, "shared", "seeds", names_json(&sh_seed), "sources", names_json(&sh_src),
                          "accounts", (json_int_t)shared_acc);
    json_object_set_new(root, "held_out", h);
    /* per strategy: was the strategy, or any of its sources, in calibration */
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(root, "strategies"), k, v) {
        name_set srcs = {0};
        for (size_t i = 0; i < en; i++)
            if (!strcmp(el[i].strategy, k) && name_add(&srcs, el[i].source)) {
                free(srcs.v);
                goto out;
            }
        json_t *seen = json_array();
        for (size_t i = 0; i < srcs.n; i++)
            if (in_set(&c_src, srcs.v[i])) json_array_append_new(seen, json_string(srcs.v[i]));
        json_object_set_new(v, "held_out",
                            json_pack("{s:b, s:o, s:o}", "strategy_in_calibration", in_set(&c_str, k), "sources",
                                      names_json(&srcs), "sources_in_calibration", seen));
        free(srcs.v);
    }
    rc = 0;
out:
    json_decref(ej);
    json_decref(cj);
    free(es);
    free(cs);
    free(e_seed.v), free(e_src.v), free(e_str.v), free(c_seed.v), free(c_src.v), free(c_str.v), free(sh_seed.v);
    free(sh_src.v);
    return rc;
}

/* Every strategy (in label order of first appearance) and the totals, as JSON. */
static json_t *eval_json(const ev_data *d, const char *db_path, int have_ref, double delta, size_t mmd_window) {
    name_set strat = {0};
    int64_t *buf = rt_malloc_array(d->n * 8 + 8, sizeof(int64_t), "eval buffers");
    json_t *root = json_pack("{s:s, s:s, s:f, s:I, s:o}", "db", db_path, "mode",
                             d->any_enforce ? "enforce" : d->any_shadow ? "shadow" : "none", "prada_delta", delta,
                             "mmd_window", (json_int_t)mmd_window, "strategies", json_object());
    eval_totals tb = {0}, ta = {0};
    if (!buf || !root) goto fail;
    for (size_t i = 0; i < d->n; i++)
        if (name_add(&strat, d->a[i].label->strategy)) goto fail;
    json_t *strategies = json_object_get(root, "strategies");
    for (size_t si = 0; si < strat.n; si++) {
        json_t *so = eval_strategy(d, strat.v[si], have_ref, buf, &tb, &ta);
        if (!so) goto fail;
        json_object_set_new(strategies, strat.v[si], so);
    }
    eval_add_totals(root, &tb, &ta, have_ref);
    free(buf);
    free(strat.v);
    return root;
fail:
    free(buf);
    free(strat.v);
    json_decref(root);
    return NULL;
}

int guard_eval(const guard_eval_options *o, FILE *out) {
    if (!o->db_path || !rt_file_exists(o->db_path))
        return RT_FAIL_KIND(RT_ERR_NOT_FOUND, "--db: %s does not exist", o->db_path ? o->db_path : "(none)");
    gw_db *db = NULL;
    ev_data d = {0};
    load_ctx lc = {&d, NULL, 0};
    guard_event_list ev = {0};
    guard_reference ref;
    guard_reference_init(&ref);
    int have_ref = 0;
    json_t *root = NULL;
    gw_db *cdb = NULL;
    guard_label *clabels = NULL;
    size_t n_clabels = 0;
    int rc = -1;
    if (gw_db_open(&db, o->db_path) || guard_db_init(db)) goto out;
    if (gw_db_with(db, load_fn, &lc)) {
        RT_FAIL("%s: %s", o->db_path, rt_errmsg());
        goto out;
    }
    qsort(d.a, d.n, sizeof *d.a, cmp_acct);
    if (o->reference_path) {
        if (guard_reference_load(&ref, o->reference_path)) goto out;
        have_ref = 1;
    }
    double delta = o->prada_delta > 0 ? o->prada_delta : have_ref && ref.prada_delta > 0 ? ref.prada_delta : 0.95;
    size_t mmd_window = o->mmd_window ? o->mmd_window : 1500;
    if (guard_events_read(db, &ev)) goto out;
    if (run_baselines(&d, &ev, have_ref ? &ref : NULL, delta, mmd_window)) goto out;
    root = eval_json(&d, o->db_path, have_ref, delta, mmd_window);
    if (!root) goto out;
    if (o->calib_db_path) {
        if (!rt_file_exists(o->calib_db_path)) {
            RT_FAIL_KIND(RT_ERR_NOT_FOUND, "--calibration-db: %s does not exist", o->calib_db_path);
            goto out;
        }
        if (gw_db_open(&cdb, o->calib_db_path) || guard_labels_load(cdb, &clabels, &n_clabels)) goto out;
        if (heldout_add(root, o->calib_db_path, lc.labels, lc.n_labels, clabels, n_clabels)) goto out;
    }
    if (o->as_json) {
        char *s = rt_json_reals(json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
        if (!s) goto out;
        fprintf(out, "%s\n", s);
        free(s);
    } else {
        print_text(out, root, o->db_path, delta, mmd_window);
    }
    rc = 0;
out:
    json_decref(root);
    guard_events_free(&ev);
    guard_reference_free(&ref);
    free(d.a);
    free(lc.labels);
    free(clabels);
    gw_db_close(cdb);
    gw_db_close(db);
    return rc;
}
