/*
 * fuzz_shards.c — token shards (`retort train --shards DIR` writes train.bin and val.bin;
 * `--data DIR` reads them) through dataset_load with a 512-token vocabulary. The input is
 * split at the offset its first two bytes give: train.bin before, val.bin after. Invariant:
 * every token of an accepted dataset is inside the vocabulary.
 */
#include "fuzz_common.h"

#include <sys/stat.h>

#include "train/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static char dir[512];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/retort-fuzz-shards-%ld", t && *t ? t : "/tmp", (long)getpid());
        FZ_CHECK(rt_mkdir_p(dir) == 0);
    }
    size_t cut = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 1);
    const uint8_t *body = data + 2;
    size_t blen = size - 2;
    if (cut > blen) cut = blen;
    char p[600];
    snprintf(p, sizeof p, "%s/train.bin", dir);
    fz_write_file(p, body, cut);
    snprintf(p, sizeof p, "%s/val.bin", dir);
    fz_write_file(p, body + cut, blen - cut);
    dataset ds;
    memset(&ds, 0, sizeof ds);
    if (dataset_load(&ds, dir, 512) == 0) {
        for (size_t i = 0; i < ds.n_train; i++) FZ_CHECK(ds.train[i] >= 0 && ds.train[i] < 512);
        for (size_t i = 0; i < ds.n_val; i++) FZ_CHECK(ds.val[i] >= 0 && ds.val[i] < 512);
        dataset_free(&ds);
    } else {
        FZ_CHECK(rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
