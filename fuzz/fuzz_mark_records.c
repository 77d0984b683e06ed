/*
 * fuzz_mark_records.c — a detector's input file (`retort watermark detect --input`,
 * `radioactivity`): JSONL records {"prompt", "completion"|"text"} or plain text, one record per
 * line or the whole file, through mark_records_load. The first byte picks per-line mode.
 * Invariants: every record's strings are NUL-terminated at their stated lengths; plain text
 * loaded whole is the file's bytes.
 */
#include "fuzz_common.h"

#include "mark/mark.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path = fz_scratch(data + 1, size - 1, "");
    mark_record *r = NULL;
    size_t n = 0;
    if (mark_records_load(path, data[0] & 1, &r, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (r[i].prompt) FZ_CHECK(r[i].prompt[r[i].prompt_len] == '\0');
            if (r[i].completion) FZ_CHECK(r[i].completion[r[i].completion_len] == '\0');
        }
        mark_records_free(r, n);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
