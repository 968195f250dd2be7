#include "policy/adamw.h"
#include "common/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

AdamWConfig adamw_defaults(void) {
    return (AdamWConfig){.lr = 1e-6f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f,
                         .grad_clip = 1.0f, .warmup_steps = 0, .total_steps = 0, .min_lr_ratio = 0.1f,
                         .schedule = LR_CONSTANT};
}

int adamw_init(AdamW *opt, const AdamWConfig *cfg, size_t n_params) {
    memset(opt, 0, sizeof *opt);
    opt->cfg = *cfg;
    opt->n = n_params;
    opt->state = grpo_calloc(2 * n_params, sizeof(float), "AdamW moments");
    if (!opt->state) return -1;
    opt->m = opt->state;
    opt->v = opt->state + n_params;
    return 0;
}

void adamw_free(AdamW *opt) {
    free(opt->state);
    memset(opt, 0, sizeof *opt);
}

float adamw_lr(const AdamWConfig *c, int step) {
    if (c->warmup_steps > 0 && step < c->warmup_steps) return c->lr * (step + 1) / c->warmup_steps;
    if (c->schedule == LR_CONSTANT || c->total_steps <= c->warmup_steps) return c->lr;
    float t = (float)(step - c->warmup_steps) / (float)(c->total_steps - c->warmup_steps);
    if (t > 1.0f) t = 1.0f;
    float min_lr = c->lr * c->min_lr_ratio;
    return min_lr + 0.5f * (c->lr - min_lr) * (1.0f + cosf((float)M_PI * t));
}

float grad_global_norm(const Model *m) {
    double ss = 0.0;
    for (int i = 0; i < m->n_info; i++) {
        const ParamInfo *p = &m->info[i];
        if (!p->trainable) continue;
        const float *g = m->grads + p->offset;
        double s = 0.0;
#pragma omp parallel for reduction(+ : s)
        for (size_t j = 0; j < p->size; j++) s += (double)g[j] * g[j];
        ss += s;
    }
    return (float)sqrt(ss);
}

float adamw_step(AdamW *opt, Model *m) {
    const AdamWConfig *c = &opt->cfg;
    float norm = grad_global_norm(m);
    float clip = c->grad_clip > 0 && norm > c->grad_clip ? c->grad_clip / norm : 1.0f;
    float lr = adamw_lr(c, opt->step);
    opt->step++;
    float bc1 = 1.0f - powf(c->beta1, (float)opt->step), bc2 = 1.0f - powf(c->beta2, (float)opt->step);
    for (int i = 0; i < m->n_info; i++) {
        const ParamInfo *p = &m->info[i];
        if (!p->trainable) continue;
        float *w = m->params + p->offset, *g = m->grads + p->offset;
        float *mm = opt->m + p->offset, *vv = opt->v + p->offset;
        float wd = p->decay ? c->weight_decay : 0.0f;
#pragma omp parallel for
        for (size_t j = 0; j < p->size; j++) {
            float gj = g[j] * clip;
            mm[j] = c->beta1 * mm[j] + (1.0f - c->beta1) * gj;
            vv[j] = c->beta2 * vv[j] + (1.0f - c->beta2) * gj * gj;
            float mhat = mm[j] / bc1, vhat = vv[j] / bc2;
            w[j] -= lr * (mhat / (sqrtf(vhat) + c->eps) + wd * w[j]);
        }
    }
    return norm;
}
