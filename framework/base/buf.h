/*
 * buf.h - a growable byte buffer for connection input and output.
 *
 * Data lives in data[start, start+len).  A zero-initialised struct buf is
 * empty with data == NULL and cap == 0.  Memory is allocated on first append
 * (4096 bytes, doubling as needed) and can be released with buf_free() when
 * empty, so an idle connection holds no buffer at all.  Not thread-safe.
 */
#ifndef WHARF_BUF_H
#define WHARF_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t start; /* offset of the first unconsumed byte */
    size_t len;   /* bytes held */
    size_t cap;   /* bytes allocated */
};

/* Appends n bytes (copied).  Returns 0 or -ENOMEM (buffer unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
/* Makes room for at least n more bytes at the end; returns a pointer to it
 * (commit them with buf_commit) or NULL on ENOMEM (buffer unchanged).  Moves
 * the data to the front instead of reallocating when that makes the room.
 * The pointer is valid until the next call that changes the buffer. */
char *buf_reserve(struct buf *b, size_t n);
/* Adds n bytes written through buf_reserve's pointer (n <= what was reserved). */
void buf_commit(struct buf *b, size_t n);
/* Drops n bytes from the front (n <= len).  When empty, start resets to 0. */
void buf_consume(struct buf *b, size_t n);
/* Pointer to the first unconsumed byte (only meaningful when data != NULL). */
static inline char *buf_head(const struct buf *b) { return b->data + b->start; }
/* Frees the memory, dropping any held bytes; the buffer becomes empty
 * (data == NULL, cap == 0) and may be reused. */
void buf_free(struct buf *b);

#endif
