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
#include <stdint.h>

#include "config.h"

struct ssl_ctx_st;
struct ssl_st;

/* Cipher slots counted by name (wharf_tls_handshakes_by_cipher_total): a
 * process-wide, append-only table, so that a slot means the same cipher in
 * every generation and a reload that changes the ciphers leaves the counts
 * of the old ones as they were.  The last slot counts every cipher that
 * found no slot of its own ("other"). */
#define TLS_CTX_CIPHER_SLOTS 32
#define TLS_CTX_CIPHER_OTHER (TLS_CTX_CIPHER_SLOTS - 1)

struct tls_ctx {
    struct ssl_ctx_st *ctx;      /* the listener's certificate; sessions and tickets */
    struct ssl_ctx_st **sni;     /* [nsni], in "sni" order */
    size_t nsni;
    unsigned char *alpn;         /* "alpn" in wire format (length-prefixed), or NULL */
    size_t alpn_len;
    uint32_t cipher_id[TLS_CTX_CIPHER_SLOTS];  /* the ciphers the config allows (OpenSSL ids) */
    unsigned char cipher_slot[TLS_CTX_CIPHER_SLOTS]; /* ... and their slots */
    unsigned ncipher;
};

/*
 * Makes the contexts of listener config `cfg` (cfg->tls.on) into a new
 * tls_ctx: reads and checks every certificate and key (readable, parsed,
 * the key matches, the leaf is valid now: not expired, not yet valid), the
 * OCSP response files (tls_ocsp.h), the CA file, the cipher lists.  Warns (log) when a key file may be read by
 * group or others.  Returns it, or NULL with "FILE: listeners[i].tls.cert:
 * PATH: reason" in err (file = the config file's name; the reason is
 * OpenSSL's or the system's).
 */
struct tls_ctx *tls_ctx_new(const struct config_listener *cfg, const char *file, char *err,
                            size_t errlen);
/* Frees t (NULL is fine); SSL objects still using a context keep it alive. */
void tls_ctx_free(struct tls_ctx *t);

/* The slot of the cipher that ssl's handshake chose (TLS_CTX_CIPHER_OTHER
 * when it has none).  Costs a look through t's few ciphers; any thread. */
unsigned tls_ctx_cipher_slot(const struct tls_ctx *t, const struct ssl_st *ssl);

/* The cipher slots given out so far (they stay), and one's name and
 * protocol version ("TLSv1.3" for a TLS 1.3 suite, else "TLSv1.2");
 * "other" and "TLSv1.2" for TLS_CTX_CIPHER_OTHER.  Any thread. */
unsigned tls_ctx_cipher_slots(void);
const char *tls_ctx_cipher_name(unsigned slot);
const char *tls_ctx_cipher_version(unsigned slot);
/* Whether t's config allows the cipher of slot. */
bool tls_ctx_cipher_allowed(const struct tls_ctx *t, unsigned slot);

/* Whether the kernel offers kernel TLS (the "tls" TCP ULP); asked once per
 * process, and the answer logged once. */
bool tls_ctx_ktls(void);

/* The text of the first error in this thread's OpenSSL error queue (or
 * `fallback` when empty) into buf; the queue is cleared.  Returns buf. */
const char *tls_ctx_error(char *buf, size_t len, const char *fallback);

#endif
