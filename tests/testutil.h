/*
 * testutil.h - helpers for the integration suites: start an in-process server
 * from JSON text on ephemeral loopback ports, and blocking/bounded client
 * socket helpers.  Every wait is bounded; failures abort the test via Check.
 */
#ifndef WHARF_TESTUTIL_H
#define WHARF_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "server.h"

struct tserver {
    struct config *cfg;       /* owned by srv (valid until tserver_stop) */
    struct wharf_server *srv;
};

/* Builds a config from printf-style JSON text, creates and starts the server.
 * Fails the test with the server's message if anything goes wrong. */
struct tserver *tserver_start(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same for an already loaded config (taken over by the tserver). */
struct tserver *tserver_start_config(struct config *cfg);
/* Reloads the running server with printf-style JSON text: tserver_reload
 * fails the test unless it succeeds; tserver_try_reload returns
 * server_reload's result with its message in err. */
void tserver_reload(struct tserver *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tserver_try_reload(struct tserver *t, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Stops (gracefully) and frees. */
void tserver_stop(struct tserver *t);
int tserver_port(const struct tserver *t, size_t listener);
struct wharf_listener_stats tserver_stats(const struct tserver *t, size_t listener);

/* Milliseconds of the monotonic clock. */
uint64_t now_ms(void);

/* Connects a blocking TCP socket to host:port with 5 s send/receive timeouts. */
int tcp_connect(const char *host, int port);
/* Same, resolving host in one address family only (AF_INET, AF_INET6). */
int tcp_connect_family(const char *host, int port, int family);
/* Connects to an IPv4 address without failing the test: the fd, or -errno. */
int tcp_try_connect(const char *host, int port);
/* Sends everything (fails the test on error). */
void send_all(int fd, const void *p, size_t n);
/* Receives exactly n bytes unless EOF, error or timeout_ms passes first;
 * returns the number received. */
size_t recv_exact(int fd, void *p, size_t n, int timeout_ms);
/* Waits up to timeout_ms for EOF (read returns 0) or a reset: true if so.
 * Bytes that arrive meanwhile are discarded. */
bool wait_closed(int fd, int timeout_ms);
/* Sends `len` bytes of data on fd while reading the echo, concurrently
 * (non-blocking, poll-driven), and checks the echo is byte-exact. Returns
 * bytes echoed back. */
size_t echo_roundtrip(int fd, const unsigned char *data, size_t len, int timeout_ms);

/* A UDP socket bound to 127.0.0.1:port (0 = any) with a receive timeout. */
int udp_socket(const char *host, int port, int timeout_ms);
int udp_local_port(int fd);

/* Fills p with a deterministic pattern for `seed`. */
void fill_pattern(unsigned char *p, size_t n, unsigned seed);

/* Polls cond(arg) every 5 ms for up to timeout_ms; returns its last value. */
bool wait_for(bool (*cond)(void *), void *arg, int timeout_ms);

/* How this test runs: "valgrind" (tests/valgrind.sh), "asan", "tsan" (the
 * build's sanitizer, WHARF_SANITIZER), or "plain".  Timing and memory bounds
 * that hold only at full speed and without quarantined frees check it. */
const char *test_build_kind(void);

/* This process's resident memory (/proc/self/statm), in bytes. */
size_t test_rss_bytes(void);

/* A symbol of test module MODULE (tests/.libs/MODULE.so), which is loaded by
 * the first call and stays loaded.  Fails the test if either is missing. */
void *test_module_symbol(const char *module, const char *symbol);

/* Counters of the mod_probe test handler (the module is loaded by this call
 * and stays loaded, so counts survive a server that unloads it).
 * Fails the test if it cannot be loaded. */
struct probe_counts;
void probe_get(struct probe_counts *out);

#endif
