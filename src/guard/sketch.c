/*
 * sketch.c — the guard's streaming building blocks: n-aware exponential means and their
 * variance factor, decaying counters, MinHash over word 2-shingles with LSH bands, random
 * Fourier features for an RBF-kernel MMD, SimHash cells, int8 embedding quantisation, and
 * the Shapiro–Wilk W used by the PRADA baseline.
 *
 * Each is O(1) (or O(dim)) per update with fixed memory. Not a detector: detector.c decides
 * what to feed them and how to read them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"

/* ---------------------------------------------------------------- exponential means */

void guard_ewm_add(guard_ewm *e, double x, double window) {
    e->n += 1;
    double a = 1.0 / e->n;
    if (window >= 1 && a < 1.0 / window) a = 1.0 / window;
    e->mean += a * (x - e->mean);
}

double guard_ewm_var_factor(const guard_ewm *e, double window) {
    if (e->n <= 0) return INFINITY;
    if (window < 1 || e->n <= window) return 1.0 / e->n;
    /* v_k = (1-a)^2 v_{k-1} + a^2 from v_W = 1/W: v_k = v* + (1/W - v*)(1-a)^(2(k-W)) */
    double a = 1.0 / window, vs = a / (2.0 - a);
    return vs + (1.0 / window - vs) * pow(1.0 - a, 2.0 * (e->n - window));
}

void guard_decay_add(guard_decay *d, double t, double w, double tau) {
    if (t > d->t) {
        d->c = d->c * exp(-(t - d->t) / tau) + w;
        d->t = t;
    } else {
        d->c += w;
    }
}

double guard_decay_value(const guard_decay *d, double t, double tau) {
    return t > d->t ? d->c * exp(-(t - d->t) / tau) : d->c;
}

/* ---------------------------------------------------------------- MinHash */

/* Hashes below use base's one mixer, rt_mix64 (splitmix64's finaliser): MinHash values and
 * band keys are stored, so it must stay the same function. */

static int word_byte(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }

static void minhash_add(uint32_t sig[GUARD_MINHASH_K], uint64_t shingle) {
    for (size_t k = 0; k < GUARD_MINHASH_K; k++) {
        uint32_t h = (uint32_t)rt_mix64(shingle ^ (0x9e3779b97f4a7c15ULL * (k + 1)));
        if (h < sig[k]) sig[k] = h;
    }
}

size_t guard_minhash(const char *text, size_t len, uint32_t sig[GUARD_MINHASH_K]) {
    for (size_t k = 0; k < GUARD_MINHASH_K; k++) sig[k] = 0xffffffffu;
    uint64_t prev = 0;
    size_t words = 0, shingles = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && !word_byte((unsigned char)text[i])) i++;
        if (i >= len) break;
        uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a of the lowercased word */
        while (i < len && word_byte((unsigned char)text[i])) {
            unsigned char c = (unsigned char)text[i++];
            if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
            h ^= c;
            h *= 0x100000001b3ULL;
        }
        if (words > 0) {
            minhash_add(sig, rt_mix64(prev * 31 + 7) ^ h);
            shingles++;
        }
        prev = h;
        words++;
    }
    if (words == 1) {
        minhash_add(sig, prev);
        shingles = 1;
    }
    return shingles;
}

uint64_t guard_prefix_hash(const char *text, size_t len) {
    uint64_t h = 0x9ae16a3b2f90404fULL;
    int words = 0;
    for (size_t i = 0; i < len && words < 3;) {
        while (i < len && !word_byte((unsigned char)text[i])) i++;
        if (i >= len) break;
        while (i < len && word_byte((unsigned char)text[i])) {
            unsigned char c = (unsigned char)text[i++];
            if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
            h = rt_mix64(h ^ c);
        }
        h = rt_mix64(h ^ 0x20);
        words++;
    }
    return words ? (h | 1) : 0;
}

uint64_t guard_prefix_key(uint64_t prefix_hash) { return rt_mix64(prefix_hash ^ 0x7072656669780000ULL); }

double guard_minhash_similarity(const uint32_t *a, const uint32_t *b) {
    size_t eq = 0;
    for (size_t k = 0; k < GUARD_MINHASH_K; k++) eq += a[k] == b[k];
    return (double)eq / GUARD_MINHASH_K;
}

void guard_minhash_bands(const uint32_t sig[GUARD_MINHASH_K], uint64_t bands[GUARD_MINHASH_BANDS]) {
    const size_t rows = GUARD_MINHASH_K / GUARD_MINHASH_BANDS;
    for (size_t b = 0; b < GUARD_MINHASH_BANDS; b++) {
        uint64_t h = rt_mix64(b + 1);
        for (size_t r = 0; r < rows; r++) h = rt_mix64(h ^ sig[b * rows + r]);
        bands[b] = h;
    }
}

/* ---------------------------------------------------------------- random Fourier features */

int guard_rff_init(guard_rff *r, size_t dim, size_t m, double sigma, uint64_t seed) {
    memset(r, 0, sizeof *r);
    if (dim == 0 || m == 0) return RT_FAIL("random features: dimension %zu and count %zu must be positive", dim, m);
    if (!(sigma > 0) || !isfinite(sigma)) return RT_FAIL("random features: bandwidth %g must be positive", sigma);
    size_t nw;
    if (rt_mul_size(m, dim, &nw)) return -1;
    r->w = rt_malloc_array(nw, sizeof(float), "random feature matrix");
    r->b = rt_malloc_array(m, sizeof(float), "random feature phases");
    if (!r->w || !r->b) {
        guard_rff_free(r);
        return -1;
    }
    r->dim = dim;
    r->m = m;
    r->sigma = sigma;
    r->seed = seed;
    rt_rng rng;
    rt_rng_seed(&rng, seed);
    for (size_t i = 0; i < nw; i++) r->w[i] = (float)(rt_rng_normal(&rng) / sigma);
    for (size_t i = 0; i < m; i++) r->b[i] = (float)(rt_rng_double(&rng) * 2.0 * M_PI);
    return 0;
}

void guard_rff_free(guard_rff *r) {
    free(r->w);
    free(r->b);
    memset(r, 0, sizeof *r);
}

void guard_rff_apply(const guard_rff *r, const float *x, float *phi) {
    const float s = sqrtf(2.0f / (float)r->m);
    const size_t D = r->dim, D8 = D & ~(size_t)7;
    for (size_t j = 0; j < r->m; j++) {
        const float *w = r->w + j * D;
        float a[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* eight lanes: the compiler vectorises this */
        for (size_t d = 0; d < D8; d += 8)
            for (size_t l = 0; l < 8; l++) a[l] += w[d + l] * x[d + l];
        float acc = r->b[j] + ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
        for (size_t d = D8; d < D; d++) acc += w[d] * x[d];
        phi[j] = s * cosf(acc);
    }
}

int guard_simhash_sign(unsigned bit, size_t d) {
    return (rt_mix64(((uint64_t)bit << 32) ^ (uint64_t)d ^ 0x51ed2701ULL) & 1) ? 1 : -1;
}

unsigned guard_simhash_cell(const float *x, size_t dim) {
    unsigned cell = 0;
    for (unsigned bit = 0; bit < 8; bit++) {
        double acc = 0;
        for (size_t d = 0; d < dim; d++) acc += guard_simhash_sign(bit, d) * (double)x[d];
        if (acc > 0) cell |= 1u << bit;
    }
    return cell;
}

/* ---------------------------------------------------------------- quantisation */

float guard_quantize(const float *x, size_t dim, int8_t *q) {
    double ss = 0;
    for (size_t i = 0; i < dim; i++) ss += (double)x[i] * x[i];
    if (!(ss > 0) || !isfinite(ss)) {
        memset(q, 0, dim);
        return 0;
    }
    double inv = 1.0 / sqrt(ss), mx = 0;
    for (size_t i = 0; i < dim; i++) mx = fmax(mx, fabs(x[i] * inv));
    double scale = mx / 127.0;
    for (size_t i = 0; i < dim; i++) {
        long v = lround(x[i] * inv / scale);
        q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    return (float)scale;
}

void guard_dequantize(const int8_t *q, size_t dim, float scale, float *out) {
    /* renormalise: the stored vector is unit up to rounding */
    double ss = 0;
    for (size_t i = 0; i < dim; i++) ss += (double)q[i] * q[i];
    double inv = ss > 0 ? 1.0 / sqrt(ss) : 0;
    (void)scale;
    for (size_t i = 0; i < dim; i++) out[i] = (float)(q[i] * inv);
}

/* ---------------------------------------------------------------- Shapiro–Wilk */

/* Inverse of the standard normal CDF: Acklam's rational approximation refined by one Halley
 * step on erfc (|error| ~ 1e-15). */
static double norm_ppf(double p) {
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    double q, r, x;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        q = sqrt(-2 * log(1 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

static double poly(const double *cc, int nord, double x) {
    double ret = cc[0];
    if (nord > 1) {
        double p = x * cc[nord - 1];
        for (int j = nord - 2; j > 0; j--) p = (p + cc[j]) * x;
        ret += p;
    }
    return ret;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double guard_shapiro_wilk(const double *x_in, size_t n) {
    if (n < 3) return NAN;
    double *x = malloc(n * sizeof *x);
    double *a = malloc((n / 2 + 1) * sizeof *a); /* 1-based, a[1..n/2] */
    if (!x || !a) {
        free(x);
        free(a);
        return NAN;
    }
    memcpy(x, x_in, n * sizeof *x);
    qsort(x, n, sizeof *x, cmp_double);
    size_t nn2 = n / 2;
    double an = (double)n;
    if (n == 3) {
        a[1] = sqrt(0.5);
    } else {
        static const double c1[6] = {0., .221157, -.147981, -2.07119, 4.434685, -2.706056};
        static const double c2[6] = {0., .042981, -.293762, -1.752461, 5.682633, -3.582633};
        double an25 = an + .25, summ2 = 0;
        for (size_t i = 1; i <= nn2; i++) {
            a[i] = norm_ppf(((double)i - .375) / an25); /* negative: lower-tail scores */
            summ2 += a[i] * a[i];
        }
        summ2 *= 2.;
        double ssumm2 = sqrt(summ2), rsn = 1. / sqrt(an);
        double a1 = poly(c1, 6, rsn) - a[1] / ssumm2, fac;
        size_t i1;
        if (n > 5) {
            i1 = 3;
            double a2 = -a[2] / ssumm2 + poly(c2, 6, rsn);
            fac = sqrt((summ2 - 2. * (a[1] * a[1]) - 2. * (a[2] * a[2])) / (1. - 2. * (a1 * a1) - 2. * (a2 * a2)));
            a[2] = a2;
        } else {
            i1 = 2;
            fac = sqrt((summ2 - 2. * (a[1] * a[1])) / (1. - 2. * (a1 * a1)));
        }
        a[1] = a1;
        for (size_t i = i1; i <= nn2; i++) a[i] /= -fac;
    }
    /* a[i] > 0 is the weight of x_(n+1-i) - x_(i); W is the squared correlation of the sorted
     * sample with the antisymmetric coefficient vector */
    double range = x[n - 1] - x[0];
    double w = NAN;
    if (range > 1e-19 * fmax(1.0, fabs(x[n - 1]))) {
        double mean = 0;
        for (size_t i = 0; i < n; i++) mean += x[i] / range;
        mean /= an;
        double sax = 0, ssa = 0, ssx = 0;
        for (size_t i = 0; i < n; i++) {
            size_t j = n - 1 - i;
            double ai = i < j ? -a[i + 1] : i > j ? a[j + 1] : 0.0;
            double xi = x[i] / range - mean;
            sax += ai * xi;
            ssa += ai * ai;
            ssx += xi * xi;
        }
        if (ssx > 0 && ssa > 0) {
            double s = sqrt(ssa * ssx);
            w = 1.0 - (s - sax) * (s + sax) / (ssa * ssx);
        }
    }
    free(x);
    free(a);
    return w;
}
