/*
 * process.h - what the kernel says about this process, for the metrics
 * page's process_* series (named as the Prometheus client libraries name
 * them): CPU time, resident and virtual memory, open and allowed
 * descriptors, start time.  Read from /proc/self on each call (a scrape),
 * never on a connection's path.
 */
#ifndef WHARF_PROCESS_H
#define WHARF_PROCESS_H

#include <stdbool.h>
#include <stdint.h>

struct process_stats {
    double cpu_seconds;       /* user + system, every thread */
    uint64_t resident_bytes;  /* RSS */
    uint64_t virtual_bytes;   /* address space */
    uint64_t open_fds;        /* entries of /proc/self/fd */
    uint64_t max_fds;         /* RLIMIT_NOFILE's soft limit */
    double start_time;        /* Unix time the process started */
    bool have_memory, have_fds, have_start; /* what could be read */
};

/* Fills *out; what cannot be read (no /proc) is left 0 with its flag
 * false.  CPU time and the descriptor limit come from getrusage and
 * getrlimit and are always there. */
void process_read(struct process_stats *out);

#endif
