/*
 * framing.c - whole messages from a byte stream, for handlers (wharf.h,
 * "framing"): wharf_frame_next finds the first message of a buffer under one
 * of three framings (a line, a length prefix, a header line announcing a
 * body), and wharf_frames drives it from on_data, delivering every whole
 * message and closing the connection on an oversize or malformed one.  It
 * stops after a message whose post held the connection (post back-pressure,
 * postq.h): the rest is kept and offered again on release.
 *
 * wharf_frame_next keeps no state: it parses from the start of the buffer on
 * every call, as on_data offers the kept bytes again with the new ones.  A
 * message is at most max_frame bytes, so the re-scan is bounded.  Every
 * decision is made as soon as the bytes it needs are there: a line with no
 * LF in its first max_frame bytes, a (even partial) length prefix that can
 * only announce more than max_frame, and a header whose body cannot fit are
 * refused before the rest arrives; a wrong trailer byte is refused as soon as
 * it is seen.  So 0 ("need more") always means that some continuation of the
 * bytes so far is a whole message within max_frame.
 *
 * Precedence when several answers apply: a bad framing (bad width, no
 * body_length, bad trailer size) is reported first, whatever the data; then
 * the message is parsed in order, and the first problem met wins (e.g. a
 * LENGTH prefix below its own width is malformed even though the framing's
 * max_frame is smaller than the width).
 */
#include "wharf.h"

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

/* Whether a post's back-pressure holds c's reading (conn.h). */
bool conn_held(const wharf_conn *c);

/* The max_frame used when a framing leaves it 0. */
#define FRAMING_DEFAULT_MAX 65536u

/* The effective max_frame of f: its own, 65536 for 0, and never more than a
 * long long can return. */
static size_t framing_max(const struct wharf_framing *f)
{
    size_t max = f->max_frame ? f->max_frame : FRAMING_DEFAULT_MAX;
    if ((unsigned long long)max > (unsigned long long)LLONG_MAX)
        max = (size_t)LLONG_MAX;
    return max;
}

/* NULL when f itself is usable, else why not (a static string).  These are
 * handler bugs rather than bad input; wharf_frames logs them louder. */
static const char *framing_bad_config(const struct wharf_framing *f)
{
    /* Room for later fields: a caller built against a later wharf.h that
     * sets one gets a clear error here instead of having it ignored. */
    for (size_t i = 0; i < sizeof f->reserved / sizeof f->reserved[0]; i++)
        if (f->reserved[i] != 0)
            return "reserved fields set (built against a newer wharf.h?)";
    switch (f->kind) {
    case WHARF_FRAME_LINE:
        return NULL;
    case WHARF_FRAME_LENGTH:
        if (f->width != 1 && f->width != 2 && f->width != 4 && f->width != 8)
            return "bad length width";
        return NULL;
    case WHARF_FRAME_HEADER_BODY:
        if (f->body_length == NULL)
            return "no body_length function";
        if (f->trailer != 0 && f->trailer != 2)
            return "bad trailer size (0 or 2)";
        return NULL;
    }
    return "unknown framing kind";
}

/* Sets *reason (when wanted) and returns code. */
static long long framing_fail(const char **reason, long long code, const char *why)
{
    if (reason != NULL)
        *reason = why;
    return code;
}

/*
 * Finds the LF ending the first line of p[0..len) within max bytes.  Returns
 * the line's length with its terminator (> 0) and sets *text to its length
 * without it; 0 when no LF yet and the line may still fit; -EMSGSIZE when no
 * LF within max bytes; -EINVAL (with *reason) for a bare LF when crlf_only.
 */
static long long framing_line(const unsigned char *p, size_t len, size_t max, bool crlf_only,
                              size_t *text, const char **reason)
{
    size_t scan = len < max ? len : max;
    const unsigned char *lf = scan ? memchr(p, '\n', scan) : NULL;
    if (lf == NULL)
        return len >= max ? framing_fail(reason, -EMSGSIZE, "message too long") : 0;
    size_t n = (size_t)(lf - p);
    bool cr = n > 0 && p[n - 1] == '\r';
    if (crlf_only && !cr)
        return framing_fail(reason, -EINVAL, "bare LF in a CRLF line");
    *text = cr ? n - 1 : n;
    return (long long)(n + 1);
}

/* LINE: the line is the message; the payload is its text. */
static long long framing_next_line(const struct wharf_framing *f, const unsigned char *p,
                                   size_t len, size_t max, struct wharf_frame *fr,
                                   const char **reason)
{
    size_t text = 0;
    long long n = framing_line(p, len, max, f->crlf_only, &text, reason);
    if (n > 0) {
        fr->data = (const char *)p;
        fr->len = (size_t)n;
        fr->payload = (const char *)p;
        fr->payload_len = text;
    }
    return n;
}

/*
 * The length prefix of p[0..len) (width bytes, f's byte order), reading the
 * bytes not there yet as 0: the exact value once len >= width, otherwise the
 * least value any continuation can give (in either byte order, the missing
 * bytes only add to it).
 */
static uint64_t framing_prefix(const struct wharf_framing *f, const unsigned char *p, size_t len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < f->width; i++) {
        uint64_t b = i < len ? p[i] : 0;
        if (f->little_endian)
            v |= b << (8 * i);
        else
            v = (v << 8) | b;
    }
    return v;
}

/* LENGTH: width bytes of length, then the payload. */
static long long framing_next_length(const struct wharf_framing *f, const unsigned char *p,
                                     size_t len, size_t max, struct wharf_frame *fr,
                                     const char **reason)
{
    size_t w = f->width;
    if (len == 0)
        return 0;
    uint64_t v = framing_prefix(f, p, len); /* exact, or a lower bound */
    bool whole = len >= w;
    uint64_t total; /* the message's length, or a lower bound; saturated */
    if (f->length_includes_prefix) {
        if (whole && v < w)
            return framing_fail(reason, -EINVAL, "length smaller than its prefix");
        if (!whole && v < w)
            return 0; /* might yet be malformed, or anything */
        total = v;
    } else {
        total = v > UINT64_MAX - w ? UINT64_MAX : v + w;
    }
    if (total > (uint64_t)max)
        return framing_fail(reason, -EMSGSIZE, "message too long");
    if (!whole || len < total)
        return 0;
    fr->data = (const char *)p;
    fr->len = (size_t)total;
    fr->payload = (const char *)p + w;
    fr->payload_len = (size_t)total - w;
    return (long long)total;
}

/* HEADER_BODY: a header line, body_length(header) body bytes, the trailer. */
static long long framing_next_header_body(const struct wharf_framing *f, const unsigned char *p,
                                          size_t len, size_t max, struct wharf_frame *fr,
                                          const char **reason, void *arg)
{
    size_t text = 0;
    long long h = framing_line(p, len, max, false, &text, reason);
    if (h <= 0)
        return h;
    size_t hl = (size_t)h; /* <= max */
    long long body = f->body_length((const char *)p, text, arg);
    size_t total;
    if (body == -1) {
        total = hl;
    } else if (body < -1) {
        return framing_fail(reason, -EINVAL, "malformed header");
    } else {
        if (f->trailer > max - hl || (unsigned long long)body > max - hl - f->trailer)
            return framing_fail(reason, -EMSGSIZE, "message too long");
        size_t end = hl + (size_t)body; /* where the trailer starts */
        for (size_t i = 0; i < f->trailer && end + i < len; i++)
            if (p[end + i] != "\r\n"[i])
                return framing_fail(reason, -EINVAL, "missing CRLF after the body");
        total = end + f->trailer;
    }
    if (len < total)
        return 0;
    fr->data = (const char *)p;
    fr->len = total;
    fr->header = (const char *)p;
    fr->header_len = text;
    fr->payload = (const char *)p + hl;
    fr->payload_len = body < 0 ? 0 : (size_t)body;
    return (long long)total;
}

long long wharf_frame_next(const struct wharf_framing *f, const void *data, size_t len,
                           struct wharf_frame *fr, const char **reason, void *arg)
{
    struct wharf_frame scratch;
    if (fr == NULL)
        fr = &scratch;
    memset(fr, 0, sizeof *fr);
    if (reason != NULL)
        *reason = NULL;
    const char *bad = framing_bad_config(f);
    if (bad != NULL)
        return framing_fail(reason, -EINVAL, bad);
    const unsigned char *p = data;
    size_t max = framing_max(f);
    switch (f->kind) {
    case WHARF_FRAME_LINE:
        return framing_next_line(f, p, len, max, fr, reason);
    case WHARF_FRAME_LENGTH:
        return framing_next_length(f, p, len, max, fr, reason);
    case WHARF_FRAME_HEADER_BODY:
        return framing_next_header_body(f, p, len, max, fr, reason, arg);
    }
    return framing_fail(reason, -EINVAL, "unknown framing kind");
}

/*
 * Contract (beyond wharf.h): on_frame and body_length both get `arg`.
 * body_length may be called several times for the same header (once per
 * offer while the body is incomplete), so it must be a pure function of the
 * line.  An on_frame that closes the connection (wharf_close) should return
 * non-zero, or the messages after it are still delivered.  The frame's
 * pointers are valid only during on_frame.
 */
size_t wharf_frames(wharf_conn *c, const struct wharf_framing *f, const void *data, size_t len,
                    int (*on_frame)(wharf_conn *c, const struct wharf_frame *fr, void *arg),
                    void *arg)
{
    const char *bad = framing_bad_config(f);
    if (bad != NULL) {
        wharf_conn_log(c, WHARF_LOG_ERROR, "bad framing: %s", bad);
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return 0;
    }
    const char *p = data;
    size_t used = 0;
    while (used < len) {
        struct wharf_frame fr;
        const char *why = NULL;
        long long n = wharf_frame_next(f, p + used, len - used, &fr, &why, arg);
        if (n == 0)
            break;
        if (n == -EMSGSIZE) {
            wharf_conn_log(c, WHARF_LOG_INFO, "message longer than %zu bytes", framing_max(f));
            wharf_close_with(c, WHARF_CLOSE_LIMIT);
            break;
        }
        if (n < 0) {
            wharf_conn_log(c, WHARF_LOG_INFO, "malformed message: %s",
                           why ? why : "malformed");
            wharf_close_with(c, WHARF_CLOSE_ERROR);
            break;
        }
        used += (size_t)n;
        if (on_frame(c, &fr, arg) != 0 || conn_held(c))
            break; /* a post held the connection: the rest waits (postq.h) */
    }
    return used;
}
