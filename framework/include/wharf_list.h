/*
 * wharf_list.h - an intrusive, circular, doubly-linked list (the shape of
 * libuv's uv__queue, nginx's ngx_queue_t and Linux's list_head), for the
 * framework and for handlers alike.
 *
 * A list is a struct wharf_list head; an element embeds a struct wharf_list
 * link and is recovered from it with wharf_list_entry.  The head and every
 * linked element point at their neighbours, so an empty list is a head that
 * points at itself, and insertion and removal are O(1) with no allocation
 * and no special case for the ends.  A head must be initialised
 * (wharf_list_init, or WHARF_LIST_INIT for a static one) before use; a
 * zeroed head is not an empty list.  A removed element's link is reset to
 * point at itself, so wharf_list_linked tells whether it is in a list and
 * removing it twice is harmless.
 *
 * Header only: nothing here is a symbol of libwharf.  Not thread-safe: the
 * owner of a list serialises its use (a worker's list is that worker's).
 */
#ifndef WHARF_LIST_H
#define WHARF_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct wharf_list {
    struct wharf_list *prev, *next;
};

/* The initialiser of a static head: WHARF_LIST_INIT(head) for `head`. */
#define WHARF_LIST_INIT(name) {&(name), &(name)}

/* Makes h an empty list (or a link that is in no list). */
static inline void wharf_list_init(struct wharf_list *h)
{
    h->prev = h->next = h;
}

static inline bool wharf_list_empty(const struct wharf_list *h)
{
    return h->next == h;
}

/* Whether the link e is in a list (it was inserted and not removed since;
 * e must have been initialised or inserted once). */
static inline bool wharf_list_linked(const struct wharf_list *e)
{
    return e->next != e;
}

/* Links e between prev and next (neighbours). */
static inline void wharf_list_link_(struct wharf_list *e, struct wharf_list *prev,
                                    struct wharf_list *next)
{
    e->prev = prev;
    e->next = next;
    prev->next = e;
    next->prev = e;
}

/* Inserts e first in h. */
static inline void wharf_list_insert_head(struct wharf_list *h, struct wharf_list *e)
{
    wharf_list_link_(e, h, h->next);
}

/* Inserts e last in h. */
static inline void wharf_list_insert_tail(struct wharf_list *h, struct wharf_list *e)
{
    wharf_list_link_(e, h->prev, h);
}

/* Inserts e right after the element (or head) at. */
static inline void wharf_list_insert_after(struct wharf_list *at, struct wharf_list *e)
{
    wharf_list_link_(e, at, at->next);
}

/* Unlinks e from its list and leaves it pointing at itself. */
static inline void wharf_list_remove(struct wharf_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = e;
}

/* The first / last link of h, or NULL when h is empty. */
static inline struct wharf_list *wharf_list_first(const struct wharf_list *h)
{
    return h->next == h ? NULL : h->next;
}

static inline struct wharf_list *wharf_list_last(const struct wharf_list *h)
{
    return h->prev == h ? NULL : h->prev;
}

/* The structure of type `type` whose member `member` is the link ptr. */
#define wharf_list_entry(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/*
 * Walks h from first to last with `it` (a struct wharf_list *) on each
 * link.  The body must not remove `it`; wharf_list_foreach_safe allows that
 * (it reads the next link before the body runs), but not removing the next
 * one.
 */
#define wharf_list_foreach(it, h) for ((it) = (h)->next; (it) != (h); (it) = (it)->next)

#define wharf_list_foreach_safe(it, tmp, h) \
    for ((it) = (h)->next, (tmp) = (it)->next; (it) != (h); (it) = (tmp), (tmp) = (it)->next)

/* The same from last to first (an LRU's eviction end). */
#define wharf_list_foreach_reverse(it, h) \
    for ((it) = (h)->prev; (it) != (h); (it) = (it)->prev)

#endif
