/* script_guard.c - what a wharf-load Lua script may not do to the generator, taken out of
 * each state after its libraries are opened (script.c): os.exit() raises an error instead
 * of ending the process (a script's exit code is never wharf-load's), debug.sethook() raises
 * one instead of removing the instruction limit's hook, and load, loadfile and dofile take
 * text chunks only (bytecode is not verified by Lua 5.4: a bad binary chunk can crash the
 * virtual machine). The original load and loadfile stay in the registry, under
 * "wharf.load" and "wharf.loadfile", for the text-only versions to call. */
#include "script_priv.h"

#include <lauxlib.h>
#include <lualib.h>

static int no_exit(lua_State *L)
{
    return luaL_error(L, "os.exit(): a script cannot end wharf-load (wrk.thread:stop() stops "
                      "a thread, response() returning false rejects a reply)");
}

static int no_sethook(lua_State *L)
{
    return luaL_error(L, "debug.sethook(): not in wharf-load (its hook limits the "
                      "instructions of a call)");
}

/* load(chunk [, name [, mode [, env]]]), text only: the mode becomes "t" (the number of
 * arguments is kept: an explicit nil env is not the same as none). */
static int text_load(lua_State *L)
{
    if (lua_gettop(L) < 3)
        lua_settop(L, 3);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_getfield(L, LUA_REGISTRYINDEX, "wharf.load");
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* loadfile([file [, mode [, env]]]), text only. */
static int text_loadfile(lua_State *L)
{
    if (lua_gettop(L) < 2)
        lua_settop(L, 2);
    lua_pushliteral(L, "t");
    lua_replace(L, 2);
    lua_getfield(L, LUA_REGISTRYINDEX, "wharf.loadfile");
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* dofile([file]), text only, as the base library's dofile otherwise. */
static int text_dofile(lua_State *L)
{
    const char *f = luaL_optstring(L, 1, NULL);

    lua_settop(L, 1);
    if (luaL_loadfilex(L, f, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

/* Replaces field `name` of global table `lib` by fn (the old one kept in the registry as
 * `keep`, when given). */
static void replace(lua_State *L, const char *lib, const char *name, lua_CFunction fn,
                    const char *keep)
{
    if (lib)
        lua_getglobal(L, lib);
    else
        lua_pushglobaltable(L);
    if (keep) {
        lua_getfield(L, -1, name);
        lua_setfield(L, LUA_REGISTRYINDEX, keep);
    }
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

void script_guard(lua_State *L)
{
    replace(L, "os", "exit", no_exit, NULL);
    replace(L, "debug", "sethook", no_sethook, NULL);
    replace(L, NULL, "load", text_load, "wharf.load");
    replace(L, NULL, "loadfile", text_loadfile, "wharf.loadfile");
    replace(L, NULL, "dofile", text_dofile, NULL);
}
