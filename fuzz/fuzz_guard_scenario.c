/*
 * fuzz_guard_scenario.c — a traffic scenario file (the guard simulator's personas, counts,
 * rates and schedules, JSON) through guard_scenario_parse. A refusal must carry a message;
 * an accepted scenario must report its account count and free cleanly.
 */
#include "fuzz_common.h"

#include "sim/sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    guard_scenario *s = NULL;
    if (guard_scenario_parse(&s, (const char *)data, size, "fuzz-scenario.json") == 0) {
        FZ_CHECK(s != NULL);
        (void)guard_scenario_accounts(s);
        guard_scenario_free(s);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
