// grpo report: builds run databases by plain SQL (the store's schema, with plausible GRPO and SFT runs and
// hostile model output), writes reports and checks their charts, sections, escaping, the atomic write,
// a database being written meanwhile, and the errors for a missing file and a database of another kind.
// `test_report --db PATH` (a realistic 200-step run) and `--hostile-db PATH` (the tests' database) only
// write a database, for tests/test_report_browser.sh and the README's screenshot.
#include "tests/cli_run.h"
#include "tests/test.h"
#include "common/error.h"
#include "common/fileio.h"
#include "rl/report.h"
#include "rl/svg_chart.h"
#include <dirent.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/grpo_report_XXXXXX";

static const char SCHEMA[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, started_at TEXT NOT NULL, config_json TEXT,"
    " model TEXT, grpo_version TEXT);"
    "CREATE TABLE steps(run_id INTEGER NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL, metrics_json TEXT NOT NULL,"
    " reward_mean REAL, reward_std REAL, accuracy REAL, kl REAL, clip_frac REAL, entropy REAL, len_mean REAL,"
    " len_max REAL, truncated_frac REAL, zero_std_groups INTEGER, loss REAL, lr REAL, grad_norm REAL,"
    " rollout_tok_s REAL, train_tok_s REAL, seconds REAL, PRIMARY KEY(run_id, step));"
    "CREATE TABLE episodes(run_id INTEGER NOT NULL, step INTEGER NOT NULL, task_id TEXT, group_idx INTEGER NOT NULL,"
    " sample_idx INTEGER NOT NULL, prompt TEXT, completion TEXT, completion_tokens INTEGER, reward REAL,"
    " reward_parts_json TEXT, advantage REAL, finish_reason TEXT, logprob_sum REAL, verdict TEXT,"
    " PRIMARY KEY(run_id, step, group_idx, sample_idx));"
    "CREATE TABLE evals(run_id INTEGER NOT NULL, step INTEGER NOT NULL, dataset TEXT NOT NULL, metric TEXT NOT NULL,"
    " value REAL NOT NULL, n INTEGER, time REAL, PRIMARY KEY(run_id, step, dataset, metric));"
    "INSERT INTO meta VALUES('schema_version', '1');";

static const char HOSTILE[] = "</script><script>alert(1)</script><img src=x onerror=alert(2)> & \"q\" 'a'\n"
                              "\tindented\n\nbad bytes \xff\xfe|\x01|\xc3";

static uint64_t rng_state;
static double urand(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double noise(void) { return urand() + urand() + urand() - 1.5; }  // mean 0, std 0.5

static void exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "sql failed: %s\n  %s\n", msg, sql);
        exit(1);
    }
}

// Binds v to parameter i as a double, or NULL when it is NAN.
static void bind_num(sqlite3_stmt *st, int i, double v) {
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

static void step_done(sqlite3_stmt *st) {
    if (sqlite3_step(st) != SQLITE_DONE) {
        fprintf(stderr, "insert failed: %s\n", sqlite3_errmsg(sqlite3_db_handle(st)));
        exit(1);
    }
    sqlite3_reset(st);
}

typedef struct {
    double reward, math, format, adv;
    int tokens, verdict;  // 0 correct, 1 wrong, 2 no answer, 3 truncated
    char text[2048];
} Sample;

static const char *const VERDICTS[] = {"correct", "wrong", "no_answer", "no_answer"};

// A completion to "a boxes of b pencils, c given away": its kind, and a length growing with `checks`.
static void write_completion(Sample *s, int kind, int a, int b, int c, int checks) {
    int ans = a * b - c, n = 0;
    size_t cap = sizeof s->text;
    if (kind == 3) {
        n += snprintf(s->text + n, cap - n, "<think>\nThere are %d boxes with %d pencils each.", a, b);
        while (n < 1200) n += snprintf(s->text + n, cap - n, " Wait, let me reconsider how many boxes there are.");
    } else {
        int prod = kind == 1 ? a * b + b : a * b;
        n += snprintf(s->text + n, cap - n, "%sEach box holds %d pencils, so %d boxes hold %d × %d = %d pencils.\n"
                      "She gives away %d, leaving %d − %d = %d.\n", kind == 2 ? "" : "<think>\n", b, a, a, b, prod, c,
                      prod, c, prod - c);
        for (int k = 0; k < checks && n < 1500; k++)
            n += snprintf(s->text + n, cap - n, "Let me double-check: %d × %d = %d, and %d − %d = %d. Yes.\n", a, b,
                          prod, prod, c, prod - c);
        if (kind == 2) snprintf(s->text + n, cap - n, "So the answer is %d.", prod - c);
        else snprintf(s->text + n, cap - n, "</think>\n<answer>%d</answer>", kind == 1 ? prod - c : ans);
    }
    s->verdict = kind;
    s->math = kind == 0;
    s->format = kind <= 1;
    s->reward = s->math + 0.2 * s->format;
    s->tokens = kind == 3 ? 512 : (int)strlen(s->text) / 3;
}

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

// Run 1: GRPO, P groups of G samples per step whose step metrics are computed from its episodes; run 2:
// SFT. `hostile` puts model output meant to break the page into step 1 and leaves grad_norm NULL in run 1.
static void make_db(const char *path, int nsteps, int P, int G, int hostile) {
    unlink(path);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) exit(1);
    rng_state = 0x9E3779B97F4A7C15ull;
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, SCHEMA);
    exec(db, "BEGIN");
    exec(db, "INSERT INTO runs VALUES(1, 'grpo', '2026-11-20T09:14:03Z', '{\"model\": \"runs/sft-tiny/step-600\", "
             "\"group_size\": 8, \"prompts_per_step\": 8, \"lr\": 1e-6, \"beta\": 0.04, \"clip_eps\": 0.2, "
             "\"rewards\": [{\"name\": \"math\", \"weight\": 1}, {\"name\": \"format\", \"weight\": 0.2}], "
             "\"sampling\": {\"temperature\": 1.0, \"top_p\": 1.0, \"max_tokens\": 512}}', 'runs/sft-tiny/step-600', "
             "'0.1.0')");
    exec(db, "INSERT INTO runs VALUES(2, 'sft', '2026-11-19T16:40:00Z', '{\"lr\": 2e-5, \"epochs\": 1}', "
             "'runs/tiny-init', '0.1.0')");
    sqlite3_stmt *ep, *stp, *ev;
    sqlite3_prepare_v2(db, "INSERT INTO episodes VALUES(1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &ep, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO steps VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1,
                       &stp, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO evals VALUES(?, ?, ?, ?, ?, ?, ?)", -1, &ev, NULL);
    Sample *smp = calloc((size_t)G, sizeof *smp);
    double clock = 1795000000;
    for (int step = 1; step <= nsteps; step++) {
        double t = nsteps > 1 ? (step - 1.0) / (nsteps - 1) : 0;
        double pc = 0.15 + 0.55 * sigmoid(9 * (t - 0.4)), pn = 0.45 * exp(-6 * t) + 0.03, pt = 0.004 + 0.012 * t;
        double sum = 0, sum2 = 0, msum = 0, msum2 = 0, fsum = 0, fsum2 = 0, lsum = 0, lmax = 0;
        int n = 0, correct = 0, truncated = 0, zero_std = 0;
        for (int g = 0; g < P; g++) {
            int a = 3 + (int)(urand() * 9), b = 4 + (int)(urand() * 20), c = 1 + (int)(urand() * a * b / 2);
            double d = 0.5 * (urand() - 0.5), gm = 0, gs = 0;
            for (int i = 0; i < G; i++) {
                double u = urand();
                int kind = u < pc + d ? 0 : u < pc + d + pn ? 2 : u < pc + d + pn + pt ? 3 : 1;
                write_completion(&smp[i], kind, a, b, c, (int)(urand() * (2 + 12 * t)));
                if (hostile && step == 1 && g == 0) {
                    smp[i].reward = smp[i].math = smp[i].format = 0, smp[i].verdict = 1;
                    if (i == 0) snprintf(smp[i].text, sizeof smp[i].text, "%s", HOSTILE), smp[i].reward = 1.2;
                }
                gm += smp[i].reward;
            }
            gm /= G;
            for (int i = 0; i < G; i++) gs += (smp[i].reward - gm) * (smp[i].reward - gm);
            gs = sqrt(gs / G);
            zero_std += gs == 0;
            char prompt[512], task[32], parts[96];
            snprintf(prompt, sizeof prompt, "Solve the problem. Think step by step inside <think></think>, then give "
                     "only the final number inside <answer></answer>.\n\nProblem: A shop sells pencils in boxes of %d. "
                     "Maria buys %d boxes and gives away %d pencils. How many pencils does she have left?", b, a, c);
            snprintf(task, sizeof task, hostile && step == 1 && g == 0 ? "<b>t</b>" : "pencils-%04d",
                     (step * 37 + g * 11) % 7473);
            for (int i = 0; i < G; i++) {
                Sample *s = &smp[i];
                s->adv = (s->reward - gm) / (gs + 1e-4);
                snprintf(parts, sizeof parts, hostile && step == 1 && g == 0 && i == 0
                         ? "{\"<i>math</i>\": %g, \"format\": %g}" : "{\"math\": %g, \"format\": %g}", s->math, s->format);
                sqlite3_bind_int(ep, 1, step);
                sqlite3_bind_text(ep, 2, task, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int(ep, 3, g);
                sqlite3_bind_int(ep, 4, i);
                sqlite3_bind_text(ep, 5, prompt, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(ep, 6, s->text, -1, SQLITE_TRANSIENT);
                sqlite3_bind_int(ep, 7, s->tokens);
                sqlite3_bind_double(ep, 8, s->reward);
                sqlite3_bind_text(ep, 9, parts, -1, SQLITE_TRANSIENT);
                sqlite3_bind_double(ep, 10, s->adv);
                sqlite3_bind_text(ep, 11, s->verdict == 3 ? "length" : "stop", -1, SQLITE_STATIC);
                sqlite3_bind_double(ep, 12, -0.35 * s->tokens);
                sqlite3_bind_text(ep, 13, VERDICTS[s->verdict], -1, SQLITE_STATIC);
                step_done(ep);
                n++, sum += s->reward, sum2 += s->reward * s->reward, msum += s->math, msum2 += s->math * s->math;
                fsum += s->format, fsum2 += s->format * s->format, lsum += s->tokens;
                lmax = fmax(lmax, s->tokens), correct += s->verdict == 0, truncated += s->verdict == 3;
            }
        }
        double rm = sum / n, rs = sqrt(fmax(0, sum2 / n - rm * rm)), mm = msum / n, ms = sqrt(fmax(0, msum2 / n - mm * mm));
        double fm = fsum / n, fs = sqrt(fmax(0, fsum2 / n - fm * fm));
        double kl = step == 1 ? 0 : (0.002 + 0.045 * pow(t, 1.3)) * (1 + 0.3 * noise());
        double entropy = 0.95 - 0.4 * t + 0.03 * noise(), clip = step == 1 ? 0 : 0.012 + 0.03 * t + 0.006 * noise();
        double lr = 1e-6 * (step <= nsteps / 20 + 1 ? (double)step / (nsteps / 20 + 1) : 0.55 + 0.45 * cos(M_PI * t));
        double grad = hostile ? NAN : (0.9 - 0.4 * t) * (1 + 0.25 * noise());
        double roll = 2500 - 500 * t + 120 * noise(), train = 6900 + 300 * noise();
        double secs = lsum / roll + 2 * lsum / train + 0.4;
        clock += secs + 0.3;
        char metrics[1024];
        snprintf(metrics, sizeof metrics, "{\"reward/mean\": %.6g, \"reward/std\": %.6g, \"reward/math/mean\": %.6g, "
                 "\"reward/math/std\": %.6g, \"reward/format/mean\": %.6g, \"reward/format/std\": %.6g, \"kl\": %.6g, "
                 "\"entropy\": %.6g, \"time/rollout\": %.4g, \"time/update\": %.4g, \"time/step\": %.4g%s}", rm, rs, mm,
                 ms, fm, fs, kl, entropy, lsum / roll, 2 * lsum / train, secs,
                 hostile ? ", \"reward/<svg onload=alert(3)>/mean\": 0.5" : "");
        double row[] = {clock, NAN, rm, rs, (double)correct / n, kl, clip, entropy, lsum / n, lmax,
                        (double)truncated / n, zero_std, 0.04 * kl + 0.01 * noise(), lr, grad, roll, train, secs};
        sqlite3_bind_int(stp, 1, 1);
        sqlite3_bind_int(stp, 2, step);
        for (int k = 0; k < 18; k++) bind_num(stp, 3 + k, row[k]);
        sqlite3_bind_text(stp, 4, metrics, -1, SQLITE_TRANSIENT);
        step_done(stp);
        if (step == 1 || step % (nsteps / 4 > 0 ? nsteps / 4 : 1) == 0) {
            struct { const char *ds, *metric; double v; int n; } e[] = {
                {"gsm8k_test", "pass@1", 0.2 + 0.45 * sigmoid(9 * (t - 0.45)), 1319},
                {"gsm8k_test", "pass@8", 0.55 + 0.3 * sigmoid(8 * (t - 0.4)), 1319},
                {"math500", "pass@1", 0.08 + 0.2 * sigmoid(8 * (t - 0.5)), 500}};
            for (int k = 0; k < 3; k++) {
                sqlite3_bind_int(ev, 1, 1);
                sqlite3_bind_int(ev, 2, step);
                sqlite3_bind_text(ev, 3, e[k].ds, -1, SQLITE_STATIC);
                sqlite3_bind_text(ev, 4, e[k].metric, -1, SQLITE_STATIC);
                sqlite3_bind_double(ev, 5, round(e[k].v * 1e4) / 1e4);
                sqlite3_bind_int(ev, 6, e[k].n);
                sqlite3_bind_double(ev, 7, clock);
                step_done(ev);
            }
        }
    }
    for (int step = 1; step <= 150; step++) {
        double t = (step - 1) / 149.0, loss = 0.7 + 0.9 * exp(-5 * t) + 0.04 * noise();
        double row[] = {1794950000 + 4.0 * step, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, loss,
                        2e-5 * (0.1 + 0.9 * (0.5 + 0.5 * cos(M_PI * t))), 1.2 * exp(-2 * t) + 0.2, NAN, 21000 + 800 * noise(), 3.9};
        sqlite3_bind_int(stp, 1, 2);
        sqlite3_bind_int(stp, 2, step);
        for (int k = 0; k < 18; k++) bind_num(stp, 3 + k, row[k]);
        char metrics[64];
        snprintf(metrics, sizeof metrics, "{\"loss\": %.4f}", loss);
        sqlite3_bind_text(stp, 4, metrics, -1, SQLITE_TRANSIENT);
        step_done(stp);
    }
    exec(db, "INSERT INTO evals VALUES(2, 75, 'gsm8k_test', 'pass@1', 0.1314, 1319, NULL),"
             "(2, 150, 'gsm8k_test', 'pass@1', 0.1842, 1319, NULL)");
    exec(db, "COMMIT");
    free(smp);
    sqlite3_finalize(ep), sqlite3_finalize(stp), sqlite3_finalize(ev);
    sqlite3_close(db);
}

// The file `name` in the test's directory (in one of 32 buffers used in turn: enough for one run).
static char *path_in(const char *name) {
    static char buf[32][256];
    static int k;
    char *p = buf[k++ % 32];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

// 1 if needle occurs in [a, b).
static int within(const char *a, const char *b, const char *needle) {
    const char *p = a && b ? strstr(a, needle) : NULL;
    return p && p < b;
}

// An independent UTF-8 check: every lead byte followed by the right number of continuation bytes.
static int valid_utf8(const unsigned char *s) {
    for (; *s; s++) {
        int k = *s < 0x80 ? 0 : (*s & 0xE0) == 0xC0 && *s >= 0xC2 ? 1 : (*s & 0xF0) == 0xE0 ? 2
                : (*s & 0xF8) == 0xF0 && *s <= 0xF4 ? 3 : -1;
        if (k < 0) return 0;
        for (; k > 0; k--)
            if ((*++s & 0xC0) != 0x80) return 0;
    }
    return 1;
}

// 1 if every element that nests (div, span, pre, ...) is closed as often as it is opened.
static int balanced(const char *html) {
    const char *tags[] = {"div", "span", "section", "details", "summary", "pre", "svg", "table", "tr", "th", "td",
                          "button", "h2", "h3", "p", "b", "title", "text", "nav", "header", "main", "script", "style"};
    int ok = 1;
    for (size_t k = 0; k < sizeof tags / sizeof tags[0]; k++) {
        char open1[32], open2[32], close[32];
        snprintf(open1, sizeof open1, "<%s>", tags[k]);
        snprintf(open2, sizeof open2, "<%s ", tags[k]);
        snprintf(close, sizeof close, "</%s>", tags[k]);
        int o = count(html, open1) + count(html, open2), c = count(html, close);
        if (o != c) fprintf(stderr, "  <%s> opened %d times, closed %d times\n", tags[k], o, c), ok = 0;
    }
    return ok;
}

// The text of run `id`'s section.
static char *section(const char *html, int id) {
    char open[64];
    snprintf(open, sizeof open, "<section class=\"run\" id=\"run-%d\">", id);
    const char *a = strstr(html, open), *b = a ? strstr(a, "</section>") : NULL;
    return a && b ? strndup(a, (size_t)(b - a)) : strdup("");
}

static void test_contents(void) {
    char *db = path_in("run.db"), *out = path_in("report.html");
    make_db(db, 12, 4, 4, 1);
    EXPECT(report_write(db, out, NULL) == 0, "report_write: %s", grpo_error());
    char *html = read_file(out, NULL);
    if (!html) return;
    EXPECT(!strncmp(html, "<!doctype html>", 15), "starts as HTML");
    EXPECT(strlen(html) > 9 && !strcmp(html + strlen(html) - 8, "</html>\n"), "ends with </html>");
    EXPECT(valid_utf8((const unsigned char *)html), "the report is valid UTF-8");
    EXPECT(balanced(html), "elements closed");
    EXPECT(strstr(html, "Content-Security-Policy\" content=\"default-src 'none'"), "CSP forbids loading anything");
    EXPECT(!strstr(html, "http://") && !strstr(html, "https://") && !strstr(html, " src=\""), "no external resources");
    EXPECT(count(html, "<script") == 2 && count(html, "<script nonce=\"") == 2, "only the page's two scripts, with "
           "the nonce: %d", count(html, "<script"));
    // the hostile completion, task id, reward part and reward name are text
    EXPECT(!strstr(html, "alert(1)</script>") && !strstr(html, "<img") && !strstr(html, "<b>t</b>") &&
           !strstr(html, "<i>math") && !strstr(html, "<svg onload"), "no hostile markup survives");
    EXPECT(strstr(html, "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; "
                        "&amp; &quot;q&quot; &#39;a&#39;\n\tindented\n\nbad bytes \xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD|"
                        "\xEF\xBF\xBD</pre>"), "hostile completion escaped with its whitespace kept");
    EXPECT(strstr(html, "task <b>&lt;b&gt;t&lt;/b&gt;</b>"), "task id escaped");
    EXPECT(strstr(html, "&lt;i&gt;math&lt;/i&gt; <b>0</b>"), "reward part names escaped");
    EXPECT(strstr(html, "aria-label=\"reward: &lt;svg onload=alert(3)&gt;\""), "reward name escaped in a chart");

    char *s1 = section(html, 1), *s2 = section(html, 2);
    // run 1: reward, 3 reward functions, accuracy, KL, length, entropy, clip, truncated, zero-std, loss, lr,
    // throughput, step time (grad norm is all NULL) + the evals' pass@1 and pass@8
    EXPECT(count(s1, "<svg class=\"chart\"") == 17, "run 1 charts: %d", count(s1, "<svg class=\"chart\""));
    const char *titles[] = {"reward", "reward: math", "reward: format", "accuracy", "KL to the reference",
                            "completion length", "policy entropy", "clip fraction", "truncated completions",
                            "zero-std groups", "loss", "learning rate", "throughput", "step time", "pass@1",
                            "gsm8k_test pass@8"};
    for (size_t k = 0; k < sizeof titles / sizeof titles[0]; k++) {
        char want[96];
        snprintf(want, sizeof want, "aria-label=\"%s\"", titles[k]);
        EXPECT(strstr(s1, want), "run 1 has the chart %s", titles[k]);
    }
    EXPECT(!strstr(s1, "aria-label=\"grad norm\""), "an all-NULL metric has no chart");
    EXPECT(!strstr(s1, "aria-label=\"reward: mean\"") && !strstr(s1, "aria-label=\"reward: \""),
           "reward/mean and reward/std are the total, not a reward function");
    const char *t = strstr(s1, "aria-label=\"step time\""), *te = t ? strstr(t, "</svg>") : NULL;
    EXPECT(within(t, te, ">step</text>") && within(t, te, ">rollout</text>") && within(t, te, ">update</text>") &&
           !within(t, te, ">time/step") && !within(t, te, ">step ± std"), "step time: the total and the phases");
    EXPECT(strstr(s1, ">math ± std</text>") && strstr(s1, ">mean</text>") && strstr(s1, ">max</text>") &&
           strstr(s1, ">rollout</text>") && strstr(s1, ">training</text>"), "legends");
    EXPECT(count(s1, "<title>step 12\nreward: ") == 1, "hover titles on points");
    EXPECT(strstr(s1, ">step</text>") && strstr(s1, ">tokens / s</text>"), "axis labels");
    EXPECT(!strstr(html, "nan") && !strstr(html, "inf\""), "no NaN or Inf coordinates");
    // header: kind, start, model, config (pretty-printed, collapsible), steps and episodes
    EXPECT(strstr(s1, "<span class=\"kind grpo\">grpo</span>") && strstr(s1, "2026-11-20T09:14:03Z") &&
           strstr(s1, "runs/sft-tiny/step-600"), "run 1 header");
    EXPECT(strstr(s1, "<details class=\"cfg\"><summary>config</summary><pre>{\n\t&quot;model&quot;:\t&quot;runs/sft-tiny"), "config");
    EXPECT(strstr(s1, "<div class=\"k\">steps</div><div class=\"v\">12</div>") &&
           strstr(s1, "<div class=\"k\">episodes</div><div class=\"v\">192</div>"), "step and episode counts");
    // evals: a chart per metric, a table with a column per dataset and metric
    EXPECT(strstr(s1, "<h3>Evals</h3>") && strstr(s1, "<th colspan=\"2\">gsm8k_test</th><th colspan=\"1\">math500</th>"),
           "eval table header");
    EXPECT(count(s1, "<tr><td class=\"l\">") == 5, "eval rows: steps 1, 3, 6, 9, 12");
    EXPECT(strstr(s1, "<td title=\"n = 1319\">"), "eval sample counts");
    // episodes: 8 steps by default out of 12 (the first and the last among them), 3 groups each
    EXPECT(count(s1, "<button type=\"button\" data-i=") == 8 && strstr(s1, ">step 1</button>") &&
           strstr(s1, "class=\"on\">step 12</button>"), "step buttons");
    EXPECT(count(s1, "<div class=\"group\">") == 24 && count(s1, "<div class=\"ep best\">") == 24 &&
           count(s1, "<div class=\"ep worst\">") == 24, "best and worst of 3 groups at 8 steps");
    EXPECT(strstr(s1, "<span class=\"tag\">best</span> · sample 0 · reward <b>1.2</b>"), "the hostile sample is a best");
    EXPECT(strstr(s1, "<span class=\"vd bad\">wrong</span>") && strstr(s1, "class=\"fr\">stop</span>"), "verdicts");
    EXPECT(strstr(s1, "<details class=\"prompt\"><summary>prompt</summary><pre>Solve the problem. Think step by step "
                      "inside &lt;think&gt;&lt;/think&gt;"), "prompt");
    // run 2 (SFT): only what it logged
    EXPECT(count(s2, "<svg class=\"chart\"") == 6, "run 2 charts: %d", count(s2, "<svg class=\"chart\""));
    EXPECT(strstr(s2, "aria-label=\"grad norm\"") && strstr(s2, "aria-label=\"loss\"") && !strstr(s2, "aria-label=\"reward\""),
           "run 2 charts");
    EXPECT(!strstr(s2, ">rollout</text>") && !strstr(s2, "Episodes"), "run 2 has no rollouts");
    EXPECT(strstr(html, "<nav><a href=\"#run-1\">run 1 · grpo</a><a href=\"#run-2\">run 2 · sft</a></nav>"), "nav");
    free(s1), free(s2), free(html);
}

static void test_options(void) {
    char *db = path_in("run.db"), *out = path_in("opt.html");
    ReportOptions o = report_defaults();
    o.run_id = 2;
    EXPECT(report_write(db, out, &o) == 0, "--run 2: %s", grpo_error());
    char *html = read_file(out, NULL);
    EXPECT(html && strstr(html, "id=\"run-2\"") && !strstr(html, "id=\"run-1\"") && !strstr(html, "<nav>"), "one run");
    free(html);
    o = report_defaults();
    o.steps_shown = 20, o.groups_shown = 1, o.max_text = 40;
    EXPECT(report_write(db, out, &o) == 0, "options: %s", grpo_error());
    html = read_file(out, NULL);
    EXPECT(html && count(html, "<button type=\"button\"") == 12 && count(html, "<div class=\"group\">") == 12,
           "every step when there are few, one group each");
    EXPECT(html && strstr(html, "<span class=\"cut\">… "), "long texts are cut");
    EXPECT(html && valid_utf8((const unsigned char *)html), "cut at a UTF-8 boundary");
    EXPECT(html && balanced(html), "elements closed with texts cut");
    free(html);
    o = report_defaults();
    o.run_id = 7;
    EXPECT(report_write(db, out, &o) != 0 && strstr(grpo_error(), "no run 7 (runs: 1, 2)"), "unknown run: %s",
           grpo_error());
}

// The output of a failed report is untouched, a good one replaces it whole, and no temporary file stays.
static void test_bad_inputs_and_atomic_write(void) {
    char *out = path_in("keep.html");
    write_file_atomic(out, "old", 3);
    char *missing = path_in("missing.db");
    EXPECT(report_write(missing, out, NULL) != 0 && strstr(grpo_error(), missing) && strstr(grpo_error(), "no such file"),
           "missing file: %s", grpo_error());
    char *other = path_in("other.db");
    sqlite3 *db;
    sqlite3_open(other, &db);
    exec(db, "CREATE TABLE meta(key TEXT, value TEXT); CREATE TABLE runs(id INTEGER); CREATE TABLE steps(x);");
    sqlite3_close(db);
    EXPECT(report_write(other, out, NULL) != 0 && strstr(grpo_error(), other) && strstr(grpo_error(), "no table 'episodes'"),
           "not a grpo.c database: %s", grpo_error());
    char *text = path_in("notes.db");
    write_file_atomic(text, "these are not the tables you are looking for\n", 45);
    EXPECT(report_write(text, out, NULL) != 0 && strstr(grpo_error(), text), "not SQLite: %s", grpo_error());
    char *run = path_in("run.db");
    EXPECT(report_write(run, run, NULL) != 0 && strstr(grpo_error(), "would overwrite the database"),
           "the database as the output: %s", grpo_error());
    EXPECT(report_write(run, path_in("no/such/dir/r.html"), NULL) != 0, "an output directory that does not exist");
    char *html = read_file(out, NULL);
    EXPECT(html && !strcmp(html, "old"), "failed reports leave the old file");
    free(html);
    EXPECT(report_write(run, out, NULL) == 0, "%s", grpo_error());
    html = read_file(out, NULL);
    EXPECT(html && strlen(html) > 10000, "replaced");
    free(html);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        EXPECT(!strstr(e->d_name, ".tmp"), "temporary file left behind: %s", e->d_name);
    if (d) closedir(d);

    char *empty = path_in("empty.db");
    sqlite3_open(empty, &db);
    exec(db, SCHEMA);
    sqlite3_close(db);
    EXPECT(report_write(empty, out, NULL) == 0, "a database without runs: %s", grpo_error());
    html = read_file(out, NULL);
    EXPECT(html && strstr(html, "no runs recorded in this database yet"), "says so");
    free(html);
}

// A trainer holds the database open in WAL mode and is inside a write transaction: the report reads the
// committed steps and leaves the database alone.
static void test_live_database(void) {
    char *db_path = path_in("live.db"), *out = path_in("live.html");
    make_db(db_path, 5, 2, 2, 0);
    sqlite3 *w;
    sqlite3_open(db_path, &w);
    exec(w, "BEGIN IMMEDIATE; INSERT INTO steps(run_id, step, time, metrics_json, reward_mean) "
            "VALUES(1, 6, 1795000100, '{}', 9.5)");
    EXPECT(report_write(db_path, out, NULL) == 0, "report while a write transaction is open: %s", grpo_error());
    char *html = read_file(out, NULL);
    EXPECT(html && strstr(html, "<div class=\"k\">steps</div><div class=\"v\">5</div>"), "only committed steps");
    free(html);
    exec(w, "COMMIT");
    EXPECT(report_write(db_path, out, NULL) == 0, "after the commit: %s", grpo_error());
    html = read_file(out, NULL);
    EXPECT(html && strstr(html, "<div class=\"k\">steps</div><div class=\"v\">6</div>"), "the new step");
    free(html);
    sqlite3_close(w);
}

static void test_chart_helpers(void) {
    char buf[32];
    EXPECT(!strcmp(fmt_num(buf, sizeof buf, 12500, 3), "12.5k"), "%s", buf);
    EXPECT(!strcmp(fmt_num(buf, sizeof buf, 20000, 1), "20k"), "a scaled tick in fixed point: %s", buf);
    EXPECT(!strcmp(fmt_num(buf, sizeof buf, 2e-5, 2), "2e-5"), "%s", buf);
    EXPECT(!strcmp(fmt_num(buf, sizeof buf, 0.25, 4), "0.25"), "%s", buf);
    EXPECT(!strcmp(fmt_num(buf, sizeof buf, -3.5e6, 2), "-3.5M"), "%s", buf);
    EXPECT(!strcmp(fmt_num(buf, sizeof buf, NAN, 2), "–"), "%s", buf);
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    html_escape(f, "a<b>&\"'\xe2\x82\xac\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80", 19);
    fclose(f);
    EXPECT(!strcmp(mem, "a&lt;b&gt;&amp;&quot;&#39;€\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"),
           "surrogates, overlong forms and code points past U+10FFFF are replaced byte by byte: %s", mem);
    free(mem);
    double x[3] = {1, 2, 3}, none[3] = {NAN, NAN, NAN}, flat[3] = {0.5, 0.5, 0.5}, one[3] = {NAN, 4, NAN};
    ChartSeries s[4] = {{"none", none, NULL}, {"flat", flat, NULL}, {"one", one, flat}, {"nostd", flat, none}};
    EXPECT(!chart_has_data(&(Chart){"t", "step", "y", x, 3, s, 1}), "all-NAN series has no data");
    f = open_memstream(&mem, &len);
    chart_svg(f, &(Chart){"t", "step", "y", x, 3, s, 4});
    fclose(f);
    EXPECT(!strstr(mem, "nan") && !strstr(mem, "inf"), "a flat line and a single point have finite coordinates");
    EXPECT(!strstr(mem, ">none<") && strstr(mem, ">flat</text>") && strstr(mem, ">one ± std</text>") &&
           strstr(mem, ">nostd</text>"), "the legend leaves out the empty series and the empty band");
    EXPECT(count(mem, "fill-opacity=\"0.16\"") == 1, "one band, that of `one`");
    EXPECT(chart_smoothing(59) == 0 && chart_smoothing(120) == 5, "smoothing windows");
    double xs[120], ys[120];
    for (int i = 0; i < 120; i++) xs[i] = i + 1, ys[i] = (i % 2 ? 1 : -1) + 0.01 * i;
    char *m2 = NULL;
    f = open_memstream(&m2, &len);
    chart_svg(f, &(Chart){"long", "step", "y", xs, 120, &(ChartSeries){"zigzag", ys, NULL}, 1});
    fclose(f);
    EXPECT(count(m2, "stroke-opacity=\"0.3\"") == 1 && count(m2, "<path fill=\"none\"") == 2,
           "a long noisy line is drawn faint under its moving average");
    EXPECT(count(m2, "<circle class=\"pt\"") == 120 && count(m2, "r=\"2.4\"") == 0, "hover targets, no markers");
    free(m2);
    EXPECT(strstr(mem, ">4</text>") && strstr(mem, ">5</text>") && strstr(mem, "<title>step 2\none: 4 ± 0.5</title>"), "ticks and titles: %s", mem);
    free(mem);
}

// Runs `grpo report ARGS` in dir; returns its exit status with stdout and stderr in out.
static int run_cli(const char *args, char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "report %s", args);
    return cli_run(dir, cmd, true, out, cap);
}

static void test_cli(void) {
    char out[8192];
    EXPECT(run_cli("run.db", out, sizeof out) == 0 && strstr(out, "wrote run.html"), "default output: %s", out);
    EXPECT(path_exists(path_in("run.html")), "run.html written");
    EXPECT(run_cli("run.db -o r2.html --run 1 --steps 2 --groups 1", out, sizeof out) == 0, "options: %s", out);
    char *html = read_file(path_in("r2.html"), NULL);
    EXPECT(html && count(html, "<div class=\"group\">") == 2 && !strstr(html, "run-2"), "options applied");
    free(html);
    EXPECT(run_cli("--help", out, sizeof out) == 0 && strstr(out, "usage: grpo report RUN.db"), "help: %s", out);
    EXPECT(run_cli("", out, sizeof out) == 2 && strstr(out, "give the run database"), "no database: %s", out);
    EXPECT(run_cli("run.db --steps 0", out, sizeof out) == 2, "bad --steps: %s", out);
    EXPECT(run_cli("run.db --bogus", out, sizeof out) == 2 && strstr(out, "'--bogus'"), "unknown option: %s", out);
    EXPECT(run_cli("nope.db", out, sizeof out) == 1 && strstr(out, "grpo report: ") && strstr(out, "nope.db: no such file"),
           "missing database: %s", out);
}

int main(int argc, char **argv) {
    if (argc == 3 && (!strcmp(argv[1], "--db") || !strcmp(argv[1], "--hostile-db"))) {
        int hostile = !strcmp(argv[1], "--hostile-db");
        make_db(argv[2], hostile ? 12 : 200, hostile ? 4 : 8, hostile ? 4 : 8, hostile);
        return 0;
    }
    if (!mkdtemp(dir)) return 1;
    RUN_TEST(test_chart_helpers);
    RUN_TEST(test_contents);
    RUN_TEST(test_options);
    RUN_TEST(test_bad_inputs_and_atomic_write);
    RUN_TEST(test_live_database);
    RUN_TEST(test_cli);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
