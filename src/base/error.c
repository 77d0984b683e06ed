/*
 * error.c — the per-thread error message and kind behind RT_FAIL / rt_errmsg / rt_errkind,
 * the one kind -> HTTP status mapping, and the failure path of RT_ASSERT.
 * Not a logging facility: nothing is printed here; the CLI decides what to show.
 */
#include "base.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_msg[2048];
static _Thread_local char err_loc[128];
static _Thread_local rt_err_kind err_kind;

/* kind < 0: keep the previous kind when the new message contains the previous one. */
static int fail_v(const char *src_file, int src_line, int kind, const char *fmt, va_list ap) {
    /* Format into a scratch buffer first: callers may pass rt_errmsg() as an argument. */
    char tmp[sizeof err_msg];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    if (kind < 0) kind = err_msg[0] && err_kind != RT_ERR_NONE && strstr(tmp, err_msg) ? (int)err_kind : RT_ERR_OTHER;
    err_kind = (rt_err_kind)kind;
    memcpy(err_msg, tmp, sizeof err_msg);
    const char *base = strrchr(src_file, '/');
    snprintf(err_loc, sizeof err_loc, "%s:%d", base ? base + 1 : src_file, src_line);
    return -1;
}

int rt_fail_at(const char *src_file, int src_line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fail_v(src_file, src_line, -1, fmt, ap);
    va_end(ap);
    return -1;
}

int rt_fail_kind_at(const char *src_file, int src_line, rt_err_kind kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fail_v(src_file, src_line, (int)kind, fmt, ap);
    va_end(ap);
    return -1;
}

const char *rt_errmsg(void) { return err_msg; }
const char *rt_errloc(void) { return err_loc; }
rt_err_kind rt_errkind(void) { return err_kind; }

void rt_err_clear(void) {
    err_msg[0] = '\0';
    err_loc[0] = '\0';
    err_kind = RT_ERR_NONE;
}

const char *rt_err_kind_name(rt_err_kind k) {
    switch (k) {
    case RT_ERR_NONE: return "none";
    case RT_ERR_OTHER: return "other";
    case RT_ERR_INVALID: return "invalid";
    case RT_ERR_NOT_FOUND: return "not_found";
    case RT_ERR_IO: return "io";
    case RT_ERR_BUSY: return "busy";
    case RT_ERR_NOMEM: return "no_memory";
    }
    return "?";
}

int rt_err_http_status(rt_err_kind k) {
    switch (k) {
    case RT_ERR_INVALID: return 400;
    case RT_ERR_NOT_FOUND: return 404;
    case RT_ERR_BUSY:
    case RT_ERR_NOMEM: return 503;
    default: return 500;
    }
}

void rt_assert_fail(const char *cond, const char *src_file, int src_line) {
    fprintf(stderr, "retort: internal error: assertion '%s' failed at %s:%d\n", cond, src_file, src_line);
    fflush(stderr);
    abort();
}
