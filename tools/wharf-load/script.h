/* script.h - wharf-load's Lua 5.4 scripting (--script FILE.lua): hooks in the places wrk
 * offers them, run by script.c.
 *
 * A run's script is a struct script_set: one lua_State per engine thread (never shared:
 * thread i uses only script_thread(set, i)) and a main state for setup() and done(). All
 * of them are made and loaded by script_set_open before the run starts, in the main
 * thread, so that a script that does not load (syntax, a runtime error at its top level or
 * in setup() or init()) stops wharf-load before any connection is made.
 *
 * Hooks (global functions of the script, each optional):
 *   setup(thread)        in the main state, once per engine thread, as wrk: the thread
 *                        object (script_thread.c): thread.id (0-based), thread.threads,
 *                        thread.addr, thread:get(name), thread:set(name, value) (values
 *                        copied between the states), thread:stop()
 *   init(args)           then, in that thread's state (where wrk.thread is the same thread):
 *                        args are the --script-arg values, in order
 *   request(conn, seq)   returns the bytes of the next request (a string) on connection
 *                        `conn` (its {seq} is seq); a second value, if any, is handed to the
 *                        response() of that request as `ctx`
 *   response(...)        a complete reply: --proto http: response(status, headers, body, ctx)
 *                        (headers a table name -> value, body with chunked coding removed);
 *                        other modes: response(reply, ctx) with the reply's bytes as framed.
 *                        Returning false (and optionally a reason) rejects it.
 *   delay()              closed loop only: milliseconds (0 .. SCRIPT_MAX_DELAY_MS) the
 *                        connection waits before its next request (the engine asks before
 *                        each request and keeps the wait on a timer of the thread's loop)
 *   done(summary, latency, requests)  once, in the main state, after the report
 *                        (script_done.c): latency and requests (each thread's replies per
 *                        second over each --interval) are statistics objects as wrk's
 *
 * wrk.lookup(host, service) and wrk.connect(addr) (script_addr.c) resolve and try
 * addresses; an address object can be assigned to thread.addr.
 *
 * Limits: a request longer than --max-request is refused (SCRIPT_TOO_LONG); a state may
 * use at most SCRIPT_MAX_MEM bytes; one call may run at most SCRIPT_MAX_STEPS Lua
 * instructions (an endless loop becomes a runtime error, not a hung run). wharf-load uses
 * these defaults; the tests ask for smaller limits through script_params. */
#ifndef WLOAD_SCRIPT_H
#define WLOAD_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SCRIPT_MAX_ARGS 32
#define SCRIPT_MAX_MEM (64u << 20)      /* bytes per Lua state */
#define SCRIPT_MAX_STEPS 200000000ull   /* Lua instructions per hook call */
#define SCRIPT_DEFAULT_MAX_REQUEST (64u << 10)
#define SCRIPT_MAX_MAX_REQUEST (16u << 20)
#define SCRIPT_MAX_DELAY_MS 3600000u      /* the longest wait delay() may ask: an hour */

struct script;
struct script_set;
struct load_result;

/* What the script is told about the run (opts.c fills it). */
struct script_params {
    const char *path;
    const char *args[SCRIPT_MAX_ARGS];
    unsigned nargs;
    unsigned threads;
    bool http;              /* --proto http: HTTP responses, wharf.format() defaults */
    const char *target;     /* HOST:PORT as given (the Host header of wharf.format) */
    const char *host;       /* numeric address */
    unsigned port;
    const char *path_default; /* --proto http: the path (wharf.path) */
    const char *method;       /* --proto http: the method (wharf.method; NULL: GET) */
    const uint8_t *body;      /* --proto http: the --data body (wharf.body; NULL: nil) */
    size_t body_len;
    uint32_t max_request;
    size_t max_mem;     /* bytes per state (0: SCRIPT_MAX_MEM) */
    uint64_t max_steps; /* Lua instructions per hook call (0: SCRIPT_MAX_STEPS) */
    uint64_t connect_timeout_ms; /* wrk.connect's limit (--connect-timeout; 0: 2000) */
};

/* What a hook call came to. */
enum script_rc {
    SCRIPT_OK,
    SCRIPT_REJECTED, /* response() returned false */
    SCRIPT_ERROR,    /* a runtime error in the hook, or a request that is not a string */
    SCRIPT_TOO_LONG, /* request() returned more than --max-request bytes */
};

/* Makes and loads the states of a run: the script is loaded into each; then, thread by
 * thread, setup(thread) runs in the main state and init(args) in the thread's state.
 * Returns the set, or NULL with a message in err that names the file, the line and the hook
 * (or what could not be read). */
struct script_set *script_set_open(const struct script_params *p, char *err, size_t errlen);
void script_set_free(struct script_set *ss);

/* The state of engine thread i (0 <= i < threads). */
struct script *script_thread(const struct script_set *ss, unsigned i);

/* Whether the script makes the requests (it defines request(), or with --proto http it set
 * wharf.method, wharf.path, wharf.headers or wharf.body, as wrk's scripts do: the request
 * is then wharf.format() made once after init). */
bool script_set_has_request(const struct script_set *ss);
bool script_has_request(const struct script *s);
bool script_has_response(const struct script *s);
/* Whether the script defines delay() (the engine then paces each connection by it). */
bool script_set_has_delay(const struct script_set *ss);
bool script_has_delay(const struct script *s);

/* Thread side: the bytes of the next request of connection conn. *req points into the
 * state (valid until the next call on s). A request held back by script_hold for conn is
 * given again first, without calling request(). On failure why says what (the hook, the
 * file and line of a runtime error). Cost: one Lua call, no copy. */
enum script_rc script_request(struct script *s, uint32_t conn, uint64_t seq, const uint8_t **req,
                              size_t *len, char *why, size_t whylen);
/* The request just returned by script_request could not go yet: it is kept for conn. */
void script_hold(struct script *s, uint32_t conn);

/* Thread side: delay(), asked before a connection's next request: *ms, the milliseconds to
 * wait (0 .. SCRIPT_MAX_DELAY_MS, a fraction dropped). A runtime error, a value that is not
 * a number, a negative one, NaN or more than SCRIPT_MAX_DELAY_MS is SCRIPT_ERROR, named in
 * why. Cost: one Lua call. */
enum script_rc script_delay(struct script *s, uint64_t *ms, char *why, size_t whylen);

/* Thread side: hands a complete reply (len bytes, status as framed) of the request (conn,
 * seq) to response(). Returns SCRIPT_OK when the script has no response(). */
enum script_rc script_response(struct script *s, uint32_t conn, uint64_t seq, const uint8_t *reply,
                               size_t len, int status, char *why, size_t whylen);

/* Thread side: the reply of request (conn, seq) failed an earlier check, so response() is
 * not called: its ctx value is dropped. */
void script_reply_dropped(struct script *s, uint32_t conn, uint64_t seq);

/* Thread side: connection conn ended: the ctx values of its requests in flight and a
 * request held for it are dropped. */
void script_conn_closed(struct script *s, uint32_t conn);

/* Thread side: whether the thread's script called wrk.thread:stop() (the thread then sends
 * nothing more, drains and ends). Cost: a load. */
bool script_stopped(const struct script *s);

/* The address the script gave the thread's connections (thread.addr, set in setup() or
 * init()): true with *sa and *len set, false when they go to the target. */
bool script_addr(const struct script *s, const struct sockaddr **sa, socklen_t *len);

/* The thread.addr of engine thread i as the script gave it, or NULL when it was not set. */
const char *script_addr_text(const struct script_set *ss, unsigned i);

/* After the run: done(summary, latency, requests) in the main state (script_done.c).
 * Returns 0 (also when there is no done()), or -1 with a message in err. */
int script_done(struct script_set *ss, const struct load_result *res, bool open_loop, char *err,
                size_t errlen);

#endif
