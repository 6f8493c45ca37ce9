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
 * it, and the wharf_conn_* / wharf_send / wharf_close calls on a connection
 * may only be made from that thread: from any handler code running there (a
 * callback of this or another connection of the worker, a timer, a post).
 * Other threads reach a connection through wharf_post_conn.  init, on_stop
 * and fini run on the thread that starts and stops the server (fini of a
 * generation retired by a reload: on the worker that closed its last
 * connection or ran its last request).  A request (a post, a worker timer,
 * a blocking job) made from handler code keeps that code's generation --
 * its listener data and its module -- until its callback (or its
 * cancellation) has run, so fini never runs under it.  A post made on a
 * thread of the handler's own (no callback running) keeps nothing: fini
 * must join such threads before it returns; the module is unloaded only
 * after every post queued before then has run or been cancelled.  Callbacks
 * must not block.
 *
 * Errors: functions that can fail return 0 (or a count, >= 0) on success
 * and a negative errno value on failure, never -1 with errno set; the
 * embedding API (wharf_server.h) follows the same rule.  A call that failed
 * has no effect.
 *
 * Names: wharf_<object>_<what>, the object being the first argument
 * (wharf_conn_*, wharf_dgram_*, wharf_worker_*, wharf_server_*); a worker's
 * number is its "index" everywhere.  Names of an older version stay, marked
 * deprecated, for one more release (WHARF_DEPRECATED), so modules built
 * against them still load.
 *
 * Public structs (wharf_framing here, wharf_listener_stats and
 * wharf_server_info in wharf_server.h) keep their size across versions:
 * each ends in `reserved` room that later fields are taken from, and arrays
 * indexed by an enum have room for it to grow.  The caller leaves reserved
 * words zero (a designated or `= {0}` initializer does); the library writes
 * zeros there in what it fills in, and refuses a struct it reads whose
 * reserved words are not zero.  So a caller built against an older header
 * and one built against a newer header both keep working.
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

/* The version of these headers, MAJOR.MINOR.PATCH (configure.ac's AC_INIT
 * version; tests/check_api.c keeps them equal).  The MINOR number changes
 * with the interface while MAJOR is 0. */
#define WHARF_VERSION_MAJOR 0
#define WHARF_VERSION_MINOR 2
#define WHARF_VERSION_PATCH 0
#define WHARF_VERSION_STRING "0.2.0"

/* The version of the library actually running, "MAJOR.MINOR.PATCH" (static
 * text): it may be newer than WHARF_VERSION_STRING was when the caller was
 * built. */
const char *wharf_version(void);

/* Bumped whenever wharf_handler or the meaning of a call changes.  Version 2
 * added on_eof, on_shutdown and on_stop at the end of wharf_handler, version
 * 3 on_worker_start and on_worker_stop; a version 1 or 2 module still loads
 * (the callbacks its version lacks are then absent). */
#define WHARF_ABI_VERSION 3u

/* The name of the descriptor symbol the loader looks up. */
#define WHARF_HANDLER_SYMBOL "wharf_handler"

/* Defines the exported descriptor: WHARF_HANDLER_EXPORT = { ... };  In C++ a
 * namespace-scope const has internal linkage, so the macro gives it C
 * linkage explicitly (designated initializers then need C++20, or g++'s
 * extension, in declaration order). */
#ifdef __cplusplus
#define WHARF_HANDLER_EXPORT \
    extern "C" __attribute__((visibility("default"))) const struct wharf_handler wharf_handler; \
    extern "C" __attribute__((visibility("default"))) const struct wharf_handler wharf_handler
#else
#define WHARF_HANDLER_EXPORT \
    __attribute__((visibility("default"))) const struct wharf_handler wharf_handler
#endif

/* Marks a name kept for one release after it was renamed. */
#define WHARF_DEPRECATED(use) __attribute__((deprecated("use " use)))

typedef struct wharf_conn wharf_conn;       /* one TCP connection */
typedef struct wharf_dgram wharf_dgram;     /* one received UDP datagram */
typedef struct wharf_options wharf_options; /* a listener's "options" object */
typedef struct wharf_worker wharf_worker;   /* one worker thread of a server */
typedef struct wharf_timer wharf_timer;     /* a handler's timer */
typedef struct wharf_tls_client wharf_tls_client; /* settings for outbound TLS */
typedef struct wharf_udp wharf_udp;         /* a UDP socket handler code sends from */

/* Why a connection ended; passed to on_close and logged. */
enum wharf_close_reason {
    WHARF_CLOSE_EOF = 0,   /* the peer closed its side and all output was sent */
    WHARF_CLOSE_ERROR,     /* a socket error (reset, broken pipe, ...) */
    WHARF_CLOSE_TIMEOUT,   /* a timeout fired (see on_timeout) */
    WHARF_CLOSE_HANDLER,   /* the handler called wharf_close() */
    WHARF_CLOSE_LIMIT,     /* a limit was exceeded (input or output buffer cap) */
    WHARF_CLOSE_SHUTDOWN,  /* the server is stopping */
    WHARF_CLOSE_EVICTED,   /* at max_connections, it made no progress for longest
                            * (evict_idle_ms) and a new connection took its place */
};

/* Returns a static lower-case name for a reason ("eof", "timeout", ...). */
const char *wharf_close_reason_name(enum wharf_close_reason reason);

/* The per-connection timers.  Each closes the connection (reason
 * "timeout") after on_timeout, unless on_timeout sets that timer again with
 * wharf_set_timeout (ms > 0): then the connection stays open and the timer
 * counts again from now (a heartbeat on write-idle, a ping on read-idle).
 * The three idle kinds are Netty's IdleStateHandler's: */
enum wharf_timeout {
    WHARF_TIMEOUT_IDLE = 0, /* all idle: nothing received and nothing sent for
                             * this long (counts from the later of the last byte
                             * received and the last write progress; not while
                             * output is pending: the write timeout watches that) */
    WHARF_TIMEOUT_WRITE,    /* output pending with no progress for this long */
    WHARF_TIMEOUT_LIFETIME, /* the connection has been open this long */
    WHARF_TIMEOUT_HANDSHAKE, /* no first byte this long after the open */
    WHARF_TIMEOUT_RATE,     /* a message in progress (kept input) arrived slower
                             * than the listener's min_rate over its window */
    WHARF_TIMEOUT_READ_IDLE,  /* reader idle: nothing received for this long,
                               * whatever was sent meanwhile */
    WHARF_TIMEOUT_WRITE_IDLE, /* writer idle: nothing sent for this long (not
                               * while output is pending), whatever was received */
};

/* Returns a static name for a timer ("idle", "write", "lifetime",
 * "handshake", "rate", "read_idle", "write_idle"). */
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
     * TCP: bytes arrived (docs/guide.md, "The input contract", says the
     * same at length).  `data` is valid only during the call and has no
     * particular alignment.  Return how many bytes were consumed (0..len).
     * Unconsumed bytes are kept, and the next call starts with them,
     * followed by whatever arrived since.  Kept input is offered again
     * without new bytes only: at once when this call consumed something and
     * bytes remain (at most 16 times in one event; then the connection
     * yields to the others and the rest comes back later in the loop),
     * after wharf_resume_read, right after on_drain, and once output that
     * was pending when a call consumed nothing has all been written;
     * otherwise a call that consumes nothing waits for more bytes.  When
     * the peer shuts its side, every kept byte is offered before on_eof,
     * over as many calls and turns as it takes, until nothing is kept or a
     * call consumes nothing with no output pending.  No on_data while
     * reading is paused (wharf_pause_read, output above the high watermark,
     * post back-pressure) or after wharf_close.  Kept input reaching the
     * listener's max_input closes the connection with WHARF_CLOSE_LIMIT.
     * Returning more than len is a handler bug: it is logged and the
     * connection is closed (reason "error").
     */
    size_t (*on_data)(wharf_conn *c, const void *data, size_t len);
    /* TCP: pending output fell below the low watermark after having been
     * above the high watermark (reading was paused meanwhile).  Fires every
     * time that happens; kept input is offered again right after it. */
    void (*on_drain)(wharf_conn *c);
    /* TCP: a timer fired.  The connection is closed with WHARF_CLOSE_TIMEOUT
     * right after this returns (a handler may still wharf_send() a last
     * word), unless this call sets the same timer again with
     * wharf_set_timeout (ms > 0): then it stays open. */
    void (*on_timeout)(wharf_conn *c, enum wharf_timeout kind);
    /* TCP: the connection is gone (called exactly once per on_open).  Free
     * per-connection data here; the handle is invalid after return. */
    void (*on_close)(wharf_conn *c, enum wharf_close_reason reason);

    /* UDP: one datagram arrived.  `data` is valid only during the call.
     * Reply with wharf_reply(). */
    void (*on_datagram)(wharf_dgram *d, const void *data, size_t len);

    /* ---- ABI version 2 ---- */

    /*
     * TCP: the peer shut its side (half-close), after every kept byte was
     * offered to on_data.  Return WHARF_EOF_CLOSE (what happens without this
     * callback) to close once pending output is written (reason "eof"), or
     * WHARF_EOF_KEEP to keep the connection open: the handler finishes its
     * replies (from timers, posts or finished work) and calls wharf_close.
     */
    int (*on_eof)(wharf_conn *c);
    /*
     * TCP: the server is stopping.  Called once per open connection on its
     * worker, before anything is closed: a handler may send a last word,
     * close it, or let it finish.  Right after it, a connection with nothing
     * in flight (no kept input, no pending output) is closed with reason
     * "shutdown"; the others get up to shutdown_timeout_ms.
     */
    void (*on_shutdown)(wharf_conn *c);
    /*
     * The server is stopping (per listener, on the thread that stops it,
     * before connections are told): stop helper threads, refuse new work.
     * fini still follows once the last connection is gone.
     */
    void (*on_stop)(void *listener_data);

    /* ---- ABI version 3 ---- */

    /*
     * Worker w starts serving this listener's generation: at start-up, when
     * w adopts a reloaded generation, and (rarely) when a connection of a
     * generation w had stopped serving still reaches it.  Runs on w's
     * thread, before any callback of a connection of this generation on w:
     * the place for per-worker state and worker timers (wharf_timer_start
     * with c = NULL).  wharf_options_worker_count told init how many
     * workers there are; wharf_worker_index(w) is below that.
     */
    void (*on_worker_start)(void *listener_data, wharf_worker *w);
    /*
     * Worker w stops serving this generation: once w has adopted a newer
     * generation and the last connection of this one on w has closed (after
     * its on_close), or when w stops (after every connection of w closed).
     * On w's thread; called once per on_worker_start; stop the timers
     * on_worker_start started here.  fini runs after every on_worker_stop
     * of the generation.  A post or job of this generation may still reach
     * w afterwards (it keeps the module loaded): what it touches must live
     * until fini.
     */
    void (*on_worker_stop)(void *listener_data, wharf_worker *w);
};

/* What on_eof returns. */
#define WHARF_EOF_CLOSE 0
#define WHARF_EOF_KEEP 1

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
/* String array: stores pointers to its elements in out[] (valid until
 * fini) and the count in *n.  Returns -EINVAL (out and *n untouched) when
 * the value is not an array, an element is not a string, or there are more
 * than `max` elements. */
int wharf_options_string_array(const wharf_options *opts, const char *key, const char **out,
                               size_t max, size_t *n);
/* Object: *out becomes a view of the object under `key`, read with these
 * same calls (valid during init only, freed by wharf).  Returns 0, -ENOENT
 * or -EINVAL (not an object) as the getters above. */
int wharf_options_object(const wharf_options *opts, const char *key, const wharf_options **out);
/* The number of workers of the server (fixed for its life: a reload keeps
 * it), so init can size per-worker arrays (index: wharf_worker_index). */
unsigned wharf_options_worker_count(const wharf_options *opts);
/*
 * Checks that every key in opts is listed in `allowed` (NULL-terminated).
 * Returns 0, or -EINVAL after writing "unknown option \"KEY\"" into err.
 */
int wharf_options_check_keys(const wharf_options *opts, const char *const *allowed,
                             char *err, size_t errlen);

/* ---- state that survives reload (only during init) ----------------------- */

/*
 * A kind of named state.  The descriptor must be static (it is used until
 * the last generation that got an object of it is released).
 *   tag:     the object's kind and layout, e.g. "memcache.cache/1": a
 *            generation whose handler asks under another tag gets a new
 *            object (change the tag when the layout changes).
 *   create:  makes the object from init's `arg`; returns 0 with *obj set,
 *            or a negative errno.  Called with the server's state registry
 *            locked: it must not call wharf_state_get.
 *   destroy: frees it (may be NULL), once no generation holds it, on the
 *            thread that released the last one (after its fini).
 */
struct wharf_state_type {
    const char *tag;
    int (*create)(void *arg, void **obj);
    void (*destroy)(void *obj);
};

/*
 * The object this listener keeps under `name` across reloads, in the
 * manner of nginx's shared zones: the one the previous generation's
 * listener of the same name and handler got under that name and tag, or a
 * new one made by type->create (then *created is true; created may be
 * NULL).  Names are scoped per listener name and handler: another
 * listener, a renamed listener or a different handler never gets this
 * object.  The generation holds a reference until it is released; a
 * generation that fails to build drops only its own.
 *
 * Threads: the object is shared by the old and the new generation's
 * connections on every worker at once (during a reload both run), and by
 * init of the next generation while the current one serves: it must be
 * thread-safe.  Settings of a reload that change it should be applied once
 * the new generation serves (in on_worker_start), so that a reload that
 * fails leaves it as it was.
 *
 * Returns 0 with *obj set; -EINVAL (bad arguments, or not called during
 * init), -ENOMEM, or what create returned.  A call that failed has no
 * effect.
 */
int wharf_state_get(const wharf_options *opts, const char *name,
                    const struct wharf_state_type *type, void *arg, void **obj, bool *created);

/* ---- TCP connections (owner worker thread, inside a callback) ----------- */

/*
 * Queues len bytes for sending; the data is copied, so the caller keeps
 * ownership of `data`.  Output is written when the callback returns.
 * Returns 0, -EPIPE if the connection is closing (or its sending side was
 * shut, or the server's output budget closed it in this call), -ENOBUFS if the output would exceed the listener's max_output cap
 * (the connection is then closed with WHARF_CLOSE_LIMIT after the
 * callback), -ENOMEM, or -EPERM in debug mode from the wrong thread.
 */
int wharf_send(wharf_conn *c, const void *data, size_t len);

/*
 * Queues len bytes for sending without copying them: the connection
 * writes them from `data` in their place in the output (after everything
 * sent before, before everything sent after), gathered with the copied
 * bytes into one sendmsg(), and calls release(arg) exactly once, on the
 * connection's worker thread, when it no longer needs them: as soon as
 * their last byte is written, or in the connection's teardown (a close,
 * a reset, max_output, the output budget, server stop) just before
 * on_close, while the module is still loaded.  Until then `data` must
 * stay valid and unchanged.  They count against max_output, the
 * watermarks and the server's output_budget as copied bytes do.
 * release must not call into the connection.
 *
 * The reference is handed over whatever the call returns: on failure
 * release has run before the call returns (and for len 0, at once).
 * Returns 0, or what wharf_send returns (-EPIPE, -ENOBUFS, -ENOMEM,
 * -EPERM), or -EINVAL when release is NULL (then nothing is released).
 */
int wharf_send_ref(wharf_conn *c, const void *data, size_t len, void (*release)(void *arg),
                   void *arg);

/* Closes the connection once pending output is written (reason "handler").
 * No more on_data calls follow; until the output is out, what the peer
 * still sends is read and dropped (a client that writes before it reads is
 * never left waiting on us).  Safe to call more than once. */
void wharf_close(wharf_conn *c);
/* Same with another reason (e.g. WHARF_CLOSE_LIMIT for an oversize
 * message, WHARF_CLOSE_ERROR for a protocol error).  A close never tears a
 * connection down under running handler code: on_close comes at the end of
 * the loop turn in which the connection was closed, after the callback (of
 * any connection, timer, post or done) that asked has returned. */
void wharf_close_with(wharf_conn *c, enum wharf_close_reason reason);
/* Half-close: once pending output is written, our side of the connection
 * is shut (the peer reads EOF); reading goes on.  wharf_send fails with
 * -EPIPE afterwards. */
void wharf_shutdown_write(wharf_conn *c);
/* Asks for on_drain the next time pending output is below the low
 * watermark (at once, on the next loop turn, if it already is): for a
 * producer that fills output in steps (chargen) or a relay that paused the
 * other side, whether or not output ever passed the high watermark. */
void wharf_want_drain(wharf_conn *c);

/* Stops / restarts delivering on_data for this connection.  After a resume,
 * kept input is offered again at once (without waiting for new bytes). */
void wharf_pause_read(wharf_conn *c);
void wharf_resume_read(wharf_conn *c);

/* Overrides one timeout for this connection; ms = 0 disables it.  The new
 * deadline counts from now (idle, read_idle: as if a byte had just arrived;
 * write, write_idle: as if a byte had just been written) or from the open
 * (lifetime, handshake).  Called from on_timeout for the kind that fired,
 * with ms > 0, it keeps the connection open.  Returns 0, or -EINVAL (an
 * unknown kind, WHARF_TIMEOUT_RATE, or more than UINT32_MAX ms). */
int wharf_set_timeout(wharf_conn *c, enum wharf_timeout kind, uint64_t ms);

/* Per-connection handler data; wharf never touches it.  Free it in on_close. */
void wharf_set_data(wharf_conn *c, void *data);
void *wharf_get_data(const wharf_conn *c);

/* The listener_data stored by init for this connection's listener. */
void *wharf_listener_data(const wharf_conn *c);

/* Addresses; the pointer lives as long as the connection.  *len may be NULL. */
const struct sockaddr *wharf_peer_addr(const wharf_conn *c, socklen_t *len);
const struct sockaddr *wharf_local_addr(const wharf_conn *c, socklen_t *len);

/* What a connection of a TLS listener negotiated (wharf_conn_tls_info).
 * The strings live as long as the connection. */
struct wharf_tls_info {
    const char *version;     /* "TLSv1.2", "TLSv1.3" */
    const char *cipher;      /* the cipher suite, OpenSSL's name ("TLS_AES_128_GCM_SHA256") */
    const char *sni;         /* the server name the client asked for, or NULL */
    char alpn[256];          /* the protocol agreed by ALPN, or "" */
    char peer_subject[256];  /* the peer certificate's subject ("/CN=alice/O=x"),
                              * or "" when it sent none (cut short past 255 bytes) */
    bool peer_verified;      /* it sent one and it verified (the listener's "ca"; outbound:
                              * the client's CA, with the name checked) */
    bool resumed;            /* the session was resumed (a ticket or the cache) */
};

/* Fills *info for a connection of a TLS listener or one opened by
 * wharf_connect_tls (peer_subject is then the server's certificate, sni the
 * name sent); the handshake is done before on_open, so any callback may
 * ask.  Returns 0, -ENOTSUP on a plain TCP connection, -EAGAIN before the
 * handshake is done, -EINVAL when c or info is NULL. */
int wharf_conn_tls_info(const wharf_conn *c, struct wharf_tls_info *info);

/* Unique (per process) connection id, the owning worker's index (as
 * wharf_worker_index(wharf_conn_worker(c))), and the number of bytes queued
 * but not yet written. */
uint64_t wharf_conn_id(const wharf_conn *c);
unsigned wharf_conn_worker_index(const wharf_conn *c);
size_t wharf_output_pending(const wharf_conn *c);
/* wharf_conn_worker_index's name until 0.2. */
unsigned wharf_worker_id(const wharf_conn *c) WHARF_DEPRECATED("wharf_conn_worker_index");

/* The worker that owns the connection. */
wharf_worker *wharf_conn_worker(const wharf_conn *c);
/* Whether the connection was opened by wharf_connect (outbound). */
bool wharf_conn_outbound(const wharf_conn *c);

/*
 * Opens an outbound TCP connection to addr, owned by the calling worker and
 * driven by the same handler and listener settings as the connection whose
 * callback is running (`from`): on_open once connected, then on_data,
 * on_drain, on_eof, on_close as for an accepted one.  If the connection
 * fails, on_close comes with reason "error" and without an on_open (the one
 * exception to "exactly once per on_open").  wharf_send before it is
 * connected is fine: the bytes wait.  It counts in its listener's "open"
 * but not in "accepted", and not against max_connections.  `data` is set as its handler data before on_open.  Call it
 * from a callback on the worker thread.  Returns the new connection, or
 * NULL with *err set to a negative errno (nothing happens then).
 */
wharf_conn *wharf_connect(wharf_conn *from, const struct sockaddr *addr, socklen_t addrlen,
                          void *data, int *err);

/*
 * Outbound TLS: what a wharf_tls_client is made from.  Zero means the
 * default, so `= {0}` verifies the server against the system's CA store.
 */
struct wharf_tls_client_options {
    const char *ca;          /* PEM file of CA certificates the server's chain must
                              * lead to; NULL: the system's store (OpenSSL's
                              * default paths) */
    const char *server_name; /* sent as SNI and checked against the certificate's
                              * names (DNS, or an IP literal against its IP
                              * addresses); NULL: no SNI, and the certificate must
                              * name the IP address connected to */
    const char *const *alpn; /* NULL-terminated protocols offered by ALPN, in order
                              * of preference (1..255 bytes each), or NULL */
    const char *cert;        /* PEM client certificate chain, for a server that asks;
                              * NULL: none */
    const char *key;         /* its PEM private key (with cert) */
    bool no_verify;          /* true: accept any certificate (tests only: the
                              * connection is then open to a man in the middle) */
    uint64_t reserved[4];    /* zero: room for later fields (see the top) */
};

/*
 * Reads the files of *opts and makes the TLS settings of outbound
 * connections from them: one OpenSSL context, shared by every connection
 * made with it on any worker (make it once, in init, not per connection).
 * Any thread.  Returns it, or NULL with a one-line reason in err, naming
 * the field and the file ("ca: /etc/x.pem: cannot read: No such file or
 * directory").  Free it with wharf_tls_client_free (fini); connections
 * made with it keep what they need, so it may go before they close.
 */
wharf_tls_client *wharf_tls_client_new(const struct wharf_tls_client_options *opts, char *err,
                                       size_t errlen);
void wharf_tls_client_free(wharf_tls_client *t);

/*
 * wharf_connect, speaking TLS with the settings `tls`: once connected, the
 * handshake runs on the worker's loop (bounded by the listener's
 * handshake_ms, 10 s when that is 0), and on_open comes only once it is done
 * and the server's certificate verified, so the handler sees plaintext, as
 * on a TLS listener.  wharf_send before that is fine: the bytes wait and go
 * out encrypted.  server_name, when not NULL, replaces the settings' name
 * for this connection.  A handshake that fails (the certificate does not
 * verify, the name does not match, no protocol in common, a timeout) ends
 * in on_close with reason "error" (or "timeout") and no on_open; the reason
 * is logged (rate-limited) and counted in the listener's
 * wharf_tls_outbound_handshakes_failed_total.  The connection ends with
 * close_notify as a TLS listener's does.  Returns as wharf_connect.
 */
wharf_conn *wharf_connect_tls(wharf_conn *from, const struct sockaddr *addr, socklen_t addrlen,
                              wharf_tls_client *tls, const char *server_name, void *data,
                              int *err);

/* ---- workers, cross-thread posts, timers, blocking work ---------------------- */

/* The calling worker's clock: monotonic milliseconds, cached once per loop
 * turn (cheap to read), and moved by wharf_test_advance under the test
 * kit.  On another thread: the monotonic clock. */
uint64_t wharf_now_ms(void);
/* Wall-clock Unix time in seconds, on the same clock as wharf_now_ms (so the
 * test kit moves it too): for expiry times given as dates. */
int64_t wharf_time(void);

/*
 * The counters of the server worker w belongs to, in the Prometheus text
 * exposition format (version 0.0.4): per listener and worker accepted, open,
 * closed by reason, bytes, datagrams, buffered output; per listener refused
 * connections; per worker mailbox depth; accept pauses, reloads, generation,
 * start time, build info.  Returns a malloc'ed NUL-terminated text (free
 * it) and its length, or NULL (ENOMEM, or w is not a server's).  Any thread.
 * handlers/metrics.c serves it over HTTP.
 */
char *wharf_metrics_text(const wharf_worker *w, size_t *len);

/*
 * Whether the server worker w belongs to accepts new connections now: false
 * while w is stopping, without a configuration, or while the acceptor is
 * paused (max_connections reached, every worker's queue full, out of
 * descriptors), with the reason in why (NUL-terminated, cut to whylen).
 * Call it on w's own thread (from a callback on w).  The metrics handler's
 * /readyz uses it.
 */
bool wharf_health_accepting(const wharf_worker *w, char *why, size_t whylen);

/* The worker whose thread is calling, or NULL on any other thread. */
wharf_worker *wharf_current_worker(void);
/* This worker's index (0..count-1) and the number of workers of its server. */
unsigned wharf_worker_index(const wharf_worker *w);
unsigned wharf_worker_count(const wharf_worker *w);
/* Worker `index` of the same server as w, or NULL when out of range. */
wharf_worker *wharf_worker_sibling(const wharf_worker *w, unsigned index);

/*
 * Runs fn(arg, false) on worker w's thread, soon.  Any thread may post.
 * Messages from one thread to one worker run in the order posted.  Every
 * accepted post runs exactly once: normally, or with cancelled == true when
 * the worker stops first (free arg then).
 *
 * Each worker has its own queue of posts, apart from new connections, with
 * a soft capacity ("post_queue", default 4096) and a hard one (4 times it).
 * Above the soft capacity a post is still queued, and if it was made from a
 * connection's callback that connection stops being read (on_data is not
 * called, wharf_frames stops after the current message) until every queue
 * it posted to over the mark has drained to half; then its kept input is
 * offered again.  So a handler that posts per message it reads loses
 * nothing and needs no retry.  Returns 0, -EAGAIN when w's queue is at its
 * hard capacity (nothing queued), -ENOMEM, or -EPIPE when w has stopped.
 */
int wharf_post(wharf_worker *w, void (*fn)(void *arg, bool cancelled), void *arg);
/*
 * Runs fn(c, arg) on the worker that owns connection `conn_id` (of worker
 * w), if it is still open then, as one of c's callbacks (what it sends is
 * written right after); otherwise fn(NULL, arg), so arg can be freed.
 * Returns as wharf_post.
 */
int wharf_post_conn(wharf_worker *w, uint64_t conn_id, void (*fn)(wharf_conn *c, void *arg),
                    void *arg);
/*
 * wharf_post to every worker of w's server (w's own included): fn runs once
 * per worker, each time with the same arg (use a reference count to free
 * it).  Returns the number of workers it was posted to; a worker whose post
 * failed (at its hard capacity) is skipped.  Back-pressure as wharf_post.
 */
unsigned wharf_post_all(wharf_worker *w, void (*fn)(void *arg, bool cancelled), void *arg);

/*
 * Starts a timer on the calling worker: fn(t, arg) runs after `ms`, then
 * every `repeat_ms` if that is not 0 (a repeating timer that fell behind
 * fires once and goes on from then: missed periods are skipped, never run
 * in a burst).  With c non-NULL the timer belongs to
 * that connection and is stopped automatically when it closes (fn never runs
 * after on_close).  A worker timer (c == NULL) keeps the generation of the
 * code that started it until it is freed, and is stopped when the worker
 * exits.  Worker thread only.  Returns the timer, or NULL on ENOMEM (or a
 * worker timer asked for from fini).  A one-shot timer is freed after fn returns; stop a repeating one
 * (or a pending one) with wharf_timer_stop.
 */
wharf_timer *wharf_timer_start(wharf_conn *c, uint64_t ms, uint64_t repeat_ms,
                               void (*fn)(wharf_timer *t, void *arg), void *arg);
/* Stops and frees t (safe inside its own callback).  Worker thread only. */
void wharf_timer_stop(wharf_timer *t);

/*
 * Runs work(arg) on the server's bounded pool of blocking-work threads
 * ("work_threads" in the config; one more is started whenever a job
 * arrives and none is idle, so a short job never waits behind a long one
 * while the pool has room), then done(arg, false) back on the calling
 * worker, as handler code like any callback (a close it asks for ends the
 * connection at the end of the loop turn).  done always runs exactly once, even if the
 * connection that asked has closed, so it can free arg.  When the server
 * stops first, it runs with cancelled == true instead, on the thread that
 * stops the server, after its workers have stopped (the work may or may
 * not have run): free arg then, touch no connection.  Worker
 * thread only.  Returns 0, -EAGAIN when the pool's queue is full, -ENOMEM,
 * -EPIPE when the server is stopping (or from fini), or -EINVAL (not on a
 * worker); nothing is queued then.
 */
int wharf_queue_work(void (*work)(void *arg), void (*done)(void *arg, bool cancelled),
                     void *arg);

/* ---- framing: whole messages from a byte stream ------------------------------ */

enum wharf_frame_kind {
    WHARF_FRAME_LINE = 0,    /* a line ending in "\n" (or "\r\n") */
    WHARF_FRAME_LENGTH,      /* a 1, 2, 4 or 8 byte length, then that many bytes */
    WHARF_FRAME_HEADER_BODY, /* a header line, then the body length it announces */
};

struct wharf_framing {
    enum wharf_frame_kind kind;
    size_t max_frame;        /* longest whole message, terminator/prefix included;
                              * 0 means 65536 */
    /* LINE */
    bool crlf_only;          /* lines must end in "\r\n" (a bare "\n" is malformed) */
    /* LENGTH */
    unsigned width;          /* 1, 2, 4 or 8 */
    bool little_endian;      /* default big endian (network order) */
    bool length_includes_prefix; /* the length counts the prefix bytes too */
    /* HEADER_BODY: called with the header line (no terminator); returns the
     * body length that follows it (the body is followed by `trailer` bytes),
     * -1 for a message that is the header line alone, or <= -2 when the line
     * is malformed.  No state is kept between calls: it is called again on
     * every offer while the body is incomplete and must give the same answer.
     * It gets the same `arg` as on_frame.  The header line may end in "\n"
     * or "\r\n" (crlf_only applies to LINE only). */
    long long (*body_length)(const char *line, size_t len, void *arg);
    size_t trailer;          /* 0, or 2: the body is followed by "\r\n" */
    uint64_t reserved[4];    /* zero: room for later fields (see the top) */
};

/* One whole message. */
struct wharf_frame {
    const char *data;        /* the whole message as received */
    size_t len;
    const char *payload;     /* LINE: the line without its terminator; LENGTH: the
                              * bytes after the prefix; HEADER_BODY: the body */
    size_t payload_len;
    const char *header;      /* HEADER_BODY: the header line without terminator */
    size_t header_len;
};

/*
 * Finds the first whole message in data[0..len): returns its length (> 0)
 * and fills *fr, 0 when more bytes are needed, -EMSGSIZE when it is (or will
 * be) longer than max_frame, or -EINVAL when it is malformed or f is not
 * usable (a bad width, reserved words not zero) (*reason then names why).  A pure function: no connection, no state.
 */
long long wharf_frame_next(const struct wharf_framing *f, const void *data, size_t len,
                           struct wharf_frame *fr, const char **reason, void *arg);

/*
 * For on_data: calls on_frame for every whole message in data[0..len) and
 * returns how many bytes those messages took (return that from on_data; the
 * rest is kept and offered again with more bytes).  on_frame returns 0 to go
 * on, or non-zero to stop after this message (e.g. it paused reading or
 * closed the connection: return non-zero after wharf_close, or the next
 * messages are still delivered).  An oversize message closes the connection
 * with reason "limit", a malformed one (or a bad wharf_framing) with reason
 * "error", after logging why (the messages before it were delivered).
 */
size_t wharf_frames(wharf_conn *c, const struct wharf_framing *f, const void *data, size_t len,
                    int (*on_frame)(wharf_conn *c, const struct wharf_frame *fr, void *arg),
                    void *arg);

/* ---- UDP datagrams (inside on_datagram) -------------------------------- */

/*
 * Sends len bytes (copied) back to the datagram's source.  The send guard
 * (below) applies.  Returns 0, -EMSGSIZE above 65,507 bytes (65,527 to an
 * IPv6 source), -EACCES when the guard refuses the source (a port below
 * 1024, a broadcast or multicast address; both counted as dropped), or
 * another negative errno.  0 means the reply is queued: it leaves with the
 * other datagrams of the worker's send batch (see "Batched sends" below),
 * once the datagrams read with this one are handled.
 */
int wharf_reply(wharf_dgram *d, const void *data, size_t len);
const struct sockaddr *wharf_dgram_peer(const wharf_dgram *d, socklen_t *len);
void *wharf_dgram_listener_data(const wharf_dgram *d);
/* The index of the worker that received the datagram. */
unsigned wharf_dgram_worker_index(const wharf_dgram *d);
/* wharf_dgram_worker_index's name until 0.2. */
unsigned wharf_dgram_worker_id(const wharf_dgram *d) WHARF_DEPRECATED("wharf_dgram_worker_index");
/* Counts a datagram the handler chose to drop (shown in the listener's stats
 * and logged at shutdown). */
void wharf_dgram_count_dropped(wharf_dgram *d);

/* ---- UDP sends at any time, outbound UDP sockets --------------------------- */

/*
 * A wharf_udp is a UDP socket that handler code holds and sends from at any
 * time, from any callback on the worker that owns it (a timer, a post, a
 * job's done, another connection's on_data), as Python's s.sendto(data,
 * addr):
 *   - wharf_dgram_keep: the socket a datagram came in on, with its source
 *     as the default destination: a reply after on_datagram returned;
 *   - wharf_udp_listener: the calling listener's own socket on this worker,
 *     no default destination (a heartbeat, a notification);
 *   - wharf_udp_open: an outbound socket of the worker's own, connected or
 *     not, whose answers come back to a callback on the same worker.
 * A handle keeps the generation (listener data, module, sockets) of the
 * listener whose code made it until it is closed, so a reply after a reload
 * still leaves from the socket the request came in on, and fini never runs
 * under it.  The listener's UDP settings apply to everything it sends and
 * receives: the send guard, rate_limit, deny, loop_guard.
 *
 * The send guard refuses (-EACCES) a destination port below 1024 unless
 * the listener has "allow_privileged_ports", and an unspecified, broadcast
 * or multicast address unless it has "allow_broadcast"; with "loop_guard"
 * (the default) wharf_udp_send also refuses (-ELOOP) a port that is one of
 * this server's UDP ports.  Refused datagrams are counted as dropped
 * (reasons "send_guard" and "loop_guard") and logged at most every 10 s.
 *
 * Ownership: the handle is the worker's; close it with wharf_udp_close
 * (on_worker_stop is the place for those a handler keeps per worker).  One
 * still open when its worker stops is closed then; the handler must not use
 * it after its on_worker_stop.  A worker holds at most 65,536 handles
 * (WHARF_UDP_MAX_HANDLES): a handler keeping one per datagram of a flood
 * gets -ENOBUFS, not unbounded memory.
 */
#define WHARF_UDP_MAX_HANDLES 65536

/*
 * Batched sends.  Every datagram handler code sends on a worker
 * (wharf_reply, wharf_udp_send) is copied into the worker's send batch and
 * leaves with the other datagrams for the same socket in one sendmmsg(2):
 * replies once the receive batch they answer is handled, everything else
 * at the end of the loop turn it was sent in (a timer's, a post's, a job's
 * done, an outbound socket's callback), and sooner when the batch is full
 * (64 datagrams or 256 KiB).  Datagrams to one socket leave in the order
 * they were sent.  A handle closed in the turn it sent still gets its
 * datagrams out: they leave before it ends.  So what a send call returns
 * covers what can be checked at once (arguments, the send guard,
 * rate_limit, the size); the kernel's own refusal (a full send buffer, an
 * unreachable network, an ICMP error pending on a connected socket) comes
 * at the flush: that datagram is dropped and counted (reason send_failed,
 * logged at debug level) and the others of the batch still go.  The
 * listener's datagram_send_calls counts the sendmmsg calls
 * (wharf_server_stats, wharf_datagram_send_calls_total).  With the
 * listener's "udp_gso", a run of equal-size datagrams to one peer (the last
 * may be shorter) leaves as one UDP_SEGMENT send; the peer still receives
 * separate datagrams.  Memory: one batch per worker with UDP, about 270 KiB.
 */

/*
 * Keeps d's socket and source (inside on_datagram).  Returns the handle
 * (wharf_udp_peer is d's source), or NULL with *err (err may be NULL) set
 * to -ENOMEM or -ENOBUFS (WHARF_UDP_MAX_HANDLES).
 */
wharf_udp *wharf_dgram_keep(wharf_dgram *d, int *err);

/*
 * The socket of the UDP listener whose handler code is running (any of its
 * callbacks on a worker: on_worker_start, on_datagram, a timer or post it
 * started, a job's done), for its address number `address` (0: the first,
 * or only, address of "address"), with no default destination.  Without
 * reuse_port the listener has one socket per address (read by worker 0)
 * and every worker sends from it.  Returns the handle, or NULL with *err
 * set to -EINVAL (not on a worker, not inside a UDP listener's code, or no
 * such address), -ENOMEM or -ENOBUFS.
 */
wharf_udp *wharf_udp_listener(unsigned address, int *err);

/* wharf_udp_open's flags. */
#define WHARF_UDP_CONNECT 0x1u /* connect(2) to addr: only its datagrams come back,
                                * and wharf_udp_send takes no other destination */

/*
 * Opens an outbound UDP socket owned by the calling worker, with the
 * settings of the listener whose code is running (as wharf_connect):
 * addr (IPv4 or IPv6, family and default destination) is where
 * wharf_udp_send(u, NULL, ...) goes; with WHARF_UDP_CONNECT the socket is
 * connected to it.  The kernel picks the local port.  Every datagram that
 * comes back runs on_datagram(u, from, fromlen, data, len) on this worker
 * (data valid only during the call; it may send, and close u) (NULL: none wanted,
 * they are read and dropped), after the listener's deny list, loop_guard
 * (a source port that is one of this server's UDP ports) and rate_limit
 * (per source); at most 64 datagrams per readiness, then other work runs.
 * `data` is for the handler (wharf_udp_data).  Returns the handle, or NULL
 * with *err set to -EINVAL (not on a worker, outside a listener's code, a
 * bad flag or address), -EAFNOSUPPORT, -ENOMEM, -ENOBUFS, -EMFILE or
 * what socket(2), connect(2) or epoll refused.
 */
wharf_udp *wharf_udp_open(const struct sockaddr *addr, socklen_t addrlen, unsigned flags,
                          void (*on_datagram)(wharf_udp *u, const struct sockaddr *from,
                                              socklen_t fromlen, const void *data, size_t len),
                          void *data, int *err);

/*
 * Sends len bytes (copied) from u's socket to `to` (NULL: u's default
 * destination).  On u's worker thread only.  UDP promises no delivery: 0
 * means the datagram is queued in the worker's send batch, to leave at the
 * end of the loop turn (see "Batched sends" above).  An IPv4 `to` on an IPv6 socket is
 * sent to its IPv4-mapped form.  The send guard applies; a datagram counts
 * against rate_limit for its destination (with the datagrams received from
 * it) and is counted in the listener's datagrams_out.  Returns 0, or
 *   -EINVAL        u or to malformed (NULL u, data NULL with len > 0, a
 *                  short address length)
 *   -EPERM         not on u's worker thread
 *   -EPIPE         u was closed (wharf_udp_close)
 *   -EDESTADDRREQ  to is NULL and u has no default destination
 *   -EISCONN       to is not NULL on a connected socket (WHARF_UDP_CONNECT)
 *   -EAFNOSUPPORT  to is neither IPv4 nor IPv6, or IPv6 on an IPv4 socket
 *   -EMSGSIZE      len above 65,507 (65,527 over IPv6)
 *   -EACCES        the send guard: a port below 1024, a broadcast or
 *                  multicast address
 *   -ELOOP         the send guard: one of this server's UDP ports
 *   -EAGAIN        over rate_limit for that destination
 * A refused datagram is counted as dropped; nothing is queued.  What the
 * kernel refuses when the batch leaves (a full send buffer, -ECONNREFUSED
 * pending on a connected socket whose peer answered an earlier datagram
 * with ICMP port unreachable, ...) is dropped and counted then (reason
 * send_failed).
 */
int wharf_udp_send(wharf_udp *u, const struct sockaddr *to, socklen_t tolen, const void *data,
                   size_t len);

/* u's default destination (the kept datagram's source, wharf_udp_open's
 * addr), or NULL when it has none.  *len may be NULL.  Valid while u is. */
const struct sockaddr *wharf_udp_peer(const wharf_udp *u, socklen_t *len);
/* The local address of u's socket (the listener's, or the port the kernel
 * picked for an outbound one) into *addr (*len: its size in, the address
 * length out).  Returns 0, -EINVAL, or getsockname(2)'s error. */
int wharf_udp_local_addr(const wharf_udp *u, struct sockaddr *addr, socklen_t *len);
/* wharf_udp_open's data. */
void *wharf_udp_data(const wharf_udp *u);
/*
 * Closes u: no callback of it runs after this returns, and sends fail with
 * -EPIPE; it is freed (an outbound socket closed, its generation let go) at
 * the end of the loop turn, so closing from its own callback is fine.  NULL
 * is fine; twice is not (u may be freed).  u's worker thread only.
 */
void wharf_udp_close(wharf_udp *u);

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
