#!/usr/bin/env python3
"""scripts/port_sql.py FILE... — rewrite sqlite3_* calls into the gateway's SQL layer (gateway.h:
gw_conn, gw_stmt, gw_sql_prepare, gw_bind_*, gw_step, gw_column_*), in place.

Only the C calls are rewritten. The SQL text itself must then be checked by hand against the
common dialect listed in gateway.h (INSERT OR IGNORE/REPLACE -> ON CONFLICT, sum(cond) ->
sum(CASE ...), max(a,b) -> CASE, last_insert_rowid -> RETURNING id, PRAGMA, sqlite_master).
The script prints every line that still says sqlite3 or SQLITE_, and SQL that looks SQLite-only.
"""
import re, sys

SUBS = [
    (r'sqlite3_stmt\s*\*', 'gw_stmt *'),
    (r'\bsqlite3\s*\*', 'gw_conn *'),
    (r'sqlite3_prepare_v2\(\s*([^,]+?),\s*((?:[^;]|\n)+?),\s*-1,\s*&([\w\->\[\]\.]+),\s*NULL\)\s*!=\s*SQLITE_OK',
     r'gw_sql_prepare(\1, \2, &\3, NULL) != 0'),
    (r'sqlite3_bind_text\(([^,]+),\s*([^,]+),\s*((?:[^,()]|\([^()]*\))+),\s*-1,\s*SQLITE_(?:TRANSIENT|STATIC)\)',
     r'gw_bind_text(\1, \2, \3)'),
    (r'sqlite3_bind_blob\(([^,]+),\s*([^,]+),\s*([^,]+),\s*((?:[^,()]|\([^()]*\))+),\s*SQLITE_(?:TRANSIENT|STATIC)\)',
     r'gw_bind_blob(\1, \2, \3, (size_t)(\4))'),
    (r'sqlite3_bind_(int64|int|double|null)\(', r'gw_bind_\1('),
    (r'sqlite3_column_type\(([^,]+),\s*([^)]+)\)\s*==\s*SQLITE_NULL', r'gw_column_is_null(\1, \2)'),
    (r'sqlite3_column_type\(([^,]+),\s*([^)]+)\)\s*!=\s*SQLITE_NULL', r'!gw_column_is_null(\1, \2)'),
    (r'\(const char \*\)\s*sqlite3_column_text\(', 'gw_column_text('),
    (r'\bSQLITE_(INTEGER|FLOAT|TEXT|BLOB|NULL)\b', r'GW_\1'),
    (r'sqlite3_column_type\(', 'gw_column_type('),
    (r'\(sqlite3_int64\)', '(int64_t)'),
    (r'sqlite3_last_insert_rowid\(', 'gw_last_insert_rowid_USE_RETURNING('),
    (r'sqlite3_column_(int64|int|double|text|blob|bytes|count|name)\(', r'gw_column_\1('),
    (r'sqlite3_step\(', 'gw_step('),
    (r'sqlite3_finalize\(', 'gw_finalize('),
    (r'sqlite3_reset\(', 'gw_reset('),
    (r'sqlite3_clear_bindings\(', 'gw_clear_bindings('),
    (r'sqlite3_changes\(', 'gw_changes('),
    (r'\bSQLITE_ROW\b', 'GW_ROW'),
    (r'\bSQLITE_DONE\b', 'GW_DONE'),
    (r'#include <sqlite3.h>\n', ''),
]
SUSPECT = re.compile(r'INSERT OR|sum\([a-z_.]+ *(=|>|<|!=|IS)|\bmax\([^()]*,|\bmin\([^()]*,|PRAGMA|sqlite_master|'
                     r'last_insert_rowid|julianday|strftime\(.%|sqlite3|SQLITE_|BEGIN IMMEDIATE')
for path in sys.argv[1:]:
    s = open(path).read()
    for pat, rep in SUBS:
        s = re.sub(pat, rep, s)
    open(path, 'w').write(s)
    for i, line in enumerate(s.split('\n'), 1):
        if SUSPECT.search(line):
            print(f'{path}:{i}: {line.strip()}')
