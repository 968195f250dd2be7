#include "fileio.h"
#include "error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// dirname without modifying the input or depending on libgen's static buffers.
static void dir_of(char *out, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == path) snprintf(out, cap, "/");
    else snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

int atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    CHECK(path && path[0], "atomic_open: empty output path");
    CHECK(strlen(path) + 16 < sizeof af->tmp, "%s: path longer than %zu characters", path, sizeof af->tmp - 16);
    snprintf(af->path, sizeof af->path, "%s", path);
    const char *slash = strrchr(path, '/');
    // A hidden name beside the target: same file system for rename, and globs such as *.safetensors skip it.
    snprintf(af->tmp, sizeof af->tmp, "%.*s.%s.tmpXXXXXX", slash ? (int)(slash - path + 1) : 0, path,
             slash ? slash + 1 : path);
    int fd = mkstemp(af->tmp);
    CHECK(fd >= 0, "%s: cannot create temporary file %s: %s", path, af->tmp, strerror(errno));
    // mkstemp makes 0600; an output file should be as readable as a plain fopen would make it, or keep the
    // mode of the file it replaces.
    struct stat st;
    mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 07777) : 0644;
    if (fchmod(fd, mode) != 0 || !(af->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        return ERR("%s: cannot open temporary file %s: %s", path, af->tmp, strerror(e));
    }
    return 0;
}

void atomic_abort(AtomicFile *af) {
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
        unlink(af->tmp);
    }
}

int atomic_commit(AtomicFile *af) {
    CHECK(af->f, "%s: atomic_commit without an open temporary file", af->path);
    int err = 0;
    const char *what = "";
    if (ferror(af->f)) { err = EIO; what = "write"; }
    else if (fflush(af->f) != 0) { err = errno; what = "write"; }
    else if (fsync(fileno(af->f)) != 0) { err = errno; what = "fsync"; }
    if (fclose(af->f) != 0 && !err) { err = errno; what = "close"; }
    af->f = NULL;
    if (!err && rename(af->tmp, af->path) != 0) { err = errno; what = "rename"; }
    if (err) {
        unlink(af->tmp);
        return ERR("%s: %s failed: %s (the previous file, if any, is unchanged)", af->path, what, strerror(err));
    }
    // The rename is durable only once the directory entry is on disk.
    char dir[4096];
    dir_of(dir, sizeof dir, af->path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t n) {
    AtomicFile af;
    TRY(atomic_open(&af, path));
    if (n && fwrite(data, 1, n, af.f) != n) {
        int e = errno;
        atomic_abort(&af);
        return ERR("%s: writing %zu bytes failed: %s", path, n, strerror(e));
    }
    return atomic_commit(&af);
}

char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { ERR("cannot open %s: %s", path, strerror(errno)); return NULL; }
    // Read in growing chunks rather than trusting a size from stat: works for pipes and /proc files too.
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *grown = realloc(buf, cap * 2);
        if (!grown) { free(buf); buf = NULL; break; }
        buf = grown;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) { ERR("out of memory reading %s (%zu bytes so far)", path, n); return NULL; }
    if (bad) { free(buf); ERR("error reading %s", path); return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int mkdir_p(const char *dir) {
    char buf[4096];
    CHECK(dir && dir[0], "mkdir_p: empty directory name");
    CHECK(strlen(dir) < sizeof buf, "%s: path longer than %zu characters", dir, sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ERR("cannot create directory %s: %s", buf, strerror(errno));
        *p = c;
        if (c == 0) break;
    }
    CHECK(path_is_dir(dir), "cannot create directory %s: a file of that name exists", dir);
    return 0;
}

int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
