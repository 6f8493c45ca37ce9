/* shout.c - every line a client sends goes to every client of the listener,
 * on every worker. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <wharf.h>

/* This worker's clients.  Each worker thread has its own list and only that
 * thread touches it: no lock.  `room` tells the listeners apart. */
struct member {
    wharf_conn *c;
    const void *room;
    struct member *next;
};
static _Thread_local struct member *members;

/* One line on its way to every worker: freed by the last one. */
struct msg {
    atomic_uint refs;
    const void *room;
    size_t len;
    char text[];
};

static void msg_release(struct msg *m, unsigned n)
{
    if (n > 0 && atomic_fetch_sub(&m->refs, n) == n)
        free(m);
}

/* Runs once on every worker (on its thread). */
static void deliver(void *arg, bool cancelled)
{
    struct msg *m = arg;
    if (!cancelled)
        for (struct member *p = members; p; p = p->next)
            if (p->room == m->room)
                wharf_send(p->c, m->text, m->len);
    msg_release(m, 1);
}

static int on_line(wharf_conn *c, const struct wharf_frame *fr, void *arg)
{
    (void)arg;
    wharf_worker *w = wharf_conn_worker(c);
    unsigned workers = wharf_worker_count(w);
    struct msg *m = malloc(sizeof *m + fr->len);
    if (!m)
        return 0;
    atomic_init(&m->refs, workers + 1); /* one per worker, one for us */
    m->room = wharf_listener_data(c);
    m->len = fr->len;
    memcpy(m->text, fr->data, fr->len);
    unsigned posted = wharf_post_all(w, deliver, m);
    msg_release(m, workers - posted + 1); /* the posts that failed, and ours */
    return 0;
}

static const struct wharf_framing lines = {.kind = WHARF_FRAME_LINE, .max_frame = 1024};

static size_t shout_data(wharf_conn *c, const void *data, size_t len)
{
    return wharf_frames(c, &lines, data, len, on_line, NULL);
}

static void shout_open(wharf_conn *c)
{
    struct member *m = malloc(sizeof *m);
    if (!m) {
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return;
    }
    *m = (struct member){c, wharf_listener_data(c), members};
    members = m;
    wharf_set_data(c, m);
}

static void shout_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    struct member *m = wharf_get_data(c);
    for (struct member **p = &members; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            break;
        }
    free(m);
}

/* A distinct listener_data per listener: its address names the room. */
static int shout_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen)
{
    static const char *const none[] = {NULL};
    if (wharf_options_check_keys(opts, none, err, errlen) != 0)
        return -1;
    return (*listener_data = malloc(1)) ? 0 : -1;
}

static void shout_fini(void *listener_data)
{
    free(listener_data);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "shout",
    .init = shout_init,
    .fini = shout_fini,
    .on_open = shout_open,
    .on_data = shout_data,
    .on_close = shout_close,
};
