/*
 * dist.c — the process group (dist.h): a thin layer over MPI, compiled to single-process
 * no-ops when RETORT_MPI is not defined (make MPI=0) or when no launcher started us.
 * Not the training policy (trainer.c decides what is reduced, gathered or broadcast).
 */
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/base.h"

#ifdef RETORT_MPI
#include <mpi.h>
#endif

static int g_active, g_rank, g_size = 1, g_local = 1;
static double g_comm_s;

int dist_compiled(void) {
#ifdef RETORT_MPI
    return 1;
#else
    return 0;
#endif
}
int dist_active(void) { return g_active && g_size > 1; }
int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_size(void) { return g_local; }
double dist_comm_seconds(void) { return g_comm_s; }

void dist_split(size_t n, int size, int rank, size_t *lo, size_t *hi) {
    size_t s = size > 0 ? (size_t)size : 1, r = (size_t)rank, q = n / s, rem = n % s;
    *lo = r * q + (r < rem ? r : rem);
    *hi = *lo + q + (r < rem ? 1 : 0);
}

size_t dist_peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = (size_t)strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024;
}

#ifdef RETORT_MPI

static const char *launcher_env(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return vars[i];
    return NULL;
}

/* MPI counts are int: pieces of at most this many elements */
#define PIECE ((size_t)1 << 30)

static int mpi_fail(int err, const char *call) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", err);
    return RT_FAIL("%s failed: %s", call, s);
}
#define MPI_CHECK(call)                                        \
    do {                                                       \
        int e_ = (call);                                       \
        if (e_ != MPI_SUCCESS) return mpi_fail(e_, #call);     \
    } while (0)

int dist_init(int *argc, char ***argv) {
    const char *env = launcher_env();
    if (!env || g_active) return 0;
    int provided = 0;
    int e = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (e != MPI_SUCCESS) return RT_FAIL("MPI_Init_thread failed (launched by mpirun: %s is set)", env);
    g_active = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_size(node, &g_local));
    MPI_Comm_free(&node);
    return 0;
}

void dist_finalize(void) {
    if (g_active) MPI_Finalize();
    g_active = 0;
}

void dist_abort(int code) {
    if (g_active) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    }
}

int dist_sum_begin(dist_sum *s, float *buf, size_t n, size_t bucket) {
    memset(s, 0, sizeof *s);
    if (!dist_active() || n == 0) return 0;
    if (bucket == 0) bucket = (size_t)1 << 22;
    if (bucket > PIECE) bucket = PIECE;
    s->buf = buf;
    s->n = n;
    s->bucket = bucket;
    s->nb = (n + bucket - 1) / bucket;
    s->req = rt_malloc_array(s->nb, sizeof(MPI_Request), "allreduce requests");
    if (!s->req) {
        s->nb = 0;
        return -1;
    }
    return 0;
}

/* Start the buckets (last first) that lie inside buf[from, n). */
static int sum_start(dist_sum *s, size_t from) {
    MPI_Request *req = s->req;
    for (; s->started < s->nb; s->started++) {
        size_t b = s->started, hi = s->n - b * s->bucket, lo = hi > s->bucket ? hi - s->bucket : 0;
        if (lo < from) break;
        int e = MPI_Iallreduce(MPI_IN_PLACE, s->buf + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req[b]);
        if (e != MPI_SUCCESS) return mpi_fail(e, "MPI_Iallreduce");
    }
    return 0;
}

int dist_sum_ready(dist_sum *s, size_t from) {
    if (s->nb == 0) return 0;
    double t0 = rt_now();
    int rc = sum_start(s, from);
    if (rc == 0 && s->started) { /* nonblocking collectives advance only inside MPI calls */
        int flag = 0, e = MPI_Testall((int)s->started, s->req, &flag, MPI_STATUSES_IGNORE);
        if (e != MPI_SUCCESS) rc = mpi_fail(e, "MPI_Testall (gradient allreduce)");
    }
    g_comm_s += rt_now() - t0;
    return rc;
}

int dist_sum_finish(dist_sum *s) {
    if (s->nb == 0) return 0;
    double t0 = rt_now();
    int rc = sum_start(s, 0);
    if (s->started) {
        int e = MPI_Waitall((int)s->started, s->req, MPI_STATUSES_IGNORE);
        if (e != MPI_SUCCESS && rc == 0) rc = mpi_fail(e, "MPI_Waitall (gradient allreduce)");
    }
    free(s->req);
    s->req = NULL;
    s->nb = 0;
    g_comm_s += rt_now() - t0;
    return rc;
}

int dist_allreduce_f32(float *buf, size_t n, size_t bucket) {
    dist_sum s;
    if (dist_sum_begin(&s, buf, n, bucket)) return -1;
    return dist_sum_finish(&s);
}

int dist_allreduce_f64(double *buf, size_t n) {
    if (!dist_active()) return 0;
    double t0 = rt_now();
    for (size_t o = 0; o < n; o += PIECE) {
        size_t k = n - o < PIECE ? n - o : PIECE;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    }
    g_comm_s += rt_now() - t0;
    return 0;
}

int dist_barrier(void) {
    if (!dist_active()) return 0;
    double t0 = rt_now();
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    g_comm_s += rt_now() - t0;
    return 0;
}

int dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max) {
    *min = *max = v;
    if (!dist_active()) return 0;
    MPI_CHECK(MPI_Allreduce(&v, min, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Allreduce(&v, max, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD));
    return 0;
}

int dist_bcast(void *buf, size_t bytes, int root) {
    if (!dist_active()) return 0;
    double t0 = rt_now();
    for (size_t o = 0; o < bytes; o += PIECE) {
        size_t k = bytes - o < PIECE ? bytes - o : PIECE;
        MPI_CHECK(MPI_Bcast((char *)buf + o, (int)k, MPI_BYTE, root, MPI_COMM_WORLD));
    }
    g_comm_s += rt_now() - t0;
    return 0;
}

/* int counts/displs for a v-collective; every piece must fit an int */
static int int_layout(const size_t *counts, const size_t *displs, int **ic, int **id) {
    *ic = rt_malloc_array((size_t)g_size, sizeof(int), "MPI counts");
    *id = rt_malloc_array((size_t)g_size, sizeof(int), "MPI counts");
    if (!*ic || !*id) return -1;
    for (int r = 0; r < g_size; r++) {
        if (counts[r] > INT_MAX || displs[r] > INT_MAX)
            return RT_FAIL("rank %d: a gather of %zu floats at offset %zu exceeds MPI's int counts; use more "
                           "ranks or a smaller model",
                           r, counts[r], displs[r]);
        (*ic)[r] = (int)counts[r];
        (*id)[r] = (int)displs[r];
    }
    return 0;
}

int dist_allgatherv_f32(float *buf, const size_t *counts, const size_t *displs) {
    if (!dist_active()) return 0;
    double t0 = rt_now();
    int *ic = NULL, *id = NULL, rc = int_layout(counts, displs, &ic, &id);
    if (rc == 0) {
        int e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, ic, id, MPI_FLOAT, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) rc = mpi_fail(e, "MPI_Allgatherv (parameters)");
    }
    free(ic);
    free(id);
    g_comm_s += rt_now() - t0;
    return rc;
}

int dist_gatherv_f32(const float *mine, float *full, const size_t *counts, const size_t *displs, int root) {
    if (!dist_active()) {
        if (full != mine) memcpy(full + displs[0], mine, counts[0] * sizeof(float));
        return 0;
    }
    double t0 = rt_now();
    int *ic = NULL, *id = NULL, rc = int_layout(counts, displs, &ic, &id);
    if (rc == 0) {
        int e = MPI_Gatherv(mine, ic[g_rank], MPI_FLOAT, full, ic, id, MPI_FLOAT, root, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) rc = mpi_fail(e, "MPI_Gatherv (optimizer state)");
    }
    free(ic);
    free(id);
    g_comm_s += rt_now() - t0;
    return rc;
}

int dist_scatterv_f32(const float *full, float *mine, const size_t *counts, const size_t *displs, int root) {
    if (!dist_active()) {
        if (full != mine) memcpy(mine, full + displs[0], counts[0] * sizeof(float));
        return 0;
    }
    double t0 = rt_now();
    int *ic = NULL, *id = NULL, rc = int_layout(counts, displs, &ic, &id);
    if (rc == 0) {
        int e = MPI_Scatterv(full, ic, id, MPI_FLOAT, mine, ic[g_rank], MPI_FLOAT, root, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) rc = mpi_fail(e, "MPI_Scatterv (optimizer state)");
    }
    free(ic);
    free(id);
    g_comm_s += rt_now() - t0;
    return rc;
}

int dist_gather_bytes(const void *mine, size_t n, rt_buf *all, int root) {
    if (!dist_active()) return rt_buf_append(all, mine, n);
    double t0 = rt_now();
    int rc = 0;
    for (int q = 0; q < g_size && rc == 0; q++) {
        if (q == root) {
            if (g_rank == root) rc = rt_buf_append(all, mine, n);
            continue;
        }
        if (g_rank == q) { /* length, then the bytes in pieces */
            uint64_t len = n;
            MPI_CHECK(MPI_Send(&len, 1, MPI_UINT64_T, root, 1, MPI_COMM_WORLD));
            for (size_t o = 0; o < n; o += PIECE)
                MPI_CHECK(MPI_Send((const char *)mine + o, (int)(n - o < PIECE ? n - o : PIECE), MPI_BYTE, root, 2,
                                   MPI_COMM_WORLD));
        } else if (g_rank == root) {
            uint64_t len = 0;
            MPI_CHECK(MPI_Recv(&len, 1, MPI_UINT64_T, q, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            if (rt_buf_reserve(all, (size_t)len)) return -1;
            for (size_t o = 0; o < len; o += PIECE) {
                size_t k = len - o < PIECE ? len - o : PIECE;
                MPI_CHECK(MPI_Recv(all->data + all->len, (int)k, MPI_BYTE, q, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
                all->len += k;
            }
            if (all->data) all->data[all->len] = 0;
        }
    }
    g_comm_s += rt_now() - t0;
    return rc;
}

#else /* no MPI: a group of one */

int dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const char *v = getenv(sizes[i]);
        if (v && strcmp(v, "1") != 0)
            return RT_FAIL("started by an MPI launcher with %s=%s ranks, but this retort was built with MPI=0: "
                           "every rank would train alone and write the same files; rebuild with MPI=1 (OpenMPI's "
                           "libopenmpi-dev) or run one process",
                           sizes[i], v);
    }
    return 0;
}
void dist_finalize(void) {}
void dist_abort(int code) { (void)code; }
int dist_sum_begin(dist_sum *s, float *buf, size_t n, size_t bucket) {
    memset(s, 0, sizeof *s);
    (void)buf;
    (void)n;
    (void)bucket;
    return 0;
}
int dist_sum_ready(dist_sum *s, size_t from) {
    (void)s;
    (void)from;
    return 0;
}
int dist_sum_finish(dist_sum *s) {
    (void)s;
    return 0;
}
int dist_allreduce_f32(float *buf, size_t n, size_t bucket) {
    (void)buf;
    (void)n;
    (void)bucket;
    return 0;
}
int dist_allreduce_f64(double *buf, size_t n) {
    (void)buf;
    (void)n;
    return 0;
}
int dist_barrier(void) { return 0; }
int dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max) {
    *min = *max = v;
    return 0;
}
int dist_bcast(void *buf, size_t bytes, int root) {
    (void)buf;
    (void)bytes;
    (void)root;
    return 0;
}
int dist_allgatherv_f32(float *buf, const size_t *counts, const size_t *displs) {
    (void)buf;
    (void)counts;
    (void)displs;
    return 0;
}
int dist_gatherv_f32(const float *mine, float *full, const size_t *counts, const size_t *displs, int root) {
    (void)root;
    if (full != mine) memcpy(full + displs[0], mine, counts[0] * sizeof(float));
    return 0;
}

int dist_scatterv_f32(const float *full, float *mine, const size_t *counts, const size_t *displs, int root) {
    (void)root;
    if (full != mine) memcpy(mine, full + displs[0], counts[0] * sizeof(float));
    return 0;
}
int dist_gather_bytes(const void *mine, size_t n, rt_buf *all, int root) {
    (void)root;
    return rt_buf_append(all, mine, n);
}

#endif
