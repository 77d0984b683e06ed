/*
 * peer.c — what the server knows per client address: which address a request really comes
 * from (the socket's peer, or behind a trusted proxy the X-Forwarded-For entry the proxy
 * added), and a token bucket for requests without a valid API key, so that anonymous
 * traffic is counted, slowed per address and cannot grow the ledger without bound.
 *
 * The keyless table is a fixed-size open-addressed hash (PEER_SLOTS entries, 8 probes; the
 * stalest entry in the probe window is reused), so spraying addresses costs a bucket reset,
 * never memory. Not the per-account limits (src/gateway) and not HTTP (http.c).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "serve_internal.h"

#define PEER_SLOTS 4096
#define PEER_PROBES 8
#define PEER_MAX_CIDR 32

typedef struct {
    char addr[48];
    double level, t;     /* bucket level at time t (clock seconds) */
    uint64_t limited;    /* refused since the last report */
    double t_reported;
} peer_slot;

typedef struct {
    int family;          /* AF_INET / AF_INET6 */
    unsigned char net[16];
    unsigned bits;
} cidr;

struct serve_peers {
    pthread_mutex_t mu;
    double rpm;          /* keyless requests per minute per address (burst = rpm); 0 = unlimited */
    peer_slot *slots;
    cidr trusted[PEER_MAX_CIDR];
    size_t n_trusted;
    uint64_t keyless, keyless_limited;
};

/* "10.0.0.0/8", "::1", "192.168.1.7/32" */
static int parse_cidr(const char *s, size_t len, cidr *out) {
    char buf[64];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    memset(out, 0, sizeof *out);
    unsigned max;
    if (inet_pton(AF_INET, buf, out->net) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->net) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->bits = max;
    if (slash) {
        char *end = NULL;
        long b = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || b < 0 || (unsigned long)b > max) return -1;
        out->bits = (unsigned)b;
    }
    return 0;
}

static int in_cidr(const cidr *c, int family, const unsigned char *a) {
    if (c->family != family) return 0;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->net, a, full)) return 0;
    if (rest == 0) return 1;
    unsigned char mask = (unsigned char)(0xFF << (8 - rest));
    return (c->net[full] & mask) == (a[full] & mask);
}

static int trusted_text(const serve_peers *p, const char *addr) {
    unsigned char a[16];
    if (inet_pton(AF_INET, addr, a) == 1) {
        for (size_t i = 0; i < p->n_trusted; i++)
            if (in_cidr(&p->trusted[i], AF_INET, a)) return 1;
        return 0;
    }
    if (inet_pton(AF_INET6, addr, a) == 1) {
        for (size_t i = 0; i < p->n_trusted; i++)
            if (in_cidr(&p->trusted[i], AF_INET6, a)) return 1;
    }
    return 0;
}

int serve_peers_init(serve_peers **out, double keyless_rpm, const char *trusted) {
    *out = NULL;
    if (!(keyless_rpm >= 0) || !isfinite(keyless_rpm))
        return RT_FAIL("--keyless-rpm: expected a number >= 0 (0 = unlimited)");
    serve_peers *p = rt_calloc(1, sizeof *p, "peer table");
    if (!p) return -1;
    p->slots = rt_calloc(PEER_SLOTS, sizeof *p->slots, "peer table");
    if (!p->slots) {
        free(p);
        return -1;
    }
    pthread_mutex_init(&p->mu, NULL);
    p->rpm = keyless_rpm;
    for (const char *s = trusted; s && *s;) {
        while (*s == ',' || isspace((unsigned char)*s)) s++;
        if (!*s) break;
        size_t n = strcspn(s, ", \t");
        if (p->n_trusted == PEER_MAX_CIDR) {
            serve_peers_free(p);
            return RT_FAIL("--trusted-proxy: at most %d address ranges", PEER_MAX_CIDR);
        }
        if (parse_cidr(s, n, &p->trusted[p->n_trusted])) {
            RT_FAIL("--trusted-proxy: '%.*s' is not an address or CIDR range (e.g. 10.0.0.0/8 or ::1)", (int)RT_MIN(n, (size_t)64), s);
            serve_peers_free(p);
            return -1;
        }
        p->n_trusted++;
        s += n;
    }
    *out = p;
    return 0;
}

void serve_peers_free(serve_peers *p) {
    if (!p) return;
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p);
}

int serve_peers_has_proxies(const serve_peers *p) { return p->n_trusted > 0; }

void serve_peers_client(const serve_peers *p, const char *peer, const char *xff, char *out, size_t cap) {
    snprintf(out, cap, "%s", peer);
    if (!xff || !p->n_trusted || !trusted_text(p, peer)) return;
    /* right to left: each proxy appends the address it saw; the first untrusted one is the
     * client (entries further left were written by the client itself and prove nothing) */
    const char *end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',') start--;
        const char *a = start, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        char one[64];
        size_t n = (size_t)(b - a);
        unsigned char bin[16];
        if (n == 0 || n >= sizeof one) return;
        memcpy(one, a, n);
        one[n] = '\0';
        if (inet_pton(AF_INET, one, bin) != 1 && inet_pton(AF_INET6, one, bin) != 1) return; /* garbage: stop */
        snprintf(out, cap, "%s", one);
        if (!trusted_text(p, one)) return;
        end = start > xff ? start - 1 : xff;
    }
}

static peer_slot *slot_for(serve_peers *p, const char *addr, double now) {
    size_t h = (size_t)(rt_fnv1a64(addr, strlen(addr)) % PEER_SLOTS);
    peer_slot *stalest = NULL;
    for (size_t k = 0; k < PEER_PROBES; k++) {
        peer_slot *s = &p->slots[(h + k) % PEER_SLOTS];
        if (!strcmp(s->addr, addr)) return s;
        if (!s->addr[0]) {
            stalest = s;
            break;
        }
        if (!stalest || s->t < stalest->t) stalest = s;
    }
    memset(stalest, 0, sizeof *stalest);
    snprintf(stalest->addr, sizeof stalest->addr, "%s", addr);
    stalest->level = p->rpm;
    stalest->t = now;
    stalest->t_reported = now;
    return stalest;
}

int serve_peers_keyless_admit(serve_peers *p, const char *addr, double now, double *retry_after) {
    *retry_after = 0;
    pthread_mutex_lock(&p->mu);
    p->keyless++;
    int ok = 1;
    if (p->rpm > 0) {
        peer_slot *s = slot_for(p, addr, now);
        if (now > s->t) {
            s->level = fmin(p->rpm, s->level + (now - s->t) * p->rpm / 60.0);
            s->t = now;
        }
        if (s->level >= 1) {
            s->level -= 1;
        } else {
            ok = 0;
            p->keyless_limited++;
            s->limited++;
            *retry_after = (1 - s->level) * 60.0 / p->rpm;
            if (now - s->t_reported >= 60) { /* one log line per address per minute, not one per request */
                char shown[64];
                rt_warn("serve: %llu requests without a valid API key from %s refused in the last %.0f s "
                        "(over %.0f per minute)",
                        (unsigned long long)s->limited, rt_utf8_printable(shown, sizeof shown, addr),
                        now - s->t_reported, p->rpm);
                s->limited = 0;
                s->t_reported = now;
            }
        }
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void serve_peers_counts(serve_peers *p, uint64_t *keyless, uint64_t *keyless_limited) {
    pthread_mutex_lock(&p->mu);
    *keyless = p->keyless;
    *keyless_limited = p->keyless_limited;
    pthread_mutex_unlock(&p->mu);
}
