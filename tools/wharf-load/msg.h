/* msg.h - the wharf-load message: a 40-byte header and a generated payload, so every echo
 * can be checked byte for byte.
 *
 * Wire layout (all fields little-endian):
 *   0  u32 magic        "WLD1" (0x31444c57)
 *   4  u32 length       whole message, header included (40 .. 1 MiB)
 *   8  u32 flow         connection (TCP) or flow (UDP) number, 0-based
 *  12  u32 checksum     CRC32c of the whole message with this field taken as zero
 *  16  u64 seq          per-flow sequence number, from 0
 *  24  u64 intended_ns  when the message was due (open loop schedule; = sent in closed loop)
 *  32  u64 sent_ns      when it was written to the socket (CLOCK_MONOTONIC)
 *  40  payload          pseudo-random bytes derived from (seed, flow, seq)
 *
 * The length of message (flow, seq) is also derived from the seed when a size range is used,
 * so the receiver knows exactly what it must get back without keeping copies.
 */
#ifndef WLOAD_MSG_H
#define WLOAD_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MSG_MAGIC 0x31444c57u
#define MSG_HDR_LEN 40u
#define MSG_MAX_LEN (1u << 20)

struct msg_hdr {
    uint32_t magic, length, flow, checksum;
    uint64_t seq, intended_ns, sent_ns;
};

/* What the generator and verifier agree on. */
struct msg_params {
    uint64_t seed;
    uint32_t size_min, size_max; /* MSG_HDR_LEN <= min <= max <= MSG_MAX_LEN */
};

enum msg_verdict {
    MSG_OK = 0,
    MSG_BAD_CHECKSUM, /* header or payload changed in transit */
    MSG_BAD_FLOW,     /* answer belongs to another connection or flow */
    MSG_BAD_LENGTH,   /* length differs from what was sent for this seq */
    MSG_BAD_PAYLOAD,  /* payload differs although the checksum matched */
};

/* Length of message (flow, seq): fixed, or uniform in [size_min, size_max]. */
uint32_t msg_length(const struct msg_params *mp, uint32_t flow, uint64_t seq);

/* Writes message (flow, seq) of `len` bytes into buf (which must hold len bytes) with the
 * given timestamps, checksum included. */
void msg_build(const struct msg_params *mp, uint8_t *buf, uint32_t len, uint32_t flow, uint64_t seq,
               uint64_t intended_ns, uint64_t sent_ns);

/* Decodes the header of buf (at least MSG_HDR_LEN bytes). Returns 0 when the magic is right
 * and the length lies in [size_min, size_max], so the stream can be framed; -1 otherwise. */
int msg_parse_header(const struct msg_params *mp, const uint8_t *buf, struct msg_hdr *h);

/* Verifies a whole message (h->length bytes at buf) that claims to be the echo of a message
 * of `flow`: checksum, flow, the length due for its seq and every payload byte. */
enum msg_verdict msg_verify(const struct msg_params *mp, const uint8_t *buf,
                            const struct msg_hdr *h, uint32_t flow);

const char *msg_verdict_name(enum msg_verdict v);

/* CRC32c (Castagnoli), hardware-accelerated where the CPU has it. crc32c(0, "123456789", 9)
 * is 0xe3069283. `crc` is a previous result (0 to start). */
uint32_t msg_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
