/* opts.h - the configuration of a wharf-load run (struct load_config, its limits and
 * defaults) and the command-line parsing and validation that fills it (opts.c). */
#ifndef WLOAD_OPTS_H
#define WLOAD_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "h2.h"
#include "msg.h"
#include "script.h"
#include "targets.h"
#include "tmpl.h"
#include "tls.h"

#define LOAD_VERSION "2.0"
#define LOAD_MAX_THREADS 256
#define LOAD_MAX_CONNECTIONS 1000000
#define LOAD_MAX_PIPELINE 4096 /* messages in flight per connection (and open-loop default) */
#define LOAD_DEFAULT_TICK_NS 1000000u /* open loop: --tick */
#define LOAD_MAX_TICK_NS 100000000u    /* --tick at most 100 ms */
#define LOAD_MAX_UDP_SIZE 65507u
#define LOAD_MAX_SOURCES 64 /* --source addresses */

#define LOAD_MAX_METHOD 24 /* --method: bytes of the token */

/* The method and body of --proto http's requests (HTTP/1.1 and HTTP/2 alike). */
struct load_http {
    const char *method;    /* --method, else POST with --data, else GET */
    const char *data_file; /* --data FILE (NULL: no body) */
    uint8_t *body;         /* its bytes, at most TMPL_MAX_BODY (owned: load_config_free) */
    size_t body_len;
};

/* A local address connections are bound to (--source). */
struct load_source {
    struct sockaddr_storage addr; /* port 0 */
    socklen_t addrlen;
    char text[48]; /* numeric, as printed in reports */
};

struct load_config {
    /* target */
    char target[300]; /* as given: HOST:PORT */
    char host[256];   /* numeric address it resolved to */
    unsigned port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool udp;
    bool udp_offload; /* --udp-offload: GSO sends and GRO receives (udp.c) */
    /* every target (the fields above are the first one's): several with weights, the
     * connections spread over them (targets.h) */
    struct load_target targets[LOAD_MAX_TARGETS];
    unsigned ntargets;
    /* local addresses, taken in turn by each new connection (UDP: flow); 0 = any */
    struct load_source sources[LOAD_MAX_SOURCES];
    unsigned nsources;

    /* what is sent: echo messages (tmpls NULL) or request templates with reply framing */
    struct tmpl_set *tmpls; /* owned: load_config_free releases it */
    /* --preload (cache workloads): the set-only mix that fills the key space first (owned),
     * and what the preload run did, for the report (cli.c fills them in) */
    struct tmpl_set *preload_tmpls;
    bool preloaded;
    uint64_t preload_sets, preload_errors, preload_ns;
    uint32_t max_reply;     /* templates: longest reply accepted (--max-reply) */

    /* TLS (TCP only): the --tls options, and the context made from them when --tls is on
     * (owned: load_config_free releases it) */
    struct tls_opts tls;
    struct tls_client *tls_client;

    /* --proto http (HTTP/1.1 and --h2): the method and body of every request */
    struct load_http http;
    /* HTTP/2 (--h2, h2.h): the request's path and headers */
    struct h2_opts h2;

    /* shape of the load */
    unsigned threads, connections, pipeline;
    bool pipeline_set;
    struct msg_params msg; /* seed and size range */
    double rate;           /* total messages/s; 0 = closed loop */
    double ramp;           /* new connections/s at start; 0 = all at once */
    uint64_t churn;        /* exchanges per connection before closing it; 0 = keep */
    uint64_t count;        /* total measured messages; 0 = run for duration */
    uint64_t duration_ns;  /* measurement period (cap on the run with --count) */
    bool duration_set;
    uint64_t warmup_ns, drain_ns, connect_timeout_ns, udp_timeout_ns;

    /* output */
    bool json, percentiles, quiet;
    int progress; /* -1 auto (stderr is a terminal), 0 off, 1 on */
    const char *hist_out, *plot;

    /* thresholds */
    uint64_t max_p99_ns; /* 0 = none */
    double min_rate;     /* 0 = none */
    uint64_t max_errors;
    double max_loss_pct;

    /* time series and runs on several machines */
    uint64_t interval_ns;   /* time series interval (--interval) */
    uint64_t start_at_ns;   /* --start-at: wall-clock start (CLOCK_REALTIME ns); 0 = now */

    /* open-loop ticks and more outputs (--tick, --batch, --percentiles=FILE, --hlog, --csv) */
    uint64_t tick_ns;            /* open loop: a thread wakes at most once per tick */
    unsigned batch;              /* open loop: consecutive messages of a connection (--batch;
                                  * 0 = auto until opts_parse sets it, opts_auto_batch) */
    bool batch_auto;             /* the batch was chosen by opts_auto_batch */
    const char *percentiles_out; /* the spectrum goes there (NULL: stderr) */
    const char *hlog;            /* HdrHistogram interval log (.hlog) */
    const char *csv;             /* the time series as CSV */

    /* --script (script.h): the file, its --script-arg values, --max-request, and the run's
     * Lua states (owned: load_config_free releases them) */
    const char *script;
    const char *script_args[SCRIPT_MAX_ARGS];
    unsigned nscript_args;
    uint32_t max_request;
    struct script_set *scripts;

    /* --merge FILE...: report on histogram files instead of running */
    bool merge;
    char **files;
    int nfiles;
};

/* Defaults for every option (target unset). */
void load_config_defaults(struct load_config *cfg);
/* Releases what opts_parse allocated in cfg (templates). */
void load_config_free(struct load_config *cfg);


/* Parses argv into cfg (which opts_parse first resets to the defaults). Every option is
 * checked and the target resolved. Returns 0 to go on, 1 when --help or --version was
 * printed on `out` (exit 0), -1 on a bad argument with a message naming the option and what
 * was expected in err (exit 2). cfg->files points into argv. */
int opts_parse(struct load_config *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen);

void opts_usage(FILE *f);

/* Parses a duration ("1.5", "250ms", "2us", "1m"; a bare number is seconds) into ns.
 * Returns 0 or -1. Exposed for tests. */
int opts_parse_time(const char *s, uint64_t *ns);

/* --batch auto: the messages one connection has due in two ticks (rate / connections *
 * 2 * tick), rounded up, at least 1 and at most --pipeline. With it a connection's turns
 * come about two ticks apart, so it sends about once per two ticks however high the rate
 * (a connection sends at most once per tick anyway); below one message per connection
 * per two ticks it is 1 and every connection's messages stay evenly spaced. */
unsigned opts_auto_batch(const struct load_config *cfg);

#endif
