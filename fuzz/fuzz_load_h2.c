/*
 * fuzz_load_h2.c - libFuzzer target for wharf-load's HTTP/2 client side
 * (tools/wharf-load/h2.c over libnghttp2): a session that has sent its
 * preface and requests is fed what a hostile or broken server sends back,
 * cut into reads anywhere, and submits again whenever it has room, as the
 * TCP engine does.
 *
 *   byte 0   bits 0-3: --streams - 1 (1..16); bit 4: POST with a 100 KB
 *            body (flow control: DATA waits for WINDOW_UPDATE); bit 5: the
 *            socket takes at most 7 bytes a write; bit 6: every other write
 *            would block
 *   byte 1   bits 0-2: the number of cuts (0..7)
 *   bytes 2..2+cuts: where each cut falls, in 256ths of what follows
 *   the rest: the bytes the server sends
 *
 * Checked besides what the sanitizers catch (leaks included): every
 * stream ends at most once and only one that was submitted; never more
 * streams open than --streams, and never more room than that; a session
 * that failed is not used again. At most 256 requests per input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQUESTS 256

#include "fuzz_check.h"

struct run {
    uint8_t mode;
    unsigned writes;
    uint64_t submitted, ended;
    uint8_t done[MAX_REQUESTS];
};

static size_t on_write(void *user, const uint8_t *p, size_t len)
{
    struct run *r = user;

    (void)p;
    r->writes++;
    if ((r->mode & 0x40) && (r->writes & 1))
        return 0;
    if ((r->mode & 0x20) && len > 7)
        return 7;
    return len;
}

static void on_done(void *user, const struct h2_stream *st, uint32_t code)
{
    struct run *r = user;

    (void)code;
    CHECK(st->seq < r->submitted);
    CHECK(!r->done[st->seq]);
    CHECK(st->status >= 0 && st->status <= 999);
    r->done[st->seq] = 1;
    r->ended++;
}

static const struct h2_hooks hooks = {on_write, on_done};
static struct h2_request *get, *post;
static uint8_t body[100 * 1024];

static void setup(void)
{
    static const char *const hdr[] = {"User-Agent: fuzz", "Accept: */*"};
    char err[256];

    if (get)
        return;
    memset(body, 'b', sizeof(body));
    get = h2_request_new("GET", false, "127.0.0.1:8080", "/index.html", hdr, 2, NULL, 0, err,
                         sizeof(err));
    post = h2_request_new("POST", false, "127.0.0.1:8080", "/up", hdr, 2, body, sizeof(body),
                          err, sizeof(err));
    CHECK(get && post);
}

/* Submits while there is room (at most MAX_REQUESTS in all), then writes. Returns -1 once
 * the session failed. */
static int fill(struct h2_session *s, struct run *r, uint32_t streams)
{
    char err[256];
    uint32_t room = h2_session_room(s);

    CHECK(room <= streams);
    CHECK(h2_session_open(s) <= streams);
    while (room-- > 0 && r->submitted < MAX_REQUESTS) {
        if (h2_session_submit(s, 0, 0, r->submitted) != 0)
            break;
        r->submitted++;
    }
    CHECK(h2_session_open(s) <= streams);
    return h2_session_send(s, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run r;
    struct h2_session *s;
    uint32_t streams;
    unsigned ncut;
    size_t at[9], len, from = 0;
    const uint8_t *srv;
    char err[256];

    setup();
    if (size < 2)
        return 0;
    ncut = data[1] & 7;
    if (size < 2 + (size_t)ncut)
        return 0;
    memset(&r, 0, sizeof(r));
    r.mode = data[0];
    streams = 1 + (data[0] & 15);
    srv = data + 2 + ncut;
    len = size - 2 - ncut;
    fuzz_cuts(data + 2, ncut, len, at);

    s = h2_session_new((data[0] & 0x10) ? post : get, streams, &hooks, &r);
    CHECK(s != NULL);
    if (fill(s, &r, streams) != 0)
        goto out;
    for (unsigned i = 0; i <= ncut; i++) {
        if (at[i] > from && h2_session_recv(s, srv + from, at[i] - from, err, sizeof(err)) != 0)
            goto out;
        from = at[i];
        if (h2_session_over(s))
            break;
        if (fill(s, &r, streams) != 0)
            goto out;
    }
out:
    CHECK(r.ended <= r.submitted);
    h2_session_free(s);
    return 0;
}
