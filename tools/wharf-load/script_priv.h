/* script_priv.h - what the files of wharf-load's Lua scripting share (not for the
 * engine, which uses script.h): a script state, the set of a run's states, and the thread
 * objects of wrk's thread API (script_thread.c) that script.c hands to setup() and sets as
 * wrk.thread. */
#ifndef WLOAD_SCRIPT_PRIV_H
#define WLOAD_SCRIPT_PRIV_H

#include "script.h"

#include <lua.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct script {
    lua_State *L;
    const char *path;
    struct script_set *set; /* the run's states this one belongs to */
    int id;              /* engine thread number; -1 for the main state */
    size_t mem;          /* bytes the state holds (script_alloc) */
    uint64_t steps;      /* hook runs in the current call */
    int req_ref, resp_ref, ctx_ref; /* registry: request, response, the ctx table */
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
    char addr_text[64]; /* as given: "ADDR:PORT" or "[ADDR]:PORT" */
};

struct script_set {
    struct script **th;
    unsigned n;
    struct script *main;
    bool has_request;
    bool opened;        /* script_set_open is done: the run may start, thread.addr is fixed */
    char target[300];   /* the target's numeric address as thread.addr shows it */
    int family;         /* the target's address family: a new thread.addr must have it */
};

/* Takes from a state whose libraries are open what a script may not do to the generator
 * (script_guard.c): os.exit, debug.sethook, binary chunks. */
void script_guard(lua_State *L);

/* Registers the metatable of thread objects in L (once per state). */
void script_thread_open(lua_State *L);

/* Pushes onto L the thread object of engine thread idx of ss: thread.id, thread.threads,
 * thread.addr (settable before the run), thread:get(name), thread:set(name, value) (values
 * copied between states as wrk copies them), thread:stop() (in the thread's own state). */
void script_thread_push(lua_State *L, struct script_set *ss, unsigned idx);

#endif
