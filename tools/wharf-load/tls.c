/* tls.c - wharf-load's TLS layer over OpenSSL 3 (tls.h): the shared client context, the
 * non-blocking handshake, plaintext reads and writes, session tickets kept per connection
 * slot for resumption, the classification of failures, and the tally of what was
 * negotiated.
 *
 * Every OpenSSL call is preceded by ERR_clear_error(): the error queue is per thread and
 * shared by all the connections of an engine thread, so a failure is read right after
 * the call that made it. End of stream without close_notify is taken as an ordinary end
 * (SSL_OP_IGNORE_UNEXPECTED_EOF): the engines already count a reply cut short. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tls_client {
    SSL_CTX *ctx;
    struct tls_opts o;
    char ip[64]; /* the numeric target address, checked when no SNI name is sent */
};

int tls_parse_alpn(struct tls_opts *o, const char *list, char *err, size_t errlen)
{
    const char *p = list, *comma;
    unsigned n = 0;

    if (!*list || strlen(list) >= sizeof(o->alpn_text)) {
        snprintf(err, errlen, "--alpn: expected protocol names separated by commas "
                 "(e.g. h2,http/1.1), got '%s'", list);
        return -1;
    }
    while (*p) {
        size_t len;

        comma = strchr(p, ',');
        len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len > 255 || n + 1 + len > sizeof(o->alpn)) {
            snprintf(err, errlen, "--alpn: expected protocol names of 1 to 255 bytes separated "
                     "by commas (e.g. h2,http/1.1), got '%s'", list);
            return -1;
        }
        o->alpn[n++] = (unsigned char)len;
        memcpy(o->alpn + n, p, len);
        n += (unsigned)len;
        p += len + (comma ? 1 : 0);
        if (comma && !*p) {
            snprintf(err, errlen, "--alpn: a protocol name is empty in '%s'", list);
            return -1;
        }
    }
    o->alpn_len = n;
    snprintf(o->alpn_text, sizeof(o->alpn_text), "%s", list);
    return 0;
}

/* Kept for the slot when a ticket arrives (TLS 1.3: after the handshake; TLS 1.2: in it).
 * Returns 1: the callback keeps the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_conn *tc = SSL_get_app_data(ssl);

    if (!tc)
        return 0;
    if (tc->session)
        SSL_SESSION_free(tc->session);
    tc->session = sess;
    tc->ticket = true;
    return 1;
}

/* The text of OpenSSL's last error (or `dflt` when the queue is empty). */
static void last_error(char *buf, size_t len, const char *dflt)
{
    unsigned long e = ERR_peek_last_error();

    if (!e) {
        snprintf(buf, len, "%s", dflt);
        return;
    }
    ERR_error_string_n(e, buf, len);
}

struct tls_client *tls_client_new(const struct tls_opts *o, const char *ip, char *err,
                                  size_t errlen)
{
    struct tls_client *cl = calloc(1, sizeof(*cl));
    char why[200];

    if (!cl) {
        snprintf(err, errlen, "--tls: out of memory");
        return NULL;
    }
    cl->o = *o;
    snprintf(cl->ip, sizeof(cl->ip), "%s", ip);
    ERR_clear_error();
    cl->ctx = SSL_CTX_new(TLS_client_method());
    if (!cl->ctx) {
        last_error(why, sizeof(why), "unknown error");
        snprintf(err, errlen, "--tls: cannot make the TLS context: %s", why);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(cl->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(cl->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(cl->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    if (o->verify && o->ca_file) {
        FILE *f = fopen(o->ca_file, "r");

        if (!f) {
            snprintf(err, errlen, "--tls-verify: cannot read CA file '%s': %s", o->ca_file,
                     strerror(errno));
            goto fail;
        }
        fclose(f);
    }
    if (o->verify) {
        int ok = o->ca_file ? SSL_CTX_load_verify_locations(cl->ctx, o->ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(cl->ctx);

        if (ok != 1) {
            last_error(why, sizeof(why), "no certificate in it");
            if (o->ca_file)
                snprintf(err, errlen, "--tls-verify: cannot load CA file '%s': %s", o->ca_file,
                         why);
            else
                snprintf(err, errlen, "--tls-verify: cannot load the system CA store: %s", why);
            goto fail;
        }
        SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->alpn_len && SSL_CTX_set_alpn_protos(cl->ctx, o->alpn, o->alpn_len) != 0) {
        snprintf(err, errlen, "--alpn: OpenSSL refused the list '%s'", o->alpn_text);
        goto fail;
    }
    if (o->resume) {
        SSL_CTX_set_session_cache_mode(cl->ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(cl->ctx, on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(cl->ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(cl->ctx, SSL_OP_NO_TICKET);
    }
    return cl;
fail:
    tls_client_free(cl);
    return NULL;
}

void tls_client_free(struct tls_client *cl)
{
    if (!cl)
        return;
    SSL_CTX_free(cl->ctx);
    free(cl);
}

int tls_conn_begin(const struct tls_client *cl, struct tls_conn *tc, int fd,
                   struct tls_failure *f)
{
    const struct tls_opts *o = &cl->o;
    SSL *ssl;

    ERR_clear_error();
    tc->ticket = false;
    ssl = SSL_new(cl->ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        goto fail;
    SSL_set_app_data(ssl, tc);
    if (o->sni[0] && SSL_set_tlsext_host_name(ssl, o->sni) != 1)
        goto fail;
    if (o->verify) {
        /* the name checked: the SNI name when one is sent, else the address dialled */
        if (o->sni[0] ? SSL_set1_host(ssl, o->sni) != 1
                      : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), cl->ip) != 1)
            goto fail;
    }
    if (o->resume && tc->session && SSL_set_session(ssl, tc->session) != 1)
        goto fail;
    SSL_set_connect_state(ssl);
    tc->ssl = ssl;
    return 0;
fail:
    SSL_free(ssl);
    f->kind = ST_SOCKET_ERROR;
    last_error(f->text, sizeof(f->text), "out of memory");
    return -1;
}

/* Fills f for a failed call (ret, SSL_get_error's code e) inside the handshake or after. */
static enum tls_io failed(struct tls_conn *tc, int ret, int e, bool handshake,
                          struct tls_failure *f)
{
    unsigned long code = ERR_peek_last_error();
    char why[120];
    int err = errno;

    (void)ret;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return TLS_IO_WANT;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !code && err == 0)) {
        if (!handshake)
            return TLS_IO_EOF;
        f->kind = ST_TLS_HANDSHAKE;
        snprintf(f->text, sizeof(f->text),
                 "TLS handshake: the server closed the connection during the handshake");
        return TLS_IO_FAIL;
    }
    if (e == SSL_ERROR_SYSCALL && !code) {
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
            return TLS_IO_WANT;
        f->kind = handshake ? ST_TLS_HANDSHAKE : stat_errno(err);
        snprintf(f->text, sizeof(f->text), "%s%s", handshake ? "TLS handshake: " : "",
                 strerror(err));
        return TLS_IO_FAIL;
    }
    if (handshake && ERR_GET_LIB(code) == ERR_LIB_SSL &&
        ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = SSL_get_verify_result(tc->ssl);

        f->kind = ST_TLS_VERIFY;
        snprintf(f->text, sizeof(f->text), "TLS certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        return TLS_IO_FAIL;
    }
    f->kind = handshake ? ST_TLS_HANDSHAKE : ST_TLS_ERROR;
    if (code && ERR_reason_error_string(code))
        snprintf(why, sizeof(why), "%s", ERR_reason_error_string(code));
    else
        last_error(why, sizeof(why), "protocol error");
    snprintf(f->text, sizeof(f->text), "%s: %s", handshake ? "TLS handshake failed" : "TLS error",
             why);
    return TLS_IO_FAIL;
}

enum tls_io tls_conn_handshake(struct tls_conn *tc, struct tls_failure *f)
{
    int r;

    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(tc->ssl);
    if (r == 1)
        return TLS_IO_OK;
    return failed(tc, r, SSL_get_error(tc->ssl, r), true, f);
}

enum tls_io tls_conn_read(struct tls_conn *tc, void *buf, size_t len, size_t *got,
                          struct tls_failure *f)
{
    int r;

    *got = 0;
    ERR_clear_error();
    errno = 0;
    r = SSL_read_ex(tc->ssl, buf, len, got);
    if (r == 1)
        return TLS_IO_OK;
    return failed(tc, r, SSL_get_error(tc->ssl, r), false, f);
}

enum tls_io tls_conn_write(struct tls_conn *tc, const void *buf, size_t len, size_t *done,
                           struct tls_failure *f)
{
    int r;

    *done = 0;
    ERR_clear_error();
    errno = 0;
    r = SSL_write_ex(tc->ssl, buf, len, done);
    if (r == 1)
        return TLS_IO_OK;
    return failed(tc, r, SSL_get_error(tc->ssl, r), false, f);
}

void tls_conn_end(struct tls_conn *tc, bool notify)
{
    if (!tc->ssl)
        return;
    ERR_clear_error();
    if (notify && SSL_is_init_finished(tc->ssl))
        (void)SSL_shutdown(tc->ssl); /* one try: sends close_notify if the socket takes it */
    else
        SSL_set_quiet_shutdown(tc->ssl, 1);
    SSL_free(tc->ssl);
    ERR_clear_error();
    tc->ssl = NULL;
}

void tls_conn_free(struct tls_conn *tc)
{
    tls_conn_end(tc, false);
    if (tc->session)
        SSL_SESSION_free(tc->session);
    tc->session = NULL;
}

bool tls_conn_resumed(const struct tls_conn *tc)
{
    return tc->ssl && SSL_session_reused(tc->ssl);
}

bool tls_conn_is_tls13(const struct tls_conn *tc)
{
    return tc->ssl && SSL_version(tc->ssl) == TLS1_3_VERSION;
}

/* Adds `count` handshakes of one combination to t. */
static void tally_add(struct tls_tally *t, const char *version, const char *cipher,
                      const char *alpn, uint64_t count)
{
    unsigned i;

    for (i = 0; i < t->n; i++)
        if (!strcmp(t->e[i].version, version) && !strcmp(t->e[i].cipher, cipher) &&
            !strcmp(t->e[i].alpn, alpn)) {
            t->e[i].count += count;
            return;
        }
    if (t->n == TLS_TALLY_MAX) {
        t->other += count;
        return;
    }
    snprintf(t->e[t->n].version, sizeof(t->e[t->n].version), "%s", version);
    snprintf(t->e[t->n].cipher, sizeof(t->e[t->n].cipher), "%s", cipher);
    snprintf(t->e[t->n].alpn, sizeof(t->e[t->n].alpn), "%s", alpn);
    t->e[t->n].count = count;
    t->n++;
}

void tls_tally_conn(struct tls_tally *t, const struct tls_conn *tc)
{
    const unsigned char *proto = NULL;
    unsigned plen = 0;
    char alpn[32];

    SSL_get0_alpn_selected(tc->ssl, &proto, &plen);
    if (plen >= sizeof(alpn))
        plen = sizeof(alpn) - 1;
    if (plen)
        memcpy(alpn, proto, plen);
    alpn[plen] = '\0';
    tally_add(t, SSL_get_version(tc->ssl), SSL_get_cipher_name(tc->ssl), alpn, 1);
}

void tls_tally_merge(struct tls_tally *to, const struct tls_tally *from)
{
    unsigned i;

    for (i = 0; i < from->n; i++)
        tally_add(to, from->e[i].version, from->e[i].cipher, from->e[i].alpn, from->e[i].count);
    to->other += from->other;
}
