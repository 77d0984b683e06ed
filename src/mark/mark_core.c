/*
 * mark_core.c — the watermark's parameters, key files, subkey derivation, the keyed PRF
 * (SipHash-2-4) and what it decides: green flags (KGW, SelfHash), Gumbel values, score keys;
 * plus the recorded-parameters JSON ("mark config") and resolving command-line options.
 *
 * Not here: the sampler hooks (mark_sampler.c), counting and p-values (mark_score.c,
 * mark_stats.c), generation (mark_gen.c).
 */
#include "mark.h"
#include "mark_internal.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

#define MARK_KDF_CONTEXT "rtmark01"
#define MARK_PRF_NAME "siphash24-kdf-rtmark01"
enum { MARK_SUBKEY_GREEN = 1, MARK_SUBKEY_SEED = 2, MARK_SUBKEY_GUMBEL = 3 };

/* ---------------------------------------------------------------- parameters */

mark_params mark_params_defaults(mark_scheme s) {
    mark_params p = {.scheme = s, .gamma = 0.25, .delta = 2.0, .context = 1};
    /* SelfHash: the paper's h = 4. Gumbel: deterministic given the window, so h = 1 loops on
     * repeated tokens, and its unbounded per-token score lets a few frequent tuples shared by
     * many texts move every text's score under a given key (docs/watermark.md measures both). */
    if (s == MARK_KGW_SELFHASH || s == MARK_GUMBEL) p.context = 4;
    return p;
}

const char *mark_scheme_name(mark_scheme s) {
    switch (s) {
    case MARK_KGW: return "kgw";
    case MARK_KGW_SELFHASH: return "kgw-selfhash";
    case MARK_GUMBEL: return "gumbel";
    }
    return "unknown";
}

int mark_scheme_parse(const char *s, mark_scheme *out) {
    if (!strcmp(s, "kgw")) *out = MARK_KGW;
    else if (!strcmp(s, "kgw-selfhash") || !strcmp(s, "selfhash")) *out = MARK_KGW_SELFHASH;
    else if (!strcmp(s, "gumbel") || !strcmp(s, "aaronson")) *out = MARK_GUMBEL;
    else return RT_FAIL("watermark scheme: expected kgw, kgw-selfhash or gumbel, got '%s'", s);
    return 0;
}

int mark_params_validate(const mark_params *p) {
    if (p->scheme != MARK_KGW && p->scheme != MARK_KGW_SELFHASH && p->scheme != MARK_GUMBEL)
        return RT_FAIL("watermark scheme: unknown scheme id %d", (int)p->scheme);
    if (p->context < 1 || p->context > MARK_MAX_CONTEXT)
        return RT_FAIL("watermark context (h): expected 1..%d previous tokens, got %zu", MARK_MAX_CONTEXT,
                       p->context);
    if (p->scheme != MARK_GUMBEL) {
        if (!(p->gamma >= 0.001 && p->gamma <= 0.999))
            return RT_FAIL("watermark gamma (green fraction): expected a value in [0.001, 0.999], got %g",
                           p->gamma);
        if (!(p->delta >= 0 && p->delta <= 100))
            return RT_FAIL("watermark delta (green logit bias): expected a value in [0, 100], got %g", p->delta);
    }
    return 0;
}

/* ---------------------------------------------------------------- key */

static int sodium_ready(void) {
    if (sodium_init() < 0) return RT_FAIL("libsodium failed to initialise");
    return 0;
}

int mark_key_generate(mark_key *k) {
    if (sodium_ready()) return -1;
    randombytes_buf(k->bytes, sizeof k->bytes);
    return 0;
}

void mark_key_from_seed(mark_key *k, uint64_t seed) {
    unsigned char msg[24] = "retort-mark-seed";
    for (int i = 0; i < 8; i++) msg[16 + i] = (unsigned char)(seed >> (8 * i));
    crypto_generichash(k->bytes, sizeof k->bytes, msg, sizeof msg, NULL, 0);
}

int mark_key_load(mark_key *k, const char *path) {
    char *data = NULL;
    size_t len = 0;
    if (rt_read_file(path, &data, &len)) return -1;
    size_t n = len;
    while (n > 0 && isspace((unsigned char)data[n - 1])) n--;
    size_t start = 0;
    while (start < n && isspace((unsigned char)data[start])) start++;
    size_t hexlen = n - start;
    int rc = 0;
    if (hexlen != 2 * MARK_KEY_BYTES) {
        rc = RT_FAIL("key file %s: expected %d hexadecimal characters (a %d-byte key, as written by "
                     "`retort watermark keygen`), found %zu characters",
                     path, 2 * MARK_KEY_BYTES, MARK_KEY_BYTES, hexlen);
    } else {
        for (size_t i = 0; i < hexlen; i++)
            if (!isxdigit((unsigned char)data[start + i])) {
                rc = RT_FAIL("key file %s: character %zu ('%c') is not hexadecimal", path, start + i + 1,
                             isprint((unsigned char)data[start + i]) ? data[start + i] : '?');
                break;
            }
        size_t bin_len = 0;
        if (!rc && sodium_hex2bin(k->bytes, sizeof k->bytes, data + start, hexlen, NULL, &bin_len, NULL) != 0)
            rc = RT_FAIL("key file %s: could not decode the hexadecimal key", path);
        if (!rc && bin_len != MARK_KEY_BYTES) rc = RT_FAIL("key file %s: decoded %zu bytes, expected %d", path, bin_len, MARK_KEY_BYTES);
    }
    sodium_memzero(data, len);
    free(data);
    return rc;
}

int mark_key_save(const mark_key *k, const char *path) {
    char hex[2 * MARK_KEY_BYTES + 2];
    sodium_bin2hex(hex, sizeof hex, k->bytes, sizeof k->bytes);
    hex[2 * MARK_KEY_BYTES] = '\n';
    rt_atomic_file af;
    if (rt_atomic_open(&af, path)) return -1;
    if (fchmod(fileno(af.f), 0600) != 0) {
        rt_atomic_abort(&af);
        return RT_FAIL("key file %s: cannot restrict permissions to 0600", path);
    }
    if (rt_fwrite(hex, 1, 2 * MARK_KEY_BYTES + 1, af.f, path)) {
        rt_atomic_abort(&af);
        sodium_memzero(hex, sizeof hex);
        return -1;
    }
    sodium_memzero(hex, sizeof hex);
    return rt_atomic_commit(&af);
}

void mark_key_id(const mark_key *k, char out[17]) {
    unsigned char msg[23 + MARK_KEY_BYTES] = "retort-watermark-key-id";
    memcpy(msg + 23, k->bytes, MARK_KEY_BYTES);
    unsigned char h[8];
    crypto_generichash(h, sizeof h, msg, sizeof msg, NULL, 0);
    sodium_bin2hex(out, 17, h, sizeof h);
    sodium_memzero(msg, sizeof msg);
}

/* ---------------------------------------------------------------- SipHash-2-4 */

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

uint64_t mark_siphash24(const uint8_t key[16], const void *data, size_t len) {
    mark_sip st = mark_sip_init(load_le64(key), load_le64(key + 8));
    const uint8_t *p = data;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) mark_sip_block(&st, load_le64(p + i));
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; i + j < len; j++) b |= (uint64_t)p[i + j] << (8 * j);
    return mark_sip_finish(&st, b);
}

/* ---------------------------------------------------------------- context */

static void derive_subkey(uint64_t out[2], uint64_t id, const mark_key *k) {
    uint8_t sub[16];
    crypto_kdf_derive_from_key(sub, sizeof sub, id, MARK_KDF_CONTEXT, k->bytes);
    out[0] = load_le64(sub);
    out[1] = load_le64(sub + 8);
    sodium_memzero(sub, sizeof sub);
}

int mark_ctx_init(mark_ctx *c, const mark_params *p, const mark_key *k) {
    memset(c, 0, sizeof *c);
    if (mark_params_validate(p)) return -1;
    if (sodium_ready()) return -1;
    c->p = *p;
    derive_subkey(c->k_green, MARK_SUBKEY_GREEN, k);
    derive_subkey(c->k_seed, MARK_SUBKEY_SEED, k);
    derive_subkey(c->k_gumbel, MARK_SUBKEY_GUMBEL, k);
    /* gamma * 2^64 is exact in long double; gamma <= 0.999 keeps it below 2^64 */
    c->threshold = (uint64_t)ldexpl((long double)p->gamma, 64);
    mark_key_id(k, c->key_id);
    return 0;
}

double mark_ctx_gamma(const mark_ctx *c) { return (double)ldexpl((long double)c->threshold, -64); }

size_t mark_score_key_of(const mark_ctx *c, const int32_t *window, int32_t token, mark_score_key *key) {
    memset(key, 0, sizeof *key);
    return mark_key_fill(c, window, token, key);
}

int mark_is_green(const mark_ctx *c, const int32_t *window, int32_t token) {
    mark_score_key k;
    size_t nw = mark_score_key_of(c, window, token, &k);
    return mark_key_is_green(c, &k, nw);
}

double mark_gumbel_r(const mark_ctx *c, const int32_t *window, int32_t token) {
    mark_score_key k;
    size_t nw = mark_score_key_of(c, window, token, &k);
    return mark_key_gumbel(c, &k, nw);
}

/* ---------------------------------------------------------------- mark config JSON */

int mark_config_to_json(const mark_params *p, const mark_key *key, rt_buf *out) {
    if (mark_params_validate(p)) return -1;
    if (rt_buf_printf(out, "{\"retort_watermark\":1,\"scheme\":\"%s\"", mark_scheme_name(p->scheme))) return -1;
    if (p->scheme != MARK_GUMBEL) {
        char g[RT_FMT_DOUBLE_CAP], d[RT_FMT_DOUBLE_CAP];
        rt_fmt_double(g, sizeof g, p->gamma);
        rt_fmt_double(d, sizeof d, p->delta);
        if (rt_buf_printf(out, ",\"gamma\":%s,\"delta\":%s", g, d)) return -1;
    }
    if (rt_buf_printf(out, ",\"context\":%zu,\"prf\":\"%s\"", p->context, MARK_PRF_NAME)) return -1;
    if (key) {
        char id[17];
        mark_key_id(key, id);
        if (rt_buf_printf(out, ",\"key_id\":\"%s\"", id)) return -1;
    }
    return rt_buf_printf(out, "}");
}

int mark_config_from_json(const char *json, size_t len, const char *what, mark_params *p, char key_id[17]) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root) return RT_FAIL("%s: not valid JSON (line %d: %s)", what, jerr.line, jerr.text);
    int rc = -1;
    key_id[0] = 0;
    if (!json_is_object(root)) {
        RT_FAIL("%s: expected a JSON object with the watermark parameters", what);
        goto done;
    }
    json_t *v = json_object_get(root, "scheme");
    if (!json_is_string(v)) {
        RT_FAIL("%s: field \"scheme\" missing or not a string (expected \"kgw\", \"kgw-selfhash\" or \"gumbel\")",
                what);
        goto done;
    }
    mark_scheme s;
    if (mark_scheme_parse(json_string_value(v), &s)) {
        RT_FAIL("%s: %s", what, rt_errmsg());
        goto done;
    }
    *p = mark_params_defaults(s);
    v = json_object_get(root, "prf");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), MARK_PRF_NAME))) {
        RT_FAIL("%s: field \"prf\" is %s; this build implements \"%s\"", what,
                json_is_string(v) ? json_string_value(v) : "not a string", MARK_PRF_NAME);
        goto done;
    }
    const char *numf[] = {"gamma", "delta"};
    double *dst[] = {&p->gamma, &p->delta};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(root, numf[i]);
        if (!v) continue;
        if (!json_is_number(v)) {
            RT_FAIL("%s: field \"%s\" must be a number", what, numf[i]);
            goto done;
        }
        *dst[i] = json_number_value(v) + 0.0; /* -0 is 0: written back as "0", a fixed point (found by fuzzing) */
    }
    v = json_object_get(root, "context");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MARK_MAX_CONTEXT) {
            RT_FAIL("%s: field \"context\" must be an integer in 1..%d", what, MARK_MAX_CONTEXT);
            goto done;
        }
        p->context = (size_t)json_integer_value(v);
    }
    v = json_object_get(root, "key_id");
    if (v) {
        const char *id = json_is_string(v) ? json_string_value(v) : NULL;
        size_t n = id ? strlen(id) : 0;
        int ok = n == 16;
        for (size_t i = 0; ok && i < n; i++) ok = isxdigit((unsigned char)id[i]) != 0;
        if (!ok) {
            RT_FAIL("%s: field \"key_id\" must be 16 hexadecimal characters", what);
            goto done;
        }
        memcpy(key_id, id, 17);
        for (int i = 0; i < 16; i++) key_id[i] = (char)tolower((unsigned char)key_id[i]);
    }
    if (mark_params_validate(p)) {
        RT_FAIL("%s: %s", what, rt_errmsg());
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

int mark_config_load(const char *path, mark_params *p, char key_id[17]) {
    char *data = NULL;
    size_t len = 0;
    if (rt_read_file(path, &data, &len)) return -1;
    int rc = mark_config_from_json(data, len, path, p, key_id);
    free(data);
    return rc;
}

int mark_config_save(const char *path, const mark_params *p, const mark_key *key) {
    rt_buf b = {0};
    int rc = mark_config_to_json(p, key, &b);
    if (!rc) rc = rt_buf_append(&b, "\n", 1);
    if (!rc) rc = rt_write_file_atomic(path, b.data, b.len);
    rt_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- options */

void mark_options_init(mark_options *o) {
    memset(o, 0, sizeof *o);
    o->gamma = NAN;
    o->delta = NAN;
    o->context = 0;
}

int mark_options_resolve(const mark_options *o, mark_ctx *c, mark_key *key_out) {
    if (!o->key_file) return RT_FAIL("watermark: a key file is required (--watermark-key-file / --key-file)");
    mark_params p;
    char recorded_id[17] = "";
    int have_cfg = 0;
    const char *cfg_name = o->config_file;
    if (o->config_file && o->config_json)
        return RT_FAIL("watermark: parameters from both %s and %s; give one", o->config_file,
                       o->config_what ? o->config_what : "a recorded config");
    if (o->config_file) {
        if (mark_config_load(o->config_file, &p, recorded_id)) return -1;
        have_cfg = 1;
    } else if (o->config_json) {
        cfg_name = o->config_what ? o->config_what : "the recorded config";
        if (mark_config_from_json(o->config_json, strlen(o->config_json), cfg_name, &p, recorded_id)) return -1;
        have_cfg = 1;
    }
    if (o->scheme) {
        mark_scheme s;
        if (mark_scheme_parse(o->scheme, &s)) return -1;
        if (have_cfg && s != p.scheme)
            return RT_FAIL("watermark scheme: the flag says %s but %s records %s", mark_scheme_name(s),
                           cfg_name, mark_scheme_name(p.scheme));
        if (!have_cfg) p = mark_params_defaults(s);
    } else if (!have_cfg) {
        p = mark_params_defaults(MARK_KGW);
    }
    struct {
        const char *name;
        double given, *dst;
    } dv[] = {{"gamma", o->gamma, &p.gamma}, {"delta", o->delta, &p.delta}};
    for (size_t i = 0; i < 2; i++) {
        if (isnan(dv[i].given)) continue;
        if (have_cfg && dv[i].given != *dv[i].dst)
            return RT_FAIL("watermark %s: the flag says %g but %s records %g", dv[i].name, dv[i].given,
                           cfg_name, *dv[i].dst);
        *dv[i].dst = dv[i].given;
    }
    if (o->context) {
        if (have_cfg && o->context != p.context)
            return RT_FAIL("watermark context: the flag says %zu but %s records %zu", o->context, cfg_name,
                           p.context);
        p.context = o->context;
    }
    mark_key k;
    if (mark_key_load(&k, o->key_file)) return -1;
    int rc = mark_ctx_init(c, &p, &k);
    if (!rc && recorded_id[0] && strcmp(recorded_id, c->key_id))
        rc = RT_FAIL("key file %s (key id %s) is not the key %s was written with (key id %s)", o->key_file,
                     c->key_id, cfg_name, recorded_id);
    if (!rc && key_out) *key_out = k;
    sodium_memzero(&k, sizeof k);
    return rc;
}
