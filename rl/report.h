// grpo report: one self-contained HTML file from a run database (rl/store's SQLite schema, read with SQL
// only): per run its header and config, the training curves as inline SVG charts, the evals, and a
// sample of episodes (the best and the worst completion of a few groups at a few steps). The page loads
// nothing (its Content-Security-Policy forbids it) and runs only its own small script, so it opens
// offline and untrusted model output in it stays text.
#pragma once

typedef struct {
    long run_id;       // the run to report; 0 = every run in the database
    int steps_shown;   // steps whose episodes are shown: the first, the last and evenly spaced between
    int groups_shown;  // groups per shown step, those with the widest reward spread first
    int max_text;      // bytes of a prompt or completion shown before it is cut (at a UTF-8 boundary)
} ReportOptions;

// The defaults used when report_write gets NULL options.
ReportOptions report_defaults(void);

// Reads db_path (opened read-only, in one read transaction: a trainer may be writing it) and writes the
// report to out_path atomically. A file that is not a grpo.c database is an error naming the file and
// the missing table; an unknown run_id names the runs there are. Returns 0 or -1 (see grpo_error()).
int report_write(const char *db_path, const char *out_path, const ReportOptions *opt);
