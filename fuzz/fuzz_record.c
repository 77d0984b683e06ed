/* fuzz_record.c — record_parse (the harvest JSONL line reader) on arbitrary bytes; what
 * parses must also write (record_to_json) and read back. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "record/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    record r;
    for (unsigned flags = 0; flags < 2; flags++) {
        if (record_parse(&r, (const char *)data, size, flags) == 0) {
            json_t *j = record_to_json(&r);
            rt_buf b = {0};
            if (j && record_append_line(&b, j) == 0) {
                record r2;
                if (record_parse(&r2, b.data, b.len - 1, flags)) __builtin_trap();
                if (r2.n_pos != r.n_pos) __builtin_trap();
                record_free(&r2);
            }
            json_decref(j);
            rt_buf_free(&b);
        }
        record_free(&r);
    }
    return 0;
}
