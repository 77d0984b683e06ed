/*
 * error.c — the per-thread error message behind RT_FAIL / rt_errmsg.
 * Not a logging facility: nothing is printed here; the CLI decides what to show.
 */
#include "base.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char err_msg[2048];
static _Thread_local char err_loc[128];

int rt_fail_at(const char *src_file, int src_line, const char *fmt, ...) {
    /* Format into a scratch buffer first: callers may pass rt_errmsg() as an argument. */
    char tmp[sizeof err_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(err_msg, tmp, sizeof err_msg);
    const char *base = strrchr(src_file, '/');
    snprintf(err_loc, sizeof err_loc, "%s:%d", base ? base + 1 : src_file, src_line);
    return -1;
}

const char *rt_errmsg(void) { return err_msg; }
const char *rt_errloc(void) { return err_loc; }

void rt_err_clear(void) {
    err_msg[0] = '\0';
    err_loc[0] = '\0';
}
