/*
 * udp.h - the UDP sockets of one worker: for each UDP listener of a
 * generation, the worker's own SO_REUSEPORT socket per address (with
 * reuse_port; without it worker 0 reads the listener's one socket), read in
 * batches with recvmmsg, each datagram handed to the handler's on_datagram,
 * replies sent in batches with sendmmsg.  Datagrams up to 65,507 bytes pass
 * whole.
 */
#ifndef WHARF_UDP_H
#define WHARF_UDP_H

#include <stddef.h>

struct generation;
struct wharf_worker;
struct udp_set;

/* Watches worker w's sockets of generation g on w's loop and allocates the
 * batch buffers.  Returns 0 with the set in *out (NULL when g has no UDP
 * listener), or a negative errno with a message in err. */
int udp_set_new(struct wharf_worker *w, struct generation *g, struct udp_set **out, char *err,
                size_t errlen);
/* Stops watching the set's sockets now and frees it at the end of the loop
 * turn (the sockets belong to the generation's listeners).  NULL is fine. */
void udp_set_free(struct wharf_worker *w, struct udp_set *set);

#endif
