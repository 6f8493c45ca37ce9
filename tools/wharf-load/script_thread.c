/* script_thread.c - wrk's thread API for wharf-load's Lua scripts (script.h): the thread
 * objects that setup(thread) receives in the main state and that each thread state sees as
 * wrk.thread, with thread:get(name), thread:set(name, value), thread:stop(), thread.addr
 * (an address object of wrk.lookup or "ADDR:PORT" when set, the string when read) and, as wharf-load's own, thread.id and thread.threads; and the copying of values between
 * two Lua states that get and set do, as wrk's script_copy_value does: nil, booleans,
 * numbers, strings and tables of them (a function, a coroutine or a userdata is refused by
 * name, as wrk refuses it).
 *
 * Two states never run at once here: the main state calls setup() before the engine
 * threads start and done() after they have been joined, and a thread state reaches only its
 * own globals through its own object (the objects of other threads cannot be copied into
 * it). A value crosses as bytes: written out of the source state by calls that cannot raise
 * a Lua error, then rebuilt in the destination inside a protected call there, so that an
 * error in one state (out of memory, a stack overflow) never unwinds through the other, and
 * the bytes are freed on every path. A table nested deeper than COPY_MAX_DEPTH (one that
 * contains itself, for instance) or larger than the destination's memory limit is refused
 * with a message, never followed forever. */
#include "script_priv.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREAD_MT "wharf.thread"
#define COPY_MAX_DEPTH 32

/* A thread object: engine thread idx of the set. */
struct tobj {
    struct script_set *ss;
    unsigned idx;
};

/* ---- copying values between states ------------------------------------------------------- */

/* A value written out as bytes: tags n (nil), b (boolean, one byte), i (integer), f (float),
 * s (string: a 64-bit length and the bytes), t ... e (a table: key and value pairs). */
struct copybuf {
    uint8_t *p;
    size_t len, cap, max;
    const char *err; /* why writing stopped (NULL: it did not) */
    char errbuf[160];
};

static bool put(struct copybuf *b, const void *src, size_t n)
{
    uint8_t *p;
    size_t cap;

    if (b->err)
        return false;
    if (n > b->max - b->len) {
        snprintf(b->errbuf, sizeof(b->errbuf), "the value is larger than a state may hold "
                 "(%zu MiB)", b->max >> 20);
        b->err = b->errbuf;
        return false;
    }
    if (b->len + n > b->cap) {
        for (cap = b->cap ? b->cap : 256; cap < b->len + n; cap *= 2)
            ;
        if (!(p = realloc(b->p, cap))) {
            b->err = "out of memory";
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return true;
}

/* Writes the value at absolute index idx of L into b. Nothing here can raise a Lua error:
 * the stack is grown with lua_checkstack (which says no rather than raising), strings are
 * read without conversion, tables are walked raw (no metamethods). Returns false with
 * b->err set. */
static bool copy_out(lua_State *L, int idx, struct copybuf *b, int depth)
{
    uint8_t tag[2];
    size_t n;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        tag[0] = 'n';
        return put(b, tag, 1);
    case LUA_TBOOLEAN:
        tag[0] = 'b';
        tag[1] = (uint8_t)lua_toboolean(L, idx);
        return put(b, tag, 2);
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_Integer v = lua_tointeger(L, idx);

            tag[0] = 'i';
            return put(b, tag, 1) && put(b, &v, sizeof(v));
        } else {
            lua_Number v = lua_tonumber(L, idx);

            tag[0] = 'f';
            return put(b, tag, 1) && put(b, &v, sizeof(v));
        }
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &n);
        uint64_t n64 = n;

        tag[0] = 's';
        return put(b, tag, 1) && put(b, &n64, sizeof(n64)) && put(b, s, n);
    }
    case LUA_TTABLE:
        if (depth >= COPY_MAX_DEPTH) {
            snprintf(b->errbuf, sizeof(b->errbuf), "tables nested deeper than %d (a table "
                     "that contains itself?)", COPY_MAX_DEPTH);
            b->err = b->errbuf;
            return false;
        }
        if (!lua_checkstack(L, 3)) {
            b->err = "no room on the Lua stack";
            return false;
        }
        tag[0] = 't';
        if (!put(b, tag, 1))
            return false;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int top = lua_gettop(L);

            if (!copy_out(L, top - 1, b, depth + 1) || !copy_out(L, top, b, depth + 1)) {
                lua_pop(L, 2);
                return false;
            }
            lua_pop(L, 1);
        }
        tag[0] = 'e';
        return put(b, tag, 1);
    default:
        snprintf(b->errbuf, sizeof(b->errbuf), "a %s cannot be copied to another state (nil, "
                 "booleans, numbers, strings and tables of them can)",
                 lua_typename(L, lua_type(L, idx)));
        b->err = b->errbuf;
        return false;
    }
}

/* Bytes being read back into a state; name: set them as that global (else push them). */
struct copyin {
    const uint8_t *p;
    size_t len, off;
    const char *name;
};

static void take(lua_State *L, struct copyin *c, void *dst, size_t n)
{
    if (n > c->len - c->off)
        luaL_error(L, "copy: the value's bytes end early");
    memcpy(dst, c->p + c->off, n);
    c->off += n;
}

/* Pushes the value at c's offset onto L. Runs in a protected call of L (it may raise:
 * memory, stack); depth is bounded by what copy_out wrote. */
static void copy_in(lua_State *L, struct copyin *c)
{
    uint8_t tag, v;
    lua_Integer i;
    lua_Number d;
    uint64_t n;

    luaL_checkstack(L, 4, "copying a value");
    take(L, c, &tag, 1);
    switch (tag) {
    case 'n': lua_pushnil(L); return;
    case 'b': take(L, c, &v, 1); lua_pushboolean(L, v); return;
    case 'i': take(L, c, &i, sizeof(i)); lua_pushinteger(L, i); return;
    case 'f': take(L, c, &d, sizeof(d)); lua_pushnumber(L, d); return;
    case 's':
        take(L, c, &n, sizeof(n));
        if (n > c->len - c->off)
            luaL_error(L, "copy: the value's bytes end early");
        lua_pushlstring(L, (const char *)c->p + c->off, (size_t)n);
        c->off += (size_t)n;
        return;
    case 't':
        lua_newtable(L);
        while (c->off < c->len && c->p[c->off] != 'e') {
            copy_in(L, c); /* key (never nil: copy_out wrote what lua_next gave) */
            copy_in(L, c); /* value */
            lua_rawset(L, -3);
        }
        take(L, c, &tag, 1);
        return;
    default: luaL_error(L, "copy: bad bytes");
    }
}

/* Protected, in the destination: [struct copyin] -> the value, or with c->name set the
 * global of that name (raw: no metamethod of the globals runs). */
static int copy_in_cf(lua_State *L)
{
    struct copyin *c = lua_touserdata(L, 1);

    copy_in(L, c);
    if (!c->name)
        return 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushstring(L, c->name);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    return 0;
}

/* What get asks of the source state. */
struct copyget {
    struct copybuf b;
    const char *name;
};

/* Protected, in the source: [struct copyget] -> its buffer holds the global `name` (raw). */
static int copy_global_cf(lua_State *L)
{
    struct copyget *g = lua_touserdata(L, 1);

    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushstring(L, g->name);
    lua_rawget(L, -2);
    copy_out(L, lua_gettop(L), &g->b, 0);
    return 0;
}

/* Runs fn(arg) protected in state s (not running: the caller runs in another state). On
 * failure, copies the message into msg. Returns the lua_pcall status. */
static int run_in(struct script *s, lua_CFunction fn, void *arg, char *msg, size_t msglen)
{
    const char *m;
    int rc;

    if (!lua_checkstack(s->L, 2)) {
        snprintf(msg, msglen, "no room on the thread's Lua stack");
        return LUA_ERRMEM;
    }
    s->steps = 0;
    lua_pushcfunction(s->L, fn);
    lua_pushlightuserdata(s->L, arg);
    rc = lua_pcall(s->L, 1, 0, 0);
    if (rc != LUA_OK) {
        m = lua_tostring(s->L, -1);
        snprintf(msg, msglen, "%s", rc == LUA_ERRMEM ? "not enough memory in the thread's state"
                                    : m ? m : "error");
        lua_pop(s->L, 1);
    }
    return rc;
}

/* ---- the thread object --------------------------------------------------------------------- */

static struct tobj *checkthread(lua_State *L)
{
    return luaL_checkudata(L, 1, THREAD_MT);
}

static struct script *thread_state(const struct tobj *t) { return t->ss->th[t->idx]; }

/* thread:get(name): the thread's global `name`, copied into this state. */
static int thread_get(lua_State *L)
{
    struct tobj *t = checkthread(L);
    const char *name = luaL_checkstring(L, 2);
    struct script *s = thread_state(t);
    struct copyget g = {.name = name};
    struct copyin c;
    char msg[200];
    int rc;

    if (s->L == L) { /* its own state: the global itself */
        lua_getglobal(L, name);
        return 1;
    }
    g.b.max = s->max_mem;
    if (run_in(s, copy_global_cf, &g, msg, sizeof(msg)) != LUA_OK || g.b.err) {
        if (g.b.err)
            snprintf(msg, sizeof(msg), "%s", g.b.err);
        free(g.b.p);
        return luaL_error(L, "thread:get('%s'): %s", name, msg);
    }
    c = (struct copyin){g.b.p, g.b.len, 0, NULL};
    lua_pushcfunction(L, copy_in_cf);
    lua_pushlightuserdata(L, &c);
    rc = lua_pcall(L, 1, 1, 0);
    free(g.b.p);
    if (rc != LUA_OK)
        return lua_error(L);
    return 1;
}

/* thread:set(name, value): the thread's global `name` becomes a copy of value. */
static int thread_set(lua_State *L)
{
    struct tobj *t = checkthread(L);
    const char *name = luaL_checkstring(L, 2);
    struct script *s = thread_state(t);
    struct copybuf b = {.max = s->max_mem};
    struct copyin c;
    char msg[200];

    luaL_checkany(L, 3);
    lua_settop(L, 3);
    if (s->L == L) {
        lua_setglobal(L, name);
        return 0;
    }
    if (!copy_out(L, 3, &b, 0)) {
        snprintf(msg, sizeof(msg), "%s", b.err);
        free(b.p);
        return luaL_error(L, "thread:set('%s'): %s", name, msg);
    }
    c = (struct copyin){b.p, b.len, 0, name};
    if (run_in(s, copy_in_cf, &c, msg, sizeof(msg)) != LUA_OK) {
        free(b.p);
        return luaL_error(L, "thread:set('%s'): %s", name, msg);
    }
    free(b.p);
    return 0;
}

/* thread:stop(): the thread sends nothing more, waits for the replies in flight (at most
 * --drain) and ends; only the thread itself may ask (wrk.thread:stop() in its hooks). */
static int thread_stop(lua_State *L)
{
    struct tobj *t = checkthread(L);
    struct script *s = thread_state(t);

    if (s->L != L)
        return luaL_error(L, "thread:stop(): a thread stops itself, with wrk.thread:stop() in "
                          "its init(), request() or response() (setup() and done() run before "
                          "and after the run)");
    s->stop = true;
    return 0;
}

/* thread.addr = an address object (wrk.lookup) or "ADDR:PORT" (numeric, "[ADDR]:PORT" for
 * IPv6), of the target's family: where the thread's connections go instead of the target.
 * Raises on a bad address. */
static void set_addr(lua_State *L, struct script *s, int idx)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char text[SCRIPT_ADDR_TEXT];

    script_addr_arg(L, idx, "thread.addr", &ss, &len, text, sizeof(text));
    if (ss.ss_family != s->set->family)
        luaL_error(L, "thread.addr: '%s' is not of the target's address family (%s)", text,
                   s->set->family == AF_INET6 ? "IPv6" : "IPv4");
    s->addr = ss;
    s->addrlen = len;
    s->addr_set = true;
    snprintf(s->addr_text, sizeof(s->addr_text), "%s", text);
}

static int thread_index(lua_State *L)
{
    struct tobj *t = checkthread(L);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    struct script *s = thread_state(t);

    if (!strcmp(k, "get"))
        lua_pushcfunction(L, thread_get);
    else if (!strcmp(k, "set"))
        lua_pushcfunction(L, thread_set);
    else if (!strcmp(k, "stop"))
        lua_pushcfunction(L, thread_stop);
    else if (!strcmp(k, "id"))
        lua_pushinteger(L, t->idx);
    else if (!strcmp(k, "threads"))
        lua_pushinteger(L, t->ss->n);
    else if (!strcmp(k, "addr"))
        lua_pushstring(L, s->addr_set ? s->addr_text : t->ss->target);
    else
        lua_pushnil(L);
    return 1;
}

static int thread_newindex(lua_State *L)
{
    struct tobj *t = checkthread(L);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";

    if (strcmp(k, "addr"))
        return luaL_error(L, "thread.%s: cannot be set (a thread has addr, which may be set "
                          "before the run, and id, threads, get, set, stop)", k);
    if (t->ss->opened)
        return luaL_error(L, "thread.addr: can be set in setup() or init() only, before the "
                          "run starts");
    set_addr(L, thread_state(t), 3);
    return 0;
}

static int thread_tostring(lua_State *L)
{
    struct tobj *t = checkthread(L);

    lua_pushfstring(L, "thread %d", (int)t->idx);
    return 1;
}

void script_thread_open(lua_State *L)
{
    luaL_newmetatable(L, THREAD_MT);
    lua_pushcfunction(L, thread_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, thread_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, thread_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, THREAD_MT); /* getmetatable() gives this, setmetatable() is refused */
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

void script_thread_push(lua_State *L, struct script_set *ss, unsigned idx)
{
    struct tobj *t = lua_newuserdatauv(L, sizeof(*t), 0);

    t->ss = ss;
    t->idx = idx;
    luaL_setmetatable(L, THREAD_MT);
}
