/*
 * file.c — checked file I/O and atomic replacement (temp file, fsync, rename, fsync dir).
 * Not a format layer: it moves bytes; src/formats and others give them meaning.
 */
#define _POSIX_C_SOURCE 200809L
#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

int rt_open_regular(const char *path, int64_t *size) {
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return RT_FAIL("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return RT_FAIL("%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return RT_FAIL("%s: is %s, not a regular file; give the path of a file", path, file_kind(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return RT_FAIL("%s: fcntl: %s", path, strerror(e));
    }
    if (size) *size = (int64_t)st.st_size;
    return fd;
}

int rt_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return RT_FAIL_KIND(errno == ENOENT ? RT_ERR_NOT_FOUND : RT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (!is_stdin && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return RT_FAIL("%s: is a directory; give the path of a file", path);
    }
    rt_buf b = {0};
    char chunk[1 << 16];
    for (;;) {
        size_t n = fread(chunk, 1, sizeof chunk, f);
        if (n && rt_buf_append(&b, chunk, n)) {
            if (!is_stdin) fclose(f);
            rt_buf_free(&b);
            return -1;
        }
        if (n < sizeof chunk) {
            if (ferror(f)) {
                int e = errno;
                if (!is_stdin) fclose(f);
                rt_buf_free(&b);
                return RT_FAIL_KIND(RT_ERR_IO, "%s: read error: %s", path, strerror(e));
            }
            break;
        }
    }
    if (!is_stdin) fclose(f);
    if (!b.data && rt_buf_reserve(&b, 0)) return -1;
    *data = b.data;
    *len = b.len;
    return 0;
}

int rt_fwrite(const void *p, size_t size, size_t n, FILE *f, const char *path) {
    if (n == 0 || size == 0) return 0;
    if (fwrite(p, size, n, f) != n)
        return RT_FAIL_KIND(RT_ERR_IO, "%s: write failed: %s (disk full?)", path ? path : "(file)", strerror(errno));
    return 0;
}

int rt_fread(void *p, size_t size, size_t n, FILE *f, const char *path) {
    if (n == 0 || size == 0) return 0;
    if (fread(p, size, n, f) != n) {
        if (feof(f)) return RT_FAIL("%s: unexpected end of file (truncated?)", path ? path : "(file)");
        return RT_FAIL_KIND(RT_ERR_IO, "%s: read failed: %s", path ? path : "(file)", strerror(errno));
    }
    return 0;
}

int rt_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int64_t rt_file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        RT_FAIL_KIND(errno == ENOENT ? RT_ERR_NOT_FOUND : RT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    return (int64_t)st.st_size;
}

int rt_mkdir_p(const char *path) {
    char *p = rt_strdup(path);
    if (!p) return -1;
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                RT_FAIL_KIND(RT_ERR_IO, "%s: cannot create directory: %s", p, strerror(e));
                free(p);
                return -1;
            }
            p[i] = c;
        }
    }
    free(p);
    return 0;
}

size_t rt_atomic_sweep(const char *path) {
    char *dcopy = rt_strdup(path), *bcopy = rt_strdup(path);
    size_t removed = 0;
    const char *dpath = dcopy ? dirname(dcopy) : NULL; /* dcopy itself or "." */
    DIR *dir = dpath && bcopy ? opendir(dpath) : NULL;
    if (dir) {
        const char *base = basename(bcopy);
        size_t bl = strlen(base);
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            const char *n = de->d_name;
            if (strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5)) continue;
            char *end = NULL;
            errno = 0;
            long pid = strtol(n + bl + 5, &end, 10);
            if (errno || !end || *end || end == n + bl + 5 || pid <= 0 || pid == (long)getpid()) continue;
            if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
            size_t plen = strlen(dpath) + strlen(n) + 2;
            char *full = rt_malloc(plen, "a temp file name");
            if (!full) break;
            snprintf(full, plen, "%s/%s", dpath, n);
            if (unlink(full) == 0) {
                removed++;
                rt_info("removed %s, left by process %ld which no longer runs", full, pid);
            }
            free(full);
        }
        closedir(dir);
    }
    free(dcopy);
    free(bcopy);
    return removed;
}

int rt_atomic_open(rt_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    (void)rt_atomic_sweep(path);
    af->path = rt_strdup(path);
    if (!af->path) return -1;
    size_t n = strlen(path) + 48;
    af->tmp_path = rt_malloc(n, "a temp file name");
    if (!af->tmp_path) {
        free(af->path);
        return -1;
    }
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        int e = errno;
        RT_FAIL_KIND(RT_ERR_IO, "%s: cannot create temp file %s: %s", path, af->tmp_path, strerror(e));
        free(af->path);
        free(af->tmp_path);
        memset(af, 0, sizeof *af);
        return -1;
    }
    return 0;
}

void rt_atomic_abort(rt_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

int rt_atomic_commit(rt_atomic_file *af) {
    int rc = 0;
    if (fflush(af->f) != 0) rc = RT_FAIL_KIND(RT_ERR_IO, "%s: write failed: %s (disk full?)", af->path, strerror(errno));
    if (!rc && fsync(fileno(af->f)) != 0) rc = RT_FAIL_KIND(RT_ERR_IO, "%s: fsync failed: %s", af->path, strerror(errno));
    if (fclose(af->f) != 0 && !rc) rc = RT_FAIL_KIND(RT_ERR_IO, "%s: close failed: %s", af->path, strerror(errno));
    af->f = NULL;
    if (!rc && rename(af->tmp_path, af->path) != 0)
        rc = RT_FAIL_KIND(RT_ERR_IO, "%s: cannot rename temp file into place: %s", af->path, strerror(errno));
    if (rc) {
        unlink(af->tmp_path);
    } else {
        /* Make the rename itself durable. */
        char *d = rt_strdup(af->path);
        if (d) {
            int fd = open(dirname(d), O_RDONLY | O_DIRECTORY);
            if (fd >= 0) {
                (void)fsync(fd);
                close(fd);
            }
            free(d);
        }
    }
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return rc;
}

int rt_write_file_atomic(const char *path, const void *data, size_t len) {
    rt_atomic_file af;
    if (rt_atomic_open(&af, path)) return -1;
    if (rt_fwrite(data, 1, len, af.f, path)) {
        rt_atomic_abort(&af);
        return -1;
    }
    return rt_atomic_commit(&af);
}
