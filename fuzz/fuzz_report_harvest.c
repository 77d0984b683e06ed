/*
 * fuzz_report_harvest.c — a harvest file as `retort report add-harvest` reads it
 * (report_harvest_scan, without a ledger to match against): each line a JSON object with a
 * "completion" string, usage.completion_tokens counted, the file's SHA-256. A refusal names
 * the file and line; an accepted file counts every line it has and matches nothing.
 */
#include "fuzz_common.h"

#include "report/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_scratch(data, size, ".jsonl");
    report_harvest_spec h = {.name = "fuzz", .guard = "on", .strategy = "", .path = path, .ledger_db = NULL};
    report_harvest_stats st;
    if (report_harvest_scan(&h, &st) == 0) {
        size_t lines = 0;
        for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
        if (size && data[size - 1] != '\n') lines++; /* a last line without its newline */
        FZ_CHECK(st.lines == lines);
        FZ_CHECK(st.matched == 0 && st.accounts && !st.accounts[0]);
        FZ_CHECK(strlen(st.sha256) == 64);
        report_harvest_stats_free(&st);
    } else {
        FZ_CHECK(rt_errmsg()[0] && strstr(rt_errmsg(), path));
    }
    rt_err_clear();
    return 0;
}
