/*
 * optim.c — learning-rate schedule, deterministic global gradient norm, and the AdamW
 * update (Loshchilov & Hutter: decoupled weight decay; Kingma & Ba bias correction).
 * Not the loop (trainer.c).
 */
#include "train.h"

#include <math.h>
#include <stdlib.h>

float lr_schedule(size_t step, size_t warmup, size_t total, float lr, float min_lr_frac) {
    if (warmup > 0 && step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (total <= warmup) return lr;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    if (progress > 1) progress = 1;
    double min_lr = lr * min_lr_frac;
    return (float)(min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(3.14159265358979323846 * progress)));
}

double grad_global_norm(const float *g, size_t n) {
    /* fixed blocks summed in order: the result does not depend on the thread count */
    enum { BLOCK = 1 << 16 };
    size_t nb = (n + BLOCK - 1) / BLOCK;
    double *part = rt_calloc(nb ? nb : 1, sizeof(double), "gradient norm");
    if (!part) return NAN;
RT_OMP(parallel for schedule(static))
    for (size_t b = 0; b < nb; b++) {
        size_t s = b * BLOCK, e = s + BLOCK < n ? s + BLOCK : n;
        double acc = 0;
        for (size_t i = s; i < e; i++) acc += (double)g[i] * (double)g[i];
        part[b] = acc;
    }
    double total = 0;
    for (size_t b = 0; b < nb; b++) total += part[b];
    free(part);
    return sqrt(total);
}

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float wd, size_t t, float grad_scale) {
    float bc1 = 1.0f - powf(beta1, (float)t);
    float bc2 = 1.0f - powf(beta2, (float)t);
RT_OMP(parallel for schedule(static))
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
    }
}
