#include "rl/svg_chart.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

// Tableau 10: distinct on white, and still distinct for the common red-green colour blindness.
static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define NCOLORS (int)(sizeof PALETTE / sizeof PALETTE[0])

// Geometry in viewBox units; the SVG scales to its container's width.
enum { W = 360, PLOT_H = 150, LEFT = 50, RIGHT = 14, BOTTOM = 36, LEGEND_LINE = 15 };
// Past this many points a series gets hover targets on every k-th point only, to bound the file size.
enum { MAX_HOVER = 300, MAX_MARKERS = 40 };

// Length of the UTF-8 sequence starting at s (at most n bytes), or 0 if it is invalid: overlong forms,
// surrogates and code points past U+10FFFF are rejected as the browser would.
static int utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return 0;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    static const uint32_t MIN[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < MIN[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void html_escape(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        const char *ent = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '"' ? "&quot;"
                          : c == '\'' ? "&#39;" : NULL;
        if (ent) { fputs(ent, f); i++; continue; }
        int len = utf8_len(p + i, n - i);
        if (len == 0 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
            fputs("\xEF\xBF\xBD", f);
            i++;
            continue;
        }
        fwrite(p + i, 1, (size_t)len, f);
        i += (size_t)len;
    }
}

static void text(FILE *f, const char *s) { html_escape(f, s, strlen(s)); }

const char *fmt_num(char *buf, size_t cap, double v, int digits) {
    double a = fabs(v);
    if (!isfinite(v)) {
        snprintf(buf, cap, "%s", isnan(v) ? "–" : v > 0 ? "∞" : "-∞");
        return buf;
    }
    if (a >= 1e4 && a < 1e15) {
        double d = a >= 1e12 ? 1e12 : a >= 1e9 ? 1e9 : a >= 1e6 ? 1e6 : 1e3;
        fmt_num(buf, cap - 1, v / d, digits); // in [1, 1000): fixed point, so 20k and not 2e+01k
        strcat(buf, d == 1e12 ? "T" : d == 1e9 ? "G" : d == 1e6 ? "M" : "k");
        return buf;
    }
    if (a == 0 || (a >= 1e-3 && a < 1e4)) {
        // fixed point ("150", not %g's "1.5e+02"), without trailing zeros
        int dec = a == 0 ? 0 : digits - 1 - (int)floor(log10(a));
        snprintf(buf, cap, "%.*f", dec > 0 ? dec : 0, v);
        if (strchr(buf, '.')) {
            char *e = buf + strlen(buf) - 1;
            while (*e == '0') *e-- = 0;
            if (*e == '.') *e = 0;
        }
        if (!strcmp(buf, "-0")) snprintf(buf, cap, "0");
        return buf;
    }
    snprintf(buf, cap, "%.*g", digits, v);
    // 2e-05 -> 2e-5, 3e+20 -> 3e20: tick labels are short on space
    char *e = strchr(buf, 'e');
    if (e) {
        char *d = e + 1;
        if (*d == '+') memmove(d, d + 1, strlen(d));
        else if (*d == '-') d++;
        while (d[0] == '0' && d[1]) memmove(d, d + 1, strlen(d));
    }
    return buf;
}

static int finite_points(const Chart *c, const ChartSeries *s) {
    int k = 0;
    for (int i = 0; i < c->n; i++) k += isfinite(s->y[i]) && isfinite(c->x[i]);
    return k;
}

int chart_has_data(const Chart *c) {
    for (int j = 0; j < c->nseries; j++)
        if (finite_points(c, &c->series[j]) > 0) return 1;
    return 0;
}

// The "nice" tick spacing (1, 2 or 5 times a power of ten) giving about `target` intervals over range.
static double nice_step(double range, int target) {
    double raw = range / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

static int tick_digits(double maxabs, double step) {
    if (maxabs >= 1e4) maxabs /= pow(10, 3 * floor(log10(maxabs) / 3));
    int d = (int)floor(log10(maxabs > 0 ? maxabs : step)) - (int)floor(log10(step)) + 1;
    return d < 1 ? 1 : d > 8 ? 8 : d;
}

typedef struct {
    double x0, x1, y0, y1;
    double ystep; // the y tick spacing the range was rounded to
    int smooth;   // moving-average window, 0 for none
    double top;  // y of the plot area's top edge (below the title and legend)
} Frame;

static double sx(const Frame *fr, double x) { return LEFT + (x - fr->x0) / (fr->x1 - fr->x0) * (W - LEFT - RIGHT); }
static double sy(const Frame *fr, double y) { return fr->top + PLOT_H - (y - fr->y0) / (fr->y1 - fr->y0) * PLOT_H; }

static int band_point(const Chart *c, const ChartSeries *s, int i) {
    return isfinite(s->y[i]) && isfinite(s->err[i]) && isfinite(c->x[i]);
}

static int has_band(const Chart *c, const ChartSeries *s) {
    for (int i = 0; s->err && i < c->n; i++)
        if (band_point(c, s, i)) return 1;
    return 0;
}

// Legend items flow left to right and wrap; returns the number of lines (0 when no legend is drawn).
static int legend(FILE *f, const Chart *c, const int *shown, int nshown, double y, int draw) {
    int any_band = 0;
    for (int k = 0; k < nshown; k++) any_band |= has_band(c, &c->series[shown[k]]);
    if (nshown < 2 && !any_band) return 0;
    double x = 8;
    int lines = 1;
    for (int k = 0; k < nshown; k++) {
        const ChartSeries *s = &c->series[shown[k]];
        int b = has_band(c, s);
        // 5.6 units per character approximates the 10px sans-serif labels
        double w = 22 + 5.6 * (double)strlen(s->name) + (b ? 5.6 * 6 : 0) + 12;
        if (x > 8 && x + w > W - 4) x = 8, y += LEGEND_LINE, lines++;
        if (draw) {
            const char *col = PALETTE[shown[k] % NCOLORS];
            if (b) fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"8\" fill=\"%s\" fill-opacity=\"0.18\"/>",
                                x, y - 7, col);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>", x,
                    y - 3, x + 16, y - 3, col);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">", x + 21, y);
            text(f, s->name);
            fputs(b ? " ± std</text>" : "</text>", f);
        }
        x += w;
    }
    return lines;
}

static void frame_ranges(Frame *fr, const Chart *c, const int *shown, int nshown) {
    double lo = INFINITY, hi = -INFINITY, xlo = INFINITY, xhi = -INFINITY;
    for (int k = 0; k < nshown; k++) {
        const ChartSeries *s = &c->series[shown[k]];
        for (int i = 0; i < c->n; i++) {
            double y = s->y[i], e = s->err && isfinite(s->err[i]) ? fabs(s->err[i]) : 0;
            if (!isfinite(y) || !isfinite(c->x[i])) continue;
            lo = fmin(lo, y - e), hi = fmax(hi, y + e);
            xlo = fmin(xlo, c->x[i]), xhi = fmax(xhi, c->x[i]);
        }
    }
    if (hi - lo <= 1e-12 * fmax(fabs(lo), fabs(hi))) {
        double pad = fabs(lo) > 0 ? 0.1 * fabs(lo) : 1;
        lo -= pad, hi += pad;
    }
    if (xhi == xlo) xlo -= 1, xhi += 1;
    double st = fr->ystep = nice_step(hi - lo, 4);
    fr->y0 = floor(lo / st + 1e-9) * st, fr->y1 = ceil(hi / st - 1e-9) * st;
    fr->x0 = xlo, fr->x1 = xhi;
}

static void axes(FILE *f, const Chart *c, const Frame *fr) {
    char buf[32];
    double bottom = fr->top + PLOT_H, right = W - RIGHT;
    double st = fr->ystep, maxabs = fmax(fabs(fr->y0), fabs(fr->y1));
    int dig = tick_digits(maxabs, st);
    for (double t = fr->y0; t <= fr->y1 + st * 1e-6; t += st) {
        double v = fabs(t) < st * 1e-6 ? 0 : t, y = sy(fr, v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"gr\"/>", LEFT, y, (int)right, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">%s</text>", LEFT - 5, y + 3.5,
                fmt_num(buf, sizeof buf, v, dig));
    }
    double xs = fmax(1, nice_step(fr->x1 - fr->x0, 5));
    int xdig = tick_digits(fmax(fabs(fr->x0), fabs(fr->x1)), xs);
    for (double t = ceil(fr->x0 / xs - 1e-9) * xs; t <= fr->x1 + xs * 1e-6; t += xs) {
        double x = sx(fr, t);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", x, bottom, x, bottom + 4);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\">%s</text>", x, bottom + 14,
                fmt_num(buf, sizeof buf, t, xdig));
    }
    fprintf(f, "<path d=\"M%d %.1fV%.1fH%.1f\" class=\"ax\" fill=\"none\"/>", LEFT, fr->top, bottom, right);
    if (c->xlabel) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"al\" text-anchor=\"middle\">", (LEFT + right) / 2, bottom + 29);
        text(f, c->xlabel);
        fputs("</text>", f);
    }
    if (c->ylabel) {
        double cy = fr->top + PLOT_H / 2.0;
        fprintf(f, "<text x=\"11\" y=\"%.1f\" class=\"al\" text-anchor=\"middle\" transform=\"rotate(-90 11 %.1f)\">",
                cy, cy);
        text(f, c->ylabel);
        fputs("</text>", f);
    }
}

int chart_smoothing(int n) { return n < 60 ? 0 : 2 * (n / 60) + 1; }

// v[i], or with a window w the mean of the finite values among the w around i (fewer at the ends).
static double at(const double *v, int n, int i, int w) {
    if (w == 0) return v[i];
    double sum = 0;
    int k = 0;
    for (int j = i - w / 2; j <= i + w / 2; j++)
        if (j >= 0 && j < n && isfinite(v[j])) sum += v[j], k++;
    return k ? sum / k : NAN;
}

// Called for series with has_band: the path has at least one point.
static void band(FILE *f, const Chart *c, const ChartSeries *s, const Frame *fr, const char *col) {
    fprintf(f, "<path fill=\"%s\" fill-opacity=\"0.16\" stroke=\"none\" d=\"", col);
    int first = 1, w = fr->smooth;
    for (int i = 0; i < c->n; i++) {
        if (!band_point(c, s, i)) continue;
        double y = at(s->y, c->n, i, w) + fabs(at(s->err, c->n, i, w));
        fprintf(f, "%s%.1f %.1f", first ? "M" : "L", sx(fr, c->x[i]), sy(fr, y));
        first = 0;
    }
    for (int i = c->n - 1; i >= 0; i--)
        if (band_point(c, s, i))
            fprintf(f, "L%.1f %.1f", sx(fr, c->x[i]), sy(fr, at(s->y, c->n, i, w) - fabs(at(s->err, c->n, i, w))));
    fputs("Z\"/>", f);
}

// A line through y's finite points (missing ones are bridged), averaged over a window w if w > 0.
static void path(FILE *f, const Chart *c, const Frame *fr, const double *y, int w, const char *col, const char *style) {
    fprintf(f, "<path fill=\"none\" stroke=\"%s\" %s stroke-linejoin=\"round\" d=\"", col, style);
    int first = 1;
    for (int i = 0; i < c->n; i++) {
        if (!isfinite(y[i]) || !isfinite(c->x[i])) continue;
        fprintf(f, "%s%.1f %.1f", first ? "M" : "L", sx(fr, c->x[i]), sy(fr, at(y, c->n, i, w)));
        first = 0;
    }
    fputs("\"/>", f);
}

// The series' line (faint under its moving average on long runs), markers when there are few points,
// and a transparent hover target with a <title> per point (every k-th one on long runs).
static void line(FILE *f, const Chart *c, const ChartSeries *s, const Frame *fr, const char *col, int npts) {
    if (fr->smooth) {
        path(f, c, fr, s->y, 0, col, "stroke-width=\"1\" stroke-opacity=\"0.3\"");
        path(f, c, fr, s->y, fr->smooth, col, "stroke-width=\"1.8\"");
    } else path(f, c, fr, s->y, 0, col, "stroke-width=\"1.6\"");
    int every = (npts + MAX_HOVER - 1) / MAX_HOVER, k = 0;
    char a[32], b[32], e[32];
    for (int i = 0; i < c->n; i++) {
        if (!isfinite(s->y[i]) || !isfinite(c->x[i])) continue;
        if (k++ % every != 0 && k != npts) continue;
        double px = sx(fr, c->x[i]), py = sy(fr, s->y[i]);
        if (npts <= MAX_MARKERS)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.4\" fill=\"%s\"/>", px, py, col);
        fprintf(f, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" fill-opacity=\"0\"><title>", px, py,
                col);
        text(f, c->xlabel ? c->xlabel : "x");
        fprintf(f, " %s\n", fmt_num(a, sizeof a, c->x[i], 8));
        text(f, s->name);
        fprintf(f, ": %s", fmt_num(b, sizeof b, s->y[i], 4));
        if (s->err && isfinite(s->err[i])) fprintf(f, " ± %s", fmt_num(e, sizeof e, fabs(s->err[i]), 3));
        fputs("</title></circle>", f);
    }
}

void chart_svg(FILE *f, const Chart *c) {
    int shown[64], nshown = 0, npts[64];
    for (int j = 0; j < c->nseries && nshown < 64; j++) {
        int k = finite_points(c, &c->series[j]);
        if (k > 0) npts[nshown] = k, shown[nshown++] = j;
    }
    Frame fr;
    int lines = legend(f, c, shown, nshown, 38, 0);
    fr.top = 30 + (lines ? lines * LEGEND_LINE + 4 : 0);
    int h = (int)fr.top + PLOT_H + BOTTOM;
    fprintf(f, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"100%%\" role=\"img\" aria-label=\"", W, h);
    text(f, c->title);
    fprintf(f, "\"><text x=\"8\" y=\"18\" class=\"ti\">");
    text(f, c->title);
    fputs("</text>", f);
    if (nshown == 0) {
        fputs("</svg>", f);
        return;
    }
    legend(f, c, shown, nshown, 38, 1);
    frame_ranges(&fr, c, shown, nshown);
    fr.smooth = chart_smoothing(c->n);
    axes(f, c, &fr);
    for (int k = 0; k < nshown; k++)
        if (has_band(c, &c->series[shown[k]])) band(f, c, &c->series[shown[k]], &fr, PALETTE[shown[k] % NCOLORS]);
    for (int k = 0; k < nshown; k++) line(f, c, &c->series[shown[k]], &fr, PALETTE[shown[k] % NCOLORS], npts[k]);
    fputs("</svg>", f);
}
