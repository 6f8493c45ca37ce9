/*
 * fuzz_memcache.c - libFuzzer target for the memcache handler
 * (handlers/memcache/, compiled in), driven by the test kit (wharf_test.h)
 * as a client on a socketpair would drive it: the whole framework, the
 * handler's framing and every parser it has behind the first byte of a
 * connection (ASCII commands, meta commands, binary requests).
 *
 * The input's first bytes choose how the rest is cut into reads:
 *
 *   byte 0   bits 0-2: the number of cuts (0..7); bit 3: the last piece
 *            comes with the client's EOF; bit 4: the client stops reading
 *            until the end (output backs up); bit 5: the kit's clock moves a
 *            second after each piece (timers fire)
 *   bytes 1..cuts: where each cut falls, in 256ths of what follows
 *   the rest: the bytes the client sends
 *
 * Each input gets a fresh kit and cache (small limits, so evictions, the
 * too-large path and the input limit are reached by short inputs), so a
 * crash replays from its input alone.  After the pieces a second client
 * must still get an answer to `version`: whatever one connection sent, the
 * handler keeps serving.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* handlers/memcache/, compiled into this program. */
extern const struct wharf_handler wharf_handler;

#define LISTENER "\"timeouts\": {\"idle_ms\": 0}, \"buffers\": {\"max_input\": 16384}, " \
                 "\"options\": {\"memory_limit\": 65536, \"item_size_max\": 4096, " \
                 "\"reclaim_interval_ms\": 1000, \"reclaim_batch\": 4}"

#include "fuzz_check.h"

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Sends body[0..len) in the pieces the header chose; stops once closed. */
static void send_pieces(wharf_test *t, wharf_test_conn *c, uint8_t mode,
                        const uint8_t *cut, unsigned ncut, const uint8_t *body, size_t len)
{
    size_t at[9];
    for (unsigned i = 0; i < ncut; i++)
        at[i] = (size_t)cut[i] * len / 256;
    qsort(at, ncut, sizeof at[0], cmp_size);
    at[ncut] = len;
    size_t from = 0;
    for (unsigned i = 0; i <= ncut; i++) {
        size_t n = at[i] - from;
        int rc;
        if (i == ncut && (mode & 0x08))
            rc = wharf_test_send_eof(c, body + from, n);
        else
            rc = n ? wharf_test_send(c, body + from, n) : 0;
        from = at[i];
        if (!(mode & 0x10))
            (void)wharf_test_output(c, NULL);
        if (mode & 0x20)
            wharf_test_advance(t, 1000);
        if (rc < 0 || wharf_test_closed(c, NULL))
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    unsigned ncut = mode & 0x07;
    if (size < 1 + (size_t)ncut)
        return 0;
    /* A copy of exactly the bytes sent, so ASan sees a read past them. */
    size_t len = size - 1 - ncut;
    uint8_t *body = malloc(len ? len : 1);
    CHECK(body != NULL);
    memcpy(body, data + 1 + ncut, len);

    char err[512] = "";
    wharf_test *t = wharf_test_new(&wharf_handler, LISTENER, err, sizeof err);
    if (!t) {
        fprintf(stderr, "fuzz_memcache: wharf_test_new: %s\n", err);
        abort();
    }
    wharf_test_conn *c = wharf_test_connect(t);
    CHECK(c != NULL);
    send_pieces(t, c, mode, data + 1, ncut, body, len);
    if (mode & 0x10) {
        wharf_test_pause_reading(c, false);
        (void)wharf_test_run(t, 100);
        (void)wharf_test_output(c, NULL);
    }

    /* Whatever that client did, the next one is served. */
    wharf_test_conn *d = wharf_test_connect(t);
    CHECK(d != NULL);
    CHECK(wharf_test_send(d, "version\r\n", 9) == 0);
    size_t n;
    const char *out = wharf_test_output(d, &n);
    CHECK(n >= 8 && memcmp(out, "VERSION ", 8) == 0);

    /* The clients may still hold part of a message: wharf_test_free tears
     * them down before the worker's timers go (fuzz/known/kit-free-partial). */
    wharf_test_free(t);
    free(body);
    return 0;
}
