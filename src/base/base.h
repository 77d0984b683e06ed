/*
 * base.h — the bottom room of retort: errors, checked allocation and I/O, atomic file
 * writes, a serialisable RNG, logging, timing, a terminal progress bar and UTF-8
 * validation / sanitizing / escaping.
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

/* Error kinds beside the message, for callers that must choose what to do (an HTTP status, a
 * retry) without reading the text. RT_FAIL records RT_ERR_OTHER, except that a message which
 * contains the previous one (the "%s: %s" context pattern above) keeps the previous kind;
 * RT_FAIL_KIND records a kind. rt_mem and rt_file record NOMEM, NOT_FOUND (ENOENT) and IO;
 * the gateway records BUSY for a locked database and NOT_FOUND for an unknown account. */
typedef enum {
    RT_ERR_NONE = 0,  /* no error recorded (after rt_err_clear) */
    RT_ERR_OTHER,     /* a failure without a more precise kind */
    RT_ERR_INVALID,   /* bad input: a field, a value, a file's contents */
    RT_ERR_NOT_FOUND, /* the named thing does not exist */
    RT_ERR_IO,        /* the operating system or a database failed */
    RT_ERR_BUSY,      /* try again later (a locked database, a full queue) */
    RT_ERR_NOMEM,     /* out of memory */
} rt_err_kind;
int rt_fail_kind_at(const char *src_file, int src_line, rt_err_kind kind, const char *fmt, ...) RT_PRINTF(4, 5);
#define RT_FAIL_KIND(kind, ...) rt_fail_kind_at(__FILE__, __LINE__, (kind), __VA_ARGS__)
rt_err_kind rt_errkind(void);
const char *rt_err_kind_name(rt_err_kind k); /* "invalid", "not_found", ... */
/* The one mapping from an error kind to an HTTP status (INVALID 400, NOT_FOUND 404, BUSY and
 * NOMEM 503, everything else 500). Every HTTP front (serve, the guard's admin routes) uses it. */
int rt_err_http_status(rt_err_kind k);

/* Invariants: RT_ASSERT(cond) checks a condition that only a bug can break (never bad input:
 * that gets an RT_FAIL). The Makefile sets RT_ASSERTS: 1 in `make san` and debug builds
 * (OPT=-O0/-Og) or when asked (RT_ASSERTS=1), else 0; without the Makefile it follows NDEBUG.
 * Off, it compiles to nothing (the condition is not evaluated, so it must have no side
 * effects). A failed assertion prints the condition and location and aborts. */
#if !defined(RT_ASSERTS)
#if defined(NDEBUG)
#define RT_ASSERTS 0
#else
#define RT_ASSERTS 1
#endif
#endif
void rt_assert_fail(const char *cond, const char *src_file, int src_line);
#if RT_ASSERTS
#define RT_ASSERT(cond) ((cond) ? (void)0 : rt_assert_fail(#cond, __FILE__, __LINE__))
#else
#define RT_ASSERT(cond) ((void)0)
#endif

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

/* Grow an array to hold at least `need` elements of elem_size bytes: capacity doubles from
 * 16, *p is realloc'ed (contents kept) and *cap updated. Returns 0, or -1 with "out of
 * memory (... for WHAT)" and *p, *cap unchanged. pp is the address of the array pointer;
 * RT_GROW(ptr, cap, need, what) passes it and the element size for you. */
int rt_grow(void *pp, size_t *cap, size_t need, size_t elem_size, const char *what);
#define RT_GROW(ptr, cap, need, what) rt_grow(&(ptr), &(cap), (need), sizeof *(ptr), (what))

/* Hash map from uint64_t keys to uint64_t values (open addressing, linear probing, load at
 * most 1/2, backward-shift deletion; keys are mixed with rt_mix64, so sequential ids are
 * fine). Zero-initialise (or rt_map_init) before use; not thread-safe. Iteration order is
 * the slot order: do not let results depend on it. */
typedef struct {
    uint64_t *keys;  /* (cap) */
    uint64_t *vals;  /* (cap) */
    uint8_t *used;   /* (cap) 1 = slot holds a key */
    size_t cap;      /* 0 or a power of two */
    size_t n;        /* keys held */
} rt_map;
void rt_map_init(rt_map *m);
void rt_map_free(rt_map *m);
/* Pointer to key's value, or NULL when absent (valid until the next put or remove). */
uint64_t *rt_map_get(const rt_map *m, uint64_t key);
/* Pointer to key's value, inserting it with value 0 when absent (*created = 1 then; created
 * may be NULL). NULL when out of memory. */
uint64_t *rt_map_put(rt_map *m, uint64_t key, int *created);
/* Remove key; returns 1 if it was present. */
int rt_map_remove(rt_map *m, uint64_t key);
/* Bytes held by the table. */
size_t rt_map_bytes(const rt_map *m);

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
/* splitmix64: a stateless mixer, for deriving seeds: rt_mix64(x + 0x9e3779b97f4a7c15). */
uint64_t rt_splitmix64(uint64_t x);
/* The one 64-bit mixer (splitmix64's finaliser, a bijection with full avalanche): for hash
 * tables, MinHash and band keys. Not keyed and not cryptographic. */
static inline uint64_t rt_mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

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
/* JSON numbers (json.c) — the one format for a double written as JSON text: the shortest of
 * %.15g / %.16g / %.17g that reads back to the same double (0.8, not 0.80000000000000004), with
 * ".0" added when that has no '.' or exponent, so a reader still sees a real. Non-finite
 * values are written as null (JSON has no NaN). Needs cap >= RT_FMT_DOUBLE_CAP. */
#define RT_FMT_DOUBLE_CAP 32
void rt_fmt_double(char *out, size_t cap, double v);
/* Rewrite, in place, every real number (one with '.', 'e' or 'E') outside strings in the JSON
 * text s into rt_fmt_double's form; integers and strings are untouched. For jansson's
 * json_dumps output (which prints reals with 17 digits): `rt_json_reals(json_dumps(...))`.
 * Returns s (NULL stays NULL). A number whose short form would not be shorter is kept. */
char *rt_json_reals(char *s);

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

/* ---------------------------------------------------------------- UTF-8 (utf8.c) */

/* The one UTF-8 module: every place that turns untrusted bytes into JSON, a log line, a
 * terminal line or a fixed-size field uses these. Validity is RFC 3629's (no overlongs, no
 * surrogates, nothing past U+10FFFF). Replacement follows Unicode's "maximal subpart"
 * practice (what Python's decode(errors="replace") and WHATWG do): each maximal prefix of
 * a valid sequence that cannot be completed becomes one U+FFFD, any other bad byte one U+FFFD.
 * None of these allocate except through the rt_buf they append to. */

/* 1 when s[0..len) is entirely valid UTF-8 (NUL bytes are valid characters). */
int rt_utf8_valid(const char *s, size_t len);
/* Append s[0..len) to b as valid UTF-8 (bad sequences become U+FFFD). b->data is non-NULL
 * afterwards even when len == 0. */
int rt_utf8_sanitize(rt_buf *b, const char *s, size_t len);
/* Largest n <= max (and <= len) such that cutting s at n does not split a valid multi-byte
 * character: for valid input, a character boundary. */
size_t rt_utf8_truncate(const char *s, size_t len, size_t max);
/* Copy the NUL-terminated src into dst[cap] as valid UTF-8 (sanitized), cut on a character
 * boundary to fit; always NUL-terminates (cap >= 1). Returns the bytes written (no NUL). */
size_t rt_utf8_copy(char *dst, size_t cap, const char *src);
/* Largest n <= len such that s[0..n) does not end inside an incomplete (yet possibly valid)
 * multi-byte sequence: what a stream can send now without splitting a character. */
size_t rt_utf8_complete_prefix(const char *s, size_t len);
/* Append s[0..len) for a log line or a terminal: valid printable UTF-8 as is; control
 * characters (C0, DEL, C1) as \n \r \t \\ or \xNN / \u{NN}; invalid bytes as \xNN. So no
 * input can start a new log line or send an escape sequence to a terminal. */
int rt_utf8_escape(rt_buf *b, const char *s, size_t len);
/* rt_utf8_escape of the NUL-terminated s into out[cap] (cut on a boundary to fit); returns
 * out. For printf("%s") of untrusted names and reasons. */
const char *rt_utf8_printable(char *out, size_t cap, const char *s);

/* FNV-1a 64-bit (non-cryptographic; for hash tables and dedup keys). */
uint64_t rt_fnv1a64(const void *data, size_t len);

/* ---------------------------------------------------------------- OpenMP */

/* OpenMP without #pragma omp in the sources, so a build without OpenMP (make OPENMP=0) has
 * no unknown pragmas and no calls into libgomp: RT_OMP(parallel for schedule(static)) is
 * `#pragma omp parallel for schedule(static)` under -fopenmp and nothing otherwise.
 * rt_omp_threads() is omp_get_max_threads() (1 without OpenMP), rt_omp_thread() the
 * calling thread's number in the team (0 without), rt_omp_set_threads(n) omp_set_num_threads
 * (ignored without). */
#if defined(_OPENMP)
#define RT_PRAGMA_(x) _Pragma(#x)
#define RT_OMP(x) RT_PRAGMA_(omp x)
#else
#define RT_OMP(x)
#endif
int rt_omp_threads(void);
int rt_omp_thread(void);
void rt_omp_set_threads(int n);

#define RT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RT_MAX(a, b) ((a) > (b) ? (a) : (b))
#define RT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* RETORT_BASE_H */
