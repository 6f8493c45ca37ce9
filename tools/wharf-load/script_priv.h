/* script_priv.h - what the files of wharf-load's Lua scripting share (not for the
 * engine, which uses script.h): a script state, the set of a run's states, the thread
 * objects of wrk's thread API (script_thread.c) that script.c hands to setup() and sets as
 * wrk.thread, the address objects of wrk.lookup and wrk.connect (script_addr.c), and the
 * objects done() receives (script_done.c). */
#ifndef WLOAD_SCRIPT_PRIV_H
#define WLOAD_SCRIPT_PRIV_H

#include "script.h"

#include <lua.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* The stack slots every state keeps for the whole run (script.c): the message handler of
 * every call, the last request returned, a request held back for a connection, the fixed
 * request of a wrk-style script. */
#define SLOT_MSGH 1
#define SLOT_LAST 2
#define SLOT_HELD 3
#define SLOT_FIXED 4

#define SCRIPT_ADDR_TEXT 96 /* an address as text: "ADDR:PORT", "[ADDR%SCOPE]:PORT" */

struct script {
    lua_State *L;
    const char *path;
    struct script_set *set; /* the run's states this one belongs to */
    int id;              /* engine thread number; -1 for the main state */
    size_t mem;          /* bytes the state holds (script_alloc) */
    uint64_t steps;      /* hook runs in the current call */
    int req_ref, resp_ref, ctx_ref; /* registry: request, response, the ctx table */
    int delay_ref;       /* registry: delay() (LUA_NOREF: none) */
    bool fixed;          /* SLOT_FIXED holds the request (wrk-style script) */
    bool ctx_used;       /* request() has returned a ctx value at least once */
    int64_t held_conn;   /* connection SLOT_HELD is for (-1: none) */
    int resp_args;       /* arguments response() takes (http: status 1, headers 2, body 3) */
    bool http;
    uint32_t max_request;
    size_t max_mem;      /* limits (script_params) */
    uint64_t max_ticks;  /* hook runs per call: max_steps / STEP_COUNT */
    /* wrk's thread API (thread states): thread:stop() was called; thread.addr was set */
    bool stop;
    bool addr_set;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char addr_text[SCRIPT_ADDR_TEXT]; /* as given: "ADDR:PORT" or "[ADDR]:PORT" */
};

struct script_set {
    struct script **th;
    unsigned n;
    struct script *main;
    bool has_request;
    bool opened;        /* script_set_open is done: the run may start, thread.addr is fixed */
    char target[300];   /* the target's numeric address as thread.addr shows it */
    int family;         /* the target's address family: a new thread.addr must have it */
    uint64_t connect_timeout_ms; /* wrk.connect waits this long at most */
};

/* Calls the function below its nargs arguments on s's stack (script.c), under the
 * instruction limit, expecting nres results. Returns the lua_pcall status; on failure the
 * message is left on the stack. */
int script_call(struct script *s, int nargs, int nres);

/* Takes from a state whose libraries are open what a script may not do to the generator
 * (script_guard.c): os.exit, debug.sethook, binary chunks. */
void script_guard(lua_State *L);

/* Registers the metatable of thread objects in L (once per state). */
void script_thread_open(lua_State *L);

/* Pushes onto L the thread object of engine thread idx of ss: thread.id, thread.threads,
 * thread.addr (settable before the run), thread:get(name), thread:set(name, value) (values
 * copied between states as wrk copies them), thread:stop() (in the thread's own state). */
void script_thread_push(lua_State *L, struct script_set *ss, unsigned idx);

/* Registers the metatable of address objects in L (once per state). */
void script_addr_open(lua_State *L);

/* Adds lookup and connect to the table on top of L's stack (the wharf table). */
void script_addr_lib(lua_State *L);

/* Reads the address at idx of L: an address object (wrk.lookup) or a numeric "ADDR:PORT"
 * string ("[ADDR]:PORT" for IPv6). Sets *ss, *len and text (the address as text). Raises
 * a Lua error naming `who` when it is neither. */
void script_addr_arg(lua_State *L, int idx, const char *who, struct sockaddr_storage *ss,
                     socklen_t *len, char *text, size_t textlen);

#endif
