/*
 * cmd_tokenize.c — `retort tokenize`: text → JSON array of token ids (no BOS) on stdout,
 * for comparing with other tokenizers (llama.cpp, transformers.js) and for scripts. The
 * tokenizer comes from a model file (--model M.gguf) or from a Hugging Face tokenizer.json
 * or model folder (--tokenizer). --decode reads a JSON array of ids and prints the text.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "../model/model.h"
#include "cli.h"

static int decode_ids(const tokenizer *tok, const char *text, size_t len) {
    json_error_t err;
    json_t *arr = json_loadb(text, len, 0, &err);
    int rc = -1;
    int32_t *ids = NULL;
    char *out = NULL;
    size_t olen = 0, n = json_array_size(arr);
    if (!json_is_array(arr)) {
        RT_FAIL("--decode: input is not a JSON array of token ids (%s)", arr ? "" : err.text);
        goto done;
    }
    ids = rt_malloc_array(n ? n : 1, sizeof *ids, "token ids");
    if (!ids) goto done;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX) {
            RT_FAIL("--decode: element %zu is not a token id", i);
            goto done;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    if (tokenizer_decode(tok, ids, n, &out, &olen)) goto done;
    rc = fwrite(out, 1, olen, stdout) == olen ? 0 : RT_FAIL("--decode: cannot write stdout");
done:
    json_decref(arr);
    free(ids);
    free(out);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *input = "-";
    int parse_special = 0, decode = 0;
    cli_opt opts[] = {
        {"--model", CLI_STR, &model_path, "M.gguf: a model file holding a tokenizer", 0, 0},
        {"--tokenizer", CLI_STR, &tok_path,
         "PATH: a Hugging Face tokenizer.json or model folder (or a .gguf)", 0, 0},
        {"--input", CLI_STR, &input, "FILE: text to tokenize (default: stdin)", 0, 0},
        {"--parse-special", CLI_FLAG, &parse_special, "recognise special-token text such as <|eos|>", 0, 0},
        {"--decode", CLI_FLAG, &decode, "read a JSON array of ids and print their text instead", 0, 0},
    };
    cli_cmd_info info = {"tokenize",
                         "retort tokenize (--model M.gguf | --tokenizer tokenizer.json|DIR) [--input FILE] "
                         "[--parse-special] [--decode]",
                         "Prints the token ids of the text as one JSON array (no BOS is added)."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!model_path == !tok_path) {
        fprintf(stderr, "retort tokenize: error: give exactly one of --model M.gguf or --tokenizer PATH\n");
        return 2;
    }
    tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    int status = 1;
    if (tokenizer_load(&tok, model_path ? model_path : tok_path)) goto done;
    if (rt_read_file(input, &text, &len)) goto done;
    if (decode) {
        if (decode_ids(tok, text, len)) goto done;
    } else {
        if (tokenizer_encode(tok, text, len, parse_special, &ids, &n)) goto done;
        putchar('[');
        for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
        puts("]");
    }
    status = 0;
done:
    if (status) cli_fail("tokenize");
    free(ids);
    free(text);
    tokenizer_free(tok);
    return status;
}
