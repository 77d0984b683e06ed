/*
 * fuzz_report_figure.c — a figure file as `retort report add-figure` reads it
 * (report_figure_put into a scratch database): accepted only when it is an SVG by the
 * contract in report.h (not empty, no NUL byte, opens with <svg or <?xml, holds <svg), and
 * then the stored base64 decodes to exactly the input; a refusal names the file.
 */
#include <sodium.h>

#include "fuzz_common.h"

#include "gateway/gateway.h"
#include "report/report.h"

static gw_conn *db;

static void close_db(void) {
    report_db_close(db);
    fz_scratch_remove();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!db) {
        char p[512];
        const char *d = getenv("TMPDIR");
        snprintf(p, sizeof p, "%s/retort-fuzz-%ld.db", d && *d ? d : "/tmp", (long)getpid());
        unlink(p);
        FZ_CHECK(report_db_open(&db, p) == 0 && sodium_init() >= 0);
        atexit(close_db);
    }
    const char *path = fz_scratch(data, size, ".svg");
    if (report_figure_put(db, "fuzz", path, "caption", NULL) == 0) {
        FZ_CHECK(size > 0 && size <= REPORT_FIGURE_MAX && !memchr(data, 0, size));
        FZ_CHECK(memmem(data, size, "<svg", 4) != NULL);
        gw_stmt *q = NULL;
        FZ_CHECK(gw_sql_prepare(db, "SELECT bytes, svg_base64 FROM report_figures WHERE name = 'fuzz'", &q, NULL) == 0);
        FZ_CHECK(gw_step(q) == GW_ROW && gw_column_int64(q, 0) == (int64_t)size);
        const char *b64 = gw_column_text(q, 1);
        unsigned char *back = malloc(size);
        size_t got = 0;
        FZ_CHECK(back && b64 && sodium_base642bin(back, size, b64, strlen(b64), NULL, &got, NULL,
                                                  sodium_base64_VARIANT_ORIGINAL) == 0);
        FZ_CHECK(got == size && !memcmp(back, data, size));
        free(back);
        gw_finalize(q);
    } else {
        FZ_CHECK(rt_errmsg()[0] && strstr(rt_errmsg(), path));
    }
    rt_err_clear();
    return 0;
}
