/*
 * queue.h - a bounded multi-producer / single-consumer queue with an eventfd
 * wake-up: how the acceptor (and other threads) hand work to a worker.
 *
 * Producers never block: queue_push fails with -EAGAIN when full.  The
 * eventfd is written only when the queue goes from empty to non-empty; the
 * consumer, woken by it, calls queue_wake_clear() and then pops until empty.
 */
#ifndef WHARF_QUEUE_H
#define WHARF_QUEUE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>

/* What an item carries.  Shutdown phases do not go through the queue (a full
 * queue must not delay them): see worker_signal. */
enum queue_kind {
    QUEUE_CONN = 0, /* a new connection: fd, listener, peer */
};

union queue_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct queue_item {
    enum queue_kind kind;
    int fd;
    unsigned listener;      /* index into the server's listeners */
    socklen_t peer_len;
    union queue_addr peer;
};

struct queue;

/* Creates a queue of `depth` items (>= 1).  Returns NULL on error (errno set). */
struct queue *queue_new(size_t depth);
/* Frees the queue and closes its eventfd.  Items still queued are dropped
 * (the caller closes their fds first with queue_pop). */
void queue_free(struct queue *q);
/* Copies *item in.  Returns 0, or -EAGAIN when full. Thread-safe. */
int queue_push(struct queue *q, const struct queue_item *item);
/* Copies the oldest item out.  Returns 0, or -EAGAIN when empty.  Consumer only. */
int queue_pop(struct queue *q, struct queue_item *item);
/* The eventfd to poll for readability. */
int queue_fd(const struct queue *q);
/* Reads the eventfd so it stops being readable.  Consumer only. */
void queue_wake_clear(struct queue *q);
/* Items queued now (a snapshot). Thread-safe. */
size_t queue_len(struct queue *q);
size_t queue_depth(const struct queue *q);

#endif
