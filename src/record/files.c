/*
 * files.c — whole harvest-record files (contract in record.h): pooling several harvests into
 * one, and the harvest-format files the demo derives from a plain-text corpus (continuations
 * no server watermarked, passage openings as prompts, human text, held-out lines).
 * Not a record parser (record.c) and not a tokenizer: lines and bytes only.
 */
#include "record.h"

#include <stdlib.h>
#include <string.h>

int record_pool_files(const char *const *paths, size_t n, const char *out, size_t *lines) {
    rt_atomic_file af;
    *lines = 0;
    if (rt_atomic_open(&af, out)) return -1;
    for (size_t i = 0; i < n; i++) {
        char *data = NULL;
        size_t len = 0;
        if (rt_read_file(paths[i], &data, &len)) {
            rt_atomic_abort(&af);
            return -1;
        }
        for (size_t k = 0; k < len; k++) *lines += data[k] == '\n';
        int bad = rt_fwrite(data, 1, len, af.f, out);
        if (!bad && len && data[len - 1] != '\n') bad = rt_fwrite("\n", 1, 1, af.f, out), (*lines)++;
        free(data);
        if (bad) {
            rt_atomic_abort(&af);
            return -1;
        }
    }
    return rt_atomic_commit(&af);
}

int record_corpus_load(const char *path, record_corpus *c) {
    memset(c, 0, sizeof *c);
    size_t len;
    if (rt_read_file(path, &c->data, &len)) return -1;
    size_t cap = 0;
    for (char *p = c->data, *e; p && *p; p = e ? e + 1 : NULL) {
        e = strchr(p, '\n');
        if (e) *e = 0;
        while (*p == ' ') p++;
        if (strlen(p) < 24) continue;
        if (RT_GROW(c->line, cap, c->n + 1, "corpus lines")) return -1;
        c->line[c->n++] = p;
    }
    if (c->n < 100) return RT_FAIL("%s: expected a text corpus of at least 100 lines, found %zu", path, c->n);
    return 0;
}

void record_corpus_free(record_corpus *c) {
    free(c->data);
    free(c->line);
    memset(c, 0, sizeof *c);
}

/* One JSONL record: {"prompt"} or, with a completion, {"prompt", "completion"}. */
static int json_line(rt_buf *b, const char *prompt, const char *completion) {
    record r = {.prompt = (char *)prompt,
                .prompt_len = strlen(prompt),
                .completion = (char *)completion,
                .completion_len = completion ? strlen(completion) : 0};
    json_t *j = record_to_json(&r);
    int rc = j ? record_append_line(b, j) : -1;
    json_decref(j);
    return rc;
}

static int write_buf(rt_buf *b, int rc, const char *out) {
    if (!rc) rc = rt_write_file_atomic(out, b->data ? b->data : "", b->len);
    rt_buf_free(b);
    return rc;
}

int record_corpus_continuations(const record_corpus *c, size_t n, uint64_t seed, const char *out) {
    rt_buf b = {0};
    rt_rng r;
    rt_rng_seed(&r, seed);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t k = (size_t)rt_rng_below(&r, c->n - 2);
        rt_buf p = {0};
        rc = rt_buf_printf(&p, "%s%s", RECORD_CONTINUE_PROMPT, c->line[k]);
        if (!rc) rc = json_line(&b, p.data, c->line[k + 1]);
        rt_buf_free(&p);
    }
    return write_buf(&b, rc, out);
}

int record_corpus_prompts(const record_corpus *c, size_t n, const char *out) {
    rt_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *l = c->line[(i * 7919 + 13) % c->n];
        char head[96];
        snprintf(head, sizeof head, "%.60s", l);
        char *sp = strrchr(head, ' ');
        if (sp && sp > head + 20) *sp = 0;
        rt_buf p = {0};
        rc = rt_buf_printf(&p, "%s%s", RECORD_CONTINUE_PROMPT, head);
        if (!rc) rc = json_line(&b, p.data, NULL);
        rt_buf_free(&p);
    }
    return write_buf(&b, rc, out);
}

int record_corpus_tail(const record_corpus *c, size_t n, const char *out) {
    rt_buf b = {0};
    int rc = 0;
    size_t from = c->n > n ? c->n - n : 0;
    for (size_t i = from; i < c->n && !rc; i++) rc = rt_buf_printf(&b, "%s\n", c->line[i]);
    return write_buf(&b, rc, out);
}

int record_heldout_lines(const char *corpus, size_t chunk, size_t k, size_t margin, const char *out) {
    const size_t lo = (k - 1) * chunk + margin, hi = k * chunk - margin;
    char *text = NULL;
    size_t len = 0;
    if (rt_read_file(corpus, &text, &len)) return -1;
    if (len < hi) {
        free(text);
        return RT_FAIL("%s: %zu bytes, too short for held-out text (needs %zu)", corpus, len, hi);
    }
    const char *s = memchr(text + lo, '\n', hi - lo), *e = text + hi;
    while (s && e > s && e[-1] != '\n') e--;
    int rc = s && e > s + 1 ? rt_write_file_atomic(out, s + 1, (size_t)(e - s - 1))
                            : RT_FAIL("%s: no whole lines in the held-out chunk", corpus);
    free(text);
    return rc;
}
