#include "common/config_tree.h"
#include "common/error.h"
#include "common/fileio.h"
#include <stdlib.h>
#include <string.h>

const char *cfg_type_name(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

int cfg_exact_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -9007199254740992.0 && v->valuedouble <= 9007199254740992.0) ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

// A non-empty object is a schema; anything else in the defaults fixes a type or is free-form (header).
static bool is_schema(const cJSON *def) { return cJSON_IsObject(def) && def->child; }

static void join(char *out, size_t cap, const char *path, const char *key) {
    snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

static int unknown_key(const cJSON *def, const char *path, const char *source) {
    char known[400] = "";
    size_t n = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, def) {
        int w = snprintf(known + n, sizeof known - n, "%s%s", n ? ", " : "", k->string);
        if (w < 0 || (size_t)w >= sizeof known - n) {
            snprintf(known + sizeof known - 5, 5, "...");
            break;
        }
        n += (size_t)w;
    }
    const char *dot = strrchr(path, '.');
    return ERR("%s: unknown key \"%s\" (%s%.*s has: %s)", source, path, dot ? "" : "the top level",
               dot ? (int)(dot - path) : 0, path, known);
}

static int check_type(const cJSON *def, const cJSON *v, const char *path, const char *source) {
    bool ok = cJSON_IsNull(def)                         ? true
              : cJSON_IsNumber(def)                     ? cJSON_IsNumber(v)
              : cJSON_IsBool(def)                       ? cJSON_IsBool(v)
              : cJSON_IsString(def)                     ? cJSON_IsString(v)
              : cJSON_IsArray(def)                      ? cJSON_IsArray(v)
                                                        : cJSON_IsObject(v);
    CHECK(ok, "%s: key \"%s\": expected %s, got %s", source, path, cfg_type_name(def), cfg_type_name(v));
    return 0;
}

// Replaces (or adds) the item `key` of an object, or item number `key` of an array (appends at its
// length), with v, which it takes over.
static int put_child(cJSON *parent, const char *key, cJSON *v) {
    if (!v) return ERR("out of memory setting \"%s\"", key);
    bool ok;
    if (cJSON_IsArray(parent)) {
        int i = atoi(key);
        ok = i == cJSON_GetArraySize(parent) ? cJSON_AddItemToArray(parent, v) : cJSON_ReplaceItemInArray(parent, i, v);
    } else if (cJSON_GetObjectItemCaseSensitive(parent, key)) {
        ok = cJSON_ReplaceItemInObjectCaseSensitive(parent, key, v);
    } else {
        ok = cJSON_AddItemToObject(parent, key, v);
    }
    if (!ok) {
        cJSON_Delete(v);
        return ERR("out of memory setting \"%s\"", key);
    }
    return 0;
}

static int merge_item(cJSON *parent, const char *key, const cJSON *def, const cJSON *user, const char *path,
                      const char *source);

static int merge_object(cJSON *dst, const cJSON *def, const cJSON *user, const char *path, const char *source) {
    const cJSON *u;
    cJSON_ArrayForEach(u, user) {
        char sub[512];
        join(sub, sizeof sub, path, u->string);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(def, u->string);
        if (!d) return unknown_key(def, sub, source);
        TRY(merge_item(dst, u->string, d, u, sub, source));
    }
    return 0;
}

static int merge_item(cJSON *parent, const char *key, const cJSON *def, const cJSON *user, const char *path,
                      const char *source) {
    TRY(check_type(def, user, path, source));
    if (!is_schema(def)) return put_child(parent, key, cJSON_Duplicate(user, 1));
    // A tree that did not start as a copy of the defaults gets the defaults' object to merge into.
    cJSON *cur = cJSON_GetObjectItemCaseSensitive(parent, key);
    if (!cJSON_IsObject(cur)) {
        TRY(put_child(parent, key, cJSON_Duplicate(def, 1)));
        cur = cJSON_GetObjectItemCaseSensitive(parent, key);
    }
    return merge_object(cur, def, user, path, source);
}

int cfg_merge(cJSON *tree, const cJSON *defaults, const cJSON *user, const char *source) {
    CHECK(cJSON_IsObject(user), "%s: expected a JSON object at the top level, got %s", source, cfg_type_name(user));
    return merge_object(tree, defaults, user, "", source);
}

// An array index: digits only, no sign or spaces.
static int parse_index(const char *s) {
    if (!*s || strlen(s) > 9 || strspn(s, "0123456789") != strlen(s)) return -1;
    return atoi(s);
}

// The child of an object by key or of an array by index; NULL when there is none.
static cJSON *child(const cJSON *node, const char *key) {
    if (cJSON_IsArray(node)) {
        int i = parse_index(key);
        return i < 0 ? NULL : cJSON_GetArrayItem(node, i);
    }
    return cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, key) : NULL;
}

int cfg_set(cJSON *tree, const cJSON *defaults, const char *assignment) {
    char source[600], key[512], path[512] = "";
    snprintf(source, sizeof source, "--set %s", assignment);
    const char *eq = strchr(assignment, '=');
    CHECK(eq && eq > assignment, "%s: expected key.path=value", source);
    CHECK((size_t)(eq - assignment) < sizeof key, "%s: key longer than %zu bytes", source, sizeof key - 1);
    snprintf(key, sizeof key, "%.*s", (int)(eq - assignment), assignment);
    const char *raw = eq + 1;
    cJSON *parent = tree;
    const cJSON *def = defaults;  // NULL once inside a free-form value
    for (char *comp = key, *next; comp; comp = next) {
        next = strchr(comp, '.');
        if (next) *next++ = 0;
        CHECK(comp[0], "%s: empty component in the key path", source);
        char sub[512];
        join(sub, sizeof sub, path, comp);
        snprintf(path, sizeof path, "%s", sub);
        const cJSON *d = NULL;
        if (def) {
            d = cJSON_GetObjectItemCaseSensitive(def, comp);
            if (!d) return unknown_key(def, path, source);
        }
        if (!next) {
            cJSON *v = cJSON_ParseWithOpts(raw, NULL, 1);
            if (!v || (cJSON_IsString(d) && !cJSON_IsString(v))) {
                cJSON_Delete(v);
                v = cJSON_CreateString(raw);
            }
            if (!v) return ERR("out of memory");
            int rc;
            if (d) {
                rc = merge_item(parent, comp, d, v, path, source);
            } else {
                int i = cJSON_IsArray(parent) ? parse_index(comp) : 0;
                rc = i < 0 || i > cJSON_GetArraySize(parent)
                         ? ERR("%s: \"%s\": the array has %d items (an index may be at most that, to append)",
                               source, path, cJSON_GetArraySize(parent))
                         : put_child(parent, comp, cJSON_Duplicate(v, 1));
            }
            cJSON_Delete(v);
            return rc;
        }
        cJSON *c = child(parent, comp);
        CHECK(c, "%s: \"%s\" does not exist", source, path);
        CHECK(cJSON_IsObject(c) || cJSON_IsArray(c), "%s: \"%s\" is %s, it has no key \"%s\"", source, path,
              cfg_type_name(c), next);
        parent = c;
        def = is_schema(d) ? d : NULL;
    }
    return 0;
}

// The 1-based line of text[off].
static int line_of(const char *text, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off && text[i]; i++) line += text[i] == '\n';
    return line;
}

cJSON *cfg_load(const cJSON *defaults, const char *path, const char *const *sets, int nsets) {
    if (!is_schema(defaults)) {
        ERR("config defaults: expected a non-empty object, got %s", cfg_type_name(defaults));
        return NULL;
    }
    cJSON *tree = cJSON_Duplicate(defaults, 1);
    if (!tree) {
        ERR("out of memory copying the config defaults");
        return NULL;
    }
    int rc = 0;
    if (path) {
        char *text = read_file(path, NULL);
        const char *end = NULL;
        cJSON *user = text ? cJSON_ParseWithOpts(text, &end, 1) : NULL;
        if (!text) rc = -1;
        else if (!user) rc = ERR("%s:%d: not valid JSON", path, line_of(text, end ? (size_t)(end - text) : 0));
        else rc = cfg_merge(tree, defaults, user, path);
        cJSON_Delete(user);
        free(text);
    }
    for (int i = 0; rc == 0 && i < nsets; i++) rc = cfg_set(tree, defaults, sets[i]);
    if (rc != 0) {
        cJSON_Delete(tree);
        return NULL;
    }
    return tree;
}

const cJSON *cfg_get(const cJSON *tree, const char *path) {
    char key[512];
    if (strlen(path) >= sizeof key) {
        ERR("config key \"%s\": longer than %zu bytes", path, sizeof key - 1);
        return NULL;
    }
    snprintf(key, sizeof key, "%s", path);
    const cJSON *node = tree;
    for (char *comp = key, *next; comp; comp = next) {
        next = strchr(comp, '.');
        if (next) *next++ = 0;
        const cJSON *c = child(node, comp);
        if (!c) {
            ERR("config key \"%s\": not found (at \"%s\" in %s)", path, comp, cfg_type_name(node));
            return NULL;
        }
        node = c;
    }
    return node;
}

// The value at `path` when `is` accepts it, else NULL with an error naming what was expected and found.
static const cJSON *typed(const cJSON *tree, const char *path, cJSON_bool (*is)(const cJSON *), const char *what) {
    const cJSON *v = cfg_get(tree, path);
    if (v && !is(v)) {
        ERR("config key \"%s\": expected %s, got %s", path, what, cfg_type_name(v));
        return NULL;
    }
    return v;
}

int cfg_int64(const cJSON *tree, const char *path, int64_t *out) {
    const cJSON *v = typed(tree, path, cJSON_IsNumber, "an integer");
    if (!v) return -1;
    CHECK(cfg_exact_int(v, out) == 0, "config key \"%s\": expected an integer (of at most 2^53 in size), got %.17g",
          path, v->valuedouble);
    return 0;
}

int cfg_int(const cJSON *tree, const char *path, int *out) {
    int64_t v = 0;
    TRY(cfg_int64(tree, path, &v));
    CHECK(v >= -2147483647 - 1 && v <= 2147483647, "config key \"%s\": %lld is out of the int range", path,
          (long long)v);
    *out = (int)v;
    return 0;
}

int cfg_float(const cJSON *tree, const char *path, double *out) {
    const cJSON *v = typed(tree, path, cJSON_IsNumber, "a number");
    if (!v) return -1;
    *out = v->valuedouble;
    return 0;
}

int cfg_f32(const cJSON *tree, const char *path, float *out) {
    double v;
    TRY(cfg_float(tree, path, &v));
    *out = (float)v;
    return 0;
}

int cfg_str(const cJSON *tree, const char *path, const char **out) {
    const cJSON *v = typed(tree, path, cJSON_IsString, "a string");
    if (!v) return -1;
    *out = v->valuestring;
    return 0;
}

int cfg_bool(const cJSON *tree, const char *path, bool *out) {
    const cJSON *v = typed(tree, path, cJSON_IsBool, "a boolean");
    if (!v) return -1;
    *out = cJSON_IsTrue(v);
    return 0;
}
