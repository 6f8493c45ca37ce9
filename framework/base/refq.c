/*
 * refq.c - the referenced chunks of a connection's output (refq.h).
 *
 * One allocation per chunk, freed when it is released.  A written chunk
 * is released as soon as its last byte is consumed, so a handler's buffer
 * goes back to it at the earliest moment.
 */
#include "refq.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

int refq_push(struct refq *q, size_t copied, const void *data, size_t len,
              void (*release)(void *arg), void *arg)
{
    struct refq_chunk *k = malloc(sizeof *k);
    if (!k)
        return -ENOMEM;
    *k = (struct refq_chunk){.data = data, .len = len, .before = copied - q->before,
                             .release = release, .arg = arg};
    q->before += k->before;
    q->bytes += len;
    if (q->tail)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
    return 0;
}

/* Adds one entry (when it has bytes and there is room); false when full. */
static bool refq_add(struct iovec *iov, int max, int *k, size_t *total, const char *p, size_t n)
{
    if (n == 0)
        return true;
    if (*k == max)
        return false;
    iov[*k] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    (*k)++;
    *total += n;
    return true;
}

int refq_iov(const struct refq *q, const char *copied, size_t copied_len, struct iovec *iov,
             int max, size_t *total)
{
    int k = 0;
    *total = 0;
    size_t off = 0;
    for (const struct refq_chunk *c = q->head; c; c = c->next) {
        if (!refq_add(iov, max, &k, total, copied + off, c->before) ||
            !refq_add(iov, max, &k, total, c->data, c->len))
            return k;
        off += c->before;
    }
    refq_add(iov, max, &k, total, copied + off, copied_len - off);
    return k;
}

size_t refq_consume(struct refq *q, size_t n)
{
    size_t copied = 0;
    while (n > 0 && q->head) {
        struct refq_chunk *c = q->head;
        size_t m = n < c->before ? n : c->before;
        c->before -= m;
        q->before -= m;
        copied += m;
        n -= m;
        m = n < c->len ? n : c->len;
        c->data += m;
        c->len -= m;
        q->bytes -= m;
        n -= m;
        if (c->len > 0)
            break; /* n is 0 */
        q->head = c->next;
        if (!q->head)
            q->tail = NULL;
        c->release(c->arg);
        free(c);
    }
    return copied + n; /* what is left is the copied tail */
}

void refq_drop_last(struct refq *q)
{
    struct refq_chunk **p = &q->head, *prev = NULL;
    if (!q->tail)
        return;
    while (*p != q->tail) {
        prev = *p;
        p = &(*p)->next;
    }
    struct refq_chunk *c = q->tail;
    *p = NULL;
    q->tail = prev;
    q->before -= c->before;
    q->bytes -= c->len;
    c->release(c->arg);
    free(c);
}

void refq_drop(struct refq *q)
{
    while (q->head) {
        struct refq_chunk *c = q->head;
        q->head = c->next;
        c->release(c->arg);
        free(c);
    }
    *q = (struct refq){0};
}
