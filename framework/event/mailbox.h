/*
 * mailbox.h - a bounded multi-producer / single-consumer queue of messages
 * {function, argument, small payload} with an eventfd wake-up: how any thread
 * asks a loop's thread to run something (new connections, phase changes,
 * reloads, and later the handlers' posts).
 *
 * Producers never block: a post fails with -EAGAIN when the mailbox is full
 * and -EPIPE once it is closed.  `reserve` extra slots are kept for urgent
 * posts (phase changes, reloads), so a mailbox full of new connections never
 * delays a stop.  The owner drains in batches; every message accepted by a
 * post is run exactly once, either normally (cancelled == false) or, when
 * the mailbox is closed or freed with it still queued, with cancelled ==
 * true so its function can free what it carries.  Nothing is lost silently.
 */
#ifndef WHARF_MAILBOX_H
#define WHARF_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes of payload one message carries (copied in and out). */
#define MAILBOX_PAYLOAD 56

/* Runs a message on the owner's thread.  `payload` points at the copy made
 * by the post (valid during the call, 8-byte aligned). */
typedef void (*mailbox_fn)(void *arg, void *payload, bool cancelled);

struct mailbox;

/* Creates a mailbox holding `depth` (>= 1) ordinary messages plus `reserve`
 * urgent ones.  Returns NULL with errno set (EINVAL, ENOMEM, eventfd's). */
struct mailbox *mailbox_new(size_t depth, size_t reserve);
/* Cancels (runs with cancelled == true) what is still queued, closes the
 * eventfd and frees.  NULL is fine.  No producer may use it any more. */
void mailbox_free(struct mailbox *mb);

/*
 * Queues fn(arg, copy of payload[0..len)).  len <= MAILBOX_PAYLOAD.
 * Returns 0, -EAGAIN when `depth` messages are queued, -EPIPE after
 * mailbox_close, or -EINVAL for a payload too large.  Thread-safe.
 */
int mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg, const void *payload, size_t len);
/* Same, but may use the reserved slots too: fails with -EAGAIN only when
 * depth + reserve messages are queued. */
int mailbox_post_urgent(struct mailbox *mb, mailbox_fn fn, void *arg, const void *payload,
                        size_t len);

/* Runs up to `max` queued messages, oldest first, and returns how many ran.
 * Clears the wake-up first, so a post made meanwhile wakes the owner again.
 * Owner thread only. */
size_t mailbox_drain(struct mailbox *mb, size_t max);
/* Runs up to `max` queued messages like mailbox_drain, without reading the
 * eventfd: a running owner looking in on its own (see mailbox_idle).
 * Owner thread only. */
size_t mailbox_run(struct mailbox *mb, size_t max);

/*
 * Wake-ups only for an owner that sleeps.  A new mailbox's owner counts as
 * waiting, and every post that finds the mailbox empty writes the eventfd.
 * An owner that runs an event loop tells the mailbox mailbox_running() once
 * it is awake; posts then write nothing, and the owner looks in with
 * mailbox_run before it waits again.  Before a wait that may sleep it calls
 * mailbox_idle(): true means the mailbox was empty and any later post will
 * write the eventfd (no wake-up is lost); false means messages are queued
 * (the owner stays running and should not sleep).  Owner thread only.
 */
bool mailbox_idle(struct mailbox *mb);
void mailbox_running(struct mailbox *mb);

/* Refuses further posts (-EPIPE) and cancels everything queued.  Owner
 * thread, or any thread once the owner no longer drains. */
void mailbox_close(struct mailbox *mb);

/* The eventfd to watch for readability. */
int mailbox_fd(const struct mailbox *mb);
/* Messages queued now (a snapshot).  Thread-safe. */
size_t mailbox_len(struct mailbox *mb);
/* The ordinary capacity given to mailbox_new. */
size_t mailbox_depth(const struct mailbox *mb);

#endif
