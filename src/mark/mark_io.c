/*
 * mark_io.c — reading the texts the detectors and experiments work on (JSONL records with
 * "prompt"/"completion", prompt lists, plain text) and writing JSONL records with valid
 * UTF-8. Errors name the file and line. Not a general JSON layer (jansson does the parsing).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "mark.h"

void mark_records_free(mark_record *r, size_t n) {
    if (!r) return;
    for (size_t i = 0; i < n; i++) {
        free(r[i].prompt);
        free(r[i].completion);
    }
    free(r);
}

static char *dup_n(const char *s, size_t n) {
    char *d = rt_malloc(n + 1, "text record");
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int push_record(mark_record **arr, size_t *n, size_t *cap, const mark_record *r) {
    if (RT_GROW(*arr, *cap, *n + 1, "text records")) return -1;
    (*arr)[(*n)++] = *r;
    return 0;
}

/* a string field, or NULL when absent; -1 when present but not a string */
static int get_str(json_t *o, const char *key, char **out, size_t *len, const char *path, size_t line) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    *len = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return RT_FAIL("%s:%zu: field \"%s\" must be a string", path, line, key);
    *len = json_string_length(v);
    *out = dup_n(json_string_value(v), *len);
    return *out ? 0 : -1;
}

int mark_records_load(const char *path, int per_line, mark_record **out, size_t *n_out) {
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    *n_out = 0;
    if (rt_read_file(path, &data, &len)) return -1;
    size_t i0 = 0;
    while (i0 < len && (data[i0] == ' ' || data[i0] == '\t' || data[i0] == '\n' || data[i0] == '\r')) i0++;
    int jsonl = i0 < len && data[i0] == '{';
    mark_record *arr = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!jsonl && !per_line) {
        mark_record r = {0};
        r.completion = data; /* take the buffer as is */
        r.completion_len = len;
        data = NULL;
        rc = push_record(&arr, &n, &cap, &r);
        if (rc) free(r.completion);
    } else {
        size_t line = 0, pos = 0;
        while (!rc && pos < len) {
            size_t end = pos;
            while (end < len && data[end] != '\n') end++;
            line++;
            size_t a = pos, b = end;
            if (b > a && data[b - 1] == '\r') b--;
            pos = end + 1;
            int blank = 1;
            for (size_t k = a; k < b; k++)
                if (data[k] != ' ' && data[k] != '\t') blank = 0;
            if (blank) continue;
            mark_record r = {0};
            if (!jsonl) {
                r.prompt = dup_n(data + a, b - a);
                r.prompt_len = b - a;
                if (!r.prompt) rc = -1;
            } else {
                json_error_t err;
                json_t *o = json_loadb(data + a, b - a, JSON_ALLOW_NUL, &err);
                if (!o) {
                    rc = RT_FAIL("%s:%zu: not valid JSON (column %d: %s)", path, line, err.column, err.text);
                } else if (!json_is_object(o)) {
                    rc = RT_FAIL("%s:%zu: expected a JSON object with \"prompt\" and \"completion\"", path, line);
                } else {
                    rc = get_str(o, "prompt", &r.prompt, &r.prompt_len, path, line);
                    if (!rc) rc = get_str(o, "completion", &r.completion, &r.completion_len, path, line);
                    if (!rc && !r.completion) rc = get_str(o, "text", &r.completion, &r.completion_len, path, line);
                    if (!rc && !r.prompt && !r.completion)
                        rc = RT_FAIL("%s:%zu: the object has neither \"prompt\" nor \"completion\" (or \"text\")", path,
                                     line);
                }
                json_decref(o);
            }
            if (!rc) rc = push_record(&arr, &n, &cap, &r);
            if (rc) {
                free(r.prompt);
                free(r.completion);
            }
        }
    }
    free(data);
    if (rc) {
        mark_records_free(arr, n);
        return -1;
    }
    if (n == 0) {
        free(arr);
        return RT_FAIL("%s: no records (the file is empty)", path);
    }
    *out = arr;
    *n_out = n;
    return 0;
}

int mark_record_jsonl(rt_buf *b, const char *prompt, size_t plen, const char *completion, size_t clen) {
    rt_buf tmp = {0};
    json_t *o = json_object();
    int rc = o ? 0 : RT_FAIL("out of memory (JSON record)");
    const char *keys[2] = {"prompt", "completion"};
    const char *vals[2] = {prompt, completion};
    size_t lens[2] = {plen, clen};
    for (int k = 0; !rc && k < 2; k++) {
        if (!vals[k]) continue;
        tmp.len = 0;
        if (rt_utf8_sanitize(&tmp, vals[k], lens[k]) || rt_buf_append(&tmp, "", 0)) {
            rc = -1;
            break;
        }
        json_t *s = json_stringn(tmp.data ? tmp.data : "", tmp.len);
        if (!s || json_object_set_new(o, keys[k], s)) rc = RT_FAIL("out of memory (JSON record)");
    }
    char *txt = NULL;
    if (!rc) {
        txt = rt_json_reals(json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
        if (!txt) rc = RT_FAIL("out of memory (JSON record)");
    }
    if (!rc) rc = rt_buf_printf(b, "%s\n", txt);
    free(txt);
    json_decref(o);
    rt_buf_free(&tmp);
    return rc;
}
