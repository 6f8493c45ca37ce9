/*
 * mod_udp_defer.c - the deferred-reply recipe of docs/cookbook.md: a UDP
 * lookup service whose answer takes blocking work.  on_datagram keeps the
 * datagram's socket and source (wharf_dgram_keep), hands the work to the
 * pool (wharf_queue_work) and returns; the job's done, back on the same
 * worker, answers through the kept handle and closes it.
 *
 * Request: any text; answer: "answer: <text>" after "work_ms" (option,
 * default 200) of blocking work.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wharf.h"

struct lookup {
    wharf_udp *reply;          /* the kept socket and source */
    long long work_ms;
    size_t len;
    char text[512];
};

static int defer_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    static const char *const keys[] = {"work_ms", NULL};
    if (wharf_options_check_keys(opts, keys, err, errlen) < 0)
        return -1;
    long long *work_ms = malloc(sizeof *work_ms);
    if (!work_ms)
        return -1;
    *work_ms = 200;
    wharf_options_int(opts, "work_ms", work_ms);
    *data = work_ms;
    return 0;
}

static void defer_fini(void *data) { free(data); }

/* On a pool thread: the blocking part (here, a sleep). */
static void defer_work(void *arg)
{
    struct lookup *q = arg;
    struct timespec ts = {q->work_ms / 1000, (q->work_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    memmove(q->text + 8, q->text, q->len);
    memcpy(q->text, "answer: ", 8);
    q->len += 8;
}

/* Back on the worker that kept the handle. */
static void defer_done(void *arg, bool cancelled)
{
    struct lookup *q = arg;
    if (!cancelled) {
        int rc = wharf_udp_send(q->reply, NULL, 0, q->text, q->len);
        if (rc < 0)
            wharf_log(WHARF_LOG_DEBUG, "udp_defer: no answer sent: %s", strerror(-rc));
        wharf_udp_close(q->reply);
    }
    /* Cancelled (the server stopped first): the worker closed the handle. */
    free(q);
}

static void defer_on_datagram(wharf_dgram *d, const void *data, size_t len)
{
    struct lookup *q = malloc(sizeof *q);
    if (!q || len > sizeof q->text - 8) {
        free(q);
        wharf_dgram_count_dropped(d);
        return;
    }
    q->work_ms = *(long long *)wharf_dgram_listener_data(d);
    memcpy(q->text, data, len);
    q->len = len;
    if (!(q->reply = wharf_dgram_keep(d, NULL))) {
        free(q);
        wharf_dgram_count_dropped(d);
        return;
    }
    if (wharf_queue_work(defer_work, defer_done, q) < 0) {
        wharf_reply(d, "busy", 4);
        wharf_udp_close(q->reply);
        free(q);
    }
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "udp_defer",
    .init = defer_init,
    .fini = defer_fini,
    .on_datagram = defer_on_datagram,
};
