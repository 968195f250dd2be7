// Answer equivalence: parses normalised answers into small expression trees and compares them: exactly as
// rationals when both sides are rational, otherwise numerically (complex doubles, relative tolerance) at
// a few pseudo-random values of the free variables, which decides polynomial and rational identities.
// Collections compare structurally: tuples and intervals in order (bracket kinds must agree), sets and
// bare lists in any order, relations after putting them one way round.
//
// Bounds: the parser's recursion stops at MAX_DEPTH, the node arena at MAX_NODES, collections at
// MAX_ITEMS; anything beyond is "not parsed", never a crash. Per-thread arenas keep the hot path free of
// allocation.
#include "rewards/math.h"
#include <complex.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_NODES = 2048, MAX_DEPTH = 120, MAX_ITEMS = 64, NPOINTS = 3 };

typedef enum {
    N_NUM, N_VAR, N_E, N_I, N_PI, N_INF,
    N_ADD, N_SUB, N_MUL, N_DIV, N_POW, N_NEG, N_PM, N_FUNC, N_FACT, N_ABS, N_BINOM,
    N_TUPLE, N_SET, N_LIST, N_MATRIX, N_UNION, N_REL
} Kind;
typedef enum { F_SIN, F_COS, F_TAN, F_COT, F_SEC, F_CSC, F_ASIN, F_ACOS, F_ATAN, F_LN, F_EXP, F_SQRT, F_ROOT } Func;
typedef enum { R_EQ, R_LT, R_LE, R_GT, R_GE, R_NE, R_IN } Rel;

typedef struct {
    uint8_t kind;
    uint8_t op;        // Func for N_FUNC; Rel of this operand to the previous one inside N_REL; 1 = \mp for N_PM
    char open, close;  // N_TUPLE brackets
    bool exact;        // N_NUM: p/q holds the value exactly
    bool has_pm, has_var;
    uint16_t depth;    // height of the subtree
    int a, b;          // operands (-1 = none); N_FUNC: a = argument, b = log base or root index
    int k0, nk;        // collections: kids[k0 .. k0 + nk); N_MATRIX rows are N_TUPLEs
    int next;          // sibling link while a collection is being parsed
    int64_t p, q;      // N_NUM exact value p/q (q > 0)
    double v;          // N_NUM value
    uint64_t h;        // N_VAR name hash
} Node;

typedef struct {
    Node nd[MAX_NODES];
    int kids[MAX_NODES];
    int nn, nkids;
    const char *s;
    size_t i, n;
    int depth;
    bool err;
} Tree;

// ---------------------------------------------------------------------------------------------- parse

static int node(Tree *t, Kind k, int a, int b) {
    if (t->nn >= MAX_NODES) {
        t->err = true;
        return -1;
    }
    Node *x = &t->nd[t->nn];
    memset(x, 0, sizeof *x);
    x->kind = (uint8_t)k, x->a = a, x->b = b, x->next = -1;
    int d = 0;
    for (int c = 0; c < 2; c++) {
        int ci = c ? b : a;
        if (ci < 0) continue;
        const Node *y = &t->nd[ci];
        x->has_pm |= y->has_pm, x->has_var |= y->has_var;
        if (y->depth > d) d = y->depth;
    }
    x->has_pm |= k == N_PM;
    x->has_var |= k == N_VAR;
    x->depth = (uint16_t)(d + 1);
    if (d + 1 > 4 * MAX_DEPTH) t->err = true;
    return t->nn++;
}

// Turns the sibling chain starting at `first` into the kids of collection node x.
static int collect(Tree *t, Kind k, int first) {
    int x = node(t, k, -1, -1);
    if (x < 0) return -1;
    Node *c = &t->nd[x];
    c->k0 = t->nkids;
    for (int e = first; e >= 0; e = t->nd[e].next) {
        if (t->nkids >= MAX_NODES || c->nk >= MAX_ITEMS) {
            t->err = true;
            return -1;
        }
        t->kids[t->nkids++] = e;
        c->nk++;
        c->has_pm |= t->nd[e].has_pm, c->has_var |= t->nd[e].has_var;
        if (t->nd[e].depth + 1 > c->depth) c->depth = (uint16_t)(t->nd[e].depth + 1);
    }
    return x;
}

static void ws(Tree *t) {
    while (t->i < t->n && t->s[t->i] == ' ') t->i++;
}
static char peek(Tree *t) {
    ws(t);
    return t->i < t->n ? t->s[t->i] : 0;
}
// Length of the command at the cursor ("\frac" -> 5, "\{" -> 2), 0 when the cursor is not on one.
static size_t cmdlen(Tree *t) {
    ws(t);
    if (t->i >= t->n || t->s[t->i] != '\\') return 0;
    size_t j = t->i + 1;
    while (j < t->n && isalpha((unsigned char)t->s[j])) j++;
    if (j == t->i + 1 && j < t->n) j++;
    return j - t->i;
}
static bool at_cmd(Tree *t, const char *name) {
    size_t m = cmdlen(t);
    return m && m - 1 == strlen(name) && !memcmp(t->s + t->i + 1, name, m - 1);
}
static bool eat_cmd(Tree *t, const char *name) {
    if (!at_cmd(t, name)) return false;
    t->i += strlen(name) + 1;
    return true;
}
static bool eat(Tree *t, char c) {
    if (peek(t) != c) return false;
    t->i++;
    return true;
}

// Names hash without braces, so x_{1} and x_1 are one variable.
static uint64_t hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; k < n; k++)
        if (s[k] != '{' && s[k] != '}') h = (h ^ (unsigned char)s[k]) * 1099511628211ull;
    return h;
}

static int parse_list(Tree *t);
static int parse_sum(Tree *t);
static int parse_power(Tree *t);
static int parse_atom(Tree *t);

static const struct { const char *name; Func f; } funcs[] = {
    {"sin", F_SIN},     {"cos", F_COS},     {"tan", F_TAN},     {"cot", F_COT}, {"sec", F_SEC},
    {"csc", F_CSC},     {"arcsin", F_ASIN}, {"arccos", F_ACOS}, {"arctan", F_ATAN}, {"ln", F_LN},
    {"log", F_LN},      {"exp", F_EXP},
};
#define NFUNCS (int)(sizeof funcs / sizeof funcs[0])

static int func_named(const char *s, size_t m) {
    for (int k = 0; k < NFUNCS; k++)
        if (strlen(funcs[k].name) == m && !memcmp(funcs[k].name, s, m)) return k;
    return -1;
}

// Commands that are operators or structure, never the start of a factor.
static const char *const non_atoms[] = {"cdot", "times", "div", "ast", "pm", "mp", "cup", "cap", "le", "leq",
                                        "leqslant", "ge", "geq", "geqslant", "lt", "gt", "ne", "neq", "in",
                                        "approx", "to", "end", "}", "{", "\\", "setminus", NULL};

static bool starts_atom(Tree *t) {
    char c = peek(t);
    if (isdigit((unsigned char)c) || isalpha((unsigned char)c) || c == '(' || c == '{') return true;
    if (c == '.') return t->i + 1 < t->n && isdigit((unsigned char)t->s[t->i + 1]);
    if (c != '\\') return false;
    size_t m = cmdlen(t);
    for (int k = 0; non_atoms[k]; k++)
        if (m - 1 == strlen(non_atoms[k]) && !memcmp(t->s + t->i + 1, non_atoms[k], m - 1)) return false;
    return m > 1;
}

static int num_node(Tree *t, const char *s, size_t m) {
    int x = node(t, N_NUM, -1, -1);
    if (x < 0) return -1;
    Node *nd = &t->nd[x];
    char buf[MATH_MAX_ANSWER + 1];
    size_t digits = 0, frac = 0;
    bool dot = false;
    int64_t p = 0;
    for (size_t k = 0; k < m; k++) {
        if (s[k] == '.') { dot = true; continue; }
        if (digits < 18) p = p * 10 + (s[k] - '0'), frac += dot;
        digits++;
    }
    size_t bl = m < sizeof buf - 1 ? m : sizeof buf - 1;
    memcpy(buf, s, bl);
    buf[bl] = 0;
    nd->v = strtod(buf, NULL);
    if (digits <= 18) {
        int64_t q = 1;
        for (size_t k = 0; k < frac; k++) q *= 10;
        int64_t a = p, b = q;
        while (b) { int64_t r = a % b; a = b; b = r; }
        nd->exact = true, nd->p = p / (a ? a : 1), nd->q = q / (a ? a : 1);
    }
    return x;
}

static int parse_number(Tree *t) {
    size_t b = t->i;
    while (t->i < t->n && isdigit((unsigned char)t->s[t->i])) t->i++;
    if (t->i + 1 < t->n && t->s[t->i] == '.' && isdigit((unsigned char)t->s[t->i + 1])) {
        t->i++;
        while (t->i < t->n && isdigit((unsigned char)t->s[t->i])) t->i++;
    } else if (t->i < t->n && t->s[t->i] == '.' && t->i == b) {
        return t->err = true, -1;
    }
    if (t->i < t->n && t->s[t->i] == '_') {
        // a base subscript (204_5): kept as an opaque symbol
        t->i++;
        if (t->i < t->n && t->s[t->i] == '{') {
            while (t->i < t->n && t->s[t->i] != '}') t->i++;
            if (t->i < t->n) t->i++;
        } else if (t->i < t->n) t->i++;
        int x = node(t, N_VAR, -1, -1);
        if (x >= 0) t->nd[x].h = hash(t->s + b, t->i - b);
        return x;
    }
    return num_node(t, t->s + b, t->i - b);
}

// A command's argument: a {group}, or one character / command as TeX reads it (\frac12, \sqrt2).
static int parse_arg(Tree *t) {
    char c = peek(t);
    if (c == '{') {
        t->i++;
        int x = parse_list(t);
        if (!eat(t, '}')) t->err = true;
        return x;
    }
    if (isdigit((unsigned char)c)) {
        t->i++;
        return num_node(t, t->s + t->i - 1, 1);
    }
    if (isalpha((unsigned char)c) || c == '\\') {
        if (isalpha((unsigned char)c)) {
            t->i++;
            int x = node(t, c == 'e' ? N_E : c == 'i' ? N_I : N_VAR, -1, -1);
            if (x >= 0) t->nd[x].h = hash(&c, 1);
            return x;
        }
        return parse_atom(t);
    }
    t->err = true;
    return -1;
}

// A function's argument when it is not parenthesised: the product of factors that follows (\sin 2x).
static int parse_implicit(Tree *t) {
    int x = parse_power(t);
    while (!t->err && starts_atom(t) && peek(t) != '(') x = node(t, N_MUL, x, parse_power(t));
    return x;
}

static int parse_func(Tree *t, Func f) {
    int base = -1, expo = -1;
    if (f == F_LN && eat(t, '_')) base = parse_arg(t);
    if (eat(t, '^')) expo = parse_arg(t);
    int arg = peek(t) == '(' || peek(t) == '{' ? parse_atom(t) : parse_implicit(t);
    int x = node(t, N_FUNC, arg, base);
    if (x >= 0) t->nd[x].op = (uint8_t)f;
    return expo >= 0 ? node(t, N_POW, x, expo) : x;
}

// \begin{pmatrix} a & b \\ c & d \end{pmatrix}: rows of cells.
static int parse_matrix(Tree *t) {
    if (!eat(t, '{')) return t->err = true, -1;
    while (t->i < t->n && t->s[t->i] != '}') t->i++;
    t->i++;
    int rows = -1, last_row = -1;
    for (;;) {
        int cells = -1, last = -1;
        for (;;) {
            int c = parse_sum(t);
            if (t->err) return -1;
            if (last < 0) cells = c; else t->nd[last].next = c;
            last = c;
            if (!eat(t, '&')) break;
        }
        int row = collect(t, N_TUPLE, cells);
        if (row < 0) return -1;
        if (last_row < 0) rows = row; else t->nd[last_row].next = row;
        last_row = row;
        if (!eat_cmd(t, "\\")) break;
        if (at_cmd(t, "end")) break;
    }
    if (!eat_cmd(t, "end") || !eat(t, '{')) return t->err = true, -1;
    while (t->i < t->n && t->s[t->i] != '}') t->i++;
    t->i++;
    return collect(t, N_MATRIX, rows);
}

// A bracketed collection or group; `close2` is the other closer an interval may end with.
static int parse_group(Tree *t, char close, char close2, Kind list_kind) {
    char open = t->s[t->i - 1];
    int x = parse_list(t);
    if (t->err) return -1;
    char c = peek(t);
    if (c != close && c != close2) return t->err = true, -1;
    t->i++;
    if (t->nd[x].kind == N_LIST) {
        t->nd[x].kind = (uint8_t)list_kind;
        t->nd[x].open = open, t->nd[x].close = c;
    } else if (c != close) return t->err = true, -1;
    return x;
}

static int parse_atom(Tree *t) {
    if (++t->depth > MAX_DEPTH) return t->err = true, -1;
    int x = -1;
    char c = peek(t);
    if (isdigit((unsigned char)c) || c == '.') {
        x = parse_number(t);
        size_t save_i = t->i;
        int save_nn = t->nn, save_nk = t->nkids;
        const Node *whole = x >= 0 ? &t->nd[x] : NULL;
        if (whole && whole->kind == N_NUM && whole->exact && whole->q == 1 && eat_cmd(t, "frac")) {
            // a mixed number: 137\frac{1}{2} is 137 + 1/2 when both parts are integers
            int a = parse_arg(t), b = parse_arg(t);
            const Node *na = a >= 0 ? &t->nd[a] : NULL, *nb = b >= 0 ? &t->nd[b] : NULL;
            if (!t->err && na->kind == N_NUM && nb->kind == N_NUM && na->exact && nb->exact && na->q == 1 &&
                nb->q == 1)
                x = node(t, N_ADD, x, node(t, N_DIV, a, b));
            else t->i = save_i, t->nn = save_nn, t->nkids = save_nk, t->err = false;
        }
    } else if (isalpha((unsigned char)c)) {
        size_t b = t->i, e = b;
        while (e < t->n && isalpha((unsigned char)t->s[e])) e++;
        int f;
        if ((f = func_named(t->s + b, e - b)) >= 0) {
            t->i = e;
            x = parse_func(t, funcs[f].f);
        } else if (e - b == 2 && !memcmp(t->s + b, "pi", 2)) t->i = e, x = node(t, N_PI, -1, -1);
        else if ((e - b == 3 && !memcmp(t->s + b, "inf", 3)) || (e - b == 5 && !memcmp(t->s + b, "infty", 5)))
            t->i = e, x = node(t, N_INF, -1, -1);
        else if (e - b == 4 && !memcmp(t->s + b, "sqrt", 4)) {
            t->i = e;
            x = node(t, N_FUNC, parse_atom(t), -1);
            if (x >= 0) t->nd[x].op = F_SQRT;
        } else {
            t->i = b + 1;
            size_t ne = t->i;
            if (t->i < t->n && t->s[t->i] == '_') {
                t->i++;
                if (t->i < t->n && t->s[t->i] == '{') {
                    while (t->i < t->n && t->s[t->i] != '}') t->i++;
                    if (t->i < t->n) t->i++;
                } else if (t->i < t->n) t->i++;
                ne = t->i;
            }
            Kind k = ne == b + 1 && c == 'e' ? N_E : ne == b + 1 && c == 'i' ? N_I : N_VAR;
            x = node(t, k, -1, -1);
            if (x >= 0) t->nd[x].h = hash(t->s + b, ne - b);
        }
    } else if (c == '(') {
        t->i++;
        x = parse_group(t, ')', ']', N_TUPLE);
    } else if (c == '[') {
        t->i++;
        x = parse_group(t, ']', ')', N_TUPLE);
    } else if (c == '{') {
        t->i++;
        x = parse_group(t, '}', '}', N_SET);
    } else if (c == '|') {
        t->i++;
        x = node(t, N_ABS, parse_sum(t), -1);
        if (!eat(t, '|')) t->err = true;
    } else if (c == '\\') {
        size_t m = cmdlen(t);
        const char *name = t->s + t->i + 1;
        int f = func_named(name, m - 1);
        if (f >= 0) {
            t->i += m;
            x = parse_func(t, funcs[f].f);
        } else if (eat_cmd(t, "frac")) {
            int a = parse_arg(t);
            x = node(t, N_DIV, a, parse_arg(t));
        } else if (eat_cmd(t, "binom")) {
            int a = parse_arg(t);
            x = node(t, N_BINOM, a, parse_arg(t));
        } else if (eat_cmd(t, "sqrt")) {
            int idx = -1;
            if (eat(t, '[')) {
                idx = parse_sum(t);
                if (!eat(t, ']')) t->err = true;
            }
            x = node(t, N_FUNC, parse_arg(t), idx);
            if (x >= 0) t->nd[x].op = idx >= 0 ? F_ROOT : F_SQRT;
        } else if (eat_cmd(t, "pi")) x = node(t, N_PI, -1, -1);
        else if (eat_cmd(t, "infty") || eat_cmd(t, "infin")) x = node(t, N_INF, -1, -1);
        else if (eat_cmd(t, "emptyset") || eat_cmd(t, "varnothing")) x = collect(t, N_SET, -1);
        else if (eat_cmd(t, "{")) {
            if (eat_cmd(t, "}")) return t->depth--, collect(t, N_SET, -1);
            int l = parse_list(t);
            if (!eat_cmd(t, "}")) t->err = true;
            if (!t->err && t->nd[l].kind == N_LIST) t->nd[l].kind = N_SET, x = l;
            else if (!t->err) x = collect(t, N_SET, l);
        } else if (eat_cmd(t, "begin")) x = parse_matrix(t);
        else if (starts_atom(t)) {
            // a Greek letter or any other symbol: a variable named by the command
            x = node(t, N_VAR, -1, -1);
            if (x >= 0) t->nd[x].h = hash(name - 1, m);
            t->i += m;
        } else t->err = true;
    } else t->err = true;
    if (!t->err && eat(t, '!')) x = node(t, N_FACT, x, -1);
    t->depth--;
    return t->err ? -1 : x;
}

static int parse_power(Tree *t) {
    int x = parse_atom(t);
    while (!t->err) {
        if (peek(t) == '*' && t->i + 1 < t->n && t->s[t->i + 1] == '*') t->i += 2;
        else if (!eat(t, '^')) break;
        int e;
        char c = peek(t);
        if (c == '{' || c == '(') e = parse_atom(t);
        else if (isdigit((unsigned char)c)) e = parse_number(t);  // x^10 is 10 in plain-text answers
        else if (c == '-') {
            t->i++;
            e = node(t, N_NEG, parse_arg(t), -1);
        } else e = parse_arg(t);
        x = node(t, N_POW, x, e);
    }
    return x;
}

static int parse_unary(Tree *t) {
    if (++t->depth > MAX_DEPTH) return t->err = true, -1;
    int x;
    if (eat(t, '-')) x = node(t, N_NEG, parse_unary(t), -1);
    else if (eat(t, '+')) x = parse_unary(t);
    else if (eat_cmd(t, "pm")) x = node(t, N_PM, -1, parse_unary(t));
    else if (eat_cmd(t, "mp")) {
        x = node(t, N_PM, -1, parse_unary(t));
        if (x >= 0) t->nd[x].op = 1;
    } else x = parse_power(t);
    t->depth--;
    return x;
}

static int parse_term(Tree *t) {
    int x = parse_unary(t);
    while (!t->err) {
        char c = peek(t);
        if (c == '*' && !(t->i + 1 < t->n && t->s[t->i + 1] == '*')) t->i++, x = node(t, N_MUL, x, parse_unary(t));
        else if (eat_cmd(t, "cdot") || eat_cmd(t, "times") || eat_cmd(t, "ast")) x = node(t, N_MUL, x, parse_unary(t));
        else if (c == '/') t->i++, x = node(t, N_DIV, x, parse_unary(t));
        else if (eat_cmd(t, "div")) x = node(t, N_DIV, x, parse_unary(t));
        else if (starts_atom(t)) x = node(t, N_MUL, x, parse_power(t));
        else break;
    }
    return x;
}

static int parse_sum(Tree *t) {
    int x = parse_term(t);
    while (!t->err) {
        if (eat(t, '+')) x = node(t, N_ADD, x, parse_term(t));
        else if (eat(t, '-')) x = node(t, N_SUB, x, parse_term(t));
        else if (eat_cmd(t, "pm")) x = node(t, N_PM, x, parse_term(t));
        else if (eat_cmd(t, "mp")) {
            x = node(t, N_PM, x, parse_term(t));
            if (x >= 0) t->nd[x].op = 1;
        } else break;
    }
    return x;
}

static int parse_union(Tree *t) {
    int first = parse_sum(t);
    if (t->err || !at_cmd(t, "cup")) return first;
    int last = first;
    while (!t->err && eat_cmd(t, "cup")) {
        int y = parse_sum(t);
        if (t->err) return -1;
        t->nd[last].next = y, last = y;
    }
    return collect(t, N_UNION, first);
}

static int rel_op(Tree *t) {
    char c = peek(t);
    const char *s = t->s + t->i;
    bool two = t->i + 1 < t->n;
    if (c == '<' && two && s[1] == '=') return t->i += 2, R_LE;
    if (c == '>' && two && s[1] == '=') return t->i += 2, R_GE;
    if (c == '!' && two && s[1] == '=') return t->i += 2, R_NE;
    if (c == '=') return t->i++, R_EQ;
    if (c == '<') return t->i++, R_LT;
    if (c == '>') return t->i++, R_GT;
    static const struct { const char *name; Rel r; } cmds[] = {
        {"le", R_LE}, {"leq", R_LE}, {"leqslant", R_LE}, {"ge", R_GE}, {"geq", R_GE}, {"geqslant", R_GE},
        {"lt", R_LT}, {"gt", R_GT},  {"ne", R_NE},       {"neq", R_NE}, {"in", R_IN}, {"approx", R_EQ}};
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
        if (eat_cmd(t, cmds[k].name)) return cmds[k].r;
    return -1;
}

static int parse_rel(Tree *t) {
    int first = parse_union(t);
    if (t->err) return -1;
    int last = first, r;
    bool any = false;
    while ((r = rel_op(t)) >= 0) {
        int y = parse_union(t);
        if (t->err) return -1;
        t->nd[y].op = (uint8_t)r;
        t->nd[last].next = y, last = y, any = true;
    }
    return any ? collect(t, N_REL, first) : first;
}

static int parse_list(Tree *t) {
    if (++t->depth > MAX_DEPTH) return t->err = true, -1;
    int first = parse_rel(t), last = first;
    bool any = false;
    while (!t->err && (eat(t, ',') || eat(t, ';'))) {
        int y = parse_rel(t);
        if (t->err) break;
        t->nd[last].next = y, last = y, any = true;
    }
    t->depth--;
    if (t->err) return -1;
    return any ? collect(t, N_LIST, first) : first;
}

static int parse(Tree *t, const char *s, size_t n) {
    t->nn = t->nkids = t->depth = 0;
    t->s = s, t->n = n, t->i = 0, t->err = false;
    int x = parse_list(t);
    if (t->err || peek(t) != 0) return -1;
    return x;
}

// ----------------------------------------------------------------------------------------- evaluate

typedef double complex cplx;

static double var_value(uint64_t h, int pt) {
    uint64_t z = h + 0x9e3779b97f4a7c15ull * (uint64_t)(pt + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return 0.5 + 2.0 * (double)(z >> 11) / 9007199254740992.0;
}

// Value at variable assignment `pt`; pm (+1 / -1) picks the sign of every \pm.
static cplx eval(const Tree *t, int x, int pt, int pm) {
    if (x < 0) return NAN;
    const Node *n = &t->nd[x];
    switch ((Kind)n->kind) {
    case N_NUM: return n->v;
    case N_VAR: return var_value(n->h, pt);
    case N_E: return M_E;
    case N_I: return I;
    case N_PI: return M_PI;
    case N_INF: return INFINITY;
    case N_ADD: return eval(t, n->a, pt, pm) + eval(t, n->b, pt, pm);
    case N_SUB: return eval(t, n->a, pt, pm) - eval(t, n->b, pt, pm);
    case N_MUL: return eval(t, n->a, pt, pm) * eval(t, n->b, pt, pm);
    case N_DIV: {
        cplx d = eval(t, n->b, pt, pm);
        return d == 0 ? NAN : eval(t, n->a, pt, pm) / d;
    }
    case N_NEG: return -eval(t, n->a, pt, pm);
    case N_PM: {
        cplx a = n->a >= 0 ? eval(t, n->a, pt, pm) : 0, b = eval(t, n->b, pt, pm);
        return (pm < 0) != (n->op == 1) ? a - b : a + b;
    }
    case N_POW: {
        cplx b = eval(t, n->a, pt, pm), e = eval(t, n->b, pt, pm);
        if (cimag(b) == 0 && cimag(e) == 0 && (creal(b) > 0 || creal(e) == floor(creal(e))))
            return pow(creal(b), creal(e));
        return cpow(b, e);
    }
    case N_FACT: {
        cplx a = eval(t, n->a, pt, pm);
        return cimag(a) == 0 && creal(a) >= 0 ? tgamma(creal(a) + 1) : NAN;
    }
    case N_ABS: return cabs(eval(t, n->a, pt, pm));
    case N_BINOM: {
        double a = creal(eval(t, n->a, pt, pm)), b = creal(eval(t, n->b, pt, pm));
        return exp(lgamma(a + 1) - lgamma(b + 1) - lgamma(a - b + 1));
    }
    case N_FUNC: {
        cplx a = eval(t, n->a, pt, pm);
        switch ((Func)n->op) {
        case F_SIN: return csin(a);
        case F_COS: return ccos(a);
        case F_TAN: return ctan(a);
        case F_COT: return 1 / ctan(a);
        case F_SEC: return 1 / ccos(a);
        case F_CSC: return 1 / csin(a);
        case F_ASIN: return casin(a);
        case F_ACOS: return cacos(a);
        case F_ATAN: return catan(a);
        case F_LN: return n->b >= 0 ? clog(a) / clog(eval(t, n->b, pt, pm)) : clog(a);
        case F_EXP: return cexp(a);
        case F_SQRT: return cimag(a) == 0 && creal(a) >= 0 ? sqrt(creal(a)) : csqrt(a);
        case F_ROOT: {
            cplx k = eval(t, n->b, pt, pm);
            if (cimag(a) == 0 && cimag(k) == 0 && creal(a) < 0 && fmod(creal(k), 2) == 1)
                return -pow(-creal(a), 1 / creal(k));  // odd roots of negatives stay real
            return cpow(a, 1 / k);
        }
        }
        return NAN;
    }
    default: return NAN;  // collections are never scalars
    }
}

bool rational_reduce(__int128 p, __int128 q, int64_t *op, int64_t *oq) {
    if (q == 0) return false;
    if (q < 0) p = -p, q = -q;
    __int128 a = p < 0 ? -p : p, b = q;
    while (b) { __int128 r = a % b; a = b; b = r; }
    if (a > 1) p /= a, q /= a;
    if (p > INT64_MAX || p < -INT64_MAX || q > INT64_MAX) return false;
    *op = (int64_t)p, *oq = (int64_t)q;
    return true;
}

static bool exact(const Tree *t, int x, int64_t *p, int64_t *q) {
    if (x < 0) return false;
    const Node *n = &t->nd[x];
    if (n->has_var || n->has_pm) return false;
    int64_t ap, aq, bp, bq;
    switch ((Kind)n->kind) {
    case N_NUM: return n->exact && (*p = n->p, *q = n->q, true);
    case N_NEG: return exact(t, n->a, p, q) && (*p = -*p, true);
    case N_ADD: case N_SUB: case N_MUL: case N_DIV:
        if (!exact(t, n->a, &ap, &aq) || !exact(t, n->b, &bp, &bq)) return false;
        if (n->kind == N_ADD) return rational_reduce((__int128)ap * bq + (__int128)bp * aq, (__int128)aq * bq, p, q);
        if (n->kind == N_SUB) return rational_reduce((__int128)ap * bq - (__int128)bp * aq, (__int128)aq * bq, p, q);
        if (n->kind == N_MUL) return rational_reduce((__int128)ap * bp, (__int128)aq * bq, p, q);
        return rational_reduce((__int128)ap * bq, (__int128)aq * bp, p, q);
    case N_POW: {
        if (!exact(t, n->a, &ap, &aq) || !exact(t, n->b, &bp, &bq) || bq != 1 || bp > 64 || bp < -64) return false;
        if (bp < 0) {
            if (ap == 0) return false;
            int64_t s = ap;
            ap = aq, aq = s, bp = -bp;
        }
        int64_t rp = 1, rq = 1;
        for (int64_t k = 0; k < bp; k++)
            if (!rational_reduce((__int128)rp * ap, (__int128)rq * aq, &rp, &rq)) return false;
        return rational_reduce(rp, rq, p, q);
    }
    case N_FACT: {
        if (!exact(t, n->a, &ap, &aq) || aq != 1 || ap < 0 || ap > 20) return false;
        int64_t f = 1;
        for (int64_t k = 2; k <= ap; k++) f *= k;
        return *p = f, *q = 1, true;
    }
    default: return false;
    }
}

// ------------------------------------------------------------------------------------------ compare

typedef struct {
    const Tree *g, *p;
    double tol;
    int64_t gdiv, pdiv;  // a percent answer may also be read as value / 100
} Cmp;

static bool close_enough(cplx a, cplx b, double tol) {
    if (!isfinite(creal(a)) || !isfinite(cimag(a)) || !isfinite(creal(b)) || !isfinite(cimag(b)))
        return cimag(a) == 0 && cimag(b) == 0 && isinf(creal(a)) && creal(a) == creal(b);
    double d = cabs(a - b), m = fmax(cabs(a), cabs(b));
    return d <= tol * m || d <= 1e-12;
}

static bool scalar_eq(const Cmp *c, int g, int gpm, int p, int ppm) {
    int64_t gp, gq, pp, pq;
    if (exact(c->g, g, &gp, &gq) && exact(c->p, p, &pp, &pq))
        return (__int128)gp * pq * c->pdiv == (__int128)pp * gq * c->gdiv;
    int npts = c->g->nd[g].has_var || c->p->nd[p].has_var ? NPOINTS : 1;
    for (int pt = 0; pt < npts; pt++) {
        cplx a = eval(c->g, g, pt, gpm) / (double)c->gdiv, b = eval(c->p, p, pt, ppm) / (double)c->pdiv;
        if (!close_enough(a, b, c->tol)) return false;
    }
    return true;
}

static bool is_coll(const Node *n) {
    return n->kind == N_SET || n->kind == N_LIST || n->kind == N_UNION ||
           (n->has_pm && n->kind != N_TUPLE && n->kind != N_MATRIX && n->kind != N_REL);
}

typedef struct { int x, pm; } Item;

// The members of an unordered collection; a member holding \pm stands for its two values.
static int items(const Tree *t, int x, Item *out) {
    const Node *n = &t->nd[x];
    int m = 0;
    if (n->kind != N_SET && n->kind != N_LIST && n->kind != N_UNION) {
        if (!n->has_pm) return out[0] = (Item){x, 0}, 1;
        out[0] = (Item){x, 1}, out[1] = (Item){x, -1};
        return 2;
    }
    for (int k = 0; k < n->nk && m + 2 <= 2 * MAX_ITEMS; k++) {
        int e = t->kids[n->k0 + k];
        if (t->nd[e].has_pm && t->nd[e].kind != N_TUPLE) out[m++] = (Item){e, 1}, out[m++] = (Item){e, -1};
        else out[m++] = (Item){e, 0};
    }
    return m;
}

static bool eq(const Cmp *c, int g, int gpm, int p, int ppm);

static bool kids_eq(const Cmp *c, const Node *a, const Node *b) {
    if (a->nk != b->nk) return false;
    for (int k = 0; k < a->nk; k++)
        if (!eq(c, c->g->kids[a->k0 + k], 0, c->p->kids[b->k0 + k], 0)) return false;
    return true;
}

// lhs - rhs of a one-relation equation, at one point.
static cplx eq_side(const Tree *t, const Node *r, int pt) {
    return eval(t, t->kids[r->k0], pt, 0) - eval(t, t->kids[r->k0 + 1], pt, 0);
}

static bool rel_down(const Tree *t, const Node *r) {
    for (int k = 1; k < r->nk; k++) {
        Rel o = (Rel)t->nd[t->kids[r->k0 + k]].op;
        if (o != R_GT && o != R_GE) return false;
    }
    return true;
}

static Rel flip(Rel r, bool down) {
    if (!down) return r;
    return r == R_GT ? R_LT : r == R_GE ? R_LE : r;
}

static bool rel_eq(const Cmp *c, const Node *a, const Node *b) {
    if (a->nk != b->nk) return false;
    if (a->nk == 2 && c->p->nd[c->p->kids[b->k0 + 1]].op == R_EQ && c->g->nd[c->g->kids[a->k0 + 1]].op == R_EQ) {
        // equations are equivalent when lhs - rhs agree up to a non-zero factor
        cplx ratio = 0;
        for (int pt = 0; pt < NPOINTS; pt++) {
            cplx fa = eq_side(c->g, a, pt), fb = eq_side(c->p, b, pt);
            if (cabs(fa) <= 1e-12 && cabs(fb) <= 1e-12) continue;
            if (cabs(fb) <= 1e-12 || cabs(fa) <= 1e-12) return false;
            if (ratio == 0) ratio = fa / fb;
            else if (!close_enough(fa / fb, ratio, c->tol)) return false;
        }
        return true;
    }
    // a chain of > / >= reads right to left as < / <=, so "a \le x" and "x \ge a" agree
    bool ra = rel_down(c->g, a), rb = rel_down(c->p, b);
    for (int k = 0; k < a->nk; k++) {
        int ia = ra ? a->nk - 1 - k : k, ib = rb ? b->nk - 1 - k : k;
        if (k > 0) {
            Rel oa = (Rel)c->g->nd[c->g->kids[a->k0 + (ra ? ia + 1 : ia)]].op;
            Rel ob = (Rel)c->p->nd[c->p->kids[b->k0 + (rb ? ib + 1 : ib)]].op;
            if (flip(oa, ra) != flip(ob, rb)) return false;
        }
        if (!eq(c, c->g->kids[a->k0 + ia], 0, c->p->kids[b->k0 + ib], 0)) return false;
    }
    return true;
}

static bool eq(const Cmp *c, int g, int gpm, int p, int ppm) {
    const Node *a = &c->g->nd[g], *b = &c->p->nd[p];
    if (a->kind == N_TUPLE || b->kind == N_TUPLE) {
        const Node *tu = a->kind == N_TUPLE ? a : b, *o = a->kind == N_TUPLE ? b : a;
        if (o->kind == N_TUPLE) {
            // (0,1) and [0,1) differ; for longer tuples the brackets are notation only
            if (a->nk == 2 && (a->open != b->open || a->close != b->close)) return false;
            return kids_eq(c, a, b);
        }
        if (o->kind == N_LIST && tu->open == '(') return kids_eq(c, a, b);
        if (o->kind == N_MATRIX && o->nk == tu->nk) {
            // a column vector and a tuple of the same entries
            const Tree *ot = o == a ? c->g : c->p;
            for (int k = 0; k < o->nk; k++) {
                const Node *row = &ot->nd[ot->kids[o->k0 + k]];
                if (row->nk != 1) return false;
                int cell = ot->kids[row->k0], tk = (tu == a ? c->g : c->p)->kids[tu->k0 + k];
                if (!(o == a ? eq(c, cell, 0, tk, 0) : eq(c, tk, 0, cell, 0))) return false;
            }
            return true;
        }
        return false;
    }
    if (a->kind == N_MATRIX || b->kind == N_MATRIX) return a->kind == b->kind && kids_eq(c, a, b);
    if (a->kind == N_REL || b->kind == N_REL) return a->kind == b->kind && rel_eq(c, a, b);
    if ((is_coll(a) && gpm == 0) || (is_coll(b) && ppm == 0)) {
        Item ga[2 * MAX_ITEMS], pa[2 * MAX_ITEMS];
        bool used[2 * MAX_ITEMS] = {0};
        int ng = items(c->g, g, ga), np = items(c->p, p, pa);
        if (ng != np) return false;
        for (int i = 0; i < ng; i++) {
            int j;
            for (j = 0; j < np; j++)
                if (!used[j] && eq(c, ga[i].x, ga[i].pm, pa[j].x, pa[j].pm)) break;
            if (j == np) return false;
            used[j] = true;
        }
        return true;
    }
    return scalar_eq(c, g, gpm, p, ppm);
}

// ---------------------------------------------------------------------------------- top-level forms

static bool is_var(const Tree *t, int x) { return x >= 0 && t->nd[x].kind == N_VAR; }

// "x = 5" -> 5 and "x \in [a, b]" -> [a, b]: the variable names the answer, it is not part of it.
// Inequalities in one variable become intervals: "x \le 3" -> (-inf, 3], "a < x \le b" -> (a, b].
static int simplify(Tree *t, int x) {
    Node *n = &t->nd[x];
    if (n->kind == N_LIST) {
        for (int k = 0; k < n->nk; k++) t->kids[n->k0 + k] = simplify(t, t->kids[n->k0 + k]);
        return x;
    }
    if (n->kind != N_REL) return x;
    int k0 = t->kids[n->k0], k1 = t->kids[n->k0 + 1];
    Rel r1 = (Rel)t->nd[k1].op;
    if (n->nk == 2 && (r1 == R_EQ || r1 == R_IN) && is_var(t, k0) && t->nd[k1].kind != N_REL) return k1;
    bool up = true, down = true;
    for (int k = 1; k < n->nk; k++) {
        Rel r = (Rel)t->nd[t->kids[n->k0 + k]].op;
        up &= r == R_LT || r == R_LE;
        down &= r == R_GT || r == R_GE;
    }
    if (!(up || down) || n->nk > 3) return x;
    int lo, hi;
    bool lo_closed, hi_closed;
    int ops[3] = {0}, vals[3];
    for (int k = 0; k < n->nk; k++) vals[k] = t->kids[n->k0 + k], ops[k] = t->nd[vals[k]].op;
    if (n->nk == 3) {
        if (!is_var(t, vals[1])) return x;
        int l = up ? 0 : 2, h = up ? 2 : 0;
        lo = vals[l], hi = vals[h];
        lo_closed = ops[up ? 1 : 2] == (up ? R_LE : R_GE);
        hi_closed = ops[up ? 2 : 1] == (up ? R_LE : R_GE);
    } else {
        bool var_left = is_var(t, vals[0]);
        if (var_left == is_var(t, vals[1])) return x;
        int other = var_left ? vals[1] : vals[0];
        bool closed = ops[1] == R_LE || ops[1] == R_GE;
        bool upper = var_left == up;  // x < a, a > x: a bounds from above
        int inf = node(t, N_INF, -1, -1);
        if (inf < 0) return x;
        if (upper) lo = node(t, N_NEG, inf, -1), hi = other, lo_closed = false, hi_closed = closed;
        else lo = other, hi = inf, lo_closed = closed, hi_closed = false;
    }
    if (lo < 0 || t->nkids + 2 > MAX_NODES) return x;
    t->nd[lo].next = hi, t->nd[hi].next = -1;
    int tu = collect(t, N_TUPLE, lo);
    if (tu < 0) return x;
    t->nd[tu].open = lo_closed ? '[' : '(', t->nd[tu].close = hi_closed ? ']' : ')';
    return tu;
}

// ------------------------------------------------------------------------------------- string forms

// Words that may appear in a formula; any other run of three or more letters makes the answer text.
static const char *const formula_words[] = {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan",
                                            "ln", "log", "exp", "sqrt", "pi", "inf", "infty", "pmatrix",
                                            "bmatrix", "matrix", "vmatrix", NULL};

static bool is_text(const char *s) {
    for (size_t i = 0; s[i];) {
        if (!isalpha((unsigned char)s[i])) { i++; continue; }
        size_t b = i;
        while (isalpha((unsigned char)s[i])) i++;
        if (i - b < 3 || (b > 0 && s[b - 1] == '\\')) continue;
        bool known = false;
        for (int k = 0; formula_words[k] && !known; k++)
            known = strlen(formula_words[k]) == i - b && !memcmp(formula_words[k], s + b, i - b);
        if (!known) return true;
    }
    return false;
}

// Lower case without spaces, braces or a final period, for comparing text answers.
static void text_key(const char *s, char *out, size_t cap) {
    size_t m = 0;
    for (size_t i = 0; s[i] && m + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '{' || c == '}' || c == '\\') continue;
        out[m++] = (char)tolower(c);
    }
    while (m > 0 && out[m - 1] == '.') m--;
    out[m] = 0;
}

// A multiple-choice letter: "C", "(C)", "C)", "C.". Returns the upper-case letter or 0.
static char choice(const char *s) {
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '(' && s[n - 1] == ')') s++, n -= 2;
    else if (n == 2 && (s[1] == ')' || s[1] == '.')) n = 1;
    return n == 1 && isalpha((unsigned char)s[0]) ? (char)toupper((unsigned char)s[0]) : 0;
}

static _Thread_local Tree tree_g, tree_p;

int math_equal(const char *gold, size_t ngold, const char *pred, size_t npred, const MathOptions *opt) {
    MathOptions def;
    if (!opt) math_options_default(&def), opt = &def;
    char g[MATH_MAX_ANSWER + 1], p[MATH_MAX_ANSWER + 1];
    unsigned gf = 0, pf = 0;
    if (math_normalize(gold, ngold, g, sizeof g, &gf) < 0 || math_normalize(pred, npred, p, sizeof p, &pf) < 0)
        return ngold == npred && !memcmp(gold, pred, ngold);
    if (!p[0] || !g[0]) return 0;
    if (!strcmp(g, p)) return 1;
    char cg = choice(g);
    if (cg && isupper((unsigned char)g[g[0] == '(']) && choice(p)) return cg == choice(p);
    if (is_text(g) || is_text(p)) {
        char kg[MATH_MAX_ANSWER + 1], kp[MATH_MAX_ANSWER + 1];
        text_key(g, kg, sizeof kg), text_key(p, kp, sizeof kp);
        return !strcmp(kg, kp);
    }
    Tree *tg = &tree_g, *tp = &tree_p;
    int rg = parse(tg, g, strlen(g)), rp = parse(tp, p, strlen(p));
    if (rg < 0 || rp < 0) {
        char kg[MATH_MAX_ANSWER + 1], kp[MATH_MAX_ANSWER + 1];
        text_key(g, kg, sizeof kg), text_key(p, kp, sizeof kp);
        return !strcmp(kg, kp);
    }
    rg = simplify(tg, rg), rp = simplify(tp, rp);
    Cmp c = {tg, tp, opt->rel_tol, 1, 1};
    if (eq(&c, rg, 0, rp, 0)) return 1;
    // a percentage on one side may stand for the fraction on the other: 25\% vs \frac14
    if (pf & MATH_PERCENT) {
        c.pdiv = 100;
        if (eq(&c, rg, 0, rp, 0)) return 1;
        c.pdiv = 1;
    }
    if (gf & MATH_PERCENT) {
        c.gdiv = 100;
        if (eq(&c, rg, 0, rp, 0)) return 1;
    }
    return 0;
}
