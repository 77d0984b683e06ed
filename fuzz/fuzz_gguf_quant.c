/*
 * fuzz_gguf_quant.c — the quantized-tensor paths of the GGUF reader under hostile bytes: every
 * tensor of a type retort decodes (f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K) is read as F32
 * (shape, type id, size and offset all attacker-chosen, so the checks in gguf.c are what stands
 * between them and an out-of-bounds read), its first rows go through quant_matmul_rows on the
 * encoded bytes, and the decoded floats (NaN, inf, subnormals included) are re-encoded by the
 * reference quantizers. Errors are expected; crashes, sanitizer reports and leaks are bugs.
 * Seeds: fuzz/corpus/gguf_quant/ (small files of each type written by retort quantize).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "kernels/quant.h"

#define MAX_ELEMS (1u << 16) /* bound the work per input, not the parser */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_ctx *g = NULL;
    if (gguf_open_memory(&g, data, size, "fuzz.gguf")) return 0;
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        gguf_tensor_info t;
        if (gguf_tensor_info_at(g, i, &t)) continue;
        uint64_t n = t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
        if (n == 0 || n > MAX_ELEMS) continue;
        float *x = malloc((size_t)n * sizeof(float));
        if (!x) break;
        if (gguf_read_tensor_f32(g, t.name, x, (size_t)n, NULL, 0) == 0) {
            size_t cols = (size_t)t.ne[0], rows = (size_t)n / cols, rb = qtype_row_bytes(t.type, cols);
            /* the products on the encoded rows (at most 4 of them) */
            if (rb && rows) {
                qmatrix m = {t.type, t.data, rows < 4 ? rows : 4, cols, rb};
                float *in = calloc(cols, sizeof(float)), out[4];
                if (in) {
                    for (size_t c = 0; c < cols; c++) in[c] = (float)(c % 7) - 3.0f;
                    quant_matmul_rows(out, 4, in, &m, 1);
                }
                free(in);
            }
            /* re-encode the decoded floats, as retort quantize would */
            uint8_t *enc = rb ? malloc(rb) : NULL;
            if (enc)
                for (size_t r = 0; r < rows && r < 4; r++) quant_quantize_row(t.type, x + r * cols, enc, cols);
            free(enc);
        }
        free(x);
    }
    gguf_close(g);
    return 0;
}
