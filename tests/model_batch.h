// The seeded generator and the (B,T) next-token batch shared by the model tests (fp32 and double).
// `float` here follows the including file (tests/double_model.h retypes it).
#pragma once

#define B 2
#define T 12

static unsigned long long rng = 7;
static unsigned urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(rng >> 33);
}
static float frand(void) { return (urand() / (float)(1u << 31)) * 2.0f - 1.0f; }

// inputs random; targets the next input (a random token at each sequence end); one ignored position.
static void make_batch(int *inputs, int *targets, int V) {
    for (int i = 0; i < B * T; i++) inputs[i] = urand() % V;
    for (int i = 0; i < B * T; i++) targets[i] = (i % T == T - 1) ? (int)(urand() % V) : inputs[i + 1];
    targets[3] = -1;
}
