/*
 * report.c — `retort report`: one self-contained HTML evidence report from a gateway
 * database. It reads the ledger (usage, accounts), the guard's scores and actions, the
 * simulator's labels when the traffic was simulated, and the evidence tables (evidence.c):
 * harvests, models, radioactivity tests. Sections: summary, accounts and suspensions with the
 * risk over time, what the harvesters got, the students built from it, radioactivity, the
 * cost of every model, the evidence chain per suspended account, method and reproduction.
 *
 * Training cost in GPU terms: FLOPs / (sustained FLOP/s of one GPU) → GPU-hours → dollars at
 * a stated rate. The default sustained rate, 3.3e14 FLOP/s, is what DeepSeek-V3's report
 * implies for its H800s (6 × 37e9 active parameters × 14.8e12 tokens ≈ 3.3e24 FLOPs over
 * 2.788M GPU-hours), at its stated $2 per GPU-hour. Both are options.
 *
 * Not here: SVG drawing (svg.c), filling the evidence tables (evidence.c).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../defend/defend.h"
#include "../plot/plot.h"
#include "report.h"

void report_options_defaults(report_options *o) {
    memset(o, 0, sizeof *o);
    o->gpu_rate_usd = 2.0;
    o->gpu_flops = 3.3e14;
}

/* ---------------------------------------------------------------- what the database holds */

typedef struct {
    int64_t id;
    char *name, *status, *reason;
    char *persona, *strategy, *grp; /* simulator labels ("" when unlabelled) */
    int attack;                     /* 1 attacker, 0 benign, -1 unknown */
    int64_t link;                   /* the guard's linked group (guard_groups_read; 0: none) */
    int64_t requests, served, refused403;
    double tokens;
    double t_susp; /* first enforced suspension (NAN: none) */
    int throttled; /* an enforced throttle at some point */
    int verify;    /* asked to verify by the guard at some point (refused as a suspension is) */
    char *code, *evidence;
    double risk_susp;
    double t_thr, risk_thr;                 /* its first enforced throttle (NAN: none) */
    char *thr_code, *thr_reason, *thr_evidence; /* that throttle's row ("" when none) */
    double risk_max; /* highest guard score (NAN: never scored) */
} acct;

/* What the guard did to an account, the strongest first. */
typedef enum { ACT_NONE, ACT_FLAGGED, ACT_THROTTLED, ACT_SUSPENDED } act_kind;

typedef struct {
    char *name; /* group label (simulator grp, else the account name) */
    char *strategy;
    int attack;
    size_t *members, n, cap;
    size_t n_susp, n_throttled, n_verify;
    double t_susp;
    int64_t served_before, served_total;
    double tokens_before, tokens_total;
} group;

typedef struct {
    char *name, *role, *guard, *path, *sha, *trained_on, *command;
    int64_t params;
    double tokens, flops, seconds, loss, kl, top1;
} mrow;

typedef struct {
    char *name, *guard, *strategy, *path, *sha, *accounts;
    int64_t lines, tokens, matched;
} hrow;

typedef struct {
    char *model, *mode, *key_id, *scheme, *control_p, *command;
    int64_t scored, green, controls;
    double z, p, log10p, cmin, cks;
    int detected;
} trow;

typedef struct {
    char *name, *caption, *path, *sha, *command, *b64;
    int64_t bytes;
} frow;

typedef struct {
    gw_conn *db;
    const char *path;
    char **mk, **mv;
    size_t nm;
    acct *a;
    size_t na;
    group *g;
    size_t ng;
    mrow *m;
    size_t nmod;
    hrow *h;
    size_t nh;
    trow *t;
    size_t nt;
    frow *f;
    size_t nf;
    guard_pair_link *pl; /* labelled: the pairs the guard linked, with their kinds of evidence */
    size_t npl;
    int labelled, have_guard;
    double t0, t1; /* time span of the generation requests (a /v1/models probe may carry wall-clock time) */
    double flag_at, throttle_at, suspend_at;
    int64_t rows;
} rep;

/* suspended (by the guard or an operator), throttled by the guard, or scored at or above the
 * policy's flag threshold */
static act_kind action_of(const rep *r, const acct *a) {
    if (isfinite(a->t_susp) || !strcmp(a->status, "suspended")) return ACT_SUSPENDED;
    if (a->throttled) return ACT_THROTTLED;
    if (r->have_guard && a->risk_max >= r->flag_at) return ACT_FLAGGED;
    return ACT_NONE;
}
static const char *action_name(act_kind k) {
    return k == ACT_SUSPENDED ? "suspended" : k == ACT_THROTTLED ? "throttled" : k == ACT_FLAGGED ? "flagged" : "none";
}

static const char *meta(const rep *r, const char *key) {
    for (size_t i = 0; i < r->nm; i++)
        if (!strcmp(r->mk[i], key)) return r->mv[i];
    return NULL;
}

static char *col_str(gw_stmt *st, int i) {
    const char *s = gw_column_text(st, i);
    return rt_strdup(s ? s : "");
}
static double col_num(gw_stmt *st, int i) {
    return gw_column_is_null(st, i) ? NAN : gw_column_double(st, i);
}

static int q_fail(rep *r, const char *what) { return gw_sql_fail(r->db, what); }

/* Room for one more element of arr (n used, cap allocated), or goto fail. */
#define GROW(arr, n, cap, what)                                                                                \
    do {                                                                                                       \
        if (RT_GROW((arr), (cap), (n) + 1, (what))) goto fail;                                                 \
    } while (0)

static acct *acct_by_id(rep *r, int64_t id) {
    size_t lo = 0, hi = r->na; /* accounts are read ordered by id */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->a[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->na && r->a[lo].id == id ? &r->a[lo] : NULL;
}

static const guard_label *label_of(const guard_label *l, size_t n, int64_t id) {
    size_t lo = 0, hi = n; /* labels are read ordered by account id */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l[mid].account_id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && l[lo].account_id == id ? &l[lo] : NULL;
}

/* One non-admin account with its label (if any): the gateway's and the guard's readers. */
static int add_account(rep *r, size_t *cap, const gw_account *g, const guard_label *l) {
    if (RT_GROW(r->a, *cap, r->na + 1, "accounts")) return -1;
    acct *a = &r->a[r->na++];
    memset(a, 0, sizeof *a);
    a->id = g->id;
    a->name = rt_strdup(g->name);
    a->status = rt_strdup(g->status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active");
    a->reason = rt_strdup(g->reason);
    a->persona = rt_strdup(l ? l->persona : ""), a->strategy = rt_strdup(l ? l->strategy : "");
    a->grp = rt_strdup(l ? l->group : "");
    a->attack = l ? l->attack : -1;
    a->t_susp = NAN, a->risk_susp = NAN, a->risk_max = NAN;
    a->code = rt_strdup(""), a->evidence = rt_strdup("");
    a->t_thr = NAN, a->risk_thr = NAN;
    a->thr_code = rt_strdup(""), a->thr_reason = rt_strdup(""), a->thr_evidence = rt_strdup("");
    if (!a->name || !a->status || !a->reason || !a->persona || !a->strategy || !a->grp || !a->code || !a->evidence ||
        !a->thr_code || !a->thr_reason || !a->thr_evidence)
        return -1;
    return 0;
}

/* Usage per account, and the enforcing guard's suspensions and throttles. */
static int load_usage_and_actions(rep *r) {
    gw_usage *u = NULL;
    size_t nu = 0;
    if (gw_usage_read(r->db, -INFINITY, &u, &nu)) return -1;
    for (size_t i = 0; i < nu; i++) {
        acct *a = acct_by_id(r, u[i].account_id);
        if (!a) continue;
        a->requests = u[i].requests, a->served = u[i].ok_requests;
        a->tokens = (double)u[i].ok_completion_tokens, a->refused403 = u[i].refused_403;
    }
    free(u);
    if (gw_usage_span(r->db, &r->t0, &r->t1, &r->rows)) return -1;
    if (!r->have_guard) return 0;
    guard_enforcement *e = NULL;
    size_t ne = 0;
    if (guard_enforcement_read(r->db, &e, &ne)) return -1;
    int rc = 0;
    for (size_t i = 0; i < ne && !rc; i++) {
        acct *a = acct_by_id(r, e[i].account_id);
        if (!a) continue;
        a->throttled = e[i].throttled;
        a->verify = e[i].verify;
        if (e[i].throttled) {
            a->t_thr = e[i].t_throttle, a->risk_thr = e[i].throttle_risk;
            free(a->thr_code), free(a->thr_reason), free(a->thr_evidence);
            a->thr_code = rt_strdup(e[i].throttle_code), a->thr_reason = rt_strdup(e[i].throttle_reason);
            a->thr_evidence = rt_strdup(e[i].throttle_evidence);
            if (!a->thr_code || !a->thr_reason || !a->thr_evidence) rc = -1;
        }
        if (!isfinite(e[i].t_suspend)) continue;
        a->t_susp = e[i].t_suspend, a->risk_susp = e[i].risk;
        free(a->code), free(a->evidence);
        a->code = rt_strdup(e[i].code), a->evidence = rt_strdup(e[i].evidence);
        if (!a->code || !a->evidence) rc = -1;
    }
    guard_enforcement_free(e, ne);
    return rc;
}

static int max_risk(void *ud, double t, int64_t account_id, double risk) {
    acct *a = acct_by_id(ud, account_id);
    (void)t;
    if (a && isfinite(risk) && !(a->risk_max >= risk)) a->risk_max = risk;
    return 0;
}

/* Each account's linked group, as the dashboard shows it (the one definition in src/defend). */
static int load_links(rep *r) {
    guard_group_link *l = NULL;
    size_t nl = 0;
    if (guard_groups_read(r->db, &l, &nl)) return -1;
    for (size_t i = 0; i < nl; i++) {
        acct *a = acct_by_id(r, l[i].account_id);
        if (a) a->link = l[i].group_id;
    }
    free(l);
    return 0;
}

static int load_accounts(rep *r) {
    gw_account *g = NULL;
    guard_label *l = NULL;
    size_t ng = 0, nl = 0, cap = 0;
    int rc = -1;
    if (gw_accounts_read(r->db, &g, &ng)) {
        RT_FAIL("%s (is it a retort gateway database?)", rt_errmsg());
        goto out;
    }
    if (r->labelled && guard_labels_read(r->db, &l, &nl)) goto out;
    r->labelled = nl > 0; /* the guard's schema creates the labels table; only the simulator fills it */
    for (size_t i = 0; i < ng; i++)
        if (!g[i].is_admin && add_account(r, &cap, &g[i], label_of(l, nl, g[i].id))) goto out;
    rc = load_usage_and_actions(r);
    if (!rc && r->have_guard) rc = guard_scores_each(r->db, max_risk, r);
    if (!rc && r->have_guard) rc = load_links(r);
    if (!rc && r->have_guard && r->labelled) rc = guard_pair_links_read(r->db, &r->pl, &r->npl);
out:
    free(g);
    free(l);
    return rc;
}

/* Whether the guard suspended, throttled or asked to verify a (the accounts an unlabelled report investigates). */
static int acted_on(const acct *a) { return isfinite(a->t_susp) || a->throttled || a->verify; }

/* Unlabelled: whether a is in a linked group with a member the guard suspended or throttled. */
static int link_acted(const rep *r, const acct *a) {
    if (!a->link) return 0;
    for (size_t i = 0; i < r->na; i++)
        if (r->a[i].link == a->link && acted_on(&r->a[i])) return 1;
    return 0;
}

/* Attack groups: the simulator's group label; unlabelled, the guard's linked group (the
 * dashboard's), else each account the guard acted on on its own. */
static int build_groups(rep *r) {
    size_t cap = 0;
    for (size_t i = 0; i < r->na; i++) {
        acct *a = &r->a[i];
        int attack = a->attack;
        /* unlabelled: an account the guard suspended or throttled, or linked to one, is under investigation */
        if (attack < 0) attack = acted_on(a) || link_acted(r, a);
        if (!attack) continue;
        char linked[48];
        snprintf(linked, sizeof linked, "linked group #%lld", (long long)a->link);
        const char *gname = *a->grp ? a->grp : a->link ? linked : a->name;
        group *g = NULL;
        for (size_t k = 0; k < r->ng; k++)
            if (!strcmp(r->g[k].name, gname)) g = &r->g[k];
        if (!g) {
            GROW(r->g, r->ng, cap, "groups");
            g = &r->g[r->ng++];
            memset(g, 0, sizeof *g);
            g->name = rt_strdup(gname);
            g->strategy = rt_strdup(*a->strategy ? a->strategy
                                   : a->link           ? "linked by the guard"
                                   : isfinite(a->t_susp) ? "suspended"
                                                         : "throttled");
            g->attack = 1;
            g->t_susp = NAN;
            if (!g->name || !g->strategy) goto fail;
        }
        GROW(g->members, g->n, g->cap, "group members");
        g->members[g->n++] = i;
        g->served_total += a->served;
        g->n_throttled += (size_t)a->throttled;
        g->n_verify += (size_t)(a->verify && !isfinite(a->t_susp));
        g->tokens_total += a->tokens;
        if (isfinite(a->t_susp)) {
            g->n_susp++;
            if (!isfinite(g->t_susp) || a->t_susp < g->t_susp) g->t_susp = a->t_susp;
        }
    }
    /* served before the group's first suspension, over all its keys */
    for (size_t k = 0; k < r->ng; k++) {
        group *g = &r->g[k];
        if (!isfinite(g->t_susp)) {
            g->served_before = g->served_total, g->tokens_before = g->tokens_total;
            continue;
        }
        for (size_t j = 0; j < g->n; j++) {
            int64_t served = 0, tokens = 0;
            if (gw_usage_served_until(r->db, r->a[g->members[j]].id, g->t_susp, &served, &tokens)) goto fail;
            g->served_before += served, g->tokens_before += (double)tokens;
        }
    }
    return 0;
fail:
    return -1;
}

static int load_evidence(rep *r) {
    gw_stmt *st = NULL;
    size_t cap = 0;
    if (gw_sql_prepare(r->db, "SELECT key, value FROM report_meta ORDER BY key", &st, NULL) != 0)
        return q_fail(r, "report_meta");
    while (gw_step(st) == GW_ROW) {
        if (r->nm == cap) {
            size_t nc = cap ? cap * 2 : 32;
            char **k = rt_realloc(r->mk, nc * sizeof *k, "meta"), **v;
            if (!k) goto fail;
            r->mk = k;
            if (!(v = rt_realloc(r->mv, nc * sizeof *v, "meta"))) goto fail;
            r->mv = v, cap = nc;
        }
        r->mk[r->nm] = col_str(st, 0), r->mv[r->nm] = col_str(st, 1);
        r->nm++;
    }
    gw_finalize(st);
    st = NULL, cap = 0;
    if (gw_sql_prepare(r->db, "SELECT name, guard, strategy, path, sha256, accounts, lines, completion_tokens, matched "
                           "FROM report_harvests ORDER BY strategy, guard DESC, name", &st, NULL) != 0)
        return q_fail(r, "report_harvests");
    while (gw_step(st) == GW_ROW) {
        GROW(r->h, r->nh, cap, "harvests");
        hrow *h = &r->h[r->nh++];
        h->name = col_str(st, 0), h->guard = col_str(st, 1), h->strategy = col_str(st, 2);
        h->path = col_str(st, 3), h->sha = col_str(st, 4), h->accounts = col_str(st, 5);
        h->lines = gw_column_int64(st, 6), h->tokens = gw_column_int64(st, 7);
        h->matched = gw_column_int64(st, 8);
    }
    gw_finalize(st);
    st = NULL, cap = 0;
    if (gw_sql_prepare(r->db, "SELECT name, role, guard, path, sha256, trained_on, command, params, tokens, flops, "
                           "seconds, loss, kl, top1 FROM report_models ORDER BY added_at, name", &st, NULL) != 0)
        return q_fail(r, "report_models");
    while (gw_step(st) == GW_ROW) {
        GROW(r->m, r->nmod, cap, "models");
        mrow *m = &r->m[r->nmod++];
        m->name = col_str(st, 0), m->role = col_str(st, 1), m->guard = col_str(st, 2), m->path = col_str(st, 3);
        m->sha = col_str(st, 4), m->trained_on = col_str(st, 5), m->command = col_str(st, 6);
        m->params = gw_column_int64(st, 7);
        m->tokens = col_num(st, 8), m->flops = col_num(st, 9), m->seconds = col_num(st, 10);
        m->loss = col_num(st, 11), m->kl = col_num(st, 12), m->top1 = col_num(st, 13);
    }
    gw_finalize(st);
    st = NULL, cap = 0;
    if (gw_sql_prepare(r->db, "SELECT model, mode, key_id, scheme, control_p, command, tokens_scored, green, controls, "
                           "z, p_value, log10_p, control_min_p, control_ks_p, detected FROM report_tests ORDER BY id", &st, NULL) != 0)
        return q_fail(r, "report_tests");
    while (gw_step(st) == GW_ROW) {
        GROW(r->t, r->nt, cap, "tests");
        trow *t = &r->t[r->nt++];
        t->model = col_str(st, 0), t->mode = col_str(st, 1), t->key_id = col_str(st, 2), t->scheme = col_str(st, 3);
        t->control_p = col_str(st, 4), t->command = col_str(st, 5);
        t->scored = gw_column_int64(st, 6), t->green = gw_column_int64(st, 7);
        t->controls = gw_column_int64(st, 8);
        t->z = col_num(st, 9), t->p = col_num(st, 10), t->log10p = col_num(st, 11);
        t->cmin = col_num(st, 12), t->cks = col_num(st, 13), t->detected = gw_column_int(st, 14);
    }
    gw_finalize(st);
    st = NULL, cap = 0;
    if (gw_sql_prepare(r->db, "SELECT name, caption, path, sha256, command, svg_base64, bytes FROM report_figures "
                           "ORDER BY added_at, name", &st, NULL) != 0)
        return q_fail(r, "report_figures");
    while (gw_step(st) == GW_ROW) {
        GROW(r->f, r->nf, cap, "figures");
        frow *f = &r->f[r->nf++];
        f->name = col_str(st, 0), f->caption = col_str(st, 1), f->path = col_str(st, 2), f->sha = col_str(st, 3);
        f->command = col_str(st, 4), f->b64 = col_str(st, 5), f->bytes = gw_column_int64(st, 6);
    }
    gw_finalize(st);
    return 0;
fail:
    gw_finalize(st);
    return -1;
}

static void rep_free(rep *r) {
    for (size_t i = 0; i < r->nm; i++) free(r->mk[i]), free(r->mv[i]);
    free(r->mk), free(r->mv);
    for (size_t i = 0; i < r->na; i++) {
        acct *a = &r->a[i];
        free(a->name), free(a->status), free(a->reason), free(a->persona), free(a->strategy), free(a->grp);
        free(a->code), free(a->evidence), free(a->thr_code), free(a->thr_reason), free(a->thr_evidence);
    }
    free(r->a);
    free(r->pl);
    for (size_t i = 0; i < r->ng; i++) free(r->g[i].name), free(r->g[i].strategy), free(r->g[i].members);
    free(r->g);
    for (size_t i = 0; i < r->nmod; i++) {
        mrow *m = &r->m[i];
        free(m->name), free(m->role), free(m->guard), free(m->path), free(m->sha), free(m->trained_on);
        free(m->command);
    }
    free(r->m);
    for (size_t i = 0; i < r->nh; i++) {
        hrow *h = &r->h[i];
        free(h->name), free(h->guard), free(h->strategy), free(h->path), free(h->sha), free(h->accounts);
    }
    free(r->h);
    for (size_t i = 0; i < r->nt; i++) {
        trow *t = &r->t[i];
        free(t->model), free(t->mode), free(t->key_id), free(t->scheme), free(t->control_p), free(t->command);
    }
    free(r->t);
    for (size_t i = 0; i < r->nf; i++) {
        frow *f = &r->f[i];
        free(f->name), free(f->caption), free(f->path), free(f->sha), free(f->command), free(f->b64);
    }
    free(r->f);
    memset(r, 0, sizeof *r);
}

static int rep_load(rep *r, gw_conn *db, const char *path) {
    memset(r, 0, sizeof *r);
    r->db = db, r->path = path;
    r->t0 = r->t1 = NAN;
    if (!gw_sql_has_table(db, "accounts") || !gw_sql_has_table(db, "usage"))
        return RT_FAIL("%s: not a retort gateway database (no accounts or usage table)", path);
    r->have_guard = gw_sql_has_table(db, "guard_actions");
    r->labelled = gw_sql_has_table(db, "guard_sim_accounts");
    guard_policy p;
    guard_policy_defaults(&p);
    char *js = NULL; /* the policy the server ran with, if it stored one */
    if (!(gw_config_read(db, "guard.policy", &js) == 0 && js &&
          guard_policy_parse(&p, js, strlen(js), "stored guard.policy") == 0))
        guard_policy_defaults(&p);
    r->flag_at = p.flag_at, r->throttle_at = p.throttle_at, r->suspend_at = p.suspend_at;
    free(js);
    rt_err_clear();
    if (load_accounts(r) || build_groups(r) || load_evidence(r)) {
        rep_free(r);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- numbers */

typedef struct {
    size_t groups, groups_caught, groups_throttled_only, accounts_susp_attack, benign, benign_susp, sybil_keys, sybil_susp;
    size_t groups_verify_only, benign_verify; /* asked to verify, never suspended */
    size_t by_action[4]; /* accounts per act_kind */
    double tok_on, tok_off;
    const mrow *teacher, *st_on, *st_off, *st_clean;
    const mrow *st_adist; /* guard "off-antidistill": the unguarded harvest served again with antidistillation */
    const mrow *st_regen; /* guard "off-regenerated": the same, plain sampling (its control) */
    const trow *t_on, *t_off, *t_clean;
} headline;

/* The model's primary test: closed mode (what works through an API) when there is one, else
 * the first recorded. One pre-chosen test per model keeps the summary's p-values honest; the
 * report's table shows every test. */
static const trow *best_test(const rep *r, const char *model) {
    const trow *first = NULL;
    for (size_t i = 0; i < r->nt; i++) {
        if (strcmp(r->t[i].model, model)) continue;
        if (!strcmp(r->t[i].mode, "closed")) return &r->t[i];
        if (!first) first = &r->t[i];
    }
    return first;
}

static void headline_of(const rep *r, headline *h) {
    memset(h, 0, sizeof *h);
    for (size_t k = 0; k < r->ng; k++) {
        h->groups++;
        h->groups_caught += r->g[k].n_susp > 0;
        h->groups_verify_only += r->g[k].n_susp == 0 && r->g[k].n_verify > 0;
        h->groups_throttled_only += r->g[k].n_susp == 0 && r->g[k].n_verify == 0 && r->g[k].n_throttled > 0;
        h->accounts_susp_attack += r->g[k].n_susp;
        if (r->g[k].n > h->sybil_keys) h->sybil_keys = r->g[k].n, h->sybil_susp = r->g[k].n_susp;
    }
    for (size_t i = 0; i < r->na; i++) {
        h->by_action[action_of(r, &r->a[i])]++;
        if (r->a[i].attack == 0 || (r->a[i].attack < 0 && !acted_on(&r->a[i]) && !link_acted(r, &r->a[i]))) {
            h->benign++;
            /* a verification holds the gateway status at suspended: counted apart, not as a suspension */
            int verify_only = r->a[i].verify && !isfinite(r->a[i].t_susp);
            h->benign_susp += isfinite(r->a[i].t_susp) || (!verify_only && !strcmp(r->a[i].status, "suspended"));
            h->benign_verify += (size_t)verify_only;
        }
    }
    for (size_t i = 0; i < r->nh; i++) {
        if (!strcmp(r->h[i].guard, "on")) h->tok_on += (double)r->h[i].tokens;
        if (!strcmp(r->h[i].guard, "off")) h->tok_off += (double)r->h[i].tokens;
    }
    for (size_t i = 0; i < r->nmod; i++) {
        const mrow *m = &r->m[i];
        if (!strcmp(m->role, "teacher")) h->teacher = m;
        else if (!strcmp(m->role, "control")) h->st_clean = m;
        else if (!strcmp(m->guard, "on")) h->st_on = m;
        else if (!strcmp(m->guard, "off")) h->st_off = m;
        else if (!strcmp(m->guard, "off-antidistill")) h->st_adist = m;
        else if (!strcmp(m->guard, "off-regenerated")) h->st_regen = m;
    }
    if (h->st_on) h->t_on = best_test(r, h->st_on->name);
    if (h->st_off) h->t_off = best_test(r, h->st_off->name);
    if (h->st_clean) h->t_clean = best_test(r, h->st_clean->name);
}

static void fmt_p(char *b, size_t cap, const trow *t) {
    if (!t)
        snprintf(b, cap, "not tested");
    else if (t->p > 0)
        snprintf(b, cap, "p = %.2g%s", t->p, t->detected ? " (detected)" : "");
    else
        snprintf(b, cap, "p = 10^%.1f%s", t->log10p, t->detected ? " (detected)" : "");
}

static void fmt_quality(char *b, size_t cap, const mrow *m) {
    if (!m)
        snprintf(b, cap, "no student");
    else if (isfinite(m->top1))
        snprintf(b, cap, "loss %.3f, top-1 agreement %.1f%%", m->loss, 100 * m->top1);
    else
        snprintf(b, cap, "loss %.3f", m->loss);
}

static int summary_text(const rep *r, rt_buf *o) {
    headline h;
    headline_of(r, &h);
    char a[96], b[96], c[96], d[96], e[96];
    if (!r->labelled) { /* a real investigation: the guard's actions, not verdicts against labels */
        int rc = rt_buf_printf(o, "accounts by action: %zu suspended, %zu throttled, %zu flagged, of %zu accounts\n",
                               h.by_action[ACT_SUSPENDED], h.by_action[ACT_THROTTLED], h.by_action[ACT_FLAGGED], r->na) ||
                 rt_buf_printf(o,
                               "under investigation: %zu account%s in %zu operation%s (suspended or throttled by the "
                               "guard, or linked by it to such an account); %zu other account%s\n",
                               r->na - h.benign, r->na - h.benign == 1 ? "" : "s", h.groups, h.groups == 1 ? "" : "s",
                               h.benign, h.benign == 1 ? "" : "s");
        if (rc) return -1;
    }
    int rc = !r->labelled ? 0 : rt_buf_printf(o,
                           "attackers suspended: %zu of %zu harvesting operations (%zu accounts%s) — true positives",
                           h.groups_caught, h.groups, h.accounts_susp_attack,
                           h.sybil_keys > 1 ? ", incl. a linked sybil group" : "");
    if (r->labelled) {
        if (!rc && h.groups_verify_only) rc = rt_buf_printf(o, "; %zu more asked to verify", h.groups_verify_only);
        if (!rc && h.groups_throttled_only) rc = rt_buf_printf(o, "; %zu more throttled", h.groups_throttled_only);
        if (!rc) rc = rt_buf_printf(o, "\n");
        if (!rc)
            rc = rt_buf_printf(o, "benign accounts suspended: %zu of %zu — false positives (FPR %.2f%%)",
                               h.benign_susp, h.benign,
                               h.benign ? 100.0 * (double)h.benign_susp / (double)h.benign : 0.0);
        if (!rc && h.benign_verify) rc = rt_buf_printf(o, "; %zu asked to verify", h.benign_verify);
        if (!rc) rc = rt_buf_printf(o, "\n");
    }
    rt_fmt_si(a, sizeof a, h.tok_on);
    rt_fmt_si(b, sizeof b, h.tok_off);
    if (!rc && !r->nh)
        rc = rt_buf_printf(o, "tokens harvested: no harvest file recorded (retort report add-harvest)\n");
    else if (!rc)
        rc = rt_buf_printf(o, "tokens harvested: %s with the guard, %s without (%.1f%% kept)\n", a, b,
                           h.tok_off > 0 ? 100 * h.tok_on / h.tok_off : 0.0);
    fmt_quality(c, sizeof c, h.st_on);
    fmt_quality(d, sizeof d, h.st_off);
    if (!rc) {
        if (h.teacher && isfinite(h.teacher->loss))
            rc = rt_buf_printf(o, "attacker's student: %s with the guard; %s without (teacher loss %.3f)", c, d,
                               h.teacher->loss);
        else
            rc = rt_buf_printf(o, "attacker's student: %s with the guard; %s without", c, d);
        if (!rc && h.st_adist && h.st_regen)
            rc = rt_buf_printf(o, "; antidistilled outputs: student loss %.3f (%+.3f vs plain, loss %.3f)",
                               h.st_adist->loss, h.st_adist->loss - h.st_regen->loss, h.st_regen->loss);
        if (!rc) rc = rt_buf_printf(o, "\n");
    }
    fmt_p(a, sizeof a, h.t_off);
    fmt_p(b, sizeof b, h.t_on);
    fmt_p(e, sizeof e, h.t_clean);
    if (!rc)
        rc = rt_buf_printf(o, "radioactivity%s: student without guard %s; with guard %s; clean control %s\n",
                           h.t_off && !strcmp(h.t_off->mode, "closed") ? " (closed mode)" : "", a, b, e);
    return rc;
}

int report_summary(gw_conn *db, char **out) {
    *out = NULL;
    rep r;
    if (rep_load(&r, db, gw_conn_name(db))) return -1;
    rt_buf o = {0};
    int rc = summary_text(&r, &o);
    rep_free(&r);
    if (rc) {
        rt_buf_free(&o);
        return -1;
    }
    *out = o.data;
    return 0;
}

/* ---------------------------------------------------------------- HTML */

int report_html_escape(rt_buf *out, const char *s) { return plot_escape(out, s); }

static int esc(rt_buf *o, const char *s) { return report_html_escape(o, s); }

/* Stored JSON (an action's evidence) indented, with short reals, escaped; text that does not
 * parse is shown as it is. */
static int esc_json(rt_buf *o, const char *s) {
    json_t *j = s && *s ? json_loads(s, 0, NULL) : NULL;
    char *t = j ? rt_json_reals(json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) : NULL;
    int rc = esc(o, t ? t : s);
    free(t);
    json_decref(j);
    return rc;
}

static void fmt_time(char *b, size_t cap, const rep *r, double t) {
    if (!isfinite(t)) {
        snprintf(b, cap, "—");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(b, cap, "%Y-%m-%d %H:%M:%S", &tm);
    if (isfinite(r->t0)) {
        size_t l = strlen(b);
        snprintf(b + l, cap - l, " (+%.2f h)", (t - r->t0) / 3600);
    }
}

enum { RISK_BINS = 96 };
typedef struct {
    rep *r;
    const int *gi;       /* (na) attack group of each account, -1 benign */
    double *bmax;        /* (RISK_BINS) highest benign risk per time bin */
    double span;
    plot_series *s;
    double **xs, **ys;
    size_t *cap;
    double *t_thr;       /* (ng) hours at which each group's risk first reached the throttle threshold */
} risk_ctx;

/* One guard_scores row: a point of its attack group's series, or the benign envelope. */
static int risk_point(void *ud, double t, int64_t account_id, double risk) {
    risk_ctx *x = ud;
    rep *r = x->r;
    acct *a = acct_by_id(r, account_id);
    if (!a || !isfinite(risk)) return 0;
    int k = x->gi[a - r->a];
    double h = (t - r->t0) / 3600;
    if (k < 0) {
        int b = (int)((t - r->t0) / x->span * RISK_BINS);
        b = b < 0 ? 0 : b >= RISK_BINS ? RISK_BINS - 1 : b;
        if (!(x->bmax[b] >= risk)) x->bmax[b] = risk;
        return 0;
    }
    if (risk >= r->throttle_at && !isfinite(x->t_thr[k])) x->t_thr[k] = h;
    size_t n = x->s[k].n, c = x->cap[k];
    if (RT_GROW(x->xs[k], c, n + 1, "risk series")) return -1;
    c = x->cap[k];
    if (RT_GROW(x->ys[k], c, n + 1, "risk series")) return -1;
    x->cap[k] = c;
    x->xs[k][n] = h, x->ys[k][n] = risk;
    x->s[k].n = n + 1;
    return 0;
}

static int risk_chart(rep *r, rt_buf *o) {
    if (!r->have_guard) return rt_buf_printf(o, "<p>The guard did not run on this server: no risk scores.</p>");
    /* per attack group: risk over time of its accounts (max over the group per score row) */
    size_t ns = r->ng + 1;
    plot_series *s = rt_calloc(ns, sizeof *s, "risk series");
    double **xs = rt_calloc(ns, sizeof *xs, "risk series"), **ys = rt_calloc(ns, sizeof *ys, "risk series");
    size_t *cap = rt_calloc(ns, sizeof *cap, "risk series");
    int *gi = NULL;
    double *t_thr = rt_malloc_array(ns, sizeof *t_thr, "risk series");
    int rc = -1;
    if (!s || !xs || !ys || !cap || !t_thr) goto done;
    for (size_t k = 0; k < ns; k++) t_thr[k] = NAN;
    gi = rt_malloc_array(r->na ? r->na : 1, sizeof *gi, "risk series");
    if (!gi) goto done;
    for (size_t i = 0; i < r->na; i++) gi[i] = -1;
    for (size_t k = 0; k < r->ng; k++)
        for (size_t j = 0; j < r->g[k].n; j++) gi[r->g[k].members[j]] = (int)k;
    enum { BINS = RISK_BINS };
    double bmax[BINS];
    for (int b = 0; b < BINS; b++) bmax[b] = NAN;
    double span = isfinite(r->t1 - r->t0) && r->t1 > r->t0 ? r->t1 - r->t0 : 1;
    risk_ctx rc_ = {r, gi, bmax, span, s, xs, ys, cap, t_thr};
    if (guard_scores_each(r->db, risk_point, &rc_)) goto done;
    for (size_t k = 0; k < r->ng; k++) {
        s[k].name = r->g[k].strategy;
        s[k].color = plot_strategy_colour(r->g[k].strategy);
        s[k].x = xs[k], s[k].y = ys[k];
        s[k].mark_x = isfinite(r->g[k].t_susp) ? (r->g[k].t_susp - r->t0) / 3600 : NAN;
        if (!isfinite(r->g[k].t_susp) && r->g[k].n_throttled && isfinite(t_thr[k])) { /* throttled only */
            s[k].mark_x = t_thr[k];
            s[k].mark_label = "throttled";
            s[k].mark_title = "the risk reached the throttle threshold";
        }
    }
    /* benign envelope */
    size_t kb = r->ng, nb = 0;
    xs[kb] = rt_malloc_array(BINS, sizeof(double), "risk series");
    ys[kb] = rt_malloc_array(BINS, sizeof(double), "risk series");
    if (!xs[kb] || !ys[kb]) goto done;
    for (int b = 0; b < BINS; b++)
        if (isfinite(bmax[b])) xs[kb][nb] = (b + 0.5) * span / BINS / 3600, ys[kb][nb++] = bmax[b];
    s[kb] = (plot_series){.name = "benign (max)", .color = "#888", .x = xs[kb], .y = ys[kb], .n = nb,
                            .mark_x = NAN, .dashed = 1};
    plot_chart c = {.title = "Risk score over the day: each harvesting operation, and the highest benign account",
                      .xlabel = "hours since the first request",
                      .ylabel = "risk",
                      .width = 900,
                      .height = 320,
                      .hline = r->suspend_at,
                      .hline_label = "suspend threshold",
                      .xmin = 0,
                      .xmax = span / 3600,
                      .ymin = 0,
                      .ymax = NAN};
    /* the policy's other thresholds, in guard plot's colours */
    c.more[0] = (plot_hline){r->flag_at, "flag", "#bbbb00"};
    c.more[1] = (plot_hline){r->throttle_at, "throttle", "#ff9900"};
    c.n_more = 2;
    if (plot_lines(o, &c, s, ns)) goto done;
    /* small multiples: one chart per operation */
    if (rt_buf_printf(o, "<div class=\"grid\">")) goto done;
    for (size_t k = 0; k < r->ng; k++) {
        plot_series two[2] = {s[k], s[kb]};
        char title[128];
        snprintf(title, sizeof title, "%s (%zu key%s)", r->g[k].strategy, r->g[k].n, r->g[k].n == 1 ? "" : "s");
        plot_chart cc = c;
        cc.title = title, cc.width = 430, cc.height = 200, cc.hline_label = NULL;
        cc.more[0].label = cc.more[1].label = NULL;
        if (plot_lines(o, &cc, two, 2)) goto done;
    }
    rc = rt_buf_printf(o, "</div>");
done:
    if (xs)
        for (size_t k = 0; k < ns; k++) free(xs[k]);
    if (ys)
        for (size_t k = 0; k < ns; k++) free(ys[k]);
    free(xs), free(ys), free(cap), free(s), free(gi), free(t_thr);
    return rc;
}

static const char *css =
    "body{font:14px/1.45 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}table{border-collapse:collapse;"
    "margin:.8em 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}"
    "th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.summary{background:#f7f7ef;"
    "border:1px solid #ddd8b0;padding:.6em 1em;white-space:pre-wrap;font-family:monospace}code,.mono{font-family:"
    "monospace;font-size:12px;word-break:break-all}.grid{display:flex;flex-wrap:wrap;gap:8px}.bad{color:#b00}"
    ".good{color:#070}.chain{border-left:4px solid #d62728;padding-left:1em;margin:1.2em 0}"
    "details{margin:.4em 0}svg,figure img{max-width:100%;height:auto}figure{margin:1em 0}";

static int td_num(rt_buf *o, double v, const char *fmt) {
    if (!isfinite(v)) return rt_buf_printf(o, "<td class=n>—</td>");
    char b[64];
    snprintf(b, sizeof b, fmt, v);
    return rt_buf_printf(o, "<td class=n>%s</td>", b);
}

static int td_str(rt_buf *o, const char *s) {
    return rt_buf_printf(o, "<td>") || esc(o, s) || rt_buf_printf(o, "</td>");
}

static int list_contains(const char *list, const char *item) {
    size_t l = strlen(item);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == l && !strncmp(p, item, l)) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* Per-account attribution: every account the guard acted on, strongest action first, with what
 * it was served and which harvest files hold its outputs. */
static int sec_by_action(rep *r, rt_buf *o) {
    if (rt_buf_printf(o, "<h3>Accounts by action</h3>")) return -1;
    size_t shown = 0;
    for (int k = ACT_SUSPENDED; k > ACT_NONE; k--)
        for (size_t i = 0; i < r->na; i++) {
            acct *a = &r->a[i];
            if (action_of(r, a) != (act_kind)k) continue;
            if (!shown++ && rt_buf_printf(o, "<table><tr><th>account</th><th>action</th><th>suspended at</th>"
                                             "<th>highest risk</th><th>requests</th><th>served</th>"
                                             "<th>completion tokens served</th><th>refused (403)</th>"
                                             "<th>its outputs found in</th></tr>"))
                return -1;
            char t[64], risk[32] = "—";
            fmt_time(t, sizeof t, r, a->t_susp);
            if (isfinite(a->risk_max)) snprintf(risk, sizeof risk, "%.2f", a->risk_max);
            if (rt_buf_printf(o, "<tr>") || td_str(o, a->name) ||
                td_str(o, k == ACT_SUSPENDED && !isfinite(a->t_susp) && a->verify ? "verify" /* refused until verified */
                          : k == ACT_SUSPENDED && !isfinite(a->t_susp) ? "suspended (by an operator)"
                          : k == ACT_SUSPENDED && a->throttled ? "throttled, then suspended"
                                                               : action_name((act_kind)k)) ||
                td_str(o, t) ||
                rt_buf_printf(o,
                              "<td class=n>%s</td><td class=n>%lld</td><td class=n>%lld</td><td class=n>%.0f</td>"
                              "<td class=n>%lld</td><td>",
                              risk, (long long)a->requests, (long long)a->served, a->tokens,
                              (long long)a->refused403))
                return -1;
            size_t nh = 0;
            for (size_t j = 0; j < r->nh; j++)
                if (list_contains(r->h[j].accounts, a->name) &&
                    ((nh++ && rt_buf_printf(o, ", ")) || esc(o, r->h[j].name)))
                    return -1;
            if (rt_buf_printf(o, "%s</td></tr>", nh ? "" : "—")) return -1;
        }
    return shown ? rt_buf_printf(o, "</table>") : rt_buf_printf(o, "<p>The guard acted on no account.</p>");
}

/* The operation (group index) account id belongs to, or -1 (benign, or no such account). */
static long group_of(const rep *r, int64_t id) {
    for (size_t k = 0; k < r->ng; k++)
        for (size_t j = 0; j < r->g[k].n; j++)
            if (r->a[r->g[k].members[j]].id == id) return (long)k;
    return -1;
}

/* One operation's row of sec_links: how many of its keys one guard group held, the pairs the
 * guard linked inside it by kind of evidence, and its links to accounts outside it. */
static int links_row(const rep *r, size_t k, rt_buf *o) {
    const group *g = &r->g[k];
    size_t best = 0, inside = 0, outside = 0, by_kind[GUARD_LINK_KIND_COUNT] = {0};
    int64_t best_link = 0;
    for (size_t j = 0; j < g->n; j++) { /* the guard group holding most of its keys */
        int64_t l = r->a[g->members[j]].link;
        size_t c = 0;
        for (size_t m = 0; l && m < g->n; m++) c += r->a[g->members[m]].link == l;
        if (c > best) best = c, best_link = l;
    }
    for (size_t i = 0; i < r->npl; i++) {
        long ga = group_of(r, r->pl[i].a), gb = group_of(r, r->pl[i].b);
        if (ga != (long)k && gb != (long)k) continue;
        if (ga != gb) {
            outside++;
            continue;
        }
        inside++;
        for (unsigned b = 0; b < GUARD_LINK_KIND_COUNT; b++) by_kind[b] += (r->pl[i].kinds >> b & 1u) != 0;
    }
    if (rt_buf_printf(o, "<tr>") || td_str(o, g->name) || rt_buf_printf(o, "<td class=n>%zu</td><td>", g->n))
        return -1;
    if (best > 1 ? rt_buf_printf(o, "%zu in linked group #%lld", best, (long long)best_link)
                 : rt_buf_printf(o, "none (each key judged alone)"))
        return -1;
    if (rt_buf_printf(o, "</td><td class=n>%zu</td><td>", inside)) return -1;
    size_t shown = 0;
    for (unsigned b = 0; b < GUARD_LINK_KIND_COUNT; b++)
        if (by_kind[b] && rt_buf_printf(o, "%s%s (%zu)", shown++ ? ", " : "", guard_link_kind_name(1u << b), by_kind[b]))
            return -1;
    return rt_buf_printf(o, "%s</td><td class=n>%zu</td></tr>", shown ? "" : "—", outside);
}

/* Labelled: for each true harvesting operation, how the guard linked its keys, from the link
 * evidence its action rows stored (guard_pair_links_read). */
static int sec_links(rep *r, rt_buf *o) {
    if (!r->labelled || !r->have_guard || !r->ng) return 0;
    if (rt_buf_printf(o, "<h3>How the guard linked each operation</h3><p>The guard never sees the labels; it links "
                         "keys that act as one from evidence between pairs of accounts. Below, for each operation, "
                         "the pairs of its keys the guard linked, with the kinds of evidence each link rested on (a "
                         "pair counts once under every kind it showed), and its links to accounts outside it. Each "
                         "action row records the links of the account whose request decided it, so a group may be "
                         "held together by more links than are listed.</p><table><tr><th>operation</th><th>keys</th>"
                         "<th>keys in one guard group</th><th>pairs linked</th><th>evidence (pairs)</th>"
                         "<th>links outside it</th></tr>"))
        return -1;
    for (size_t k = 0; k < r->ng; k++)
        if (links_row(r, k, o)) return -1;
    return rt_buf_printf(o, "</table>");
}

static int sec_accounts(rep *r, rt_buf *o) {
    headline h;
    headline_of(r, &h);
    if (rt_buf_printf(o,
                      "<h2 id=accounts>1. Accounts and suspensions</h2><p>The ledger holds %lld requests from %zu "
                      "accounts%s. ",
                      (long long)r->rows, r->na,
                      r->labelled ? " (the traffic was simulated, so every account carries a label saying what it "
                                    "really was; the guard never sees the labels)"
                                  : "")) return -1;
    if (r->labelled ? rt_buf_printf(o,
                                    "The guard suspended <b>%zu of %zu</b> harvesting operations and <b>%zu of %zu</b> "
                                    "benign accounts.</p>",
                                    h.groups_caught, h.groups, h.benign_susp, h.benign)
                    : rt_buf_printf(o,
                                    "The accounts carry no labels, so below are the guard's actions, not verdicts: "
                                    "<b>%zu suspended</b>, <b>%zu throttled</b> and %zu flagged (risk at or above "
                                    "%.2f) of %zu accounts.</p>",
                                    h.by_action[ACT_SUSPENDED], h.by_action[ACT_THROTTLED], h.by_action[ACT_FLAGGED],
                                    r->flag_at, r->na))
        return -1;
    if (risk_chart(r, o) || sec_by_action(r, o)) return -1;
    if (rt_buf_printf(o, "<table><tr><th>operation</th><th>strategy</th><th>keys</th><th>suspended</th>"
                         "<th>first suspension</th><th>requests served before</th><th>tokens served before</th>"
                         "<th>requests served in all</th><th>refused (403) after</th></tr>"))
        return -1;
    for (size_t k = 0; k < r->ng; k++) {
        group *g = &r->g[k];
        char t[64];
        fmt_time(t, sizeof t, r, g->t_susp);
        int64_t refused = 0;
        for (size_t j = 0; j < g->n; j++) refused += r->a[g->members[j]].refused403;
        if (rt_buf_printf(o, "<tr>") || td_str(o, g->name) || td_str(o, g->strategy) ||
            rt_buf_printf(o, "<td class=n>%zu</td><td class=n>%zu%s</td>", g->n, g->n_susp,
                          g->n_susp             ? ""
                          : g->n_verify         ? " (asked to verify)"
                          : g->n_throttled      ? " (throttled)"
                                                : "") ||
            td_str(o, t) ||
            rt_buf_printf(o, "<td class=n>%lld</td><td class=n>%.0f</td><td class=n>%lld</td><td class=n>%lld</td></tr>",
                          (long long)g->served_before, g->tokens_before, (long long)g->served_total,
                          (long long)refused))
            return -1;
    }
    if (rt_buf_printf(o, "</table>") || sec_links(r, o)) return -1;
    /* benign accounts that were suspended or are suspended (false positives), or none */
    if (!r->labelled) return 0;
    if (rt_buf_printf(o, "<p>Benign accounts suspended: ")) return -1;
    size_t shown = 0;
    for (size_t i = 0; i < r->na; i++) {
        acct *a = &r->a[i];
        int verify_only = a->verify && !isfinite(a->t_susp); /* counted apart: asked to verify */
        if (a->attack != 0 || verify_only || !(isfinite(a->t_susp) || !strcmp(a->status, "suspended"))) continue;
        if (rt_buf_printf(o, "%s<span class=bad>", shown++ ? ", " : "") || esc(o, a->name) ||
            rt_buf_printf(o, " (") || esc(o, a->persona) || rt_buf_printf(o, ", ") || esc(o, a->code) ||
            rt_buf_printf(o, ")</span>"))
            return -1;
    }
    return rt_buf_printf(o, "%s.</p>", shown ? "" : "<span class=good>none</span>");
}

static int sec_harvests(rep *r, rt_buf *o) {
    if (rt_buf_printf(o, "<h2 id=harvests>2. What the harvesters got</h2>")) return -1;
    if (!r->nh) return rt_buf_printf(o, "<p>No harvest files were recorded (retort report add-harvest).</p>");
    plot_bar *b = rt_calloc(r->nh, sizeof *b, "bars");
    char (*lab)[96] = rt_calloc(r->nh, sizeof *lab, "bars");
    if (!b || !lab) {
        free(b), free(lab);
        return -1;
    }
    for (size_t i = 0; i < r->nh; i++) {
        snprintf(lab[i], sizeof lab[i], "%s, guard %s", *r->h[i].strategy ? r->h[i].strategy : r->h[i].name,
                 r->h[i].guard);
        b[i] = (plot_bar){lab[i], (double)r->h[i].tokens, !strcmp(r->h[i].guard, "on") ? "#2ca02c" : "#d62728",
                            NULL};
    }
    plot_chart c = {.title = "Completion tokens harvested, with the guard on and off", .xlabel = "tokens",
                      .width = 900, .hline = NAN, .xmin = NAN, .xmax = NAN};
    int rc = plot_bars(o, &c, b, r->nh);
    free(b), free(lab);
    if (rc) return -1;
    if (rt_buf_printf(o, "<table><tr><th>harvest</th><th>guard</th><th>lines</th><th>completion tokens</th>"
                         "<th>found in the ledger</th><th>served to</th><th>SHA-256</th></tr>"))
        return -1;
    for (size_t i = 0; i < r->nh; i++) {
        hrow *h = &r->h[i];
        size_t nacc = *h->accounts ? 1 : 0;
        for (const char *p = h->accounts; *p; p++) nacc += *p == ',';
        if (rt_buf_printf(o, "<tr>") || td_str(o, h->name) || td_str(o, h->guard) ||
            rt_buf_printf(o, "<td class=n>%lld</td><td class=n>%lld</td><td class=n>%lld (%.1f%%)</td>",
                          (long long)h->lines, (long long)h->tokens, (long long)h->matched,
                          h->lines ? 100.0 * (double)h->matched / (double)h->lines : 0.0))
            return -1;
        if (nacc > 3) {
            if (rt_buf_printf(o, "<td><details><summary>%zu accounts</summary>", nacc) || esc(o, h->accounts) ||
                rt_buf_printf(o, "</details></td>"))
                return -1;
        } else if (td_str(o, h->accounts)) {
            return -1;
        }
        if (rt_buf_printf(o, "<td class=mono>") || esc(o, h->sha) || rt_buf_printf(o, "</td></tr>")) return -1;
    }
    return rt_buf_printf(o, "</table><p>“Found in the ledger”: completions whose hash (BLAKE2b-128 of the text, "
                            "as the server records it) matches a served response in the usage ledger of the "
                            "server they came from.</p>");
}

static int sec_models(rep *r, const report_options *opt, rt_buf *o) {
    if (rt_buf_printf(o, "<h2 id=models>3. The students built from the harvests</h2>")) return -1;
    if (!r->nmod) return rt_buf_printf(o, "<p>No models were recorded (retort report add-model).</p>");
    plot_bar *b = rt_calloc(r->nmod, sizeof *b, "bars"), *b2 = rt_calloc(r->nmod, sizeof *b2, "bars");
    int rc = -1;
    if (!b || !b2) goto done;
    for (size_t i = 0; i < r->nmod; i++) {
        const mrow *m = &r->m[i];
        const char *col = !strcmp(m->role, "teacher")   ? "#1f77b4"
                          : !strcmp(m->role, "control") ? "#7f7f7f"
                          : !strcmp(m->guard, "on")     ? "#2ca02c"
                                                        : "#d62728";
        b[i] = (plot_bar){m->name, m->loss, col, NULL};
        b2[i] = (plot_bar){m->name, isfinite(m->top1) ? 100 * m->top1 : NAN, col, NULL};
    }
    plot_chart c = {.title = "Held-out loss (nats/token on held-out corpus text no model trained on; lower is better)",
                      .xlabel = "nats/token", .width = 900, .hline = NAN, .xmin = NAN, .xmax = NAN};
    if (plot_bars(o, &c, b, r->nmod)) goto done;
    plot_chart c2 = {.title = "Top-1 agreement with the teacher (%)", .xlabel = "%", .width = 900, .hline = NAN,
                       .xmin = 0, .xmax = 100};
    if (plot_bars(o, &c2, b2, r->nmod)) goto done;
    if (rt_buf_printf(o, "<table><tr><th>model</th><th>role</th><th>guard</th><th>parameters</th>"
                         "<th>trained on</th><th>held-out loss</th><th>KL(teacher‖model)</th><th>top-1 agreement</th>"
                         "<th>SHA-256</th></tr>"))
        goto done;
    for (size_t i = 0; i < r->nmod; i++) {
        const mrow *m = &r->m[i];
        if (rt_buf_printf(o, "<tr>") || td_str(o, m->name) || td_str(o, m->role) || td_str(o, m->guard) ||
            rt_buf_printf(o, "<td class=n>%lld</td>", (long long)m->params) || td_str(o, m->trained_on) ||
            td_num(o, m->loss, "%.4f") || td_num(o, m->kl, "%.4f") ||
            td_num(o, isfinite(m->top1) ? 100 * m->top1 : NAN, "%.1f%%") || rt_buf_printf(o, "<td class=mono>") ||
            esc(o, m->sha) || rt_buf_printf(o, "</td></tr>"))
            goto done;
    }
    if (rt_buf_printf(o, "</table>")) goto done;
    /* cost */
    if (rt_buf_printf(o,
                      "<h2 id=cost>4. What each model cost to train</h2><p>FLOPs are counted by the trainer "
                      "(6·N per token plus attention, PaLM's accounting). GPU-hours assume %.3g FLOP/s sustained "
                      "per GPU — what DeepSeek-V3's report implies for its H800s (≈3.3e24 FLOPs in 2.788M "
                      "GPU-hours) — and dollars assume $%.2f per GPU-hour, its stated rental rate. CPU time is "
                      "what this run took on this machine.</p><table><tr><th>model</th><th>tokens</th>"
                      "<th>FLOPs</th><th>CPU time here</th><th>GPU-hours</th><th>dollars</th></tr>",
                      opt->gpu_flops, opt->gpu_rate_usd))
        goto done;
    double tf = 0;
    for (size_t i = 0; i < r->nmod; i++) {
        const mrow *m = &r->m[i];
        double gh = m->flops / opt->gpu_flops / 3600;
        if (isfinite(m->flops)) tf += m->flops;
        char fl[32] = "—";
        if (isfinite(m->flops)) rt_fmt_si(fl, sizeof fl, m->flops);
        if (rt_buf_printf(o, "<tr>") || td_str(o, m->name) || td_num(o, m->tokens, "%.0f") ||
            rt_buf_printf(o, "<td class=n>%s</td>", fl) || td_num(o, m->seconds, "%.1f s") ||
            td_num(o, gh, "%.3g") || td_num(o, gh * opt->gpu_rate_usd, "$%.3g") || rt_buf_printf(o, "</tr>"))
            goto done;
    }
    char tfs[32];
    rt_fmt_si(tfs, sizeof tfs, tf);
    rc = rt_buf_printf(o, "<tr><th>all</th><td></td><td class=n>%s</td><td></td><td class=n>%.3g</td>"
                          "<td class=n>$%.3g</td></tr></table>",
                       tfs, tf / opt->gpu_flops / 3600, tf / opt->gpu_flops / 3600 * opt->gpu_rate_usd);
done:
    free(b), free(b2);
    return rc;
}

static int sec_tests(rep *r, rt_buf *o) {
    if (rt_buf_printf(o, "<h2 id=radioactivity>5. Radioactivity: did a model learn from watermarked text?</h2>"))
        return -1;
    if (!r->nt) return rt_buf_printf(o, "<p>No radioactivity tests were recorded.</p>");
    plot_bar *b = rt_calloc(r->nt, sizeof *b, "bars");
    char (*lab)[128] = rt_calloc(r->nt, sizeof *lab, "bars");
    char (*note)[64] = rt_calloc(r->nt, sizeof *note, "bars");
    int rc = -1;
    if (!b || !lab || !note) goto done;
    for (size_t i = 0; i < r->nt; i++) {
        const trow *t = &r->t[i];
        snprintf(lab[i], sizeof lab[i], "%s (%s)", t->model, t->mode);
        double v = isfinite(t->log10p) ? -t->log10p : (t->p > 0 ? -log10(t->p) : NAN);
        snprintf(note[i], sizeof note[i], "controls: min p %.2g", t->cmin);
        b[i] = (plot_bar){lab[i], v, t->detected ? "#d62728" : "#7f7f7f", isfinite(t->cmin) ? note[i] : NULL};
    }
    plot_chart c = {.title = "−log10 p-value of the watermark test on each model's output",
                      .xlabel = "−log10 p", .width = 900, .hline = 3, .hline_label = "p = 1e-3",
                      .xmin = NAN, .xmax = NAN};
    if (plot_bars(o, &c, b, r->nt)) goto done;
    if (rt_buf_printf(o, "<table><tr><th>model</th><th>mode</th><th>scheme</th><th>key id</th>"
                         "<th>tuples scored</th><th>green</th><th>z</th><th>p-value</th><th>detected</th>"
                         "<th>control keys</th><th>controls: min p</th><th>controls: KS p</th></tr>"))
        goto done;
    for (size_t i = 0; i < r->nt; i++) {
        const trow *t = &r->t[i];
        char pv[48];
        if (t->p > 0)
            snprintf(pv, sizeof pv, "%.3g", t->p);
        else
            snprintf(pv, sizeof pv, "10^%.2f", t->log10p);
        if (rt_buf_printf(o, "<tr>") || td_str(o, t->model) || td_str(o, t->mode) || td_str(o, t->scheme) ||
            rt_buf_printf(o, "<td class=mono>") || esc(o, t->key_id) ||
            rt_buf_printf(o, "</td><td class=n>%lld</td><td class=n>%lld</td>", (long long)t->scored,
                          (long long)t->green) ||
            td_num(o, t->z, "%.2f") || rt_buf_printf(o, "<td class=n>%s</td><td>%s</td><td class=n>%lld</td>", pv,
                                                     t->detected ? "<b class=bad>yes</b>" : "no",
                                                     (long long)t->controls) ||
            td_num(o, t->cmin, "%.3g") || td_num(o, t->cks, "%.3g") || rt_buf_printf(o, "</tr>"))
            goto done;
    }
    rc = rt_buf_printf(o,
                       "</table><p>Each distinct (context, token) tuple of the model's output is scored once, "
                       "and tuples whose context appears in the prompts are not scored, so a model that "
                       "merely repeats its input is not flagged. Under the null hypothesis (the model never "
                       "saw text watermarked with this key) the count of green tokens is Binomial(n, γ); the "
                       "p-value is the exact binomial tail. The same evidence is scored again under fresh "
                       "random keys: their p-values must look uniform (the KS column tests that), which "
                       "shows the test is calibrated on this very output.</p>");
done:
    free(b), free(lab), free(note);
    return rc;
}

/* Whether harvest h holds outputs served to a member of group g. */
static int harvest_of_group(const rep *r, const hrow *h, const group *g) {
    for (size_t j = 0; j < g->n; j++)
        if (list_contains(h->accounts, r->a[g->members[j]].name)) return 1;
    return 0;
}

/* Whether model m was trained on a harvest of group g (its trained_on names the harvest). */
static int model_of_group(const rep *r, const mrow *m, const group *g) {
    for (size_t i = 0; i < r->nh; i++)
        if (harvest_of_group(r, &r->h[i], g) && list_contains(m->trained_on, r->h[i].name)) return 1;
    return 0;
}

static int sec_chain(rep *r, rt_buf *o) {
    if (rt_buf_printf(o, "<h2 id=evidence>6. Evidence chain for each suspended or throttled operation</h2>")) return -1;
    size_t shown = 0;
    for (size_t k = 0; k < r->ng; k++) {
        group *g = &r->g[k];
        if (!g->n_susp && !g->n_throttled) continue;
        shown++;
        char t[64];
        fmt_time(t, sizeof t, r, g->t_susp);
        const acct *first = NULL;
        for (size_t j = 0; j < g->n; j++) {
            const acct *a = &r->a[g->members[j]];
            if (isfinite(a->t_susp) && (!first || a->t_susp < first->t_susp)) first = a;
        }
        if (rt_buf_printf(o, "<div class=chain><h3>") || esc(o, g->name) || rt_buf_printf(o, " — ") ||
            esc(o, g->strategy) || rt_buf_printf(o, "</h3><ol>"))
            return -1;
        /* 1. ledger */
        if (!g->n_susp) { /* throttled only: what it was served, and the first throttle's stored row */
            const acct *thr = NULL;
            for (size_t j = 0; j < g->n; j++) {
                const acct *a = &r->a[g->members[j]];
                if (isfinite(a->t_thr) && (!thr || a->t_thr < thr->t_thr)) thr = a;
            }
            char tt[64];
            fmt_time(tt, sizeof tt, r, thr ? thr->t_thr : NAN);
            if (rt_buf_printf(o,
                              "<li><b>Ledger.</b> %zu account%s, %zu throttled by the guard and not suspended: "
                              "%lld requests served, %.0f completion tokens in all. First throttle: ",
                              g->n, g->n == 1 ? "" : "s", g->n_throttled, (long long)g->served_total,
                              g->tokens_total) ||
                esc(o, thr ? thr->name : r->a[g->members[0]].name) ||
                rt_buf_printf(o, " at %s (reason code <code>", tt) || esc(o, thr ? thr->thr_code : "") ||
                rt_buf_printf(o, "</code>, risk %.2f): ", thr ? thr->risk_thr : NAN) ||
                esc(o, thr ? thr->thr_reason : "") ||
                rt_buf_printf(o, ". <details><summary>stored evidence (JSON)</summary><pre class=mono>") ||
                esc_json(o, thr ? thr->thr_evidence : "") || rt_buf_printf(o, "</pre></details>"))
                return -1;
        } else if (rt_buf_printf(o, "<li><b>Ledger.</b> %zu account%s, %zu suspended at %s (reason code <code>", g->n,
                          g->n == 1 ? "" : "s", g->n_susp, t) ||
            esc(o, first ? first->code : "") ||
            rt_buf_printf(o, "</code>, risk %.2f). Before that: %lld requests served, %.0f completion tokens. "
                             "Signals at the time:",
                          first ? first->risk_susp : NAN, (long long)g->served_before, g->tokens_before) ||
            rt_buf_printf(o, "<details><summary>stored evidence (JSON)</summary><pre class=mono>") ||
            esc_json(o, first ? first->evidence : "") || rt_buf_printf(o, "</pre></details>"))
            return -1;
        if (g->n > 1) {
            if (rt_buf_printf(o, "<details><summary>all %zu accounts</summary>", g->n)) return -1;
            for (size_t j = 0; j < g->n; j++)
                if ((j && rt_buf_printf(o, ", ")) || esc(o, r->a[g->members[j]].name)) return -1;
            if (rt_buf_printf(o, "</details>")) return -1;
        }
        if (rt_buf_printf(o, "</li>")) return -1;
        /* 2. harvests: files with completions served to these accounts */
        if (rt_buf_printf(o, "<li><b>Harvested outputs.</b> ")) return -1;
        size_t nh = 0;
        for (size_t i = 0; i < r->nh; i++) {
            const hrow *h = &r->h[i];
            if (!harvest_of_group(r, h, g)) continue;
            if (rt_buf_printf(o, "%s<code>", nh++ ? "; " : "") || esc(o, h->path) ||
                rt_buf_printf(o, "</code>: %lld lines, %lld of them found in this ledger, %lld completion "
                                 "tokens, SHA-256 <span class=mono>",
                              (long long)h->lines, (long long)h->matched, (long long)h->tokens) ||
                esc(o, h->sha) || rt_buf_printf(o, "</span>"))
                return -1;
        }
        if (!nh && rt_buf_printf(o, "no harvest file recorded for these accounts")) return -1;
        if (rt_buf_printf(o, ".</li><li><b>Suspect model.</b> ")) return -1;
        size_t nm = 0;
        for (size_t i = 0; i < r->nmod; i++) {
            const mrow *m = &r->m[i];
            if (!model_of_group(r, m, g)) continue;
            if (rt_buf_printf(o, "%s<code>", nm++ ? "; " : "") || esc(o, m->path) ||
                rt_buf_printf(o, "</code> (SHA-256 <span class=mono>") || esc(o, m->sha) ||
                rt_buf_printf(o, "</span>), trained on these harvests"))
                return -1;
            const trow *tt = best_test(r, m->name);
            char pv[96];
            fmt_p(pv, sizeof pv, tt);
            if (rt_buf_printf(o, ".</li><li><b>Watermark test.</b> %s", pv)) return -1;
            if (tt && rt_buf_printf(o, " (%s mode, %lld tuples, z = %.2f; control keys: min p %.2g)", tt->mode,
                                    (long long)tt->scored, tt->z, tt->cmin))
                return -1;
        }
        if (!nm && rt_buf_printf(o, "no model trained on these harvests was recorded")) return -1;
        if (rt_buf_printf(o, ".</li></ol></div>")) return -1;
    }
    if (!shown) return rt_buf_printf(o, "<p>No account was suspended or throttled.</p>");
    return 0;
}

/* Figures recorded with `retort report add-figure` (none: no section). Each is drawn from its
 * stored bytes through a data: URL in <img>, where a browser runs no script and fetches
 * nothing (the base64 is escaped too, in case the database was edited by hand). */
static int sec_figures(rep *r, rt_buf *o) {
    if (!r->nf) return 0;
    if (rt_buf_printf(o, "<h2 id=figures>Figures</h2>")) return -1;
    for (size_t i = 0; i < r->nf; i++) {
        const frow *f = &r->f[i];
        if (rt_buf_printf(o, "<figure><img alt=\"") || esc(o, f->name) ||
            rt_buf_printf(o, "\" src=\"data:image/svg+xml;base64,") || esc(o, f->b64) ||
            rt_buf_printf(o, "\"><figcaption><b>") || esc(o, f->name) || rt_buf_printf(o, ".</b> ") || esc(o, f->caption) ||
            rt_buf_printf(o, " <span class=mono>(") || esc(o, f->path) ||
            rt_buf_printf(o, ", %lld bytes, SHA-256 %s", (long long)f->bytes, f->sha ? f->sha : "") ||
            (f->command && *f->command && (rt_buf_printf(o, "; made by <code>") || esc(o, f->command) ||
                                           rt_buf_printf(o, "</code>"))) ||
            rt_buf_printf(o, ")</span></figcaption></figure>"))
            return -1;
    }
    return 0;
}

static int sec_method(rep *r, rt_buf *o) {
    if (rt_buf_printf(o, "<h2 id=method>7. How to reproduce this</h2>")) return -1;
    size_t n = 0;
    for (size_t i = 0; i < r->nm; i++) {
        if (strncmp(r->mk[i], "step.", 5)) continue;
        if ((!n++ && rt_buf_printf(o, "<p>Every step, in order, as it was run:</p><ol>")) ||
            rt_buf_printf(o, "<li><code>") || esc(o, r->mv[i]) || rt_buf_printf(o, "</code></li>"))
            return -1;
    }
    if (n && rt_buf_printf(o, "</ol>")) return -1;
    if (rt_buf_printf(o, "<table>")) return -1;
    for (size_t i = 0; i < r->nm; i++) {
        if (!strncmp(r->mk[i], "step.", 5) || !strcmp(r->mk[i], "title")) continue;
        if (rt_buf_printf(o, "<tr><th>") || esc(o, r->mk[i]) || rt_buf_printf(o, "</th><td class=mono>") ||
            esc(o, r->mv[i]) || rt_buf_printf(o, "</td></tr>"))
            return -1;
    }
    return rt_buf_printf(o, "</table>");
}

/* What the numbers rest on, in plain words, under the summary. */
static int how_sure(const rep *r, rt_buf *o) {
    headline h;
    headline_of(r, &h);
    if (rt_buf_printf(o, "<p><b>How sure.</b> ")) return -1;
    if (r->labelled && h.benign &&
        rt_buf_printf(o,
                      "The traffic was simulated with known labels: the guard suspended %zu of %zu benign accounts "
                      "in this run, and its thresholds were calibrated on benign traffic only. ",
                      h.benign_susp, h.benign))
        return -1;
    if (r->nt &&
        rt_buf_printf(o, "Each watermark p-value is an exact binomial tail under the hypothesis that the model never "
                         "saw text watermarked with this key; the same test under fresh random keys gives the "
                         "control p-values, which must look uniform. A p-value is the chance of a score at least "
                         "this extreme for a model that was not trained on the watermarked outputs. "))
        return -1;
    if (r->nh &&
        rt_buf_printf(o, "Harvested outputs are tied to the ledger by hash, and every file and model by its "
                         "SHA-256, so each link below can be checked independently. "))
        return -1;
    return rt_buf_printf(o, "Section 7 lists every command, in order, to reproduce the whole run.</p>");
}

int report_write(const report_options *opt) {
    gw_conn *db = NULL;
    if (report_db_open(&db, opt->db_path)) return -1;
    rep r;
    if (rep_load(&r, db, opt->db_path)) {
        report_db_close(db);
        return -1;
    }
    rt_buf o = {0};
    int rc = -1;
    const char *title = opt->title ? opt->title : meta(&r, "title");
    if (!title) title = "Evidence report: output harvesting and distillation through the API";
    char now[64];
    time_t tn = time(NULL);
    struct tm tm;
    gmtime_r(&tn, &tm);
    strftime(now, sizeof now, "%Y-%m-%d %H:%M UTC", &tm);
    if (rt_buf_printf(&o, "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>") ||
        esc(&o, title) || rt_buf_printf(&o, "</title><style>%s</style></head><body><h1>", css) || esc(&o, title) ||
        rt_buf_printf(&o, "</h1><p>Generated %s by retort from <code>", now) || esc(&o, opt->db_path) ||
        rt_buf_printf(&o, "</code>. Everything below is read from that database (the server's usage ledger, the "
                          "guard's scores and actions, and the evidence recorded for harvests, models and tests) "
                          "and from the files it names, whose SHA-256 digests are given.</p>"))
        goto done;
    if (rt_buf_printf(&o, "<h2 id=summary>Summary</h2><div class=summary>") ) goto done;
    {
        rt_buf s = {0};
        if (summary_text(&r, &s)) {
            rt_buf_free(&s);
            goto done;
        }
        int e = esc(&o, s.data ? s.data : "");
        rt_buf_free(&s);
        if (e) goto done;
    }
    if (rt_buf_printf(&o, "</div>") || how_sure(&r, &o)) goto done;
    if (sec_accounts(&r, &o) || sec_harvests(&r, &o) || sec_models(&r, opt, &o) || sec_tests(&r, &o) ||
        sec_chain(&r, &o) || sec_figures(&r, &o) || sec_method(&r, &o))
        goto done;
    if (rt_buf_printf(&o, "</body></html>\n")) goto done;
    rc = rt_write_file_atomic(opt->out_path, o.data, o.len);
done:
    rt_buf_free(&o);
    rep_free(&r);
    report_db_close(db);
    return rc;
}
