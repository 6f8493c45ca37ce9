/*
 * tls_ctx.c - building a TLS listener's OpenSSL contexts from its config
 * (see tls_ctx.h): versions, ciphers, certificates and keys checked one by
 * one so that a refusal names the file and the reason, client certificate
 * verification, ALPN, the session cache and tickets, the choice of
 * certificate by server name (SNI) and each certificate's stapled OCSP
 * response (tls_ocsp.c).
 *
 * The settings every context gets, whatever the config: no compression, no
 * renegotiation, the server's cipher order, partial writes with a moving
 * buffer (conn_tls.c retries a blocked record from wherever the output
 * then is), buffers released while a connection is idle, and read-ahead
 * (one recv for a record's header and body, and for the records behind it,
 * instead of two per record; nginx sets it too).
 */
#include "tls_ctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls_ocsp.h"

const char *tls_ctx_error(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    if (e == 0) {
        snprintf(buf, len, "%s", fallback);
    } else {
        const char *reason = ERR_reason_error_string(e);
        if (reason)
            snprintf(buf, len, "%s", reason);
        else
            ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

static pthread_once_t ktls_once = PTHREAD_ONCE_INIT;
static bool ktls_available;

/* Reads the kernel's list of TCP upper-layer protocols once. */
static void tls_ctx_ktls_probe(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    char line[256] = "";
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n"))
        if (strcmp(tok, "tls") == 0)
            ktls_available = true;
    if (ktls_available)
        log_info("TLS: the kernel offers kernel TLS (the tls ULP); OpenSSL may hand it the "
                 "record layer of connections");
    else
        log_info("TLS: the kernel offers no kernel TLS (no tls ULP in "
                 "/proc/sys/net/ipv4/tcp_available_ulp): records are encrypted in user space");
}

bool tls_ctx_ktls(void)
{
    pthread_once(&ktls_once, tls_ctx_ktls_probe);
    return ktls_available;
}

/* ---- cipher slots (tls_ctx.h) ---------------------------------------------------- */

static pthread_mutex_t cipher_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned cipher_nslots; /* given out, at most TLS_CTX_CIPHER_OTHER */
static uint32_t cipher_ids[TLS_CTX_CIPHER_SLOTS];
static const char *cipher_names[TLS_CTX_CIPHER_SLOTS]; /* OpenSSL's static strings */
static bool cipher_v13[TLS_CTX_CIPHER_SLOTS];

/* The slot of cipher c, given out now if it has none and one is left. */
static unsigned tls_ctx_cipher_register(const SSL_CIPHER *c)
{
    uint32_t id = SSL_CIPHER_get_id(c);
    pthread_mutex_lock(&cipher_lock);
    unsigned n = atomic_load_explicit(&cipher_nslots, memory_order_relaxed), slot;
    for (slot = 0; slot < n && cipher_ids[slot] != id; slot++)
        ;
    if (slot == n && n < TLS_CTX_CIPHER_OTHER) {
        cipher_ids[slot] = id;
        cipher_names[slot] = SSL_CIPHER_get_name(c);
        cipher_v13[slot] = strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0;
        /* (readers take the count with acquire, then the entry) */
        atomic_store_explicit(&cipher_nslots, n + 1, memory_order_release);
    } else if (slot == n) {
        slot = TLS_CTX_CIPHER_OTHER;
    }
    pthread_mutex_unlock(&cipher_lock);
    return slot;
}

/* Records the ciphers t's context allows (TLS 1.3 suites only when 1.3 may
 * be spoken) and their slots. */
static void tls_ctx_ciphers(struct tls_ctx *t, const struct config_tls *tc)
{
    STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(t->ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(list) && t->ncipher < TLS_CTX_CIPHER_SLOTS; i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        bool v13 = strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0;
        if (v13 ? tc->max_version == 12 : tc->min_version == 13)
            continue;
        t->cipher_id[t->ncipher] = SSL_CIPHER_get_id(c);
        t->cipher_slot[t->ncipher++] = (unsigned char)tls_ctx_cipher_register(c);
    }
}

unsigned tls_ctx_cipher_slot(const struct tls_ctx *t, const SSL *ssl)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    uint32_t id = c ? SSL_CIPHER_get_id(c) : 0;
    for (unsigned i = 0; t && i < t->ncipher; i++)
        if (t->cipher_id[i] == id)
            return t->cipher_slot[i];
    return TLS_CTX_CIPHER_OTHER;
}

unsigned tls_ctx_cipher_slots(void)
{
    return atomic_load_explicit(&cipher_nslots, memory_order_acquire);
}

const char *tls_ctx_cipher_name(unsigned slot)
{
    return slot < tls_ctx_cipher_slots() ? cipher_names[slot] : "other";
}

const char *tls_ctx_cipher_version(unsigned slot)
{
    return slot < tls_ctx_cipher_slots() && cipher_v13[slot] ? "TLSv1.3" : "TLSv1.2";
}

bool tls_ctx_cipher_allowed(const struct tls_ctx *t, unsigned slot)
{
    for (unsigned i = 0; t && i < t->ncipher; i++)
        if (t->cipher_slot[i] == slot)
            return true;
    return false;
}

/* ---- building the contexts -------------------------------------------------------- */

/* "FILE: PATH.KEY: NAME: reason" into err.  Returns NULL. */
static void *tls_ctx_fail(char *err, size_t errlen, const char *file,
                          const struct config_listener *cfg, const char *key, const char *name,
                          const char *reason)
{
    if (name)
        snprintf(err, errlen, "%s: %s.tls.%s: %s: %s", file, cfg->path, key, name, reason);
    else
        snprintf(err, errlen, "%s: %s.tls.%s: %s", file, cfg->path, key, reason);
    return NULL;
}

/* Whether the file can be opened for reading; else the reason in why. */
static bool tls_ctx_readable(const char *name, char *why, size_t len)
{
    FILE *f = fopen(name, "r");
    if (!f) {
        snprintf(why, len, "cannot read: %s", strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

/* Warns when the key file may be read by group or others. */
static void tls_ctx_check_mode(const char *file, const struct config_listener *cfg,
                               const char *key, const char *name)
{
    struct stat st;
    if (stat(name, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        log_warn("%s: %s.tls.%s: %s is readable by %s (mode %04o): a private key should be "
                 "readable by its owner only (chmod 600)", file, cfg->path, key, name,
                 (st.st_mode & S_IROTH) ? "others" : "its group",
                 (unsigned)(st.st_mode & 07777));
}

/* Loads a certificate chain and its key into ctx and checks them.  Returns
 * true, or false with the message in err. */
static bool tls_ctx_use_cert(SSL_CTX *ctx, const char *file, const struct config_listener *cfg,
                             const char *cert_key, const char *cert, const char *key_key,
                             const char *key, char *err, size_t errlen)
{
    char why[256];
    ERR_clear_error();
    if (!tls_ctx_readable(cert, why, sizeof why) ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        if (ERR_peek_error())
            tls_ctx_error(why, sizeof why, "not a PEM certificate chain");
        tls_ctx_fail(err, errlen, file, cfg, cert_key, cert, why);
        return false;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        tls_ctx_fail(err, errlen, file, cfg, cert_key, cert, "certificate has expired");
        return false;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
        tls_ctx_fail(err, errlen, file, cfg, cert_key, cert, "certificate is not yet valid");
        return false;
    }
    if (!tls_ctx_readable(key, why, sizeof why) ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_peek_error())
            tls_ctx_error(why, sizeof why, "not a PEM private key");
        /* A key of another type than the certificate fails here already. */
        tls_ctx_fail(err, errlen, file, cfg, key_key, key, why);
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        char msg[1024];
        ERR_clear_error(); /* (OpenSSL's reason names a certificate slot, not the files) */
        snprintf(msg, sizeof msg, "key does not match the certificate %s", cert);
        tls_ctx_fail(err, errlen, file, cfg, key_key, key, msg);
        return false;
    }
    tls_ctx_check_mode(file, cfg, key_key, key);
    return true;
}

/* Staples the "ocsp_file" (key: "ocsp_file" or "sni[i].ocsp_file") on ctx,
 * whose certificate is loaded; none given is fine.  Returns true, or false
 * with the message in err. */
static bool tls_ctx_use_ocsp(SSL_CTX *ctx, const char *file, const struct config_listener *cfg,
                             const char *ocsp_key, const char *name, char *err, size_t errlen)
{
    char why[512], label[256];
    if (!name)
        return true;
    snprintf(label, sizeof label, "%s: %s.tls.%s", file, cfg->path, ocsp_key);
    if (!tls_ocsp_use_file(ctx, label, name, why, sizeof why)) {
        tls_ctx_fail(err, errlen, file, cfg, ocsp_key, name, why);
        return false;
    }
    return true;
}

/* ALPN: the first of the server's protocols that the client offers; none
 * in common goes on without ALPN (as nginx does). */
static int tls_ctx_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                               const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    struct tls_ctx *t = arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, t->alpn, (unsigned)t->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: switches the connection to the first "sni" certificate that covers
 * the name; otherwise it keeps the listener's. */
static int tls_ctx_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct tls_ctx *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !*name)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < t->nsni; i++) {
        X509 *leaf = SSL_CTX_get0_certificate(t->sni[i]);
        if (leaf && X509_check_host(leaf, name, 0,
                                    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
                                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                                    NULL) == 1) {
            SSL_set_SSL_CTX(ssl, t->sni[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* A context with the settings every one gets and the config's versions and
 * ciphers.  NULL with the message in err. */
static SSL_CTX *tls_ctx_base(const struct config_listener *cfg, const char *file, char *err,
                             size_t errlen)
{
    const struct config_tls *tc = &cfg->tls;
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tls_ctx_fail(err, errlen, file, cfg, "cert", NULL,
                     tls_ctx_error(why, sizeof why, "out of memory"));
        return NULL;
    }
    uint64_t opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                    SSL_OP_CIPHER_SERVER_PREFERENCE; /* (client renegotiation is off by default in 3.0) */
    if (!tc->session_tickets)
        opts |= SSL_OP_NO_TICKET;
    if (tls_ctx_ktls())
        opts |= SSL_OP_ENABLE_KTLS;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_min_proto_version(ctx, tc->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, tc->max_version == 12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    ERR_clear_error();
    if (SSL_CTX_set_cipher_list(ctx, tc->ciphers) != 1) {
        tls_ctx_fail(err, errlen, file, cfg, "ciphers", NULL,
                     tls_ctx_error(why, sizeof why, "no cipher in the list is known"));
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(ctx, tc->ciphersuites) != 1) {
        tls_ctx_fail(err, errlen, file, cfg, "ciphersuites", NULL,
                     tls_ctx_error(why, sizeof why, "no suite in the list is known"));
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* "alpn" in wire format. */
static int tls_ctx_alpn(struct tls_ctx *t, const json_t *alpn)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(alpn); i++)
        n += 1 + json_string_length(json_array_get(alpn, i));
    if (n == 0)
        return 0;
    if (!(t->alpn = malloc(n)))
        return -1;
    for (size_t i = 0; i < json_array_size(alpn); i++) {
        const json_t *e = json_array_get(alpn, i);
        size_t len = json_string_length(e);
        t->alpn[t->alpn_len++] = (unsigned char)len;
        memcpy(t->alpn + t->alpn_len, json_string_value(e), len);
        t->alpn_len += len;
    }
    return 0;
}

struct tls_ctx *tls_ctx_new(const struct config_listener *cfg, const char *file, char *err,
                            size_t errlen)
{
    const struct config_tls *tc = &cfg->tls;
    char why[256];
    struct tls_ctx *t = calloc(1, sizeof *t);
    if (!t || (tc->nsni && !(t->sni = calloc(tc->nsni, sizeof *t->sni))) ||
        tls_ctx_alpn(t, tc->alpn_json) < 0) {
        tls_ctx_free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(t->ctx = tls_ctx_base(cfg, file, err, errlen)) ||
        !tls_ctx_use_cert(t->ctx, file, cfg, "cert", tc->cert, "key", tc->key, err, errlen) ||
        !tls_ctx_use_ocsp(t->ctx, file, cfg, "ocsp_file", tc->ocsp_file, err, errlen))
        goto fail;
    SSL_CTX *ctx = t->ctx;
    tls_ctx_ciphers(t, tc);
    if (tc->ca) {
        ERR_clear_error();
        STACK_OF(X509_NAME) *names = NULL;
        if (!tls_ctx_readable(tc->ca, why, sizeof why) ||
            SSL_CTX_load_verify_locations(ctx, tc->ca, NULL) != 1 ||
            !(names = SSL_load_client_CA_file(tc->ca))) {
            if (ERR_peek_error())
                tls_ctx_error(why, sizeof why, "not a PEM certificate file");
            tls_ctx_fail(err, errlen, file, cfg, "ca", tc->ca, why);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    int mode = tc->verify == CONFIG_VERIFY_NONE     ? SSL_VERIFY_NONE
               : tc->verify == CONFIG_VERIFY_OPTIONAL ? SSL_VERIFY_PEER
                                                      : SSL_VERIFY_PEER |
                                                            SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    /* Sessions: resumed only on the listener they were made on. */
    unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
    size_t sid_len = strlen(cfg->name) < sizeof sid ? strlen(cfg->name) : sizeof sid;
    memcpy(sid, cfg->name, sid_len);
    SSL_CTX_set_session_id_context(ctx, sid, (unsigned)sid_len);
    if (tc->session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, tc->session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    long secs = (long)((tc->session_timeout_ms + 999) / 1000);
    SSL_CTX_set_timeout(ctx, secs > 0 ? secs : 1);
    if (t->alpn)
        SSL_CTX_set_alpn_select_cb(ctx, tls_ctx_alpn_select, t);
    for (size_t i = 0; i < tc->nsni; i++) {
        char ckey[32], kkey[32], okey[40];
        snprintf(ckey, sizeof ckey, "sni[%zu].cert", i);
        snprintf(kkey, sizeof kkey, "sni[%zu].key", i);
        snprintf(okey, sizeof okey, "sni[%zu].ocsp_file", i);
        if (!(t->sni[i] = tls_ctx_base(cfg, file, err, errlen)))
            goto fail;
        t->nsni = i + 1;
        if (!tls_ctx_use_cert(t->sni[i], file, cfg, ckey, tc->sni[i].cert, kkey,
                              tc->sni[i].key, err, errlen) ||
            !tls_ctx_use_ocsp(t->sni[i], file, cfg, okey, tc->sni[i].ocsp_file, err, errlen))
            goto fail;
        /* After the switch the connection verifies with the new context's
         * store and mode: the same as the listener's. */
        SSL_CTX_set_verify(t->sni[i], mode, NULL);
        if (tc->ca && SSL_CTX_load_verify_locations(t->sni[i], tc->ca, NULL) != 1) {
            tls_ctx_fail(err, errlen, file, cfg, "ca", tc->ca,
                         tls_ctx_error(why, sizeof why, "not a PEM certificate file"));
            goto fail;
        }
        SSL_CTX_set_session_id_context(t->sni[i], sid, (unsigned)sid_len);
    }
    if (tc->nsni) {
        SSL_CTX_set_tlsext_servername_callback(ctx, tls_ctx_servername);
        SSL_CTX_set_tlsext_servername_arg(ctx, t);
    }
    t->nsni = tc->nsni;
    return t;
fail:
    tls_ctx_free(t);
    return NULL;
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    for (size_t i = 0; t->sni && i < t->nsni; i++)
        SSL_CTX_free(t->sni[i]);
    free(t->sni);
    free(t->alpn);
    free(t);
}
