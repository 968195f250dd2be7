#define _GNU_SOURCE
#include "rewards/sandbox.h"
#include "common/error.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

// Host uids of the sandbox: slot s maps its namespace uids 0 (set-up) and 1 (the program) to
// UID_BASE + 2s and UID_BASE + 2s + 1, which own nothing on the host.
#define UID_BASE 1999000000u
#define REPORT_CAP (256 * 1024)
#define NS_FLAGS (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)

typedef struct {
    char mem[512], pids[512];   // per-slot cgroup directories ("" when that controller is not in use)
    bool v2;
} SlotCgroup;

struct Sandbox {
    SandboxLimits lim;
    bool weak;
    char layers[512];
    struct sock_fprog filter;   // seccomp BPF, built once (the child must not allocate)
    char scratch_opts[96];      // tmpfs options of /sandbox
    SlotCgroup *cg;             // (slots)
};

SandboxLimits sandbox_default_limits(void) {
    return (SandboxLimits){.timeout_s = 10, .cpu_s = 10, .memory_mb = 1024, .nproc = 32, .nofile = 64,
                           .fsize_mb = 16, .scratch_mb = 32, .output_kb = 1024, .allow_weak = false, .slots = 1};
}

const char *sandbox_layers(const Sandbox *sb) { return sb->layers; }
bool sandbox_is_weak(const Sandbox *sb) { return sb->weak; }
const SandboxLimits *sandbox_limits(const Sandbox *sb) { return &sb->lim; }

// ---------------------------------------------------------------------------------------------------
// seccomp: refuse what tests never need. EPERM (not a kill) so that the program sees an ordinary error.

static int build_filter(Sandbox *sb) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    CHECK(ctx, "seccomp_init failed");
    static const char *const deny[] = {
        "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
        "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "kexec_load",
        "kexec_file_load", "bpf", "keyctl", "add_key", "request_key", "init_module", "finit_module",
        "delete_module", "unshare", "setns", "perf_event_open", "userfaultfd", "reboot", "swapon", "swapoff",
        "syslog", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "quotactl",
        "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "iopl", "ioperm", "io_uring_setup",
        "io_uring_enter", "io_uring_register", "vhangup", "fanotify_init", "pidfd_getfd", "personality",
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof deny / sizeof *deny && rc == 0; i++) {
        int nr = seccomp_syscall_resolve_name(deny[i]);
        if (nr != __NR_SCMP_ERROR) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    // clone3 passes its flags in memory that BPF cannot read: ENOSYS makes libc fall back to clone.
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    static const unsigned long nsflags[] = {CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWNS,
                                            CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP};
    for (size_t i = 0; i < sizeof nsflags / sizeof *nsflags && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, nsflags[i], nsflags[i]));
    // No network at all, even where the namespace is missing (weak mode): only local sockets.
    static const int domains[] = {AF_INET, AF_INET6, AF_PACKET, AF_NETLINK};
    for (size_t i = 0; i < sizeof domains / sizeof *domains && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)domains[i]));
    if (sb->weak && rc == 0) {
        // Without a PID namespace the process group is what gets killed, so it must not be left, and
        // kill(-1) would reach every process of the same uid on the host.
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setsid), 0);
        if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setpgid), 0);
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, 0xffffffffu));
    }
    int fd = rc == 0 ? memfd_create("grpo-seccomp", MFD_CLOEXEC) : -1;
    if (fd >= 0 && seccomp_export_bpf(ctx, fd) == 0) {
        off_t n = lseek(fd, 0, SEEK_END);
        struct sock_filter *prog = n > 0 ? malloc((size_t)n) : NULL;
        if (prog && pread(fd, prog, (size_t)n, 0) == n) {
            sb->filter.filter = prog;
            sb->filter.len = (unsigned short)(n / (off_t)sizeof *prog);
        } else {
            free(prog);
        }
    }
    if (fd >= 0) close(fd);
    seccomp_release(ctx);
    CHECK(sb->filter.filter, "building the seccomp filter failed (rule error %d)", rc);
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// cgroups: one directory per slot under this process's own cgroup, so a run's processes together stay
// under memory_mb (+ scratch) and nproc. Used when the hierarchy is writable; otherwise rlimits only.

static int write_str(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, s, strlen(s));
    close(fd);
    return n == (ssize_t)strlen(s) ? 0 : -1;
}

// The path of this process's cgroup for `controller` ("" = the v2 unified one), into out.
static bool own_cgroup(const char *controller, char *out, size_t cap) {
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        line[strcspn(line, "\n")] = 0;
        c2[1 + strcspn(c2 + 1, "\n")] = 0;
        const char *ctl = c1 + 1;
        bool match = false;
        if (!controller[0]) {
            match = strcmp(line, "0") == 0 && ctl[0] == 0;
        } else {
            // v1 lines may list several controllers: "4:cpu,cpuacct:/path".
            size_t n = strlen(controller);
            for (const char *s = ctl; s && *s && !match; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
                match = strncmp(s, controller, n) == 0 && (s[n] == ',' || s[n] == 0);
        }
        if (match) { snprintf(out, cap, "%s", c2 + 1); found = true; }
    }
    fclose(f);
    return found;
}

static bool make_cgroup(const char *dir, const char *limit_file, const char *value) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return false;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, limit_file);
    if (write_str(p, value) != 0) { rmdir(dir); return false; }
    return true;
}

static void setup_cgroups(Sandbox *sb) {
    static int seq;  // sandboxes of this process, so that each gets its own cgroups
    int id = __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED);
    char rel[512], dir[600], val[32];
    long mem = (sb->lim.memory_mb + sb->lim.scratch_mb) << 20;
    int made = 0;
    struct stat st;
    bool v2 = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0;
    for (int s = 0; s < sb->lim.slots; s++) {
        SlotCgroup *c = &sb->cg[s];
        c->v2 = v2;
        if (v2) {
            if (!own_cgroup("", rel, sizeof rel)) break;
            snprintf(dir, sizeof dir, "/sys/fs/cgroup%s/grpo-sandbox-%d-%d-%d", rel, (int)getpid(), id, s);
            snprintf(val, sizeof val, "%ld", mem);
            if (!make_cgroup(dir, "memory.max", val)) break;
            snprintf(val, sizeof val, "%d", sb->lim.nproc + 8);
            char p[700];
            snprintf(p, sizeof p, "%s/pids.max", dir);
            if (write_str(p, val) != 0) { rmdir(dir); break; }
            snprintf(c->mem, sizeof c->mem, "%s", dir);
            snprintf(c->pids, sizeof c->pids, "%s", dir);
        } else {
            if (own_cgroup("memory", rel, sizeof rel)) {
                snprintf(dir, sizeof dir, "/sys/fs/cgroup/memory%s/grpo-sandbox-%d-%d-%d", rel, (int)getpid(), id, s);
                snprintf(val, sizeof val, "%ld", mem);
                if (make_cgroup(dir, "memory.limit_in_bytes", val)) snprintf(c->mem, sizeof c->mem, "%s", dir);
            }
            if (own_cgroup("pids", rel, sizeof rel)) {
                snprintf(dir, sizeof dir, "/sys/fs/cgroup/pids%s/grpo-sandbox-%d-%d-%d", rel, (int)getpid(), id, s);
                snprintf(val, sizeof val, "%d", sb->lim.nproc + 8);
                if (make_cgroup(dir, "pids.max", val)) snprintf(c->pids, sizeof c->pids, "%s", dir);
            }
        }
        made += c->mem[0] && c->pids[0];
    }
    size_t n = strlen(sb->layers);
    if (made == sb->lim.slots)
        snprintf(sb->layers + n, sizeof sb->layers - n, "; cgroup %s: memory %ld MB, pids %d per run",
                 v2 ? "v2" : "v1", mem >> 20, sb->lim.nproc + 8);
    else
        snprintf(sb->layers + n, sizeof sb->layers - n, "; cgroups: not writable here (rlimits only)");
}

static long oom_kills(const SlotCgroup *c) {
    if (!c->mem[0]) return 0;
    char p[600], buf[4096];
    snprintf(p, sizeof p, "%s/%s", c->mem, c->v2 ? "memory.events" : "memory.oom_control");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *k = strstr(buf, "oom_kill ");
    return k ? atol(k + 9) : 0;
}

static void remove_cgroups(Sandbox *sb) {
    for (int s = 0; s < sb->lim.slots; s++) {
        const SlotCgroup *c = &sb->cg[s];
        // The killed processes of the last run may still be exiting; rmdir succeeds once they are gone.
        for (int tries = 0; tries < 100; tries++) {
            bool busy = (c->mem[0] && rmdir(c->mem) != 0 && errno == EBUSY) |
                        (c->pids[0] && !c->v2 && rmdir(c->pids) != 0 && errno == EBUSY);
            if (!busy) break;
            usleep(10000);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The child. It runs after a raw clone of a possibly multi-threaded process, so it only makes system
// calls on memory prepared by the parent: libc's set*id wrappers would wait for the parent's other
// threads, which do not exist here. A failing step is sent as (step, errno) on the error pipe.

typedef struct {
    const Sandbox *sb;
    const SandboxJob *job;
    int slot;
    int fds[5];          // become 0..4 (-1: closed)
    int sync_fd, err_fd;
    const char *weak_dir; // weak mode: scratch base (with h/ and work/ made by the parent)
    char *const *envp;
} ChildArgs;

typedef struct { int err; char step[124]; } ChildError;

static __attribute__((noreturn)) void child_fail(int fd, const char *step, const char *arg) {
    ChildError e = {.err = errno};
    size_t n = 0;
    for (const char *s = step; *s && n < sizeof e.step - 1; s++) e.step[n++] = *s;
    if (arg && n < sizeof e.step - 2) e.step[n++] = ' ';
    for (const char *s = arg; s && *s && n < sizeof e.step - 1; s++) e.step[n++] = *s;
    if (write(fd, &e, sizeof e) < 0) {}
    _exit(127);
}

static void cat_path(char *out, size_t cap, const char *a, const char *b) {
    size_t n = 0;
    for (const char *s = a; *s && n < cap - 1; s++) out[n++] = *s;
    for (const char *s = b; *s && n < cap - 1; s++) out[n++] = *s;
    out[n] = 0;
}

// Binds src read-only at dst, keeping the flags the kernel locks for mounts from a more privileged
// namespace (changing them would make the remount fail with EPERM).
static void bind_ro(int efd, const char *src, const char *dst) {
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) child_fail(efd, "bind", src);
    struct statvfs sv;
    if (statvfs(dst, &sv) != 0) child_fail(efd, "statvfs", dst);
    unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) fl |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) fl |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) fl |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) fl |= MS_RELATIME;
    if (mount(NULL, dst, NULL, fl, NULL) != 0) child_fail(efd, "remount read-only", dst);
}

static void write_files(int efd, const char *dir, const SandboxJob *job) {
    char p[512];
    for (int i = 0; i < job->nfiles; i++) {
        cat_path(p, sizeof p, dir, job->files[i].name);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
        if (fd < 0) child_fail(efd, "create", p);
        for (size_t off = 0; off < job->files[i].len;) {
            ssize_t n = write(fd, job->files[i].data + off, job->files[i].len - off);
            if (n <= 0) child_fail(efd, "write", p);
            off += (size_t)n;
        }
        close(fd);
    }
}

// The new root: a tmpfs mounted over /tmp in the private mount namespace, then pivoted to.
static void build_root(int efd, const Sandbox *sb, const SandboxJob *job) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) child_fail(efd, "make mounts private", "/");
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755") != 0)
        child_fail(efd, "mount tmpfs root", NULL);
    static const char *const sys_dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"};
    char dst[512], link[256];
    for (size_t i = 0; i < sizeof sys_dirs / sizeof *sys_dirs; i++) {
        struct stat st;
        if (lstat(sys_dirs[i], &st) != 0) continue;
        cat_path(dst, sizeof dst, "/tmp", sys_dirs[i]);
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(sys_dirs[i], link, sizeof link - 1);
            if (n <= 0) child_fail(efd, "readlink", sys_dirs[i]);
            link[n] = 0;
            if (symlink(link, dst) != 0) child_fail(efd, "symlink", dst);
        } else if (S_ISDIR(st.st_mode)) {
            if (mkdir(dst, 0755) != 0) child_fail(efd, "mkdir", dst);
            bind_ro(efd, sys_dirs[i], dst);
        }
    }
    // Without /etc the dynamic loader has no cache and searches its built-in directories.
    if (mkdir("/tmp/dev", 0755) != 0) child_fail(efd, "mkdir", "/tmp/dev");
    static const char *const devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) {
        cat_path(dst, sizeof dst, "/tmp", devs[i]);
        int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) child_fail(efd, "create", dst);
        close(fd);
        if (mount(devs[i], dst, NULL, MS_BIND, NULL) != 0) child_fail(efd, "bind", devs[i]);
    }
    if (mkdir("/tmp/proc", 0555) != 0) child_fail(efd, "mkdir", "/tmp/proc");
    if (mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        child_fail(efd, "mount", "/proc");
    if (mkdir("/tmp/h", 0755) != 0) child_fail(efd, "mkdir", "/tmp/h");
    write_files(efd, "/tmp/h/", job);
    if (mkdir("/tmp/sandbox", 0700) != 0) child_fail(efd, "mkdir", "/tmp/sandbox");
    if (mount("tmpfs", "/tmp/sandbox", "tmpfs", MS_NOSUID | MS_NODEV, sb->scratch_opts) != 0)
        child_fail(efd, "mount tmpfs", "/sandbox");
    if (chdir("/tmp") != 0) child_fail(efd, "chdir", "/tmp");
    if (syscall(SYS_pivot_root, ".", ".") != 0) child_fail(efd, "pivot_root", NULL);
    if (umount2(".", MNT_DETACH) != 0) child_fail(efd, "detach the old root", NULL);
    if (chdir("/") != 0) child_fail(efd, "chdir", "/");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
        child_fail(efd, "remount read-only", "/");
    if (chdir("/sandbox") != 0) child_fail(efd, "chdir", "/sandbox");
}

static __attribute__((noreturn)) void child_main(const ChildArgs *a) {
    const Sandbox *sb = a->sb;
    const SandboxLimits *L = &sb->lim;
    int efd = a->err_fd;
    char c;
    if (read(a->sync_fd, &c, 1) != 1) _exit(127);  // the parent failed to set us up
    close(a->sync_fd);
    uid_t uid;
    if (!sb->weak) {
        if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0)
            child_fail(efd, "become namespace root", NULL);
        if (sethostname("sandbox", 7) != 0) child_fail(efd, "sethostname", NULL);
        build_root(efd, sb, a->job);
        uid = 1;
    } else {
        if (setsid() < 0) child_fail(efd, "setsid", NULL);
        char work[512];
        cat_path(work, sizeof work, a->weak_dir, "/work");
        if (chdir(work) != 0) child_fail(efd, "chdir", work);
        uid = UID_BASE + 2u * (unsigned)a->slot + 1;
    }
    // Standard descriptors: first above the range, then into place (sources may sit in 0..4).
    int hi[5];
    for (int i = 0; i < 5; i++) {
        hi[i] = a->fds[i] >= 0 ? fcntl(a->fds[i], F_DUPFD_CLOEXEC, 16) : -1;
        if (a->fds[i] >= 0 && hi[i] < 0) child_fail(efd, "dup", NULL);
    }
    for (int i = 0; i < 5; i++) {
        if (hi[i] < 0) { close(i); continue; }
        if (dup2(hi[i], i) != i) child_fail(efd, "dup2", NULL);
    }
    if (syscall(SYS_close_range, 5, ~0u, CLOSE_RANGE_CLOEXEC) != 0) child_fail(efd, "close_range", NULL);
    struct { int res; rlim_t v; } rl[] = {
        {RLIMIT_CPU, (rlim_t)L->cpu_s}, {RLIMIT_AS, (rlim_t)L->memory_mb << 20},
        {RLIMIT_NPROC, (rlim_t)L->nproc}, {RLIMIT_NOFILE, (rlim_t)L->nofile},
        {RLIMIT_FSIZE, (rlim_t)L->fsize_mb << 20}, {RLIMIT_CORE, 0}, {RLIMIT_MEMLOCK, 0},
        {RLIMIT_MSGQUEUE, 0}, {RLIMIT_STACK, 8u << 20},
    };
    for (size_t i = 0; i < sizeof rl / sizeof *rl; i++) {
        // CPU: SIGXCPU at the soft limit, SIGKILL one second later for a program that catches it.
        struct rlimit r = {rl[i].v, rl[i].res == RLIMIT_CPU ? rl[i].v + 1 : rl[i].v};
        if (setrlimit(rl[i].res, &r) != 0) child_fail(efd, "setrlimit", NULL);
    }
    if (syscall(SYS_setgroups, 0, NULL) != 0) child_fail(efd, "setgroups", NULL);
    if (syscall(SYS_setresgid, uid, uid, uid) != 0 || syscall(SYS_setresuid, uid, uid, uid) != 0)
        child_fail(efd, "drop to uid", NULL);
    if (sb->weak && prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(efd, "PR_SET_PDEATHSIG", NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(efd, "PR_SET_NO_NEW_PRIVS", NULL);
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sb->filter) != 0) child_fail(efd, "seccomp", NULL);
    execve(a->job->argv[0], (char *const *)a->job->argv, a->envp);
    child_fail(efd, "execve", a->job->argv[0]);
}

// ---------------------------------------------------------------------------------------------------
// The parent side of a run.

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int weak_scratch(const Sandbox *sb, int slot, const SandboxJob *job, char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/grpo-sandbox-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
    char p[600];
    int rc = chmod(dir, 0755);
    snprintf(p, sizeof p, "%s/h", dir);
    if (rc == 0) rc = mkdir(p, 0755);
    for (int i = 0; i < job->nfiles && rc == 0; i++) {
        snprintf(p, sizeof p, "%s/h/%s", dir, job->files[i].name);
        FILE *f = fopen(p, "wbe");
        rc = f && fwrite(job->files[i].data, 1, job->files[i].len, f) == job->files[i].len ? 0 : -1;
        if (f && fclose(f) != 0) rc = -1;
        if (rc == 0) rc = chmod(p, 0444);
    }
    snprintf(p, sizeof p, "%s/work", dir);
    uid_t uid = UID_BASE + 2u * (unsigned)slot + 1;
    if (rc == 0) rc = mkdir(p, 0700);
    if (rc == 0) rc = chown(p, uid, uid);
    if (rc != 0) {
        int e = errno;
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return ERR("preparing the scratch directory %s: %s", dir, strerror(e));
    }
    return 0;
}

static int write_id_maps(pid_t pid, int slot) {
    char p[64], m[64];
    unsigned base = UID_BASE + 2u * (unsigned)slot;
    snprintf(m, sizeof m, "0 %u 2\n", base);
    snprintf(p, sizeof p, "/proc/%d/uid_map", (int)pid);
    CHECK(write_str(p, m) == 0, "writing %s: %s", p, strerror(errno));
    snprintf(p, sizeof p, "/proc/%d/gid_map", (int)pid);
    CHECK(write_str(p, m) == 0, "writing %s: %s", p, strerror(errno));
    return 0;
}

typedef struct { char *buf; size_t len, cap; int fd; bool over; } Sink;

// Reads what is available; returns false at EOF or error. Past `cap` bytes the sink marks `over`.
static bool sink_read(Sink *s) {
    char tmp[65536];
    ssize_t n = read(s->fd, tmp, sizeof tmp);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n <= 0) return false;
    size_t take = (size_t)n;
    if (s->len + take > s->cap) { take = s->cap - s->len; s->over = true; }
    memcpy(s->buf + s->len, tmp, take);
    s->len += take;
    return true;
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

int sandbox_run(Sandbox *sb, int slot, const SandboxJob *job, SandboxResult *res) {
    memset(res, 0, sizeof *res);
    CHECK(slot >= 0 && slot < sb->lim.slots, "sandbox slot %d out of range [0, %d)", slot, sb->lim.slots);
    for (int i = 0; i < job->nfiles; i++)
        CHECK(job->files[i].name[0] && !strchr(job->files[i].name, '/'), "bad sandbox file name '%s'",
              job->files[i].name);
    size_t out_cap = (size_t)sb->lim.output_kb << 10;
    Sink sinks[3] = {{.cap = out_cap}, {.cap = out_cap}, {.cap = REPORT_CAP}};
    for (int i = 0; i < 3; i++) {
        sinks[i].buf = grpo_malloc(sinks[i].cap + 1, "sandbox output");
        if (!sinks[i].buf) {
            for (int j = 0; j < i; j++) free(sinks[j].buf);
            return -1;
        }
    }
    int p_in[2] = {-1, -1}, p_out[2] = {-1, -1}, p_err[2] = {-1, -1}, p_rep[2] = {-1, -1};
    int p_sec[2] = {-1, -1}, p_sync[2] = {-1, -1}, p_fail[2] = {-1, -1};
    int rc = -1, pidfd = -1;
    pid_t pid = -1;
    char weak_dir[64] = "";
    char home[80] = "HOME=/sandbox", tmpdir[80] = "TMPDIR=/sandbox";
    long oom_before = oom_kills(&sb->cg[slot]);
    if (pipe2(p_in, O_CLOEXEC) || pipe2(p_out, O_CLOEXEC) || pipe2(p_err, O_CLOEXEC) ||
        pipe2(p_rep, O_CLOEXEC) || pipe2(p_sync, O_CLOEXEC) || pipe2(p_fail, O_CLOEXEC) ||
        (job->secret && pipe2(p_sec, O_CLOEXEC))) {
        ERR("pipe: %s", strerror(errno));
        goto done;
    }
    if (job->secret) {
        size_t n = strlen(job->secret);
        if (write(p_sec[1], job->secret, n) != (ssize_t)n) { ERR("writing the secret: %s", strerror(errno)); goto done; }
        close_fd(&p_sec[1]);
    }
    if (sb->weak) {
        if (weak_scratch(sb, slot, job, weak_dir, sizeof weak_dir) != 0) goto done;
        snprintf(home, sizeof home, "HOME=%s/work", weak_dir);
        snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s/work", weak_dir);
    }
    char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", home, tmpdir, NULL};
    ChildArgs a = {.sb = sb, .job = job, .slot = slot, .fds = {p_in[0], p_out[1], p_err[1], p_rep[1], p_sec[0]},
                   .sync_fd = p_sync[0], .err_fd = p_fail[1], .weak_dir = weak_dir, .envp = envp};
    double t0 = now_s();
    pid = (pid_t)syscall(SYS_clone, (sb->weak ? 0 : NS_FLAGS) | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid < 0) { ERR("clone: %s", strerror(errno)); goto done; }
    if (pid == 0) {
        close(p_sync[1]);
        child_main(&a);
    }
    close_fd(&p_in[0]); close_fd(&p_out[1]); close_fd(&p_err[1]); close_fd(&p_rep[1]);
    close_fd(&p_sec[0]); close_fd(&p_sync[0]); close_fd(&p_fail[1]);
    char pidstr[24];
    snprintf(pidstr, sizeof pidstr, "%d", (int)pid);
    const SlotCgroup *cg = &sb->cg[slot];
    char procs[600];
    bool setup_ok = sb->weak || write_id_maps(pid, slot) == 0;
    if (setup_ok && cg->mem[0]) {
        snprintf(procs, sizeof procs, "%s/cgroup.procs", cg->mem);
        setup_ok = write_str(procs, pidstr) == 0 || ERR("joining cgroup %s: %s", procs, strerror(errno)) == 0;
    }
    if (setup_ok && cg->pids[0] && !cg->v2) {
        snprintf(procs, sizeof procs, "%s/cgroup.procs", cg->pids);
        setup_ok = write_str(procs, pidstr) == 0 || ERR("joining cgroup %s: %s", procs, strerror(errno)) == 0;
    }
    if (!setup_ok || write(p_sync[1], "g", 1) != 1) {
        if (setup_ok) ERR("starting the sandbox child: %s", strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto done;
    }
    close_fd(&p_sync[1]);
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    for (int i = 0; i < 3; i++) {
        sinks[i].fd = i == 0 ? p_out[0] : i == 1 ? p_err[0] : p_rep[0];
        fcntl(sinks[i].fd, F_SETFL, O_NONBLOCK);
    }
    p_out[0] = p_err[0] = p_rep[0] = -1;
    fcntl(p_in[1], F_SETFL, O_NONBLOCK);
    size_t in_off = 0, in_len = job->stdin_data ? job->stdin_len : 0;
    if (in_len == 0) close_fd(&p_in[1]);
    ChildError cerr = {0};
    size_t cerr_len = 0;
    bool exited = false, killed = false;
    double deadline = t0 + sb->lim.timeout_s;
    for (;;) {
        struct pollfd pf[6];
        int np = 0, idx_in = -1, idx_fail = -1, idx_pid = -1, idx_sink[3] = {-1, -1, -1};
        for (int i = 0; i < 3; i++)
            if (sinks[i].fd >= 0) { idx_sink[i] = np; pf[np++] = (struct pollfd){sinks[i].fd, POLLIN, 0}; }
        if (p_in[1] >= 0) { idx_in = np; pf[np++] = (struct pollfd){p_in[1], POLLOUT, 0}; }
        if (p_fail[0] >= 0) { idx_fail = np; pf[np++] = (struct pollfd){p_fail[0], POLLIN, 0}; }
        if (!exited) { idx_pid = np; pf[np++] = (struct pollfd){pidfd, POLLIN, 0}; }
        bool open_sinks = idx_sink[0] >= 0 || idx_sink[1] >= 0 || idx_sink[2] >= 0;
        if (exited && !open_sinks && p_fail[0] < 0) break;
        double t = now_s();
        // After a kill the tree dies at once; the extra seconds only guard against a stuck descriptor.
        if (killed && t > deadline + 5) break;
        if (!killed && t >= deadline) {
            res->timed_out = true;
            killed = true;
            kill(pid, SIGKILL);
            if (sb->weak) kill(-pid, SIGKILL);
            continue;
        }
        int wait_ms = (int)((killed ? deadline + 5 - t : deadline - t) * 1000) + 1;
        int r = poll(pf, (nfds_t)np, wait_ms);
        if (r < 0 && errno != EINTR) { ERR("poll: %s", strerror(errno)); break; }
        if (r <= 0) continue;
        for (int i = 0; i < 3; i++) {
            if (idx_sink[i] < 0 || !pf[idx_sink[i]].revents) continue;
            if (!sink_read(&sinks[i])) close_fd(&sinks[i].fd);
            if (sinks[i].over && !killed) {
                if (i < 2) res->output_limit = true;
                killed = true;
                kill(pid, SIGKILL);
                if (sb->weak) kill(-pid, SIGKILL);
            }
        }
        if (idx_in >= 0 && pf[idx_in].revents) {
            ssize_t n = pf[idx_in].revents & POLLOUT ? write(p_in[1], job->stdin_data + in_off, in_len - in_off) : -1;
            if (n > 0) in_off += (size_t)n;
            if ((n < 0 && errno != EAGAIN) || in_off == in_len) close_fd(&p_in[1]);
        }
        if (idx_fail >= 0 && pf[idx_fail].revents) {
            ssize_t n = read(p_fail[0], (char *)&cerr + cerr_len, sizeof cerr - cerr_len);
            if (n > 0) cerr_len += (size_t)n;
            else close_fd(&p_fail[0]);
        }
        if (idx_pid >= 0 && pf[idx_pid].revents) {
            exited = true;
            // Weak mode: the program's leftover children share its process group.
            if (sb->weak) kill(-pid, SIGKILL);
        }
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (sb->weak) kill(-pid, SIGKILL);
    res->wall_s = now_s() - t0;
    if (cerr_len == sizeof cerr) {
        cerr.step[sizeof cerr.step - 1] = 0;
        ERR("sandbox set-up failed at %s: %s", cerr.step, strerror(cerr.err));
        goto done;
    }
    res->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    res->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    res->oom = oom_kills(cg) > oom_before;
    char **dst[3] = {&res->out, &res->err, &res->report};
    size_t *lens[3] = {&res->out_len, &res->err_len, &res->report_len};
    for (int i = 0; i < 3; i++) {
        sinks[i].buf[sinks[i].len] = 0;
        *dst[i] = sinks[i].buf;
        *lens[i] = sinks[i].len;
        sinks[i].buf = NULL;
    }
    rc = 0;
done:
    for (int i = 0; i < 3; i++) { free(sinks[i].buf); if (sinks[i].buf || rc != 0) close_fd(&sinks[i].fd); }
    int *all[] = {&p_in[0], &p_in[1], &p_out[0], &p_out[1], &p_err[0], &p_err[1], &p_rep[0], &p_rep[1],
                  &p_sec[0], &p_sec[1], &p_sync[0], &p_sync[1], &p_fail[0], &p_fail[1], &pidfd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) close_fd(all[i]);
    if (weak_dir[0]) nftw(weak_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

void sandbox_result_free(SandboxResult *res) {
    free(res->out);
    free(res->err);
    free(res->report);
    memset(res, 0, sizeof *res);
}

int sandbox_leftover(const Sandbox *sb, int slot) {
    const SlotCgroup *c = &sb->cg[slot];
    char p[600], buf[4096];
    int n = 0;
    if (c->pids[0]) {
        snprintf(p, sizeof p, "%s/cgroup.procs", c->pids);
        FILE *f = fopen(p, "re");
        while (f && fgets(buf, sizeof buf, f)) n++;
        if (f) fclose(f);
        return n;
    }
    unsigned lo = UID_BASE + 2u * (unsigned)slot;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        snprintf(p, sizeof p, "/proc/%s/status", e->d_name);
        FILE *f = fopen(p, "re");
        unsigned uid = 0;
        while (f && fgets(buf, sizeof buf, f))
            if (sscanf(buf, "Uid: %u", &uid) == 1) break;
        if (f) fclose(f);
        n += uid == lo || uid == lo + 1;
    }
    if (d) closedir(d);
    return n;
}

// ---------------------------------------------------------------------------------------------------

// Names the namespaces this process may not create (each tried alone in a throw-away child).
static void refused_namespaces(char *out, size_t cap) {
    static const struct { int flag; const char *name; } ns[] = {
        {CLONE_NEWUSER, "user"}, {CLONE_NEWPID, "pid"}, {CLONE_NEWNET, "net"},
        {CLONE_NEWNS, "mount"}, {CLONE_NEWIPC, "ipc"}, {CLONE_NEWUTS, "uts"}};
    out[0] = 0;
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        pid_t p = fork();
        if (p == 0) _exit(unshare(ns[i].flag) == 0 ? 0 : 1);
        int st = 1;
        if (p > 0) waitpid(p, &st, 0);
        if (p < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            size_t n = strlen(out);
            snprintf(out + n, cap - n, "%s%s", n ? " " : "", ns[i].name);
        }
    }
}

// One trivial run through the full set-up: the namespaces, the mounts, the uid maps, seccomp, exec.
static int probe(Sandbox *sb) {
    const char *argv[] = {"/usr/bin/true", NULL};
    SandboxJob job = {.argv = argv};
    SandboxResult r;
    TRY(sandbox_run(sb, 0, &job, &r));
    int code = r.exit_code;
    sandbox_result_free(&r);
    CHECK(code == 0, "the probe /usr/bin/true exited with %d", code);
    return 0;
}

Sandbox *sandbox_create(const SandboxLimits *limits) {
    if (limits->timeout_s <= 0 || limits->cpu_s <= 0 || limits->memory_mb <= 0 || limits->nproc <= 0 ||
        limits->nofile < 8 || limits->fsize_mb <= 0 || limits->scratch_mb <= 0 || limits->output_kb <= 0 ||
        limits->slots <= 0) {
        ERR("sandbox limits must be positive (nofile >= 8)");
        return NULL;
    }
    Sandbox *sb = grpo_calloc(1, sizeof *sb, "sandbox");
    if (!sb) return NULL;
    sb->lim = *limits;
    sb->cg = grpo_calloc((size_t)limits->slots, sizeof *sb->cg, "sandbox cgroups");
    snprintf(sb->scratch_opts, sizeof sb->scratch_opts, "size=%ldm,mode=0700,uid=1,gid=1", limits->scratch_mb);
    if (!sb->cg || build_filter(sb) != 0) { sandbox_destroy(sb); return NULL; }
    if (probe(sb) != 0) {
        char refused[128];
        refused_namespaces(refused, sizeof refused);
        char why[1024];
        snprintf(why, sizeof why, "%s%s%s", refused[0] ? "the kernel refuses namespaces: " : "", refused,
                 refused[0] ? "" : grpo_error());
        if (!limits->allow_weak) {
            ERR("SANDBOX REFUSED: full isolation is not available (%s). Code would run without namespaces "
                "(no private file system, network or PID space); set allow_weak_isolation to accept that.",
                why);
            sandbox_destroy(sb);
            return NULL;
        }
        fprintf(stderr, "WARNING: sandbox: full isolation is not available (%s); running in WEAK mode "
                "(rlimits, seccomp, uid %u+, process-group kill, scratch under /tmp) because "
                "allow_weak_isolation is set\n", why, UID_BASE);
        free(sb->filter.filter);
        sb->filter.filter = NULL;
        sb->weak = true;
        if (build_filter(sb) != 0 || probe(sb) != 0) { sandbox_destroy(sb); return NULL; }
        snprintf(sb->layers, sizeof sb->layers, "WEAK: no namespaces (%s); seccomp; rlimits; uid %u+; "
                 "process-group kill", why, UID_BASE);
    } else {
        snprintf(sb->layers, sizeof sb->layers, "namespaces: user pid net mount ipc uts; uid 0->%u; "
                 "read-only root, tmpfs scratch; seccomp; rlimits; no capabilities", UID_BASE);
    }
    setup_cgroups(sb);
    return sb;
}

void sandbox_destroy(Sandbox *sb) {
    if (!sb) return;
    if (sb->cg) remove_cgroups(sb);
    free(sb->cg);
    free(sb->filter.filter);
    free(sb);
}
