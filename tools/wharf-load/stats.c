/* stats.c - the names of wharf-load's counters (as reports print them) and which counter
 * a socket error belongs to. */
#include "stats.h"

#include <errno.h>

const char *const stat_names[ST__COUNT] = {
    [ST_SENT] = "sent",
    [ST_RECEIVED] = "received",
    [ST_MEASURED] = "measured",
    [ST_BYTES_SENT] = "bytes_sent",
    [ST_BYTES_RECEIVED] = "bytes_received",
    [ST_CONNECTS] = "connects",
    [ST_CHURN_CLOSES] = "churn_closes",
    [ST_BACKLOG_END] = "backlog_at_end",
    [ST_LOST] = "lost",
    [ST_LATE] = "late",
    [ST_TLS_HANDSHAKES] = "tls_handshakes",
    [ST_TLS_RESUMED] = "tls_resumed",
    [ST_RECONNECTS] = "reconnects",
    [ST_RESENT] = "resent",
    [ST_DEFERRED] = "deferred",
    [ST_SKIPPED] = "skipped",
    [ST_SENDS] = "sends",
    [ST_HITS] = "hits",
    [ST_MISSES] = "misses",
    [ST_STATUS_2XX] = "status_2xx",
    [ST_STATUS_3XX] = "status_3xx",
    [ST_STATUS_4XX] = "status_4xx",
    [ST_STATUS_5XX] = "status_5xx",
    [ST_SCRIPT_STOPS] = "script_stops",
    [ST_BAD_VALUE] = "bad_value",
    [ST_MISMATCH] = "mismatch",
    [ST_SHORT] = "short",
    [ST_REORDER] = "reorder",
    [ST_DUPLICATE] = "duplicate",
    [ST_BAD_REPLY] = "bad_reply",
    [ST_TOO_LONG] = "too_long",
    [ST_UNSOLICITED] = "unsolicited",
    [ST_UNANSWERED] = "unanswered",
    [ST_REFUSED] = "refused",
    [ST_RESET] = "reset",
    [ST_PEER_CLOSED] = "peer_closed",
    [ST_EOF_MID_REPLY] = "eof_mid_reply",
    [ST_ADDRNOTAVAIL] = "addrnotavail",
    [ST_CONNECT_TIMEOUT] = "connect_timeout",
    [ST_SOCKET_ERROR] = "socket_error",
    [ST_TLS_VERIFY] = "tls_verify",
    [ST_TLS_HANDSHAKE] = "tls_handshake",
    [ST_TLS_HANDSHAKE_TIMEOUT] = "tls_handshake_timeout",
    [ST_TLS_ERROR] = "tls_error",
    [ST_STREAM_RESET] = "stream_reset",
    [ST_H2_ERROR] = "h2_error",
    [ST_SCRIPT_ERROR] = "script_error",
    [ST_SCRIPT_REJECTED] = "script_rejected",
    [ST_REQUEST_TOO_LONG] = "request_too_long",
};

enum stat_id stat_errno(int err)
{
    switch (err) {
    case ECONNREFUSED: return ST_REFUSED;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED: return ST_RESET;
    case EADDRNOTAVAIL: return ST_ADDRNOTAVAIL;
    case ETIMEDOUT: return ST_CONNECT_TIMEOUT;
    default: return ST_SOCKET_ERROR;
    }
}
