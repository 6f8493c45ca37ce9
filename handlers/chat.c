/*
 * chat.c - a line-based chat room over TCP, across every worker.
 *
 * What it shows: state that spans workers without locks, and survives reloads.
 *   - The room is the listener's named state "room" (wharf_state_get): a
 *     reload hands the same room to the new generation, so a client who
 *     joined before SIGHUP talks with those who join after it.
 *   - Each worker keeps its OWN list of the clients it serves: slot
 *     wharf_worker_index(w) of room->workers, sized by the worker count
 *     that init learns (wharf_options_worker_count), and only ever touched
 *     by that worker's thread (old and new generations' clients of a
 *     worker alike run there).
 *   - A line is posted to every worker with wharf_post_all; each worker
 *     delivers it to its own clients.  The message is shared by all the
 *     posts and reference-counted: the last worker done with it (whether it
 *     ran or was cancelled because that worker stopped) frees it.  Posts from
 *     one thread to one worker run in order, so lines from one client arrive
 *     everywhere in the order sent.
 *   - The room is reference-counted too: the state registry, connections
 *     and messages in flight hold it, so a message posted just before the
 *     last generation holding the room ends never finds it freed (the
 *     state's destroy only drops the registry's reference).  The listener
 *     data of each generation is only its settings and the room pointer.
 *
 * Protocol: every line (ending in "\n"; a "\r" before it is dropped) is sent
 * to every other client as "NICK: line\n".  "/nick NAME" (1..31 characters,
 * no spaces or control characters) changes the nickname (default "guestID").
 * Notices go to everybody, the subject included: "* NICK joined\n",
 * "* OLD is now NEW\n", "* NICK left\n".  At shutdown each client gets
 * "server shutting down\n" and is closed once that is written.
 *
 * A sender is held back, never its lines dropped: at most LINES_PER_CALL
 * lines are handled per on_data call (wharf offers the rest again, unless
 * the post back-pressure of wharf_post held the sender meanwhile), and a
 * broadcast that finds a worker's queue at its hard capacity (wharf_post
 * fails with -EAGAIN) is kept on its sender, whose reading pauses, and
 * retried from a timer until every worker has it; then reading resumes.
 *
 * Limits: a line longer than "max_line" closes that client (reason "limit").
 * A client that does not read is not the handler's problem: its output grows
 * until the listener's buffers.max_output, where wharf_send fails with
 * -ENOBUFS and wharf closes it (reason "limit").  Note that when this happens
 * in a post (not inside that client's own callback) wharf closes it at once,
 * so chat_on_close runs inside wharf_send: the delivery loop below saves its
 * next pointer first.
 *
 * Options:
 *   "max_line": integer 1..65536, default 1024 (bytes, without the newline)
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"
#include "wharf_list.h"

#define NICK_MAX 32           /* with the terminating NUL */

/* Lines handled per on_data call: wharf offers the rest again at once,
 * after the post back-pressure had its say (a held sender stops there). */
#define LINES_PER_CALL 64
/* Retry period of a broadcast that found a worker's post queue full. */
#define RETRY_MS 2
/* At most one "sender held" log line per this many ms (per process). */
#define LOG_EVERY_MS 10000

struct chat_msg;

struct chat_client {
    wharf_conn *c;
    struct wharf_list link; /* in its worker's list */
    char nick[NICK_MAX];
    struct chat_msg *pending;  /* a broadcast not yet posted to every worker */
    unsigned pending_next;     /* the first worker it still has to go to */
    wharf_timer *retry;        /* retries `pending` while reading is paused */
};

/* One worker's clients; owned by that worker's thread. */
struct chat_worker {
    struct wharf_list clients;
};

/* The room, kept across reloads. */
struct chat_room {
    atomic_size_t refs; /* the registry's, one per open client, one per message in flight */
    unsigned nworkers;
    struct chat_worker workers[]; /* [nworkers] */
};

/* One generation's listener data. */
struct chat_listener {
    struct chat_room *room;
    size_t max_line;
};

/* One broadcast, shared by the posts to every worker. */
struct chat_msg {
    atomic_uint refs;     /* posts not yet run (or cancelled) */
    struct chat_room *room;
    uint64_t from;        /* the sender's connection id (not echoed), 0 for notices */
    size_t len;
    char text[];
};

static void room_unref(struct chat_room *room)
{
    if (atomic_fetch_sub_explicit(&room->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(room);
}

static int room_create(void *arg, void **obj)
{
    unsigned nworkers = *(const unsigned *)arg;
    struct chat_room *room = calloc(1, sizeof *room + nworkers * sizeof room->workers[0]);
    if (!room)
        return -ENOMEM;
    atomic_init(&room->refs, 1);
    room->nworkers = nworkers;
    for (unsigned i = 0; i < nworkers; i++)
        wharf_list_init(&room->workers[i].clients);
    *obj = room;
    return 0;
}

static void room_destroy(void *obj)
{
    room_unref(obj);
}

static const struct wharf_state_type room_type = {
    .tag = "chat.room/2", /* 2: the client lists became wharf_lists */
    .create = room_create,
    .destroy = room_destroy,
};

static int chat_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen)
{
    static const char *const allowed[] = {"max_line", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;
    long long max_line = 1024;
    if (wharf_options_int(opts, "max_line", &max_line) == -EINVAL || max_line < 1 ||
        max_line > 65536) {
        snprintf(err, errlen, "max_line: expected an integer 1..65536");
        return -1;
    }
    struct chat_listener *cl = calloc(1, sizeof *cl);
    unsigned nworkers = wharf_options_worker_count(opts);
    void *room = NULL;
    int rc = cl ? wharf_state_get(opts, "room", &room_type, &nworkers, &room, NULL) : -ENOMEM;
    if (rc < 0) {
        free(cl);
        snprintf(err, errlen, "cannot make the room: %s", strerror(-rc));
        return -1;
    }
    cl->room = room;
    cl->max_line = (size_t)max_line;
    *listener_data = cl;
    return 0;
}

/* The room stays: the framework destroys it once no generation holds it. */
static void chat_fini(void *listener_data)
{
    free(listener_data);
}

static struct chat_room *room_of(const wharf_conn *c)
{
    return ((struct chat_listener *)wharf_listener_data(c))->room;
}

/* Drops n of the message's references; the last one frees it. */
static void msg_release(struct chat_msg *m, unsigned n)
{
    if (n == 0 || atomic_fetch_sub_explicit(&m->refs, n, memory_order_acq_rel) != n)
        return;
    room_unref(m->room);
    free(m);
}

/* Runs once on every worker: hands the message to this worker's clients. */
static void chat_deliver(void *arg, bool cancelled)
{
    struct chat_msg *m = arg;
    if (!cancelled) {
        unsigned idx = wharf_worker_index(wharf_current_worker());
        struct chat_worker *cw = idx < m->room->nworkers ? &m->room->workers[idx] : NULL;
        struct wharf_list *it, *next;
        /* _safe: wharf_send may close cl (see the top comment). */
        if (cw)
            wharf_list_foreach_safe(it, next, &cw->clients) {
                struct chat_client *cl = wharf_list_entry(it, struct chat_client, link);
                if (wharf_conn_id(cl->c) != m->from)
                    wharf_send(cl->c, m->text, m->len);
            }
    }
    msg_release(m, 1);
}

/* Logs, at most once per LOG_EVERY_MS, that a post queue was full. */
static void log_full(wharf_conn *c, const char *what)
{
    static _Atomic uint64_t last_ms;
    uint64_t now = wharf_now_ms(), last = atomic_load(&last_ms);
    if ((last == 0 || now - last >= LOG_EVERY_MS) &&
        atomic_compare_exchange_strong(&last_ms, &last, now ? now : 1))
        wharf_conn_log(c, WHARF_LOG_WARN, "a worker's post queue is full: %s", what);
}

/* Posts m to workers *next..count-1 in order; stops at the first full
 * queue (-EAGAIN: *next is where to go on).  A worker that has stopped is
 * skipped.  Returns 0 once every worker got it, or -EAGAIN. */
static int post_from(wharf_worker *w, struct chat_msg *m, unsigned *next)
{
    unsigned count = wharf_worker_count(w);
    while (*next < count) {
        int rc = wharf_post(wharf_worker_sibling(w, *next), chat_deliver, m);
        if (rc == -EAGAIN)
            return -EAGAIN;
        if (rc < 0)
            msg_release(m, 1); /* stopped (or out of memory): not delivered there */
        (*next)++;
    }
    return 0;
}

/* Timer: goes on posting the client's pending broadcast; once it is out,
 * reading resumes (kept input is offered again at once). */
static void retry_pending(wharf_timer *t, void *arg)
{
    struct chat_client *cl = arg;
    if (post_from(wharf_conn_worker(cl->c), cl->pending, &cl->pending_next) != 0)
        return;
    cl->pending = NULL;
    cl->retry = NULL;
    wharf_timer_stop(t);
    wharf_resume_read(cl->c);
}

/*
 * Sends text to every client on every worker, except connection `from`.
 * `holder` is the client on whose behalf it is sent (NULL: one that is
 * leaving).  A worker whose post queue is at its hard capacity does not
 * lose the line: the rest of the broadcast waits on `holder`, whose
 * reading pauses until it is out.  Returns false when it is waiting.
 */
static bool broadcast(wharf_conn *c, struct chat_client *holder, uint64_t from, const char *text,
                      size_t len)
{
    struct chat_room *room = room_of(c);
    wharf_worker *w = wharf_conn_worker(c);
    unsigned count = wharf_worker_count(w);
    struct chat_msg *m = malloc(sizeof *m + len);
    if (!m) {
        wharf_conn_log(c, WHARF_LOG_WARN, "out of memory: a line was lost");
        return true;
    }
    /* One reference per worker, set before the first post can run. */
    atomic_init(&m->refs, count);
    atomic_fetch_add_explicit(&room->refs, 1, memory_order_relaxed);
    m->room = room;
    m->from = from;
    m->len = len;
    memcpy(m->text, text, len);
    unsigned next = 0;
    if (post_from(w, m, &next) == 0)
        return true;
    if (holder && !holder->pending) {
        holder->retry = wharf_timer_start(c, RETRY_MS, RETRY_MS, retry_pending, holder);
        if (holder->retry) {
            log_full(c, "holding the sender until it drains");
            holder->pending = m;
            holder->pending_next = next;
            wharf_pause_read(c);
            return false;
        }
    }
    log_full(c, "a notice was lost");
    msg_release(m, count - next); /* the workers it did not reach */
    return true;
}

/* Broadcasts "* A MIDDLE B\n" to everybody. */
static void notice(wharf_conn *c, const char *a, const char *middle, const char *b)
{
    char text[128];
    int n = snprintf(text, sizeof text, "* %s%s%s\n", a, middle, b);
    if (n > 0 && (size_t)n < sizeof text)
        broadcast(c, wharf_get_data(c), 0, text, (size_t)n);
}

static void chat_on_open(wharf_conn *c)
{
    struct chat_room *room = room_of(c);
    unsigned idx = wharf_worker_index(wharf_conn_worker(c));
    struct chat_client *cl = calloc(1, sizeof *cl);
    if (idx >= room->nworkers || !cl) {
        free(cl);
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return;
    }
    /* This worker's list: only this thread reads or writes this slot. */
    struct chat_worker *cw = &room->workers[idx];
    cl->c = c;
    snprintf(cl->nick, sizeof cl->nick, "guest%llu", (unsigned long long)wharf_conn_id(c));
    wharf_list_insert_head(&cw->clients, &cl->link);
    atomic_fetch_add_explicit(&room->refs, 1, memory_order_relaxed);
    wharf_set_data(c, cl);
    notice(c, cl->nick, " joined", "");
}

static bool valid_nick(const char *p, size_t len)
{
    if (len == 0 || len >= NICK_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)p[i]))
            return false;
    return true;
}

/* One whole line, without its terminator. */
static void chat_line(wharf_conn *c, struct chat_client *cl, const char *p, size_t len)
{
    if (len >= 6 && memcmp(p, "/nick ", 6) == 0) {
        if (!valid_nick(p + 6, len - 6)) {
            wharf_send(c, "* bad nickname\n", 15);
            return;
        }
        char old[NICK_MAX];
        memcpy(old, cl->nick, sizeof old);
        memcpy(cl->nick, p + 6, len - 6);
        cl->nick[len - 6] = '\0';
        notice(c, old, " is now ", cl->nick);
        return;
    }
    size_t nick_len = strlen(cl->nick);
    char *text = malloc(nick_len + 2 + len + 1);
    if (!text)
        return;
    memcpy(text, cl->nick, nick_len);
    memcpy(text + nick_len, ": ", 2);
    memcpy(text + nick_len + 2, p, len);
    text[nick_len + 2 + len] = '\n';
    broadcast(c, cl, wharf_conn_id(c), text, nick_len + 2 + len + 1);
    free(text);
}

/* Splits input into lines; a partial line is left for wharf to keep. */
static size_t chat_on_data(wharf_conn *c, const void *data, size_t len)
{
    const struct chat_listener *l = wharf_listener_data(c);
    struct chat_client *cl = wharf_get_data(c);
    const char *p = data;
    size_t used = 0;
    for (int lines = 0; used < len && lines < LINES_PER_CALL && !cl->pending; lines++) {
        const char *nl = memchr(p + used, '\n', len - used);
        size_t line_len = nl ? (size_t)(nl - (p + used)) : len - used;
        if (line_len > 0 && nl && p[used + line_len - 1] == '\r')
            line_len--; /* not counted against max_line */
        if (line_len > l->max_line) {
            wharf_close_with(c, WHARF_CLOSE_LIMIT);
            return len;
        }
        if (!nl)
            break; /* the rest of this line has not arrived yet */
        chat_line(c, cl, p + used, line_len);
        used = (size_t)(nl - p) + 1;
    }
    return used;
}

static void chat_on_shutdown(wharf_conn *c)
{
    wharf_send(c, "server shutting down\n", 21);
    wharf_close_with(c, WHARF_CLOSE_SHUTDOWN);
}

static void chat_on_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    struct chat_client *cl = wharf_get_data(c);
    if (!cl)
        return; /* refused in on_open */
    struct chat_room *room = room_of(c);
    wharf_list_remove(&cl->link); /* from its worker's list: this thread's */
    if (cl->pending) /* its timer stops with the connection */
        msg_release(cl->pending, wharf_worker_count(wharf_conn_worker(c)) - cl->pending_next);
    wharf_set_data(c, NULL); /* its "left" notice waits on nobody */
    notice(c, cl->nick, " left", "");
    free(cl);
    room_unref(room);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "chat",
    .init = chat_init,
    .fini = chat_fini,
    .on_open = chat_on_open,
    .on_data = chat_on_data,
    .on_close = chat_on_close,
    .on_shutdown = chat_on_shutdown,
};
