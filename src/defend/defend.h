/*
 * defend.h — the guard inside a server: the production room around the pure detector
 * (src/guard). It owns the guard tables in the gateway database — the only SQL on them is
 * here, behind typed readers and writers — and everything that needs them:
 *   runtime    the serve_hooks that feed the detector inside `retort serve`, enforcement
 *              through the gateway (suspend; throttle = lower rpm), and release;
 *   store      the guard tables: schema, events written and read back, the CLI's status,
 *              explain and release;
 *   calibrate  `retort guard calibrate`: stored benign events -> guard_reference_fit;
 *   eval       per-strategy TPR/FPR, queries and tokens served before suspension, and the
 *              baselines (PRADA-style, rate-limit-only, a 1,500-query-window MMD detector)
 *              replayed on the same stored traffic;
 *   views      the guard tables as JSON for the admin API and the dashboard (GET /admin).
 *
 * Tables (schema in store.c; docs/architecture.md lists every table's owner):
 *   guard_events        one row per request the guard saw (the detector's features)
 *   guard_scores        risk over time per account (the timeline)
 *   guard_actions       flag / throttle / suspend / release with the evidence JSON
 *   guard_sim_accounts  the simulator's labels (written by src/sim through guard_labels_write)
 *   guard_tiers         account tiers set by operators (append-only; tiers.c)
 *
 * Threading: the runtime holds one lock around its detector and writes from one writer
 * thread with its own connection; every other function takes a gw_db and uses it through
 * gw_db_with (the gateway's lock).
 *
 * What this is not: the detector (src/guard), the gateway's own tables (src/gateway), or
 * the HTTP server (src/serve) — the guard plugs into serve through serve_hooks.
 */
#ifndef RETORT_DEFEND_H
#define RETORT_DEFEND_H

#include <stdio.h>

#include "../base/base.h"
#include "../gateway/gateway.h"
#include "../guard/guard.h"
#include "../serve/serve.h"

/* ---------------------------------------------------------------- events from requests */

/* Fill the request-derived fields of an event from hook arguments (no embedding, status or
 * token counts: those come from the result). The user text for templates is the last user
 * message of a chat request, or the completions prompt. */
int guard_event_from_request(guard_event *ev, const serve_request_info *ri);

/* ---------------------------------------------------------------- runtime (inside serve) */

typedef struct {
    const char *db_path;         /* the gateway database (guard tables are added to it) */
    const char *policy_path;     /* NULL: defaults */
    const char *reference_path;  /* NULL: no shift signal, no benign levels */
    int shadow;                  /* record would-be actions; change nothing */
    int store_events;            /* keep every request's features (for eval/calibrate); default 1 */
    int events_only;             /* a replica: store events, decide nothing (`retort guard worker` does) */
} guard_options;
void guard_options_defaults(guard_options *o);

typedef struct guard guard;
int guard_open(guard **out, const guard_options *o);
/* Flush the writer and close. */
void guard_close(guard *g);
/* The hooks to pass to serve_start (want_hidden set). */
void guard_serve_hooks(guard *g, serve_hooks *h);
/* Wait until everything queued so far is in the database (tests, shutdown). */
int guard_flush(guard *g);
/* Counters: events seen, actions taken. */
void guard_stats(guard *g, uint64_t *events, uint64_t *actions);

/* Replicas (PostgreSQL): the detector keeps one state per account, so ONE process decides.
 * Every replica runs serve with events_only (--guard-events-only): it computes each request's
 * event (hidden state, MinHash, counts) and stores it in guard_events, nothing else; the
 * worker reads guard_events in id order (event writers take a transaction-scoped advisory
 * lock on PostgreSQL, so ids commit in order and none is passed over), feeds its detector
 * exactly as serve's hook does, and writes actions, suspensions and throttles to the shared
 * tables, which every replica reads on each request (gw_auth, the limiter). It wakes on
 * LISTEN/NOTIFY (channel guard_events) on PostgreSQL and polls every poll_s on both. On
 * start it rebuilds its state from the last day of stored events, as serve's guard does.
 * stop: set to non-zero (e.g. by a signal handler) to return; once: return when no new event
 * is left. */
typedef struct {
    double poll_s;          /* default 0.05 */
    int once;
    const volatile int *stop; /* may be NULL (sig_atomic_t is int on the platforms we build on) */
    FILE *log;              /* progress lines (may be NULL) */
    int64_t after_id;       /* < 0 (deploy): rebuild state from the stored history, then judge what
                               arrives; >= 0: no history, judge every event with id > after_id */
} guard_worker_options;
int guard_worker_run(const guard_options *o, const guard_worker_options *w);

/* Create the guard tables in a database if absent (idempotent). */
int guard_db_init(gw_db *db);

/* ---------------------------------------------------------------- store (CLI side) */

/* `retort guard status`: one line per account with guard activity. as_json: JSON lines. */
int guard_status_print(gw_db *db, FILE *out, int as_json);
/* `retort guard explain ACCOUNT`: actions with their evidence, latest signals, links. */
int guard_explain_print(gw_db *db, const char *account, FILE *out, int as_json);
/* `retort guard release ACCOUNT`: reactivate (and the whole group when group), restore the
 * limits a throttle lowered, record the release (a running guard resets the account). */
int guard_release(gw_db *db, const char *account, int group, const char *note, double now, FILE *out);
/* An account the guard asked to verify (its last enforcing action since the last release is
 * verify, and it is refused) is released (guard_release of it alone, with note): an operator who
 * puts it in a tier has confirmed the verification. Nothing for any other account. */
int guard_verify_lift(gw_db *db, const char *account, const char *note, double now, FILE *out);

/* `retort guard tier ACCOUNT TIER` and the admin API: record the account's tier (a tier of
 * policy p; NULL: the default policy's), with a note and who set it; a running guard applies
 * it within a second. "standard" puts an account back. Unknown tiers are refused by name. */
int guard_tier_set(gw_db *db, const guard_policy *p, const char *account, const char *tier, const char *note,
                   const char *by, double now, FILE *out);
/* The latest tier row of an account (tier "standard", has_row 0 and t NaN when none), on a
 * connection the caller holds (a gw_db_with callback). */
typedef struct {
    int has_row;
    char tier[GUARD_TIER_NAME_MAX];
    char note[GW_REASON_MAX];
    char by[GW_NAME_MAX];
    double t;
} guard_tier_info;
int guard_tier_get(gw_conn *c, int64_t account_id, guard_tier_info *out);

/* Read stored events of the database in row order. emb of each points into *emb_store
 * (events[i].emb_dim int8 each). Free with guard_events_free. */
typedef struct {
    guard_event *ev;
    size_t n;
    int8_t *emb_store;
} guard_event_list;
int guard_events_read(gw_db *db, guard_event_list *out);
/* The recent part only: events within span_s seconds of the latest stored event's t, and at
 * most the last max_events of them (bounded memory at start-up). */
int guard_events_read_recent(gw_db *db, double span_s, size_t max_events, guard_event_list *out);
/* Events with id > after_id in id order, at most max; *last_id gets the last id read (after_id
 * when none). */
int guard_events_read_after(gw_db *db, int64_t after_id, size_t max, guard_event_list *out, int64_t *last_id);
/* Rebuild a fresh detector from the stored events (guard_events_read_recent), then give every
 * account the level of its latest action row (a release: fresh state, level none) — what was
 * acted on, so a level the replay passes without an action is acted on at the next event.
 * *n_events: events replayed. Used by guard_open so a restart does not forget. */
int guard_detector_restore(gw_db *db, guard_detector *d, double span_s, size_t max_events, size_t *n_events);
/* The same from the events with id <= upto_id only (the guard worker: it goes on from there). */
int guard_detector_restore_upto(gw_db *db, guard_detector *d, double span_s, size_t max_events, int64_t upto_id,
                                size_t *n_events);
void guard_events_free(guard_event_list *l);

/* ---------------------------------------------------------------- calibration and eval */

typedef struct {
    const char *db_path;      /* a run on benign traffic (guard in shadow or enforce mode) */
    const char *policy_path;  /* NULL: defaults */
    double quantile;          /* of benign per-account maxima, for the levels (default 0.99) */
    uint64_t seed;
    int only_labelled_benign; /* use accounts labelled benign by the simulator (default 1 when
                                 labels exist); otherwise every account is taken as benign */
} guard_calib_options;
int guard_calibrate(const guard_calib_options *o, guard_reference *out, FILE *log);

typedef struct {
    const char *db_path;
    const char *reference_path; /* for the baselines' embeddings (MMD window); may be NULL */
    int as_json;
    double prada_delta;         /* 0: the reference's, else 0.95 */
    size_t mmd_window;          /* the published detector's window (default 1500) */
    const char *calib_db_path;  /* the calibration run's database: report what was held out of it */
} guard_eval_options;
/* Print the per-strategy evaluation (text or JSON) to out. */
int guard_eval(const guard_eval_options *o, FILE *out);

/* Timeline SVG: risk per account over time, suspensions marked, thresholds drawn. */
int guard_plot_timeline(gw_db *db, const char *svg_path, const char *title);

/* ---------------------------------------------------------------- views (admin API, dashboard) */

/* One guard_scores / guard_actions row as the runtime stores it, for tools and tests that
 * prepare a database (the live guard batches its own writes). Creates the tables if absent.
 * NULL strings store as "" (level: "none", mode: "enforce"); group_id 0 means the account
 * itself; signals and evidence must be JSON objects when given. */
typedef struct {
    double t;
    int64_t account_id, group_id;
    size_t group_size;              /* 0 = 1 */
    double n;                       /* requests observed */
    double risk, account_risk, group_risk;
    const char *level;              /* "none", "flag", "throttle", "suspend" */
    const char *code;               /* e.g. "G-SHIFT+SAT" */
    const char *signals;            /* {"signal": [value, score], ...} or NULL */
} guard_score_row;
int guard_score_insert(gw_db *db, const guard_score_row *r);

typedef struct {
    double t;
    int64_t account_id, group_id;
    const char *action;             /* "flag", "throttle", "suspend", "release" */
    const char *mode;               /* "enforce", "shadow", "operator" */
    const char *code;
    double risk;
    int64_t usage_row_id;           /* the ledger row that decided (0: none) */
    const char *reason;
    const char *evidence;           /* JSON object (NULL: {}) */
    int64_t prev_rpm;               /* throttle: the rpm a release restores; -1: none */
} guard_action_row;
int guard_action_insert(gw_db *db, const guard_action_row *r, int64_t *id_out);

/* Every account (malloc'ed JSON text): {"now", "window_s", "guard_tables", "policy":
 * {"flag_at", "throttle_at", "suspend_at", "enforce", "source"}, "accounts": [{"id", "name",
 * "status", "reason", "status_changed_at", "admin", "created_at", "limits", "usage": {...},
 * "guard": {"level", "risk", "risk_t", "account_risk", "group_risk", "requests_seen", "code",
 * "recent": [risk, ... oldest first], "group": {"id", "size", "members": [id...]} | null,
 * "last_action": {...} | null}, "label": simulator label | null}], "groups": [{"id", "size",
 * "reported_size", "risk", "code", "suspended", "members": [{"id", "name", "status", "risk",
 * "level"}]}]}. level: none, flag, throttle, suspend, or released (after an operator release).
 * Usage windows end at now (24 h). Works on a database without guard tables (no risk). */
int guard_view_accounts(gw_db *db, double now, char **json_out);
/* One account (name or "#id"): {"now", "guard_tables", "policy", "account": (as above),
 * "timeline": [{"t", "risk", "account_risk", "group_risk", "level", "code", "n", "group",
 * "group_size"}] in time order (at most max_points: per bucket of consecutive rows the one of
 * highest risk, the newest always last; 0 = 240), "timeline_rows", "actions": [{"id", "t",
 * "action", "mode", "code", "risk", "group", "usage_row", "reason", "evidence"}], "signals":
 * the latest score's {"signal": [value, score]} | null, "group_members": [...]}. */
int guard_view_account(gw_db *db, const char *name_or_id, double now, size_t max_points, char **json_out);
/* The admin API routes of the guard, for serve_options.admin_routes (admin key required):
 *   GET  /admin/api/guard/accounts                      guard_view_accounts
 *   GET  /admin/api/guard/accounts/{name|#id}?points=N  guard_view_account
 *   POST /admin/api/guard/accounts/{name|#id}/release   {"group": false, "note": "..."}:
 *        guard_release (active again, throttle undone, recorded; a running guard starts the
 *        account afresh), answered with the account's view. */
void guard_admin_routes(serve_admin_routes *out);

/* ---------------------------------------------------------------- simulator labels */

/* One account's label in guard_sim_accounts, written by the simulator (src/sim), read by
 * eval, calibrate, the views and the report. */
typedef struct {
    int64_t account_id;
    char name[GW_NAME_MAX];
    char persona[64];   /* the scenario's persona name */
    char strategy[32];  /* benign, power, app, evaljob, bulk, logprob, slow, template, mimicry, sybil, walk,
                           prober, swarm, warmup, careful, paraphrase */
    int attack;         /* 1 = attacker */
    char group[80];     /* the persona instance (a sybil group shares one) */
    char client[64];    /* the address it sends from ("" if none) */
    double created_at;  /* its sign-up time */
    uint64_t seed;      /* the scenario's seed */
    char source[16];    /* its prompts' source: corpus, fortunes, man, everyday (+ "/a", "/b") */
} guard_label;
/* Insert (or replace, by account) labels in one transaction; creates the guard tables. */
int guard_labels_write(gw_db *db, const guard_label *l, size_t n);
/* Every label ordered by account id (*out malloc'ed; none without the table). The reader
 * fills account_id, name, persona, strategy, attack, group, seed and source ("corpus" for
 * labels from before sources). guard_labels_read does the
 * same on a connection the caller holds (a gw_db_with callback, or the report's). */
int guard_labels_load(gw_db *db, guard_label **out, size_t *n);
int guard_labels_read(gw_conn *c, guard_label **out, size_t *n);

/* ---------------------------------------------------------------- readers for the report */

/* What the enforcing guard did to one account: its first enforced suspension (t NaN when
 * none; code, reason and evidence of that action row) and its first enforced throttle (the
 * same fields of that row; t_throttle NaN when never throttled). */
typedef struct {
    int64_t account_id;
    double t_suspend, risk;
    char *code, *reason, *evidence; /* malloc'ed ("" when not suspended) */
    int throttled;
    double t_throttle, throttle_risk;
    char *throttle_code, *throttle_reason, *throttle_evidence; /* malloc'ed ("" when not throttled) */
    int verify;      /* asked to verify (the population budget's step) at some point */
    double t_verify; /* the first time (NaN: never) */
} guard_enforcement;
/* Accounts with an enforced suspension or throttle, ordered by account id (none without the
 * guard tables). Free with guard_enforcement_free. */
int guard_enforcement_read(gw_conn *c, guard_enforcement **out, size_t *n);
void guard_enforcement_free(guard_enforcement *e, size_t n);
/* The guard's linked groups, the one definition the dashboard (views.c) and the report share.
 * The detector names a group by the id of its union-find root account (group_id of a score
 * or action row), and the root changes as groups merge, so one operation's rows carry several
 * names over time. A group here is a connected component of accounts and the names their rows
 * carried: an account's guard_scores rows with group_size > 1 and its non-release
 * guard_actions rows, each with group_id > 0, later than the account's latest release (a
 * release makes the detector forget the account's links). Components of two or more accounts
 * are groups, named by the smallest group_id in them. Out: one link per grouped account,
 * ordered by account id (*out malloc'ed; none without the guard tables). */
typedef struct {
    int64_t account_id, group_id;
} guard_group_link;
int guard_groups_read(gw_conn *c, guard_group_link **out, size_t *n);

/* The linked pairs the guard's action rows give evidence for: each flag, throttle or suspend
 * row's evidence (guard_detector_evidence of the deciding account) lists that account's
 * partners; those marked linked become pairs (a < b), with the kinds of evidence
 * (GUARD_LINK_* bits, guard_link_kinds) seen in any of the rows and how many rows named the
 * pair. A pair linked only between two actions (and never named by the deciding account) is
 * not seen. Ordered by (a, b); *out malloc'ed; none without the guard tables. */
typedef struct {
    int64_t a, b;
    unsigned kinds;
    size_t rows;
} guard_pair_link;
int guard_pair_links_read(gw_conn *c, guard_pair_link **out, size_t *n);

/* Every guard_scores row in time order: fn(ud, t, account_id, risk (NaN when NULL)); fn
 * returns 0 to go on, -1 to stop with its error. */
int guard_scores_each(gw_conn *c, int (*fn)(void *ud, double t, int64_t account_id, double risk), void *ud);

#endif /* RETORT_DEFEND_H */
