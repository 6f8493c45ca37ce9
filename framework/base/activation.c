/*
 * activation.c - systemd socket activation (see activation.h).  The
 * protocol: if LISTEN_PID is this process, descriptors 3 .. 3+LISTEN_FDS-1
 * are sockets set up by the service manager, named in order by the
 * colon-separated LISTEN_FDNAMES ("unknown" when it did not name them).
 */
#include "activation.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define ACTIVATION_FIRST_FD 3
#define ACTIVATION_MAX 64

struct passed {
    int fd;           /* -1 once taken */
    int type;         /* SOCK_STREAM, SOCK_DGRAM */
    char name[256];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool loaded;
static struct passed passed[ACTIVATION_MAX];
static int npassed;

int activation_load(void)
{
    pthread_mutex_lock(&lock);
    if (loaded) {
        pthread_mutex_unlock(&lock);
        return npassed;
    }
    loaded = true;
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    if (pid && fds && strtol(pid, NULL, 10) == (long)getpid()) {
        long n = strtol(fds, NULL, 10);
        if (n > ACTIVATION_MAX) {
            log_warn("socket activation: %ld sockets passed, taking the first %d", n,
                     ACTIVATION_MAX);
            n = ACTIVATION_MAX;
        }
        const char *p = names;
        for (long i = 0; i < n; i++) {
            struct passed *e = &passed[npassed];
            memset(e, 0, sizeof *e);
            e->fd = ACTIVATION_FIRST_FD + (int)i;
            /* Names go by position, a descriptor that is not a socket included. */
            if (p && *p) {
                const char *end = strchr(p, ':');
                size_t l = end ? (size_t)(end - p) : strlen(p);
                memcpy(e->name, p, l < sizeof e->name ? l : sizeof e->name - 1);
                p = end ? end + 1 : p + l;
            }
            socklen_t len = sizeof e->type;
            struct stat st;
            if (fstat(e->fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
                getsockopt(e->fd, SOL_SOCKET, SO_TYPE, &e->type, &len) < 0) {
                log_warn("socket activation: descriptor %d is not a socket; ignored", e->fd);
                continue;
            }
            fcntl(e->fd, F_SETFD, FD_CLOEXEC);
            fcntl(e->fd, F_SETFL, fcntl(e->fd, F_GETFL) | O_NONBLOCK);
            npassed++;
        }
        log_info("socket activation: %d sockets passed", npassed);
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    pthread_mutex_unlock(&lock);
    return npassed;
}

/* Whether fd is bound to addr (family, address and port). */
static bool bound_to(int fd, const struct sockaddr *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family != addr->sa_family)
        return false;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&ss, *b = (const void *)addr;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&ss, *b = (const void *)addr;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
    return false;
}

int activation_take(const char *name, int type, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    int fd = -1;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < npassed && fd < 0; i++)
        if (passed[i].fd >= 0 && passed[i].type == type && name && strcmp(passed[i].name, name) == 0)
            fd = passed[i].fd, passed[i].fd = -1;
    for (int i = 0; i < npassed && fd < 0; i++)
        if (passed[i].fd >= 0 && passed[i].type == type && addr && bound_to(passed[i].fd, addr))
            fd = passed[i].fd, passed[i].fd = -1;
    pthread_mutex_unlock(&lock);
    return fd;
}

int activation_unused(void)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < npassed; i++)
        n += passed[i].fd >= 0;
    pthread_mutex_unlock(&lock);
    return n;
}
