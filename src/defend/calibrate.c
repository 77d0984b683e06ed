/*
 * calibrate.c — `retort guard calibrate`: the guard tables of a run on benign traffic (or a
 * simulated run with labels) read back, and the reference fitted from them by the pure
 * guard_reference_fit (src/guard/reference.c says how). This file only reads: events in row
 * order and, when the simulator labelled the accounts, which of them are benign.
 * Not the fit itself, and not the reference file format (both src/guard).
 */
#include <stdlib.h>

#include "defend_internal.h"

typedef struct {
    guard_label *l;
    size_t n;
} labels_ctx;
static int labels_fn(gw_conn *c, void *ud) {
    labels_ctx *x = ud;
    return guard_labels_read(c, &x->l, &x->n);
}

/* The accounts the labels call benign (NULL with *n = 0 when there are none). */
static int benign_ids(const labels_ctx *lab, int64_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!lab->n) return 0;
    int64_t *ids = rt_malloc_array(lab->n, sizeof *ids, "benign accounts");
    if (!ids) return -1;
    for (size_t j = 0; j < lab->n; j++)
        if (!lab->l[j].attack) ids[(*n)++] = lab->l[j].account_id;
    *out = ids;
    return 0;
}

int guard_calibrate(const guard_calib_options *o, guard_reference *out, FILE *log) {
    guard_reference_init(out);
    if (!o->db_path || !rt_file_exists(o->db_path))
        return RT_FAIL_KIND(RT_ERR_NOT_FOUND, "--db: %s does not exist (a gateway database from a run with --guard-shadow)",
                            o->db_path ? o->db_path : "(none)");
    guard_policy pol;
    guard_policy_defaults(&pol);
    if (o->policy_path && guard_policy_load(&pol, o->policy_path)) return -1;
    gw_db *db = NULL;
    guard_event_list ev = {0};
    labels_ctx lab = {0};
    int64_t *ids = NULL;
    size_t n_ids = 0;
    int rc = -1;
    if (gw_db_open(&db, o->db_path) || guard_db_init(db) || guard_events_read(db, &ev)) goto out;
    if (gw_db_with(db, labels_fn, &lab)) goto out;
    if (ev.n == 0) {
        RT_FAIL_KIND(RT_ERR_INVALID, "%s: no guard events (run the server with --guard-shadow and send benign traffic first)",
                     o->db_path);
        goto out;
    }
    int use_labels = lab.n > 0 && o->only_labelled_benign;
    if (use_labels && benign_ids(&lab, &ids, &n_ids)) goto out;
    guard_fit_options fo = {.policy = &pol,
                            .quantile = o->quantile,
                            .seed = o->seed,
                            .all_benign = !use_labels,
                            .benign_ids = ids,
                            .n_benign_ids = n_ids,
                            .origin = o->db_path};
    rc = guard_reference_fit(out, ev.ev, ev.n, &fo, log);
out:
    free(ids);
    free(lab.l);
    guard_events_free(&ev);
    gw_db_close(db);
    if (rc) guard_reference_free(out);
    return rc;
}
