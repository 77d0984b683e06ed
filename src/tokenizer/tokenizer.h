/*
 * tokenizer.h — byte-level BPE exactly as GPT-2 does it, so llama.cpp ("gpt2" model,
 * "gpt-2" pre-tokenizer) tokenizes any text to the same ids.
 *
 *  - bytes map to printable unicode code points with GPT-2's bytes_to_unicode table; token
 *    strings in the vocabulary (and in GGUF) are written in that mapped form;
 *  - text is first split with GPT-2's pre-tokenization pattern
 *      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *    (Unicode 15.1 letter / number / White_Space classes, the tables llama.cpp uses);
 *  - each piece is merged by rank with the learned merges;
 *  - special tokens (<|bos|>, <|eos|>, and chat tokens) are matched in the text only when
 *    the caller asks (parse_special), as llama.cpp does.
 * Encode/decode round-trip every byte string exactly, invalid UTF-8 included.
 *
 * Vocabulary layout produced by tokenizer_train: ids 0..255 are the 256 single bytes
 * (id b is byte b), then one id per merge in the order learned, then the special tokens.
 * Training never learns a merge whose result would duplicate an existing token (possible
 * when two different pairs spell the same bytes) or spell a special token's text; it takes
 * the next best pair instead, so every token string is unique, as llama.cpp requires.
 *
 * A tokenizer is immutable once built: encode/decode may run on several threads at once.
 *
 * Compatibility with llama.cpp: for valid UTF-8 the ids are llama.cpp's. Invalid UTF-8 is
 * split exactly as llama.cpp splits it (each bad byte is one U+FFFD unit), but llama.cpp then
 * replaces those bytes by U+FFFD's three bytes (and re-encodes overlong forms), so there its
 * ids differ; retort keeps the original bytes so that decode(encode(x)) == x always.
 *
 * Real models' tokenizers (tokenizer_hf.c, pretok_hf.c, normalize.c): a Hugging Face
 * tokenizer.json is loaded into the same object. Byte-level BPE (GPT-2, Llama 3, Qwen2/3,
 * DeepSeek-V3: their Split regexes, ignore_merges, NFC) and SentencePiece-style BPE (Llama 2,
 * Gemma: U+2581 for spaces, <0xNN> byte fallback) both encode to the ids of the Hugging Face
 * tokenizers / transformers.js for valid UTF-8 (tests/ref_tokenizer_hf.sh). For them, added
 * tokens (tokenizer.json's added_tokens) are cut out first: special ones (CONTROL) only with
 * parse_special, non-special ones (USER_DEFINED) always. Invalid UTF-8 bytes are kept (byte-level:
 * as their byte tokens; SentencePiece: as <0xNN>), so decode(encode(x)) == x for byte-level
 * tokenizers and for SentencePiece ones whose normalizer is undone by decoding (Llama 2: the
 * prepended U+2581 is stripped; text containing U+2581 itself comes back as spaces); Qwen's
 * NFC makes its round trip give NFC(x). Unicode classes and NFC come from Unicode 15.0
 * (Debian unicode-data); \s is White_Space (transformers.js's JavaScript \s differs at U+0085
 * and U+FEFF). The same vocabularies from GGUF metadata (tokenizer_from_gguf) tokenize as
 * llama.cpp does (no NFC for qwen2; llama.cpp's "control-looking" texts such as </s> are
 * CONTROL), and tokenizer_to_gguf writes them as llama.cpp's converter does (SentencePiece:
 * model "llama" with score = minus the rank of the merge that makes the token).
 * A merge repeated in a tokenizer.json keeps its first rank (tokenizer_merge_at still lists
 * the repeat). bos/eos may be -1 for HF tokenizers.
 *
 * Chat templates (chat.c): the prompt formats of retort's own models, ChatML (Qwen2/2.5),
 * Qwen3, Llama 3, DeepSeek-V3 / R1, Llama 2 and Gemma are rendered natively, the family
 * recognised from the model's Jinja template by its markers; see tokenizer_chat_* below.
 *
 * What this is not: a regex engine (unknown Split patterns are refused), WordPiece/Unigram,
 * or a Jinja interpreter (templates of other shapes are refused, by name).
 */
#ifndef RETORT_TOKENIZER_H
#define RETORT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../formats/gguf.h"

typedef struct tokenizer tokenizer;

/* Special tokens every retort vocabulary has, in this order at the end of the vocabulary.
 * The chat template (documented in docs/ and stored in the GGUF) uses the last four. */
#define TOKENIZER_N_SPECIAL 6
extern const char *const tokenizer_special_tokens[TOKENIZER_N_SPECIAL];
/* "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>" */

/* GGUF token types (llama.cpp's llama_token_type). Retort's own tokenizers use only NORMAL
 * and CONTROL; HF/SentencePiece ones also the others. */
enum {
    TOKENIZER_TYPE_NORMAL = 1,
    TOKENIZER_TYPE_UNKNOWN = 2,
    TOKENIZER_TYPE_CONTROL = 3,
    TOKENIZER_TYPE_USER_DEFINED = 4,
    TOKENIZER_TYPE_UNUSED = 5,
    TOKENIZER_TYPE_BYTE = 6,
};

/* Learn merges from text until the vocabulary has vocab_size entries (256 bytes + merges +
 * TOKENIZER_N_SPECIAL specials). vocab_size must be >= 256 + TOKENIZER_N_SPECIAL.
 * Deterministic: ties between equally frequent pairs are broken by the pair's token ids.
 * If the text runs out of pairs first, the vocabulary is smaller (a warning is logged). */
int tokenizer_train(tokenizer **out, const char *text, size_t len, size_t vocab_size);

/* Load from a GGUF (tokenizer.ggml.model must be "gpt2" and tokenizer.ggml.pre "gpt-2":
 * tokens, merges, token_type, bos/eos ids; padding optional). Every check is made: token
 * count and types (1 normal, 3 control; others are refused), normal tokens written in GPT-2's
 * byte characters, unique, all 256 single bytes present; each merge "A B" names two normal
 * tokens whose concatenation is one; ids in range. Control tokens are the specials (matched
 * with parse_special). Errors name the file and the key (and index) that is wrong. */
int tokenizer_from_gguf(tokenizer **out, const gguf_ctx *ctx);
/* Load a Hugging Face tokenizer: path is a tokenizer.json, or a folder holding one; a
 * tokenizer_config.json next to it (optional) gives bos/eos/pad and add_bos_token. Only
 * BPE models with the normalizers and pre-tokenizers listed in tokenizer_hf.c are accepted;
 * anything else is refused with a message naming the file and the JSON field. */
int tokenizer_from_hf(tokenizer **out, const char *path);
/* The same from memory (config may be NULL; name is used in messages). */
int tokenizer_from_hf_json(tokenizer **out, const char *json, size_t len, const char *config,
                           size_t config_len, const char *name);
/* Whatever path names: a GGUF file (by its magic, so checkpoints M.gguf.ckpt count), a
 * tokenizer.json, or an HF folder -- the one "open a file -> tokenizer" every command uses.
 * Errors name the file: "<path>: no usable tokenizer: <why>". */
int tokenizer_load(tokenizer **out, const char *path);
/* What the model asks: add BOS / EOS around a sequence (callers do it; encode never). From
 * tokenizer_config.json add_bos_token/add_eos_token, else the post-processor template; GGUF:
 * tokenizer.ggml.add_bos_token/add_eos_token (false for retort's own tokenizers). */
int tokenizer_add_bos(const tokenizer *tok);
int tokenizer_add_eos(const tokenizer *tok);
/* The pre-tokenizer's llama.cpp name ("gpt-2", "llama-bpe", "qwen2", "deepseek-v3"; "" for
 * SentencePiece-style ones). Valid for the tokenizer's lifetime. */
const char *tokenizer_pre_name(const tokenizer *tok);
/* The unknown token, or -1. */
int32_t tokenizer_unk(const tokenizer *tok);

/* Write DIR/tokenizer.json and DIR/tokenizer_config.json (with chat_template when not NULL)
 * that Hugging Face tokenizers / transformers.js load to the same ids (tokenizer_hf_write.c).
 * DIR must exist; files are replaced atomically. */
int tokenizer_to_hf(const tokenizer *tok, const char *dir, const char *chat_template);
/* Store as tokenizer.ggml.* keys (model "gpt2", pre "gpt-2", tokens, token_type, merges,
 * bos/eos/padding ids, add_bos_token=false). */
int tokenizer_to_gguf(const tokenizer *tok, gguf_writer *w);

/* Pad the vocabulary to n_vocab tokens (>= its size) as llama.cpp's converter pads a
 * Hugging Face vocabulary to the model's vocab_size (config.json's, often larger: Qwen2
 * 151936 for 151665 tokens): token id i gets the text "[PAD<i>]" and type UNUSED (score
 * -1000 where the tokenizer has scores). Encoding never produces them; decode gives their
 * text. Modifies tok in place: call it before the tokenizer is shared. On failure tok is
 * unchanged. */
int tokenizer_pad_vocab(tokenizer *tok, size_t n_vocab);

void tokenizer_free(tokenizer *tok);

size_t tokenizer_vocab_size(const tokenizer *tok);
/* bos/eos: always set for retort's own tokenizers; -1 for an HF tokenizer without one. */
int32_t tokenizer_bos(const tokenizer *tok);
int32_t tokenizer_eos(const tokenizer *tok);
/* Padding id (tokenizer_train sets it to the eos id), or -1 if the vocabulary has none. */
int32_t tokenizer_pad(const tokenizer *tok);
/* TOKENIZER_TYPE_* of a token, -1 for an invalid id. */
int tokenizer_token_type(const tokenizer *tok, int32_t id);
/* Merges, by rank (0 = applied first): the ids of the two parts and of the token made. */
size_t tokenizer_n_merges(const tokenizer *tok);
int tokenizer_merge_at(const tokenizer *tok, size_t rank, int32_t *left, int32_t *right,
                       int32_t *result);
/* Id of a special token by its text ("<|user|>"), or -1. */
int32_t tokenizer_special_id(const tokenizer *tok, const char *text);
int tokenizer_is_special(const tokenizer *tok, int32_t id);

/* Encode len bytes of text. parse_special: recognise special-token strings in the text
 * (leftmost first, the longest at a position) and emit their ids; the text between them is
 * encoded piece by piece on its own, as llama.cpp does. Without it, special-token strings
 * are ordinary text. *ids is malloc'ed (caller frees; non-NULL even when *n is 0), *n its
 * length. No BOS is added. */
int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, int parse_special,
                     int32_t **ids, size_t *n);
/* The same with special-token parsing decided byte by byte: a special token is matched only
 * where it lies wholly inside a run of bytes whose special_ok[i] is nonzero (the chat
 * template's own text), never in the rest (the messages). Sections between the matches are
 * encoded as tokenizer_encode encodes them, so when the messages hold no special-token text
 * the ids equal tokenizer_encode(parse_special=1) of the whole text. */
int tokenizer_encode_masked(const tokenizer *tok, const char *text, size_t len, const uint8_t *special_ok,
                            int32_t **ids, size_t *n);
/* Decode ids to the exact bytes (specials decode to their text). *out malloc'ed,
 * NUL-terminated, *len bytes. Fails on an id outside the vocabulary. */
int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, char **out, size_t *len);
/* The raw bytes of one token (for streaming): returns a pointer valid for the tokenizer's
 * lifetime, and *len. NULL for an invalid id. */
const char *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len);

/* GPT-2 pre-tokenization alone (no special tokens): the pieces BPE never merges across.
 * *ends (malloc'ed, caller frees) gets the end offset of each piece, *n their number; the
 * pieces cover text[0..len) in order. */
int tokenizer_pretokenize(const char *text, size_t len, size_t **ends, size_t *n);

/* ---------------------------------------------------------------- chat templates (chat.c) */

/* The prompt formats retort renders. Each reproduces the Jinja template its models ship
 * (tests/ref_chat_template.sh checks the text and the ids against transformers.js running the
 * real template) for system/user/assistant messages with string contents; tools, images and
 * tool calls are not rendered. */
typedef enum {
    CHAT_RETORT = 0, /* <|system|>/<|user|>/<|assistant|> content <|end|> (model_default_chat_template) */
    CHAT_CHATML,     /* <|im_start|>role\n content <|im_end|>\n (Qwen2/2.5; optional default system) */
    CHAT_QWEN3,      /* ChatML + Qwen3's <think> rules for assistant turns after the last user turn */
    CHAT_LLAMA3,     /* <|start_header_id|>role<|end_header_id|>\n\n trim(content) <|eot_id|> */
    CHAT_DEEPSEEK_V3, /* bos, system prompts joined by \n\n, <｜User｜>…<｜Assistant｜>…<｜end▁of▁sentence｜> */
    CHAT_DEEPSEEK_R1, /* the same, the last system prompt, reasoning cut from assistant turns, <think>\n */
    CHAT_LLAMA2,     /* <s>[INST] <<SYS>>…<</SYS>> user [/INST] assistant </s> */
    CHAT_GEMMA,      /* <bos><start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n */
    CHAT_N_FAMILIES
} tokenizer_chat_family;

typedef struct {
    tokenizer_chat_family family;
    int gen_always;            /* the template adds the generation prompt unconditionally (Llama 3 base) */
    int no_system;             /* the template refuses a system message (Gemma 2) */
    char default_system[1024]; /* ChatML: system prompt used when the first message is not one */
} tokenizer_chat;

typedef struct {
    const char *role; /* "system" ("developer" is taken as "system"), "user" or "assistant" */
    const char *content;
    size_t len;
} tokenizer_chat_message;

/* Choose the format: name (one of tokenizer_chat_names, e.g. "chatml", "llama3"; a user's
 * --chat-template) wins; else the family is recognised from the Jinja template text by its
 * markers (<|im_start|>, <|start_header_id|>, <｜User｜>, [INST] with <<SYS>>, <start_of_turn>,
 * retort's <|user|>). No template and no name, or a template that matches no family (or a
 * known variant retort does not render, such as Llama 3.1's dated system header), fails with a
 * message that says to pick one with --chat-template. No template with a tokenizer (may be
 * NULL) that has retort's <|user|> <|assistant|> <|end|> is retort's format. */
int tokenizer_chat_detect(tokenizer_chat *c, const tokenizer *tok, const char *tmpl, const char *name);
/* "retort chatml qwen3 llama3 deepseek-v3 deepseek-r1 llama2 gemma" (for help texts). */
extern const char tokenizer_chat_names[];
const char *tokenizer_chat_family_name(tokenizer_chat_family f);

/* Render messages: *text gets the prompt as the Jinja template renders it (special tokens
 * as their text, the bos token where the template puts one), *mask one byte per text byte, 1
 * where the template wrote it (may be NULL). add_generation_prompt: end with the assistant's
 * header. Errors as the template raises them (roles that must alternate, a system message
 * where none is allowed), naming messages[i]. */
int tokenizer_chat_render(const tokenizer_chat *c, const tokenizer *tok, const tokenizer_chat_message *msgs,
                          size_t n, int add_generation_prompt, rt_buf *text, rt_buf *mask);
/* Render and encode: special tokens are parsed only in the template's text, never in the
 * messages (a user cannot forge a turn); otherwise the ids of encoding the rendered text with
 * special-token parsing, as transformers' apply_chat_template(tokenize=True) does. The
 * template's bos is in the ids; callers add none. */
int tokenizer_chat_encode(const tokenizer_chat *c, const tokenizer *tok, const tokenizer_chat_message *msgs,
                          size_t n, int add_generation_prompt, int32_t **ids, size_t *n_ids);
/* The token that ends an assistant turn (<|end|>, <|im_end|>, <|eot_id|>,
 * <｜end▁of▁sentence｜>, the eos of Llama 2, <end_of_turn>), or -1 when the vocabulary lacks it. */
int32_t tokenizer_chat_end_token(const tokenizer_chat *c, const tokenizer *tok);

/* The Jinja chat template stored with a tokenizer: path is a GGUF (tokenizer.chat_template),
 * a folder or a tokenizer.json (the tokenizer_config.json beside it: "chat_template", a string
 * or the "default" entry of a list of {name, template}). *out malloc'ed, NULL when there is
 * none; a malformed config fails naming the file. */
int tokenizer_chat_template_load(const char *path, char **out);

#endif /* RETORT_TOKENIZER_H */
