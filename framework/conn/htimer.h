/*
 * htimer.h - the handlers' timers (wharf_timer_* in wharf.h): one-shot and
 * repeating, on the calling worker's timer heap, owned by a connection
 * (stopped when it closes) or by the worker itself (stopped when it exits).
 */
#ifndef WHARF_HTIMER_H
#define WHARF_HTIMER_H

#include "wharf_list.h"

/* Stops and frees every timer of `timers`, the list of wharf_timers one
 * owner holds (a connection or a worker; initialised with wharf_list_init
 * when the owner is made), because the owner is going away. */
void htimer_stop_all(struct wharf_list *timers);

#endif
