// grpo tokenize: text on stdin -> token ids (or ids -> text with --decode), for inspecting a tokenizer
// and for comparing it with other implementations.
#include "cli/cli.h"
#include "common/error.h"
#include "policy/tokenizer.h"
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: grpo tokenize --tokenizer PATH [--decode] [--no-special] [--jsonl]\n"
    "\n"
    "Reads stdin and prints token ids as a JSON array (all of stdin is one text, a final newline included).\n"
    "  --tokenizer PATH  a tokenizer.json or a model directory holding one\n"
    "  --decode          the reverse: a JSON array of ids on stdin, the text on stdout\n"
    "  --no-special      encode without the tokens the tokenizer adds (bos); decode without special tokens\n"
    "  --jsonl           one JSON object per line: {\"text\": ...} -> {\"ids\": [...]}, or with --decode\n"
    "                    {\"ids\": [...]} -> {\"text\": ...}\n";

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, stdin);
        if (n < cap - 1) break;
        char *p = realloc(buf, cap * 2);
        if (!p) { free(buf); buf = NULL; break; }
        buf = p;
        cap *= 2;
    }
    if (!buf) { ERR("out of memory reading stdin"); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void print_ids(const TokIds *ids) {
    putchar('[');
    for (int i = 0; i < ids->n; i++) printf(i ? ",%d" : "%d", ids->ids[i]);
    putchar(']');
}

// JSON string with the bytes as they are (escapes for quote, backslash and control characters only).
static void print_json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

// Whether a JSON text holds the escape \u0000 (an odd run of backslashes before "u0000").
static bool has_nul_escape(const char *s) {
    for (const char *p = strstr(s, "u0000"); p; p = strstr(p + 1, "u0000")) {
        int k = 0;
        while (p - k > s && p[-k - 1] == '\\') k++;
        if (k % 2) return true;
    }
    return false;
}

// A JSON array of integers into ids; what = where it came from, for the message.
static int parse_ids(TokIds *ids, const cJSON *arr, const char *what) {
    CHECK(cJSON_IsArray(arr), "%s: expected a JSON array of token ids", what);
    int i = 0;
    for (const cJSON *x = arr->child; x; x = x->next, i++) {
        CHECK(cJSON_IsNumber(x) && x->valuedouble == (int)x->valuedouble, "%s[%d]: expected an integer id", what, i);
        TRY(tok_ids_push(ids, (int)x->valuedouble));
    }
    return 0;
}

static int run(Tokenizer *tok, bool decode, bool special, bool jsonl) {
    size_t len;
    char *in = read_stdin(&len);
    if (!in) return -1;
    TokIds ids = {0};
    TokText text = {0};
    int rc = 0;
    int eflags = special ? TOK_ENCODE_DEFAULT : TOK_PARSE_SPECIAL, dflags = special ? 0 : TOK_SKIP_SPECIAL;
    if (!jsonl && !decode) {
        rc = tokenizer_encode(&ids, tok, in, len, eflags);
        if (!rc) { print_ids(&ids); putchar('\n'); }
    } else if (!jsonl) {
        cJSON *arr = cJSON_ParseWithLength(in, len);
        rc = parse_ids(&ids, arr, "stdin");
        if (!rc) rc = tokenizer_decode(&text, tok, ids.ids, ids.n, dflags);
        if (!rc) fwrite(text.s, 1, text.n, stdout);
        cJSON_Delete(arr);
    } else {
        char *line = in;
        for (int lineno = 1; !rc && line < in + len; lineno++) {
            char *end = memchr(line, '\n', (size_t)(in + len - line));
            if (!end) end = in + len;
            *end = 0;
            if (end > line) {
                cJSON *o = cJSON_ParseWithLength(line, (size_t)(end - line));
                char what[64];
                snprintf(what, sizeof what, "stdin line %d", lineno);
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, decode ? "ids" : "text");
                ids.n = 0;
                text.n = 0;
                if (!cJSON_IsObject(o)) rc = ERR("%s: expected a JSON object", what);
                else if (decode) {
                    snprintf(what, sizeof what, "stdin line %d: ids", lineno);
                    rc = parse_ids(&ids, f, what);
                    if (!rc) rc = tokenizer_decode(&text, tok, ids.ids, ids.n, dflags);
                    if (!rc) { fputs("{\"text\":", stdout); print_json_string(text.s, text.n); puts("}"); }
                } else if (!cJSON_IsString(f)) rc = ERR("%s: expected a string field \"text\"", what);
                else if (has_nul_escape(line))  // cJSON strings end at the first NUL: refuse, never truncate
                    rc = ERR("%s: U+0000 inside a JSON string is not supported (use plain stdin)", what);
                else {
                    rc = tokenizer_encode(&ids, tok, f->valuestring, strlen(f->valuestring), eflags);
                    if (!rc) { fputs("{\"ids\":", stdout); print_ids(&ids); puts("}"); }
                }
                cJSON_Delete(o);
            }
            line = end + 1;
        }
    }
    tok_ids_free(&ids);
    tok_text_free(&text);
    free(in);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    bool decode = false, no_special = false, jsonl = false, bad = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(USAGE, stdout); return 0; }
        if (cli_str(argc, argv, &i, "--tokenizer", &path, &bad) || cli_flag(argv, i, "--decode", &decode) ||
            cli_flag(argv, i, "--no-special", &no_special) || cli_flag(argv, i, "--jsonl", &jsonl))
            continue;
        return cli_unknown("tokenize", argv[i], USAGE);
    }
    if (bad) return 2;
    if (!path) {
        fprintf(stderr, "grpo tokenize: --tokenizer PATH is required\n\n%s", USAGE);
        return 2;
    }
    Tokenizer *tok = tokenizer_load(path);
    if (!tok) return cli_fail("tokenize");
    int rc = run(tok, decode, !no_special, jsonl);
    tokenizer_free(tok);
    return rc ? cli_fail("tokenize") : 0;
}
