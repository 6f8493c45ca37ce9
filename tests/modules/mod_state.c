/*
 * mod_state.c - a test module (built twice, as mod_state_a and mod_state_b)
 * that keeps named state across reloads: init gets the object "obj" and
 * answers each line with the object's id.  Its destroy adds one to the
 * integer whose address the option "destroyed" gives, so a test can see
 * that the destroy that runs is the one of a module still loaded (the
 * other copy may be unmapped by then).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

struct obj {
    long long id;
    _Atomic int *destroyed;
};

struct args {
    _Atomic int *destroyed;
};

static int obj_create(void *arg, void **out)
{
    static _Atomic long long next;
    const struct args *a = arg;
    struct obj *o = calloc(1, sizeof *o);
    if (!o)
        return -12;
    o->id = atomic_fetch_add(&next, 1) + 1;
    o->destroyed = a->destroyed;
    *out = o;
    return 0;
}

static void obj_destroy(void *p)
{
    struct obj *o = p;
    if (o->destroyed)
        atomic_fetch_add(o->destroyed, 1);
    free(o);
}

static const struct wharf_state_type obj_type = {"mod_state.obj/1", obj_create, obj_destroy};

static int st_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    long long addr = 0;
    wharf_options_int(opts, "destroyed", &addr);
    struct args a = {(_Atomic int *)(uintptr_t)addr};
    int rc = wharf_state_get(opts, "obj", &obj_type, &a, data, NULL);
    if (rc < 0)
        snprintf(err, errlen, "wharf_state_get: %d", rc);
    return rc < 0 ? -1 : 0;
}

static size_t st_on_data(wharf_conn *c, const void *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    if (!nl)
        return 0;
    const struct obj *o = wharf_listener_data(c);
    char out[64];
    int n = snprintf(out, sizeof out, "%s %lld\n", MOD_VARIANT, o->id);
    wharf_send(c, out, (size_t)n);
    return (size_t)(nl - (const char *)data) + 1;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "statemod",
    .init = st_init,
    .on_data = st_on_data,
};
