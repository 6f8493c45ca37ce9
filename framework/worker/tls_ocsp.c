/*
 * tls_ocsp.c - OCSP stapling from a response file (see tls_ocsp.h): the
 * response read and checked against the certificate it is configured
 * with, kept in the SSL_CTX's ex_data (so it lives exactly as long as the
 * context, which open connections may hold after their generation's
 * tls_ctx is gone), and the status callback that hands a copy to each
 * client asking for it.
 */
#include "tls_ocsp.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"

/* A response file larger than this is refused: real ones are a few KiB. */
#define TLS_OCSP_MAX_FILE (1024 * 1024)
/* thisUpdate may be this far ahead of our clock (clock skew). */
#define TLS_OCSP_LEEWAY_S 300
/* A nextUpdate this close or closer is warned about at load. */
#define TLS_OCSP_WARN_S 86400

/* One context's response. */
struct tls_ocsp {
    unsigned char *der;          /* the response as read */
    size_t len;
    time_t next_update;          /* 0: the response has none */
    char *label;                 /* "FILE: PATH: NAME", for the run-time warning */
    atomic_bool expired_said;    /* the expiry was logged */
};

static pthread_once_t ocsp_once = PTHREAD_ONCE_INIT;
static int ocsp_index = -1;

static void tls_ocsp_free(struct tls_ocsp *o)
{
    if (!o)
        return;
    free(o->der);
    free(o->label);
    free(o);
}

/* The ex_data destructor: runs when the SSL_CTX goes. */
static void tls_ocsp_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                             void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    tls_ocsp_free(ptr);
}

static void tls_ocsp_init(void)
{
    ocsp_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_ocsp_ex_free);
}

/* The status callback: a copy of the response for OpenSSL to send and free;
 * none once it has expired (a client would refuse it). */
static int tls_ocsp_status(SSL *ssl, void *arg)
{
    struct tls_ocsp *o = arg;
    if (!o)
        return SSL_TLSEXT_ERR_NOACK;
    if (o->next_update && time(NULL) >= o->next_update) {
        if (!atomic_exchange(&o->expired_said, true))
            log_warn("%s: the OCSP response has expired (nextUpdate passed): it is no longer "
                     "stapled; fetch a new one and reload", o->label);
        return SSL_TLSEXT_ERR_NOACK;
    }
    unsigned char *copy = OPENSSL_memdup(o->der, o->len);
    if (!copy)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)o->len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* "2026-12-04 16:05:27 UTC" into buf. */
static const char *tls_ocsp_time(const ASN1_GENERALIZEDTIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, len, "(no time)");
    return buf;
}

/* t as Unix time (0 when it cannot be read). */
static time_t tls_ocsp_unix(const ASN1_GENERALIZEDTIME *t)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

/* Seconds from now to t (negative: t is past). */
static long tls_ocsp_from_now(const ASN1_GENERALIZEDTIME *t)
{
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, NULL, t) != 1)
        return 0;
    return (long)days * 86400 + secs;
}

/* The whole file into a malloc'ed buffer.  NULL with the reason in why. */
static unsigned char *tls_ocsp_read(const char *name, size_t *len, char *why, size_t whylen)
{
    FILE *f = fopen(name, "rb");
    if (!f) {
        snprintf(why, whylen, "cannot read: %s", strerror(errno));
        return NULL;
    }
    unsigned char *buf = malloc(TLS_OCSP_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, TLS_OCSP_MAX_FILE + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n == 0 || n > TLS_OCSP_MAX_FILE) {
        snprintf(why, whylen, "%s", !buf ? "out of memory"
                                   : bad ? "cannot read it"
                                   : n == 0 ? "empty, expected a DER OCSP response"
                                            : "larger than 1 MiB, not an OCSP response");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* The certificate in ctx's chain that issued leaf, or NULL. */
static X509 *tls_ocsp_issuer(SSL_CTX *ctx, X509 *leaf)
{
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    for (int i = 0; i < sk_X509_num(chain); i++)
        if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK)
            return sk_X509_value(chain, i);
    return NULL;
}

/* Whether the response is signed by issuer or by a responder that issuer
 * delegated to (OCSP signing); the chain's other certificates may help to
 * find the signer. */
static bool tls_ocsp_signed(OCSP_BASICRESP *bs, SSL_CTX *ctx, X509 *issuer, char *why,
                            size_t whylen)
{
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    X509_STORE *store = X509_STORE_new();
    bool ok = store && X509_STORE_add_cert(store, issuer) == 1 &&
              X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN) == 1;
    ERR_clear_error();
    if (ok && OCSP_basic_verify(bs, chain, store, 0) != 1) {
        unsigned long e = ERR_peek_last_error();
        const char *reason = e ? ERR_reason_error_string(e) : NULL;
        snprintf(why, whylen, "not signed by the certificate's issuer or its OCSP responder (%s)",
                 reason ? reason : "signature does not verify");
        ok = false;
    } else if (!ok) {
        snprintf(why, whylen, "out of memory");
    }
    ERR_clear_error();
    X509_STORE_free(store);
    return ok;
}

/* The checks of tls_ocsp.h on resp.  Returns the validated nextUpdate into
 * *next (NULL when there is none) and true, or false with why. */
static bool tls_ocsp_check(SSL_CTX *ctx, OCSP_RESPONSE *resp, OCSP_BASICRESP **bsp,
                           ASN1_GENERALIZEDTIME **next, char *why, size_t whylen)
{
    int rstatus = OCSP_response_status(resp);
    if (rstatus != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(why, whylen, "response status is \"%s\", expected \"successful\"",
                 OCSP_response_status_str(rstatus));
        return false;
    }
    OCSP_BASICRESP *bs = *bsp = OCSP_response_get1_basic(resp);
    if (!bs) {
        snprintf(why, whylen, "not a basic OCSP response");
        return false;
    }
    if (OCSP_resp_count(bs) != 1) {
        snprintf(why, whylen, "holds %d certificate statuses, expected one", OCSP_resp_count(bs));
        return false;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    X509 *issuer = tls_ocsp_issuer(ctx, leaf);
    if (!issuer) {
        snprintf(why, whylen, "the certificate's issuer is not in its chain file (after the "
                              "certificate): needed to check the response");
        return false;
    }
    /* The cert id with the response's own hash (SHA-1 mostly, SHA-256 from
     * some responders). */
    ASN1_OBJECT *md_oid = NULL;
    OCSP_id_get0_info(NULL, &md_oid, NULL, NULL,
                      (OCSP_CERTID *)OCSP_SINGLERESP_get0_id(OCSP_resp_get0(bs, 0)));
    const EVP_MD *md = md_oid ? EVP_get_digestbyobj(md_oid) : NULL;
    OCSP_CERTID *id = md ? OCSP_cert_to_id(md, leaf, issuer) : NULL;
    int status = -1, reason = -1;
    ASN1_GENERALIZEDTIME *revoked = NULL, *this_update = NULL;
    if (!id || OCSP_resp_find_status(bs, id, &status, &reason, &revoked, &this_update, next) != 1) {
        OCSP_CERTID_free(id);
        snprintf(why, whylen, "not for this certificate (its cert id names another certificate "
                              "or issuer)");
        return false;
    }
    OCSP_CERTID_free(id);
    if (!tls_ocsp_signed(bs, ctx, issuer, why, whylen))
        return false;
    char when[64];
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
        snprintf(why, whylen, "the certificate is revoked (since %s, reason %s)",
                 tls_ocsp_time(revoked, when, sizeof when),
                 reason >= 0 ? OCSP_crl_reason_str(reason) : "not given");
        return false;
    }
    if (status != V_OCSP_CERTSTATUS_GOOD) {
        snprintf(why, whylen, "certificate status is \"%s\", expected \"good\"",
                 OCSP_cert_status_str(status));
        return false;
    }
    if (this_update && tls_ocsp_from_now(this_update) > TLS_OCSP_LEEWAY_S) {
        snprintf(why, whylen, "the response is not yet valid (thisUpdate %s)",
                 tls_ocsp_time(this_update, when, sizeof when));
        return false;
    }
    if (*next && tls_ocsp_from_now(*next) <= 0) {
        snprintf(why, whylen, "the response has expired (nextUpdate %s)",
                 tls_ocsp_time(*next, when, sizeof when));
        return false;
    }
    return true;
}

bool tls_ocsp_use_file(SSL_CTX *ctx, const char *label, const char *name, char *why,
                       size_t whylen)
{
    pthread_once(&ocsp_once, tls_ocsp_init);
    if (ocsp_index < 0) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    size_t len = 0;
    unsigned char *der = tls_ocsp_read(name, &len, why, whylen);
    if (!der)
        return false;
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *bs = NULL;
    ASN1_GENERALIZEDTIME *next = NULL;
    struct tls_ocsp *o = NULL;
    bool ok = false;
    ERR_clear_error();
    if (!resp || p != der + len) {
        snprintf(why, whylen, "not a DER OCSP response");
        goto out;
    }
    if (!tls_ocsp_check(ctx, resp, &bs, &next, why, whylen))
        goto out;
    long left = next ? tls_ocsp_from_now(next) : 0;
    size_t llen = strlen(label) + strlen(name) + 3;
    if (!(o = calloc(1, sizeof *o)) || !(o->label = malloc(llen))) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    snprintf(o->label, llen, "%s: %s", label, name);
    o->der = der, o->len = len, der = NULL;
    o->next_update = next ? tls_ocsp_unix(next) : 0;
    if (SSL_CTX_set_ex_data(ctx, ocsp_index, o) != 1) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    struct tls_ocsp *kept = o;
    o = NULL; /* the context owns it now */
    SSL_CTX_set_tlsext_status_cb(ctx, tls_ocsp_status);
    SSL_CTX_set_tlsext_status_arg(ctx, kept);
    char when[64];
    if (!next)
        log_info("%s: %s: OCSP response (good) stapled; it has no nextUpdate", label, name);
    else if (left <= TLS_OCSP_WARN_S)
        log_warn("%s: %s: the OCSP response expires within a day (nextUpdate %s): "
                 "fetch a new one and reload", label, name,
                 tls_ocsp_time(next, when, sizeof when));
    else
        log_info("%s: %s: OCSP response (good) stapled until its nextUpdate, %s", label, name,
                 tls_ocsp_time(next, when, sizeof when));
    ok = true;
out:
    ERR_clear_error();
    tls_ocsp_free(o);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    free(der);
    return ok;
}

bool tls_ocsp_next_update(const SSL_CTX *ctx, time_t *when)
{
    pthread_once(&ocsp_once, tls_ocsp_init);
    const struct tls_ocsp *o =
        ocsp_index >= 0 && ctx ? SSL_CTX_get_ex_data(ctx, ocsp_index) : NULL;
    if (!o || !o->next_update)
        return false;
    *when = o->next_update;
    return true;
}
