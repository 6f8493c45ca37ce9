/*
 * proxy.c - a TCP forwarder: each client connection gets its own connection
 * to a fixed upstream, and bytes are copied both ways.
 *
 * What it shows:
 *   - wharf_connect: the upstream connection is opened on the client's
 *     worker and driven by this same handler (wharf_conn_outbound tells the
 *     two kinds apart; here both sides run the same code).  The two are
 *     linked through their per-connection data: each side points at the
 *     other's connection, and whichever closes first unlinks both.
 *   - Backpressure both ways.  When the other side's queued output
 *     (wharf_output_pending) passes "max_pending", this side stops reading
 *     (wharf_pause_read) and asks for the other side's on_drain
 *     (wharf_want_drain), which resumes it (wharf_resume_read) once that
 *     output is below the listener's low watermark.
 *   - Half-close: an EOF from one side is passed on (wharf_shutdown_write on
 *     the other side, after what it has queued); each direction ends on its
 *     own, and when both have, both connections close.
 *   - Closing: when either side closes (for any reason), the other is closed
 *     once its pending output is written.  An upstream that cannot be
 *     reached closes its client (the upstream's on_close, reason "error").
 *   - An upstream that is the accepting socket itself (same port, and the
 *     same address or both loopback/unspecified) is refused per client with
 *     an error line, instead of connecting to itself until max_connections.
 *     (One of the host's other addresses on the same port is not caught.)
 *
 *   - Re-encryption: with "backend_tls" the upstream connection speaks TLS
 *     (wharf_connect_tls): the settings are made once in init (files read
 *     and checked there, so a bad CA file refuses the config), and the
 *     client's bytes reach the backend encrypted, whatever the client
 *     spoke.  An upstream whose certificate does not verify closes its
 *     client like one that cannot be reached.
 *
 * Options:
 *   "upstream":    required, "IPv4:PORT" or "[IPv6]:PORT" (literals only)
 *   "max_pending": integer, default 262144: bytes queued towards one side
 *                  before the other stops reading
 *   "backend_tls": object, default none (plain TCP to the upstream):
 *       "ca":          PEM CA file the backend's chain must lead to;
 *                      default: the system's store
 *       "server_name": SNI and the name the certificate must carry;
 *                      default: none sent, and the certificate must name
 *                      the upstream's IP address
 *       "verify":      boolean, default true (false: any certificate, for
 *                      tests only)
 *       "alpn":        array of protocol names to offer, in order
 *       "cert", "key": a client certificate and its key, for a backend
 *                      that asks for one
 * Both connections count in the listener's stats (open, bytes, closes).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

struct proxy_listener {
    struct sockaddr_storage upstream;
    socklen_t upstream_len;
    size_t max_pending;
    wharf_tls_client *tls; /* "backend_tls", or NULL */
};

/* Most protocols "backend_tls.alpn" may list. */
#define PROXY_ALPN_MAX 16

/* Per connection, client and upstream alike. */
struct proxy_side {
    wharf_conn *peer; /* the other side, NULL once it closed */
    bool paused;      /* we stopped reading because peer's output is full */
    bool eof;         /* this side sent EOF (passed on to the peer) */
};

/* Parses "1.2.3.4:80" or "[::1]:80" into l->upstream. */
static int parse_upstream(struct proxy_listener *l, const char *s)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535 || end == colon + 1)
        return -1;
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&l->upstream;
        host[hl - 1] = '\0';
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        l->upstream_len = sizeof *a;
        return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)&l->upstream;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    l->upstream_len = sizeof *a;
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/* "backend_tls": the upstream's TLS settings into l->tls.  Returns 0, or -1
 * with "backend_tls.KEY: what was expected" in err. */
static int proxy_init_tls(struct proxy_listener *l, const wharf_options *opts, char *err,
                          size_t errlen)
{
    static const char *const allowed[] = {"ca", "server_name", "verify", "alpn", "cert", "key",
                                          NULL};
    const wharf_options *o = NULL;
    int rc = wharf_options_object(opts, "backend_tls", &o);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0) {
        snprintf(err, errlen, "backend_tls: expected an object");
        return -1;
    }
    char why[400];
    if (wharf_options_check_keys(o, allowed, why, sizeof why) != 0) {
        snprintf(err, errlen, "backend_tls: %s", why);
        return -1;
    }
    struct wharf_tls_client_options to = {0};
    const char *alpn[PROXY_ALPN_MAX + 1] = {0};
    size_t nalpn = 0;
    bool verify = true;
    static const char *const strings[] = {"ca", "server_name", "cert", "key"};
    const char **dest[] = {&to.ca, &to.server_name, &to.cert, &to.key};
    for (size_t i = 0; i < 4; i++)
        if (wharf_options_string(o, strings[i], dest[i]) == -EINVAL || (*dest[i] && !**dest[i])) {
            snprintf(err, errlen, "backend_tls.%s: expected a non-empty string", strings[i]);
            return -1;
        }
    if (wharf_options_bool(o, "verify", &verify) == -EINVAL) {
        snprintf(err, errlen, "backend_tls.verify: expected true or false");
        return -1;
    }
    if (wharf_options_string_array(o, "alpn", alpn, PROXY_ALPN_MAX, &nalpn) == -EINVAL) {
        snprintf(err, errlen, "backend_tls.alpn: expected an array of at most %d strings",
                 PROXY_ALPN_MAX);
        return -1;
    }
    to.no_verify = !verify;
    to.alpn = nalpn ? alpn : NULL;
    if (!(l->tls = wharf_tls_client_new(&to, why, sizeof why))) {
        snprintf(err, errlen, "backend_tls.%s", why);
        return -1;
    }
    return 0;
}

static int proxy_init(const wharf_options *opts, void **listener_data, char *err, size_t errlen)
{
    static const char *const allowed[] = {"upstream", "max_pending", "backend_tls", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;
    struct proxy_listener *l = calloc(1, sizeof *l);
    const char *upstream = NULL;
    long long max_pending = 262144;
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (wharf_options_string(opts, "upstream", &upstream) != 0 ||
        parse_upstream(l, upstream) != 0) {
        snprintf(err, errlen, "upstream: expected \"IPv4:PORT\" or \"[IPv6]:PORT\"");
        free(l);
        return -1;
    }
    if (wharf_options_int(opts, "max_pending", &max_pending) == -EINVAL || max_pending < 1 ||
        max_pending > (1ll << 30)) {
        snprintf(err, errlen, "max_pending: expected an integer 1..1073741824");
        free(l);
        return -1;
    }
    l->max_pending = (size_t)max_pending;
    if (proxy_init_tls(l, opts, err, errlen) != 0) {
        free(l);
        return -1;
    }
    *listener_data = l;
    return 0;
}

static void proxy_fini(void *listener_data)
{
    struct proxy_listener *l = listener_data;
    if (l)
        wharf_tls_client_free(l->tls);
    free(l);
}

/* Whether an IPv4 (network order) or IPv6 address stands for this host
 * whatever interface took the connection: unspecified or loopback. */
static bool addr_is_self(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET) {
        uint32_t v = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
        return v == 0 || (v >> 24) == 127;
    }
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_UNSPECIFIED(v6) || IN6_IS_ADDR_LOOPBACK(v6);
}

/* Whether connecting to `up` would reach the socket that accepted c: the
 * same port, and the same address or both this host's (loopback,
 * unspecified).  A proxy pointed at itself would otherwise connect to
 * itself until max_connections. */
static bool upstream_is_self(const wharf_conn *c, const struct sockaddr *up)
{
    socklen_t len = 0;
    const struct sockaddr *local = wharf_local_addr(c, &len);
    if (!local || local->sa_family != up->sa_family)
        return false;
    if (up->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)local, *b = (const void *)up;
        return a->sin_port == b->sin_port &&
               (a->sin_addr.s_addr == b->sin_addr.s_addr || (addr_is_self(local) && addr_is_self(up)));
    }
    const struct sockaddr_in6 *a = (const void *)local, *b = (const void *)up;
    return a->sin6_port == b->sin6_port &&
           (IN6_ARE_ADDR_EQUAL(&a->sin6_addr, &b->sin6_addr) ||
            (addr_is_self(local) && addr_is_self(up)));
}

/* A client arrived: open its upstream, linked to it.  (The upstream's own
 * on_open has nothing to do: its data was set by wharf_connect.) */
static void proxy_on_open(wharf_conn *c)
{
    if (wharf_conn_outbound(c))
        return;
    const struct proxy_listener *l = wharf_listener_data(c);
    if (upstream_is_self(c, (const struct sockaddr *)&l->upstream)) {
        wharf_conn_log(c, WHARF_LOG_ERROR, "the upstream is this listener itself: refused "
                       "(it would connect to itself until max_connections; fix \"upstream\")");
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return;
    }
    struct proxy_side *mine = calloc(1, sizeof *mine), *theirs = calloc(1, sizeof *theirs);
    int err = 0;
    wharf_conn *up = NULL;
    if (mine && theirs) {
        theirs->peer = c;
        const struct sockaddr *addr = (const struct sockaddr *)&l->upstream;
        up = l->tls ? wharf_connect_tls(c, addr, l->upstream_len, l->tls, NULL, theirs, &err)
                    : wharf_connect(c, addr, l->upstream_len, theirs, &err);
    }
    if (!up) {
        wharf_conn_log(c, WHARF_LOG_WARN, "cannot connect upstream: %s",
                       strerror(err ? -err : ENOMEM));
        free(mine);
        free(theirs);
        wharf_close_with(c, WHARF_CLOSE_ERROR);
        return;
    }
    mine->peer = up;
    wharf_set_data(c, mine);
}

/* Bytes from one side go to the other. */
static size_t proxy_on_data(wharf_conn *c, const void *data, size_t len)
{
    const struct proxy_listener *l = wharf_listener_data(c);
    struct proxy_side *side = wharf_get_data(c);
    if (!side || !side->peer)
        return len; /* the other side is gone and this one is closing */
    /* A send past max_output fails and closes the peer (after this
     * callback); its on_close then closes this side too. */
    if (wharf_send(side->peer, data, len) == 0 &&
        wharf_output_pending(side->peer) > l->max_pending && !side->paused) {
        side->paused = true;
        wharf_pause_read(c);
        wharf_want_drain(side->peer);
    }
    return len;
}

/* c's output fell below the low watermark: the other side may read again. */
static void proxy_on_drain(wharf_conn *c)
{
    struct proxy_side *side = wharf_get_data(c);
    struct proxy_side *other = side && side->peer ? wharf_get_data(side->peer) : NULL;
    if (other && other->paused) {
        other->paused = false;
        wharf_resume_read(side->peer);
    }
}

/* c sent EOF: pass it on once c's bytes reached the other side; when both
 * directions have ended, close both. */
static int proxy_on_eof(wharf_conn *c)
{
    struct proxy_side *side = wharf_get_data(c);
    if (!side || !side->peer)
        return WHARF_EOF_CLOSE;
    side->eof = true;
    struct proxy_side *other = wharf_get_data(side->peer);
    if (other && other->eof) {
        wharf_close(side->peer);
        return WHARF_EOF_CLOSE;
    }
    wharf_shutdown_write(side->peer);
    return WHARF_EOF_KEEP;
}

static void proxy_on_close(wharf_conn *c, enum wharf_close_reason reason)
{
    (void)reason;
    struct proxy_side *side = wharf_get_data(c);
    if (!side)
        return;
    wharf_conn *peer = side->peer;
    free(side);
    wharf_set_data(c, NULL);
    if (!peer)
        return;
    struct proxy_side *other = wharf_get_data(peer);
    if (other)
        other->peer = NULL;
    wharf_close(peer); /* after its pending output; never under running code */
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "proxy",
    .init = proxy_init,
    .fini = proxy_fini,
    .on_open = proxy_on_open,
    .on_data = proxy_on_data,
    .on_drain = proxy_on_drain,
    .on_close = proxy_on_close,
    .on_eof = proxy_on_eof,
};
