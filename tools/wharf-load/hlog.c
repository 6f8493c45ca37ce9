/* hlog.c - HdrHistogram interval logs (.hlog): the header, one line per interval, and the
 * V2 compressed histogram encoding (see hlog.h). The engine (engine.c) hands in the
 * histogram of each interval as the run goes. */
#include "hlog.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "opts.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* HdrHistogram's ZigZagEncoding.putLong: zig-zag, then 7 bits a byte, low first, at most 9
 * bytes (the 9th holds 8 bits). Returns the bytes written. */
static size_t zigzag_put(uint8_t *p, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;

    while (n < 8 && u >= 0x80) {
        p[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    p[n++] = (uint8_t)u;
    return n;
}

int hlog_encode(const struct hist *h, uint8_t **out, size_t *outlen)
{
    size_t last = 0, i, n = 0;
    bool any = false;
    uint8_t *raw, *z;
    uLongf zlen;
    double ratio = 1.0;
    uint64_t ratio_bits;

    for (i = 0; i < HIST_NBUCKETS; i++)
        if (atomic_load_explicit(&h->counts[i], memory_order_relaxed)) {
            last = i;
            any = true;
        }
    /* header + at most 9 bytes a count */
    raw = malloc(40 + (any ? (last + 1) * 9 : 0));
    if (!raw)
        return -1;
    n = 40;
    for (i = 0; any && i <= last;) {
        uint64_t c = atomic_load_explicit(&h->counts[i++], memory_order_relaxed);
        int64_t zeros = 0;

        if (c == 0) {
            zeros = 1;
            while (i <= last && atomic_load_explicit(&h->counts[i], memory_order_relaxed) == 0) {
                zeros++;
                i++;
            }
        }
        n += zigzag_put(raw + n, zeros > 1 ? -zeros : (int64_t)c);
    }
    put32(raw, HLOG_COOKIE);
    put32(raw + 4, (uint32_t)(n - 40));
    put32(raw + 8, 0);             /* normalizing index offset */
    put32(raw + 12, 3);            /* significant value digits */
    put64(raw + 16, 1);            /* lowest discernible value */
    put64(raw + 24, HIST_MAX_VALUE); /* highest trackable value */
    memcpy(&ratio_bits, &ratio, sizeof(ratio_bits));
    put64(raw + 32, ratio_bits);   /* integer to double conversion ratio */
    zlen = compressBound((uLong)n);
    z = malloc(8 + zlen);
    if (!z || compress2(z + 8, &zlen, raw, (uLong)n, Z_DEFAULT_COMPRESSION) != Z_OK) {
        free(raw);
        free(z);
        return -1;
    }
    free(raw);
    put32(z, HLOG_COMPRESSED_COOKIE);
    put32(z + 4, (uint32_t)zlen);
    *out = z;
    *outlen = 8 + zlen;
    return 0;
}

/* Standard base64 with padding into dst (room for 4 * ceil(n / 3) + 1 bytes). */
static void base64(char *dst, const uint8_t *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        *dst++ = a[v >> 18];
        *dst++ = a[(v >> 12) & 63];
        *dst++ = a[(v >> 6) & 63];
        *dst++ = a[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

        *dst++ = a[v >> 18];
        *dst++ = a[(v >> 12) & 63];
        *dst++ = i + 1 < n ? a[(v >> 6) & 63] : '=';
        *dst++ = '=';
    }
    *dst = '\0';
}

int hlog_open(struct hlog *lg, const char *path, uint64_t start_unix_ns, char *err,
              size_t errlen)
{
    time_t secs = (time_t)(start_unix_ns / 1000000000u);
    char date[64];
    struct tm tm;

    memset(lg, 0, sizeof(*lg));
    lg->path = path;
    lg->base_unix_ns = start_unix_ns;
    lg->f = fopen(path, "w");
    if (!lg->f) {
        snprintf(err, errlen, "--hlog %s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    gmtime_r(&secs, &tm);
    strftime(date, sizeof(date), "%a %b %d %H:%M:%S UTC %Y", &tm);
    fprintf(lg->f,
            "#[Logged with wharf-load %s]\n"
            "#[Histogram log format version 1.3]\n"
            "#[StartTime: %.3f (seconds since epoch), %s]\n"
            "#[BaseTime: %.3f (seconds since epoch)]\n"
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
            "\"Interval_Compressed_Histogram\"\n",
            LOAD_VERSION, start_unix_ns / 1e9, date, start_unix_ns / 1e9);
    return 0;
}

int hlog_interval(struct hlog *lg, const char *tag, uint64_t start_unix_ns, uint64_t end_unix_ns,
                  const struct hist *h)
{
    uint64_t max = 0;
    uint8_t *enc;
    size_t n, i;
    char *b64;

    if (!lg->f)
        return -1;
    for (i = HIST_NBUCKETS; i-- > 0;)
        if (atomic_load_explicit(&h->counts[i], memory_order_relaxed)) {
            max = hist_highest(i); /* HdrHistogram: the highest equivalent value */
            break;
        }
    if (hlog_encode(h, &enc, &n) != 0) {
        lg->failed = ENOMEM;
        return -1;
    }
    b64 = malloc(4 * (n / 3 + 1) + 1);
    if (!b64) {
        free(enc);
        lg->failed = ENOMEM;
        return -1;
    }
    base64(b64, enc, n);
    free(enc);
    if (tag)
        fprintf(lg->f, "Tag=%s,", tag);
    fprintf(lg->f, "%.3f,%.3f,%.3f,%s\n",
            start_unix_ns > lg->base_unix_ns ? (start_unix_ns - lg->base_unix_ns) / 1e9 : 0.0,
            end_unix_ns > start_unix_ns ? (end_unix_ns - start_unix_ns) / 1e9 : 0.0, max / 1e6, b64);
    free(b64);
    if (ferror(lg->f) && !lg->failed)
        lg->failed = errno ? errno : EIO;
    return lg->failed ? -1 : 0;
}

int hlog_close(struct hlog *lg, char *err, size_t errlen)
{
    int rc = 0;

    if (!lg->f)
        return 0;
    if (fclose(lg->f) != 0 && !lg->failed)
        lg->failed = errno ? errno : EIO;
    lg->f = NULL;
    if (lg->failed) {
        snprintf(err, errlen, "--hlog %s: %s", lg->path, strerror(lg->failed));
        rc = -1;
    }
    return rc;
}
