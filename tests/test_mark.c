/* test_mark.c — the watermark room against independent references:
 *  - SipHash-2-4 against the published test vector and libsodium's crypto_shorthash;
 *  - the PRF's green fraction ~ gamma over many contexts (KGW and SelfHash), key sensitivity;
 *  - the biased sampler: its distribution equals the closed-form tilted softmax, and the
 *    empirical green rate matches sum_G p e^d / (sum_G p e^d + sum_R p) within 5 sigma;
 *  - Gumbel-max: deterministic given the window, distortion-free (frequencies = p over many
 *    windows), and the mean score of the chosen token equals sum_v p_v H(1/p_v) (closed form);
 *  - exact binomial and gamma tails against direct sums in long double written here;
 *  - dedup, prompts and exclusions on crafted sequences, counted by hand;
 *  - null calibration: p-values of key-independent text are uniform (KS), and watermarked
 *    sequences are detected;
 *  - key files, config JSON and option resolution, with their error messages. */
#include <sodium.h>
#include <unistd.h>

#include "base/base.h"
#include "mark/mark.h"
#include "mark/mark_internal.h"
#include "model/model.h"
#include "testlib.h"
#include "tokenizer/tokenizer.h"

static mark_ctx make_ctx(mark_scheme s, double gamma, double delta, size_t h, uint64_t seed) {
    mark_params p = mark_params_defaults(s);
    p.gamma = gamma;
    p.delta = delta;
    p.context = h;
    mark_key k;
    mark_key_from_seed(&k, seed);
    mark_ctx c;
    if (mark_ctx_init(&c, &p, &k)) fprintf(stderr, "mark_ctx_init: %s\n", rt_errmsg());
    return c;
}

/* ---------------------------------------------------------------- PRF */

static void test_siphash(void) {
    /* Aumasson & Bernstein, SipHash paper appendix A: key 00..0f, message 00..0e */
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++) msg[i] = (uint8_t)i;
    CHECK(mark_siphash24(key, msg, 15) == 0xa129ca6149be45e5ull);
    CHECK_OK(sodium_init() < 0 ? -1 : 0);
    rt_rng r;
    rt_rng_seed(&r, 5);
    for (size_t len = 0; len <= 40; len++) {
        for (int t = 0; t < 20; t++) {
            for (size_t i = 0; i < 16; i++) key[i] = (uint8_t)rt_rng_u32(&r);
            for (size_t i = 0; i < len; i++) msg[i] = (uint8_t)rt_rng_u32(&r);
            unsigned char out[8];
            crypto_shorthash(out, msg, len, key);
            uint64_t ref = 0;
            for (int i = 7; i >= 0; i--) ref = (ref << 8) | out[i];
            CHECK(mark_siphash24(key, msg, len) == ref);
            if (len % 4 == 0) { /* the word path equals the byte path */
                uint64_t k2[2] = {0, 0};
                for (int i = 7; i >= 0; i--) k2[0] = (k2[0] << 8) | key[i], k2[1] = (k2[1] << 8) | key[8 + i];
                uint32_t w[10];
                for (size_t i = 0; i < len / 4; i++)
                    w[i] = (uint32_t)msg[4 * i] | (uint32_t)msg[4 * i + 1] << 8 | (uint32_t)msg[4 * i + 2] << 16 |
                           (uint32_t)msg[4 * i + 3] << 24;
                CHECK(mark_siphash_words(k2, w, len / 4) == ref);
            }
        }
    }
}

static void test_green_fraction(void) {
    double gammas[] = {0.1, 0.25, 0.5};
    mark_scheme schemes[] = {MARK_KGW, MARK_KGW_SELFHASH};
    for (size_t si = 0; si < 2; si++)
        for (size_t gi = 0; gi < 3; gi++)
            for (size_t h = 1; h <= 3; h += 2) {
                mark_ctx c = make_ctx(schemes[si], gammas[gi], 2.0, h, 100 + gi);
                CHECK(mark_ctx_gamma(&c) == gammas[gi] || fabs(mark_ctx_gamma(&c) - gammas[gi]) < 1e-18);
                /* 300 windows x 512 candidates; for SelfHash count distinct score keys only */
                rt_rng r;
                rt_rng_seed(&r, 9 + h);
                size_t n = 0, g = 0;
                mark_scorer s;
                CHECK_OK(mark_scorer_init(&s, &c));
                for (int wi = 0; wi < 300; wi++) {
                    int32_t win[MARK_MAX_CONTEXT];
                    for (size_t i = 0; i < h; i++) win[i] = (int32_t)rt_rng_below(&r, 5000);
                    for (int32_t v = 0; v < 512; v++) {
                        n++;
                        g += (size_t)mark_is_green(&c, win, v);
                    }
                }
                double sd = sqrt(n * gammas[gi] * (1 - gammas[gi]));
                if (schemes[si] == MARK_KGW)
                    CHECK_MSG(fabs(g - n * gammas[gi]) < 5 * sd, "kgw gamma %.2f h %zu: %zu/%zu green", gammas[gi], h,
                              g, n);
                else {
                    /* SelfHash pairs share seeds; the unbiased count is over distinct score keys */
                    rt_rng_seed(&r, 9 + h);
                    for (int wi = 0; wi < 300; wi++) {
                        int32_t seq[MARK_MAX_CONTEXT + 1];
                        for (size_t i = 0; i < h; i++) seq[i] = (int32_t)rt_rng_below(&r, 5000);
                        for (int32_t v = 0; v < 512; v++) {
                            seq[h] = v;
                            CHECK_OK(mark_scorer_add(&s, seq, h + 1, h));
                        }
                    }
                    double sn = (double)s.scored, sd2 = sqrt(sn * gammas[gi] * (1 - gammas[gi]));
                    CHECK_MSG(fabs((double)s.green - sn * gammas[gi]) < 5 * sd2, "selfhash gamma %.2f h %zu: %zu/%zu",
                              gammas[gi], h, s.green, s.scored);
                    CHECK(s.scored > 1000);
                }
                mark_scorer_free(&s);
            }
    /* the green list depends on the window and the key: agreement ~ g^2 + (1-g)^2 */
    mark_ctx a = make_ctx(MARK_KGW, 0.25, 2, 1, 1), b = make_ctx(MARK_KGW, 0.25, 2, 1, 2);
    size_t agree_key = 0, agree_win = 0, n = 0;
    for (int32_t w = 0; w < 200; w++)
        for (int32_t v = 0; v < 500; v++) {
            int32_t w2 = w + 1000;
            agree_key += mark_is_green(&a, &w, v) == mark_is_green(&b, &w, v);
            agree_win += mark_is_green(&a, &w, v) == mark_is_green(&a, &w2, v);
            n++;
        }
    double e = 0.25 * 0.25 + 0.75 * 0.75, sd = sqrt(n * e * (1 - e));
    CHECK_MSG(fabs(agree_key - n * e) < 5 * sd, "key agreement %zu of %zu", agree_key, n);
    CHECK_MSG(fabs(agree_win - n * e) < 5 * sd, "window agreement %zu of %zu", agree_win, n);
    /* green mask equals per-token mark_is_green */
    int32_t hist[3] = {17, 4, 99};
    uint8_t mask[300];
    mark_ctx sh = make_ctx(MARK_KGW_SELFHASH, 0.25, 2, 2, 3);
    mark_green_mask(&a, hist, 3, 300, mask);
    int same = 1;
    for (int32_t v = 0; v < 300; v++) same &= mask[v] == mark_is_green(&a, hist + 2, v);
    mark_green_mask(&sh, hist, 3, 300, mask);
    for (int32_t v = 0; v < 300; v++) same &= mask[v] == mark_is_green(&sh, hist + 1, v);
    CHECK(same);
    /* before the start of a sequence the window is padded */
    int32_t pad[2] = {MARK_PAD, 17};
    mark_green_mask(&sh, hist, 1, 300, mask);
    same = 1;
    for (int32_t v = 0; v < 300; v++) same &= mask[v] == mark_is_green(&sh, pad, v);
    CHECK(same);
}

/* ---------------------------------------------------------------- sampler */

static void test_kgw_sampler(void) {
    enum { V = 64 };
    float base[V], lg[V];
    rt_rng r;
    rt_rng_seed(&r, 3);
    for (int i = 0; i < V; i++) base[i] = (float)(2.0 * rt_rng_normal(&r));
    int32_t hist[4] = {7, 8, 9, 10};
    double temps[] = {1.0, 0.7};
    double deltas[] = {2.0, 1.0};
    for (int ti = 0; ti < 2; ti++) {
        mark_ctx c = make_ctx(MARK_KGW, 0.25, deltas[ti], 1, 11);
        uint8_t green[V];
        mark_green_mask(&c, hist, 4, V, green);
        double T = temps[ti], zr = 0, zg = 0, pg_closed;
        for (int i = 0; i < V; i++) {
            double e = exp((base[i] + (green[i] ? deltas[ti] : 0)) / T);
            if (green[i]) zg += e;
            else zr += e;
        }
        pg_closed = zg / (zg + zr);
        sampler s;
        sampler_params sp = {.temperature = (float)T, .top_k = 0, .top_p = 1, .seed = 77};
        CHECK_OK(sampler_init(&s, V, &sp));
        CHECK_OK(mark_attach(&s, &c));
        memcpy(lg, base, sizeof lg);
        sampler_sample(&s, lg, hist, 4);
        const float *q = sampler_last_probs(&s);
        for (int i = 0; i < V; i++)
            CHECK_NEAR(q[i], exp((base[i] + (green[i] ? deltas[ti] : 0)) / T) / (zg + zr), 1e-7, 1e-5);
        size_t N = 40000, ng = 0;
        for (size_t it = 0; it < N; it++) {
            memcpy(lg, base, sizeof lg);
            ng += green[sampler_sample(&s, lg, hist, 4)];
        }
        double sd = sqrt(N * pg_closed * (1 - pg_closed));
        CHECK_MSG(fabs(ng - N * pg_closed) < 5 * sd, "green rate %.4f vs closed form %.4f", (double)ng / N, pg_closed);
        sampler_free(&s);
    }
    /* averaged over contexts with uniform p and large V, the green rate tends to the
     * paper's g e^d / (g e^d + 1 - g) */
    {
        enum { VU = 4096 };
        static float u[VU];
        mark_ctx c = make_ctx(MARK_KGW, 0.25, 2.0, 1, 12);
        sampler s;
        sampler_params sp = {.temperature = 1, .top_k = 0, .top_p = 1, .seed = 5};
        CHECK_OK(sampler_init(&s, VU, &sp));
        CHECK_OK(mark_attach(&s, &c));
        size_t N = 3000, ng = 0;
        for (size_t it = 0; it < N; it++) {
            for (int i = 0; i < VU; i++) u[i] = 0;
            int32_t h1 = (int32_t)it;
            int32_t t = sampler_sample(&s, u, &h1, 1);
            ng += (size_t)mark_is_green(&c, &h1, t);
        }
        double e2 = exp(2.0), pg = 0.25 * e2 / (0.25 * e2 + 0.75);
        /* per-context green counts vary (binomial); that adds < 1% to the rate's spread */
        double sd = sqrt(N * pg * (1 - pg)) * 1.1;
        CHECK_MSG(fabs(ng - N * pg) < 5 * sd, "uniform-p green rate %.4f vs %.4f", (double)ng / N, pg);
        sampler_free(&s);
    }
}

/* harmonic number H(m) = psi(m+1) + Euler gamma, for integer m */
static double harmonic(int m) {
    double s = 0;
    for (int i = 1; i <= m; i++) s += 1.0 / i;
    return s;
}

static void test_gumbel_sampler(void) {
    enum { V = 8 };
    /* probabilities 1/2, 1/4, 1/4 on ids 1, 4, 6 */
    float lg[V], base[V];
    for (int i = 0; i < V; i++) base[i] = -INFINITY;
    base[1] = logf(0.5f);
    base[4] = logf(0.25f);
    base[6] = logf(0.25f);
    mark_ctx c = make_ctx(MARK_GUMBEL, 0.25, 0, 2, 21);
    sampler s;
    sampler_params sp = {.temperature = 1, .top_k = 0, .top_p = 1, .seed = 1};
    CHECK_OK(sampler_init(&s, V, &sp));
    CHECK_OK(mark_attach(&s, &c));
    size_t cnt[V] = {0}, N = 30000;
    double score = 0, score2 = 0;
    int deterministic = 1;
    for (size_t it = 0; it < N; it++) {
        int32_t hist[3] = {5, (int32_t)(it / 200), (int32_t)(it % 200)};
        memcpy(lg, base, sizeof lg);
        int32_t t = sampler_sample(&s, lg, hist, 3);
        memcpy(lg, base, sizeof lg);
        deterministic &= sampler_sample(&s, lg, hist, 3) == t;
        cnt[t]++;
        double x = -log1p(-mark_gumbel_r(&c, hist + 1, t));
        score += x;
        score2 += x * x;
    }
    CHECK(deterministic);
    CHECK(cnt[0] + cnt[2] + cnt[3] + cnt[5] + cnt[7] == 0);
    double p[3] = {0.5, 0.25, 0.25};
    size_t ids[3] = {1, 4, 6};
    for (int i = 0; i < 3; i++) {
        double sd = sqrt(N * p[i] * (1 - p[i]));
        CHECK_MSG(fabs(cnt[ids[i]] - N * p[i]) < 5 * sd, "id %zu: %zu of %zu (p %.2f)", ids[i], cnt[ids[i]], N, p[i]);
    }
    /* E[-ln(1 - r_chosen)] = sum_v p_v H(1/p_v) (r_chosen = U^p_v for the winner) */
    double expect = 0.5 * harmonic(2) + 0.25 * harmonic(4) + 0.25 * harmonic(4);
    double mean = score / N, var = score2 / N - mean * mean;
    CHECK_MSG(fabs(mean - expect) < 5 * sqrt(var / N), "mean score %.4f vs %.4f", mean, expect);
    /* a uniform distribution over 4 gives H(4) */
    for (int i = 0; i < V; i++) base[i] = i < 4 ? 0.0f : -INFINITY;
    score = score2 = 0;
    for (size_t it = 0; it < N; it++) {
        int32_t hist[2] = {(int32_t)(it / 300), (int32_t)(it % 300)};
        memcpy(lg, base, sizeof lg);
        int32_t t = sampler_sample(&s, lg, hist, 2);
        double x = -log1p(-mark_gumbel_r(&c, hist, t));
        score += x;
        score2 += x * x;
    }
    mean = score / N;
    var = score2 / N - mean * mean;
    CHECK_MSG(fabs(mean - harmonic(4)) < 5 * sqrt(var / N), "uniform-4 mean score %.4f vs H4 %.4f", mean, harmonic(4));
    sampler_free(&s);
    /* a sampler with a selector already refuses Gumbel */
    CHECK_OK(sampler_init(&s, V, &sp));
    CHECK_OK(mark_attach(&s, &c));
    CHECK(mark_attach(&s, &c) == -1 && strstr(rt_errmsg(), "selector"));
    sampler_free(&s);
}

/* the sampler's masking filter (mark_generate's) keeps exactly the candidate set of its draw */
static void test_filter_matches_sampler(void) {
    enum { V = 300 };
    static float lg[V], f[V];
    rt_rng r;
    rt_rng_seed(&r, 8);
    int same = 1;
    for (int t = 0; t < 300; t++) {
        size_t k = (size_t)(t % 5 == 0 ? 0 : 1 + rt_rng_below(&r, 60));
        float top_p = t % 3 == 0 ? 1.0f : 0.5f + 0.5f * rt_rng_float(&r), temp = 0.3f + 1.5f * rt_rng_float(&r);
        for (int i = 0; i < V; i++) lg[i] = (float)(2 * rt_rng_normal(&r));
        if (t % 7 == 0) lg[5] = lg[9] = lg[11]; /* ties are broken by id */
        sampler s;
        sampler_params sp = {.temperature = temp, .top_k = k, .top_p = top_p, .seed = 1};
        CHECK_OK(sampler_init(&s, V, &sp));
        memcpy(f, lg, sizeof f);
        sampler_sample(&s, f, NULL, 0);
        const float *q = sampler_last_probs(&s);
        memcpy(f, lg, sizeof f);
        CHECK_OK(sampler_filter_logits(f, V, k, top_p, temp));
        double z = 0, mx = -INFINITY;
        for (int i = 0; i < V; i++) mx = fmax(mx, f[i]);
        for (int i = 0; i < V; i++) z += exp((f[i] - mx) / temp);
        for (int i = 0; i < V; i++) {
            same &= (q[i] > 0) == (f[i] > -INFINITY);
            if (q[i] > 0) same &= fabs(q[i] - exp((f[i] - mx) / temp) / z) < 1e-5;
        }
        sampler_free(&s);
    }
    CHECK(same);
}

/* ---------------------------------------------------------------- statistics */

/* ln P(Bin(n,p) >= k) by direct summation of C(n,j) p^j q^(n-j) in long double, with
 * C(n, j) built multiplicatively (no lgamma, no saddle point). For n <= 1000. */
static long double ref_binom_sf(unsigned k, unsigned n, long double p) {
    long double sum = 0, c = 1; /* C(n, 0) */
    for (unsigned j = 0; j <= n; j++) {
        if (j > 0) c = c * (long double)(n - j + 1) / (long double)j;
        if (j >= k) sum += c * powl(p, j) * powl(1 - p, n - j);
    }
    return sum;
}

static void test_binomial_tail(void) {
    /* small cases by hand: P(Bin(4, 1/2) >= 3) = 5/16; P(Bin(3, 1/4) >= 3) = 1/64 */
    CHECK_NEAR(exp(mark_binom_log_sf(3, 4, 0.5)), 5.0 / 16, 0, 1e-14);
    CHECK_NEAR(exp(mark_binom_log_sf(3, 3, 0.25)), 1.0 / 64, 0, 1e-14);
    CHECK(mark_binom_log_sf(0, 10, 0.3) == 0);
    CHECK(isinf(mark_binom_log_sf(11, 10, 0.3)));
    unsigned ns[] = {1, 2, 5, 10, 25, 60, 200, 500, 1000};
    double ps[] = {0.25, 0.1, 0.5, 0.9, 0.001};
    double worst = 0;
    for (size_t a = 0; a < RT_ARRAY_LEN(ns); a++)
        for (size_t b = 0; b < RT_ARRAY_LEN(ps); b++)
            for (unsigned k = 0; k <= ns[a]; k += 1 + ns[a] / 40) {
                long double ref = ref_binom_sf(k, ns[a], ps[b]);
                if (ref < 1e-300L) continue;
                double got = exp(mark_binom_log_sf(k, ns[a], ps[b]));
                double rel = fabs(got - (double)ref) / (double)ref;
                if (rel > worst) worst = rel;
                CHECK_MSG(rel < 1e-11, "n %u k %u p %g: %.17g vs %.17Lg", ns[a], k, ps[b], got, ref);
            }
    fprintf(stderr, "  binomial tail: worst relative error %.2e\n", worst);
    /* far tails keep their digits in log space: P(Bin(1e6, 1/4) >= 1e6) = 4^-1e6 */
    CHECK_NEAR(mark_binom_log_sf(1000000, 1000000, 0.25), 1000000 * log(0.25), 0, 1e-12);
    /* the lower branch: complement identity P(X >= k) + P(X <= k-1) = 1, for n = 10^5 */
    double l1 = mark_binom_log_sf(25001, 100000, 0.25), l0 = mark_binom_log_sf(25000, 100000, 0.25);
    CHECK(l1 < l0 && l0 < 0 && exp(l0) > 0.49 && exp(l0) < 0.51);
}

static long double ref_gamma_sf(unsigned n, long double s) {
    long double term = expl(-s), sum = 0;
    for (unsigned j = 0; j < n; j++) {
        if (j > 0) term *= s / j;
        sum += term;
    }
    return sum;
}

static void test_gamma_tail(void) {
    CHECK_NEAR(exp(mark_gamma_log_sf(1, 3.0)), exp(-3.0), 0, 1e-14);
    CHECK_NEAR(exp(mark_gamma_log_sf(2, 3.0)), exp(-3.0) * 4, 0, 1e-14);
    CHECK(mark_gamma_log_sf(5, 0) == 0);
    unsigned ns[] = {1, 3, 10, 50, 200, 600};
    double worst = 0;
    for (size_t a = 0; a < RT_ARRAY_LEN(ns); a++)
        for (double f = 0.2; f < 3.0; f += 0.15) {
            double s = f * ns[a];
            long double ref = ref_gamma_sf(ns[a], s);
            if (ref < 1e-300L) continue;
            double got = exp(mark_gamma_log_sf(ns[a], s));
            double rel = fabs(got - (double)ref) / (double)ref;
            if (rel > worst) worst = rel;
            CHECK_MSG(rel < 1e-11, "n %u s %g: %.17g vs %.17Lg", ns[a], s, got, ref);
        }
    fprintf(stderr, "  gamma tail: worst relative error %.2e\n", worst);
}

static void test_ks(void) {
    double p[4] = {0.9, 0.1, 0.6, 0.35}, pv;
    /* sorted .1 .35 .6 .9: D = max(.1, .25-.1, .35-.25, .5-.35, .6-.5, .75-.6, .9-.75, 1-.9) = .15 */
    double d = mark_ks_uniform(p, 4, &pv);
    CHECK_NEAR(d, 0.15, 1e-12, 0);
    CHECK(pv > 0.9);
    double q[50];
    for (int i = 0; i < 50; i++) q[i] = 0.001 * i; /* all below 0.05: not uniform */
    mark_ks_uniform(q, 50, &pv);
    CHECK(pv < 1e-10);
}

/* ---------------------------------------------------------------- scoring */

static void test_dedup_crafted(void) {
    mark_ctx c = make_ctx(MARK_KGW, 0.25, 2, 1, 31);
    mark_scorer s;
    CHECK_OK(mark_scorer_init(&s, &c));
    /* 5 7 5 7 5 7: positions 1..5 give (5,7) (7,5) (5,7) (7,5) (5,7): 2 scored, 3 repeats */
    int32_t a[] = {5, 7, 5, 7, 5, 7};
    CHECK_OK(mark_scorer_add(&s, a, 6, 0));
    CHECK(s.positions == 6 && s.no_window == 1 && s.scored == 2 && s.duplicates == 3);
    int32_t w5 = 5, w7 = 7;
    CHECK(s.green == (size_t)(mark_is_green(&c, &w5, 7) + mark_is_green(&c, &w7, 5)));
    /* a second text: (7,5) again is a repeat across texts; (5,5) and (5,9) are new */
    int32_t b[] = {7, 5, 5, 9};
    CHECK_OK(mark_scorer_add(&s, b, 4, 1));
    CHECK(s.scored == 4 && s.duplicates == 4 && s.no_window == 1);
    /* a prompt: positions before `from` are context, never scored; its last token is the
     * first scored position's window */
    mark_scorer_reset(&s);
    int32_t pc[] = {1, 2, 3, 4, 5};
    CHECK_OK(mark_scorer_add(&s, pc, 5, 3)); /* scores (3,4), (4,5) */
    CHECK(s.positions == 2 && s.scored == 2 && s.no_window == 0);
    mark_scorer_free(&s);

    /* h = 2: windows are pairs; (1 2 3) and (9 2 3) are different tuples */
    c = make_ctx(MARK_KGW, 0.25, 2, 2, 31);
    CHECK_OK(mark_scorer_init(&s, &c));
    int32_t d1[] = {1, 2, 3, 9, 2, 3, 1, 2, 3};
    CHECK_OK(mark_scorer_add(&s, d1, 9, 0));
    /* positions 2..8: (1,2,3) (2,3,9) (3,9,2) (9,2,3) (2,3,1) (3,1,2) (1,2,3)=repeat */
    CHECK(s.no_window == 2 && s.scored == 6 && s.duplicates == 1);
    mark_scorer_free(&s);

    /* exclusion by tuples vs by windows, h = 1. Reference (prompt) text: 4 5 6 */
    c = make_ctx(MARK_KGW, 0.25, 2, 1, 31);
    int32_t ref[] = {4, 5, 6};
    int32_t out[] = {4, 5, 4, 6, 5, 6, 7};
    /* tuples of out: (4,5)x (5,4) (4,6) (6,5) (5,6)x (6,7); x = in ref */
    CHECK_OK(mark_scorer_init(&s, &c));
    CHECK_OK(mark_scorer_exclude(&s, ref, 3, MARK_EXCLUDE_TUPLES));
    CHECK_OK(mark_scorer_add(&s, out, 7, 0));
    CHECK(s.excluded == 2 && s.scored == 4);
    CHECK(mark_scorer_exclude(&s, ref, 3, MARK_EXCLUDE_WINDOWS) == -1 && strstr(rt_errmsg(), "mixed"));
    mark_scorer_free(&s);
    /* windows of ref (with a full window): 4, 5 -> every tuple whose window is 4 or 5 goes */
    CHECK_OK(mark_scorer_init(&s, &c));
    CHECK_OK(mark_scorer_exclude(&s, ref, 3, MARK_EXCLUDE_WINDOWS));
    CHECK_OK(mark_scorer_add(&s, out, 7, 0));
    /* (4,5)x (5,4)x (4,6)x (6,5) (5,6)x (6,7) */
    CHECK(s.excluded == 4 && s.scored == 2);
    mark_scorer_free(&s);

    /* reading mode: predictions scored against the text's windows */
    CHECK_OK(mark_scorer_init(&s, &c));
    int32_t text[] = {10, 11, 12, 13};
    int32_t pred[] = {0, 20, 20, 20}; /* pred[i] is the guess for text[i] */
    CHECK_OK(mark_scorer_add_predictions(&s, text, pred, 4, 1));
    CHECK(s.scored == 3 && s.duplicates == 0);
    int32_t w10 = 10, w11 = 11, w12 = 12;
    CHECK(s.green ==
          (size_t)(mark_is_green(&c, &w10, 20) + mark_is_green(&c, &w11, 20) + mark_is_green(&c, &w12, 20)));
    mark_scorer_free(&s);

    /* SelfHash dedups on (seed, token): count distinct keys independently */
    c = make_ctx(MARK_KGW_SELFHASH, 0.25, 2, 1, 32);
    CHECK_OK(mark_scorer_init(&s, &c));
    int32_t seq[400];
    rt_rng r;
    rt_rng_seed(&r, 4);
    for (int i = 0; i < 400; i++) seq[i] = (int32_t)rt_rng_below(&r, 12);
    CHECK_OK(mark_scorer_add(&s, seq, 400, 0));
    mark_score_key keys[400];
    size_t nk = 0, ng = 0;
    for (int i = 1; i < 400; i++) {
        mark_score_key k;
        mark_score_key_of(&c, seq + i - 1, seq[i], &k);
        int found = 0;
        for (size_t j = 0; j < nk && !found; j++) found = !memcmp(&keys[j], &k, sizeof k);
        if (!found) {
            keys[nk++] = k;
            ng += (size_t)mark_is_green(&c, seq + i - 1, seq[i]);
        }
    }
    CHECK(s.scored == nk && s.green == ng && nk < 144); /* fewer than the 144 distinct pairs */
    mark_scorer_free(&s);
}

/* a toy "language model": a fixed pseudo-random distribution per (previous token, position) */
static void toy_logits(int32_t prev, int pos, float *lg, size_t V) {
    rt_rng r;
    rt_rng_seed(&r, 1000 + (uint64_t)prev * 7919 + (uint64_t)pos);
    for (size_t i = 0; i < V; i++) lg[i] = (float)(1.5 * rt_rng_normal(&r));
}

static void test_detection_calibration(void) {
    enum { V = 500, L = 200, N = 300 };
    mark_ctx c = make_ctx(MARK_KGW, 0.25, 2, 1, 41);
    /* null: text from the toy model without the watermark -> uniform p-values */
    sampler s;
    sampler_params sp = {.temperature = 1, .top_k = 0, .top_p = 1, .seed = 3};
    CHECK_OK(sampler_init(&s, V, &sp));
    static float lg[V];
    static int32_t seq[L + 1];
    double pv[N];
    size_t fp = 0;
    for (int t = 0; t < N; t++) {
        seq[0] = (int32_t)(t % V);
        for (int i = 1; i <= L; i++) {
            toy_logits(seq[i - 1], i, lg, V);
            seq[i] = sampler_sample(&s, lg, seq, (size_t)i);
        }
        mark_scorer sc;
        mark_result res;
        CHECK_OK(mark_scorer_init(&sc, &c));
        CHECK_OK(mark_scorer_add(&sc, seq, L + 1, 1));
        mark_scorer_result(&sc, &res);
        mark_scorer_free(&sc);
        pv[t] = res.p_value;
        fp += res.p_value < 0.01;
    }
    double ksp;
    double d = mark_ks_uniform(pv, N, &ksp);
    /* a discrete test's p-values are super-uniform; KS still must not reject strongly */
    CHECK_MSG(ksp > 1e-3, "null p-values not uniform: D %.3f p %.2g", d, ksp);
    CHECK_MSG(fp <= 9, "%zu of %d null texts below 0.01", fp, N);
    sampler_free(&s);
    /* watermarked: every 200-token text is detected at 1e-3 */
    CHECK_OK(sampler_init(&s, V, &sp));
    CHECK_OK(mark_attach(&s, &c));
    size_t det = 0;
    for (int t = 0; t < 50; t++) {
        seq[0] = (int32_t)t;
        for (int i = 1; i <= L; i++) {
            toy_logits(seq[i - 1], i, lg, V);
            seq[i] = sampler_sample(&s, lg, seq, (size_t)i);
        }
        mark_scorer sc;
        mark_result res;
        CHECK_OK(mark_scorer_init(&sc, &c));
        CHECK_OK(mark_scorer_add(&sc, seq, L + 1, 1));
        mark_scorer_result(&sc, &res);
        mark_scorer_free(&sc);
        det += res.log_p < log(1e-3);
        /* result fields agree with their definitions */
        double g = 0.25, n = (double)res.scored;
        CHECK_NEAR(res.z, (res.green - g * n) / sqrt(n * g * (1 - g)), 1e-12, 1e-12);
        CHECK_NEAR(res.log_p, mark_binom_log_sf(res.green, res.scored, g), 0, 1e-15);
    }
    CHECK_MSG(det == 50, "detected %zu of 50", det);
    sampler_free(&s);
    /* Gumbel: p-value of the null is uniform-ish, and of watermarked text tiny */
    mark_ctx gc = make_ctx(MARK_GUMBEL, 0.25, 0, 1, 42);
    CHECK_OK(sampler_init(&s, V, &sp));
    CHECK_OK(mark_attach(&s, &gc));
    det = 0;
    for (int t = 0; t < 20; t++) {
        seq[0] = (int32_t)t;
        for (int i = 1; i <= L; i++) {
            toy_logits(seq[i - 1], i, lg, V);
            seq[i] = sampler_sample(&s, lg, seq, (size_t)i);
        }
        mark_scorer sc;
        mark_result res;
        CHECK_OK(mark_scorer_init(&sc, &gc));
        CHECK_OK(mark_scorer_add(&sc, seq, L + 1, 1));
        mark_scorer_result(&sc, &res);
        mark_scorer_free(&sc);
        det += res.log_p < log(1e-3);
        CHECK_NEAR(res.log_p, mark_gamma_log_sf(res.scored, res.score), 0, 1e-15);
    }
    CHECK_MSG(det == 20, "gumbel detected %zu of 20", det);
    sampler_free(&s);
}

/* Text from a generation whose token sequence is not the canonical BPE of its text: the
 * detector re-tokenizes, some tokens change, the watermark is still found. */
static void test_retokenized_detection(void) {
    static const char corpus[] =
        "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. "
        "And God said, Let there be light: and there was light. And God saw the light, that it was good: and "
        "God divided the light from the darkness. And God called the light Day, and the darkness he called "
        "Night. And the evening and the morning were the first day.";
    tokenizer *tok = NULL;
    CHECK_OK(tokenizer_train(&tok, corpus, sizeof corpus - 1, 256 + TOKENIZER_N_SPECIAL + 60));
    if (!tok) return;
    size_t V = tokenizer_vocab_size(tok);
    mark_ctx c = make_ctx(MARK_KGW, 0.25, 4.0, 1, 51);
    sampler s;
    sampler_params sp = {.temperature = 1, .top_k = 0, .top_p = 1, .seed = 9};
    CHECK_OK(sampler_init(&s, V, &sp));
    CHECK_OK(mark_attach(&s, &c));
    enum { L = 300 };
    int32_t gen[L + 1];
    float *lg = malloc(V * sizeof *lg);
    gen[0] = 'A';
    /* a two-byte merge: writing its two bytes as two tokens is a non-canonical tokenization */
    const char *mb = NULL;
    size_t ml = 0;
    for (size_t v = 256; v < V && !(mb && ml == 2); v++) mb = tokenizer_token_bytes(tok, (int32_t)v, &ml);
    CHECK(mb && ml == 2);
    /* a toy model over printable byte tokens and merges (never specials); every 10th step
     * it spells a merge byte by byte, as a model sometimes does */
    size_t spelled = 0;
    for (int i = 1; i <= L; i++) {
        if (i % 10 == 0 && i < L && mb && ml == 2) {
            gen[i] = (unsigned char)mb[0];
            gen[i + 1] = (unsigned char)mb[1];
            i++;
            spelled++;
            continue;
        }
        toy_logits(gen[i - 1], i, lg, V);
        for (size_t v = 0; v < V; v++)
            if (tokenizer_is_special(tok, (int32_t)v) || (v < 256 && (v < 32 || v > 126))) lg[v] = -INFINITY;
        gen[i] = sampler_sample(&s, lg, gen, (size_t)i);
    }
    char *text = NULL;
    size_t tl = 0;
    int32_t *re = NULL;
    size_t nre = 0;
    CHECK_OK(tokenizer_decode(tok, gen + 1, L, &text, &tl));
    CHECK_OK(tokenizer_encode(tok, text, tl, 0, &re, &nre));
    /* every spelled merge comes back as one token: the sequences differ */
    CHECK_MSG(nre + spelled <= (size_t)L, "re-tokenized %zu tokens from %d generated (%zu spelled merges)", nre, L,
              spelled);
    mark_scorer sc;
    mark_result res;
    CHECK_OK(mark_scorer_init(&sc, &c));
    CHECK_OK(mark_scorer_add(&sc, re, nre, 0));
    mark_scorer_result(&sc, &res);
    mark_scorer_free(&sc);
    fprintf(stderr, "  generated %d tokens (%zu merges spelled as bytes), re-tokenized %zu; log10 p %.1f over %zu scored\n",
            L, spelled, nre, res.log10_p, res.scored);
    CHECK(res.log_p < log(1e-3));
    free(text);
    free(re);
    free(lg);
    sampler_free(&s);
    tokenizer_free(tok);
}

/* ---------------------------------------------------------------- files and options */

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static void test_key_and_config(void) {
    char kp[512], cp[512], bad[512];
    snprintf(kp, sizeof kp, "%s/k.key", tl_tmpdir());
    snprintf(cp, sizeof cp, "%s/wm.json", tl_tmpdir());
    snprintf(bad, sizeof bad, "%s/bad.key", tl_tmpdir());
    mark_key k, k2;
    CHECK_OK(mark_key_generate(&k));
    CHECK_OK(mark_key_save(&k, kp));
    CHECK_OK(mark_key_load(&k2, kp));
    CHECK(!memcmp(k.bytes, k2.bytes, sizeof k.bytes));
    CHECK(access(kp, F_OK) == 0);
    write_text(bad, "abcd\n");
    CHECK(mark_key_load(&k2, bad) == -1 && strstr(rt_errmsg(), "64 hexadecimal") && strstr(rt_errmsg(), bad));
    write_text(bad, "zz00000000000000000000000000000000000000000000000000000000000000");
    CHECK(mark_key_load(&k2, bad) == -1 && strstr(rt_errmsg(), "not hexadecimal"));
    /* config round trip */
    mark_params p = mark_params_defaults(MARK_KGW_SELFHASH);
    p.gamma = 0.5;
    p.delta = 1.5;
    CHECK_OK(mark_config_save(cp, &p, &k));
    mark_params q;
    char id[17], id2[17];
    CHECK_OK(mark_config_load(cp, &q, id));
    mark_key_id(&k, id2);
    CHECK(q.scheme == p.scheme && q.gamma == p.gamma && q.delta == p.delta && q.context == 4 && !strcmp(id, id2));
    CHECK(mark_config_from_json("{\"scheme\":\"kgw\",\"gamma\":2}", 26, "x.json", &q, id) == -1 &&
          strstr(rt_errmsg(), "gamma") && strstr(rt_errmsg(), "x.json"));
    CHECK(mark_config_from_json("[1]", 3, "x.json", &q, id) == -1 && strstr(rt_errmsg(), "object"));
    CHECK(mark_config_from_json("{\"scheme\":\"zz\"}", 15, "x.json", &q, id) == -1 && strstr(rt_errmsg(), "zz"));
    /* fuzz/fuzz_mark_config found "delta": -0.0 written back as -0, read as 0: not a fixed point */
    const char *nz = "{\"scheme\":\"kgw\",\"gamma\":0.26,\"delta\":-0.0}";
    CHECK_OK(mark_config_from_json(nz, strlen(nz), "x.json", &q, id));
    CHECK(q.delta == 0 && !signbit(q.delta));
    rt_buf j1 = {0};
    CHECK_OK(mark_config_to_json(&q, NULL, &j1));
    CHECK_MSG(j1.data && !strstr(j1.data, "-0"), "%s", j1.data ? j1.data : "");
    rt_buf_free(&j1);
    const char *pj = "{\"scheme\":\"kgw\",\"prf\":\"md5\"}";
    CHECK(mark_config_from_json(pj, strlen(pj), "x.json", &q, id) == -1 && strstr(rt_errmsg(), "prf"));
    /* options: config + key; a different key is refused; conflicting flags are refused */
    mark_options o;
    mark_options_init(&o);
    o.key_file = kp;
    o.config_file = cp;
    mark_ctx c;
    CHECK_OK(mark_options_resolve(&o, &c, NULL));
    CHECK(c.p.scheme == MARK_KGW_SELFHASH && c.p.gamma == 0.5 && !strcmp(c.key_id, id2));
    o.delta = 3.0;
    CHECK(mark_options_resolve(&o, &c, NULL) == -1 && strstr(rt_errmsg(), "delta"));
    o.delta = NAN;
    mark_key other;
    CHECK_OK(mark_key_generate(&other));
    CHECK_OK(mark_key_save(&other, bad));
    o.key_file = bad;
    CHECK(mark_options_resolve(&o, &c, NULL) == -1 && strstr(rt_errmsg(), "is not the key"));
    /* flags alone */
    mark_options_init(&o);
    o.key_file = kp;
    o.scheme = "gumbel";
    o.context = 3;
    CHECK_OK(mark_options_resolve(&o, &c, NULL));
    CHECK(c.p.scheme == MARK_GUMBEL && c.p.context == 3);
    o.context = 9;
    CHECK(mark_options_resolve(&o, &c, NULL) == -1 && strstr(rt_errmsg(), "context"));
    /* JSON output of a result parses as the fields it claims */
    mark_scorer s;
    mark_result r;
    mark_ctx kc = make_ctx(MARK_KGW, 0.25, 2, 1, 3);
    CHECK_OK(mark_scorer_init(&s, &kc));
    int32_t t[] = {1, 2, 3, 2, 3};
    CHECK_OK(mark_scorer_add(&s, t, 5, 0));
    mark_scorer_result(&s, &r);
    json_t *jo = json_pack("{s:s}", "file", "x");
    CHECK_OK(mark_result_json(&r, &kc, 1e-3, jo));
    char *txt = json_dumps(jo, JSON_REAL_PRECISION(12));
    CHECK(txt && strstr(txt, "\"file\": \"x\", \"scheme\"") && strstr(txt, "\"tokens_scored\": 3") &&
          strstr(txt, "\"detected\": false") && strstr(txt, "\"duplicate\": 1"));
    free(txt);
    json_decref(jo);
    mark_scorer_free(&s);
}

static void test_records(void) {
    char p1[512];
    snprintf(p1, sizeof p1, "%s/r.jsonl", tl_tmpdir());
    rt_buf b = {0};
    CHECK_OK(mark_record_jsonl(&b, "In the beginning", 16, "God \"created\"\n\xff", 15));
    CHECK_OK(mark_record_jsonl(&b, NULL, 0, "x", 1));
    CHECK_OK(rt_write_file_atomic(p1, b.data, b.len));
    mark_record *r;
    size_t n;
    CHECK_OK(mark_records_load(p1, 0, &r, &n));
    CHECK(n == 2 && r[0].prompt && !strcmp(r[0].prompt, "In the beginning") &&
          !strcmp(r[0].completion, "God \"created\"\n\xef\xbf\xbd") && !r[1].prompt);
    mark_records_free(r, n);
    rt_buf_free(&b);
    write_text(p1, "{\"prompt\": 3}\n");
    CHECK(mark_records_load(p1, 0, &r, &n) == -1 && strstr(rt_errmsg(), ":1:") && strstr(rt_errmsg(), "prompt"));
    write_text(p1, "{\"prompt\": \"a\"}\n{oops\n");
    CHECK(mark_records_load(p1, 0, &r, &n) == -1 && strstr(rt_errmsg(), ":2:"));
    write_text(p1, "first line\n\nsecond\n");
    CHECK_OK(mark_records_load(p1, 1, &r, &n));
    CHECK(n == 2 && !strcmp(r[1].prompt, "second"));
    mark_records_free(r, n);
    CHECK_OK(mark_records_load(p1, 0, &r, &n));
    CHECK(n == 1 && r[0].completion_len == 19);
    mark_records_free(r, n);
}

TEST_MAIN("mark", TEST_CASE(test_siphash), TEST_CASE(test_green_fraction), TEST_CASE(test_kgw_sampler),
          TEST_CASE(test_gumbel_sampler), TEST_CASE(test_filter_matches_sampler), TEST_CASE(test_binomial_tail), TEST_CASE(test_gamma_tail),
          TEST_CASE(test_ks), TEST_CASE(test_dedup_crafted), TEST_CASE(test_detection_calibration),
          TEST_CASE(test_retokenized_detection), TEST_CASE(test_key_and_config), TEST_CASE(test_records))
