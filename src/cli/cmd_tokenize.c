/*
 * cmd_tokenize.c — `retort tokenize`: text → JSON array of token ids (no BOS) on stdout,
 * for comparing with other tokenizers (llama.cpp) and for scripts.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../model/model.h"
#include "cli.h"

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *input = "-";
    int parse_special = 0;
    cli_opt opts[] = {
        {"--model", CLI_STR, &model_path, "M.gguf: a model file holding a tokenizer", 1, 0},
        {"--input", CLI_STR, &input, "FILE: text to tokenize (default: stdin)", 0, 0},
        {"--parse-special", CLI_FLAG, &parse_special, "recognise special-token text such as <|eos|>", 0, 0},
    };
    cli_cmd_info info = {"tokenize", "retort tokenize --model M.gguf [--input FILE] [--parse-special]",
                         "Prints the token ids of the text as one JSON array (no BOS is added)."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    int status = 1;
    if (tokenizer_load(&tok, model_path)) goto done;
    if (rt_read_file(input, &text, &len)) goto done;
    if (tokenizer_encode(tok, text, len, parse_special, &ids, &n)) goto done;
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    puts("]");
    status = 0;
done:
    if (status) cli_fail("tokenize");
    free(ids);
    free(text);
    tokenizer_free(tok);
    return status;
}
