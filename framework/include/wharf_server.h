/*
 * wharf_server.h - embedding a wharf server in a program of your own.
 *
 * A program builds a configuration (from a JSON file, from JSON text, or in
 * code), may register handlers compiled into it (no shared object needed),
 * starts a server, and later reloads it with a new configuration, reads its
 * statistics and stops it.  wharfd is a thin front-end over this API.
 *
 *     wharf_config *cfg;
 *     wharf_error e;
 *     char err[1024];
 *     if (wharf_config_load_json("{\"listeners\": [{\"port\": 7007, \"handler\": \"mine\"}]}",
 *                                "inline", &cfg, &e) < 0) ... e.text, e.path, e.code ...
 *     wharf_server *srv = wharf_server_new();
 *     int rc = wharf_server_add_handler(srv, &my_handler);   // .name = "mine"
 *     if (rc < 0) ... strerror(-rc) ...
 *     if ((rc = wharf_server_start(srv, cfg, err, sizeof err)) < 0)
 *         ... err; rc == -EADDRINUSE: the port is taken ...
 *     ...
 *     wharf_server_free(srv);                       // stops gracefully
 *     wharf_config_free(cfg);
 *
 * Errors, as in wharf.h: the wharf_server_*, wharf_log_* and
 * wharf_crash_* calls that can fail return 0 (or a count or port, >= 0) on
 * success and a negative errno value on failure, never -1 with errno.  Those
 * that take an err buffer also write one line of text there (naming the
 * file, the JSON path and what was expected for configuration problems).
 * Codes that several calls share: -EINVAL (an invalid config or argument, a
 * handler refused), -ENOENT (no such handler module, listener or user),
 * -EALREADY (already started), -ESRCH (the server is not running), -ENOMEM;
 * binding passes the socket call's own code (-EADDRINUSE, -EACCES, ...).
 * A call that failed has no effect.  Configuration errors also come as a
 * wharf_error (code, file, JSON path, text) from wharf_config_load_*; the
 * older wharf_config_* calls keep their own convention, stated with each.
 * Threads: the wharf_server_* calls for one server are made from
 * one thread (or serialised by the caller); wharf_log_* and
 * wharf_config_* are safe from any thread on distinct objects.  The server's
 * own threads never call back into the program except through handler
 * callbacks and the log callback.
 */
#ifndef WHARF_SERVER_H
#define WHARF_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "wharf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wharf_config wharf_config;
typedef struct wharf_server wharf_server;

/* ---- configuration ------------------------------------------------------ */

/*
 * Why a configuration could not be loaded, in parts a program can act on.
 * `text` is the whole one-line message, e.g.
 *   x.json: listeners[1].port: expected an integer 0..65535, got "http"
 * and `file` and `path` are its first two parts ("x.json",
 * "listeners[1].port").  A syntax error has no path; its text gives the line
 * and column ("x.json:3:16: syntax error: ...").  Longer strings are cut
 * short, always NUL-terminated.
 */
typedef struct wharf_error {
    int code;          /* negative errno: -EINVAL for a bad config, -ENOENT, -ENOMEM... */
    char path[128];    /* the JSON path ("listeners[1].port"), "" when none */
    char file[256];    /* the config file or name given, "" when none */
    char text[512];    /* the whole one-line message */
} wharf_error;

/*
 * Reads and completely validates a JSON config file (docs/config.md).
 * Relative module_path entries are taken from the file's directory.
 * Returns 0 and a new config in *out, or a negative errno with *out NULL and
 * *err filled in (err may be NULL): -EINVAL for an invalid config (syntax
 * included), the error of open/read for a file that cannot be read
 * (-ENOENT, -EACCES...), -EFBIG for a file over 1 MiB, -ENOMEM.
 */
int wharf_config_load_file(const char *file, wharf_config **out, wharf_error *err);
/* Same for NUL-terminated JSON text; `name` (NULL: "<string>") stands for
 * the file in messages, and relative paths start at the current directory. */
int wharf_config_load_json(const char *text, const char *name, wharf_config **out,
                           wharf_error *err);
/*
 * Deprecated: wharf_config_load_file / wharf_config_load_json with the
 * message (err->text) copied into the caller's buffer.  Return 0 or -1.
 */
int wharf_config_from_file(const char *file, wharf_config **out, char *err, size_t errlen);
int wharf_config_from_json(const char *text, const char *name, wharf_config **out, char *err,
                           size_t errlen);
/* An empty config to fill in code ("listeners" is an empty array). */
wharf_config *wharf_config_new(void);
/*
 * Sets one value in code: `path` is a JSON path as the error messages use
 * ("workers", "listeners[0].options.prefix", "listeners[2]"; an array index
 * equal to the array's size appends), `json` the value as JSON text ("2",
 * "\"> \"", "{\"port\": 0, \"handler\": \"echo\"}").  Objects on the way are
 * created.  Returns 0, or -1 with the problem in err.  The whole config is
 * validated by wharf_server_start / wharf_server_reload (or
 * wharf_config_check).
 */
int wharf_config_set(wharf_config *cfg, const char *path, const char *json, char *err,
                     size_t errlen);
/* Validates cfg completely (as a start would, without loading modules).
 * Returns 0 or -1 with the problem in err. */
int wharf_config_check(const wharf_config *cfg, char *err, size_t errlen);
/* The effective configuration, every default filled in, as JSON text
 * (free() it).  NULL when cfg is invalid (err says why). */
char *wharf_config_dump(const wharf_config *cfg, char *err, size_t errlen);
void wharf_config_free(wharf_config *cfg);

/* ---- the server ----------------------------------------------------------- */

/* A server that runs nothing yet.  NULL on ENOMEM. */
wharf_server *wharf_server_new(void);
/*
 * Registers a handler compiled into the program: a listener whose "handler"
 * is h->name uses it instead of looking for a module file.  h must stay
 * valid while the server exists.  Returns 0, -EINVAL (srv or h NULL, no
 * name, or an abi_version this library does not load), -EEXIST (the name
 * is taken) or -ENOSPC (64 are registered).
 */
int wharf_server_add_handler(wharf_server *srv, const struct wharf_handler *h);
/*
 * Loads every listener's handler and runs its init, binds every listener,
 * starts the workers and the acceptor.  cfg is copied (the caller keeps and
 * frees it).  Returns 0, or a negative errno with a line in err (nothing
 * left running): -EINVAL (cfg invalid, or a handler's init refused its
 * options), -ENOENT (a handler module not found; a "user" or "group" that
 * does not exist), -EADDRINUSE / -EACCES / ... (a listener cannot be bound:
 * the socket call's code), -EADDRNOTAVAIL (an address does not resolve),
 * -EPERM (cannot become "user"), -EALREADY (already started), -EAGAIN (a
 * thread cannot be started), -ETIMEDOUT, -ENOMEM; the log_file's open(2)
 * code when it cannot be opened.
 */
int wharf_server_start(wharf_server *srv, const wharf_config *cfg, char *err, size_t errlen);
/*
 * Checks cfg as a start would, binding nothing: validates it, resolves
 * every listener's address, loads every handler and runs its init (then
 * its fini).  Returns 0, or a negative errno as wharf_server_start's
 * with a line in err.
 */
int wharf_server_check(wharf_server *srv, const wharf_config *cfg, char *err, size_t errlen);
/*
 * Switches a running server to cfg: builds and checks everything first
 * (modules loaded, inits run, new listeners bound); on any error it returns
 * a negative errno with the reason in err and the server keeps running its
 * old configuration untouched: the codes are wharf_server_start's, and
 * -ESRCH when the server is not running, -ETIMEDOUT when the switch timed
 * out.  Listeners with the same protocol, address and port keep their
 * sockets (nothing is refused); new ones are bound; removed ones stop
 * accepting and their connections finish.  New connections get the new
 * handlers, options, timeouts and limits; open ones keep theirs until they
 * close.  `workers`, `queue_depth` and `work_threads` cannot change without
 * a restart (a change is logged and ignored).  The log level, log_file and
 * debug take effect once the switch is done.  Returns 0 once it is.  The
 * switch is bounded (10 s for the workers, then 10 s for the acceptor): if a
 * worker stays busy in a callback past that, the reload fails (-ETIMEDOUT,
 * counted in reloads_failed) and the old configuration keeps serving; the new one's
 * fini then runs on whichever thread drops it last.  cfg NULL reports a
 * reload the program could not even build a configuration for (its file
 * missing, unreadable or invalid): it changes nothing, counts in
 * reloads_failed and returns -EINVAL (err may then be NULL).
 */
int wharf_server_reload(wharf_server *srv, const wharf_config *cfg, char *err, size_t errlen);
/*
 * Graceful stop: stops accepting, closes connections with nothing in flight
 * at once, lets the others finish for up to shutdown_timeout_ms, closes the
 * rest (reason "shutdown"), joins every thread and runs every fini.  Safe to
 * call more than once, or before a start.
 */
void wharf_server_stop(wharf_server *srv);
/* Stops if needed and frees.  NULL is fine. */
void wharf_server_free(wharf_server *srv);

/* Checks that the server's threads (every worker and the acceptor) are
 * alive: each runs a no-op message, and the call waits up to timeout_ms for
 * all of them (CLOCK_MONOTONIC).  Returns 0, -ETIMEDOUT, -ESRCH (not
 * running) or -ENOMEM.  A ping that timed out keeps nothing allocated once the late
 * threads have answered.  For a watchdog (wharfd's WatchdogSec pings). */
int wharf_server_ping(wharf_server *srv, uint64_t timeout_ms);

/*
 * The listening sockets of the current configuration (every TCP listening
 * socket and UDP socket of every listener), for handing them to another
 * process: wharfd's binary upgrade passes them to the new binary as socket
 * activation does (LISTEN_FDS), and a listener there takes the one bound
 * to its address and port.  Listeners configured on port 0 and UDP
 * listeners with reuse_port are left out (another process binds its own).
 * Writes up to `max` descriptors to fds; they
 * stay the server's (dup them).  Returns how many there are (which may be
 * more than max), -ESRCH when the server is not running, or -EOPNOTSUPP
 * when a listener has "accept": "workers" (its per-worker SO_REUSEPORT
 * sockets cannot be handed over: closing them here would reset the
 * connections queued on them).
 */
int wharf_server_sockets(const wharf_server *srv, int *fds, size_t max);

/*
 * The runtime interface in the spirit of HAProxy's: runs one command line
 * and returns its reply as text in *reply (malloc'ed, one or more lines
 * each ending in "\n"; free() it):
 *   show listeners | show workers | show conns [LISTENER] |
 *   show generations | show limits |
 *   pause listener NAME|* | resume listener NAME|* | drain listener NAME|* |
 *   close conn ID
 * (docs/operating.md, "The admin socket", says what each prints).  pause
 * stops accepting on a listener (the kernel backlog holds new
 * connections); drain stops accepting and closes its idle connections,
 * the busy ones finish; resume accepts again.  These states outlive a
 * reload.  Returns 0, or a negative errno with the reason as the reply:
 * -EINVAL (not a command, or bad arguments), -ENOENT (no such listener or
 * connection), -ESRCH (the server is not running), -ETIMEDOUT (a worker
 * did not answer within 2 s), -ENOMEM (*reply NULL).  Any thread, but one
 * command at a time per server (the caller serialises them with its other
 * wharf_server_* calls).
 */
int wharf_server_command(wharf_server *srv, const char *line, char **reply);

/* The event-loop backend ("epoll" or "io_uring") the last
 * wharf_server_check or wharf_server_start chose from the config's "io"
 * (or the environment variable WHARF_IO), or NULL before either. */
const char *wharf_server_io(const wharf_server *srv);

/* The port listener `name` is bound to (> 0), -ENOENT (no such listener)
 * or -ESRCH (not started, or stopped). */
int wharf_server_port(const wharf_server *srv, const char *name);

/* Room in wharf_listener_stats.closed for enum wharf_close_reason: 16
 * reasons, however many there are now (the slots past the last are 0). */
#define WHARF_CLOSE_REASON_SLOTS 16

/* Counters of one listener, summed over workers (a snapshot).  A listener
 * kept by a reload keeps counting.  256 bytes in every version: later
 * counters come out of `reserved` (see "Public structs" in wharf.h). */
struct wharf_listener_stats {
    uint64_t accepted;          /* TCP connections handed to a worker */
    uint64_t rejected;          /* refused by max_connections_per_source or deny */
    uint64_t open;              /* TCP connections open now */
    uint64_t closed[WHARF_CLOSE_REASON_SLOTS]; /* by enum wharf_close_reason */
    uint64_t bytes_in, bytes_out;
    uint64_t output_buffered;   /* bytes of output buffer memory held now */
    uint64_t datagrams_in, datagrams_out, datagrams_dropped;
    uint64_t datagram_send_calls; /* sendmmsg calls the datagrams_out left in
                                   * (batched: fewer than datagrams_out) */
    uint64_t reserved[6];       /* written as 0 */
};
/* Returns 0, or -ENOENT when there is no listener `name` in the current
 * configuration.  After a stop: the final counters of the last
 * configuration's listeners. */
int wharf_server_stats(const wharf_server *srv, const char *name,
                       struct wharf_listener_stats *out);

/* The server as a whole.  104 bytes in every version: later fields come out
 * of `reserved` (see "Public structs" in wharf.h). */
struct wharf_server_info {
    unsigned workers;
    uint64_t generation;        /* 1 at start, +1 per successful reload */
    uint64_t reloads;           /* successful reloads */
    uint64_t reloads_failed;    /* reloads refused (old configuration kept) */
    uint64_t connections_open;  /* over every listener and generation */
    uint64_t reserved[8];       /* written as 0 */
};
void wharf_server_info(const wharf_server *srv, struct wharf_server_info *out);

/*
 * Installs a report for fatal signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGABRT): one line on the log naming the handler, callback, listener,
 * worker and connection that were running and the fault address (or "stack
 * overflow"), then a backtrace, written with async-signal-safe calls (the
 * backtrace as far as that allows); then the signal is raised again with its
 * default action, so the process dies (and dumps core) as it would have.
 * It runs on an alternate signal stack: every thread the server starts has
 * one, and so does the thread that calls this (call it from any other
 * thread of your own that should report a stack overflow).  wharfd installs
 * it.  Process-wide; idempotent.  Returns 0 or a negative errno
 * (sigaltstack's or sigaction's).
 */
int wharf_crash_report_install(void);

/* ---- the log (process-wide) ------------------------------------------------- */

/*
 * Sends every log line (already formatted: time, level, [listener worker
 * conn], message; no newline) to fn instead of stderr or the log file; NULL
 * goes back to writing them (to the log file if one is set, else stderr).
 * fn may be called from any of the server's threads at once.
 */
void wharf_log_set_callback(void (*fn)(void *arg, enum wharf_log_level level, const char *line),
                            void *arg);
/* Writes the log to `path` (appending, created 0640) instead of stderr;
 * NULL restores stderr.  Returns 0, or open(2)'s negative errno (-EACCES,
 * -ENOENT, ...) or -ENOMEM, the log unchanged. */
int wharf_log_set_file(const char *path);
/* Re-opens the log file and every listener's access_log_file (after log
 * rotation), and reconnects to syslog when the config sends the log there.
 * Returns 0, or the first failure's negative errno (a file that cannot be
 * re-opened stays in use). */
int wharf_log_reopen(void);
/* The most verbose level written (default WHARF_LOG_INFO). */
void wharf_log_set_level(enum wharf_log_level level);

#ifdef __cplusplus
}
#endif
#endif /* WHARF_SERVER_H */
