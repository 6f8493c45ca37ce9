/*
 * fuzz_tls.c - libFuzzer target for the server side of a TLS connection:
 * the fuzzer's bytes are what a client sends to a TLS listener (the echo
 * handler, compiled in), driven through the test kit (wharf_test.h) on a
 * socketpair, so they meet the real thing: the listener's SSL_CTX built by
 * tls_ctx.c from certificate files, conn_tls.c's BIO, handshake and record
 * I/O, the PROXY reader before the ClientHello, the handshake timeout and
 * the teardown.
 *
 * The input's first bytes choose how it is sent:
 *
 *   byte 0   bits 0-2: the number of cuts (0..7); bit 3: the last piece
 *            comes with the client's EOF; bit 4: the listener wants a PROXY
 *            header ("any") before the handshake; bit 5: the kit's clock
 *            moves a second after each piece (the 3 s handshake timeout
 *            fires mid-way); bit 6: a real client completes a handshake
 *            first (after a PROXY v1 header, with bit 4), and the bytes
 *            then come as records on the established connection; bit 7:
 *            afterwards a second real client must complete a handshake
 *            and get its "ping" echoed (the listener keeps serving)
 *   bytes 1..cuts: where each cut falls, in 256ths of what follows
 *   the rest: the client's bytes
 *
 * Checked, besides what ASan and UBSan see: without bit 6 the connection
 * never completes a handshake (the fuzzer cannot forge a Finished), so
 * once the clock passes the handshake timeout it must be closed, with
 * reason timeout or error: a client that sends garbage or stalls costs at
 * most that.  The real clients use OpenSSL over memory BIOs, their bytes
 * carried by the kit.  Each input gets a fresh kit, so a crash replays
 * from its input alone; the certificate (ECDSA P-256, self-signed) is made
 * once per process into a temporary directory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "wharf_test.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* handlers/echo.c, compiled into this program. */
extern const struct wharf_handler wharf_handler;

#define HANDSHAKE_MS 3000

#include "fuzz_check.h"

static char listener_plain[1024], listener_proxy[1024];
static SSL_CTX *client_ctx;

/* A self-signed P-256 certificate for localhost into dir/cert.pem and
 * dir/key.pem. */
static void make_cert(const char *dir)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    CHECK(key && x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    CHECK(X509_sign(x, key, EVP_sha256()) > 0);
    char path[512];
    snprintf(path, sizeof path, "%s/cert.pem", dir);
    FILE *f = fopen(path, "w");
    CHECK(f && PEM_write_X509(f, x) == 1);
    fclose(f);
    snprintf(path, sizeof path, "%s/key.pem", dir);
    mode_t was = umask(077);
    f = fopen(path, "w");
    umask(was);
    CHECK(f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static char certdir[256];

static void remove_cert(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cert.pem", certdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/key.pem", certdir);
    unlink(path);
    rmdir(certdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(certdir, sizeof certdir, "%s/fuzz_tls.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(certdir));
    make_cert(certdir);
    atexit(remove_cert);
    const char *common = "\"timeouts\": {\"idle_ms\": 0, \"handshake_ms\": %d}, "
                         "\"buffers\": {\"max_input\": 16384, \"max_output\": 65536}, "
                         "\"tls\": {\"cert\": \"%s/cert.pem\", \"key\": \"%s/key.pem\"}%s";
    snprintf(listener_plain, sizeof listener_plain, common, HANDSHAKE_MS, certdir, certdir, "");
    snprintf(listener_proxy, sizeof listener_proxy, common, HANDSHAKE_MS, certdir, certdir,
             ", \"proxy_protocol\": \"any\"");
    client_ctx = SSL_CTX_new(TLS_client_method());
    CHECK(client_ctx);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    return 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* A real client over memory BIOs whose bytes the kit carries. */
struct client {
    SSL *ssl;
    BIO *in, *out; /* in: what the server sent; out: what we send */
};

static void client_new(struct client *cl)
{
    cl->ssl = SSL_new(client_ctx);
    cl->in = BIO_new(BIO_s_mem());
    cl->out = BIO_new(BIO_s_mem());
    CHECK(cl->ssl && cl->in && cl->out);
    BIO_set_mem_eof_return(cl->in, -1); /* empty: retry, not EOF */
    SSL_set_bio(cl->ssl, cl->in, cl->out);
    SSL_set_tlsext_host_name(cl->ssl, "localhost");
    SSL_set_connect_state(cl->ssl);
}

/* Carries bytes both ways once.  Returns false once the connection closed. */
static bool client_pump(struct client *cl, wharf_test_conn *c)
{
    enum wharf_close_reason why;
    char buf[16384];
    int n;
    while ((n = BIO_read(cl->out, buf, sizeof buf)) > 0)
        if (wharf_test_send(c, buf, (size_t)n) < 0)
            return false;
    size_t len;
    const char *got = wharf_test_output(c, &len);
    if (len > 0)
        CHECK(BIO_write(cl->in, got, (int)len) == (int)len);
    if (wharf_test_closed(c, &why)) {
        fprintf(stderr, "fuzz_tls: the real client's connection closed (reason %d)\n", (int)why);
        return false;
    }
    return true;
}

/* Completes the handshake (bounded).  Returns whether it did. */
static bool client_handshake(struct client *cl, wharf_test_conn *c)
{
    for (int i = 0; i < 20; i++) {
        ERR_clear_error(); /* (the server's SSL shares this thread's error queue) */
        int rc = SSL_do_handshake(cl->ssl);
        /* (before the pump: writing into the BIO clears its retry flag) */
        int e = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(cl->ssl, rc);
        if (!client_pump(cl, c))
            return false;
        if (rc == 1)
            return true;
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            fprintf(stderr, "fuzz_tls: the real client's handshake: error %d in %s: %s\n", e,
                    SSL_state_string_long(cl->ssl), ERR_reason_error_string(ERR_get_error()));
            return false;
        }
    }
    fprintf(stderr, "fuzz_tls: the real client's handshake did not end\n");
    return false;
}

/* Sends "ping" and returns whether it came back. */
static bool client_ping(struct client *cl, wharf_test_conn *c)
{
    ERR_clear_error();
    CHECK(SSL_write(cl->ssl, "ping", 4) == 4);
    char got[16];
    for (int i = 0; i < 10; i++) {
        if (!client_pump(cl, c))
            return false;
        ERR_clear_error();
        int n = SSL_read(cl->ssl, got, sizeof got);
        if (n > 0)
            return n == 4 && memcmp(got, "ping", 4) == 0;
    }
    return false;
}

/* Sends body[0..len) in the pieces the header chose; stops once closed. */
static void send_pieces(wharf_test *t, wharf_test_conn *c, uint8_t mode, const uint8_t *cut,
                        unsigned ncut, const uint8_t *body, size_t len)
{
    size_t at[9];
    for (unsigned i = 0; i < ncut; i++)
        at[i] = (size_t)cut[i] * len / 256;
    qsort(at, ncut, sizeof at[0], cmp_size);
    at[ncut] = len;
    size_t from = 0;
    for (unsigned i = 0; i <= ncut; i++) {
        size_t n = at[i] - from;
        int rc;
        if (i == ncut && (mode & 0x08))
            rc = wharf_test_send_eof(c, body + from, n);
        else
            rc = n ? wharf_test_send(c, body + from, n) : 0;
        from = at[i];
        (void)wharf_test_output(c, NULL); /* the server's records and alerts */
        if (mode & 0x20)
            wharf_test_advance(t, 1000);
        if (rc < 0 || wharf_test_closed(c, NULL))
            return;
    }
}

static const char proxy_v1[] = "PROXY TCP4 192.0.2.1 192.0.2.2 40000 443\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    unsigned ncut = mode & 0x07;
    if (size < 1 + ncut)
        return 0;
    const uint8_t *cut = data + 1, *body = data + 1 + ncut;
    size_t len = size - 1 - ncut;
    bool proxy = mode & 0x10, established = mode & 0x40;

    char err[512] = "";
    wharf_test *t = wharf_test_new(&wharf_handler, proxy ? listener_proxy : listener_plain, err,
                                   sizeof err);
    if (!t) {
        fprintf(stderr, "fuzz_tls: the kit: %s\n", err);
        abort();
    }
    wharf_test_conn *c = wharf_test_connect(t);
    CHECK(c);
    struct client real = {0};
    if (established) {
        client_new(&real);
        if (proxy)
            CHECK(wharf_test_send(c, proxy_v1, sizeof proxy_v1 - 1) == 0);
        CHECK(client_handshake(&real, c));
        CHECK(client_ping(&real, c));
    }
    send_pieces(t, c, mode, cut, ncut, body, len);
    /* Past the handshake timeout: a connection that never completed one
     * is gone, for a timeout or an error. */
    wharf_test_advance(t, HANDSHAKE_MS + 1000);
    enum wharf_close_reason why;
    if (!established) {
        CHECK(wharf_test_closed(c, &why));
        CHECK(why == WHARF_CLOSE_TIMEOUT || why == WHARF_CLOSE_ERROR ||
              why == WHARF_CLOSE_EOF || why == WHARF_CLOSE_LIMIT);
    }
    if (real.ssl)
        SSL_free(real.ssl);
    if (mode & 0x80) { /* the listener keeps serving */
        wharf_test_conn *c2 = wharf_test_connect(t);
        struct client cl;
        client_new(&cl);
        if (proxy)
            CHECK(wharf_test_send(c2, proxy_v1, sizeof proxy_v1 - 1) == 0);
        CHECK(client_handshake(&cl, c2));
        CHECK(client_ping(&cl, c2));
        SSL_free(cl.ssl);
    }
    wharf_test_free(t);
    return 0;
}
