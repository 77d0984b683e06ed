/*
 * cmd_tokenize.c — `retort tokenize`: text → JSON array of token ids (no BOS) on stdout,
 * for comparing with other tokenizers (llama.cpp, transformers.js) and for scripts. The
 * tokenizer comes from a model file (--model M.gguf) or from a Hugging Face tokenizer.json
 * or model folder (--tokenizer). --decode reads a JSON array of ids and prints the text.
 * --chat renders conversations with the model's chat template (tokenizer_chat_*): one JSONL
 * line in ({"messages": [...]}), one out ({"text", "ids"} or {"error"}), so that scripts and
 * tests/ref_chat_template.sh can see exactly what the model is given.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* One conversation line -> {"text", "ids"}; a bad line -> {"error"} (and *bad). */
static json_t *chat_line(const tokenizer_chat *c, const tokenizer *tok, const char *ln, size_t len, size_t line_no,
                         int gen, int *bad) {
    json_error_t err;
    json_t *j = json_loadb(ln, len, 0, &err), *ms = json_is_array(j) ? j : json_object_get(j, "messages");
    size_t n = json_array_size(ms);
    tokenizer_chat_message *m = rt_calloc(n ? n : 1, sizeof *m, "messages");
    json_t *res = NULL;
    rt_buf text = {0};
    int32_t *ids = NULL;
    size_t nid = 0;
    int rc = m ? 0 : -1;
    if (!rc && !json_is_array(ms))
        rc = RT_FAIL("line %zu: expected {\"messages\": [{\"role\", \"content\"}, ...]}%s%s", line_no,
                     j ? "" : ": ", j ? "" : err.text);
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *e = json_array_get(ms, i), *ct = json_object_get(e, "content");
        m[i].role = json_string_value(json_object_get(e, "role"));
        if (!m[i].role || !json_is_string(ct))
            rc = RT_FAIL("line %zu: messages[%zu]: expected {\"role\": string, \"content\": string}", line_no, i);
        else {
            m[i].content = json_string_value(ct);
            m[i].len = json_string_length(ct);
        }
    }
    if (!rc) rc = tokenizer_chat_render(c, tok, m, n, gen, &text, NULL);
    if (!rc) rc = tokenizer_chat_encode(c, tok, m, n, gen, &ids, &nid);
    if (rc) {
        *bad = 1;
        res = json_pack("{s:s}", "error", rt_errmsg());
    } else {
        json_t *a = json_array();
        for (size_t i = 0; a && i < nid; i++) json_array_append_new(a, json_integer(ids[i]));
        res = json_pack("{s:s%,s:o}", "text", text.data ? text.data : "", text.len, "ids", a);
    }
    free(ids);
    rt_buf_free(&text);
    free(m);
    json_decref(j);
    return res;
}

static int chat_lines(const tokenizer *tok, const char *path, const char *name, int gen, const char *text,
                      size_t len) {
    char *tmpl = NULL;
    tokenizer_chat c;
    if (tokenizer_chat_template_load(path, &tmpl)) return -1;
    int rc = tokenizer_chat_detect(&c, tok, tmpl, name);
    free(tmpl);
    if (rc) return RT_FAIL("%s: %s", path, rt_errmsg());
    int bad = 0;
    size_t line_no = 0;
    for (size_t pos = 0; pos < len && !rc;) {
        const char *ln = text + pos, *nl = memchr(ln, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - ln) : len - pos;
        pos += ll + (nl ? 1 : 0);
        line_no++;
        if (ll == 0) continue;
        json_t *res = chat_line(&c, tok, ln, ll, line_no, gen, &bad);
        char *out = res ? json_dumps(res, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (!out || puts(out) < 0) rc = RT_FAIL("--chat: cannot write the result of line %zu", line_no);
        free(out);
        json_decref(res);
    }
    if (!rc && bad) rc = RT_FAIL("--chat: some conversations could not be rendered (their lines say why)");
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *input = "-";
    const char *chat_name = NULL;
    int parse_special = 0, decode = 0, chat = 0, gen = 0;
    cli_opt opts[] = {
        {"--model", CLI_STR, &model_path, "M.gguf: a model file holding a tokenizer", 0, 0},
        {"--tokenizer", CLI_STR, &tok_path,
         "PATH: a Hugging Face tokenizer.json or model folder (or a .gguf)", 0, 0},
        {"--input", CLI_STR, &input, "FILE: text to tokenize (default: stdin)", 0, 0},
        {"--parse-special", CLI_FLAG, &parse_special, "recognise special-token text such as <|eos|>", 0, 0},
        {"--decode", CLI_FLAG, &decode, "read a JSON array of ids and print their text instead", 0, 0},
        {"--chat", CLI_FLAG, &chat,
         "input is JSONL conversations {\"messages\": [...]}: print {\"text\", \"ids\"} per line, rendered "
         "with the model's chat template",
         0, 0},
        {"--chat-template", CLI_STR, &chat_name,
         "NAME: with --chat, use this format instead of the model's (retort chatml qwen3 llama3 deepseek-v3 "
         "deepseek-r1 llama2 gemma)",
         0, 0},
        {"--add-generation-prompt", CLI_FLAG, &gen, "with --chat, end with the assistant's header", 0, 0},
    };
    cli_cmd_info info = {"tokenize",
                         "retort tokenize (--model M.gguf | --tokenizer tokenizer.json|DIR) [--input FILE] "
                         "[--parse-special] [--decode] [--chat [--chat-template NAME] [--add-generation-prompt]]",
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
    if (chat) {
        if (chat_lines(tok, model_path ? model_path : tok_path, chat_name, gen, text, len)) goto done;
    } else if (decode) {
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
