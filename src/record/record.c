/*
 * record.c — the harvest record's reader and writer (contract in record.h): jansson both
 * ways; every read form becomes the same record_pos list.
 * Not a file walker and not a tokenizer.
 */
#include "record.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- writing */

json_t *record_json_text(const char *b, size_t n) {
    json_t *s = json_stringn(b ? b : "", n);
    if (s) return s;
    rt_buf t = {0}; /* not valid UTF-8: base's one sanitizer (U+FFFD per maximal subpart) */
    s = rt_utf8_sanitize(&t, b, n) ? NULL : json_stringn(t.data ? t.data : "", t.len);
    rt_buf_free(&t);
    return s;
}

json_t *record_token_json(const uint8_t *bytes, size_t len, double logprob) {
    json_t *by = json_array();
    for (size_t i = 0; by && i < len; i++) json_array_append_new(by, json_integer(bytes[i]));
    return json_pack("{s:o, s:f, s:o}", "token", record_json_text((const char *)bytes, len), "logprob", logprob,
                     "bytes", by);
}

static json_t *alts_json(const record_pos *p) {
    json_t *tops = json_array();
    for (size_t k = 0; tops && k < p->n_top; k++)
        json_array_append_new(tops, record_token_json(p->top[k].bytes, p->top[k].len, p->top[k].logprob));
    return tops;
}

json_t *record_to_json(const record *r) {
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = json_object_set_new(o, "prompt", record_json_text(r->prompt, r->prompt_len));
    if (r->completion) bad |= json_object_set_new(o, "completion", record_json_text(r->completion, r->completion_len));
    if (r->finish_reason) bad |= json_object_set_new(o, "finish_reason", json_string(r->finish_reason));
    if (r->answer) bad |= json_object_set_new(o, "answer", json_string(r->answer));
    int all_tokens = 1, all_lps = 1;
    for (size_t i = 0; i < r->n_pos; i++) {
        all_tokens &= r->pos[i].has_token && r->pos[i].has_logprob;
        all_lps &= r->pos[i].has_logprob;
    }
    if (r->n_pos && all_tokens) { /* the API's object */
        json_t *content = json_array();
        for (size_t i = 0; content && i < r->n_pos; i++) {
            const record_pos *p = &r->pos[i];
            json_t *e = record_token_json(p->token.bytes, p->token.len, p->token.logprob);
            bad |= !e || json_object_set_new(e, "top_logprobs", alts_json(p)) || json_array_append_new(content, e);
        }
        bad |= json_object_set_new(o, "logprobs", json_pack("{s:o}", "content", content));
    } else if (r->n_pos) { /* no chosen tokens to give: the flattened form it was read from */
        json_t *tops = json_array(), *lps = all_lps ? json_array() : NULL;
        for (size_t i = 0; tops && i < r->n_pos; i++) {
            bad |= json_array_append_new(tops, alts_json(&r->pos[i]));
            if (lps) bad |= json_array_append_new(lps, json_real(r->pos[i].token.logprob));
        }
        bad |= json_object_set_new(o, "top_logprobs", tops);
        if (lps) bad |= json_object_set_new(o, "logprobs", lps);
    }
    if (bad) {
        json_decref(o);
        RT_FAIL("out of memory (JSON record)");
        return NULL;
    }
    return o;
}

/* OpenAI's legacy completions log-probs ({"tokens", "token_logprobs", "top_logprobs":
 * [{token: logprob}]}) as the chat form's content list. */
static json_t *legacy_to_content(json_t *lp) {
    json_t *toks = json_object_get(lp, "tokens"), *tl = json_object_get(lp, "token_logprobs"),
           *tp = json_object_get(lp, "top_logprobs"), *content = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(tl, i, v) {
        json_t *tk = json_array_get(toks, i), *d = json_array_get(tp, i), *lst = json_array();
        const char *s = json_is_string(tk) ? json_string_value(tk) : "";
        json_t *e = record_token_json((const uint8_t *)s, json_is_string(tk) ? json_string_length(tk) : 0,
                                      json_number_value(v));
        const char *k;
        json_t *x;
        if (json_is_object(d)) json_object_foreach(d, k, x) {
                json_array_append_new(lst, record_token_json((const uint8_t *)k, strlen(k), json_number_value(x)));
            }
        json_object_set_new(e, "top_logprobs", lst);
        json_array_append_new(content, e);
    }
    return content;
}

json_t *record_from_response(const char *prompt, size_t plen, json_t *resp, int chat, int want_logprobs, char *err,
                             size_t err_cap) {
    json_t *ch = json_array_get(json_object_get(resp, "choices"), 0);
    if (!json_is_object(ch)) {
        snprintf(err, err_cap, "response without choices[0]");
        return NULL;
    }
    json_t *text = chat ? json_object_get(json_object_get(ch, "message"), "content") : json_object_get(ch, "text");
    if (!json_is_string(text)) {
        snprintf(err, err_cap, "response without %s", chat ? "choices[0].message.content" : "choices[0].text");
        return NULL;
    }
    json_t *line = json_pack("{s:o, s:O}", "prompt", record_json_text(prompt, plen), "completion", text);
    if (!line) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    json_t *v;
    if ((v = json_object_get(resp, "id"))) json_object_set(line, "id", v);
    if ((v = json_object_get(resp, "model"))) json_object_set(line, "model", v);
    if ((v = json_object_get(ch, "finish_reason"))) json_object_set(line, "finish_reason", v);
    if ((v = json_object_get(resp, "usage"))) json_object_set(line, "usage", v);
    json_t *lp = json_object_get(ch, "logprobs");
    if (want_logprobs && json_is_object(lp)) {
        json_t *content = json_object_get(lp, "content");
        content = json_is_array(content) ? json_deep_copy(content) : legacy_to_content(lp);
        json_object_set_new(line, "logprobs", json_pack("{s:o}", "content", content));
    }
    return line;
}

int record_append_line(rt_buf *b, const json_t *line) {
    char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!s) return RT_FAIL("out of memory (JSON record)");
    int rc = rt_buf_printf(b, "%s\n", s);
    free(s);
    return rc;
}

/* ---------------------------------------------------------------- reading */

void record_free(record *r) {
    free(r->prompt);
    free(r->system);
    free(r->completion);
    free(r->answer);
    free(r->finish_reason);
    for (size_t i = 0; i < r->n_pos; i++) free(r->pos[i].top);
    free(r->pos);
    memset(r, 0, sizeof *r);
}

static int dup_str(json_t *s, char **out, size_t *len) {
    size_t n = json_string_length(s);
    *out = rt_malloc(n + 1, "record text");
    if (!*out) return -1;
    memcpy(*out, json_string_value(s), n);
    (*out)[n] = 0;
    if (len) *len = n;
    return 0;
}

/* {"token", "logprob", "bytes"}: bytes win over token. */
static int parse_token(json_t *e, record_token *t, int need_lp, const char *where) {
    if (!json_is_object(e)) return RT_FAIL("%s must be an object {\"token\", \"logprob\", \"bytes\"}", where);
    json_t *lp = json_object_get(e, "logprob");
    if (need_lp && !json_is_number(lp)) return RT_FAIL("%s.logprob must be a number", where);
    t->logprob = json_is_number(lp) ? json_number_value(lp) : NAN;
    if (json_is_number(lp) && (!(t->logprob <= 1e-4) || isnan(t->logprob)))
        return RT_FAIL("%s.logprob is %g; log-probs are <= 0", where, t->logprob);
    json_t *by = json_object_get(e, "bytes");
    if (by && !json_is_null(by)) {
        if (!json_is_array(by)) return RT_FAIL("%s.bytes must be a list of integers 0..255", where);
        size_t n = json_array_size(by);
        if (n > RECORD_TOKEN_MAX) return RT_FAIL("%s.bytes has %zu bytes; a token has at most %d", where, n, RECORD_TOKEN_MAX);
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(by, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255)
                return RT_FAIL("%s.bytes[%zu] must be an integer 0..255", where, i);
            t->bytes[i] = (uint8_t)json_integer_value(v);
        }
        t->len = n;
        return 0;
    }
    json_t *tk = json_object_get(e, "token");
    if (!json_is_string(tk)) return RT_FAIL("%s needs \"bytes\" or a \"token\" string", where);
    size_t n = json_string_length(tk);
    if (n > RECORD_TOKEN_MAX) return RT_FAIL("%s.token is %zu bytes; a token has at most %d", where, n, RECORD_TOKEN_MAX);
    memcpy(t->bytes, json_string_value(tk), n);
    t->len = n;
    return 0;
}

static int parse_alts(json_t *list, record_pos *p, const char *where) {
    if (!json_is_array(list)) return RT_FAIL("%s must be a list of {\"token\", \"logprob\", \"bytes\"}", where);
    p->n_top = json_array_size(list);
    if (p->n_top && !(p->top = rt_calloc(p->n_top, sizeof *p->top, "record alternatives"))) return -1;
    for (size_t a = 0; a < p->n_top; a++) {
        char w[128];
        snprintf(w, sizeof w, "%s[%zu]", where, a);
        if (parse_token(json_array_get(list, a), &p->top[a], 1, w)) return -1;
    }
    return 0;
}

/* legacy dict {token: logprob} */
static int parse_dict(json_t *d, record_pos *p, const char *where) {
    if (json_is_null(d)) return 0;
    if (!json_is_object(d)) return RT_FAIL("%s must be an object {token: logprob}", where);
    p->n_top = json_object_size(d);
    if (p->n_top && !(p->top = rt_calloc(p->n_top, sizeof *p->top, "record alternatives"))) return -1;
    size_t a = 0;
    const char *k;
    json_t *x;
    json_object_foreach(d, k, x) {
        size_t n = strlen(k);
        if (!json_is_number(x) || !(json_number_value(x) <= 1e-4))
            return RT_FAIL("%s[\"%.40s\"] must be a log-prob (a number <= 0)", where, k);
        if (n > RECORD_TOKEN_MAX) return RT_FAIL("%s: a token of %zu bytes; at most %d", where, n, RECORD_TOKEN_MAX);
        memcpy(p->top[a].bytes, k, n);
        p->top[a].len = n;
        p->top[a].logprob = json_number_value(x);
        a++;
    }
    return 0;
}

static int alloc_pos(record *r, size_t n) {
    r->n_pos = 0;
    if (n && !(r->pos = rt_calloc(n, sizeof *r->pos, "record log-probs"))) return -1;
    r->n_pos = n;
    return 0;
}

/* "logprobs": {"content": [...]} or the legacy {"tokens", "token_logprobs", "top_logprobs"} */
static int parse_lp_object(record *r, json_t *lp) {
    json_t *content = json_object_get(lp, "content");
    char w[96];
    if (content && !json_is_null(content)) {
        if (!json_is_array(content)) return RT_FAIL("\"logprobs\".content must be a list");
        if (alloc_pos(r, json_array_size(content))) return -1;
        for (size_t i = 0; i < r->n_pos; i++) {
            json_t *e = json_array_get(content, i);
            snprintf(w, sizeof w, "logprobs.content[%zu]", i);
            if (parse_token(e, &r->pos[i].token, 1, w)) return -1;
            r->pos[i].has_token = r->pos[i].has_logprob = 1;
            snprintf(w, sizeof w, "top_logprobs[%zu]", i);
            if (parse_alts(json_object_get(e, "top_logprobs"), &r->pos[i], w)) return -1;
        }
        return 0;
    }
    json_t *toks = json_object_get(lp, "tokens"), *tl = json_object_get(lp, "token_logprobs"),
           *tp = json_object_get(lp, "top_logprobs");
    if (!toks && !tl) return 0; /* {"content": null}: none */
    if (!json_is_array(toks) || !json_is_array(tl) || json_array_size(toks) != json_array_size(tl))
        return RT_FAIL("\"logprobs\" needs \"content\", or \"tokens\" and \"token_logprobs\" lists of one length");
    if (alloc_pos(r, json_array_size(tl))) return -1;
    for (size_t i = 0; i < r->n_pos; i++) {
        json_t *tk = json_array_get(toks, i), *v = json_array_get(tl, i);
        record_pos *p = &r->pos[i];
        if (!json_is_string(tk) || json_string_length(tk) > RECORD_TOKEN_MAX)
            return RT_FAIL("logprobs.tokens[%zu] must be a string (a token)", i);
        if (json_is_number(v)) {
            p->token.logprob = json_number_value(v);
            p->has_logprob = 1;
            if (!(p->token.logprob <= 1e-4))
                return RT_FAIL("logprobs.token_logprobs[%zu] is %g; log-probs are <= 0", i, p->token.logprob);
        } else if (!json_is_null(v)) {
            return RT_FAIL("logprobs.token_logprobs[%zu] must be a number or null", i);
        }
        memcpy(p->token.bytes, json_string_value(tk), json_string_length(tk));
        p->token.len = json_string_length(tk);
        p->has_token = 1;
        snprintf(w, sizeof w, "logprobs.top_logprobs[%zu]", i);
        if (json_is_array(tp) && parse_dict(json_array_get(tp, i), p, w)) return -1;
    }
    return 0;
}

/* "top_logprobs": [[alts]] beside "logprobs": [numbers] (or none) */
static int parse_flat(record *r, json_t *jtl, json_t *jlp) {
    if (jtl && !json_is_array(jtl)) return RT_FAIL("\"top_logprobs\" must be a list with one entry per completion token");
    if (jlp && !json_is_array(jlp))
        return RT_FAIL("\"logprobs\" must be a list of numbers (or OpenAI's {\"content\": [...]})");
    if (!jtl) return 0;
    if (alloc_pos(r, json_array_size(jtl))) return -1;
    char w[96];
    for (size_t i = 0; i < r->n_pos; i++) {
        snprintf(w, sizeof w, "top_logprobs[%zu]", i);
        if (parse_alts(json_array_get(jtl, i), &r->pos[i], w)) return -1;
        if (jlp && i < json_array_size(jlp)) {
            json_t *v = json_array_get(jlp, i);
            if (!json_is_number(v) || !(json_number_value(v) <= 1e-4))
                return RT_FAIL("logprobs[%zu] must be a log-prob (a number <= 0)", i);
            r->pos[i].token.logprob = json_number_value(v);
            r->pos[i].has_logprob = 1;
        }
    }
    return 0;
}

/* {"messages": [{"role": "system"}?, {"role": "user"}, {"role": "assistant"}]} */
static int parse_messages(record *r, json_t *msgs, unsigned flags) {
    if (!json_is_array(msgs)) return RT_FAIL("\"messages\" must be a list of {\"role\", \"content\"}");
    size_t n = json_array_size(msgs), i = 0;
    json_t *m[3] = {NULL, NULL, NULL}; /* system, user, assistant */
    const char *want[3] = {"system", "user", "assistant"};
    for (size_t slot = 0; slot < 3 && i < n; slot++) {
        json_t *e = json_array_get(msgs, i), *role = json_object_get(e, "role");
        if (!json_is_object(e) || !json_is_string(role))
            return RT_FAIL("messages[%zu] must be an object with a \"role\" and a \"content\" string", i);
        if (strcmp(json_string_value(role), want[slot])) {
            if (slot == 0) continue; /* no system message */
            return RT_FAIL("messages[%zu] has role \"%s\"; expected \"%s\" (one user turn and the assistant's reply, "
                           "after an optional system message)", i, json_string_value(role), want[slot]);
        }
        json_t *c = json_object_get(e, "content");
        if (!json_is_string(c)) return RT_FAIL("messages[%zu].content must be a string", i);
        m[slot] = c;
        i++;
    }
    if (i < n)
        return RT_FAIL("\"messages\" has %zu messages; only one user turn and the assistant's reply (after an "
                       "optional system message) can be trained on", n);
    if (!m[1]) return RT_FAIL("\"messages\" has no \"user\" message");
    if (!m[2] && !(flags & RECORD_PROMPT_ONLY)) return RT_FAIL("\"messages\" has no \"assistant\" reply to learn");
    if (dup_str(m[1], &r->prompt, &r->prompt_len)) return -1;
    if (m[0] && dup_str(m[0], &r->system, &r->system_len)) return -1;
    if (m[2] && dup_str(m[2], &r->completion, &r->completion_len)) return -1;
    return 0;
}

int record_parse(record *r, const char *line, size_t len, unsigned flags) {
    memset(r, 0, sizeof *r);
    json_error_t jerr;
    json_t *root = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
    int rc = -1;
    if (!root) return RT_FAIL("not valid JSON (%s, column %d)", jerr.text, jerr.column);
    if (!json_is_object(root)) {
        RT_FAIL("expected a JSON object {\"prompt\": ..., \"completion\": ...}");
        goto done;
    }
    json_t *msgs = json_object_get(root, "messages");
    if (msgs && !json_object_get(root, "prompt")) {
        if (parse_messages(r, msgs, flags)) goto done;
    } else {
        json_t *jp = json_object_get(root, "prompt"), *jc = json_object_get(root, "completion");
        if (!json_is_string(jp)) {
            RT_FAIL("\"prompt\" is missing or not a string");
            goto done;
        }
        int none = (flags & RECORD_PROMPT_ONLY) && (!jc || json_is_null(jc));
        if (!none && !json_is_string(jc)) {
            RT_FAIL("\"completion\" is missing or not a string");
            goto done;
        }
        if (dup_str(jp, &r->prompt, &r->prompt_len) || (!none && dup_str(jc, &r->completion, &r->completion_len)))
            goto done;
    }
    json_t *ja = json_object_get(root, "answer");
    if (ja && !json_is_null(ja)) {
        char tmp[32];
        if (json_is_string(ja)) r->answer = rt_strdup(json_string_value(ja));
        else if (json_is_integer(ja)) {
            snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(ja));
            r->answer = rt_strdup(tmp);
        } else {
            RT_FAIL("\"answer\" must be a string or an integer");
            goto done;
        }
        if (!r->answer) goto done;
    }
    json_t *jf = json_object_get(root, "finish_reason");
    if (json_is_string(jf) && !(r->finish_reason = rt_strdup(json_string_value(jf)))) goto done;
    if (!(flags & RECORD_NO_LOGPROBS)) {
        json_t *jtl = json_object_get(root, "top_logprobs"), *jlp = json_object_get(root, "logprobs");
        if (json_is_null(jtl)) jtl = NULL;
        if (json_is_null(jlp)) jlp = NULL;
        if (jlp && json_is_object(jlp)) {
            if (parse_lp_object(r, jlp)) goto done;
        } else if (parse_flat(r, jtl, jlp)) {
            goto done;
        }
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}
