/*
 * base.h — the bottom room of retort: errors, checked allocation and I/O, atomic file
 * writes, a serialisable RNG, logging, timing and a terminal progress bar.
 *
 * Everything above depends on this; this depends on nothing but libc.
 *
 * Error convention (whole library): a fallible function returns 0 on success and -1 on
 * failure (or NULL for pointer returns), after recording a message with RT_FAIL(). The
 * message is per-thread and says what went wrong in a user's words: the file, field or
 * line, what was expected, and a hint. Callers that add context use RT_FAIL again with
 * "%s" of rt_errmsg() (rt_fail copies before formatting, so that is safe).
 * Only src/cli may exit(); the library never does.
 */
#ifndef RETORT_BASE_H
#define RETORT_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define RT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RT_PRINTF(a, b)
#endif

/* ---------------------------------------------------------------- errors */

/* Record an error message (printf-style) for this thread; returns -1. */
int rt_fail_at(const char *src_file, int src_line, const char *fmt, ...) RT_PRINTF(3, 4);
#define RT_FAIL(...) rt_fail_at(__FILE__, __LINE__, __VA_ARGS__)
/* The last error message recorded on this thread ("" if none). */
const char *rt_errmsg(void);
/* Source location of the last error ("file.c:123"), for RETORT_DEBUG=1 output. */
const char *rt_errloc(void);
void rt_err_clear(void);

/* ---------------------------------------------------------------- memory */

/* malloc/calloc/realloc that record "out of memory (N bytes for WHAT)" and return NULL.
 * Sizes are checked for overflow (rt_calloc and rt_malloc_array). */
void *rt_malloc(size_t n, const char *what);
void *rt_calloc(size_t count, size_t size, const char *what);
void *rt_realloc(void *p, size_t n, const char *what);
void *rt_malloc_array(size_t count, size_t size, const char *what);
/* 64-byte aligned, zeroed; free with rt_free_aligned. */
void *rt_alloc_aligned(size_t n, const char *what);
void rt_free_aligned(void *p);
char *rt_strdup(const char *s);
/* a*b with overflow check: returns 0 and sets *out, or -1 (with an error) on overflow. */
int rt_mul_size(size_t a, size_t b, size_t *out);

/* Bytes of memory this process may still use: MemAvailable + SwapFree from /proc/meminfo
 * (SIZE_MAX when unknown), capped by the environment variable RETORT_MEM_LIMIT ("2G", "512M",
 * bytes) when set. For refusing a file's declared shapes before allocating them. */
size_t rt_mem_available(void);

/* Growable byte buffer. */
typedef struct {
    char *data;   /* (len) bytes, always NUL-terminated past len when non-NULL */
    size_t len;
    size_t cap;
} rt_buf;
int rt_buf_reserve(rt_buf *b, size_t extra);
int rt_buf_append(rt_buf *b, const void *p, size_t n);
int rt_buf_printf(rt_buf *b, const char *fmt, ...) RT_PRINTF(2, 3);
void rt_buf_free(rt_buf *b);

/* ---------------------------------------------------------------- files */

/* Open a file for reading that must be a regular file (models, caches: anything mapped or
 * seeked): never blocks on a FIFO without a writer, and refuses FIFOs, directories, devices
 * and sockets with an error naming path and what it is. Returns the fd (O_CLOEXEC, blocking
 * mode), or -1 with the error; *size gets the file's size when size is non-NULL. */
int rt_open_regular(const char *path, int64_t *size);
/* Read a whole file into memory (NUL-terminated). path "-" reads stdin. Streams (pipes,
 * `<(...)`) are read to their end; a directory is refused by name. */
int rt_read_file(const char *path, char **data, size_t *len);
/* fwrite/fread that fail with a message naming the file on short count. */
int rt_fwrite(const void *p, size_t size, size_t n, FILE *f, const char *path);
int rt_fread(void *p, size_t size, size_t n, FILE *f, const char *path);
int rt_file_exists(const char *path);
int64_t rt_file_size(const char *path); /* -1 with error if it cannot be stat'ed */
/* Create a directory and its parents (like mkdir -p). */
int rt_mkdir_p(const char *path);

/* Atomic write: everything goes to "<path>.tmp.<pid>", then fsync, rename over path, and
 * fsync of the directory. A crash at any moment leaves either the old or the new file. */
typedef struct {
    FILE *f;
    char *path;
    char *tmp_path;
} rt_atomic_file;
/* rt_atomic_open first removes "<path>.tmp.<pid>" files left by processes that no longer
 * exist (killed mid-write; rt_atomic_sweep), so repeated kills do not pile up temp files. */
int rt_atomic_open(rt_atomic_file *af, const char *path);
int rt_atomic_commit(rt_atomic_file *af); /* closes; on failure removes the temp file */
void rt_atomic_abort(rt_atomic_file *af); /* closes and removes the temp file */
/* Remove "<path>.tmp.<pid>" files whose pid is not a live process; returns how many were
 * removed (each is logged). Temp files of live processes (this one included) are kept. */
size_t rt_atomic_sweep(const char *path);
/* One-shot: write buffer atomically. */
int rt_write_file_atomic(const char *path, const void *data, size_t len);

/* ---------------------------------------------------------------- rng */

/* xoshiro256** — small, fast, and its whole state is four words, so checkpoints can
 * store it and a resumed run draws the same numbers. */
typedef struct {
    uint64_t s[4];
} rt_rng;
void rt_rng_seed(rt_rng *r, uint64_t seed);
uint64_t rt_rng_u64(rt_rng *r);
uint32_t rt_rng_u32(rt_rng *r);
double rt_rng_double(rt_rng *r);           /* [0, 1) with 53 random bits */
float rt_rng_float(rt_rng *r);             /* [0, 1) with 24 random bits */
uint64_t rt_rng_below(rt_rng *r, uint64_t n); /* uniform in [0, n), unbiased; n > 0 */
double rt_rng_normal(rt_rng *r);           /* standard normal (Box–Muller, no cached spare) */
/* splitmix64: a stateless mixer, for deriving seeds. */
uint64_t rt_splitmix64(uint64_t x);

/* ---------------------------------------------------------------- logging & time */

typedef enum { RT_LOG_DEBUG = 0, RT_LOG_INFO = 1, RT_LOG_WARN = 2, RT_LOG_ERROR = 3 } rt_log_level;
void rt_log_set_level(rt_log_level level);
rt_log_level rt_log_get_level(void);
void rt_log(rt_log_level level, const char *fmt, ...) RT_PRINTF(2, 3);
#define rt_info(...) rt_log(RT_LOG_INFO, __VA_ARGS__)
#define rt_warn(...) rt_log(RT_LOG_WARN, __VA_ARGS__)
#define rt_debug(...) rt_log(RT_LOG_DEBUG, __VA_ARGS__)

double rt_now(void);       /* monotonic seconds */
double rt_wall_time(void); /* seconds since the Unix epoch */
/* "1h02m", "3m05s", "12.3s" */
void rt_fmt_duration(char *out, size_t cap, double seconds);
/* "1.23M", "456k", "12.3G" (SI) */
void rt_fmt_si(char *out, size_t cap, double v);

/* ---------------------------------------------------------------- progress bar */

/* A one-line progress bar on stderr: "label [=====>    ] 123/456 27% | extra | 1m02s left".
 * Redraws in place on a terminal (at most ~10 times a second); when stderr is not a
 * terminal it prints a plain line every `quiet_every` seconds (default 10) and at the end. */
typedef struct {
    char label[48];
    size_t total;
    size_t done;
    double t_start;
    double t_last_draw;
    int is_tty;
    int finished;
    double quiet_every;
} rt_progress;
void rt_progress_init(rt_progress *p, const char *label, size_t total);
/* extra: short status text such as "loss 3.21 | 5.2k tok/s" (may be NULL). */
void rt_progress_update(rt_progress *p, size_t done, const char *extra);
void rt_progress_finish(rt_progress *p, const char *extra);
/* End the line where it stands (an interrupted run): the count stays, the line is finished. */
void rt_progress_stop(rt_progress *p, const char *extra);

/* ---------------------------------------------------------------- small utils */

/* Parse helpers for CLI-style values; return -1 with a message naming `what`. */
int rt_parse_size(const char *s, const char *what, size_t *out);
int rt_parse_i64(const char *s, const char *what, int64_t *out);
int rt_parse_u64(const char *s, const char *what, uint64_t *out);
int rt_parse_double(const char *s, const char *what, double *out);
int rt_parse_float(const char *s, const char *what, float *out);

/* FNV-1a 64-bit (non-cryptographic; for hash tables and dedup keys). */
uint64_t rt_fnv1a64(const void *data, size_t len);

#define RT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RT_MAX(a, b) ((a) > (b) ? (a) : (b))
#define RT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* RETORT_BASE_H */
