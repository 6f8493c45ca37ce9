/*
 * testutil.c - see testutil.h.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>

#include "modules/mod_probe.h"
#include "testutil.h"

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct tserver *tserver_start_config(struct config *cfg)
{
    char err[2048];
    signal(SIGPIPE, SIG_IGN);
    struct tserver *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->cfg = cfg;
    if (server_new(cfg, &t->srv, err, sizeof err) < 0)
        ck_abort_msg("server_new: %s", err);
    if (server_start(t->srv, err, sizeof err) < 0)
        ck_abort_msg("server_start: %s", err);
    return t;
}

struct tserver *tserver_start(const char *fmt, ...)
{
    char text[8192], err[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct config *cfg = NULL;
    if (config_load_string(text, "test.json", &cfg, err, sizeof err) < 0)
        ck_abort_msg("config: %s", err);
    return tserver_start_config(cfg);
}

static int tserver_vreload(struct tserver *t, char *err, size_t errlen, const char *fmt,
                           va_list ap)
{
    char text[8192];
    vsnprintf(text, sizeof text, fmt, ap);
    struct config *cfg = NULL;
    if (config_load_string(text, "reload.json", &cfg, err, errlen) < 0)
        return -1;
    return server_reload(t->srv, cfg, err, errlen);
}

void tserver_reload(struct tserver *t, const char *fmt, ...)
{
    char err[2048];
    va_list ap;
    va_start(ap, fmt);
    int rc = tserver_vreload(t, err, sizeof err, fmt, ap);
    va_end(ap);
    if (rc < 0)
        ck_abort_msg("reload: %s", err);
}

int tserver_try_reload(struct tserver *t, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tserver_vreload(t, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

void tserver_stop(struct tserver *t)
{
    server_free(t->srv); /* the server owns the config */
    free(t);
}

int tserver_port(const struct tserver *t, size_t listener)
{
    int port = server_port(t->srv, listener);
    ck_assert_int_gt(port, 0);
    return port;
}

struct wharf_listener_stats tserver_stats(const struct tserver *t, size_t listener)
{
    struct wharf_listener_stats st;
    ck_assert_int_eq(server_stats(t->srv, listener, &st), 0);
    return st;
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int tcp_connect(const char *host, int port)
{
    return tcp_connect_family(host, port, AF_UNSPEC);
}

int tcp_connect_family(const char *host, int port, int family)
{
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    ck_assert_msg(rc == 0, "getaddrinfo %s: %s", host, gai_strerror(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    set_timeouts(fd, 5000);
    rc = connect(fd, res->ai_addr, res->ai_addrlen);
    ck_assert_msg(rc == 0, "connect %s:%d: %s", host, port, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

int tcp_try_connect(const char *host, int port)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &in.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    set_timeouts(fd, 5000);
    if (connect(fd, (struct sockaddr *)&in, sizeof in) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        c += w;
        n -= (size_t)w;
    }
}

size_t recv_exact(int fd, void *p, size_t n, int timeout_ms)
{
    size_t got = 0;
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (got < n) {
        uint64_t now = now_ms();
        if (now >= end)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t r = recv(fd, (char *)p + got, n - got, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

bool wait_closed(int fd, int timeout_ms)
{
    char buf[4096];
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= end)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
}

size_t echo_roundtrip(int fd, const unsigned char *data, size_t len, int timeout_ms)
{
    unsigned char *back = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(back);
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    size_t sent = 0, got = 0;
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (got < len && now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if ((pfd.revents & POLLOUT) && sent < len) {
            ssize_t w = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, back + got, len - got, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                break;
            if (r > 0)
                got += (size_t)r;
        }
    }
    fcntl(fd, F_SETFL, flags);
    ck_assert_msg(got == len, "echoed %zu of %zu bytes", got, len);
    ck_assert_msg(memcmp(back, data, len) == 0, "echo of %zu bytes differs", len);
    free(back);
    return got;
}

int udp_socket(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    ck_assert_int_eq(getaddrinfo(host, ps, &hints, &res), 0);
    int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int rc = bind(fd, res->ai_addr, res->ai_addrlen);
    ck_assert_msg(rc == 0, "bind udp %s:%d: %s", host, port, strerror(errno));
    freeaddrinfo(res);
    set_timeouts(fd, timeout_ms);
    int size = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    return fd;
}

int udp_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

bool wait_for(bool (*cond)(void *), void *arg, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (now_ms() >= end)
            return cond(arg);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void *test_module_symbol(const char *module, const char *symbol)
{
    /* Each module is opened once more here and never closed, so what it
     * counts survives a server that unloads it when it stops. */
    static struct {
        char name[64];
        void *h;
    } held[16];
    static unsigned nheld;
    void *h = NULL;
    for (unsigned i = 0; i < nheld && !h; i++)
        if (strcmp(held[i].name, module) == 0)
            h = held[i].h;
    if (!h) {
        char path[4096];
        const char *dir = getenv("WHARF_TEST_MODULES");
        snprintf(path, sizeof path, "%s/%s.so", dir ? dir : "tests/.libs", module);
        h = dlopen(path, RTLD_NOW);
        ck_assert_msg(h != NULL, "cannot load %s: %s", path, dlerror());
        ck_assert_uint_lt(nheld, 16);
        snprintf(held[nheld].name, sizeof held[nheld].name, "%s", module);
        held[nheld++].h = h;
    }
    void *sym = dlsym(h, symbol);
    ck_assert_msg(sym != NULL, "%s: no symbol %s", module, symbol);
    return sym;
}

void probe_get(struct probe_counts *out)
{
    probe_counts_fn fn = (probe_counts_fn)(uintptr_t)test_module_symbol("mod_probe",
                                                                       PROBE_COUNTS_SYMBOL);
    fn(out);
}

const char *test_build_kind(void)
{
    const char *san = getenv("WHARF_SANITIZER"), *preload = getenv("LD_PRELOAD");
    if (getenv("WHARF_VALGRIND") || (preload && strstr(preload, "vgpreload")))
        return "valgrind";
    if (san && (strcmp(san, "asan") == 0 || strcmp(san, "tsan") == 0))
        return san;
    return "plain";
}

size_t test_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &rss), 2);
    fclose(f);
    return rss * (size_t)sysconf(_SC_PAGESIZE);
}
