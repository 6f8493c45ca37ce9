/* script.c - wharf-load's Lua 5.4 scripting (script.h): the states of a run, loading and
 * the hooks, the `wharf` table scripts see (also named `wrk`, so that wrk's scripts that set
 * wrk.method, wrk.body, wrk.headers or call wrk.format run as they are), and the limits that
 * keep a script from taking the generator down: memory per state, instructions per call,
 * bytes per request.
 *
 * Each state keeps four stack slots for the whole run: 1 the message handler of every
 * pcall, 2 the last request returned (so the bytes stay valid until the next call), 3 a
 * request held back for a connection, 4 the fixed request of a wrk-style script (made once
 * by wharf.format()). The ctx values request() returns travel in a registry table
 * ctx[conn][seq] until the response (or the connection's end) takes them out.
 *
 * wrk's order of set-up: the main state is loaded first; then, for each engine thread, its
 * state is made and loaded, setup(thread) runs in the main state with that thread's object
 * (script_thread.c: thread:set copies values into the thread's state, so setup() can hand
 * each thread its own data), and init(args) runs in the thread's state, where wrk.thread is
 * the same thread. done() runs in the main state, which thus keeps what setup() stored.
 *
 * What a script cannot do to the generator (end it, lift the instruction limit, load a
 * binary chunk) script_guard.c takes away from each state. */
#include "script_priv.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STEP_COUNT 1000000 /* the instruction hook runs every this many instructions */

/* The allocator of every state: realloc with a ceiling of SCRIPT_MAX_MEM bytes, past
 * which Lua raises "not enough memory" in the hook that asked. */
static void *script_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct script *s = ud;
    size_t old = ptr ? osize : 0;
    void *p;

    if (nsize == 0) {
        free(ptr);
        s->mem -= old;
        return NULL;
    }
    if (nsize > old && s->mem + (nsize - old) > s->max_mem)
        return NULL;
    p = realloc(ptr, nsize);
    if (p)
        s->mem = s->mem - old + nsize;
    return p;
}

static struct script *state_of(lua_State *L) { return *(struct script **)lua_getextraspace(L); }

/* Every STEP_COUNT instructions: a call that runs past its instruction limit is ended. */
static void step_hook(lua_State *L, lua_Debug *ar)
{
    struct script *s = state_of(L);

    (void)ar;
    if (++s->steps > s->max_ticks) {
        luaL_where(L, 0); /* the running function's file and line */
        lua_pushfstring(L, "more than %d million instructions in one call (an endless loop?)",
                        (int)(s->max_ticks * STEP_COUNT / 1000000));
        lua_concat(L, 2);
        lua_error(L);
    }
}

/* The message handler of every call: the error as text ("FILE:LINE: message"). */
static int msgh(lua_State *L)
{
    if (!lua_isstring(L, 1))
        luaL_tolstring(L, 1, NULL);
    return 1;
}

int script_call(struct script *s, int nargs, int nres)
{
    int rc;

    s->steps = 0;
    rc = lua_pcall(s->L, nargs, nres, SLOT_MSGH);
    if (rc == LUA_ERRMEM) {
        lua_pop(s->L, 1);
        lua_pushfstring(s->L, "not enough memory (a script state may use at most %d MiB)",
                        (int)(s->max_mem >> 20));
    }
    return rc;
}

/* ---- the wharf table -------------------------------------------------------------------- */

/* wharf.format([method [, path [, headers [, body]]]]): an HTTP/1.1 request, each part
 * defaulting to wharf.method, wharf.path, wharf.headers, wharf.body as wrk.format does;
 * Host is the target unless the headers have one, Content-Length is added for a body. */
static int lua_format(lua_State *L)
{
    static const char *const fields[] = {"method", "path", "headers", "body"};
    bool host = false, clen = false;
    size_t blen = 0;
    int i;

    lua_settop(L, 4);
    lua_getglobal(L, "wharf"); /* 5 */
    for (i = 0; i < 4; i++)
        if (lua_isnil(L, i + 1) && lua_istable(L, 5)) {
            lua_getfield(L, 5, fields[i]);
            lua_replace(L, i + 1);
        }
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    if (!lua_isnil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    if (!lua_isnil(L, 4))
        luaL_checklstring(L, 4, &blen);
    /* the request grows at index 6, a piece at a time (a few headers: no buffer needed) */
    lua_pushfstring(L, "%s %s HTTP/1.1\r\n", lua_tostring(L, 1), lua_tostring(L, 2));
    if (!lua_isnil(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
                const char *k = lua_tostring(L, -2);

                host |= !strcasecmp(k, "host");
                clen |= !strcasecmp(k, "content-length");
                lua_pushvalue(L, 6);
                lua_pushfstring(L, "%s: %s\r\n", k, lua_tostring(L, -2));
                lua_concat(L, 2);
                lua_replace(L, 6);
            }
            lua_pop(L, 1);
        }
    }
    if (!host) {
        lua_getfield(L, 5, "target");
        lua_pushfstring(L, "Host: %s\r\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        lua_remove(L, -2);
        lua_concat(L, 2);
    }
    if (!lua_isnil(L, 4) && !clen) {
        lua_pushfstring(L, "Content-Length: %I\r\n", (lua_Integer)blen);
        lua_concat(L, 2);
    }
    lua_pushliteral(L, "\r\n");
    lua_concat(L, 2);
    if (!lua_isnil(L, 4)) {
        lua_pushvalue(L, 4);
        lua_concat(L, 2);
    }
    return 1;
}

/* The `wharf` table (and its alias `wrk`): method, path, headers, body, format, target,
 * host, port, thread (the thread's object; nil in the main state), threads, lookup,
 * connect; state_init adds request. */
static void push_wharf(lua_State *L, const struct script_params *p, struct script_set *ss, int id)
{
    lua_createtable(L, 0, 12);
    lua_pushstring(L, p->method ? p->method : "GET");
    lua_setfield(L, -2, "method");
    if (p->body) {
        lua_pushlstring(L, (const char *)p->body, p->body_len);
        lua_setfield(L, -2, "body");
    }
    lua_pushstring(L, p->path_default ? p->path_default : "/");
    lua_setfield(L, -2, "path");
    lua_newtable(L);
    lua_setfield(L, -2, "headers");
    lua_pushcfunction(L, lua_format);
    lua_setfield(L, -2, "format");
    lua_pushstring(L, p->target);
    lua_setfield(L, -2, "target");
    lua_pushstring(L, p->host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, p->port);
    lua_setfield(L, -2, "port");
    if (id >= 0) { /* wrk.thread: this thread's object (script_thread.c) */
        script_thread_push(L, ss, (unsigned)id);
        lua_setfield(L, -2, "thread");
    }
    lua_pushinteger(L, p->threads);
    lua_setfield(L, -2, "threads");
    script_addr_lib(L); /* lookup, connect (script_addr.c) */
    lua_pushvalue(L, -1);
    lua_setglobal(L, "wrk");
    lua_setglobal(L, "wharf");
}

/* ---- loading -------------------------------------------------------------------------------- */

static void state_free(struct script *s)
{
    if (!s)
        return;
    if (s->L)
        lua_close(s->L);
    free(s);
}

/* A hook the script defines: its registry reference, or LUA_NOREF when it has none.
 * Returns -1 with a message when the global is something else than a function. */
static int hook_ref(struct script *s, const char *name, int *ref, char *err, size_t errlen)
{
    int t = lua_getglobal(s->L, name);

    *ref = LUA_NOREF;
    if (t == LUA_TNIL) {
        lua_pop(s->L, 1);
        return 0;
    }
    if (t != LUA_TFUNCTION) {
        snprintf(err, errlen, "--script %s: '%s' is a %s, expected a function", s->path, name,
                 lua_typename(s->L, t));
        lua_pop(s->L, 1);
        return -1;
    }
    *ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
    return 0;
}

/* Runs the global hook `name` (if defined) with the value on top of the stack as its one
 * argument (popped). Returns 0, or -1 with a message naming the hook. */
static int run_hook1(struct script *s, const char *name, char *err, size_t errlen)
{
    if (lua_getglobal(s->L, name) != LUA_TFUNCTION) {
        lua_pop(s->L, 2);
        return 0;
    }
    lua_insert(s->L, -2);
    if (script_call(s, 1, 0) != LUA_OK) {
        snprintf(err, errlen, "--script %s: in %s(): %s", s->path, name, lua_tostring(s->L, -1));
        lua_pop(s->L, 1);
        return -1;
    }
    return 0;
}

/* Whether a wrk-style script changed what wharf.format() makes by default. */
static bool wharf_changed(lua_State *L, const struct script_params *p)
{
    bool changed = false;

    lua_getglobal(L, "wharf");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    lua_getfield(L, -1, "method");
    changed |= !lua_isstring(L, -1) ||
               strcmp(lua_tostring(L, -1), p->method ? p->method : "GET") != 0;
    lua_getfield(L, -2, "path");
    changed |= !lua_isstring(L, -1) ||
               strcmp(lua_tostring(L, -1), p->path_default ? p->path_default : "/") != 0;
    lua_getfield(L, -3, "body");
    if (p->body) {
        size_t n = 0;
        const char *b = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;

        changed |= !b || n != p->body_len || memcmp(b, p->body, n) != 0;
    } else {
        changed |= !lua_isnil(L, -1);
    }
    lua_getfield(L, -4, "headers");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        if (lua_next(L, -2)) {
            changed = true;
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 5);
    return changed;
}

/* Makes one state of ss and loads the script into it (id: its engine thread, -1 for the
 * main state, whose wrk.thread is nil). Runs no hook. Returns NULL with a message in err. */
static struct script *state_new(const struct script_params *p, struct script_set *ss, int id,
                                char *err, size_t errlen)
{
    struct script *s = calloc(1, sizeof(*s));
    lua_State *L;
    int rc;

    if (s) {
        s->max_mem = p->max_mem ? p->max_mem : SCRIPT_MAX_MEM;
        s->max_ticks = (p->max_steps ? p->max_steps : SCRIPT_MAX_STEPS) / STEP_COUNT;
        if (s->max_ticks == 0)
            s->max_ticks = 1;
    }
    if (!s || !(s->L = L = lua_newstate(script_alloc, s))) {
        snprintf(err, errlen, "--script %s: out of memory", p->path);
        free(s);
        return NULL;
    }
    s->path = p->path;
    s->set = ss;
    s->id = id;
    s->held_conn = -1;
    s->http = p->http;
    s->max_request = p->max_request;
    s->req_ref = s->resp_ref = s->ctx_ref = s->delay_ref = LUA_NOREF;
    *(struct script **)lua_getextraspace(L) = s;
    luaL_openlibs(L);
    script_guard(L);
    script_thread_open(L);
    script_addr_open(L);
    lua_sethook(L, step_hook, LUA_MASKCOUNT, STEP_COUNT);
    lua_settop(L, 0);
    lua_pushcfunction(L, msgh);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    push_wharf(L, p, ss, id);
    rc = luaL_loadfilex(L, p->path, "t");
    if (rc == LUA_OK)
        rc = script_call(s, 0, 0);
    if (rc != LUA_OK) {
        snprintf(err, errlen, "--script %s: %s", p->path, lua_tostring(L, -1));
        goto fail;
    }
    if (hook_ref(s, "setup", &rc, err, errlen) || hook_ref(s, "init", &rc, err, errlen) ||
        hook_ref(s, "done", &rc, err, errlen) || hook_ref(s, "request", &s->req_ref, err, errlen) ||
        hook_ref(s, "response", &s->resp_ref, err, errlen) ||
        hook_ref(s, "delay", &s->delay_ref, err, errlen))
        goto fail;
    lua_settop(L, SLOT_FIXED);
    return s;
fail:
    state_free(s);
    return NULL;
}

/* wharf.request() (wrk.request()): returns the request wharf.format() made after init(). */
static int lua_request(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}

/* Thread state s, after setup(): init(args), then what the run needs: the arguments
 * response() takes, wharf.request(), and with --proto http and no request() the request a
 * wrk-style script made by setting wharf.method, path, headers or body. Returns 0, or -1
 * with a message in err. */
static int state_init(struct script *s, const struct script_params *p, char *err, size_t errlen)
{
    lua_State *L = s->L;
    unsigned i;

    lua_createtable(L, (int)p->nargs, 0);
    for (i = 0; i < p->nargs; i++) {
        lua_pushstring(L, p->args[i]);
        lua_rawseti(L, -2, i + 1);
    }
    if (run_hook1(s, "init", err, errlen) != 0)
        return -1;
    if (s->resp_ref != LUA_NOREF) {
        lua_Debug ar;

        lua_rawgeti(L, LUA_REGISTRYINDEX, s->resp_ref);
        lua_getinfo(L, ">u", &ar);
        s->resp_args = ar.isvararg ? 4 : ar.nparams;
    }
    if (p->http) {
        /* as wrk: wharf.request() returns the request wharf.format() makes now */
        lua_getglobal(L, "wharf");
        lua_getfield(L, -1, "format");
        if (lua_isfunction(L, -1) && script_call(s, 0, 1) == LUA_OK && lua_isstring(L, -1)) {
            lua_pushcclosure(L, lua_request, 1);
            lua_setfield(L, -2, "request");
        }
        lua_settop(L, SLOT_FIXED);
    }
    if (s->req_ref == LUA_NOREF && p->http && wharf_changed(L, p)) {
        /* as wrk: a script that only sets wrk.method/body/headers/path sends one request,
         * made once */
        lua_getglobal(L, "wharf");
        lua_getfield(L, -1, "format");
        lua_remove(L, -2);
        if (!lua_isfunction(L, -1) || script_call(s, 0, 1) != LUA_OK || !lua_isstring(L, -1)) {
            snprintf(err, errlen, "--script %s: wharf.format() after init(): %s", p->path,
                     lua_isstring(L, -1) ? lua_tostring(L, -1) : "no request made");
            return -1;
        }
        lua_replace(L, SLOT_FIXED);
        s->fixed = true;
    }
    lua_newtable(L);
    s->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, SLOT_FIXED);
    return 0;
}

/* setup(thread) in the main state, for engine thread i. Returns 0, or -1 with a message. */
static int run_setup(struct script_set *ss, unsigned i, char *err, size_t errlen)
{
    script_thread_push(ss->main->L, ss, i);
    return run_hook1(ss->main, "setup", err, errlen);
}

struct script_set *script_set_open(const struct script_params *p, char *err, size_t errlen)
{
    struct script_set *ss = calloc(1, sizeof(*ss));
    unsigned i;

    if (!ss || !(ss->th = calloc(p->threads, sizeof(*ss->th)))) {
        free(ss);
        snprintf(err, errlen, "--script %s: out of memory", p->path);
        return NULL;
    }
    ss->n = p->threads;
    ss->connect_timeout_ms = p->connect_timeout_ms ? p->connect_timeout_ms : 2000;
    ss->family = strchr(p->host, ':') ? AF_INET6 : AF_INET;
    snprintf(ss->target, sizeof(ss->target), ss->family == AF_INET6 ? "[%s]:%u" : "%s:%u",
             p->host, p->port);
    if (!(ss->main = state_new(p, ss, -1, err, errlen)))
        goto fail;
    for (i = 0; i < p->threads; i++)
        if (!(ss->th[i] = state_new(p, ss, (int)i, err, errlen)) ||
            run_setup(ss, i, err, errlen) != 0 || state_init(ss->th[i], p, err, errlen) != 0)
            goto fail;
    ss->has_request = script_has_request(ss->th[0]);
    ss->opened = true;
    return ss;
fail:
    script_set_free(ss);
    return NULL;
}

void script_set_free(struct script_set *ss)
{
    unsigned i;

    if (!ss)
        return;
    for (i = 0; i < ss->n; i++)
        state_free(ss->th[i]);
    state_free(ss->main);
    free(ss->th);
    free(ss);
}

struct script *script_thread(const struct script_set *ss, unsigned i) { return ss->th[i]; }
bool script_set_has_request(const struct script_set *ss) { return ss->has_request; }
bool script_has_request(const struct script *s) { return s->fixed || s->req_ref != LUA_NOREF; }
bool script_has_response(const struct script *s) { return s->resp_ref != LUA_NOREF; }
bool script_set_has_delay(const struct script_set *ss) { return ss->th[0]->delay_ref != LUA_NOREF; }
bool script_has_delay(const struct script *s) { return s->delay_ref != LUA_NOREF; }

/* ---- the hooks during the run ------------------------------------------------------------- */

/* The request's bytes from the value at SLOT_LAST, checked against --max-request. */
static enum script_rc request_bytes(struct script *s, const uint8_t **req, size_t *len, char *why,
                                    size_t whylen)
{
    *req = (const uint8_t *)lua_tolstring(s->L, SLOT_LAST, len);
    if (*len > s->max_request) {
        snprintf(why, whylen, "request_too_long: request() returned %zu bytes, more than "
                 "--max-request %u (%s)", *len, s->max_request, s->path);
        return SCRIPT_TOO_LONG;
    }
    return SCRIPT_OK;
}

enum script_rc script_request(struct script *s, uint32_t conn, uint64_t seq, const uint8_t **req,
                              size_t *len, char *why, size_t whylen)
{
    lua_State *L = s->L;

    if (s->held_conn == (int64_t)conn) {
        s->held_conn = -1;
        lua_copy(L, SLOT_HELD, SLOT_LAST);
        return request_bytes(s, req, len, why, whylen);
    }
    if (s->fixed) {
        lua_copy(L, SLOT_FIXED, SLOT_LAST);
        return request_bytes(s, req, len, why, whylen);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->req_ref);
    lua_pushinteger(L, conn);
    lua_pushinteger(L, (lua_Integer)seq);
    if (script_call(s, 2, 2) != LUA_OK) {
        snprintf(why, whylen, "script_error in request(): %s", lua_tostring(L, -1));
        lua_settop(L, SLOT_FIXED);
        return SCRIPT_ERROR;
    }
    if (lua_type(L, -2) != LUA_TSTRING) {
        snprintf(why, whylen, "script_error in request(): returned a %s, expected a string (%s)",
                 luaL_typename(L, -2), s->path);
        lua_settop(L, SLOT_FIXED);
        return SCRIPT_ERROR;
    }
    if (!lua_isnil(L, -1)) { /* ctx[conn][seq] = the second value */
        s->ctx_used = true;
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->ctx_ref);
        if (lua_rawgeti(L, -1, conn) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_rawseti(L, -3, conn);
        }
        lua_pushvalue(L, -3);
        lua_rawseti(L, -2, (lua_Integer)seq);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    lua_replace(L, SLOT_LAST);
    return request_bytes(s, req, len, why, whylen);
}

void script_hold(struct script *s, uint32_t conn)
{
    lua_copy(s->L, SLOT_LAST, SLOT_HELD);
    s->held_conn = conn;
}

enum script_rc script_delay(struct script *s, uint64_t *ms, char *why, size_t whylen)
{
    lua_State *L = s->L;
    lua_Number v;

    *ms = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->delay_ref);
    if (script_call(s, 0, 1) != LUA_OK) {
        snprintf(why, whylen, "script_error in delay(): %s", lua_tostring(L, -1));
        lua_settop(L, SLOT_FIXED);
        return SCRIPT_ERROR;
    }
    if (lua_type(L, -1) != LUA_TNUMBER) {
        snprintf(why, whylen, "script_error in delay(): returned %s%s, expected milliseconds "
                 "(a number from 0 to %u) (%s)", lua_isnil(L, -1) ? "" : "a ",
                 luaL_typename(L, -1), SCRIPT_MAX_DELAY_MS, s->path);
        lua_settop(L, SLOT_FIXED);
        return SCRIPT_ERROR;
    }
    v = lua_tonumber(L, -1);
    if (!(v >= 0 && v <= SCRIPT_MAX_DELAY_MS)) { /* NaN fails both */
        snprintf(why, whylen, "script_error in delay(): returned %s, expected milliseconds "
                 "from 0 to %u (%s)", lua_tostring(L, -1), SCRIPT_MAX_DELAY_MS, s->path);
        lua_settop(L, SLOT_FIXED);
        return SCRIPT_ERROR;
    }
    *ms = (uint64_t)v; /* a fraction of a millisecond is dropped, as wrk drops it */
    lua_settop(L, SLOT_FIXED);
    return SCRIPT_OK;
}

void script_conn_closed(struct script *s, uint32_t conn)
{
    if (s->held_conn == (int64_t)conn) {
        s->held_conn = -1;
        lua_pushnil(s->L);
        lua_replace(s->L, SLOT_HELD);
    }
    if (!s->ctx_used)
        return;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->ctx_ref);
    lua_pushnil(s->L);
    lua_rawseti(s->L, -2, conn);
    lua_pop(s->L, 1);
}

bool script_stopped(const struct script *s) { return s->stop; }

bool script_addr(const struct script *s, const struct sockaddr **sa, socklen_t *len)
{
    if (!s->addr_set)
        return false;
    *sa = (const struct sockaddr *)&s->addr;
    *len = s->addrlen;
    return true;
}

const char *script_addr_text(const struct script_set *ss, unsigned i)
{
    return i < ss->n && ss->th[i]->addr_set ? ss->th[i]->addr_text : NULL;
}

/* Pushes the ctx value of request (conn, seq), taking it out of the table (nil if none). */
static void push_ctx(struct script *s, uint32_t conn, uint64_t seq)
{
    lua_State *L = s->L;

    if (!s->ctx_used) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ctx_ref);
    if (lua_rawgeti(L, -1, conn) != LUA_TTABLE) {
        lua_pop(L, 2);
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, -1, (lua_Integer)seq);
    lua_pushnil(L);
    lua_rawseti(L, -3, (lua_Integer)seq);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

void script_reply_dropped(struct script *s, uint32_t conn, uint64_t seq)
{
    if (!s->ctx_used)
        return;
    push_ctx(s, conn, seq);
    lua_pop(s->L, 1);
}

/* Where the headers of an HTTP reply end (the byte after the empty line), 0 if they do
 * not. */
static size_t http_head_end(const uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len; i++)
        if (p[i] == '\n' && (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n')))
            return i + (p[i + 1] == '\n' ? 2 : 3);
    return 0;
}

/* Pushes the headers of an HTTP reply as a table (name -> value, as sent); sets *chunked
 * when Transfer-Encoding says chunked. */
static void push_http_headers(lua_State *L, const uint8_t *p, size_t head, bool *chunked)
{
    size_t i = 0, end, c, v;

    lua_newtable(L);
    while (i < head && p[i] != '\n') /* the status line */
        i++;
    for (i++; i < head; i = end + 1) {
        for (end = i; end < head && p[end] != '\n'; end++)
            ;
        for (c = i; c < end && p[c] != ':'; c++)
            ;
        if (c == end || c == i)
            continue;
        for (v = c + 1; v < end && (p[v] == ' ' || p[v] == '\t'); v++)
            ;
        size_t vend = end > v && p[end - 1] == '\r' ? end - 1 : end;

        if (c - i == 17 && !strncasecmp((const char *)p + i, "transfer-encoding", 17) &&
            vend - v >= 7 && !strncasecmp((const char *)p + vend - 7, "chunked", 7))
            *chunked = true;
        lua_pushlstring(L, (const char *)p + i, c - i);
        lua_pushlstring(L, (const char *)p + v, vend - v);
        lua_rawset(L, -3);
    }
}

/* Pushes the body of an HTTP reply: the bytes after the headers, with the chunked coding
 * taken off (the reply was framed whole, so the chunks are all there). */
static void push_http_body(lua_State *L, const uint8_t *p, size_t len, size_t head, bool chunked)
{
    luaL_Buffer b;
    size_t i = head;

    if (!chunked) {
        lua_pushlstring(L, (const char *)p + head, len - head);
        return;
    }
    luaL_buffinit(L, &b);
    while (i < len) {
        size_t n = 0;

        for (; i < len && ((p[i] >= '0' && p[i] <= '9') || ((p[i] | 32) >= 'a' && (p[i] | 32) <= 'f')); i++)
            n = n * 16 + (size_t)(p[i] <= '9' ? p[i] - '0' : (p[i] | 32) - 'a' + 10);
        while (i < len && p[i] != '\n')
            i++;
        i++;
        if (n == 0 || i >= len)
            break;
        if (n > len - i)
            n = len - i;
        luaL_addlstring(&b, (const char *)p + i, n);
        i += n;
        while (i < len && p[i] != '\n')
            i++;
        i++;
    }
    luaL_pushresult(&b);
}

enum script_rc script_response(struct script *s, uint32_t conn, uint64_t seq, const uint8_t *reply,
                               size_t len, int status, char *why, size_t whylen)
{
    lua_State *L = s->L;
    int nargs;

    if (s->resp_ref == LUA_NOREF)
        return SCRIPT_OK;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->resp_ref);
    if (s->http) {
        bool chunked = false;
        size_t head = http_head_end(reply, len);

        lua_pushinteger(L, status);
        if (s->resp_args >= 2)
            push_http_headers(L, reply, head ? head : len, &chunked);
        else
            lua_pushnil(L);
        if (s->resp_args >= 3)
            push_http_body(L, reply, len, head ? head : len, chunked);
        else
            lua_pushnil(L);
        push_ctx(s, conn, seq);
        nargs = 4;
    } else {
        lua_pushlstring(L, (const char *)reply, len);
        push_ctx(s, conn, seq);
        nargs = 2;
    }
    if (script_call(s, nargs, 2) != LUA_OK) {
        snprintf(why, whylen, "script_error in response(): %s", lua_tostring(L, -1));
        lua_settop(L, SLOT_FIXED);
        return SCRIPT_ERROR;
    }
    if (lua_isboolean(L, -2) && !lua_toboolean(L, -2)) {
        snprintf(why, whylen, "script_rejected on connection %u: response() returned false%s%s",
                 conn, lua_isstring(L, -1) ? ": " : "", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        lua_settop(L, SLOT_FIXED);
        return SCRIPT_REJECTED;
    }
    lua_settop(L, SLOT_FIXED);
    return SCRIPT_OK;
}
