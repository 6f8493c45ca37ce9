/*
 * config.h - the server's JSON configuration, loaded and validated completely
 * before anything starts.
 *
 * config_load_file() parses one JSON file (jansson), checks every key against
 * the schema, fills in defaults and returns a struct config, or writes one
 * error line that names the file, the JSON path and what was expected, e.g.
 *   config/x.json: listeners[1].port: expected an integer 0..65535, got "http"
 * Syntax errors give line and column.  Unknown keys are errors.
 * See docs/config.md for every key and its default.
 */
#ifndef WHARF_CONFIG_H
#define WHARF_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_protocol { CONFIG_TCP = 0, CONFIG_UDP };

/* Each 0..86400000 (24 hours). */
struct config_timeouts {
    uint64_t idle_ms;     /* 0 = off; default 60000 */
    uint64_t write_ms;    /* 0 = off; default 30000 */
    uint64_t lifetime_ms; /* 0 = off; default 0 */
    uint64_t handshake_ms; /* first byte within; 0 = off; default 0 */
    uint64_t read_idle_ms;  /* nothing received for this long; 0 = off; default 0 */
    uint64_t write_idle_ms; /* nothing sent for this long; 0 = off; default 0 */
    uint64_t min_rate;    /* bytes/s while a message is in progress; 0 = off; default 0 */
    uint64_t min_rate_window_ms; /* the window it is measured over; default 10000 */
};

struct cidr;

struct config_listener {
    char *name;                 /* "name"; default "<protocol>-<index>" */
    char path[32];              /* JSON path of this listener, "listeners[3]" */
    enum config_protocol protocol; /* "protocol": "tcp" (default) | "udp" */
    char *address;              /* "address": IPv4, IPv6 or host name; default "127.0.0.1" */
    int port;                   /* "port": 0..65535, required (0 = ephemeral) */
    int backlog;                /* "backlog": 1..65535; default 511 */
    bool ipv6_only;             /* "ipv6_only"; default false ("::" is dual stack) */
    bool reuse_address;         /* "reuse_address"; default true */
    bool reuse_port;            /* "reuse_port"; default false (UDP always uses it per worker) */
    bool tcp_nodelay;           /* "tcp_nodelay"; default true */
    bool keepalive;             /* "keepalive"; default false */
    bool defer_accept;          /* "defer_accept" (TCP); default false: accept a
                                   connection only once its first bytes arrived */
    struct cidr *deny;          /* "deny": addresses/CIDR ranges refused (TCP closed at
                                   once, UDP dropped); default none */
    size_t ndeny;
    json_t *deny_json, *proxy_trusted_json; /* the lists as given (or defaulted), for -T */
    uint64_t rate_limit;        /* "rate_limit" (UDP): datagrams/s per source; 0 = off */
    unsigned proxy_protocol;    /* "proxy_protocol": "off" (0, default), "v1", "v2",
                                   "any": PROXY_V1 / PROXY_V2 bits (proxy.h) */
    struct cidr *proxy_trusted; /* "proxy_trusted": CIDR strings; default 127.0.0.0/8
                                   and ::1: who may send a PROXY header */
    size_t nproxy_trusted;
    int access_log;             /* "access_log": "off" (-1, default), "info", "debug"
                                   (the log level of the connection log line) */
    bool loop_guard;            /* "loop_guard" (UDP); default true: drop datagrams
                                   from this server's own UDP ports */
    int recv_buffer;            /* "recv_buffer" bytes, 0..1 GiB; 0 = system default */
    int send_buffer;            /* "send_buffer" bytes, 0..1 GiB; 0 = system default */
    struct config_timeouts timeouts; /* "timeouts": {idle_ms, write_ms, lifetime_ms} */
    /* "buffers": {high_watermark, low_watermark, max_input, max_output}, each
     * at most 1 GiB, with 0 < low_watermark < high_watermark <= max_output
     * and max_input >= 1024 */
    size_t high_watermark;      /* default 262144: stop reading above this much output */
    size_t low_watermark;       /* default 65536: resume (and on_drain) below this */
    size_t max_input;           /* default 1048576: kept unconsumed input cap */
    size_t max_output;          /* default 16777216: hard cap on queued output */
    char *handler;              /* "handler": module name or path, required */
    json_t *options;            /* "options": object (owned reference; {} if absent) */
};

struct config {
    char *file;                 /* the file name as given (for messages) */
    int workers;                /* "workers": 1..1024; default online CPUs (1..1024) */
    int queue_depth;            /* "queue_depth": 1..1000000; default 1024 */
    int post_queue;             /* "post_queue": 1..1000000; default 4096: soft capacity
                                   of each worker's queue of handler posts (hard: 4x) */
    int max_connections;        /* "max_connections": 1..10000000; default 10000 */
    int max_connections_per_source; /* "max_connections_per_source": 0..10000000;
                                     * default 0 = no limit */
    char *module_path;          /* "module_path": colon-separated dirs, each made
                                   absolute (see config_load_file), or NULL */
    int log_level;              /* "log": "error"|"warn"|"info"|"debug" as an enum
                                   wharf_log_level; default WHARF_LOG_INFO */
    size_t output_budget;       /* "output_budget": bytes, 0..1 TiB; default 268435456:
                                   output buffered by all connections before the
                                   biggest holders are closed (0 = no budget) */
    int work_threads;           /* "work_threads": 1..1024; default 4: threads for
                                   handlers' blocking work (started on first use) */
    bool insecure_modules;      /* "insecure_modules": default false: as root, load
                                   modules others could have written (warning) */
    bool debug;                 /* "debug": default false: catch handler API misuse
                                   (calls from the wrong thread) */
    char *user;                 /* "user": run as this user once bound, or NULL */
    char *group;                /* "group": and this group (default: the user's) */
    char *log_file;             /* "log_file": a file name (relative: to the config
                                   file's directory), or NULL for stderr */
    uint64_t shutdown_timeout_ms; /* "shutdown_timeout_ms": 0..3600000; default 5000 */
    int acceptor_nice;          /* "acceptor_nice": 0..19; default 5: added to the
                                   acceptor thread's nice value */
    struct config_listener *listeners; /* "listeners": non-empty array */
    size_t nlisteners;
};

/*
 * Loads and validates `file`.  Returns 0 and a new config in *out (free with
 * config_free), or -1 with one line in err (errlen bytes; err may be NULL) and
 * *out set to NULL.  Each relative module_path element is taken relative to
 * the directory of the config file and stored as an absolute path.
 */
int config_load_file(const char *file, struct config **out, char *err, size_t errlen);

/* Same for NUL-terminated JSON text already in memory; `name` is used in
 * messages (and as cfg->file) and relative module_path elements start at the
 * current directory. */
int config_load_string(const char *text, const char *name, struct config **out,
                       char *err, size_t errlen);

/* Frees a config and everything it owns.  NULL is fine. */
void config_free(struct config *cfg);

/* The effective configuration (every default filled in) as a JSON object
 * with config file keys; NULL on ENOMEM. */
json_t *config_to_json(const struct config *cfg);

/* The public configuration object (wharf_server.h) validated into a new
 * struct config.  Returns 0 or -1 with one line in err. */
struct wharf_config;
int config_from_public(const struct wharf_config *wc, struct config **out, char *err,
                       size_t errlen);

#endif
