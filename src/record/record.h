/*
 * record.h — the harvest record: one JSON object a line pairing a prompt with a completion,
 * the one format every producer writes (`retort harvest`, the simulator's harvesters,
 * `retort data generate`, the demo, the watermark tools) and `sft` / `eval` read.
 *
 * Written form (record_to_json, record_from_response):
 *   {"prompt": str, "completion": str, "id"?, "model"?, "finish_reason"?, "usage"?, "answer"?,
 *    "logprobs"?: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token",
 *                  "logprob", "bytes"}, ...]}, ...]}}
 * "logprobs" is the OpenAI API's own choices[0].logprobs object (chat form): per completion
 * token the CHOSEN token (its exact bytes) with its log-prob and the top alternatives. The
 * chosen token is what lets a reader find the teacher's token boundaries in the completion
 * even where the sampled token is not among the alternatives.
 *
 * Read forms (record_parse), so older files and other tools' files load too:
 *   - the written form above;
 *   - OpenAI's legacy completions object "logprobs": {"tokens", "token_logprobs",
 *     "top_logprobs": [{token: logprob}]} (bytes from the token strings);
 *   - the flattened form earlier harvests wrote: "logprobs": [numbers] (chosen log-probs,
 *     no chosen token) beside "top_logprobs": [[{"token","logprob","bytes"}]];
 *   - OpenAI's chat fine-tuning / TRL conversational form {"messages": [{"role", "content"}]}:
 *     an optional leading "system" message, then one "user" message and the "assistant"
 *     reply (the completion). Longer conversations are refused with a clear error.
 * "answer" may be a string or an integer (kept as decimal text). Unknown keys are ignored.
 *
 * Errors (RT_FAIL) name the field and what was expected ("top_logprobs[3][1].bytes must be
 * a list of integers 0..255"); the caller adds the file and line.
 *
 * Not a file reader (callers walk lines; sft_data.c, mark_io.c) and not a tokenizer: the
 * record is text and bytes.
 */
#ifndef RETORT_RECORD_H
#define RETORT_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

#define RECORD_TOKEN_MAX 256 /* bytes of one token */

typedef struct {
    uint8_t bytes[RECORD_TOKEN_MAX]; /* the token's exact bytes */
    size_t len;
    double logprob;
} record_token;

/* One completion position of the teacher. */
typedef struct {
    int has_token;        /* token.bytes is the chosen token (written / legacy forms) */
    int has_logprob;      /* token.logprob is the chosen token's log-prob */
    record_token token;
    record_token *top;    /* (n_top) the alternatives as listed; owned */
    size_t n_top;
} record_pos;

typedef struct {
    char *prompt;         /* NUL-terminated; owned */
    size_t prompt_len;
    char *system;         /* messages form: the system message, else NULL */
    size_t system_len;
    char *completion;     /* NULL when absent (RECORD_PROMPT_ONLY) */
    size_t completion_len;
    char *answer;         /* NULL when absent */
    char *finish_reason;  /* NULL when absent */
    record_pos *pos;      /* (n_pos) teacher log-probs; n_pos = 0 when none */
    size_t n_pos;
} record;

enum {
    RECORD_PROMPT_ONLY = 1, /* "completion" may be missing (a prompts file) */
    RECORD_NO_LOGPROBS = 2, /* skip the log-prob fields (faster; not validated) */
};

/* Parse one line into r (zeroed first; free with record_free even on failure). */
int record_parse(record *r, const char *line, size_t len, unsigned flags);
void record_free(record *r);

/* A JSON string of arbitrary bytes: valid UTF-8 as is, other bytes as U+FFFD. NULL: no memory. */
json_t *record_json_text(const char *b, size_t n);
/* {"token", "logprob", "bytes"} of one token. */
json_t *record_token_json(const uint8_t *bytes, size_t len, double logprob);
/* The written form of r (prompt, completion, finish_reason, answer, logprobs); positions
 * without a chosen token are written in the flattened form they can only have come from. */
json_t *record_to_json(const record *r);
/* The record of an OpenAI-style response (chat: choices[0].message.content, else
 * choices[0].text) to prompt: id, model, finish_reason, usage, and with want_logprobs the
 * API's choices[0].logprobs as {"content": [...]} (the legacy form converted). NULL with err
 * filled when the response is not a usable answer. */
json_t *record_from_response(const char *prompt, size_t plen, json_t *resp, int chat, int want_logprobs, char *err,
                             size_t err_cap);
/* Append the compact JSON of line and a newline to b (real numbers with 9 significant digits). */
int record_append_line(rt_buf *b, const json_t *line);

#endif /* RETORT_RECORD_H */
