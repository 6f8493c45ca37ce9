/*
 * conn_tls.c - the TLS layer of a connection accepted on a TLS listener,
 * or opened by wharf_connect_tls (the client side, its SSL object made by
 * tls_client.c): the handshake, paced by the worker's loop, and the record
 * I/O under conn_io.c, so that handlers see only plaintext.
 *
 * The connection reaches the handler (on_open) only once the handshake is
 * done, so wharf_conn_tls_info answers from on_open on.  Until then the
 * SSL object says what it waits for (c->tls_want: LOOP_IN or LOOP_OUT) and
 * conn_io_update_events asks epoll for exactly that; the handshake timeout
 * (handshake_ms, 10 s when unset) bounds it.  An outbound connection's
 * handshake starts once connect() completes, with its ClientHello sent at
 * once; output its handler queued before the end waits (conn_io.c writes
 * nothing during a handshake), and its handshakes are counted apart from
 * the listener's own (the tls_out_* counters).  After it, conn_io.c reads and
 * writes through conn_tls_recv / conn_tls_send as it would with recv/send:
 * a record the socket refused stays in the SSL object and the plaintext it
 * carries stays in the connection's output until it is out, so watermarks,
 * the output budget and the write timeout see it; input is decrypted into
 * the same buffers plain input is read into.
 *
 * The socket is reached through a small BIO of our own: it reads first the
 * bytes that came with a PROXY header (c->tls_prefix), never raises SIGPIPE
 * and reports EAGAIN as a retry.  Reads ahead (tls_ctx.c), a record's header
 * and body come with one recv (and with them whatever else the socket
 * holds); records read ahead but not yet decrypted are read on the same
 * turn (conn_tls_pending), as the socket will not signal them.  With kernel TLS (tls_ctx_ktls) and no such
 * bytes the plain socket BIO is used instead, which OpenSSL needs to hand
 * the record layer to the kernel.
 *
 * Ends: the peer's close_notify is EOF (on_eof, as a FIN on plain TCP); a
 * close without it is a truncation and closes the connection as "error".
 * Our close_notify goes out when wharf_shutdown_write takes effect and when
 * the connection closes for any reason but an error (conn_teardown).  The
 * SSL object is freed only by the teardown.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "tls_ctx.h"
#include "worker.h"

/* How long a handshake may take when handshake_ms is not set. */
#define CONN_TLS_HANDSHAKE_MS 10000

/* ---- the BIO ------------------------------------------------------------------ */

static BIO_METHOD *conn_tls_method;
static pthread_once_t conn_tls_method_once = PTHREAD_ONCE_INIT;

static int conn_tls_bio_read(BIO *b, char *p, int len)
{
    struct wharf_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (c->tls_prefix.len > 0) {
        size_t n = c->tls_prefix.len < (size_t)len ? c->tls_prefix.len : (size_t)len;
        memcpy(p, buf_head(&c->tls_prefix), n);
        buf_consume(&c->tls_prefix, n);
        if (c->tls_prefix.len == 0)
            buf_free(&c->tls_prefix);
        return (int)n;
    }
    for (;;) {
        ssize_t n = loop_recv(&c->w->loop, &c->watcher, p, (size_t)len);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        return -1;
    }
}

static int conn_tls_bio_write(BIO *b, const char *p, int len)
{
    struct wharf_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = send(c->watcher.fd, p, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        return -1;
    }
}

static long conn_tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int conn_tls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void conn_tls_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wharf conn");
    if (m && BIO_meth_set_read(m, conn_tls_bio_read) && BIO_meth_set_write(m, conn_tls_bio_write) &&
        BIO_meth_set_ctrl(m, conn_tls_bio_ctrl) && BIO_meth_set_create(m, conn_tls_bio_create)) {
        conn_tls_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* ---- the handshake -------------------------------------------------------------- */

bool conn_tls_start(struct wharf_conn *c)
{
    pthread_once(&conn_tls_method_once, conn_tls_method_make);
    bool outbound = c->ssl != NULL; /* wharf_connect_tls made it, in connect state */
    SSL *ssl = c->ssl;
    if (!ssl && conn_tls_method && (ssl = SSL_new(c->l->tls->ctx)))
        SSL_set_accept_state(ssl);
    if (!ssl || !conn_tls_method) {
        ERR_clear_error();
        log_write(WHARF_LOG_ERROR, conn_name(c), (int)c->w->id, c->id,
                  "out of memory for a TLS connection");
        conn_close(c, WHARF_CLOSE_ERROR);
        return false;
    }
    c->ssl = ssl;
    c->flags |= CONN_TLS_HANDSHAKE;
    c->tls_want = outbound ? LOOP_OUT : LOOP_IN;
    c->tls_start_ns = histogram_now_ns();
    if (outbound) /* its handshake_ms counts from the connect's end */
        c->handshake_since_ms = c->w->loop.now_ms;
    if (!c->timeout_ms[WHARF_TIMEOUT_HANDSHAKE])
        c->timeout_ms[WHARF_TIMEOUT_HANDSHAKE] = CONN_TLS_HANDSHAKE_MS;
    return true;
}

/* Gives the SSL object its BIO once the PROXY header (if any) was read.
 * The socket BIO (for kernel TLS) writes with write(2): a process that
 * embeds wharf must ignore SIGPIPE, as wharfd does. */
static bool conn_tls_attach(struct wharf_conn *c)
{
    if (SSL_get_rbio(c->ssl))
        return true;
    if (tls_ctx_ktls() && c->tls_prefix.len == 0)
        return SSL_set_fd(c->ssl, c->watcher.fd) == 1;
    BIO *b = BIO_new(conn_tls_method);
    if (!b)
        return false;
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b);
    return true;
}

/* Why a handshake failed, as the metrics count it. */
static enum listener_tls_fail conn_tls_fail_reason(const struct wharf_conn *c, unsigned long e)
{
    if (SSL_get_verify_result(c->ssl) != X509_V_OK)
        return LISTENER_TLS_FAIL_CERTIFICATE;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return LISTENER_TLS_FAIL_CERTIFICATE;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
        return LISTENER_TLS_FAIL_NO_SHARED;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return LISTENER_TLS_FAIL_EOF;
    default:
        return LISTENER_TLS_FAIL_PROTOCOL;
    }
}

/* A failed handshake: counted, one rate-limited line, closed. */
static int conn_tls_handshake_failed(struct wharf_conn *c, int ssl_err)
{
    unsigned long e = ERR_peek_error();
    enum listener_tls_fail why = conn_tls_fail_reason(c, e);
    bool quiet = false;
    if (ssl_err == SSL_ERROR_SYSCALL || (why == LISTENER_TLS_FAIL_EOF && e)) {
        /* The peer closed or reset midway (a port check, an impatient
         * client): counted, closed as "eof", not worth a warning. */
        why = LISTENER_TLS_FAIL_EOF;
        quiet = true;
    }
    bool outbound = (c->flags & CONN_OUTBOUND) != 0;
    if (outbound)
        quiet = false; /* a backend that hangs up mid-handshake is worth a line */
    wharf_counter_add(conn_tls_failed_counter(c, why), 1);
    char reason[256];
    tls_ctx_error(reason, sizeof reason, ssl_err == SSL_ERROR_SYSCALL ? strerror(errno ? errno : ECONNRESET) : "failed");
    if (why == LISTENER_TLS_FAIL_CERTIFICATE && SSL_get_verify_result(c->ssl) != X509_V_OK)
        snprintf(reason, sizeof reason, "%s certificate: %s", outbound ? "server" : "client",
                 X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
    struct conn_set *set = &c->w->conns;
    if (!quiet && log_due(&set->last_tls_log_ms, c->w->loop.now_ms, LOG_RATE_LIMIT_PEER_MS)) {
        char addr[64];
        listener_format_addr(&c->peer.sa, addr, sizeof addr);
        log_write(WHARF_LOG_WARN, conn_name(c), (int)c->w->id, c->id,
                  "%sTLS handshake with %s failed: %s (logged at most every %d ms)",
                  outbound ? "outbound " : "", addr, reason, LOG_RATE_LIMIT_PEER_MS);
    } else {
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)c->w->id, c->id,
                  "TLS handshake failed: %s", reason);
    }
    conn_close(c, quiet ? WHARF_CLOSE_EOF : WHARF_CLOSE_ERROR);
    return -1;
}

/* The handshake is done: counted, the timers made plain again, on_open. */
static void conn_tls_established(struct wharf_conn *c)
{
    struct listener_counters *st = conn_stats(c);
    c->flags &= ~(uint32_t)CONN_TLS_HANDSHAKE;
    c->tls_want = 0;
    bool v13 = SSL_version(c->ssl) == TLS1_3_VERSION;
    if (c->flags & CONN_OUTBOUND) {
        wharf_counter_add(&st->tls_out_handshakes[v13], 1);
    } else {
        wharf_counter_add(&st->tls_handshakes[v13], 1);
        wharf_counter_add(&st->tls_cipher[tls_ctx_cipher_slot(c->l->tls, c->ssl)], 1);
        if (SSL_session_reused(c->ssl))
            wharf_counter_add(&st->tls_resumed, 1);
        histogram_observe(&st->hist[HISTOGRAM_TLS_HANDSHAKE], HISTOGRAM_TLS_HANDSHAKE,
                          histogram_now_ns() - c->tls_start_ns);
    }
    /* From here handshake_ms waits for the first byte of data, as on plain
     * TCP. */
    c->timeout_ms[WHARF_TIMEOUT_HANDSHAKE] = (uint32_t)c->l->cfg->timeouts.handshake_ms;
    c->handshake_since_ms = c->w->loop.now_ms;
    c->bytes_seen = false;
    if (c->state == CONN_PENDING)
        conn_opened(c);
}

int conn_tls_handshake(struct wharf_conn *c)
{
    if (!conn_tls_attach(c)) {
        ERR_clear_error();
        conn_close(c, WHARF_CLOSE_ERROR);
        return -1;
    }
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(c->ssl);
    if (rc != 1) {
        int e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            c->tls_want = e == SSL_ERROR_WANT_READ ? LOOP_IN : LOOP_OUT;
            return conn_io_settle(c);
        }
        return conn_tls_handshake_failed(c, e);
    }
    conn_tls_established(c);
    if (conn_io_settle(c) < 0)
        return -1;
    /* Data may have come with the last handshake message. */
    if (conn_io_wants_input(c))
        return conn_io_read(c);
    return 0;
}

/* ---- records ---------------------------------------------------------------------- */

/* After an SSL call that did not complete: a retry (errno EAGAIN, and what
 * it waits for in tls_want), EOF (0), or an error (-1, errno set). */
static ssize_t conn_tls_result(struct wharf_conn *c, int e, bool reading)
{
    switch (e) {
    case SSL_ERROR_WANT_READ:
        c->tls_want = reading ? 0 : LOOP_IN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->tls_want = reading ? LOOP_OUT : 0;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: /* the peer's close_notify */
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            errno = ECONNRESET;
        ERR_clear_error();
        return -1;
    default: {
        char reason[256];
        tls_ctx_error(reason, sizeof reason, "TLS error");
        log_write(WHARF_LOG_DEBUG, conn_name(c), (int)c->w->id, c->id, "TLS: %s", reason);
        errno = EPROTO;
        return -1;
    }
    }
}

ssize_t conn_tls_recv(struct wharf_conn *c, void *p, size_t len)
{
    size_t n = 0;
    ERR_clear_error();
    errno = 0;
    c->tls_want &= ~(uint32_t)LOOP_OUT;
    c->flags &= ~(uint32_t)CONN_TLS_STARVED;
    int rc = SSL_read_ex(c->ssl, p, len, &n);
    if (rc == 1)
        return (ssize_t)n;
    /* What it still holds is part of a record, or waits for a write. */
    c->flags |= CONN_TLS_STARVED;
    return conn_tls_result(c, SSL_get_error(c->ssl, rc), true);
}

ssize_t conn_tls_send(struct wharf_conn *c, const void *p, size_t len)
{
    size_t n = 0;
    if (len == 0)
        return 0;
    ERR_clear_error();
    errno = 0;
    c->tls_want &= ~(uint32_t)LOOP_IN;
    int rc = SSL_write_ex(c->ssl, p, len, &n);
    if (rc == 1)
        return (ssize_t)n;
    return conn_tls_result(c, SSL_get_error(c->ssl, rc), false);
}

/* With read-ahead the SSL object may hold whole records the socket will
 * not signal again (they came in one recv with the record just read), or
 * only the start of one (then its last read waited for the socket, and
 * epoll tells when the rest comes): only the former asks for a read, so a
 * read that got nothing is not retried before the next event. */
bool conn_tls_pending(const struct wharf_conn *c)
{
    if (!c->ssl || (c->flags & CONN_TLS_HANDSHAKE))
        return false;
    return SSL_pending(c->ssl) > 0 ||
           (!(c->flags & CONN_TLS_STARVED) && SSL_has_pending(c->ssl));
}

void conn_tls_shutdown(struct wharf_conn *c)
{
    if (!c->ssl || (c->flags & CONN_TLS_HANDSHAKE) || !SSL_is_init_finished(c->ssl) ||
        (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
        return;
    ERR_clear_error();
    SSL_shutdown(c->ssl); /* one non-blocking try: the alert, or nothing */
    ERR_clear_error();
}

void conn_tls_free(struct wharf_conn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    buf_free(&c->tls_prefix);
}

/* ---- what a handler can ask ------------------------------------------------------- */

int wharf_conn_tls_info(const wharf_conn *c, struct wharf_tls_info *info)
{
    if (!c || !info)
        return -EINVAL;
    if (!c->ssl)
        return -ENOTSUP;
    /* (not SSL_is_init_finished: a TLS 1.2 client's refused renegotiation
     * leaves the SSL object "in init" though the session stands) */
    if (c->flags & (CONN_TLS_HANDSHAKE | CONN_CONNECTING))
        return -EAGAIN; /* (an outbound one: still connecting, or in its handshake) */
    memset(info, 0, sizeof *info);
    SSL *ssl = c->ssl;
    info->version = SSL_get_version(ssl);
    info->cipher = SSL_get_cipher_name(ssl);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len > 0 && alpn_len < sizeof info->alpn) {
        memcpy(info->alpn, alpn, alpn_len);
        info->alpn[alpn_len] = '\0';
    }
    info->sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name); /* outbound: the one sent */
    info->resumed = SSL_session_reused(ssl) != 0;
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer) {
        info->peer_verified = SSL_get_verify_result(ssl) == X509_V_OK;
        X509_NAME_oneline(X509_get_subject_name(peer), info->peer_subject,
                          (int)sizeof info->peer_subject);
    }
    return 0;
}
