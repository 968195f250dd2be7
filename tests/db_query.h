// One value from an SQL query, for the tests that read what a run wrote to its database.
#pragma once
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>

// The first column of the first row as an integer, -1 when there is none.
static inline long long sql_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

// The first column of the first row of a query on the database dir/name (opened read-only) as text in out;
// "(query failed: why)" when there is none.
static inline void db_text(const char *dir, const char *name, const char *sql, char *out, size_t cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    else
        snprintf(out, cap, "(query failed: %s)", db ? sqlite3_errmsg(db) : "no database");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

// The same as a number, NAN when there is none.
static inline double db_double(const char *dir, const char *name, const char *sql) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    double v = NAN;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}
