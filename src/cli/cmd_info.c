/*
 * cmd_info.c — `retort info`: what a model file holds — architecture and config, tokenizer
 * size, parameter count, training metadata (retort.train.*), and the tensor list.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../model/model.h"
#include "cli.h"

int cmd_info(int argc, char **argv) {
    const char *pos[1];
    size_t np = 0;
    int tensors_only = 0;
    cli_opt opts[] = {
        {"--tensors", CLI_FLAG, &tensors_only, "list only the tensors", 0, 0},
    };
    cli_cmd_info info = {"info", "retort info M.gguf",
                         "Prints the model's configuration, tokenizer, parameter count, training metadata and\n"
                         "tensor list."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, pos, 1, &np);
    if (prc) return prc == 1 ? 0 : 2;
    if (np != 1) {
        fprintf(stderr, "retort info: error: give one model file (retort info M.gguf)\n");
        return 2;
    }
    gguf_ctx *g = NULL;
    model *m = NULL;
    int status = 1;
    if (gguf_open(&g, pos[0])) goto done;
    if (!tensors_only) {
        if (model_from_gguf(&m, g)) goto done;
        const model_config *c = &m->cfg;
        printf("file:        %s (GGUF v%u)\n", pos[0], gguf_version(g));
        printf("arch:        %s%s%s, %s RoPE%s\n", model_arch_name(c->arch),
               c->qkv_bias ? ", Q/K/V biases" : "", c->qk_norm ? ", Q/K norms" : "",
               c->rope_neox ? "NEOX" : "adjacent-pair",
               m->rope_factors ? " with frequency factors (Llama 3 scaling)" : "");
        printf("dim:         %zu\nlayers:      %zu\nheads:       %zu (kv heads %zu, head dim %zu)\n",
               c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim);
        printf("ffn:         %zu\nvocab:       %zu\ncontext:     %zu\nnorm eps:    %g\nrope base:   %g\n",
               c->ffn_dim, c->vocab_size, c->ctx_len, (double)c->norm_eps, (double)c->rope_base);
        printf("output:      %s\n", c->tied ? "tied to token_embd" : "untied");
        printf("parameters:  %zu\n", m->n_params);
        if (m->tok)
            printf("tokenizer:   gpt2 byte-level BPE, %zu tokens (bos %d, eos %d)\n",
                   tokenizer_vocab_size(m->tok), tokenizer_bos(m->tok), tokenizer_eos(m->tok));
        else
            printf("tokenizer:   none\n");
        for (size_t i = 0; i < gguf_n_kv(g); i++) {
            const char *k = gguf_key_name(g, i);
            if (strncmp(k, "retort.", 7) != 0) continue;
            gguf_type t = gguf_kv_type(g, i);
            uint64_t u;
            const char *s;
            size_t sl;
            float f;
            if (t == GGUF_TYPE_STRING && gguf_get_str(g, k, &s, &sl) == 0)
                printf("%-28s %.*s\n", k, (int)sl, s);
            else if ((t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_UINT32) && gguf_get_u64(g, k, &u) == 0)
                printf("%-28s %" PRIu64 "\n", k, u);
            else if (t == GGUF_TYPE_FLOAT32 && gguf_get_f32(g, k, &f) == 0)
                printf("%-28s %g\n", k, (double)f);
        }
        printf("tensors:     %zu\n", gguf_n_tensors(g));
    }
    for (size_t i = 0; i < gguf_n_tensors(g); i++) {
        gguf_tensor_info ti;
        if (gguf_tensor_info_at(g, i, &ti)) goto done;
        printf("  %-28s %-5s [", ti.name, gguf_dtype_name(ti.type));
        for (uint32_t d = 0; d < ti.n_dims; d++) printf(d ? ", %" PRIu64 : "%" PRIu64, ti.ne[d]);
        printf("]\n");
    }
    status = 0;
done:
    if (status) cli_fail("info");
    model_free(m);
    gguf_close(g);
    return status;
}
