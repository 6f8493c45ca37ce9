/*
 * proxy.c - the PROXY protocol header parser (proxy.h).
 *
 * Both versions are parsed from the start of the buffer every time; a header
 * is at most PROXY_MAX_HEADER bytes, so re-parsing on each read costs little
 * and keeps the parser free of state.  Every check is made as soon as the
 * bytes it needs are there, so an invalid header is rejected early, and "need
 * more" (0) means that some continuation of the bytes so far is a valid
 * header.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const unsigned char v2_sig[12] = {
    '\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'
};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN 6

/* Sets the reason and returns code (a negative errno). */
static int fail(struct proxy_result *out, int code, const char *reason)
{
    out->reason = reason;
    return code;
}

/* ---- version 1 ------------------------------------------------------------- */

/* The longest address text: an IPv6 address ending in a dotted quad,
 * "0000:0000:0000:0000:0000:0000:255.255.255.255" (INET6_ADDRSTRLEN - 1). */
#define V1_ADDR_MAX 45

/* Whether text[0..n) (no NULs, no spaces) is an address of family af. */
static bool addr_parse(int af, const unsigned char *text, size_t n, void *dst)
{
    char s[V1_ADDR_MAX + 1];
    if (n == 0 || n > V1_ADDR_MAX)
        return false;
    memcpy(s, text, n);
    s[n] = '\0';
    return inet_pton(af, s, dst) == 1;
}

/*
 * Whether text[0..n), the part of an address cut off by the end of the
 * input, can still become an address of family af.  It can exactly when one
 * of a few endings makes it one: finish a dangling ':' or '.' ("0", or ":"
 * for a leading ':'), complete a dotted quad (".0" up to three times), and
 * for IPv6 without "::" yet, let "::" stand for the missing groups.
 */
static bool addr_viable(int af, const unsigned char *text, size_t n)
{
    static const char *const finish[] = { "", "0", ":" };
    static const char *const quad[] = { "", ".0", ".0.0", ".0.0.0" };
    static const char *const fill[] = { "", "::" };
    size_t nfinish = af == AF_INET6 ? 3 : 2, nfill = af == AF_INET6 ? 2 : 1;
    unsigned char a[16];
    char s[V1_ADDR_MAX + 16];

    if (n > V1_ADDR_MAX)
        return false;
    for (size_t i = 0; i < nfinish; i++)
        for (size_t j = 0; j < 4; j++)
            for (size_t k = 0; k < nfill; k++) {
                size_t li = strlen(finish[i]), lj = strlen(quad[j]), lk = strlen(fill[k]);
                memcpy(s, text, n);
                memcpy(s + n, finish[i], li);
                memcpy(s + n + li, quad[j], lj);
                memcpy(s + n + li + lj, fill[k], lk);
                s[n + li + lj + lk] = '\0';
                if (strlen(s) <= V1_ADDR_MAX && inet_pton(af, s, a) == 1)
                    return true;
            }
    return false;
}

/*
 * A decimal port: "0" or 1..65535 without leading zeros.  With complete
 * false, text is cut off by the end of the input and the question is only
 * whether it can still become one.
 */
static bool port_parse(const unsigned char *text, size_t n, bool complete, uint16_t *port)
{
    unsigned long v = 0;
    if (n == 0)
        return !complete;
    if (n > 5 || (text[0] == '0' && n > 1))
        return false;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (unsigned)(text[i] - '0');
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* The fields of a TCP4/TCP6 line after "PROXY TCPx ". */
enum v1_field { F_SRC, F_DST, F_SPORT, F_DPORT, F_END };

static const char *const v1_field_reason[] = {
    "bad v1 source address", "bad v1 destination address",
    "bad v1 source port", "bad v1 destination port",
};

/* What running out of the line's bytes (of len given) means: need more, or
 * too long once all 107 were there. */
static int v1_more(size_t len, struct proxy_result *out)
{
    return len < PROXY_V1_MAX_LINE ? 0 : fail(out, -EMSGSIZE, "v1 line too long");
}

enum { V1_TCP4, V1_TCP6, V1_UNKNOWN };

/* The protocol word after "PROXY ", up to a space or CR, at *pos (moved
 * past it) into *proto (V1_TCP4, V1_TCP6, V1_UNKNOWN).  Returns 1, or the
 * result for the caller to return: 0 for more bytes, or the failure. */

static int v1_protocol(const unsigned char *p, size_t len, size_t n, size_t *pos,
                       struct proxy_result *out, int *proto)
{
    static const char *const protos[] = { "TCP4", "TCP6", "UNKNOWN" };
    size_t start = *pos, at = start;
    while (at < n && p[at] != ' ' && p[at] != '\r' && p[at] != '\n' && at - start < 8)
        at++;
    size_t wlen = at - start;
    *proto = -1;
    for (int i = 0; i < 3; i++) {
        size_t plen = strlen(protos[i]);
        if (at == n && wlen <= plen && memcmp(p + start, protos[i], wlen) == 0)
            return v1_more(len, out); /* cut off, still a prefix of protos[i] */
        if (wlen == plen && memcmp(p + start, protos[i], plen) == 0)
            *proto = i;
    }
    if (*proto < 0 || at == n)
        return fail(out, -EINVAL, "bad v1 protocol");
    if (p[at] == '\n')
        return fail(out, -EINVAL, "v1 line not ended by CRLF");
    *pos = at;
    return 1;
}

/* "PROXY UNKNOWN": everything up to the first LF is ignored. */
static int v1_unknown(const unsigned char *p, size_t len, size_t n, size_t pos,
                      struct proxy_result *out)
{
    if (p[pos] != ' ' && p[pos] != '\r')
        return fail(out, -EINVAL, "bad v1 protocol");
    const unsigned char *lf = memchr(p + pos, '\n', n - pos);
    if (!lf)
        return v1_more(len, out);
    if (lf[-1] != '\r')
        return fail(out, -EINVAL, "v1 line not ended by CRLF");
    out->command = PROXY_CMD_LOCAL;
    out->src.ss_family = AF_UNSPEC;
    out->dst.ss_family = AF_UNSPEC;
    return (int)(lf - p + 1);
}

/* The four fields of a TCP4/TCP6 line from *pos (moved to the CR after the
 * destination port).  Returns 1 when all were read, else the result. */
static int v1_fields(const unsigned char *p, size_t len, size_t n, size_t *pos, int af,
                     unsigned char addr[2][16], uint16_t port[2], struct proxy_result *out)
{
    size_t at = *pos;
    for (int f = F_SRC; f < F_END; f++) {
        bool is_addr = f == F_SRC || f == F_DST;
        size_t start = at;
        if (is_addr)
            while (at < n && p[at] != ' ' && p[at] != '\r' && p[at] != '\n' && p[at] != '\0')
                at++;
        else
            while (at < n && p[at] >= '0' && p[at] <= '9')
                at++;
        size_t tlen = at - start;
        if (at == n) { /* cut off inside the field */
            bool ok = is_addr ? addr_viable(af, p + start, tlen)
                              : port_parse(p + start, tlen, false, &port[0]);
            return ok ? v1_more(len, out) : fail(out, -EINVAL, v1_field_reason[f]);
        }
        bool ok = is_addr ? addr_parse(af, p + start, tlen, addr[f])
                          : port_parse(p + start, tlen, true, &port[f - F_SPORT]);
        if (!ok)
            return fail(out, -EINVAL, v1_field_reason[f]);
        if (f < F_DPORT) {
            if (p[at] != ' ')
                return fail(out, -EINVAL, tlen == 0 || p[at] == '\r' || p[at] == '\n'
                            ? v1_field_reason[f + 1] : v1_field_reason[f]);
            at++;
        }
    }
    *pos = at;
    return 1;
}

/* Stores one address and port (network order on the wire, host order in port). */
static void v1_store(struct sockaddr_storage *ss, int af, const unsigned char *addr,
                     uint16_t port)
{
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, addr, 4);
        sin->sin_port = htons(port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, addr, 16);
        sin6->sin6_port = htons(port);
    }
}

static int parse_v1(const unsigned char *p, size_t len, struct proxy_result *out)
{
    /* Only the first 107 bytes can be the line. */
    size_t n = len < PROXY_V1_MAX_LINE ? len : PROXY_V1_MAX_LINE;

    if (memcmp(p, v1_sig, n < V1_SIG_LEN ? n : V1_SIG_LEN) != 0)
        return fail(out, -EINVAL, "bad v1 signature");
    if (n < V1_SIG_LEN)
        return v1_more(len, out);
    out->version = 1;

    size_t pos = V1_SIG_LEN;
    int proto, rc = v1_protocol(p, len, n, &pos, out, &proto);
    if (rc != 1)
        return rc;
    if (proto == V1_UNKNOWN)
        return v1_unknown(p, len, n, pos, out);

    int af = proto == V1_TCP4 ? AF_INET : AF_INET6;
    if (p[pos] != ' ')
        return fail(out, -EINVAL, "bad v1 protocol");
    pos++;
    unsigned char addr[2][16];
    uint16_t port[2] = { 0, 0 };
    rc = v1_fields(p, len, n, &pos, af, addr, port, out);
    if (rc != 1)
        return rc;

    /* After the destination port: CRLF. */
    if (p[pos] != '\r')
        return fail(out, -EINVAL, p[pos] == '\n' ? "v1 line not ended by CRLF"
                                                 : v1_field_reason[F_DPORT]);
    pos++;
    if (pos == n)
        return v1_more(len, out);
    if (p[pos] != '\n')
        return fail(out, -EINVAL, "v1 line not ended by CRLF");
    pos++;

    out->command = PROXY_CMD_PROXY;
    out->socktype = SOCK_STREAM;
    v1_store(&out->src, af, addr[0], port[0]);
    v1_store(&out->dst, af, addr[1], port[1]);
    return (int)pos;
}

/* ---- version 2 ------------------------------------------------------------- */

#define V2_ADDR_INET 12   /* 2 x 4-byte address, 2 x 2-byte port */
#define V2_ADDR_INET6 36  /* 2 x 16-byte address, 2 x 2-byte port */
#define V2_ADDR_UNIX 216  /* 2 x 108-byte path */

/* The address length, family and socket type of v2 family byte b; false
 * for an unknown one. */
static bool v2_family(unsigned b, size_t *addrlen, int *af, int *socktype)
{
    switch (b) {
    case 0x00: *addrlen = 0; *af = AF_UNSPEC; *socktype = 0; return true;
    case 0x11: *addrlen = V2_ADDR_INET; *af = AF_INET; *socktype = SOCK_STREAM; return true;
    case 0x12: *addrlen = V2_ADDR_INET; *af = AF_INET; *socktype = SOCK_DGRAM; return true;
    case 0x21: *addrlen = V2_ADDR_INET6; *af = AF_INET6; *socktype = SOCK_STREAM; return true;
    case 0x22: *addrlen = V2_ADDR_INET6; *af = AF_INET6; *socktype = SOCK_DGRAM; return true;
    case 0x31: *addrlen = V2_ADDR_UNIX; *af = AF_UNIX; *socktype = SOCK_STREAM; return true;
    case 0x32: *addrlen = V2_ADDR_UNIX; *af = AF_UNIX; *socktype = SOCK_DGRAM; return true;
    default: return false;
    }
}

/* Whether the TLVs in p[at..total) are whole. */
static bool v2_tlvs_whole(const unsigned char *p, size_t at, size_t total)
{
    while (at < total) {
        if (total - at < 3)
            return false;
        size_t vlen = (size_t)p[at + 1] << 8 | p[at + 2];
        if (vlen > total - at - 3)
            return false;
        at += 3 + vlen;
    }
    return true;
}

/* Copies the addresses of family af from the address block a. */
static void v2_store(struct proxy_result *out, int af, const unsigned char *a)
{
    if (af == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);  /* both in network order already */
        memcpy(&d->sin_port, a + 10, 2);
    } else if (af == AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
    } else { /* UNSPEC, UNIX: no address the caller can use */
        out->src.ss_family = AF_UNSPEC;
        out->dst.ss_family = AF_UNSPEC;
    }
}

static int parse_v2(const unsigned char *p, size_t len, struct proxy_result *out)
{
    if (memcmp(p, v2_sig, len < sizeof v2_sig ? len : sizeof v2_sig) != 0)
        return fail(out, -EINVAL, "bad v2 signature");
    if (len <= 12)
        return 0;
    out->version = 2;

    unsigned ver = p[12] >> 4, cmd = p[12] & 0xf;
    if (ver != 2)
        return fail(out, -EINVAL, "bad v2 version");
    if (cmd > 1)
        return fail(out, -EINVAL, "bad v2 command");
    if (len <= 13)
        return 0;

    size_t addrlen;
    int af, socktype;
    if (!v2_family(p[13], &addrlen, &af, &socktype))
        return fail(out, -EINVAL, "bad address family");
    if (len < PROXY_V2_FIXED)
        return 0;

    size_t declared = (size_t)p[14] << 8 | p[15];
    size_t total = PROXY_V2_FIXED + declared;
    if (total > PROXY_MAX_HEADER)
        return fail(out, -EMSGSIZE, "declared length too large");
    if (cmd == PROXY_CMD_LOCAL) {
        /* The family and everything after the fixed part are ignored. */
        if (len < total)
            return 0;
        out->command = PROXY_CMD_LOCAL;
        return (int)total;
    }
    if (declared < addrlen)
        return fail(out, -EINVAL, "declared length too small for address family");
    if (len < total)
        return 0;
    size_t tlv = PROXY_V2_FIXED + addrlen;
    if (!v2_tlvs_whole(p, tlv, total))
        return fail(out, -EINVAL, "bad v2 TLV");

    out->command = PROXY_CMD_PROXY;
    out->socktype = socktype;
    out->tlv_offset = tlv;
    out->tlv_len = total - tlv;
    v2_store(out, af, p + PROXY_V2_FIXED);
    return (int)total;
}

/* ---- both -------------------------------------------------------------------- */

int proxy_parse(const void *buf, size_t len, unsigned allowed, struct proxy_result *out)
{
    const unsigned char *p = buf;
    memset(out, 0, sizeof *out);
    out->src.ss_family = AF_UNSPEC;
    out->dst.ss_family = AF_UNSPEC;

    allowed &= PROXY_V1 | PROXY_V2;
    if (!allowed)
        return fail(out, -EPROTONOSUPPORT, "no PROXY protocol version allowed");
    if (len == 0)
        return 0;
    /* The signatures differ in their first byte. */
    if (p[0] == (unsigned char)v1_sig[0]) {
        if (!(allowed & PROXY_V1))
            return fail(out, -EPROTONOSUPPORT, "v1 header where only v2 is allowed");
        return parse_v1(p, len, out);
    }
    if (p[0] == v2_sig[0]) {
        if (!(allowed & PROXY_V2))
            return fail(out, -EPROTONOSUPPORT, "v2 header where only v1 is allowed");
        return parse_v2(p, len, out);
    }
    return fail(out, -EINVAL, allowed == PROXY_V1 ? "bad v1 signature"
                              : allowed == PROXY_V2 ? "bad v2 signature"
                              : "no PROXY protocol signature");
}
