/*
 * tls_ctx.h - a TLS listener's OpenSSL contexts, made from its "tls" config
 * object when its generation is built (wharfd -t, start and reload alike)
 * and freed with the generation's memory.
 *
 * One SSL_CTX for the listener's own certificate and one per "sni" entry;
 * a client's server name picks the first "sni" certificate whose DNS names
 * (subject alternative names, wildcards as browsers match them) cover it,
 * else the listener's certificate.  The contexts are immutable once built
 * and shared by every worker (OpenSSL locks its session cache itself); a
 * reload builds new ones from the files as they are then, so connections
 * accepted after it get the new certificate and open ones keep theirs
 * (each SSL object holds a reference to its context).
 */
#ifndef WHARF_TLS_CTX_H
#define WHARF_TLS_CTX_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct ssl_ctx_st;

struct tls_ctx {
    struct ssl_ctx_st *ctx;      /* the listener's certificate; sessions and tickets */
    struct ssl_ctx_st **sni;     /* [nsni], in "sni" order */
    size_t nsni;
    unsigned char *alpn;         /* "alpn" in wire format (length-prefixed), or NULL */
    size_t alpn_len;
};

/*
 * Makes the contexts of listener config `cfg` (cfg->tls.on) into a new
 * tls_ctx: reads and checks every certificate and key (readable, parsed,
 * the key matches, the leaf is valid now: not expired, not yet valid), the
 * CA file, the cipher lists.  Warns (log) when a key file may be read by
 * group or others.  Returns it, or NULL with "FILE: listeners[i].tls.cert:
 * PATH: reason" in err (file = the config file's name; the reason is
 * OpenSSL's or the system's).
 */
struct tls_ctx *tls_ctx_new(const struct config_listener *cfg, const char *file, char *err,
                            size_t errlen);
/* Frees t (NULL is fine); SSL objects still using a context keep it alive. */
void tls_ctx_free(struct tls_ctx *t);

/* Whether the kernel offers kernel TLS (the "tls" TCP ULP); asked once per
 * process, and the answer logged once. */
bool tls_ctx_ktls(void);

/* The text of the first error in this thread's OpenSSL error queue (or
 * `fallback` when empty) into buf; the queue is cleared.  Returns buf. */
const char *tls_ctx_error(char *buf, size_t len, const char *fallback);

#endif
