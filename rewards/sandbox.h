// A sandbox for running untrusted programs (model completions) with hard limits. Full mode: each run is a
// process in the user, network and UTS namespaces of its worker slot and in PID, mount and IPC namespaces
// of its own, mapped to an unprivileged host uid, whose root is a read-only tmpfs holding only /usr (and its
// /bin, /lib links) read-only, /dev/{null,zero,full,random,urandom}, its own /proc, the read-only job files
// under /h and a writable tmpfs scratch /sandbox; rlimits, a seccomp filter, a cleared environment, no
// capabilities; a wall-clock kill of its PID namespace; capped outputs. Per worker slot, cgroups (v1 or v2)
// cap the memory and process count of a whole run when the machine allows. Weak mode (only when namespaces
// are refused and the caller allows it): same rlimits and seccomp filter, uid 1999000000+, a scratch dir
// under /tmp removed afterwards, the process group killed.
//
// Runs are started by a long-lived process per slot, its zygote (sandbox.c), cloned from the caller once:
// a run copies no page of the caller (a trainer's gigabytes) and makes no user or network namespace, the
// costly ones. Nothing of a run reaches the next: a slot's runs never overlap, a run's whole PID namespace
// is gone before it returns, its /proc, /h, scratch and SysV IPC objects go with it, and in the shared
// namespaces no interface is up and the program has no capability to change anything. A zygote that dies
// is replaced by the slot's next run.
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    double timeout_s;     // wall clock per run; the whole process tree is killed at the deadline
    int cpu_s;            // RLIMIT_CPU per process
    long memory_mb;       // RLIMIT_AS per process, and the cgroup memory limit of a run when cgroups work
    int nproc;            // processes + threads per run (RLIMIT_NPROC; cgroup pids.max)
    int nofile;           // RLIMIT_NOFILE
    long fsize_mb;        // RLIMIT_FSIZE: largest file a run may write
    long scratch_mb;      // size of the writable scratch tmpfs
    long output_kb;       // cap on each of stdout and stderr; a run that exceeds it is killed
    bool allow_weak;      // run in weak mode if the kernel refuses namespaces (otherwise that is an error)
    int slots;            // concurrent runs (worker slots), for the per-slot cgroups
} SandboxLimits;

// Defaults: 10 s wall, 10 s CPU, 1024 MB, 32 processes, 64 files, 16 MB files, 32 MB scratch, 1024 KB output.
SandboxLimits sandbox_default_limits(void);

typedef struct Sandbox Sandbox;

// Probes what the kernel allows and prepares the seccomp filter and cgroups. Fails, explaining which
// namespace was refused, when full isolation is impossible and limits->allow_weak is false; when it is
// true, prints a warning to stderr and runs in weak mode.
Sandbox *sandbox_create(const SandboxLimits *limits);
void sandbox_destroy(Sandbox *sb);
// A line describing the isolation layers in use ("namespaces: user pid net mount ipc uts; ...").
const char *sandbox_layers(const Sandbox *sb);
bool sandbox_is_weak(const Sandbox *sb);
const SandboxLimits *sandbox_limits(const Sandbox *sb);

typedef struct {
    const char *name;     // a plain file name, placed in ../h from the starting directory (/h in full mode),
                          // read-only to the program
    const char *data;
    size_t len;
} SandboxFile;

typedef struct {
    const char *const *argv;   // argv[0] is an absolute path inside the sandbox (e.g. /usr/bin/python3)
    const SandboxFile *files;
    int nfiles;
    const char *stdin_data;    // fed on fd 0 (NULL: empty)
    size_t stdin_len;
    const char *secret;        // readable once on fd 4 (NULL: fd 4 closed); fd 3 is the report channel
} SandboxJob;

typedef struct {
    int exit_code;         // exit status, or -1 when killed by a signal
    int signal;            // terminating signal of the program, 0 if it exited
    bool timed_out;        // the wall deadline passed
    bool output_limit;     // stdout or stderr went over output_kb
    bool oom;              // the cgroup memory limit killed something
    char *out, *err, *report; // stdout, stderr, fd 3 (each capped, NUL-terminated, owned by the result)
    size_t out_len, err_len, report_len;
    double wall_s;
} SandboxResult;

// Runs one job in worker slot `slot` (0 <= slot < limits.slots; one run per slot at a time). Returns 0 when
// the program ran (whatever it did), -1 (grpo_error()) when the sandbox itself could not be set up.
int sandbox_run(Sandbox *sb, int slot, const SandboxJob *job, SandboxResult *res);
void sandbox_result_free(SandboxResult *res);

// The host pid of slot `slot`'s zygote, the long-lived process that starts the slot's runs (0 when none is
// up; the slot's next run starts one, so a zygote that died is replaced).
int sandbox_zygote_pid(const Sandbox *sb, int slot);

// Processes of slot `slot` still alive on the host (its cgroup's members, or else processes with its uids);
// 0 after every run, whatever the program did.
int sandbox_leftover(const Sandbox *sb, int slot);
