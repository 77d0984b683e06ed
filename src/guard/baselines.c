/*
 * baselines.c — the streaming state of the published detectors the guard is measured against
 * (see guard.h): PRADA (Juuti et al. 2019), minimum distances of an account's prompt
 * embeddings to a growing set, tested for normality with Shapiro–Wilk (sketch.c). Pure
 * computation; src/defend's eval and the reference fit replay stored traffic through it.
 * Not the guard's own detector (detector.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "guard.h"

void guard_prada_init(guard_prada *p, size_t dim) {
    memset(p, 0, sizeof *p);
    p->dim = dim;
}

void guard_prada_free(guard_prada *p) {
    free(p->g);
    free(p->dist);
    memset(p, 0, sizeof *p);
}

int guard_prada_add(guard_prada *p, const float *x, size_t max_g) {
    const size_t D = p->dim;
    int add = 1;
    if (p->n_g > 0) {
        double best = INFINITY;
        for (size_t i = 0; i < p->n_g; i++) {
            const float *g = p->g + i * D;
            double s = 0;
            for (size_t k = 0; k < D; k++) {
                double df = (double)x[k] - g[k];
                s += df * df;
            }
            if (s < best) best = s;
        }
        double d = sqrt(best);
        if (RT_GROW(p->dist, p->cap_d, p->n_d + 1, "PRADA distances")) return -1;
        p->dist[p->n_d++] = d;
        p->sum += d;
        p->sum2 += d * d;
        double mean = p->sum / (double)p->n_d;
        double sd = sqrt(fmax(0, p->sum2 / (double)p->n_d - mean * mean));
        add = d > mean - sd;
    }
    if (add && p->n_g < max_g) {
        if (p->n_g == p->cap_g) {
            size_t nc = p->cap_g ? p->cap_g * 2 : 64;
            float *ng = rt_realloc(p->g, nc * D * sizeof *ng, "PRADA set");
            if (!ng) return -1;
            p->g = ng;
            p->cap_g = nc;
        }
        memcpy(p->g + p->n_g * D, x, D * sizeof *x);
        p->n_g++;
    }
    return 0;
}

double guard_prada_w(const guard_prada *p) { return guard_shapiro_wilk(p->dist, p->n_d); }

