/* loadgen_servers.h - small in-process servers on loopback (ephemeral ports) that the
 * wharf-load tests aim at: a correct echo and deliberately faulty ones. */
#ifndef LOADGEN_SERVERS_H
#define LOADGEN_SERVERS_H

#include <stddef.h>
#include <stdint.h>

enum lg_kind {
    LG_ECHO,     /* TCP: echoes every byte */
    LG_CORRUPT,  /* TCP: flips one payload byte of every 100th message of a connection */
    LG_REORDER,  /* TCP: swaps messages 10 and 11 of each connection */
    LG_SILENT,   /* TCP: reads and never answers */
    LG_RESET,    /* TCP: echoes 5 messages, then resets the connection (RST) */
    LG_LATE,     /* TCP: echoes, but listens only 200 ms after the start (connects before
                  * that are refused) */
    LG_UDP_ECHO, /* UDP: echoes every datagram */
    LG_UDP_DROP, /* UDP: drops every 10th datagram (10th, 20th, ... in arrival order) */
    LG_UDP_DUP,  /* UDP: sends every 5th datagram twice */
    LG_UDP_SWAP, /* UDP: holds the 10th datagram and sends it after the 11th */
};

struct lg_server;

/* Starts a server of `kind` on 127.0.0.1 (ipv6 = 0) or ::1 (ipv6 = 1), port 0. Returns
 * NULL when it cannot (for example no IPv6 loopback). Stop it with lg_server_stop. */
struct lg_server *lg_server_start(enum lg_kind kind, int ipv6);

unsigned lg_server_port(const struct lg_server *s);

/* Messages (TCP, framed by the wharf-load header) or datagrams the server received. */
uint64_t lg_server_received(const struct lg_server *s);

/* TCP: connections accepted from the numeric address `addr` (as inet_ntop writes it); UDP:
 * datagrams received from it. */
uint64_t lg_server_peer_count(struct lg_server *s, const char *addr);

/* Sends everything on a blocking socket, retrying after EINTR. Returns -1 on an error
 * or a send timeout. */
int lg_send_all(int fd, const uint8_t *p, size_t len);

/* Stops the server, joins its threads, closes its sockets and frees it. Bounded: every
 * thread polls with a 50 ms timeout and sends time out after 1 s. */
void lg_server_stop(struct lg_server *s);

#endif
