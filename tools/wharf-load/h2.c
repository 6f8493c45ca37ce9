/* h2.c - the HTTP/2 side of wharf-load's TCP engine (h2.h), over libnghttp2: requests
 * built once per target, a session per connection driven by the bytes the engine reads and
 * writes (nghttp2's "mem" interface with a send callback that may say "would block"), a
 * fixed table of stream slots, and the callbacks that turn stream ends into responses,
 * refusals and resets for the engine. */
#include "h2.h"

#include <ctype.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define H2_MAX_HEADERS 40
/* The most bytes one response header block may take on the wire (its HEADERS frame and
 * the CONTINUATION frames after it): a server that sends more, or CONTINUATION frames that
 * never end, is cut off with an h2_error naming it. Nothing of the block is kept (only
 * :status): the limit bounds the time spent on one, as the memory is bounded already. */
#define H2_MAX_HEADER_BLOCK 65536

struct h2_request {
    nghttp2_nv nv[H2_MAX_HEADERS];
    size_t nnv;
    char *strings; /* every name and value, one allocation */
    const uint8_t *body;
    size_t body_len;
};

struct h2_session {
    nghttp2_session *ng;
    const struct h2_request *rq;
    const struct h2_hooks *hk;
    void *user;
    uint32_t streams, open;
    bool settings; /* the server's first SETTINGS came */
    bool goaway;
    uint32_t goaway_code;
    struct h2_stream *slots, *free;
    nghttp2_data_provider body;
    size_t hblock;      /* bytes of the header block being received */
    unsigned hframes;   /* its frames so far (HEADERS, then CONTINUATION) */
    char why[160];      /* what a callback refused (h2_session_recv reports it) */
};

static int fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return -1;
}

struct h2_request *h2_request_new(const char *method, bool tls, const char *authority,
                                  const char *path, const char *const *headers, unsigned nh,
                                  const uint8_t *body, size_t body_len, char *err, size_t errlen)
{
    static const char *const banned[] = {"connection", "keep-alive", "proxy-connection",
                                         "transfer-encoding", "upgrade"};
    struct h2_request *rq;
    size_t total = 64 + strlen(method) + strlen(authority) + strlen(path) + 32, used = 0;
    const char *names[H2_MAX_HEADERS], *values[H2_MAX_HEADERS];
    size_t nlen[H2_MAX_HEADERS], vlen[H2_MAX_HEADERS];
    char clen[24];
    unsigned i, k, n = 0;

    if (nh + 5 > H2_MAX_HEADERS) {
        fail(err, errlen, "-H: at most %s headers with --h2%s", "35", "");
        return NULL;
    }
    names[n] = ":method", values[n++] = method;
    names[n] = ":scheme", values[n++] = tls ? "https" : "http";
    names[n] = ":authority", values[n++] = authority;
    names[n] = ":path", values[n++] = path;
    for (i = 0; i < n; i++)
        nlen[i] = strlen(names[i]), vlen[i] = strlen(values[i]);
    for (i = 0; i < nh; i++) {
        const char *h = headers[i], *colon = strchr(h, ':'), *v;

        if (!colon || colon == h) {
            fail(err, errlen, "-H '%s': %s", h, "expected 'Name: value'");
            return NULL;
        }
        for (k = 0; k < sizeof(banned) / sizeof(banned[0]); k++)
            if ((size_t)(colon - h) == strlen(banned[k]) && !strncasecmp(h, banned[k], strlen(banned[k]))) {
                fail(err, errlen, "-H '%s': %s", h,
                     "a connection-specific header is not allowed in HTTP/2 (RFC 9113 8.2.2)");
                return NULL;
            }
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        if (colon - h == 4 && !strncasecmp(h, "host", 4)) { /* replaces :authority */
            values[2] = v, vlen[2] = strlen(v);
            continue;
        }
        names[n] = h, nlen[n] = (size_t)(colon - h), values[n] = v, vlen[n] = strlen(v);
        n++;
    }
    if (body) {
        snprintf(clen, sizeof(clen), "%zu", body_len);
        names[n] = "content-length", nlen[n] = 14, values[n] = clen, vlen[n] = strlen(clen);
        n++;
    }
    for (i = 0; i < n; i++)
        total += nlen[i] + vlen[i] + 2;
    rq = calloc(1, sizeof(*rq));
    if (!rq || !(rq->strings = malloc(total))) {
        free(rq);
        fail(err, errlen, "%s%s", "out of memory", "");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        char *nm = rq->strings + used, *vl;

        for (k = 0; k < nlen[i]; k++) /* HTTP/2 field names are lower case */
            nm[k] = (char)tolower((unsigned char)names[i][k]);
        nm[nlen[i]] = '\0';
        vl = nm + nlen[i] + 1;
        memcpy(vl, values[i], vlen[i]);
        vl[vlen[i]] = '\0';
        used += nlen[i] + vlen[i] + 2;
        rq->nv[i] = (nghttp2_nv){(uint8_t *)nm, (uint8_t *)vl, nlen[i], vlen[i],
                                 NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    }
    rq->nnv = n;
    rq->body = body;
    rq->body_len = body_len;
    return rq;
}

void h2_request_free(struct h2_request *rq)
{
    if (!rq)
        return;
    free(rq->strings);
    free(rq);
}

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *u)
{
    struct h2_session *s = u;
    size_t n = s->hk->write(s->user, data, len);

    (void)ng, (void)flags;
    return n ? (ssize_t)n : NGHTTP2_ERR_WOULDBLOCK;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *fr, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *u)
{
    struct h2_stream *st;
    int status = 0;
    size_t i;

    (void)flags, (void)u;
    if (fr->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    st = nghttp2_session_get_stream_user_data(ng, fr->hd.stream_id);
    if (!st)
        return 0;
    for (i = 0; i < valuelen && i < 3; i++)
        status = status * 10 + (value[i] - '0');
    if (status >= 200) /* 1xx are interim: the final response follows */
        st->status = status;
    return 0;
}

/* Every frame header as it arrives (CONTINUATION frames included, which no other callback
 * sees): a header block over H2_MAX_HEADER_BLOCK ends the session. */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *u)
{
    struct h2_session *s = u;

    (void)ng;
    if (hd->type == NGHTTP2_HEADERS)
        s->hblock = 0, s->hframes = 0;
    if (hd->type != NGHTTP2_HEADERS && hd->type != NGHTTP2_CONTINUATION)
        return 0;
    s->hblock += hd->length;
    s->hframes++;
    if (s->hblock > H2_MAX_HEADER_BLOCK) {
        snprintf(s->why, sizeof(s->why), "h2_error: the server's header block on stream %d is "
                 "over %d bytes (its HEADERS frame and %u CONTINUATION frames so far)",
                 (int)hd->stream_id, H2_MAX_HEADER_BLOCK, s->hframes - 1);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *fr, void *u)
{
    struct h2_session *s = u;

    (void)ng;
    if (fr->hd.type == NGHTTP2_SETTINGS && !(fr->hd.flags & NGHTTP2_FLAG_ACK))
        s->settings = true;
    if (fr->hd.type == NGHTTP2_GOAWAY) {
        s->goaway = true;
        s->goaway_code = fr->goaway.error_code;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *u)
{
    struct h2_session *s = u;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);

    if (!st)
        return 0;
    s->open--;
    s->hk->done(s->user, st, code == NGHTTP2_REFUSED_STREAM ? H2_REFUSED : code);
    st->next_free = s->free;
    s->free = st;
    return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *u)
{
    struct h2_session *s = u;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    size_t left;

    (void)src;
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    left = s->rq->body_len - st->body_off;
    if (len > left)
        len = left;
    memcpy(buf, s->rq->body + st->body_off, len);
    st->body_off += len;
    if (st->body_off == s->rq->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)len;
}

struct h2_session *h2_session_new(const struct h2_request *rq, uint32_t streams,
                                  const struct h2_hooks *hk, void *user)
{
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536},
    };
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    struct h2_session *s = calloc(1, sizeof(*s));
    uint32_t i;
    int rc;

    if (!s || !(s->slots = calloc(streams, sizeof(*s->slots))))
        goto err;
    s->rq = rq, s->hk = hk, s->user = user, s->streams = streams;
    for (i = streams; i-- > 0;) {
        s->slots[i].next_free = s->free;
        s->free = &s->slots[i];
    }
    s->body.read_callback = read_body;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        goto err;
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    /* what a hostile server may make this side hold: few SETTINGS entries, few queued
     * PING/SETTINGS acknowledgements, a bounded header block */
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_send_header_block_length(opt, 65536);
    rc = nghttp2_session_client_new2(&s->ng, cb, s, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    cb = NULL, opt = NULL;
    if (rc != 0)
        goto err;
    if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
        nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, 1 << 24) != 0)
        goto err;
    return s;
err:
    if (cb)
        nghttp2_session_callbacks_del(cb);
    if (opt)
        nghttp2_option_del(opt);
    h2_session_free(s);
    return NULL;
}

void h2_session_free(struct h2_session *s)
{
    if (!s)
        return;
    if (s->ng)
        nghttp2_session_del(s->ng); /* calls no stream-close callback */
    free(s->slots);
    free(s);
}

uint32_t h2_session_room(const struct h2_session *s)
{
    uint32_t peer, lim;

    if (s->goaway)
        return 0;
    /* until the server's SETTINGS say how many streams it takes, one */
    peer = s->settings ? nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                       : 1;
    lim = peer < s->streams ? peer : s->streams;
    return lim > s->open ? lim - s->open : 0;
}

int h2_session_submit(struct h2_session *s, uint64_t intended, uint64_t sent, uint64_t seq)
{
    struct h2_stream *st = s->free;
    int32_t id;

    if (!st || h2_session_room(s) == 0)
        return -1;
    id = nghttp2_submit_request(s->ng, NULL, s->rq->nv, s->rq->nnv,
                                s->rq->body ? &s->body : NULL, st);
    if (id < 0)
        return -1; /* stream ids used up: the engine waits, the GOAWAY path reconnects */
    s->free = st->next_free;
    *st = (struct h2_stream){intended, sent, seq, 0, 0, NULL};
    s->open++;
    return 0;
}

int h2_session_send(struct h2_session *s, char *err, size_t errlen)
{
    int rc = nghttp2_session_send(s->ng);

    if (rc != 0)
        return fail(err, errlen, "h2_error: HTTP/2 send failed: %s%s", nghttp2_strerror(rc), "");
    return 0;
}

int h2_session_recv(struct h2_session *s, const uint8_t *p, size_t len, char *err, size_t errlen)
{
    ssize_t rc = nghttp2_session_mem_recv(s->ng, p, len);

    if (rc < 0 && s->why[0])
        return fail(err, errlen, "%s%s", s->why, "");
    if (rc < 0)
        return fail(err, errlen, "h2_error: HTTP/2 protocol error from the server: %s%s",
                    nghttp2_strerror((int)rc), "");
    return 0;
}

bool h2_session_goaway(const struct h2_session *s, uint32_t *code)
{
    if (code)
        *code = s->goaway_code;
    return s->goaway;
}

uint32_t h2_session_open(const struct h2_session *s)
{
    return s->open;
}

bool h2_session_want_write(const struct h2_session *s)
{
    return nghttp2_session_want_write(s->ng) != 0;
}

bool h2_session_over(const struct h2_session *s)
{
    return !nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng);
}

const char *h2_error_name(uint32_t code)
{
    return nghttp2_http2_strerror(code);
}
