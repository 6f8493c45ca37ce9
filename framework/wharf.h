/*
 * wharf.h - the one header a wharf handler module includes.
 *
 * A handler module is a shared object that exports one symbol, `wharf_handler`
 * (use WHARF_HANDLER_EXPORT), describing its callbacks.  The framework owns
 * sockets, threads, buffers, timeouts and limits; the handler owns only its
 * protocol.  Connections and datagrams are opaque handles: a handler reaches
 * them only through the wharf_* functions below.
 *
 * Threads: every callback for a connection runs on the worker thread that owns
 * it, and the wharf_conn_* / wharf_send / wharf_close calls may only be made
 * from that thread, from inside a callback.  init and fini run on the thread
 * that starts and stops the server.  Callbacks must not block.
 *
 * Errors: functions that can fail return 0 on success and a negative errno
 * value on failure.  A call that failed has no effect.
 */
#ifndef WHARF_H
#define WHARF_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever wharf_handler or the meaning of a call changes. */
#define WHARF_ABI_VERSION 1u

/* The name of the descriptor symbol the loader looks up. */
#define WHARF_HANDLER_SYMBOL "wharf_handler"

/* Defines the exported descriptor: WHARF_HANDLER_EXPORT = { ... }; */
#define WHARF_HANDLER_EXPORT \
    __attribute__((visibility("default"))) const struct wharf_handler wharf_handler

typedef struct wharf_conn wharf_conn;       /* one TCP connection */
typedef struct wharf_dgram wharf_dgram;     /* one received UDP datagram */
typedef struct wharf_options wharf_options; /* a listener's "options" object */

/* Why a connection ended; passed to on_close and logged. */
enum wharf_close_reason {
    WHARF_CLOSE_EOF = 0,   /* the peer closed its side and all output was sent */
    WHARF_CLOSE_ERROR,     /* a socket error (reset, broken pipe, ...) */
    WHARF_CLOSE_TIMEOUT,   /* a timeout fired (see on_timeout) */
    WHARF_CLOSE_HANDLER,   /* the handler called wharf_close() */
    WHARF_CLOSE_LIMIT,     /* a limit was exceeded (input or output buffer cap) */
    WHARF_CLOSE_SHUTDOWN,  /* the server is stopping */
};

/* Returns a static lower-case name for a reason ("eof", "timeout", ...). */
const char *wharf_close_reason_name(enum wharf_close_reason reason);

/* The per-connection timers. */
enum wharf_timeout {
    WHARF_TIMEOUT_IDLE = 0, /* nothing received for this long (not counted while
                             * output is pending; counts from the later of the
                             * last byte received and the last write progress) */
    WHARF_TIMEOUT_WRITE,    /* output pending with no progress for this long */
    WHARF_TIMEOUT_LIFETIME, /* the connection has been open this long */
};

/* Returns a static name for a timer ("idle", "write", "lifetime"). */
const char *wharf_timeout_name(enum wharf_timeout kind);

/*
 * The descriptor a module exports.  Unused callbacks may be NULL, but a TCP
 * listener needs on_data and a UDP listener needs on_datagram.
 */
struct wharf_handler {
    uint32_t abi_version; /* must be WHARF_ABI_VERSION */
    const char *name;     /* short name, used in logs; required, non-empty */

    /*
     * Called once per listener before anything is bound.  `opts` is the
     * listener's "options" object (possibly empty); read it with the
     * wharf_options_* calls.  Store per-listener state in *listener_data.
     * err is never NULL and starts as "".
     * Return 0, or -1 after writing a one-line reason into err (errlen bytes):
     * the server then refuses to start and prints the reason with the config
     * file and JSON path.
     */
    int (*init)(const wharf_options *opts, void **listener_data, char *err, size_t errlen);
    /* Called once per listener at shutdown, after every connection closed. */
    void (*fini)(void *listener_data);

    /* TCP: a connection was accepted and is ready. */
    void (*on_open)(wharf_conn *c);
    /*
     * TCP: bytes arrived.  `data` is valid only during the call.  Return how
     * many bytes were consumed (0..len); unconsumed bytes are kept and offered
     * again, followed by new data, on the next call.  A connection whose kept
     * input reaches the listener's max_input is closed with WHARF_CLOSE_LIMIT.
     */
    size_t (*on_data)(wharf_conn *c, const void *data, size_t len);
    /* TCP: pending output fell below the low watermark after having been
     * above the high watermark (reading was paused meanwhile). */
    void (*on_drain)(wharf_conn *c);
    /* TCP: a timer fired.  The connection is closed with WHARF_CLOSE_TIMEOUT
     * right after this returns; a handler may still wharf_send() a last word. */
    void (*on_timeout)(wharf_conn *c, enum wharf_timeout kind);
    /* TCP: the connection is gone (called exactly once per on_open).  Free
     * per-connection data here; the handle is invalid after return. */
    void (*on_close)(wharf_conn *c, enum wharf_close_reason reason);

    /* UDP: one datagram arrived.  `data` is valid only during the call.
     * Reply with wharf_reply(). */
    void (*on_datagram)(wharf_dgram *d, const void *data, size_t len);
};

/* ---- options (only valid during init) ---------------------------------- */

/*
 * Each getter returns 0 and stores the value when `key` is present with the
 * right type, -ENOENT when the key is absent (out untouched), and -EINVAL when
 * it has another type.  Strings stay valid until fini.
 */
int wharf_options_string(const wharf_options *opts, const char *key, const char **out);
int wharf_options_int(const wharf_options *opts, const char *key, long long *out);
int wharf_options_bool(const wharf_options *opts, const char *key, bool *out);
/* Integer array: stores its elements in out[] and the count in *n.  Returns
 * -EINVAL (out and *n untouched) when the value is not an array, an element is
 * not an integer, or there are more than `max` elements. */
int wharf_options_int_array(const wharf_options *opts, const char *key,
                            long long *out, size_t max, size_t *n);
/*
 * Checks that every key in opts is listed in `allowed` (NULL-terminated).
 * Returns 0, or -EINVAL after writing "unknown option \"KEY\"" into err.
 */
int wharf_options_check_keys(const wharf_options *opts, const char *const *allowed,
                             char *err, size_t errlen);

/* ---- TCP connections (owner worker thread, inside a callback) ----------- */

/*
 * Queues len bytes for sending; the data is copied, so the caller keeps
 * ownership of `data`.  Output is written when the callback returns.
 * Returns 0, -EPIPE if the connection is closing, or -ENOBUFS if the output
 * would exceed the listener's max_output cap (the connection is then closed
 * with WHARF_CLOSE_LIMIT after the callback).
 */
int wharf_send(wharf_conn *c, const void *data, size_t len);

/* Closes the connection once pending output is written (reason "handler").
 * No more on_data calls follow.  Safe to call more than once. */
void wharf_close(wharf_conn *c);

/* Stops / restarts delivering on_data for this connection. */
void wharf_pause_read(wharf_conn *c);
void wharf_resume_read(wharf_conn *c);

/* Overrides one timeout for this connection; ms = 0 disables it.  The new
 * deadline counts from now (idle, write) or from the open (lifetime). */
int wharf_set_timeout(wharf_conn *c, enum wharf_timeout kind, uint64_t ms);

/* Per-connection handler data; wharf never touches it.  Free it in on_close. */
void wharf_set_data(wharf_conn *c, void *data);
void *wharf_get_data(const wharf_conn *c);

/* The listener_data stored by init for this connection's listener. */
void *wharf_listener_data(const wharf_conn *c);

/* Addresses; the pointer lives as long as the connection.  *len may be NULL. */
const struct sockaddr *wharf_peer_addr(const wharf_conn *c, socklen_t *len);
const struct sockaddr *wharf_local_addr(const wharf_conn *c, socklen_t *len);

/* Unique (per process) connection id, the owning worker's index, and the
 * number of bytes queued but not yet written. */
uint64_t wharf_conn_id(const wharf_conn *c);
unsigned wharf_worker_id(const wharf_conn *c);
size_t wharf_output_pending(const wharf_conn *c);

/* ---- UDP datagrams (inside on_datagram) -------------------------------- */

/* Sends len bytes (copied) back to the datagram's source.  Returns 0,
 * -EMSGSIZE above 65,507 bytes, or another negative errno. */
int wharf_reply(wharf_dgram *d, const void *data, size_t len);
const struct sockaddr *wharf_dgram_peer(const wharf_dgram *d, socklen_t *len);
void *wharf_dgram_listener_data(const wharf_dgram *d);
unsigned wharf_dgram_worker_id(const wharf_dgram *d);
/* Counts a datagram the handler chose to drop (shown in the listener's stats
 * and logged at shutdown). */
void wharf_dgram_count_dropped(wharf_dgram *d);

/* ---- logging (any thread) ---------------------------------------------- */

enum wharf_log_level {
    WHARF_LOG_ERROR = 0,
    WHARF_LOG_WARN,
    WHARF_LOG_INFO,
    WHARF_LOG_DEBUG,
};

/* Writes one line to the server log, with time and level. */
void wharf_log(enum wharf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Same, tagged with the connection's listener, worker and id. */
void wharf_conn_log(const wharf_conn *c, enum wharf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif /* WHARF_H */
