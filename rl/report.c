#include "rl/report.h"
#include "common/error.h"
#include "common/fileio.h"
#include "rl/svg_chart.h"
#include <cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

ReportOptions report_defaults(void) {
    return (ReportOptions){.run_id = 0, .steps_shown = 8, .groups_shown = 3, .max_text = 20000};
}

typedef struct {
    sqlite3 *db;
    const char *path;  // the database, named in every error
    FILE *f;           // the report being written
    ReportOptions opt;
    char nonce[33];    // the one token the page's Content-Security-Policy lets scripts run with
} Report;

// ---------------------------------------------------------------------------------------------------
// SQLite

static int sql_fail(Report *r) { return ERR("%s: %s", r->path, sqlite3_errmsg(r->db)); }

static int prepare(Report *r, sqlite3_stmt **st, const char *sql, long run) {
    if (sqlite3_prepare_v2(r->db, sql, -1, st, NULL) != SQLITE_OK) return sql_fail(r);
    if (sqlite3_bind_parameter_count(*st) >= 1) sqlite3_bind_int64(*st, 1, run);
    return 0;
}

// 1 for a row, 0 when done, -1 on an error (recorded).
static int next_row(Report *r, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sql_fail(r);
}

// The single integer a query returns (count(*)), or -1 after recording an error.
static long query_long(Report *r, const char *sql, long run) {
    sqlite3_stmt *st;
    if (prepare(r, &st, sql, run) != 0) return -1;
    int rc = next_row(r, st);
    long v = rc == 1 ? (long)sqlite3_column_int64(st, 0) : rc == 0 ? 0 : -1;
    sqlite3_finalize(st);
    return v;
}

static double col_num(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static const char *col_str(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static const char *const TABLES[] = {"meta", "runs", "steps", "episodes", "evals"};

static int open_db(Report *r) {
    // sqlite's "unable to open database file" would not say that the file is missing
    CHECK(path_exists(r->path), "%s: no such file", r->path);
    if (sqlite3_open_v2(r->path, &r->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return ERR("%s: cannot open: %s", r->path, r->db ? sqlite3_errmsg(r->db) : "out of memory");
    sqlite3_busy_timeout(r->db, 5000);
    // One read transaction: the report is a snapshot even while a trainer commits steps.
    if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) return sql_fail(r);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return ERR("%s: not a grpo.c run database (%s)", r->path, sqlite3_errmsg(r->db));
    for (size_t k = 0; k < sizeof TABLES / sizeof TABLES[0]; k++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, TABLES[k], -1, SQLITE_STATIC);
        int rc = next_row(r, st);
        if (rc <= 0) {
            sqlite3_finalize(st);
            return rc < 0 ? -1 : ERR("%s: not a grpo.c run database: it has no table '%s'", r->path, TABLES[k]);
        }
    }
    sqlite3_finalize(st);
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// HTML output

static void esc(Report *r, const char *s) { html_escape(r->f, s, strlen(s)); }

// Escapes at most r->opt.max_text bytes of column i (cut at a UTF-8 boundary) and says what was left out.
static void esc_col_cut(Report *r, sqlite3_stmt *st, int i) {
    const char *s = col_str(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i), k = n;
    if (n > (size_t)r->opt.max_text) {
        k = (size_t)r->opt.max_text;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    }
    html_escape(r->f, s, k);
    if (k < n) fprintf(r->f, "<span class=\"cut\">… %zu more bytes</span>", n - k);
}

static const char *num(char *buf, double v) { return fmt_num(buf, 32, v, 4); }

static const char CSS[] =
    ":root{--bg:#f4f5f7;--card:#fff;--ink:#1f2937;--muted:#6b7280;--line:#e3e6ea;--accent:#4e79a7}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--ink);"
    "font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}"
    "header.top{background:#111827;color:#f9fafb;padding:12px 28px;display:flex;align-items:baseline;gap:18px;"
    "flex-wrap:wrap}"
    ".brand{font-weight:700;font-size:17px}.brand span{font-weight:400;color:#9ca3af}"
    ".src{color:#9ca3af;font-size:13px}"
    "header nav a{color:#d1d5db;margin-right:12px;text-decoration:none;font-size:13px}"
    "header nav a:hover{color:#fff}"
    "main{max-width:1480px;margin:0 auto;padding:10px 28px 48px}"
    "section.run{margin-bottom:40px}"
    "h2{font-size:21px;margin:16px 0 2px;display:flex;align-items:center;gap:10px}"
    ".note{font-size:12.5px;color:var(--muted);margin:-4px 0 10px}"
    "h3{font-size:13px;margin:24px 0 10px;color:#4b5563;text-transform:uppercase;letter-spacing:.06em}"
    ".kind{font-size:11px;font-weight:700;padding:2px 9px;border-radius:10px;text-transform:uppercase;"
    "letter-spacing:.05em;background:#e5e7eb;color:#374151}"
    ".kind.grpo{background:#dbeafe;color:#1e40af}.kind.sft{background:#dcfce7;color:#166534}"
    ".kind.distill{background:#f3e8ff;color:#6b21a8}.kind.eval{background:#fef3c7;color:#92400e}"
    ".meta{color:var(--muted);font-size:13px}.meta b{color:var(--ink);font-weight:500}"
    ".tiles{display:flex;gap:10px;flex-wrap:wrap;margin:14px 0 10px}"
    ".tile{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:7px 14px;min-width:118px}"
    ".tile .k{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}"
    ".tile .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}"
    ".tile .s{font-size:12px;color:var(--muted)}"
    "details>summary{cursor:pointer;color:var(--accent);font-size:13px}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;"
    "font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace;tab-size:4}"
    ".cfg pre{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;"
    "margin-top:6px;max-height:420px;overflow:auto;tab-size:2}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:4px 4px 0}"
    "svg.chart{display:block;height:auto}"
    "svg .ti{font-size:13px;font-weight:600;fill:#111827}svg .lg{font-size:10px;fill:#374151}"
    "svg .tk{font-size:10px;fill:#6b7280}svg .al{font-size:10.5px;fill:#6b7280}"
    "svg .gr{stroke:#eceef1}svg .ax{stroke:#9ca3af}svg .pt:hover{fill-opacity:1;stroke:#fff;stroke-width:1.5}"
    ".scroll{overflow-x:auto;margin-top:12px}"
    "table.ev{border-collapse:collapse;background:var(--card);font-size:13px;font-variant-numeric:tabular-nums}"
    ".ev th,.ev td{border:1px solid var(--line);padding:4px 12px;text-align:right}"
    ".ev th{background:#f9fafb;font-weight:600}.ev .l{text-align:left}"
    ".stepbar{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:12px}"
    ".stepbar button{border:1px solid var(--line);background:var(--card);border-radius:14px;padding:3px 13px;"
    "cursor:pointer;font:inherit;font-size:13px;color:var(--ink)}"
    ".stepbar button.on{background:var(--accent);color:#fff;border-color:var(--accent)}"
    "html:not(.js) .stepbar{display:none}.js .panel:not(.on){display:none}"
    ".ph{font-size:13px;color:var(--muted);margin:4px 0 10px}.ph b{color:var(--ink)}"
    ".group{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;"
    "margin-bottom:12px}"
    ".gh{display:flex;flex-wrap:wrap;gap:6px 10px;align-items:center;font-size:13px;color:var(--muted)}"
    ".gh b{color:var(--ink)}"
    ".chip{display:inline-block;min-width:32px;text-align:center;border-radius:4px;padding:0 4px;margin-right:2px;"
    "font-size:11.5px;font-variant-numeric:tabular-nums;background:#eef0f3}"
    ".pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px;margin-top:8px}"
    ".ep{border:1px solid var(--line);border-radius:6px;overflow:hidden;min-width:0}"
    ".ep .eh{padding:5px 10px;background:#f9fafb;border-bottom:1px solid var(--line);font-size:12.5px;"
    "color:var(--muted)}"
    ".ep .eh b{color:var(--ink)}.ep.best{border-top:3px solid #59a14f}.ep.worst{border-top:3px solid #e15759}"
    ".ep .parts{padding:3px 10px;font-size:12px;color:var(--muted);border-bottom:1px solid var(--line)}"
    ".ep pre{padding:8px 10px;max-height:26em;overflow:auto}"
    ".tag{font-weight:700;text-transform:uppercase;font-size:11px;letter-spacing:.05em;color:var(--ink)}"
    ".vd{padding:0 7px;border-radius:8px;font-size:11.5px;background:#f3f4f6;color:#374151}"
    ".vd.ok{background:#dcfce7;color:#166534}.vd.bad{background:#fee2e2;color:#991b1b}"
    ".fr.length{color:#b45309;font-weight:600}"
    ".cut{color:var(--muted);font-style:italic}"
    "details.prompt{margin-top:6px}"
    "details.prompt pre{background:#f9fafb;border-radius:6px;padding:8px 10px;margin-top:4px;max-height:18em;"
    "overflow:auto}"
    ".empty{color:var(--muted);font-style:italic}";

// Switches the shown step of a run's episodes; without scripts every step shows, one after another.
static const char JS[] =
    "document.querySelectorAll('.stepbar').forEach(function(bar){"
    "bar.addEventListener('click',function(e){"
    "var b=e.target.closest('button');if(!b)return;"
    "bar.parentNode.querySelectorAll('.stepbar button,.panel').forEach(function(el){"
    "el.classList.toggle('on',el.dataset.i===b.dataset.i);});});});";

static int make_nonce(char out[33]) {
    unsigned char b[16];
    CHECK(getrandom(b, sizeof b, 0) == (ssize_t)sizeof b, "no random bytes for the page's script nonce");
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static void page_head(Report *r, const long *runs, const char *const *kinds, int nruns) {
    FILE *f = r->f;
    const char *base = strrchr(r->path, '/');
    base = base ? base + 1 : r->path;
    fprintf(f, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "style-src 'unsafe-inline'; script-src 'nonce-%s'\">\n<title>grpo report: ",
            r->nonce);
    esc(r, base);
    fprintf(f, "</title>\n<style>%s</style>\n<script nonce=\"%s\">document.documentElement.classList.add('js')"
               "</script>\n</head><body>\n<header class=\"top\"><div class=\"brand\">grpo.c <span>report</span></div>"
               "<div class=\"src\">",
            CSS, r->nonce);
    esc(r, r->path);
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(f, " · generated %s</div>", when);
    if (nruns > 1) {
        fputs("<nav>", f);
        for (int i = 0; i < nruns; i++) {
            fprintf(f, "<a href=\"#run-%ld\">run %ld · ", runs[i], runs[i]);
            esc(r, kinds[i]);
            fputs("</a>", f);
        }
        fputs("</nav>", f);
    }
    fputs("</header>\n<main>\n", f);
}

static void page_tail(Report *r) { fprintf(r->f, "</main>\n<script nonce=\"%s\">%s</script>\n</body></html>\n", r->nonce, JS); }

// ---------------------------------------------------------------------------------------------------
// Steps: the metric columns and the per-reward curves of metrics_json

enum {
    C_REWARD_MEAN, C_REWARD_STD, C_ACCURACY, C_KL, C_CLIP_FRAC, C_ENTROPY, C_LEN_MEAN, C_LEN_MAX, C_TRUNCATED,
    C_ZERO_STD, C_LOSS, C_LR, C_GRAD_NORM, C_ROLLOUT_TOK_S, C_TRAIN_TOK_S, C_SECONDS, NCOLS
};
#define STEP_COLUMNS                                                                                           \
    "reward_mean, reward_std, accuracy, kl, clip_frac, entropy, len_mean, len_max, truncated_frac, "           \
    "zero_std_groups, loss, lr, grad_norm, rollout_tok_s, train_tok_s, seconds"
#define MAX_FAMILY 16

// Curves that metrics_json names under one prefix, in order of first appearance; past MAX_FAMILY names
// the rest are not charted.
typedef struct {
    int n;
    char *name[MAX_FAMILY];
    double *y[MAX_FAMILY], *err[MAX_FAMILY];  // (steps) each; NAN where a step did not log it
} Family;

typedef struct {
    int n;
    double *x;           // (n) step numbers, ascending
    double *time;        // (n) the steps' wall-clock times
    double *col[NCOLS];  // (n) each; NAN where NULL
    Family rewards;      // "reward/<name>/mean" and ".../std": each reward function's unweighted reward
    Family times;        // "time/<phase>": where a step's seconds went
} Steps;

static double *nan_array(int n) {
    double *a = grpo_malloc(sizeof(double) * (size_t)n, "report series");
    for (int i = 0; a && i < n; i++) a[i] = NAN;
    return a;
}

static void family_free(Family *f) {
    for (int k = 0; k < f->n; k++) free(f->name[k]), free(f->y[k]), free(f->err[k]);
}

static void steps_free(Steps *s) {
    free(s->x), free(s->time);
    for (int c = 0; c < NCOLS; c++) free(s->col[c]);
    family_free(&s->rewards), family_free(&s->times);
    memset(s, 0, sizeof *s);
}

// The slot of curve `name` (len bytes), added on first sight; -1 when the family is full, -2 when out of
// memory.
static int family_slot(Family *f, const char *name, size_t len, int nalloc) {
    for (int k = 0; k < f->n; k++)
        if (strlen(f->name[k]) == len && !memcmp(f->name[k], name, len)) return k;
    if (f->n == MAX_FAMILY) return -1;
    int k = f->n++;
    f->name[k] = strndup(name, len);
    f->y[k] = nan_array(nalloc), f->err[k] = nan_array(nalloc);
    if (!f->name[k] || !f->y[k] || !f->err[k]) return ERR("out of memory for the curves of metrics_json"), -2;
    return k;
}

// Files step i's per-reward and per-phase numbers from its metrics_json; a step whose JSON does not parse
// simply has no points there.
static int parse_metrics(Steps *s, int i, const char *json, int nalloc) {
    cJSON *m = cJSON_Parse(json);
    int rc = 0;
    for (const cJSON *e = m && cJSON_IsObject(m) ? m->child : NULL; e && rc == 0; e = e->next) {
        const char *key = e->string;
        size_t len = strlen(key);
        int k = -1;
        if (!cJSON_IsNumber(e)) continue;
        if (!strncmp(key, "reward/", 7)) {
            // "reward/mean" and "reward/std" are the total, which the columns hold
            int is_std = len > 11 && !strcmp(key + len - 4, "/std");
            int is_mean = len > 12 && !strcmp(key + len - 5, "/mean");
            if (is_std || is_mean) k = family_slot(&s->rewards, key + 7, len - 7 - (is_mean ? 5 : 4), nalloc);
            if (k >= 0) (is_mean ? s->rewards.y : s->rewards.err)[k][i] = e->valuedouble;
        } else if (!strncmp(key, "time/", 5) && len > 5 && strcmp(key, "time/step") != 0) {
            // time/step is the seconds column
            k = family_slot(&s->times, key + 5, len - 5, nalloc);
            if (k >= 0) s->times.y[k][i] = e->valuedouble;
        }
        if (k == -2) rc = -1;
    }
    cJSON_Delete(m);
    return rc;
}

static int load_steps(Report *r, long run, Steps *s) {
    memset(s, 0, sizeof *s);
    long n = query_long(r, "SELECT count(*) FROM steps WHERE run_id = ?", run);
    if (n <= 0) return (int)n;
    int ok = (s->x = nan_array((int)n)) && (s->time = nan_array((int)n));
    for (int c = 0; ok && c < NCOLS; c++) ok = (s->col[c] = nan_array((int)n)) != NULL;
    sqlite3_stmt *st;
    if (!ok || prepare(r, &st, "SELECT step, time, metrics_json, " STEP_COLUMNS " FROM steps WHERE run_id = ? "
                              "ORDER BY step", run) != 0) {
        steps_free(s);
        return -1;
    }
    int rc = 0;
    while (rc == 0 && s->n < n) {
        int row = next_row(r, st);
        if (row <= 0) {
            rc = row;
            break;
        }
        int i = s->n++;
        s->x[i] = sqlite3_column_double(st, 0);
        s->time[i] = col_num(st, 1);
        for (int c = 0; c < NCOLS; c++) s->col[c][i] = col_num(st, 3 + c);
        rc = parse_metrics(s, i, col_str(st, 2), (int)n);
    }
    sqlite3_finalize(st);
    if (rc != 0) steps_free(s);
    return rc;
}

typedef struct {
    int col, err;  // steps columns (err -1: no band)
    const char *name;
} SpecSeries;

typedef struct {
    const char *title, *ylabel;
    SpecSeries s[2];
    int ns;
} ChartSpec;

// The curves after the rewards, in the order one reads a GRPO run: is it learning (accuracy), is it
// drifting (KL, entropy, clipping), how long are the completions, is the optimiser sane, how fast is it.
static const ChartSpec CHARTS[] = {
    {"accuracy", "fraction correct", {{C_ACCURACY, -1, "accuracy"}}, 1},
    {"KL to the reference", "KL", {{C_KL, -1, "KL"}}, 1},
    {"completion length", "tokens", {{C_LEN_MEAN, -1, "mean"}, {C_LEN_MAX, -1, "max"}}, 2},
    {"policy entropy", "nats / token", {{C_ENTROPY, -1, "entropy"}}, 1},
    {"clip fraction", "fraction of tokens", {{C_CLIP_FRAC, -1, "clipped"}}, 1},
    {"truncated completions", "fraction", {{C_TRUNCATED, -1, "truncated"}}, 1},
    {"zero-std groups", "groups", {{C_ZERO_STD, -1, "groups"}}, 1},
    {"loss", "loss", {{C_LOSS, -1, "loss"}}, 1},
    {"grad norm", "L2 norm", {{C_GRAD_NORM, -1, "grad norm"}}, 1},
    {"learning rate", "lr", {{C_LR, -1, "lr"}}, 1},
    {"throughput", "tokens / s", {{C_ROLLOUT_TOK_S, -1, "rollout"}, {C_TRAIN_TOK_S, -1, "training"}}, 2},
};
#define NCHARTS (int)(sizeof CHARTS / sizeof CHARTS[0])

static void card(Report *r, const Chart *c) {
    fputs("<div class=\"card\">", r->f);
    chart_svg(r->f, c);
    fputs("</div>\n", r->f);
}

static void write_curves(Report *r, const Steps *s) {
    enum { MAXC = 1 + MAX_FAMILY + NCHARTS + 1 };
    Chart ch[MAXC];
    ChartSeries ser[MAXC][2], times[1 + MAX_FAMILY];
    char titles[MAX_FAMILY][96];
    int nc = 0;
    ser[nc][0] = (ChartSeries){"reward", s->col[C_REWARD_MEAN], s->col[C_REWARD_STD]};
    ch[nc] = (Chart){"reward", "step", "reward", s->x, s->n, ser[nc], 1};
    nc++;
    for (int k = 0; k < s->rewards.n; k++, nc++) {
        snprintf(titles[k], sizeof titles[k], "reward: %s", s->rewards.name[k]);
        ser[nc][0] = (ChartSeries){s->rewards.name[k], s->rewards.y[k], s->rewards.err[k]};
        ch[nc] = (Chart){titles[k], "step", "reward", s->x, s->n, ser[nc], 1};
    }
    for (int j = 0; j < NCHARTS; j++, nc++) {
        const ChartSpec *sp = &CHARTS[j];
        for (int q = 0; q < sp->ns; q++)
            ser[nc][q] = (ChartSeries){sp->s[q].name, s->col[sp->s[q].col], sp->s[q].err >= 0 ? s->col[sp->s[q].err] : NULL};
        ch[nc] = (Chart){sp->title, "step", sp->ylabel, s->x, s->n, ser[nc], sp->ns};
    }
    times[0] = (ChartSeries){"step", s->col[C_SECONDS], NULL};
    for (int k = 0; k < s->times.n; k++) times[1 + k] = (ChartSeries){s->times.name[k], s->times.y[k], NULL};
    ch[nc++] = (Chart){"step time", "step", "seconds", s->x, s->n, times, 1 + s->times.n};
    int any = 0;
    for (int j = 0; j < nc; j++) any |= chart_has_data(&ch[j]);
    if (!any) return;
    fputs("<h3>Training curves</h3>\n<p class=\"note\">", r->f);
    int w = chart_smoothing(s->n);
    if (w) fprintf(r->f, "Faint: every step; solid: the mean of the %d steps around it. ", w);
    fputs("Bands: ± one standard deviation over the step's completions. Hover a point for its value.</p>\n"
          "<div class=\"grid\">\n", r->f);
    for (int j = 0; j < nc; j++)
        if (chart_has_data(&ch[j])) card(r, &ch[j]);
    fputs("</div>\n", r->f);
}

// ---------------------------------------------------------------------------------------------------
// Run header

static const char *kind_class(const char *kind) {
    static const char *const KINDS[] = {"grpo", "sft", "distill", "eval"};
    for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++)
        if (!strcmp(kind, KINDS[k])) return KINDS[k];
    return "other";
}

static double first_finite(const double *v, int n, int from_end) {
    for (int i = 0; i < n; i++) {
        double x = v[from_end ? n - 1 - i : i];
        if (isfinite(x)) return x;
    }
    return NAN;
}

// A tile with the last value of a metric and the first below it; none when it was never logged.
static void tile_trend(Report *r, const char *label, const double *v, int n) {
    double a = first_finite(v, n, 0), b = first_finite(v, n, 1);
    if (!isfinite(b)) return;
    char x[32], y[32];
    fprintf(r->f, "<div class=\"tile\"><div class=\"k\">%s</div><div class=\"v\">%s</div>"
                  "<div class=\"s\">last step; first %s</div></div>", label, num(x, b), num(y, a));
}

static void fmt_duration(char *buf, size_t cap, double s) {
    if (s < 120) snprintf(buf, cap, "%.0f s", s);
    else if (s < 7200) snprintf(buf, cap, "%.1f min", s / 60);
    else snprintf(buf, cap, "%.1f h", s / 3600);
}

static void write_header(Report *r, sqlite3_stmt *run, const Steps *s, long episodes) {
    FILE *f = r->f;
    long id = (long)sqlite3_column_int64(run, 0);
    const char *kind = col_str(run, 1);
    fprintf(f, "<h2>run %ld <span class=\"kind %s\">", id, kind_class(kind));
    esc(r, kind);
    fputs("</span></h2>\n<div class=\"meta\">started <b>", f);
    esc(r, col_str(run, 2));
    fputs("</b>", f);
    if (sqlite3_column_type(run, 4) != SQLITE_NULL) {
        fputs(" · model <b>", f);
        esc(r, col_str(run, 4));
        fputs("</b>", f);
    }
    if (sqlite3_column_type(run, 5) != SQLITE_NULL) {
        fputs(" · grpo.c <b>", f);
        esc(r, col_str(run, 5));
        fputs("</b>", f);
    }
    fputs("</div>\n<div class=\"tiles\">", f);
    char a[32], b[32];
    if (s->n > 0)
        fprintf(f, "<div class=\"tile\"><div class=\"k\">steps</div><div class=\"v\">%d</div>"
                   "<div class=\"s\">%s to %s</div></div>", s->n, fmt_num(a, sizeof a, s->x[0], 8),
                fmt_num(b, sizeof b, s->x[s->n - 1], 8));
    fprintf(f, "<div class=\"tile\"><div class=\"k\">episodes</div><div class=\"v\">%ld</div></div>", episodes);
    tile_trend(r, "reward", s->col[C_REWARD_MEAN], s->n);
    tile_trend(r, "accuracy", s->col[C_ACCURACY], s->n);
    if (s->n > 0) {
        double total = 0, t0 = first_finite(s->time, s->n, 0), t1 = first_finite(s->time, s->n, 1);
        for (int i = 0; i < s->n; i++) total += isfinite(s->col[C_SECONDS][i]) ? s->col[C_SECONDS][i] : 0;
        // the sum of step times misses what happens between steps (evals, checkpoints); the clock does not
        if (isfinite(t0) && t1 - t0 > total) total = t1 - t0;
        if (total > 0) {
            fmt_duration(a, sizeof a, total);
            fprintf(f, "<div class=\"tile\"><div class=\"k\">time</div><div class=\"v\">%s</div></div>", a);
        }
    }
    fputs("</div>\n", f);
    if (sqlite3_column_type(run, 3) != SQLITE_NULL) {
        cJSON *cfg = cJSON_Parse(col_str(run, 3));
        char *pretty = cfg ? cJSON_Print(cfg) : NULL;
        fputs("<details class=\"cfg\"><summary>config</summary><pre>", f);
        esc(r, pretty ? pretty : col_str(run, 3));
        fputs("</pre></details>\n", f);
        free(pretty);
        cJSON_Delete(cfg);
    }
}

// ---------------------------------------------------------------------------------------------------
// Evals: a table (a row per step, a column per dataset and metric) and a chart per metric

typedef struct {
    char *dataset, *metric;
    double *v;  // (nsteps) NAN where this pair was not evaluated
    long *n;    // (nsteps) the eval's sample count, -1 if unknown
} EvalKey;

typedef struct {
    int nsteps, nkeys;
    double *step;  // (nsteps) ascending
    EvalKey *key;  // (nkeys) ordered by dataset, then metric
} Evals;

static void evals_free(Evals *e) {
    for (int k = 0; k < e->nkeys; k++) free(e->key[k].dataset), free(e->key[k].metric), free(e->key[k].v), free(e->key[k].n);
    free(e->step), free(e->key);
    memset(e, 0, sizeof *e);
}

static int load_evals(Report *r, long run, Evals *e) {
    memset(e, 0, sizeof *e);
    long ns = query_long(r, "SELECT count(DISTINCT step) FROM evals WHERE run_id = ?", run);
    long nk = query_long(r, "SELECT count(*) FROM (SELECT DISTINCT dataset, metric FROM evals WHERE run_id = ?)", run);
    if (ns <= 0 || nk <= 0) return ns < 0 || nk < 0 ? -1 : 0;
    e->step = grpo_calloc((size_t)ns, sizeof(double), "eval steps");
    e->key = grpo_calloc((size_t)nk, sizeof(EvalKey), "eval keys");
    sqlite3_stmt *st = NULL;
    int rc = e->step && e->key ? prepare(r, &st, "SELECT DISTINCT step FROM evals WHERE run_id = ? ORDER BY step", run) : -1;
    while (rc == 0 && e->nsteps < ns && (rc = next_row(r, st)) == 1) e->step[e->nsteps++] = sqlite3_column_double(st, 0), rc = 0;
    sqlite3_finalize(st);
    st = NULL;
    if (rc == 0)
        rc = prepare(r, &st, "SELECT dataset, metric, step, value, n FROM evals WHERE run_id = ? "
                             "ORDER BY dataset, metric, step", run);
    while (rc == 0 && (rc = next_row(r, st)) == 1) {
        rc = 0;
        const char *ds = col_str(st, 0), *me = col_str(st, 1);
        EvalKey *k = e->nkeys ? &e->key[e->nkeys - 1] : NULL;
        if (!k || strcmp(k->dataset, ds) || strcmp(k->metric, me)) {
            if (e->nkeys == nk) break;
            k = &e->key[e->nkeys++];
            k->dataset = strdup(ds), k->metric = strdup(me);
            k->v = nan_array(e->nsteps);
            k->n = grpo_malloc(sizeof(long) * (size_t)e->nsteps, "eval counts");
            if (!k->dataset || !k->metric || !k->v || !k->n) {
                rc = ERR("out of memory reading evals");
                break;
            }
            for (int i = 0; i < e->nsteps; i++) k->n[i] = -1;
        }
        double x = sqlite3_column_double(st, 2);
        int lo = 0, hi = e->nsteps - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (e->step[mid] < x) lo = mid + 1;
            else hi = mid;
        }
        k->v[lo] = col_num(st, 3);
        if (sqlite3_column_type(st, 4) != SQLITE_NULL) k->n[lo] = (long)sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    if (rc != 0) evals_free(e);
    return rc;
}

static void write_evals(Report *r, const Evals *e) {
    FILE *f = r->f;
    if (e->nkeys == 0) return;
    fputs("<h3>Evals</h3>\n", f);
    if (e->nsteps >= 2) {
        fputs("<div class=\"grid\">\n", f);
        ChartSeries ser[64];
        for (int k = 0; k < e->nkeys; k++) {
            int seen = 0;
            for (int j = 0; j < k; j++) seen |= !strcmp(e->key[j].metric, e->key[k].metric);
            if (seen) continue;
            int ns = 0;
            for (int j = k; j < e->nkeys && ns < 64; j++)
                if (!strcmp(e->key[j].metric, e->key[k].metric)) ser[ns++] = (ChartSeries){e->key[j].dataset, e->key[j].v, NULL};
            // a single series has no legend, so its dataset goes into the title
            char title[256];
            snprintf(title, sizeof title, "%s%s%s", ns == 1 ? e->key[k].dataset : "", ns == 1 ? " " : "", e->key[k].metric);
            card(r, &(Chart){title, "step", e->key[k].metric, e->step, e->nsteps, ser, ns});
        }
        fputs("</div>\n", f);
    }
    fputs("<div class=\"scroll\"><table class=\"ev\"><tr><th class=\"l\" rowspan=\"2\">step</th>", f);
    for (int k = 0; k < e->nkeys;) {
        int span = 1;
        while (k + span < e->nkeys && !strcmp(e->key[k + span].dataset, e->key[k].dataset)) span++;
        fprintf(f, "<th colspan=\"%d\">", span);
        esc(r, e->key[k].dataset);
        fputs("</th>", f);
        k += span;
    }
    fputs("</tr>\n<tr>", f);
    for (int k = 0; k < e->nkeys; k++) {
        fputs("<th>", f);
        esc(r, e->key[k].metric);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    char a[32];
    for (int i = 0; i < e->nsteps; i++) {
        fprintf(f, "<tr><td class=\"l\">%s</td>", fmt_num(a, sizeof a, e->step[i], 8));
        for (int k = 0; k < e->nkeys; k++) {
            if (e->key[k].n[i] >= 0) fprintf(f, "<td title=\"n = %ld\">%s</td>", e->key[k].n[i], num(a, e->key[k].v[i]));
            else fprintf(f, "<td>%s</td>", isfinite(e->key[k].v[i]) ? num(a, e->key[k].v[i]) : "");
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div>\n", f);
}

// ---------------------------------------------------------------------------------------------------
// Episodes: for a few steps, a few groups, each with its best and worst completion side by side

static const char *verdict_class(const char *v) {
    if (!strcmp(v, "correct") || !strcmp(v, "passed")) return "ok";
    if (!strcmp(v, "wrong") || !strcmp(v, "failed") || !strcmp(v, "no_answer") || !strcmp(v, "timeout")) return "bad";
    return "";
}

// Reward parts {"math": 1, "format": 0.1} as "math 1 · format 0.1"; anything else verbatim.
static void write_parts(Report *r, const char *json) {
    cJSON *p = cJSON_Parse(json);
    char a[32];
    if (cJSON_IsObject(p)) {
        for (const cJSON *e = p->child; e; e = e->next) {
            if (e != p->child) fputs(" · ", r->f);
            esc(r, e->string);
            if (cJSON_IsNumber(e)) fprintf(r->f, " <b>%s</b>", num(a, e->valuedouble));
        }
    } else esc(r, json);
    cJSON_Delete(p);
}

enum { E_SAMPLE, E_PROMPT, E_COMPLETION, E_TOKENS, E_REWARD, E_PARTS, E_ADV, E_FINISH, E_VERDICT };
#define EPISODE_COLUMNS                                                                                        \
    "sample_idx, prompt, completion, completion_tokens, reward, reward_parts_json, advantage, finish_reason, "  \
    "verdict"

static void write_episode(Report *r, sqlite3_stmt *st, const char *tag) {
    FILE *f = r->f;
    char a[32];
    fprintf(f, "<div class=\"ep %s\"><div class=\"eh\"><span class=\"tag\">%s</span> · sample %d · reward <b>%s</b>",
            tag, tag, sqlite3_column_int(st, E_SAMPLE), num(a, col_num(st, E_REWARD)));
    if (sqlite3_column_type(st, E_ADV) != SQLITE_NULL) fprintf(f, " · adv <b>%+.3f</b>", sqlite3_column_double(st, E_ADV));
    if (sqlite3_column_type(st, E_TOKENS) != SQLITE_NULL) fprintf(f, " · %d tokens", sqlite3_column_int(st, E_TOKENS));
    const char *fr = col_str(st, E_FINISH), *vd = col_str(st, E_VERDICT);
    if (fr[0]) {
        fprintf(f, " · <span class=\"fr%s\">", !strcmp(fr, "length") ? " length" : "");
        esc(r, fr);
        fputs("</span>", f);
    }
    if (vd[0]) {
        fprintf(f, " · <span class=\"vd %s\">", verdict_class(vd));
        esc(r, vd);
        fputs("</span>", f);
    }
    fputs("</div>", f);
    if (sqlite3_column_type(st, E_PARTS) != SQLITE_NULL) {
        fputs("<div class=\"parts\">", f);
        write_parts(r, col_str(st, E_PARTS));
        fputs("</div>", f);
    }
    fputs("<pre>", f);
    esc_col_cut(r, st, E_COMPLETION);
    fputs("</pre></div>\n", f);
}

// Chips with every sample's reward, shaded from the group's worst (red) to its best (green); returns the
// sample indices of the best and the worst.
static int write_chips(Report *r, long run, double step, int group, int *best, int *worst) {
    FILE *f = r->f;
    sqlite3_stmt *st;
    TRY(prepare(r, &st, "SELECT sample_idx, reward, advantage, verdict, min(reward) OVER (), max(reward) OVER () "
                        "FROM episodes WHERE run_id = ? AND step = ? AND group_idx = ? "
                        "ORDER BY reward IS NULL, reward DESC, sample_idx", run));
    sqlite3_bind_double(st, 2, step);
    sqlite3_bind_int(st, 3, group);
    int rc, n = 0;
    char a[32], b[32];
    fputs("<span>", f);
    while ((rc = next_row(r, st)) == 1) {
        int idx = sqlite3_column_int(st, 0);
        double v = col_num(st, 1), lo = col_num(st, 4), hi = col_num(st, 5);
        if (n++ == 0) *best = idx;
        *worst = idx;
        if (isfinite(v) && hi > lo) fprintf(f, "<span class=\"chip\" style=\"background:hsl(%.0f,65%%,86%%)\"", 130 * (v - lo) / (hi - lo));
        else fputs("<span class=\"chip\"", f);
        fprintf(f, " title=\"sample %d · advantage %s", idx, num(b, col_num(st, 2)));
        if (sqlite3_column_bytes(st, 3) > 0) fputs(" · ", f), esc(r, col_str(st, 3));
        fprintf(f, "\">%s</span>", num(a, v));
    }
    fputs("</span>", f);
    sqlite3_finalize(st);
    return rc;
}

// One row of the group query: group_idx, count, mean reward, spread, task_id.
static int write_group(Report *r, long run, double step, sqlite3_stmt *g) {
    FILE *f = r->f;
    char a[32];
    int best = 0, worst = 0, group = sqlite3_column_int(g, 0);
    fprintf(f, "<div class=\"group\"><div class=\"gh\"><b>group %d</b>", group);
    if (sqlite3_column_type(g, 4) != SQLITE_NULL) {
        fputs("<span>task <b>", f);
        esc(r, col_str(g, 4));
        fputs("</b></span>", f);
    }
    fprintf(f, "<span>%d samples · mean reward <b>%s</b></span>", sqlite3_column_int(g, 1), num(a, col_num(g, 2)));
    TRY(write_chips(r, run, step, group, &best, &worst));
    sqlite3_stmt *st;
    TRY(prepare(r, &st, "SELECT " EPISODE_COLUMNS " FROM episodes WHERE run_id = ? AND step = ? AND group_idx = ? "
                        "AND sample_idx IN (?, ?) ORDER BY reward IS NULL, reward DESC, sample_idx", run));
    sqlite3_bind_double(st, 2, step);
    sqlite3_bind_int(st, 3, group);
    sqlite3_bind_int(st, 4, best);
    sqlite3_bind_int(st, 5, worst);
    int rc, k = 0;
    while ((rc = next_row(r, st)) == 1) {
        if (k == 0) {
            fputs("</div><details class=\"prompt\"><summary>prompt</summary><pre>", f);
            esc_col_cut(r, st, E_PROMPT);
            fputs("</pre></details><div class=\"pair\">", f);
        }
        write_episode(r, st, k++ == 0 ? "best" : "worst");
    }
    sqlite3_finalize(st);
    fputs("</div></div>\n", f);  // .pair and .group (.gh and .group had the rows gone)
    return rc;
}

static int write_step_panel(Report *r, long run, double step, long count, int ngroups, int i, int on) {
    FILE *f = r->f;
    char a[32];
    sqlite3_stmt *st;
    TRY(prepare(r, &st, "SELECT group_idx, count(*), avg(reward), max(reward) - min(reward) AS spread, min(task_id) "
                        "FROM episodes WHERE run_id = ? AND step = ? GROUP BY group_idx "
                        "ORDER BY spread IS NULL, spread DESC, group_idx LIMIT ?", run));
    sqlite3_bind_double(st, 2, step);
    sqlite3_bind_int(st, 3, r->opt.groups_shown);
    fprintf(f, "<div class=\"panel%s\" data-i=\"%d\"><div class=\"ph\"><b>step %s</b> · %ld episodes in %d groups",
            on ? " on" : "", i, fmt_num(a, sizeof a, step, 8), count, ngroups);
    if (ngroups > r->opt.groups_shown) fprintf(f, "; the %d with the widest reward spread", r->opt.groups_shown);
    fputs("</div>\n", f);
    int rc;
    while ((rc = next_row(r, st)) == 1) {
        rc = write_group(r, run, step, st);
        if (rc != 0) break;
    }
    sqlite3_finalize(st);
    fputs("</div>\n", f);
    return rc;
}

static int write_episodes(Report *r, long run) {
    FILE *f = r->f;
    long m = query_long(r, "SELECT count(DISTINCT step) FROM episodes WHERE run_id = ?", run);
    if (m <= 0) return (int)m;
    double *step = grpo_malloc(sizeof(double) * (size_t)m, "episode steps");
    long *count = grpo_malloc(sizeof(long) * (size_t)m, "episode counts");
    int *groups = grpo_malloc(sizeof(int) * (size_t)m, "episode groups");
    sqlite3_stmt *st = NULL;
    int rc = step && count && groups ? prepare(r, &st, "SELECT step, count(*), count(DISTINCT group_idx) FROM episodes "
                                                      "WHERE run_id = ? GROUP BY step ORDER BY step", run) : -1;
    int n = 0;
    while (rc == 0 && n < m && (rc = next_row(r, st)) == 1) {
        step[n] = sqlite3_column_double(st, 0), count[n] = (long)sqlite3_column_int64(st, 1);
        groups[n++] = sqlite3_column_int(st, 2);
        rc = 0;
    }
    sqlite3_finalize(st);
    // the first, the last and evenly spaced steps between them
    int shown = n < r->opt.steps_shown ? n : r->opt.steps_shown;
    int *pick = rc == 0 ? grpo_malloc(sizeof(int) * (size_t)(shown > 0 ? shown : 1), "episode steps") : NULL;
    if (pick) {
        for (int k = 0; k < shown; k++) pick[k] = shown == 1 ? n - 1 : (int)((double)k * (n - 1) / (shown - 1) + 0.5);
        char a[32];
        fprintf(f, "<h3>Episodes</h3>\n<div class=\"episodes\"><div class=\"stepbar\">");
        for (int k = 0; k < shown; k++)
            fprintf(f, "<button type=\"button\" data-i=\"%d\"%s>step %s</button>", k, k == shown - 1 ? " class=\"on\"" : "",
                    fmt_num(a, sizeof a, step[pick[k]], 8));
        fputs("</div>\n", f);
        for (int k = 0; k < shown && rc == 0; k++)
            rc = write_step_panel(r, run, step[pick[k]], count[pick[k]], groups[pick[k]], k, k == shown - 1);
        fputs("</div>\n", f);
    } else rc = -1;
    free(pick), free(step), free(count), free(groups);
    return rc;
}

// ---------------------------------------------------------------------------------------------------

static int write_run(Report *r, sqlite3_stmt *run) {
    long id = (long)sqlite3_column_int64(run, 0);
    Steps s;
    Evals e;
    TRY(load_steps(r, id, &s));
    long episodes = query_long(r, "SELECT count(*) FROM episodes WHERE run_id = ?", id);
    if (episodes < 0 || load_evals(r, id, &e) != 0) {
        steps_free(&s);
        return -1;
    }
    fprintf(r->f, "<section class=\"run\" id=\"run-%ld\">\n", id);
    write_header(r, run, &s, episodes);
    write_curves(r, &s);
    write_evals(r, &e);
    int rc = write_episodes(r, id);
    if (s.n == 0 && e.nkeys == 0 && episodes == 0) fputs("<p class=\"empty\">nothing recorded for this run yet</p>\n", r->f);
    fputs("</section>\n", r->f);
    steps_free(&s);
    evals_free(&e);
    return rc;
}

// Lists the runs to report (all, or opt.run_id) with their kinds for the page's navigation.
static int list_runs(Report *r, long **ids, char ***kinds, int *n) {
    *ids = NULL, *kinds = NULL, *n = 0;
    long total = query_long(r, "SELECT count(*) FROM runs", 0);
    if (total < 0) return -1;
    *ids = grpo_calloc((size_t)total + 1, sizeof(long), "run list");
    *kinds = grpo_calloc((size_t)total + 1, sizeof(char *), "run list");
    sqlite3_stmt *st;
    if (!*ids || !*kinds || prepare(r, &st, "SELECT id, kind FROM runs WHERE ?1 = 0 OR id = ?1 ORDER BY id",
                                    r->opt.run_id) != 0)
        return -1;
    int rc = 0;
    while (*n < total && (rc = next_row(r, st)) == 1) {
        (*ids)[*n] = (long)sqlite3_column_int64(st, 0);
        if (!((*kinds)[*n] = strdup(col_str(st, 1)))) {
            rc = ERR("out of memory listing runs");
            break;
        }
        ++*n;
    }
    sqlite3_finalize(st);
    if (rc < 0) return -1;
    if (r->opt.run_id && *n == 0) {
        char have[256] = "";
        if (prepare(r, &st, "SELECT group_concat(id, ', ') FROM (SELECT id FROM runs ORDER BY id LIMIT 20)", 0) == 0 &&
            next_row(r, st) == 1)
            snprintf(have, sizeof have, "%s", col_str(st, 0));
        sqlite3_finalize(st);
        return ERR("%s: no run %ld (runs: %s)", r->path, r->opt.run_id, have[0] ? have : "none");
    }
    return 0;
}

static int write_page(Report *r) {
    long *ids;
    char **kinds;
    int n;
    int rc = list_runs(r, &ids, &kinds, &n);
    if (rc == 0) {
        page_head(r, ids, (const char *const *)kinds, n);
        if (n == 0) fputs("<p class=\"empty\">no runs recorded in this database yet</p>\n", r->f);
        sqlite3_stmt *st;
        rc = prepare(r, &st, "SELECT id, kind, started_at, config_json, model, grpo_version FROM runs WHERE id = ?", 0);
        for (int i = 0; i < n && rc == 0; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, ids[i]);
            rc = next_row(r, st) == 1 ? write_run(r, st) : -1;
        }
        sqlite3_finalize(st);
        page_tail(r);
    }
    for (int i = 0; i < n; i++) free(kinds[i]);
    free(ids), free(kinds);
    return rc;
}

int report_write(const char *db_path, const char *out_path, const ReportOptions *opt) {
    Report r = {.path = db_path, .opt = opt ? *opt : report_defaults()};
    CHECK(r.opt.steps_shown >= 1 && r.opt.groups_shown >= 1 && r.opt.max_text >= 1,
          "report: steps_shown, groups_shown and max_text must be at least 1");
    struct stat a, b;
    CHECK(!(stat(db_path, &a) == 0 && stat(out_path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino),
          "%s: the report would overwrite the database it reads", out_path);
    TRY(make_nonce(r.nonce));
    int rc = open_db(&r);
    AtomicFile af;
    if (rc == 0) rc = atomic_open(&af, out_path);
    if (rc == 0) {
        r.f = af.f;
        rc = write_page(&r);
        rc = rc == 0 ? atomic_commit(&af) : (atomic_abort(&af), -1);
    }
    sqlite3_close(r.db);
    return rc;
}
