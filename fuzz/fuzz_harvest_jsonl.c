/*
 * fuzz_harvest_jsonl.c — a harvest JSONL file (what `retort harvest` writes and `retort sft`
 * and `retort eval` read: prompt, completion, top_logprobs / logprobs, answer, finish_reason)
 * through sft_load_jsonl with a student tokenizer, and through sft_collect_text. The first
 * byte picks the options (format, soft targets, skip-bad, prompts-only); the rest is the file.
 * Invariants: the loaded set's offsets are monotone and inside the token array, every token
 * and soft-target id is inside the vocabulary, soft targets point at loss-bearing tokens.
 */
#include "fuzz_common.h"

#include "distill/distill.h"

static void check_set(const sft_set *s, size_t V) {
    FZ_CHECK(s->off[0] == 0);
    for (size_t e = 0; e < s->n_ex; e++) {
        FZ_CHECK(s->off[e] <= s->off[e + 1]);
        FZ_CHECK(s->off[e] + s->n_prompt[e] <= s->off[e + 1]);
        FZ_CHECK(s->soft_off[e] <= s->soft_off[e + 1]);
        for (size_t i = s->soft_off[e]; i < s->soft_off[e + 1]; i++) {
            FZ_CHECK(s->soft_tok[i] >= s->n_prompt[e] && s->off[e] + s->soft_tok[i] < s->off[e + 1]);
        }
    }
    for (size_t i = 0; i < s->off[s->n_ex]; i++) FZ_CHECK(s->tokens[i] >= 0 && (size_t)s->tokens[i] < V);
    FZ_CHECK(s->soft_off[s->n_ex] == s->n_soft);
    for (size_t i = 0; i < s->n_soft; i++) FZ_CHECK(s->soft_k_off[i] <= s->soft_k_off[i + 1]);
    for (size_t i = 0; i < s->soft_k_off[s->n_soft]; i++) {
        FZ_CHECK(s->soft_ids[i] >= 0 && (size_t)s->soft_ids[i] < V);
        FZ_CHECK(!(s->soft_lps[i] > 0.0f) && s->soft_lps[i] == s->soft_lps[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    tokenizer *tok = fz_tokenizer();
    const char *path = fz_scratch(data + 1, size - 1, ".jsonl");
    sft_load_opts o;
    sft_load_defaults(&o);
    o.format = data[0] & 1 ? SFT_FORMAT_CHAT : SFT_FORMAT_RAW;
    o.soft = !(data[0] & 2);
    o.skip_bad = !!(data[0] & 4);
    o.prompts_only = !!(data[0] & 8);
    o.max_bad_report = 0;
    sft_set s;
    memset(&s, 0, sizeof s);
    if (sft_load_jsonl(&s, path, tok, &o) == 0) {
        check_set(&s, tokenizer_vocab_size(tok));
        sft_set_free(&s);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_buf text = {0};
    (void)sft_collect_text(path, &text);
    rt_buf_free(&text);
    rt_err_clear();
    return 0;
}
