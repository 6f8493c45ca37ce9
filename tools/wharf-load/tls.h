/* tls.h - wharf-load's TLS layer (tls.c, OpenSSL 3): the --tls settings, the client
 * context a run shares (struct tls_client, made once the options are parsed), and per
 * connection slot of the TCP engine (tcp.c) a TLS session driven on the thread's event
 * loop: a non-blocking handshake stepped on every socket event, then reads and writes of
 * plaintext in place of recv()/send(). A slot keeps the last session ticket it received,
 * so that its next connection resumes (--tls-resume on). Failures come back classified
 * (a stat_id and a sentence for the report). Nothing here blocks, sleeps or touches the
 * loop: the engine owns the socket and its watcher.
 *
 * Ownership: a struct tls_client is immutable once made and shared, read-only, by every
 * engine thread (OpenSSL's SSL_CTX is thread-safe for that); load_config_free releases
 * it. A struct tls_conn belongs to one connection slot of one thread. */
#ifndef WLOAD_TLS_H
#define WLOAD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

/* The --tls options as parsed (opts.c). */
struct tls_opts {
    bool on;                       /* --tls */
    bool verify;                   /* --tls-verify: check the server's chain and name */
    const char *ca_file;           /* --tls-verify=CAFILE; NULL: the system store */
    bool sni_set;                  /* --sni given (possibly empty: send none) */
    char sni[256];                 /* server name sent (and verified); "" = none */
    unsigned char alpn[256];       /* --alpn in wire format (length-prefixed names) */
    unsigned alpn_len;             /* 0: no ALPN offered */
    char alpn_text[256];           /* --alpn as given, for reports */
    bool resume;                   /* --tls-resume on: resume with the slot's last ticket */
    bool handshake_only;           /* --handshake-only: connect, handshake, close, again */
    uint64_t handshake_timeout_ns; /* --handshake-timeout */
};

/* Parses an --alpn LIST ("h2,http/1.1") into o (wire format and text). Returns 0, or -1
 * with a message naming the option in err. */
int tls_parse_alpn(struct tls_opts *o, const char *list, char *err, size_t errlen);

struct tls_client;

/* Makes the shared client context of a run: TLS 1.2 and 1.3, verification as o says
 * (against o->ca_file or the system store, and the server's name: o->sni, else the
 * numeric target address `ip`), ALPN, a client session cache when o->resume. Returns the
 * context, or NULL with a message in err (naming the CA file and OpenSSL's reason). */
struct tls_client *tls_client_new(const struct tls_opts *o, const char *ip, char *err,
                                  size_t errlen);
void tls_client_free(struct tls_client *cl);

/* What went wrong on a TLS connection: the counter it belongs to and a sentence. */
struct tls_failure {
    enum stat_id kind; /* ST_TLS_VERIFY, ST_TLS_HANDSHAKE, ST_TLS_ERROR, or by errno */
    char text[160];
};

/* Results of the non-blocking steps. */
enum tls_io {
    TLS_IO_OK,   /* done (handshake complete, bytes moved) */
    TLS_IO_WANT, /* would block: wait for the next socket event */
    TLS_IO_EOF,  /* the server closed the connection (close_notify or end of stream) */
    TLS_IO_FAIL, /* failed: see the struct tls_failure */
};

/* The TLS side of one connection slot. Zero-initialised is the empty state. */
struct tls_conn {
    struct ssl_st *ssl;             /* the current connection's session; NULL between them */
    struct ssl_session_st *session; /* last ticket received (--tls-resume on), or NULL */
    bool ticket;                    /* a ticket arrived on the current connection */
};

/* Starts TLS on the connected non-blocking socket fd (resuming with tc->session when
 * there is one). Returns 0, or -1 (out of memory) with f filled. */
int tls_conn_begin(const struct tls_client *cl, struct tls_conn *tc, int fd,
                   struct tls_failure *f);

/* One step of the handshake: TLS_IO_OK once it is complete, TLS_IO_WANT until then, and
 * otherwise TLS_IO_FAIL (an end of stream during the handshake is a failure too). */
enum tls_io tls_conn_handshake(struct tls_conn *tc, struct tls_failure *f);

/* Reads up to len plaintext bytes (*got: how many). TLS_IO_OK when *got > 0. Call again
 * until TLS_IO_WANT: OpenSSL may hold decrypted bytes the socket no longer signals. */
enum tls_io tls_conn_read(struct tls_conn *tc, void *buf, size_t len, size_t *got,
                          struct tls_failure *f);

/* Writes up to len bytes (*done: how many were taken; partial writes allowed). After
 * TLS_IO_WANT, call again with the same bytes at the front of buf. */
enum tls_io tls_conn_write(struct tls_conn *tc, const void *buf, size_t len, size_t *done,
                           struct tls_failure *f);

/* Ends the current connection's TLS (keeping the ticket): with notify, sends close_notify
 * first (one non-blocking try). The socket itself stays the caller's to close. */
void tls_conn_end(struct tls_conn *tc, bool notify);
/* Ends it and drops the ticket too. */
void tls_conn_free(struct tls_conn *tc);

/* About the handshake just completed. */
bool tls_conn_resumed(const struct tls_conn *tc);
bool tls_conn_is_tls13(const struct tls_conn *tc);

/* What handshakes negotiated, counted by (version, cipher, ALPN protocol). */
#define TLS_TALLY_MAX 8
struct tls_tally_entry {
    char version[16], cipher[64], alpn[32];
    uint64_t count;
};
struct tls_tally {
    unsigned n;
    uint64_t other; /* handshakes whose combination did not fit in e[] */
    struct tls_tally_entry e[TLS_TALLY_MAX];
};

/* Counts the handshake tc just completed. */
void tls_tally_conn(struct tls_tally *t, const struct tls_conn *tc);
/* Adds the counts of `from` into `to`. */
void tls_tally_merge(struct tls_tally *to, const struct tls_tally *from);

#endif
