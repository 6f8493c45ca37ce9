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

#include "wharf.h"
#include "wharf_server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wharf_test wharf_test;
typedef struct wharf_test_conn wharf_test_conn;

/*
 * A test listener for handler h (TCP; init runs here).  `listener_json` is
 * NULL or more listener keys as JSON text without braces, e.g.
 * "\"options\": {\"prefix\": \"> \"}, \"timeouts\": {\"idle_ms\": 100}".
 * Returns NULL with the reason in err (a bad key, init refusing...).
 */
wharf_test *wharf_test_new(const struct wharf_handler *h, const char *listener_json, char *err,
                           size_t errlen);
/* Closes every connection (reason "shutdown", after on_shutdown), runs fini
 * and frees.  NULL is fine. */
void wharf_test_free(wharf_test *t);

/* A client connects: on_open runs.  On a listener with "tls" or
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
