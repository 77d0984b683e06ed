/*
 * links.c — the evidence behind the guard's links, read back from its action rows (contract
 * in defend.h: guard_pair_links_read). Every flag, throttle and suspend row stores the deciding
 * account's evidence (guard_detector_evidence), whose "linked" entries say, for each partner,
 * whether the pair is linked and the values of each kind of evidence. This file collects the
 * linked pairs and the kinds they rested on; it does not decide links (the detector does) nor
 * define groups (guard_groups_read in store.c).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "defend_internal.h"

static int cmp_pair(const void *a, const void *b) {
    const guard_pair_link *x = a, *y = b;
    if (x->a != y->a) return (x->a > y->a) - (x->a < y->a);
    return (x->b > y->b) - (x->b < y->b);
}

static double num(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* the linked entries of one evidence text into *out (a < b; repeats merged later) */
static int pairs_of(const char *evidence, guard_pair_link **out, size_t *n, size_t *cap) {
    json_t *root = json_loads(evidence, 0, NULL);
    if (!root) return 0; /* an operator's row, or evidence from before the JSON: no links */
    json_t *acc = json_object_get(root, "account"), *linked = json_object_get(root, "linked");
    int rc = 0;
    size_t i;
    json_t *l;
    if (json_is_integer(acc) && json_is_array(linked))
        json_array_foreach(linked, i, l) {
            json_t *other = json_object_get(l, "account");
            if (!json_is_true(json_object_get(l, "linked")) || !json_is_integer(other)) continue;
            int64_t x = json_integer_value(acc), y = json_integer_value(other);
            if (x == y) continue;
            if (RT_GROW(*out, *cap, *n + 1, "guard link evidence")) {
                rc = -1;
                break;
            }
            (*out)[(*n)++] = (guard_pair_link){
                .a = x < y ? x : y,
                .b = x < y ? y : x,
                .kinds = guard_link_kinds(num(l, "ip"), num(l, "burst"), num(l, "template"), num(l, "fingerprint"),
                                          num(l, "cohort"), num(l, "timing")),
                .rows = 1};
        }
    json_decref(root);
    return rc;
}

int guard_pair_links_read(gw_conn *c, guard_pair_link **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!gw_sql_has_table(c, "guard_actions")) return 0;
    gw_stmt *st = NULL;
    if (gw_sql_prepare(c,
                       "SELECT evidence FROM guard_actions WHERE action <> 'release' AND evidence IS NOT NULL "
                       "ORDER BY id",
                       &st, "reading guard_actions"))
        return -1;
    guard_pair_link *p = NULL;
    size_t np = 0, cap = 0;
    int s = GW_DONE, rc = 0;
    while (!rc && (s = gw_step(st)) == GW_ROW) {
        const char *ev = gw_column_text(st, 0);
        if (ev && *ev == '{') rc = pairs_of(ev, &p, &np, &cap);
    }
    if (!rc && s != GW_DONE) rc = gw_sql_fail(c, "reading guard_actions");
    gw_finalize(st);
    if (rc) {
        free(p);
        return -1;
    }
    /* one entry a pair: the kinds seen in any row, the rows counted */
    if (np) qsort(p, np, sizeof *p, cmp_pair);
    size_t k = 0;
    for (size_t i = 0; i < np; i++) {
        if (k && p[k - 1].a == p[i].a && p[k - 1].b == p[i].b) {
            p[k - 1].kinds |= p[i].kinds;
            p[k - 1].rows++;
        } else {
            p[k++] = p[i];
        }
    }
    *out = p;
    *n = k;
    return 0;
}
