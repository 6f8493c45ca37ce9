/*
 * buf.c - the growable byte buffer behind every connection's input and output.
 *
 * A zero-initialised struct buf is empty and owns no memory.  The first
 * append allocates BUF_MIN_CAP bytes; after that the capacity doubles as
 * needed.  Consuming from the front only moves `start`, so reads are O(1);
 * the bytes are moved back to the front (compaction) only when a reserve
 * needs the room, and only when that avoids a reallocation.
 *
 * Sizes above PTRDIFF_MAX are refused with ENOMEM before anything is
 * allocated, so no size computation here can wrap.
 */
#include "buf.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP ((size_t)4096)
#define BUF_MAX_CAP ((size_t)PTRDIFF_MAX)

/*
 * Moves the held bytes into a new allocation of at least `need` bytes
 * (need >= len, need <= BUF_MAX_CAP): the current capacity (or BUF_MIN_CAP)
 * doubled until it fits.  Returns 0, or -ENOMEM with the buffer unchanged.
 */
static int buf_grow(struct buf *b, size_t need)
{
    size_t cap = b->cap > BUF_MIN_CAP ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap = cap > BUF_MAX_CAP / 2 ? need : cap * 2;

    char *p;
    if (b->start == 0) {
        /* realloc may extend in place; the data is already at the front. */
        p = realloc(b->data, cap);
        if (p == NULL)
            return -ENOMEM;
    } else {
        /* Copy only the live bytes rather than the consumed prefix too. */
        p = malloc(cap);
        if (p == NULL)
            return -ENOMEM;
        memcpy(p, b->data + b->start, b->len);
        free(b->data);
        b->start = 0;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

/*
 * Makes room for n more bytes after the held data.  If there is not enough
 * room at the end but moving the data to the front makes enough, it does
 * that instead of reallocating.  On a buffer with no memory it allocates even
 * for n == 0, so the result is NULL only on failure.  The returned pointer is
 * valid until the next call that changes the buffer.  Cost: O(1) when there
 * is room, otherwise O(len).
 */
char *buf_reserve(struct buf *b, size_t n)
{
    if (b->data != NULL && b->cap - b->start - b->len >= n)
        return b->data + b->start + b->len;

    if (n > BUF_MAX_CAP - b->len)
        return NULL;
    size_t need = b->len + n;

    if (b->start > 0 && b->cap >= need) {
        memmove(b->data, b->data + b->start, b->len);
        b->start = 0;
    } else if (buf_grow(b, need) < 0) {
        return NULL;
    }
    return b->data + b->start + b->len;
}

/*
 * Marks n bytes written through the pointer buf_reserve returned as held.
 * n must not exceed what was reserved.
 */
void buf_commit(struct buf *b, size_t n)
{
    assert(n <= b->cap - b->start - b->len);
    b->len += n;
}

/*
 * Copies n bytes from p to the end.  Returns 0, or -ENOMEM with the buffer
 * holding the same bytes as before.  Appending 0 bytes does nothing.
 */
int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    char *dst = buf_reserve(b, n);
    if (dst == NULL)
        return -ENOMEM;
    memcpy(dst, p, n);
    b->len += n;
    return 0;
}

/*
 * Drops n bytes (n <= len) from the front.  The memory is kept; when the
 * buffer becomes empty start returns to 0 so the next append starts at the
 * front.  O(1).
 */
void buf_consume(struct buf *b, size_t n)
{
    assert(n <= b->len);
    b->start += n;
    b->len -= n;
    if (b->len == 0)
        b->start = 0;
}

/* Frees the memory, dropping any held bytes; the buffer is then as if
 * zero-initialised and may be reused. */
void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->start = 0;
    b->len = 0;
    b->cap = 0;
}
