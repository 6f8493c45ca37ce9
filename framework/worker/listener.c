/*
 * listener.c - creating and binding listener sockets (or taking them over
 * from the previous generation), and the listeners' shared counters.
 * Addresses are resolved with getaddrinfo (IPv4, IPv6 or a host name, bound
 * on every address it resolves to), and every socket option of the config is
 * applied before bind.  Accepted TCP sockets inherit TCP_NODELAY and
 * SO_KEEPALIVE from the listening socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "activation.h"
#include "listener.h"
#include "log.h"

void listener_format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(out, outlen, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, port);
    } else {
        snprintf(out, outlen, "(family %d)", sa->sa_family);
    }
}

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value);
}

/* Creates, configures and binds one socket.  Returns the fd or -1 (errno set,
 * *what names the failing step). */
static int open_socket(const struct config_listener *cfg, const struct addrinfo *ai,
                       int force_reuse_port, const char **what)
{
    int type = cfg->protocol == CONFIG_TCP ? SOCK_STREAM : SOCK_DGRAM;
    int fd = socket(ai->ai_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    *what = "socket";
    if (fd < 0)
        return -1;
    *what = "setsockopt";
    if (ai->ai_family == AF_INET6 && set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, cfg->ipv6_only) < 0)
        goto fail;
    /* TCP only: on a UDP socket SO_REUSEADDR would let another process
     * (any user with the same option) bind the same address and port and
     * take the datagrams. */
    if (type == SOCK_STREAM && cfg->reuse_address && set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0)
        goto fail;
    if ((cfg->reuse_port || force_reuse_port) && set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
        goto fail;
    if (cfg->recv_buffer && set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, cfg->recv_buffer) < 0)
        goto fail;
    if (cfg->send_buffer && set_int_opt(fd, SOL_SOCKET, SO_SNDBUF, cfg->send_buffer) < 0)
        goto fail;
    if (type == SOCK_STREAM) {
        if (cfg->tcp_nodelay && set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1) < 0)
            goto fail;
        if (cfg->keepalive && set_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1) < 0)
            goto fail;
        /* Accepted once data came (the kernel waits up to this many
         * seconds): the worker reads it at once, no epoll round trip. */
        if (cfg->defer_accept && set_int_opt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, 5) < 0)
            goto fail;
    }
    *what = "bind";
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        goto fail;
    *what = "listen";
    if (type == SOCK_STREAM && listen(fd, cfg->backlog) < 0)
        goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void set_port(struct sockaddr *sa, int port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

int listener_resolve(const struct config_listener *cfg, const char *file, char *err,
                     size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = cfg->protocol == CONFIG_UDP ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(cfg->address, "0", &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s.address: cannot resolve \"%s\": %s", file, cfg->path,
                 cfg->address, gai_strerror(rc));
        return -1;
    }
    freeaddrinfo(res);
    return 0;
}

/* Uses a socket passed by the service manager as the listener's only one. */
static int listener_adopt(struct listener *l, int fd, char *err, size_t errlen)
{
    l->fds = calloc(1, sizeof *l->fds);
    if (!l->fds) {
        close(fd);
        snprintf(err, errlen, "%s: %s: out of memory", l->file, l->cfg->path);
        return -ENOMEM;
    }
    l->fds[0] = fd;
    l->nfds = 1;
    l->naddrs = 1;
    l->nworkers = 1;
    l->port = bound_port(fd);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char addr[INET6_ADDRSTRLEN + 16] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        listener_format_addr((struct sockaddr *)&ss, addr, sizeof addr);
    log_write(WHARF_LOG_INFO, l->cfg->name, -1, 0,
              "listening on %s %s (handler %s from %s; socket from the service manager)",
              l->cfg->protocol == CONFIG_UDP ? "udp" : "tcp", addr, l->handler->name,
              l->module ? l->module->path : l->cfg->handler);
    return 0;
}

bool listener_same_socket(const struct listener *l, const struct config_listener *b)
{
    const struct config_listener *a = l->cfg;
    /* "port": 0 (any free port) keeps the socket of the listener of the same
     * name only: several port-0 listeners on one address each keep their own. */
    bool same_port = b->port == 0 ? a->port == 0 && strcmp(a->name, b->name) == 0
                                  : b->port == a->port || b->port == l->port;
    return a->protocol == b->protocol && same_port && strcmp(a->address, b->address) == 0 &&
           a->ipv6_only == b->ipv6_only &&
           (a->protocol == CONFIG_TCP || a->reuse_port == b->reuse_port);
}

/* Takes duplicates of prev's sockets. */
static int listener_keep(struct listener *l, const struct listener *prev, char *err,
                         size_t errlen)
{
    l->fds = calloc(prev->nfds ? prev->nfds : 1, sizeof *l->fds);
    if (!l->fds) {
        snprintf(err, errlen, "%s: %s: out of memory", l->file, l->cfg->path);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < prev->nfds; i++) {
        int fd = fcntl(prev->fds[i], F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            int code = errno;
            snprintf(err, errlen, "%s: %s: cannot keep the socket: %s", l->file, l->cfg->path,
                     strerror(code));
            listener_close(l);
            return -code;
        }
        l->fds[l->nfds++] = fd;
    }
    l->naddrs = prev->naddrs;
    l->nworkers = prev->nworkers;
    l->port = prev->port;
    l->kept = true;
    /* What can change on a bound socket follows the new config (the
     * socket is shared with the old generation, which is going away). */
    const struct config_listener *cfg = l->cfg;
    for (unsigned i = 0; i < l->nfds; i++) {
        int fd = l->fds[i];
        if (cfg->recv_buffer)
            set_int_opt(fd, SOL_SOCKET, SO_RCVBUF, cfg->recv_buffer);
        if (cfg->send_buffer)
            set_int_opt(fd, SOL_SOCKET, SO_SNDBUF, cfg->send_buffer);
        if (cfg->protocol == CONFIG_TCP) {
            set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, cfg->tcp_nodelay);
            set_int_opt(fd, SOL_SOCKET, SO_KEEPALIVE, cfg->keepalive);
            listen(fd, cfg->backlog); /* a listening socket takes a new backlog */
        }
    }
    return 0;
}

int listener_bind(struct listener *l, const struct listener *prev, unsigned nworkers,
                  char *err, size_t errlen)
{
    const struct config_listener *cfg = l->cfg;
    int udp = cfg->protocol == CONFIG_UDP;
    if (prev)
        return listener_keep(l, prev, err, errlen);
    /* A socket the service manager passed under this listener's name. */
    int passed = activation_take(cfg->name, udp ? SOCK_DGRAM : SOCK_STREAM, NULL, 0);
    bool by_workers = !udp && cfg->accept_mode == CONFIG_ACCEPT_WORKERS;
    if (passed >= 0 && by_workers) {
        close(passed);
        snprintf(err, errlen, "%s: %s.accept: \"workers\" binds a SO_REUSEPORT socket for "
                 "each worker itself, but the service manager passed a socket named \"%s\" "
                 "(with socket activation use \"accept\": \"acceptor\")", l->file, cfg->path,
                 cfg->name);
        return -EINVAL;
    }
    if (passed >= 0)
        return listener_adopt(l, passed, err, errlen);
    struct addrinfo hints, *res = NULL;
    char port[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof port, "%d", cfg->port);
    int rc = getaddrinfo(cfg->address, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s.address: cannot resolve \"%s\": %s", l->file, cfg->path,
                 cfg->address, gai_strerror(rc));
        return rc == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
    }
    unsigned naddrs = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        naddrs++;

    const char *what = "calloc";
    char addr[INET6_ADDRSTRLEN + 16] = "", bound[256] = "";
    /* UDP: a socket per worker only with reuse_port; otherwise one socket,
     * so another server cannot join the port and split its traffic.  TCP:
     * one per worker when the workers accept ("accept": "workers"). */
    l->nworkers = (udp && cfg->reuse_port) || by_workers ? nworkers : 1;
    l->fds = calloc((size_t)naddrs * l->nworkers, sizeof *l->fds);
    if (!l->fds)
        goto fail;
    l->port = cfg->port;
    struct config_listener one = *cfg;
    /* Several addresses: an IPv6 wildcard must not claim IPv4 as well. */
    one.ipv6_only = cfg->ipv6_only || naddrs > 1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next, l->naddrs++) {
        /* Port 0: the first socket picks a port and every other one joins it. */
        if (l->port != 0)
            set_port(ai->ai_addr, l->port);
        listener_format_addr(ai->ai_addr, addr, sizeof addr);
        for (unsigned w = 0; w < l->nworkers; w++) {
            /* A socket the service manager bound to this address, if any. */
            int fd = l->port != 0 && l->nworkers == 1 && !by_workers
                         ? activation_take(NULL, udp ? SOCK_DGRAM : SOCK_STREAM, ai->ai_addr,
                                           ai->ai_addrlen)
                         : -1;
            if (fd < 0)
                fd = open_socket(&one, ai, by_workers, &what);
            if (fd < 0)
                goto fail;
            l->fds[l->nfds++] = fd;
            if (l->port == 0) {
                l->port = bound_port(fd);
                set_port(ai->ai_addr, l->port);
            }
        }
        listener_format_addr(ai->ai_addr, addr, sizeof addr);
        size_t n = strlen(bound);
        snprintf(bound + n, sizeof bound - n, "%s%s", n ? " " : "", addr);
    }
    freeaddrinfo(res);
    log_write(WHARF_LOG_INFO, cfg->name, -1, 0, "listening on %s %s (handler %s from %s)",
              udp ? "udp" : "tcp", bound, l->handler->name ? l->handler->name : cfg->handler,
              l->module ? l->module->path : cfg->handler);
    return 0;

fail:;
    int code = errno ? errno : EIO;
    int n = snprintf(err, errlen, "%s: %s: cannot %s %s (%s): %s", l->file, cfg->path, what,
                     addr[0] ? addr : cfg->address, udp ? "udp" : "tcp", strerror(code));
    if (code == EACCES && strcmp(what, "bind") == 0 && cfg->port > 0 && cfg->port < 1024 &&
        geteuid() != 0 && n > 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - (size_t)n, " (a port below 1024 needs root or "
                 "CAP_NET_BIND_SERVICE; a server that gave up root at start cannot add one "
                 "on reload: restart it)");
    freeaddrinfo(res);
    listener_close(l);
    return -code;
}

void listener_close(struct listener *l)
{
    for (unsigned i = 0; i < l->nfds; i++)
        if (l->fds[i] >= 0) /* -1: a worker closed its own (worker_accept_stop) */
            close(l->fds[i]);
    free(l->fds);
    l->fds = NULL;
    l->nfds = 0;
    l->naddrs = 0;
}

struct listener_stats *listener_stats_new(unsigned nworkers)
{
    struct listener_stats *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->workers = aligned_alloc(64, sizeof *st->workers * (nworkers ? nworkers : 1));
    if (!st->workers) {
        free(st);
        return NULL;
    }
    memset(st->workers, 0, sizeof *st->workers * (nworkers ? nworkers : 1));
    st->nworkers = nworkers;
    atomic_init(&st->refs, 1);
    return st;
}

void listener_stats_unref(struct listener_stats *st)
{
    if (st && atomic_fetch_sub(&st->refs, 1) == 1) {
        free(st->workers);
        free(st);
    }
}

const char *listener_drop_reason_name(enum listener_drop_reason r)
{
    static const char *const names[LISTENER_DROP_REASONS] = {
        [LISTENER_DROP_LOOP_GUARD] = "loop_guard", [LISTENER_DROP_DENY] = "deny",
        [LISTENER_DROP_RATE_LIMIT] = "rate_limit", [LISTENER_DROP_HANDLER] = "handler",
        [LISTENER_DROP_TOO_LARGE] = "too_large",   [LISTENER_DROP_SEND_FAILED] = "send_failed",
        [LISTENER_DROP_SEND_GUARD] = "send_guard",
    };
    return (unsigned)r < LISTENER_DROP_REASONS ? names[r] : "unknown";
}

const char *listener_tls_fail_name(enum listener_tls_fail r)
{
    static const char *const names[LISTENER_TLS_FAILS] = {
        [LISTENER_TLS_FAIL_PROTOCOL] = "protocol", [LISTENER_TLS_FAIL_NO_SHARED] = "no_shared",
        [LISTENER_TLS_FAIL_CERTIFICATE] = "certificate", [LISTENER_TLS_FAIL_TIMEOUT] = "timeout",
        [LISTENER_TLS_FAIL_EOF] = "eof",
    };
    return (unsigned)r < LISTENER_TLS_FAILS ? names[r] : "unknown";
}
