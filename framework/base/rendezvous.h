/*
 * rendezvous.h - one thread waits, bounded, for a number of others
 * ("parties") to finish something: the workers ready at start-up, a reload
 * taken by the workers and the acceptor, a liveness ping answered, the
 * workers ended at stop.
 *
 * A rendezvous is reference-counted: the waiter holds one reference and
 * each party holds one, which rendezvous_done (or rendezvous_end) drops.
 * So a waiter that gives up drops its reference and goes on, and a party
 * that answers late still finds the object; whoever drops the last
 * reference frees it.  Waits use CLOCK_MONOTONIC, so a step of the wall
 * clock neither shortens nor stretches them.
 *
 * A party whose part changes shared state (a worker adopting a generation,
 * the acceptor switching to one) brackets it with rendezvous_begin /
 * rendezvous_end.  Once the waiter has given up (rendezvous_settle timed
 * out), rendezvous_begin says no and the party skips its part: a reload
 * that was reported as failed does not half-happen later.
 */
#ifndef WHARF_RENDEZVOUS_H
#define WHARF_RENDEZVOUS_H

#include <stdbool.h>
#include <stdint.h>

struct rendezvous;

/* A rendezvous for `parties` parties, holding parties + 1 references (one
 * per party, one for the caller).  Returns NULL on ENOMEM. */
struct rendezvous *rendezvous_new(unsigned parties);

/* A party is done (or skipped its part): counts down, drops its reference.
 * Any thread; may free r. */
void rendezvous_done(struct rendezvous *r);
/* A party is about to do its part: true, and it must end with
 * rendezvous_end; false once the waiter has given up, and it calls
 * rendezvous_done instead.  Any thread. */
bool rendezvous_begin(struct rendezvous *r);
/* A party that began has finished: counts it as done (and as having done
 * its part if `performed`; false: it tried and failed), drops its
 * reference.  May free r. */
void rendezvous_end(struct rendezvous *r, bool performed);

/* Waits until every party is done or timeout_ms has passed: true if every
 * party is done.  May be called again after a false. */
bool rendezvous_wait(struct rendezvous *r, uint64_t timeout_ms);
/* Waits as rendezvous_wait; if time runs out, gives up: parties that have
 * not begun will skip their part, and the ones that have begun are waited
 * for (their part is framework code that does not block).  Returns true if
 * every party did its part (rendezvous_end, performed); false if any skipped it, was
 * cancelled or is still to come. */
bool rendezvous_settle(struct rendezvous *r, uint64_t timeout_ms);

/* Drops the caller's reference.  NULL is fine. */
void rendezvous_release(struct rendezvous *r);

/* Rendezvous allocated and not yet freed, in the whole process (tests: a
 * waiter that timed out leaks nothing once the late parties have answered). */
unsigned long rendezvous_live(void);

#endif
