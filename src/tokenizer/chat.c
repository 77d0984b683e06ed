/*
 * chat.c — the chat templates of the model families retort loads, rendered natively.
 *
 * A model file carries its prompt format as a Jinja template (GGUF tokenizer.chat_template,
 * tokenizer_config.json "chat_template"). Retort does not interpret Jinja: it recognises which
 * family's template it is by the template's markers and renders that family's format in C,
 * reproducing the shipped templates for string contents and the roles system, user and
 * assistant (tests/ref_chat_template.sh compares text and ids with transformers.js running the
 * real template). What each template does with those messages, as rendered here:
 *
 *   retort      <|role|> content <|end|> per message; generation prompt <|assistant|>
 *   chatml      [<|im_start|>system\n DEFAULT <|im_end|>\n when the first message is not a
 *               system one and the template has a default (Qwen2/2.5)], then
 *               <|im_start|>role\n content <|im_end|>\n; generation prompt <|im_start|>assistant\n
 *   qwen3       chatml without a default, and assistant turns split at </think>: those after
 *               the last user turn are written <think>\n REASONING \n</think>\n\n ANSWER (the
 *               last one always, earlier ones when they had reasoning); earlier ones ANSWER alone
 *   llama3      bos on the first message; <|start_header_id|>role<|end_header_id|>\n\n
 *               trim(content) <|eot_id|>; generation prompt the assistant header (always, in
 *               the base model's template)
 *   deepseek-v3 bos, all system contents joined by \n\n, then <｜User｜>content and
 *               <｜Assistant｜>content<｜end▁of▁sentence｜>; generation prompt <｜Assistant｜>
 *   deepseek-r1 the same with the last system content only, assistant contents cut after their
 *               last </think>, and generation prompt <｜Assistant｜><think>\n
 *   llama2      a first system message goes into the first user turn as <<SYS>>\n…\n<</SYS>>\n\n;
 *               user: bos [INST] strip(content) [/INST]; assistant: ' ' strip(content) ' ' eos;
 *               the rest must alternate user/assistant; no generation prompt (the prompt already
 *               ends at [/INST])
 *   gemma       bos; a first system message is prefixed (content\n\n) to the first turn;
 *               <start_of_turn>user|model\n trim(content) <end_of_turn>\n, alternating;
 *               generation prompt <start_of_turn>model\n
 *
 * strip/trim remove Unicode White_Space at both ends (Python's str.strip, Jinja's trim).
 * Special tokens are matched only in the template's own text (tokenizer_encode_masked): a
 * message that contains "<|im_end|>" stays text. Transformers would parse it as the special
 * token; that difference is deliberate (no forged turns) and is the only one.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer.h"

const char tokenizer_chat_names[] = "retort chatml qwen3 llama3 deepseek-v3 deepseek-r1 llama2 gemma";

static const char *const family_names[CHAT_N_FAMILIES] = {"retort", "chatml", "qwen3", "llama3",
                                                          "deepseek-v3", "deepseek-r1", "llama2", "gemma"};

const char *tokenizer_chat_family_name(tokenizer_chat_family f) {
    return (unsigned)f < CHAT_N_FAMILIES ? family_names[f] : "?";
}

/* ---------------------------------------------------------------- recognising a template */

/* ChatML's default system prompt: the literal text between "<|im_start|>system\n" (the \n
 * written as an escape or a newline) and "<|im_end|>" inside one quoted string of the
 * template, e.g. Qwen2.5's '<|im_start|>system\nYou are Qwen, ...<|im_end|>\n'. Empty when the
 * template only ever writes messages[0]'s content there. */
static int chatml_default_system(const char *t, char *out, size_t cap) {
    out[0] = '\0';
    static const char *const heads[2] = {"<|im_start|>system\\n", "<|im_start|>system\n"};
    for (int h = 0; h < 2; h++) {
        for (const char *p = strstr(t, heads[h]); p; p = strstr(p + 1, heads[h])) {
            if (p == t || (p[-1] != '\'' && p[-1] != '"')) continue;
            char q = p[-1];
            const char *b = p + strlen(heads[h]), *e = strstr(b, "<|im_end|>");
            if (!e || e == b) continue;
            size_t n = 0, ok = 1;
            for (const char *s = b; s < e && ok; s++) {
                char ch = *s;
                if (ch == q || ch == '{' || ch == '}') ok = 0;
                else if (ch == '\\' && s + 1 < e) {
                    s++;
                    ch = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
                }
                if (ok && n + 1 < cap) out[n++] = ch;
                else if (ok) return RT_FAIL("chat template: the default system prompt is longer than %zu bytes",
                                            cap - 1);
            }
            if (!ok) continue;
            out[n] = '\0';
            return 0;
        }
    }
    return 0;
}

static int has(const char *t, const char *s) { return strstr(t, s) != NULL; }

static int detect_by_name(tokenizer_chat *c, const char *name) {
    for (int f = 0; f < CHAT_N_FAMILIES; f++)
        if (!strcmp(name, family_names[f])) {
            c->family = (tokenizer_chat_family)f;
            return 0;
        }
    return RT_FAIL("--chat-template: unknown format '%s' (one of: %s)", name, tokenizer_chat_names);
}

int tokenizer_chat_detect(tokenizer_chat *c, const tokenizer *tok, const char *t, const char *name) {
    memset(c, 0, sizeof *c);
    if (name && *name) return detect_by_name(c, name);
    if ((!t || !*t) && tok && tokenizer_special_id(tok, "<|user|>") >= 0 &&
        tokenizer_special_id(tok, "<|assistant|>") >= 0 && tokenizer_special_id(tok, "<|end|>") >= 0) {
        c->family = CHAT_RETORT; /* retort's own vocabulary, stored without its template */
        return 0;
    }
    if (!t || !*t)
        return RT_FAIL("the model has no chat template; pick a format with --chat-template (one of: %s)",
                       tokenizer_chat_names);
    if (has(t, "<|im_start|>")) {
        if (has(t, "</think>") || has(t, "reasoning_content")) {
            c->family = CHAT_QWEN3;
            return 0;
        }
        c->family = CHAT_CHATML;
        return chatml_default_system(t, c->default_system, sizeof c->default_system);
    }
    if (has(t, "<|start_header_id|>")) {
        if (has(t, "Cutting Knowledge Date") || has(t, "Environment: ipython"))
            return RT_FAIL("the model's chat template is Llama 3.1's or later (a dated system header, tools), "
                           "which retort does not render; --chat-template llama3 renders the Llama 3 format "
                           "without it");
        c->family = CHAT_LLAMA3;
        c->gen_always = !has(t, "add_generation_prompt");
        return 0;
    }
    if (has(t, "<｜User｜>") && has(t, "<｜Assistant｜>")) {
        c->family = has(t, "<｜Assistant｜><think>") || has(t, "'</think>' in") ? CHAT_DEEPSEEK_R1 : CHAT_DEEPSEEK_V3;
        return 0;
    }
    if (has(t, "[INST]") && has(t, "<<SYS>>")) {
        c->family = CHAT_LLAMA2;
        return 0;
    }
    if (has(t, "<start_of_turn>")) {
        c->family = CHAT_GEMMA;
        c->no_system = has(t, "System role not supported");
        return 0;
    }
    if (has(t, "<|end|>") && has(t, "'<|' + message['role'] + '|>'")) {
        c->family = CHAT_RETORT;
        return 0;
    }
    return RT_FAIL("the model's chat template is of no family retort renders (it recognises %s by their "
                   "markers); pick a format with --chat-template NAME",
                   tokenizer_chat_names);
}

/* ---------------------------------------------------------------- rendering */

typedef struct {
    const tokenizer *tok;
    rt_buf *text, *mask;
} out_t;

static int put(out_t *o, const char *s, size_t n, int tmpl) {
    if (!n) return 0;
    if (rt_buf_append(o->text, s, n)) return -1;
    if (!o->mask) return 0;
    if (rt_buf_reserve(o->mask, n)) return -1;
    memset((char *)o->mask->data + o->mask->len, tmpl ? 1 : 0, n);
    o->mask->len += n;
    return 0;
}

static int lit(out_t *o, const char *s) { return put(o, s, strlen(s), 1); }

/* The text of a special token (bos/eos) as the template's bos_token/eos_token; "" without one. */
static int tok_text(out_t *o, int32_t id) {
    size_t n = 0;
    const char *s = id >= 0 ? tokenizer_token_bytes(o->tok, id, &n) : NULL;
    return s ? put(o, s, n, 1) : 0;
}

/* Unicode White_Space at s (its byte length), 0 if none. */
static size_t ws_len(const unsigned char *s, size_t n) {
    if (!n) return 0;
    if (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r')) return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (n < 3) return 0;
    uint32_t cp = 0;
    if ((s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80)
        cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
        cp == 0x205F || cp == 0x3000)
        return 3;
    return 0;
}

/* strip(): [*b, *e) without White_Space at either end. */
static void strip(const char **b, const char **e) {
    size_t k;
    while (*b < *e && (k = ws_len((const unsigned char *)*b, (size_t)(*e - *b)))) *b += k;
    for (;;) {
        const char *p = *e, *hit = NULL;
        for (size_t back = 1; back <= 3 && p - back >= *b; back++)
            if (ws_len((const unsigned char *)(p - back), back) == back) hit = p - back;
        if (!hit) break;
        *e = hit;
    }
}

/* strip of one character c only, at the start (lead) and/or the end (tail). */
static void strip_char(const char **b, const char **e, char c, int lead, int tail) {
    while (lead && *b < *e && **b == c) (*b)++;
    while (tail && *e > *b && (*e)[-1] == c) (*e)--;
}

/* The last occurrence of needle in [b, e), or NULL. */
static const char *last_of(const char *b, const char *e, const char *needle) {
    size_t k = strlen(needle);
    for (const char *p = e - (ptrdiff_t)RT_MIN((size_t)(e - b), k); (size_t)(e - p) >= k && p >= b; p--)
        if (!memcmp(p, needle, k)) return p;
    return NULL;
}
static const char *first_of(const char *b, const char *e, const char *needle) {
    size_t k = strlen(needle);
    for (const char *p = b; (size_t)(e - p) >= k; p++)
        if (!memcmp(p, needle, k)) return p;
    return NULL;
}

typedef enum { R_SYSTEM, R_USER, R_ASSISTANT } role_t;

static int role_of(const tokenizer_chat_message *m, size_t i, role_t *r) {
    if (!m->role) return RT_FAIL("messages[%zu].role: required", i);
    if (!strcmp(m->role, "system") || !strcmp(m->role, "developer")) *r = R_SYSTEM;
    else if (!strcmp(m->role, "user")) *r = R_USER;
    else if (!strcmp(m->role, "assistant")) *r = R_ASSISTANT;
    else return RT_FAIL("messages[%zu].role: expected system, user or assistant, got '%s'", i, m->role);
    return 0;
}

static const char *const role_word[3] = {"system", "user", "assistant"};

static int render_retort(out_t *o, const tokenizer_chat_message *m, const role_t *r, size_t n, int gen) {
    static const char *const head[3] = {"<|system|>", "<|user|>", "<|assistant|>"};
    for (size_t i = 0; i < n; i++)
        if (lit(o, head[r[i]]) || put(o, m[i].content, m[i].len, 0) || lit(o, "<|end|>")) return -1;
    return gen ? lit(o, "<|assistant|>") : 0;
}

static int chatml_turn(out_t *o, role_t r, const char *s, size_t len) {
    return lit(o, "<|im_start|>") || lit(o, role_word[r]) || lit(o, "\n") || put(o, s, len, 0) ||
           lit(o, "<|im_end|>\n");
}

static int render_chatml(out_t *o, const tokenizer_chat *c, const tokenizer_chat_message *m, const role_t *r,
                         size_t n, int gen) {
    if (c->default_system[0] && (n == 0 || r[0] != R_SYSTEM) &&
        (lit(o, "<|im_start|>system\n") || lit(o, c->default_system) || lit(o, "<|im_end|>\n")))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (chatml_turn(o, r[i], m[i].content, m[i].len)) return -1;
    return gen ? lit(o, "<|im_start|>assistant\n") : 0;
}

/* Qwen3: a user message that is a tool response does not count as the last query. */
static int is_tool_response(const tokenizer_chat_message *m) {
    static const char b[] = "<tool_response>", e[] = "</tool_response>";
    return m->len >= sizeof b - 1 && !memcmp(m->content, b, sizeof b - 1) && m->len >= sizeof e - 1 &&
           !memcmp(m->content + m->len - (sizeof e - 1), e, sizeof e - 1);
}

static int qwen3_assistant(out_t *o, const tokenizer_chat_message *m, int after_query, int last) {
    const char *b = m->content, *e = b + m->len;
    const char *rb = b, *re = b; /* reasoning */
    const char *close = first_of(b, e, "</think>");
    if (close) {
        const char *lc = last_of(b, e, "</think>");
        rb = b;
        re = close;
        strip_char(&rb, &re, '\n', 0, 1);
        const char *open = last_of(rb, re, "<think>");
        if (open) rb = open + 7;
        strip_char(&rb, &re, '\n', 1, 0);
        b = lc + 8;
        strip_char(&b, &e, '\n', 1, 0);
    }
    if (lit(o, "<|im_start|>assistant\n")) return -1;
    if (after_query && (last || re > rb)) {
        strip_char(&rb, &re, '\n', 1, 1);
        strip_char(&b, &e, '\n', 1, 0);
        if (lit(o, "<think>\n") || put(o, rb, (size_t)(re - rb), 0) || lit(o, "\n</think>\n\n")) return -1;
    }
    return put(o, b, (size_t)(e - b), 0) || lit(o, "<|im_end|>\n");
}

static int render_qwen3(out_t *o, const tokenizer_chat_message *m, const role_t *r, size_t n, int gen) {
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;)
        if (r[k] == R_USER && !is_tool_response(&m[k])) {
            last_query = k;
            break;
        }
    for (size_t i = 0; i < n; i++) {
        int rc = r[i] == R_ASSISTANT ? qwen3_assistant(o, &m[i], i > last_query, i + 1 == n)
                                     : chatml_turn(o, r[i], m[i].content, m[i].len);
        if (rc) return -1;
    }
    return gen ? lit(o, "<|im_start|>assistant\n") : 0;
}

static int render_llama3(out_t *o, const tokenizer_chat *c, const tokenizer_chat_message *m, const role_t *r,
                         size_t n, int gen) {
    for (size_t i = 0; i < n; i++) {
        const char *b = m[i].content, *e = b + m[i].len;
        strip(&b, &e);
        if ((i == 0 && tok_text(o, tokenizer_bos(o->tok))) || lit(o, "<|start_header_id|>") ||
            lit(o, role_word[r[i]]) || lit(o, "<|end_header_id|>\n\n") || put(o, b, (size_t)(e - b), 0) ||
            lit(o, "<|eot_id|>"))
            return -1;
    }
    return gen || c->gen_always ? lit(o, "<|start_header_id|>assistant<|end_header_id|>\n\n") : 0;
}

static int render_deepseek(out_t *o, int r1, const tokenizer_chat_message *m, const role_t *r, size_t n, int gen) {
    if (tok_text(o, tokenizer_bos(o->tok))) return -1;
    int first = 1;
    size_t last_sys = n;
    for (size_t i = 0; i < n; i++)
        if (r[i] == R_SYSTEM) last_sys = i;
    for (size_t i = 0; i < n; i++) {
        if (r[i] != R_SYSTEM || (r1 && i != last_sys)) continue;
        if ((!first && lit(o, "\n\n")) || put(o, m[i].content, m[i].len, 0)) return -1;
        first = 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *b = m[i].content, *e = b + m[i].len;
        if (r[i] == R_USER) {
            if (lit(o, "<｜User｜>") || put(o, b, m[i].len, 0)) return -1;
        } else if (r[i] == R_ASSISTANT) {
            const char *t = r1 ? last_of(b, e, "</think>") : NULL;
            if (t) b = t + 8;
            if (lit(o, "<｜Assistant｜>") || put(o, b, (size_t)(e - b), 0) || lit(o, "<｜end▁of▁sentence｜>"))
                return -1;
        }
    }
    if (!gen) return 0;
    return lit(o, r1 ? "<｜Assistant｜><think>\n" : "<｜Assistant｜>");
}

/* Llama 2 and Gemma: an optional first system message, then turns that must alternate
 * user/assistant starting with user (the templates raise_exception otherwise); a system
 * message later at an odd place renders nothing in Llama 2's template, a "system" turn in Gemma's. */
static int alternation(const role_t *r, size_t from, size_t n) {
    for (size_t i = from; i < n; i++)
        if ((r[i] == R_USER) != ((i - from) % 2 == 0))
            return RT_FAIL("messages[%zu]: conversation roles must alternate user/assistant/user/assistant/... "
                           "(after an optional first system message)",
                           i);
    return 0;
}

static int render_llama2(out_t *o, const tokenizer_chat_message *m, const role_t *r, size_t n) {
    size_t from = n && r[0] == R_SYSTEM ? 1 : 0;
    if (alternation(r, from, n)) return -1;
    for (size_t i = from; i < n; i++) {
        const char *b = m[i].content, *e = b + m[i].len;
        if (r[i] == R_USER) {
            /* strip() runs over '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content when the
             * system message is merged: it starts with '<', so only the end is stripped, and
             * an all-space content takes the "\n\n" before it along */
            int sys = i == from && from == 1;
            const char *sb = b, *se = e;
            strip(&sb, &se);
            if (tok_text(o, tokenizer_bos(o->tok)) || lit(o, "[INST] ")) return -1;
            if (sys) {
                if (lit(o, "<<SYS>>\n") || put(o, m[0].content, m[0].len, 0) ||
                    lit(o, sb == se ? "\n<</SYS>>" : "\n<</SYS>>\n\n"))
                    return -1;
                if (sb != se) e = se; /* b keeps its leading spaces */
                else e = b;
            } else {
                b = sb;
                e = se;
            }
            if (put(o, b, (size_t)(e - b), 0) || lit(o, " [/INST]")) return -1;
        } else if (r[i] == R_ASSISTANT) {
            strip(&b, &e);
            if (lit(o, " ") || put(o, b, (size_t)(e - b), 0) || lit(o, " ") || tok_text(o, tokenizer_eos(o->tok)))
                return -1;
        }
    }
    return 0;
}

static int render_gemma(out_t *o, const tokenizer_chat *c, const tokenizer_chat_message *m, const role_t *r,
                        size_t n, int gen) {
    if (c->no_system)
        for (size_t i = 0; i < n; i++)
            if (r[i] == R_SYSTEM) return RT_FAIL("messages[%zu]: this model's template refuses a system message", i);
    size_t from = n && r[0] == R_SYSTEM ? 1 : 0;
    if (tok_text(o, tokenizer_bos(o->tok)) || alternation(r, from, n)) return -1;
    for (size_t i = from; i < n; i++) {
        const char *b = m[i].content, *e = b + m[i].len;
        strip(&b, &e);
        if (lit(o, "<start_of_turn>") || lit(o, r[i] == R_ASSISTANT ? "model" : role_word[r[i]]) || lit(o, "\n"))
            return -1;
        if (i == from && from == 1 && (put(o, m[0].content, m[0].len, 0) || lit(o, "\n\n"))) return -1;
        if (put(o, b, (size_t)(e - b), 0) || lit(o, "<end_of_turn>\n")) return -1;
    }
    return gen ? lit(o, "<start_of_turn>model\n") : 0;
}

int tokenizer_chat_render(const tokenizer_chat *c, const tokenizer *tok, const tokenizer_chat_message *msgs,
                          size_t n, int add_generation_prompt, rt_buf *text, rt_buf *mask) {
    role_t *r = rt_malloc_array(n ? n : 1, sizeof *r, "chat roles");
    if (!r) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) rc = role_of(&msgs[i], i, &r[i]);
    out_t o = {tok, text, mask};
    int gen = add_generation_prompt;
    if (!rc) switch (c->family) {
        case CHAT_RETORT: rc = render_retort(&o, msgs, r, n, gen); break;
        case CHAT_CHATML: rc = render_chatml(&o, c, msgs, r, n, gen); break;
        case CHAT_QWEN3: rc = render_qwen3(&o, msgs, r, n, gen); break;
        case CHAT_LLAMA3: rc = render_llama3(&o, c, msgs, r, n, gen); break;
        case CHAT_DEEPSEEK_V3: rc = render_deepseek(&o, 0, msgs, r, n, gen); break;
        case CHAT_DEEPSEEK_R1: rc = render_deepseek(&o, 1, msgs, r, n, gen); break;
        case CHAT_LLAMA2: rc = render_llama2(&o, msgs, r, n); break;
        case CHAT_GEMMA: rc = render_gemma(&o, c, msgs, r, n, gen); break;
        default: rc = RT_FAIL("chat template: unknown family %d", (int)c->family);
        }
    free(r);
    return rc;
}

int tokenizer_chat_encode(const tokenizer_chat *c, const tokenizer *tok, const tokenizer_chat_message *msgs,
                          size_t n, int add_generation_prompt, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    rt_buf text = {0}, mask = {0};
    int rc = tokenizer_chat_render(c, tok, msgs, n, add_generation_prompt, &text, &mask);
    if (!rc) rc = tokenizer_encode_masked(tok, text.data, text.len, (const uint8_t *)mask.data, ids, n_ids);
    rt_buf_free(&text);
    rt_buf_free(&mask);
    return rc;
}

int32_t tokenizer_chat_end_token(const tokenizer_chat *c, const tokenizer *tok) {
    switch (c->family) {
    case CHAT_RETORT: return tokenizer_special_id(tok, "<|end|>");
    case CHAT_CHATML:
    case CHAT_QWEN3: return tokenizer_special_id(tok, "<|im_end|>");
    case CHAT_LLAMA3: return tokenizer_special_id(tok, "<|eot_id|>");
    case CHAT_DEEPSEEK_V3:
    case CHAT_DEEPSEEK_R1: return tokenizer_special_id(tok, "<｜end▁of▁sentence｜>");
    case CHAT_LLAMA2: return tokenizer_eos(tok);
    case CHAT_GEMMA: return tokenizer_special_id(tok, "<end_of_turn>");
    default: return -1;
    }
}

/* ---------------------------------------------------------------- where the template is */

/* "chat_template" of a tokenizer_config.json: a string, or the entry named "default" of a
 * list of {name, template} (as llama.cpp's converter takes it). */
static int config_template(const char *path, char **out) {
    json_error_t err;
    json_t *j = json_load_file(path, JSON_DECODE_INT_AS_REAL, &err); /* model_max_length 1e30 */
    if (!j) return RT_FAIL("%s: line %d: %s", path, err.line, err.text);
    json_t *t = json_object_get(j, "chat_template");
    if (json_is_array(t)) {
        json_t *e = NULL, *found = NULL;
        size_t i;
        json_array_foreach(t, i, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            if (name && !strcmp(name, "default")) found = json_object_get(e, "template");
        }
        t = found;
    }
    int rc = 0;
    if (t && !json_is_string(t)) {
        rc = RT_FAIL("%s: \"chat_template\": expected a string or a list of {name, template} with a "
                     "\"default\" entry",
                     path);
    } else if (t) {
        *out = rt_malloc(json_string_length(t) + 1, "chat template");
        if (!*out) rc = -1;
        else memcpy(*out, json_string_value(t), json_string_length(t) + 1);
    }
    json_decref(j);
    return rc;
}

int tokenizer_chat_template_load(const char *path, char **out) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st)) return RT_FAIL("%s: %s", path, strerror(errno));
    char magic[4] = {0};
    if (!S_ISDIR(st.st_mode)) {
        FILE *f = fopen(path, "rb");
        if (!f) return RT_FAIL("%s: %s", path, strerror(errno));
        size_t got = fread(magic, 1, sizeof magic, f);
        fclose(f);
        if (got == sizeof magic && !memcmp(magic, "GGUF", 4)) {
            gguf_ctx *g = NULL;
            if (gguf_open(&g, path)) return -1;
            const char *t;
            size_t n;
            int rc = 0;
            if (gguf_get_str(g, "tokenizer.chat_template", &t, &n) == 0) {
                *out = rt_malloc(n + 1, "chat template");
                if (!*out) rc = -1;
                else {
                    memcpy(*out, t, n);
                    (*out)[n] = '\0';
                }
            }
            gguf_close(g);
            return rc;
        }
    }
    /* a folder, or a tokenizer.json: the tokenizer_config.json beside it */
    size_t pl = strlen(path);
    char *cfg = rt_malloc(pl + 32, "path");
    if (!cfg) return -1;
    if (S_ISDIR(st.st_mode)) {
        snprintf(cfg, pl + 32, "%s/tokenizer_config.json", path);
    } else {
        const char *slash = strrchr(path, '/');
        size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
        memcpy(cfg, path, dl);
        strcpy(cfg + dl, "tokenizer_config.json");
    }
    int rc = rt_file_exists(cfg) ? config_template(cfg, out) : 0;
    free(cfg);
    return rc;
}
