/* thread.c - helpers of wharf-load's engine threads (see thread.h): the default thread
 * count, the first-error note, the finish, binding to a --source address, the --count split. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "thread.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

unsigned load_default_threads(unsigned connections)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = ncpu < 1 ? 1 : (unsigned)(ncpu > LOAD_MAX_THREADS ? LOAD_MAX_THREADS : ncpu);

    return n > connections ? connections : n;
}

void load_note_error(struct load_thread *th, const char *what, int err)
{
    if (th->first_error[0])
        return;
    if (err)
        snprintf(th->first_error, sizeof(th->first_error), "%s: %s", what, strerror(err));
    else
        snprintf(th->first_error, sizeof(th->first_error), "%s", what);
}

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* Linux 4.2; older C libraries lack the name */
#endif

void load_thread_finish(struct load_thread *th)
{
    atomic_store_explicit(&th->done, true, memory_order_release);
    if (th->wake)
        sem_post(th->wake);
}

int load_bind_source(int fd, const struct load_config *cfg, unsigned i)
{
    const struct load_source *src = &cfg->sources[i];
    int one = 1;

    /* without it bind() reserves a local port for the address whatever the destination
     * (TIME_WAIT included), so one source could not open more connections than its
     * ephemeral port range holds; a kernel without it (before 4.2) still binds that way */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(fd, (const struct sockaddr *)&src->addr, src->addrlen);
}

uint64_t load_quota_share(uint64_t count, unsigned first, unsigned n, unsigned total)
{
    unsigned __int128 a = (unsigned __int128)count * first / total;
    unsigned __int128 b = (unsigned __int128)count * (first + n) / total;

    return (uint64_t)(b - a);
}
