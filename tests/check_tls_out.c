/*
 * check_tls_out.c - outbound TLS (wharf_connect_tls) in process: a server
 * (testutil's tserver) with a plain listener running the relay test handler
 * (tests/modules/mod_tlsout.c) and a TLS listener running echo, so that a
 * connection of the first opens an outbound TLS connection to the second
 * in the same server.  The certificate (a self-signed ECDSA P-256 one for
 * localhost and 127.0.0.1, which is also the relay's CA) is made here into
 * a temp directory.  Each test names the promise it holds: echo byte-exact
 * through the outbound TLS connection, a half-close carried through
 * (close_notify), bytes sent before the handshake wait for it, input split
 * at every byte, wharf_conn_tls_info on the outbound side (version, ALPN,
 * SNI, the server's subject, verified; -EAGAIN before the handshake), a
 * name the certificate lacks refused, the system's store refusing a
 * self-signed certificate, no_verify accepting it, the IP address checked
 * when no name is given, a server that never answers the ClientHello cut
 * off at handshake_ms, and a client that leaves mid-handshake.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "check_main.h"
#include "server.h"
#include "testutil.h"

static char dir[64], cert_file[128], key_file[128];

/* A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1. */
static void make_certificate(void)
{
    snprintf(dir, sizeof dir, "/tmp/wharf-tlsout-XXXXXX");
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
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
                                              "DNS:localhost,IP:127.0.0.1");
    ck_assert_ptr_nonnull(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
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
}

static void remove_certificate(void)
{
    unlink(cert_file);
    unlink(key_file);
    rmdir(dir);
}

/* The relay's handshake_ms: short at full speed, roomy under valgrind or
 * a sanitizer (a handshake costs seconds of CPU there). */
static int handshake_ms(void)
{
    return strcmp(test_build_kind(), "plain") == 0 ? 1000 : 15000;
}

/* How long a line may take to come (ms). */
static int line_ms(void)
{
    return strcmp(test_build_kind(), "plain") == 0 ? 5000 : 60000;
}

/* Listener 0: the relay (plain); listener 1: TLS echo, ALPN "x-test". */
static struct tserver *start(void)
{
    return tserver_start("{\"workers\": 2, \"listeners\": ["
                         "{\"port\": 0, \"handler\": \"mod_tlsout\", "
                         "\"timeouts\": {\"handshake_ms\": %d}, "
                         "\"options\": {\"ca\": \"%s\", \"alpn\": [\"h2\", \"x-test\"]}}, "
                         "{\"port\": 0, \"handler\": \"echo\", "
                         "\"tls\": {\"cert\": \"%s\", \"key\": \"%s\", \"alpn\": [\"x-test\"]}}]}",
                         handshake_ms(), cert_file, cert_file, key_file);
}

/* A client of the relay that asked for "PORT NAME MODE". */
static int relay(struct tserver *t, int port, const char *name, const char *mode)
{
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char line[300];
    int n = snprintf(line, sizeof line, "%d %s %s\n", port, name, mode);
    send_all(fd, line, (size_t)n);
    return fd;
}

/* One line from fd (5 s at most), without its newline. */
static void read_line(int fd, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        char ch;
        if (recv_exact(fd, &ch, 1, line_ms()) != 1 || ch == '\n')
            break;
        out[n++] = ch;
    }
    out[n] = '\0';
}

START_TEST(echo_through_outbound_tls_is_byte_exact_and_half_closes)
{
    struct tserver *t = start();
    int fd = relay(t, tserver_port(t, 1), "localhost", "ca");
    char line[512];
    read_line(fd, line, sizeof line);
    ck_assert_str_eq(line, "tls TLSv1.3 alpn=x-test sni=localhost subject=/CN=localhost "
                           "verified=1 early=-11");
    static unsigned char data[300000];
    fill_pattern(data, sizeof data, 3);
    ck_assert_uint_eq(echo_roundtrip(fd, data, sizeof data, line_ms() * 4), sizeof data);
    /* Our end of stream reaches echo (close_notify); its close comes back. */
    shutdown(fd, SHUT_WR);
    ck_assert(wait_closed(fd, line_ms()));
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(bytes_sent_before_the_handshake_wait_for_it)
{
    struct tserver *t = start();
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char req[64];
    int n = snprintf(req, sizeof req, "%d localhost ca\nhello, early", tserver_port(t, 1));
    send_all(fd, req, (size_t)n); /* the relay sends "hello, early" right after connecting */
    char line[512], got[16] = "";
    read_line(fd, line, sizeof line);
    ck_assert_msg(strncmp(line, "tls TLSv1.3 ", 12) == 0, "%s", line);
    ck_assert_uint_eq(recv_exact(fd, got, 12, line_ms()), 12);
    ck_assert_str_eq(got, "hello, early");
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(input_split_at_every_byte_is_relayed)
{
    struct tserver *t = start();
    int fd = tcp_connect("127.0.0.1", tserver_port(t, 0));
    char req[64];
    int n = snprintf(req, sizeof req, "%d localhost ca\nabcdefghij", tserver_port(t, 1));
    for (int i = 0; i < n; i++) {
        send_all(fd, req + i, 1);
        usleep(2000);
    }
    char line[512], got[16] = "";
    read_line(fd, line, sizeof line);
    ck_assert_msg(strncmp(line, "tls TLSv1.3 ", 12) == 0, "%s", line);
    ck_assert_uint_eq(recv_exact(fd, got, 10, line_ms()), 10);
    ck_assert_str_eq(got, "abcdefghij");
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(a_name_the_certificate_lacks_is_refused)
{
    struct tserver *t = start();
    int fd = relay(t, tserver_port(t, 1), "wrong.test", "ca");
    char line[512];
    read_line(fd, line, sizeof line);
    ck_assert_str_eq(line, "refused error");
    ck_assert(wait_closed(fd, line_ms()));
    close(fd);
    /* Others are served meanwhile and after. */
    fd = relay(t, tserver_port(t, 1), "localhost", "ca");
    read_line(fd, line, sizeof line);
    ck_assert_msg(strncmp(line, "tls TLSv1.3 ", 12) == 0, "%s", line);
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(the_system_store_refuses_a_self_signed_certificate)
{
    struct tserver *t = start();
    int fd = relay(t, tserver_port(t, 1), "localhost", "sys");
    char line[512];
    read_line(fd, line, sizeof line);
    ck_assert_str_eq(line, "refused error");
    ck_assert(wait_closed(fd, line_ms()));
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(no_verify_accepts_any_certificate)
{
    struct tserver *t = start();
    int fd = relay(t, tserver_port(t, 1), "localhost", "any");
    char line[512], got[8] = "";
    read_line(fd, line, sizeof line);
    ck_assert_str_eq(line, "tls TLSv1.3 alpn=x-test sni=localhost subject=/CN=localhost "
                           "verified=0 early=-11");
    send_all(fd, "ping", 4);
    ck_assert_uint_eq(recv_exact(fd, got, 4, line_ms()), 4);
    ck_assert_str_eq(got, "ping");
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(without_a_name_the_ip_address_is_verified)
{
    struct tserver *t = start();
    int fd = relay(t, tserver_port(t, 1), "-", "ca");
    char line[512];
    read_line(fd, line, sizeof line);
    ck_assert_str_eq(line, "tls TLSv1.3 alpn=x-test sni=- subject=/CN=localhost "
                           "verified=1 early=-11");
    close(fd);
    tserver_stop(t);
}
END_TEST

START_TEST(a_server_that_never_answers_is_cut_off_at_handshake_ms)
{
    struct tserver *t = start();
    /* The kernel completes the TCP connect; no one ever reads. */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(ls, 8), 0);
    ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&a, &len), 0);
    uint64_t start_ms = now_ms();
    int fd = relay(t, ntohs(a.sin_port), "localhost", "ca");
    char line[512];
    read_line(fd, line, sizeof line);
    ck_assert_str_eq(line, "refused timeout");
    uint64_t took = now_ms() - start_ms;
    ck_assert_uint_ge(took, (uint64_t)handshake_ms() - 100);
    ck_assert_uint_lt(took, (uint64_t)handshake_ms() + (strcmp(test_build_kind(), "plain") == 0 ? 3000 : 30000));
    close(fd);
    close(ls);
    tserver_stop(t);
}
END_TEST

START_TEST(a_client_leaving_mid_handshake_hurts_no_one)
{
    struct tserver *t = start();
    int n = strcmp(test_build_kind(), "plain") == 0 ? 20 : 5;
    for (int i = 0; i < n; i++) {
        int fd = relay(t, tserver_port(t, 1), "localhost", "ca");
        close(fd); /* the relay closes its outbound connection, handshake or not */
    }
    int fd = relay(t, tserver_port(t, 1), "localhost", "ca");
    char line[512], got[8] = "";
    read_line(fd, line, sizeof line);
    ck_assert_msg(strncmp(line, "tls TLSv1.3 ", 12) == 0, "%s", line);
    send_all(fd, "pong", 4);
    ck_assert_uint_eq(recv_exact(fd, got, 4, line_ms()), 4);
    ck_assert_str_eq(got, "pong");
    close(fd);
    tserver_stop(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls_out");
    TCase *tc = tcase_create("tls_out");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, make_certificate, remove_certificate);
    tcase_add_test(tc, echo_through_outbound_tls_is_byte_exact_and_half_closes);
    tcase_add_test(tc, bytes_sent_before_the_handshake_wait_for_it);
    tcase_add_test(tc, input_split_at_every_byte_is_relayed);
    tcase_add_test(tc, a_name_the_certificate_lacks_is_refused);
    tcase_add_test(tc, the_system_store_refuses_a_self_signed_certificate);
    tcase_add_test(tc, no_verify_accepts_any_certificate);
    tcase_add_test(tc, without_a_name_the_ip_address_is_verified);
    tcase_add_test(tc, a_server_that_never_answers_is_cut_off_at_handshake_ms);
    tcase_add_test(tc, a_client_leaving_mid_handshake_hurts_no_one);
    suite_add_tcase(s, tc);
    return check_run(s);
}
