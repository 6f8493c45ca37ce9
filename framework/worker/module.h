/*
 * module.h - finds, dlopen()s and checks handler modules.
 *
 * A handler is named either by a path (anything containing '/') or by a bare
 * name, which is looked up as NAME.so in, in order: the config's module_path
 * (colon-separated), $WHARF_MODULE_PATH (colon-separated), the installed
 * module directory (WHARF_MODULEDIR), and the build tree's handlers/.libs
 * (WHARF_BUILD_MODULEDIR, only when it exists) so that an uninstalled wharfd
 * runs with the shipped configs.
 */
#ifndef WHARF_MODULE_H
#define WHARF_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "wharf.h"

struct listener;
struct module_file;
struct state_set;

/* What init can reach beyond its options: the listener being built, the
 * generation's named state (wharf_state_get) and the worker count. */
struct module_scope {
    struct listener *l;
    struct state_set *states;
    unsigned nworkers;
};

/* Whether a descriptor of ABI `version` can be used (1 to
 * WHARF_ABI_VERSION), and how many bytes of it that version has. */
bool module_abi_supported(uint32_t version);
size_t module_abi_size(uint32_t version);

struct module {
    void *dl;                          /* dlopen handle; NULL for a built-in */
    const struct wharf_handler *handler; /* &desc */
    struct wharf_handler desc;         /* a copy; parts its ABI version lacks are NULL */
    char *path;                        /* the file that was loaded */
    struct module_file *file;          /* the loaded file's record (module.c) */
};

/*
 * Loads handler `name` for a listener of `protocol`: one of `builtins`
 * (handlers registered in-process) when a bare name matches, else a file.  Returns 0 and a new
 * module in *out, or a negative errno (-ENOENT when no file was found,
 * -EINVAL for every other refusal) with one line in err naming the file (or the places
 * searched) and the reason: not found, not a wharf module (no wharf_handler
 * symbol, or dlopen's message), ABI mismatch (expected/found), or no callback
 * for the protocol (on_data for tcp, on_datagram for udp).
 */
int module_load(const char *name, const char *module_path, enum config_protocol protocol,
                const struct wharf_handler *const *builtins, size_t nbuiltins,
                struct module **out, char *err, size_t errlen);

/* Whether a module file, or its directory, writable by a user other than
 * root may be loaded while running as root (with a warning).  Refused by
 * default.  Process-wide. */
void module_set_insecure(bool allow);

/* dlclose()s and frees.  NULL is fine. */
void module_unload(struct module *m);

/*
 * Calls the handler's init with `options` (a JSON object) in `scope` (NULL:
 * no named state, one worker).  Returns 0 and the handler's listener data
 * in *listener_data, or -1 with the handler's reason in err.  A handler
 * without init gets listener_data NULL.
 */
int module_init_listener(const struct module *m, json_t *options,
                         const struct module_scope *scope, void **listener_data, char *err,
                         size_t errlen);

#endif
