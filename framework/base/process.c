/*
 * process.c - reads this process's resource use for the process_* metrics
 * (see process.h): getrusage and getrlimit for CPU time and the descriptor
 * limit, /proc/self/statm for memory, /proc/self/fd for open descriptors,
 * and /proc/self/stat's start time (in clock ticks since boot) with
 * /proc/stat's btime for the start time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "process.h"

/* Memory from /proc/self/statm (pages): size and resident. */
static void process_memory(struct process_stats *out)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return;
    unsigned long long size, resident;
    if (fscanf(f, "%llu %llu", &size, &resident) == 2) {
        long page = sysconf(_SC_PAGESIZE);
        out->virtual_bytes = size * (uint64_t)page;
        out->resident_bytes = resident * (uint64_t)page;
        out->have_memory = true;
    }
    fclose(f);
}

/* Open descriptors: the entries of /proc/self/fd, less the one reading it. */
static void process_fds(struct process_stats *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    uint64_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    out->open_fds = n ? n - 1 : 0;
    out->have_fds = true;
}

/* Boot time (Unix seconds) from /proc/stat's "btime" line, or 0. */
static unsigned long long process_boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return 0;
    char line[256];
    unsigned long long btime = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    return btime;
}

/* Start time: field 22 of /proc/self/stat (ticks after boot), read past the
 * command name, which may hold spaces and parentheses. */
static void process_start(struct process_stats *out)
{
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long ticks;
    /* After ")": state (field 3) ... starttime (field 22): skip 19 fields. */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d"
                            " %*d %*d %*d %llu", &ticks) != 1)
        return;
    unsigned long long btime = process_boot_time();
    long hz = sysconf(_SC_CLK_TCK);
    if (!btime || hz <= 0)
        return;
    out->start_time = (double)btime + (double)ticks / (double)hz;
    out->have_start = true;
}

void process_read(struct process_stats *out)
{
    *out = (struct process_stats){0};
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        out->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)rl.rlim_cur;
    process_memory(out);
    process_fds(out);
    process_start(out);
}
