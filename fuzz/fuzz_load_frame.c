/*
 * fuzz_load_frame.c - libFuzzer target for wharf-load's reply framing
 * (tools/wharf-load/frame.c): the bytes a server sends back, hostile or
 * broken, cut into reads at any points, framed by each --frame kind, and
 * every framed reply put through the --expect checks.
 *
 *   byte 0   which framing (an index into `specs` below)
 *   byte 1   bits 0-2: the number of cuts (0..7); bit 3: HEAD (http: no
 *            response has a body)
 *   bytes 2..2+cuts: where each cut falls, in 256ths of what follows
 *   the rest: the bytes the server sends
 *
 * The stream is framed twice: in the pieces the header chose (as reads
 * would bring it) and whole, in one read. Besides what the sanitizers
 * catch, both must agree (except for regex framing, whose first match
 * may end later once more bytes are in): the same replies, of the same
 * lengths and statuses, ended the same way. Every reply is 1 byte or
 * more, within what was received and within --max-reply (4096 here).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REPLY 4096
#define MAX_REPLIES 512

#include "fuzz_check.h"

static const char *const specs[] = {
    "delim:\\r\\n", "delim:END\\r\\n", "fixed:1", "fixed:5", "len:0:1:be", "len:0:2:be:after",
    "len:1:4:le", "len:2:8:be:+2", "line:2", "line:1:2", "line:2:2", "regex:E+ND", "memcache",
    "http", "resp",
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static const char *const checks[] = {
    "literal:STORED\\r\\n", "prefix:VALUE ", "regex:^HTTP/1\\.[01] 2", "status:200-299",
};
#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

struct outcome {
    size_t len[MAX_REPLIES];
    int status[MAX_REPLIES];
    size_t n;
    enum frame_rc end; /* FRAME_NEED: the stream ended inside a reply (or between) */
};

static struct frame_spec fs[NSPECS];
static struct frame_check ck[NCHECKS];

static void setup(void)
{
    static int done;
    char err[256];

    if (done)
        return;
    for (size_t i = 0; i < NSPECS; i++) {
        if (frame_parse(&fs[i], specs[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "fuzz_load_frame: %s: %s\n", specs[i], err);
            abort();
        }
        fs[i].max_reply = MAX_REPLY;
    }
    for (size_t i = 0; i < NCHECKS; i++) {
        if (frame_check_parse(&ck[i], checks[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "fuzz_load_frame: %s: %s\n", checks[i], err);
            abort();
        }
    }
    done = 1;
}

/* Frames body[0..len) arriving in the pieces ending at at[0..n) (the last is len), as
 * wharf-load's connections do: the current reply's bytes at the start of a buffer, fed
 * again each time more arrive, a framed reply taken off the front. */
static void frame_stream(const struct frame_spec *spec, const uint8_t *body, size_t len,
                         const size_t *at, unsigned n, struct outcome *o)
{
    uint8_t *buf = malloc(len + 1); /* + a NUL: see below */
    struct frame_state st;
    size_t have = 0, got = 0, rl;
    unsigned piece = 0;
    const char *why;

    CHECK(buf != NULL);
    frame_reset(&st);
    o->n = 0;
    o->end = FRAME_NEED;
    for (;;) {
        enum frame_rc rc = have ? frame_feed(spec, &st, buf, have, &rl, &why) : FRAME_NEED;

        if (rc == FRAME_NEED) {
            if (piece == n)
                break;
            memcpy(buf + have, body + got, at[piece] - got);
            have += at[piece] - got;
            buf[have] = 0;
            got = at[piece++];
            continue;
        }
        if (rc != FRAME_DONE) {
            CHECK(why != NULL && *why);
            o->end = rc;
            break;
        }
        CHECK(rl >= 1 && rl <= have && rl <= MAX_REPLY);
        CHECK(st.status >= 0 && st.status <= 999);
        /* regex checks pass REG_STARTEND (glibc reads only the reply), but the sanitizers'
         * regexec interceptor still reads the string up to a NUL: hence buf[have] = 0 */
        for (size_t k = 0; k < NCHECKS; k++)
            (void)frame_check_ok(&ck[k], buf, rl, st.status);
        if (o->n < MAX_REPLIES) {
            o->len[o->n] = rl;
            o->status[o->n] = st.status;
        }
        o->n++;
        memmove(buf, buf + rl, have - rl);
        have -= rl;
        buf[have] = 0;
        frame_reset(&st);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct outcome a, b;
    const struct frame_spec *spec;
    struct frame_spec head;
    unsigned ncut;
    size_t at[9], len;
    const uint8_t *body;

    setup();
    if (size < 2)
        return 0;
    spec = &fs[data[0] % NSPECS];
    if (spec->kind == FK_HTTP && (data[1] & 8)) {
        head = *spec;
        head.http_no_body = true;
        spec = &head;
    }
    ncut = data[1] & 7;
    if (size < 2 + (size_t)ncut)
        return 0;
    body = data + 2 + ncut;
    len = size - 2 - ncut;
    fuzz_cuts(data + 2, ncut, len, at);

    frame_stream(spec, body, len, at, ncut + 1, &a);
    frame_stream(spec, body, len, &len, 1, &b);
    if (spec->kind == FK_REGEX)
        return 0;
    if (a.n != b.n || a.end != b.end) {
        fprintf(stderr, "fuzz_load_frame: %s: in pieces %zu replies then %d, whole %zu then %d\n",
                specs[data[0] % NSPECS], a.n, (int)a.end, b.n, (int)b.end);
        abort();
    }
    for (size_t i = 0; i < a.n && i < MAX_REPLIES; i++) {
        if (a.len[i] != b.len[i] || a.status[i] != b.status[i]) {
            fprintf(stderr, "fuzz_load_frame: %s: reply %zu: in pieces %zu bytes status %d, "
                            "whole %zu bytes status %d\n",
                    specs[data[0] % NSPECS], i, a.len[i], a.status[i], b.len[i], b.status[i]);
            abort();
        }
    }
    return 0;
}
