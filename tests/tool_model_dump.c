// Test tool for tests/test_parity.py: runs the C model on a model directory and a batch and writes
// logits, log-probs, entropy, the losses and every trained parameter's gradient to a safetensors file.
// usage: tool_model_dump MODEL_DIR INPUT.json OUT.safetensors
// INPUT.json: {"B":2,"T":12,"inputs":[B*T],"targets":[B*T, -1 = ignored],"mtp_lambda":0.3,"aux_alpha":0}
// loss = mean CE over targets >= 0 + mtp_lambda * MTP loss + aux (alpha-weighted balance loss).
#include "common/error.h"
#include "common/fileio.h"
#include "policy/model.h"
#include "policy/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_ints(int *out, const cJSON *arr, int n, const char *what) {
    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == n, "%s: expected an array of %d ints", what, n);
    for (int i = 0; i < n; i++) out[i] = cJSON_GetArrayItem(arr, i)->valueint;
    return 0;
}

static int run(const char *dir, const char *input, const char *out) {
    char *text = read_file(input, NULL);
    if (!text) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    CHECK(j, "%s: not JSON", input);
    int B = cJSON_GetObjectItem(j, "B")->valueint, T = cJSON_GetObjectItem(j, "T")->valueint, N = B * T;
    const cJSON *lam = cJSON_GetObjectItem(j, "mtp_lambda"), *alpha = cJSON_GetObjectItem(j, "aux_alpha");
    int *inputs = malloc(sizeof(int) * N), *targets = malloc(sizeof(int) * N);
    TRY(read_ints(inputs, cJSON_GetObjectItem(j, "inputs"), N, "inputs"));
    TRY(read_ints(targets, cJSON_GetObjectItem(j, "targets"), N, "targets"));
    Model m;
    TRY(model_load(&m, dir));
    m.mtp_lambda = lam ? (float)lam->valuedouble : 0.0f;
    m.aux_alpha = alpha ? (float)alpha->valuedouble : 0.0f;
    TRY(model_alloc_grads(&m));
    TRY(model_alloc_acts(&m, B, T));
    TRY(model_forward(&m, inputs, targets, B, T));
    float *dlogp = malloc(sizeof(float) * N);
    float ce = model_ce_loss(&m, dlogp);
    float loss = ce + (m.cfg.num_nextn_predict_layers ? m.mtp_lambda * m.mtp_loss : 0.0f) + m.aux_loss;
    model_zero_grad(&m);
    model_backward(&m, dlogp);
    int V = m.cfg.vocab_size;
    float *logits = malloc(sizeof(float) * N * V);
    model_logits(&m, logits);

    StWriteTensor *t = calloc((size_t)m.n_info + 8, sizeof *t);
    char (*names)[128] = calloc((size_t)m.n_info, sizeof *names);
    int n = 0;
    t[n++] = (StWriteTensor){"logits", logits, 3, {B, T, V}};
    t[n++] = (StWriteTensor){"logprobs", m.logp, 2, {B, T}};
    t[n++] = (StWriteTensor){"entropy", m.entropy, 2, {B, T}};
    t[n++] = (StWriteTensor){"loss", &loss, 1, {1}};
    t[n++] = (StWriteTensor){"aux_loss", &m.aux_loss, 1, {1}};
    if (m.cfg.num_nextn_predict_layers) t[n++] = (StWriteTensor){"mtp_loss", &m.mtp_loss, 1, {1}};
    for (int i = 0; i < m.n_info; i++) {
        const ParamInfo *p = &m.info[i];
        if (!p->trainable) continue;
        snprintf(names[i], sizeof names[i], "grad.%s", p->name);
        t[n] = (StWriteTensor){names[i], m.grads + p->offset, p->ndim, {0}};
        for (int d = 0; d < p->ndim; d++) t[n].shape[d] = p->shape[d];
        n++;
    }
    int rc = st_write(out, t, n, ST_F32, NULL);
    printf("loss %.6f (ce %.6f mtp %.6f aux %.6f)\n", loss, ce, m.mtp_loss, m.aux_loss);
    free(t); free(names); free(logits); free(dlogp); free(inputs); free(targets);
    model_free(&m);
    cJSON_Delete(j);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR INPUT.json OUT.safetensors\n", argv[0]);
        return 2;
    }
    if (run(argv[1], argv[2], argv[3]) != 0) {
        fprintf(stderr, "tool_model_dump: %s\n", grpo_error());
        return 1;
    }
    return 0;
}
