/* bench_json: why gmud parses JSON with jansson.
 *
 * Part 1, speed, on the lecture's object
 *   {"time": "Sat Mar 30 11:40:50 2019", "message": "2:Sat Mar 30 11:40:50 2019", "value": 2}
 * (a) parse it and read the three fields; (b) build the same object and
 * serialise it compactly into a caller's buffer. Libraries: jansson through
 * gmud_json_parse() (bounds pass + json_loadb), jansson's json_loadb alone
 * (with the same flags gmud passes), json-c and cJSON. Every figure is ns per
 * operation beside jansson alone, measured in the same run, as a ratio.
 *
 * Part 2, strictness: what each library accepts from a hostile peer. Each
 * cell runs in a forked child, so a library that crashes (or hangs: 10 s
 * alarm) shows as CRASH instead of ending the benchmark.
 *
 * Environment: GMUD_BENCH_ROUNDS (default 25), GMUD_BENCH_MS (target
 * milliseconds per timed batch, default 5: short batches in many rounds give
 * best-of a chance of a batch no other process interrupted).
 */
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_json.h"
#include "bench_util.h"
#include "gmud/json.h"

static const char LECTURE[] = "{\"time\": \"Sat Mar 30 11:40:50 2019\", "
                              "\"message\": \"2:Sat Mar 30 11:40:50 2019\", \"value\": 2}";
static const char COMPACT[] = "{\"time\":\"Sat Mar 30 11:40:50 2019\","
                              "\"message\":\"2:Sat Mar 30 11:40:50 2019\",\"value\":2}";
static const char TIME[] = "Sat Mar 30 11:40:50 2019";
static const char MESSAGE[] = "2:Sat Mar 30 11:40:50 2019";

/* Each operation returns a checksum of what it read or wrote (string
 * lengths plus the value), so none of the work can be optimised away and a
 * wrong result is caught. 0 means the operation failed. */
#define PARSE_SUM (sizeof TIME - 1 + sizeof MESSAGE - 1 + 2)
#define BUILD_SUM (sizeof COMPACT - 1)

static gmud_json_limits g_limits;
static char g_out[256]; /* where every serialiser writes */

static void die(const char *what)
{
    fprintf(stderr, "bench_json: %s\n", what);
    exit(1);
}

/* ---- (a) parse and read the three fields -------------------------------- */

static size_t jansson_fields(json_t *v)
{
    const char *t = json_string_value(json_object_get(v, "time"));
    const char *m = json_string_value(json_object_get(v, "message"));
    json_t *n = json_object_get(v, "value");
    if (t == NULL || m == NULL || !json_is_integer(n))
        return 0;
    return strlen(t) + strlen(m) + (size_t)json_integer_value(n);
}

static size_t parse_gmud(void)
{
    json_t *v;
    gmud_error err;
    if (gmud_json_parse((const uint8_t *)LECTURE, sizeof LECTURE - 1, &g_limits, &v, &err) != 0)
        return 0;
    size_t sum = jansson_fields(v);
    json_decref(v);
    return sum;
}

/* The flags gmud_json_parse() passes, so the ratio isolates its bounds pass. */
static size_t parse_jansson(void)
{
    json_error_t je;
    json_t *v = json_loadb(LECTURE, sizeof LECTURE - 1, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                           &je);
    if (v == NULL)
        return 0;
    size_t sum = jansson_fields(v);
    json_decref(v);
    return sum;
}

static size_t parse_jsonc(void)
{
    return bench_jsonc_parse(LECTURE, sizeof LECTURE - 1);
}

static size_t parse_cjson(void)
{
    return bench_cjson_parse(LECTURE, sizeof LECTURE - 1);
}

/* ---- (b) build the object and serialise it compactly -------------------- */

static json_t *jansson_build(void)
{
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "time", json_string(TIME)) != 0 ||
        json_object_set_new(o, "message", json_string(MESSAGE)) != 0 ||
        json_object_set_new(o, "value", json_integer(2)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static size_t build_jansson(void)
{
    json_t *o = jansson_build();
    if (o == NULL)
        return 0;
    size_t n = json_dumpb(o, g_out, sizeof g_out, JSON_COMPACT);
    json_decref(o);
    return n <= sizeof g_out ? n : 0;
}

static size_t build_gmud(void)
{
    json_t *o = jansson_build();
    if (o == NULL)
        return 0;
    gmud_error err;
    ptrdiff_t n = gmud_json_dump(o, (uint8_t *)g_out, sizeof g_out, &err);
    json_decref(o);
    return n > 0 ? (size_t)n : 0;
}

static size_t build_jsonc(void)
{
    return bench_jsonc_build(TIME, MESSAGE, 2, g_out, sizeof g_out);
}

static size_t build_cjson(void)
{
    return bench_cjson_build(TIME, MESSAGE, 2, g_out, sizeof g_out);
}

/* ---- Timing ------------------------------------------------------------- */

typedef struct bench_op {
    const char *name;
    size_t (*run)(void);
    size_t want;      /* checksum of a correct run */
    int is_build;     /* compare g_out with COMPACT afterwards */
    long iters;       /* per batch, calibrated */
    double ns[64];    /* per round */
    double best, median;
} bench_op;

static volatile size_t g_sink;

static void check_op(bench_op *op)
{
    size_t got = op->run();
    if (got != op->want) {
        fprintf(stderr, "bench_json: %s returned %zu, expected %zu\n", op->name, got, op->want);
        exit(1);
    }
    if (op->is_build && memcmp(g_out, COMPACT, BUILD_SUM) != 0) {
        fprintf(stderr, "bench_json: %s wrote %.*s\n  expected %s\n", op->name, (int)BUILD_SUM,
                g_out, COMPACT);
        exit(1);
    }
}

static double time_batch(bench_op *op)
{
    size_t acc = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < op->iters; i++)
        acc += op->run();
    uint64_t t1 = bench_now_ns();
    if (acc != op->want * (size_t)op->iters)
        die("an operation failed while timed");
    g_sink = acc;
    return (double)(t1 - t0) / (double)op->iters;
}

/* Enough iterations for a batch of about ms milliseconds. */
static void calibrate(bench_op *op, long ms)
{
    op->iters = 1000;
    double ns = time_batch(op);
    double want = (double)ms * 1e6 / (ns > 1 ? ns : 1);
    op->iters = want < 1000 ? 1000 : (long)want;
}

static void run_speed(int rounds, long ms)
{
    bench_op ops[] = {
        {"parse  jansson json_loadb", parse_jansson, PARSE_SUM, 0, 0, {0}, 0, 0},
        {"parse  gmud_json_parse", parse_gmud, PARSE_SUM, 0, 0, {0}, 0, 0},
        {"parse  json-c", parse_jsonc, PARSE_SUM, 0, 0, {0}, 0, 0},
        {"parse  cJSON", parse_cjson, PARSE_SUM, 0, 0, {0}, 0, 0},
        {"build  jansson json_dumpb", build_jansson, BUILD_SUM, 1, 0, {0}, 0, 0},
        {"build  gmud_json_dump", build_gmud, BUILD_SUM, 1, 0, {0}, 0, 0},
        {"build  json-c", build_jsonc, BUILD_SUM, 1, 0, {0}, 0, 0},
        {"build  cJSON", build_cjson, BUILD_SUM, 1, 0, {0}, 0, 0},
    };
    enum { NOPS = sizeof ops / sizeof ops[0] };
    for (size_t i = 0; i < NOPS; i++) {
        check_op(&ops[i]);
        calibrate(&ops[i], ms);
    }
    /* Round-robin, so drift in clock speed hits every library alike. */
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < NOPS; i++)
            ops[i].ns[r] = time_batch(&ops[i]);
    for (size_t i = 0; i < NOPS; i++)
        bench_best_median(ops[i].ns, (size_t)rounds, &ops[i].best, &ops[i].median);

    printf("bench_json: the lecture's object (%zu bytes), %d rounds, ns per operation; "
           "ratio = ns / ns of jansson alone (lower is faster)\n",
           sizeof LECTURE - 1, rounds);
    printf("  parse = parse + read time, message, value; build = create the object + "
           "serialise compactly into a caller's buffer\n");
    printf("  %-26s %10s %10s %12s %12s\n", "operation", "best ns", "median ns", "ratio best",
           "ratio median");
    for (size_t i = 0; i < NOPS; i++) {
        const bench_op *base = &ops[ops[i].is_build ? 4 : 0];
        printf("  %-26s %10.1f %10.1f %12.3f %12.3f\n", ops[i].name, ops[i].best, ops[i].median,
               ops[i].best / base->best, ops[i].median / base->median);
    }
    printf("  overhead gmud_json_parse / json_loadb: best %.3f, median %.3f "
           "(the bounds pass before jansson)\n",
           ops[1].best / ops[0].best, ops[1].median / ops[0].median);
}

/* ---- Strictness ---------------------------------------------------------- */

typedef struct probe {
    const char *name;
    const char *text;
    size_t len;
} probe;

typedef bench_verdict verdict;

static void jansson_note(verdict *v, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    bench_show(v->note, 48, s ? s : "(unprintable)", s ? strlen(s) : 13);
    free(s);
}

static verdict try_gmud(const probe *p)
{
    verdict v = {VERDICT_REJECT, ""};
    json_t *j;
    gmud_error err;
    if (gmud_json_parse((const uint8_t *)p->text, p->len, &g_limits, &j, &err) != 0) {
        bench_show(v.note, 100, err.message, strlen(err.message));
        return v;
    }
    v.code = VERDICT_ACCEPT;
    jansson_note(&v, j);
    json_decref(j);
    return v;
}

static verdict try_jansson(const probe *p)
{
    verdict v = {VERDICT_REJECT, ""};
    json_error_t je;
    json_t *j = json_loadb(p->text, p->len, 0, &je);
    if (j == NULL) {
        bench_show(v.note, 100, je.text, strlen(je.text));
        return v;
    }
    v.code = VERDICT_ACCEPT;
    jansson_note(&v, j);
    json_decref(j);
    return v;
}

enum { LIB_GMUD, LIB_JANSSON, LIB_JSONC, LIB_JSONC_STRICT, LIB_CJSON, NLIBS };

static const char *const lib_names[NLIBS] = {
    "gmud_json_parse", "json_loadb(0)", "json-c", "json-c STRICT|UTF8", "cJSON",
};

static verdict try_lib(int lib, const probe *p)
{
    switch (lib) {
    case LIB_GMUD:
        return try_gmud(p);
    case LIB_JANSSON:
        return try_jansson(p);
    case LIB_JSONC:
        return bench_jsonc_try(p->text, p->len, 0);
    case LIB_JSONC_STRICT:
        return bench_jsonc_try(p->text, p->len, 1);
    default:
        return bench_cjson_try(p->text, p->len);
    }
}

/* Runs one cell in a child; a signal in the child becomes a CRASH verdict. */
static verdict isolated(int lib, const probe *p)
{
    verdict v = {VERDICT_CRASH, ""};
    int fd[2];
    if (pipe(fd) != 0)
        die("pipe failed");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed");
    if (pid == 0) {
        close(fd[0]);
        alarm(10);
        verdict r = try_lib(lib, p);
        ssize_t w = write(fd[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 3);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &v, sizeof v);
    close(fd[0]);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid failed");
    if (WIFSIGNALED(status)) {
        v.code = VERDICT_CRASH;
        snprintf(v.note, sizeof v.note, "%s (signal %d)",
                 WTERMSIG(status) == SIGALRM ? "hung > 10 s" : "crashed", WTERMSIG(status));
    } else if (got != (ssize_t)sizeof v) {
        v.code = VERDICT_CRASH;
        snprintf(v.note, sizeof v.note, "child exited %d without a verdict",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    return v;
}

static const char *verdict_word(char code)
{
    switch (code) {
    case VERDICT_ACCEPT:
        return "accepts";
    case VERDICT_REJECT:
        return "refuses";
    case VERDICT_PREFIX:
        return "accepts prefix";
    default:
        return "CRASH";
    }
}

static void run_strictness(void)
{
    enum { DEEP = 10000 };
    static char deep[5 + 2 * DEEP + 2]; /* {"a": [[[...]]] } */
    size_t n = 0;
    memcpy(deep, "{\"a\":", 5), n = 5;
    memset(deep + n, '[', DEEP), n += DEEP;
    memset(deep + n, ']', DEEP), n += DEEP;
    deep[n++] = '}';

    /* Lengths come from sizeof, not strlen: some inputs hold NUL bytes. */
#define PROBE(name, literal) {name, literal, sizeof literal - 1}
    const probe probes[] = {
        PROBE("the lecture's object (valid)", LECTURE),
        PROBE("invalid UTF-8 \"\\xff\\xfe\"", "{\"a\":\"\xff\xfe\"}"),
        PROBE("duplicate key {\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}"),
        PROBE("trailing garbage \"{} x\"", "{} x"),
        PROBE("raw NUL inside a string", "{\"a\":\"x\0y\"}"),
        PROBE("raw NUL after the value", "{}\0"),
        PROBE("\"\\u0000\" in a string", "{\"a\":\"x\\u0000y\"}"),
        PROBE("lone surrogate \"\\ud800\"", "{\"a\":\"\\ud800\"}"),
        PROBE("number 1e999", "{\"a\":1e999}"),
        {"nesting 10000 deep", deep, n},
    };
#undef PROBE
    enum { NPROBES = sizeof probes / sizeof probes[0] };
    static verdict cells[NPROBES][NLIBS];
    for (size_t i = 0; i < NPROBES; i++)
        for (int l = 0; l < NLIBS; l++)
            cells[i][l] = isolated(l, &probes[i]);

    printf("\nstrictness: does each library accept the input? (gmud_json_parse with default "
           "limits; json_loadb flags 0;\n  json-c default flags, then JSON_TOKENER_STRICT | "
           "JSON_TOKENER_VALIDATE_UTF8; cJSON_ParseWithLength; \"accepts prefix\" = parsed the "
           "first value,\n  reported success and left the rest unread; each cell runs in a forked "
           "child so a crash shows as CRASH)\n");
    printf("  %-30s", "input");
    for (int l = 0; l < NLIBS; l++)
        printf(" %-19s", lib_names[l]);
    printf("\n");
    for (size_t i = 0; i < NPROBES; i++) {
        printf("  %-30s", probes[i].name);
        for (int l = 0; l < NLIBS; l++)
            printf(" %-19s", verdict_word(cells[i][l].code));
        printf("\n");
    }
    printf("\n  what each library made of it (value re-serialised by the same library, or its "
           "error):\n");
    for (size_t i = 1; i < NPROBES; i++) {
        printf("  %s\n", probes[i].name);
        for (int l = 0; l < NLIBS; l++)
            printf("    %-19s %-15s %s\n", lib_names[l], verdict_word(cells[i][l].code),
                   cells[i][l].note);
    }
}

int main(void)
{
    int rounds = (int)bench_env_long("GMUD_BENCH_ROUNDS", 25, 1, 64);
    long ms = bench_env_long("GMUD_BENCH_MS", 5, 1, 10000);
    gmud_json_default_config(&g_limits);
    bench_jsonc_init();
    printf("libraries: jansson %s, json-c %s, cJSON %s\n", jansson_version_str(),
           bench_jsonc_version(), bench_cjson_version());
    bench_print_load();
    run_speed(rounds, ms);
    run_strictness();
    bench_jsonc_fini();
    return 0;
}
