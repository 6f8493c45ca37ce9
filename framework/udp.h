/*
 * udp.h - UDP listeners on a worker: each worker owns one SO_REUSEPORT
 * socket per UDP listener, reads datagrams in batches with recvmmsg, calls
 * the handler's on_datagram, and sends the replies in batches with sendmmsg.
 * Datagrams up to 65,507 bytes pass whole.
 */
#ifndef WHARF_UDP_H
#define WHARF_UDP_H

#include <stdbool.h>
#include <stddef.h>

struct worker;

/* Registers worker w's UDP sockets (if any) and allocates the batch buffers.
 * Returns 0 or -1 with a message in err. */
int udp_worker_init(struct worker *w, char *err, size_t errlen);
/* Stops reading w's UDP sockets (shutdown). */
void udp_worker_stop(struct worker *w);
/* Frees what udp_worker_init made (the sockets belong to the listeners). */
void udp_worker_free(struct worker *w);
/* Handles readability of the UDP socket behind epoll tag `tag`. */
void udp_on_readable(struct worker *w, void *tag);
/* Whether some UDP socket is busy: read every turn, so the loop must not sleep. */
bool udp_worker_busy(const struct worker *w);
/* Reads the busy UDP sockets; one found empty goes back to epoll. */
void udp_poll_busy(struct worker *w);

#endif
