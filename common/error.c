#include "error.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_buf[2048];

int grpo_errorf(const char *file, int line, const char *fmt, ...) {
    const char *base = strrchr(file, '/');
    int n = snprintf(err_buf, sizeof err_buf, "[%s:%d] ", base ? base + 1 : file, line);
    if (n < 0 || n >= (int)sizeof err_buf) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf + n, sizeof err_buf - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

int grpo_error_context(const char *fmt, ...) {
    char ctx[512], old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    snprintf(err_buf, sizeof err_buf, "%s: %s", ctx, old);
    return -1;
}

const char *grpo_error(void) { return err_buf[0] ? err_buf : "unknown error"; }
void grpo_error_clear(void) { err_buf[0] = 0; }

void *grpo_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) ERR("out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *grpo_calloc(size_t n, size_t size, const char *what) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) ERR("out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}
