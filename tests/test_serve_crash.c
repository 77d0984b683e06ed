/* test_serve_crash.c — crash safety of the real binary: `retort serve` (a child process)
 * under concurrent load is killed with SIGKILL mid-flight; then every response a client
 * received in full (its X-Request-Id) has exactly one ledger row, the WAL the kill left
 * behind is bounded, the database opens at once, and a restarted server on it answers.
 * The model is tiny and random (built here); the ledger is read with SQLite directly. */
#include <curl/curl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "gateway/gateway.h"
#include "model/model.h"
#include "testlib.h"

static char g_bin[600], g_dir[512], g_db[600], g_url[64], g_key[GW_KEY_MAX];
static atomic_int g_stop;

static model *make_model(void) {
    rt_buf text = {0};
    for (int r = 0; r < 40; r++)
        rt_buf_printf(&text, "In the beginning God created the heaven and the earth. The quick brown fox %d. ", r);
    tokenizer *tok = NULL;
    model *m = NULL;
    if (tokenizer_train(&tok, text.data, text.len, 300)) return NULL;
    rt_buf_free(&text);
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 64,
                      .vocab_size = tokenizer_vocab_size(tok), .ctx_len = 128, .norm_eps = 1e-5f,
                      .rope_base = 10000.0f, .tied = 1};
    if (model_config_validate(&c) || model_create(&m, &c, tok)) return NULL;
    model_init_weights(m, 3);
    return m;
}

static pid_t start_server(const char *log) {
    char portf[700];
    snprintf(portf, sizeof portf, "%s/port", g_dir);
    unlink(portf);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        char model[700];
        snprintf(model, sizeof model, "%s/m.gguf", g_dir);
        execl(g_bin, g_bin, "serve", "--model", model, "--db", g_db, "--port", "0", "--port-file", portf, "--threads",
              "1", "--max-batch", "8", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        char *txt = NULL;
        size_t n = 0;
        if (rt_file_exists(portf) && rt_read_file(portf, &txt, &n) == 0) {
            snprintf(g_url, sizeof g_url, "http://127.0.0.1:%d", atoi(txt));
            free(txt);
            return pid;
        }
        usleep(10000);
    }
    return -1;
}

typedef struct {
    int id;
    rt_buf ids;          /* "id\n" of every response received in full */
    int received, failed;
} client;

typedef struct {
    char request_id[64];
    rt_buf body;
} got;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    rt_buf_append(&((got *)ud)->body, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    got *g = ud;
    if (sz * n > 13 && !strncasecmp(p, "X-Request-Id:", 13)) {
        size_t k = 0;
        const char *v = p + 13;
        while (*v == ' ') v++;
        while (k + 1 < sizeof g->request_id && v + k < p + sz * n && v[k] != '\r' && v[k] != '\n') k++;
        memcpy(g->request_id, v, k);
        g->request_id[k] = '\0';
    }
    return sz * n;
}

static void *client_main(void *arg) {
    client *c = arg;
    CURL *h = curl_easy_init();
    char auth[128], url[128], body[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", g_key);
    struct curl_slist *hd = curl_slist_append(NULL, auth);
    hd = curl_slist_append(hd, "Content-Type: application/json");
    for (int i = 0; !atomic_load(&g_stop); i++) {
        int stream = (c->id + i) % 3 == 0, models = (c->id + i) % 5 == 0;
        got g;
        memset(&g, 0, sizeof g);
        curl_easy_reset(h);
        snprintf(url, sizeof url, "%s%s", g_url, models ? "/v1/models" : "/v1/completions");
        snprintf(body, sizeof body, "{\"model\":\"m\",\"prompt\":\"client %d request %d\",\"max_tokens\":%d%s}", c->id,
                 i, 2 + i % 6, stream ? ",\"stream\":true" : "");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        if (!models) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &g);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &g);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
        long status = 0;
        int ok = curl_easy_perform(h) == CURLE_OK;
        if (ok) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        /* received in full: the status line and the whole body (a stream up to [DONE]) */
        if (ok && status == 200 && stream && !(g.body.data && strstr(g.body.data, "data: [DONE]"))) ok = 0;
        if (ok && g.request_id[0]) {
            rt_buf_printf(&c->ids, "%s\n", g.request_id);
            c->received++;
        } else {
            c->failed++;
        }
        rt_buf_free(&g.body);
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return NULL;
}

static int64_t file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
}

static void test_kill9_under_load(void) {
    char log[700];
    snprintf(log, sizeof log, "%s/serve.log", g_dir);
    pid_t pid = start_server(log);
    CHECK(pid > 0);
    if (pid <= 0) return;
    enum { NC = 6 };
    client cl[NC];
    pthread_t th[NC];
    for (int i = 0; i < NC; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].id = i;
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    usleep(1000000);
    CHECK(kill(pid, SIGKILL) == 0); /* while requests are in flight */
    int wst = 0;
    waitpid(pid, &wst, 0);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < NC; i++) pthread_join(th[i], NULL);
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", g_db);
    int64_t wal_size = file_size(wal);
    int received = 0, failed = 0;
    for (int i = 0; i < NC; i++) received += cl[i].received, failed += cl[i].failed;
    /* reopen: recovery from the WAL happens on the first read */
    double t0 = rt_now();
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(g_db, &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    int64_t rows = -1, missing = -1, doubled = -1;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM usage", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        rows = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    double t_open = rt_now() - t0;
    /* every response received in full, against the ledger */
    sqlite3_exec(db, "CREATE TEMP TABLE rec(id TEXT PRIMARY KEY); BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *ins = NULL;
    CHECK(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO rec VALUES(?1)", -1, &ins, NULL) == SQLITE_OK);
    for (int i = 0; i < NC; i++) {
        char *save = NULL;
        for (char *id = cl[i].ids.data ? strtok_r(cl[i].ids.data, "\n", &save) : NULL; id; id = strtok_r(NULL, "\n", &save)) {
            sqlite3_reset(ins);
            sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
            sqlite3_step(ins);
        }
        rt_buf_free(&cl[i].ids);
    }
    sqlite3_finalize(ins);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    const char *sql_missing = "SELECT count(*) FROM rec WHERE id NOT IN (SELECT request_id FROM usage)";
    const char *sql_doubled = "SELECT count(*) FROM (SELECT request_id FROM usage WHERE request_id IN (SELECT id FROM rec) "
                              "GROUP BY request_id HAVING count(*) > 1)";
    if (sqlite3_prepare_v2(db, sql_missing, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        missing = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (sqlite3_prepare_v2(db, sql_doubled, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        doubled = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    fprintf(stderr, "  killed under load: %d responses received in full, %d cut or refused; ledger %lld rows; "
            "%lld missing, %lld twice; WAL %.2f MB; reopened (recovery) in %.3f s\n",
            received, failed, (long long)rows, (long long)missing, (long long)doubled, wal_size / 1e6, t_open);
    CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
    CHECK(received > 20);
    CHECK(missing == 0 && doubled == 0);
    CHECK(rows >= received);
    CHECK(wal_size <= 24 * 1024 * 1024);
    CHECK(t_open < 2.0);
    /* a server restarted on that database answers */
    atomic_store(&g_stop, 0);
    pid = start_server(log);
    CHECK(pid > 0);
    if (pid <= 0) return;
    client one = {.id = 1};
    pthread_t t1;
    pthread_create(&t1, NULL, client_main, &one);
    usleep(300000);
    atomic_store(&g_stop, 1);
    pthread_join(t1, NULL);
    CHECK(one.received > 0);
    rt_buf_free(&one.ids);
    kill(pid, SIGTERM);
    waitpid(pid, &wst, 0);
    CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
}

static void setup(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) exit(2);
    self[n] = '\0';
    snprintf(g_bin, sizeof g_bin, "%s/../retort", dirname(self)); /* build/tests/x -> build/retort */
    snprintf(g_dir, sizeof g_dir, "%s", tl_tmpdir());
    snprintf(g_db, sizeof g_db, "%s/g.db", g_dir);
    model *m = make_model();
    char path[700];
    snprintf(path, sizeof path, "%s/m.gguf", g_dir);
    gw_db *db = NULL;
    gw_account a;
    if (!m || model_save(m, path) || gw_db_open(&db, g_db) ||
        gw_key_create(db, "loader", NULL, 0, rt_wall_time(), g_key, &a)) {
        fprintf(stderr, "setup: %s\n", rt_errmsg());
        exit(1);
    }
    gw_db_close(db);
    model_free(m);
}

static void test_all(void) {
    setup();
    if (!rt_file_exists(g_bin)) {
        fprintf(stderr, "  %s not built (make): cannot run the binary\n", g_bin);
        CHECK(0);
        return;
    }
    test_kill9_under_load();
    curl_global_cleanup();
}

TEST_MAIN("serve_crash", TEST_CASE(test_all))
