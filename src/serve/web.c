/*
 * web.c — the admin dashboard's static files for GET /admin: which embedded asset a URL
 * names and its content type. The files themselves live in web/ and are compiled in by the
 * build (web_assets.h). The page needs no key to load; every datum it shows comes from the
 * admin API (/admin/api/, admin key required), which http.c and admin.c serve.
 * Not the HTTP response itself (http.c adds the security headers) and not the admin API.
 */
#include <string.h>

#include "serve_internal.h"

const serve_web_asset *serve_web_find(const char *url) {
    const char *name;
    if (!strcmp(url, "/admin") || !strcmp(url, "/admin/")) name = "index.html";
    else if (!strncmp(url, "/admin/", 7)) name = url + 7;
    else return NULL;
    for (size_t i = 0; i < serve_web_n_assets; i++)
        if (!strcmp(serve_web_assets[i].name, name)) return &serve_web_assets[i];
    return NULL;
}

const char *serve_web_content_type(const char *name) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},  {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".svg", "image/svg+xml"},
        {".png", "image/png"},                  {".ico", "image/x-icon"},
        {".json", "application/json"},
    };
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t e = strlen(types[i].ext);
        if (n >= e && !strcmp(name + n - e, types[i].ext)) return types[i].type;
    }
    return "application/octet-stream";
}
