// grpo report: a run database -> one self-contained HTML file (curves, evals, sample episodes).
#include "cli/cli.h"
#include "rl/report.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *USAGE =
    "usage: grpo report RUN.db [-o FILE.html] [--run ID] [--steps N] [--groups N] [--max-text BYTES]\n"
    "\n"
    "Writes one HTML file that opens offline in any browser: per run its kind, model, start time and config;\n"
    "the training curves (reward mean ± std in total and per reward function, accuracy, KL, completion\n"
    "length, entropy, clip fraction, truncation, loss, grad norm, lr, tokens/s); the evals by step; and the\n"
    "best and the worst completion of a few groups at a few steps. The database is only read, so a run\n"
    "still in progress can be reported.\n"
    "  -o, --out FILE   the report (default: RUN.db's path with .html for .db)\n"
    "  --run ID         only this run (default: every run in the database)\n"
    "  --steps N        steps whose episodes are shown: the first, the last, evenly between (default %d)\n"
    "  --groups N       groups shown per step, the widest reward spread first (default %d)\n"
    "  --max-text BYTES how much of a prompt or completion is shown before it is cut (default %d)\n";

static void usage(FILE *f) {
    ReportOptions d = report_defaults();
    fprintf(f, USAGE, d.steps_shown, d.groups_shown, d.max_text);
}

int cmd_report(int argc, char **argv) {
    ReportOptions opt = report_defaults();
    const char *db = NULL, *out = NULL;
    long run = 0, steps = opt.steps_shown, groups = opt.groups_shown, max_text = opt.max_text;
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        }
        if (cli_str(argc, argv, &i, "-o", &out, &bad) || cli_str(argc, argv, &i, "--out", &out, &bad) ||
            cli_int(argc, argv, &i, "--run", &run, &bad) || cli_int(argc, argv, &i, "--steps", &steps, &bad) ||
            cli_int(argc, argv, &i, "--groups", &groups, &bad) || cli_int(argc, argv, &i, "--max-text", &max_text, &bad))
            continue;
        if (argv[i][0] != '-' && !db) {
            db = argv[i];
            continue;
        }
        fprintf(stderr, "grpo report: unknown option or argument '%s'\n\n", argv[i]);
        usage(stderr);
        return 2;
    }
    const char *why = !db ? "give the run database (RUN.db)"
                      : run < 0 ? "--run must be a run id (1 or more)"
                      : steps < 1 || steps > 1000 ? "--steps must be 1..1000"
                      : groups < 1 || groups > 1000 ? "--groups must be 1..1000"
                      : max_text < 1 || max_text > 1 << 30 ? "--max-text must be 1..2^30"
                                                              : NULL;
    if (bad || why) {
        if (!bad) fprintf(stderr, "grpo report: %s\n\n", why);
        usage(stderr);
        return 2;
    }
    char def[4096];
    if (!out) {
        size_t n = strlen(db);
        if (n > 3 && !strcmp(db + n - 3, ".db")) n -= 3;
        snprintf(def, sizeof def, "%.*s.html", (int)n, db);
        out = def;
    }
    opt.run_id = run, opt.steps_shown = (int)steps, opt.groups_shown = (int)groups, opt.max_text = (int)max_text;
    if (report_write(db, out, &opt) != 0) return cli_fail("report");
    struct stat st;
    fprintf(stderr, "wrote %s (%.0f KB)\n", out, stat(out, &st) == 0 ? st.st_size / 1024.0 : 0.0);
    return 0;
}
