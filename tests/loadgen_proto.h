/* loadgen_proto.h - in-process request/response test servers on 127.0.0.1 (ephemeral
 * ports) for wharf-load's template tests: a small memcached (text protocol get/set), an
 * HTTP/1.1 keep-alive server with pipelining, and HTTP servers that answer wrongly in one
 * way each. */
#ifndef LOADGEN_PROTO_H
#define LOADGEN_PROTO_H

#include <stddef.h>
#include <stdint.h>

enum lp_kind {
    LP_MEMCACHE,     /* get (of one or more keys)/set over a key-value store; other
                        commands: ERROR */
    LP_MEMCACHE_WRONG, /* LP_MEMCACHE, but every 10th value found has a wrong last byte */
    LP_HTTP,         /* 200 with a 64-byte body (Content-Length); "/chunked": chunked body;
                        "/missing": 404 */
    LP_HTTP_GARBAGE, /* every 10th response of a connection is not HTTP */
    LP_HTTP_EXTRA,   /* every 10th response is followed by 5 bytes more ("EXTRA") */
    LP_HTTP_SHORT,   /* the 10th response of a connection is cut after 20 bytes, then close */
    LP_HTTP_SILENT,  /* reads requests, never answers */
    LP_HTTP_HUGE,    /* every 10th response announces a 10 MB body */
    LP_HTTP_500,     /* every 10th response has status 500 */
    /* servers that end connections cleanly (a client reconnects and goes on): each shuts
     * its side down after the response named, then reads and drops what still comes until
     * the client closes (a lingering close, as nginx does, so no reset loses a response) */
    LP_HTTP_CLOSE,   /* the 10th response of a connection says "Connection: close" */
    LP_HTTP_10,      /* HTTP/1.0 responses without keep-alive: one per connection */
    LP_HTTP_EOF,     /* after the 10th response, EOF without a word */
};

struct lp_server;

/* Starts a server of `kind` on 127.0.0.1, port 0; NULL on failure. */
struct lp_server *lp_server_start(enum lp_kind kind);
unsigned lp_server_port(const struct lp_server *s);

/* Requests the server parsed, and for memcache: gets that found their key. */
uint64_t lp_server_requests(const struct lp_server *s);
uint64_t lp_server_hits(const struct lp_server *s);
/* HTTP kinds: the head of the last request received (request line and headers, the final
 * "\r\n\r\n" cut to "\r\n\r"). */
void lp_server_last_request(struct lp_server *s, char *out, size_t len);

/* Stops the server (within about 50 ms), joins its threads and frees it. */
void lp_server_stop(struct lp_server *s);

#endif
