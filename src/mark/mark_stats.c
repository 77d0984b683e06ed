/*
 * mark_stats.c — the exact null distributions of the detectors, in log space so that
 * p-values far below 1e-308 keep their digits:
 *   - binomial upper tail P(X >= k), X ~ Binomial(n, p), for KGW green counts;
 *   - gamma upper tail P(G >= s), G ~ Gamma(n, 1) (sum of n Exp(1)), for the Gumbel score,
 *     through its Poisson form e^-s sum_{j<n} s^j/j!;
 *   - a Kolmogorov–Smirnov uniformity test for the control keys' p-values.
 * Point probabilities use Loader's saddle-point form ("Fast and accurate computation of
 * binomial probabilities", 2000): stirlerr and the deviance bd0, accurate to ~1e-15
 * relative even for n in the millions; tails sum point probabilities outward from the
 * cut with the exact term ratios, taking the complement when the cut is below the mean.
 * Not a general statistics library: only what the detectors need.
 */
#include <math.h>
#include <stdlib.h>

#include "mark.h"

#define LN_SQRT_2PI 0.918938533204672741780329736406 /* ln sqrt(2 pi) */

/* ln(n!) - ln(sqrt(2 pi n) (n/e)^n) for integer n >= 1 */
static double stirlerr(double n) {
    if (n <= 15.0) return lgamma(n + 1.0) - (n + 0.5) * log(n) + n - LN_SQRT_2PI;
    const double S0 = 1.0 / 12, S1 = 1.0 / 360, S2 = 1.0 / 1260, S3 = 1.0 / 1680, S4 = 1.0 / 1188;
    double nn = n * n;
    if (n > 500) return (S0 - S1 / nn) / n;
    if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
    if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
    return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

/* x ln(x / m) + m - x, without cancellation when x ~ m */
static double bd0(double x, double m) {
    if (fabs(x - m) < 0.1 * (x + m)) {
        double v = (x - m) / (x + m), s = (x - m) * v, ej = 2 * x * v;
        v *= v;
        for (int j = 1; j < 1000; j++) {
            ej *= v;
            double s1 = s + ej / (2 * j + 1);
            if (s1 == s) return s1;
            s = s1;
        }
        return s;
    }
    return x * log(x / m) + m - x;
}

/* ln P(X = x), X ~ Binomial(n, p), q = 1 - p */
static double log_dbinom(double x, double n, double p, double q) {
    if (x == 0) return n * log1p(-p);
    if (x == n) return n * log(p);
    double lc = stirlerr(n) - stirlerr(x) - stirlerr(n - x) - bd0(x, n * p) - bd0(n - x, n * q);
    double lf = 2 * LN_SQRT_2PI + log(x) + log1p(-x / n);
    return lc - 0.5 * lf;
}

/* ln P(Y = x), Y ~ Poisson(lambda), lambda > 0 */
static double log_dpois(double x, double lambda) {
    if (x == 0) return -lambda;
    return -stirlerr(x) - bd0(x, lambda) - LN_SQRT_2PI - 0.5 * log(x);
}

double mark_binom_log_sf(uint64_t k, uint64_t n, double p) {
    if (k == 0) return 0.0;
    if (k > n) return -INFINITY;
    if (p <= 0) return -INFINITY;
    if (p >= 1) return 0.0;
    double q = 1.0 - p, dn = (double)n, dk = (double)k;
    double pq = p / q;
    if (dk > dn * p) {
        /* upper tail: terms fall from j = k on */
        double lt = log_dbinom(dk, dn, p, q), sum = 1.0, t = 1.0;
        for (uint64_t j = k; j < n; j++) {
            t *= (double)(n - j) / (double)(j + 1) * pq;
            sum += t;
            if (t < sum * 1e-18) break;
        }
        return lt + log(sum);
    }
    /* k <= mean: 1 - P(X <= k-1); terms fall from j = k-1 down */
    double lt = log_dbinom(dk - 1, dn, p, q), sum = 1.0, t = 1.0;
    for (uint64_t j = k - 1; j > 0; j--) {
        t *= (double)j / (double)(n - j + 1) / pq;
        sum += t;
        if (t < sum * 1e-18) break;
    }
    double lower = exp(lt + log(sum));
    if (lower >= 1.0) return log(0x1.0p-53); /* unreachable in exact arithmetic */
    return log1p(-lower);
}

double mark_gamma_log_sf(uint64_t n, double s) {
    if (n == 0) return -INFINITY; /* Gamma(0) is a point mass at 0: P(G >= s > 0) = 0 */
    if (!(s > 0)) return 0.0;
    double dn = (double)n;
    if (dn - 1 < s) {
        /* P(Poisson(s) <= n-1): terms fall from j = n-1 down */
        double lt = log_dpois(dn - 1, s), sum = 1.0, t = 1.0;
        for (uint64_t j = n - 1; j > 0; j--) {
            t *= (double)j / s;
            sum += t;
            if (t < sum * 1e-18) break;
        }
        return lt + log(sum);
    }
    /* 1 - P(Poisson(s) >= n): terms fall from j = n up */
    double lt = log_dpois(dn, s), sum = 1.0, t = 1.0;
    for (uint64_t j = n;; j++) {
        t *= s / (double)(j + 1);
        sum += t;
        if (t < sum * 1e-18) break;
    }
    double upper = exp(lt + log(sum));
    if (upper >= 1.0) return log(0x1.0p-53);
    return log1p(-upper);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mark_ks_uniform(double *p, size_t n, double *pvalue) {
    if (n == 0) {
        *pvalue = 1.0;
        return 0.0;
    }
    qsort(p, n, sizeof *p, cmp_double);
    double d = 0, dn = (double)n;
    for (size_t i = 0; i < n; i++) {
        double lo = p[i] - (double)i / dn, hi = (double)(i + 1) / dn - p[i];
        if (lo > d) d = lo;
        if (hi > d) d = hi;
    }
    double sq = sqrt(dn), lambda = (sq + 0.12 + 0.11 / sq) * d;
    double q = 0;
    if (lambda < 0.2) {
        q = 1.0;
    } else {
        double sign = 1;
        for (int j = 1; j <= 100; j++) {
            double term = sign * exp(-2.0 * j * j * lambda * lambda);
            q += term;
            if (fabs(term) < 1e-16) break;
            sign = -sign;
        }
        q = 2 * q;
        if (q > 1) q = 1;
        if (q < 0) q = 0;
    }
    *pvalue = q;
    return d;
}
