#include "rl/store.h"
#include "common/error.h"
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct Store {
    sqlite3 *db;
    // prepared once, reused every step (NULL when read-only)
    sqlite3_stmt *ins_step, *ins_episode, *ins_eval;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS runs(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, started_at TEXT NOT NULL,"
    " config_json TEXT, model TEXT, grpo_version TEXT);"
    "CREATE TABLE IF NOT EXISTS steps(run_id INTEGER NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL,"
    " metrics_json TEXT NOT NULL, reward_mean REAL, reward_std REAL, accuracy REAL, kl REAL, clip_frac REAL,"
    " entropy REAL, len_mean REAL, len_max REAL, truncated_frac REAL, zero_std_groups INTEGER, loss REAL, lr REAL,"
    " grad_norm REAL, rollout_tok_s REAL, train_tok_s REAL, seconds REAL, PRIMARY KEY(run_id, step));"
    "CREATE TABLE IF NOT EXISTS episodes(run_id INTEGER NOT NULL, step INTEGER NOT NULL, task_id TEXT,"
    " group_idx INTEGER NOT NULL, sample_idx INTEGER NOT NULL, prompt TEXT, completion TEXT,"
    " completion_tokens INTEGER, reward REAL, reward_parts_json TEXT, advantage REAL, finish_reason TEXT,"
    " logprob_sum REAL, verdict TEXT, PRIMARY KEY(run_id, step, group_idx, sample_idx));"
    "CREATE TABLE IF NOT EXISTS evals(run_id INTEGER NOT NULL, step INTEGER NOT NULL, dataset TEXT NOT NULL,"
    " metric TEXT NOT NULL, value REAL NOT NULL, n INTEGER, time REAL,"
    " PRIMARY KEY(run_id, step, dataset, metric));";

static const char *hint_for(int rc) {
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return " (another process holds the database: two trainers on one run directory?)";
    case SQLITE_CONSTRAINT: return " (a row with this key is already stored)";
    case SQLITE_FULL: return " (the disk is full)";
    case SQLITE_READONLY: return " (the file or its directory is not writable)";
    case SQLITE_CANTOPEN: return " (check that the directory exists and is writable)";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return " (not a grpo.c run database, or a damaged one)";
    case SQLITE_IOERR: return " (an I/O error: disk or file system trouble)";
    default: return "";
    }
}

int sqlite_fail(const char *file, int line, int rc, sqlite3 *db, const char *what) {
    const char *name = db ? sqlite3_db_filename(db, "main") : NULL;
    return grpo_errorf(file, line, "%s in %s: %s%s", what, name && *name ? name : "the database",
                       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), hint_for(rc));
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int exec(sqlite3 *db, const char *sql, const char *what) {
    sqliteCheck(sqlite3_exec(db, sql, NULL, NULL, NULL), db, what);
    return 0;
}

// Steps a bound insert or delete to completion and resets it for the next use, also after a failure.
static int run_stmt(sqlite3_stmt *st, sqlite3 *db, const char *what) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        sqlite_fail(__FILE__, __LINE__, rc, db, what);
        sqlite3_reset(st);
        return -1;
    }
    sqlite3_reset(st);
    return 0;
}

// The first column of the first row of a query into *out, 0 when there is no row or the value is NULL.
// Parameters: ?1 is `text` when given; the integers a, b fill the remaining ones in order.
static int query_i64(sqlite3 *db, const char *sql, const char *text, int64_t a, int64_t b, int64_t *out,
                     const char *what) {
    sqlite3_stmt *st;
    sqliteCheck(sqlite3_prepare_v2(db, sql, -1, &st, NULL), db, what);
    int n = sqlite3_bind_parameter_count(st), i = 1, rc = SQLITE_OK;
    if (text && n >= 1) rc = sqlite3_bind_text(st, i++, text, -1, SQLITE_STATIC);
    const int64_t ints[2] = {a, b};
    for (int k = 0; rc == SQLITE_OK && i <= n && k < 2; k++) rc = sqlite3_bind_int64(st, i++, ints[k]);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) sqlite_fail(__FILE__, __LINE__, rc, db, what);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

// Runs body(s, ctx) inside BEGIN IMMEDIATE .. COMMIT; any failure rolls everything back. IMMEDIATE takes
// the write lock up front, so a concurrent writer waits at BEGIN (busy timeout) rather than failing halfway.
static int in_transaction(Store *s, int (*body)(Store *, const void *), const void *ctx) {
    TRY(exec(s->db, "BEGIN IMMEDIATE", "starting a transaction"));
    if (body(s, ctx) == 0 && exec(s->db, "COMMIT", "committing") == 0) return 0;
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

// NULL (SQL NULL) or a JSON object; `what` names the field in the error.
static int check_json_object(const char *text, const char *what) {
    if (!text) return 0;
    cJSON *j = cJSON_Parse(text);
    bool ok = j && cJSON_IsObject(j);
    cJSON_Delete(j);
    CHECK(ok, "%s is not a JSON object: %.80s", what, text);
    return 0;
}

static int schema_body(Store *s, const void *readonly) {
    int64_t has_meta, n_tables, version;
    TRY(query_i64(s->db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'", NULL, 0, 0,
                  &has_meta, "reading the schema"));
    if (!has_meta) {
        TRY(query_i64(s->db, "SELECT count(*) FROM sqlite_master", NULL, 0, 0, &n_tables, "reading the schema"));
        CHECK(n_tables == 0 && !*(const bool *)readonly, "%s is not a grpo.c run database (%s)",
              sqlite3_db_filename(s->db, "main"), n_tables ? "other tables, no meta table" : "empty");
        TRY(exec(s->db, SCHEMA, "creating the schema"));
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO meta VALUES('schema_version', '%d')", STORE_SCHEMA_VERSION);
        return exec(s->db, sql, "recording the schema version");
    }
    TRY(query_i64(s->db, "SELECT value FROM meta WHERE key = 'schema_version'", NULL, 0, 0, &version,
                  "reading the schema version"));
    CHECK(version == STORE_SCHEMA_VERSION, "%s has schema version %lld; this build reads version %d",
          sqlite3_db_filename(s->db, "main"), (long long)version, STORE_SCHEMA_VERSION);
    return 0;
}

static int setup(Store *s, const char *path, bool readonly) {
    int rc = sqlite3_open_v2(path, &s->db, readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                             NULL);
    CHECK(rc == SQLITE_OK, "cannot open %s: %s%s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc),
          hint_for(rc));
    sqliteCheck(sqlite3_busy_timeout(s->db, 10000), s->db, "setting the busy timeout");
    if (readonly) return schema_body(s, &readonly);
    // WAL: readers (grpo report during training) never block the trainer's commits
    sqlite3_stmt *st;
    sqliteCheck(sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL), s->db, "setting WAL mode");
    rc = sqlite3_step(st);
    char mode[16] = "";
    if (rc == SQLITE_ROW) snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqliteCheck(rc, s->db, "setting WAL mode");
    CHECK(!strcmp(mode, "wal"), "%s cannot use WAL (journal mode stays '%s'): keep the run directory on a local disk",
          path, mode);
    TRY(exec(s->db, "PRAGMA synchronous=FULL", "setting synchronous=FULL"));
    TRY(in_transaction(s, schema_body, &readonly));
    const struct { const char *sql; sqlite3_stmt **st; } inserts[] = {
        {"INSERT INTO steps(run_id, step, time, metrics_json, reward_mean, reward_std, accuracy, kl, clip_frac,"
         " entropy, len_mean, len_max, truncated_frac, zero_std_groups, loss, lr, grad_norm, rollout_tok_s,"
         " train_tok_s, seconds) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
         " ?17, ?18, ?19, ?20)",
         &s->ins_step},
        {"INSERT INTO episodes(run_id, step, task_id, group_idx, sample_idx, prompt, completion, completion_tokens,"
         " reward, reward_parts_json, advantage, finish_reason, logprob_sum, verdict)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
         &s->ins_episode},
        {"INSERT INTO evals(run_id, step, dataset, metric, value, n, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
         &s->ins_eval},
    };
    for (int i = 0; i < 3; i++)
        sqliteCheck(sqlite3_prepare_v2(s->db, inserts[i].sql, -1, inserts[i].st, NULL), s->db, "preparing an insert");
    return 0;
}

static Store *open_store(const char *path, bool readonly) {
    Store *s = grpo_calloc(1, sizeof *s, "the run database");
    if (!s) return NULL;
    if (setup(s, path, readonly) != 0) {
        store_close(s);
        return NULL;
    }
    return s;
}

Store *store_open(const char *path) { return open_store(path, false); }
Store *store_open_readonly(const char *path) { return open_store(path, true); }

void store_close(Store *s) {
    if (!s) return;
    sqlite3_finalize(s->ins_step);
    sqlite3_finalize(s->ins_episode);
    sqlite3_finalize(s->ins_eval);
    sqlite3_close_v2(s->db);
    free(s);
}

sqlite3 *store_db(Store *s) { return s->db; }

static bool writable(const Store *s) { return s->ins_step != NULL; }

int store_begin_run(Store *s, const char *kind, const char *config_json, const char *model,
                    const char *grpo_version, int64_t *run_id) {
    CHECK(writable(s), "the run database is open read-only");
    static const char *const kinds[] = {"grpo", "sft", "distill", "eval"};
    bool known = false;
    for (int i = 0; i < 4; i++) known |= kind && !strcmp(kind, kinds[i]);
    CHECK(known, "unknown run kind '%s' (known: grpo, sft, distill, eval)", kind ? kind : "(null)");
    TRY(check_json_object(config_json, "the run config"));
    sqlite3_stmt *st;
    sqliteCheck(sqlite3_prepare_v2(s->db,
                                   "INSERT INTO runs(kind, started_at, config_json, model, grpo_version)"
                                   " VALUES (?1, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?2, ?3, ?4)",
                                   -1, &st, NULL),
                s->db, "preparing the run insert");
    int rc = sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, config_json, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, model, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 4, grpo_version, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) sqlite_fail(__FILE__, __LINE__, rc, s->db, "starting a run");
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return -1;
    *run_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int store_find_run(Store *s, const char *kind, int64_t *run_id) {
    return query_i64(s->db, "SELECT id FROM runs WHERE kind = ?1 ORDER BY id DESC LIMIT 1", kind ? kind : "", 0, 0,
                     run_id, "finding the latest run");
}

int store_last_step(Store *s, int64_t run_id, int64_t *step) {
    return query_i64(s->db, "SELECT max(step) FROM steps WHERE run_id = ?1", NULL, run_id, 0, step,
                     "finding the last step");
}

StepRecord store_step_init(int64_t step) {
    return (StepRecord){.step = step, .time = now(), .reward_mean = NAN, .reward_std = NAN, .accuracy = NAN,
                        .kl = NAN, .clip_frac = NAN, .entropy = NAN, .len_mean = NAN, .len_max = NAN,
                        .truncated_frac = NAN, .zero_std_groups = -1, .loss = NAN, .lr = NAN, .grad_norm = NAN,
                        .rollout_tok_s = NAN, .train_tok_s = NAN, .seconds = NAN};
}

// Binders that keep the first failure in *rc, so a row's binds are checked once.
static void bind_real(int *rc, sqlite3_stmt *st, int i, double v) {
    if (*rc == SQLITE_OK) *rc = isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}
static void bind_int(int *rc, sqlite3_stmt *st, int i, int64_t v, bool null) {
    if (*rc == SQLITE_OK) *rc = null ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
}
static void bind_str(int *rc, sqlite3_stmt *st, int i, const char *v) {
    if (*rc == SQLITE_OK) *rc = sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

typedef struct {
    int64_t run_id;
    const StepRecord *step;
    const EpisodeRecord *eps;
    int n_eps;
} StepWrite;

static int step_body(Store *s, const void *ctx) {
    const StepWrite *w = ctx;
    const StepRecord *r = w->step;
    int64_t exists;
    TRY(query_i64(s->db, "SELECT count(*) FROM runs WHERE id = ?1", NULL, w->run_id, 0, &exists, "checking the run"));
    CHECK(exists, "run %lld does not exist in %s (store_begin_run gives the id)", (long long)w->run_id,
          sqlite3_db_filename(s->db, "main"));
    int64_t done;
    TRY(query_i64(s->db, "SELECT count(*) FROM steps WHERE run_id = ?1 AND step = ?2", NULL, w->run_id, r->step,
                  &done, "checking the step"));
    CHECK(!done, "step %lld of run %lld is already stored (a resumed run calls store_truncate_after first)",
          (long long)r->step, (long long)w->run_id);
    sqlite3_stmt *st = s->ins_step;
    int rc = SQLITE_OK;
    bind_int(&rc, st, 1, w->run_id, false);
    bind_int(&rc, st, 2, r->step, false);
    bind_real(&rc, st, 3, r->time > 0 ? r->time : now());
    bind_str(&rc, st, 4, r->metrics_json);
    const double cols[] = {r->reward_mean, r->reward_std, r->accuracy, r->kl, r->clip_frac, r->entropy,
                           r->len_mean, r->len_max, r->truncated_frac};
    for (int i = 0; i < 9; i++) bind_real(&rc, st, 5 + i, cols[i]);
    bind_int(&rc, st, 14, r->zero_std_groups, r->zero_std_groups < 0);
    const double cols2[] = {r->loss, r->lr, r->grad_norm, r->rollout_tok_s, r->train_tok_s, r->seconds};
    for (int i = 0; i < 6; i++) bind_real(&rc, st, 15 + i, cols2[i]);
    sqliteCheck(rc, s->db, "binding the step row");
    TRY(run_stmt(st, s->db, "inserting the step row"));
    st = s->ins_episode;
    for (int i = 0; i < w->n_eps; i++) {
        const EpisodeRecord *e = &w->eps[i];
        TRY(check_json_object(e->reward_parts_json, "reward_parts_json"));
        bind_int(&rc, st, 1, w->run_id, false);
        bind_int(&rc, st, 2, r->step, false);
        bind_str(&rc, st, 3, e->task_id);
        bind_int(&rc, st, 4, e->group_idx, false);
        bind_int(&rc, st, 5, e->sample_idx, false);
        bind_str(&rc, st, 6, e->prompt);
        bind_str(&rc, st, 7, e->completion);
        bind_int(&rc, st, 8, e->completion_tokens, false);
        bind_real(&rc, st, 9, e->reward);
        bind_str(&rc, st, 10, e->reward_parts_json);
        bind_real(&rc, st, 11, e->advantage);
        bind_str(&rc, st, 12, e->finish_reason);
        bind_real(&rc, st, 13, e->logprob_sum);
        bind_str(&rc, st, 14, e->verdict);
        sqliteCheck(rc, s->db, "binding an episode");
        if (run_stmt(st, s->db, "inserting an episode") != 0)
            return grpo_error_context("episode %d (group %d, sample %d)", i, e->group_idx, e->sample_idx);
    }
    return 0;
}

int store_write_step(Store *s, int64_t run_id, const StepRecord *step, const EpisodeRecord *eps, int n_eps) {
    CHECK(writable(s), "the run database is open read-only");
    CHECK(step->metrics_json, "step %lld has no metrics_json", (long long)step->step);
    CHECK(n_eps >= 0 && (eps || n_eps == 0), "step %lld: %d episodes", (long long)step->step, n_eps);
    if (check_json_object(step->metrics_json, "metrics_json") != 0)
        return grpo_error_context("step %lld", (long long)step->step);
    StepWrite w = {run_id, step, eps, n_eps};
    if (in_transaction(s, step_body, &w) != 0)
        return grpo_error_context("writing step %lld of run %lld (nothing of it was stored)", (long long)step->step,
                                  (long long)run_id);
    return 0;
}

typedef struct {
    int64_t run_id, step;
    const EvalRecord *rows;
    int n;
} EvalWrite;

static int evals_body(Store *s, const void *ctx) {
    const EvalWrite *w = ctx;
    sqlite3_stmt *st = s->ins_eval;
    for (int i = 0; i < w->n; i++) {
        const EvalRecord *e = &w->rows[i];
        CHECK(e->dataset && e->metric, "eval row %d has no dataset or metric name", i);
        int rc = SQLITE_OK;
        bind_int(&rc, st, 1, w->run_id, false);
        bind_int(&rc, st, 2, w->step, false);
        bind_str(&rc, st, 3, e->dataset);
        bind_str(&rc, st, 4, e->metric);
        bind_real(&rc, st, 5, e->value);
        bind_int(&rc, st, 6, e->n, e->n < 0);
        bind_real(&rc, st, 7, e->time > 0 ? e->time : now());
        sqliteCheck(rc, s->db, "binding an eval row");
        if (run_stmt(st, s->db, "inserting an eval row") != 0)
            return grpo_error_context("%s %s", e->dataset, e->metric);
    }
    return 0;
}

int store_write_evals(Store *s, int64_t run_id, int64_t step, const EvalRecord *rows, int n) {
    CHECK(writable(s), "the run database is open read-only");
    EvalWrite w = {run_id, step, rows, n};
    if (in_transaction(s, evals_body, &w) != 0)
        return grpo_error_context("writing evals of step %lld of run %lld", (long long)step, (long long)run_id);
    return 0;
}

typedef struct {
    int64_t run_id, step;
} Truncate;

static int truncate_body(Store *s, const void *ctx) {
    const Truncate *t = ctx;
    char sql[320];
    snprintf(sql, sizeof sql,
             "DELETE FROM steps WHERE run_id = %lld AND step > %lld;"
             "DELETE FROM episodes WHERE run_id = %lld AND step > %lld;"
             "DELETE FROM evals WHERE run_id = %lld AND step > %lld;",
             (long long)t->run_id, (long long)t->step, (long long)t->run_id, (long long)t->step,
             (long long)t->run_id, (long long)t->step);
    return exec(s->db, sql, "deleting the later steps");
}

int store_truncate_after(Store *s, int64_t run_id, int64_t step) {
    CHECK(writable(s), "the run database is open read-only");
    Truncate t = {run_id, step};
    return in_transaction(s, truncate_body, &t);
}

int store_episodes_open(EpisodeCursor *c, Store *s, int64_t run_id, double min_reward) {
    c->store = s;
    c->stmt = NULL;
    sqliteCheck(sqlite3_prepare_v2(s->db,
                                   "SELECT run_id, step, group_idx, sample_idx, task_id, prompt, completion,"
                                   " finish_reason, verdict, completion_tokens, reward, advantage FROM episodes"
                                   " WHERE (?1 = 0 OR run_id = ?1) AND reward >= ?2"
                                   " ORDER BY run_id, step, group_idx, sample_idx",
                                   -1, &c->stmt, NULL),
                s->db, "selecting episodes");
    int rc = sqlite3_bind_int64(c->stmt, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_double(c->stmt, 2, min_reward);
    if (rc != SQLITE_OK) {
        sqlite_fail(__FILE__, __LINE__, rc, s->db, "selecting episodes");
        store_episodes_close(c);
        return -1;
    }
    return 0;
}

static double column_real(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

int store_episodes_next(EpisodeCursor *c, EpisodeRow *row) {
    int rc = sqlite3_step(c->stmt);
    if (rc == SQLITE_DONE) return 0;
    sqliteCheck(rc, c->store->db, "reading episodes");
    sqlite3_stmt *st = c->stmt;
    row->run_id = sqlite3_column_int64(st, 0);
    row->step = sqlite3_column_int64(st, 1);
    row->group_idx = sqlite3_column_int(st, 2);
    row->sample_idx = sqlite3_column_int(st, 3);
    const char **text[] = {&row->task_id, &row->prompt, &row->completion, &row->finish_reason, &row->verdict};
    for (int i = 0; i < 5; i++) *text[i] = (const char *)sqlite3_column_text(st, 4 + i);
    row->completion_tokens = sqlite3_column_int(st, 9);
    row->reward = column_real(st, 10);
    row->advantage = column_real(st, 11);
    return 1;
}

void store_episodes_close(EpisodeCursor *c) {
    sqlite3_finalize(c->stmt);
    c->stmt = NULL;
}
