/*
 * sft_data.c — prompt/completion data for black-box distillation: reads JSONL with one
 * {"prompt": str, "completion": str} object per line (the harvest format, or `retort data`
 * output), tokenizes each pair with the student's tokenizer, and turns the optional
 * per-token "top_logprobs" the API returned into soft targets.
 *
 * Line format. Required: "prompt", "completion" (strings). Optional: "top_logprobs" — one
 * entry per completion token of the TEACHER, each a list of {"token", "logprob", "bytes"}
 * ("bytes", the exact UTF-8 bytes, win over "token"); "logprobs" — the chosen tokens'
 * log-probs (numbers), or OpenAI's object {"content": [{"token", "logprob", "bytes",
 * "top_logprobs"}]}; "answer" (string or number, for task scoring); "finish_reason"
 * ("length" means the completion was cut: no end token is appended). Anything else ("id",
 * "account", "model", ...) is ignored. A line that breaks these rules is reported with its
 * line number; the load fails unless skip_bad, which reports every skipped line.
 *
 * Soft targets need the teacher's token boundaries, which the file gives only implicitly.
 * They are recovered by walking the completion's bytes: at each teacher position the
 * chosen token is the listed alternative that is a prefix of the remaining text and whose
 * log-prob equals the chosen log-prob (or, without those, the one the student's own
 * tokenization agrees with, or the only prefix). The teacher's distribution at a byte
 * offset becomes the soft target of the student token that starts at the same offset
 * (predicting the next token after the same text). Alternatives are mapped to student ids
 * by their bytes; those with no single student token go to the rest mass. Where the walk
 * cannot continue (the sampled token was not among the listed ones) the remaining tokens
 * keep their hard labels only, and the shortfall is counted.
 *
 * Layout per example: tokens = prompt tokens, completion tokens, end token (eos for "raw";
 * for "chat" the prompt is the chat format's rendering of the system message and the user
 * prompt with the generation prompt, exactly what serve gives the model, and the end token the
 * format's end of turn: <|end|>, <|im_end|>, <|eot_id|>, ...).
 *
 * What this is not: the HTTP harvester (src/serve) or the training loop (recipe.c).
 */
#include "distill.h"

#include "../record/record.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sft_load_defaults(sft_load_opts *o) {
    memset(o, 0, sizeof *o);
    o->format = SFT_FORMAT_RAW;
    o->soft = 1;
    o->max_bad_report = 20;
}

void sft_set_free(sft_set *s) {
    free(s->off);
    free(s->n_prompt);
    free(s->line);
    free(s->tokens);
    if (s->answers)
        for (size_t i = 0; i < s->n_ex; i++) free(s->answers[i]);
    free(s->answers);
    free(s->soft_off);
    free(s->soft_tok);
    free(s->soft_k_off);
    free(s->soft_ids);
    free(s->soft_lps);
    free(s->soft_rest);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- byte → id map */

typedef struct {
    const tokenizer *tok;
    int32_t *slot; /* (cap) id or -1 */
    size_t cap;
} vocab_map;

static uint64_t hash_bytes(const void *p, size_t n) { return rt_fnv1a64(p, n); }

static int vocab_map_init(vocab_map *m, const tokenizer *tok) {
    size_t V = tokenizer_vocab_size(tok);
    m->tok = tok;
    m->cap = 16;
    while (m->cap < 2 * V) m->cap *= 2;
    m->slot = rt_malloc_array(m->cap, sizeof(int32_t), "vocabulary map");
    if (!m->slot) return -1;
    for (size_t i = 0; i < m->cap; i++) m->slot[i] = -1;
    for (size_t id = 0; id < V; id++) {
        size_t len;
        const char *b = tokenizer_token_bytes(tok, (int32_t)id, &len);
        if (!b) continue;
        size_t h = (size_t)hash_bytes(b, len) & (m->cap - 1);
        int dup = 0;
        while (m->slot[h] >= 0) {
            size_t l2;
            const char *b2 = tokenizer_token_bytes(tok, m->slot[h], &l2);
            if (l2 == len && !memcmp(b, b2, len)) dup = 1; /* keep the first id with these bytes */
            if (dup) break;
            h = (h + 1) & (m->cap - 1);
        }
        if (!dup) m->slot[h] = (int32_t)id;
    }
    return 0;
}

static int32_t vocab_map_find(const vocab_map *m, const uint8_t *b, size_t len) {
    if (len == 0) return -1;
    size_t h = (size_t)hash_bytes(b, len) & (m->cap - 1);
    while (m->slot[h] >= 0) {
        size_t l2;
        const char *b2 = tokenizer_token_bytes(m->tok, m->slot[h], &l2);
        if (l2 == len && !memcmp(b, b2, len)) return m->slot[h];
        h = (h + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---------------------------------------------------------------- growable arrays */

#define PUSH(buf, val)                                                                 \
    do {                                                                               \
        __typeof__(val) v_ = (val);                                                    \
        if (rt_buf_append(&(buf), &v_, sizeof v_)) goto oom;                           \
    } while (0)

typedef struct {
    rt_buf off, n_prompt, line, tokens, answers, soft_off, soft_tok, soft_k_off, soft_ids, soft_lps, soft_rest;
} set_bufs;

/* ---------------------------------------------------------------- one line */

static int encode_text(const tokenizer *tok, const char *s, size_t n, rt_buf *out, size_t *count) {
    int32_t *ids = NULL;
    size_t k = 0;
    if (n && tokenizer_encode(tok, s, n, 0, &ids, &k)) return -1;
    int rc = k ? rt_buf_append(out, ids, k * sizeof(int32_t)) : 0;
    free(ids);
    *count = k;
    return rc;
}

typedef struct {
    const tokenizer *tok;
    const vocab_map *vm;
    const sft_load_opts *o;
    int32_t special_end, eos;
} line_ctx;

/* The prompt's tokens: chat wraps it (and a system message) in the template's specials;
 * raw puts a system message before the prompt, on its own line. */
static int encode_prompt(const line_ctx *lc, const record *r, set_bufs *B, size_t *np) {
    size_t k, k2 = 0;
    if (lc->o->format == SFT_FORMAT_CHAT) {
        tokenizer_chat_message m[2] = {{"system", r->system, r->system_len}, {"user", r->prompt, r->prompt_len}};
        int32_t *ids = NULL;
        size_t n = 0, skip = r->system ? 0 : 1;
        if (tokenizer_chat_encode(lc->o->chat, lc->tok, m + skip, 2 - skip, 1, &ids, &n)) return -1;
        int rc = n ? rt_buf_append(&B->tokens, ids, n * sizeof(int32_t)) : 0;
        free(ids);
        *np = n;
        return rc;
    }
    if (r->system) {
        if (encode_text(lc->tok, r->system, r->system_len, &B->tokens, &k2) ||
            encode_text(lc->tok, "\n", 1, &B->tokens, &k))
            return -1;
        k2 += k;
    }
    if (encode_text(lc->tok, r->prompt, r->prompt_len, &B->tokens, &k)) return -1;
    *np = k2 + k;
    return 0;
}

/* The teacher's soft targets, aligned on the completion's bytes (see the top of the file):
 * appends to the soft buffers; counts a walk that stopped short. */
static int align_soft(const line_ctx *lc, const record *r, const int32_t *cid, size_t nc, size_t np, set_bufs *B,
                      sft_set *s) {
    size_t *so = rt_malloc_array(nc + 1, sizeof(size_t), "token offsets");
    if (!so) return -1;
    so[0] = 0;
    for (size_t j = 0; j < nc; j++) {
        size_t l;
        tokenizer_token_bytes(lc->tok, cid[j], &l);
        so[j + 1] = so[j] + l;
    }
    const uint8_t *C = (const uint8_t *)r->completion;
    size_t clen = r->completion_len, off = 0, j = 0;
    int complete = 0;
    for (size_t i = 0; i < r->n_pos && off < clen; i++) {
        const record_pos *p = &r->pos[i];
        const record_token *alts = p->top;
        size_t na = p->n_top;
        while (j < nc && so[j] < off) j++;
        if (j < nc && so[j] == off && na > 0) {
            /* soft target for completion token j (example token np + j) */
            size_t e0 = B->soft_ids.len / sizeof(int32_t);
            double mass = 0;
            for (size_t a = 0; a < na; a++) {
                if (alts[a].logprob < -100) continue; /* "impossible" markers (-9999) */
                int32_t id = vocab_map_find(lc->vm, alts[a].bytes, alts[a].len);
                if (id < 0) continue;
                int dup = 0;
                const int32_t *have = (const int32_t *)B->soft_ids.data;
                for (size_t q = e0; q < B->soft_ids.len / sizeof(int32_t); q++) dup |= have[q] == id;
                if (dup) continue;
                PUSH(B->soft_ids, id);
                PUSH(B->soft_lps, (float)alts[a].logprob);
                mass += exp(alts[a].logprob);
            }
            size_t e1 = B->soft_ids.len / sizeof(int32_t);
            if (e1 > e0) {
                double rest = 1.0 - mass;
                PUSH(B->soft_tok, (uint32_t)(np + j));
                PUSH(B->soft_rest, rest > 1e-6 ? (float)log(rest) : -INFINITY);
                PUSH(B->soft_k_off, (size_t)e1);
                s->n_soft++;
            }
        }
        /* advance over the teacher's chosen token: given, or recovered */
        size_t adv = 0;
        if (p->has_token) {
            if (p->token.len == 0 || off + p->token.len > clen || memcmp(C + off, p->token.bytes, p->token.len) != 0)
                break; /* the log-probs do not spell the completion: stop aligning */
            adv = p->token.len;
        } else {
            size_t stu_len = (j < nc && so[j] == off) ? so[j + 1] - so[j] : 0;
            int n_pref = 0, pick = -1, pick_lp = -1, pick_stu = -1;
            for (size_t a = 0; a < na; a++) {
                if (alts[a].len == 0 || off + alts[a].len > clen || memcmp(C + off, alts[a].bytes, alts[a].len))
                    continue;
                n_pref++;
                pick = (int)a;
                if (p->has_logprob && fabs(alts[a].logprob - p->token.logprob) <= 1e-3 && pick_lp < 0) pick_lp = (int)a;
                if (alts[a].len == stu_len) pick_stu = (int)a;
            }
            if (p->has_logprob) pick = pick_lp;
            else if (pick_stu >= 0) pick = pick_stu;
            else if (n_pref != 1) pick = -1;
            if (pick < 0) break;
            adv = alts[pick].len;
        }
        off += adv;
        if (off >= clen) complete = 1;
    }
    if (!complete && clen > 0) s->n_truncated_alignment++;
    free(so);
    return 0;
oom:
    free(so);
    return -1;
}

/* Parse and tokenize one line; appends to the set buffers. On a bad line, returns -1 with
 * the reason (the buffers may hold a partial example: the caller rolls them back). */
static int parse_line(const line_ctx *lc, const char *text, size_t len, set_bufs *B, sft_set *s,
                      uint32_t line_no) {
    record r;
    rt_buf comp_ids = {0};
    unsigned flags = (lc->o->prompts_only ? RECORD_PROMPT_ONLY : 0) | (lc->o->soft ? 0 : RECORD_NO_LOGPROBS);
    int rc = -1;
    if (record_parse(&r, text, len, flags)) goto done;
    int no_completion = !r.completion;
    int cut = r.finish_reason && !strcmp(r.finish_reason, "length");
    /* tokens: prompt, completion, end */
    size_t ex0 = B->tokens.len / sizeof(int32_t), np = 0, nc = 0;
    if (encode_prompt(lc, &r, B, &np)) goto done;
    if (!no_completion && encode_text(lc->tok, r.completion, r.completion_len, &comp_ids, &nc)) goto done;
    if (np == 0) {
        RT_FAIL("\"prompt\" is empty; every example needs a prompt to condition on");
        goto done;
    }
    if (nc == 0 && cut) {
        RT_FAIL("\"completion\" is empty and was cut (finish_reason \"length\"): nothing to learn");
        goto done;
    }
    if (nc && rt_buf_append(&B->tokens, comp_ids.data, nc * sizeof(int32_t))) goto done;
    size_t n_end = 0;
    if (!cut && !no_completion) {
        int32_t e = lc->o->format == SFT_FORMAT_CHAT ? lc->special_end : lc->eos;
        if (rt_buf_append(&B->tokens, &e, sizeof(int32_t))) goto done;
        n_end = 1;
    }
    s->n_completion_tokens += nc + n_end;
    if (lc->o->soft && r.n_pos > 0 && !no_completion) {
        s->n_with_logprobs++;
        if (align_soft(lc, &r, (const int32_t *)comp_ids.data, nc, np, B, s)) goto done;
    }
    size_t n_tokens = B->tokens.len / sizeof(int32_t) - ex0;
    if (n_tokens > UINT32_MAX) {
        RT_FAIL("the example has %zu tokens", n_tokens);
        goto done;
    }
    PUSH(B->off, B->tokens.len / sizeof(int32_t));
    PUSH(B->n_prompt, (uint32_t)np);
    PUSH(B->line, line_no);
    PUSH(B->answers, r.answer);
    r.answer = NULL; /* the buffer owns it now */
    PUSH(B->soft_off, B->soft_tok.len / sizeof(uint32_t));
    s->n_ex++;
    rc = 0;
    goto done;
oom:
    rc = -1;
done:
    record_free(&r);
    rt_buf_free(&comp_ids);
    return rc;
}

/* ---------------------------------------------------------------- the file */

int sft_load_jsonl(sft_set *s, const char *path, const tokenizer *tok, const sft_load_opts *o) {
    memset(s, 0, sizeof *s);
    char *data = NULL;
    size_t len = 0;
    if (rt_read_file(path, &data, &len)) return -1;
    vocab_map vm = {0};
    set_bufs B;
    memset(&B, 0, sizeof B);
    int rc = -1;
    line_ctx lc = {.tok = tok, .vm = &vm, .o = o};
    lc.eos = tokenizer_eos(tok);
    tokenizer_chat retort_fmt;
    memset(&retort_fmt, 0, sizeof retort_fmt);
    /* no format given: retort's own, if the vocabulary has it */
    if (o->format == SFT_FORMAT_CHAT && !o->chat && tokenizer_chat_detect(&retort_fmt, tok, NULL, NULL)) goto done;
    const tokenizer_chat *chat = o->chat ? o->chat : &retort_fmt;
    sft_load_opts oc = *o;
    oc.chat = chat;
    lc.o = &oc;
    lc.special_end = o->format == SFT_FORMAT_CHAT ? tokenizer_chat_end_token(chat, tok) : -1;
    if (o->format == SFT_FORMAT_CHAT && lc.special_end < 0) {
        RT_FAIL("--format chat: the vocabulary lacks the end-of-turn token of the %s chat format",
                tokenizer_chat_family_name(chat->family));
        goto done;
    }
    if (o->format == SFT_FORMAT_RAW && lc.eos < 0) {
        RT_FAIL("the vocabulary has no <|eos|> token to end completions with");
        goto done;
    }
    if (vocab_map_init(&vm, tok)) goto done;
    size_t zero = 0;
    if (rt_buf_append(&B.off, &zero, sizeof zero) || rt_buf_append(&B.soft_off, &zero, sizeof zero) ||
        rt_buf_append(&B.soft_k_off, &zero, sizeof zero))
        goto done;
    uint32_t line_no = 0;
    size_t n_bad = 0;
    rt_buf first_err = {0};
    for (size_t pos = 0; pos < len;) {
        const char *ln = data + pos;
        const char *nl = memchr(ln, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - ln) : len - pos;
        pos += ll + (nl ? 1 : 0);
        line_no++;
        size_t blank = 1;
        for (size_t i = 0; i < ll && blank; i++) blank = ln[i] == ' ' || ln[i] == '\t' || ln[i] == '\r';
        if (blank) continue;
        if (o->max_examples && s->n_ex >= o->max_examples) break;
        /* remember the buffer lengths to roll back a bad line */
        size_t mark[11];
        rt_buf *all[11] = {&B.off, &B.n_prompt, &B.line, &B.tokens, &B.answers, &B.soft_off, &B.soft_tok,
                           &B.soft_k_off, &B.soft_ids, &B.soft_lps, &B.soft_rest};
        for (int i = 0; i < 11; i++) mark[i] = all[i]->len;
        size_t m_soft = s->n_soft, m_comp = s->n_completion_tokens, m_lp = s->n_with_logprobs,
               m_tr = s->n_truncated_alignment;
        if (parse_line(&lc, ln, ll, &B, s, line_no) == 0) continue;
        for (int i = 0; i < 11; i++) all[i]->len = mark[i];
        s->n_soft = m_soft;
        s->n_completion_tokens = m_comp;
        s->n_with_logprobs = m_lp;
        s->n_truncated_alignment = m_tr;
        n_bad++;
        if (n_bad <= o->max_bad_report) {
            if (o->skip_bad) rt_warn("%s:%u: skipped: %s", path, line_no, rt_errmsg());
            if (n_bad <= 5 && rt_buf_printf(&first_err, "%s%s:%u: %s", first_err.len ? "\n  " : "", path, line_no,
                                            rt_errmsg()))
                goto done;
        }
    }
    s->n_bad_lines = n_bad;
    if (n_bad && !o->skip_bad) {
        RT_FAIL("%zu bad line%s in %s (fix them, or pass --skip-bad to use the rest):\n  %s%s", n_bad,
                n_bad == 1 ? "" : "s", path, first_err.data, n_bad > 5 ? "\n  ..." : "");
        rt_buf_free(&first_err);
        goto done;
    }
    if (n_bad) rt_warn("%s: skipped %zu bad line%s", path, n_bad, n_bad == 1 ? "" : "s");
    rt_buf_free(&first_err);
    if (s->n_ex == 0) {
        RT_FAIL("%s: no examples (expected JSONL lines {\"prompt\": ..., \"completion\": ...})", path);
        goto done;
    }
    /* hand the buffers over */
    s->off = (size_t *)(void *)B.off.data;
    s->n_prompt = (uint32_t *)(void *)B.n_prompt.data;
    s->line = (uint32_t *)(void *)B.line.data;
    s->tokens = (int32_t *)(void *)B.tokens.data;
    s->answers = (char **)(void *)B.answers.data;
    s->soft_off = (size_t *)(void *)B.soft_off.data;
    s->soft_tok = (uint32_t *)(void *)B.soft_tok.data;
    s->soft_k_off = (size_t *)(void *)B.soft_k_off.data;
    s->soft_ids = (int32_t *)(void *)B.soft_ids.data;
    s->soft_lps = (float *)(void *)B.soft_lps.data;
    s->soft_rest = (float *)(void *)B.soft_rest.data;
    memset(&B, 0, sizeof B);
    uint64_t h = rt_fnv1a64(s->tokens, s->off[s->n_ex] * sizeof(int32_t));
    h ^= rt_splitmix64(rt_fnv1a64(s->n_prompt, s->n_ex * sizeof(uint32_t)));
    if (s->n_soft) {
        h ^= rt_splitmix64(rt_fnv1a64(s->soft_tok, s->n_soft * sizeof(uint32_t)) + 1);
        h ^= rt_splitmix64(rt_fnv1a64(s->soft_lps, s->soft_k_off[s->n_soft] * sizeof(float)) + 2);
    }
    s->hash = h;
    rc = 0;
done:
    if (rc) {
        /* answers pushed so far are owned by the buffer */
        char **ans = (char **)(void *)B.answers.data;
        for (size_t i = 0; ans && i < B.answers.len / sizeof(char *); i++) free(ans[i]);
        rt_buf *all[11] = {&B.off, &B.n_prompt, &B.line, &B.tokens, &B.answers, &B.soft_off, &B.soft_tok,
                           &B.soft_k_off, &B.soft_ids, &B.soft_lps, &B.soft_rest};
        for (int i = 0; i < 11; i++) rt_buf_free(all[i]);
        sft_set_free(s);
    }
    free(vm.slot);
    free(data);
    return rc;
}

int sft_collect_text(const char *path, rt_buf *text) {
    char *data = NULL;
    size_t len = 0;
    if (rt_read_file(path, &data, &len)) return -1;
    size_t used = 0;
    for (size_t pos = 0; pos < len;) {
        const char *ln = data + pos;
        const char *nl = memchr(ln, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - ln) : len - pos;
        pos += ll + (nl ? 1 : 0);
        json_t *root = json_loadb(ln, ll, JSON_ALLOW_NUL, NULL);
        if (!root) continue; /* blank or bad: sft_load_jsonl reports it */
        json_t *p = json_object_get(root, "prompt"), *c = json_object_get(root, "completion");
        int rc = 0;
        if (json_is_string(p) && json_is_string(c)) {
            rc = rt_buf_append(text, json_string_value(p), json_string_length(p));
            if (!rc) rc = rt_buf_append(text, json_string_value(c), json_string_length(c));
            if (!rc) rc = rt_buf_append(text, "\n", 1);
            used++;
        }
        json_decref(root);
        if (rc) {
            free(data);
            return -1;
        }
    }
    free(data);
    if (!used) return RT_FAIL("%s: no {\"prompt\", \"completion\"} lines to learn a tokenizer from", path);
    return 0;
}
