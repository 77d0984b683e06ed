/*
 * sources.c — prompt sources of the simulator other than the corpus, so that the guard can be
 * calibrated on one kind of text and evaluated on another:
 *   fortunes  Debian's fortune cookies (/usr/share/games/fortunes: files of entries separated
 *             by "%" lines; the .dat indexes and .u8 links are skipped);
 *   man       the installed manual pages (/usr/share/man/man{1,5,7,8}, gzip'ed roff read through
 *             zcat): a page's name, its one-line description and the start of its DESCRIPTION;
 *   everyday  generated everyday requests (the grammar in prompts.c; nothing to load).
 * Every source can be split in two disjoint halves ("fortunes/a", "fortunes/b") by a hash of
 * the item (fortune entry, man page name, everyday template), so calibration and evaluation
 * can draw from text the other never saw. Items are what prompts are built around
 * (guard_source_prompt): natural questions about an item, the item itself, a prefix of it, or
 * the item wrapped in a harvester's (paraphrased) instruction.
 * Not the corpus (prompts.c), not a scenario driver (sim.c).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim.h"

extern char **environ;

static const char *const src_names[GUARD_SRC_KINDS] = {"corpus", "fortunes", "man", "everyday"};

int guard_source_spec_parse(const char *s, guard_source_spec *out) {
    memset(out, 0, sizeof *out);
    if (!s) return -1;
    size_t n = strcspn(s, "/");
    for (int k = 0; k < GUARD_SRC_KINDS; k++) {
        if (strlen(src_names[k]) != n || strncmp(s, src_names[k], n)) continue;
        out->kind = (guard_source_kind)k;
        if (!s[n]) return 0;
        if (!strcmp(s + n, "/a")) out->half = 1;
        else if (!strcmp(s + n, "/b")) out->half = 2;
        else return -1;
        return k == GUARD_SRC_CORPUS ? -1 : 0; /* the corpus is not split (its own seed varies it) */
    }
    return -1;
}

const char *guard_source_spec_name(guard_source_spec sp, char buf[24]) {
    snprintf(buf, 24, "%s%s", src_names[sp.kind < GUARD_SRC_KINDS ? sp.kind : 0],
             sp.half == 1 ? "/a" : sp.half == 2 ? "/b" : "");
    return buf;
}

/* Which half an item belongs to: the low bit of a keyed hash of its text. */
int guard_source_half_of(const char *s, size_t n) { return 1 + (int)(rt_mix64(rt_fnv1a64(s, n) ^ 0x5eedULL) & 1); }

/* ---------------------------------------------------------------- loaded items */

typedef struct {
    uint32_t off, len;     /* the item's text */
    uint32_t t_off, t_len; /* its title (man: the page name; fortunes: empty) */
} item_t;

struct guard_texts {
    guard_source_spec spec;
    char *text;
    size_t len, cap;
    item_t *it;
    size_t n, cap_it;
};

size_t guard_texts_count(const guard_texts *t) { return t ? t->n : 0; }

void guard_texts_free(guard_texts *t) {
    if (!t) return;
    free(t->text);
    free(t->it);
    free(t);
}

static int put_text(guard_texts *t, const char *s, size_t n, uint32_t *off) {
    if (RT_GROW(t->text, t->cap, t->len + n + 1, "prompt source text")) return -1;
    memcpy(t->text + t->len, s, n);
    *off = (uint32_t)t->len;
    t->len += n;
    t->text[t->len++] = '\0';
    return 0;
}

/* Keep an item when its half matches; whitespace runs become one space. */
static int add_item(guard_texts *t, const char *title, size_t tl, const char *s, size_t n) {
    rt_buf b = {0};
    int sp = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\t' || ch == '\n' || ch == '\r' || ch == ' ') {
            if (!sp && rt_buf_append(&b, " ", 1)) goto fail;
            sp = 1;
        } else if (ch >= 0x20 || ch >= 0x80) {
            if (rt_buf_append(&b, s + i, 1)) goto fail;
            sp = 0;
        }
    }
    while (b.len && b.data[b.len - 1] == ' ') b.data[--b.len] = '\0';
    if (b.len < 12) {
        rt_buf_free(&b);
        return 0;
    }
    const char *key = tl ? title : b.data;
    size_t kl = tl ? tl : b.len;
    if (t->spec.half && guard_source_half_of(key, kl) != t->spec.half) {
        rt_buf_free(&b);
        return 0;
    }
    if (RT_GROW(t->it, t->cap_it, t->n + 1, "prompt source items")) goto fail;
    item_t *it = &t->it[t->n];
    memset(it, 0, sizeof *it);
    if (put_text(t, b.data, b.len, &it->off) || (tl && put_text(t, title, tl, &it->t_off))) goto fail;
    it->len = (uint32_t)b.len;
    it->t_len = (uint32_t)tl;
    t->n++;
    rt_buf_free(&b);
    return 0;
fail:
    rt_buf_free(&b);
    return -1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Regular files of dir whose names pass keep(), sorted (so a load does not depend on the
 * directory's order). */
static int list_files(const char *dir, int (*keep)(const char *), char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return RT_FAIL("%s: %s", dir, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !keep(e->d_name)) continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) || !S_ISREG(st.st_mode)) continue;
        if (RT_GROW(*out, cap, *n + 1, "file list") || !((*out)[*n] = rt_strdup(path))) {
            rc = -1;
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(*out, *n, sizeof **out, cmp_str);
    return rc;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int fortune_file(const char *name) { return strchr(name, '.') == NULL; }

/* The entries of one fortune file: text between lines holding only "%". */
static int parse_fortunes(guard_texts *t, const char *data, size_t len) {
    int rc = 0;
    size_t start = 0;
    for (size_t p = 0; p <= len && !rc; p++) {
        int sep = p == len || (data[p] == '%' && (p == 0 || data[p - 1] == '\n') && (p + 1 == len || data[p + 1] == '\n'));
        if (!sep) continue;
        size_t n = p > start ? p - start : 0;
        if (n >= 20 && n <= 400) rc = add_item(t, NULL, 0, data + start, n);
        start = p + 2;
        if (p < len) p++;
    }
    return rc;
}

static int load_fortunes(guard_texts *t, const char *dir) {
    char **files = NULL;
    size_t nf = 0;
    if (list_files(dir, fortune_file, &files, &nf)) return RT_FAIL("fortunes: %s (install Debian's fortunes)", rt_errmsg());
    int rc = 0;
    for (size_t f = 0; f < nf && !rc; f++) {
        char *data = NULL;
        size_t len = 0;
        if (rt_read_file(files[f], &data, &len)) {
            rc = RT_FAIL("fortunes: %s", rt_errmsg());
            break;
        }
        rc = parse_fortunes(t, data, len);
        free(data);
    }
    free_list(files, nf);
    return rc;
}

/* ---------------------------------------------------------------- man pages */

static int man_file(const char *name) {
    size_t n = strlen(name);
    return n > 3 && strchr(name, '.') != NULL;
}

/* The decompressed bytes of one page: zcat -f (also reads an uncompressed page). */
static int read_zcat(const char *path, rt_buf *out) {
    int fd[2];
    if (pipe(fd)) return RT_FAIL("pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"zcat", "-f", (char *)path, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, "zcat", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (e) {
        close(fd[0]);
        return RT_FAIL("zcat: %s (gzip is needed to read man pages)", strerror(e));
    }
    char buf[8192];
    ssize_t r;
    int rc = 0;
    while ((r = read(fd[0], buf, sizeof buf)) > 0)
        if (out->len < (1u << 20) && rt_buf_append(out, buf, (size_t)r)) rc = -1;
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!rc && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) rc = RT_FAIL("zcat %s failed", path);
    return rc;
}

/* Append roff text without its escapes (\fB, \-, \(aq, \*(xx, \&, ...). */
static int roff_text(rt_buf *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '"') continue;
        if (ch != '\\') {
            if (rt_buf_append(o, &ch, 1)) return -1;
            continue;
        }
        if (++i >= n) break;
        char e = s[i];
        if (e == 'f' || e == 's') { /* font or size: \fB, \f(CW, \f[B], \s-1 */
            if (i + 1 < n && s[i + 1] == '(') i += 3;
            else if (i + 1 < n && s[i + 1] == '[') {
                while (i < n && s[i] != ']') i++;
            } else {
                i++;
                if (e == 's' && i < n && (s[i] == '-' || s[i] == '+')) i++;
            }
        } else if (e == '-' || e == 'e') {
            if (rt_buf_append(o, e == '-' ? "-" : "\\", 1)) return -1;
        } else if (e == '(') {
            const char *rep = i + 2 < n && !strncmp(s + i + 1, "aq", 2) ? "'" : i + 2 < n && !strncmp(s + i + 1, "dq", 2) ? "\"" : "-";
            if (rt_buf_append(o, rep, 1)) return -1;
            i += 2;
        } else if (e == '*') {
            if (i + 1 < n && s[i + 1] == '(') i += 3;
            else if (i + 1 < n && s[i + 1] == '[') {
                while (i < n && s[i] != ']') i++;
            } else i++;
        } else if (e == ' ' || e == '~') {
            if (rt_buf_append(o, " ", 1)) return -1;
        }
        /* \& \c \% \: \| and anything else: nothing */
    }
    return 0;
}

/* Whether line l (n bytes, not NUL-terminated) is the request ".<name>" (name with its space). */
static int req(const char *l, size_t n, const char *name) {
    size_t k = strlen(name);
    return n >= k + 1 && !memcmp(l + 1, name, k);
}

/* One page: "name - what it is. From the description: ...", at most ~360 bytes. */
static int parse_man(guard_texts *t, const char *path, const char *data, size_t len) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    size_t bl = strcspn(base, ".");
    rt_buf name = {0}, desc = {0};
    int section = 0, rc = 0; /* 1 NAME, 2 DESCRIPTION */
    for (size_t p = 0; p < len && desc.len < 360;) {
        size_t e = p;
        while (e < len && data[e] != '\n') e++;
        const char *l = data + p;
        size_t n = e - p;
        p = e + 1;
        if (n >= 3 && (l[0] == '.' || l[0] == '\'')) {
            if (!strncmp(l + 1, "SH", 2) || !strncmp(l + 1, "Sh", 2)) {
                const char *h = l + 3;
                size_t hn = n - 3;
                while (hn && (*h == ' ' || *h == '"')) h++, hn--;
                section = hn >= 4 && !strncmp(h, "NAME", 4) ? 1 : hn >= 11 && !strncmp(h, "DESCRIPTION", 11) ? 2 : 0;
                continue;
            }
            if (section && (req(l, n, "Nd ") || req(l, n, "B ") || req(l, n, "I ") || req(l, n, "BR ") ||
                            req(l, n, "IR ") || req(l, n, "RB "))) {
                const char *a = memchr(l, ' ', n);
                rt_buf *o = section == 1 ? &name : &desc;
                if (a && (rc = rt_buf_append(o, " ", 1) || roff_text(o, a + 1, n - (size_t)(a + 1 - l)))) break;
            }
            continue;
        }
        rt_buf *o = section == 1 ? &name : section == 2 ? &desc : NULL;
        if (o && (rt_buf_append(o, " ", 1) || roff_text(o, l, n))) {
            rc = -1;
            break;
        }
    }
    if (!rc && name.len + desc.len > 20) {
        rt_buf item = {0};
        rc = rt_buf_printf(&item, "%s%s%.*s", name.data ? name.data : "", desc.len ? " From the description:" : "",
                           (int)RT_MIN(desc.len, (size_t)360), desc.data ? desc.data : "");
        if (!rc) rc = add_item(t, base, bl, item.data, item.len);
        rt_buf_free(&item);
    }
    rt_buf_free(&name);
    rt_buf_free(&desc);
    return rc;
}

typedef struct {
    uint64_t h;
    char *path;
} hashed;
static int cmp_hashed(const void *a, const void *b) {
    const hashed *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h ? 1 : strcmp(x->path, y->path);
}

/* Up to max_pages pages of sections 1, 5, 7 and 8 (a deterministic sample: the pages whose
 * name hashes lowest), each read through zcat. */
static int load_man(guard_texts *t, const char *dir, size_t max_pages) {
    static const char *const sections[] = {"man1", "man5", "man7", "man8"};
    char **all = NULL;
    size_t n_all = 0, cap = 0;
    int rc = 0;
    for (size_t s = 0; s < RT_ARRAY_LEN(sections) && !rc; s++) {
        char sub[1100], **f = NULL;
        size_t nf = 0;
        snprintf(sub, sizeof sub, "%s/%s", dir, sections[s]);
        if (list_files(sub, man_file, &f, &nf)) {
            rt_err_clear();
            continue; /* a section that is not there */
        }
        for (size_t i = 0; i < nf && !rc; i++) {
            if (RT_GROW(all, cap, n_all + 1, "man pages")) rc = -1;
            else all[n_all++] = f[i], f[i] = NULL;
        }
        free_list(f, nf);
    }
    if (!rc && n_all < 20)
        rc = RT_FAIL("man: only %zu manual pages under %s/man{1,5,7,8} (need 20; install man pages or use another source)",
                     n_all, dir);
    /* order by a hash of the file name, take the first max_pages of the wanted half */
    hashed *h = rc ? NULL : rt_calloc(n_all ? n_all : 1, sizeof *h, "man hashes");
    if (!rc && !h) rc = -1;
    for (size_t i = 0; !rc && i < n_all; i++) h[i] = (hashed){rt_mix64(rt_fnv1a64(all[i], strlen(all[i]))), all[i]};
    if (!rc) qsort(h, n_all, sizeof *h, cmp_hashed);
    rt_buf page = {0};
    for (size_t i = 0; !rc && i < n_all && t->n < max_pages; i++) {
        const char *slash = strrchr(h[i].path, '/'), *base = slash ? slash + 1 : h[i].path;
        if (t->spec.half && guard_source_half_of(base, strcspn(base, ".")) != t->spec.half) continue; /* not read */
        page.len = 0;
        if (read_zcat(h[i].path, &page)) {
            rt_err_clear(); /* an unreadable page is skipped */
            continue;
        }
        rc = parse_man(t, h[i].path, page.data ? page.data : "", page.len);
    }
    rt_buf_free(&page);
    free(h);
    free_list(all, n_all);
    return rc;
}

int guard_texts_load(guard_texts **out, guard_source_spec spec, const char *dir) {
    *out = NULL;
    if (spec.kind != GUARD_SRC_FORTUNES && spec.kind != GUARD_SRC_MAN) return RT_FAIL("prompt source: nothing to load");
    guard_texts *t = rt_calloc(1, sizeof *t, "prompt source");
    if (!t) return -1;
    t->spec = spec;
    int rc = spec.kind == GUARD_SRC_FORTUNES ? load_fortunes(t, dir ? dir : "/usr/share/games/fortunes")
                                             : load_man(t, dir ? dir : "/usr/share/man", 200);
    char nb[24];
    if (!rc && t->n < 10)
        rc = RT_FAIL("prompt source %s: only %zu items under %s", guard_source_spec_name(spec, nb), t->n,
                     dir ? dir : spec.kind == GUARD_SRC_FORTUNES ? "/usr/share/games/fortunes" : "/usr/share/man");
    if (rc) {
        guard_texts_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int guard_texts_parse(guard_texts **out, guard_source_spec spec, const char *name, const char *data, size_t len) {
    *out = NULL;
    if (spec.kind != GUARD_SRC_FORTUNES && spec.kind != GUARD_SRC_MAN) return RT_FAIL("prompt source: nothing to parse");
    guard_texts *t = rt_calloc(1, sizeof *t, "prompt source");
    if (!t) return -1;
    t->spec = spec;
    int rc = spec.kind == GUARD_SRC_FORTUNES ? parse_fortunes(t, data, len) : parse_man(t, name ? name : "page.1", data, len);
    if (rc) {
        guard_texts_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

const char *guard_texts_item(const guard_texts *t, size_t i, size_t *len, const char **title, size_t *title_len) {
    const item_t *it = &t->it[i % t->n];
    *len = it->len;
    if (title) *title = it->t_len ? t->text + it->t_off : "", *title_len = it->t_len;
    return t->text + it->off;
}
