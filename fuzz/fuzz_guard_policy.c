/* fuzz_guard_policy.c — the guard's policy parser on arbitrary bytes (an operator's file, or
 * one a tool wrote): no crash, no read past len; an accepted policy prints back to JSON that
 * parses to the same policy text again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    guard_policy p;
    guard_policy_defaults(&p);
    if (guard_policy_parse(&p, (const char *)data, size, "fuzz") != 0) return 0;
    char *a = guard_policy_to_json(&p);
    if (!a) return 0;
    guard_policy q;
    guard_policy_defaults(&q);
    if (guard_policy_parse(&q, a, strlen(a), "round trip") != 0) abort();
    char *b = guard_policy_to_json(&q);
    if (b && strcmp(a, b) != 0) abort();
    free(a);
    free(b);
    return 0;
}
