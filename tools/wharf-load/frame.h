/* frame.h - reply framing and reply checks for request/response templates.
 *
 * Framing is a pure, incremental parser: the caller keeps the bytes of the reply being
 * received at the start of a buffer and calls frame_feed() each time more have arrived; the
 * state remembers how far it got, so nothing is scanned twice (except "regex" framing,
 * bounded by max_reply). It answers "complete reply of N bytes", "need more", or an error
 * (too long, garbage). Kinds (the --frame syntax):
 *   delim:STR                   the reply ends with STR (escapes allowed: delim:END\r\n)
 *   fixed:N                     exactly N bytes
 *   len:OFF:WIDTH:ENDIAN[:COUNTS]  a WIDTH (1, 2, 4, 8) byte unsigned length at offset OFF,
 *                               ENDIAN be or le; COUNTS says what it counts: all (the whole
 *                               reply, default), after (the bytes after the field) or +N
 *                               (the whole reply is the value plus N)
 *   line:FIELD[:EXTRA]          a first line (ending in \n) whose FIELD-th (1-based) blank-
 *                               separated word announces N more bytes, plus EXTRA (e.g.
 *                               "$5" -> 5, leading non-digits skipped); a line without that
 *                               word, or with a negative number, is the whole reply
 *   regex:RE                    the reply ends where the first match of the POSIX extended
 *                               regular expression RE ends
 *   memcache                    memcached text protocol replies (VALUE ... END, STORED, ...)
 *   http                        HTTP/1.1 responses: status line, headers, Content-Length or
 *                               chunked body
 *   resp                        one RESP (Redis) value: +simple, -error (status 500),
 *                               :integer, $bulk (or $-1), *array of values (nested), and the
 *                               RESP3 scalars _ , # (status 200 unless an error is in it)
 *
 * Checks (--expect): literal:STR (the whole reply), prefix:STR, regex:RE (matched anywhere
 * in the reply), status:LO-HI (the reply status, for memcache, http and resp framing).
 */
#ifndef WLOAD_FRAME_H
#define WLOAD_FRAME_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_DEFAULT_MAX_REPLY (1u << 20)
#define FRAME_MAX_DELIM 64

enum frame_kind { FK_DELIM, FK_FIXED, FK_LEN, FK_LINE, FK_REGEX, FK_MEMCACHE, FK_HTTP, FK_RESP };
enum frame_counts { FC_ALL, FC_AFTER, FC_PLUS };

struct frame_spec {
    enum frame_kind kind;
    uint8_t delim[FRAME_MAX_DELIM];
    uint32_t delim_len;
    uint32_t fixed;
    uint32_t len_off, len_width;
    bool len_be;
    enum frame_counts len_counts;
    uint32_t len_plus;
    unsigned line_field;
    uint32_t line_extra;
    regex_t re;
    bool re_set;
    bool http_no_body; /* http: the request was HEAD, so no response has a body */
    uint32_t max_reply;
};

/* What the memcache and http reply parsers expect at frame_state.pos. */
enum frame_phase {
    FP_START,           /* memcache: the first line; http: the headers */
    FP_MC_VALUE,        /* memcache: value data up to `need` */
    FP_MC_AFTER_VALUE,  /* memcache: the line after a value */
    FP_HTTP_CHUNK_SIZE, /* http: a chunk-size line */
    FP_HTTP_TRAILERS,   /* http: trailers until an empty line */
    FP_HTTP_CHUNK_DATA, /* http: chunk data up to `need` */
    FP_HTTP_BODY,       /* http: a body of known length up to `need` */
    FP_RESP_BULK,       /* resp: bulk string data and its \r\n up to `need` */
};

/* Progress on the reply being received; zero it (frame_reset) for each new reply. */
struct frame_state {
    size_t scanned; /* bytes already searched without finding the end */
    size_t pos;     /* memcache/http: start of the next unit (line, chunk) to parse */
    size_t need;    /* total length once known (0: unknown) */
    enum frame_phase phase; /* memcache/http: what is expected at pos */
    int status;     /* http status code; memcache, resp: 200 normal reply, 500 error */
    uint64_t items; /* resp: values still to come (nested arrays add theirs) */
};

enum frame_rc { FRAME_NEED, FRAME_DONE, FRAME_TOO_LONG, FRAME_GARBAGE };

static inline void frame_reset(struct frame_state *st)
{
    st->scanned = st->pos = st->need = 0;
    st->phase = FP_START;
    st->status = 0;
    st->items = 0;
}

/* Parses a --frame argument into fs (max_reply set to the default). Returns 0, or -1 with a
 * message naming what is wrong. Free with frame_spec_free. */
int frame_parse(struct frame_spec *fs, const char *arg, char *err, size_t errlen);
void frame_spec_free(struct frame_spec *fs);

/* Looks at the len bytes received so far of the current reply (buf[0] is its first byte).
 * FRAME_DONE: the reply is the first *reply_len bytes. FRAME_NEED: call again with more.
 * FRAME_TOO_LONG / FRAME_GARBAGE: the stream cannot be framed (*why says how). */
enum frame_rc frame_feed(const struct frame_spec *fs, struct frame_state *st, const uint8_t *buf,
                         size_t len, size_t *reply_len, const char **why);

enum check_kind { CK_NONE, CK_LITERAL, CK_PREFIX, CK_REGEX, CK_STATUS };

struct frame_check {
    enum check_kind kind;
    uint8_t *lit;
    size_t lit_len;
    regex_t re;
    int lo, hi; /* CK_STATUS */
};

/* Parses an --expect argument. Returns 0, or -1 with a message. Free with frame_check_free. */
int frame_check_parse(struct frame_check *ck, const char *arg, char *err, size_t errlen);
void frame_check_free(struct frame_check *ck);

/* Whether a complete reply passes the check (status: frame_state.status after FRAME_DONE). */
bool frame_check_ok(const struct frame_check *ck, const uint8_t *reply, size_t len, int status);

#endif
