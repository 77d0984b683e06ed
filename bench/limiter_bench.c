/*
 * limiter_bench.c — the shared rate limiter's verdicts per second on a database, the
 * one-statement path (UPDATE ... RETURNING) against the transaction path it replaced (BEGIN,
 * INSERT ... ON CONFLICT ... RETURNING, UPDATE, COMMIT), in one process, runs interleaved so
 * the machine's load falls on both alike. T threads, each with its own limiter (its own
 * connection, as T replicas), do R requests each: admit then settle, as a request does. Two
 * cases: every thread on its own account (no lock contention: the round trips) and all on one
 * account (they queue on its row lock: the lock is held for one statement instead of four).
 * One JSON line per run. Not a test: it asserts nothing.
 *
 * usage: limiter_bench DB_URL_OR_PATH [threads (8)] [requests per thread (500)] [rounds (3)]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/base.h"
#include "gateway/gateway.h"

typedef struct {
    gw_limiter *l;
    int64_t account;
    int reqs, admitted, errors;
} worker;

static const gw_limits LIM = {100000000, 1000000000, 0}; /* never refuses: every verdict takes */

static void *run(void *arg) {
    worker *w = arg;
    for (int i = 0; i < w->reqs; i++) {
        gw_limit_verdict v;
        double now = rt_now();
        if (gw_limiter_admit(w->l, w->account, &LIM, now, 100, &v)) {
            w->errors++;
            continue;
        }
        w->admitted += v.ok;
        gw_limiter_settle(w->l, w->account, &LIM, now, 100, 20);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: limiter_bench DB [threads] [requests per thread] [rounds]\n");
        return 2;
    }
    int nt = argc > 2 ? atoi(argv[2]) : 8, reqs = argc > 3 ? atoi(argv[3]) : 500, rounds = argc > 4 ? atoi(argv[4]) : 3;
    if (nt < 1 || nt > 64 || reqs < 1 || rounds < 1) {
        fprintf(stderr, "limiter_bench: threads 1..64, requests and rounds >= 1\n");
        return 2;
    }
    gw_db *db = NULL;
    if (gw_db_open(&db, argv[1])) {
        fprintf(stderr, "limiter_bench: %s\n", rt_errmsg());
        return 1;
    }
    int64_t ids[64];
    for (int i = 0; i < nt; i++) {
        char name[32], key[GW_KEY_MAX];
        gw_account a;
        snprintf(name, sizeof name, "bench%d-%ld", i, (long)time(NULL));
        if (gw_key_create(db, name, &LIM, 0, rt_now(), key, &a)) {
            fprintf(stderr, "limiter_bench: %s\n", rt_errmsg());
            return 1;
        }
        ids[i] = a.id;
    }
    worker w[64];
    pthread_t th[64];
    for (int round = 0; round < rounds; round++)
        for (int shared_account = 0; shared_account < 2; shared_account++)
            for (int txn = 0; txn < 2; txn++) {
                for (int i = 0; i < nt; i++) {
                    w[i] = (worker){NULL, shared_account ? ids[0] : ids[i], reqs, 0, 0};
                    if (gw_limiter_new_shared(&w[i].l, db)) {
                        fprintf(stderr, "limiter_bench: %s\n", rt_errmsg());
                        return 1;
                    }
                    gw_limiter_use_transactions(w[i].l, txn);
                    gw_limit_verdict v; /* the account's row exists before the clock starts */
                    gw_limiter_admit(w[i].l, w[i].account, &LIM, rt_now(), 0, &v);
                }
                double t0 = rt_now();
                for (int i = 0; i < nt; i++) pthread_create(&th[i], NULL, run, &w[i]);
                int admitted = 0, errors = 0;
                for (int i = 0; i < nt; i++) {
                    pthread_join(th[i], NULL);
                    admitted += w[i].admitted;
                    errors += w[i].errors;
                    gw_limiter_free(w[i].l);
                }
                double s = rt_now() - t0;
                printf("{\"round\":%d,\"path\":\"%s\",\"accounts\":\"%s\",\"threads\":%d,\"requests\":%d,"
                       "\"admitted\":%d,\"errors\":%d,\"seconds\":%.3f,\"requests_per_s\":%.1f}\n",
                       round, txn ? "transactions" : "one_statement", shared_account ? "one" : "own", nt, nt * reqs,
                       admitted, errors, s, nt * reqs / s);
                fflush(stdout);
            }
    gw_db_close(db);
    return 0;
}
