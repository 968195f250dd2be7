#include "policy/layers.h"
#include "policy/config.h"
#include "common/vmath.h"
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

void matmul_forward(float *out, const float *inp, const float *W, int N, int IC, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, W, IC, 0.0f, out, OC);
}

void matmul_backward(float *dinp, float *dW, const float *dout, const float *inp, const float *W, int N, int IC,
                     int OC) {
    if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, W, IC, 1.0f, dinp, IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dW, IC);
}

void embedding_forward(float *out, const int *tokens, const float *wte, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) memcpy(out + (long)n * C, wte + (long)tokens[n] * C, sizeof(float) * C);
}

void embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    // Serial: two tokens may share a row of dwte.
    for (int n = 0; n < N; n++) {
        float *d = dwte + (long)tokens[n] * C;
        const float *g = dout + (long)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, int stride, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * stride;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / C + eps);
        rstd[n] = r;
        float *o = out + (long)n * C;
        for (int c = 0; c < C; c++) o[c] = x[c] * r * w[c];
    }
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *rstd,
                      int N, int C, int stride) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * stride, *g = dout + (long)n * C;
        float *dx = dinp + (long)n * stride;
        float r = rstd[n], dot = 0.0f;
        for (int c = 0; c < C; c++) dot += g[c] * w[c] * x[c];
        float k = dot * r * r * r / C;
        for (int c = 0; c < C; c++) dx[c] += g[c] * w[c] * r - x[c] * k;
    }
    // dw reduces over rows: one thread per column block keeps it deterministic.
#pragma omp parallel for
    for (int c = 0; c < C; c++) {
        float s = 0.0f;
        for (int n = 0; n < N; n++) s += dout[(long)n * C + c] * inp[(long)n * stride + c] * rstd[n];
        dw[c] += s;
    }
}

// DeepSeek's YaRN: blend interpolated and original frequencies with a linear ramp over the pairs.
static float yarn_correction_dim(float rotations, int dim, float base, int max_pos) {
    return (dim * logf(max_pos / (rotations * 2.0f * (float)M_PI))) / (2.0f * logf(base));
}

void rope_table(float *cos_t, float *sin_t, int T_max, int Dr, float theta, float yarn_factor, float beta_fast,
                float beta_slow, int orig_max_pos, float attn_factor) {
    int half = Dr / 2;
    float low = 0, high = 0;
    if (yarn_factor > 0) {
        low = floorf(yarn_correction_dim(beta_fast, Dr, theta, orig_max_pos));
        high = ceilf(yarn_correction_dim(beta_slow, Dr, theta, orig_max_pos));
        if (low < 0) low = 0;
        if (high > Dr - 1) high = Dr - 1;
        if (high == low) high += 0.001f;
    }
    for (int j = 0; j < half; j++) {
        double inv = pow(theta, -2.0 * j / Dr);
        if (yarn_factor > 0) {
            float ramp = (j - low) / (high - low);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            float extra = 1.0f - ramp; // weight of the original (extrapolated) frequency
            inv = inv / yarn_factor * (1.0f - extra) + inv * extra;
        }
        for (int t = 0; t < T_max; t++) {
            double a = t * inv;
            cos_t[(long)t * half + j] = (float)cos(a) * attn_factor;
            sin_t[(long)t * half + j] = (float)sin(a) * attn_factor;
        }
    }
}

// Token n sits at position pos[n], or n % T when pos is NULL.
static void rope_apply(float *x, const float *cos_t, const float *sin_t, const int *pos, int N, int T, int nh,
                       int stride, int hs, int off, int Dr, float dir) {
    int half = Dr / 2;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        long t = pos ? pos[n] : n % T;
        const float *cs = cos_t + t * half, *sn = sin_t + t * half;
        for (int h = 0; h < nh; h++) {
            float *p = x + (long)n * stride + (long)h * hs + off;
            for (int j = 0; j < half; j++) {
                float a = p[2 * j], b = p[2 * j + 1], c = cs[j], s = dir * sn[j];
                p[2 * j] = a * c - b * s;
                p[2 * j + 1] = a * s + b * c;
            }
        }
    }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, int N, int T, int nh, int stride, int hs, int off,
                  int Dr) {
    rope_apply(x, cos_t, sin_t, NULL, N, T, nh, stride, hs, off, Dr, 1.0f);
}

void rope_forward_at(float *x, const float *cos_t, const float *sin_t, const int *pos, int N, int nh, int stride,
                     int hs, int off, int Dr) {
    rope_apply(x, cos_t, sin_t, pos, N, 1, nh, stride, hs, off, Dr, 1.0f);
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, int N, int T, int nh, int stride, int hs,
                   int off, int Dr) {
    rope_apply(dx, cos_t, sin_t, NULL, N, T, nh, stride, hs, off, Dr, -1.0f);
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int T, int H,
                       int Dq, int Dv, int ldv, int hv, float scale) {
    int ldq = H * Dq, ldo = H * Dv;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float *S = att + ((long)b * H + h) * T * T;
            const float *qb = q + (long)b * T * ldq + h * Dq, *kb = k + (long)b * T * ldq + h * Dq;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, Dq, scale, qb, ldq, kb, ldq, 0.0f, S, T);
            for (int t = 0; t < T; t++) {
                float *row = S + (long)t * T, mx = -FLT_MAX, sum = 0.0f;
                for (int s = 0; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
                for (int s = 0; s <= t; s++) { row[s] = expf(row[s] - mx); sum += row[s]; }
                float inv = 1.0f / sum;
                for (int s = 0; s <= t; s++) row[s] *= inv;
                for (int s = t + 1; s < T; s++) row[s] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, Dv, T, 1.0f, S, T, v + (long)b * T * ldv + h * hv,
                        ldv, 0.0f, out + (long)b * T * ldo + h * Dv, ldo);
        }
}

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *att,
                        const float *q, const float *k, const float *v, int B, int T, int H, int Dq, int Dv, int ldv,
                        int hv, float scale) {
    int ldq = H * Dq, ldo = H * Dv;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            long bh = (long)b * H + h;
            const float *P = att + bh * T * T;
            float *dS = scratch + bh * T * T;
            const float *dO = dout + (long)b * T * ldo + h * Dv;
            const float *vb = v + (long)b * T * ldv + h * hv;
            // dP = dO V^T, dV += P^T dO
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, Dv, 1.0f, dO, ldo, vb, ldv, 0.0f, dS, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, Dv, T, 1.0f, P, T, dO, ldo, 1.0f,
                        dv + (long)b * T * ldv + h * hv, ldv);
            // softmax backward: dS = P * (dP - rowsum(dP * P))
            for (int t = 0; t < T; t++) {
                float *r = dS + (long)t * T;
                const float *p = P + (long)t * T;
                float dot = 0.0f;
                for (int s = 0; s <= t; s++) dot += r[s] * p[s];
                for (int s = 0; s <= t; s++) r[s] = p[s] * (r[s] - dot);
                for (int s = t + 1; s < T; s++) r[s] = 0.0f;
            }
            const float *qb = q + (long)b * T * ldq + h * Dq, *kb = k + (long)b * T * ldq + h * Dq;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, Dq, T, scale, dS, T, kb, ldq, 1.0f,
                        dq + (long)b * T * ldq + h * Dq, ldq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, Dq, T, scale, dS, T, qb, ldq, 1.0f,
                        dk + (long)b * T * ldq + h * Dq, ldq);
        }
}

void swiglu_forward(float *h, const float *g, const float *u, long n) {
    if (n <= 32768) { // the decode path's small n: no OpenMP call, not even an inactive one
#pragma omp simd
        for (long i = 0; i < n; i++) h[i] = g[i] * sigmoid_fast(g[i]) * u[i];
        return;
    }
#pragma omp parallel for
    for (long b = 0; b < n; b += 4096) { // blocks, so that the inner loop is a plain vector loop
        long e = b + 4096 < n ? b + 4096 : n;
#pragma omp simd
        for (long i = b; i < e; i++) h[i] = g[i] * sigmoid_fast(g[i]) * u[i];
    }
}

void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, long n) {
#pragma omp parallel for simd
    for (long i = 0; i < n; i++) {
        float sig = sigmoid_fast(g[i]);
        float silu = g[i] * sig;
        du[i] += dh[i] * silu;
        dg[i] += dh[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    }
}

// Picks the k largest of vals[0..n) where allowed (NULL = all), lowest index first on ties.
static void topk_select(int *idx, const float *vals, const unsigned char *allowed, int n, int k) {
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (allowed && !allowed[i]) continue;
            int taken = 0;
            for (int m = 0; m < j; m++) taken |= idx[m] == i;
            if (taken) continue;
            if (best < 0 || vals[i] > vals[best]) best = i;
        }
        idx[j] = best;
    }
}

void router_forward(float *scores, int *topk_idx, float *topk_w, const float *logits, const float *bias,
                    const RouterSpec *rs, int N) {
    int E = rs->E, K = rs->K, G = rs->n_group, gs = E / G;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *l = logits + (long)n * E;
        float *s = scores + (long)n * E;
        if (rs->sigmoid) {
            for (int e = 0; e < E; e++) s[e] = 1.0f / (1.0f + expf(-l[e]));
        } else {
            float mx = -FLT_MAX, sum = 0.0f;
            for (int e = 0; e < E; e++) mx = l[e] > mx ? l[e] : mx;
            for (int e = 0; e < E; e++) { s[e] = expf(l[e] - mx); sum += s[e]; }
            for (int e = 0; e < E; e++) s[e] /= sum;
        }
        float choice[ROUTER_MAX_EXPERTS];
        for (int e = 0; e < E; e++) choice[e] = s[e] + (bias && rs->method == TOPK_NOAUX_TC ? bias[e] : 0.0f);
        unsigned char allowed[ROUTER_MAX_EXPERTS];
        const unsigned char *mask = NULL;
        if (rs->method != TOPK_GREEDY && G > 1) {
            float gscore[ROUTER_MAX_EXPERTS];
            for (int g = 0; g < G; g++) {
                const float *c = choice + g * gs;
                if (rs->method == TOPK_NOAUX_TC) { // sum of the group's two best
                    int two[2] = {0, 0};
                    int m = gs < 2 ? gs : 2;
                    topk_select(two, c, NULL, gs, m);
                    gscore[g] = c[two[0]] + (m > 1 ? c[two[1]] : 0.0f);
                } else {
                    float mx = -FLT_MAX;
                    for (int i = 0; i < gs; i++) mx = c[i] > mx ? c[i] : mx;
                    gscore[g] = mx;
                }
            }
            int keep[ROUTER_MAX_EXPERTS];
            topk_select(keep, gscore, NULL, G, rs->topk_group);
            memset(allowed, 0, E);
            for (int j = 0; j < rs->topk_group; j++) memset(allowed + keep[j] * gs, 1, gs);
            mask = allowed;
        }
        int *idx = topk_idx + (long)n * K;
        topk_select(idx, choice, mask, E, K);
        float *w = topk_w + (long)n * K, sum = 0.0f;
        for (int k = 0; k < K; k++) { w[k] = s[idx[k]]; sum += w[k]; }
        float mul = rs->scaling / (rs->norm_topk_prob && K > 1 ? sum + 1e-20f : 1.0f);
        for (int k = 0; k < K; k++) w[k] *= mul;
    }
}

// dlogits[n] += the score function's backward of ds (both (E)), s = scores of the token.
static void scores_backward(float *dl, const float *ds, const float *s, int E, int sigmoid) {
    if (sigmoid) {
        for (int e = 0; e < E; e++) dl[e] += ds[e] * s[e] * (1.0f - s[e]);
    } else {
        float dot = 0.0f;
        for (int e = 0; e < E; e++) dot += ds[e] * s[e];
        for (int e = 0; e < E; e++) dl[e] += s[e] * (ds[e] - dot);
    }
}

void router_backward(float *dlogits, const float *dtopk_w, const float *scores, const int *topk_idx,
                     const RouterSpec *rs, int N) {
    int E = rs->E, K = rs->K;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *s = scores + (long)n * E, *dw = dtopk_w + (long)n * K;
        const int *idx = topk_idx + (long)n * K;
        float ds[ROUTER_MAX_EXPERTS];
        memset(ds, 0, sizeof(float) * E);
        if (rs->norm_topk_prob && K > 1) {
            float D = 1e-20f, dot = 0.0f;
            for (int k = 0; k < K; k++) { D += s[idx[k]]; dot += dw[k] * s[idx[k]]; }
            for (int k = 0; k < K; k++) ds[idx[k]] = rs->scaling * (dw[k] / D - dot / (D * D));
        } else {
            for (int k = 0; k < K; k++) ds[idx[k]] = rs->scaling * dw[k];
        }
        scores_backward(dlogits + (long)n * E, ds, s, E, rs->sigmoid);
    }
}

float seq_balance_loss(float *dlogits, const float *scores, const int *topk_idx, const RouterSpec *rs, int B, int T,
                       int Tv, float alpha) {
    int E = rs->E, K = rs->K;
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        float f[ROUTER_MAX_EXPERTS], P[ROUTER_MAX_EXPERTS];
        memset(f, 0, sizeof(float) * E);
        memset(P, 0, sizeof(float) * E);
        for (int t = 0; t < Tv; t++) {
            long n = (long)b * T + t;
            for (int k = 0; k < K; k++) f[topk_idx[n * K + k]] += (float)E / ((float)K * Tv);
            const float *s = scores + n * E;
            float S = 0.0f;
            for (int e = 0; e < E; e++) S += s[e];
            for (int e = 0; e < E; e++) P[e] += s[e] / S / Tv;
        }
        for (int e = 0; e < E; e++) total += (double)f[e] * P[e];
        if (!dlogits) continue;
        // d/ds' = alpha/B * f/T, then through s' = s / sum(s) and the score function.
        for (int t = 0; t < Tv; t++) {
            long n = (long)b * T + t;
            const float *s = scores + n * E;
            float S = 0.0f, gdot = 0.0f, ds[ROUTER_MAX_EXPERTS];
            for (int e = 0; e < E; e++) S += s[e];
            for (int e = 0; e < E; e++) gdot += alpha / B * f[e] / Tv * s[e] / S;
            for (int e = 0; e < E; e++) ds[e] = (alpha / B * f[e] / Tv - gdot) / S;
            scores_backward(dlogits + n * E, ds, s, E, rs->sigmoid);
        }
    }
    return (float)(alpha * total / B);
}

// scratch rows = inv_temp * h @ W^T: the logits of a chunk at the sampling temperature.
static void scaled_logits(float *scratch, const float *h, const float *W, int rows, int C, int V, float inv_temp) {
    matmul_forward(scratch, h, W, rows, C, V);
    if (inv_temp == 1.0f) return;
#pragma omp parallel for
    for (long i = 0; i < (long)rows * V; i++) scratch[i] *= inv_temp;
}

void logprob_forward(float *logp, float *entropy, float *lse, float *scratch, const float *h, const float *W,
                     const int *targets, int N, int C, int V, int chunk, float inv_temp) {
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int rows = N - r0 < chunk ? N - r0 : chunk;
        scaled_logits(scratch, h + (long)r0 * C, W, rows, C, V, inv_temp);
#pragma omp parallel for
        for (int i = 0; i < rows; i++) {
            const float *l = scratch + (long)i * V;
            float mx = -FLT_MAX;
            for (int j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
            double sum = 0.0, wsum = 0.0; // terms in fp32, sums in double: V can be 10^5
            for (int j = 0; j < V; j++) {
                float e = expf(l[j] - mx);
                sum += e;
                wsum += e * l[j];
            }
            float z = mx + (float)log(sum);
            int n = r0 + i, t = targets[n];
            lse[n] = z;
            logp[n] = t >= 0 ? l[t] - z : 0.0f;
            if (entropy) entropy[n] = z - (float)(wsum / sum);
        }
    }
}

void logprob_backward(float *dh, float *dW, float *scratch, const float *dlogp, const float *h, const float *W,
                      const float *lse, const int *targets, int N, int C, int V, int chunk, float inv_temp) {
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int rows = N - r0 < chunk ? N - r0 : chunk;
        scaled_logits(scratch, h + (long)r0 * C, W, rows, C, V, inv_temp);
#pragma omp parallel for
        for (int i = 0; i < rows; i++) {
            float *l = scratch + (long)i * V;
            int n = r0 + i, t = targets[n];
            float g = t >= 0 ? dlogp[n] * inv_temp : 0.0f; // through the 1/temperature of the logits
            for (int j = 0; j < V; j++) l[j] = -g * expf(l[j] - lse[n]);
            if (t >= 0) l[t] += g;
        }
        matmul_backward(dh + (long)r0 * C, dW, scratch, h + (long)r0 * C, W, rows, C, V);
    }
}

// The log-sum-exp of a row of logits: terms in fp32, the sum in double (V can be 10^5).
static float row_lse(const float *l, int V) {
    float mx = -FLT_MAX;
    for (int j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < V; j++) sum += expf(l[j] - mx);
    return mx + (float)log(sum);
}

void topk_logprob_forward(int *ids, float *logp, float *scratch, const float *h, const float *W, const float *mask,
                          int N, int C, int V, int K, int chunk, float inv_temp) {
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int rows = N - r0 < chunk ? N - r0 : chunk;
        scaled_logits(scratch, h + (long)r0 * C, W, rows, C, V, inv_temp);
#pragma omp parallel for
        for (int i = 0; i < rows; i++) {
            const float *l = scratch + (long)i * V;
            int n = r0 + i, *id = ids + (long)n * K, have = 0;
            float *lp = logp + (long)n * K;
            if (mask && mask[n] == 0.0f) {
                for (int k = 0; k < K; k++) id[k] = -1, lp[k] = 0.0f;
                continue;
            }
            // insertion into the sorted candidates: one pass over V, and ids ascend so ties keep the lower id
            for (int j = 0; j < V; j++) {
                if (have == K && l[j] <= lp[K - 1]) continue;
                int k = have < K ? have++ : K - 1;
                for (; k > 0 && lp[k - 1] < l[j]; k--) lp[k] = lp[k - 1], id[k] = id[k - 1];
                lp[k] = l[j], id[k] = j;
            }
            float z = row_lse(l, V);
            for (int k = 0; k < K; k++) lp[k] -= z;
        }
    }
}

// p = softmax of row n's teacher log-probs over its K candidates, written to p (K); returns sum p log p.
static double teacher_probs(float *p, const float *tlogp, int K) {
    float mx = -FLT_MAX;
    for (int k = 0; k < K; k++) mx = tlogp[k] > mx ? tlogp[k] : mx;
    double sum = 0.0, plogp = 0.0;
    for (int k = 0; k < K; k++) sum += expf(tlogp[k] - mx);
    float lz = mx + (float)log(sum);
    for (int k = 0; k < K; k++) {
        p[k] = expf(tlogp[k] - lz);
        plogp += (double)p[k] * (tlogp[k] - lz);
    }
    return plogp;
}

void topk_kl_forward(float *kl, float *lse, float *p, float *scratch, const float *h, const float *W, const int *ids,
                     const float *tlogp, int N, int C, int V, int K, int chunk, float inv_temp) {
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int rows = N - r0 < chunk ? N - r0 : chunk;
        scaled_logits(scratch, h + (long)r0 * C, W, rows, C, V, inv_temp);
#pragma omp parallel for
        for (int i = 0; i < rows; i++) {
            const float *l = scratch + (long)i * V;
            int n = r0 + i;
            const int *id = ids + (long)n * K;
            if (id[0] < 0) {
                kl[n] = lse[n] = 0.0f;
                continue;
            }
            float *pn = p + (long)n * K;
            double plogp = teacher_probs(pn, tlogp + (long)n * K, K), cross = 0.0;
            lse[n] = row_lse(l, V);
            for (int k = 0; k < K; k++) cross += (double)pn[k] * (l[id[k]] - lse[n]);
            kl[n] = (float)(plogp - cross);
        }
    }
}

void topk_kl_backward(float *dh, float *dW, float *scratch, const float *dkl, const float *h, const float *W,
                      const float *lse, const int *ids, const float *p, int N, int C, int V, int K, int chunk,
                      float inv_temp) {
    for (int r0 = 0; r0 < N; r0 += chunk) {
        int rows = N - r0 < chunk ? N - r0 : chunk;
        scaled_logits(scratch, h + (long)r0 * C, W, rows, C, V, inv_temp);
#pragma omp parallel for
        for (int i = 0; i < rows; i++) {
            float *l = scratch + (long)i * V;
            int n = r0 + i;
            const int *id = ids + (long)n * K;
            // d KL / d logit_j = q_j - p_j (p zero outside the K), through the 1/temperature of the logits
            float g = id[0] >= 0 ? dkl[n] * inv_temp : 0.0f;
            for (int j = 0; j < V; j++) l[j] = g != 0.0f ? g * expf(l[j] - lse[n]) : 0.0f;
            for (int k = 0; g != 0.0f && k < K; k++) l[id[k]] -= g * p[(long)n * K + k];
        }
        matmul_backward(dh + (long)r0 * C, dW, scratch, h + (long)r0 * C, W, rows, C, V);
    }
}
