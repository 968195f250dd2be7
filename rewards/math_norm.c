// Answer normalisation: rewrites the many ways of writing one answer into one canonical string. Two
// linear passes: LaTeX clean-up (delimiters, wrappers, spacing, symbols), then the string-level rules
// (trailing units, thousands separators, spaces).
#include "rewards/math.h"
#include <ctype.h>
#include <string.h>

typedef struct {
    char *s;
    size_t n, cap;
    int overflow;
} Buf;

static void put(Buf *b, const char *p, size_t m) {
    if (b->n + m >= b->cap) {
        b->overflow = 1;
        return;
    }
    memcpy(b->s + b->n, p, m);
    b->n += m;
}
static void putc_(Buf *b, char c) { put(b, &c, 1); }
static void puts_(Buf *b, const char *p) { put(b, p, strlen(p)); }

// The command name at t[i] == '\\': letters, or the one non-letter that follows. Returns its length.
static size_t cmd_len(const char *t, size_t n, size_t i) {
    size_t j = i + 1;
    while (j < n && isalpha((unsigned char)t[j])) j++;
    if (j == i + 1 && j < n) j++;
    return j - i;
}

static int is_cmd(const char *t, size_t i, size_t len, const char *name) {
    return len - 1 == strlen(name) && !memcmp(t + i + 1, name, len - 1);
}

static int in_list(const char *t, size_t i, size_t len, const char *const *names) {
    for (int k = 0; names[k]; k++)
        if (is_cmd(t, i, len, names[k])) return 1;
    return 0;
}

// Commands whose braced argument is kept and the command dropped.
static const char *const unwrap_cmds[] = {"text", "textbf", "textit", "textrm", "textnormal", "mathrm", "mathbf",
                                          "mathit", "mathsf", "mbox", "hbox", "boxed", "fbox", "operatorname",
                                          "emph", NULL};
// Dropped, along with the delimiter-sizing "." that \left. / \right. use.
static const char *const size_cmds[] = {"left", "right", "bigl", "bigr", "Bigl", "Bigr", "big", "Big", "bigg",
                                        "Bigg", "biggl", "biggr", "middle", NULL};
static const char *const drop_cmds[] = {"!", "displaystyle", "textstyle", "limits", "(", ")", "[", "]", NULL};
static const char *const space_cmds[] = {",", ";", ":", " ", "quad", "qquad", "enspace", "thinspace", NULL};

// Multi-byte UTF-8 symbols and what they become.
static const struct { const char *utf8, *latex; unsigned flag; } symbols[] = {
    {"\xc2\xb0", "", MATH_DEGREES},  {"\xe2\x84\x83", "", MATH_DEGREES}, {"\xc2\xa3", "", MATH_CURRENCY},
    {"\xe2\x82\xac", "", MATH_CURRENCY}, {"\xe2\x88\x92", "-", 0},       {"\xc3\x97", "\\times ", 0},
    {"\xc3\xb7", "\\div ", 0},       {"\xc2\xb7", "\\cdot ", 0},         {"\xe2\x8b\x85", "\\cdot ", 0},
    {"\xe2\x89\xa4", "\\le ", 0},    {"\xe2\x89\xa5", "\\ge ", 0},       {"\xe2\x89\xa0", "\\ne ", 0},
    {"\xcf\x80", "\\pi ", 0},        {"\xe2\x88\x9e", "\\infty ", 0},    {"\xe2\x88\x9a", "\\sqrt", 0},
    {"\xc2\xa0", " ", 0},            {"\xe2\x80\xaf", " ", 0},           {"\xe2\x80\x89", " ", 0},
};

// After "^" at t[i]: the length of a degree mark (\circ, {\circ}, { \circ }), or 0.
static size_t degree_mark(const char *t, size_t n, size_t i) {
    size_t j = i + 1;
    int brace = 0;
    if (j < n && t[j] == '{') brace = 1, j++;
    while (j < n && t[j] == ' ') j++;
    if (j + 5 <= n && !memcmp(t + j, "\\circ", 5) && !(j + 5 < n && isalpha((unsigned char)t[j + 5]))) j += 5;
    else if (j + 7 <= n && !memcmp(t + j, "\\degree", 7)) j += 7;
    else return 0;
    while (j < n && t[j] == ' ') j++;
    if (brace) {
        if (j >= n || t[j] != '}') return 0;
        j++;
    }
    return j - i;
}

// Pass 1: LaTeX clean-up. The brace stack remembers which groups belong to an unwrapped command, so
// their closing brace is dropped too.
static void pass_latex(const char *t, size_t n, Buf *o, unsigned *flags) {
    unsigned char drop[MATH_MAX_ANSWER];
    size_t depth = 0;
    for (size_t i = 0; i < n && !o->overflow;) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 0x80) {
            size_t k, nsym = sizeof symbols / sizeof symbols[0];
            for (k = 0; k < nsym; k++) {
                size_t m = strlen(symbols[k].utf8);
                if (i + m <= n && !memcmp(t + i, symbols[k].utf8, m)) {
                    puts_(o, symbols[k].latex);
                    *flags |= symbols[k].flag;
                    i += m;
                    break;
                }
            }
            if (k == nsym) putc_(o, (char)c), i++;
            continue;
        }
        if (c == '$') { i++; continue; }
        if (c == '%') { *flags |= MATH_PERCENT; i++; continue; }
        if (c == '~' || c == '\n' || c == '\t' || c == '\r') { putc_(o, ' '); i++; continue; }
        if (c == '^') {
            size_t m = degree_mark(t, n, i);
            if (m) { *flags |= MATH_DEGREES; i += m; continue; }
        }
        if (c == '{' && i + 2 < n && t[i + 1] == ',' && t[i + 2] == '}') { i += 3; continue; }  // 1{,}000
        if (c == ',' && i + 2 < n && t[i + 1] == '\\' && t[i + 2] == '!') {
            size_t j = i + 3;  // "10,\!080": a thousands separator when three digits follow
            while (j < n && t[j] == ' ') j++;
            if (j + 3 <= n && isdigit((unsigned char)t[j]) && isdigit((unsigned char)t[j + 1]) &&
                isdigit((unsigned char)t[j + 2]) && !(j + 3 < n && isdigit((unsigned char)t[j + 3]))) {
                i = j;
                continue;
            }
        }
        if (c == '{' || c == '}') {
            if (c == '{') {
                if (depth < sizeof drop) drop[depth] = 0;
                depth++;
                putc_(o, '{');
            } else if (depth > 0) {
                depth--;
                if (depth >= sizeof drop || !drop[depth]) putc_(o, '}');
            } else putc_(o, '}');
            i++;
            continue;
        }
        if (c != '\\') { putc_(o, (char)c); i++; continue; }
        size_t len = cmd_len(t, n, i);
        if (in_list(t, i, len, unwrap_cmds)) {
            size_t j = i + len;
            while (j < n && t[j] == ' ') j++;
            if (j < n && t[j] == '{') {
                if (depth < sizeof drop) drop[depth] = 1;
                depth++;
                putc_(o, ' ');
                i = j + 1;
                continue;
            }
            i += len;
            continue;
        }
        if (in_list(t, i, len, size_cmds)) {
            i += len;
            while (i < n && t[i] == ' ') i++;
            if (i < n && t[i] == '.') i++;
            continue;
        }
        if (in_list(t, i, len, drop_cmds)) { i += len; continue; }
        if (in_list(t, i, len, space_cmds)) { putc_(o, ' '); i += len; continue; }
        if (is_cmd(t, i, len, "dfrac") || is_cmd(t, i, len, "tfrac") || is_cmd(t, i, len, "cfrac")) {
            puts_(o, "\\frac");
            i += len;
            continue;
        }
        if (is_cmd(t, i, len, "%")) { *flags |= MATH_PERCENT; i += len; continue; }
        if (is_cmd(t, i, len, "$") || is_cmd(t, i, len, "pounds") || is_cmd(t, i, len, "euro")) {
            *flags |= MATH_CURRENCY;
            i += len;
            continue;
        }
        if (is_cmd(t, i, len, "circ") || is_cmd(t, i, len, "degree")) {
            *flags |= MATH_DEGREES;
            i += len;
            continue;
        }
        put(o, t + i, len);
        i += len;
    }
}

// Unit words removed from the end of an answer ("15 cm^2" -> "15"). Single letters never are: they are
// variables as often as units.
static const char *const units[] = {
    "cm", "mm", "km", "meter", "meters", "metre", "metres", "centimeter", "centimeters", "millimeter",
    "millimeters", "kilometer", "kilometers", "inch", "inches", "in", "ft", "foot", "feet", "yd", "yard", "yards",
    "mile", "miles", "mi", "sq", "square", "cubic", "unit", "units", "kg", "gram", "grams", "kilogram",
    "kilograms", "lb", "lbs", "pound", "pounds", "oz", "ounce", "ounces", "ml", "liter", "liters", "litre",
    "litres", "gallon", "gallons", "quart", "quarts", "pint", "pints", "cup", "cups", "sec", "secs", "second",
    "seconds", "min", "mins", "minute", "minutes", "hr", "hrs", "hour", "hours", "day", "days", "week", "weeks",
    "month", "months", "year", "years", "dollar", "dollars", "cent", "cents", "usd", "euros", "degree", "degrees",
    "deg", "radian", "radians", "rad", "percent", "mph", "kph", "per", "mpg", NULL};

static unsigned unit_flag(const char *w, size_t m) {
    if (m >= 7 && !strncmp(w, "percent", 7)) return MATH_PERCENT;
    if (m >= 3 && !strncmp(w, "deg", 3)) return MATH_DEGREES;
    if ((m >= 6 && !strncmp(w, "dollar", 6)) || (m == 3 && !strncmp(w, "usd", 3))) return MATH_CURRENCY;
    return 0;
}

static int is_unit(const char *w, size_t m) {
    char low[16];
    if (m >= sizeof low) return 0;
    for (size_t k = 0; k < m; k++) low[k] = (char)tolower((unsigned char)w[k]);
    for (int k = 0; units[k]; k++)
        if (strlen(units[k]) == m && !memcmp(units[k], low, m)) return 1;
    return 0;
}

// Removes trailing unit words (each optionally squared/cubed) while something remains before them.
static void strip_units(char *s, size_t *n, unsigned *flags) {
    for (;;) {
        size_t e = *n;
        while (e > 0 && s[e - 1] == ' ') e--;
        size_t we = e;
        // "^2", "^{2}", "^3"
        if (we >= 2 && (s[we - 1] == '2' || s[we - 1] == '3') && s[we - 2] == '^') we -= 2;
        else if (we >= 4 && s[we - 1] == '}' && (s[we - 2] == '2' || s[we - 2] == '3') && s[we - 3] == '{' &&
                 s[we - 4] == '^')
            we -= 4;
        size_t wb = we;
        while (wb > 0 && isalpha((unsigned char)s[wb - 1])) wb--;
        size_t m = we - wb;
        if (m < 2 || wb == 0 || s[wb - 1] == '\\' || !is_unit(s + wb, m)) return;
        // the unit follows a space or directly a digit ("15cm"); something must remain
        if (s[wb - 1] != ' ' && !isdigit((unsigned char)s[wb - 1])) return;
        size_t b = wb;
        while (b > 0 && s[b - 1] == ' ') b--;
        if (b == 0) return;
        *flags |= unit_flag(s + wb, m);
        *n = b;
    }
}

static int digit_at(const char *s, size_t n, size_t i) { return i < n && isdigit((unsigned char)s[i]); }

// Pass 2: thousands separators ("1,000" at bracket depth 0, "1 000" anywhere) and spaces that carry no
// meaning (a space survives only between two alphanumerics: "\frac 34", "\cot x").
static void pass_text(const char *s, size_t n, Buf *o) {
    int depth = 0;
    for (size_t i = 0; i < n && !o->overflow; i++) {
        char c = s[i];
        if (c == '(' || c == '[' || c == '{') depth++;
        if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
        if (isdigit((unsigned char)c) && (i == 0 || (!isdigit((unsigned char)s[i - 1]) && s[i - 1] != '.' &&
                                                     s[i - 1] != ',' && !isalpha((unsigned char)s[i - 1])))) {
            // a number whose groups of three are separated by ',' (at depth 0 only) or ' ', one kind each
            size_t j = i;
            while (digit_at(s, n, j)) j++;
            size_t groups = 0;
            char sep = 0;
            while (j - i <= 3 + 4 * groups && j < n && ((s[j] == ',' && depth == 0) || s[j] == ' ') &&
                   (!sep || s[j] == sep) && digit_at(s, n, j + 1) && digit_at(s, n, j + 2) &&
                   digit_at(s, n, j + 3) && !digit_at(s, n, j + 4)) {
                sep = s[j];
                j += 4;
                groups++;
            }
            if (groups) {
                for (size_t k = i; k < j; k++)
                    if (s[k] != sep) putc_(o, s[k]);
                i = j - 1;
                continue;
            }
        }
        // "x = 2 or x = 3", "2 and 3": the words separate the items of a list
        if ((c == 'o' || c == 'a') && (i == 0 || !isalpha((unsigned char)s[i - 1])) && (i == 0 || s[i - 1] != '\\')) {
            size_t m = !strncmp(s + i, "or", 2) ? 2 : !strncmp(s + i, "and", 3) ? 3 : 0;
            if (m && i > 0 && i + m < n && !isalpha((unsigned char)s[i + m])) {
                while (o->n > 0 && o->s[o->n - 1] == ' ') o->n--;
                putc_(o, ',');
                i += m - 1;
                continue;
            }
        }
        if (c == ' ') {
            if (o->n > 0 && i + 1 < n && isalnum((unsigned char)o->s[o->n - 1]) && isalnum((unsigned char)s[i + 1]) &&
                o->s[o->n - 1] != ' ')
                putc_(o, ' ');
            continue;
        }
        putc_(o, c);
    }
}

// A final \text{ words} (or \mbox, \mathrm, \textrm; optionally squared) after a number or a
// closing brace is a unit whatever the words: "18\text{ eggs}". Returns the length to keep.
static size_t text_unit(const char *t, size_t n) {
    size_t e = n;
    while (e > 0 && t[e - 1] == ' ') e--;
    if (e >= 2 && t[e - 2] == '^' && (t[e - 1] == '2' || t[e - 1] == '3')) e -= 2;
    if (e == 0 || t[e - 1] != '}') return n;
    size_t b = e - 1;
    while (b > 0 && (isalpha((unsigned char)t[b - 1]) || t[b - 1] == ' ')) b--;
    if (b == 0 || t[b - 1] != '{') return n;
    static const char *const wrappers[] = {"\\text", "\\mbox", "\\mathrm", "\\textrm"};
    for (int k = 0; k < 4; k++) {
        size_t m = strlen(wrappers[k]);
        if (b - 1 < m || memcmp(t + b - 1 - m, wrappers[k], m)) continue;
        size_t keep = b - 1 - m;
        while (keep > 0 && t[keep - 1] == ' ') keep--;
        if (keep > 0 && (isdigit((unsigned char)t[keep - 1]) || t[keep - 1] == '}')) return keep;
    }
    return n;
}

int math_normalize(const char *in, size_t n, char *out, size_t cap, unsigned *flags) {
    char tmp[MATH_MAX_ANSWER * 2];
    unsigned fl = 0;
    if (n > MATH_MAX_ANSWER) return -1;
    n = text_unit(in, n);
    Buf a = {tmp, 0, sizeof tmp, 0};
    pass_latex(in, n, &a, &fl);
    if (a.overflow) return -1;
    // trim, then a sentence-ending period, then units
    size_t b = 0, e = a.n;
    while (b < e && tmp[b] == ' ') b++;
    while (e > b && tmp[e - 1] == ' ') e--;
    if (e > b + 1 && tmp[e - 1] == '.') e--;
    size_t m = e - b;
    memmove(tmp, tmp + b, m);
    strip_units(tmp, &m, &fl);
    Buf o = {out, 0, cap, 0};
    pass_text(tmp, m, &o);
    if (o.overflow || cap == 0) return -1;
    while (o.n > 0 && out[o.n - 1] == ' ') o.n--;
    out[o.n] = 0;
    if (flags) *flags = fl;
    return (int)o.n;
}
