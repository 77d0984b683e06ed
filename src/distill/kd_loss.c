/*
 * kd_loss.c — the distillation losses on student logits: hard-label cross-entropy, forward
 * KL(teacher‖student), reverse KL(student‖teacher), TRL's generalized JSD(β), with a
 * temperature τ (loss × τ², Hinton et al.) and an α-mix with hard-label cross-entropy, for a
 * full-vocabulary teacher or a top-k teacher whose remaining mass is one "rest" bucket.
 *
 * One derivation serves every case. The vocabulary is partitioned into buckets b (every
 * token its own bucket for a full teacher; the k teacher ids plus one rest bucket for a
 * top-k teacher). With u = z/τ the tempered student logits, q_j = softmax(u)_j and
 * q_b = Σ_{j∈b} q_j, a divergence D(p, q) over buckets has
 *     ∂D/∂u_j = s_j·e_b − q_j·C,   e_b = q_b·∂D/∂q_b,   C = Σ_b e_b,   s_j = q_j / q_b(j)
 * (s_j = 1 for singleton buckets). e_b stays finite when q_b or p_b is tiny:
 *     forward KL  D = Σ p_b (log p_b − log q_b)            e_b = −p_b
 *     reverse KL  D = Σ q_b (log q_b − log p_b)            e_b = q_b (log q_b − log p_b + 1)
 *     JSD(β)      m = (1−β) q + β p,
 *                 D = β KL(p‖m) + (1−β) KL(q‖m)            e_b = (1−β) q_b (log q_b − log m_b)
 * (JSD with β = 0 is forward KL and β = 1 reverse KL, exactly as TRL's generalized_jsd_loss
 * special-cases them.) The row loss is α·τ²·D + (1−α)·CE(z, target) with CE at τ = 1, so
 *     ∂loss/∂z_j = α·τ·∂D/∂u_j + (1−α)·(softmax(z)_j − [j = target]).
 * Per-element values are float (log-softmax through the kernels' vector exp); every sum is
 * accumulated in double, and the top-k bucket arithmetic is double. A batch is the mean over
 * counted rows, threaded over rows, with per-row results summed in a fixed order
 * (deterministic for any thread count).
 *
 * What this is not: the teacher (src/model) or where the top-k comes from (kd_cache.c and
 * kd_topk_from_logits below).
 */
#include "distill.h"

#include "../kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- parameters */

const char *kd_kind_name(kd_kind k) {
    switch (k) {
    case KD_CE: return "ce";
    case KD_FKL: return "fkl";
    case KD_RKL: return "rkl";
    case KD_JSD: return "jsd";
    }
    return "?";
}

int kd_kind_parse(const char *s, kd_kind *out) {
    static const kd_kind all[] = {KD_CE, KD_FKL, KD_RKL, KD_JSD};
    for (size_t i = 0; i < RT_ARRAY_LEN(all); i++)
        if (s && !strcmp(s, kd_kind_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return RT_FAIL("--loss '%s' is not one of ce, fkl, rkl, jsd", s ? s : "(null)");
}

kd_params kd_params_defaults(void) {
    kd_params p = {.kind = KD_FKL, .beta = 0.5f, .temperature = 1.0f, .alpha = 1.0f};
    return p;
}

int kd_params_validate(const kd_params *p) {
    if (p->kind != KD_CE && p->kind != KD_FKL && p->kind != KD_RKL && p->kind != KD_JSD)
        return RT_FAIL("unknown loss kind %d", (int)p->kind);
    if (!(p->beta >= 0.0f && p->beta <= 1.0f))
        return RT_FAIL("--beta must be in [0, 1] (0 = forward KL, 1 = reverse KL); got %g", (double)p->beta);
    if (!(p->temperature > 0.0f) || !isfinite(p->temperature))
        return RT_FAIL("--temperature must be > 0; got %g", (double)p->temperature);
    if (!(p->alpha >= 0.0f && p->alpha <= 1.0f))
        return RT_FAIL("--alpha must be in [0, 1] (weight of the distillation term; 1 - alpha goes to "
                       "hard-label cross-entropy); got %g",
                       (double)p->alpha);
    return 0;
}

/* ---------------------------------------------------------------- workspace */

int kd_workspace_init(kd_workspace *ws, size_t V, size_t kmax) {
    memset(ws, 0, sizeof *ws);
    if (V == 0) return RT_FAIL("kd_workspace_init: empty vocabulary");
    ws->V = V;
    ws->kmax = kmax;
    ws->n_threads = (size_t)rt_omp_threads();
    if (ws->n_threads == 0) ws->n_threads = 1;
    size_t nb = kmax + 1;
    ws->s = rt_calloc(ws->n_threads, sizeof *ws->s, "distillation loss workspace");
    if (!ws->s) return -1;
    for (size_t t = 0; t < ws->n_threads; t++) {
        kd_scratch *s = &ws->s[t];
        s->ls = rt_malloc_array(V, sizeof(float), "distillation loss workspace");
        s->q = rt_malloc_array(V, sizeof(float), "distillation loss workspace");
        s->q1 = rt_malloc_array(V, sizeof(float), "distillation loss workspace");
        s->lt = rt_malloc_array(V, sizeof(float), "distillation loss workspace");
        s->p = rt_malloc_array(V, sizeof(float), "distillation loss workspace");
        s->lm = rt_malloc_array(V, sizeof(float), "distillation loss workspace");
        s->mark = rt_calloc(V, sizeof(uint32_t), "distillation loss workspace");
        s->blq = rt_malloc_array(nb, sizeof(double), "distillation loss workspace");
        s->blp = rt_malloc_array(nb, sizeof(double), "distillation loss workspace");
        s->be = rt_malloc_array(nb, sizeof(double), "distillation loss workspace");
        if (!s->ls || !s->q || !s->q1 || !s->lt || !s->p || !s->lm || !s->mark || !s->blq || !s->blp || !s->be) {
            kd_workspace_free(ws);
            return -1;
        }
    }
    return 0;
}

void kd_workspace_free(kd_workspace *ws) {
    if (ws->s) {
        for (size_t t = 0; t < ws->n_threads; t++) {
            kd_scratch *s = &ws->s[t];
            free(s->ls);
            free(s->q);
            free(s->q1);
            free(s->lt);
            free(s->p);
            free(s->lm);
            free(s->mark);
            free(s->blq);
            free(s->blp);
            free(s->be);
        }
        free(ws->s);
    }
    free(ws->row_loss);
    free(ws->row_kd);
    free(ws->row_ce);
    memset(ws, 0, sizeof *ws);
}

/* ---------------------------------------------------------------- helpers */

static double logaddexp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* The teacher's log-probability floor for a bucket the student can put mass in: reverse KL
 * and JSD are infinite against an exact zero, and quantized caches or API top-n lists can
 * leave the rest bucket at (rounded) zero. */
#define KD_LOG_P_FLOOR (-18.420680743952367) /* log(1e-8) */

/* Divergence over nb buckets given log-probs lq (student) and lp (teacher). Writes e (nb)
 * and returns D; *C_out = Σ e_b. kind is FKL, RKL or JSD (beta strictly inside (0,1)). */
static double bucket_divergence(kd_kind kind, double beta, const double *lq, const double *lp,
                                size_t nb, double *e, double *C_out) {
    double D = 0, C = 0;
    if (kind == KD_JSD && beta <= 0.0) kind = KD_FKL;
    if (kind == KD_JSD && beta >= 1.0) kind = KD_RKL;
    if (kind == KD_FKL) {
        for (size_t b = 0; b < nb; b++) {
            double p = exp(lp[b]);
            if (p > 0) D += p * (lp[b] - lq[b]);
            e[b] = -p;
            C -= p;
        }
    } else if (kind == KD_RKL) {
        for (size_t b = 0; b < nb; b++) {
            double q = exp(lq[b]);
            double t = q > 0 ? q * (lq[b] - lp[b]) : 0.0;
            D += t;
            e[b] = t + q;
            C += e[b];
        }
    } else {
        double l1b = log1p(-beta), lb = log(beta);
        for (size_t b = 0; b < nb; b++) {
            double lm = logaddexp(l1b + lq[b], lb + lp[b]);
            double p = exp(lp[b]), q = exp(lq[b]);
            double tp = p > 0 ? p * (lp[b] - lm) : 0.0;
            double tq = q > 0 ? q * (lq[b] - lm) : 0.0;
            D += beta * tp + (1.0 - beta) * tq;
            e[b] = (1.0 - beta) * tq;
            C += e[b];
        }
    }
    *C_out = C;
    return D;
}

/* ---------------------------------------------------------------- one row */

double kd_log_softmax_row(const float *z, size_t V, float inv_tau, float *ls, float *q) {
    float mx = -INFINITY;
    for (size_t j = 0; j < V; j++) {
        float u = z[j] * inv_tau;
        ls[j] = u;
        mx = u > mx ? u : mx;
    }
    for (size_t j = 0; j < V; j++) ls[j] -= mx;
    kernels_exp(q, ls, V);
    double sum = 0;
    for (size_t j = 0; j < V; j++) sum += (double)q[j];
    float lsum = (float)log(sum), inv = (float)(1.0 / sum);
    for (size_t j = 0; j < V; j++) {
        ls[j] -= lsum;
        q[j] *= inv;
    }
    return (double)mx + log(sum);
}

double kd_row(const kd_params *p, kd_scratch *s, const float *z, const float *t_logits,
              const kd_topk_row *t_row, int32_t target, int use_ce, size_t V, float *dz,
              double grad_scale, double *kd_out, double *ce_out) {
    float inv_tau = 1.0f / p->temperature;
    double tau = (double)p->temperature, beta = (double)p->beta;
    int has_teacher = p->kind != KD_CE && (t_logits || (t_row && t_row->k > 0));
    int has_target = target >= 0 && (size_t)target < V;
    double w_kd = 0, w_ce = 0;
    if (has_teacher) {
        w_kd = (has_target && use_ce) ? (double)p->alpha : 1.0;
        w_ce = (has_target && use_ce) ? 1.0 - (double)p->alpha : 0.0;
    } else if (has_target) {
        w_ce = 1.0;
    }
    kd_kind kind = p->kind;
    if (kind == KD_JSD && beta <= 0.0) kind = KD_FKL;
    if (kind == KD_JSD && beta >= 1.0) kind = KD_RKL;
    /* student log-probs and probs at tau; at tau = 1 as well for the CE term */
    float *ls = s->ls, *q = s->q, *q1 = q;
    double lse_t = kd_log_softmax_row(z, V, inv_tau, ls, q), lse1 = lse_t;
    if (tau != 1.0 && (has_target || w_ce > 0)) {
        lse1 = kd_log_softmax_row(z, V, 1.0f, s->lm, s->q1);
        q1 = s->q1;
    }
    double ce = has_target ? lse1 - (double)z[target] : 0.0;
    double D = 0, C = 0;
    size_t nb = 0;
    int topk = 0;
    float inv_q_rest = 0;
    float *lt = s->lt, *pt = s->p, *lm = s->lm;
    if (has_teacher && t_logits) {
        kd_log_softmax_row(t_logits, V, inv_tau, lt, pt);
        if (kind == KD_FKL) {
            for (size_t j = 0; j < V; j++)
                if (pt[j] > 0) D += (double)(pt[j] * (lt[j] - ls[j]));
        } else if (kind == KD_RKL) {
            for (size_t j = 0; j < V; j++)
                if (q[j] > 0) D += (double)(q[j] * (ls[j] - lt[j]));
        } else {
            float b = (float)beta, b1 = 1.0f - b;
            double sp = 0, sq = 0;
            for (size_t j = 0; j < V; j++) lm[j] = b1 * q[j] + b * pt[j];
            for (size_t j = 0; j < V; j++) lm[j] = lm[j] > 0 ? logf(lm[j]) : -INFINITY;
            for (size_t j = 0; j < V; j++) {
                if (pt[j] > 0) sp += (double)(pt[j] * (lt[j] - lm[j]));
                if (q[j] > 0) sq += (double)(q[j] * (ls[j] - lm[j]));
            }
            D = beta * sp + (1.0 - beta) * sq;
            C = sq; /* KL(q ‖ m): the gradient's centring term */
        }
    } else if (has_teacher) {
        topk = 1;
        size_t k = t_row->k;
        /* teacher buckets, renormalised over the k ids and the rest */
        double lz = t_row->lp_rest > -INFINITY ? (double)t_row->lp_rest : -INFINITY;
        for (size_t i = 0; i < k; i++) {
            int32_t id = t_row->ids[i];
            s->mark[id] = (uint32_t)(i + 1);
            s->blq[i] = (double)ls[id];
            s->blp[i] = (double)t_row->logprobs[i];
            lz = logaddexp(lz, s->blp[i]);
        }
        int has_rest = k < V;
        if (has_rest) {
            /* the student's rest mass, summed directly over the other tokens */
            double sum = 0;
            for (size_t j = 0; j < V; j++)
                if (!s->mark[j]) sum += (double)q[j];
            double lq_rest;
            if (sum > 1e-30) {
                lq_rest = log(sum);
            } else { /* underflowed in float: exact log-sum-exp in double */
                double mx = -INFINITY, acc = 0;
                for (size_t j = 0; j < V; j++)
                    if (!s->mark[j] && ls[j] > mx) mx = ls[j];
                for (size_t j = 0; j < V; j++)
                    if (!s->mark[j]) acc += exp((double)ls[j] - mx);
                lq_rest = mx + log(acc);
            }
            inv_q_rest = sum > 1e-30 ? (float)(1.0 / sum) : 0.0f;
            s->blq[k] = lq_rest;
            s->blp[k] = t_row->lp_rest > -INFINITY ? (double)t_row->lp_rest : -INFINITY;
        }
        nb = k + (size_t)has_rest;
        for (size_t b = 0; b < nb; b++) s->blp[b] -= lz;
        if (has_rest && s->blp[k] < KD_LOG_P_FLOOR) s->blp[k] = KD_LOG_P_FLOOR;
        D = bucket_divergence(kind, beta, s->blq, s->blp, nb, s->be, &C);
    }
    double tau2 = tau * tau;
    double loss = w_kd * tau2 * D + w_ce * ce;
    if (kd_out) *kd_out = has_teacher ? D : 0.0;
    if (ce_out) *ce_out = ce;
    if (dz) {
        /* z may alias dz: everything read from z was consumed above */
        float gk = (float)(grad_scale * w_kd * tau), gc = (float)(grad_scale * w_ce);
        if (w_kd > 0 && !topk) {
            float Df = (float)D, Cf = (float)C, b1 = (float)(1.0 - beta);
            if (kind == KD_FKL) {
                for (size_t j = 0; j < V; j++) dz[j] = gk * (q[j] - pt[j]);
            } else if (kind == KD_RKL) {
                for (size_t j = 0; j < V; j++) dz[j] = q[j] > 0 ? gk * q[j] * (ls[j] - lt[j] - Df) : 0.0f;
            } else {
                for (size_t j = 0; j < V; j++) dz[j] = q[j] > 0 ? gk * b1 * q[j] * (ls[j] - lm[j] - Cf) : 0.0f;
            }
        } else if (w_kd > 0) {
            float Cf = (float)C, e_rest = nb > t_row->k ? (float)s->be[nb - 1] : 0.0f;
            for (size_t j = 0; j < V; j++) {
                uint32_t mk = s->mark[j];
                float e = mk ? (float)s->be[mk - 1] : q[j] * inv_q_rest * e_rest;
                dz[j] = gk * (e - q[j] * Cf);
            }
        } else {
            memset(dz, 0, V * sizeof(float));
        }
        if (w_ce > 0) {
            for (size_t j = 0; j < V; j++) dz[j] += gc * q1[j];
            dz[target] -= gc;
        }
    }
    if (topk)
        for (size_t i = 0; i < t_row->k; i++) s->mark[t_row->ids[i]] = 0;
    return loss;
}

/* ---------------------------------------------------------------- batch */

int kd_loss_batch(const kd_params *p, kd_workspace *ws, float *logits, const float *t_logits,
                  const kd_topk_row *t_rows, const int32_t *targets, int use_ce, size_t N, size_t V,
                  int want_grad, kd_stats *st) {
    if (V != ws->V) return RT_FAIL("kd_loss_batch: vocabulary %zu differs from the workspace's %zu", V, ws->V);
    if (t_rows)
        for (size_t i = 0; i < N; i++) {
            if (t_rows[i].k > ws->kmax)
                return RT_FAIL("kd_loss_batch: row %zu has %zu teacher entries, more than the %zu "
                               "the workspace was sized for",
                               i, t_rows[i].k, ws->kmax);
            for (size_t e = 0; e < t_rows[i].k; e++)
                if (t_rows[i].ids[e] < 0 || (size_t)t_rows[i].ids[e] >= V)
                    return RT_FAIL("teacher top-k id %d at row %zu is outside the vocabulary (size %zu)",
                                   t_rows[i].ids[e], i, V);
        }
    if (N > ws->cap_rows) {
        double *a = rt_realloc(ws->row_loss, N * sizeof(double), "loss rows");
        if (!a) return -1;
        ws->row_loss = a;
        a = rt_realloc(ws->row_kd, N * sizeof(double), "loss rows");
        if (!a) return -1;
        ws->row_kd = a;
        a = rt_realloc(ws->row_ce, N * sizeof(double), "loss rows");
        if (!a) return -1;
        ws->row_ce = a;
        ws->cap_rows = N;
    }
    /* which rows count: a row with a target, or (on-policy rows without CE) a teacher */
    size_t n_rows = 0, n_kd = 0, n_ce = 0;
    for (size_t i = 0; i < N; i++) {
        int has_t = p->kind != KD_CE && (t_logits || (t_rows && t_rows[i].k > 0));
        if (targets[i] >= 0 && (size_t)targets[i] >= V)
            return RT_FAIL("target id %d at row %zu is outside the vocabulary (size %zu)", targets[i], i, V);
        if (targets[i] >= 0) {
            n_rows++;
            n_ce++;
            n_kd += (size_t)has_t;
        }
    }
    double scale = n_rows ? 1.0 / (double)n_rows : 0.0;
    long long NN = (long long)N;
RT_OMP(parallel for schedule(static))
    for (long long ii = 0; ii < NN; ii++) {
        size_t i = (size_t)ii;
        int t = 0;
        t = rt_omp_thread();
        float *z = logits + i * V;
        if (targets[i] < 0) {
            ws->row_loss[i] = ws->row_kd[i] = ws->row_ce[i] = 0;
            if (want_grad) memset(z, 0, V * sizeof(float));
            continue;
        }
        ws->row_loss[i] = kd_row(p, &ws->s[t], z, t_logits ? t_logits + i * V : NULL,
                                 t_rows ? &t_rows[i] : NULL, targets[i], use_ce, V,
                                 want_grad ? z : NULL, scale, &ws->row_kd[i], &ws->row_ce[i]);
    }
    double sl = 0, sk = 0, sc = 0;
    for (size_t i = 0; i < N; i++) {
        sl += ws->row_loss[i];
        sk += ws->row_kd[i];
        sc += ws->row_ce[i];
    }
    if (st) {
        st->n_rows = n_rows;
        st->loss = n_rows ? sl / (double)n_rows : 0.0;
        st->kd = n_kd ? sk / (double)n_kd : NAN;
        st->ce = n_ce ? sc / (double)n_ce : NAN;
    }
    return 0;
}

/* ---------------------------------------------------------------- top-k selection */

/* min-heap on (logit, -id): the root is the worst kept candidate */
static int heap_less(float a, int32_t ia, float b, int32_t ib) { return a < b || (a == b && ia > ib); }

static void heap_down(float *v, int32_t *id, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && heap_less(v[l], id[l], v[m], id[m])) m = l;
        if (r < n && heap_less(v[r], id[r], v[m], id[m])) m = r;
        if (m == i) return;
        float tv = v[i];
        v[i] = v[m];
        v[m] = tv;
        int32_t ti = id[i];
        id[i] = id[m];
        id[m] = ti;
        i = m;
    }
}

size_t kd_topk_from_logits(const float *logits, size_t V, float temperature, size_t k, int32_t *ids,
                           float *logprobs, float *lp_rest) {
    if (k > V) k = V;
    if (k == 0) {
        *lp_rest = 0.0f;
        return 0;
    }
    /* heap of the k largest logits, in logprobs (as raw logits for now) and ids */
    size_t n = 0;
    for (size_t j = 0; j < V; j++) {
        float v = logits[j];
        if (n < k) {
            logprobs[n] = v;
            ids[n] = (int32_t)j;
            n++;
            if (n == k)
                for (size_t i = k / 2; i-- > 0;) heap_down(logprobs, ids, k, i);
        } else if (heap_less(logprobs[0], ids[0], v, (int32_t)j)) {
            logprobs[0] = v;
            ids[0] = (int32_t)j;
            heap_down(logprobs, ids, k, 0);
        }
    }
    /* heap sort: repeatedly move the minimum to the end → descending order */
    for (size_t end = k; end > 1; end--) {
        float tv = logprobs[0];
        logprobs[0] = logprobs[end - 1];
        logprobs[end - 1] = tv;
        int32_t ti = ids[0];
        ids[0] = ids[end - 1];
        ids[end - 1] = ti;
        heap_down(logprobs, ids, end - 1, 0);
    }
    /* normalise over the full vocabulary at the temperature */
    double inv_tau = 1.0 / (double)temperature;
    double mx = (double)logprobs[0] * inv_tau, sum_all = 0, sum_top = 0;
    {
        /* Σ exp over the vocabulary with the vector exp, in stack-sized chunks */
        float buf[256], fm = (float)mx, fi = (float)inv_tau;
        for (size_t j0 = 0; j0 < V; j0 += 256) {
            size_t n = RT_MIN((size_t)256, V - j0);
            for (size_t j = 0; j < n; j++) buf[j] = logits[j0 + j] * fi - fm;
            kernels_exp(buf, buf, n);
            for (size_t j = 0; j < n; j++) sum_all += (double)buf[j];
        }
    }
    for (size_t i = 0; i < k; i++) sum_top += exp((double)logprobs[i] * inv_tau - mx);
    double lse = mx + log(sum_all);
    for (size_t i = 0; i < k; i++) logprobs[i] = (float)((double)logprobs[i] * inv_tau - lse);
    if (k == V) {
        *lp_rest = -INFINITY;
    } else {
        /* rest mass summed directly over the other tokens (no 1 - Σ cancellation) */
        double sum_rest = sum_all - sum_top;
        double direct = 0;
        if (sum_rest < 1e-6 * sum_all) {
            /* the subtraction lost its digits: sum the excluded tokens directly (ties with
             * the last kept logit are excluded by id order, as selected above) */
            int32_t last_id = ids[k - 1];
            double last_v = (double)logits[last_id];
            for (size_t j = 0; j < V; j++) {
                double v = (double)logits[j];
                int kept = v > last_v || (v == last_v && (int32_t)j <= last_id);
                if (!kept) direct += exp(v * inv_tau - mx);
            }
            sum_rest = direct;
        }
        *lp_rest = sum_rest > 0 ? (float)(log(sum_rest) + mx - lse) : -INFINITY;
    }
    return k;
}
