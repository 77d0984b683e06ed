/*
 * gw_sql.c — the one SQL helper layer for every room that keeps tables in the gateway
 * database (the gateway itself, src/defend's guard tables, src/report's evidence tables):
 * failing with the database file, the statement's purpose and SQLite's message, with an
 * error kind (BUSY for a locked database, IO for the rest), preparing, executing and
 * stepping statements. Each room still owns its tables; this is only how they talk SQL.
 * Not a query builder and not a second database layer: callers write their SQL.
 */
#include <sqlite3.h>

#include "gateway.h"

int gw_sql_fail(sqlite3 *conn, const char *what) {
    const char *f = conn ? sqlite3_db_filename(conn, "main") : NULL;
    int code = conn ? sqlite3_errcode(conn) & 0xff : SQLITE_CANTOPEN;
    rt_err_kind k = code == SQLITE_BUSY || code == SQLITE_LOCKED ? RT_ERR_BUSY
                    : code == SQLITE_NOMEM                       ? RT_ERR_NOMEM
                                                                 : RT_ERR_IO;
    return RT_FAIL_KIND(k, "%s: %s: %s", f && *f ? f : "database", what ? what : "SQL",
                        conn ? sqlite3_errmsg(conn) : "cannot open");
}

int gw_sql_prepare(sqlite3 *conn, const char *sql, sqlite3_stmt **st, const char *what) {
    *st = NULL;
    if (sqlite3_prepare_v2(conn, sql, -1, st, NULL) != SQLITE_OK) return gw_sql_fail(conn, what);
    return 0;
}

int gw_sql_exec(sqlite3 *conn, const char *sql, const char *what) {
    char *err = NULL;
    if (sqlite3_exec(conn, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
    const char *f = sqlite3_db_filename(conn, "main");
    int code = sqlite3_errcode(conn) & 0xff;
    int rc = RT_FAIL_KIND(code == SQLITE_BUSY || code == SQLITE_LOCKED ? RT_ERR_BUSY : RT_ERR_IO, "%s: %s: %s",
                          f && *f ? f : "database", what ? what : "SQL", err ? err : sqlite3_errmsg(conn));
    sqlite3_free(err);
    return rc;
}

int gw_sql_step_done(sqlite3 *conn, sqlite3_stmt *st, const char *what) {
    return sqlite3_step(st) == SQLITE_DONE ? 0 : gw_sql_fail(conn, what);
}
