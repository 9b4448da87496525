/* Random bytes from the kernel. See rand.h. */
#include "rand.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

int rand_bytes(void *buf, size_t n, gmud_error *err)
{
    ssize_t got;
    do
        got = getrandom(buf, n, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        int e = errno;
        char why[96] = "";
        strerror_r(e, why, sizeof why); /* strerror() is not reentrant */
        return gmud_error_set(err, GMUD_ERR_IO, 0, "getrandom failed: %s (errno %d)", why, e);
    }
    if ((size_t)got != n)
        return gmud_error_set(err, GMUD_ERR_IO, 0, "getrandom read %zd of %zu bytes", got, n);
    return GMUD_OK;
}
