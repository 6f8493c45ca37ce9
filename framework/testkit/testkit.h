/*
 * testkit.h - what the test kit's two files share (not installed): the
 * kit itself (testkit.c: a generation of one listener, one worker run on
 * the caller's thread, socketpair clients) and its datagram side
 * (testkit_udp.c: a UDP listener with no socket, the worker's datagram
 * sink in place of the network).
 */
#ifndef WHARF_TESTKIT_H
#define WHARF_TESTKIT_H

#include <stdbool.h>
#include <stddef.h>

#include "wharf_test.h"
#include "worker.h"

struct admission;
struct generation;
struct testkit_udp;
struct workpool;

struct wharf_test {
    const struct wharf_handler *h;
    struct wharf_handler wrapped;
    struct generation *gen;
    struct admission *admission;
    struct workpool *pool;
    struct wharf_worker w;
    bool worker_ready;
    unsigned nconns;
    struct wharf_test_conn *conns;
    struct wharf_test_conn *opening;
    struct testkit_udp *udp;     /* a UDP listener's datagrams, or NULL (TCP) */
};

/* Runs the worker's loop until a few turns in a row find nothing to do,
 * after handing in the datagrams the test queued (testkit_udp_deliver). */
void testkit_pump(struct wharf_test *t);

/* Gives t's UDP listener a made-up address and no socket, installs the
 * worker's datagram sink and makes its UDP set; before the worker serves
 * the generation (on_worker_start may open outbound sockets).  Returns 0,
 * or a negative errno with the reason in err. */
int testkit_udp_new(struct wharf_test *t, char *err, size_t errlen);
/* Hands the datagrams the test queued to the listener, as one read
 * (nothing on a TCP kit). */
void testkit_udp_deliver(struct wharf_test *t);
/* No more datagrams: the worker's UDP set goes (the kit is stopping). */
void testkit_udp_stop(struct wharf_test *t);
/* Frees the datagram side, after the worker (whose handles tell the sink
 * they end) is gone.  NULL t->udp is fine. */
void testkit_udp_free(struct wharf_test *t);

#endif
