/*
 * log_json.c - JSON text for log lines (see log_json.h).  Lines are built in
 * fixed buffers on the stack, so every append is bounded: what does not fit
 * is cut, and the line stays valid JSON.
 */
#include "log_json.h"

#include <stdio.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 when the
 * bytes there are not one (overlong, surrogate, past U+10FFFF, cut). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    if (s[0] < 0xc2 || s[0] > 0xf4 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return len;
}

void log_json_string(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = *len;
    size_t end = cap - 1; /* room for the closing quote, always kept */
    if (k >= end)
        return;
    out[k++] = '"';
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *add = esc;
        size_t m = 0, used = 1;
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch, m = 2;
        } else if (ch == '\n' || ch == '\t' || ch == '\r') {
            esc[0] = '\\', esc[1] = ch == '\n' ? 'n' : ch == '\t' ? 't' : 'r', m = 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4], esc[5] = hex[ch & 15], m = 6;
        } else if (ch < 0x80) {
            add = (const char *)p + i, m = 1;
        } else if ((used = utf8_len(p + i, n - i)) > 0) {
            add = (const char *)p + i, m = used;
        } else {
            add = "\xef\xbf\xbd", m = 3, used = 1; /* U+FFFD */
        }
        if (k + m > end - 1)
            break;
        memcpy(out + k, add, m);
        k += m;
        i += used;
    }
    out[k++] = '"';
    out[k] = '\0';
    *len = k;
}

/* Appends literal text (ours: no escaping needed), bounded. */
static void put(char *out, size_t cap, size_t *len, const char *text)
{
    size_t m = strlen(text);
    if (*len + m >= cap)
        m = *len < cap ? cap - 1 - *len : 0;
    memcpy(out + *len, text, m);
    *len += m;
    out[*len] = '\0';
}

size_t log_json_line(char *out, size_t cap, const char *time, const char *level,
                     const char *listener, int worker, uint64_t conn, const char *msg,
                     size_t msglen)
{
    size_t n = 0;
    char num[48];
    /* The closing brace's byte is kept back from every field. */
    put(out, cap - 1, &n, "{\"time\":");
    log_json_string(out, cap - 1, &n, time, strlen(time));
    put(out, cap - 1, &n, ",\"level\":");
    log_json_string(out, cap - 1, &n, level, strlen(level));
    if (listener) {
        put(out, cap - 1, &n, ",\"listener\":");
        /* At most 512 bytes of it, so that the message's key always fits. */
        size_t lim = n + 512 < cap - 1 ? n + 512 : cap - 1;
        log_json_string(out, lim, &n, listener, strlen(listener));
    }
    if (worker >= 0) {
        snprintf(num, sizeof num, ",\"worker\":%d", worker);
        put(out, cap - 1, &n, num);
    }
    if (conn) {
        snprintf(num, sizeof num, ",\"conn\":%llu", (unsigned long long)conn);
        put(out, cap - 1, &n, num);
    }
    put(out, cap - 1, &n, ",\"msg\":");
    log_json_string(out, cap - 1, &n, msg, msglen);
    out[n++] = '}';
    out[n] = '\0';
    return n;
}
