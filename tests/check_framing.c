/*
 * check_framing.c - tests for framing.c, the handler API's framing helpers:
 * wharf_frame_next for lines, length prefixes (every width, both byte
 * orders, prefix counted or not) and header+body messages (a memcached-like
 * and a Redis-like header parser), each message cut at every byte (0 = need
 * more, then the whole result, from an exactly sized copy so an overread
 * shows under valgrind/ASan), max_frame at and one past the limit refused as
 * early as possible, every malformed case with its reason; and wharf_frames
 * driven as the framework drives on_data (unconsumed bytes kept and offered
 * again with the next chunk) for every split of multi-message streams, its
 * early stop, and its closes ("limit", "error") after the earlier messages.
 *
 * framing.c is compiled into this program directly; wharf_close_with and
 * wharf_conn_log are stubbed here and record their calls.
 */
#include "check_main.h"
#include "wharf.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- stubs for the framework calls framing.c makes ------------------------ */

struct wharf_conn {
    int closes;                        /* wharf_close_with calls */
    enum wharf_close_reason reason;    /* the last one's reason */
    int logs;                          /* wharf_conn_log calls */
    enum wharf_log_level level;        /* the last one's level and text */
    char msg[256];
    bool held;                         /* conn_held's answer */
    int hold_at;                       /* on_frame holds at this frame (0: never) */
};

bool conn_held(const wharf_conn *c)
{
    return c->held;
}

void wharf_close_with(wharf_conn *c, enum wharf_close_reason reason)
{
    c->closes++;
    c->reason = reason;
}

void wharf_conn_log(const wharf_conn *c, enum wharf_log_level level, const char *fmt, ...)
{
    wharf_conn *m = (wharf_conn *)c;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->msg, sizeof m->msg, fmt, ap);
    va_end(ap);
    m->logs++;
    m->level = level;
}

/* ---- header parsers for HEADER_BODY ---------------------------------------- */

/* memcached-like: "set|add KEY FLAGS EXPTIME BYTES" -> BYTES; "get|delete
 * KEY..." -> -1 (header only); anything else -> -2. */
static long long mc_body_length(const char *line, size_t len, void *arg)
{
    (void)arg;
    char s[128];
    if (len >= sizeof s)
        return -2;
    memcpy(s, line, len);
    s[len] = '\0';
    char key[64];
    unsigned flags;
    long long exptime, bytes;
    int end = 0;
    if ((strncmp(s, "set ", 4) == 0 || strncmp(s, "add ", 4) == 0) &&
        sscanf(s + 4, "%63s %u %lld %lld%n", key, &flags, &exptime, &bytes, &end) == 4 &&
        s[4 + end] == '\0' && bytes >= 0)
        return bytes;
    if ((strncmp(s, "get ", 4) == 0 || strncmp(s, "delete ", 7) == 0) && strchr(s, ' ')[1])
        return -1;
    return -2;
}

/* mc_body_length counting its calls in *(int *)arg. */
static long long counting_body_length(const char *line, size_t len, void *arg)
{
    (*(int *)arg)++;
    return mc_body_length(line, len, NULL);
}

/* Redis-like: "$N" -> N, "$-1" and "+..." / "-..." / ":..." -> -1, else -2. */
static long long redis_body_length(const char *line, size_t len, void *arg)
{
    (void)arg;
    if (len == 0)
        return -2;
    if (line[0] == '+' || line[0] == '-' || line[0] == ':')
        return -1;
    if (line[0] != '$' || len < 2)
        return -2;
    if (len == 3 && line[1] == '-' && line[2] == '1')
        return -1;
    long long n = 0;
    for (size_t i = 1; i < len; i++) {
        if (line[i] < '0' || line[i] > '9' || n > (LLONG_MAX - 9) / 10)
            return -2;
        n = n * 10 + (line[i] - '0');
    }
    return n;
}

/* Returns its arg's value: lets a test pick any body length. */
static long long fixed_body_length(const char *line, size_t len, void *arg)
{
    (void)line;
    (void)len;
    return *(long long *)arg;
}

/* ---- helpers --------------------------------------------------------------- */

static const struct wharf_framing line_f = {.kind = WHARF_FRAME_LINE};
static const struct wharf_framing crlf_f = {.kind = WHARF_FRAME_LINE, .crlf_only = true};
static const struct wharf_framing mc_f = {
    .kind = WHARF_FRAME_HEADER_BODY, .body_length = mc_body_length, .trailer = 2,
};
static const struct wharf_framing redis_f = {
    .kind = WHARF_FRAME_HEADER_BODY, .body_length = redis_body_length, .trailer = 2,
};

/* wharf_frame_next on an exactly sized heap copy of s[0..n) (so reading past
 * the end is caught by valgrind and ASan). */
static long long next_copy(const struct wharf_framing *f, const void *s, size_t n,
                           struct wharf_frame *fr, const char **why, void *arg,
                           size_t *payload_off, size_t *header_off)
{
    char *copy = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(copy);
    if (n)
        memcpy(copy, s, n);
    long long r = wharf_frame_next(f, copy, n, fr, why, arg);
    if (r > 0) {
        ck_assert_ptr_eq(fr->data, copy);
        ck_assert_uint_eq(fr->len, (size_t)r);
        ck_assert(fr->payload >= copy && fr->payload + fr->payload_len <= copy + r);
        if (payload_off)
            *payload_off = (size_t)(fr->payload - copy);
        if (fr->header != NULL) {
            ck_assert(fr->header >= copy && fr->header + fr->header_len <= copy + r);
            if (header_off)
                *header_off = (size_t)(fr->header - copy);
        }
    }
    free(copy);
    return r;
}

/* Asserts wharf_frame_next(s[0..n)) == code (negative) with reason `why`
 * (checked when not NULL). */
#define ck_reject(f, s, n, code, why, arg) do {                                \
        struct wharf_frame fr_;                                               \
        const char *w_ = "unset";                                             \
        long long r_ = next_copy((f), (s), (n), &fr_, &w_, (arg), NULL, NULL); \
        ck_assert_msg(r_ == (code), "%s (%zu bytes): got %lld (%s), want %d", \
                      #s, (size_t)(n), r_, w_ ? w_ : "-", (code));            \
        ck_assert_ptr_nonnull(w_);                                            \
        if ((why) != NULL)                                                    \
            ck_assert_str_eq(w_, (const char *)(why));                        \
    } while (0)

/*
 * Asserts that msg[0..n) is one whole message of n bytes with payload
 * `payload` (plen bytes) and header `header` (NULL: none), and that every
 * proper prefix of it needs more bytes.  With extra bytes after it, the
 * answer is the same.
 */
static void check_message(const struct wharf_framing *f, const void *msg, size_t n,
                          const void *payload, size_t plen, const char *header, void *arg)
{
    const char *m = msg;
    for (size_t k = 0; k < n; k++) {
        struct wharf_frame fr;
        const char *why = "unset";
        long long r = next_copy(f, m, k, &fr, &why, arg, NULL, NULL);
        ck_assert_msg(r == 0, "prefix %zu of %zu: got %lld (%s)", k, n, r, why ? why : "-");
        ck_assert_ptr_null(why);
        ck_assert_uint_eq(fr.len, 0);
    }
    /* the whole message, then the same with a tail */
    for (int tail = 0; tail < 2; tail++) {
        char *buf = malloc(n + 3);
        memcpy(buf, m, n);
        memcpy(buf + n, "xyz", 3);
        struct wharf_frame fr;
        const char *why = "unset";
        size_t poff = 0, hoff = 0;
        long long r = next_copy(f, buf, n + (tail ? 3 : 0), &fr, &why, arg, &poff, &hoff);
        ck_assert_msg(r == (long long)n, "whole (tail %d): got %lld (%s), want %zu", tail, r,
                      why ? why : "-", n);
        ck_assert_ptr_null(why);
        ck_assert_uint_eq(fr.payload_len, plen);
        ck_assert(memcmp(buf + poff, payload, plen) == 0);
        if (header == NULL) {
            ck_assert_ptr_null(fr.header);
            ck_assert_uint_eq(fr.header_len, 0);
        } else {
            ck_assert_ptr_nonnull(fr.header);
            ck_assert_uint_eq(hoff, 0);
            ck_assert_uint_eq(fr.header_len, strlen(header));
            ck_assert(memcmp(buf + hoff, header, fr.header_len) == 0);
        }
        free(buf);
    }
}

#define CHECK_MSG(f, lit, payload_lit, header, arg) \
    check_message((f), (lit), sizeof(lit) - 1, (payload_lit), sizeof(payload_lit) - 1, \
                  (header), (arg))

/* ---- the framework's re-offer, emulated ------------------------------------ */

/* What on_frame saw: every message as "[header|payload]" ("[payload]" with
 * no header), concatenated; stop_at: return non-zero from that message on
 * (1-based; 0 never). */
struct sink {
    char log[4096];
    size_t len;
    int frames;
    int stop_at;
    int body_calls; /* sink_body_length calls */
};

static void sink_put(struct sink *s, const void *p, size_t n)
{
    ck_assert_uint_le(s->len + n, sizeof s->log);
    memcpy(s->log + s->len, p, n);
    s->len += n;
}

/* mc_body_length, with a sink as arg (wharf_frames gives both callbacks the
 * same arg). */
static long long sink_body_length(const char *line, size_t len, void *arg)
{
    ((struct sink *)arg)->body_calls++;
    return mc_body_length(line, len, NULL);
}

static int on_frame(wharf_conn *c, const struct wharf_frame *fr, void *arg)
{
    struct sink *s = arg;
    ck_assert_ptr_nonnull(c);
    sink_put(s, "[", 1);
    if (fr->header != NULL) {
        sink_put(s, fr->header, fr->header_len);
        sink_put(s, "|", 1);
    }
    sink_put(s, fr->payload, fr->payload_len);
    sink_put(s, "]", 1);
    s->frames++;
    if (c->hold_at != 0 && s->frames == c->hold_at)
        c->held = true; /* as a post over the soft capacity does */
    return s->stop_at != 0 && s->frames >= s->stop_at;
}

/* The kept input of one emulated connection. */
struct feed {
    char *kept;
    size_t len;
};

/*
 * Appends chunk to the kept bytes and offers them as the framework does: on
 * an exactly sized copy, again at once while a call consumed something and
 * bytes remain (at most 16 times), then waits for the next chunk.
 */
static void feed_chunk(struct feed *fd, wharf_conn *c, const struct wharf_framing *f,
                       const char *chunk, size_t n, struct sink *s)
{
    fd->kept = realloc(fd->kept, fd->len + n + 1);
    ck_assert_ptr_nonnull(fd->kept);
    memcpy(fd->kept + fd->len, chunk, n);
    fd->len += n;
    for (int round = 0; round < 16 && fd->len > 0 && c->closes == 0; round++) {
        char *offer = malloc(fd->len);
        memcpy(offer, fd->kept, fd->len);
        size_t used = wharf_frames(c, f, offer, fd->len, on_frame, s);
        free(offer);
        ck_assert_uint_le(used, fd->len);
        memmove(fd->kept, fd->kept + used, fd->len - used);
        fd->len -= used;
        if (used == 0)
            break;
    }
}

/*
 * Feeds stream[0..n) cut at every point (and at every pair of points, and
 * byte by byte), each time checking that exactly `want` is delivered, that
 * nothing is left and that the connection stays open.
 */
static void check_stream(const struct wharf_framing *f, const char *stream, size_t n,
                         const char *want, size_t wlen)
{
    /* cuts[]: chunk boundaries; mode 0: one cut at a, 1: cuts at a and b,
     * 2: every byte */
    for (int mode = 0; mode < 3; mode++) {
        size_t alim = mode == 2 ? 1 : n + 1;
        for (size_t a = 0; a < alim; a++) {
            size_t blim = mode == 1 ? n + 1 : a + 1;
            for (size_t b = a; b < blim; b++) {
                struct wharf_conn c = {0};
                struct sink s = {0};
                struct feed fd = {0};
                if (mode == 2) {
                    for (size_t i = 0; i < n; i++)
                        feed_chunk(&fd, &c, f, stream + i, 1, &s);
                } else {
                    feed_chunk(&fd, &c, f, stream, a, &s);
                    feed_chunk(&fd, &c, f, stream + a, b - a, &s);
                    feed_chunk(&fd, &c, f, stream + b, n - b, &s);
                }
                ck_assert_msg(s.len == wlen && memcmp(s.log, want, wlen) == 0,
                              "mode %d cuts %zu,%zu: got \"%.*s\", want \"%.*s\"", mode, a, b,
                              (int)s.len, s.log, (int)wlen, want);
                ck_assert_uint_eq(fd.len, 0);
                ck_assert_int_eq(c.closes, 0);
                ck_assert_int_eq(c.logs, 0);
                free(fd.kept);
            }
        }
    }
}

#define CHECK_STREAM(f, lit, want_lit) \
    check_stream((f), (lit), sizeof(lit) - 1, (want_lit), sizeof(want_lit) - 1)

/* ---- LINE ------------------------------------------------------------------ */

START_TEST(test_line_valid)
{
    CHECK_MSG(&line_f, "hello\n", "hello", NULL, NULL);
    CHECK_MSG(&line_f, "hello\r\n", "hello", NULL, NULL);
    CHECK_MSG(&line_f, "\n", "", NULL, NULL);
    CHECK_MSG(&line_f, "\r\n", "", NULL, NULL);
    CHECK_MSG(&line_f, "a\rb\r\r\n", "a\rb\r", NULL, NULL);
    CHECK_MSG(&line_f, "nul\0inside\n", "nul\0inside", NULL, NULL);
    CHECK_MSG(&crlf_f, "hello\r\n", "hello", NULL, NULL);
    CHECK_MSG(&crlf_f, "\r\n", "", NULL, NULL);
    CHECK_MSG(&crlf_f, "a\rb\r\n", "a\rb", NULL, NULL);
}
END_TEST

START_TEST(test_line_several)
{
    const char s[] = "a\nbb\r\n\nccc\n\r\ntail";
    const char *p = s;
    size_t left = sizeof s - 1;
    static const struct { const char *payload; long long len; } want[] = {
        {"a", 2}, {"bb", 4}, {"", 1}, {"ccc", 4}, {"", 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct wharf_frame fr;
        const char *why = "unset";
        long long r = wharf_frame_next(&line_f, p, left, &fr, &why, NULL);
        ck_assert_int_eq(r, want[i].len);
        ck_assert_ptr_null(why);
        ck_assert_ptr_eq(fr.data, p);
        ck_assert_ptr_eq(fr.payload, p);
        ck_assert_uint_eq(fr.payload_len, strlen(want[i].payload));
        ck_assert(memcmp(fr.payload, want[i].payload, fr.payload_len) == 0);
        p += r;
        left -= (size_t)r;
    }
    ck_assert_int_eq(wharf_frame_next(&line_f, p, left, NULL, NULL, NULL), 0);
    ck_assert_str_eq(p, "tail");
}
END_TEST

START_TEST(test_line_stream)
{
    CHECK_STREAM(&line_f, "one\ntwo\r\n\nthree\r\n\r\nx\n", "[one][two][][three][][x]");
    CHECK_STREAM(&crlf_f, "one\r\n\r\ntwo\r\n", "[one][][two]");
}
END_TEST

START_TEST(test_line_max_frame)
{
    struct wharf_framing f = {.kind = WHARF_FRAME_LINE, .max_frame = 8};
    CHECK_MSG(&f, "1234567\n", "1234567", NULL, NULL);  /* 8: at the limit */
    CHECK_MSG(&f, "123456\r\n", "123456", NULL, NULL);  /* terminator counted */
    /* one over: refused as soon as 8 bytes hold no LF */
    ck_assert_int_eq(wharf_frame_next(&f, "1234567", 7, NULL, NULL, NULL), 0);
    ck_reject(&f, "12345678", 8, -EMSGSIZE, NULL, NULL);
    ck_reject(&f, "12345678\n", 9, -EMSGSIZE, NULL, NULL);
    ck_reject(&f, "1234567\r", 8, -EMSGSIZE, NULL, NULL);
    ck_reject(&f, "1234567\r\n", 9, -EMSGSIZE, NULL, NULL);
    /* a short line then a long one: the first is still whole */
    ck_assert_int_eq(wharf_frame_next(&f, "ab\n123456789", 12, NULL, NULL, NULL), 3);

    f.max_frame = 1;
    CHECK_MSG(&f, "\n", "", NULL, NULL);
    ck_reject(&f, "\r", 1, -EMSGSIZE, NULL, NULL);

    /* 0 means 65536 */
    f.max_frame = 0;
    size_t n = 65536;
    char *big = malloc(n + 1);
    memset(big, 'a', n + 1);
    big[n - 1] = '\n';
    ck_assert_int_eq(wharf_frame_next(&f, big, n, NULL, NULL, NULL), (long long)n);
    ck_assert_int_eq(wharf_frame_next(&f, big, n - 1, NULL, NULL, NULL), 0);
    big[n - 1] = 'a';
    ck_assert_int_eq(wharf_frame_next(&f, big, n - 1, NULL, NULL, NULL), 0);
    ck_assert_int_eq(wharf_frame_next(&f, big, n, NULL, NULL, NULL), -EMSGSIZE);
    big[n] = '\n';
    ck_assert_int_eq(wharf_frame_next(&f, big, n + 1, NULL, NULL, NULL), -EMSGSIZE);
    free(big);
}
END_TEST

START_TEST(test_line_crlf_only)
{
    ck_reject(&crlf_f, "ab\n", 3, -EINVAL, "bare LF in a CRLF line", NULL);
    ck_reject(&crlf_f, "\n", 1, -EINVAL, "bare LF in a CRLF line", NULL);
    ck_reject(&crlf_f, "a\rb\n", 4, -EINVAL, "bare LF in a CRLF line", NULL);
    ck_reject(&crlf_f, "ab\n\r\n", 5, -EINVAL, "bare LF in a CRLF line", NULL);
    /* the first line is whole; the second is malformed */
    ck_assert_int_eq(wharf_frame_next(&crlf_f, "a\r\nb\n", 5, NULL, NULL, NULL), 3);
    ck_reject(&crlf_f, "b\n", 2, -EINVAL, "bare LF in a CRLF line", NULL);
    /* the same without crlf_only is fine */
    CHECK_MSG(&line_f, "ab\n", "ab", NULL, NULL);
}
END_TEST

START_TEST(test_result_cleared)
{
    struct wharf_frame fr;
    memset(&fr, 0x5a, sizeof fr);
    const char *why = "unset";
    ck_assert_int_eq(wharf_frame_next(&line_f, "abc", 3, &fr, &why, NULL), 0);
    ck_assert_ptr_null(why);
    ck_assert_ptr_null(fr.data);
    ck_assert_ptr_null(fr.payload);
    ck_assert_ptr_null(fr.header);
    ck_assert_uint_eq(fr.len + fr.payload_len + fr.header_len, 0);
    memset(&fr, 0x5a, sizeof fr);
    ck_assert_int_eq(wharf_frame_next(&crlf_f, "a\n", 2, &fr, &why, NULL), -EINVAL);
    ck_assert_ptr_null(fr.data);
    ck_assert_ptr_null(fr.header);
    /* fr and reason may be NULL; empty input (even NULL) needs more */
    ck_assert_int_eq(wharf_frame_next(&crlf_f, "a\n", 2, NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(wharf_frame_next(&line_f, NULL, 0, NULL, NULL, NULL), 0);
    struct wharf_framing lf = {.kind = WHARF_FRAME_LENGTH, .width = 4};
    ck_assert_int_eq(wharf_frame_next(&lf, NULL, 0, NULL, NULL, NULL), 0);
    ck_assert_int_eq(wharf_frame_next(&mc_f, NULL, 0, NULL, NULL, NULL), 0);
    /* reason is also set for -EMSGSIZE */
    struct wharf_framing small = {.kind = WHARF_FRAME_LINE, .max_frame = 2};
    why = NULL;
    ck_assert_int_eq(wharf_frame_next(&small, "abc", 3, NULL, &why, NULL), -EMSGSIZE);
    ck_assert_ptr_nonnull(why);
    /* an unknown kind is a bad framing */
    struct wharf_framing bogus = {.kind = (enum wharf_frame_kind)42};
    ck_reject(&bogus, "a\n", 2, -EINVAL, NULL, NULL);
}
END_TEST

/* ---- LENGTH ---------------------------------------------------------------- */

/* Writes the prefix for value v (width w, f's order) into out. */
static void put_prefix(const struct wharf_framing *f, uint64_t v, unsigned char *out)
{
    for (unsigned i = 0; i < f->width; i++) {
        unsigned shift = f->little_endian ? 8 * i : 8 * (f->width - 1 - i);
        out[i] = (unsigned char)(v >> shift);
    }
}

/* Builds a message with payload p[0..n) into out; returns its length. */
static size_t build_length_msg(const struct wharf_framing *f, const char *p, size_t n,
                               unsigned char *out)
{
    put_prefix(f, f->length_includes_prefix ? n + f->width : n, out);
    memcpy(out + f->width, p, n);
    return f->width + n;
}

START_TEST(test_length_widths)
{
    static const unsigned widths[] = {1, 2, 4, 8};
    for (size_t wi = 0; wi < 4; wi++)
        for (int le = 0; le < 2; le++)
            for (int inc = 0; inc < 2; inc++) {
                struct wharf_framing f = {
                    .kind = WHARF_FRAME_LENGTH, .width = widths[wi],
                    .little_endian = le, .length_includes_prefix = inc,
                };
                unsigned char m[64];
                size_t n = build_length_msg(&f, "hello", 5, m);
                check_message(&f, m, n, "hello", 5, NULL, NULL);
                n = build_length_msg(&f, "", 0, m);
                check_message(&f, m, n, "", 0, NULL, NULL);
                n = build_length_msg(&f, "a\0\n\r\xff", 5, m);
                check_message(&f, m, n, "a\0\n\r\xff", 5, NULL, NULL);

                /* a stream of three, one of them empty */
                char stream[128];
                size_t sl = 0;
                sl += build_length_msg(&f, "abc", 3, (unsigned char *)stream + sl);
                sl += build_length_msg(&f, "", 0, (unsigned char *)stream + sl);
                sl += build_length_msg(&f, "\n\r\n", 3, (unsigned char *)stream + sl);
                check_stream(&f, stream, sl, "[abc][][\n\r\n]", 12);
            }
}
END_TEST

START_TEST(test_length_byte_order)
{
    /* 0x0102 = 258 big endian, 0x0201 = 513 little endian */
    struct wharf_framing be = {.kind = WHARF_FRAME_LENGTH, .width = 2, .max_frame = 1000};
    struct wharf_framing le = be;
    le.little_endian = true;
    unsigned char m[600];
    memset(m, 'x', sizeof m);
    m[0] = 1;
    m[1] = 2;
    ck_assert_int_eq(wharf_frame_next(&be, m, sizeof m, NULL, NULL, NULL), 2 + 258);
    ck_assert_int_eq(wharf_frame_next(&le, m, sizeof m, NULL, NULL, NULL), 2 + 513);
    /* 4 bytes: 0x00000105 */
    struct wharf_framing be4 = {.kind = WHARF_FRAME_LENGTH, .width = 4, .max_frame = 1000};
    unsigned char m4[600] = {0, 0, 1, 5};
    ck_assert_int_eq(wharf_frame_next(&be4, m4, sizeof m4, NULL, NULL, NULL), 4 + 261);
    be4.little_endian = true;
    unsigned char l4[600] = {5, 1, 0, 0};
    ck_assert_int_eq(wharf_frame_next(&be4, l4, sizeof l4, NULL, NULL, NULL), 4 + 261);
    /* 8 bytes */
    struct wharf_framing be8 = {.kind = WHARF_FRAME_LENGTH, .width = 8, .max_frame = 1000};
    unsigned char m8[600] = {0, 0, 0, 0, 0, 0, 1, 5};
    ck_assert_int_eq(wharf_frame_next(&be8, m8, sizeof m8, NULL, NULL, NULL), 8 + 261);
    be8.little_endian = true;
    unsigned char l8[600] = {5, 1, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(wharf_frame_next(&be8, l8, sizeof l8, NULL, NULL, NULL), 8 + 261);
}
END_TEST

START_TEST(test_length_includes_prefix)
{
    struct wharf_framing f = {
        .kind = WHARF_FRAME_LENGTH, .width = 2, .length_includes_prefix = true,
    };
    CHECK_MSG(&f, "\0\2", "", NULL, NULL);
    CHECK_MSG(&f, "\0\5abc", "abc", NULL, NULL);
    ck_reject(&f, "\0\1", 2, -EINVAL, "length smaller than its prefix", NULL);
    ck_reject(&f, "\0\0", 2, -EINVAL, "length smaller than its prefix", NULL);
    ck_reject(&f, "\0\1abc", 5, -EINVAL, "length smaller than its prefix", NULL);
    ck_assert_int_eq(wharf_frame_next(&f, "\0", 1, NULL, NULL, NULL), 0);
    f.little_endian = true;
    CHECK_MSG(&f, "\5\0abc", "abc", NULL, NULL);
    ck_reject(&f, "\1\0", 2, -EINVAL, "length smaller than its prefix", NULL);
    f.width = 1;
    CHECK_MSG(&f, "\1", "", NULL, NULL);
    ck_reject(&f, "\0", 1, -EINVAL, "length smaller than its prefix", NULL);
    f.width = 8;
    f.little_endian = false;
    ck_reject(&f, "\0\0\0\0\0\0\0\7", 8, -EINVAL, "length smaller than its prefix", NULL);
    CHECK_MSG(&f, "\0\0\0\0\0\0\0\10", "", NULL, NULL);
    f.little_endian = true;
    ck_reject(&f, "\7\0\0\0\0\0\0\0", 8, -EINVAL, "length smaller than its prefix", NULL);
    CHECK_MSG(&f, "\11\0\0\0\0\0\0\0x", "x", NULL, NULL);
}
END_TEST

START_TEST(test_length_bad_width)
{
    static const unsigned bad[] = {0, 3, 5, 6, 7, 9, 16, UINT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wharf_framing f = {.kind = WHARF_FRAME_LENGTH, .width = bad[i]};
        static const unsigned char zeros[17];
        ck_reject(&f, zeros, sizeof zeros, -EINVAL, "bad length width", NULL);
        ck_reject(&f, "", 0, -EINVAL, "bad length width", NULL);
    }
}
END_TEST

START_TEST(test_length_max_frame)
{
    struct wharf_framing f = {.kind = WHARF_FRAME_LENGTH, .width = 2, .max_frame = 10};
    CHECK_MSG(&f, "\0\10abcdefgh", "abcdefgh", NULL, NULL);  /* 10: at the limit */
    ck_reject(&f, "\0\11", 2, -EMSGSIZE, NULL, NULL);        /* 11: at the prefix */
    /* one byte of a big-endian prefix can be enough */
    ck_reject(&f, "\1", 1, -EMSGSIZE, NULL, NULL);
    ck_assert_int_eq(wharf_frame_next(&f, "\0", 1, NULL, NULL, NULL), 0);
    f.little_endian = true;
    CHECK_MSG(&f, "\10\0abcdefgh", "abcdefgh", NULL, NULL);
    ck_reject(&f, "\11", 1, -EMSGSIZE, NULL, NULL);          /* low byte alone: >= 11 */
    ck_assert_int_eq(wharf_frame_next(&f, "\10", 1, NULL, NULL, NULL), 0);
    ck_reject(&f, "\10\1", 2, -EMSGSIZE, NULL, NULL);
    /* prefix included */
    f.length_includes_prefix = true;
    f.little_endian = false;
    CHECK_MSG(&f, "\0\12abcdefgh", "abcdefgh", NULL, NULL);
    ck_reject(&f, "\0\13", 2, -EMSGSIZE, NULL, NULL);
    ck_reject(&f, "\1", 1, -EMSGSIZE, NULL, NULL);
    /* max_frame below the width: every message is oversize (with includes,
     * a length below the width is still malformed) */
    struct wharf_framing g = {.kind = WHARF_FRAME_LENGTH, .width = 4, .max_frame = 2};
    ck_reject(&g, "\0", 1, -EMSGSIZE, NULL, NULL);
    ck_assert_int_eq(wharf_frame_next(&g, "", 0, NULL, NULL, NULL), 0);
    g.length_includes_prefix = true;
    ck_assert_int_eq(wharf_frame_next(&g, "\0\0\0", 3, NULL, NULL, NULL), 0);
    ck_reject(&g, "\0\0\0\3", 4, -EINVAL, "length smaller than its prefix", NULL);
    ck_reject(&g, "\0\0\0\4", 4, -EMSGSIZE, NULL, NULL);
    /* 0 means 65536 */
    struct wharf_framing d = {.kind = WHARF_FRAME_LENGTH, .width = 4};
    unsigned char pre[4];
    put_prefix(&d, 65536 - 4, pre);
    ck_assert_int_eq(wharf_frame_next(&d, pre, 4, NULL, NULL, NULL), 0);
    put_prefix(&d, 65536 - 3, pre);
    ck_reject(&d, pre, 4, -EMSGSIZE, NULL, NULL);
    put_prefix(&d, 65536, pre);
    ck_reject(&d, pre, 2, -EMSGSIZE, NULL, NULL); /* 0x00 0x01: >= 65536 + 4 */
}
END_TEST

START_TEST(test_length_huge)
{
    static const uint64_t huge[] = {
        UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 7, UINT64_MAX - 8, (uint64_t)1 << 63,
        ((uint64_t)1 << 63) + 1, (uint64_t)SIZE_MAX,
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
        for (int le = 0; le < 2; le++)
            for (int inc = 0; inc < 2; inc++)
                for (int maxed = 0; maxed < 2; maxed++) {
                    struct wharf_framing f = {
                        .kind = WHARF_FRAME_LENGTH, .width = 8, .little_endian = le,
                        .length_includes_prefix = inc, .max_frame = maxed ? SIZE_MAX : 0,
                    };
                    unsigned char m[16] = {0};
                    put_prefix(&f, huge[i], m);
                    ck_reject(&f, m, 8, -EMSGSIZE, NULL, NULL);
                    ck_reject(&f, m, 16, -EMSGSIZE, NULL, NULL);
                }
    /* with no practical limit, a big but representable length waits */
    struct wharf_framing f = {.kind = WHARF_FRAME_LENGTH, .width = 8, .max_frame = SIZE_MAX};
    unsigned char m[8];
    put_prefix(&f, (uint64_t)1 << 62, m);
    ck_assert_int_eq(wharf_frame_next(&f, m, 8, NULL, NULL, NULL), 0);
}
END_TEST

/* ---- HEADER_BODY ----------------------------------------------------------- */

START_TEST(test_hb_memcached)
{
    CHECK_MSG(&mc_f, "set k 0 0 5\r\nhello\r\n", "hello", "set k 0 0 5", NULL);
    CHECK_MSG(&mc_f, "get k\r\n", "", "get k", NULL);
    CHECK_MSG(&mc_f, "get k\n", "", "get k", NULL);  /* a bare LF header */
    CHECK_MSG(&mc_f, "set k 0 0 5\nhello\r\n", "hello", "set k 0 0 5", NULL);
    CHECK_MSG(&mc_f, "set k 0 0 4\r\na\r\nb\r\n", "a\r\nb", "set k 0 0 4", NULL);
    CHECK_MSG(&mc_f, "set k 0 0 2\r\n\r\n\r\n", "\r\n", "set k 0 0 2", NULL);
    CHECK_MSG(&mc_f, "set k 0 0 0\r\n\r\n", "", "set k 0 0 0", NULL);
    CHECK_MSG(&mc_f, "set k 0 0 3\r\n\0\n\0\r\n", "\0\n\0", "set k 0 0 3", NULL);
    /* header-only: payload_len 0, payload right after the header */
    struct wharf_frame fr;
    const char msg[] = "get k\r\nset";
    ck_assert_int_eq(wharf_frame_next(&mc_f, msg, sizeof msg - 1, &fr, NULL, NULL), 7);
    ck_assert_ptr_eq(fr.payload, msg + 7);
    ck_assert_ptr_eq(fr.header, msg);
}
END_TEST

START_TEST(test_hb_malformed)
{
    ck_reject(&mc_f, "bogus\r\n", 7, -EINVAL, "malformed header", NULL);
    ck_reject(&mc_f, "bogus\r\nmore", 11, -EINVAL, "malformed header", NULL);
    ck_reject(&mc_f, "\r\n", 2, -EINVAL, "malformed header", NULL);
    ck_reject(&mc_f, "set k 0 0 x\r\n", 13, -EINVAL, "malformed header", NULL);
    /* wrong trailer: refused at the first wrong byte */
    ck_reject(&mc_f, "set k 0 0 5\r\nhelloXY", 20, -EINVAL, "missing CRLF after the body", NULL);
    ck_reject(&mc_f, "set k 0 0 5\r\nhelloX", 19, -EINVAL, "missing CRLF after the body", NULL);
    ck_reject(&mc_f, "set k 0 0 5\r\nhello\n", 19, -EINVAL, "missing CRLF after the body", NULL);
    ck_reject(&mc_f, "set k 0 0 5\r\nhello\rX", 20, -EINVAL, "missing CRLF after the body", NULL);
    ck_reject(&mc_f, "set k 0 0 5\r\nhello\n\r", 20, -EINVAL, "missing CRLF after the body", NULL);
    ck_reject(&mc_f, "set k 0 0 4\r\nhello\r\n", 20, -EINVAL, "missing CRLF after the body", NULL);
    ck_assert_int_eq(wharf_frame_next(&mc_f, "set k 0 0 5\r\nhello\r", 19, NULL, NULL, NULL), 0);
    /* a body of the wrong size is only seen at the trailer */
    ck_assert_int_eq(wharf_frame_next(&mc_f, "set k 0 0 6\r\nhello\r", 19, NULL, NULL, NULL), 0);
    ck_reject(&mc_f, "set k 0 0 6\r\nhello\r\n", 20, -EINVAL, "missing CRLF after the body", NULL);
}
END_TEST

START_TEST(test_hb_config)
{
    struct wharf_framing f = {.kind = WHARF_FRAME_HEADER_BODY, .trailer = 2};
    ck_reject(&f, "get k\r\n", 7, -EINVAL, NULL, NULL);
    ck_reject(&f, "", 0, -EINVAL, NULL, NULL);
    f.body_length = mc_body_length;
    f.trailer = 1;
    ck_reject(&f, "get k\r\n", 7, -EINVAL, NULL, NULL);
    f.trailer = 3;
    ck_reject(&f, "get k\r\n", 7, -EINVAL, NULL, NULL);
}
END_TEST

START_TEST(test_hb_trailer_zero)
{
    struct wharf_framing f = {.kind = WHARF_FRAME_HEADER_BODY, .body_length = mc_body_length};
    CHECK_MSG(&f, "set k 0 0 5\r\nhello", "hello", "set k 0 0 5", NULL);
    CHECK_MSG(&f, "set k 0 0 0\r\n", "", "set k 0 0 0", NULL);
    CHECK_MSG(&f, "get k\r\n", "", "get k", NULL);
    CHECK_STREAM(&f, "set a 0 0 3\r\nxyzget b\r\nset c 0 0 1\n\n",
                 "[set a 0 0 3|xyz][get b|][set c 0 0 1|\n]");
}
END_TEST

START_TEST(test_hb_redis)
{
    CHECK_MSG(&redis_f, "$5\r\nhello\r\n", "hello", "$5", NULL);
    CHECK_MSG(&redis_f, "$0\r\n\r\n", "", "$0", NULL);
    CHECK_MSG(&redis_f, "$-1\r\n", "", "$-1", NULL);
    CHECK_MSG(&redis_f, "+OK\r\n", "", "+OK", NULL);
    CHECK_MSG(&redis_f, "$4\r\n\r\n\r\n\r\n", "\r\n\r\n", "$4", NULL);
    ck_reject(&redis_f, "*2\r\n", 4, -EINVAL, "malformed header", NULL);
    ck_reject(&redis_f, "$-2\r\n", 5, -EINVAL, "malformed header", NULL);
    CHECK_STREAM(&redis_f, "+OK\r\n$3\r\nfoo\r\n$-1\r\n:12\r\n$0\r\n\r\n",
                 "[+OK|][$3|foo][$-1|][:12|][$0|]");
}
END_TEST

START_TEST(test_hb_stream)
{
    CHECK_STREAM(&mc_f,
                 "get a\r\nset b 0 0 3\r\na\nb\r\nget c\nset d 0 0 0\r\n\r\n"
                 "set e 0 0 4\r\n\r\n\r\n\r\ndelete e\r\n",
                 "[get a|][set b 0 0 3|a\nb][get c|][set d 0 0 0|][set e 0 0 4|\r\n\r\n]"
                 "[delete e|]");
}
END_TEST

START_TEST(test_hb_max_frame)
{
    const char msg[] = "set k 0 0 5\r\nhello\r\n"; /* 20 bytes */
    struct wharf_framing f = mc_f;
    f.max_frame = 20;
    CHECK_MSG(&f, msg, "hello", "set k 0 0 5", NULL);
    f.max_frame = 19; /* refused as soon as the header is whole */
    ck_reject(&f, msg, 13, -EMSGSIZE, NULL, NULL);
    ck_assert_int_eq(wharf_frame_next(&f, msg, 12, NULL, NULL, NULL), 0);
    f.max_frame = 18; /* the body fits, the trailer does not */
    ck_reject(&f, msg, 13, -EMSGSIZE, NULL, NULL);
    /* header-only at the limit, and one over (no LF within max_frame) */
    f.max_frame = 7;
    CHECK_MSG(&f, "get k\r\n", "", "get k", NULL);
    ck_reject(&f, "get kk\r\n", 8, -EMSGSIZE, NULL, NULL);
    ck_reject(&f, "get kk\r", 7, -EMSGSIZE, NULL, NULL);
    /* the trailer alone does not fit after the header */
    f.max_frame = 14;
    ck_reject(&f, "set k 0 0 0\r\n", 13, -EMSGSIZE, NULL, NULL);
    f.max_frame = 15;
    CHECK_MSG(&f, "set k 0 0 0\r\n\r\n", "", "set k 0 0 0", NULL);
    /* huge body lengths never wrap */
    static const long long huge[] = {LLONG_MAX, LLONG_MAX - 1, LLONG_MAX - 13, 1LL << 62};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
        for (int maxed = 0; maxed < 2; maxed++)
            for (size_t t = 0; t <= 2; t += 2) {
                long long n = huge[i];
                struct wharf_framing g = {
                    .kind = WHARF_FRAME_HEADER_BODY, .body_length = fixed_body_length,
                    .trailer = t, .max_frame = maxed ? SIZE_MAX : 0,
                };
                long long r = wharf_frame_next(&g, "x\r\nabc", 6, NULL, NULL, &n);
                if (maxed && n <= LLONG_MAX - 3 - (long long)t)
                    ck_assert_int_eq(r, 0);
                else
                    ck_assert_int_eq(r, -EMSGSIZE);
            }
    ck_reject(&mc_f, "set k 0 0 9223372036854775807\r\n", 31, -EMSGSIZE, NULL, NULL);
}
END_TEST

START_TEST(test_hb_arg)
{
    int calls = 0;
    struct wharf_framing cf = mc_f;
    cf.body_length = counting_body_length;
    /* no header line yet: body_length is not called */
    ck_assert_int_eq(wharf_frame_next(&cf, "set k 0", 7, NULL, NULL, &calls), 0);
    ck_assert_int_eq(calls, 0);
    ck_assert_int_eq(wharf_frame_next(&cf, "get k\r\n", 7, NULL, NULL, &calls), 7);
    ck_assert_int_eq(calls, 1);
    /* the arg reaches body_length */
    struct wharf_framing f = {
        .kind = WHARF_FRAME_HEADER_BODY, .body_length = fixed_body_length,
    };
    long long n = 2;
    ck_assert_int_eq(wharf_frame_next(&f, "h\nab", 4, NULL, NULL, &n), 4);
    n = -1;
    ck_assert_int_eq(wharf_frame_next(&f, "h\nab", 4, NULL, NULL, &n), 2);
    n = -2;
    ck_reject(&f, "h\nab", 4, -EINVAL, "malformed header", &n);
    n = -100;
    ck_reject(&f, "h\nab", 4, -EINVAL, "malformed header", &n);
}
END_TEST

/* ---- wharf_frames ---------------------------------------------------------- */

/* Runs wharf_frames once on s (exact copy); returns what it consumed. */
static size_t frames_once(wharf_conn *c, const struct wharf_framing *f, const char *s, size_t n,
                          struct sink *sk)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    size_t used = wharf_frames(c, f, copy, n, on_frame, sk);
    free(copy);
    return used;
}

#define SINK_IS(sk, lit) \
    ck_assert_msg((sk).len == sizeof(lit) - 1 && memcmp((sk).log, (lit), (sk).len) == 0, \
                  "got \"%.*s\", want \"%s\"", (int)(sk).len, (sk).log, (lit))

/* A message whose post held the connection is the last one delivered. */
START_TEST(test_frames_stop_when_held)
{
    struct wharf_conn c = {.hold_at = 2};
    struct sink sk = {0};
    const char s[] = "a\nbb\nccc\nd\n";
    ck_assert_uint_eq(wharf_frames(&c, &line_f, s, sizeof s - 1, on_frame, &sk), 5);
    SINK_IS(sk, "[a][bb]");
    ck_assert_int_eq(c.closes, 0);
}
END_TEST

START_TEST(test_frames_all)
{
    struct wharf_conn c = {0};
    struct sink sk = {0};
    const char s[] = "a\nbb\r\n\nccc";
    ck_assert_uint_eq(frames_once(&c, &line_f, s, sizeof s - 1, &sk), 7);
    SINK_IS(sk, "[a][bb][]");
    ck_assert_int_eq(c.closes, 0);
    ck_assert_int_eq(c.logs, 0);
    /* nothing whole, nothing at all */
    struct sink sk2 = {0};
    ck_assert_uint_eq(frames_once(&c, &line_f, "ccc", 3, &sk2), 0);
    ck_assert_uint_eq(frames_once(&c, &line_f, "", 0, &sk2), 0);
    ck_assert_uint_eq(wharf_frames(&c, &line_f, NULL, 0, on_frame, &sk2), 0);
    ck_assert_int_eq(sk2.frames, 0);
    ck_assert_int_eq(c.closes, 0);
    /* its arg reaches body_length as well as on_frame */
    struct wharf_framing h = {
        .kind = WHARF_FRAME_HEADER_BODY, .body_length = sink_body_length, .trailer = 2,
    };
    struct sink sk3 = {0};
    const char s3[] = "get a\r\nset b 0 0 1\r\nx\r\nset";
    ck_assert_uint_eq(frames_once(&c, &h, s3, sizeof s3 - 1, &sk3), 23);
    SINK_IS(sk3, "[get a|][set b 0 0 1|x]");
    ck_assert_int_eq(sk3.body_calls, 2);
    ck_assert_int_eq(c.closes, 0);
}
END_TEST

START_TEST(test_frames_stop)
{
    const char s[] = "a\nbb\nccc\nd\n";
    for (int stop = 1; stop <= 4; stop++) {
        struct wharf_conn c = {0};
        struct sink sk = {.stop_at = stop};
        static const size_t used[] = {0, 2, 5, 9, 11};
        ck_assert_uint_eq(frames_once(&c, &line_f, s, sizeof s - 1, &sk), used[stop]);
        ck_assert_int_eq(sk.frames, stop);
        ck_assert_int_eq(c.closes, 0);
    }
    /* a stream whose handler stops after every message still sees them all */
    struct wharf_conn c = {0};
    struct sink sk = {.stop_at = 1};
    struct feed fd = {0};
    const char s2[] = "get a\r\nget b\r\nset c 0 0 1\r\nx\r\nget";
    feed_chunk(&fd, &c, &mc_f, s2, sizeof s2 - 1, &sk);
    SINK_IS(sk, "[get a|][get b|][set c 0 0 1|x]");
    ck_assert_uint_eq(fd.len, 3);
    free(fd.kept);
}
END_TEST

START_TEST(test_frames_limit)
{
    struct wharf_framing f = {.kind = WHARF_FRAME_LINE, .max_frame = 8};
    struct wharf_conn c = {0};
    struct sink sk = {0};
    const char s[] = "a\nbb\r\n123456789\nlater\n";
    ck_assert_uint_eq(frames_once(&c, &f, s, sizeof s - 1, &sk), 6);
    SINK_IS(sk, "[a][bb]");
    ck_assert_int_eq(c.closes, 1);
    ck_assert_int_eq(c.reason, WHARF_CLOSE_LIMIT);
    ck_assert_int_eq(c.logs, 1);
    ck_assert_int_eq(c.level, WHARF_LOG_INFO);
    ck_assert_str_eq(c.msg, "message longer than 8 bytes");
    /* detected before the line ends */
    struct wharf_conn c2 = {0};
    struct sink sk2 = {0};
    ck_assert_uint_eq(frames_once(&c2, &f, "a\n12345678", 10, &sk2), 2);
    ck_assert_int_eq(c2.reason, WHARF_CLOSE_LIMIT);
    /* the default limit is logged as 65536 */
    struct wharf_framing l = {.kind = WHARF_FRAME_LENGTH, .width = 4};
    struct wharf_conn c3 = {0};
    struct sink sk3 = {0};
    ck_assert_uint_eq(frames_once(&c3, &l, "\0\0\0\2hi\0\1\0\0", 10, &sk3), 6);
    SINK_IS(sk3, "[hi]");
    ck_assert_int_eq(c3.closes, 1);
    ck_assert_int_eq(c3.reason, WHARF_CLOSE_LIMIT);
    ck_assert_str_eq(c3.msg, "message longer than 65536 bytes");
    /* HEADER_BODY */
    struct wharf_framing h = mc_f;
    h.max_frame = 20;
    struct wharf_conn c4 = {0};
    struct sink sk4 = {0};
    ck_assert_uint_eq(frames_once(&c4, &h, "get a\r\nset b 0 0 6\r\n", 20, &sk4), 7);
    SINK_IS(sk4, "[get a|]");
    ck_assert_int_eq(c4.reason, WHARF_CLOSE_LIMIT);
    ck_assert_str_eq(c4.msg, "message longer than 20 bytes");
}
END_TEST

START_TEST(test_frames_error)
{
    struct wharf_conn c = {0};
    struct sink sk = {0};
    const char s1[] = "a\r\n\r\nb\nc\r\n";
    ck_assert_uint_eq(frames_once(&c, &crlf_f, s1, sizeof s1 - 1, &sk), 5);
    SINK_IS(sk, "[a][]");
    ck_assert_int_eq(c.closes, 1);
    ck_assert_int_eq(c.reason, WHARF_CLOSE_ERROR);
    ck_assert_int_eq(c.logs, 1);
    ck_assert_ptr_nonnull(strstr(c.msg, "bare LF in a CRLF line"));

    struct wharf_conn c2 = {0};
    struct sink sk2 = {0};
    const char s2[] = "set a 0 0 1\r\nx\r\nset b 0 0 1\r\nyZZ";
    ck_assert_uint_eq(frames_once(&c2, &mc_f, s2, sizeof s2 - 1, &sk2), 16);
    SINK_IS(sk2, "[set a 0 0 1|x]");
    ck_assert_int_eq(c2.reason, WHARF_CLOSE_ERROR);
    ck_assert_ptr_nonnull(strstr(c2.msg, "missing CRLF after the body"));

    struct wharf_conn c3 = {0};
    struct sink sk3 = {0};
    ck_assert_uint_eq(frames_once(&c3, &mc_f, "get a\r\nbogus\r\n", 14, &sk3), 7);
    ck_assert_int_eq(c3.reason, WHARF_CLOSE_ERROR);
    ck_assert_ptr_nonnull(strstr(c3.msg, "malformed header"));

    struct wharf_framing l = {.kind = WHARF_FRAME_LENGTH, .width = 1,
                              .length_includes_prefix = true};
    struct wharf_conn c4 = {0};
    struct sink sk4 = {0};
    ck_assert_uint_eq(frames_once(&c4, &l, "\2a\0", 3, &sk4), 2);
    SINK_IS(sk4, "[a]");
    ck_assert_int_eq(c4.reason, WHARF_CLOSE_ERROR);
    ck_assert_ptr_nonnull(strstr(c4.msg, "length smaller than its prefix"));
}
END_TEST

START_TEST(test_frames_bad_framing)
{
    struct wharf_framing f = {.kind = WHARF_FRAME_LENGTH, .width = 3};
    struct wharf_conn c = {0};
    struct sink sk = {0};
    ck_assert_uint_eq(frames_once(&c, &f, "\0\0\0", 3, &sk), 0);
    ck_assert_int_eq(sk.frames, 0);
    ck_assert_int_eq(c.closes, 1);
    ck_assert_int_eq(c.reason, WHARF_CLOSE_ERROR);
    ck_assert_int_eq(c.level, WHARF_LOG_ERROR);
    ck_assert_ptr_nonnull(strstr(c.msg, "bad length width"));

    struct wharf_framing h = {.kind = WHARF_FRAME_HEADER_BODY};
    struct wharf_conn c2 = {0};
    ck_assert_uint_eq(frames_once(&c2, &h, "get a\r\n", 7, &sk), 0);
    ck_assert_int_eq(c2.reason, WHARF_CLOSE_ERROR);
    ck_assert_int_eq(sk.frames, 0);
}
END_TEST

static Suite *framing_suite(void)
{
    Suite *s = suite_create("framing");

    TCase *line = tcase_create("line");
    tcase_add_test(line, test_line_valid);
    tcase_add_test(line, test_line_several);
    tcase_add_test(line, test_line_stream);
    tcase_add_test(line, test_line_max_frame);
    tcase_add_test(line, test_line_crlf_only);
    tcase_add_test(line, test_result_cleared);
    suite_add_tcase(s, line);

    TCase *length = tcase_create("length");
    tcase_set_timeout(length, 60);
    tcase_add_test(length, test_length_widths);
    tcase_add_test(length, test_length_byte_order);
    tcase_add_test(length, test_length_includes_prefix);
    tcase_add_test(length, test_length_bad_width);
    tcase_add_test(length, test_length_max_frame);
    tcase_add_test(length, test_length_huge);
    suite_add_tcase(s, length);

    TCase *hb = tcase_create("header_body");
    tcase_set_timeout(hb, 60);
    tcase_add_test(hb, test_hb_memcached);
    tcase_add_test(hb, test_hb_malformed);
    tcase_add_test(hb, test_hb_config);
    tcase_add_test(hb, test_hb_trailer_zero);
    tcase_add_test(hb, test_hb_redis);
    tcase_add_test(hb, test_hb_stream);
    tcase_add_test(hb, test_hb_max_frame);
    tcase_add_test(hb, test_hb_arg);
    suite_add_tcase(s, hb);

    TCase *frames = tcase_create("frames");
    tcase_add_test(frames, test_frames_all);
    tcase_add_test(frames, test_frames_stop);
    tcase_add_test(frames, test_frames_limit);
    tcase_add_test(frames, test_frames_stop_when_held);
    tcase_add_test(frames, test_frames_error);
    tcase_add_test(frames, test_frames_bad_framing);
    suite_add_tcase(s, frames);
    return s;
}

int main(void)
{
    return check_run(framing_suite());
}
