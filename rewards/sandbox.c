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
// A slot's zygote makes the namespaces that cost the most to create and tear down (user, network) once;
// the network and UTS ones are then shared by the slot's runs, which never overlap and can leave nothing
// in them (no interface is up, and the program has no capability in its user namespace).
#define ZYGOTE_NS (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)
// Each run's own: a PID namespace killed as a whole, a mount namespace for its /proc, /h and scratch, and
// an IPC namespace, since SysV objects outlive the processes that made them.
#define RUN_NS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC)
#define MAX_ARGS 64
#define MAX_ENV 8
#define RUN_STACK (256 * 1024)
#define FILTER_MAX 256          // seccomp instructions (the filter has about 100)
#define ZYGOTE_ENV "GRPO_SANDBOX_ZYGOTE"

typedef struct {
    char mem[512], pids[512];   // per-slot cgroup directories ("" when that controller is not in use)
    bool v2;
} SlotCgroup;

// The long-lived process that starts a slot's runs (see "The zygote" below).
typedef struct {
    pid_t pid;      // 0: none (the slot's next run starts one)
    int pidfd;      // notices its death between runs
    int sock;       // requests and replies
    int memfd;      // the job image of the run being started, shared with the zygote
} Zygote;

struct Sandbox {
    SandboxLimits lim;
    bool weak;
    char layers[512];
    struct sock_fprog filter;   // seccomp BPF, built once (the child must not allocate)
    char scratch_opts[96];      // tmpfs options of /sandbox
    SlotCgroup *cg;             // (slots)
    Zygote *zy;                 // (slots)
};

SandboxLimits sandbox_default_limits(void) {
    return (SandboxLimits){.timeout_s = 10, .cpu_s = 10, .memory_mb = 1024, .nproc = 32, .nofile = 64,
                           .fsize_mb = 16, .scratch_mb = 32, .output_kb = 1024, .allow_weak = false, .slots = 1};
}

const char *sandbox_layers(const Sandbox *sb) { return sb->layers; }
bool sandbox_is_weak(const Sandbox *sb) { return sb->weak; }
const SandboxLimits *sandbox_limits(const Sandbox *sb) { return &sb->lim; }
int sandbox_zygote_pid(const Sandbox *sb, int slot) { return sb->zy[slot].pid; }

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
    CHECK(sb->filter.len <= FILTER_MAX, "the seccomp filter has %u instructions, more than %d", sb->filter.len,
          FILTER_MAX);
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

// Describes what was set up in `out` (for sandbox_layers).
static void setup_cgroups(Sandbox *sb, char *out, size_t cap) {
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
    if (made == sb->lim.slots)
        snprintf(out, cap, "; cgroup %s: memory %ld MB, pids %d per run", v2 ? "v2" : "v1", mem >> 20,
                 sb->lim.nproc + 8);
    else
        snprintf(out, cap, "; cgroups: not writable here (rlimits only)");
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
// The zygote. A slot's runs are started by one long-lived process: cloned from the caller into the slot's
// namespaces (in full mode it is pid 1 of its own PID namespace and root of its user namespace), it execs
// this same program again (/proc/self/exe, with ZYGOTE_ENV set), which hands it to zygote_main before
// main() runs. So it holds none of the caller's memory: a fork alone would pin, copy-on-write, every page
// the caller (a trainer, gigabytes) later changes. It then pivots into the read-only root that every run
// shares. For each run it clones a child with CLONE_VM | CLONE_VFORK, as posix_spawn does, which makes
// the run's own namespaces and mounts, then execs the program.
//
// Between the clone from the caller and its execve, the zygote is a copy of a possibly multi-threaded
// process, so it only makes system calls there: libc's set*id wrappers would wait for the caller's other
// threads, which do not exist there, and malloc's lock may be held by one of them. The run child shares
// the zygote's memory until its execve and keeps to system calls too. A failing step is recorded as
// (errno, step) and sent back to the caller.

typedef struct { int err; char step[124]; } ChildError;

// Caller -> zygote: a run whose image (argv, environment, directory, files) is the first image_len bytes
// of the memfd; the descriptors stdin, stdout, stderr, report and (optionally) secret ride along.
typedef struct { uint64_t image_len; } Request;
enum { Z_READY, Z_STARTED, Z_FAILED, Z_EXITED };
// Caller -> zygote, once after its execve: what its runs need of the Sandbox.
typedef struct {
    SandboxLimits lim;
    int slot;
    bool weak;
    char scratch_opts[96];
    unsigned short filter_len;
    struct sock_filter filter[FILTER_MAX];
} ZygoteConfig;
// Zygote -> caller: set up (Z_READY); the run's program is executing (Z_STARTED, with its pidfd); setting
// up the zygote or a run failed (Z_FAILED); the run's PID namespace is gone (Z_EXITED, wait status).
typedef struct { int kind, status, pid; ChildError err; } Reply;

// The job image: this header, then argc + envc NUL-terminated strings, the starting directory, and
// nfiles times (name, NUL, uint64_t length, data).
typedef struct { uint32_t argc, envc, nfiles; } ImageHead;

static int child_error(ChildError *e, const char *step, const char *arg) {
    e->err = errno ? errno : EIO;
    size_t n = 0;
    for (const char *s = step; *s && n < sizeof e->step - 1; s++) e->step[n++] = *s;
    if (arg && n < sizeof e->step - 2) e->step[n++] = ' ';
    for (const char *s = arg; s && *s && n < sizeof e->step - 1; s++) e->step[n++] = *s;
    e->step[n] = 0;
    return -1;
}

static void cat_path(char *out, size_t cap, const char *a, const char *b) {
    size_t n = 0;
    for (const char *s = a; *s && n < cap - 1; s++) out[n++] = *s;
    for (const char *s = b; *s && n < cap - 1; s++) out[n++] = *s;
    out[n] = 0;
}

static int send_msg(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    struct iovec iov = {(void *)buf, len};
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int) * 5)]; } ctl;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        m.msg_control = ctl.b;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do n = sendmsg(sock, &m, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -1;
}

// Receives one message and up to 5 descriptors (close-on-exec); returns its length, 0 when the peer is
// gone, -1 on error.
static ssize_t recv_msg(int sock, void *buf, size_t len, int *fds, int *nfds) {
    struct iovec iov = {buf, len};
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int) * 5)]; } ctl;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t n;
    do n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); n >= 0 && c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            *nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)*nfds);
        }
    return n;
}

// Binds src read-only at dst, keeping the flags the kernel locks for mounts from a more privileged
// namespace (changing them would make the remount fail with EPERM).
static int bind_ro(ChildError *e, const char *src, const char *dst) {
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) return child_error(e, "bind", src);
    struct statvfs sv;
    if (statvfs(dst, &sv) != 0) return child_error(e, "statvfs", dst);
    unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) fl |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) fl |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) fl |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) fl |= MS_RELATIME;
    if (mount(NULL, dst, NULL, fl, NULL) != 0) return child_error(e, "remount read-only", dst);
    return 0;
}

// The root every run of the zygote starts from: a tmpfs built over /tmp, pivoted to and made read-only.
// Its /proc (the zygote's PID namespace) is what lets each run mount its own over it.
static int zygote_root(ChildError *e) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return child_error(e, "make mounts private", "/");
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") != 0)
        return child_error(e, "mount tmpfs root", NULL);
    static const char *const sys_dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"};
    char dst[512], link[256];
    for (size_t i = 0; i < sizeof sys_dirs / sizeof *sys_dirs; i++) {
        struct stat st;
        if (lstat(sys_dirs[i], &st) != 0) continue;
        cat_path(dst, sizeof dst, "/tmp", sys_dirs[i]);
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(sys_dirs[i], link, sizeof link - 1);
            if (n <= 0) return child_error(e, "readlink", sys_dirs[i]);
            link[n] = 0;
            if (symlink(link, dst) != 0) return child_error(e, "symlink", dst);
        } else if (S_ISDIR(st.st_mode)) {
            if (mkdir(dst, 0755) != 0) return child_error(e, "mkdir", dst);
            if (bind_ro(e, sys_dirs[i], dst) != 0) return -1;
        }
    }
    // Without /etc the dynamic loader has no cache and searches its built-in directories.
    if (mkdir("/tmp/dev", 0755) != 0) return child_error(e, "mkdir", "/tmp/dev");
    static const char *const devs[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) {
        cat_path(dst, sizeof dst, "/tmp", devs[i]);
        int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) return child_error(e, "create", dst);
        close(fd);
        if (mount(devs[i], dst, NULL, MS_BIND, NULL) != 0) return child_error(e, "bind", devs[i]);
    }
    static const char *const dirs[] = {"/tmp/proc", "/tmp/h", "/tmp/sandbox"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        if (mkdir(dirs[i], 0755) != 0) return child_error(e, "mkdir", dirs[i]);
    if (mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        return child_error(e, "mount", "/proc");
    if (chdir("/tmp") != 0) return child_error(e, "chdir", "/tmp");
    if (syscall(SYS_pivot_root, ".", ".") != 0) return child_error(e, "pivot_root", NULL);
    if (umount2(".", MNT_DETACH) != 0) return child_error(e, "detach the old root", NULL);
    if (chdir("/") != 0) return child_error(e, "chdir", "/");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
        return child_error(e, "remount read-only", "/");
    return 0;
}

typedef struct {
    const ZygoteConfig *cfg;
    const char *image;   // (image_len) mapped from the memfd
    int fds[5];          // become 0..4 (-1: closed)
    ChildError err;      // set by the child when it fails before execve (it shares the zygote's memory)
} RunArgs;

// The run's file system: its own /proc, the job files in a tmpfs at /h made read-only, a tmpfs scratch.
static int run_mounts(ChildError *e, const ZygoteConfig *cfg, const char *files, uint32_t nfiles) {
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        return child_error(e, "mount", "/proc");
    if (mount("tmpfs", "/h", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
        return child_error(e, "mount tmpfs", "/h");
    char p[512];
    for (uint32_t i = 0; i < nfiles; i++) {
        const char *name = files;
        files += strlen(name) + 1;
        uint64_t len;
        memcpy(&len, files, sizeof len);
        files += sizeof len;
        cat_path(p, sizeof p, "/h/", name);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
        if (fd < 0) return child_error(e, "create", p);
        for (uint64_t off = 0; off < len;) {
            ssize_t n = write(fd, files + off, len - off);
            if (n <= 0) return child_error(e, "write", p);
            off += (uint64_t)n;
        }
        close(fd);
        files += len;
    }
    if (mount(NULL, "/h", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
        return child_error(e, "remount read-only", "/h");
    if (mount("tmpfs", "/sandbox", "tmpfs", MS_NOSUID | MS_NODEV, cfg->scratch_opts) != 0)
        return child_error(e, "mount tmpfs", "/sandbox");
    return 0;
}

// The run's child of the zygote, with its namespaces made by the clone: set up, drop everything, exec.
// Returns only on failure.
static int run_exec(RunArgs *a) {
    const ZygoteConfig *cfg = a->cfg;
    const SandboxLimits *L = &cfg->lim;
    ChildError *e = &a->err;
    const ImageHead *h = (const ImageHead *)a->image;
    const char *s = a->image + sizeof *h;
    char *argv[MAX_ARGS + 1], *envp[MAX_ENV + 1];
    for (uint32_t i = 0; i < h->argc; i++, s += strlen(s) + 1) argv[i] = (char *)s;
    for (uint32_t i = 0; i < h->envc; i++, s += strlen(s) + 1) envp[i] = (char *)s;
    argv[h->argc] = envp[h->envc] = NULL;
    const char *cwd = s;
    s += strlen(s) + 1;
    uid_t uid;
    if (!cfg->weak) {
        TRY(run_mounts(e, cfg, s, h->nfiles));
        uid = 1;
    } else {
        if (setsid() < 0) return child_error(e, "setsid", NULL);
        uid = UID_BASE + 2u * (unsigned)cfg->slot + 1;
    }
    // The zygote shares the slot's cgroup: the memory limit's OOM kill must pick the run first. Uid
    // changes (the zygote's, the previous run's in this same memory) leave it non-dumpable, which gives
    // its /proc files to the host's root.
    if (prctl(PR_SET_DUMPABLE, 1) != 0) return child_error(e, "PR_SET_DUMPABLE", NULL);
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "1000", 4) != 4) return child_error(e, "raise oom_score_adj", NULL);
    close(fd);
    if (chdir(cwd) != 0) return child_error(e, "chdir", cwd);
    // Standard descriptors: first above the range, then into place (sources may sit in 0..4).
    int hi[5];
    for (int i = 0; i < 5; i++) {
        hi[i] = a->fds[i] >= 0 ? fcntl(a->fds[i], F_DUPFD_CLOEXEC, 16) : -1;
        if (a->fds[i] >= 0 && hi[i] < 0) return child_error(e, "dup", NULL);
    }
    for (int i = 0; i < 5; i++) {
        if (hi[i] < 0) { close(i); continue; }
        if (dup2(hi[i], i) != i) return child_error(e, "dup2", NULL);
    }
    if (syscall(SYS_close_range, 5, ~0u, CLOSE_RANGE_CLOEXEC) != 0) return child_error(e, "close_range", NULL);
    struct { int res; rlim_t v; } rl[] = {
        {RLIMIT_CPU, (rlim_t)L->cpu_s}, {RLIMIT_AS, (rlim_t)L->memory_mb << 20},
        {RLIMIT_NPROC, (rlim_t)L->nproc}, {RLIMIT_NOFILE, (rlim_t)L->nofile},
        {RLIMIT_FSIZE, (rlim_t)L->fsize_mb << 20}, {RLIMIT_CORE, 0}, {RLIMIT_MEMLOCK, 0},
        {RLIMIT_MSGQUEUE, 0}, {RLIMIT_STACK, 8u << 20},
    };
    for (size_t i = 0; i < sizeof rl / sizeof *rl; i++) {
        // CPU: SIGXCPU at the soft limit, SIGKILL one second later for a program that catches it.
        struct rlimit r = {rl[i].v, rl[i].res == RLIMIT_CPU ? rl[i].v + 1 : rl[i].v};
        if (setrlimit(rl[i].res, &r) != 0) return child_error(e, "setrlimit", NULL);
    }
    if (syscall(SYS_setgroups, 0, NULL) != 0) return child_error(e, "setgroups", NULL);
    if (syscall(SYS_setresgid, uid, uid, uid) != 0 || syscall(SYS_setresuid, uid, uid, uid) != 0)
        return child_error(e, "drop to uid", NULL);
    // Weak mode has no PID namespace to take the program down with the zygote (set after the uid change,
    // which clears it).
    if (cfg->weak && prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return child_error(e, "PR_SET_PDEATHSIG", NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return child_error(e, "PR_SET_NO_NEW_PRIVS", NULL);
    struct sock_fprog prog = {cfg->filter_len, (struct sock_filter *)cfg->filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return child_error(e, "seccomp", NULL);
    execve(argv[0], argv, envp);
    return child_error(e, "execve", argv[0]);
}

static int run_child(void *a) {
    run_exec(a);
    return 127;
}

// Closes every descriptor but keep[0..n) (distinct; -1 entries ignored): the zygote must not hold the
// caller's files, nor the pipes of other slots' runs.
static void keep_only(int *keep, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned lo = 0;
    for (int i = 0; i < n; i++) {
        if (keep[i] < 0) continue;
        if ((unsigned)keep[i] > lo) syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0);
        lo = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, lo, ~0u, 0);
}

static int zygote_setup(const ZygoteConfig *cfg, ChildError *e) {
    // Weak mode has no PID namespace: the program's orphans must come to the zygote, which reaps them.
    if (cfg->weak) return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 ? 0 : child_error(e, "PR_SET_CHILD_SUBREAPER", NULL);
    if (sethostname("sandbox", 7) != 0) return child_error(e, "sethostname", NULL);
    return zygote_root(e);
}

static __attribute__((noreturn)) void zygote_main(int sock, int memfd) {
    prctl(PR_SET_NAME, "grpo-zygote");
    // The caller's ignored signals and blocked ones survive execve, and are not the programs' to inherit.
    // As pid 1 of its namespace, with no handlers the zygote ignores every signal but SIGKILL from outside.
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    static ZygoteConfig cfg;
    if (recv(sock, &cfg, sizeof cfg, 0) != sizeof cfg) _exit(127);
    Reply rep = {.kind = Z_READY};
    char *stack = MAP_FAILED;
    if (zygote_setup(&cfg, &rep.err) == 0 &&
        (stack = mmap(NULL, RUN_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0)) ==
            MAP_FAILED)
        child_error(&rep.err, "mmap", "the run stack");
    if (rep.err.err) rep.kind = Z_FAILED;
    if (send_msg(sock, &rep, sizeof rep, NULL, 0) != 0 || rep.kind == Z_FAILED) _exit(127);
    for (;;) {
        Request rq;
        int fds[5], nfds;
        // Anything but a request means the caller is gone.
        if (recv_msg(sock, &rq, sizeof rq, fds, &nfds) != sizeof rq) _exit(0);
        RunArgs a = {.cfg = &cfg, .fds = {-1, -1, -1, -1, -1}};
        memcpy(a.fds, fds, sizeof(int) * (size_t)nfds);
        Reply r = {.kind = Z_STARTED};
        int pidfd = -1;
        pid_t pid = -1;
        void *img = mmap(NULL, rq.image_len, PROT_READ, MAP_SHARED, memfd, 0);
        if (img == MAP_FAILED) {
            child_error(&r.err, "map the job image", NULL);
        } else {
            a.image = img;
            int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | (cfg.weak ? 0 : RUN_NS) | SIGCHLD;
            pid = clone(run_child, stack + RUN_STACK, flags, &a, &pidfd);
            if (pid < 0) child_error(&r.err, "clone", NULL);
            munmap(img, rq.image_len);
        }
        for (int i = 0; i < nfds; i++) close(fds[i]);
        if (pid > 0 && a.err.err) {
            waitpid(pid, NULL, 0);
            close(pidfd);
            r.err = a.err;
        }
        if (r.err.err) {
            r.kind = Z_FAILED;
            if (send_msg(sock, &r, sizeof r, NULL, 0) != 0) _exit(0);
            continue;
        }
        r.pid = pid;
        bool gone = send_msg(sock, &r, sizeof r, &pidfd, 1) != 0;
        // The caller kills the run (it holds the pidfd); it says nothing more until the reply, so a
        // readable socket means it is gone, and the run goes with it.
        while (!gone) {
            struct pollfd pf[2] = {{pidfd, POLLIN, 0}, {sock, POLLIN, 0}};
            if (poll(pf, 2, -1) < 0) continue;
            if (pf[0].revents) break;
            gone = pf[1].revents != 0;
        }
        if (gone) {
            syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
            if (cfg.weak) kill(-pid, SIGKILL);
            _exit(0);
        }
        // pid 1 of a PID namespace is reaped only after every other process in it. Without one (weak
        // mode) the program's descendants share its process group: all of them go before the reply.
        int st = 0;
        if (cfg.weak) kill(-pid, SIGKILL);
        waitpid(pid, &st, 0);
        while (cfg.weak && (waitpid(-1, NULL, 0) > 0 || errno == EINTR)) {}
        close(pidfd);
        r = (Reply){.kind = Z_EXITED, .status = st};
        if (send_msg(sock, &r, sizeof r, NULL, 0) != 0) _exit(0);
    }
}

// A zygote is this program started again with ZYGOTE_ENV naming its descriptors: it is taken over here,
// before main().
__attribute__((constructor)) static void zygote_entry(void) {
    const char *v = getenv(ZYGOTE_ENV);
    int sock, memfd;
    if (v && sscanf(v, "%d,%d", &sock, &memfd) == 2) zygote_main(sock, memfd);
}

// ---------------------------------------------------------------------------------------------------
// The caller's side.

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
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

static void zygote_stop(Sandbox *sb, int slot) {
    Zygote *z = &sb->zy[slot];
    if (z->pid > 0) {
        kill(z->pid, SIGKILL);
        waitpid(z->pid, NULL, 0);
    }
    close_fd(&z->pidfd);
    close_fd(&z->sock);
    close_fd(&z->memfd);
    *z = (Zygote){.pidfd = -1, .sock = -1, .memfd = -1};
}

// Waits up to `seconds` for one reply; 0 on success, -1 (grpo_error()) when none came.
static int zygote_reply(int sock, double seconds, Reply *r, int *fd) {
    struct pollfd pf = {sock, POLLIN, 0};
    int fds[5], nfds = 0;
    if (poll(&pf, 1, (int)(seconds * 1000)) != 1) return ERR("the sandbox zygote did not answer");
    ssize_t n = recv_msg(sock, r, sizeof *r, fds, &nfds);
    for (int i = fd ? 1 : 0; i < nfds; i++) close(fds[i]);
    if (fd) *fd = nfds > 0 ? fds[0] : -1;
    CHECK(n == sizeof *r, "the sandbox zygote is gone");
    return 0;
}

// The zygote joins the slot's cgroups once, and its runs are born in them: moving a process between
// cgroups waits for an RCU grace period (milliseconds) on many kernels.
static int join_cgroups(const SlotCgroup *c, pid_t pid) {
    char p[600], val[24];
    snprintf(val, sizeof val, "%d", (int)pid);
    const char *dirs[2] = {c->mem, !c->v2 ? c->pids : ""};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i][0]) continue;
        snprintf(p, sizeof p, "%s/cgroup.procs", dirs[i]);
        CHECK(write_str(p, val) == 0, "joining cgroup %s: %s", p, strerror(errno));
    }
    return 0;
}

// The zygote between the clone and its execve (see above): once the caller has mapped its uids, it becomes
// root of its user namespace (execve keeps the capabilities of root only) and execs this program again.
static __attribute__((noreturn)) void zygote_exec(const Sandbox *sb, int sock, int memfd, char *const *envp) {
    int keep[3] = {2, sock, memfd};
    keep_only(keep, 3);
    Reply r = {.kind = Z_FAILED};
    char go;
    if (recv(sock, &go, 1, 0) != 1) _exit(127);
    if (fcntl(sock, F_SETFD, 0) != 0 || fcntl(memfd, F_SETFD, 0) != 0) {
        child_error(&r.err, "fcntl", NULL);
    } else if (!sb->weak && (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0)) {
        child_error(&r.err, "become namespace root", NULL);
    } else {
        char *const argv[] = {"grpo-sandbox-zygote", NULL};
        execve("/proc/self/exe", argv, envp);
        child_error(&r.err, "execve", "/proc/self/exe");
    }
    send_msg(sock, &r, sizeof r, NULL, 0);
    _exit(127);
}

static int zygote_start(Sandbox *sb, int slot) {
    Zygote *z = &sb->zy[slot];
    int sv[2] = {-1, -1};
    extern char **environ;
    size_t nenv = 0;
    while (environ[nenv]) nenv++;
    // The caller's environment (the loader may need its LD_LIBRARY_PATH), and the descriptors to take over.
    char **envp = grpo_malloc((nenv + 2) * sizeof *envp, "sandbox zygote environment");
    char mark[64];
    if (!envp) return -1;
    z->memfd = memfd_create("grpo-sandbox-job", MFD_CLOEXEC);
    if (z->memfd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        ERR("sandbox zygote channel: %s", strerror(errno));
        goto fail;
    }
    snprintf(mark, sizeof mark, "%s=%d,%d", ZYGOTE_ENV, sv[1], z->memfd);
    memcpy(envp, environ, nenv * sizeof *envp);
    envp[nenv] = mark;
    envp[nenv + 1] = NULL;
    pid_t pid = (pid_t)syscall(SYS_clone, (sb->weak ? 0 : ZYGOTE_NS) | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0) zygote_exec(sb, sv[1], z->memfd, envp);
    close_fd(&sv[1]);
    if (pid < 0) { ERR("clone: %s", strerror(errno)); goto fail; }
    z->pid = pid;
    z->sock = sv[0];
    sv[0] = -1;
    z->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (z->pidfd < 0) { ERR("pidfd_open: %s", strerror(errno)); goto fail; }
    if (!sb->weak && write_id_maps(pid, slot) != 0) goto fail;
    if (join_cgroups(&sb->cg[slot], pid) != 0) goto fail;
    ZygoteConfig *cfg = grpo_calloc(1, sizeof *cfg, "sandbox zygote config");
    if (!cfg) goto fail;
    *cfg = (ZygoteConfig){.lim = sb->lim, .slot = slot, .weak = sb->weak, .filter_len = sb->filter.len};
    memcpy(cfg->scratch_opts, sb->scratch_opts, sizeof cfg->scratch_opts);
    memcpy(cfg->filter, sb->filter.filter, sb->filter.len * sizeof *cfg->filter);
    int sent = send_msg(z->sock, "g", 1, NULL, 0) == 0 && send_msg(z->sock, cfg, sizeof *cfg, NULL, 0) == 0;
    free(cfg);
    Reply r;
    if (!sent) {
        ERR("starting the sandbox zygote: %s", strerror(errno));
        goto fail;
    }
    if (zygote_reply(z->sock, 30, &r, NULL) != 0) {
        grpo_error_context("starting the sandbox zygote");
        goto fail;
    }
    if (r.kind != Z_READY) {
        r.err.step[sizeof r.err.step - 1] = 0;
        ERR("sandbox set-up failed at %s: %s", r.err.step, strerror(r.err.err));
        goto fail;
    }
    free(envp);
    return 0;
fail:
    free(envp);
    close_fd(&sv[0]);
    close_fd(&sv[1]);
    zygote_stop(sb, slot);
    return -1;
}

// A slot's zygote, started again when it has died since its last run.
static int zygote_ready(Sandbox *sb, int slot) {
    Zygote *z = &sb->zy[slot];
    struct pollfd pf = {z->pidfd, POLLIN, 0};
    if (z->pid > 0 && poll(&pf, 1, 0) == 0) return 0;
    zygote_stop(sb, slot);
    return zygote_start(sb, slot);
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

// Writes the job image (ImageHead) into the slot's memfd; the files go in only when the run child writes
// them (full mode), weak mode has them on disk already.
static int put_image(int memfd, const SandboxJob *job, char *const *envp, const char *cwd, bool files,
                     uint64_t *len) {
    ImageHead h = {0, 0, files ? (uint32_t)job->nfiles : 0};
    size_t n = sizeof h + strlen(cwd) + 1;
    for (; job->argv[h.argc]; h.argc++) n += strlen(job->argv[h.argc]) + 1;
    for (; envp[h.envc]; h.envc++) n += strlen(envp[h.envc]) + 1;
    for (uint32_t i = 0; i < h.nfiles; i++) n += strlen(job->files[i].name) + 1 + sizeof(uint64_t) + job->files[i].len;
    CHECK(h.argc >= 1 && h.argc <= MAX_ARGS && h.envc <= MAX_ENV, "sandbox job: 1 to %d arguments, at most %d "
          "environment entries", MAX_ARGS, MAX_ENV);
    char *buf = grpo_malloc(n, "sandbox job image");
    if (!buf) return -1;
    char *q = buf;
    memcpy(q, &h, sizeof h);
    q += sizeof h;
    for (uint32_t i = 0; i < h.argc; i++) q = stpcpy(q, job->argv[i]) + 1;
    for (uint32_t i = 0; i < h.envc; i++) q = stpcpy(q, envp[i]) + 1;
    q = stpcpy(q, cwd) + 1;
    for (uint32_t i = 0; i < h.nfiles; i++) {
        uint64_t fl = job->files[i].len;
        q = stpcpy(q, job->files[i].name) + 1;
        memcpy(q, &fl, sizeof fl);
        memcpy(q + sizeof fl, job->files[i].data, fl);
        q += sizeof fl + fl;
    }
    bool ok = ftruncate(memfd, (off_t)n) == 0 && pwrite(memfd, buf, n, 0) == (ssize_t)n;
    free(buf);
    CHECK(ok, "writing the sandbox job image: %s", strerror(errno));
    *len = n;
    return 0;
}

// stdin as a file the program reads at its own pace: nothing to feed, no pipe to break.
static int stdin_file(const SandboxJob *job) {
    int fd = memfd_create("grpo-sandbox-stdin", MFD_CLOEXEC);
    CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
    size_t len = job->stdin_data ? job->stdin_len : 0;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, job->stdin_data + off, len - off);
        if (n <= 0) { close(fd); return ERR("writing the sandbox's stdin: %s", strerror(errno)); }
        off += (size_t)n;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
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

// One attempt at a run. *unstarted tells that the zygote was gone before the program started (it died
// after the slot's previous run): nothing ran, and a new zygote may try again.
static int run_attempt(Sandbox *sb, int slot, const SandboxJob *job, SandboxResult *res, bool *unstarted) {
    memset(res, 0, sizeof *res);
    *unstarted = false;
    size_t out_cap = (size_t)sb->lim.output_kb << 10;
    Sink sinks[3] = {{.cap = out_cap, .fd = -1}, {.cap = out_cap, .fd = -1}, {.cap = REPORT_CAP, .fd = -1}};
    for (int i = 0; i < 3; i++) {
        sinks[i].buf = grpo_malloc(sinks[i].cap + 1, "sandbox output");
        if (!sinks[i].buf) {
            for (int j = 0; j < i; j++) free(sinks[j].buf);
            return -1;
        }
    }
    int p_out[2] = {-1, -1}, p_err[2] = {-1, -1}, p_rep[2] = {-1, -1}, p_sec[2] = {-1, -1};
    int in_fd = -1, rc = -1, rpidfd = -1;
    pid_t rpid = 0;
    Zygote *z = &sb->zy[slot];
    char weak_dir[64] = "";
    char home[80] = "HOME=/sandbox", tmpdir[80] = "TMPDIR=/sandbox", cwd[80] = "/sandbox";
    long oom_before = oom_kills(&sb->cg[slot]);
    if (pipe2(p_out, O_CLOEXEC) || pipe2(p_err, O_CLOEXEC) || pipe2(p_rep, O_CLOEXEC) ||
        (job->secret && pipe2(p_sec, O_CLOEXEC))) {
        ERR("pipe: %s", strerror(errno));
        goto done;
    }
    if ((in_fd = stdin_file(job)) < 0) goto done;
    if (job->secret) {
        size_t n = strlen(job->secret);
        if (write(p_sec[1], job->secret, n) != (ssize_t)n) { ERR("writing the secret: %s", strerror(errno)); goto done; }
        close_fd(&p_sec[1]);
    }
    if (sb->weak) {
        if (weak_scratch(sb, slot, job, weak_dir, sizeof weak_dir) != 0) goto done;
        snprintf(home, sizeof home, "HOME=%s/work", weak_dir);
        snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s/work", weak_dir);
        snprintf(cwd, sizeof cwd, "%s/work", weak_dir);
    }
    char *envp[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", home, tmpdir, NULL};
    int child_fds[5] = {in_fd, p_out[1], p_err[1], p_rep[1], p_sec[0]};
    Request rq;
    if (zygote_ready(sb, slot) != 0 || put_image(z->memfd, job, envp, cwd, !sb->weak, &rq.image_len) != 0) goto done;
    double t0 = now_s();
    if (send_msg(z->sock, &rq, sizeof rq, child_fds, job->secret ? 5 : 4) != 0) {
        ERR("sending a run to the sandbox zygote: %s", strerror(errno));
        *unstarted = true;
        zygote_stop(sb, slot);
        goto done;
    }
    close_fd(&in_fd); close_fd(&p_out[1]); close_fd(&p_err[1]); close_fd(&p_rep[1]); close_fd(&p_sec[0]);
    for (int i = 0; i < 3; i++) {
        sinks[i].fd = i == 0 ? p_out[0] : i == 1 ? p_err[0] : p_rep[0];
        fcntl(sinks[i].fd, F_SETFL, O_NONBLOCK);
    }
    p_out[0] = p_err[0] = p_rep[0] = -1;
    Reply r = {0};
    bool exited = false, failed = false, lost = false, killed = false;
    int status = 0;
    double deadline = t0 + sb->lim.timeout_s;
    for (;;) {
        struct pollfd pf[4];
        int np = 0, idx_z = -1, idx_sink[3] = {-1, -1, -1};
        for (int i = 0; i < 3; i++)
            if (sinks[i].fd >= 0) { idx_sink[i] = np; pf[np++] = (struct pollfd){sinks[i].fd, POLLIN, 0}; }
        bool waiting = !exited && !failed && !lost;
        if (waiting) { idx_z = np; pf[np++] = (struct pollfd){z->sock, POLLIN, 0}; }
        if (!waiting && np == 0) break;
        double t = now_s();
        // After a kill the tree dies at once; the extra seconds only guard against a stuck descriptor.
        if (killed && t > deadline + 5) break;
        if (!killed && t >= deadline) res->timed_out = true;
        bool over = sinks[0].over || sinks[1].over || sinks[2].over;
        if (!killed && (res->timed_out || over)) {
            res->output_limit = sinks[0].over || sinks[1].over;
            killed = true;
        }
        // Before the zygote's Z_STARTED there is no pidfd yet: the kill waits for it.
        if (killed && rpidfd >= 0) {
            syscall(SYS_pidfd_send_signal, rpidfd, SIGKILL, NULL, 0);
            if (sb->weak) kill(-rpid, SIGKILL);
            close_fd(&rpidfd);
        }
        int wait_ms = (int)((killed ? deadline + 5 - t : deadline - t) * 1000) + 1;
        int n = poll(pf, (nfds_t)np, wait_ms);
        if (n < 0 && errno != EINTR) { ERR("poll: %s", strerror(errno)); break; }
        if (n <= 0) continue;
        for (int i = 0; i < 3; i++)
            if (idx_sink[i] >= 0 && pf[idx_sink[i]].revents && !sink_read(&sinks[i])) close_fd(&sinks[i].fd);
        if (idx_z >= 0 && pf[idx_z].revents) {
            int fd = -1;
            if (zygote_reply(z->sock, 0, &r, &fd) != 0 || (r.kind == Z_STARTED && fd < 0)) {
                lost = true;
            } else if (r.kind == Z_STARTED) {
                rpidfd = fd;
                rpid = r.pid;
                fd = -1;
            } else {
                failed = r.kind == Z_FAILED;
                exited = r.kind == Z_EXITED;
                status = r.status;
            }
            close_fd(&fd);
        }
    }
    // Weak mode: with the zygote gone, the program's descendants are no one's to reap; its process group
    // still names them.
    if (lost && sb->weak && rpid > 0) kill(-rpid, SIGKILL);
    res->wall_s = now_s() - t0;
    // A zygote that lost track of its run is not trusted with the next one.
    if (!exited && !failed) zygote_stop(sb, slot);
    if (failed) {
        r.err.step[sizeof r.err.step - 1] = 0;
        ERR("sandbox set-up failed at %s: %s", r.err.step, strerror(r.err.err));
        goto done;
    }
    if (lost) {
        ERR("the sandbox zygote of slot %d died %s the run", slot, rpid ? "during" : "before");
        *unstarted = rpid == 0;
        goto done;
    }
    if (!exited) status = SIGKILL;  // killed and stuck: the zygote went down with it
    res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    res->oom = oom_kills(&sb->cg[slot]) > oom_before;
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
    for (int i = 0; i < 3; i++) { free(sinks[i].buf); close_fd(&sinks[i].fd); }
    int *all[] = {&p_out[0], &p_out[1], &p_err[0], &p_err[1], &p_rep[0], &p_rep[1], &p_sec[0], &p_sec[1],
                  &in_fd, &rpidfd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) close_fd(all[i]);
    if (weak_dir[0]) nftw(weak_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int sandbox_run(Sandbox *sb, int slot, const SandboxJob *job, SandboxResult *res) {
    memset(res, 0, sizeof *res);
    CHECK(slot >= 0 && slot < sb->lim.slots, "sandbox slot %d out of range [0, %d)", slot, sb->lim.slots);
    for (int i = 0; i < job->nfiles; i++)
        CHECK(job->files[i].name[0] && !strchr(job->files[i].name, '/'), "bad sandbox file name '%s'",
              job->files[i].name);
    bool unstarted;
    int rc = run_attempt(sb, slot, job, res, &unstarted);
    if (rc != 0 && unstarted) rc = run_attempt(sb, slot, job, res, &unstarted);
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
        while (f && fgets(buf, sizeof buf, f)) n += atoi(buf) != sb->zy[slot].pid;
        if (f) fclose(f);
        return n;
    }
    unsigned lo = UID_BASE + 2u * (unsigned)slot;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (!isdigit((unsigned char)e->d_name[0]) || atoi(e->d_name) == sb->zy[slot].pid) continue;
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

// One trivial run through the full set-up: the zygote, the namespaces, the mounts, seccomp, exec.
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
    sb->zy = grpo_calloc((size_t)limits->slots, sizeof *sb->zy, "sandbox zygotes");
    for (int s = 0; sb->zy && s < limits->slots; s++) sb->zy[s] = (Zygote){.pidfd = -1, .sock = -1, .memfd = -1};
    if (!sb->cg || !sb->zy) { sandbox_destroy(sb); return NULL; }
    snprintf(sb->scratch_opts, sizeof sb->scratch_opts, "size=%ldm,mode=0700,uid=1,gid=1", limits->scratch_mb);
    char cgroups[160];
    setup_cgroups(sb, cgroups, sizeof cgroups);
    if (build_filter(sb) != 0) { sandbox_destroy(sb); return NULL; }
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
        // Slot 0's zygote may be up (a run failed, not its start): it holds the full-mode settings.
        zygote_stop(sb, 0);
        free(sb->filter.filter);
        sb->filter.filter = NULL;
        sb->weak = true;
        if (build_filter(sb) != 0 || probe(sb) != 0) { sandbox_destroy(sb); return NULL; }
        snprintf(sb->layers, sizeof sb->layers, "WEAK: no namespaces (%s); seccomp; rlimits; uid %u+; "
                 "process-group kill%s", why, UID_BASE, cgroups);
    } else {
        snprintf(sb->layers, sizeof sb->layers, "namespaces: user pid net mount ipc uts; uid 0->%u; "
                 "read-only root, tmpfs scratch; seccomp; rlimits; no capabilities%s", UID_BASE, cgroups);
    }
    // The other slots' zygotes now, while this process is likely small: each is a copy of it.
    for (int s = 1; s < limits->slots; s++)
        if (zygote_start(sb, s) != 0) { sandbox_destroy(sb); return NULL; }
    return sb;
}

void sandbox_destroy(Sandbox *sb) {
    if (!sb) return;
    for (int s = 0; sb->zy && s < sb->lim.slots; s++) zygote_stop(sb, s);
    if (sb->cg) remove_cgroups(sb);
    free(sb->zy);
    free(sb->cg);
    free(sb->filter.filter);
    free(sb);
}
