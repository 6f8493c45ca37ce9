/* script_done.c - done(summary, latency, requests), the last hook of a wharf-load Lua script
 * (script.h), run in the main state after the report: the summary table, and two
 * statistics objects as wrk's: `latency` (the run's latency histogram, microseconds,
 * corrected in open loop) and `requests` (each thread's replies per second over each
 * --interval of the measured period, load_result.rates).
 *
 * A statistics object is a table: count, min, max, mean, stdev and percentile(p) (also
 * obj:percentile(p)), with wrk's two metamethods: #obj, the number of distinct values, and
 * obj(i), the i-th distinct value (ascending) and how often it was seen (nil past the
 * last). The latency's distinct values are its histogram's buckets (each shown as its
 * highest value, within 0.1 % of what was recorded); a rate's are whole requests per
 * second. The requests' values are copied into the object; the latency's histogram is
 * read where it is (the result outlives done()). */
#include "script_priv.h"
#include "hist.h"
#include "stats.h"
#include "thread.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* What a statistics object reads: a histogram (ns, shown in µs) or sorted values. */
struct sdata {
    const struct hist *h;
    size_t n;
    uint64_t v[]; /* ascending, when h is NULL */
};

static struct sdata *sdata_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* percentile(p) or obj:percentile(p): the value at percentile p (0..100). */
static int stat_percentile(lua_State *L)
{
    const struct sdata *d = sdata_of(L);
    double p = luaL_checknumber(L, lua_gettop(L));
    size_t rank;

    luaL_argcheck(L, p >= 0 && p <= 100, lua_gettop(L), "a percentile from 0 to 100");
    if (d->h) {
        lua_pushnumber(L, d->h->total ? hist_percentile(d->h, p) / 1e3 : 0.0);
        return 1;
    }
    if (d->n == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    rank = (size_t)ceil(p / 100.0 * (double)d->n);
    rank = rank < 1 ? 1 : rank > d->n ? d->n : rank;
    lua_pushinteger(L, (lua_Integer)d->v[rank - 1]);
    return 1;
}

/* Walks the distinct values of d: calls back with each value and its count, in ascending
 * order, until fn returns false. */
static void distinct(const struct sdata *d, bool (*fn)(void *arg, double value, uint64_t count),
                     void *arg)
{
    size_t i, j;

    if (d->h) {
        uint64_t min = d->h->min, max = d->h->max;

        for (i = 0; i < HIST_NBUCKETS && d->h->total; i++) {
            uint64_t c = d->h->counts[i], v = hist_highest(i);

            if (c && !fn(arg, (double)(v < min ? min : v > max ? max : v) / 1e3, c))
                return;
        }
        return;
    }
    for (i = 0; i < d->n; i = j) {
        for (j = i + 1; j < d->n && d->v[j] == d->v[i]; j++)
            ;
        if (!fn(arg, (double)d->v[i], j - i))
            return;
    }
}

struct nth {
    lua_Integer want, seen;
    double value;
    uint64_t count;
};

static bool nth_cb(void *arg, double value, uint64_t count)
{
    struct nth *n = arg;

    if (++n->seen < n->want)
        return true;
    n->value = value;
    n->count = count;
    return false;
}

/* #obj: how many distinct values. */
static int stat_len(lua_State *L)
{
    struct nth n = {.want = LUA_MAXINTEGER};

    distinct(sdata_of(L), nth_cb, &n);
    lua_pushinteger(L, n.seen);
    return 1;
}

/* obj(i): the i-th distinct value and its count; nil past the last. */
static int stat_call(lua_State *L)
{
    const struct sdata *d = sdata_of(L);
    struct nth n = {.want = luaL_checkinteger(L, 2)};

    if (n.want < 1) {
        lua_pushnil(L);
        return 1;
    }
    distinct(d, nth_cb, &n);
    if (n.seen < n.want) {
        lua_pushnil(L);
        return 1;
    }
    if (d->h)
        lua_pushnumber(L, n.value);
    else
        lua_pushinteger(L, (lua_Integer)n.value);
    lua_pushinteger(L, (lua_Integer)n.count);
    return 2;
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

/* Pushes the statistics object of h (latency), or of the n sorted values v (rates). May
 * raise (memory): runs inside the protected call of done(). */
static int push_stats(lua_State *L)
{
    const struct hist *h = lua_touserdata(L, 1);
    const uint64_t *v = lua_touserdata(L, 2);
    size_t n = (size_t)lua_tointeger(L, 3), i;
    struct sdata *d = lua_newuserdatauv(L, sizeof(*d) + (h ? 0 : n * sizeof(uint64_t)), 0);
    double sum = 0, sq = 0, mean;

    d->h = h;
    d->n = h ? 0 : n;
    if (!h && n)
        memcpy(d->v, v, n * sizeof(*v));
    lua_createtable(L, 0, 6);
    if (h) {
        set_int(L, "count", h->total);
        set_num(L, "min", h->total ? h->min / 1e3 : 0);
        set_num(L, "max", h->total ? h->max / 1e3 : 0);
        set_num(L, "mean", h->total ? hist_mean(h) / 1e3 : 0);
        set_num(L, "stdev", h->total ? hist_stddev(h) / 1e3 : 0);
    } else {
        for (i = 0; i < n; i++) {
            sum += (double)v[i];
            sq += (double)v[i] * (double)v[i];
        }
        mean = n ? sum / (double)n : 0;
        set_int(L, "count", n);
        set_int(L, "min", n ? v[0] : 0);
        set_int(L, "max", n ? v[n - 1] : 0);
        set_num(L, "mean", mean);
        set_num(L, "stdev", n > 1 && sq / (double)n > mean * mean ? sqrt(sq / (double)n - mean * mean) : 0);
    }
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, stat_percentile, 1);
    lua_setfield(L, -2, "percentile");
    lua_createtable(L, 0, 2); /* the metatable */
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, stat_len, 1);
    lua_setfield(L, -2, "__len");
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, stat_call, 1);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2);
    return 1;
}

/* The summary of the run (as wharf-load counts it; wrk's fields included). */
static void push_summary(lua_State *L, const struct load_result *res)
{
    int i;

    lua_createtable(L, 0, 10);
    set_int(L, "duration", res->measure_ns / 1000);
    set_int(L, "requests", res->st.c[ST_MEASURED]);
    set_int(L, "sent", res->st.c[ST_SENT]);
    set_int(L, "received", res->st.c[ST_RECEIVED]);
    set_int(L, "bytes", res->st.c[ST_BYTES_RECEIVED]);
    set_int(L, "errors", stat_errors(&res->st));
    set_num(L, "rate", res->measure_ns ? res->st.c[ST_MEASURED] * 1e9 / (double)res->measure_ns : 0);
    lua_createtable(L, 0, ST__COUNT);
    for (i = 0; i < ST__COUNT; i++)
        set_int(L, stat_names[i], res->st.c[i]);
    lua_setfield(L, -2, "counters");
}

int script_done(struct script_set *ss, const struct load_result *res, bool open_loop, char *err,
                size_t errlen)
{
    struct script *s = ss->main;
    lua_State *L = s->L;
    const struct hist *h = open_loop ? res->corrected : res->raw;
    int rc;

    if (lua_getglobal(L, "done") != LUA_TFUNCTION) {
        lua_settop(L, SLOT_FIXED);
        return 0;
    }
    push_summary(L, res);
    /* the objects are made in protected calls: a memory error is done()'s error */
    lua_pushcfunction(L, push_stats);
    lua_pushlightuserdata(L, (void *)h);
    lua_pushnil(L);
    lua_pushinteger(L, 0);
    rc = lua_pcall(L, 3, 1, SLOT_MSGH);
    if (rc == LUA_OK) {
        lua_pushcfunction(L, push_stats);
        lua_pushnil(L);
        lua_pushlightuserdata(L, res->rates);
        lua_pushinteger(L, (lua_Integer)res->nrates);
        rc = lua_pcall(L, 3, 1, SLOT_MSGH);
    }
    if (rc == LUA_OK)
        rc = script_call(s, 3, 0);
    if (rc != LUA_OK) {
        snprintf(err, errlen, "--script %s: in done(): %s", s->path, lua_tostring(L, -1));
        lua_settop(L, SLOT_FIXED);
        return -1;
    }
    lua_settop(L, SLOT_FIXED);
    return 0;
}
