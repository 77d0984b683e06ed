/* test_distill_loss.c — the distillation losses against an independent reference: values
 * worked out by hand, a naive double-precision implementation written straight from the
 * definitions (softmax, bucket sums, KL/JSD formulas), and its central finite differences
 * for every gradient; top-k selection against a full sort; batch mean, ignored rows and
 * determinism across thread counts. */
#include "base/base.h"
#include "distill/distill.h"
#include "testlib.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- the reference */

typedef struct {
    kd_kind kind;
    double beta, tau, alpha;
    size_t k; /* 0 = full vocabulary teacher */
    int use_ce;
} ref_cfg;

static void softmax_ref(const double *x, size_t V, double inv_tau, double *p) {
    double mx = -INFINITY, s = 0;
    for (size_t j = 0; j < V; j++) mx = fmax(mx, x[j] * inv_tau);
    for (size_t j = 0; j < V; j++) s += exp(x[j] * inv_tau - mx);
    for (size_t j = 0; j < V; j++) p[j] = exp(x[j] * inv_tau - mx) / s;
}

/* the top-k set by a full selection sort on (value desc, id asc) */
static void topk_ref(const double *t, size_t V, size_t k, int *in_k) {
    for (size_t j = 0; j < V; j++) in_k[j] = 0;
    for (size_t r = 0; r < k; r++) {
        int best = -1;
        for (size_t j = 0; j < V; j++)
            if (!in_k[j] && (best < 0 || t[j] > t[best])) best = (int)j;
        in_k[best] = 1;
    }
}

static double kl_ref(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] > 0) s += a[i] * log(a[i] / b[i]);
    return s;
}

/* loss of one row from the definitions: buckets (every token, or the top-k of the teacher
 * plus the rest), divergence over them, α-mix with CE at τ = 1. */
static double ref_loss(const ref_cfg *c, const double *z, const double *t, int target, size_t V) {
    double q[64], p[64], qb[65], pb[65], q1[64];
    int in_k[64];
    softmax_ref(z, V, 1.0 / c->tau, q);
    softmax_ref(z, V, 1.0, q1);
    double ce = target >= 0 ? -log(q1[target]) : 0;
    if (c->kind == KD_CE || !t) return ce;
    softmax_ref(t, V, 1.0 / c->tau, p);
    size_t nb = 0;
    if (c->k == 0 || c->k >= V) {
        for (size_t j = 0; j < V; j++) {
            qb[j] = q[j];
            pb[j] = p[j];
        }
        nb = V;
    } else {
        topk_ref(t, V, c->k, in_k);
        double qr = 0, pr = 0;
        for (size_t j = 0; j < V; j++) {
            if (in_k[j]) {
                qb[nb] = q[j];
                pb[nb] = p[j];
                nb++;
            } else {
                qr += q[j];
                pr += p[j];
            }
        }
        qb[nb] = qr;
        pb[nb] = pr;
        nb++;
    }
    double D;
    double beta = c->beta;
    if (c->kind == KD_FKL || (c->kind == KD_JSD && beta == 0)) D = kl_ref(pb, qb, nb);
    else if (c->kind == KD_RKL || (c->kind == KD_JSD && beta == 1)) D = kl_ref(qb, pb, nb);
    else {
        double m[65];
        for (size_t b = 0; b < nb; b++) m[b] = (1 - beta) * qb[b] + beta * pb[b];
        D = beta * kl_ref(pb, m, nb) + (1 - beta) * kl_ref(qb, m, nb);
    }
    double tau2 = c->tau * c->tau;
    if (target < 0 || !c->use_ce) return tau2 * D;
    return c->alpha * tau2 * D + (1 - c->alpha) * ce;
}

/* ---------------------------------------------------------------- helpers */

static void rand_logits(rt_rng *r, float *x, size_t V, double scale) {
    for (size_t j = 0; j < V; j++) x[j] = (float)(rt_rng_normal(r) * scale);
}

/* x rounded to float (through memory: gcc 12 -O3 was seen folding (double)(float)x to x) */
static double as_f32(double x) {
    volatile float f = (float)x;
    return (double)f;
}

/* kd_row's value and gradient vs the reference value and its central differences */
static void check_row(const ref_cfg *c0, const float *zf, const float *tf, int target, size_t V,
                      const char *what) {
    /* the reference sees the parameters as the float API stores them */
    ref_cfg cc = *c0, *c = &cc;
    cc.beta = as_f32(c0->beta);
    cc.tau = as_f32(c0->tau);
    cc.alpha = as_f32(c0->alpha);
    kd_params p = {.kind = c->kind, .beta = (float)c->beta, .temperature = (float)c->tau,
                   .alpha = (float)c->alpha};
    kd_workspace ws;
    CHECK_OK(kd_workspace_init(&ws, V, 64));
    int32_t ids[64];
    float lps[64], lpr;
    kd_topk_row row = {0};
    if (c->k && tf) {
        row.k = kd_topk_from_logits(tf, V, (float)c->tau, c->k, ids, lps, &lpr);
        row.ids = ids;
        row.logprobs = lps;
        row.lp_rest = lpr;
    }
    float dz[64];
    double kd, ce;
    double got = kd_row(&p, &ws.s[0], zf, (c->k || !tf) ? NULL : tf, c->k && tf ? &row : NULL, target,
                        c->use_ce, V, dz, 1.0, &kd, &ce);
    double z[64], t[64];
    for (size_t j = 0; j < V; j++) {
        z[j] = zf[j];
        t[j] = tf ? tf[j] : 0;
    }
    double want = ref_loss(c, z, tf ? t : NULL, target, V);
    /* per-element values are float (sums in double): agreement to ~1e-6 relative */
    CHECK_MSG(fabs(got - want) <= 1e-7 + 2e-6 * fabs(want), "%s: loss %.12g, reference %.12g", what, got, want);
    double h = 1e-5, worst = 0;
    for (size_t j = 0; j < V; j++) {
        double zj = z[j];
        z[j] = zj + h;
        double lp = ref_loss(c, z, tf ? t : NULL, target, V);
        z[j] = zj - h;
        double lm = ref_loss(c, z, tf ? t : NULL, target, V);
        z[j] = zj;
        double fd = (lp - lm) / (2 * h);
        double err = fabs((double)dz[j] - fd) / (1e-6 + fabs(fd));
        if (fabs((double)dz[j] - fd) > 2e-7 && err > worst) worst = err;
    }
    CHECK_MSG(worst < 1e-4, "%s: worst relative gradient error vs finite differences %.3g", what, worst);
    kd_workspace_free(&ws);
}

/* ---------------------------------------------------------------- cases */

static void test_hand_values(void) {
    /* teacher p = (1/2, 1/4, 1/4), student q = (1/4, 1/4, 1/2), from logits log p, log q */
    float t[3] = {logf(0.5f), logf(0.25f), logf(0.25f)};
    float z[3] = {logf(0.25f), logf(0.25f), logf(0.5f)};
    kd_workspace ws;
    CHECK_OK(kd_workspace_init(&ws, 3, 4));
    kd_params p = kd_params_defaults();
    double kd, ce, L;
    /* forward KL = 1/2 ln 2 + 1/4 ln(1/2) = ln2 / 4 */
    p.kind = KD_FKL;
    L = kd_row(&p, &ws.s[0], z, t, NULL, 0, 1, 3, NULL, 1, &kd, &ce);
    CHECK_NEAR(L, log(2.0) / 4, 1e-7, 0);
    CHECK_NEAR(ce, log(4.0), 1e-7, 0); /* -ln q[0] */
    /* reverse KL = 1/4 ln(1/2) + 1/2 ln 2 = ln2 / 4 */
    p.kind = KD_RKL;
    CHECK_NEAR(kd_row(&p, &ws.s[0], z, t, NULL, 0, 1, 3, NULL, 1, &kd, &ce), log(2.0) / 4, 1e-7, 0);
    /* JSD(1/2): m = (3/8, 1/4, 3/8);
     * KL(p‖m) = 1/2 ln(4/3) + 1/4 ln(2/3);  KL(q‖m) = 1/4 ln(2/3) + 1/2 ln(4/3) */
    p.kind = KD_JSD;
    p.beta = 0.5f;
    double jsd = 0.5 * (0.5 * log(4.0 / 3) + 0.25 * log(2.0 / 3)) + 0.5 * (0.25 * log(2.0 / 3) + 0.5 * log(4.0 / 3));
    CHECK_NEAR(kd_row(&p, &ws.s[0], z, t, NULL, 0, 1, 3, NULL, 1, &kd, &ce), jsd, 1e-7, 0);
    /* JSD(1/2) is symmetric in (p, q) */
    CHECK_NEAR(kd_row(&p, &ws.s[0], t, z, NULL, 0, 1, 3, NULL, 1, &kd, &ce), jsd, 1e-7, 0);
    /* β = 0 is forward KL, β = 1 reverse KL (TRL) */
    p.beta = 0.0f;
    CHECK_NEAR(kd_row(&p, &ws.s[0], z, t, NULL, 0, 1, 3, NULL, 1, &kd, &ce), log(2.0) / 4, 1e-7, 0);
    float t2[3] = {logf(0.7f), logf(0.2f), logf(0.1f)};
    p.kind = KD_RKL;
    double rkl = kd_row(&p, &ws.s[0], z, t2, NULL, 0, 1, 3, NULL, 1, &kd, &ce);
    p.kind = KD_JSD;
    p.beta = 1.0f;
    CHECK_NEAR(kd_row(&p, &ws.s[0], z, t2, NULL, 0, 1, 3, NULL, 1, &kd, &ce), rkl, 1e-9, 0);
    CHECK_NEAR(rkl, 0.25 * log(0.25 / 0.7) + 0.25 * log(0.25 / 0.2) + 0.5 * log(0.5 / 0.1), 1e-7, 0);
    /* α-mix: α·D + (1-α)·CE */
    p.kind = KD_FKL;
    p.alpha = 0.25f;
    CHECK_NEAR(kd_row(&p, &ws.s[0], z, t, NULL, 0, 1, 3, NULL, 1, &kd, &ce),
               0.25 * log(2.0) / 4 + 0.75 * log(4.0), 1e-7, 0);
    /* identical distributions: zero loss and zero gradient */
    p.alpha = 1.0f;
    float dz[3];
    CHECK_NEAR(kd_row(&p, &ws.s[0], t, t, NULL, 0, 1, 3, dz, 1, &kd, &ce), 0, 1e-9, 0);
    CHECK(fabsf(dz[0]) < 1e-7f && fabsf(dz[1]) < 1e-7f && fabsf(dz[2]) < 1e-7f);
    /* temperature 2: logits (0, ln 4) soften to (1/3, 2/3); τ² = 4 */
    p.temperature = 2.0f;
    float zt[2] = {0, 0}, tt[2] = {0, logf(4.0f)};
    kd_workspace ws2;
    CHECK_OK(kd_workspace_init(&ws2, 2, 2));
    double fkl_t = 4 * ((1.0 / 3) * log((1.0 / 3) / 0.5) + (2.0 / 3) * log((2.0 / 3) / 0.5));
    CHECK_NEAR(kd_row(&p, &ws2.s[0], zt, tt, NULL, -1, 1, 2, NULL, 1, &kd, &ce), fkl_t, 1e-7, 0);
    kd_workspace_free(&ws2);
    /* CE kind ignores the teacher: loss is -ln q[target] */
    p.kind = KD_CE;
    p.temperature = 1.0f;
    CHECK_NEAR(kd_row(&p, &ws.s[0], z, t, NULL, 2, 1, 3, NULL, 1, &kd, &ce), log(2.0), 1e-7, 0);
    kd_workspace_free(&ws);
}

static void test_full_vocab_gradients(void) {
    rt_rng r;
    rt_rng_seed(&r, 11);
    size_t V = 17;
    float z[64], t[64];
    const kd_kind kinds[] = {KD_CE, KD_FKL, KD_RKL, KD_JSD};
    const double betas[] = {0.0, 0.1, 0.5, 0.9, 1.0};
    const double taus[] = {1.0, 0.5, 2.0};
    const double alphas[] = {1.0, 0.3};
    char what[128];
    for (size_t ki = 0; ki < 4; ki++)
        for (size_t bi = 0; bi < 5; bi++) {
            if (kinds[ki] != KD_JSD && bi > 0) continue;
            for (size_t ti = 0; ti < 3; ti++)
                for (size_t ai = 0; ai < 2; ai++) {
                    rand_logits(&r, z, V, 2.0);
                    rand_logits(&r, t, V, 3.0);
                    ref_cfg c = {kinds[ki], betas[bi], taus[ti], alphas[ai], 0, 1};
                    int target = (int)rt_rng_below(&r, V);
                    snprintf(what, sizeof what, "full %s beta %.1f tau %.1f alpha %.1f",
                             kd_kind_name(kinds[ki]), betas[bi], taus[ti], alphas[ai]);
                    check_row(&c, z, t, target, V, what);
                }
        }
    /* no target (use_ce irrelevant) and on-policy rows (use_ce = 0) */
    rand_logits(&r, z, V, 2.0);
    rand_logits(&r, t, V, 3.0);
    ref_cfg c = {KD_JSD, 0.3, 1.5, 0.4, 0, 1};
    check_row(&c, z, t, -1, V, "full jsd no target");
    c.use_ce = 0;
    check_row(&c, z, t, 3, V, "full jsd use_ce=0");
}

static void test_topk_gradients(void) {
    rt_rng r;
    rt_rng_seed(&r, 12);
    size_t V = 23;
    float z[64], t[64];
    const kd_kind kinds[] = {KD_FKL, KD_RKL, KD_JSD};
    const size_t ks[] = {1, 4, 22, 23};
    char what[128];
    for (size_t ki = 0; ki < 3; ki++)
        for (size_t kk = 0; kk < 4; kk++)
            for (int rep = 0; rep < 3; rep++) {
                rand_logits(&r, z, V, 1.5);
                rand_logits(&r, t, V, 2.5);
                double tau = rep == 1 ? 2.0 : 1.0, alpha = rep == 2 ? 0.5 : 1.0;
                ref_cfg c = {kinds[ki], 0.4, tau, alpha, ks[kk], 1};
                snprintf(what, sizeof what, "top-%zu %s tau %.1f alpha %.1f", ks[kk], kd_kind_name(kinds[ki]),
                         tau, alpha);
                check_row(&c, z, t, (int)rt_rng_below(&r, V), V, what);
            }
    /* k = V (no rest bucket) gives exactly the full-vocabulary loss */
    rand_logits(&r, z, V, 1.5);
    rand_logits(&r, t, V, 2.5);
    kd_workspace ws;
    CHECK_OK(kd_workspace_init(&ws, V, V));
    kd_params p = kd_params_defaults();
    p.kind = KD_JSD;
    p.beta = 0.3f;
    int32_t ids[64];
    float lps[64], lpr;
    kd_topk_row row = {kd_topk_from_logits(t, V, 1.0f, V, ids, lps, &lpr), ids, lps, lpr};
    CHECK(row.k == V && isinf(lpr));
    double a = kd_row(&p, &ws.s[0], z, t, NULL, 0, 1, V, NULL, 1, NULL, NULL);
    double b = kd_row(&p, &ws.s[0], z, NULL, &row, 0, 1, V, NULL, 1, NULL, NULL);
    CHECK_NEAR(b, a, 1e-6, 1e-6);
    kd_workspace_free(&ws);
}

static void test_topk_select(void) {
    rt_rng r;
    rt_rng_seed(&r, 13);
    size_t V = 300;
    float x[300];
    int32_t ids[300];
    float lps[300], lpr;
    for (int rep = 0; rep < 20; rep++) {
        for (size_t j = 0; j < V; j++) x[j] = (float)((int)rt_rng_below(&r, 40)) * 0.25f; /* many ties */
        size_t k = 1 + rt_rng_below(&r, 80);
        float tau = rep % 2 ? 0.7f : 1.0f;
        CHECK(kd_topk_from_logits(x, V, tau, k, ids, lps, &lpr) == k);
        /* reference: selection sort by (value desc, id asc) */
        int used[300] = {0};
        double mx = -INFINITY, s = 0;
        for (size_t j = 0; j < V; j++) mx = fmax(mx, x[j] / (double)tau);
        for (size_t j = 0; j < V; j++) s += exp(x[j] / (double)tau - mx);
        double rest = 1.0;
        int ok = 1;
        for (size_t i = 0; i < k; i++) {
            int best = -1;
            for (size_t j = 0; j < V; j++)
                if (!used[j] && (best < 0 || x[j] > x[best])) best = (int)j;
            used[best] = 1;
            double lp = x[best] / (double)tau - mx - log(s);
            rest -= exp(lp);
            if (ids[i] != best || fabs(lps[i] - lp) > 1e-5) ok = 0;
        }
        CHECK_MSG(ok, "top-%zu selection differs from the reference sort", k);
        CHECK_NEAR(exp(lpr), rest, 1e-6, 1e-4);
    }
    /* a peaked row: the rest mass is tiny but still computed accurately */
    for (size_t j = 0; j < V; j++) x[j] = -60.0f;
    x[7] = 0.0f;
    x[9] = -1.0f;
    kd_topk_from_logits(x, V, 1.0f, 2, ids, lps, &lpr);
    double z0 = 1 + exp(-1.0) + 298 * exp(-60.0);
    CHECK(ids[0] == 7 && ids[1] == 9);
    CHECK_NEAR(lpr, log(298 * exp(-60.0) / z0), 1e-4, 0);
}

static void test_batch(void) {
    rt_rng r;
    rt_rng_seed(&r, 14);
    size_t N = 37, V = 29;
    float *lg = malloc(N * V * sizeof(float)), *lg2 = malloc(N * V * sizeof(float));
    float *tl = malloc(N * V * sizeof(float));
    int32_t tg[37];
    for (size_t i = 0; i < N * V; i++) {
        lg[i] = (float)rt_rng_normal(&r);
        tl[i] = (float)(2 * rt_rng_normal(&r));
    }
    for (size_t i = 0; i < N; i++) tg[i] = i % 5 == 0 ? -1 : (int32_t)rt_rng_below(&r, V);
    kd_params p = kd_params_defaults();
    p.kind = KD_JSD;
    p.beta = 0.7f;
    p.alpha = 0.6f;
    p.temperature = 1.3f;
    kd_workspace ws;
    CHECK_OK(kd_workspace_init(&ws, V, 8));
    /* mean over counted rows of the per-row loss, gradient = row gradient / count */
    double sum = 0;
    size_t cnt = 0;
    float dz[29];
    float *row_grad = malloc(N * V * sizeof(float));
    for (size_t i = 0; i < N; i++) {
        if (tg[i] < 0) continue;
        cnt++;
    }
    for (size_t i = 0; i < N; i++) {
        if (tg[i] < 0) continue;
        sum += kd_row(&p, &ws.s[0], lg + i * V, tl + i * V, NULL, tg[i], 1, V, dz, 1.0 / (double)cnt, NULL, NULL);
        memcpy(row_grad + i * V, dz, sizeof dz);
    }
    memcpy(lg2, lg, N * V * sizeof(float));
    kd_stats st;
    CHECK_OK(kd_loss_batch(&p, &ws, lg2, tl, NULL, tg, 1, N, V, 1, &st));
    CHECK(st.n_rows == cnt);
    CHECK_NEAR(st.loss, sum / (double)cnt, 1e-12, 1e-12);
    int same = 1;
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < V; j++) {
            float want = tg[i] < 0 ? 0.0f : row_grad[i * V + j];
            if (lg2[i * V + j] != want) same = 0;
        }
    CHECK_MSG(same, "batch gradient differs from the per-row gradients / count (ignored rows must be 0)");
#ifdef _OPENMP
    /* bit-identical with 1 and 3 threads */
    int nt = omp_get_max_threads();
    float *lg3 = malloc(N * V * sizeof(float));
    memcpy(lg3, lg, N * V * sizeof(float));
    omp_set_num_threads(1);
    kd_workspace ws1;
    CHECK_OK(kd_workspace_init(&ws1, V, 8));
    kd_stats st1;
    CHECK_OK(kd_loss_batch(&p, &ws1, lg3, tl, NULL, tg, 1, N, V, 1, &st1));
    CHECK(st1.loss == st.loss && memcmp(lg3, lg2, N * V * sizeof(float)) == 0);
    kd_workspace_free(&ws1);
    omp_set_num_threads(nt);
    free(lg3);
#endif
    /* malformed input is refused, naming the row */
    int32_t bad_ids[2] = {3, 99};
    float bad_lp[2] = {-1, -2};
    kd_topk_row rows[37];
    memset(rows, 0, sizeof rows);
    rows[4] = (kd_topk_row){2, bad_ids, bad_lp, -3.0f};
    CHECK(kd_loss_batch(&p, &ws, lg2, NULL, rows, tg, 1, N, V, 1, &st) == -1 &&
          strstr(rt_errmsg(), "row 4") && strstr(rt_errmsg(), "99"));
    p.beta = 1.5f;
    CHECK(kd_params_validate(&p) == -1 && strstr(rt_errmsg(), "--beta"));
    kd_kind kk;
    CHECK(kd_kind_parse("kl", &kk) == -1 && strstr(rt_errmsg(), "ce, fkl, rkl, jsd"));
    CHECK(kd_kind_parse("rkl", &kk) == 0 && kk == KD_RKL);
    kd_workspace_free(&ws);
    free(lg);
    free(lg2);
    free(tl);
    free(row_grad);
}

TEST_MAIN("distill_loss", TEST_CASE(test_hand_values), TEST_CASE(test_full_vocab_gradients),
          TEST_CASE(test_topk_gradients), TEST_CASE(test_topk_select), TEST_CASE(test_batch))
