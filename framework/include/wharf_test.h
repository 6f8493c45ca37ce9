/*
 * wharf_test.h - the handler author's test kit: unit-test a handler without
 * a network, or start a real in-process server on an ephemeral port with
 * one call.  Link with libwharf (pkg-config --cflags --libs wharf).
 *
 * A wharf_test runs the real framework (the same connection code, buffers,
 * watermarks, timers and callbacks a server runs) for one listener of your
 * handler, on the calling thread, with no thread of its own: each client is
 * one end of a socketpair, and every call below runs the handler's
 * callbacks before it returns.  Time is the test's: timers fire only when
 * wharf_test_advance moves the clock.
 *
 *     wharf_test *t = wharf_test_new(&my_handler, "\"options\": {\"x\": 1}", err, sizeof err);
 *     wharf_test_conn *c = wharf_test_connect(t);
 *     wharf_test_send(c, "get k", 5);              // any split: each call is one read
 *     wharf_test_send(c, "\r\n", 2);
 *     char *out = wharf_test_output(c, &len);      // everything it sent so far
 *     wharf_test_advance(t, 60000);                // the idle timeout fires
 *     enum wharf_close_reason why;
 *     assert(wharf_test_closed(c, &why) && why == WHARF_CLOSE_TIMEOUT);
 *     wharf_test_free(t);
 *
 * A kit whose listener is UDP ("\"protocol\": \"udp\"") has datagrams
 * instead of clients, and no socket at all (below, "UDP").
 *
 * Threads: one wharf_test is used from one thread.  Blocking work
 * (wharf_queue_work) runs on real pool threads; the kit waits for it.
 * Several wharf_test may live at once in one program, with the same
 * handler or different ones: each has its own listener, worker, clock and
 * pool, and a call on one runs only that one's callbacks.
 */
#ifndef WHARF_TEST_H
#define WHARF_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "wharf.h"
#include "wharf_server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wharf_test wharf_test;
typedef struct wharf_test_conn wharf_test_conn;

/*
 * A test listener for handler h (TCP, or UDP with "\"protocol\": \"udp\"";
 * init runs here).  `listener_json` is NULL or more listener keys as JSON
 * text without braces, e.g.
 * "\"options\": {\"prefix\": \"> \"}, \"timeouts\": {\"idle_ms\": 100}".
 * Returns NULL with the reason in err (a bad key, init refusing...).
 */
wharf_test *wharf_test_new(const struct wharf_handler *h, const char *listener_json, char *err,
                           size_t errlen);
/* Closes every connection (reason "shutdown", after on_shutdown), runs fini
 * and frees.  NULL is fine. */
void wharf_test_free(wharf_test *t);

/* A client connects: on_open runs (NULL on a UDP kit).  On a listener with "tls" or
 * "proxy_protocol" it runs later, once the client's bytes (its handshake,
 * its PROXY header) have come: the client talks to the framework meanwhile
 * (wharf_test_output has the server's handshake records).  NULL on error. */
wharf_test_conn *wharf_test_connect(wharf_test *t);
/* The client sends these bytes as one chunk: the handler's on_data (and
 * whatever follows) runs before this returns.  Returns 0, or -EPIPE when
 * the connection is closed. */
int wharf_test_send(wharf_test_conn *c, const void *data, size_t len);
/* The client sends these bytes and shuts its sending side in one step:
 * both are in the socket before the handler runs, so the worker reads the
 * bytes and the EOF in the same turn (the case of a client that writes its
 * last request and closes at once).  Every on_data, then on_eof (and
 * whatever follows) runs before this returns.  Bytes beyond what the socket
 * holds (some 100 KB) reach the handler earlier, in more turns.  Returns 0,
 * or -EPIPE when the connection is closed. */
int wharf_test_send_eof(wharf_test_conn *c, const void *data, size_t len);
/* The client shuts its sending side (the handler sees EOF), or closes the
 * connection altogether. */
void wharf_test_shutdown(wharf_test_conn *c);
void wharf_test_close(wharf_test_conn *c);
/* Stops reading (the handler's output backs up: watermarks, on_drain) or
 * reads again. */
void wharf_test_pause_reading(wharf_test_conn *c, bool paused);

/* Everything the handler sent to c so far that was not taken yet, taken
 * now: a buffer NUL-terminated after *len bytes, valid until the next call
 * on c.  *len may be NULL. */
const char *wharf_test_output(wharf_test_conn *c, size_t *len);
/* How many chunks the handler sent to c with wharf_send_ref are still
 * held (not written, not released): their bytes reach wharf_test_output
 * like copied ones once written, and a suite can check that a client that
 * stops reading pins them and that each is given back (0 once c is
 * closed: the teardown released them). */
size_t wharf_test_refs_pending(const wharf_test_conn *c);
/* Whether the connection is closed (on_close ran), and why.  One that
 * closed before it opened (a failed or timed-out handshake or PROXY
 * header: no on_close) reads as closed with WHARF_CLOSE_ERROR. */
bool wharf_test_closed(const wharf_test_conn *c, enum wharf_close_reason *reason);
/* The framework's handle (for wharf_get_data and friends), or NULL once
 * closed or before it opened. */
wharf_conn *wharf_test_handle(const wharf_test_conn *c);

/* Time passes: the loop's clock moves forward ms, and every timer due
 * fires (handler timers and timeouts alike; a repeating timer fires once
 * per call however many periods passed, as on a real late loop turn).
 * wharf_now_ms reads this clock. */
void wharf_test_advance(wharf_test *t, uint64_t ms);
/* Runs what is pending (posts, re-offered input, finished blocking work)
 * until nothing is, waiting up to timeout_ms for blocking work.  Returns
 * false when work was still out at the deadline. */
bool wharf_test_run(wharf_test *t, uint64_t timeout_ms);

/* ---- UDP ----------------------------------------------------------------
 *
 * A kit whose listener is UDP has no socket, bound or not: the worker's
 * network is the kit.  The test sends datagrams to the listener from any
 * address it names, and reads every datagram the handler sent, with its
 * destination and the socket it left from: the listener's (wharf_reply, a
 * kept wharf_dgram_keep handle, wharf_udp_listener) or an outbound socket
 * (wharf_udp_open).  Everything on the way is the framework's own: the
 * loop guard, deny and rate_limit on what arrives, the size limit, the
 * send guard and rate_limit on what leaves (a refused send fails in the
 * handler with the same errno as on a socket, is counted as dropped, and
 * is not in the output), timers on the kit's clock.
 *
 *     wharf_test *t = wharf_test_new(&dns, "\"protocol\": \"udp\", ...", err, sizeof err);
 *     wharf_test_udp_send(t, "127.0.0.1:40000", query, qlen);  // on_datagram runs
 *     const struct wharf_test_dgram *r = wharf_test_udp_output(t);
 *     // r->socket == 0, r->to is "127.0.0.1:40000", r->data / r->len the answer
 *
 * Addresses are made up: the listener is at its "address" when that is an
 * IP literal (else 127.0.0.1), port WHARF_TEST_UDP_PORT (so a source with
 * that port meets the loop guard); outbound socket n, numbered from 1 in
 * the order the handler opened them, is at the loopback address of its
 * family, port 50000 + n - 1 (wharf_udp_local_addr says so).  Source
 * addresses are text, "127.0.0.1:5353" or "[::1]:5353"; an IPv4 source
 * reaches an IPv6 listener in its IPv4-mapped form, as from a socket.
 *
 * Every call below returns -EPROTOTYPE on a TCP kit.
 */
#define WHARF_TEST_UDP_PORT 5300

/* A datagram the handler sent (wharf_test_udp_output). */
struct wharf_test_dgram {
    unsigned socket;                /* 0: the listener's socket; n: outbound socket n */
    const char *to;                 /* destination, "127.0.0.1:5353" or "[::1]:5353" */
    const struct sockaddr *to_addr; /* the same, as the handler gave it */
    socklen_t to_len;
    const char *data;               /* len bytes, NUL-terminated after them */
    size_t len;
};

/* A datagram of len bytes from `from` ("ADDR:PORT") arrives at the
 * listener: on_datagram (and whatever follows) runs before this returns,
 * after any datagrams queued before it.  Returns 0 (handed to the
 * framework, which may still drop it: wharf_test_udp_dropped), or
 *   -EINVAL        from is not "IPv4:PORT" or "[IPv6]:PORT", or data is
 *                  NULL with len > 0
 *   -EAFNOSUPPORT  an IPv6 source on an IPv4 listener
 *   -EMSGSIZE      len above 65,507 (65,527 from an IPv6 source)
 *   -ENOMEM, -EPROTOTYPE (a TCP kit) */
int wharf_test_udp_send(wharf_test *t, const char *from, const void *data, size_t len);
/* The same with the source as a sockaddr (sockaddr_in or sockaddr_in6). */
int wharf_test_udp_send_from(wharf_test *t, const struct sockaddr *from, socklen_t fromlen,
                             const void *data, size_t len);
/* Queues the datagram without running anything: everything queued arrives
 * at the next call that runs the worker (a send, wharf_test_run,
 * wharf_test_advance...), together, as one read of the socket brings
 * them: every on_datagram runs before anything else does.
 * Returns as wharf_test_udp_send. */
int wharf_test_udp_queue(wharf_test *t, const char *from, const void *data, size_t len);
/* A datagram arrives at outbound socket `socket` from `from` (NULL: from
 * the address the socket was opened to; an upstream's answer): its
 * callback runs before this returns.  Returns 0, the errors of
 * wharf_test_udp_send, or
 *   -ENOENT   no outbound socket has that number
 *   -EPIPE    the handler closed it (the kernel would refuse it too)
 *   -EISCONN  it is connected (WHARF_UDP_CONNECT) to another address: the
 *             kernel would drop the datagram */
int wharf_test_udp_answer(wharf_test *t, unsigned socket, const char *from, const void *data,
                          size_t len);

/* The oldest datagram the handler sent that was not taken yet, taken now;
 * NULL when there is none.  Valid until the next call of this function (or
 * wharf_test_free).  The kit holds at most 64 MiB untaken: past that a send
 * fails with -ENOBUFS, as on a full socket buffer. */
const struct wharf_test_dgram *wharf_test_udp_output(wharf_test *t);
/* How many datagrams the handler sent wait to be taken. */
size_t wharf_test_udp_output_count(const wharf_test *t);
/* How many outbound sockets the handler opened so far, open or closed;
 * they are numbered 1 to this. */
unsigned wharf_test_udp_sockets(const wharf_test *t);
/* Outbound socket n's address (the one it was opened to, as text), and in
 * *open (may be NULL) whether it is still open; NULL when no socket has
 * that number. */
const char *wharf_test_udp_socket_peer(const wharf_test *t, unsigned socket, bool *open);
/* The listener's dropped datagrams for one reason, as the metrics name
 * them ("loop_guard", "deny", "rate_limit", "handler", "too_large",
 * "send_failed", "send_guard"), or all of them (reason NULL).  -EINVAL for
 * an unknown reason. */
long long wharf_test_udp_dropped(const wharf_test *t, const char *reason);

/*
 * A real server with one TCP listener for h on 127.0.0.1, an ephemeral
 * port (in *port), `workers` threads and the given listener keys.  Stop it
 * with wharf_server_free.  NULL with the reason in err.
 */
wharf_server *wharf_test_serve(const struct wharf_handler *h, unsigned workers,
                               const char *listener_json, int *port, char *err,
                               size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_TEST_H */
