/*
 * cmd_convert.c — `retort convert`: a Hugging Face folder to a GGUF model file, and back.
 *   retort convert --from hf DIR --out M.gguf [--tokenizer T.gguf | --no-tokenizer] [--f16]
 *     (the tokenizer: T.gguf's, else DIR/tokenizer.json + tokenizer_config.json's, padded
 *     to config.json's vocab_size as llama.cpp's converter pads it)
 *   retort convert --to hf M.gguf --out DIR [--dtype f32|f16|bf16]
 * The mapping itself lives in src/model (model_from_hf / model_to_hf).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../model/model.h"
#include "cli.h"

/* DIR/tokenizer.json (+ tokenizer_config.json for bos/eos, add_bos and the chat template). */
static int hf_tokenizer_import(const char *dir, tokenizer **tok, char **chat_template) {
    if (tokenizer_from_hf(tok, dir)) return -1;
    if (tokenizer_chat_template_load(dir, chat_template)) {
        tokenizer_free(*tok);
        *tok = NULL;
        return -1;
    }
    return 0;
}

/* The tokenizer and chat template of another GGUF file (one retort or llama.cpp wrote). */
static int gguf_tokenizer(const char *path, tokenizer **tok, char **chat_template) {
    gguf_ctx *g;
    if (gguf_open(&g, path)) return -1;
    int rc = tokenizer_from_gguf(tok, g);
    const char *t;
    size_t n;
    if (rc == 0 && gguf_get_str(g, "tokenizer.chat_template", &t, &n) == 0) {
        *chat_template = rt_malloc(n + 1, "chat template");
        if (*chat_template) {
            memcpy(*chat_template, t, n);
            (*chat_template)[n] = '\0';
        } else rc = -1;
    }
    gguf_close(g);
    return rc;
}

static int from_hf(const char *dir, const char *out, const char *tok_path, int no_tok, int f16) {
    tokenizer *tok = NULL;
    char *tmpl = NULL;
    char tj[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    if (tok_path) {
        if (gguf_tokenizer(tok_path, &tok, &tmpl)) return -1;
    } else if (!no_tok && rt_file_exists(tj)) {
        if (hf_tokenizer_import(dir, &tok, &tmpl)) return -1;
    } else if (!no_tok) {
        rt_warn("%s has no tokenizer.json: the GGUF gets no tokenizer (pass --tokenizer T.gguf)", dir);
    }
    model *m;
    if (model_from_hf(&m, dir, tok)) {
        tokenizer_free(tok);
        free(tmpl);
        return -1;
    }
    m->chat_template = tmpl;
    gguf_writer *w = gguf_writer_new();
    int rc = !w || model_to_gguf(m, w, f16) || gguf_writer_write(w, out) ? -1 : 0;
    if (rc == 0)
        rt_info("%s: %s, %zu layers, dim %zu, heads %zu/%zu (head dim %zu), vocab %zu%s -> %s",
                dir, model_arch_name(m->cfg.arch), m->cfg.n_layers, m->cfg.dim, m->cfg.n_heads,
                m->cfg.n_kv_heads, m->cfg.head_dim, m->cfg.vocab_size, m->tok ? "" : " (no tokenizer)",
                out);
    gguf_writer_free(w);
    model_free(m);
    return rc;
}

static int to_hf(const char *in, const char *out, const char *dtype_s) {
    st_dtype dt;
    if (!strcmp(dtype_s, "f32")) dt = ST_F32;
    else if (!strcmp(dtype_s, "f16")) dt = ST_F16;
    else if (!strcmp(dtype_s, "bf16")) dt = ST_BF16;
    else return RT_FAIL("--dtype: expected f32, f16 or bf16, got '%s'", dtype_s);
    model *m;
    if (model_load(&m, in)) return -1;
    int rc = model_to_hf(m, out, dt);
    if (rc == 0 && m->tok) rc = tokenizer_to_hf(m->tok, out, m->chat_template);
    if (rc == 0)
        rt_info("%s -> %s/{config.json, model.safetensors%s} (%s)", in, out,
                m->tok ? ", tokenizer.json, tokenizer_config.json" : "", dtype_s);
    model_free(m);
    return rc;
}

int cmd_convert(int argc, char **argv) {
    const char *from = NULL, *to = NULL, *out = NULL, *tok_path = NULL, *dtype = "f32";
    int no_tok = 0, f16 = 0;
    cli_opt opts[] = {
        {"--from", CLI_STR, &from, "hf: convert the Hugging Face folder INPUT to a GGUF file", 0, 0},
        {"--to", CLI_STR, &to, "hf: convert the GGUF file INPUT to a Hugging Face folder", 0, 0},
        {"--out", CLI_STR, &out, "PATH: the GGUF file (--from hf) or the folder (--to hf)", 1, 0},
        {"--tokenizer", CLI_STR, &tok_path, "T.gguf: take the tokenizer and chat template from this GGUF", 0, 0},
        {"--no-tokenizer", CLI_FLAG, &no_tok, "write the GGUF without a tokenizer", 0, 0},
        {"--f16", CLI_FLAG, &f16, "store 2-D tensors as F16 in the GGUF (default F32)", 0, 0},
        {"--dtype", CLI_STR, &dtype, "f32|f16|bf16: safetensors dtype for --to hf (default f32)", 0, 0},
    };
    cli_cmd_info info = {
        "convert",
        "retort convert --from hf DIR --out M.gguf | --to hf M.gguf --out DIR",
        "Converts between Hugging Face folders (config.json + model.safetensors, or shards with\n"
        "model.safetensors.index.json; F32/F16/BF16) and GGUF model files as llama.cpp's converter\n"
        "writes them. Architectures: llama (incl. Llama 3 RoPE scaling), mistral, qwen2, qwen3.\n"
        "llama/mistral Q/K rows are permuted between HF's rotate-half and GGUF's adjacent-pair\n"
        "RoPE layouts. F32 converts bit-exactly both ways. --from hf imports DIR's tokenizer.json\n"
        "(+ tokenizer_config.json: bos/eos, add_bos, chat template) unless --tokenizer or\n"
        "--no-tokenizer is given; a vocabulary smaller than config.json's vocab_size is padded\n"
        "with [PAD<id>] tokens as llama.cpp's converter does."};
    const char *pos[1];
    size_t n_pos = 0;
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, pos, 1, &n_pos);
    if (prc) return prc == 1 ? 0 : 2;
    if (n_pos != 1 || (!from == !to)) {
        fprintf(stderr, "retort convert: error: give exactly one of --from hf / --to hf and one input "
                        "(see --help)\n");
        return 2;
    }
    const char *kind = from ? from : to;
    if (strcmp(kind, "hf") != 0) {
        fprintf(stderr, "retort convert: error: %s '%s': only 'hf' is supported\n", from ? "--from" : "--to", kind);
        return 2;
    }
    if (tok_path && no_tok) {
        fprintf(stderr, "retort convert: error: --tokenizer and --no-tokenizer exclude each other\n");
        return 2;
    }
    int rc = from ? from_hf(pos[0], out, tok_path, no_tok, f16) : to_hf(pos[0], out, dtype);
    return rc ? cli_fail("convert") : 0;
}
