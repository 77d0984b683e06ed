/*
 * web_assets.h — the admin dashboard's files (web/: HTML, CSS, JavaScript) compiled into the
 * library. scripts/embed.c writes the table below into $(BUILD)/gen/web_assets.c at build
 * time; src/serve/web.c looks assets up for the /admin route. Not a file server: only these
 * names exist, nothing is read from disk at run time.
 */
#ifndef RETORT_SERVE_WEB_ASSETS_H
#define RETORT_SERVE_WEB_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *name;          /* path under web/, e.g. "index.html" (NULL ends the table) */
    const unsigned char *data; /* (len + 1) bytes, NUL-terminated */
    size_t len;
} serve_web_asset;

extern const serve_web_asset serve_web_assets[]; /* serve_web_n_assets entries, then {0} */
extern const size_t serve_web_n_assets;

#endif
