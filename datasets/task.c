#include "datasets/task.h"
#include "common/error.h"
#include <stdlib.h>
#include <string.h>

void task_free(Task *t) {
    free(t->id);
    free(t->prompt);
    free(t->answer);
    cJSON_Delete(t->meta);
    memset(t, 0, sizeof *t);
}

static int dup_field(char **dst, const char *src) {
    *dst = NULL;
    if (!src) return 0;
    *dst = strdup(src);
    return *dst ? 0 : ERR("out of memory copying a task");
}

int task_clone(Task *dst, const Task *src) {
    memset(dst, 0, sizeof *dst);
    int rc = dup_field(&dst->id, src->id) | dup_field(&dst->prompt, src->prompt) | dup_field(&dst->answer, src->answer);
    if (rc == 0 && src->meta && !(dst->meta = cJSON_Duplicate(src->meta, 1))) rc = ERR("out of memory copying a task");
    if (rc != 0) task_free(dst);
    return rc;
}

static int str_equal(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

int task_equal(const Task *a, const Task *b) {
    return str_equal(a->id, b->id) && str_equal(a->prompt, b->prompt) && str_equal(a->answer, b->answer) &&
           (a->meta == b->meta || (a->meta && b->meta && cJSON_Compare(a->meta, b->meta, 1)));
}
