// The adversarial suite: hostile programs through the code reward. Each must end with the right verdict,
// leave no process behind, write nothing outside its scratch directory, and leave this process unharmed;
// nothing a run leaves reaches the next run of its slot, and a slot's zygote that dies is replaced.
// Then the refusal path: where namespaces are refused, the sandbox refuses to run unless weak mode is
// allowed, and weak mode still contains what it claims to.
#define _GNU_SOURCE
#include "common/error.h"
#include "rewards/code.h"
#include "rewards/sandbox.h"
#include "tests/test.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static Reward R;
static Task T;  // MBPP form: assert f(1) == 2
static pid_t self_pid, self_ppid;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

// Scores `program`, then checks the verdict and everything around it.
static void adversary(const char *what, const char *program, const char *want, double max_s) {
    const Task *t = &T;
    float r = -1;
    RewardDetail d;
    double t0 = now_s();
    reward_score_batch(&R, &t, &program, 1, &r, &d);
    double dt = now_s() - t0;
    // `want` may list alternatives ("memory|timeout") where the outcome depends on what the machine allows.
    char alts[64];
    snprintf(alts, sizeof alts, "|%s|", want);
    char mine[40];
    snprintf(mine, sizeof mine, "|%s|", d.verdict);
    EXPECT(strstr(alts, mine) && r == (strcmp(want, "passed") == 0), "%s: verdict %s reward %g, expected %s",
           what, d.verdict, r, want);
    EXPECT(dt < max_s, "%s: took %.2f s (limit %.1f)", what, dt, max_s);
    int left = sandbox_leftover(reward_code_sandbox(&R), 0);
    EXPECT(left == 0, "%s: %d processes left behind", what, left);
    EXPECT(getpid() == self_pid && getppid() == self_ppid, "%s: this process was disturbed", what);
}

static void test_resource_bombs(void) {
    adversary("fork bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
              "timeout", 6);
    adversary("memory bomb", "x = []\nwhile True:\n    x.append(bytearray(1 << 24))\n", "memory", 6);
    adversary("memory bomb in children",
              "import os\nfor i in range(8):\n    if os.fork() == 0:\n        x = []\n        while True:\n"
              "            try:\n                x.append(bytearray(1 << 24))\n            except MemoryError:\n"
              "                pass\nos.wait()\n", "memory|timeout", 6);
    adversary("infinite loop", "def f(x):\n    while True:\n        pass\n", "timeout", 6);
    adversary("ignores SIGTERM and SIGXCPU",
              "import signal\nfor s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):\n"
              "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n", "timeout", 6);
    adversary("1 GB of output", "import os\nb = b'x' * (1 << 20)\nfor i in range(1024):\n    os.write(1, b)\n",
              "output_limit", 6);
    adversary("a thousand threads",
              "import threading, time\nts = [threading.Thread(target=time.sleep, args=(30,), daemon=True) for i in range(1000)]\n"
              "for t in ts:\n    t.start()\ndef f(x): return x + 1\n", "runtime_error", 6);
}

static void test_escapes(void) {
    // The child sleeps past the deadline; its parent passes the tests and exits.
    adversary("child outlives its parent",
              "import os, time\nif os.fork() == 0:\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(60)\n"
              "    time.sleep(60)\n    os._exit(0)\ndef f(x): return x + 1\n", "passed", 6);
    char prog[2048];
    snprintf(prog, sizeof prog,
             "import os, signal\nfor p in (%d, %d, os.getppid(), 0, -1):\n    try:\n        os.kill(p, signal.SIGKILL)\n"
             "    except OSError:\n        pass\ndef f(x): return x + 1\n", (int)self_pid, (int)self_ppid);
    adversary("kills its parent", prog, "passed", 6);
    adversary("sys.exit(0) before the tests", "import sys\nsys.exit(0)\ndef f(x): return x + 1\n", "failed", 6);
    adversary("os._exit(0) before the tests", "import os\nos._exit(0)\ndef f(x): return x + 1\n", "failed", 6);
    adversary("exit inside the function", "def f(x):\n    import os\n    os._exit(0)\n", "failed", 6);
    adversary("monkey-patches assert",
              "import builtins\nclass Never(BaseException): pass\nbuiltins.AssertionError = Never\n"
              "AssertionError = Never\ndef f(x): return 0\n", "failed", 6);
    adversary("deletes the harness files",
              "import os, shutil\nbefore = sorted(os.listdir('/h'))\nfor n in before:\n    try:\n        os.remove('/h/' + n)\n"
              "    except OSError:\n        pass\nshutil.rmtree('/h', ignore_errors=True)\n"
              "def f(x): return x + 1 if 'u0' in before and sorted(os.listdir('/h')) == before else 0\n", "passed", 6);
    adversary("raises its rlimits",
              "import resource as r\nn = 0\nfor k in (r.RLIMIT_AS, r.RLIMIT_NPROC, r.RLIMIT_CPU, r.RLIMIT_NOFILE, "
              "r.RLIMIT_FSIZE):\n    try:\n        r.setrlimit(k, (r.RLIM_INFINITY, r.RLIM_INFINITY))\n        n += 1\n"
              "    except (ValueError, OSError):\n        pass\ndef f(x): return x + 1 + n\n", "passed", 6);
    adversary("privileged system calls",
              "import ctypes, os\nc = ctypes.CDLL(None, use_errno=True)\n"
              "bad = [c.ptrace(0, 0, 0, 0), c.unshare(0x10000000), c.unshare(0x20000), c.mount(b'none', b'/sandbox', "
              "b'tmpfs', 0, None), c.chroot(b'/sandbox'), c.syscall(321, 0, 0, 0)]\n"
              "caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1]\n"
              "ok = all(v == -1 for v in bad) and int(caps, 16) == 0 and os.getuid() == 1\n"
              "def f(x): return x + 1 if ok else 0\n", "passed", 6);
}

static void test_network(void) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    EXPECT(ls >= 0 && bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 8) == 0 &&
           getsockname(ls, (struct sockaddr *)&a, &al) == 0, "listening socket: %s", strerror(errno));
    char prog[2048];
    snprintf(prog, sizeof prog,
             "import socket\nreached = []\nfor host, port in (('127.0.0.1', %d), ('1.1.1.1', 53), ('8.8.8.8', 443)):\n"
             "    try:\n        s = socket.create_connection((host, port), timeout=1)\n        reached.append(host)\n"
             "    except OSError:\n        pass\n"
             "try:\n    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    u.sendto(b'x', ('8.8.8.8', 53))\n"
             "    reached.append('udp')\nexcept OSError:\n    pass\n"
             "def f(x): return x + 1 if not reached else 0\n", ntohs(a.sin_port));
    adversary("connects to 127.0.0.1 and outside", prog, "passed", 6);
    fcntl(ls, F_SETFL, O_NONBLOCK);
    int c = accept(ls, NULL, NULL);
    EXPECT(c < 0 && errno == EAGAIN, "the sandbox reached this process's port");
    if (c >= 0) close(c);
    close(ls);
}

static void test_environment_and_files(void) {
    char secret[64], prog[4096];
    snprintf(secret, sizeof secret, "s3cret-%d", (int)self_pid);
    setenv("GRPO_TEST_SECRET", secret, 1);
    snprintf(prog, sizeof prog,
             "import os, glob\nseen = 'GRPO_TEST_SECRET' in os.environ or any('%s' in v for v in os.environ.values())\n"
             "for p in glob.glob('/proc/*/environ') + ['/proc/%d/environ', '/proc/%d/environ']:\n    try:\n"
             "        seen = seen or b'%s' in open(p, 'rb').read()\n    except OSError:\n        pass\n"
             "def f(x): return x + 1 if not seen else 0\n", secret, (int)self_pid, (int)self_ppid, secret);
    adversary("reads the parent's environment", prog, "passed", 6);

    const char *home = getenv("HOME") ? getenv("HOME") : "/root";
    char targets[6][512];
    snprintf(targets[0], 512, "/tmp/grpo-escape-%d", (int)self_pid);
    snprintf(targets[1], 512, "%s/grpo-escape-%d", home, (int)self_pid);
    snprintf(targets[2], 512, "/dev/shm/grpo-escape-%d", (int)self_pid);
    snprintf(targets[3], 512, "/var/tmp/grpo-escape-%d", (int)self_pid);
    snprintf(targets[4], 512, "/usr/grpo-escape-%d", (int)self_pid);
    snprintf(targets[5], 512, "/grpo-escape-%d", (int)self_pid);
    snprintf(prog, sizeof prog,
             "import os\nouts = 0\nfor p in ['%s', '%s', '%s', '%s', '%s', '%s', os.path.expanduser('~/x'), '../x', '/h/x',"
             " '/sandbox/../x', '/proc/x']:\n    try:\n        with open(p, 'w') as fh:\n            fh.write('escaped')\n"
             "        if not os.path.realpath(p).startswith('/sandbox/'):\n            outs += 1\n    except OSError:\n        pass\n"
             "open('/sandbox/inside', 'w').write('fine')\n"
             "def f(x): return x + 1 if outs == 0 and os.path.exists('/sandbox/inside') else 0\n",
             targets[0], targets[1], targets[2], targets[3], targets[4], targets[5]);
    adversary("writes to /tmp and $HOME", prog, "passed", 6);
    for (int i = 0; i < 6; i++) {
        EXPECT(!exists(targets[i]), "%s was written on the host", targets[i]);
        unlink(targets[i]);
    }
    EXPECT(strcmp(getenv("GRPO_TEST_SECRET"), secret) == 0, "this process's environment changed");
}

// Runs of a slot share its zygote, never their state: a run finds none of the files, processes, SysV IPC
// objects, sockets or host name that the one before it left.
static void test_runs_do_not_share(void) {
    adversary("leaves files, processes, IPC objects and a socket",
              "import ctypes, os, socket, time\nopen('/sandbox/left-behind', 'w').write('x')\n"
              "c = ctypes.CDLL(None, use_errno=True)\n"
              "made = c.shmget(0x67727030, 4096, 0o1666) >= 0 and c.msgget(0x67727030, 0o1666) >= 0\n"
              "s = socket.socket(socket.AF_UNIX)\ns.bind('\\0grpo-left-behind')\ns.listen(1)\n"
              "try:\n    socket.sethostname('changed')\nexcept OSError:\n    pass\n"
              "if os.fork() == 0:\n    time.sleep(60)\n"
              "def f(x): return x + 1 if made else 0\n", "passed", 6);
    adversary("finds nothing of the run before",
              "import ctypes, os, socket\nc = ctypes.CDLL(None, use_errno=True)\n"
              "seen = [os.path.exists('/sandbox/left-behind'), c.shmget(0x67727030, 0, 0) >= 0,\n"
              "        c.msgget(0x67727030, 0) >= 0, socket.gethostname() != 'sandbox',\n"
              "        [p for p in os.listdir('/proc') if p.isdigit()] != ['1']]\n"
              "try:\n    socket.socket(socket.AF_UNIX).connect('\\0grpo-left-behind')\n    seen.append(True)\n"
              "except OSError:\n    pass\ndef f(x): return x + 1 if not any(seen) else 0\n", "passed", 6);
}

static void *kill_later(void *p) {
    usleep(500 * 1000);
    kill(*(pid_t *)p, SIGKILL);
    return NULL;
}

// A zygote that dies, between runs or during one, is replaced; the run it took down is a sandbox error,
// never a pass, and leaves nothing behind.
static void test_zygote_recovery(void) {
    Sandbox *sb = reward_code_sandbox(&R);
    pid_t z = sandbox_zygote_pid(sb, 0);
    EXPECT(z > 0, "slot 0 has no zygote");
    kill(z, SIGKILL);
    adversary("first run after the zygote was killed", "def f(x): return x + 1\n", "passed", 6);
    pid_t z2 = sandbox_zygote_pid(sb, 0);
    EXPECT(z2 > 0 && z2 != z, "zygote %d was not replaced (now %d)", (int)z, (int)z2);
    pthread_t th;
    if (z2 > 0 && pthread_create(&th, NULL, kill_later, &z2) == 0) {
        adversary("the zygote dies during the run", "import time\ntime.sleep(2)\ndef f(x): return x + 1\n",
                  "sandbox_error", 6);
        pthread_join(th, NULL);
    }
    adversary("first run after the zygote died in one", "def f(x): return x + 1\n", "passed", 6);
    EXPECT(sandbox_zygote_pid(sb, 0) > 0 && sandbox_zygote_pid(sb, 0) != z2, "zygote %d was not replaced", (int)z2);

}

static long rss_kb(pid_t pid) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "re");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

// The zygotes hold nothing of this process's memory, however large it is when they start (a copy would
// pin every page this process changes later), and destroying the sandbox ends them.
static void test_zygotes_are_small(void) {
    size_t big = (size_t)256 << 20;
    char *hold = malloc(big);
    if (hold) memset(hold, 1, big);
    Reward two;
    cJSON *o = cJSON_Parse("{\"workers\": 2}");
    EXPECT(reward_create(&two, "code", o) == 0, "%s", grpo_error());
    pid_t zs[2] = {sandbox_zygote_pid(reward_code_sandbox(&two), 0), sandbox_zygote_pid(reward_code_sandbox(&two), 1)};
    for (int i = 0; i < 2; i++)
        EXPECT(rss_kb(zs[i]) > 0 && rss_kb(zs[i]) < 32 << 10, "zygote of slot %d: %ld kB resident, this process %ld kB",
               i, rss_kb(zs[i]), rss_kb(getpid()));
    reward_destroy(&two);
    cJSON_Delete(o);
    free(hold);
    for (int i = 0; i < 2; i++)
        EXPECT(zs[i] > 0 && kill(zs[i], 0) != 0 && errno == ESRCH, "zygote %d of slot %d outlived its sandbox",
               (int)zs[i], i);
}

// Namespaces refused (simulated with a seccomp filter in a child process, as a locked-down container
// would do): the sandbox must refuse loudly, and weak mode must work only when allowed.
static int weak_mode_child(void) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 0);
    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
    if (seccomp_load(ctx) != 0) return 100;
    seccomp_release(ctx);
    int fails = 0;
    Reward w;
    cJSON *o = cJSON_Parse("{\"timeout_s\": 2, \"cpu_s\": 2, \"workers\": 1}");
    if (reward_create(&w, "code", o) == 0 || !strstr(grpo_error(), "SANDBOX REFUSED") || !strstr(grpo_error(), "user")) {
        fprintf(stderr, "  FAIL weak mode: not refused: %s\n", grpo_error());
        fails++;
    }
    cJSON_AddBoolToObject(o, "allow_weak_isolation", true);
    if (reward_create(&w, "code", o) != 0) {
        fprintf(stderr, "  FAIL weak mode: %s\n", grpo_error());
        cJSON_Delete(o);
        return fails + 1;
    }
    Sandbox *sb = reward_code_sandbox(&w);
    if (!sandbox_is_weak(sb) || !strstr(sandbox_layers(sb), "WEAK")) { fprintf(stderr, "  FAIL not weak\n"); fails++; }
    struct { const char *prog, *want; } cases[] = {
        {"def f(x): return x + 1", "passed"},
        {"def f(x): return x", "failed"},
        {"import os\nos._exit(0)", "failed"},
        {"while True: pass", "timeout"},
        {"import os, time\nif os.fork() == 0:\n    try:\n        os.setsid()\n    except OSError:\n        pass\n"
         "    time.sleep(60)\ndef f(x): return x + 1", "passed"},
        {"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 22))", "runtime_error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const Task *t = &T;
        RewardDetail d;
        float r;
        reward_score_batch(&w, &t, &cases[i].prog, 1, &r, &d);
        int left = sandbox_leftover(sb, 0);
        if (strcmp(d.verdict, cases[i].want) != 0 || left != 0) {
            fprintf(stderr, "  FAIL weak mode case %zu: %s (expected %s), %d left\n", i, d.verdict, cases[i].want, left);
            fails++;
        }
    }
    glob_t g;
    if (glob("/tmp/grpo-sandbox-*", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            // Another process's run may be in flight; ours are named by mkdtemp and removed at once.
            struct stat st;
            if (stat(g.gl_pathv[i], &st) == 0 && time(NULL) - st.st_mtime > 30) {
                fprintf(stderr, "  FAIL weak mode left %s\n", g.gl_pathv[i]);
                fails++;
            }
        }
        globfree(&g);
    }
    reward_destroy(&w);
    cJSON_Delete(o);
    return fails;
}

static void test_refusal_and_weak_mode(void) {
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) _exit(weak_mode_child());
    int st = 0;
    waitpid(p, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "weak-mode checks failed (status %d)", st);
}

int main(void) {
    self_pid = getpid();
    self_ppid = getppid();
    T.id = "adversarial";
    T.meta = cJSON_Parse("{\"test_list\": [\"assert f(1) == 2\"]}");
    cJSON *o = cJSON_Parse("{\"timeout_s\": 3, \"cpu_s\": 3, \"memory_mb\": 512, \"output_kb\": 512, \"workers\": 1}");
    if (reward_create(&R, "code", o) != 0) {
        fprintf(stderr, "FAIL: the sandbox cannot run here: %s\n", grpo_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    fprintf(stderr, "sandbox: %s\n", sandbox_layers(reward_code_sandbox(&R)));
    RUN_TEST(test_resource_bombs);
    RUN_TEST(test_escapes);
    RUN_TEST(test_network);
    RUN_TEST(test_environment_and_files);
    RUN_TEST(test_runs_do_not_share);
    RUN_TEST(test_zygote_recovery);
    RUN_TEST(test_zygotes_are_small);
    RUN_TEST(test_refusal_and_weak_mode);
    reward_destroy(&R);
    cJSON_Delete(o);
    cJSON_Delete(T.meta);
    return test_summary();
}
