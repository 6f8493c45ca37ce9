/*
 * metrics.c - serves the server's counters to Prometheus: `GET /metrics`
 * over HTTP/1.1 answers wharf_metrics_text (the text exposition format,
 * version 0.0.4) on a listener the config defines, e.g.
 *
 *   {"name": "metrics", "port": 9107, "handler": "metrics"}
 *
 * What it shows: a small request/response protocol (a request is a header
 * block ending in an empty line), keep-alive and pipelining for free from
 * the re-offer contract (a partial head is kept and offered again with the
 * next bytes), and a handler reading server-wide state through the API
 * (wharf_metrics_text) rather than internals.
 *
 * Only GET and HEAD of "/metrics" (a query string is ignored) get 200;
 * "/healthz" and "/readyz" are the health endpoints (metrics_health.c); other
 * paths 404, other methods 405, a malformed request 400 and then a close, a
 * request head over 8 KiB 431 and a close.  "Connection: close" (or
 * HTTP/1.0 without keep-alive) closes after the answer.  Back-pressure: with
 * MAX_PENDING bytes of answers not yet written, the next pipelined request
 * waits (kept, offered again once the output is out), so a client that
 * pipelines requests and never reads cannot make the server hold more.
 *
 * Options: "ready_timeout_ms" (metrics_health.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics_health.h"
#include "wharf.h"

#define MAX_HEAD 8192
/* Pipelined requests are answered while less than this is waiting to be
 * written; the rest stays in the kernel's buffers (reading pauses) until the
 * client reads.  A client that never reads holds at most this plus one page. */
#define MAX_PENDING (64 * 1024)

/* Finds the end of a request head (the empty line, "\r\n\r\n" or "\n\n").
 * Returns p with the head's length in *head_len, or NULL when incomplete. */
static const char *find_end(const char *p, size_t len, size_t *head_len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] == '\n' && p[i + 1] == '\n') {
            *head_len = i + 2;
            return p;
        }
        if (i + 3 < len && p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            *head_len = i + 4;
            return p;
        }
    }
    return NULL;
}

static void answer(wharf_conn *c, int status, const char *reason, const char *body, size_t blen,
                   bool head_only, bool close)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                     status, reason,
                     status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
                     blen, close ? "Connection: close\r\n" : "");
    wharf_send(c, hdr, (size_t)n);
    if (!head_only && blen)
        wharf_send(c, body, blen);
    if (close)
        wharf_close(c);
}

/* Whether the head asks to close: "Connection: close", or HTTP/1.0 without
 * "Connection: keep-alive". */
static bool wants_close(const char *head, size_t len, bool http10)
{
    bool close = false, keep = false;
    for (const char *p = head; p < head + len;) {
        const char *eol = memchr(p, '\n', (size_t)(head + len - p));
        if (!eol)
            break;
        size_t l = (size_t)(eol - p);
        if (l > 11 && strncasecmp(p, "connection:", 11) == 0) {
            const char *v = p + 11;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            if ((size_t)(eol - v) >= 5 && strncasecmp(v, "close", 5) == 0)
                close = true;
            if ((size_t)(eol - v) >= 10 && strncasecmp(v, "keep-alive", 10) == 0)
                keep = true;
        }
        p = eol + 1;
    }
    return http10 ? !keep : close;
}

static size_t metrics_on_data(wharf_conn *c, const void *data, size_t len)
{
    const char *p = data;
    size_t used = 0;
    if (health_pending(c))
        return 0; /* a /readyz is being answered first */
    /* Pipelined requests: answer each whole head in order. */
    while (used < len) {
        if (wharf_output_pending(c) >= MAX_PENDING)
            break; /* offered again once the output is written */
        size_t head_len;
        if (!find_end(p + used, len - used, &head_len)) {
            if (len - used > MAX_HEAD) {
                static const char msg[] = "request head too large\n";
                answer(c, 431, "Request Header Fields Too Large", msg, sizeof msg - 1, false, true);
                return len;
            }
            break; /* the rest comes with more bytes */
        }
        const char *head = p + used;
        used += head_len;
        /* The request line: METHOD SP TARGET SP HTTP/1.x */
        const char *sp1 = memchr(head, ' ', head_len);
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - head)) : NULL;
        if (!sp1 || !sp2 || (size_t)(head + head_len - sp2) < 9 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
            static const char msg[] = "bad request\n";
            answer(c, 400, "Bad Request", msg, sizeof msg - 1, false, true);
            return len;
        }
        bool http10 = sp2[8] == '0';
        bool close = wants_close(head, head_len, http10);
        size_t mlen = (size_t)(sp1 - head), tlen = (size_t)(sp2 - sp1 - 1);
        const char *target = sp1 + 1;
        const char *q = memchr(target, '?', tlen);
        if (q)
            tlen = (size_t)(q - target);
        bool get = mlen == 3 && memcmp(head, "GET", 3) == 0;
        bool head_only = mlen == 4 && memcmp(head, "HEAD", 4) == 0;
        bool health = health_path(target, tlen);
        if (!health && !(tlen == 8 && memcmp(target, "/metrics", 8) == 0)) {
            static const char msg[] = "not found: try /metrics\n";
            answer(c, 404, "Not Found", msg, sizeof msg - 1, head_only, close);
        } else if (!get && !head_only) {
            static const char msg[] = "only GET and HEAD\n";
            answer(c, 405, "Method Not Allowed", msg, sizeof msg - 1, false, close);
        } else if (health) {
            if (!health_serve(c, target, tlen, head_only, close))
                return used; /* /readyz answers later; the rest waits */
        } else {
            size_t blen = 0;
            char *body = wharf_metrics_text(wharf_conn_worker(c), &blen);
            if (body)
                answer(c, 200, "OK", body, blen, head_only, close);
            else
                answer(c, 500, "Internal Server Error", "out of memory\n", 14, head_only, true);
            free(body);
        }
        if (close)
            return len;
    }
    return used;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "metrics",
    .init = health_init,
    .fini = health_fini,
    .on_data = metrics_on_data,
    .on_close = health_on_close,
};
