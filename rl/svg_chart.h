// Inline SVG line charts for the HTML report: nice-number ticks on both axes, a legend, an optional
// mean ± std band per series, a moving average over long noisy runs and a hover title on each point;
// no scripts, no external resources.
#pragma once
#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *name;   // legend text and hover label (escaped on output)
    const double *y;    // (n) NAN where the value is missing
    const double *err;  // (n) half-width of a band drawn under the line (a std), or NULL
} ChartSeries;

typedef struct {
    const char *title;
    const char *xlabel, *ylabel;
    const double *x;             // (n) shared by every series, ascending
    int n;
    const ChartSeries *series;   // (nseries)
    int nseries;
} Chart;

// The moving-average window drawn over a line of n points (solid, with the points themselves faint
// behind it), or 0 when n is small enough to read as it is.
int chart_smoothing(int n);
// 1 if some series has a finite point; the report leaves out charts without one.
int chart_has_data(const Chart *c);
// Writes one <svg> element (responsive: a viewBox, width 100%); series without data are left out of it
// and of the legend.
void chart_svg(FILE *f, const Chart *c);

// Writes n bytes of s as HTML/SVG text or attribute content: & < > " ' become entities, invalid UTF-8
// and control characters other than tab, newline and carriage return become U+FFFD, so untrusted text
// (model output) can neither inject markup nor make the file invalid UTF-8.
void html_escape(FILE *f, const char *s, size_t n);
// Formats v compactly with `digits` significant digits (12k, 3.5M, 2e-5); returns buf.
const char *fmt_num(char *buf, size_t cap, double v, int digits);
