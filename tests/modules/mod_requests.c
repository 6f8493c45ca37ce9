/*
 * mod_requests.c - a test handler for requests (tests/check_requests.c):
 * blocking work, worker timers and what they keep alive.  Option "mode":
 *
 *   sleep   each line "N" queues a job sleeping N ms; its done replies "N\n"
 *           (through wharf_post_conn) and checks it runs on the worker that
 *           queued it, with no connection of its own running
 *   pin     "job" queues a 300 ms job, "timer" starts a 300 ms worker timer
 *           (c == NULL); each answers "ok\n" at once.  The order in which the
 *           done, the timer and fini run is recorded (requests_seqs)
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wharf.h"

static _Atomic uint64_t seq, done_seq, timer_seq, fini_seq, wrong_worker;

/* The order of the last done, timer and fini of mode pin, and how many
 * dones ran on another worker than the one that queued them. */
void requests_seqs(uint64_t out[4]);
void requests_seqs(uint64_t out[4])
{
    out[0] = done_seq;
    out[1] = timer_seq;
    out[2] = fini_seq;
    out[3] = wrong_worker;
}

enum mode { SLEEP = 1, PIN };

struct job {
    wharf_worker *w;
    uint64_t conn;
    unsigned ms;
    char reply[24];
};

static int requests_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    static const char *const keys[] = {"mode", NULL};
    if (wharf_options_check_keys(opts, keys, err, errlen) != 0)
        return -1;
    const char *m = "sleep";
    wharf_options_string(opts, "mode", &m);
    *data = (void *)(intptr_t)(strcmp(m, "pin") == 0 ? PIN : SLEEP);
    return 0;
}

static void requests_fini(void *data)
{
    if ((intptr_t)data == PIN)
        fini_seq = ++seq;
}

static void job_work(void *arg)
{
    struct job *j = arg;
    struct timespec ts = {j->ms / 1000, (long)(j->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void job_reply(wharf_conn *c, void *arg)
{
    struct job *j = arg;
    if (c)
        wharf_send(c, j->reply, strlen(j->reply));
    free(j);
}

static void job_done(void *arg, bool cancelled)
{
    struct job *j = arg;
    if (wharf_current_worker() != j->w)
        wrong_worker++;
    if (j->conn == 0) { /* mode pin */
        done_seq = ++seq;
        free(j);
        return;
    }
    if (cancelled || wharf_post_conn(j->w, j->conn, job_reply, j) != 0)
        free(j);
}

static void on_timer(wharf_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    timer_seq = ++seq;
}

static void queue(wharf_conn *c, unsigned ms, uint64_t conn, const char *reply)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->w = wharf_conn_worker(c);
    j->conn = conn;
    j->ms = ms;
    strncpy(j->reply, reply, sizeof j->reply - 1);
    if (wharf_queue_work(job_work, job_done, j) != 0) {
        free(j);
        wharf_send(c, "busy\n", 5);
    }
}

static int on_line(wharf_conn *c, const struct wharf_frame *fr, void *arg)
{
    (void)arg;
    char line[24] = "";
    memcpy(line, fr->payload, fr->payload_len < 23 ? fr->payload_len : 23);
    if ((intptr_t)wharf_listener_data(c) == SLEEP) {
        char reply[24];
        strcpy(reply, line);
        strcat(reply, "\n");
        queue(c, (unsigned)strtoul(line, NULL, 10), wharf_conn_id(c), reply);
        return 0;
    }
    if (strcmp(line, "job") == 0)
        queue(c, 300, 0, "");
    else if (strcmp(line, "timer") == 0)
        wharf_timer_start(NULL, 300, 0, on_timer, NULL);
    wharf_send(c, "ok\n", 3);
    return 0;
}

static const struct wharf_framing lines = {.kind = WHARF_FRAME_LINE, .max_frame = 64};

static size_t requests_data(wharf_conn *c, const void *data, size_t len)
{
    return wharf_frames(c, &lines, data, len, on_line, NULL);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "mod_requests",
    .init = requests_init,
    .fini = requests_fini,
    .on_data = requests_data,
};
