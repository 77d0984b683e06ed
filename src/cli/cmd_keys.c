/*
 * cmd_keys.c — `retort keys create | list | revoke | suspend | resume`: accounts and API
 * keys in the gateway database (the server picks changes up on the next request).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../gateway/gateway.h"
#include "cli.h"

static void fmt_time(double t, char *out, size_t cap) {
    if (t <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int keys_create(int argc, char **argv) {
    const char *db_path = NULL, *name = NULL;
    int64_t rpm = -1, tpm = -1, daily = -1;
    int admin = 0;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL) (created if absent)", 1, 0},
        {"--name", CLI_STR, &name, "NAME: the account (created if new; letters, digits, ._@+-)", 1, 0},
        {"--rpm", CLI_I64, &rpm, "N: requests per minute, 0 = unlimited (default 0 for a new account)", 0, 0},
        {"--tpm", CLI_I64, &tpm, "N: tokens (prompt + completion) per minute, 0 = unlimited", 0, 0},
        {"--daily-tokens", CLI_I64, &daily, "N: tokens per UTC day, 0 = unlimited", 0, 0},
        {"--admin", CLI_FLAG, &admin, "the account may call the admin API", 0, 0},
    };
    cli_cmd_info info = {"keys create",
                         "retort keys create --db gateway.db --name NAME [--rpm N --tpm N --daily-tokens N --admin]",
                         "Creates an API key (and the account if it is new) and prints the key ONCE on stdout;\n"
                         "only its hash is stored. Limits given here replace the account's."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if ((cli_seen(opts, RT_ARRAY_LEN(opts), "--rpm") && rpm < 0) || (cli_seen(opts, RT_ARRAY_LEN(opts), "--tpm") && tpm < 0) ||
        (cli_seen(opts, RT_ARRAY_LEN(opts), "--daily-tokens") && daily < 0)) {
        fprintf(stderr, "retort keys create: error: limits must be >= 0 (0 = unlimited)\n");
        return 2;
    }
    gw_db *db = NULL;
    if (gw_db_open(&db, db_path)) return cli_fail("keys create");
    gw_limits lim = {rpm, tpm, daily};
    char key[GW_KEY_MAX];
    gw_account a;
    int rc = gw_key_create(db, name, &lim, admin, rt_wall_time(), key, &a);
    gw_db_close(db);
    if (rc) return cli_fail("keys create");
    printf("%s\n", key);
    fprintf(stderr, "created a key for account '%s' (#%lld%s): rpm %lld, tpm %lld, daily tokens %lld (0 = unlimited)\n"
                    "the key is shown only now; store it safely\n",
            a.name, (long long)a.id, a.is_admin ? ", admin" : "", (long long)a.limits.rpm, (long long)a.limits.tpm,
            (long long)a.limits.daily_tokens);
    if (a.status == GW_ACCOUNT_SUSPENDED) {
        char why[600];
        fprintf(stderr,
                "warning: account '%s' is suspended (%s): this key gets 403 until `retort keys resume --db %s --name %s`\n",
                a.name, rt_utf8_printable(why, sizeof why, a.reason), db_path, a.name);
    }
    return 0;
}

static int keys_list(int argc, char **argv) {
    const char *db_path = NULL;
    int as_json = 0;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL)", 1, 0},
        {"--json", CLI_FLAG, &as_json, "one JSON object per account", 0, 0},
    };
    cli_cmd_info info = {"keys list", "retort keys list --db gateway.db [--json]",
                         "Lists accounts with status, limits, keys (ids only) and usage from the ledger."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!gw_db_is_url(db_path) && !rt_file_exists(db_path)) {
        fprintf(stderr, "retort keys list: error: %s does not exist (retort keys create makes it)\n", db_path);
        return 1;
    }
    gw_db *db = NULL;
    gw_account *acc = NULL;
    gw_key_info *keys = NULL;
    gw_usage *u = NULL;
    size_t na = 0, nk = 0, nu = 0;
    int status = 1;
    if (gw_db_open(&db, db_path) || gw_account_list(db, &acc, &na) || gw_key_list(db, 0, &keys, &nk) ||
        gw_usage_by_account(db, rt_wall_time() - 86400.0, &u, &nu))
        goto done;
    if (!as_json)
        printf("%-5s %-20s %-9s %7s %9s %12s %5s %-28s %9s %12s  %s\n", "id", "name", "status", "rpm", "tpm", "daily_tok",
               "admin", "keys (live)", "requests", "tokens", "reason");
    for (size_t i = 0; i < na; i++) {
        const gw_account *a = &acc[i];
        const gw_usage *mine = NULL;
        for (size_t k = 0; k < nu; k++)
            if (u[k].account_id == a->id) mine = &u[k];
        char kl[29] = "";
        size_t live = 0, total = 0, used = 0;
        for (size_t k = 0; k < nk; k++) {
            if (keys[k].account_id != a->id) continue;
            total++;
            if (keys[k].revoked_at > 0) continue;
            live++;
            if (used + GW_KEY_ID_LEN + 2 < sizeof kl) {
                used += (size_t)snprintf(kl + used, sizeof kl - used, "%s%s", used ? "," : "", keys[k].key_id);
            }
        }
        char created[32];
        fmt_time(a->created_at, created, sizeof created);
        if (as_json) {
            printf("{\"id\":%lld,\"name\":\"%s\",\"status\":\"%s\",\"rpm\":%lld,\"tpm\":%lld,\"daily_tokens\":%lld,"
                   "\"admin\":%s,\"live_keys\":%zu,\"keys\":%zu,\"requests\":%lld,\"tokens\":%lld,\"created_at\":\"%s\"}\n",
                   (long long)a->id, a->name, a->status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active",
                   (long long)a->limits.rpm, (long long)a->limits.tpm, (long long)a->limits.daily_tokens,
                   a->is_admin ? "true" : "false", live, total, (long long)(mine ? mine->requests : 0),
                   (long long)(mine ? mine->prompt_tokens + mine->completion_tokens : 0), created);
        } else {
            /* names and reasons are shown with control characters escaped: an admin-supplied
             * reason cannot rewrite the terminal or forge a line */
            char lk[40], name[160], why[600];
            snprintf(lk, sizeof lk, "%s (%zu/%zu)", kl[0] ? kl : "-", live, total);
            printf("%-5lld %-20s %-9s %7lld %9lld %12lld %5s %-28s %9lld %12lld  %s\n", (long long)a->id,
                   rt_utf8_printable(name, sizeof name, a->name),
                   a->status == GW_ACCOUNT_SUSPENDED ? "suspended" : "active", (long long)a->limits.rpm,
                   (long long)a->limits.tpm, (long long)a->limits.daily_tokens, a->is_admin ? "yes" : "-", lk,
                   (long long)(mine ? mine->requests : 0),
                   (long long)(mine ? mine->prompt_tokens + mine->completion_tokens : 0),
                   rt_utf8_printable(why, sizeof why, a->reason));
        }
    }
    status = 0;
done:
    if (status) cli_fail("keys list");
    free(acc);
    free(keys);
    free(u);
    gw_db_close(db);
    return status;
}

static int keys_status(int argc, char **argv, int suspend) {
    const char *db_path = NULL, *name = NULL, *reason = NULL;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL)", 1, 0},
        {"--name", CLI_STR, &name, "NAME: the account (or #id)", 1, 0},
        {"--reason", CLI_STR, &reason, "TEXT: why (shown to the client in the 403)", 0, 0},
    };
    cli_cmd_info info = {suspend ? "keys suspend" : "keys resume",
                         suspend ? "retort keys suspend --db gateway.db --name NAME [--reason TEXT]"
                                 : "retort keys resume --db gateway.db --name NAME",
                         suspend ? "Suspends an account: its requests get 403 with the reason from the next one on."
                                 : "Makes a suspended account active again."};
    int prc = cli_parse(argc, argv, opts, suspend ? 3 : 2, &info, NULL, 0, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    gw_db *db = NULL;
    gw_account a;
    const char *cmd = suspend ? "keys suspend" : "keys resume";
    if (!gw_db_is_url(db_path) && !rt_file_exists(db_path)) {
        fprintf(stderr, "retort %s: error: %s does not exist\n", cmd, db_path);
        return 1;
    }
    if (gw_db_open(&db, db_path) || gw_account_find(db, name, &a) ||
        gw_account_set_status(db, a.id, suspend ? GW_ACCOUNT_SUSPENDED : GW_ACCOUNT_ACTIVE,
                              reason ? reason : "suspended by an operator", rt_wall_time())) {
        gw_db_close(db);
        return cli_fail(cmd);
    }
    gw_db_close(db);
    char shown[160];
    fprintf(stderr, "account '%s' is now %s\n", rt_utf8_printable(shown, sizeof shown, a.name),
            suspend ? "suspended" : "active");
    return 0;
}

static int keys_revoke(int argc, char **argv) {
    const char *db_path = NULL, *key = NULL;
    const char *pos[1];
    size_t n_pos = 0;
    cli_opt opts[] = {
        {"--db", CLI_STR, &db_path, "FILE: gateway database (or a postgres:// URL)", 1, 0},
        {"--key", CLI_STR, &key, "KEY_ID: the key id shown by list (or the whole key)", 0, 0},
    };
    cli_cmd_info info = {"keys revoke", "retort keys revoke --db gateway.db KEY_ID",
                         "Revokes one key; requests with it get 401 from then on."};
    int prc = cli_parse(argc, argv, opts, RT_ARRAY_LEN(opts), &info, pos, 1, &n_pos);
    if (prc) return prc == 1 ? 0 : 2;
    if (!key && n_pos) key = pos[0];
    if (!key) {
        fprintf(stderr, "retort keys revoke: error: give the key id (retort keys list shows them)\n");
        return 2;
    }
    if (!gw_db_is_url(db_path) && !rt_file_exists(db_path)) {
        fprintf(stderr, "retort keys revoke: error: %s does not exist\n", db_path);
        return 1;
    }
    gw_db *db = NULL;
    if (gw_db_open(&db, db_path) || gw_key_revoke(db, key, rt_wall_time())) {
        gw_db_close(db);
        return cli_fail("keys revoke");
    }
    gw_db_close(db);
    fprintf(stderr, "revoked key %.15s\n", key);
    return 0;
}

int cmd_keys(int argc, char **argv) {
    static const char *usage =
        "usage: retort keys <action> --db gateway.db ...\n\n"
        "actions:\n"
        "  create   --name NAME [--rpm N --tpm N --daily-tokens N --admin]   new key (printed once)\n"
        "  list     [--json]                                                  accounts, keys, usage\n"
        "  revoke   KEY_ID                                                    revoke one key\n"
        "  suspend  --name NAME [--reason TEXT]                               403 from now on\n"
        "  resume   --name NAME                                               active again\n";
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *a = argv[1];
    if (!strcmp(a, "create")) return keys_create(argc - 1, argv + 1);
    if (!strcmp(a, "list")) return keys_list(argc - 1, argv + 1);
    if (!strcmp(a, "revoke")) return keys_revoke(argc - 1, argv + 1);
    if (!strcmp(a, "suspend")) return keys_status(argc - 1, argv + 1, 1);
    if (!strcmp(a, "resume")) return keys_status(argc - 1, argv + 1, 0);
    fprintf(stderr, "retort keys: unknown action '%s'\n\n%s", a, usage);
    return 2;
}
