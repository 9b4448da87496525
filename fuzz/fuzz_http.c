/* fuzz/fuzz_http.c: the metrics endpoint's request parser
 * (http_request_parse), which reads whatever a scraper, or anyone who can
 * reach the port, sends.
 *
 * Input: the bytes of a request. Checked: the result is 0 (more needed:
 * only under HTTP_MAX_REQUEST bytes), or one of the statuses the endpoint
 * answers; *head is set only for a HEAD request; input past HTTP_MAX_REQUEST never
 * changes the answer (the bound is where reading stops); the response the
 * endpoint would write for it is well formed. */
#include "fuzz_common.h"

#include "prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int head = 0;
    int st = http_request_parse(data, size, &head);
    FUZZ_CHECK(st == 0 || st == 200 || st == 400 || st == 404 || st == 405 || st == 431 ||
                   st == 505,
               "status %d", st);
    FUZZ_CHECK(st != 0 || size < HTTP_MAX_REQUEST, "more asked for after %zu bytes", size);
    FUZZ_CHECK(!head || (size >= 5 && memcmp(data, "HEAD ", 5) == 0), "head set for %d", st);
    if (size > HTTP_MAX_REQUEST) {
        int h2 = 0;
        FUZZ_CHECK(http_request_parse(data, HTTP_MAX_REQUEST, &h2) == st && h2 == head,
                   "bytes past the bound changed the answer");
    }
    if (st != 0) {
        byte_buf out = {0};
        FUZZ_CHECK(http_response(&out, st, "text/plain", "x", 1, head) == 0, "no response");
        FUZZ_CHECK(out.len > 17 && memcmp(out.data, "HTTP/1.1 ", 9) == 0, "a bad status line");
        buf_free(&out);
    }
    return 0;
}
