/*
 * mod_udp_send.c - a test module driving the wharf_udp_* calls from
 * datagrams (tests/check_udp_send.c).  Each datagram is a command:
 *   "later MS TEXT"      keep the handle, answer "kept"; a worker timer sends
 *                        TEXT through the handle after MS
 *   "to ADDR PORT TEXT"  send TEXT from the listener's socket
 *                        (wharf_udp_listener) to ADDR:PORT; answer "rc N"
 *                        (N: wharf_udp_send's result)
 *   "keep"               keep a handle and never close it (the worker does)
 *   "bad"                sends with malformed arguments; answer "rc A B C D"
 *   "closed"             send on a handle closed in this callback: "rc N"
 * fini counts in mod_udp_send_finis (read through dlsym by the suite).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "wharf.h"

__attribute__((visibility("default"))) int mod_udp_send_finis;

/* A pending "later": freed by its timer, or by fini when the server stopped
 * first (the worker then stopped the timer and closed the handle; the
 * memory is the handler's to free).  Not in on_worker_stop: that runs on a
 * reload too, and a reply pending across a reload must still go out. */
struct later {
    wharf_udp *u;
    struct send_listener *owner;
    struct later *next;
    size_t len;
    char text[256];
};

struct send_listener {
    pthread_mutex_t lock;
    struct later *pending;
};

static void pending_remove(struct later *l)
{
    struct send_listener *sl = l->owner;
    pthread_mutex_lock(&sl->lock);
    for (struct later **p = &sl->pending; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    pthread_mutex_unlock(&sl->lock);
}

static int send_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    (void)opts, (void)err, (void)errlen;
    struct send_listener *sl = calloc(1, sizeof *sl);
    if (!sl)
        return -1;
    pthread_mutex_init(&sl->lock, NULL);
    *data = sl;
    return 0;
}

static void send_fini(void *data)
{
    struct send_listener *sl = data;
    while (sl->pending) {
        struct later *l = sl->pending;
        sl->pending = l->next;
        free(l);
    }
    pthread_mutex_destroy(&sl->lock);
    free(sl);
    __atomic_add_fetch(&mod_udp_send_finis, 1, __ATOMIC_SEQ_CST);
}

static void later_fire(wharf_timer *t, void *arg)
{
    (void)t;
    struct later *l = arg;
    pending_remove(l);
    wharf_udp_send(l->u, NULL, 0, l->text, l->len);
    wharf_udp_close(l->u);
    free(l);
}

static void answer_rc(wharf_dgram *d, const char *fmt, int a, int b, int c, int e)
{
    char out[64];
    int n = snprintf(out, sizeof out, fmt, a, b, c, e);
    wharf_reply(d, out, (size_t)n);
}

static void send_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    char cmd[300];
    if (len >= sizeof cmd)
        return;
    memcpy(cmd, data, len);
    cmd[len] = '\0';
    unsigned ms;
    int off = 0;
    if (sscanf(cmd, "later %u %n", &ms, &off) == 1 && off > 0) {
        struct later *l = calloc(1, sizeof *l);
        if (!l)
            return;
        l->len = len - (size_t)off;
        memcpy(l->text, cmd + off, l->len);
        l->u = wharf_dgram_keep(d, NULL);
        l->owner = wharf_dgram_listener_data(d);
        if (!l->u || !wharf_timer_start(NULL, ms, 0, later_fire, l)) {
            wharf_udp_close(l->u);
            free(l);
            return;
        }
        pthread_mutex_lock(&l->owner->lock);
        l->next = l->owner->pending;
        l->owner->pending = l;
        pthread_mutex_unlock(&l->owner->lock);
        wharf_reply(d, "kept", 4);
        return;
    }
    char addr[64];
    unsigned port;
    if (sscanf(cmd, "to %63s %u %n", addr, &port, &off) == 2 && off > 0) {
        int err = 0;
        wharf_udp *u = wharf_udp_listener(0, &err);
        if (!u) {
            answer_rc(d, "rc %d", err, 0, 0, 0);
            return;
        }
        union {
            struct sockaddr sa;
            struct sockaddr_in in;
            struct sockaddr_in6 in6;
        } to = {0};
        socklen_t tolen;
        if (strchr(addr, ':')) {
            to.in6.sin6_family = AF_INET6;
            to.in6.sin6_port = htons((uint16_t)port);
            inet_pton(AF_INET6, addr, &to.in6.sin6_addr);
            tolen = sizeof to.in6;
        } else {
            to.in.sin_family = AF_INET;
            to.in.sin_port = htons((uint16_t)port);
            inet_pton(AF_INET, addr, &to.in.sin_addr);
            tolen = sizeof to.in;
        }
        int rc = wharf_udp_send(u, &to.sa, tolen, cmd + off, len - (size_t)off);
        wharf_udp_close(u);
        answer_rc(d, "rc %d", rc, 0, 0, 0);
        return;
    }
    if (strcmp(cmd, "keep") == 0) {
        if (wharf_dgram_keep(d, NULL))
            wharf_reply(d, "kept", 4);
        return;
    }
    if (strcmp(cmd, "bad") == 0) {
        wharf_udp *u = wharf_dgram_keep(d, NULL);
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        struct sockaddr_in in = {.sin_family = AF_INET};
        int a = wharf_udp_send(u, (struct sockaddr *)&un, sizeof un, "x", 1);
        int b = wharf_udp_send(u, (struct sockaddr *)&in, 4, "x", 1);
        int c = wharf_udp_send(u, NULL, 0, NULL, 5);
        static char big[65600];
        int e = wharf_udp_send(u, NULL, 0, big, sizeof big);
        wharf_udp_close(u);
        answer_rc(d, "rc %d %d %d %d", a, b, c, e);
        return;
    }
    if (strcmp(cmd, "closed") == 0) {
        wharf_udp *u = wharf_dgram_keep(d, NULL);
        wharf_udp_close(u);
        answer_rc(d, "rc %d", wharf_udp_send(u, NULL, 0, "x", 1), 0, 0, 0);
        return;
    }
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "udp_send",
    .init = send_init,
    .fini = send_fini,
    .on_datagram = send_on_datagram,
};
