/*
 * defend_internal.h — what the files of src/defend share and nobody else sees: the guard
 * tables' SQL and the simulator's labels as rows. (src/guard/plot.c still includes it until
 * it moves to the one plot module; src/sim includes it for the label rows it writes.)
 * SQL goes through the gateway's helper layer (gw_sql_*).
 */
#ifndef RETORT_DEFEND_INTERNAL_H
#define RETORT_DEFEND_INTERNAL_H


#include "defend.h"

/* Tables the guard adds to the gateway database (idempotent):
 *   guard_events   one row per request the guard saw: the features the detector used
 *                  (minhash: K uint32 little-endian; emb: dim int8; emb_scale)
 *   guard_scores   risk over time per account (the timeline), with signal contributions
 *   guard_actions  flag / throttle / suspend / release, with the evidence JSON
 *   guard_sim_accounts  the simulator's labels (persona, strategy, benign or attack, group)
 *   guard_tiers    account tiers operators set (append-only: the latest row of an account wins) */
extern const char *const guard_schema_sql;


/* Insert one event (bound to a prepared INSERT of guard_events). */
int guard_event_insert(gw_conn *c, gw_stmt *st, const guard_event *ev);
extern const char *const guard_event_insert_sql;

/* The one writer of guard_scores (store.c): binds a row to a prepared guard_score_insert_sql
 * (the runtime's writer thread keeps one per batch; guard_score_insert prepares its own) and
 * steps it. NULL level: "none"; NULL code: ""; group_id 0: the account; group_size 0: 1. */
extern const char *const guard_score_insert_sql;
int guard_score_write(gw_conn *c, gw_stmt *st, const guard_score_row *r);

/* The one writer of guard_actions (store.c): every action row — the runtime's escalations,
 * operator releases, and guard_action_insert for tools — goes through it. NULL strings:
 * mode "enforce", code and reason "", evidence {}; group_id 0 = the account; usage_row_id
 * <= 0 and prev_rpm < 0 store NULL. No validation (guard_action_insert validates).
 * guard_action_write runs on a connection the caller holds; guard_action_write_db takes the
 * gateway's lock. */
int guard_action_write(gw_conn *c, const guard_action_row *r, int64_t *id_out);
int guard_action_write_db(gw_db *db, const guard_action_row *r, int64_t *id_out);


/* guard_tiers rows with id > after_id in id order: fn(ud, id, account_id, tier); fn returns 0
 * to go on. Nothing without the table. (tiers.c, the table's one owner.) */
int guard_tier_rows_each(gw_conn *c, int64_t after_id, int (*fn)(void *ud, int64_t id, int64_t account_id, const char *tier),
                         void *ud);

/* eval.c's intervals. Wilson's 95% score interval of k successes in n ([0, 1] for n = 0).
 * The distribution-free 95% interval of a median of n sorted values: 0-based order
 * statistics lo, hi = n - 1 - lo, the narrowest whose coverage P(lo < K <= hi), K ~
 * Binomial(n, 1/2), is at least 0.95; -1 below n = 6 (none exists) or above 100,000. */
void guard_wilson95(size_t k, size_t n, double *lo, double *hi);
int guard_median_ci95(size_t n, size_t *lo, size_t *hi, double *cover);

#endif
