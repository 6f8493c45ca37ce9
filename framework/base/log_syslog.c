/*
 * log_syslog.c - the server log sent to syslog (see log_syslog.h).
 */
#include "log_syslog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t syslog_lock = PTHREAD_MUTEX_INITIALIZER; /* the fields below */
static _Atomic int syslog_facility = -1; /* -1: off */
static _Atomic int syslog_connected;     /* syslog_fd is connected */
static _Atomic int64_t syslog_retry_s;   /* no reconnect before this (monotonic s) */
static int syslog_fd = -1;               /* one number for the life of the process */
static char syslog_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* Connects a new socket to syslog_path behind syslog_fd.  Caller holds the
 * lock.  Returns 0 or a negative errno. */
static int syslog_connect(void)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, syslog_path, sizeof sun.sun_path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int e = errno;
        close(fd);
        atomic_store(&syslog_connected, 0);
        return -e;
    }
    if (syslog_fd < 0) {
        syslog_fd = fd;
    } else {
        dup3(fd, syslog_fd, O_CLOEXEC);
        close(fd);
    }
    atomic_store(&syslog_connected, 1);
    return 0;
}

int log_syslog_set(const char *path, int facility)
{
    if (facility >= 0 && (!path || strlen(path) >= sizeof syslog_path))
        return -ENAMETOOLONG;
    pthread_mutex_lock(&syslog_lock);
    int rc = 0;
    if (facility < 0) {
        atomic_store(&syslog_connected, 0);
    } else if (strcmp(path, syslog_path) != 0 || !atomic_load(&syslog_connected)) {
        snprintf(syslog_path, sizeof syslog_path, "%s", path);
        rc = syslog_connect();
    }
    atomic_store(&syslog_facility, facility);
    pthread_mutex_unlock(&syslog_lock);
    return rc;
}

int log_syslog_reopen(void)
{
    if (atomic_load(&syslog_facility) < 0)
        return 0;
    pthread_mutex_lock(&syslog_lock);
    int rc = syslog_connect();
    pthread_mutex_unlock(&syslog_lock);
    return rc;
}

/* After a failed send: one reconnect a second at most. */
static bool syslog_retry(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t due = atomic_load(&syslog_retry_s);
    if (now.tv_sec < due || !atomic_compare_exchange_strong(&syslog_retry_s, &due, now.tv_sec + 1))
        return false;
    return log_syslog_reopen() == 0;
}

bool log_syslog_send(int severity, const char *line, size_t n)
{
    int facility = atomic_load_explicit(&syslog_facility, memory_order_relaxed);
    if (facility < 0)
        return false;
    if (!atomic_load_explicit(&syslog_connected, memory_order_relaxed) && !syslog_retry())
        return false;
    char msg[4096];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    size_t k = (size_t)snprintf(msg, sizeof msg, "<%d>", facility | severity);
    k += strftime(msg + k, sizeof msg - k, "%b %e %H:%M:%S ", &tm);
    k += (size_t)snprintf(msg + k, sizeof msg - k, "%s[%ld]: ", program_invocation_short_name,
                          (long)getpid());
    if (k > sizeof msg)
        k = sizeof msg;
    if (n > sizeof msg - k)
        n = sizeof msg - k;
    memcpy(msg + k, line, n);
    for (int tries = 0; tries < 2; tries++) {
        if (send(syslog_fd, msg, k + n, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
            return true;
        if (errno != EINTR)
            break;
    }
    if (errno == ECONNREFUSED || errno == ENOTCONN)
        atomic_store(&syslog_connected, 0); /* the daemon went away: reconnect later */
    return false;
}
