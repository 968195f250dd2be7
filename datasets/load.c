// JSONL task loaders (one per record form, dataset.h), format detection, and the JSONL writer.
#define _GNU_SOURCE
#include "datasets/dataset.h"
#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include "rewards/math.h"
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const format_names[DS_FORMAT_COUNT] = {"auto", "gsm8k", "math", "humaneval", "mbpp",
                                                          "countdown", "generic"};

int dataset_format_parse(const char *name, DatasetFormat *out) {
    for (int f = 0; f < DS_FORMAT_COUNT; f++)
        if (name && !strcmp(name, format_names[f])) {
            *out = (DatasetFormat)f;
            return 0;
        }
    return ERR("unknown dataset format \"%s\" (expected auto, gsm8k, math, humaneval, mbpp, countdown or generic)",
               name ? name : "(null)");
}

const char *dataset_format_name(DatasetFormat f) { return f >= 0 && f < DS_FORMAT_COUNT ? format_names[f] : "?"; }

void tasks_free(TaskList *l) {
    for (int i = 0; i < l->n; i++) task_free(&l->tasks[i]);
    free(l->tasks);
    memset(l, 0, sizeof *l);
}

// A zeroed slot at l->tasks[l->n] (n is not advanced). Capacity doubles at each power of two, so it
// needs no field of its own.
static Task *next_slot(TaskList *l) {
    if ((l->n & (l->n - 1)) == 0) {
        Task *t = realloc(l->tasks, sizeof *t * (size_t)(l->n ? 2 * l->n : 1));
        if (!t) {
            ERR("out of memory growing a task list to %d tasks", l->n + 1);
            return NULL;
        }
        l->tasks = t;
    }
    memset(&l->tasks[l->n], 0, sizeof(Task));
    return &l->tasks[l->n];
}

int tasks_append(TaskList *l, const Task *t) {
    Task *slot = next_slot(l);
    if (!slot) return -1;
    TRY(task_clone(slot, t));
    l->n++;
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Reading records

// Where a record comes from, for ids and messages.
typedef struct {
    const char *path;
    long line;         // 1-based
    char stem[256];    // file name without folders and .jsonl/.json/.gz
} Src;

#define FIELD_ERR(s, key, fmt, ...) ERR("%s:%ld: field \"%s\": " fmt, (s)->path, (s)->line, key, ##__VA_ARGS__)

// null counts as absent.
static const cJSON *field(const cJSON *rec, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    return cJSON_IsNull(v) ? NULL : v;
}

static char *dup_str(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) {
        ERR("out of memory copying a %zu-byte field", n);
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

// The string field `key`, or NULL with an error.
static const char *need_str(const cJSON *rec, const char *key, const Src *s) {
    const cJSON *v = field(rec, key);
    if (!cJSON_IsString(v)) {
        FIELD_ERR(s, key, "expected a string, got %s", cfg_type_name(v));
        return NULL;
    }
    return v->valuestring;
}

// Text of an optional string-or-number field into *out (NULL when absent).
static int opt_text(char **out, const cJSON *rec, const char *key, const Src *s) {
    const cJSON *v = field(rec, key);
    *out = NULL;
    if (!v) return 0;
    if (cJSON_IsString(v)) *out = dup_str(v->valuestring, strlen(v->valuestring));
    else if (cJSON_IsNumber(v)) *out = cJSON_PrintUnformatted(v);
    else return FIELD_ERR(s, key, "expected a string or a number, got %s", cfg_type_name(v));
    return *out ? 0 : ERR("out of memory");
}

// malloc'd printf, NULL (with an error) when out of memory.
static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...) {
    char *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0) {
        ERR("out of memory");
        return NULL;
    }
    return out;
}

static int set_id(Task *t, const cJSON *rec, const Src *s) {
    static const char *const keys[] = {"id", "task_id", "unique_id"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const cJSON *v = field(rec, keys[k]);
        int64_t i;
        if (!v) continue;
        if (cJSON_IsString(v)) t->id = dup_str(v->valuestring, strlen(v->valuestring));
        else if (cfg_exact_int(v, &i) == 0) t->id = str_printf("%s/%lld", s->stem, (long long)i);
        else return FIELD_ERR(s, keys[k], "expected a string or an integer, got %s", cfg_type_name(v));
        return t->id ? 0 : -1;
    }
    t->id = str_printf("%s/%ld", s->stem, s->line);
    return t->id ? 0 : -1;
}

static int set_dup(char **dst, const char *src) {
    *dst = dup_str(src, strlen(src));
    return *dst ? 0 : -1;
}

// ---------------------------------------------------------------------------------------------------
// One parser per record form: fills id, prompt and answer of t (whose meta is already the record).

static int parse_gsm8k(Task *t, const cJSON *rec, const Src *s) {
    const char *q = need_str(rec, "question", s), *a = q ? need_str(rec, "answer", s) : NULL;
    if (!a) return -1;
    const char *h = NULL;
    for (const char *p = a; (p = strstr(p, "####")) != NULL; p += 4) h = p;
    if (!h) return FIELD_ERR(s, "answer", "expected a worked solution ending in \"#### N\", found no \"####\"");
    const char *b = h + 4, *e = b + strlen(b);
    while (isspace((unsigned char)*b)) b++;
    while (e > b && isspace((unsigned char)e[-1])) e--;
    if (e == b) return FIELD_ERR(s, "answer", "nothing after \"####\"");
    TRY(set_id(t, rec, s));
    TRY(set_dup(&t->prompt, q));
    t->answer = dup_str(b, (size_t)(e - b));
    return t->answer ? 0 : -1;
}

static int parse_math(Task *t, const cJSON *rec, const Src *s) {
    const char *p = need_str(rec, "problem", s);
    if (!p) return -1;
    TRY(opt_text(&t->answer, rec, "answer", s));
    if (!t->answer) {
        const cJSON *sol = field(rec, "solution");
        size_t start, len;
        if (!cJSON_IsString(sol))
            return FIELD_ERR(s, "answer", "missing, and no \"solution\" string to take the boxed answer from");
        // Without a box the gold extraction would take the whole solution as the answer.
        if ((!strstr(sol->valuestring, "\\boxed") && !strstr(sol->valuestring, "\\fbox")) ||
            math_extract_gold(sol->valuestring, strlen(sol->valuestring), &start, &len) != 0)
            return FIELD_ERR(s, "answer", "missing, and \"solution\" has no \\boxed{} answer");
        if (!(t->answer = dup_str(sol->valuestring + start, len))) return -1;
    }
    TRY(set_id(t, rec, s));
    return set_dup(&t->prompt, p);
}

static int parse_humaneval(Task *t, const cJSON *rec, const Src *s) {
    const char *p = need_str(rec, "prompt", s);
    if (!p || !need_str(rec, "test", s) || !need_str(rec, "entry_point", s)) return -1;
    TRY(set_id(t, rec, s));
    return set_dup(&t->prompt, p);
}

// The description alone does not say which function the asserts call, so the prompt shows them
// (as in the MBPP paper's prompts).
static int parse_mbpp(Task *t, const cJSON *rec, const Src *s) {
    const char *text = need_str(rec, field(rec, "text") ? "text" : "prompt", s);
    if (!text) return -1;
    const cJSON *tl = field(rec, "test_list"), *it;
    if (!cJSON_IsArray(tl) || cJSON_GetArraySize(tl) == 0)
        return FIELD_ERR(s, "test_list", "expected a non-empty array of assert lines, got %s", cfg_type_name(tl));
    size_t len = strlen(text) + 40;
    cJSON_ArrayForEach(it, tl) {
        if (!cJSON_IsString(it)) return FIELD_ERR(s, "test_list", "every item must be a string, found %s",
                                                  cfg_type_name(it));
        len += strlen(it->valuestring) + 1;
    }
    const cJSON *setup = field(rec, "test_setup_code");
    if (setup && !cJSON_IsString(setup))
        return FIELD_ERR(s, "test_setup_code", "expected a string, got %s", cfg_type_name(setup));
    TRY(set_id(t, rec, s));
    if (!(t->prompt = grpo_malloc(len, "MBPP prompt"))) return -1;
    char *w = t->prompt + sprintf(t->prompt, "%s\nYour code should pass these tests:\n", text);
    cJSON_ArrayForEach(it, tl) w += sprintf(w, "%s\n", it->valuestring);
    return 0;
}

static int parse_countdown(Task *t, const cJSON *rec, const Src *s) {
    const cJSON *nums = field(rec, "nums"), *it;
    int64_t v[64], target;
    int n = 0;
    if (!cJSON_IsArray(nums) || cJSON_GetArraySize(nums) < 1 || cJSON_GetArraySize(nums) > 64)
        return FIELD_ERR(s, "nums", "expected an array of 1 to 64 integers, got %s", cfg_type_name(nums));
    cJSON_ArrayForEach(it, nums)
        if (cfg_exact_int(it, &v[n++]) != 0) return FIELD_ERR(s, "nums", "item %d is not an integer", n - 1);
    if (cfg_exact_int(field(rec, "target"), &target) != 0)
        return FIELD_ERR(s, "target", "expected an integer, got %s", cfg_type_name(field(rec, "target")));
    const cJSON *p = field(rec, "prompt");
    if (p && !cJSON_IsString(p)) return FIELD_ERR(s, "prompt", "expected a string, got %s", cfg_type_name(p));
    TRY(set_id(t, rec, s));
    if (p) return set_dup(&t->prompt, p->valuestring);
    return (t->prompt = countdown_prompt(v, n, target)) ? 0 : -1;
}

static const char *const prompt_keys[] = {"prompt", "question", "problem"};

static int parse_generic(Task *t, const cJSON *rec, const Src *s) {
    const char *key = NULL;
    for (size_t k = 0; k < 3 && !key; k++)
        if (field(rec, prompt_keys[k])) key = prompt_keys[k];
    if (!key) return FIELD_ERR(s, "prompt", "missing (a generic record needs \"prompt\", \"question\" or \"problem\")");
    const char *p = need_str(rec, key, s);
    if (!p) return -1;
    TRY(opt_text(&t->answer, rec, "answer", s));
    TRY(set_id(t, rec, s));
    return set_dup(&t->prompt, p);
}

typedef int (*Parser)(Task *t, const cJSON *rec, const Src *s);
static const Parser parsers[DS_FORMAT_COUNT] = {NULL, parse_gsm8k, parse_math, parse_humaneval, parse_mbpp,
                                                parse_countdown, parse_generic};

// The form of a record by its fields; DS_AUTO when none fits. An `id` beside a `prompt` is the generic
// form tasks_write_jsonl writes, whatever the record came from.
static DatasetFormat detect(const cJSON *rec) {
#define HAS(k) (field(rec, k) != NULL)
    const cJSON *a = field(rec, "answer");
    if (HAS("id") && HAS("prompt")) return DS_GENERIC;
    if (HAS("entry_point") && HAS("test")) return DS_HUMANEVAL;
    if (HAS("test_list")) return DS_MBPP;
    if (HAS("nums") && HAS("target")) return DS_COUNTDOWN;
    if (HAS("prompt")) return DS_GENERIC;
    if (HAS("question") && cJSON_IsString(a) && strstr(a->valuestring, "####")) return DS_GSM8K;
    if (HAS("problem") && HAS("solution")) return DS_MATH;
    if (HAS("question") || HAS("problem")) return DS_GENERIC;
    return DS_AUTO;
#undef HAS
}

// Parses one line into the list's next task; *fmt is fixed by the first record when it is DS_AUTO.
static int load_line(TaskList *l, DatasetFormat *fmt, const char *line, size_t len, const Src *s) {
    cJSON *rec = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(rec)) {
        cJSON_Delete(rec);
        return ERR("%s:%ld: not a JSON object", s->path, s->line);
    }
    DatasetFormat f = *fmt == DS_AUTO ? detect(rec) : *fmt;
    if (f == DS_AUTO) {
        cJSON_Delete(rec);
        return ERR("%s:%ld: cannot tell the format from the fields (expected question+answer, problem+solution, "
                   "task_id+prompt+test+entry_point, text+test_list, nums+target, or prompt); name it "
                   "(gsm8k, math, humaneval, mbpp, countdown, generic)", s->path, s->line);
    }
    Task *t = next_slot(l);
    if (!t) {
        cJSON_Delete(rec);
        return -1;
    }
    t->meta = rec;
    if (parsers[f](t, rec, s) != 0) {
        task_free(t);
        return -1;
    }
    *fmt = f;
    l->n++;
    return 0;
}

// The whole file, gunzipped when it is gzip (zlib passes other files through unchanged).
static char *read_text(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        ERR("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 17);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (int r = 1; buf && r > 0; n += (size_t)r) {
        if (cap - n < (1 << 16) + 1) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b, cap *= 2;
        }
        r = gzread(f, buf + n, 1 << 16);
        if (r < 0) {
            int e;
            ERR("%s: read error after %zu bytes: %s", path, n, gzerror(f, &e));
            free(buf);
            gzclose(f);
            return NULL;
        }
    }
    gzclose(f);
    if (!buf) {
        ERR("%s: out of memory reading the file", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void file_stem(char *out, size_t cap, const char *path) {
    const char *b = strrchr(path, '/');
    snprintf(out, cap, "%s", b ? b + 1 : path);
    static const char *const ext[] = {".gz", ".jsonl", ".json"};
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(out), m = strlen(ext[k]);
        if (n > m && !strcmp(out + n - m, ext[k])) out[n - m] = 0;
    }
}

int tasks_load(TaskList *out, const char *path, const LoadOptions *opt) {
    static const LoadOptions defaults = {DS_AUTO, false};
    memset(out, 0, sizeof *out);
    if (!opt) opt = &defaults;
    CHECK(opt->format >= DS_AUTO && opt->format < DS_FORMAT_COUNT, "%s: format %d out of range", path, opt->format);
    size_t len;
    char *text = read_text(path, &len);
    if (!text) return -1;
    Src s = {path, 0, ""};
    file_stem(s.stem, sizeof s.stem, path);
    DatasetFormat fmt = opt->format;
    for (char *line = text, *end; line < text + len; line = end + 1) {
        end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end) end = text + len;
        s.line++;
        const char *p = line;
        while (p < end && isspace((unsigned char)*p)) p++;
        if (p == end) continue;
        if (load_line(out, &fmt, line, (size_t)(end - line), &s) == 0) continue;
        if (!opt->skip_bad) {
            free(text);
            tasks_free(out);
            return -1;
        }
        if (!out->skipped++) snprintf(out->first_skip, sizeof out->first_skip, "%s", grpo_error());
    }
    free(text);
    out->format = fmt;
    if (out->n == 0) {
        int skipped = out->skipped;
        tasks_free(out);
        return ERR("%s: no tasks (%d malformed lines skipped)", path, skipped);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Writing

static int put_str(cJSON *rec, const char *key, const char *v) {
    if (!v) {
        cJSON_DeleteItemFromObjectCaseSensitive(rec, key);
        return 0;
    }
    cJSON *s = cJSON_CreateString(v);
    if (!s) return ERR("out of memory");
    if (cJSON_GetObjectItemCaseSensitive(rec, key)) cJSON_ReplaceItemInObjectCaseSensitive(rec, key, s);
    else cJSON_AddItemToObject(rec, key, s);
    return 0;
}

static int write_record(FILE *f, const Task *t, int i) {
    CHECK(!t->meta || cJSON_IsObject(t->meta), "task %d (%s): meta is not an object", i, t->id ? t->id : "?");
    CHECK(t->prompt, "task %d (%s): no prompt", i, t->id ? t->id : "?");
    cJSON *rec = t->meta ? cJSON_Duplicate(t->meta, 1) : cJSON_CreateObject();
    char *line = NULL;
    if (rec && put_str(rec, "id", t->id) == 0 && put_str(rec, "prompt", t->prompt) == 0 &&
        put_str(rec, "answer", t->answer) == 0)
        line = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    CHECK(line, "out of memory writing task %d", i);
    fputs(line, f);
    fputc('\n', f);
    free(line);
    return 0;
}

int tasks_write_jsonl(const char *path, const Task *tasks, int n) {
    AtomicFile af;
    TRY(atomic_open(&af, path));
    for (int i = 0; i < n; i++)
        if (write_record(af.f, &tasks[i], i) != 0) {
            atomic_abort(&af);
            return grpo_error_context("%s", path);
        }
    return atomic_commit(&af);
}
