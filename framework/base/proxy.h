/*
 * proxy.h - a parser for the PROXY protocol header (HAProxy's
 * proxy-protocol.txt, versions 1 and 2) that a load balancer puts in front of
 * the client's bytes to pass on the client's real addresses.
 *
 * proxy_parse() is a pure function of its input: no allocation, no state,
 * no I/O.  It is meant to be called again on the same (grown) buffer each
 * time more bytes arrive until it returns non-zero:
 *
 *   > 0  a whole header: that many bytes are the header and nothing else;
 *        the bytes after them are the client's and are never looked at
 *     0  the bytes so far are a valid beginning of a header: read more
 *   < 0  not a valid header (out->reason says why in a few words); close
 *
 * 0 is only returned while fewer than PROXY_MAX_HEADER bytes are given (with
 * PROXY_V1 alone: fewer than PROXY_V1_MAX_LINE), so a caller never has to
 * buffer more than that.
 *
 * Version 1 ("PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n"): the protocol is
 * TCP4, TCP6 or UNKNOWN, fields are separated by exactly one space, the
 * addresses must be valid for the protocol (inet_pton: dotted quads without
 * leading zeros, standard IPv6 text), the ports are decimal 0..65535 without
 * leading zeros ("0" itself is fine), and the line ends in CRLF within
 * PROXY_V1_MAX_LINE (107) bytes.  After "UNKNOWN" anything up to the first
 * LF is ignored, but that LF must still follow a CR.
 *
 * Version 2 (binary): the 12-byte signature, version 2, command LOCAL or
 * PROXY, one of the seven family/transport bytes of the spec (0x00, 0x11,
 * 0x12, 0x21, 0x22, 0x31, 0x32; anything else is rejected), and a 16-bit
 * length of what follows the 16 fixed bytes.  All 16 + length bytes are
 * consumed.  For PROXY the length must hold the family's address block (12
 * bytes for INET, 36 for INET6, 216 for UNIX) and what follows the address
 * block must be whole TLVs (type, 16-bit length, value); TLVs are not
 * interpreted, out->tlv_offset/tlv_len locate them.  For LOCAL the address
 * block and TLVs are not looked at.  DGRAM transports are accepted and
 * reported in out->socktype, so a TCP caller that wants only STREAM can
 * check that.  Headers longer than PROXY_MAX_HEADER bytes in all (the
 * protocol allows 16 + 65535) are rejected as soon as the length is read.
 *
 * What the caller should use as the client's addresses: out->src and
 * out->dst when out->src.ss_family is AF_INET or AF_INET6, else (v2 LOCAL,
 * v1 UNKNOWN, v2 UNSPEC or UNIX families) the connection's own addresses.
 */
#ifndef WHARF_PROXY_H
#define WHARF_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

/* Bits of proxy_parse's `allowed`. */
#define PROXY_V1 1u
#define PROXY_V2 2u

/* The longest v1 line, CRLF included (the spec's 107). */
#define PROXY_V1_MAX_LINE 107
/* The fixed part of a v2 header: signature, version/command, family, length. */
#define PROXY_V2_FIXED 16
/* The longest header accepted, fixed part included (so a v2 length field of
 * at most PROXY_MAX_HEADER - PROXY_V2_FIXED); 4096 is far more than the
 * addresses and the usual TLVs (ALPN, authority, SSL, unique id) need. */
#define PROXY_MAX_HEADER 4096

/* out->command */
enum proxy_command {
    PROXY_CMD_LOCAL = 0, /* v2 LOCAL, v1 UNKNOWN: use the connection's addresses */
    PROXY_CMD_PROXY = 1, /* relayed: src/dst are the client's (when not AF_UNSPEC) */
};

struct proxy_result {
    int version;                 /* 1 or 2 (when the result is <= 0: the
                                    version being parsed, or 0) */
    enum proxy_command command;
    int socktype;                /* SOCK_STREAM, SOCK_DGRAM, or 0 when not given
                                    (v1 UNKNOWN, v2 UNSPEC, v2 LOCAL) */
    struct sockaddr_storage src; /* the client: AF_INET/AF_INET6 with port, or
                                    ss_family AF_UNSPEC for "no address" */
    struct sockaddr_storage dst; /* the address the client connected to; same */
    size_t tlv_offset;           /* v2: where the TLVs start in buf, and their */
    size_t tlv_len;              /* total length (0 when none or not looked at) */
    const char *reason;          /* a static string when the result is < 0,
                                    else NULL */
};

/*
 * Parses the PROXY header at the start of buf[0..len).  `allowed` is
 * PROXY_V1, PROXY_V2 or both; with both, the first byte decides which.
 * Returns the header's length (> 0), 0 for "need more bytes", or one of
 *   -EINVAL           malformed
 *   -EMSGSIZE         v1 line over 107 bytes, v2 header over PROXY_MAX_HEADER
 *   -EPROTONOSUPPORT  a header of a version not in `allowed` (or none allowed)
 * and fills *out (out must not be NULL; it is always cleared first, and
 * reason is set exactly when the result is < 0).  buf may be NULL when len
 * is 0.
 */
int proxy_parse(const void *buf, size_t len, unsigned allowed, struct proxy_result *out);

#endif
