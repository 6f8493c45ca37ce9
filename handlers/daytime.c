/*
 * daytime.c - the daytime service (RFC 867): on connect, the server sends the
 * current date and time as one line and closes.
 *
 * What it shows: a handler that talks first.  on_open may wharf_send before
 * any byte arrives; wharf_close then closes the connection once that output
 * is written (reason "handler"), so the client reads one line and then EOF.
 * Anything the client sends is ignored.
 *
 * RFC 867 leaves the format open.  The default is the one its text suggests,
 * always in UTC and in English (not the locale's names):
 *     "Monday, November 30, 2026 01:23:45-UTC\r\n"
 * Options:
 *   "format": "rfc867" (default, as above) or "rfc3339":
 *     "2026-11-30T01:23:45Z\r\n"
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wharf.h"

enum daytime_format { DAYTIME_RFC867, DAYTIME_RFC3339 };

static const char *const day_names[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};
static const char *const month_names[] = {"January", "February", "March",     "April",
                                          "May",     "June",     "July",      "August",
                                          "September", "October", "November", "December"};

/* The listener data is just the format, stored in the pointer itself. */
static int daytime_init(const wharf_options *opts, void **listener_data, char *err,
                        size_t errlen)
{
    static const char *const allowed[] = {"format", NULL};
    if (wharf_options_check_keys(opts, allowed, err, errlen) != 0)
        return -1;
    const char *format = "rfc867";
    if (wharf_options_string(opts, "format", &format) == -EINVAL) {
        snprintf(err, errlen, "format: expected a string");
        return -1;
    }
    enum daytime_format f;
    if (strcmp(format, "rfc867") == 0) {
        f = DAYTIME_RFC867;
    } else if (strcmp(format, "rfc3339") == 0) {
        f = DAYTIME_RFC3339;
    } else {
        snprintf(err, errlen, "format: expected \"rfc867\" or \"rfc3339\", not \"%s\"", format);
        return -1;
    }
    *listener_data = (void *)(uintptr_t)f;
    return 0;
}

/* Formats the current UTC time into buf; returns its length. */
static size_t daytime_format(enum daytime_format f, char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int n;
    if (f == DAYTIME_RFC3339)
        n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ\r\n", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    else /* names from our own tables: strftime's %A/%B would follow the locale */
        n = snprintf(buf, size, "%s, %s %d, %04d %02d:%02d:%02d-UTC\r\n", day_names[tm.tm_wday],
                     month_names[tm.tm_mon], tm.tm_mday, tm.tm_year + 1900, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* Says the time, then closes once it is written. */
static void daytime_on_open(wharf_conn *c)
{
    char line[96];
    size_t len = daytime_format((enum daytime_format)(uintptr_t)wharf_listener_data(c), line,
                                sizeof line);
    wharf_send(c, line, len);
    wharf_close(c);
}

/* Input is ignored (wharf_close already stopped on_data; this is for bytes
 * that arrived with the connection). */
static size_t daytime_on_data(wharf_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    return len;
}

WHARF_HANDLER_EXPORT = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "daytime",
    .init = daytime_init,
    .on_open = daytime_on_open,
    .on_data = daytime_on_data,
};
