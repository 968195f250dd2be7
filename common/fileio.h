// File helpers shared by every reader and writer: whole-file reads, directories, and atomic writes.
// Every writer in grpo.c (configs, safetensors, checkpoints, reports) goes through AtomicFile so that a
// crash or a full disk leaves either the old file or the new one, never a torn mix.
#pragma once
#include <stddef.h>
#include <stdio.h>

// An atomic write in progress: data goes to `tmp` (a unique name in the target's directory, so the final
// rename never crosses file systems); commit renames it over `path`.
typedef struct {
    FILE *f;          // open on tmp while writing; NULL once committed or aborted
    char tmp[4096];
    char path[4096];
} AtomicFile;

// Opens a temporary file beside `path`. Returns 0 or -1 (nothing is left behind on failure).
int atomic_open(AtomicFile *af, const char *path);
// Flushes, fsyncs, renames tmp over path, fsyncs the directory. On failure the temporary file is removed,
// the old target is untouched, and -1 is returned. A write error on af->f (ferror) also fails here, so
// callers may fwrite without checking each call.
int atomic_commit(AtomicFile *af);
// Closes and removes the temporary file; safe to call after a failed commit or twice.
void atomic_abort(AtomicFile *af);
int write_file_atomic(const char *path, const void *data, size_t n);

// Reads a whole file into a NUL-terminated malloc'd buffer (the NUL is not counted in *len; len may be
// NULL). Returns NULL with an error naming the path.
char *read_file(const char *path, size_t *len);
// Creates `dir` and its missing parents (mode 0755); an existing directory is fine. Returns 0 or -1.
int mkdir_p(const char *dir);
// 1 if path is an existing directory (following links), else 0.
int path_is_dir(const char *path);
// 1 if path exists (any type), else 0.
int path_exists(const char *path);
