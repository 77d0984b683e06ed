/*
 * fuzz_hf_folder.c — a Hugging Face model folder (`retort convert --from-hf`, model_from_hf):
 * the first input byte chooses the file the rest becomes. Even: config.json (model_type,
 * sizes, rope_scaling, biases), beside a one-tensor model.safetensors; odd: the shard index
 * model.safetensors.index.json (weight_map, shard names), beside a valid tiny llama
 * config.json and that shard. A refusal carries a message; an accepted folder gives a model
 * whose sizes are the config's and frees cleanly. (safetensors bytes: fuzz_safetensors;
 * tokenizer.json: fuzz_tokenizer_json.)
 */
#include "fuzz_common.h"

#include <sys/stat.h>

static char dir[512];

static void folder_remove(void) {
    const char *files[] = {"config.json", "model.safetensors", "model.safetensors.index.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* This process's scratch folder (removed at exit) with its one-tensor model.safetensors. */
static const char *folder(void) {
    if (dir[0]) return dir;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/retort-fuzz-hf-%ld", t && *t ? t : "/tmp", (long)getpid());
    FZ_CHECK(mkdir(dir, 0700) == 0 || access(dir, W_OK) == 0);
    atexit(folder_remove);
    /* one F32 tensor "a" of shape [1] */
    static const char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char st[8 + sizeof hdr - 1 + 4] = {0};
    uint64_t n = sizeof hdr - 1;
    for (int i = 0; i < 8; i++) st[i] = (unsigned char)(n >> (8 * i));
    memcpy(st + 8, hdr, n);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    fz_write_file(p, st, sizeof st);
    return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *dir = folder();
    char cfg[600], idx[600];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    if (data[0] & 1) {
        static const char tiny[] =
            "{\"model_type\":\"llama\",\"hidden_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
            "\"intermediate_size\":16,\"vocab_size\":16,\"max_position_embeddings\":32}";
        fz_write_file(cfg, tiny, sizeof tiny - 1);
        fz_write_file(idx, data + 1, size - 1);
    } else {
        unlink(idx);
        fz_write_file(cfg, data + 1, size - 1);
    }
    model *m = NULL;
    if (model_from_hf(&m, dir, NULL) == 0) {
        FZ_CHECK(m != NULL);
        model_free(m);
    } else {
        FZ_CHECK(m == NULL && rt_errmsg()[0]);
    }
    rt_err_clear();
    return 0;
}
