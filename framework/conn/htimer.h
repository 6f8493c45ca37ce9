/*
 * htimer.h - the handlers' timers (wharf_timer_* in wharf.h): one-shot and
 * repeating, on the calling worker's timer heap, owned by a connection
 * (stopped when it closes) or by the worker itself (stopped when it exits).
 */
#ifndef WHARF_HTIMER_H
#define WHARF_HTIMER_H

struct wharf_timer;

/* The list of timers one owner holds (a connection or a worker). */
struct htimer_list {
    struct wharf_timer *head;
};

/* Stops and frees every timer of the list (its owner is going away). */
void htimer_stop_all(struct htimer_list *list);

#endif
