/*
 * cmd_harvest.c — `retort harvest`: drain an OpenAI-compatible endpoint into JSONL for
 * `retort sft` (src/client/harvest.c does the work).
 * Exit status: 0 done, 1 local error, 3 stopped by the server (401/403, or a 429 asking to
 * wait more than 5 minutes), 4 finished with some prompts failed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../client/client.h"
#include "cli.h"

int cmd_harvest(int argc, char **argv) {
    harvest_options o;
    harvest_options_defaults(&o);
    cli_opt opts[] = {
        {"--endpoint", CLI_STR, &o.endpoint, "URL: base URL of the API, e.g. http://127.0.0.1:8080", 1, 0},
        {"--api-key", CLI_STR, &o.api_key, "KEY: bearer key (or $RETORT_API_KEY / $OPENAI_API_KEY)", 0, 0},
        {"--prompts", CLI_STR, &o.prompts_path, "FILE: one prompt per line, or JSONL with \"prompt\"", 1, 0},
        {"--out", CLI_STR, &o.out_path, "FILE: JSONL output, appended; prompts already there are skipped", 1, 0},
        {"--model", CLI_STR, &o.model, "NAME: model id (default: the first of GET /v1/models)", 0, 0},
        {"--chat", CLI_FLAG, &o.chat, "use /v1/chat/completions with the prompt as the user message", 0, 0},
        {"--concurrency", CLI_SIZE, &o.concurrency, "N: requests in flight (default 4)", 0, 0},
        {"--max-tokens", CLI_SIZE, &o.max_tokens, "N: tokens per completion (default 128)", 0, 0},
        {"--top-logprobs", CLI_SIZE, &o.top_logprobs, "K: also record chosen + K alternative log-probs (<= 20)", 0, 0},
        {"--temperature", CLI_DOUBLE, &o.temperature, "X: sampling temperature (default 1)", 0, 0},
        {"--seed", CLI_I64, &o.seed, "N: send each request the seed N + a hash of its prompt (default: none)", 0, 0},
        {"--rate", CLI_DOUBLE, &o.rate, "R: at most R requests per second overall (default: no limit)", 0, 0},
        {"--retries", CLI_SIZE, &o.max_retries, "N: retries per prompt on 5xx / network errors (default 8)", 0, 0},
        {"--limit", CLI_SIZE, &o.limit, "N: harvest at most N new prompts this run (default: all)", 0, 0},
        {"--quiet", CLI_FLAG, &o.quiet, "no progress bar", 0, 0},
    };
    cli_cmd_info info = {
        "harvest",
        "retort harvest --endpoint URL --api-key KEY --prompts FILE --out harvest.jsonl [--chat --concurrency N "
        "--max-tokens N --top-logprobs K --rate R]",
        "Sends each prompt to an OpenAI-compatible API and appends {\"prompt\", \"completion\", ...} lines\n"
        "(with the API's \"logprobs\" object, chosen token and alternatives per token, when\n"
        "--top-logprobs is given) for `retort sft`.\n"
        "Resumable: rerun the same command to continue. Honours 429 Retry-After; stops on 401/403\n"
        "and writes why (and every failed prompt) to OUT.errors.jsonl."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!o.api_key) o.api_key = getenv("RETORT_API_KEY");
    if (!o.api_key) o.api_key = getenv("OPENAI_API_KEY");
    if (!o.api_key) {
        fprintf(stderr, "retort harvest: error: no API key (--api-key, or $RETORT_API_KEY)\n");
        return 2;
    }
    harvest_stats st;
    if (harvest_run(&o, &st)) return cli_fail("harvest");
    char tok[32], dur[32];
    rt_fmt_si(tok, sizeof tok, (double)(st.prompt_tokens + st.completion_tokens));
    rt_fmt_duration(dur, sizeof dur, st.seconds);
    fprintf(stderr,
            "harvest: %zu prompts, %zu already done, %zu written, %zu failed, %zu retries, %s tokens "
            "(%llu completion) in %s\n",
            st.prompts_total, st.skipped, st.written, st.failed, st.retries, tok,
            (unsigned long long)st.completion_tokens, dur);
    if (st.stopped) {
        fprintf(stderr, "retort harvest: stopped by the server: %s (recorded in %s.errors.jsonl)\n", st.stop_reason,
                o.out_path);
        return 3;
    }
    if (st.failed) {
        fprintf(stderr, "retort harvest: %zu prompts failed (see %s.errors.jsonl); rerun to retry them\n", st.failed,
                o.out_path);
        return 4;
    }
    return 0;
}
