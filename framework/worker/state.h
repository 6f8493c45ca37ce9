/*
 * state.h - named handler state that survives reloads (wharf_state_get in
 * wharf.h), in the shape of nginx's shared zones (ngx_shared_memory_add).
 *
 * A server keeps one registry.  A handler's init asks for an object by name;
 * the registry hands back the object the previous generation's listener of
 * the same name got under that name (same handler, same type tag), or makes
 * one with type->create.  Each generation holds a reference per object it
 * got (its state_set); when the last generation holding an object is
 * released, the object is destroyed with the destroy function of the
 * generation that dropped it last, whose module is still loaded then (the
 * set is released after fini and before the modules unload).  A
 * generation that fails to build drops only its own references.
 *
 * The registry has one mutex: wharf_state_get runs on the thread building a
 * generation, releases on whichever thread drops a generation.
 */
#ifndef WHARF_STATE_H
#define WHARF_STATE_H

#include <stdbool.h>

#include "wharf.h"

struct listener;
struct state_registry;
struct state_ref;

/* One generation's references. */
struct state_set {
    struct state_registry *reg; /* a reference */
    struct state_ref *refs;
};

/* A new registry (one reference), or NULL on ENOMEM. */
struct state_registry *state_registry_new(void);
/* Reference counting: a server holds one, and every set made on it. */
void state_registry_ref(struct state_registry *reg);
void state_registry_unref(struct state_registry *reg);

/* Prepares an empty set on reg (referenced), or on a private registry when
 * reg is NULL (a generation built only to check a config).  Returns 0 or
 * -ENOMEM. */
int state_set_init(struct state_set *set, struct state_registry *reg);

/*
 * The object named `name` of listener l (its name and handler name make
 * the scope) with type->tag: found in the registry or made by type->create
 * (called with the registry locked).  Adds a reference to set.  Returns 0
 * with *obj and *created, or a negative errno (-EINVAL for bad arguments,
 * -ENOMEM, or what create returned); nothing changes then.
 */
int state_acquire(struct state_set *set, struct listener *l, const char *name,
                  const struct wharf_state_type *type, void *arg, void **obj, bool *created);

/* Drops every reference of set (destroying the objects no other set holds)
 * and the set's registry reference.  Safe on a set never initialised. */
void state_set_release(struct state_set *set);

/* How many objects reg holds (tests). */
unsigned state_registry_count(struct state_registry *reg);

#endif
