/*
 * state.c - the registry of named handler state (see state.h).
 *
 * An entry is one object: its key (listener name, handler name, state name,
 * type tag; all copied, since a module's strings go with its module) and
 * how many references generations hold to it.  A reference remembers the
 * type it was acquired with and the listener that acquired it: the type's
 * destroy is called through the reference that goes last, so the function
 * called belongs to a module that is still loaded.  The list is short (a
 * few objects per listener), so lookups walk it.
 */
#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "callback.h"
#include "listener.h"
#include "log.h"

struct state_entry {
    char *listener, *handler, *name, *tag;
    void *obj;
    unsigned refs;
    struct state_entry *next;
};

struct state_ref {
    struct state_entry *e;
    const struct wharf_state_type *type; /* in the acquiring generation's module */
    struct listener *l;                  /* the listener that acquired it */
    struct state_ref *next;
};

struct state_registry {
    _Atomic unsigned long refs;
    pthread_mutex_t lock;
    struct state_entry *entries;
};

struct state_registry *state_registry_new(void)
{
    struct state_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    atomic_init(&reg->refs, 1);
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void state_registry_ref(struct state_registry *reg)
{
    atomic_fetch_add_explicit(&reg->refs, 1, memory_order_relaxed);
}

/* The last reference goes once every set made on it was released, so no
 * entry is left. */
void state_registry_unref(struct state_registry *reg)
{
    if (!reg || atomic_fetch_sub_explicit(&reg->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

int state_set_init(struct state_set *set, struct state_registry *reg)
{
    set->refs = NULL;
    if (reg) {
        state_registry_ref(reg);
        set->reg = reg;
        return 0;
    }
    set->reg = state_registry_new();
    return set->reg ? 0 : -ENOMEM;
}

static bool entry_is(const struct state_entry *e, const struct listener *l, const char *name,
                     const char *tag)
{
    return strcmp(e->listener, l->cfg->name) == 0 && strcmp(e->handler, l->handler->name) == 0 &&
           strcmp(e->name, name) == 0 && strcmp(e->tag, tag) == 0;
}

static void entry_free(struct state_entry *e)
{
    free(e->listener);
    free(e->handler);
    free(e->name);
    free(e->tag);
    free(e);
}

/* A new entry for the key, with its object made by type->create.  Returns
 * 0 or a negative errno.  Registry locked. */
static int entry_create(struct state_registry *reg, struct listener *l, const char *name,
                        const struct wharf_state_type *type, void *arg, struct state_entry **out)
{
    struct state_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->listener = strdup(l->cfg->name)) || !(e->handler = strdup(l->handler->name)) ||
        !(e->name = strdup(name)) || !(e->tag = strdup(type->tag))) {
        if (e)
            entry_free(e);
        return -ENOMEM;
    }
    int rc = type->create(arg, &e->obj);
    if (rc != 0) {
        entry_free(e);
        return rc < 0 ? rc : -EINVAL;
    }
    e->next = reg->entries;
    reg->entries = e;
    *out = e;
    return 0;
}

int state_acquire(struct state_set *set, struct listener *l, const char *name,
                  const struct wharf_state_type *type, void *arg, void **obj, bool *created)
{
    if (!set || !set->reg || !l || !name || !*name || !type || !type->tag || !type->create ||
        !obj)
        return -EINVAL;
    struct state_ref *ref = calloc(1, sizeof *ref);
    if (!ref)
        return -ENOMEM;
    struct state_registry *reg = set->reg;
    pthread_mutex_lock(&reg->lock);
    struct state_entry *e = reg->entries;
    while (e && !entry_is(e, l, name, type->tag))
        e = e->next;
    bool made = false;
    if (!e) {
        int rc = entry_create(reg, l, name, type, arg, &e);
        if (rc < 0) {
            pthread_mutex_unlock(&reg->lock);
            free(ref);
            return rc;
        }
        made = true;
    }
    e->refs++;
    pthread_mutex_unlock(&reg->lock);
    ref->e = e;
    ref->type = type;
    ref->l = l;
    ref->next = set->refs;
    set->refs = ref;
    *obj = e->obj;
    if (created)
        *created = made;
    return 0;
}

/* Drops one reference; destroys the object with ref's type when it was the
 * last. */
static void state_ref_drop(struct state_registry *reg, struct state_ref *ref)
{
    struct state_entry *e = ref->e;
    pthread_mutex_lock(&reg->lock);
    bool last = --e->refs == 0;
    if (last) {
        for (struct state_entry **p = &reg->entries; *p; p = &(*p)->next)
            if (*p == e) {
                *p = e->next;
                break;
            }
    }
    pthread_mutex_unlock(&reg->lock);
    if (!last)
        return;
    if (ref->type->destroy)
        CALLBACK_RUN("state destroy", ref->l, -1, 0, ref->type->destroy(e->obj));
    log_debug("state \"%s\" of listener %s destroyed", e->name, e->listener);
    entry_free(e);
}

void state_set_release(struct state_set *set)
{
    if (!set->reg)
        return;
    while (set->refs) {
        struct state_ref *ref = set->refs;
        set->refs = ref->next;
        state_ref_drop(set->reg, ref);
        free(ref);
    }
    state_registry_unref(set->reg);
    set->reg = NULL;
}

unsigned state_registry_count(struct state_registry *reg)
{
    unsigned n = 0;
    pthread_mutex_lock(&reg->lock);
    for (struct state_entry *e = reg->entries; e; e = e->next)
        n++;
    pthread_mutex_unlock(&reg->lock);
    return n;
}
