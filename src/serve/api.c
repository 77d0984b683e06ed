/*
 * api.c — the JSON side of the OpenAI endpoints: parse and validate a completions or chat
 * request (every error names its field), tokenize its prompt, and build response bodies
 * and error bodies in OpenAI's shapes. Not HTTP (http.c) and not generation (engine.c).
 *
 * Extensions: /v1/completions' "logprobs" object also carries "content", the chat-style list
 * ({"token","logprob","bytes","top_logprobs":[...]}) — the legacy dict-of-strings form
 * loses tokens that share a string (partial UTF-8), and harvesters need the bytes; and
 * every log-prob entry carries "id", the token id (as llama.cpp's server does).
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "serve_internal.h"

void serve_gen_request_free(serve_gen_request *r) {
    free(r->model);
    free(r->prompt_text);
    free(r->prompt_ids);
    for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

char *serve_error_json(const char *message, const char *type, const char *param, const char *code) {
    /* messages quote what the client sent (a model name cut at 100 bytes...): valid UTF-8 first */
    json_t *e = json_pack("{s:{s:o, s:s, s:o, s:o}}", "error", "message", serve_json_bytes_string(message, strlen(message)),
                          "type", type, "param", param && *param ? serve_json_bytes_string(param, strlen(param)) : json_null(),
                          "code", code && *code ? json_string(code) : json_null());
    if (!e) { /* out of memory: a fixed text */
        e = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", "invalid request", "type", type, "param",
                      "code");
    }
    char *s = e ? rt_json_reals(json_dumps(e, JSON_COMPACT)) : NULL;
    json_decref(e);
    return s;
}

json_t *serve_json_bytes_string(const char *s, size_t len) {
    rt_buf b = {0};
    if (rt_utf8_sanitize(&b, s, len)) return NULL;
    json_t *j = json_stringn(b.data, b.len);
    rt_buf_free(&b);
    return j;
}

static json_t *bytes_array(const char *s, size_t len) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < len; i++) json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

static json_t *token_obj(const tokenizer *tok, int32_t id, float lp) {
    size_t bl = 0;
    const char *b = tokenizer_token_bytes(tok, id, &bl);
    if (!b) {
        b = "";
        bl = 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "token", serve_json_bytes_string(b, bl));
    json_object_set_new(o, "logprob", json_real(isfinite(lp) ? lp : -9999.0));
    json_object_set_new(o, "bytes", bytes_array(b, bl));
    json_object_set_new(o, "id", json_integer(id)); /* extension (llama.cpp has it too) */
    return o;
}

json_t *serve_chat_logprob_entry(const tokenizer *tok, const serve_choice *c, size_t i, size_t top_k) {
    json_t *o = token_obj(tok, c->tokens[i], c->logprob[i]);
    json_t *tops = json_array();
    for (size_t k = 0; k < top_k; k++)
        json_array_append_new(tops, token_obj(tok, c->top_ids[i * top_k + k], c->top_lp[i * top_k + k]));
    json_object_set_new(o, "top_logprobs", tops);
    return o;
}

size_t serve_choice_visible_tokens(const serve_choice *c, size_t text_len) {
    if (text_len >= c->text.len) return c->n_tokens;
    size_t k = 0;
    while (k < c->n_tokens && c->tok_off[k] < text_len) k++;
    return k;
}

/* ---------------------------------------------------------------- parsing */

typedef struct {
    int *status;
    char *err;
    size_t err_cap;
    char *param;
    size_t param_cap;
} perr;

static int bad(perr *e, int status, const char *param, const char *fmt, ...) RT_PRINTF(4, 5);
static int bad(perr *e, int status, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->err_cap, fmt, ap);
    va_end(ap);
    snprintf(e->param, e->param_cap, "%s", param ? param : "");
    *e->status = status;
    return -1;
}

/* A string that names something (a model, a role, a part type): C code compares it, so a NUL
 * inside would cut it short ("m\u0000-x" would pass as "m"). 1 if it holds a NUL. */
static int has_nul(json_t *v) { return strlen(json_string_value(v)) != json_string_length(v); }

static int get_int(perr *e, json_t *root, const char *name, int64_t lo, int64_t hi, int64_t *out, int *given) {
    json_t *v = json_object_get(root, name);
    *given = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15) {
        *out = (int64_t)json_real_value(v);
    } else if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
    } else {
        return bad(e, 400, name, "%s: expected an integer", name);
    }
    if (*out < lo || *out > hi)
        return bad(e, 400, name, "%s: %lld is out of range [%lld, %lld]", name, (long long)*out, (long long)lo,
                   (long long)hi);
    *given = 1;
    return 0;
}

static int get_num(perr *e, json_t *root, const char *name, double lo, double hi, int lo_open, double *out) {
    json_t *v = json_object_get(root, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad(e, 400, name, "%s: expected a number", name);
    double x = json_number_value(v);
    if (!(x <= hi) || (lo_open ? !(x > lo) : !(x >= lo)))
        return bad(e, 400, name, "%s: %g is out of range %s%g, %g]", name, x, lo_open ? "(" : "[", lo, hi);
    *out = x;
    return 0;
}

static int get_bool(perr *e, json_t *root, const char *name, int *out) {
    json_t *v = json_object_get(root, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bad(e, 400, name, "%s: expected true or false", name);
    *out = json_is_true(v);
    return 0;
}

/* message content: a string, null, or an array of {"type":"text","text":...} parts */
static int content_text(perr *e, json_t *c, size_t i, rt_buf *out) {
    char pname[48];
    snprintf(pname, sizeof pname, "messages[%zu].content", i);
    if (!c || json_is_null(c)) return 0;
    if (json_is_string(c)) return rt_buf_append(out, json_string_value(c), json_string_length(c)) ? -2 : 0;
    if (!json_is_array(c)) return bad(e, 400, pname, "%s: expected a string or an array of text parts", pname);
    size_t k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) || has_nul(type) || strcmp(json_string_value(type), "text") ||
            !json_is_string(text))
            return bad(e, 400, pname, "%s[%zu]: expected {\"type\": \"text\", \"text\": \"...\"} (only text is supported)",
                       pname, k);
        if (rt_buf_append(out, json_string_value(text), json_string_length(text))) return -2;
    }
    return 0;
}

/* The request body as a JSON object (the caller's to decref), or NULL with *e set (400). */
static json_t *body_object(perr *e, const char *body, size_t len) {
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &je);
    if (!root) {
        bad(e, 400, "", "invalid JSON body: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        bad(e, 400, "", "the request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* A request's "messages", read into serve_messages (their text owned by mtext) and joined, one
 * line a message, into *text (what the guard reads). Strict (serve): a role must be system,
 * user, assistant or developer, and content a string, null or text parts. Lenient (gateway: the
 * upstream judges the shape): any role string, and of content that is not all text parts the text
 * there is. Returns 0, -1 with *e set (400), or -2 out of memory. */
typedef struct {
    serve_message *msgs;
    rt_buf *mtext;
    size_t n;
} chat_msgs;

static void chat_msgs_free(chat_msgs *cm) {
    if (cm->mtext)
        for (size_t i = 0; i < cm->n; i++) rt_buf_free(&cm->mtext[i]);
    free(cm->mtext);
    free(cm->msgs);
}

/* the role of messages[i], or NULL with *e set */
static const char *message_role(perr *e, json_t *msg, size_t i, int lenient) {
    char pname[48];
    snprintf(pname, sizeof pname, "messages[%zu].role", i);
    json_t *role = json_is_object(msg) ? json_object_get(msg, "role") : NULL;
    if (lenient) {
        if (json_is_string(role) && !has_nul(role)) return json_string_value(role);
        bad(e, 400, pname, "%s: required, a string", pname);
        return NULL;
    }
    if (!json_is_string(role)) {
        bad(e, 400, pname, "%s: required, one of system, user, assistant", pname);
        return NULL;
    }
    const char *rs = json_string_value(role);
    if (has_nul(role)) {
        bad(e, 400, pname, "%s: contains a NUL character (\\u0000)", pname);
        return NULL;
    }
    if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "developer")) {
        bad(e, 400, pname, "%s: '%.40s' is not one of system, user, assistant", pname, rs);
        return NULL;
    }
    return rs;
}

/* lenient content: the text parts of a string or array, whatever else it holds (images...) */
static int lenient_content(perr *e, json_t *c, size_t i, rt_buf *out) {
    if (!json_is_string(c) && !json_is_array(c)) return 0;
    int crc = content_text(e, c, i, out);
    if (crc != -1) return crc;
    rt_buf_free(out);
    size_t k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t) && rt_buf_append(out, json_string_value(t), json_string_length(t))) return -2;
    }
    *e->status = 0;
    return 0;
}

static int read_messages(perr *e, json_t *root, int lenient, chat_msgs *cm, rt_buf *text) {
    json_t *ms = json_object_get(root, "messages");
    if (!json_is_array(ms) || json_array_size(ms) == 0)
        return bad(e, 400, "messages", "messages: required, a non-empty array of {\"role\", \"content\"}");
    cm->n = json_array_size(ms);
    cm->msgs = rt_calloc(cm->n, sizeof *cm->msgs, "messages");
    cm->mtext = rt_calloc(cm->n, sizeof *cm->mtext, "messages");
    if (!cm->msgs || !cm->mtext) return -2;
    for (size_t i = 0; i < cm->n; i++) {
        json_t *msg = json_array_get(ms, i);
        const char *role = message_role(e, msg, i, lenient);
        if (!role) return -1;
        json_t *c = json_object_get(msg, "content");
        int crc = lenient ? lenient_content(e, c, i, &cm->mtext[i]) : content_text(e, c, i, &cm->mtext[i]);
        if (crc) return crc;
        cm->msgs[i].role = role;
        cm->msgs[i].content = cm->mtext[i].data ? cm->mtext[i].data : "";
        cm->msgs[i].len = cm->mtext[i].len;
        if (i && rt_buf_append(text, "\n", 1)) return -2;
        if (rt_buf_append(text, cm->msgs[i].content, cm->msgs[i].len)) return -2;
    }
    return 0;
}

int serve_parse_gen(const char *body, size_t len, int chat, const model *m, const serve_chat_format *fmt,
                    size_t n_ctx, const char *served_name,
                    size_t max_tokens_cap, serve_gen_request *r, int *status, char *err, size_t err_cap,
                    char *param, size_t param_cap) {
    memset(r, 0, sizeof *r);
    perr e = {status, err, err_cap, param, param_cap};
    *status = 0;
    err[0] = param[0] = '\0';
    r->chat = chat;
    json_t *root = body_object(&e, body, len);
    if (!root) return -1;
    int rc = -1;
    rt_buf text = {0};
    int32_t *ids = NULL;
    size_t n_ids = 0;
    chat_msgs cm = {0};
    /* model */
    json_t *mv = json_object_get(root, "model");
    if (!json_is_string(mv)) {
        bad(&e, 400, "model", "model: required, a string (GET /v1/models lists them)");
        goto out;
    }
    if (has_nul(mv)) {
        bad(&e, 400, "model", "model: contains a NUL character (\\u0000)");
        goto out;
    }
    if (strcmp(json_string_value(mv), served_name)) {
        bad(&e, 404, "model", "The model '%.100s' does not exist; this server serves '%s'", json_string_value(mv),
            served_name);
        goto out;
    }
    r->model = rt_strdup(json_string_value(mv));
    if (!r->model) goto oom;
    /* unsupported options, refused rather than silently ignored */
    {
        int echo = 0;
        if (get_bool(&e, root, "echo", &echo)) goto out;
        if (echo) {
            bad(&e, 400, "echo", "echo: not supported");
            goto out;
        }
        const char *zero_nums[] = {"presence_penalty", "frequency_penalty"};
        for (size_t i = 0; i < 2; i++) {
            double x = 0;
            if (get_num(&e, root, zero_nums[i], -2, 2, 0, &x)) goto out;
            if (x != 0) {
                bad(&e, 400, zero_nums[i], "%s: not supported (only 0)", zero_nums[i]);
                goto out;
            }
        }
        int64_t best_of = 1;
        int given;
        if (get_int(&e, root, "best_of", 1, 1, &best_of, &given)) goto out;
        json_t *lb = json_object_get(root, "logit_bias");
        if (lb && !json_is_null(lb) && !(json_is_object(lb) && json_object_size(lb) == 0)) {
            bad(&e, 400, "logit_bias", "logit_bias: not supported");
            goto out;
        }
        const char *no[] = {"tools", "functions", "tool_choice", "function_call", "suffix", "response_format"};
        for (size_t i = 0; i < RT_ARRAY_LEN(no); i++) {
            json_t *v = json_object_get(root, no[i]);
            if (v && !json_is_null(v)) {
                bad(&e, 400, no[i], "%s: not supported by this server", no[i]);
                goto out;
            }
        }
    }
    /* prompt / messages */
    if (!chat) {
        json_t *p = json_object_get(root, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
            p = json_array_get(p, 0);
        if (json_is_string(p)) {
            if (rt_buf_append(&text, json_string_value(p), json_string_length(p))) goto oom;
            if (tokenizer_encode(m->tok, text.data, text.len, 0, &ids, &n_ids)) goto oom;
        } else if (json_is_array(p) && json_array_size(p) > 0 && json_is_integer(json_array_get(p, 0))) {
            n_ids = json_array_size(p);
            ids = rt_malloc_array(n_ids, sizeof(int32_t), "prompt tokens");
            if (!ids) goto oom;
            for (size_t i = 0; i < n_ids; i++) {
                json_t *t = json_array_get(p, i);
                if (!json_is_integer(t) || json_integer_value(t) < 0 ||
                    json_integer_value(t) >= (json_int_t)m->cfg.vocab_size) {
                    bad(&e, 400, "prompt", "prompt[%zu]: expected a token id in [0, %zu)", i, m->cfg.vocab_size);
                    goto out;
                }
                ids[i] = (int32_t)json_integer_value(t);
            }
            char *dec = NULL;
            size_t dl = 0;
            if (tokenizer_decode(m->tok, ids, n_ids, &dec, &dl)) goto oom;
            int arc = rt_buf_append(&text, dec, dl);
            free(dec);
            if (arc) goto oom;
        } else if (json_is_array(p)) {
            bad(&e, 400, "prompt",
                "prompt: expected a string, a one-string array or an array of token ids (send one request per prompt)");
            goto out;
        } else {
            bad(&e, 400, "prompt", "prompt: required, a string");
            goto out;
        }
    } else {
        if (!fmt->ok) {
            bad(&e, 400, "messages", "%s (use /v1/completions, or restart serve with --chat-template NAME)",
                fmt->err);
            goto out;
        }
        int mrc = read_messages(&e, root, 0, &cm, &text);
        if (mrc == -2) goto oom;
        if (mrc) goto out;
        if (serve_chat_tokens(&fmt->chat, m->tok, cm.msgs, cm.n, &ids, &n_ids)) {
            bad(&e, 400, "messages", "messages: %s", rt_errmsg());
            goto out;
        }
    }
    if (n_ids == 0) {
        bad(&e, 400, chat ? "messages" : "prompt", "%s: the prompt is empty", chat ? "messages" : "prompt");
        goto out;
    }
    if (n_ids >= n_ctx) {
        r->error_code = "context_length_exceeded";
        bad(&e, 400, chat ? "messages" : "prompt",
            "%s: the prompt has %zu tokens; the context served is %zu (room for at least one new token is needed)",
            chat ? "messages" : "prompt", n_ids, n_ctx);
        goto out;
    }
    /* sampling */
    {
        int64_t v = 0;
        int given = 0;
        r->max_tokens = chat ? max_tokens_cap : RT_MIN((size_t)16, max_tokens_cap);
        const char *mt_name = "max_tokens";
        if (get_int(&e, root, "max_tokens", 1, (int64_t)max_tokens_cap, &v, &given)) goto out;
        if (!given && chat) {
            mt_name = "max_completion_tokens";
            if (get_int(&e, root, mt_name, 1, (int64_t)max_tokens_cap, &v, &given)) goto out;
        }
        if (given) {
            r->max_tokens = (size_t)v;
            r->max_tokens_given = 1;
        }
        double t = 1.0, tp = 1.0;
        if (get_num(&e, root, "temperature", 0, 2, 0, &t) || get_num(&e, root, "top_p", 0, 1, 1, &tp)) goto out;
        /* validated as doubles, used as floats: a positive value too small for a float (1e-300)
         * would become 0 (top_p 0 is invalid; temperature 0 would mean greedy, yet a
         * subnormal one makes 1/T infinite), so it is raised to the smallest normal float,
         * which samples exactly as the tiny value asks: the most likely token only */
        r->temperature = t > 0 && t < FLT_MIN ? FLT_MIN : (float)t;
        r->top_p = tp < FLT_MIN ? FLT_MIN : (float)tp;
        if (get_int(&e, root, "top_k", 0, (int64_t)m->cfg.vocab_size, &v, &given)) goto out;
        r->top_k = given ? (size_t)v : 0;
        if (get_int(&e, root, "n", 1, SERVE_MAX_N, &v, &given)) goto out;
        r->n = given ? (size_t)v : 1;
        if (get_bool(&e, root, "stream", &r->stream)) goto out;
        json_t *so = json_object_get(root, "stream_options");
        if (so && !json_is_null(so)) {
            if (!json_is_object(so)) {
                bad(&e, 400, "stream_options", "stream_options: expected an object");
                goto out;
            }
            if (!r->stream) {
                bad(&e, 400, "stream_options", "stream_options: only allowed when stream is true");
                goto out;
            }
            json_t *iu = json_object_get(so, "include_usage");
            if (iu && !json_is_boolean(iu)) {
                bad(&e, 400, "stream_options.include_usage", "stream_options.include_usage: expected true or false");
                goto out;
            }
            r->include_usage = iu && json_is_true(iu);
        }
        json_t *sd = json_object_get(root, "seed");
        if (sd && !json_is_null(sd)) {
            if (!json_is_integer(sd)) {
                bad(&e, 400, "seed", "seed: expected an integer");
                goto out;
            }
            r->seed = (uint64_t)json_integer_value(sd);
            r->has_seed = 1;
        }
        if (!chat) {
            if (get_int(&e, root, "logprobs", 0, SERVE_MAX_TOP, &v, &given)) goto out;
            r->logprobs = given;
            r->top_logprobs = given ? (size_t)v : 0;
        } else {
            if (get_bool(&e, root, "logprobs", &r->logprobs)) goto out;
            if (get_int(&e, root, "top_logprobs", 0, SERVE_MAX_TOP, &v, &given)) goto out;
            if (given && v > 0 && !r->logprobs) {
                bad(&e, 400, "top_logprobs", "top_logprobs: requires logprobs to be true");
                goto out;
            }
            r->top_logprobs = given && r->logprobs ? (size_t)v : 0;
        }
        json_t *st = json_object_get(root, "stop");
        if (st && !json_is_null(st)) {
            json_t *one[1] = {st};
            size_t ns = json_is_array(st) ? json_array_size(st) : 1;
            if (!json_is_array(st) && !json_is_string(st)) {
                bad(&e, 400, "stop", "stop: expected a string or an array of up to %d strings", SERVE_MAX_STOP);
                goto out;
            }
            if (ns > SERVE_MAX_STOP) {
                bad(&e, 400, "stop", "stop: at most %d sequences", SERVE_MAX_STOP);
                goto out;
            }
            for (size_t i = 0; i < ns; i++) {
                json_t *s = json_is_array(st) ? json_array_get(st, i) : one[0];
                if (!json_is_string(s) || json_string_length(s) == 0 ||
                    memchr(json_string_value(s), 0, json_string_length(s))) {
                    bad(&e, 400, "stop", "stop[%zu]: expected a non-empty string without NUL", i);
                    goto out;
                }
                r->stop[r->n_stop] = rt_malloc(json_string_length(s) + 1, "stop string");
                if (!r->stop[r->n_stop]) goto oom;
                memcpy(r->stop[r->n_stop], json_string_value(s), json_string_length(s) + 1);
                r->n_stop++;
            }
        }
    }
    r->prompt_text = text.data ? text.data : rt_strdup("");
    if (!r->prompt_text) goto oom;
    r->prompt_text_len = text.len;
    text.data = NULL;
    r->prompt_ids = ids;
    r->n_prompt = n_ids;
    ids = NULL;
    rc = 0;
    goto out;
oom:
    bad(&e, 500, "", "internal error: %s", rt_errmsg());
out:
    if (rc) {
        free(r->model);
        r->model = NULL;
        for (size_t i = 0; i < r->n_stop; i++) free(r->stop[i]);
        r->n_stop = 0;
    }
    chat_msgs_free(&cm);
    free(ids);
    rt_buf_free(&text);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- gateway requests */

/* The user-visible text of an "input" / "prompt" value: a string, or an array of strings
 * (joined by "\n"); token-id arrays have none. */
static int strings_text(json_t *v, rt_buf *out) {
    if (json_is_string(v)) return rt_buf_append(out, json_string_value(v), json_string_length(v));
    if (!json_is_array(v)) return 0;
    size_t k;
    json_t *s;
    int first = 1;
    json_array_foreach(v, k, s) {
        if (!json_is_string(s)) continue;
        if (!first && rt_buf_append(out, "\n", 1)) return -1;
        if (rt_buf_append(out, json_string_value(s), json_string_length(s))) return -1;
        first = 0;
    }
    return 0;
}

int serve_parse_upstream(const char *body, size_t len, int kind, const tokenizer *tok, const tokenizer_chat *chat,
                         size_t max_tokens_default,
                         serve_gen_request *r, int *status, char *err, size_t err_cap, char *param,
                         size_t param_cap) {
    memset(r, 0, sizeof *r);
    perr e = {status, err, err_cap, param, param_cap};
    *status = 0;
    err[0] = param[0] = '\0';
    r->chat = kind == SERVE_UP_CHAT;
    json_t *root = body_object(&e, body, len);
    if (!root) return -1;
    int rc = -1;
    rt_buf text = {0};
    chat_msgs cm = {0};
    json_t *mv = json_object_get(root, "model");
    if (!json_is_string(mv) || has_nul(mv)) {
        bad(&e, 400, "model", "model: required, a string (GET /v1/models lists them)");
        goto out;
    }
    r->model = rt_strdup(json_string_value(mv));
    if (!r->model) goto oom;
    if (kind == SERVE_UP_EMBED) {
        json_t *in = json_object_get(root, "input");
        if (!in || (!json_is_string(in) && !json_is_array(in))) {
            bad(&e, 400, "input", "input: required, a string or an array");
            goto out;
        }
        if (strings_text(in, &text)) goto oom;
    } else if (kind == SERVE_UP_COMPLETION) {
        json_t *p = json_object_get(root, "prompt");
        if (!p || (!json_is_string(p) && !json_is_array(p))) {
            bad(&e, 400, "prompt", "prompt: required, a string or an array");
            goto out;
        }
        if (strings_text(p, &text)) goto oom;
    } else {
        int mrc = read_messages(&e, root, 1, &cm, &text);
        if (mrc == -2) goto oom;
        if (mrc) goto out;
    }
    /* the prompt's tokens, by the local model's tokenizer when there is one (the guard's
     * embedding reads them; the limits reserve them) */
    if (tok && chat && kind == SERVE_UP_CHAT) {
        if (serve_chat_tokens(chat, tok, cm.msgs, cm.n, &r->prompt_ids, &r->n_prompt)) {
            /* a role retort's template lacks (tool...): the text alone */
            rt_err_clear();
            if (tokenizer_encode(tok, text.data ? text.data : "", text.len, 0, &r->prompt_ids, &r->n_prompt)) goto oom;
        }
    } else if (tok) {
        if (tokenizer_encode(tok, text.data ? text.data : "", text.len, 0, &r->prompt_ids, &r->n_prompt)) goto oom;
    } else {
        r->n_prompt = (text.len + 3) / 4; /* no tokenizer: about 4 bytes a token */
    }
    {
        int64_t v = 0;
        int given = 0;
        r->n = 1;
        r->temperature = 1;
        r->top_p = 1;
        r->max_tokens = kind == SERVE_UP_EMBED ? 0 : kind == SERVE_UP_CHAT ? max_tokens_default : 16;
        if (kind != SERVE_UP_EMBED) {
            if (get_int(&e, root, "max_tokens", 1, INT32_MAX, &v, &given)) goto out;
            if (!given && get_int(&e, root, "max_completion_tokens", 1, INT32_MAX, &v, &given)) goto out;
            if (given) {
                r->max_tokens = (size_t)v;
                r->max_tokens_given = 1;
            }
            double t = 1.0, tp = 1.0;
            if (get_num(&e, root, "temperature", 0, 2, 0, &t) || get_num(&e, root, "top_p", 0, 1, 0, &tp)) goto out;
            r->temperature = (float)t;
            r->top_p = (float)tp;
            if (get_int(&e, root, "n", 1, SERVE_MAX_N, &v, &given)) goto out;
            r->n = given ? (size_t)v : 1;
            if (get_bool(&e, root, "stream", &r->stream)) goto out;
            json_t *so = json_object_get(root, "stream_options");
            json_t *iu = json_is_object(so) ? json_object_get(so, "include_usage") : NULL;
            r->include_usage = r->stream && iu && json_is_true(iu);
            json_t *sd = json_object_get(root, "seed");
            if (json_is_integer(sd)) {
                r->seed = (uint64_t)json_integer_value(sd);
                r->has_seed = 1;
            }
            json_t *lp = json_object_get(root, "logprobs");
            if (kind == SERVE_UP_CHAT) {
                r->logprobs = json_is_true(lp);
                json_t *tl = json_object_get(root, "top_logprobs");
                r->top_logprobs = json_is_integer(tl) && json_integer_value(tl) > 0 ? (size_t)json_integer_value(tl) : 0;
            } else if (json_is_integer(lp)) {
                r->logprobs = 1;
                r->top_logprobs = json_integer_value(lp) > 0 ? (size_t)json_integer_value(lp) : 0;
            }
        }
    }
    r->prompt_text = text.data ? text.data : rt_strdup("");
    if (!r->prompt_text) goto oom;
    r->prompt_text_len = text.len;
    text.data = NULL;
    rc = 0;
    goto out;
oom:
    bad(&e, 500, "", "internal error: %s", rt_errmsg());
out:
    if (rc) {
        free(r->model);
        r->model = NULL;
        free(r->prompt_ids);
        r->prompt_ids = NULL;
    }
    chat_msgs_free(&cm);
    rt_buf_free(&text);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- responses */

static json_t *usage_json(const serve_job *j) {
    int64_t comp = 0;
    for (size_t c = 0; c < j->n; c++) comp += (int64_t)j->choices[c].n_generated;
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)j->n_prompt, "completion_tokens",
                     (json_int_t)comp, "total_tokens", (json_int_t)(j->n_prompt + (size_t)comp));
}

static json_t *completions_logprobs(const tokenizer *tok, const serve_choice *c, size_t from, size_t to,
                                    size_t top_k) {
    json_t *tokens = json_array(), *tlp = json_array(), *tops = json_array(), *off = json_array(),
           *content = json_array();
    for (size_t i = from; i < to; i++) {
        size_t bl = 0;
        const char *b = tokenizer_token_bytes(tok, c->tokens[i], &bl);
        json_array_append_new(tokens, serve_json_bytes_string(b ? b : "", b ? bl : 0));
        json_array_append_new(tlp, json_real(c->logprob[i]));
        json_array_append_new(off, json_integer((json_int_t)c->tok_off[i]));
        if (top_k) {
            json_t *d = json_object();
            for (size_t k = 0; k < top_k; k++) {
                size_t l2 = 0;
                const char *b2 = tokenizer_token_bytes(tok, c->top_ids[i * top_k + k], &l2);
                rt_buf s = {0};
                if (rt_utf8_sanitize(&s, b2 ? b2 : "", b2 ? l2 : 0) == 0 && !json_object_get(d, s.data))
                    json_object_set_new(d, s.data, json_real(c->top_lp[i * top_k + k]));
                rt_buf_free(&s);
            }
            json_array_append_new(tops, d);
        } else {
            json_array_append_new(tops, json_null());
        }
        json_array_append_new(content, serve_chat_logprob_entry(tok, c, i, top_k));
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", tlp, "top_logprobs", tops,
                     "text_offset", off, "content", content);
}

json_t *serve_logprobs_json(int chat, const tokenizer *tok, const serve_choice *c, size_t from, size_t to,
                            size_t top_k) {
    if (!chat) return completions_logprobs(tok, c, from, to, top_k);
    json_t *content = json_array();
    for (size_t i = from; i < to; i++) json_array_append_new(content, serve_chat_logprob_entry(tok, c, i, top_k));
    return json_pack("{s:o}", "content", content);
}

json_t *serve_usage_json(const serve_job *j) { return usage_json(j); }

json_t *serve_response_json(const serve_gen_request *r, const serve_job *j, const tokenizer *tok,
                            const char *id, const char *model_name, int64_t created) {
    json_t *choices = json_array();
    for (size_t ci = 0; ci < j->n; ci++) {
        const serve_choice *c = &j->choices[ci];
        size_t tl = c->text_limit;
        size_t nvis = serve_choice_visible_tokens(c, tl);
        json_t *text = serve_json_bytes_string(c->text.data ? c->text.data : "", tl);
        json_t *lp = r->logprobs ? serve_logprobs_json(r->chat, tok, c, 0, nvis, j->top_k) : json_null();
        json_t *ch;
        if (r->chat)
            ch = json_pack("{s:I, s:{s:s, s:o}, s:o, s:s}", "index", (json_int_t)ci, "message", "role", "assistant",
                           "content", text, "logprobs", lp, "finish_reason", c->finish_reason ? c->finish_reason : "stop");
        else
            ch = json_pack("{s:I, s:o, s:o, s:s}", "index", (json_int_t)ci, "text", text, "logprobs", lp,
                           "finish_reason", c->finish_reason ? c->finish_reason : "stop");
        json_array_append_new(choices, ch);
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:n}", "id", id, "object",
                     r->chat ? "chat.completion" : "text_completion", "created", (json_int_t)created, "model",
                     model_name, "choices", choices, "usage", usage_json(j), "system_fingerprint");
}
