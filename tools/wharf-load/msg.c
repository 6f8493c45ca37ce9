/* msg.c - building and verifying wharf-load messages (see msg.h for the layout), and the
 * CRC32c used as their checksum. */
#include "msg.h"

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* ---- CRC32c ---------------------------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static bool crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    uint32_t i, j, c;

    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (i = 0; i < 256; i++)
        for (j = 1; j < 8; j++)
            crc_table[j][i] = (crc_table[j - 1][i] >> 8) ^ crc_table[0][crc_table[j - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo, hi;

        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo = le32toh(lo) ^ c;
        hi = le32toh(hi);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff];
        c ^= crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24];
        c ^= crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff];
        c ^= crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
static uint32_t crc_sse42(uint32_t c32, const uint8_t *p, size_t n)
    __attribute__((target("sse4.2")));

static uint32_t crc_sse42(uint32_t c32, const uint8_t *p, size_t n)
{
    unsigned long long c = c32;

    while (n >= 8) {
        unsigned long long w;

        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t msg_crc32c(uint32_t crc, const void *buf, size_t len)
{
    uint32_t c = ~crc;

    pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_sse42(c, buf, len);
#endif
    return ~crc_sw(c, buf, len);
}

/* ---- payload and sizes ----------------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t stream_seed(const struct msg_params *mp, uint32_t flow, uint64_t seq)
{
    return mix64(mp->seed ^ mix64(((uint64_t)flow << 32) ^ 0x9e3779b97f4a7c15ull) ^
                 mix64(seq + 0x632be59bd9b4e019ull));
}

/* xorshift64*: cheap, never zero for a non-zero state. */
static inline uint64_t next_word(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return htole64(x * 0x2545f4914f6cdd1dull);
}

uint32_t msg_length(const struct msg_params *mp, uint32_t flow, uint64_t seq)
{
    uint64_t span;

    if (mp->size_min >= mp->size_max)
        return mp->size_min;
    span = (uint64_t)(mp->size_max - mp->size_min) + 1;
    return mp->size_min + (uint32_t)(mix64(stream_seed(mp, flow, seq) + 1) % span);
}

static void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return le64toh(v);
}

static uint32_t message_crc(const uint8_t *buf, uint32_t len)
{
    static const uint8_t zero[4];
    uint32_t c;

    c = msg_crc32c(0, buf, 12);
    c = msg_crc32c(c, zero, 4);
    return msg_crc32c(c, buf + 16, len - 16);
}

void msg_build(const struct msg_params *mp, uint8_t *buf, uint32_t len, uint32_t flow, uint64_t seq,
               uint64_t intended_ns, uint64_t sent_ns)
{
    uint64_t s = stream_seed(mp, flow, seq) | 1, w;
    uint8_t *p = buf + MSG_HDR_LEN, *end = buf + len;

    put32(buf, MSG_MAGIC);
    put32(buf + 4, len);
    put32(buf + 8, flow);
    put32(buf + 12, 0);
    put64(buf + 16, seq);
    put64(buf + 24, intended_ns);
    put64(buf + 32, sent_ns);
    while (end - p >= 8) {
        w = next_word(&s);
        memcpy(p, &w, 8);
        p += 8;
    }
    if (p < end) {
        w = next_word(&s);
        memcpy(p, &w, (size_t)(end - p));
    }
    put32(buf + 12, message_crc(buf, len));
}

int msg_parse_header(const struct msg_params *mp, const uint8_t *buf, struct msg_hdr *h)
{
    h->magic = get32(buf);
    h->length = get32(buf + 4);
    h->flow = get32(buf + 8);
    h->checksum = get32(buf + 12);
    h->seq = get64(buf + 16);
    h->intended_ns = get64(buf + 24);
    h->sent_ns = get64(buf + 32);
    if (h->magic != MSG_MAGIC || h->length < mp->size_min || h->length > mp->size_max)
        return -1;
    return 0;
}

enum msg_verdict msg_verify(const struct msg_params *mp, const uint8_t *buf,
                            const struct msg_hdr *h, uint32_t flow)
{
    uint64_t s, w;
    const uint8_t *p = buf + MSG_HDR_LEN, *end = buf + h->length;

    if (message_crc(buf, h->length) != h->checksum)
        return MSG_BAD_CHECKSUM;
    if (h->flow != flow)
        return MSG_BAD_FLOW;
    if (h->length != msg_length(mp, flow, h->seq))
        return MSG_BAD_LENGTH;
    s = stream_seed(mp, flow, h->seq) | 1;
    while (end - p >= 8) {
        w = next_word(&s);
        if (memcmp(p, &w, 8) != 0)
            return MSG_BAD_PAYLOAD;
        p += 8;
    }
    if (p < end) {
        w = next_word(&s);
        if (memcmp(p, &w, (size_t)(end - p)) != 0)
            return MSG_BAD_PAYLOAD;
    }
    return MSG_OK;
}

const char *msg_verdict_name(enum msg_verdict v)
{
    switch (v) {
    case MSG_OK: return "ok";
    case MSG_BAD_CHECKSUM: return "checksum mismatch";
    case MSG_BAD_FLOW: return "wrong flow";
    case MSG_BAD_LENGTH: return "wrong length";
    case MSG_BAD_PAYLOAD: return "payload mismatch";
    }
    return "?";
}
