/* The metrics endpoint's core (src/core/prom.c), in memory: the exposition
 * of a made-up gmud_stats, line by line against the text format's rules,
 * and the HTTP request parser on every outcome it has. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "prom.h"

/* The value of the series line that starts with `series ` in text, or -1. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            double v = -1;
            sscanf(p + n + 1, "%lf", &v);
            return v;
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

static void test_exposition(void)
{
    gmud_stats st;
    memset(&st, 0, sizeof st);
    st.accepted = 7;
    st.messages_in = 1234;
    st.messages_out = 99;
    st.bytes_in = 1ull << 40;
    st.rejected_addr = 3;
    st.tls_failed = 2;
    st.proxy_refused = 5;
    st.closes[GMUD_CLOSE_SLOW_CONSUMER] = 4;
    st.closes[GMUD_CLOSE_PROXY] = 5;
    st.rejects[-GMUD_ERR_BAD_JSON] = 11;
    st.rejects[-GMUD_ERR_REPLAYED] = 6;
    st.buffered_total = 4096;
    prom_gauges g = {3, 0.0125, 0.25, 1};
    byte_buf out = {0};
    CHECK_EQ_INT(prom_write(&out, &st, &g), 0);
    CHECK(buf_append(&out, "", 1) == 0); /* a C string from here */
    const char *t = (const char *)out.data;
    CHECK(value_of(t, "gmud_connections") == 3);
    CHECK(value_of(t, "gmud_connections_accepted_total") == 7);
    CHECK(value_of(t, "gmud_messages_received_total") == 1234);
    CHECK(value_of(t, "gmud_messages_sent_total") == 99);
    CHECK(value_of(t, "gmud_bytes_received_total") == 1099511627776.0);
    CHECK(value_of(t, "gmud_queued_bytes") == 4096);
    CHECK(value_of(t, "gmud_rejected_total{code=\"bad_json\"}") == 11);
    CHECK(value_of(t, "gmud_rejected_total{code=\"replayed\"}") == 6);
    CHECK(value_of(t, "gmud_rejected_total{code=\"bad_label\"}") == 0);
    CHECK(value_of(t, "gmud_connections_closed_total{reason=\"slow_consumer\"}") == 4);
    CHECK(value_of(t, "gmud_connections_closed_total{reason=\"proxy_refused\"}") == 5);
    CHECK(value_of(t, "gmud_connections_refused_total{reason=\"addr_limited\"}") == 3);
    CHECK(value_of(t, "gmud_connections_refused_total{reason=\"tls_failed\"}") == 2);
    CHECK(value_of(t, "gmud_loop_lag_seconds") == 0.0125);
    CHECK(value_of(t, "gmud_loop_lag_max_seconds") == 0.25);
    CHECK(value_of(t, "gmud_metrics_scrapes_total") == 1);
    /* The format's rules: every sample's family has HELP and TYPE lines
     * before it, each family once; counters end in _total, gauges don't. */
    char families[64][64];
    int nf = 0, samples = 0;
    for (const char *p = t; *p != '\0';) {
        const char *e = strchr(p, '\n');
        CHECK(e != NULL); /* every line ends with LF */
        if (e == NULL)
            break;
        char line[256];
        size_t len = (size_t)(e - p) < sizeof line - 1 ? (size_t)(e - p) : sizeof line - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        char name[64], type[16];
        if (sscanf(line, "# TYPE %63s %15s", name, type) == 2) {
            size_t nl = strlen(name);
            int total = nl > 6 && strcmp(name + nl - 6, "_total") == 0;
            CHECK(strcmp(type, "counter") == 0 ? total : strcmp(type, "gauge") == 0 && !total);
            for (int i = 0; i < nf; i++)
                CHECK(strcmp(families[i], name) != 0);
            if (nf < 64)
                snprintf(families[nf++], sizeof families[0], "%s", name);
        } else if (line[0] != '#') {
            samples++;
            size_t nl = strcspn(line, "{ ");
            int known = 0;
            for (int i = 0; i < nf; i++)
                known |= strlen(families[i]) == nl && strncmp(families[i], line, nl) == 0;
            CHECK(known);
        }
        p = e + 1;
    }
    CHECK(nf >= 20);
    CHECK(samples > nf);
    buf_free(&out);
}

static void test_requests(void)
{
    static const struct {
        const char *req;
        int status, head;
    } cases[] = {
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, 0},
        {"GET /metrics HTTP/1.0\r\n\r\n", 200, 0},
        {"GET /metrics?x=1 HTTP/1.1\r\n\r\n", 200, 0},
        {"HEAD /metrics HTTP/1.1\r\n\r\n", 200, 1},
        {"GET /metrics HTTP/1.1\n\n", 200, 0},
        {"GET / HTTP/1.1\r\n\r\n", 404, 0},
        {"GET /metricsx HTTP/1.1\r\n\r\n", 404, 0},
        {"POST /metrics HTTP/1.1\r\n\r\n", 405, 0},
        {"GET /metrics HTTP/2.0\r\n\r\n", 505, 0},
        {"GET /metrics HTTP/1.2\r\n\r\n", 505, 0},
        {"GET /metrics\r\n\r\n", 400, 0},
        {"GET  /metrics HTTP/1.1\r\n\r\n", 400, 0},
        {"GET /metrics HTTP/1.1 x\r\n\r\n", 400, 0},
        {"GET /met\x01rics HTTP/1.1\r\n\r\n", 400, 0},
        {"\x16\x03\x01\x02\x05\x01\x05\x01\xfc\x03\x03\r\n\r\n", 400, 0},
        {"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400, 0},
        {"GET /metrics HTTP/1.1\r\ncontent-length: 0\r\n\r\n", 200, 0},
        {"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 0},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n", 0, 0},
        {"GET /metr", 0, 0},
        {"", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int head = -1;
        int got = http_request_parse((const uint8_t *)cases[i].req, strlen(cases[i].req), &head);
        if (got != cases[i].status)
            fprintf(stderr, "  request %zu: %d, want %d\n", i, got, cases[i].status);
        CHECK_EQ_INT(got, cases[i].status);
        if (got == 200)
            CHECK_EQ_INT(head, cases[i].head);
    }
    /* Headers that never end: more is asked for up to the bound, then 431. */
    static uint8_t big[HTTP_MAX_REQUEST + 10];
    memcpy(big, "GET /metrics HTTP/1.1\r\n", 23);
    memset(big + 23, 'a', sizeof big - 23);
    int head;
    CHECK_EQ_INT(http_request_parse(big, HTTP_MAX_REQUEST - 1, &head), 0);
    CHECK_EQ_INT(http_request_parse(big, HTTP_MAX_REQUEST, &head), 431);
    CHECK_EQ_INT(http_request_parse(big, sizeof big, &head), 431);
}

static void test_response(void)
{
    byte_buf out = {0};
    CHECK_EQ_INT(http_response(&out, 404, "text/plain", "no\n", 3, 0), 0);
    static const char want[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 3\r\nConnection: close\r\n\r\nno\n";
    CHECK_MEM(out.data, out.len, want, sizeof want - 1);
    out.len = 0;
    CHECK_EQ_INT(http_response(&out, 200, "text/plain", "body", 4, 1), 0);
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 4\r\nConnection: close\r\n\r\n";
    CHECK_MEM(out.data, out.len, head, sizeof head - 1);
    out.len = 0;
    CHECK_EQ_INT(http_response(&out, 405, "text/plain", "", 0, 0), 0);
    CHECK(buf_append(&out, "", 1) == 0);
    CHECK(strstr((const char *)out.data, "\r\nAllow: GET, HEAD\r\n") != NULL);
    buf_free(&out);
}

int main(void)
{
    test_exposition();
    test_requests();
    test_response();
    return check_report("test_prom");
}
