/*
 * progress.c — a single-line progress bar with rate-limited redraw and ETA.
 * Not a logger: it owns one line of stderr while running.
 */
#define _POSIX_C_SOURCE 200809L
#include "base.h"

#include <string.h>
#include <unistd.h>

void rt_progress_init(rt_progress *p, const char *label, size_t total) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->t_start = rt_now();
    p->t_last_draw = 0;
    p->is_tty = isatty(fileno(stderr));
    p->quiet_every = 10.0;
}

static void progress_draw(rt_progress *p, const char *extra, int final) {
    double now = rt_now();
    double el = now - p->t_start;
    char eta[32] = "";
    if (p->done > 0 && p->total > p->done && !final) {
        double left = el / (double)p->done * (double)(p->total - p->done);
        char d[24];
        rt_fmt_duration(d, sizeof d, left);
        snprintf(eta, sizeof eta, " | %s left", d);
    } else if (final) {
        char d[24];
        rt_fmt_duration(d, sizeof d, el);
        snprintf(eta, sizeof eta, " | %s", d);
    }
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    if (frac > 1) frac = 1;
    if (p->is_tty) {
        char bar[31];
        int w = 30, fill = (int)(frac * w);
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[w] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %zu/%zu %3.0f%%%s%s%s", p->label, bar, p->done, p->total,
                frac * 100, extra ? " | " : "", extra ? extra : "", eta);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s %zu/%zu %3.0f%%%s%s%s\n", p->label, p->done, p->total, frac * 100,
                extra ? " | " : "", extra ? extra : "", eta);
    }
    fflush(stderr);
    p->t_last_draw = now;
}

void rt_progress_update(rt_progress *p, size_t done, const char *extra) {
    p->done = done;
    double now = rt_now();
    double every = p->is_tty ? 0.1 : p->quiet_every;
    if (p->t_last_draw == 0 && !p->is_tty) {
        p->t_last_draw = now; /* first plain line after quiet_every, not immediately */
        return;
    }
    if (now - p->t_last_draw >= every) progress_draw(p, extra, 0);
}

void rt_progress_finish(rt_progress *p, const char *extra) {
    if (p->finished) return;
    p->finished = 1;
    if (p->done < p->total) p->done = p->total;
    progress_draw(p, extra, 1);
}

void rt_progress_stop(rt_progress *p, const char *extra) {
    if (p->finished) return;
    p->finished = 1;
    progress_draw(p, extra, 1);
}
