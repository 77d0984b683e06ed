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
 * record is text and bytes. Whole files only in files.c: pooling harvests, and the harvest-format
 * files derived from a plain-text corpus.
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

/* ---------------------------------------------------------------- whole files (files.c) */

/* Concatenate harvest files into one JSONL at out (atomically; a file not ending in a newline
 * gets one); *lines = the lines written. */
int record_pool_files(const char *const *paths, size_t n, const char *out, size_t *lines);

/* A plain-text corpus as its non-empty lines (leading spaces cut, lines under 24 bytes
 * skipped); at least 100 lines or an error naming the file. */
typedef struct {
    char *data;  /* the file, lines NUL-terminated in place */
    char **line; /* (n) */
    size_t n;
} record_corpus;
int record_corpus_load(const char *path, record_corpus *c);
void record_corpus_free(record_corpus *c);

/* How the harvesters ask for a continuation; the derived prompts use the same words. */
#define RECORD_CONTINUE_PROMPT "Continue this passage in the same style.\n\n"
/* n records {prompt: RECORD_CONTINUE_PROMPT + line k, completion: line k+1} at seeded places
 * spread over the corpus: text no server watermarked (the clean control's data). */
int record_corpus_continuations(const record_corpus *c, size_t n, uint64_t seed, const char *out);
/* n prompt-only records: RECORD_CONTINUE_PROMPT + the first ≤ 60 bytes (cut at a word) of
 * lines spread by a fixed stride (radioactivity's closed-mode prompts). */
int record_corpus_prompts(const record_corpus *c, size_t n, const char *out);
/* The corpus's last n lines as plain text (human text for open-mode reading). */
int record_corpus_tail(const record_corpus *c, size_t n, const char *out);
/* Whole lines from inside the k-th chunk (1-based) of `chunk` bytes, `margin` bytes in from
 * each end: with chunk 32 KiB and k 20, text that train/eval's validation split (every 20th
 * chunk, each ending at a newline near its end) holds out whatever the exact cut. */
int record_heldout_lines(const char *corpus, size_t chunk, size_t k, size_t margin, const char *out);

#endif /* RETORT_RECORD_H */
