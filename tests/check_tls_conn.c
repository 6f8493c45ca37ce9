/*
 * check_tls_conn.c - the handler contract over TLS, in process: a server
 * (testutil's tserver) with TLS listeners in front of the contract test
 * handler (tests/modules/mod_contract.c) and the echo handler, driven by an
 * OpenSSL client on blocking sockets.  The certificate and key are made
 * here (a self-signed ECDSA P-256 certificate for "localhost") into a temp
 * directory.  Each test names the promise it holds: bytes echoed byte-exact,
 * requests split at every byte (one record per byte), partial consumption,
 * back-pressure, max_input, wharf_send_ref's chunks in their place, the peer's
 * close_notify as EOF, the handler's close and
 * shutdown_write as close_notify, wharf_conn_tls_info, a handshake that is
 * garbage, a graceful stop.  valgrind runs it like every Check suite, so the
 * TLS layer's teardown is checked for leaks and bad reads too.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check_main.h"
#include "server.h"
#include "testutil.h"

static char dir[64], cert_file[128], key_file[128];
static SSL_CTX *client_ctx;

/* A self-signed ECDSA P-256 certificate for localhost, valid for a day. */
static void make_certificate(void)
{
    snprintf(dir, sizeof dir, "/tmp/wharf-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cert_file, sizeof cert_file, "%s/cert.pem", dir);
    snprintf(key_file, sizeof key_file, "%s/key.pem", dir);
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(pk);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    ck_assert_int_gt(X509_sign(x, pk, EVP_sha256()), 0);
    FILE *f = fopen(cert_file, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_file, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(key_file, 0600);
    X509_free(x);
    EVP_PKEY_free(pk);
    client_ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(client_ctx);
}

static void remove_certificate(void)
{
    SSL_CTX_free(client_ctx);
    client_ctx = NULL;
    unlink(cert_file);
    unlink(key_file);
    rmdir(dir);
}

/* A server with one TLS listener: the handler, and its options object. */
static struct tserver *start_tls(const char *handler, const char *mode, int workers)
{
    char options[64] = "{}";
    if (mode)
        snprintf(options, sizeof options, "{\"mode\": \"%s\"}", mode);
    return tserver_start("{\"workers\": %d, \"shutdown_timeout_ms\": 60000, \"listeners\": [{"
                         "\"port\": 0, \"handler\": \"%s\", \"options\": %s, "
                         "\"timeouts\": {\"handshake_ms\": 2000}, "
                         "\"tls\": {\"cert\": \"%s\", \"key\": \"%s\"}}]}",
                         workers, handler, options, cert_file, key_file);
}

struct tls_client {
    int fd;
    SSL *ssl;
};

/* Connects and completes the handshake (5 s at most per read). */
static struct tls_client tls_connect(int port)
{
    struct tls_client c = {.fd = tcp_connect("127.0.0.1", port)};
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c.ssl = SSL_new(client_ctx);
    SSL_set_fd(c.ssl, c.fd);
    SSL_set_tlsext_host_name(c.ssl, "localhost");
    ck_assert_int_eq(SSL_connect(c.ssl), 1);
    return c;
}

static void tls_free(struct tls_client *c)
{
    SSL_free(c->ssl);
    close(c->fd);
    ERR_clear_error();
}

static void tls_write(struct tls_client *c, const void *p, size_t n)
{
    size_t done = 0;
    ck_assert_int_eq(SSL_write_ex(c->ssl, p, n, &done), 1);
    ck_assert_uint_eq(done, n);
}

/* Reads exactly n bytes (fewer on EOF or timeout); *how gets SSL_get_error
 * of the call that stopped short, or 0. */
static size_t tls_read(struct tls_client *c, void *p, size_t n, int *how)
{
    size_t got = 0;
    *how = 0;
    while (got < n) {
        size_t k = 0;
        int rc = SSL_read_ex(c->ssl, (char *)p + got, n - got, &k);
        if (rc != 1) {
            *how = SSL_get_error(c->ssl, rc);
            break;
        }
        got += k;
    }
    return got;
}

/* The end of the stream: whether the server sent close_notify. */
static bool tls_close_notify(struct tls_client *c)
{
    char b;
    int how;
    return tls_read(c, &b, 1, &how) == 0 && how == SSL_ERROR_ZERO_RETURN;
}

START_TEST(echo_is_byte_exact_in_records_of_every_size)
{
    struct tserver *t = start_tls("echo", NULL, 2);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    static unsigned char out[1 << 18], in[1 << 18];
    fill_pattern(out, sizeof out, 7);
    size_t off = 0;
    /* Sizes from 1 byte to past a record (16 KiB), read back each time. */
    for (size_t len = 1; off + len <= sizeof out; len = len * 3 + 1) {
        tls_write(&c, out + off, len);
        int how;
        ck_assert_uint_eq(tls_read(&c, in + off, len, &how), len);
        off += len;
    }
    ck_assert_uint_gt(off, 60000);
    ck_assert_mem_eq(in, out, off);
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(requests_split_at_every_byte_are_answered)
{
    struct tserver *t = start_tls("mod_contract", "line", 2);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    const char req[] = "a\nbb\nccc\n", want[] = "ok a\nok bb\nok ccc\n";
    for (size_t i = 0; i < sizeof req - 1; i++)
        tls_write(&c, req + i, 1); /* a record per byte */
    char got[sizeof want] = "";
    int how;
    ck_assert_uint_eq(tls_read(&c, got, sizeof want - 1, &how), sizeof want - 1);
    ck_assert_str_eq(got, want);
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(partial_consumption_loses_nothing)
{
    /* "upper" takes at most 4096 bytes a call: kept input is offered again. */
    struct tserver *t = start_tls("mod_contract", "upper", 2);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    static char out[40000], in[40000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)('a' + i % 26);
    tls_write(&c, out, sizeof out);
    int how;
    ck_assert_uint_eq(tls_read(&c, in, sizeof in, &how), sizeof in);
    for (size_t i = 0; i < sizeof out; i++)
        ck_assert_int_eq(in[i], out[i] - 'a' + 'A');
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(back_pressure_waits_for_on_drain)
{
    struct tserver *t = start_tls("mod_contract", "big", 2);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    tls_write(&c, "1\n2\n3\n", 6);
    static char in[3 * 65537];
    int how;
    ck_assert_uint_eq(tls_read(&c, in, sizeof in, &how), sizeof in);
    for (size_t i = 0; i < sizeof in; i++)
        ck_assert_int_eq(in[i], i % 65537 == 65536 ? '\n' : 'x');
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(close_notify_from_the_peer_is_eof)
{
    /* "eofkeep" answers once the peer's EOF came, 50 ms later, then closes. */
    struct tserver *t = start_tls("mod_contract", "eofkeep", 2);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    tls_write(&c, "question", 8);
    ck_assert_int_eq(SSL_shutdown(c.ssl), 0); /* our close_notify; reading goes on */
    char got[8] = "";
    int how;
    ck_assert_uint_eq(tls_read(&c, got, 5, &how), 5);
    ck_assert_str_eq(got, "late\n");
    ck_assert(tls_close_notify(&c));
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(shutdown_write_sends_close_notify_and_keeps_reading)
{
    struct tserver *t = start_tls("mod_contract", "halfclose", 2);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    tls_write(&c, "bye\n", 4);
    char got[4] = "";
    int how;
    ck_assert_uint_eq(tls_read(&c, got, 3, &how), 3);
    ck_assert_str_eq(got, "ok\n");
    ck_assert(tls_close_notify(&c));
    uint64_t more[3];
    void (*fn)(uint64_t *) =
        (void (*)(uint64_t *))(uintptr_t)test_module_symbol("mod_contract", "contract_more");
    fn(more);
    uint64_t start = now_ms(), before = more[0];
    tls_write(&c, "more\n", 5); /* still read (and counted) by the server */
    while (now_ms() - start < 3000) {
        fn(more);
        if (more[0] > before)
            break;
        usleep(10000);
    }
    ck_assert_uint_gt(more[0], before);
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(referenced_output_goes_out_in_its_place)
{
    /* mod_sendref: copied and referenced pieces continue one pattern. */
    struct tserver *t = start_tls("mod_sendref", NULL, 2);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    const char cmds[] = "c 10\nr 70000\nc 5\nr 3\nr 20000\nc 1\nx\n";
    tls_write(&c, cmds, sizeof cmds - 1);
    static char in[90019 + 1];
    int how;
    ck_assert_uint_eq(tls_read(&c, in, sizeof in, &how), 90019);
    ck_assert_int_eq(how, SSL_ERROR_ZERO_RETURN); /* wharf_close: close_notify */
    for (size_t i = 0; i < 90019; i++)
        ck_assert_int_eq(in[i], 'a' + (int)(i % 23));
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

/* Small copied and referenced pieces queued in one turn go out gathered in
 * one record: the client's one SSL_read (which returns at most a record)
 * gets them all. */
START_TEST(small_pieces_go_out_in_one_record)
{
    struct tserver *t = start_tls("mod_sendref", NULL, 1);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    const char cmds[] = "c 10\nr 3\nc 5\nr 7\n";
    tls_write(&c, cmds, sizeof cmds - 1);
    char in[256];
    size_t k = 0;
    ck_assert_int_eq(SSL_read_ex(c.ssl, in, sizeof in, &k), 1);
    ck_assert_uint_eq(k, 25);
    for (size_t i = 0; i < k; i++)
        ck_assert_int_eq(in[i], 'a' + (int)(i % 23));
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

/* A reader that reads nothing until all is queued: the pieces go out in
 * many short writes and retries (the record a retry repeats is gathered
 * again), and the stream comes out whole. */
START_TEST(referenced_output_to_a_slow_reader_is_byte_exact)
{
    struct tserver *t = start_tls("mod_sendref", NULL, 1);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    int small = 16384;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const char cmds[] = "r 600000\nc 12345\nr 7\nc 2\nr 3\nr 400000\nc 1\nx\n";
    size_t total = 600000 + 12345 + 7 + 2 + 3 + 400000 + 1;
    tls_write(&c, cmds, sizeof cmds - 1);
    usleep(300000);
    char *in = malloc(total + 1);
    ck_assert_ptr_nonnull(in);
    int how;
    ck_assert_uint_eq(tls_read(&c, in, total + 1, &how), total);
    ck_assert_int_eq(how, SSL_ERROR_ZERO_RETURN);
    size_t bad = total;
    for (size_t i = 0; i < total && bad == total; i++)
        if (in[i] != (char)('a' + (int)(i % 23)))
            bad = i;
    ck_assert_msg(bad == total, "byte %zu of the stream differs", bad);
    free(in);
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(max_input_cuts_off_a_client_the_handler_keeps_up)
{
    /* "eofkeep" consumes nothing before EOF: max_input closes it (limit). */
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"port\": 0, \"handler\": \"mod_contract\", "
        "\"options\": {\"mode\": \"eofkeep\"}, \"buffers\": {\"max_input\": 4096}, "
        "\"tls\": {\"cert\": \"%s\", \"key\": \"%s\"}}]}",
        cert_file, key_file);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    static char out[20000];
    memset(out, 'q', sizeof out);
    tls_write(&c, out, sizeof out);
    /* Closed (close_notify, or a reset for the bytes it never read). */
    char b;
    int how;
    ck_assert_uint_eq(tls_read(&c, &b, 1, &how), 0);
    struct wharf_listener_stats st = tserver_stats(t, 0);
    uint64_t start = now_ms();
    while (st.closed[WHARF_CLOSE_LIMIT] == 0 && now_ms() - start < 3000) {
        usleep(10000);
        st = tserver_stats(t, 0);
    }
    ck_assert_uint_eq(st.closed[WHARF_CLOSE_LIMIT], 1);
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(tls_info_tells_the_handler_what_was_negotiated)
{
    struct tserver *t = start_tls("mod_contract", "tlsinfo", 1);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    tls_write(&c, "?\n", 2);
    char got[256] = "";
    const char want[] = "tls TLSv1.3 TLS_AES_128_GCM_SHA256 alpn= sni=localhost subject= "
                        "verified=0 resumed=0\n";
    int how;
    ck_assert_uint_eq(tls_read(&c, got, sizeof want - 1, &how), sizeof want - 1);
    ck_assert_str_eq(got, want);
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

START_TEST(garbage_handshake_is_closed_and_hurts_no_one)
{
    struct tserver *t = start_tls("echo", NULL, 1);
    int port = tserver_port(t, 0);
    struct tls_client good = tls_connect(port);
    char got[8] = "";
    int how;
    tls_write(&good, "first\n", 6); /* (past handshake_ms's first-byte wait) */
    ck_assert_uint_eq(tls_read(&good, got, 6, &how), 6);
    for (int i = 0; i < 5; i++) {
        int fd = tcp_connect("127.0.0.1", port);
        send_all(fd, "GET / HTTP/1.0\r\n\r\n", 18);
        ck_assert(wait_closed(fd, 3000));
        close(fd);
    }
    /* A record header announcing a record that never comes: handshake_ms. */
    int fd = tcp_connect("127.0.0.1", port);
    send_all(fd, "\x16\x03\x01\x02\x00\x01", 6);
    uint64_t start = now_ms();
    ck_assert(wait_closed(fd, 6000));
    ck_assert_uint_ge(now_ms() - start, 1500);
    close(fd);
    tls_write(&good, "still\n", 6);
    memset(got, 0, sizeof got);
    ck_assert_uint_eq(tls_read(&good, got, 6, &how), 6);
    ck_assert_str_eq(got, "still\n");
    tls_free(&good);
    tserver_stop(t);
}
END_TEST

START_TEST(graceful_stop_says_goodbye_then_close_notify)
{
    struct tserver *t = start_tls("mod_contract", "goodbye", 2);
    struct tls_client c = tls_connect(tserver_port(t, 0));
    tls_write(&c, "hi", 2);
    char got[8] = "";
    int how;
    ck_assert_uint_eq(tls_read(&c, got, 2, &how), 2);
    uint64_t start = now_ms();
    server_stop(t->srv);
    ck_assert_uint_lt(now_ms() - start, 15000);
    memset(got, 0, sizeof got);
    ck_assert_uint_eq(tls_read(&c, got, 4, &how), 4);
    ck_assert_str_eq(got, "bye\n");
    ck_assert(tls_close_notify(&c));
    tls_free(&c);
    tserver_stop(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls_conn");
    TCase *tc = tcase_create("tls_conn");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, make_certificate, remove_certificate);
    tcase_add_test(tc, echo_is_byte_exact_in_records_of_every_size);
    tcase_add_test(tc, requests_split_at_every_byte_are_answered);
    tcase_add_test(tc, partial_consumption_loses_nothing);
    tcase_add_test(tc, back_pressure_waits_for_on_drain);
    tcase_add_test(tc, close_notify_from_the_peer_is_eof);
    tcase_add_test(tc, shutdown_write_sends_close_notify_and_keeps_reading);
    tcase_add_test(tc, referenced_output_goes_out_in_its_place);
    tcase_add_test(tc, small_pieces_go_out_in_one_record);
    tcase_add_test(tc, referenced_output_to_a_slow_reader_is_byte_exact);
    tcase_add_test(tc, max_input_cuts_off_a_client_the_handler_keeps_up);
    tcase_add_test(tc, tls_info_tells_the_handler_what_was_negotiated);
    tcase_add_test(tc, garbage_handshake_is_closed_and_hurts_no_one);
    tcase_add_test(tc, graceful_stop_says_goodbye_then_close_notify);
    suite_add_tcase(s, tc);
    return check_run(s);
}
