// The math reward: a table of (completion, gold, expected verdict) cases covering every extraction,
// normalisation and equivalence rule, a quarter or more of them answers that must NOT match; then the
// bad inputs (unbalanced braces, 1 MB completions, deep nesting, 1/0, huge powers, NaN strings), each of
// which must come back with a verdict in bounded time.
#include "common/error.h"
#include "rewards/math.h"
#include "tests/test.h"
#include <stdlib.h>
#include <time.h>

#define B(x) "\\boxed{" x "}"
enum { OK, NO, NONE };  // correct, wrong (must not match), no_answer

typedef struct {
    const char *completion, *gold;
    int want;
} Case;

static const Case cases[] = {
    // --- extraction: \boxed / \fbox, last one, nested braces
    {"so $\\boxed{\\frac{1}{2}}$.", "\\frac12", OK},
    {"first \\boxed{3} then \\boxed{4}", "4", OK},
    {"first \\boxed{3} then \\boxed{4}", "3", NO},
    {"\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}{2}", OK},
    {"\\fbox{7}", "7", OK},
    {"\\boxed 5", "5", OK},
    {"\\boxed {12}", "12", OK},
    {"answer \\boxed{\\{1,2\\}}", "\\{1,2\\}", OK},
    {"\\boxed{2} and an unclosed \\boxed{3", "2", OK},
    {"\\boxed{\\boxed{6}}", "6", OK},
    {"\\boxed{}", "0", NONE},
    {"no final answer here", "5", NONE},
    {"", "5", NONE},
    // --- <answer> tags, ####, final answer / the answer is
    {"<think>2+2</think><answer>4</answer>", "4", OK},
    {"<think>...</think><answer> The answer is 4. </answer>", "4", OK},
    {"<answer>3</answer> then <answer>5</answer>", "5", OK},
    {"<answer>3</answer> then <answer>5</answer>", "3", NO},
    {"<answer>7", "7", NONE},
    {"She makes 9 * 2 = $18.\n#### 18", "18", OK},
    {"#### 1,000", "1000", OK},
    {"#### 17\nmore text", "17", OK},
    {"#### 17", "71", NO},
    {"The final answer is $\\frac{3}{4}$. I hope it is correct.", "0.75", OK},
    {"Final Answer: 42", "42", OK},
    {"**Final Answer:** 42", "42", OK},
    {"So the answer is 15.", "15", OK},
    {"So the answer is: 15 dollars.", "15", OK},
    {"The answer is $x = 3$.", "3", OK},
    {"the answer is 16. The answer is 15.", "15", OK},
    {"the answer is 16. The answer is 15.", "16", NO},
    {"\\boxed{8} although the answer is 9", "8", OK},
    {"#### 5\nthe answer is 6", "5", OK},
    {"I computed 12 and then 13", "13", NONE},
    {"So the answer is 18 eggs.", "18", OK},
    {"The answer is $18 because she sells 9.", "18", OK},
    {"#### 18 eggs", "18", OK},
    {"The answer is 18 eggs.", "17", NO},
    {"the answer is 2 x + 1", "2x+1", OK},
    // --- gold answers go through the same extraction
    {"\\boxed{18}", "Janet sells 9 eggs.\nShe makes $18.\n#### 18", OK},
    {"\\boxed{18}", "so $\\boxed{18}$", OK},
    {"\\boxed{17}", "#### 18", NO},
    // --- math delimiters and spacing
    {B("$\\frac{1}{2}$"), "0.5", OK},
    {B("\\(\\frac{1}{2}\\)"), "1/2", OK},
    {B("\\[ 7 \\]"), "7", OK},
    {B("\\left( 1, 2 \\right)"), "(1,2)", OK},
    {B("\\left[ 0, 1 \\right)"), "[0,1)", OK},
    {B("10\\!000"), "10000", OK},
    {B("3\\,\\sqrt{2}"), "3\\sqrt2", OK},
    {B("x\\;=\\;4"), "4", OK},
    {B("\\displaystyle \\frac{5}{6}"), "5/6", OK},
    {B("\\quad 9"), "9", OK},
    // --- \dfrac / \tfrac and shorthands
    {B("\\dfrac{3}{8}"), "\\frac{3}{8}", OK},
    {B("\\tfrac{3}{8}"), "0.375", OK},
    {B("\\frac12"), "\\frac{1}{2}", OK},
    {B("\\frac 34"), "0.75", OK},
    {B("\\frac9{19}"), "\\frac{9}{19}", OK},
    {B("\\sqrt2"), "\\sqrt{2}", OK},
    {B("11\\sqrt2"), "\\sqrt{242}", OK},
    {B("\\frac12"), "\\frac{1}{3}", NO},
    {B("\\sqrt2"), "2", NO},
    {B("\\sqrt{3}"), "\\sqrt{2}", NO},
    // --- \text, \mathrm, \mbox
    {B("\\text{Evelyn}"), "\\text{Evelyn}", OK},
    {B("evelyn"), "\\text{Evelyn}", OK},
    {B("\\mathrm{East}"), "\\text{east}", OK},
    {B("\\mbox{even}"), "\\text{even}", OK},
    {B("\\text{odd}"), "\\text{even}", NO},
    {B("\\text{Navin}"), "\\text{Evelyn}", NO},
    {B("nilevE"), "\\text{Evelyn}", NO},
    {B("\\textbf{ellipse}"), "\\text{ellipse}", OK},
    {B("\\text{parabola}"), "\\text{ellipse}", NO},
    {B("Ellipse"), "\\text{ellipse}", OK},
    // --- units and unit words
    {B("15\\mbox{ cm}^2"), "15", OK},
    {B("15 \\text{ cm}^2"), "15", OK},
    {B("864 \\mbox{ inches}^2"), "864", OK},
    {B("5.4 \\text{ cents}"), "5.4", OK},
    {B("30 \\text{ minutes}"), "30", OK},
    {B("12 square feet"), "12", OK},
    {B("7 km per hour"), "7", OK},
    {B("20 dollars"), "20", OK},
    {B("15cm"), "15", OK},
    {B("18 \\text{ eggs}"), "18", OK},
    {B("\\frac{1}{2}\\text{ cup}"), "0.5", OK},
    {B("19 \\text{ eggs}"), "18", NO},
    {B("x \\text{ apples}"), "x", NO},
    {B("16 cm"), "15", NO},
    {B("5m"), "5", NO},
    {B("2k"), "2", NO},
    // --- degrees
    {B("90^\\circ"), "90", OK},
    {B("90^{\\circ}"), "90", OK},
    {B("90"), "90^\\circ", OK},
    {B("90 degrees"), "90^\\circ", OK},
    {B("90\xc2\xb0"), "90", OK},
    {B("45^\\circ"), "90^\\circ", NO},
    // --- percent
    {B("25\\%"), "25", OK},
    {B("25\\%"), "\\frac{1}{4}", OK},
    {B("0.25"), "25\\%", OK},
    {B("25 percent"), "25", OK},
    {B("25\\%"), "\\frac{1}{5}", NO},
    {B("26\\%"), "25", NO},
    // --- currency
    {B("\\$18.90"), "18.90", OK},
    {B("\\$18.90"), "18.9", OK},
    {B("\\$32,\\!348"), "32348", OK},
    {"#### $1,250", "1250", OK},
    {B("\\$18.91"), "18.90", NO},
    // --- thousands separators
    {B("1,000"), "1000", OK},
    {B("1{,}000"), "1000", OK},
    {B("1 000"), "1000", OK},
    {B("1\\,000"), "1000", OK},
    {B("10,\\!080"), "10080", OK},
    {B("11,\\! 111,\\! 111,\\! 100"), "11111111100", OK},
    {B("1,000,000"), "1000000", OK},
    {B("1,000.5"), "1000.5", OK},
    {B("1,000"), "100", NO},
    {B("1,000"), "10000", NO},
    {B("(1,000)"), "1000", NO},
    // --- decimals: leading .5, trailing .0
    {B(".5"), "0.5", OK},
    {B(".5"), "\\frac12", OK},
    {B("18.0"), "18", OK},
    {B("18.00"), "18", OK},
    {B("-.25"), "-\\frac14", OK},
    {B(".0000672"), "0.0000672", OK},
    {B("0.0000672"), "0.000067", NO},
    {B("18.01"), "18", NO},
    // --- x = / k = prefixes and simple equations
    {B("x = 5"), "5", OK},
    {B("k=12"), "12", OK},
    {B("5"), "x=5", OK},
    {B("y = 2x + 3"), "2x+3", OK},
    {B("y=2x+3"), "y = 2x + 3", OK},
    {B("y = 2x + 4"), "y = 2x + 3", NO},
    {B("x = 6"), "5", NO},
    {B("-5x+7y-11z-4=0"), "5x - 7y + 11z + 4 = 0", OK},
    {B("10x - 14y + 22z + 8 = 0"), "5x - 7y + 11z + 4 = 0", OK},
    {B("5x - 7y + 11z - 4 = 0"), "5x - 7y + 11z + 4 = 0", NO},
    // --- exact rationals
    {B("0.25"), "\\frac{1}{4}", OK},
    {B("1/4"), "0.25", OK},
    {B("\\frac{2}{8}"), "\\frac14", OK},
    {B("\\frac{-3}{6}"), "-0.5", OK},
    {B("0.33"), "\\frac{1}{3}", NO},
    {B("0.333"), "\\frac{1}{3}", NO},
    {B("1/2"), "2", NO},
    {B("2/1"), "2", OK},
    {B("12"), "123", NO},
    {B("123"), "12", NO},
    {B("-7"), "7", NO},
    {B("0"), "-0", OK},
    {B("1.5"), "\\frac{3}{2}", OK},
    {B("1.51"), "\\frac{3}{2}", NO},
    // --- mixed numbers
    {B("137 \\frac{1}{2}"), "137.5", OK},
    {B("1\\frac{4}{5}"), "\\frac95", OK},
    {B("1\\frac{4}{5}"), "\\frac45", NO},
    {B("2\\frac{\\pi}{3}"), "\\frac{2\\pi}{3}", OK},
    // --- expressions: + - * / ^, \frac, \sqrt, \pi, e, implicit multiplication
    {B("2\\sqrt{3}"), "\\sqrt{12}", OK},
    {B("\\frac{\\sqrt{3}}{3}"), "\\frac{1}{\\sqrt3}", OK},
    {B("2^{10}"), "1024", OK},
    {B("2^10"), "1024", OK},
    {B("2^{10}"), "1023", NO},
    {B("3 \\cdot 4"), "12", OK},
    {B("3 \\times 4"), "12", OK},
    {B("12 \\div 4"), "3", OK},
    {B("12\\pi"), "12\\pi", OK},
    {B("12\\pi"), "37.69911184", OK},
    {B("12\\pi"), "37.7", NO},
    {B("\\pi"), "3.14", NO},
    {B("\\pi"), "3.14159265", OK},
    {B("e^2"), "7.38905609893", OK},
    {B("e"), "2.718", NO},
    {B("\\sqrt[3]{27}"), "3", OK},
    {B("\\sqrt[3]{-8}"), "-2", OK},
    {B("18+2\\pi"), "2\\pi+18", OK},
    {B("18+2\\pi"), "18+\\pi", NO},
    {B("3\\sqrt{13}"), "\\sqrt{117}", OK},
    {B("3\\sqrt{13}"), "\\sqrt{39}", NO},
    {B("\\frac{20000}{\\pi}"), "6366.1977236758", OK},
    {B("(2+3)(4)"), "20", OK},
    {B("5!"), "120", OK},
    {B("\\binom{5}{2}"), "10", OK},
    {B("|-3|"), "3", OK},
    {B("\\log_2 8"), "3", OK},
    {B("\\ln(e^2)"), "2", OK},
    {B("\\sin\\frac{\\pi}{6}"), "\\frac12", OK},
    // --- symbolic expressions (compared at random values of the variables)
    {B("2k+2"), "2(k+1)", OK},
    {B("2k+2"), "2k+1", NO},
    {B("x^2+2x+1"), "(x+1)^2", OK},
    {B("x^2+2x+1"), "(x-1)^2", NO},
    {B("ab+2a+5b+10"), "(a+5)(b+2)", OK},
    {B("ab+2a+5b+11"), "(a+5)(b+2)", NO},
    {B("(x-1)(x^4+x^2+1)"), "x^5 - x^4 + x^3 - x^2 + x - 1", OK},
    {B("\\frac{\\cos x}{\\sin x}"), "\\cot x", OK},
    {B("\\tan x"), "\\cot x", NO},
    {B("p-q"), "p - q", OK},
    {B("q-p"), "p - q", NO},
    {B("3R^2"), "3R^2", OK},
    {B("3r^2"), "3R^2", NO},
    {B("\\frac{11+9a}{20}"), "\\frac{11}{20}+\\frac{9a}{20}", OK},
    {B("-13x+3"), "3-13x", OK},
    {B("x"), "y", NO},
    // --- complex numbers
    {B("-2+7i"), "-2 + 7i", OK},
    {B("7i-2"), "-2 + 7i", OK},
    {B("-2-7i"), "-2 + 7i", NO},
    {B("1+2i"), "1+2i", OK},
    // --- tuples and lists (ordered)
    {B("(1,2)"), "(1,2)", OK},
    {B("(2,1)"), "(1,2)", NO},
    {B("\\left( 3, \\frac{\\pi}{2} \\right)"), "(3, \\pi/2)", OK},
    {B("(3, \\frac{\\pi}{3})"), "\\left( 3, \\frac{\\pi}{2} \\right)", NO},
    {B("(1,-16,-4,43)"), "(1,-16,-4,43)", OK},
    {B("(1,-16,-4,42)"), "(1,-16,-4,43)", NO},
    {B("(1,-16,-4)"), "(1,-16,-4,43)", NO},
    {B("15,-29"), "(15,-29)", OK},
    {B("\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}"), "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", OK},
    {B("\\begin{pmatrix} 1 & 0 \\\\ 0 & -1 \\end{pmatrix}"), "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", NO},
    {B("\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\\\ \\frac53 \\end{pmatrix}"),
     "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", OK},
    {B("(-1/3, 2/3, 5/3)"), "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", OK},
    {B("\\begin{pmatrix} 2/3 \\\\ -1/3 \\\\ 5/3 \\end{pmatrix}"),
     "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", NO},
    // --- sets (unordered) and lists of solutions
    {B("\\{1,2,3\\}"), "\\{3,2,1\\}", OK},
    {B("\\{1,2\\}"), "\\{1,2,3\\}", NO},
    {B("\\{1,2,4\\}"), "\\{1,2,3\\}", NO},
    {B("1,-2"), "-2,1", OK},
    {B("3, 5, 7"), "7,5,3", OK},
    {B("3, 5"), "3, 5, 7", NO},
    {B("1+\\sqrt{19}, 1-\\sqrt{19}"), "1 \\pm \\sqrt{19}", OK},
    {B("1 \\pm \\sqrt{19}"), "1+\\sqrt{19}, 1-\\sqrt{19}", OK},
    {B("1+\\sqrt{19}"), "1 \\pm \\sqrt{19}", NO},
    {B("-2, 1+\\sqrt5, 1-\\sqrt5"), "\\{1\\pm\\sqrt{5},-2\\}", OK},
    {B("3 \\pm 2\\sqrt{2}"), "3 \\pm 2 \\sqrt{2}", OK},
    {B("3 \\pm \\sqrt{2}"), "3 \\pm 2 \\sqrt{2}", NO},
    {B("\\emptyset"), "\\varnothing", OK},
    {B("\\{\\}"), "\\emptyset", OK},
    {B("\\{0\\}"), "\\emptyset", NO},
    {B("x=2 \\text{ or } x=3"), "2, 3", OK},
    {B("3 and 2"), "2, 3", OK},
    {B("2 and 4"), "2, 3", NO},
    // --- intervals: ends must agree
    {B("[0,1)"), "[0,1)", OK},
    {B("[0,1)"), "(0,1)", NO},
    {B("(0,1]"), "(0,1)", NO},
    {B("[0,1]"), "[0,1)", NO},
    {B("(-\\infty, 0]"), "(-\\infty,0]", OK},
    {B("(-\\infty, 0)"), "(-\\infty,0]", NO},
    {B("(2,\\infty)"), "(2, \\infty)", OK},
    {B("(-\\infty, 2) \\cup (3, \\infty)"), "(-\\infty,2)\\cup(3,\\infty)", OK},
    {B("(3, \\infty) \\cup (-\\infty, 2)"), "(-\\infty,2)\\cup(3,\\infty)", OK},
    {B("(-\\infty, 2] \\cup (3, \\infty)"), "(-\\infty,2)\\cup(3,\\infty)", NO},
    {B("\\left(\\frac{3}{5},\\frac{8}{3}\\right]"), "(0.6, 8/3]", OK},
    {B("[-2,7]"), "x \\in [-2,7]", OK},
    {B("[-2,7)"), "x \\in [-2,7]", NO},
    {B("\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]"), "[\\pi^2/8, 5\\pi^2/4]", OK},
    // --- inequalities: a <= x vs x >= a, and as intervals
    {B("a \\le x"), "x \\ge a", OK},
    {B("a \\le x"), "x \\le a", NO},
    {B("x \\le 0"), "(-\\infty, 0]", OK},
    {B("x < 0"), "(-\\infty, 0]", NO},
    {B("x > 2"), "(2,\\infty)", OK},
    {B("2 < x \\le 5"), "(2,5]", OK},
    {B("5 \\ge x > 2"), "(2,5]", OK},
    {B("2 \\le x \\le 5"), "(2,5]", NO},
    {B("x \\geq -3"), "[-3,\\infty)", OK},
    // --- multiple-choice letters
    {B("(C)"), "C", OK},
    {B("C"), "\\text{(C)}", OK},
    {B("\\text{(C)}"), "(C)", OK},
    {B("c"), "\\text{(C)}", OK},
    {B("(B)"), "\\text{(C)}", NO},
    {B("D"), "\\text{(E)}", NO},
    // --- plain text, case- and space-insensitive
    {B("East"), "\\text{east}", OK},
    {B("Monday"), "\\text{monday}", OK},
    {B("west"), "\\text{east}", NO},
    {B("New York"), "new york", OK},
    {B("NewYork"), "new york", OK},
    {B("yes"), "no", NO},
    // --- base subscripts are kept as written
    {B("204_5"), "204_{5}", OK},
    {B("204_6"), "204_5", NO},
    {B("2516_8"), "2516_8", OK},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static float score(const Reward *r, const char *completion, const char *gold, RewardDetail *d) {
    Task t = {.answer = (char *)gold};
    return r->score(r, &t, completion, d);
}

static void test_table(void) {
    Reward r;
    EXPECT(reward_create(&r, "math", NULL) == 0, "create: %s", grpo_error());
    int nneg = 0;
    static const char *const names[] = {"correct", "wrong", "no_answer"};
    for (int i = 0; i < NCASES; i++) {
        const Case *c = &cases[i];
        RewardDetail d;
        float v = score(&r, c->completion, c->gold, &d);
        nneg += c->want != OK;
        EXPECT(!strcmp(d.verdict, names[c->want]) && v == (c->want == OK),
               "case %d: completion [%s] gold [%s]: want %s, got %s (extracted [%s])", i, c->completion, c->gold,
               names[c->want], d.verdict, d.extracted);
    }
    printf("math table: %d cases, %d (%.0f%%) must not match\n", NCASES, nneg, 100.0 * nneg / NCASES);
    EXPECT(NCASES >= 200, "the table needs at least 200 cases, has %d", NCASES);
    EXPECT(nneg * 4 >= NCASES, "at least a quarter of the cases must be non-matches, %d of %d are", nneg, NCASES);
    reward_destroy(&r);
}

// Options: extraction order, last number, tolerance; bad options name the key.
static void test_options(void) {
    Reward r;
    cJSON *o = cJSON_Parse("{\"extract\": [\"hashes\", \"boxed\"]}");
    EXPECT(reward_create(&r, "math", o) == 0, "%s", grpo_error());
    EXPECT(score(&r, "\\boxed{3}\n#### 4", "4", NULL) == 1, "hashes before boxed");
    reward_destroy(&r);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"last_number\": true}");
    EXPECT(reward_create(&r, "math", o) == 0, "%s", grpo_error());
    EXPECT(score(&r, "I computed 12 and then 1,300.", "1300", NULL) == 1, "last number");
    EXPECT(score(&r, "so x is -.5 here", "-1/2", NULL) == 1, "last number, negative and leading dot");
    reward_destroy(&r);
    cJSON_Delete(o);

    o = cJSON_Parse("{\"rel_tol\": 0.02}");
    EXPECT(reward_create(&r, "math", o) == 0, "%s", grpo_error());
    EXPECT(score(&r, "\\boxed{0.33}", "1/3", NULL) == 0, "exact rationals ignore the tolerance");
    EXPECT(score(&r, "\\boxed{3.14}", "\\pi", NULL) == 1, "a loose tolerance accepts 3.14 for pi");
    reward_destroy(&r);
    cJSON_Delete(o);

    static const char *const bad[] = {"{\"extract\": [\"boxed\", \"nope\"]}", "{\"extract\": []}",
                                      "{\"rel_tol\": \"x\"}", "{\"last_number\": 1}", "{\"tolerance\": 1}",
                                      "{\"extract\": [\"boxed\", \"boxed\"]}"};
    static const char *const key[] = {"nope", "extract", "rel_tol", "last_number", "tolerance", "twice"};
    for (int i = 0; i < 6; i++) {
        o = cJSON_Parse(bad[i]);
        EXPECT(reward_create(&r, "math", o) == -1 && strstr(grpo_error(), key[i]), "%s: error [%s] should name %s",
               bad[i], grpo_error(), key[i]);
        cJSON_Delete(o);
    }
}

// The equivalence function on its own, both argument orders where the rule is symmetric.
static void test_equal_symmetric(void) {
    static const char *const pairs[][2] = {{"\\frac{1}{2}", "0.5"}, {"(1,2)", "\\left(1,2\\right)"},
                                           {"x^2-1", "(x-1)(x+1)"}, {"\\{1,2\\}", "\\{2,1\\}"},
                                           {"1 \\pm \\sqrt{2}", "1-\\sqrt2,1+\\sqrt2"}};
    for (int i = 0; i < 5; i++) {
        const char *a = pairs[i][0], *b = pairs[i][1];
        EXPECT(math_equal(a, strlen(a), b, strlen(b), NULL) == 1, "%s vs %s", a, b);
        EXPECT(math_equal(b, strlen(b), a, strlen(a), NULL) == 1, "%s vs %s", b, a);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail) {
    size_t hu = strlen(head), u = strlen(unit), tl = strlen(tail);
    char *s = malloc(hu + u * times + tl + 1);
    memcpy(s, head, hu);
    for (size_t k = 0; k < times; k++) memcpy(s + hu + k * u, unit, u);
    memcpy(s + hu + u * times, tail, tl + 1);
    return s;
}

// Inputs built to hurt: each gets a verdict, quickly, with no crash (also under ASan/UBSan).
static void test_bad_inputs(void) {
    Reward r;
    cJSON *o = cJSON_Parse("{\"last_number\": true}");
    EXPECT(reward_create(&r, "math", o) == 0, "%s", grpo_error());
    cJSON_Delete(o);
    struct { char *completion; const char *gold, *what; } in[] = {
        {repeat("\\boxed{", "{", 10000, "1"), "1", "10,000 unclosed braces"},
        {repeat("", "\\boxed{", 100000, "1"), "1", "100,000 unclosed \\boxed{"},
        {repeat("\\boxed{", "(", 10000, "1"), "1", "10,000 unclosed parentheses"},
        {repeat("", "}", 100000, "\\boxed{2}"), "2", "100,000 stray closing braces"},
        {repeat("\\boxed{", "{", 10000, ""), "1", "10,000-deep nested braces"},
        {repeat("The answer is ", "1", 1 << 20, "."), "1", "a 1 MB number"},
        {repeat("", "the answer is ", 1 << 16, "5"), "5", "1 MB of phrases"},
        {repeat("", "a", 1 << 20, ""), "1", "1 MB without an answer"},
        {repeat("<answer>", "</answer><answer>", 1 << 16, ""), "1", "60,000 answer tags"},
        {repeat("#### ", "#", 1 << 20, ""), "1", "1 MB of #"},
        {repeat("\\boxed{", "-", 1000, "1}"), "1", "1,000 unary minuses"},
        {repeat("\\boxed{", "\\sqrt{", 500, "2"), "2", "500 nested roots, unclosed"},
        {repeat("\\boxed{2", "^{2", 300, ""), "2", "300 nested powers, unclosed"},
        {repeat("\\boxed{(", "(1,", 60, "1)}"), "1", "nested tuples"},
        {repeat("\\boxed{", "1+", 1000, "1}"), "1001", "a 1,000-term sum"},
        {strdup("\\boxed{1/0}"), "1", "division by zero"},
        {strdup("\\boxed{0/0}"), "0/0", "0/0"},
        {strdup("\\boxed{10^{10^{10}}}"), "10^{10^{10}}", "a huge power"},
        {strdup("\\boxed{10^{10^{10}}}"), "1", "a huge power vs 1"},
        {strdup("\\boxed{2^{-100000}}"), "0", "a tiny power"},
        {strdup("\\boxed{NaN}"), "NaN", "NaN strings"},
        {strdup("\\boxed{nan}"), "1", "nan vs a number"},
        {strdup("\\boxed{inf}"), "\\infty", "inf"},
        {strdup("\\boxed{\\frac{}{}}"), "1", "empty \\frac"},
        {strdup("\\boxed{\\sqrt}"), "1", "bare \\sqrt"},
        {strdup("\\boxed{\\begin{pmatrix}}"), "1", "unclosed matrix"},
        {strdup("\\boxed{\\left(}"), "1", "lone \\left("},
        {strdup("\\boxed{99999999999999999999999999999999999999}"), "1e38", "40-digit number"},
        {strdup("\\boxed{170!}"), "1", "a big factorial"},
        {strdup("\\boxed{\xff\xfe\x80\xc2}"), "1", "invalid UTF-8"},
        {strdup("\\boxed{\\\\\\\\\\\\}"), "1", "backslashes"},
    };
    int n = (int)(sizeof in / sizeof in[0]);
    for (int i = 0; i < n; i++) {
        RewardDetail d;
        double t0 = now();
        score(&r, in[i].completion, in[i].gold, &d);
        double dt = now() - t0;
        EXPECT(d.verdict[0], "%s: no verdict", in[i].what);
        EXPECT(dt < 1.0, "%s: took %.3f s", in[i].what, dt);
        // the same text as a gold answer
        t0 = now();
        math_equal(in[i].completion, strlen(in[i].completion), in[i].gold, strlen(in[i].gold), NULL);
        EXPECT(now() - t0 < 1.0, "%s as a gold answer: took %.3f s", in[i].what, now() - t0);
        free(in[i].completion);
    }
    EXPECT(score(&r, "\\boxed{2} then \\boxed{{{{", "2", NULL) == 1, "a balanced box before unbalanced braces");
    EXPECT(score(&r, "\\boxed{1/0}", "1", NULL) == 0, "1/0 is not 1");
    EXPECT(score(&r, "\\boxed{NaN}", "1", NULL) == 0, "NaN is not 1");
    EXPECT(score(&r, NULL, "1", NULL) == 0, "NULL completion");
    reward_destroy(&r);
}

int main(void) {
    RUN_TEST(test_table);
    RUN_TEST(test_options);
    RUN_TEST(test_equal_symmetric);
    RUN_TEST(test_bad_inputs);
    return test_summary();
}
