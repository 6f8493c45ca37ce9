/* h2.h - wharf-load's HTTP/2 client side (h2.c, libnghttp2): the --h2 options, the
 * request each target gets (pseudo-headers, -H headers, a body for POST), and per TCP
 * connection an HTTP/2 session the TCP engine (tcp.c) feeds with the bytes it reads and
 * drains of the bytes it must write. Each request is a stream; up to --streams of them are
 * open at once on a connection, never more than the server's SETTINGS_MAX_CONCURRENT_STREAMS,
 * and nghttp2 never sends more DATA than the peer's flow-control windows allow.
 *
 * Nothing here touches sockets or the loop: the engine owns them. Memory is bounded
 * whatever the server sends: a stream table of --streams slots per connection, no response
 * header or body kept (only :status), a response header block (HEADERS and CONTINUATION
 * frames) of at most 64 KiB on the wire, nghttp2's own limits on header fields (64 KB),
 * SETTINGS entries and queued control frames (a peer flooding PING or SETTINGS is cut
 * off), and server push disabled.
 *
 * Ownership: a struct h2_request is made once per target by tcp.c's thread set-up and is
 * read-only; a struct h2_session belongs to one connection of one engine thread. */
#ifndef WLOAD_H2_H
#define WLOAD_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The --h2 options as parsed (opts.c); the method and body are struct load_http's. */
struct h2_opts {
    bool on;               /* --h2 (or --proto h2) */
    const char *path;      /* --path (a URL target's own path wins) */
    const char *headers[32]; /* -H, in order (point into argv) */
    unsigned nheaders;
};

/* One target's request. */
struct h2_request;

/* Makes the request: :method, :scheme (https with TLS), :authority (a Host -H header
 * replaces it), :path, the headers `headers` ("Name: value", names sent in lower case),
 * and the body (not copied: it must outlive the request). Connection-specific headers
 * (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade) are refused.
 * Returns the request, or NULL with a message naming the header in err. */
struct h2_request *h2_request_new(const char *method, bool tls, const char *authority,
                                  const char *path, const char *const *headers, unsigned nh,
                                  const uint8_t *body, size_t body_len, char *err, size_t errlen);
void h2_request_free(struct h2_request *rq);

/* One request in flight: the engine's times and the response status seen so far. */
struct h2_stream {
    uint64_t intended, sent; /* due and submit times */
    uint64_t seq;            /* the connection's request number */
    int status;              /* final :status, 0 until the response headers came */
    size_t body_off;         /* request body bytes handed to nghttp2 */
    struct h2_stream *next_free;
};

/* What the engine provides. */
struct h2_hooks {
    /* Takes up to len bytes to write to the connection; returns how many (0: would block,
     * nghttp2 keeps the rest and offers it again on the next h2_session_send). */
    size_t (*write)(void *user, const uint8_t *p, size_t len);
    /* A stream ended: error_code 0 with st->status set is a complete response;
     * H2_REFUSED a request the server did not process (GOAWAY, REFUSED_STREAM: safe to
     * send again); anything else an HTTP/2 error code of a reset stream. */
    void (*done)(void *user, const struct h2_stream *st, uint32_t error_code);
};

#define H2_REFUSED 7u /* NGHTTP2_REFUSED_STREAM */

struct h2_session;

/* A client session for one connection: queues the connection preface and SETTINGS
 * (push off, stream window 1 MiB, connection window 16 MiB). `streams` is the most
 * streams this side opens at once. Returns NULL when out of memory. */
struct h2_session *h2_session_new(const struct h2_request *rq, uint32_t streams,
                                  const struct h2_hooks *hk, void *user);
void h2_session_free(struct h2_session *s);

/* How many more requests may be submitted now: min(streams, the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS) minus those open (one until the server's first SETTINGS
 * came, so that a lower limit is never overrun); 0 once a GOAWAY came. */
uint32_t h2_session_room(const struct h2_session *s);

/* Submits one request (a new stream). Returns 0, or -1 when there is no room. */
int h2_session_submit(struct h2_session *s, uint64_t intended, uint64_t sent, uint64_t seq);

/* Hands what nghttp2 has to write to hooks->write until it would block or nothing is
 * left. Returns 0, or -1 with a sentence in err (the session is then unusable). */
int h2_session_send(struct h2_session *s, char *err, size_t errlen);

/* Feeds bytes read from the connection (streams may end: hooks->done). Returns 0, or -1
 * on a protocol error with a sentence in err (the connection must be closed). */
int h2_session_recv(struct h2_session *s, const uint8_t *p, size_t len, char *err,
                    size_t errlen);

/* A GOAWAY came (*code: its error code, 0 for a graceful one such as a request limit). */
bool h2_session_goaway(const struct h2_session *s, uint32_t *code);
/* Streams of ours still open. */
uint32_t h2_session_open(const struct h2_session *s);
/* Whether nghttp2 has frames to write, and whether the session is over (it wants neither
 * to read nor to write: after a connection error, or a GOAWAY with nothing left open). */
bool h2_session_want_write(const struct h2_session *s);
bool h2_session_over(const struct h2_session *s);
/* The name of an HTTP/2 error code (PROTOCOL_ERROR, CANCEL, ...). */
const char *h2_error_name(uint32_t code);

#endif
