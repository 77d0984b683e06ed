/* fuzz_safetensors.c — the safetensors header parser and reader on hostile bytes: open from
 * memory, then read every tensor whose size is modest as F32. Must return an error, never
 * crash or read out of bounds (built with -fsanitize=fuzzer,address,undefined). */
#include <stdint.h>
#include <stdlib.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file *f = NULL;
    if (st_open_memory(&f, data, size, "fuzz.safetensors") != 0) return 0;
    for (size_t i = 0; i < st_n_tensors(f); i++) {
        const st_tensor *t = st_tensor_at(f, i);
        if (t->n_elems > (1u << 20)) continue;
        float *dst = malloc((size_t)t->n_elems * sizeof(float) + 1);
        if (dst) st_read_f32(f, t, dst, (size_t)t->n_elems);
        free(dst);
        (void)st_find(f, t->name);
    }
    st_close(f);
    return 0;
}
