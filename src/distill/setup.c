/*
 * setup.c — what the distillation subcommands share before training starts: loading a
 * tokenizer from any GGUF that carries one (model, checkpoint or teacher cache), turning a
 * text file (or a shard directory) into the same training/held-out split `retort train`
 * makes, creating a fresh student, and refusing a --resume whose distillation settings
 * differ from the checkpoint's.
 *
 * What this is not: option parsing (src/cli) or training (recipe.c, src/train).
 */
#include "distill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int distill_text_dataset(dataset *ds, const tokenizer *tok, const char *path, double val_fraction) {
    memset(ds, 0, sizeof *ds);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return dataset_load(ds, path, tokenizer_vocab_size(tok));
    char *text;
    size_t len;
    if (rt_read_file(path, &text, &len)) return -1;
    if (len == 0) {
        free(text);
        return RT_FAIL("%s: the text is empty", path);
    }
    /* the same split as retort train: 32 KiB chunks, every k-th held out */
    int rc = dataset_from_text(ds, tok, text, len, val_fraction, 32 * 1024);
    free(text);
    return rc;
}

int distill_new_student(model **out, model_config *c, tokenizer *tok, uint64_t seed) {
    c->vocab_size = tokenizer_vocab_size(tok);
    if (model_create(out, c, tok)) {
        tokenizer_free(tok);
        return -1;
    }
    model_init_weights(*out, seed);
    return 0;
}

int distill_check_resume_meta(const char *ckpt, const distill_meta_check *want, size_t n) {
    if (!rt_file_exists(ckpt)) return RT_FAIL("--resume: no checkpoint at %s", ckpt);
    gguf_ctx *g;
    if (gguf_open(&g, ckpt)) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const distill_meta_check *w = &want[i];
        if (w->str) {
            const char *s = NULL;
            size_t len = 0;
            int r = gguf_get_str(g, w->key, &s, &len);
            if (r != 0 || len != strlen(w->str) || memcmp(s, w->str, len) != 0)
                rc = RT_FAIL("%s: the checkpoint was made with a different %s (checkpoint: %.*s, this run: %s); "
                             "resume with the same options",
                             ckpt, w->flag, r == 0 ? (int)len : 6, r == 0 ? s : "absent", w->str);
        } else if (w->is_u64) {
            uint64_t v;
            if (gguf_get_u64(g, w->key, &v) != 0 || v != w->u)
                rc = RT_FAIL("%s: the checkpoint was made with a different %s (this run: %llu); resume with the "
                             "same options",
                             ckpt, w->flag, (unsigned long long)w->u);
        } else {
            float v;
            if (gguf_get_f32(g, w->key, &v) != 0 || v != w->f)
                rc = RT_FAIL("%s: the checkpoint was made with a different %s (this run: %g); resume with the "
                             "same options",
                             ckpt, w->flag, (double)w->f);
        }
    }
    gguf_close(g);
    return rc;
}
