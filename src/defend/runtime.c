/*
 * runtime.c — the guard inside `retort serve`: serve_hooks that turn each finished request
 * into a guard_event (the prompt's hidden state quantised, MinHash of the user text, the
 * ledger row's counts), feed the detector under one lock, and act on its verdicts:
 *   flag      an action row with the evidence, nothing else;
 *   throttle  the account's rpm is lowered to the policy's throttle_rpm (the gateway's limits
 *             answer 429 with Retry-After); the old limits are kept in the action row;
 *   suspend   the account — and every account linked with it — is suspended in the gateway;
 *             its next request gets 403 with the reason code and the action number.
 *   hold      (before, not a verdict) a member of the population of new low-volume accounts
 *             waits while that population is at its hold: 429 with Retry-After, no row.
 * In shadow mode the same rows are written (mode 'shadow') and nothing is changed.
 * A writer thread with its own SQLite connection stores events and the risk timeline in
 * batches, and polls for `retort guard release` rows so a released account starts afresh.
 *
 * Concurrency signal: each event carries its [arrival, arrival + latency) interval and the
 * detector counts a request concurrent when it overlaps an earlier one of the account. The
 * in-flight count kept by `before` is the fallback for a row without a latency: `after` runs
 * once the response was handed over, so it can lag a sequential client's next request.
 *
 * Not the detector (detector.c) and not the tables' readers (store.c).
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "defend_internal.h"

#define SCORE_EVERY 16      /* a timeline row at least every N events of an account */
#define SCORE_DELTA 0.02    /* ... or when its risk moved this much */
#define WRITER_BATCH 512
#define RELEASE_POLL_S 0.5
#define RESTORE_MAX 200000 /* stored events replayed at start-up, at most */

typedef struct item {
    struct item *next;
    int kind; /* 0 event, 1 score */
    guard_event ev;
    int8_t *emb; /* owned copy */
    /* score */
    double t, n, risk, account_risk, group_risk;
    int64_t account_id, group_id;
    size_t group_size;
    char level[12], code[64];
    char *signals; /* JSON, owned */
} item;

#define FLIGHT_IDS 32

typedef struct {
    int64_t id;
    int in_flight;
    int conc_pending;
    uint64_t ids[FLIGHT_IDS]; /* hashes of request ids between before and after */
    int n_ids, overflow;
    uint32_t since_score;
    double last_risk;
} flight;

struct guard {
    guard_options o;
    guard_policy policy;
    guard_reference ref;
    int have_ref;
    gw_db *db;
    guard_detector *det;
    pthread_mutex_t mu; /* detector and flight table */
    flight *fl;         /* (fl_n) one per account seen, in order of first request */
    size_t fl_cap, fl_n;
    rt_map fl_index;    /* account id -> index in fl */
    /* writer */
    pthread_t writer;
    int writer_started;
    pthread_mutex_t qmu;
    pthread_cond_t qcv, qdone;
    item *head, *tail;
    uint64_t queued, written;
    int stop;
    int64_t last_release_id;
    int64_t events_upto; /* the last stored event when the state was rebuilt (the worker goes on from it) */
    int64_t last_tier_id; /* guard_tiers rows applied so far (writer thread, and open) */
    int tiers_live;       /* set before the writer starts: tier changes from then on are logged */
    uint64_t n_events, n_actions;
    uint64_t n_holds; /* requests the population hold answered 429 */
    int warned_dim;
    unsigned warned_cov; /* coverage kinds already warned about (under mu) */
};

void guard_options_defaults(guard_options *o) {
    memset(o, 0, sizeof *o);
    o->store_events = 1;
}

/* ---------------------------------------------------------------- events from requests */

static uint64_t fnv(const void *p, size_t n) { return rt_fnv1a64(p, n); }

int guard_event_from_request(guard_event *ev, const serve_request_info *ri) {
    memset(ev, 0, sizeof *ev);
    ev->t = ri->t;
    ev->account_id = ri->who ? ri->who->account.id : 0;
    ev->account_created_at = ri->who ? ri->who->account.created_at : 0;
    ev->client_hash = ri->client && *ri->client ? fnv(ri->client, strlen(ri->client)) : 0;
    ev->client_fp = ri->fingerprint;
    ev->max_tokens = (int64_t)ri->max_tokens; /* the limit that applied (the server's when omitted) */
    if (ri->endpoint) ev->endpoint = !strcmp(ri->endpoint, "/v1/chat/completions") ? 1
                                     : !strcmp(ri->endpoint, "/v1/completions")    ? 2
                                                                                   : 0;
    ev->n_choices = ri->n > 1 ? (int)RT_MIN(ri->n, (size_t)INT32_MAX) : 1;
    ev->logprobs = ri->logprobs;
    ev->top_logprobs = (int)ri->top_logprobs;
    const char *text = ri->prompt_text ? ri->prompt_text : "";
    size_t len = ri->prompt_text ? ri->prompt_len : 0;
    json_t *root = NULL;
    if (ri->body && ri->body_len) {
        json_error_t je;
        root = json_loadb(ri->body, ri->body_len, JSON_ALLOW_NUL, &je);
    }
    rt_buf user = {0};
    if (json_is_object(root)) {
        json_t *mt = json_object_get(root, "max_tokens");
        if (!mt || json_is_null(mt)) mt = json_object_get(root, "max_completion_tokens");
        ev->max_tokens_given = mt && !json_is_null(mt);
        json_t *msgs = json_object_get(root, "messages");
        if (json_is_array(msgs)) { /* every user message, joined by "\n": a payload in an earlier
                                      turn followed by "go on" is still the payload */
            size_t i;
            json_t *m;
            json_array_foreach(msgs, i, m) {
                json_t *role = json_object_get(m, "role");
                if (!json_is_string(role) || strcmp(json_string_value(role), "user")) continue;
                if (user.len && rt_buf_append(&user, "\n", 1)) goto oom;
                json_t *c = json_object_get(m, "content");
                if (json_is_string(c)) {
                    if (rt_buf_append(&user, json_string_value(c), json_string_length(c))) goto oom;
                } else if (json_is_array(c)) {
                    size_t k;
                    json_t *part;
                    json_array_foreach(c, k, part) {
                        json_t *tx = json_object_get(part, "text");
                        if (json_is_string(tx) && rt_buf_append(&user, json_string_value(tx), json_string_length(tx)))
                            goto oom;
                    }
                }
            }
            if (user.len) {
                text = user.data;
                len = user.len;
            }
        }
    }
    ev->prompt_hash = fnv(text, len);
    ev->prefix_hash = guard_prefix_hash(text, len);
    ev->has_minhash = guard_minhash(text, len, ev->minhash) > 0;
    rt_buf_free(&user);
    json_decref(root);
    return 0;
oom:
    rt_buf_free(&user);
    json_decref(root);
    return -1;
}

/* ---------------------------------------------------------------- flight table */

/* The account's flight entry, created on its first request (NULL when out of memory). The
 * pointer is valid until the next new account. */
static flight *flight_get(guard *g, int64_t id) {
    int created = 0;
    uint64_t *slot = rt_map_put(&g->fl_index, (uint64_t)id, &created);
    if (!slot) return NULL;
    if (created) {
        if (RT_GROW(g->fl, g->fl_cap, g->fl_n + 1, "guard flight table")) {
            rt_map_remove(&g->fl_index, (uint64_t)id);
            return NULL;
        }
        memset(&g->fl[g->fl_n], 0, sizeof g->fl[g->fl_n]);
        g->fl[g->fl_n].id = id;
        g->fl[g->fl_n].last_risk = -1;
        *slot = g->fl_n++;
    }
    return &g->fl[*slot];
}

/* ---------------------------------------------------------------- writer */

static void enqueue(guard *g, item *it) {
    pthread_mutex_lock(&g->qmu);
    if (g->tail) g->tail->next = it;
    else g->head = it;
    g->tail = it;
    g->queued++;
    pthread_cond_signal(&g->qcv);
    pthread_mutex_unlock(&g->qmu);
}

static void item_free(item *it) {
    if (!it) return;
    free(it->emb);
    free(it->signals);
    free(it);
}

static int write_batch(guard *g, gw_conn *c, item *list, gw_stmt *ins_ev, gw_stmt *ins_sc) {
    if (gw_sql_exec(c, "BEGIN", "guard writer")) return -1;
    /* replicas' writers queue here, so event ids commit in increasing order and the worker,
     * reading id > last, never passes over one still in flight */
    int rc = gw_conn_is_pg(c) ? gw_sql_exec(c, "SELECT pg_advisory_xact_lock(7240618)", "guard writer lock") : 0;
    int any_event = 0;
    for (item *it = list; it && rc == 0; it = it->next) {
        if (it->kind == 0) {
            any_event = 1;
            rc = guard_event_insert(c, ins_ev, &it->ev);
        } else {
            guard_score_row row = {.t = it->t,
                                   .account_id = it->account_id,
                                   .group_id = it->group_id,
                                   .group_size = it->group_size,
                                   .n = it->n,
                                   .risk = it->risk,
                                   .account_risk = it->account_risk,
                                   .group_risk = it->group_risk,
                                   .level = it->level,
                                   .code = it->code,
                                   .signals = it->signals};
            rc = guard_score_write(c, ins_sc, &row);
        }
    }
    if (rc == 0 && any_event && gw_conn_is_pg(c)) rc = gw_sql_exec(c, "NOTIFY guard_events", "guard writer notify");
    if (rc == 0) rc = gw_sql_commit(c, "guard writer commit");
    if (rc) gw_sql_rollback(c);
    return rc;
}

static void poll_releases(guard *g, gw_conn *c, gw_stmt *st) {
    gw_reset(st);
    gw_bind_int64(st, 1, g->last_release_id);
    while (gw_step(st) == GW_ROW) {
        int64_t id = gw_column_int64(st, 0), acc = gw_column_int64(st, 1);
        g->last_release_id = id;
        pthread_mutex_lock(&g->mu);
        guard_detector_release(g->det, acc);
        flight *f = flight_get(g, acc);
        if (f) f->last_risk = -1;
        pthread_mutex_unlock(&g->mu);
        rt_info("guard: account #%lld was released (action #%lld): its state starts afresh", (long long)acc,
                (long long)id);
    }
    (void)c;
}

/* An operator put an account in a tier (guard_tiers row): the detector applies it at once. */
static int tier_row_fn(void *ud, int64_t id, int64_t acc, const char *tier) {
    guard *g = ud;
    int k = guard_policy_tier(&g->policy, tier);
    if (k < 0) {
        rt_warn("guard: account #%lld was put in tier '%s', which this server's policy does not define: 'standard' "
                "applies",
                (long long)acc, tier);
        k = 0;
    }
    pthread_mutex_lock(&g->mu);
    int rc = guard_detector_set_tier(g->det, acc, (size_t)k);
    pthread_mutex_unlock(&g->mu);
    g->last_tier_id = id;
    if (rc == 0 && g->tiers_live)
        rt_info("guard: account #%lld is now in tier %s", (long long)acc, g->policy.tiers[k].name);
    return rc;
}

static int tiers_at_start_fn(gw_conn *c, void *ud) { return guard_tier_rows_each(c, 0, tier_row_fn, ud); }

static void *writer_main(void *arg) {
    guard *g = arg;
    gw_conn *c = NULL;
    gw_stmt *ins_ev = NULL, *ins_sc = NULL, *rel = NULL;
    int ok = gw_conn_open(&c, g->o.db_path, 0) == 0;
    if (ok) {
        if (!gw_conn_is_pg(c)) gw_sql_exec(c, "PRAGMA synchronous=NORMAL", "guard writer");
        ok = gw_sql_prepare(c, guard_event_insert_sql, &ins_ev, "guard_events") == 0 &&
             gw_sql_prepare(c,
                               guard_score_insert_sql, &ins_sc, "guard_scores") == 0 &&
             gw_sql_prepare(c,
                               "SELECT id, account_id FROM guard_actions WHERE action = 'release' AND id > ?1 "
                               "ORDER BY id",
                               &rel, "guard_actions") == 0;
    }
    if (!ok) rt_warn("guard: the writer cannot use %s: %s (events and timeline will not be stored)", g->o.db_path, rt_errmsg());
    double last_poll = 0;
    for (;;) {
        pthread_mutex_lock(&g->qmu);
        while (!g->head && !g->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&g->qcv, &g->qmu, &ts);
            if (!g->head) break;
        }
        item *list = g->head;
        size_t n = 0;
        item *last = NULL;
        for (item *it = list; it && n < WRITER_BATCH; it = it->next) {
            last = it;
            n++;
        }
        if (last) {
            g->head = last->next;
            if (!g->head) g->tail = NULL;
            last->next = NULL;
        }
        int stop = g->stop && !g->head;
        pthread_mutex_unlock(&g->qmu);
        if (list && ok && write_batch(g, c, list, ins_ev, ins_sc)) rt_warn("guard: %s", rt_errmsg());
        while (list) {
            item *nx = list->next;
            item_free(list);
            list = nx;
        }
        if (n) {
            pthread_mutex_lock(&g->qmu);
            g->written += n;
            pthread_cond_broadcast(&g->qdone);
            pthread_mutex_unlock(&g->qmu);
        }
        if (ok && rt_now() - last_poll > RELEASE_POLL_S) {
            poll_releases(g, c, rel);
            if (guard_tier_rows_each(c, g->last_tier_id, tier_row_fn, g)) rt_warn("guard: %s", rt_errmsg());
            last_poll = rt_now();
        }
        if (stop) break;
    }
    gw_finalize(ins_ev);
    gw_finalize(ins_sc);
    gw_finalize(rel);
    gw_conn_close(c);
    return NULL;
}

int guard_flush(guard *g) {
    pthread_mutex_lock(&g->qmu);
    uint64_t target = g->queued;
    while (g->written < target && g->writer_started) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_signal(&g->qcv);
        pthread_cond_timedwait(&g->qdone, &g->qmu, &ts);
    }
    pthread_mutex_unlock(&g->qmu);
    return 0;
}

/* ---------------------------------------------------------------- actions */

typedef struct {
    int64_t account;
    char *evidence;
} pending_evidence;

/* Act on one escalation: rows for every affected account, then the gateway. */
static void apply_verdict(guard *g, const guard_verdict *v, const guard_event *ev, pending_evidence *evs,
                          size_t n_evs) {
    const char *mode = g->policy.enforce ? "enforce" : "shadow";
    char code[64];
    int grouped = v->group_size > 1 && v->group.risk >= v->account.risk;
    guard_reason_code(grouped ? &v->group : &v->account, grouped, code, sizeof code);
    for (size_t k = 0; k < v->n_affected; k++) {
        int64_t acc = v->affected[k];
        const char *evidence = NULL;
        for (size_t e = 0; e < n_evs; e++)
            if (evs[e].account == acc) evidence = evs[e].evidence;
        guard_action_row row = {.t = ev->t,
                                .account_id = acc,
                                .group_id = v->group_id,
                                .usage_row_id = ev->row_id,
                                .action = guard_action_name(v->new_level),
                                .mode = mode,
                                .code = code,
                                .evidence = evidence,
                                .risk = v->risk,
                                .prev_rpm = -1};
        gw_account a;
        int have = gw_account_get(g->db, acc, &a) == 0;
        if (v->new_level == GUARD_ACT_THROTTLE && have) row.prev_rpm = a.limits.rpm;
        char reason[GW_REASON_MAX];
        snprintf(reason, sizeof reason, "guard: suspected model extraction [%s] risk %.2f%s", code, v->risk,
                 v->group_size > 1 ? ", linked group" : "");
        row.reason = reason;
        int64_t action_id = 0;
        if (guard_action_write_db(g->db, &row, &action_id)) {
            rt_warn("guard: cannot record the %s of account #%lld: %s", row.action, (long long)acc, rt_errmsg());
            continue;
        }
        g->n_actions++;
        char full[GW_REASON_MAX + GW_NAME_MAX + 96]; /* the gateway keeps the first GW_REASON_MAX bytes */
        snprintf(full, sizeof full, "%s (group of %zu; action #%lld; `retort guard explain %s`)", reason, v->group_size,
                 (long long)action_id, have ? a.name : "ACCOUNT");
        rt_info("guard: %s%s account #%lld (%s): %s", g->policy.enforce ? "" : "[shadow] would ", row.action,
                (long long)acc, have ? a.name : "?", full);
        if (!g->policy.enforce || !have) continue;
        if (v->new_level == GUARD_ACT_SUSPEND || v->new_level == GUARD_ACT_VERIFY) {
            /* verification is enforced as a suspension is (refused until an operator releases
             * the account or puts it in a tier, having verified it out of band); the action row
             * says which, and so does the reason operators read */
            char held[GW_REASON_MAX + GW_NAME_MAX + 128];
            snprintf(held, sizeof held, "%s%s", v->new_level == GUARD_ACT_VERIFY ? GW_REASON_VERIFY : "", full);
            if (gw_account_set_status(g->db, acc, GW_ACCOUNT_SUSPENDED, held, ev->t))
                rt_warn("guard: cannot %s account #%lld: %s", row.action, (long long)acc, rt_errmsg());
        } else if (v->new_level == GUARD_ACT_THROTTLE) {
            if (a.limits.rpm == 0 || a.limits.rpm > g->policy.throttle_rpm) {
                gw_limits lim = {g->policy.throttle_rpm, -1, -1};
                if (gw_account_set_limits(g->db, acc, &lim))
                    rt_warn("guard: cannot throttle account #%lld: %s", (long long)acc, rt_errmsg());
            }
        }
    }
}

/* compact {"signal": [value, score], ...} of an assessment */
static char *signals_json(const guard_assessment *a) {
    json_t *o = json_object();
    for (int i = 0; i < GUARD_SIG_COUNT; i++) {
        if (!isfinite(a->value[i])) continue;
        json_object_set_new(o, guard_signal_name((guard_signal)i), json_pack("[f, f]", a->value[i], a->score[i]));
    }
    char *s = rt_json_reals(json_dumps(o, JSON_COMPACT));
    json_decref(o);
    return s;
}

/* The detector's verdict on one event, its timeline row and the actions it calls for: in
 * serve (hook_after) or in the guard worker (events read back from the database). */
static void judge_event(guard *g, guard_event *ev) {
    guard_verdict v;
    pending_evidence evs[1] = {{0, NULL}};
    item *sc = NULL;
    pthread_mutex_lock(&g->mu);
    flight *f = flight_get(g, ev->account_id);
    int orc = guard_detector_observe(g->det, ev, &v);
    if (orc == 0) ev->concurrent = v.concurrent; /* stored: a replay sees what the detector saw */
    g->n_events++;
    if (orc == 0) {
        if (v.n_affected > 0) {
            /* evidence as it stands now, for the account whose event decided (others refer to it) */
            evs[0].account = ev->account_id;
            evs[0].evidence = guard_detector_evidence(g->det, ev->account_id);
        }
        if (f) f->since_score++;
        if (f && (v.n_affected > 0 || f->since_score >= SCORE_EVERY || fabs(v.risk - f->last_risk) >= SCORE_DELTA)) {
            sc = rt_calloc(1, sizeof *sc, "guard score row");
            if (sc) {
                sc->kind = 1;
                sc->t = ev->t;
                sc->account_id = ev->account_id;
                sc->group_id = v.group_id;
                sc->group_size = v.group_size;
                sc->n = v.account.n;
                sc->risk = v.risk;
                sc->account_risk = v.account.risk;
                sc->group_risk = v.group.risk;
                snprintf(sc->level, sizeof sc->level, "%s", guard_action_name(v.level));
                int grouped = v.group_size > 1 && v.group.risk >= v.account.risk;
                guard_reason_code(grouped ? &v.group : &v.account, grouped, sc->code, sizeof sc->code);
                sc->signals = signals_json(grouped ? &v.group : &v.account);
            }
            f->since_score = 0;
            f->last_risk = v.risk;
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (orc) {
        rt_warn("guard: %s", rt_errmsg());
    } else if (v.n_affected > 0) {
        /* accounts affected through their group share the deciding account's evidence */
        pending_evidence all[GUARD_MAX_AFFECTED];
        size_t na = 0;
        for (size_t k = 0; k < v.n_affected && na < GUARD_MAX_AFFECTED; k++) {
            all[na].account = v.affected[k];
            all[na].evidence = evs[0].evidence;
            na++;
        }
        apply_verdict(g, &v, ev, all, na);
    }
    free(evs[0].evidence);
    if (sc) enqueue(g, sc);
}

/* ---------------------------------------------------------------- hooks */

static int hook_before(void *ud, const serve_request_info *ri, char *reason, size_t cap, double *retry_after) {
    guard *g = ud;
    *retry_after = 0;
    if (!ri->who) return 0;
    uint64_t rid = ri->request_id ? rt_fnv1a64(ri->request_id, strlen(ri->request_id)) : 0;
    pthread_mutex_lock(&g->mu);
    /* the population hold: the population of new low-volume accounts is at its hold, and this
     * member waits (not in flight: its `after` is not counted) */
    if (g->policy.enforce && !g->o.events_only && guard_detector_population_hold(g->det, ri->who->account.id, ri->t, retry_after)) {
        g->n_holds++;
        pthread_mutex_unlock(&g->mu);
        snprintf(reason, cap, "population hold: the new low-volume accounts were served their budget; retry in %.0f s",
                 ceil(*retry_after));
        return 2;
    }
    flight *f = flight_get(g, ri->who->account.id);
    if (f) {
        if (f->in_flight > 0) f->conc_pending++;
        f->in_flight++;
        if (f->n_ids < FLIGHT_IDS) f->ids[f->n_ids++] = rid;
        else f->overflow++;
    }
    pthread_mutex_unlock(&g->mu);
    return 0;
}

/* Did this request pass `before`? (The server also reports requests refused earlier, e.g.
 * those of suspended accounts: the guard does not count those.) Called with g->mu held. */
static int flight_end(flight *f, const serve_request_info *ri) {
    uint64_t rid = ri->request_id ? rt_fnv1a64(ri->request_id, strlen(ri->request_id)) : 0;
    for (int i = 0; i < f->n_ids; i++)
        if (f->ids[i] == rid) {
            f->ids[i] = f->ids[--f->n_ids];
            return 1;
        }
    if (f->overflow > 0) {
        f->overflow--;
        return 1;
    }
    return 0;
}

static void hook_after(void *ud, const serve_request_info *ri, const serve_request_result *rr) {
    guard *g = ud;
    if (!ri->who || !rr->row) return;
    pthread_mutex_lock(&g->mu);
    flight *f0 = flight_get(g, ri->who->account.id);
    int passed = f0 && flight_end(f0, ri);
    pthread_mutex_unlock(&g->mu);
    if (!passed) return;
    guard_event ev;
    if (guard_event_from_request(&ev, ri)) {
        rt_warn("guard: %s", rt_errmsg());
        return;
    }
    const gw_ledger_row *row = rr->row;
    ev.row_id = rr->row_id;
    ev.status = row->status;
    ev.prompt_tokens = row->prompt_tokens;
    ev.completion_tokens = row->completion_tokens;
    /* the answer was complete latency_ms after arrival (before the response was handed over, so
     * a sequential client's next request never starts before it): the detector measures
     * concurrency on these intervals instead of the in-flight count, which `after` updates only
     * once the client may already have sent its next request */
    if (row->latency_ms >= 0) ev.t_end = ev.t + row->latency_ms / 1e3;
    int8_t qbuf[1024];
    int8_t *q = NULL;
    if (rr->hidden && rr->hidden_dim) {
        q = rr->hidden_dim <= sizeof qbuf ? qbuf : rt_malloc(rr->hidden_dim, "embedding");
        if (q) {
            ev.emb_scale = guard_quantize(rr->hidden, rr->hidden_dim, q);
            ev.emb = q;
            ev.emb_dim = rr->hidden_dim;
        }
    }
    if (g->have_ref && g->ref.has_shift && ev.emb && ev.emb_dim != g->ref.rff.dim && !g->warned_dim) {
        g->warned_dim = 1;
        rt_warn("guard: the model's hidden size is %zu but the reference was calibrated at %zu: the shift signal "
                "is off (recalibrate with this model)",
                ev.emb_dim, g->ref.rff.dim);
    }
    unsigned uncovered = g->have_ref ? guard_reference_uncovered(&g->ref, &ev) : 0;
    pthread_mutex_lock(&g->mu);
    flight *f = flight_get(g, ev.account_id);
    if (f) {
        if (f->in_flight > 0) f->in_flight--;
        if (f->conc_pending > 0) {
            f->conc_pending--;
            ev.concurrent = 1;
        }
    }
    uncovered &= ~g->warned_cov;
    g->warned_cov |= uncovered;
    if (g->o.events_only) g->n_events++;
    pthread_mutex_unlock(&g->mu);
    for (int k = 0; k < GUARD_COV_COUNT; k++)
        if (uncovered >> k & 1u)
            rt_warn("guard: traffic of a kind the reference saw fewer than %d times (%s: %.0f benign events): its "
                    "levels may not hold for it; recalibrate on traffic that includes it (`retort guard calibrate` "
                    "prints the coverage)",
                    GUARD_COVERAGE_MIN, guard_coverage_name((guard_coverage_kind)k), g->ref.cov_events[k]);
    if (!g->o.events_only) judge_event(g, &ev);
    if (g->o.store_events || g->o.events_only) {
        item *it = rt_calloc(1, sizeof *it, "guard event row");
        if (it) {
            it->kind = 0;
            it->ev = ev;
            if (ev.emb) {
                it->emb = rt_malloc(ev.emb_dim, "embedding");
                if (it->emb) memcpy(it->emb, ev.emb, ev.emb_dim);
                it->ev.emb = it->emb;
                if (!it->emb) it->ev.emb_dim = 0;
            }
            enqueue(g, it);
        }
    }
    if (q && q != qbuf) free(q);
}

/* The guard's figures for the server's GET /metrics (Prometheus text). */
static int hook_metrics(void *ud, rt_buf *out) {
    guard *g = ud;
    uint64_t events = 0, actions = 0;
    guard_stats(g, &events, &actions);
    pthread_mutex_lock(&g->mu);
    size_t accounts = guard_detector_accounts(g->det);
    uint64_t holds = g->n_holds;
    pthread_mutex_unlock(&g->mu);
    return rt_buf_printf(out,
                         "# HELP retort_guard_events_total Requests the guard observed.\n"
                         "# TYPE retort_guard_events_total counter\nretort_guard_events_total %llu\n"
                         "# HELP retort_guard_actions_total Actions the guard took (flag, throttle, suspend; in "
                         "shadow mode, would have taken).\n"
                         "# TYPE retort_guard_actions_total counter\nretort_guard_actions_total %llu\n"
                         "# HELP retort_guard_accounts Accounts the detector holds state for.\n"
                         "# TYPE retort_guard_accounts gauge\nretort_guard_accounts %zu\n"
                         "# HELP retort_guard_holds_total Requests the population hold answered 429.\n"
                         "# TYPE retort_guard_holds_total counter\nretort_guard_holds_total %llu\n",
                         (unsigned long long)events, (unsigned long long)actions, accounts, (unsigned long long)holds);
}

void guard_serve_hooks(guard *g, serve_hooks *h) {
    memset(h, 0, sizeof *h);
    h->ud = g;
    h->want_hidden = 1;
    h->before = hook_before;
    h->after = hook_after;
    h->metrics = hook_metrics;
}

/* ---------------------------------------------------------------- open / close */

static int max_release_id(gw_conn *c, void *ud) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT coalesce(max(id), 0) FROM guard_actions WHERE action = 'release'", &st,
                          "guard_actions"))
        return -1;
    if (gw_step(st) == GW_ROW) *(int64_t *)ud = gw_column_int64(st, 0);
    gw_finalize(st);
    return 0;
}

static int max_event_id(gw_conn *c, void *ud) {
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c, "SELECT coalesce(max(id), 0) FROM guard_events", &st, "guard_events")) return -1;
    int rc = gw_step(st) == GW_ROW ? 0 : -1;
    if (!rc) *(int64_t *)ud = gw_column_int64(st, 0);
    gw_finalize(st);
    return rc;
}

int guard_open(guard **out, const guard_options *o) {
    *out = NULL;
    if (!o->db_path) return RT_FAIL("guard: a gateway database is needed (--db)");
    guard *g = rt_calloc(1, sizeof *g, "guard");
    if (!g) return -1;
    g->o = *o;
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->qmu, NULL);
    pthread_cond_init(&g->qcv, NULL);
    pthread_cond_init(&g->qdone, NULL);
    guard_reference_init(&g->ref);
    guard_policy_defaults(&g->policy);
    if (o->policy_path && guard_policy_load(&g->policy, o->policy_path)) goto fail;
    if (o->shadow) g->policy.enforce = 0;
    if (o->reference_path) {
        if (guard_reference_load(&g->ref, o->reference_path)) goto fail;
        g->have_ref = 1;
    }
    if (gw_db_open(&g->db, o->db_path) || guard_db_init(g->db)) goto fail;
    if (guard_detector_new(&g->det, &g->policy, g->have_ref ? &g->ref : NULL)) goto fail;
    /* a restart does not forget: the last day of stored events (at most RESTORE_MAX) replayed,
     * each account at the level its latest action row records (a replica that only stores
     * events decides nothing, so it rebuilds nothing) */
    size_t n_restored = 0;
    if (gw_db_with(g->db, tiers_at_start_fn, g)) { /* the tiers operators set, before the replay */
        RT_FAIL("%s: %s", o->db_path, rt_errmsg());
        goto fail;
    }
    if (gw_db_with(g->db, max_event_id, &g->events_upto)) goto fail;
    if (!o->events_only &&
        guard_detector_restore_upto(g->db, g->det, g->policy.volume_tau, RESTORE_MAX, g->events_upto, &n_restored))
        goto fail;
    if (n_restored)
        rt_info("guard: state rebuilt from %zu stored events (%zu accounts)", n_restored,
                guard_detector_accounts(g->det));
    /* releases recorded before this start are history */
    if (gw_db_with(g->db, max_release_id, &g->last_release_id)) goto fail;
    char *pj = guard_policy_to_json(&g->policy);
    if (pj) {
        gw_config_set(g->db, "guard.policy", pj, rt_wall_time());
        free(pj);
    }
    gw_config_set(g->db, "guard.reference", o->reference_path ? o->reference_path : "", rt_wall_time());
    g->tiers_live = 1;
    if (pthread_create(&g->writer, NULL, writer_main, g) != 0) {
        RT_FAIL("guard: cannot start the writer thread");
        goto fail;
    }
    g->writer_started = 1;
    *out = g;
    return 0;
fail:
    guard_close(g);
    return -1;
}

void guard_close(guard *g) {
    if (!g) return;
    if (g->writer_started) {
        pthread_mutex_lock(&g->qmu);
        g->stop = 1;
        pthread_cond_broadcast(&g->qcv);
        pthread_mutex_unlock(&g->qmu);
        pthread_join(g->writer, NULL);
    }
    while (g->head) {
        item *nx = g->head->next;
        item_free(g->head);
        g->head = nx;
    }
    guard_detector_free(g->det);
    gw_db_close(g->db);
    guard_reference_free(&g->ref);
    free(g->fl);
    rt_map_free(&g->fl_index);
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->qmu);
    pthread_cond_destroy(&g->qcv);
    pthread_cond_destroy(&g->qdone);
    free(g);
}

void guard_stats(guard *g, uint64_t *events, uint64_t *actions) {
    pthread_mutex_lock(&g->mu);
    if (events) *events = g->n_events;
    if (actions) *actions = g->n_actions;
    pthread_mutex_unlock(&g->mu);
}

/* ---------------------------------------------------------------- the worker (replicas) */

int guard_worker_run(const guard_options *o0, const guard_worker_options *w) {
    guard_options o = *o0;
    o.store_events = 0; /* the replicas stored them */
    o.events_only = 0;
    double poll_s = w->poll_s > 0 ? w->poll_s : 0.05;
    guard *g = NULL;
    gw_conn *lc = NULL;
    if (guard_open(&g, &o)) return -1;
    int rc = 0;
    /* a second connection only to be woken (PostgreSQL); SQLite polls */
    if (gw_conn_open(&lc, o.db_path, 0) || gw_conn_listen(lc, "guard_events")) {
        guard_close(g);
        gw_conn_close(lc);
        return -1;
    }
    int64_t last = g->events_upto;
    if (w->after_id >= 0) { /* judge from after_id on as live traffic: a fresh state, no history */
        guard_detector *fresh = NULL;
        if (guard_detector_new(&fresh, &g->policy, g->have_ref ? &g->ref : NULL)) {
            guard_close(g);
            gw_conn_close(lc);
            return -1;
        }
        guard_detector_free(g->det);
        g->det = fresh;
        last = w->after_id;
    }
    uint64_t seen = 0;
    if (w->log)
        fprintf(w->log, "guard worker: deciding for every replica from event #%lld on (%s)\n", (long long)last,
                gw_conn_is_pg(lc) ? "LISTEN/NOTIFY and polling" : "polling");
    while (!(w->stop && *w->stop)) {
        guard_event_list l;
        int64_t next = last;
        if (guard_events_read_after(g->db, last, 4096, &l, &next)) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < l.n; i++) judge_event(g, &l.ev[i]);
        size_t n = l.n;
        guard_events_free(&l);
        seen += n;
        last = next;
        if (n) continue;
        if (w->once) break;
        if (gw_conn_wait(lc, poll_s) < 0) {
            rc = -1;
            break;
        }
    }
    if (guard_flush(g)) rc = -1;
    if (w->log)
        fprintf(w->log, "guard worker: %llu events judged, %llu actions, up to event #%lld\n", (unsigned long long)seen,
                (unsigned long long)g->n_actions, (long long)last);
    gw_conn_close(lc);
    guard_close(g);
    return rc;
}
