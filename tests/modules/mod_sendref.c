/*
 * mod_sendref.c - a test handler for wharf_send_ref (tests/check_send_ref.c).
 *
 * Each line is one command; the bytes it sends continue one pattern over
 * the whole connection's output (byte i is 'a' + i % 23), so the client can
 * check the stream byte by byte whatever mix of sends made it:
 *
 *   c N   sends the next N bytes with wharf_send (copied)
 *   r N   sends the next N bytes with wharf_send_ref, from a buffer of its
 *         own that release frees
 *   x     wharf_close
 *
 * It counts the references handed over and released, and the breaches of
 * the contract it can see: a release off a worker thread, a failed call
 * whose release had not run when it returned, a connection whose on_close
 * came while a reference of it was out, a listener whose fini came while
 * one was (sendref_counts).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

struct sendref_counts {
    uint64_t given, released, failed, off_thread, late_fail, late_close, late_fini, finis;
};
static _Atomic uint64_t n_given, n_released, n_failed, n_off_thread, n_late_fail, n_late_close,
    n_late_fini, n_finis;

void sendref_counts(struct sendref_counts *out);
void sendref_counts(struct sendref_counts *out)
{
    out->given = n_given;
    out->released = n_released;
    out->failed = n_failed;
    out->off_thread = n_off_thread;
    out->late_fail = n_late_fail;
    out->late_close = n_late_close;
    out->late_fini = n_late_fini;
    out->finis = n_finis;
}

struct sr_listener {
    _Atomic uint64_t out; /* references of its connections not released */
};

struct sr_conn {
    struct sr_listener *l;
    uint64_t off;         /* pattern offset of the next byte */
    uint64_t out;         /* its references not released */
};

struct sr_ref {
    struct sr_conn *sc;
    bool released;
    char bytes[];
};

static void sr_fill(char *p, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (off + i) % 23);
}

static void sr_release(void *arg)
{
    struct sr_ref *r = arg;
    if (!wharf_current_worker())
        n_off_thread++;
    r->sc->out--;
    r->sc->l->out--;
    r->released = true;
    n_released++;
    free(r);
}

static int sr_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    (void)opts, (void)err, (void)errlen;
    *data = calloc(1, sizeof(struct sr_listener));
    return *data ? 0 : -ENOMEM;
}

static void sr_fini(void *data)
{
    struct sr_listener *l = data;
    n_finis++;
    if (l->out != 0) {
        n_late_fini++;
        return; /* leaked rather than freed under a pending release */
    }
    free(l);
}

static void sr_open(wharf_conn *c)
{
    struct sr_conn *sc = calloc(1, sizeof *sc);
    if (!sc) {
        wharf_close(c);
        return;
    }
    sc->l = wharf_listener_data(c);
    wharf_set_data(c, sc);
}

static void sr_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    struct sr_conn *sc = wharf_get_data(c);
    if (!sc)
        return;
    if (sc->out != 0) {
        n_late_close++;
        return; /* leaked rather than freed under a pending release */
    }
    free(sc);
}

/* Sends n pattern bytes by reference. */
static void sr_send_ref(wharf_conn *c, struct sr_conn *sc, size_t n)
{
    /* A NULL r (no memory) gives len 0 bytes and no release. */
    struct sr_ref *r = malloc(sizeof *r + (n ? n : 1));
    if (!r)
        return;
    r->sc = sc;
    r->released = false;
    sr_fill(r->bytes, n, sc->off);
    uint64_t before = sc->out;
    sc->out++;
    sc->l->out++;
    n_given++;
    int rc = wharf_send_ref(c, r->bytes, n, sr_release, r);
    /* r is not touched after a failure or a len of 0: it is freed. */
    if (rc < 0) {
        n_failed++;
        if (sc->out != before) /* the release did not run */
            n_late_fail++;
        return;
    }
    sc->off += n;
}

static void sr_send_copy(wharf_conn *c, struct sr_conn *sc, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p)
        return;
    sr_fill(p, n, sc->off);
    if (wharf_send(c, p, n) == 0)
        sc->off += n;
    free(p);
}

static size_t sr_data(wharf_conn *c, const void *data, size_t len)
{
    struct sr_conn *sc = wharf_get_data(c);
    const char *p = data, *nl;
    size_t used = 0;
    while (sc && (nl = memchr(p + used, '\n', len - used)) != NULL) {
        /* The number, read within the line (strtoul would skip the
         * newline and read on past the data). */
        size_t n = 0;
        for (const char *q = p + used + 1; q < nl; q++)
            if (*q >= '0' && *q <= '9')
                n = n * 10 + (size_t)(*q - '0');
        char cmd = p[used];
        used = (size_t)(nl - p) + 1;
        if (cmd == 'c')
            sr_send_copy(c, sc, n);
        else if (cmd == 'r')
            sr_send_ref(c, sc, n);
        else if (cmd == 'x')
            wharf_close(c);
    }
    return used;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "mod_sendref",
    .init = sr_init,
    .fini = sr_fini,
    .on_open = sr_open,
    .on_data = sr_data,
    .on_close = sr_close,
};
