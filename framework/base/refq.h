/*
 * refq.h - the referenced chunks of one connection's output, in stream
 * order with the copied bytes around them (wharf_send_ref).
 *
 * A connection's output is one byte stream made of copied bytes (held in a
 * struct buf elsewhere) and referenced chunks (bytes the handler lends,
 * with a release callback).  The queue keeps only the chunks, each with the
 * number of copied bytes that go out before it: so the copied bytes stay in
 * one buffer, and the whole stream is that buffer cut at those counts with
 * a chunk between the pieces.  The copied bytes after the last chunk are
 * the buffer's rest.  Not thread-safe; calls each release exactly once.
 */
#ifndef WHARF_REFQ_H
#define WHARF_REFQ_H

#include <stddef.h>
#include <sys/uio.h>

struct refq_chunk {
    struct refq_chunk *next;
    const char *data;            /* the bytes not written yet */
    size_t len;
    size_t before;               /* copied bytes that go out before it */
    void (*release)(void *arg);
    void *arg;
};

struct refq {
    struct refq_chunk *head, *tail;
    size_t bytes;                /* referenced bytes not written yet */
    size_t before;               /* sum of the chunks' `before` */
};

/*
 * Appends a chunk of len bytes after the `copied` copied bytes now held
 * (all of them go out before it).  Returns 0, or -ENOMEM (queue unchanged,
 * release not called).  len must be > 0.
 */
int refq_push(struct refq *q, size_t copied, const void *data, size_t len,
              void (*release)(void *arg), void *arg);

/*
 * Fills iov (at most max entries, max >= 1) with the stream's next bytes:
 * the copied bytes (copied[0..copied_len), the buffer as it is now) and the
 * chunks in order.  Returns the number of entries, and their total in
 * *total.
 */
int refq_iov(const struct refq *q, const char *copied, size_t copied_len, struct iovec *iov,
             int max, size_t *total);

/*
 * n bytes of the stream were written: advances the chunks, releasing those
 * written completely (in order).  Returns how many of the n were copied
 * bytes (the caller drops that many from the front of its buffer).
 */
size_t refq_consume(struct refq *q, size_t n);

/* Removes the chunk pushed last and releases it (nothing of it written). */
void refq_drop_last(struct refq *q);

/* Releases every chunk (in order) and empties the queue. */
void refq_drop(struct refq *q);

#endif
