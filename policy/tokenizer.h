// Tokenizer: Hugging Face `tokenizer.json` (BPE, byte-level or character-level) in C, giving the same ids
// as the checkpoint's own tokenizer (DeepSeek-V3, Qwen3, GPT-2 style, Llama style).
//
// Pipeline of tokenizer_encode, as in Hugging Face tokenizers:
//   1. added tokens: split the text on the added tokens (leftmost-longest; lstrip/rstrip swallow the
//      neighbouring whitespace; single_word only matches between non-word characters). Tokens with
//      "normalized": false are matched on the raw text, the others on the normalised text of each gap.
//   2. normaliser: NFC, NFD, NFKC, NFKD (utf8proc), Lowercase, Replace, Prepend, Strip, Sequence.
//   3. pre-tokeniser: Split (Regex or String pattern, every `behavior`, `invert`), ByteLevel
//      (add_prefix_space, use_regex: the GPT-2 pattern), Digits, Metaspace, Sequence. Regexes run on PCRE2
//      (JIT) with Unicode properties; `\s` follows PCRE2/Oniguruma (U+0085 and U+FEFF differ from JS).
//   4. BPE model on each piece: merges applied by rank with a heap (ties: leftmost first), byte_fallback
//      (<0xXX> tokens), unk_token, ignore_merges; a cache maps each piece to its ids.
//   5. post-processor when asked (TOK_ADD_SPECIAL): TemplateProcessing (single-sequence template),
//      ByteLevel (no ids), Sequence; or, when tokenizer_config.json sets add_bos_token / add_eos_token
//      (transformers' Llama rule, e.g. DeepSeek-V3), [bos] text [eos] as those flags say.
// Text is bytes: input that is not valid UTF-8 is never rejected; its invalid bytes match no pattern and
// are encoded one byte at a time (byte-level BPE), so decode(encode(x)) == x for every byte string x.
//
// Not thread-safe: encode uses a per-tokenizer word cache and regex scratch. Use one Tokenizer per thread.
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef struct Tokenizer Tokenizer;

// A growable id list. Zero-initialise; functions append; free with tok_ids_free.
typedef struct {
    int *ids;   // (n,)
    int n, cap;
} TokIds;
// A growable byte string, always NUL-terminated (the text may itself contain NUL bytes: use n).
typedef struct {
    char *s;    // (n + 1,)
    size_t n, cap;
} TokText;
int tok_ids_push(TokIds *v, int id);
void tok_ids_free(TokIds *v);
void tok_text_free(TokText *t);
int tok_text_append(TokText *t, const char *s, size_t n);

// Loads PATH: a tokenizer.json, or a model directory holding tokenizer.json. A tokenizer_config.json
// beside it (optional) gives bos_token / eos_token / pad_token and add_bos_token / add_eos_token.
// Returns NULL with an error naming the file and the JSON path (`tokenizer.json: model.merges[12]: ...`).
Tokenizer *tokenizer_load(const char *path);
// The same from memory; config_json may be NULL. `name` prefixes error messages.
Tokenizer *tokenizer_load_json(const char *json, const char *config_json, const char *name);
void tokenizer_free(Tokenizer *t);

// One more than the largest id (model vocab and added tokens).
int tokenizer_vocab_size(const Tokenizer *t);
// The id of a token string, model vocab or added token (e.g. "<think>"), or -1.
int tokenizer_token_to_id(const Tokenizer *t, const char *token);
// The token's string as stored in tokenizer.json (byte-level form for BPE tokens), or NULL.
const char *tokenizer_id_to_token(const Tokenizer *t, int id);
// Whether the id is an added token marked "special" (skipped by TOK_SKIP_SPECIAL).
bool tokenizer_is_special(const Tokenizer *t, int id);
// Begin/end of sequence and padding ids, or -1 when the tokenizer has none. Taken from
// tokenizer_config.json; failing that bos is the first special token of the TemplateProcessing
// template, and eos/pad are looked up among well-known added tokens (<｜end▁of▁sentence｜>, <|im_end|>,
// <|endoftext|>, </s>, <eos> / <｜▁pad▁｜>, <pad>, <|endoftext|>).
int tokenizer_bos_id(const Tokenizer *t);
int tokenizer_eos_id(const Tokenizer *t);
int tokenizer_pad_id(const Tokenizer *t);

enum {
    TOK_ADD_SPECIAL = 1,    // encode: the post-processor's tokens (bos ...), as HF add_special_tokens=True
    TOK_PARSE_SPECIAL = 2,  // encode: special added tokens written in the text become their ids; without
                            // it they are encoded as plain text (non-special added tokens always match)
    TOK_ENCODE_DEFAULT = TOK_ADD_SPECIAL | TOK_PARSE_SPECIAL,
    TOK_SKIP_SPECIAL = 4,   // decode: leave out special tokens
};

// Appends the ids of text[0..len) to out. Returns 0 or -1 (out of memory, regex engine failure).
int tokenizer_encode(TokIds *out, Tokenizer *t, const char *text, size_t len, int flags);
// Appends the bytes of ids to out (flags: TOK_SKIP_SPECIAL). An id outside the vocabulary is an error.
// The bytes are exactly what was encoded; where HF would print U+FFFD for bytes that are not valid
// UTF-8, the raw bytes come back.
int tokenizer_decode(TokText *out, const Tokenizer *t, const int *ids, int n, int flags);

// Streaming decode for the sampler: feed ids one at a time and get the text they complete. A token
// that ends inside a UTF-8 sequence is held back until the sequence completes (or turns out invalid,
// then its bytes are emitted as they are). The concatenation of all output equals tokenizer_decode.
typedef struct {
    const Tokenizer *tok;
    int flags;              // TOK_SKIP_SPECIAL or 0
    int emitted;            // tokens emitted so far
    int strip_left;         // leading spaces the decoder still removes (Metaspace, Strip after Fuse)
    unsigned char held[8];  // an incomplete UTF-8 sequence waiting for its continuation bytes
    int nheld;
} TokStream;
void tok_stream_init(TokStream *s, const Tokenizer *t, int flags);
// Appends to out the text that id completes (possibly nothing). Returns 0 or -1 (bad id).
int tok_stream_push(TokText *out, TokStream *s, int id);
// Appends whatever is still held (an incomplete sequence at the end of generation).
int tok_stream_flush(TokText *out, TokStream *s);

// Prompt templates. A template is a string in which `{prompt}` and `{system}` are replaced (once each
// place they occur; any other text, braces included, is kept as is). Presets by name:
//   "r1-zero"        the DeepSeek-R1-Zero template: "A conversation between User and Assistant. ...
//                    <think> reasoning process here </think> <answer> answer here </answer>.
//                    User: {prompt}. Assistant:"
//   "deepseek-chat"  "{system}<｜User｜>{prompt}<｜Assistant｜>" (bos comes from TOK_ADD_SPECIAL)
//   "raw"            "{prompt}"
// Returns the preset's template or NULL for an unknown name.
const char *tokenizer_template_preset(const char *name);
// Appends the expansion of tmpl (a preset name or a template string) to out; system may be NULL (empty).
// A template without {prompt} is an error.
int tokenizer_apply_template(TokText *out, const char *tmpl, const char *system, const char *prompt);

// The project's small tokenizer for small models, written as an ordinary Hugging Face tokenizer.json
// (byte-level BPE without merges: one token per byte, plus the R1 format's special tokens; it loads in
// HF tokenizers and transformers too). Its ids:
#define TOKENIZER_DEFAULT_BOS 0   // <｜begin▁of▁sentence｜> (added by TOK_ADD_SPECIAL)
#define TOKENIZER_DEFAULT_EOS 1   // <｜end▁of▁sentence｜>
#define TOKENIZER_DEFAULT_PAD 2   // <｜▁pad▁｜>
// 3..8: <think> </think> <answer> </answer> <｜User｜> <｜Assistant｜> (not "special": kept by decode);
// 9..264: the bytes 0..255 in order.
int tokenizer_default_vocab_size(void);   // 265, within the tiny model config's vocab_size 512
// Writes it atomically to path. Returns 0 or -1.
int tokenizer_write_default(const char *path);
