/*
 * test_record.c — the harvest record (src/record): every read form gives the same positions
 * (checked field by field against the values written into the lines here), the written form
 * reads back to what was written, bad lines are refused naming the field, and sft loads
 * OpenAI's {"messages": [...]} form to exactly the tokens of the same pair as
 * {"prompt", "completion"} (issue 17 item 23).
 */
#include <stdlib.h>
#include <string.h>

#include "distill/distill.h"
#include "record/record.h"
#include "testlib.h"

static int parse(record *r, const char *line, unsigned flags) { return record_parse(r, line, strlen(line), flags); }

static int tok_is(const record_token *t, const char *bytes, double lp) {
    return t->len == strlen(bytes) && !memcmp(t->bytes, bytes, t->len) && fabs(t->logprob - lp) < 1e-12;
}

/* the three log-prob forms of the same two positions */
static void test_read_forms(void) {
    const char *written =
        "{\"prompt\":\"Hi\",\"completion\":\"ab\",\"finish_reason\":\"stop\",\"answer\":7,\"logprobs\":{\"content\":["
        "{\"token\":\"a\",\"logprob\":-0.5,\"bytes\":[97],\"top_logprobs\":[{\"token\":\"a\",\"logprob\":-0.5,\"bytes\":[97]},"
        "{\"token\":\"c\",\"logprob\":-2,\"bytes\":[99]}]},"
        "{\"token\":\"b\",\"logprob\":-1.5,\"bytes\":[98],\"top_logprobs\":[{\"token\":\"x\",\"logprob\":-1,\"bytes\":[120]}]}]}}";
    const char *legacy =
        "{\"prompt\":\"Hi\",\"completion\":\"ab\",\"logprobs\":{\"tokens\":[\"a\",\"b\"],\"token_logprobs\":[-0.5,-1.5],"
        "\"top_logprobs\":[{\"a\":-0.5,\"c\":-2},{\"x\":-1}]}}";
    const char *flat =
        "{\"prompt\":\"Hi\",\"completion\":\"ab\",\"logprobs\":[-0.5,-1.5],\"top_logprobs\":[[{\"token\":\"a\",\"logprob\":-0.5},"
        "{\"token\":\"c\",\"logprob\":-2,\"bytes\":[99]}],[{\"token\":\"x\",\"logprob\":-1}]]}";
    const char *lines[3] = {written, legacy, flat};
    for (int f = 0; f < 3; f++) {
        record r;
        CHECK_OK(parse(&r, lines[f], 0));
        CHECK(r.prompt_len == 2 && !strcmp(r.prompt, "Hi") && r.completion_len == 2 && !strcmp(r.completion, "ab"));
        CHECK(r.n_pos == 2);
        if (r.n_pos == 2) {
            CHECK(r.pos[0].has_logprob && r.pos[1].has_logprob);
            CHECK(fabs(r.pos[0].token.logprob + 0.5) < 1e-12 && fabs(r.pos[1].token.logprob + 1.5) < 1e-12);
            CHECK(r.pos[0].has_token == (f < 2) && r.pos[1].has_token == (f < 2));
            if (f < 2) CHECK(tok_is(&r.pos[0].token, "a", -0.5) && tok_is(&r.pos[1].token, "b", -1.5));
            CHECK(r.pos[0].n_top == 2 && r.pos[1].n_top == 1);
            if (r.pos[0].n_top == 2)
                CHECK(tok_is(&r.pos[0].top[0], "a", -0.5) && tok_is(&r.pos[0].top[1], "c", -2));
            if (r.pos[1].n_top == 1) CHECK(tok_is(&r.pos[1].top[0], "x", -1));
        }
        if (f == 0) CHECK(r.answer && !strcmp(r.answer, "7") && r.finish_reason && !strcmp(r.finish_reason, "stop"));
        /* written form round trip */
        json_t *j = record_to_json(&r);
        rt_buf b = {0};
        CHECK(j && record_append_line(&b, j) == 0);
        json_decref(j);
        record r2;
        CHECK_OK(record_parse(&r2, b.data, b.len - 1, 0));
        CHECK(r2.n_pos == r.n_pos && r2.prompt_len == r.prompt_len && !memcmp(r2.completion, r.completion, r.completion_len));
        for (size_t i = 0; i < r2.n_pos && i < r.n_pos; i++) {
            CHECK(r2.pos[i].n_top == r.pos[i].n_top && r2.pos[i].has_token == r.pos[i].has_token);
            CHECK(fabs(r2.pos[i].token.logprob - r.pos[i].token.logprob) < 1e-8);
            for (size_t k = 0; k < r2.pos[i].n_top && k < r.pos[i].n_top; k++)
                CHECK(r2.pos[i].top[k].len == r.pos[i].top[k].len &&
                      !memcmp(r2.pos[i].top[k].bytes, r.pos[i].top[k].bytes, r.pos[i].top[k].len));
        }
        record_free(&r2);
        rt_buf_free(&b);
        record_free(&r);
    }
    /* bytes win over the token string; invalid UTF-8 is written as U+FFFD but bytes stay exact */
    record r;
    CHECK_OK(parse(&r, "{\"prompt\":\"p\",\"completion\":\"\\u00e9\",\"logprobs\":{\"content\":[{\"token\":\"?\",\"logprob\":-1,"
                       "\"bytes\":[195,169],\"top_logprobs\":[]}]}}", 0));
    CHECK(r.n_pos == 1 && r.pos[0].token.len == 2 && r.pos[0].token.bytes[0] == 0xC3);
    record_free(&r);
    json_t *s = record_json_text("a\xff" "b\xC3\xA9", 5);
    CHECK(s && !strcmp(json_string_value(s), "a\xEF\xBF\xBD" "b\xC3\xA9"));
    json_decref(s);
}

static void test_messages(void) {
    record r;
    CHECK_OK(parse(&r, "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
                       "{\"role\":\"assistant\",\"content\":\"Hello.\"}]}", 0));
    CHECK(!strcmp(r.prompt, "Hi") && !strcmp(r.completion, "Hello.") && r.system && !strcmp(r.system, "Be brief."));
    record_free(&r);
    CHECK_OK(parse(&r, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Yo\"}]}", 0));
    CHECK(!r.system && !strcmp(r.completion, "Yo"));
    record_free(&r);
    /* refused, naming what is wrong */
    const struct {
        const char *line, *want;
    } bad[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
         "{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"}]}", "4 messages"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", "no \"assistant\""},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"}]}", "expected \"user\""},
        {"{\"messages\":[{\"role\":\"user\",\"content\":3},{\"role\":\"assistant\",\"content\":\"b\"}]}", "messages[0].content"},
        {"{\"messages\":\"hi\"}", "\"messages\" must be a list"},
        {"{\"prompt\":\"a\"}", "\"completion\""},
        {"[1]", "JSON object"},
        {"{\"prompt\":\"a\",\"completion\":\"b\",\"top_logprobs\":[[{\"token\":\"a\",\"logprob\":1}]]}", "log-probs are <= 0"},
        {"{\"prompt\":\"a\",\"completion\":\"b\",\"top_logprobs\":[[{\"token\":\"a\",\"logprob\":-1,\"bytes\":[300]}]]}",
         "top_logprobs[0][0].bytes[0]"},
        {"{\"prompt\":\"a\",\"completion\":\"b\",\"logprobs\":{\"content\":[{\"token\":\"a\"}]}}", "logprobs.content[0].logprob"},
        {"{\"prompt\":\"a\",\"completion\":\"b\",\"answer\":1.5}", "\"answer\""},
    };
    for (size_t i = 0; i < RT_ARRAY_LEN(bad); i++) {
        int rc = parse(&r, bad[i].line, 0);
        CHECK_MSG(rc == -1 && strstr(rt_errmsg(), bad[i].want), "line %zu: rc %d, \"%s\"", i, rc, rt_errmsg());
        record_free(&r);
    }
    CHECK_OK(parse(&r, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", RECORD_PROMPT_ONLY));
    CHECK(!r.completion);
    record_free(&r);
}

/* sft: the messages form loads to the tokens of the same prompt/completion pair */
static void test_sft_messages(void) {
    const char *text = "Hello there. How are you today? I am well, thank you. ";
    rt_buf b = {0};
    for (int i = 0; i < 20; i++) rt_buf_append(&b, text, strlen(text));
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_train(&tok, b.data, b.len, 300));
    rt_buf_free(&b);
    if (!tok) return;
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/pc.jsonl", tl_tmpdir());
    snprintf(p2, sizeof p2, "%s/msg.jsonl", tl_tmpdir());
    FILE *f = fopen(p1, "w");
    fputs("{\"prompt\":\"How are you?\",\"completion\":\" I am well.\"}\n{\"prompt\":\"Hello\",\"completion\":\" there\"}\n", f);
    fclose(f);
    f = fopen(p2, "w");
    fputs("{\"messages\":[{\"role\":\"user\",\"content\":\"How are you?\"},{\"role\":\"assistant\",\"content\":\" I am well.\"}]}\n"
          "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"},{\"role\":\"assistant\",\"content\":\" there\"}]}\n",
          f);
    fclose(f);
    for (int fmt = 0; fmt < 2; fmt++) {
        sft_load_opts lo;
        sft_load_defaults(&lo);
        lo.format = fmt ? SFT_FORMAT_CHAT : SFT_FORMAT_RAW;
        sft_set a, m;
        int ra = sft_load_jsonl(&a, p1, tok, &lo), rm = sft_load_jsonl(&m, p2, tok, &lo);
        CHECK_MSG(ra == 0 && rm == 0, "format %d: %s", fmt, rt_errmsg());
        if (ra == 0 && rm == 0) {
            CHECK(a.n_ex == 2 && m.n_ex == 2 && a.off[2] == m.off[2] && a.hash == m.hash);
            CHECK(!memcmp(a.tokens, m.tokens, a.off[2] * sizeof(int32_t)));
            CHECK(a.n_prompt[0] == m.n_prompt[0] && a.n_prompt[1] == m.n_prompt[1]);
        }
        if (ra == 0) sft_set_free(&a);
        if (rm == 0) sft_set_free(&m);
    }
    /* a system message goes before the prompt (raw: on its own line) */
    f = fopen(p2, "w");
    fputs("{\"messages\":[{\"role\":\"system\",\"content\":\"Hi\"},{\"role\":\"user\",\"content\":\"Hello\"},"
          "{\"role\":\"assistant\",\"content\":\" there\"}]}\n",
          f);
    fclose(f);
    sft_load_opts lo;
    sft_load_defaults(&lo);
    sft_set m;
    CHECK_OK(sft_load_jsonl(&m, p2, tok, &lo));
    if (m.n_ex == 1) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(tokenizer_encode(tok, "Hi\nHello", 8, 0, &ids, &n));
        /* encoded in pieces, so compare the bytes the prompt tokens spell */
        rt_buf got = {0};
        for (size_t i = 0; i < m.n_prompt[0]; i++) {
            size_t l;
            const char *t = tokenizer_token_bytes(tok, m.tokens[i], &l);
            rt_buf_append(&got, t, l);
        }
        CHECK(got.len == 8 && !memcmp(got.data, "Hi\nHello", 8));
        rt_buf_free(&got);
        free(ids);
        sft_set_free(&m);
    }
    tokenizer_free(tok);
}

TEST_MAIN("record", TEST_CASE(test_read_forms), TEST_CASE(test_messages), TEST_CASE(test_sft_messages))
