/*
 * tls_client.c - wharf_tls_client: the settings a handler makes once (in
 * init) for its outbound TLS connections, as one OpenSSL client context
 * shared by all of them on every worker, and the SSL object of each new
 * connection (tls_client_ssl).  The handshake and the records themselves
 * are conn_tls.c's, the same code as a TLS listener's connections.
 *
 * Every context gets: TLS 1.2 or 1.3, no compression, no renegotiation,
 * the server's certificate verified (unless no_verify) against the CA file
 * or the system's store, partial writes with a moving buffer and buffers
 * released while idle (as the listener's contexts, for conn_io.c).  Client
 * sessions are not kept: every connection makes a full handshake.
 */
#include "tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls_ctx.h"

struct wharf_tls_client {
    SSL_CTX *ctx;
    char *server_name; /* the default name, or NULL */
    bool verify;
};

/* "FIELD: FILE: reason" into err; returns NULL. */
static void *tls_client_fail(char *err, size_t errlen, const char *field, const char *file,
                             const char *reason)
{
    if (file)
        snprintf(err, errlen, "%s: %s: %s", field, file, reason);
    else
        snprintf(err, errlen, "%s: %s", field, reason);
    return NULL;
}

/* Whether the file can be opened for reading; else the reason in why. */
static bool tls_client_readable(const char *name, char *why, size_t len)
{
    FILE *f = fopen(name, "r");
    if (!f) {
        snprintf(why, len, "cannot read: %s", strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

/* The ALPN list in wire format into ctx.  Returns false with err set. */
static bool tls_client_alpn(SSL_CTX *ctx, const char *const *alpn, char *err, size_t errlen)
{
    size_t n = 0;
    for (const char *const *p = alpn; p && *p; p++) {
        size_t len = strlen(*p);
        if (len == 0 || len > 255) {
            tls_client_fail(err, errlen, "alpn", NULL, "a protocol name is 1..255 bytes");
            return false;
        }
        n += 1 + len;
    }
    if (n == 0)
        return true;
    unsigned char *wire = malloc(n), *q = wire;
    if (!wire) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (const char *const *p = alpn; *p; p++) {
        size_t len = strlen(*p);
        *q++ = (unsigned char)len;
        memcpy(q, *p, len);
        q += len;
    }
    bool ok = SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)n) == 0; /* (0 is success) */
    free(wire);
    if (!ok)
        snprintf(err, errlen, "out of memory");
    return ok;
}

/* The client certificate and key.  Returns false with err set. */
static bool tls_client_cert(SSL_CTX *ctx, const char *cert, const char *key, char *err,
                            size_t errlen)
{
    char why[256];
    if (!cert && !key)
        return true;
    if (!cert || !key) {
        tls_client_fail(err, errlen, cert ? "key" : "cert", NULL,
                        "a client certificate needs both \"cert\" and \"key\"");
        return false;
    }
    if (!tls_client_readable(cert, why, sizeof why) ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        if (ERR_peek_error())
            tls_ctx_error(why, sizeof why, "not a PEM certificate chain");
        tls_client_fail(err, errlen, "cert", cert, why);
        return false;
    }
    if (!tls_client_readable(key, why, sizeof why) ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_peek_error())
            tls_ctx_error(why, sizeof why, "not a PEM private key");
        tls_client_fail(err, errlen, "key", key, why);
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(why, sizeof why, "key does not match the certificate %s", cert);
        tls_client_fail(err, errlen, "key", key, why);
        return false;
    }
    return true;
}

wharf_tls_client *wharf_tls_client_new(const struct wharf_tls_client_options *opts, char *err,
                                       size_t errlen)
{
    char dummy[8], why[256];
    if (!err)
        err = dummy, errlen = sizeof dummy;
    if (!opts) {
        snprintf(err, errlen, "no options");
        return NULL;
    }
    for (size_t i = 0; i < sizeof opts->reserved / sizeof opts->reserved[0]; i++)
        if (opts->reserved[i]) {
            snprintf(err, errlen, "reserved fields set (built against a newer wharf.h?)");
            return NULL;
        }
    if (opts->server_name && (!*opts->server_name || strlen(opts->server_name) > 255)) {
        snprintf(err, errlen, "server_name: expected a host name of 1..255 bytes");
        return NULL;
    }
    ERR_clear_error();
    struct wharf_tls_client *t = calloc(1, sizeof *t);
    if (!t || !(t->ctx = SSL_CTX_new(TLS_client_method())) ||
        (opts->server_name && !(t->server_name = strdup(opts->server_name)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    SSL_CTX *ctx = t->ctx;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1); /* as a listener's (tls_ctx.c, conn_tls_pending) */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    t->verify = !opts->no_verify;
    if (opts->ca) {
        if (!tls_client_readable(opts->ca, why, sizeof why) ||
            SSL_CTX_load_verify_locations(ctx, opts->ca, NULL) != 1) {
            if (ERR_peek_error())
                tls_ctx_error(why, sizeof why, "not a PEM certificate file");
            tls_client_fail(err, errlen, "ca", opts->ca, why);
            goto fail;
        }
    } else if (t->verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        tls_client_fail(err, errlen, "ca", NULL,
                        tls_ctx_error(why, sizeof why, "cannot use the system's CA store"));
        goto fail;
    }
    SSL_CTX_set_verify(ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (!tls_client_alpn(ctx, opts->alpn, err, errlen) ||
        !tls_client_cert(ctx, opts->cert, opts->key, err, errlen))
        goto fail;
    ERR_clear_error();
    return t;
fail:
    ERR_clear_error();
    wharf_tls_client_free(t);
    return NULL;
}

void wharf_tls_client_free(wharf_tls_client *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx); /* SSL objects made from it hold their own references */
    free(t->server_name);
    free(t);
}

/* Whether name is an IPv4 or IPv6 literal. */
static bool tls_client_is_ip(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

SSL *tls_client_ssl(const wharf_tls_client *t, const char *server_name,
                    const struct sockaddr *addr)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl) {
        ERR_clear_error();
        return NULL;
    }
    SSL_set_connect_state(ssl);
    const char *name = server_name ? server_name : t->server_name;
    bool ok = true;
    if (name && !tls_client_is_ip(name))
        ok = SSL_set_tlsext_host_name(ssl, name) == 1; /* SNI carries host names only */
    if (ok && t->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (name && !tls_client_is_ip(name)) {
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = X509_VERIFY_PARAM_set1_host(vp, name, 0) == 1;
        } else if (name) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(vp, name) == 1;
        } else if (addr->sa_family == AF_INET) {
            ok = X509_VERIFY_PARAM_set1_ip(vp, (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr, 4) == 1;
        } else {
            ok = X509_VERIFY_PARAM_set1_ip(vp, (const unsigned char *)&((const struct sockaddr_in6 *)addr)->sin6_addr, 16) == 1;
        }
    }
    if (!ok) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}
