/*
 * config.h - the server's JSON configuration, loaded and validated completely
 * before anything starts.
 *
 * config_load_file() parses one JSON file (jansson), checks every key against
 * the schema, fills in defaults and returns a struct config, or writes one
 * error line that names the file, the JSON path and what was expected, e.g.
 *   config/x.json: listeners[1].port: expected an integer 0..65535, got "http"
 * Syntax errors give line and column.  Unknown keys are errors.  The keys,
 * their ranges and defaults are one table, in config_schema.c; docs/config.md
 * documents them (tests/check_docs.sh checks that it agrees).
 */
#ifndef WHARF_CONFIG_H
#define WHARF_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_protocol { CONFIG_TCP = 0, CONFIG_UDP };
/* Who accepts a TCP listener's connections ("accept"). */
enum config_accept {
    CONFIG_ACCEPT_ACCEPTOR = 0, /* the acceptor thread, handing them to the workers */
    CONFIG_ACCEPT_WORKERS,      /* each worker, on a SO_REUSEPORT socket of its own */
};

/*
 * The loaded config.  Each field holds the value of the config key named in
 * its comment; the keys' types, ranges and defaults are written once, in
 * the schema table (config_schema.c), and documented in docs/config.md.
 */
struct config_timeouts {  /* "timeouts"; 0 turns a timer off */
    uint64_t idle_ms;
    uint64_t write_ms;
    uint64_t lifetime_ms;
    uint64_t handshake_ms;  /* first byte within */
    uint64_t read_idle_ms;  /* nothing received for this long */
    uint64_t write_idle_ms; /* nothing sent for this long */
    uint64_t min_rate;      /* bytes/s while a message is in progress */
    uint64_t min_rate_window_ms; /* the window min_rate is measured over */
};

struct cidr;

/* "tls.verify": what a client certificate must be. */
enum config_tls_verify {
    CONFIG_VERIFY_NONE = 0,     /* not asked for */
    CONFIG_VERIFY_OPTIONAL,     /* asked for; one sent must verify against "ca" */
    CONFIG_VERIFY_REQUIRE,      /* required, and must verify */
};

/* One extra certificate of "tls.sni", picked by the client's server name. */
struct config_tls_sni {
    char *cert;                 /* "cert": PEM chain file, absolute */
    char *key;                  /* "key": PEM private key file, absolute */
    char *ocsp_file;            /* "ocsp_file": DER OCSP response to staple, or NULL */
};

/* "tls" (TCP): absent means plain TCP (on is false, every other field a
 * default).  Files are absolute paths (relative ones start at the config
 * file's directory).  tls_ctx.c makes OpenSSL contexts of it. */
struct config_tls {
    bool on;                    /* the listener has a "tls" object */
    char *cert;                 /* "cert": the certificate chain (PEM), leaf first */
    char *key;                  /* "key": its private key (PEM) */
    char *ca;                   /* "ca": CA certificates for client certificates */
    char *ocsp_file;            /* "ocsp_file": DER OCSP response for cert, or NULL */
    int verify;                 /* "verify": enum config_tls_verify */
    int min_version, max_version; /* "min_version"/"max_version": 12 or 13 (TLS 1.2, 1.3) */
    char *ciphers;              /* "ciphers": OpenSSL cipher list (TLS 1.2) */
    char *ciphersuites;         /* "ciphersuites": TLS 1.3 suites */
    json_t *alpn_json;          /* "alpn": protocol names, most preferred first */
    bool session_tickets;       /* "session_tickets" */
    int session_cache;          /* "session_cache": sessions kept; 0 = off */
    uint64_t session_timeout_ms; /* "session_timeout_ms": lifetime of a session */
    struct config_tls_sni *sni; /* "sni": extra certificates */
    size_t nsni;
};

struct config_listener {
    char *name;                 /* "name" (given or "<protocol>-<index>") */
    char path[32];              /* JSON path of this listener, "listeners[3]" */
    enum config_protocol protocol; /* "protocol" */
    char *address;              /* "address": IPv4, IPv6 or host name */
    int port;                   /* "port" (0 = ephemeral) */
    int backlog;                /* "backlog" */
    bool ipv6_only;             /* "ipv6_only" */
    bool reuse_address;         /* "reuse_address" */
    bool reuse_port;            /* "reuse_port" */
    bool tcp_nodelay;           /* "tcp_nodelay" */
    bool keepalive;             /* "keepalive" */
    bool defer_accept;          /* "defer_accept" (TCP): accept a connection only
                                   once its first bytes arrived */
    int accept_mode;            /* "accept" (TCP): enum config_accept */
    struct cidr *deny;          /* "deny": sources refused (TCP closed at once,
                                   UDP dropped) */
    size_t ndeny;
    json_t *deny_json, *proxy_trusted_json; /* the lists as given (or defaulted), for -T */
    uint64_t rate_limit;        /* "rate_limit" (UDP): datagrams/s per source; 0 = off */
    uint64_t conn_rate_limit;   /* "conn_rate_limit" (TCP): connections/s per source;
                                   0 = off */
    uint64_t conn_rate_burst;   /* "conn_rate_burst": bucket size; 0 = conn_rate_limit */
    size_t conn_rate_table;     /* "conn_rate_table": sources tracked (rate_table.h) */
    char *access_log_file;      /* "access_log_file" (TCP): absolute file name, or NULL */
    char *access_log_format;    /* "access_log_format": $variables (access_log.h) */
    unsigned proxy_protocol;    /* "proxy_protocol": 0 (off) or PROXY_V1 / PROXY_V2
                                   bits (proxy.h) */
    struct cidr *proxy_trusted; /* "proxy_trusted": who may send a PROXY header */
    size_t nproxy_trusted;
    int access_log;             /* "access_log": -1 (off) or the log level of the
                                   connection log line */
    bool loop_guard;            /* "loop_guard" (UDP): drop datagrams from this
                                   server's own UDP ports (and refuse sends to them) */
    bool allow_privileged_ports; /* "allow_privileged_ports" (UDP): sends to ports
                                    below 1024 allowed */
    bool allow_broadcast;       /* "allow_broadcast" (UDP): sends to broadcast and
                                   multicast addresses allowed */
    bool udp_gso;               /* "udp_gso" (UDP): runs of equal-size datagrams to
                                   one peer leave as one UDP_SEGMENT send */
    bool udp_gro;               /* "udp_gro" (UDP): UDP_GRO on the listener's
                                   sockets, coalesced receives split */
    int recv_buffer;            /* "recv_buffer" bytes; 0 = system default */
    int send_buffer;            /* "send_buffer" bytes; 0 = system default */
    struct config_timeouts timeouts;
    /* "buffers", with 0 < low_watermark < high_watermark <= max_output */
    size_t high_watermark;      /* stop reading above this much output */
    size_t low_watermark;       /* resume (and on_drain) below this */
    size_t max_input;           /* kept unconsumed input cap */
    size_t max_output;          /* hard cap on queued output */
    struct config_tls tls;      /* "tls" (TCP) */
    char *handler;              /* "handler": module name or path */
    json_t *options;            /* "options": object (owned reference) */
};

struct config {
    char *file;                 /* the file name as given (for messages) */
    int workers;                /* "workers" (default: online CPUs) */
    int queue_depth;            /* "queue_depth" */
    int post_queue;             /* "post_queue": soft capacity of each worker's
                                   queue of handler posts (hard: 4x) */
    int max_connections;        /* "max_connections" */
    int max_connections_per_source; /* "max_connections_per_source"; 0 = no limit */
    uint64_t evict_idle_ms;     /* "evict_idle_ms": at max_connections, a connection
                                   with no progress for this long may be closed
                                   (reason evicted) to admit a new one; 0 = never */
    char *module_path;          /* "module_path": colon-separated dirs, each made
                                   absolute (see config_load_file), or NULL */
    int log_level;              /* "log" as an enum wharf_log_level */
    size_t output_budget;       /* "output_budget": bytes of output buffered by all
                                   connections before the biggest holders are
                                   closed (0 = no budget) */
    int work_threads;           /* "work_threads": threads for handlers' blocking
                                   work (started on first use) */
    bool insecure_modules;      /* "insecure_modules": as root, load modules others
                                   could have written (warning) */
    bool debug;                 /* "debug": catch handler API misuse (calls from
                                   the wrong thread) */
    char *user;                 /* "user": run as this user once bound, or NULL */
    char *group;                /* "group": and this group (NULL: the user's) */
    char *log_file;             /* "log_file": absolute file name, or NULL for stderr */
    int log_format;             /* "log_format": 0 text, 1 json */
    int syslog_facility;        /* "syslog_facility": -1 (off) or a LOG_* facility */
    char *syslog_socket;        /* "syslog_socket": the syslog daemon's socket */
    uint64_t shutdown_timeout_ms; /* "shutdown_timeout_ms" */
    int acceptor_nice;          /* "acceptor_nice": added to the acceptor thread's
                                   nice value */
    int io;                     /* "io": the loops' backend, an enum loop_io
                                   (0 auto, 1 epoll, 2 io_uring) */
    char *admin_socket;         /* "admin.socket": absolute, or NULL (none) */
    char *admin_mode;           /* "admin.mode": octal permission bits, "0600" */
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

/* The public configuration object (wharf_server.h) validated into a new
 * struct config.  Returns 0 or -1 with one line in err. */
struct wharf_config;
int config_from_public(const struct wharf_config *wc, struct config **out, char *err,
                       size_t errlen);

#endif
