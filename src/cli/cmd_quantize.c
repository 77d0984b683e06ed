/*
 * cmd_quantize.c — `retort quantize --type T IN.gguf OUT.gguf`: re-encode a model file's
 * weight matrices in one of llama.cpp's formats (gguf_quantize_file does the work).
 */
#include <inttypes.h>
#include <stdio.h>

#include "../formats/gguf.h"
#include "../kernels/quant.h"
#include "cli.h"

int cmd_quantize(int argc, char **argv) {
    const char *pos[2];
    size_t np = 0;
    const char *type_s = NULL;
    int quiet = 0;
    cli_opt opts[] = {
        {"--type", CLI_STR, &type_s, "T: q8_0, q4_0, q4_k, q5_k, q6_k, bf16, f16 or f32", 1, 0},
        {"--quiet", CLI_FLAG, &quiet, "print nothing on success", 0, 0},
    };
    cli_cmd_info info = {
        "quantize", "retort quantize --type q8_0|q4_0|q4_k|q5_k|q6_k|bf16|f16|f32 IN.gguf OUT.gguf",
        "Writes IN's tensors to OUT in llama.cpp's encoding T (the blocks llama-quantize writes\n"
        "without an importance matrix; every other key is copied). 1-D tensors (norms) stay f32;\n"
        "matrices whose rows do not fit T's block (256 for the K types) fall back to q8_0 or f16.\n"
        "Any model retort or llama.cpp loads can be quantized; OUT is written atomically."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, pos, 2, &np);
    if (prc) return prc == 1 ? 0 : 2;
    if (np != 2) {
        fprintf(stderr, "retort quantize: error: give the input and the output file (%s)\n", info.usage);
        return 2;
    }
    qtype t;
    if (qtype_parse(type_s, &t)) {
        fprintf(stderr, "retort quantize: error: --type '%s' is not one of q8_0, q4_0, q4_k, q5_k, q6_k, bf16, "
                        "f16, f32\n", type_s);
        return 2;
    }
    gguf_quantize_stats st;
    if (gguf_quantize_file(pos[0], pos[1], (gguf_dtype)t, &st)) return cli_fail("quantize");
    if (!quiet)
        printf("%s -> %s (%s): %zu tensors, %zu in %s, %zu fell back (rows not a multiple of %zu), %zu 1-D kept "
               "f32; tensor data %.1f MB -> %.1f MB\n",
               pos[0], pos[1], qtype_name(t), st.n_tensors, st.n_converted, qtype_name(t), st.n_fallback,
               qtype_block_elems(t), st.n_kept_f32, st.bytes_in / 1e6, st.bytes_out / 1e6);
    return 0;
}
