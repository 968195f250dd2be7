// AdamW with decoupled weight decay and bias correction, global gradient-norm clipping, and the
// learning-rate schedule (linear warmup, then cosine decay or constant).
#pragma once
#include "policy/model.h"

typedef enum { LR_CONSTANT, LR_COSINE } LrSchedule;

typedef struct {
    float lr;               // peak learning rate
    float beta1, beta2, eps;
    float weight_decay;     // applied to matrices only (ParamInfo.decay)
    float grad_clip;        // max global L2 norm; 0 = no clipping
    int warmup_steps;
    int total_steps;        // cosine decays to min_lr_ratio * lr at this step
    float min_lr_ratio;
    LrSchedule schedule;
} AdamWConfig;

typedef struct {
    AdamWConfig cfg;
    size_t n;               // parameters (== Model.n_params)
    float *state;           // one allocation: m then v, each (n)
    float *m, *v;
    int step;               // optimizer steps taken
} AdamW;

AdamWConfig adamw_defaults(void); // lr 1e-6 ... see adamw.c: the usual GRPO settings
int adamw_init(AdamW *opt, const AdamWConfig *cfg, size_t n_params);
void adamw_free(AdamW *opt);
float adamw_lr(const AdamWConfig *cfg, int step); // learning rate for 0-based step `step`
float grad_global_norm(const Model *m);            // over trainable parameters
// Clips the gradients to cfg.grad_clip, takes one step at adamw_lr(step) and returns the norm before
// clipping. Non-trainable tensors (the router's selection bias) are left alone.
float adamw_step(AdamW *opt, Model *m);
