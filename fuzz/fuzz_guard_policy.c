/*
 * fuzz_guard_policy.c — a guard policy file (JSON over the defaults: thresholds, weights,
 * windows, actions) through guard_policy_parse. Invariant: a policy that parses is written
 * back by guard_policy_to_json as text that parses to the same JSON again (a fixed point).
 */
#include "fuzz_common.h"

#include "guard/guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    guard_policy p;
    guard_policy_defaults(&p);
    if (guard_policy_parse(&p, (const char *)data, size, "fuzz-policy.json") == 0) {
        char *j1 = guard_policy_to_json(&p);
        FZ_CHECK(j1 != NULL);
        guard_policy q;
        guard_policy_defaults(&q);
        FZ_CHECK(guard_policy_parse(&q, j1, strlen(j1), "round trip") == 0);
        char *j2 = guard_policy_to_json(&q);
        FZ_CHECK(j2 != NULL && strcmp(j1, j2) == 0);
        free(j1);
        free(j2);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
