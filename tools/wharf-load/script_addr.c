/* script_addr.c - addresses in wharf-load's Lua scripts, as wrk has them: the address
 * objects that wrk.lookup(host, service) returns (a userdata holding one socket address,
 * which prints as "ADDR:PORT", "[ADDR]:PORT" for IPv6), wrk.connect(addr) (whether a TCP
 * connection to it can be made, within the run's --connect-timeout), and the reading of an
 * address a script hands over (an address object or the string "ADDR:PORT") for
 * thread.addr (script_thread.c) and wrk.connect.
 *
 * Both functions block the thread that calls them (getaddrinfo, connect), so they are for
 * the hooks that run outside the run: setup(), init() and done(). During the run (request(),
 * response(), delay()) wrk.connect is refused and wrk.lookup resolves numeric addresses
 * only, so that a script never stalls its thread's connections on a name server. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "script_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <lauxlib.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ADDR_MT "wharf.addr"
#define LOOKUP_MAX 64 /* addresses wrk.lookup returns at most */

/* An address object. */
struct aobj {
    struct sockaddr_storage sa;
    socklen_t len;
};

/* The state of L, and whether it runs inside the run (a thread's hooks once the run began),
 * where nothing may block. */
static bool in_run(lua_State *L)
{
    struct script *s = *(struct script **)lua_getextraspace(L);

    return s->id >= 0 && s->set->opened;
}

/* Writes sa as "ADDR:PORT" ("[ADDR]:PORT" for IPv6) into buf. */
static void addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, buflen, "?");
        return;
    }
    snprintf(buf, buflen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

static int addr_tostring(lua_State *L)
{
    struct aobj *a = luaL_checkudata(L, 1, ADDR_MT);
    char buf[SCRIPT_ADDR_TEXT];

    addr_format((const struct sockaddr *)&a->sa, a->len, buf, sizeof(buf));
    lua_pushstring(L, buf);
    return 1;
}

/* a == b: the same family, address and port. */
static int addr_eq(lua_State *L)
{
    struct aobj *a = luaL_checkudata(L, 1, ADDR_MT), *b = luaL_checkudata(L, 2, ADDR_MT);

    lua_pushboolean(L, a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0);
    return 1;
}

/* Parses "ADDR:PORT" ("[ADDR]:PORT" for IPv6), numeric, port 1..65535. Returns 0, or -1. */
static int addr_parse(const char *a, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = strrchr(a, ':'), *p;
    char host[64], *end;
    unsigned long port;
    size_t hl;

    memset(ss, 0, sizeof(*ss));
    if (colon && a[0] == '[' && colon > a && colon[-1] == ']')
        hl = (size_t)(colon - a) - 2, p = a + 1;
    else
        hl = colon ? (size_t)(colon - a) : 0, p = a;
    if (!colon || hl == 0 || hl >= sizeof(host) || colon[1] < '0' || colon[1] > '9')
        return -1;
    memcpy(host, p, hl);
    host[hl] = '\0';
    port = strtoul(colon + 1, &end, 10);
    if (*end || port == 0 || port > 65535)
        return -1;
    if (p != a && inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
        ss->ss_family = AF_INET6;
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        *len = sizeof(struct sockaddr_in6);
        return 0;
    }
    if (p == a && inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
        ss->ss_family = AF_INET;
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        *len = sizeof(struct sockaddr_in);
        return 0;
    }
    return -1;
}

void script_addr_arg(lua_State *L, int idx, const char *who, struct sockaddr_storage *ss,
                     socklen_t *len, char *text, size_t textlen)
{
    struct aobj *a = luaL_testudata(L, idx, ADDR_MT);
    const char *s;

    if (a) {
        *ss = a->sa;
        *len = a->len;
        addr_format((const struct sockaddr *)ss, *len, text, textlen);
        return;
    }
    if (lua_type(L, idx) != LUA_TSTRING) {
        luaL_error(L, "%s: expected an address (of wrk.lookup) or a numeric ADDR:PORT string, "
                   "got a %s", who, luaL_typename(L, idx));
        return;
    }
    s = lua_tostring(L, idx);
    if (addr_parse(s, ss, len) != 0)
        luaL_error(L, "%s: expected a numeric ADDR:PORT ([ADDR]:PORT for IPv6), got '%s'", who, s);
    snprintf(text, textlen, "%s", s);
}

/* wrk.lookup(host, service): a table of the addresses getaddrinfo gives for host and
 * service (a port number or a name such as "http"), TCP, in its order (at most
 * LOOKUP_MAX). Raises an error naming host and service when they do not resolve, where wrk
 * ends the process. */
static int lookup(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    const char *serv = luaL_checkstring(L, 2);
    struct addrinfo hints, *res, *ai;
    struct aobj got[LOOKUP_MAX];
    int rc, i, n = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (in_run(L))
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0) {
        if (in_run(L) && rc == EAI_NONAME)
            return luaL_error(L, "wrk.lookup('%s', '%s'): during the run only numeric "
                              "addresses and ports are looked up (names in setup() or init())",
                              host, serv);
        return luaL_error(L, "wrk.lookup('%s', '%s'): cannot resolve: %s", host, serv,
                          rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    }
    /* copied out first: nothing below may raise while res is held */
    for (ai = res; ai && n < LOOKUP_MAX; ai = ai->ai_next)
        if (ai->ai_addrlen <= sizeof(got[n].sa)) {
            memset(&got[n], 0, sizeof(got[n]));
            memcpy(&got[n].sa, ai->ai_addr, ai->ai_addrlen);
            got[n++].len = ai->ai_addrlen;
        }
    freeaddrinfo(res);
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        struct aobj *a = lua_newuserdatauv(L, sizeof(*a), 0);

        *a = got[i];
        luaL_setmetatable(L, ADDR_MT);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* wrk.connect(addr): true when a TCP connection to addr (an address object or
 * "ADDR:PORT") is made within the run's --connect-timeout; it is closed at once. */
static int connect_to(lua_State *L)
{
    struct script *s = *(struct script **)lua_getextraspace(L);
    struct sockaddr_storage ss;
    socklen_t len;
    char text[SCRIPT_ADDR_TEXT];
    struct pollfd pfd;
    struct timespec t0, t1;
    int fd, err = 0, ok = 0;
    socklen_t elen = sizeof(err);
    long left = (long)s->set->connect_timeout_ms;

    script_addr_arg(L, 1, "wrk.connect", &ss, &len, text, sizeof(text));
    if (in_run(L))
        return luaL_error(L, "wrk.connect(%s): in setup(), init() or done() only (during the "
                          "run it would stall the thread's connections)", text);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (connect(fd, (const struct sockaddr *)&ss, len) == 0) {
        ok = 1;
    } else if (errno == EINPROGRESS) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
        for (;;) {
            int n = poll(&pfd, 1, (int)(left > 0 ? left : 0));

            if (n > 0) {
                ok = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0;
                break;
            }
            if (n == 0 || errno != EINTR)
                break;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            left = (long)s->set->connect_timeout_ms -
                   ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
        }
    }
    close(fd);
    lua_pushboolean(L, ok);
    return 1;
}

void script_addr_open(lua_State *L)
{
    luaL_newmetatable(L, ADDR_MT);
    lua_pushcfunction(L, addr_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, addr_eq);
    lua_setfield(L, -2, "__eq");
    lua_pushliteral(L, ADDR_MT);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

void script_addr_lib(lua_State *L)
{
    lua_pushcfunction(L, lookup);
    lua_setfield(L, -2, "lookup");
    lua_pushcfunction(L, connect_to);
    lua_setfield(L, -2, "connect");
}
