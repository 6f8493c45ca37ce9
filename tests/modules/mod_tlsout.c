/*
 * mod_tlsout.c - a test handler for wharf_connect_tls (tests/check_tls_out.c):
 * a relay whose client names, in its first line "PORT NAME MODE\n", where the
 * outbound TLS connection goes: 127.0.0.1:PORT, NAME sent as SNI and
 * verified ("-": the settings' own name, none here), MODE "ca" (verified
 * against the "ca" option's file), "sys" (the system's store) or "any"
 * (no verification).  Every byte after the line goes to the backend (those
 * sent before the handshake is done wait for it), every byte from the
 * backend comes back, and an end of stream is passed on either way.
 *
 * What the client is told, one line each:
 *   "tls VERSION alpn=PROTO sni=NAME subject=SUBJECT verified=0|1 early=E\n"
 *   when the outbound connection opens (E: what wharf_conn_tls_info said
 *   right after wharf_connect_tls, -EAGAIN expected);
 *   "refused REASON\n" when the outbound connection closed without opening
 *   (REASON: its close reason), and then the client is closed.
 * Options: "ca" (required), "alpn" (array of strings).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wharf.h"

struct tlsout_listener {
    wharf_tls_client *ca, *sys, *any;
};

struct tlsout_side {
    wharf_conn *peer; /* the other side, NULL once it closed */
    bool outbound, opened, eof;
    int early;        /* outbound: wharf_conn_tls_info right after the connect */
};

static int tlsout_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    const char *alpn[8] = {0};
    size_t nalpn = 0;
    struct wharf_tls_client_options o = {0};
    if (wharf_options_string(opts, "ca", &o.ca) != 0) {
        snprintf(err, errlen, "ca: expected a file name");
        return -1;
    }
    if (wharf_options_string_array(opts, "alpn", alpn, 7, &nalpn) == -EINVAL) {
        snprintf(err, errlen, "alpn: expected strings");
        return -1;
    }
    o.alpn = nalpn ? alpn : NULL;
    struct tlsout_listener *l = calloc(1, sizeof *l);
    struct wharf_tls_client_options sys = {.alpn = o.alpn}, any = {.alpn = o.alpn, .no_verify = true};
    if (!l || !(l->ca = wharf_tls_client_new(&o, err, errlen)) ||
        !(l->sys = wharf_tls_client_new(&sys, err, errlen)) ||
        !(l->any = wharf_tls_client_new(&any, err, errlen))) {
        if (l) {
            wharf_tls_client_free(l->ca);
            wharf_tls_client_free(l->sys);
        }
        free(l);
        return -1;
    }
    *data = l;
    return 0;
}

static void tlsout_fini(void *data)
{
    struct tlsout_listener *l = data;
    wharf_tls_client_free(l->ca);
    wharf_tls_client_free(l->sys);
    wharf_tls_client_free(l->any);
    free(l);
}

static void tlsout_on_open(wharf_conn *c)
{
    struct tlsout_side *s = wharf_get_data(c);
    if (!wharf_conn_outbound(c)) {
        wharf_set_data(c, calloc(1, sizeof(struct tlsout_side)));
        return;
    }
    s->opened = true;
    struct wharf_tls_info ti;
    char line[700];
    if (wharf_conn_tls_info(c, &ti) != 0 || !s->peer)
        return;
    snprintf(line, sizeof line, "tls %s alpn=%s sni=%s subject=%s verified=%d early=%d\n",
             ti.version, ti.alpn[0] ? ti.alpn : "-", ti.sni ? ti.sni : "-",
             ti.peer_subject[0] ? ti.peer_subject : "-", ti.peer_verified, s->early);
    wharf_send(s->peer, line, strlen(line));
}

/* The first line of a client: opens its outbound connection.  Returns the
 * bytes it took (0: the line is not complete yet). */
static size_t tlsout_start(wharf_conn *c, struct tlsout_side *s, const char *p, size_t len)
{
    const char *nl = memchr(p, '\n', len);
    if (!nl)
        return len > 300 ? (wharf_close(c), len) : 0;
    char line[301], name[256], mode[8];
    unsigned port;
    size_t n = (size_t)(nl - p);
    memcpy(line, p, n < 300 ? n : 300);
    line[n < 300 ? n : 300] = '\0';
    if (sscanf(line, "%u %255s %7s", &port, name, mode) != 3 || port == 0 || port > 65535) {
        wharf_send(c, "bad line\n", 9);
        wharf_close(c);
        return len;
    }
    const struct tlsout_listener *l = wharf_listener_data(c);
    wharf_tls_client *t = strcmp(mode, "sys") == 0 ? l->sys : strcmp(mode, "any") == 0 ? l->any : l->ca;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct tlsout_side *up = calloc(1, sizeof *up);
    int err = 0;
    wharf_conn *o = up ? wharf_connect_tls(c, (const struct sockaddr *)&a, sizeof a, t,
                                           strcmp(name, "-") ? name : NULL, up, &err)
                       : NULL;
    if (!o) {
        free(up);
        wharf_send(c, "connect failed\n", 15);
        wharf_close(c);
        return len;
    }
    struct wharf_tls_info ti;
    up->outbound = true;
    up->peer = c;
    up->early = wharf_conn_tls_info(o, &ti);
    s->peer = o;
    return n + 1;
}

static size_t tlsout_on_data(wharf_conn *c, const void *data, size_t len)
{
    struct tlsout_side *s = wharf_get_data(c);
    if (!s)
        return len;
    if (!s->outbound && !s->peer && !s->eof)
        return tlsout_start(c, s, data, len);
    if (s->peer)
        wharf_send(s->peer, data, len); /* before the handshake too: it waits */
    return len;
}

static int tlsout_on_eof(wharf_conn *c)
{
    struct tlsout_side *s = wharf_get_data(c);
    if (!s || !s->peer)
        return WHARF_EOF_CLOSE;
    s->eof = true;
    struct tlsout_side *o = wharf_get_data(s->peer);
    if (o && o->eof) {
        wharf_close(s->peer);
        return WHARF_EOF_CLOSE;
    }
    wharf_shutdown_write(s->peer);
    return WHARF_EOF_KEEP;
}

static void tlsout_on_close(wharf_conn *c, enum wharf_close_reason reason)
{
    struct tlsout_side *s = wharf_get_data(c);
    if (!s)
        return;
    wharf_conn *peer = s->peer;
    if (peer) {
        struct tlsout_side *o = wharf_get_data(peer);
        if (o)
            o->peer = NULL;
        if (s->outbound && !s->opened) {
            char line[64];
            snprintf(line, sizeof line, "refused %s\n", wharf_close_reason_name(reason));
            wharf_send(peer, line, strlen(line));
        }
        wharf_close(peer);
    }
    free(s);
    wharf_set_data(c, NULL);
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "mod_tlsout",
    .init = tlsout_init,
    .fini = tlsout_fini,
    .on_open = tlsout_on_open,
    .on_data = tlsout_on_data,
    .on_eof = tlsout_on_eof,
    .on_close = tlsout_on_close,
};
