/*
 * log.c — leveled logging to stderr, monotonic time, and human-readable numbers.
 * RETORT_LOG=debug|info|warn|error sets the initial level.
 */
#define _POSIX_C_SOURCE 200809L
#include "base.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_level = -1;

static void log_level_init(void) {
    if (log_level >= 0) return;
    log_level = RT_LOG_INFO;
    const char *e = getenv("RETORT_LOG");
    if (!e) return;
    if (!strcmp(e, "debug")) log_level = RT_LOG_DEBUG;
    else if (!strcmp(e, "warn")) log_level = RT_LOG_WARN;
    else if (!strcmp(e, "error")) log_level = RT_LOG_ERROR;
}

void rt_log_set_level(rt_log_level level) { log_level = (int)level; }

rt_log_level rt_log_get_level(void) {
    log_level_init();
    return (rt_log_level)log_level;
}

void rt_log(rt_log_level level, const char *fmt, ...) {
    log_level_init();
    if ((int)level < log_level) return;
    static const char *names[] = {"debug", "info", "warning", "error"};
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level == RT_LOG_INFO) fprintf(stderr, "%s\n", msg);
    else fprintf(stderr, "%s: %s\n", names[level], msg);
}

double rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double rt_wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void rt_fmt_duration(char *out, size_t cap, double s) {
    if (s < 0 || s != s) s = 0;
    if (s < 60) snprintf(out, cap, "%.1fs", s);
    else if (s < 3600) snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(out, cap, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

void rt_fmt_si(char *out, size_t cap, double v) {
    const char *suffix[] = {"", "k", "M", "G", "T", "P"};
    int i = 0;
    double a = v < 0 ? -v : v;
    while (a >= 1000 && i < 5) {
        a /= 1000;
        v /= 1000;
        i++;
    }
    if (i == 0) snprintf(out, cap, "%.0f", v);
    else snprintf(out, cap, a < 10 ? "%.2f%s" : a < 100 ? "%.1f%s" : "%.0f%s", v, suffix[i]);
}
