/*
 * dist.h — the process group of a data-parallel run: MPI (OpenMPI, MPICH, a vendor MPI)
 * when retort is built with MPI=1 AND started by a launcher (mpirun, mpiexec, srun), else
 * one process of rank 0 in a group of size 1, where every call below is a cheap no-op
 * that returns success. Nothing here needs MPI at run time unless a launcher started us.
 *
 * Contract:
 *  - dist_init is called once, by the program (src/cli), before anything else; it reads
 *    the launcher's environment and initialises MPI with MPI_THREAD_FUNNELED (only the
 *    main thread calls MPI; OpenMP workers never do). dist_finalize at exit.
 *  - Every collective below must be called by every rank, in the same order, with the same
 *    sizes (MPI's rule). Sizes are size_t; counts above INT_MAX are split into pieces.
 *  - Errors from MPI are returned as -1 with an RT_FAIL message naming the call and
 *    MPI's own error string (the communicator uses MPI_ERRORS_RETURN).
 *  - Sums of floats depend on the reduction order MPI chooses; for a fixed rank count,
 *    message size and MPI build that order is fixed, so a run is bit-reproducible, but
 *    N ranks are not bit-identical to one rank (see docs/mpi.md).
 *  - dist_abort prints nothing itself: the caller prints its error first, then the whole
 *    job stops (MPI_Abort), so an error on any rank ends every rank with that message.
 *
 * What this is not: the training loop (trainer.c) or any policy about what to shard.
 */
#ifndef RETORT_DIST_H
#define RETORT_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

/* Initialise when a launcher started us (env OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK or
 * MPI_LOCALNRANKS); otherwise stay a group of one. Returns 0, or -1 with an error (built with
 * MPI=0 but launched as several ranks: they would all write the same files). */
int dist_init(int *argc, char ***argv);
void dist_finalize(void);
/* 1 when built with MPI (MPI=1), whether or not this process was launched by mpirun. */
int dist_compiled(void);
/* 1 when running under MPI with more than one rank. */
int dist_active(void);
int dist_rank(void);
int dist_size(void);
/* Ranks on this machine (the launcher's local size; 1 without MPI). */
int dist_local_size(void);
/* Stop every rank with exit code code (returns only without MPI, doing nothing). */
void dist_abort(int code);

/* In-place sums over all ranks. The f32 sum runs in buckets of at most bucket floats
 * (0 = 4 Mi floats), each a non-blocking MPI_Iallreduce, all in flight together and taken
 * from the END of buf first (the order in which a backward pass finishes them).
 * Adds the time spent to dist_comm_seconds(). */
int dist_allreduce_f32(float *buf, size_t n, size_t bucket);
/* The same sum started piece by piece while the caller still computes (the gradient
 * allreduce overlapped with the backward pass): the same buckets, cut from the end of buf,
 * started in the same order (last first), so the same sums as dist_allreduce_f32.
 *   dist_sum_begin   starts nothing;
 *   dist_sum_ready   declares buf[from, n) final: starts every bucket inside it not yet
 *                    started, then lets MPI progress the ones in flight (MPI_Testall);
 *   dist_sum_finish  starts the rest, waits for all, releases (also on error).
 * buf must not be touched between the start of a bucket and dist_sum_finish. Every rank makes
 * the same sequence of starts (MPI's rule for collectives); the from values of the calls may
 * differ between ranks only in ways that start the same buckets in the same order, which
 * holds when every rank runs the same model. Time in these calls adds to dist_comm_seconds().
 * Outside MPI (or one rank) all three do nothing. */
typedef struct {
    float *buf;
    size_t n, bucket, nb; /* nb buckets of at most bucket floats */
    size_t started;       /* buckets started so far, from the end of buf */
    void *req;            /* (nb) MPI requests, owned */
} dist_sum;
int dist_sum_begin(dist_sum *s, float *buf, size_t n, size_t bucket);
int dist_sum_ready(dist_sum *s, size_t from);
int dist_sum_finish(dist_sum *s);
int dist_allreduce_f64(double *buf, size_t n);
/* Wait for every rank (adds to dist_comm_seconds()). */
int dist_barrier(void);
/* Minimum and maximum of v over all ranks. */
int dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max);
/* rank root's bytes to every rank. */
int dist_bcast(void *buf, size_t bytes, int root);
/* In place: rank r contributes buf[displs[r] .. displs[r]+counts[r]); afterwards every rank
 * holds all of them. counts/displs (size) floats. */
int dist_allgatherv_f32(float *buf, const size_t *counts, const size_t *displs);
/* Rank r's piece mine (counts[r] floats) → full (at displs[r]) on root only; full may be
 * NULL on other ranks. */
int dist_gatherv_f32(const float *mine, float *full, const size_t *counts, const size_t *displs, int root);
/* Root's full (counts/displs layout) → each rank's piece mine (counts[r] floats); full is
 * read on root only. */
int dist_scatterv_f32(const float *full, float *mine, const size_t *counts, const size_t *displs, int root);
/* Every rank's bytes (n of them at mine) appended to *all on root, in rank order (root's own
 * first when root is 0); any sizes (sent in pieces). *all is untouched on other ranks. */
int dist_gather_bytes(const void *mine, size_t n, rt_buf *all, int root);
/* Seconds spent in collectives since the start (wall time, this rank). */
double dist_comm_seconds(void);
/* Peak resident memory of this process in bytes (VmHWM), 0 if unknown. */
size_t dist_peak_rss(void);

/* Contiguous split of n items over size ranks: rank r gets [*lo, *hi); the first n % size
 * ranks get one more (deterministic, independent of MPI). */
void dist_split(size_t n, int size, int rank, size_t *lo, size_t *hi);

#endif /* RETORT_DIST_H */
