/*
 * fuzz_guard_reference.c — a guard reference file (`retort guard calibrate` writes it; `serve
 * --guard-reference` reads it: the benign embedding profile, stop bands, per-signal levels)
 * through guard_reference_load. A refusal carries a message; an accepted reference frees
 * cleanly and its sizes are what it claims.
 */
#include "fuzz_common.h"

#include "guard/guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_scratch(data, size, ".json");
    guard_reference r;
    if (guard_reference_load(&r, path) == 0) {
        if (r.has_shift) FZ_CHECK(r.mu != NULL);
        for (size_t i = 1; i < r.n_stop_bands; i++) FZ_CHECK(r.stop_bands[i - 1] < r.stop_bands[i]);
        guard_reference_free(&r);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
