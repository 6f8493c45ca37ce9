/*
 * mod_probe.c - a test handler that echoes like "echo" and counts every
 * callback (read back through probe_counts(), see mod_probe.h).
 *
 * Options: "hold" (bool): consume no input, so it piles up to max_input;
 * "idle_ms" (int): per-connection idle timeout set in on_open;
 * "last_word" (string): sent from on_timeout before the close;
 * "greeting_bytes" (int): bytes sent from on_open (to fill output buffers).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mod_probe.h"
#include "wharf.h"

struct probe_options {
    bool hold;
    long long idle_ms;
    char last_word[64];
    long long greeting_bytes;
};

static _Atomic uint64_t opens, datas, drains, inits, finis, timeouts[WHARF_TIMEOUT_RATE + 1],
    closes[WHARF_CLOSE_EVICTED + 1];

__attribute__((visibility("default"))) void probe_counts(struct probe_counts *out);

void probe_counts(struct probe_counts *out)
{
    out->opens = atomic_load(&opens);
    out->datas = atomic_load(&datas);
    out->drains = atomic_load(&drains);
    out->inits = atomic_load(&inits);
    out->finis = atomic_load(&finis);
    for (int i = 0; i <= WHARF_TIMEOUT_RATE; i++)
        out->timeouts[i] = atomic_load(&timeouts[i]);
    for (int i = 0; i <= WHARF_CLOSE_EVICTED; i++)
        out->closes[i] = atomic_load(&closes[i]);
}

static int probe_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    static const char *const keys[] = {"hold", "idle_ms", "last_word", "greeting_bytes", NULL};
    if (wharf_options_check_keys(opts, keys, err, errlen) < 0)
        return -1;
    struct probe_options *o = calloc(1, sizeof *o);
    if (!o)
        return -1;
    const char *word = NULL;
    wharf_options_bool(opts, "hold", &o->hold);
    wharf_options_int(opts, "idle_ms", &o->idle_ms);
    wharf_options_int(opts, "greeting_bytes", &o->greeting_bytes);
    if (wharf_options_string(opts, "last_word", &word) == 0)
        strncpy(o->last_word, word, sizeof o->last_word - 1);
    atomic_fetch_add(&inits, 1);
    *data = o;
    return 0;
}

static void probe_fini(void *data)
{
    atomic_fetch_add(&finis, 1);
    free(data);
}

static void probe_open(wharf_conn *c)
{
    struct probe_options *o = wharf_listener_data(c);
    atomic_fetch_add(&opens, 1);
    if (o->idle_ms)
        wharf_set_timeout(c, WHARF_TIMEOUT_IDLE, (uint64_t)o->idle_ms);
    if (o->greeting_bytes > 0) {
        char chunk[4096];
        memset(chunk, 'g', sizeof chunk);
        for (long long left = o->greeting_bytes; left > 0; left -= (long long)sizeof chunk)
            wharf_send(c, chunk, left < (long long)sizeof chunk ? (size_t)left : sizeof chunk);
    }
}

static size_t probe_data(wharf_conn *c, const void *data, size_t len)
{
    struct probe_options *o = wharf_listener_data(c);
    atomic_fetch_add(&datas, 1);
    if (o->hold)
        return 0;
    wharf_send(c, data, len);
    return len;
}

static void probe_drain(wharf_conn *c)
{
    atomic_fetch_add(&drains, 1);
}

static void probe_timeout(wharf_conn *c, enum wharf_timeout kind)
{
    struct probe_options *o = wharf_listener_data(c);
    atomic_fetch_add(&timeouts[kind], 1);
    if (o->last_word[0])
        wharf_send(c, o->last_word, strlen(o->last_word));
}

static void probe_close(wharf_conn *c, enum wharf_close_reason reason)
{
    atomic_fetch_add(&closes[reason], 1);
    /* Sending after close must be refused, never crash. */
    if (wharf_send(c, "x", 1) != -EPIPE)
        abort();
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "probe",
    .init = probe_init,
    .fini = probe_fini,
    .on_open = probe_open,
    .on_data = probe_data,
    .on_drain = probe_drain,
    .on_timeout = probe_timeout,
    .on_close = probe_close,
};
