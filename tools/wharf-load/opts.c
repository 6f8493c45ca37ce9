/* opts.c - wharf-load's command line: getopt_long parsing, value parsers with units, the
 * checks that tie options together, and resolution of the HOST:PORT target. Every error
 * names the option and says what was expected. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "opts.h"
#include "h2.h"
#include "hist.h"
#include "thread.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    O_RAMP = 256,
    O_CHURN,
    O_DRAIN,
    O_CONNECT_TIMEOUT,
    O_UDP_TIMEOUT,
    O_UDP_OFFLOAD,
    O_SEED,
    O_PLOT,
    O_MAX_P99,
    O_MIN_RATE,
    O_MAX_ERRORS,
    O_MAX_LOSS,
    O_PROGRESS,
    O_NO_PROGRESS,
    O_PROTO,
    O_REQUEST,
    O_REQUEST_FILE,
    O_WEIGHT,
    O_FRAME,
    O_EXPECT,
    O_KEYS,
    O_KEY_DIST,
    O_KEY_PREFIX,
    O_VALUE_SIZE,
    O_SET_RATIO,
    O_PATH,
    O_MAX_REPLY,
    O_INTERVAL,
    O_START_AT,
    O_SOURCE,
    O_TLS,
    O_TLS_VERIFY,
    O_SNI,
    O_ALPN,
    O_TLS_RESUME,
    O_HANDSHAKE_ONLY,
    O_H2,
    O_STREAMS,
    O_DATA,
    O_METHOD,
    O_HANDSHAKE_TIMEOUT,
    /* open-loop ticks and outputs */
    O_TICK,
    O_BATCH,
    O_HLOG,
    O_CSV,
    /* cache workloads */
    O_KEY_PATTERN,
    O_RATIO,
    O_MGET,
    O_PRELOAD,
    /* templates */
    O_NAME,
    /* scripting */
    O_SCRIPT,
    O_SCRIPT_ARG,
    O_MAX_REQUEST,
};

void load_config_defaults(struct load_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = 0; /* 0 = min(connections, online CPUs) */
    cfg->connections = 1;
    cfg->pipeline = 1;
    cfg->msg.seed = 1;
    cfg->msg.size_min = cfg->msg.size_max = 64;
    cfg->duration_ns = 10ull * 1000000000u;
    cfg->drain_ns = 1000000000u;
    cfg->connect_timeout_ns = 2ull * 1000000000u;
    cfg->udp_timeout_ns = 200000000u;
    cfg->progress = -1;
    cfg->max_reply = FRAME_DEFAULT_MAX_REPLY;
    cfg->interval_ns = 1000000000u;
    cfg->tls.handshake_timeout_ns = 2ull * 1000000000u;
    cfg->tick_ns = LOAD_DEFAULT_TICK_NS;
    cfg->batch = 0; /* auto */
    cfg->max_request = SCRIPT_DEFAULT_MAX_REQUEST;
}

void load_config_free(struct load_config *cfg)
{
    if (cfg->tmpls) {
        tmpl_set_free(cfg->tmpls);
        free(cfg->tmpls);
        cfg->tmpls = NULL;
    }
    if (cfg->preload_tmpls) {
        tmpl_set_free(cfg->preload_tmpls);
        free(cfg->preload_tmpls);
        cfg->preload_tmpls = NULL;
    }
    tls_client_free(cfg->tls_client);
    cfg->tls_client = NULL;
    free(cfg->http.body);
    cfg->http.body = NULL;
    script_set_free(cfg->scripts);
    cfg->scripts = NULL;
}

static const struct option long_opts[] = {
    {"threads", required_argument, NULL, 't'},
    {"connections", required_argument, NULL, 'c'},
    {"pipeline", required_argument, NULL, 'p'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'd'},
    {"count", required_argument, NULL, 'n'},
    {"warmup", required_argument, NULL, 'w'},
    {"rate", required_argument, NULL, 'r'},
    {"ramp", required_argument, NULL, O_RAMP},
    {"churn", required_argument, NULL, O_CHURN},
    {"udp", no_argument, NULL, 'u'},
    {"drain", required_argument, NULL, O_DRAIN},
    {"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
    {"udp-timeout", required_argument, NULL, O_UDP_TIMEOUT},
    {"udp-offload", no_argument, NULL, O_UDP_OFFLOAD},
    {"source", required_argument, NULL, O_SOURCE},
    {"seed", required_argument, NULL, O_SEED},
    {"tls", no_argument, NULL, O_TLS},
    {"tls-verify", optional_argument, NULL, O_TLS_VERIFY},
    {"sni", required_argument, NULL, O_SNI},
    {"alpn", required_argument, NULL, O_ALPN},
    {"tls-resume", required_argument, NULL, O_TLS_RESUME},
    {"handshake-only", no_argument, NULL, O_HANDSHAKE_ONLY},
    {"h2", no_argument, NULL, O_H2},
    {"streams", required_argument, NULL, O_STREAMS},
    {"data", required_argument, NULL, O_DATA},
    {"method", required_argument, NULL, O_METHOD},
    {"handshake-timeout", required_argument, NULL, O_HANDSHAKE_TIMEOUT},
    {"json", no_argument, NULL, 'j'},
    {"percentiles", optional_argument, NULL, 'P'},
    {"hist-out", required_argument, NULL, 'o'},
    {"plot", required_argument, NULL, O_PLOT},
    {"max-p99", required_argument, NULL, O_MAX_P99},
    {"min-rate", required_argument, NULL, O_MIN_RATE},
    {"max-errors", required_argument, NULL, O_MAX_ERRORS},
    {"max-loss", required_argument, NULL, O_MAX_LOSS},
    {"progress", no_argument, NULL, O_PROGRESS},
    {"no-progress", no_argument, NULL, O_NO_PROGRESS},
    {"proto", required_argument, NULL, O_PROTO},
    {"request", required_argument, NULL, O_REQUEST},
    {"request-file", required_argument, NULL, O_REQUEST_FILE},
    {"weight", required_argument, NULL, O_WEIGHT},
    {"frame", required_argument, NULL, O_FRAME},
    {"expect", required_argument, NULL, O_EXPECT},
    {"keys", required_argument, NULL, O_KEYS},
    {"key-dist", required_argument, NULL, O_KEY_DIST},
    {"key-prefix", required_argument, NULL, O_KEY_PREFIX},
    {"value-size", required_argument, NULL, O_VALUE_SIZE},
    {"set-ratio", required_argument, NULL, O_SET_RATIO},
    {"path", required_argument, NULL, O_PATH},
    {"max-reply", required_argument, NULL, O_MAX_REPLY},
    {"interval", required_argument, NULL, O_INTERVAL},
    {"start-at", required_argument, NULL, O_START_AT},
    {"tick", required_argument, NULL, O_TICK},
    {"batch", required_argument, NULL, O_BATCH},
    {"hlog", required_argument, NULL, O_HLOG},
    {"csv", required_argument, NULL, O_CSV},
    {"key-pattern", required_argument, NULL, O_KEY_PATTERN},
    {"ratio", required_argument, NULL, O_RATIO},
    {"mget", required_argument, NULL, O_MGET},
    {"preload", no_argument, NULL, O_PRELOAD},
    {"name", required_argument, NULL, O_NAME},
    {"script", required_argument, NULL, O_SCRIPT},
    {"script-arg", required_argument, NULL, O_SCRIPT_ARG},
    {"max-request", required_argument, NULL, O_MAX_REQUEST},
    {"header", required_argument, NULL, 'H'},
    {"quiet", no_argument, NULL, 'q'},
    {"merge", no_argument, NULL, 'm'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

void opts_usage(FILE *f)
{
    fputs("usage: wharf-load [OPTIONS] HOST:PORT[,weight=N]...  (IPv6: [ADDR]:PORT; or http[s]:// URLs)\n"
          "       wharf-load --merge [OPTIONS] FILE...     (report on saved histograms)\n"
          "\n"
          "Load generator for request/response servers: echo (TCP, UDP; every echo verified\n"
          "byte for byte), request templates with reply framing and checks, memcache, redis, http.\n"
          "\n"
          "Load:\n"
          "  -u, --udp                 UDP datagrams instead of TCP\n"
          "  -c, --connections N       connections (UDP: flows) (default 1)\n"
          "  -t, --threads N           threads (default: min(connections, CPUs))\n"
          "  -p, --pipeline N          messages in flight per connection (default 1;\n"
          "                            open loop: 4096, the maximum)\n"
          "  -s, --size N|MIN-MAX      message bytes, header included, >= 40 (default 64)\n"
          "  -r, --rate N              open loop at N messages/s in total (k, M suffixes);\n"
          "                            latency is measured from each message's due time\n"
          "  -d, --duration T          measurement period (default 10s; with --count: a cap,\n"
          "                            default 60s). Times: 1.5, 500ms, 20us, 1m (bare = s)\n"
          "  -n, --count N             stop after N measured messages in total\n"
          "  -w, --warmup T            run this long first, excluded from results (default 0)\n"
          "      --drain T             wait this long for echoes still in flight (default 1s)\n"
          "      --ramp N              open at most N connections/s at start (default: all)\n"
          "      --tick T              open loop: send what fell due once per tick (default\n"
          "                            1ms; corrected latency includes up to one tick)\n"
          "      --batch N|auto        open loop: the connections take the schedule in\n"
          "                            turns of N consecutive messages, sent together\n"
          "                            when due in one tick: fewer sends, each message\n"
          "                            still timed from its own due time. auto (default):\n"
          "                            what one connection has due in two ticks, so it\n"
          "                            sends about once per two ticks at most (1, evenly\n"
          "                            spaced, while that is one message or less)\n"
          "      --churn N             close each connection after N exchanges, reconnect\n"
          "      --source ADDR[,ADDR...]\n"
          "                            bind each new connection (UDP: flow) to the next of\n"
          "                            these local addresses (numeric, at most 64): more\n"
          "                            4-tuples for heavy --churn against one server\n"
          "      --connect-timeout T   (default 2s)\n"
          "      --udp-timeout T       a datagram unanswered this long is presumed lost and\n"
          "                            frees its pipeline slot (default 200ms)\n"
          "      --udp-offload         UDP: send each batch of equal-size datagrams as one\n"
          "                            UDP_SEGMENT (GSO) send and read with UDP_GRO, as\n"
          "                            QUIC stacks do\n"
          "      --seed N              payload seed (default 1)\n"
          "\n"
          "TLS (TCP, every protocol mode; OpenSSL, TLS 1.2 and 1.3):\n"
          "      --tls                 speak TLS to the server\n"
          "      --tls-verify[=CAFILE] verify the server's certificate and name against\n"
          "                            CAFILE or the system store (default: no check)\n"
          "      --sni NAME            server name sent (default: the target's host name;\n"
          "                            '' sends none)\n"
          "      --alpn LIST           offer these protocols, e.g. h2,http/1.1\n"
          "      --tls-resume on|off   resume each slot's last session (default off)\n"
          "      --handshake-only      connect, handshake, close, again: handshakes/s\n"
          "      --handshake-timeout T a handshake not done by then fails (default 2s)\n"
          "      (--churn N: a new connection, so a new handshake, every N exchanges)\n"
          "\n"
          "Request/response protocols (TCP; replies come back in order on a connection):\n"
          "      --proto P             echo (default), memcache or redis (get/set mix of verified\n"
          "                            values) or http (GET; h2: http over HTTP/2)\n"
          "      --request TEXT        a request template (escapes \\r \\n \\xHH; placeholders\n"
          "                            {seq} {conn} {key} {value} {rand:N} {rand:MIN-MAX} {size}\n"
          "                            {ts}); repeat for a mix. The options below apply to the\n"
          "                            last template, or to all when given before the first\n"
          "      --request-file FILE   a template read from FILE, byte for byte\n"
          "      --weight W            share of this template in the mix (default 1)\n"
          "      --name NAME           the template's name in reports (default 1, 2, ...)\n"
          "      --frame SPEC          where a reply ends: delim:STR (default delim:\\n),\n"
          "                            fixed:N, len:OFF:WIDTH:be|le[:all|after|+N],\n"
          "                            line:FIELD[:EXTRA], regex:RE, memcache, http, resp\n"
          "      --expect SPEC         check each reply: literal:STR, prefix:STR, regex:RE,\n"
          "                            status:LO-HI (memcache, http, resp framing; the default\n"
          "                            of memcache and resp: status:200, errors fail)\n"
          "      --max-reply SIZE      longest reply accepted (default 1M)\n"
          "      --keys N              key space of {key} (default 10000)\n"
          "      --key-pattern P       seq, uniform (default), zipf[:S] (S default 0.99) or\n"
          "                            gauss[:MEAN,SD] (default N/2, N/6); --key-dist is the same\n"
          "      --key-prefix S        (default key:)\n"
          "      --value-size N|MIN-MAX  memcache, redis: value bytes of sets (default 100)\n"
          "      --set-ratio F         memcache, redis: share of sets, 0..1 (default 0.1)\n"
          "      --ratio SET:GET       memcache, redis: sets to gets, e.g. 1:10 (= --set-ratio 1/11)\n"
          "      --mget N              memcache, redis: keys per get, 1..100 (default 1)\n"
          "      --preload             memcache, redis: set every key once, in order, before the run\n"
          "      --path P              http: the path to ask for (default /)\n"
          "  -H, --header 'N: V'       http: a request header (repeatable; values may hold\n"
          "                            placeholders; a Host header replaces the default)\n"
          "      --data FILE           http: the bytes of FILE (at most 1 MiB) are the body of\n"
          "                            every request, with its Content-Length (also --h2)\n"
          "      --method M            http: the method (default GET, POST with --data)\n"
          "  (the target may be a URL, http[s]://HOST[:PORT][/PATH]: --proto http, that path,\n"
          "   --tls for https)\n"
          "  (several targets, TCP, at most 16: TARGET[,weight=N] ...: connections are spread\n"
          "   over them by weight, each target's counts reported)\n"
          "\n"
          "HTTP/2 (--proto http or URL targets; libnghttp2):\n"
          "      --h2                  speak HTTP/2: prior knowledge (h2c), or ALPN h2 with\n"
          "                            --tls (--proto h2 = --proto http --h2)\n"
          "      --streams N           concurrent streams per connection (h2load's -m; the\n"
          "                            same as --pipeline; default 1)\n"
          "\n"
          "Lua 5.4 scripts (TCP request/response modes; docs/wharf-load.md, Scripting):\n"
          "      --script FILE.lua     hooks setup(thread), init(args), request(conn, seq),\n"
          "                            response(...), delay(), done(summary, latency,\n"
          "                            requests) as in wrk, wrk.lookup, wrk.connect; with\n"
          "                            no --proto or --request, request() makes every request\n"
          "                            and --frame (default delim:\\n) frames the replies\n"
          "      --script-arg ARG      an argument of init(args) (repeatable)\n"
          "      --max-request SIZE    longest request a script may make (default 64k)\n"
          "\n"
          "Time series and several machines:\n"
          "      --interval T          time series interval (default 1s)\n"
          "      --start-at TIME       start at a wall-clock time: @UNIX-SECONDS, +DELAY,\n"
          "                            HH:MM:SS (today, local) or YYYY-MM-DDTHH:MM:SS[Z]\n"
          "\n"
          "Output:\n"
          "  -j, --json                JSON report on stdout, configuration included\n"
          "  -P, --percentiles[=FILE]  full percentile spectrum, on stderr or into FILE\n"
          "                            (in JSON: \"spectrum\"), and the time series table\n"
          "      --hlog FILE           HdrHistogram interval log (.hlog), one histogram\n"
          "                            per --interval\n"
          "      --csv FILE            the time series as CSV\n"
          "  -o, --hist-out FILE       save the latency histograms (for --merge)\n"
          "      --plot FILE           latency-by-percentile plot, FILE.svg or FILE.html\n"
          "      --progress, --no-progress\n"
          "                            progress line on stderr every second (default: when\n"
          "                            stderr is a terminal)\n"
          "  -q, --quiet               print only the result line\n"
          "\n"
          "Pass/fail (exit 1 when missed):\n"
          "      --max-p99 T           p99 latency (corrected) at most T\n"
          "      --min-rate N          measured rate at least N msg/s\n"
          "      --max-errors N        errors at most N (default 0)\n"
          "      --max-loss PCT        UDP loss at most PCT percent (default 0)\n"
          "\n"
          "  -h, --help, -V, --version\n"
          "Exit status: 0 pass, 1 fail, 2 bad arguments, 3 could not run.\n",
          f);
}

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* The usual complaint about a value: "OPT: expected WHAT, got 'S'". */
static int expected(char *err, size_t len, const char *opt, const char *what, const char *s)
{
    return fail(err, len, "%s: expected %s, got '%s'", opt, what, s);
}

/* A number with an optional k/K (1e3), M (1e6) or G (1e9) multiplier. */
static int parse_scaled(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !isfinite(v))
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'M')
        v *= 1e6, end++;
    else if (*end == 'G')
        v *= 1e9, end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

int opts_parse_time(const char *s, uint64_t *ns)
{
    char *end;
    double v, mult = 1e9;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0 || *s == '-')
        return -1;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1e9;
    else if (strcmp(end, "ms") == 0)
        mult = 1e6;
    else if (strcmp(end, "us") == 0)
        mult = 1e3;
    else if (strcmp(end, "ns") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60e9;
    else
        return -1;
    v *= mult;
    if (v > 1e18)
        return -1;
    *ns = (uint64_t)(v + 0.5);
    return 0;
}

static int opt_uint(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                    char *err, size_t len)
{
    uint64_t v = 0;
    double d;
    bool ok = hist_parse_u64(s, &v, NULL) == 0;

    if (!ok && parse_scaled(s, &d) == 0 && d >= 0 && d == floor(d) && d <= 1.8e19) {
        v = (uint64_t)d; /* accept 10k, 1M for big counts */
        ok = true;
    }
    if (!ok || v < min || v > max)
        return fail(err, len, "%s: expected an integer from %llu to %llu, got '%s'", opt,
                    (unsigned long long)min, (unsigned long long)max, s);
    *out = v;
    return 0;
}

static int opt_time(const char *opt, const char *s, uint64_t min_ns, uint64_t *out, char *err,
                    size_t len)
{
    if (opts_parse_time(s, out) != 0)
        return expected(err, len, opt, "a duration such as 10, 1.5s, 250ms, 20us or 2m", s);
    if (*out < min_ns)
        return fail(err, len, "%s: must be at least %.0f ms, got '%s'", opt, min_ns / 1e6, s);
    return 0;
}

#define FIELD(f) offsetof(struct load_config, f)

/* The options that take an integer or a duration, all read by opt_int(). */
enum int_kind {
    I_UNSIGNED, /* integer in [min, max] (10k, 1M accepted) into an unsigned field */
    I_U64,      /* the same into a uint64_t field */
    I_TIME,     /* duration of at least min ns into a uint64_t field (max unused: 0) */
};

static const struct int_opt {
    int code; /* getopt_long's value for the option */
    const char *name;
    enum int_kind kind;
    size_t field; /* FIELD(...) it sets */
    uint64_t min, max;
} int_opts[] = {
    {'t', "--threads", I_UNSIGNED, FIELD(threads), 1, LOAD_MAX_THREADS},
    {'c', "--connections", I_UNSIGNED, FIELD(connections), 1, LOAD_MAX_CONNECTIONS},
    {'p', "--pipeline", I_UNSIGNED, FIELD(pipeline), 1, LOAD_MAX_PIPELINE},
    {'n', "--count", I_U64, FIELD(count), 1, UINT64_MAX / 2},
    {O_CHURN, "--churn", I_U64, FIELD(churn), 1, UINT64_MAX / 2},
    {O_SEED, "--seed", I_U64, FIELD(msg.seed), 0, UINT64_MAX},
    {O_MAX_ERRORS, "--max-errors", I_U64, FIELD(max_errors), 0, UINT64_MAX},
    {'d', "--duration", I_TIME, FIELD(duration_ns), 1000000, 0},
    {'w', "--warmup", I_TIME, FIELD(warmup_ns), 0, 0},
    {O_DRAIN, "--drain", I_TIME, FIELD(drain_ns), 0, 0},
    {O_CONNECT_TIMEOUT, "--connect-timeout", I_TIME, FIELD(connect_timeout_ns), 1000000, 0},
    {O_HANDSHAKE_TIMEOUT, "--handshake-timeout", I_TIME, FIELD(tls.handshake_timeout_ns), 1000000,
     0},
    {O_UDP_TIMEOUT, "--udp-timeout", I_TIME, FIELD(udp_timeout_ns), 1000000, 0},
    {O_MAX_P99, "--max-p99", I_TIME, FIELD(max_p99_ns), 1, 0},
    {O_INTERVAL, "--interval", I_TIME, FIELD(interval_ns), 10000000, 0},
    {O_TICK, "--tick", I_TIME, FIELD(tick_ns), 1000, 0},
    {O_BATCH, "--batch", I_UNSIGNED, FIELD(batch), 1, LOAD_MAX_PIPELINE},
};

/* The options that take a real number (k, M, G accepted) from 0 to max, read by opt_real(). */
static const struct real_opt {
    int code;
    const char *name;
    size_t field;     /* FIELD(...) of a double */
    bool positive;    /* 0 itself is not accepted */
    double max;       /* largest value accepted */
    const char *what; /* what is expected, for the message */
} real_opts[] = {
    {'r', "--rate", FIELD(rate), true, 1e9,
     "messages per second above 0 and at most 1G (e.g. 50000, 50k)"},
    {O_RAMP, "--ramp", FIELD(ramp), true, 1e9, "new connections per second above 0"},
    {O_MIN_RATE, "--min-rate", FIELD(min_rate), false, HUGE_VAL, "messages per second"},
    {O_MAX_LOSS, "--max-loss", FIELD(max_loss_pct), false, 100, "a percentage from 0 to 100"},
};

static int opt_int(const struct int_opt *o, const char *s, void *field, char *err, size_t len)
{
    uint64_t v = 0; /* set by opt_uint when it succeeds (0 quiets -Wmaybe-uninitialized) */

    if (o->kind == I_TIME)
        return opt_time(o->name, s, o->min, field, err, len);
    if (opt_uint(o->name, s, o->min, o->max, &v, err, len) != 0)
        return -1;
    if (o->kind == I_UNSIGNED)
        *(unsigned *)field = (unsigned)v;
    else
        *(uint64_t *)field = v;
    return 0;
}

static int opt_real(const struct real_opt *o, const char *s, double *field, char *err, size_t len)
{
    double d;

    if (parse_scaled(s, &d) != 0 || d < 0 || (d == 0 && o->positive) || d > o->max)
        return expected(err, len, o->name, o->what, s);
    *field = d;
    return 0;
}

/* Reads the value of option `code` into cfg when it is a numeric one (int_opts, real_opts).
 * Returns 0 when done, -1 with a message in err when the value is not acceptable, 1 when
 * the option is not numeric. */
static int opt_number(int code, const char *s, struct load_config *cfg, char *err, size_t len)
{
    char *base = (char *)cfg;
    size_t i;

    for (i = 0; i < sizeof(int_opts) / sizeof(int_opts[0]); i++)
        if (int_opts[i].code == code)
            return opt_int(&int_opts[i], s, base + int_opts[i].field, err, len);
    for (i = 0; i < sizeof(real_opts) / sizeof(real_opts[0]); i++)
        if (real_opts[i].code == code)
            return opt_real(&real_opts[i], s, (double *)(base + real_opts[i].field), err, len);
    return 1;
}

/* Bytes: a number with an optional k (1024) or M (1048576). */
static int parse_bytes(const char *s, uint64_t *out)
{
    const char *end;
    uint64_t v;

    if (hist_parse_u64(s, &v, &end) != 0 || v > (1ull << 40))
        return -1;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int opt_size(const char *s, struct load_config *cfg, char *err, size_t len)
{
    char buf[64], *dash;
    uint64_t a, b;

    if (strlen(s) >= sizeof(buf))
        goto bad;
    snprintf(buf, sizeof(buf), "%s", s);
    dash = strchr(buf, '-');
    if (dash)
        *dash++ = '\0';
    if (parse_bytes(buf, &a) != 0 || (dash && parse_bytes(dash, &b) != 0))
        goto bad;
    if (!dash)
        b = a;
    if (a > b)
        return fail(err, len, "--size: minimum %llu is above maximum %llu", (unsigned long long)a,
                    (unsigned long long)b);
    if (a < MSG_HDR_LEN)
        return fail(err, len,
                    "--size: messages carry a %u-byte header, so the size must be "
                    "at least %u, got '%s'",
                    MSG_HDR_LEN, MSG_HDR_LEN, s);
    if (b > MSG_MAX_LEN)
        return fail(err, len, "--size: at most %u bytes (1M), got '%s'", MSG_MAX_LEN, s);
    cfg->msg.size_min = (uint32_t)a;
    cfg->msg.size_max = (uint32_t)b;
    return 0;
bad:
    return expected(err, len, "--size", "N or MIN-MAX in bytes (e.g. 64, 1k, 64-1500)", s);
}

/* Splits HOST:PORT / [HOST]:PORT and resolves it for the chosen protocol. */
static int resolve_target(struct load_target *tg, bool udp, const char *t, char *err, size_t len)
{
    char host[256], *colon;
    const char *port;
    struct addrinfo hints, *ai = NULL;
    uint64_t p;
    int e;

    if (strlen(t) >= sizeof(tg->target) || strlen(t) >= sizeof(host))
        return fail(err, len, "target: too long");
    snprintf(tg->target, sizeof(tg->target), "%s", t);
    if (t[0] == '[') {
        const char *close = strchr(t, ']');

        if (!close || close[1] != ':')
            return fail(err, len, "target '%s': expected [IPV6-ADDRESS]:PORT", t);
        snprintf(host, sizeof(host), "%.*s", (int)(close - t - 1), t + 1);
        port = close + 2;
    } else {
        snprintf(host, sizeof(host), "%s", t);
        colon = strrchr(host, ':');
        if (!colon || strchr(host, ':') != colon)
            return fail(err, len,
                        "target '%s': expected HOST:PORT (write IPv6 addresses as [ADDR]:PORT)", t);
        *colon = '\0';
        port = t + (colon - host) + 1;
    }
    if (hist_parse_u64(port, &p, NULL) != 0 || p < 1 || p > 65535)
        return fail(err, len, "target '%s': port must be a number from 1 to 65535", t);
    if (!host[0])
        return fail(err, len, "target '%s': missing host", t);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    e = getaddrinfo(host, port, &hints, &ai);
    if (e != 0 || !ai)
        return fail(err, len, "target '%s': cannot resolve '%s': %s", t, host, gai_strerror(e));
    memcpy(&tg->addr, ai->ai_addr, ai->ai_addrlen);
    tg->addrlen = ai->ai_addrlen;
    tg->port = (unsigned)p;
    if (ai->ai_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, tg->host,
                  sizeof(tg->host));
    else
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, tg->host,
                  sizeof(tg->host));
    freeaddrinfo(ai);
    return 0;
}

/* --source ADDR[,ADDR...]: numeric addresses appended to cfg->sources (the option may be
 * repeated); their family is checked against the target's by check_sources. */
static int opt_source(const char *a, struct load_config *cfg, char *err, size_t errlen)
{
    const char *p = a, *comma;
    char item[64];
    size_t n;

    for (;;) {
        struct load_source *src;
        struct sockaddr_in *v4;
        struct sockaddr_in6 *v6;

        comma = strchr(p, ',');
        n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 0)
            return fail(err, errlen,
                        "--source: expected numeric addresses separated by commas, got an "
                        "empty one in '%s'",
                        a);
        if (n >= sizeof(item)) /* longer than any address */
            return fail(err, errlen,
                        "--source: expected a numeric IPv4 or IPv6 address, got '%.*s'", (int)n,
                        p);
        if (cfg->nsources == LOAD_MAX_SOURCES)
            return fail(err, errlen, "--source: at most %d addresses", LOAD_MAX_SOURCES);
        memcpy(item, p, n);
        item[n] = '\0';
        src = &cfg->sources[cfg->nsources];
        v4 = (struct sockaddr_in *)&src->addr;
        v6 = (struct sockaddr_in6 *)&src->addr;
        memset(src, 0, sizeof(*src));
        if (inet_pton(AF_INET, item, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            src->addrlen = sizeof(*v4);
            inet_ntop(AF_INET, &v4->sin_addr, src->text, sizeof(src->text));
        } else if (inet_pton(AF_INET6, item, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            src->addrlen = sizeof(*v6);
            inet_ntop(AF_INET6, &v6->sin6_addr, src->text, sizeof(src->text));
        } else {
            return expected(err, errlen, "--source", "a numeric IPv4 or IPv6 address", item);
        }
        cfg->nsources++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

unsigned opts_auto_batch(const struct load_config *cfg)
{
    double per_two_ticks; /* messages one connection has due in two ticks */
    unsigned b;

    if (cfg->rate <= 0 || !cfg->connections)
        return 1;
    per_two_ticks = 2.0 * cfg->rate * (double)cfg->tick_ns / 1e9 / cfg->connections;
    b = per_two_ticks > cfg->pipeline ? cfg->pipeline : (unsigned)ceil(per_two_ticks - 1e-9);
    return b < 1 ? 1 : b;
}

/* Every --source address must be of the target's family (known once it is resolved). */
static int check_sources(const struct load_config *cfg, char *err, size_t errlen)
{
    unsigned i, k;

    for (k = 0; k < cfg->ntargets; k++)
        for (i = 0; i < cfg->nsources; i++) {
            const struct load_source *src = &cfg->sources[i];
            const struct load_target *tg = &cfg->targets[k];

            if (src->addr.ss_family != tg->addr.ss_family)
                return fail(err, errlen,
                            "--source: '%s' is an %s address but the target %s (%s) is %s: every "
                            "source must be of the target's family",
                            src->text, src->addr.ss_family == AF_INET ? "IPv4" : "IPv6",
                            tg->target, tg->host,
                            tg->addr.ss_family == AF_INET ? "IPv4" : "IPv6");
        }
    return 0;
}

/* ---- templates ------------------------------------------------------------------------------- */

/* What the template options said, in order; turned into cfg->tmpls by build_templates. */
struct req_arg {
    const char *text; /* inline text, or a file name */
    bool file;
    const char *frame, *expect; /* NULL: the defaults */
    double weight;              /* < 0: the default */
    const char *name;           /* --name; NULL: its number */
};

struct tmpl_args {
    struct req_arg r[TMPL_MAX];
    unsigned n;
    const char *frame, *expect; /* defaults (given before the first template) */
    double weight;
    const char *proto;
    uint64_t keys;
    const char *key_prefix;
    uint64_t vmin, vmax;
    double set_ratio;
    enum keys_pattern pattern;
    double kp1, kp2; /* the pattern's parameters (keys_parse) */
    uint64_t mget;
    bool preload;
    const char *headers[TMPL_MAX_HEADERS]; /* -H, in order */
    unsigned nheaders;
    bool path_set;
    const char *path;
    bool size_set, keys_set;
    bool h2;               /* --h2, --proto h2 */
    uint64_t streams;      /* --streams (0: not given) */
    const char *data_file; /* --data */
    const char *method;    /* --method */
};

static int read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    uint8_t *b;

    if (!f)
        return fail(err, errlen, "--request-file %s: %s", path, strerror(errno));
    b = malloc(TMPL_MAX_LEN + 1);
    if (!b) {
        fclose(f);
        return fail(err, errlen, "--request-file %s: out of memory", path);
    }
    n = fread(b, 1, TMPL_MAX_LEN + 1, f);
    fclose(f);
    if (n > TMPL_MAX_LEN) {
        free(b);
        return fail(err, errlen, "--request-file %s: longer than %u bytes", path, TMPL_MAX_LEN);
    }
    *out = b;
    *len = n;
    return 0;
}

/* Adds one template to the set: text (inline with escapes, or a file), framing, check. */
static int add_template(struct tmpl_set *ts, const char *name, const char *text, bool file,
                        const char *frame, const char *expect, double weight, uint32_t max_reply,
                        char *err, size_t errlen)
{
    struct tmpl *t = &ts->t[ts->n++];
    uint8_t *buf = NULL;
    size_t len = 0;
    char e2[400];
    int rc;

    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->weight = weight;
    if (file) {
        if (read_file(text, &buf, &len, err, errlen) != 0)
            return -1;
    } else {
        buf = malloc(strlen(text) + 1);
        if (!buf)
            return fail(err, errlen, "out of memory");
        len = tmpl_unescape(text, buf);
    }
    rc = tmpl_parse(t, buf, len, e2, sizeof(e2));
    free(buf);
    if (rc != 0)
        return fail(err, errlen, "%s %s: %s", file ? "--request-file" : "--request", name, e2);
    if (frame_parse(&t->frame, frame, err, errlen) != 0)
        return -1;
    t->frame.max_reply = max_reply;
    /* memcache and resp framing: an error (ERROR, SERVER_ERROR ..., -ERR ...) never passes */
    if (!expect && (t->frame.kind == FK_MEMCACHE || t->frame.kind == FK_RESP))
        expect = "status:200";
    if (expect && frame_check_parse(&t->check, expect, err, errlen) != 0)
        return -1;
    /* literal:/prefix: with placeholders: the reply expected for each request */
    if ((t->check.kind == CK_LITERAL || t->check.kind == CK_PREFIX) &&
        tmpl_has_placeholders(t->check.lit, t->check.lit_len) &&
        tmpl_set_expect(t, t->check.lit, t->check.lit_len, e2, sizeof(e2)) != 0)
        return fail(err, errlen, "--expect (template %s): %s", name, e2);
    if (t->check.kind == CK_STATUS && t->frame.kind != FK_HTTP && t->frame.kind != FK_MEMCACHE &&
        t->frame.kind != FK_RESP)
        return fail(err, errlen, "--expect status: needs --frame http, memcache or resp (template %s)",
                    name);
    return 0;
}

/* The get and set templates of a cache mode (memcache text protocol or RESP). */
static void cache_requests(const struct tmpl_set *ts, const struct tmpl_args *ta, bool redis,
                           char *get, size_t getlen, char *set, size_t setlen)
{
    size_t klen = keys_len(&ts->keys), n;
    unsigned i;

    if (!redis) {
        snprintf(set, setlen, "set {key} 0 0 {size}\\r\\n{value}\\r\\n");
        n = (size_t)snprintf(get, getlen, "get");
        for (i = 0; i < ta->mget; i++)
            n += (size_t)snprintf(get + n, getlen - n, " {key}");
        snprintf(get + n, getlen - n, "\\r\\n");
        return;
    }
    snprintf(set, setlen, "*3\\r\\n$3\\r\\nSET\\r\\n$%zu\\r\\n{key}\\r\\n${size}\\r\\n{value}\\r\\n", klen);
    if (ta->mget > 1)
        n = (size_t)snprintf(get, getlen, "*%llu\\r\\n$4\\r\\nMGET\\r\\n",
                             (unsigned long long)ta->mget + 1);
    else
        n = (size_t)snprintf(get, getlen, "*2\\r\\n$3\\r\\nGET\\r\\n");
    for (i = 0; i < ta->mget; i++)
        n += (size_t)snprintf(get + n, getlen - n, "$%zu\\r\\n{key}\\r\\n", klen);
}

/* --proto memcache and redis: sets of verifiable values and gets (of --mget keys) whose
 * replies are verified; with --preload also the set-only mix of the preload, over a seq key
 * space. */
static int build_cache(struct load_config *cfg, struct tmpl_set *ts, const struct tmpl_args *ta,
                       char *err, size_t errlen)
{
    bool redis = !strcmp(ta->proto, "redis");
    const char *frame = redis ? "resp" : "memcache";
    const char *stored = redis ? "literal:+OK\\r\\n" : "literal:STORED\\r\\n";
    char get[4096], set[256];
    struct tmpl_set *pl;
    int rc = 0;

    snprintf(ts->proto, sizeof(ts->proto), "%s", ta->proto);
    cache_requests(ts, ta, redis, get, sizeof(get), set, sizeof(set));
    if (ta->set_ratio < 1) {
        rc = add_template(ts, ta->mget > 1 ? "mget" : "get", get, false, frame, "status:200",
                          1 - ta->set_ratio, cfg->max_reply, err, errlen);
        ts->t[ts->n - 1].verify = redis ? CV_REDIS : CV_MEMCACHE;
    }
    if (rc == 0 && ta->set_ratio > 0)
        rc = add_template(ts, "set", set, false, frame, stored, ta->set_ratio, cfg->max_reply, err,
                          errlen);
    if (rc != 0 || !ta->preload)
        return rc;
    pl = cfg->preload_tmpls = calloc(1, sizeof(*pl));
    if (!pl || keys_init(&pl->keys, ta->keys, KP_SEQ, 0, 0, ta->key_prefix) != 0)
        return fail(err, errlen, "out of memory");
    pl->values = ts->values;
    snprintf(pl->proto, sizeof(pl->proto), "%s", ta->proto);
    if (add_template(pl, "set", set, false, frame, stored, 1, cfg->max_reply, err, errlen) != 0)
        return -1;
    tmpl_set_finish(pl);
    return 0;
}

/* Appends s to out (of size cap, used n) with its backslashes doubled, so that the
 * template's escape decoding gives s back. */
static size_t put_escaped(char *out, size_t cap, size_t n, const char *s)
{
    for (; *s && n + 3 < cap; s++) {
        if (*s == '\\')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n] = '\0';
    return n;
}

/* --proto http: METHOD PATH with Host (unless -H gives one), the -H headers, whose values
 * may hold placeholders ({seq}, {key}, ...), and with --data the body with its
 * Content-Length (the body's bytes are sent as they are: no placeholders); POST, PUT and
 * PATCH without a body say Content-Length: 0. One template, or with several targets one
 * per target (named t1, t2, ...; the TCP engine sends a connection's target its own), each
 * with that target's Host and path. A HEAD request's responses are framed without a body. */
static int build_http(struct load_config *cfg, struct tmpl_set *ts, const struct tmpl_args *ta,
                      char *err, size_t errlen)
{
    const struct load_http *h = &cfg->http;
    const char *m = h->method;
    char req[40000], name[LOAD_MAX_METHOD + 1], e2[200];
    unsigned i, k;
    bool host = false, clen = false;

    for (i = 0; i < ta->nheaders; i++) {
        const char *hd = ta->headers[i];

        host |= !strncasecmp(hd, "host:", 5);
        clen |= !strncasecmp(hd, "content-length:", 15);
        if (h->data_file && (!strncasecmp(hd, "content-length:", 15) ||
                             !strncasecmp(hd, "transfer-encoding:", 18)))
            return fail(err, errlen, "-H '%s': --data %s sends its own Content-Length", hd,
                        h->data_file);
    }
    for (k = 0; k < cfg->ntargets; k++) {
        const struct load_target *tg = &cfg->targets[k];
        size_t n = 0;

        /* add_template decodes escapes: line ends are written as the escape \r\n */
        n = put_escaped(req, sizeof(req), n, m);
        n = put_escaped(req, sizeof(req), n, " ");
        n = put_escaped(req, sizeof(req), n, tg->path[0] ? tg->path : ta->path);
        n = put_escaped(req, sizeof(req), n, " HTTP/1.1");
        if (!host) {
            n += (size_t)snprintf(req + n, sizeof(req) - n, "\\r\\nHost: ");
            n = put_escaped(req, sizeof(req), n, tg->target);
        }
        for (i = 0; i < ta->nheaders; i++) {
            n += (size_t)snprintf(req + n, sizeof(req) - n, "\\r\\n");
            n = put_escaped(req, sizeof(req), n, ta->headers[i]);
        }
        if (h->data_file)
            n += (size_t)snprintf(req + n, sizeof(req) - n, "\\r\\nContent-Length: %zu",
                                  h->body_len);
        else if (!clen && (!strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH")))
            n += (size_t)snprintf(req + n, sizeof(req) - n, "\\r\\nContent-Length: 0");
        snprintf(req + n, sizeof(req) - n, "\\r\\n\\r\\n");
        if (cfg->ntargets > 1)
            snprintf(name, sizeof(name), "t%u", k + 1);
        else
            snprintf(name, sizeof(name), "%s", m);
        /* the weight only shows the share of connections in reports */
        if (add_template(ts, name, req, false, "http", ta->expect ? ta->expect : "status:200-299",
                         tg->connections, cfg->max_reply, err, errlen) != 0)
            return -1;
        if (h->data_file &&
            tmpl_append_literal(&ts->t[ts->n - 1], h->body, h->body_len, e2, sizeof(e2)) != 0)
            return fail(err, errlen, "--data %s: %s", h->data_file, e2);
        ts->t[ts->n - 1].frame.http_no_body = !strcmp(m, "HEAD");
    }
    return 0;
}

/* --data FILE: reads the body of every request into h (at most TMPL_MAX_BODY bytes).
 * Returns 0, or -1 with a message naming the file and what is wrong with it. */
static int read_data(struct load_http *h, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    uint8_t *b, *shrunk;
    size_t n;
    int e;

    if (!f)
        return fail(err, errlen, "--data %s: cannot open it: %s", path, strerror(errno));
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return fail(err, errlen, "--data %s: a directory, expected a file", path);
    }
    if (!(b = malloc(TMPL_MAX_BODY + 1))) {
        fclose(f);
        return fail(err, errlen, "--data %s: out of memory", path);
    }
    n = fread(b, 1, TMPL_MAX_BODY + 1, f);
    e = ferror(f) ? errno : 0;
    fclose(f);
    if (e || n > TMPL_MAX_BODY) {
        free(b);
        if (e)
            return fail(err, errlen, "--data %s: cannot read it: %s", path, strerror(e));
        return fail(err, errlen, "--data %s: longer than %u bytes (1 MiB), the most a request "
                    "body may have", path, TMPL_MAX_BODY);
    }
    shrunk = realloc(b, n ? n : 1);
    h->body = shrunk ? shrunk : b;
    h->body_len = n;
    h->data_file = path;
    return 0;
}

/* --method and --data (HTTP/1.1 and --h2): the method of every request (an HTTP token;
 * CONNECT, which makes a tunnel, is refused) and its body, read once. Returns 0 or -1 with a
 * message in err. */
static int http_finish(struct load_config *cfg, const struct tmpl_args *ta, char *err,
                       size_t errlen)
{
    struct load_http *h = &cfg->http;
    const char *m = ta->method;
    size_t i;

    if (strcmp(ta->proto, "http")) {
        if (ta->data_file || m)
            return fail(err, errlen, "%s: goes with --proto http (or a URL target), not %s",
                        ta->data_file ? "--data" : "--method",
                        ta->n || cfg->script ? "templates or a script's own requests" : ta->proto);
        return 0;
    }
    h->method = m ? m : ta->data_file ? "POST" : "GET";
    if (m) {
        for (i = 0; m[i]; i++)
            if (!isalnum((unsigned char)m[i]) && !strchr("!#$%&'*+-.^_`|~", m[i]))
                break;
        if (m[i] || i == 0 || i > LOAD_MAX_METHOD)
            return expected(err, errlen, "--method", "an HTTP method (a token of 1 to 24 "
                            "letters, digits or !#$%&'*+-.^_`|~)", m);
        if (!strcmp(m, "CONNECT"))
            return fail(err, errlen, "--method CONNECT: makes a tunnel, not a request and its "
                        "response");
    }
    if (ta->data_file && read_data(h, ta->data_file, err, errlen) != 0)
        return -1;
    return 0;
}

static int build_templates(struct load_config *cfg, struct tmpl_args *ta, char *err, size_t errlen)
{
    struct tmpl_set *ts;
    unsigned i;
    char name[32];
    int rc = 0;

    if (!strcmp(ta->proto, "echo") && ta->n == 0) {
        if (ta->frame || ta->expect)
            return fail(err, errlen, "%s: applies to request templates (--request or --proto)",
                        ta->frame ? "--frame" : "--expect");
        return 0;
    }
    if (strcmp(ta->proto, "echo") && ta->n)
        return fail(err, errlen, "--request: cannot be combined with --proto %s", ta->proto);
    if (cfg->udp)
        return fail(err, errlen, "--udp: request templates and --proto %s work over TCP only",
                    ta->n ? "templates" : ta->proto);
    if (ta->size_set)
        return fail(err, errlen, "--size: applies to echo messages (templates set their own sizes)");
    ts = cfg->tmpls = calloc(1, sizeof(*ts));
    if (!ts)
        return fail(err, errlen, "out of memory");
    if (keys_init(&ts->keys, ta->keys, ta->pattern, ta->kp1, ta->kp2, ta->key_prefix) != 0)
        return fail(err, errlen, "out of memory");
    ts->values = (struct cache_values){(uint32_t)ta->vmin, (uint32_t)ta->vmax};
    if ((ta->mget > 1 || ta->preload) && strcmp(ta->proto, "memcache") && strcmp(ta->proto, "redis"))
        return fail(err, errlen, "%s: applies to --proto memcache or redis",
                    ta->preload ? "--preload" : "--mget");
    if (!strcmp(ta->proto, "memcache") || !strcmp(ta->proto, "redis")) {
        if (ta->frame || ta->expect)
            return fail(err, errlen, "%s: --proto %s sets its own", ta->frame ? "--frame" : "--expect",
                        ta->proto);
        rc = build_cache(cfg, ts, ta, err, errlen);
    } else if (!strcmp(ta->proto, "http")) {
        snprintf(ts->proto, sizeof(ts->proto), "http");
        if (ta->frame)
            return fail(err, errlen, "--frame: --proto http frames HTTP responses itself");
        if (strchr(ta->path, ' ') || strchr(ta->path, '\r') || strchr(ta->path, '\n') ||
            ta->path[0] != '/' || strlen(ta->path) > 400)
            return expected(err, errlen, "--path", "a path starting with / without blanks", ta->path);
        if (strchr(ta->path, '{'))
            return expected(err, errlen, "--path", "a path without braces", ta->path);
        rc = build_http(cfg, ts, ta, err, errlen);
    } else if (!strcmp(ta->proto, "echo")) {
        snprintf(ts->proto, sizeof(ts->proto), "templates");
        for (i = 0; i < ta->n && rc == 0; i++) {
            const struct req_arg *r = &ta->r[i];

            if (r->name)
                snprintf(name, sizeof(name), "%s", r->name);
            else
                snprintf(name, sizeof(name), "%u", i + 1);
            rc = add_template(ts, name, r->text, r->file,
                              r->frame ? r->frame : ta->frame ? ta->frame : "delim:\\n",
                              r->expect ? r->expect : ta->expect,
                              r->weight >= 0 ? r->weight : ta->weight >= 0 ? ta->weight : 1,
                              cfg->max_reply, err, errlen);
        }
    } else {
        return expected(err, errlen, "--proto", "echo, memcache, redis, http or h2", ta->proto);
    }
    if (rc != 0)
        return -1;
    tmpl_set_finish(ts);
    return 0;
}

/* --start-at: @UNIX[.frac], +DELAY, HH:MM:SS (today, local), YYYY-MM-DDTHH:MM:SS[.frac][Z] */
static int opt_start_at(const char *a, uint64_t *out, char *err, size_t errlen)
{
    struct timespec now;
    double secs = -1, frac = 0;
    uint64_t ns, nowns;
    char *end;
    const char *what = "@UNIX-SECONDS, +DELAY, HH:MM:SS or YYYY-MM-DDTHH:MM:SS[Z]";

    clock_gettime(CLOCK_REALTIME, &now);
    nowns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    if (a[0] == '@') {
        errno = 0;
        secs = strtod(a + 1, &end);
        if (errno || end == a + 1 || *end || secs < 0)
            return expected(err, errlen, "--start-at", what, a);
        ns = (uint64_t)(secs * 1e9);
    } else if (a[0] == '+') {
        if (opts_parse_time(a + 1, &ns) != 0)
            return expected(err, errlen, "--start-at", what, a);
        ns += nowns;
    } else {
        struct tm tm;
        const char *rest;
        time_t t;
        bool utc = false;

        memset(&tm, 0, sizeof(tm));
        rest = strptime(a, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!rest) {
            time_t tn = now.tv_sec;

            localtime_r(&tn, &tm);
            rest = strptime(a, "%H:%M:%S", &tm);
        }
        if (!rest)
            return expected(err, errlen, "--start-at", what, a);
        if (*rest == '.') {
            errno = 0;
            frac = strtod(rest, &end);
            rest = end;
        }
        if (*rest == 'Z')
            utc = true, rest++;
        if (*rest)
            return expected(err, errlen, "--start-at", what, a);
        tm.tm_isdst = -1;
        t = utc ? timegm(&tm) : mktime(&tm);
        if (t == (time_t)-1)
            return expected(err, errlen, "--start-at", what, a);
        ns = (uint64_t)t * 1000000000u + (uint64_t)(frac * 1e9);
    }
    if (ns + 1000000000u < nowns)
        return fail(err, errlen, "--start-at '%s': that time is %.1f s in the past", a,
                    (nowns - ns) / 1e9);
    if (ns > nowns + 86400ull * 1000000000u)
        return fail(err, errlen, "--start-at '%s': more than 24 hours from now", a);
    *out = ns;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);

    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* The defaults of the template options (what no option given means). */
static void tmpl_args_defaults(struct tmpl_args *ta)
{
    memset(ta, 0, sizeof(*ta));
    ta->weight = -1;
    ta->proto = "echo";
    ta->keys = 10000;
    ta->key_prefix = "key:";
    ta->vmin = ta->vmax = 100;
    ta->set_ratio = 0.1;
    ta->mget = 1;
    ta->path = "/";
}

/* --value-size N | MIN-MAX, in bytes from 1 to 1000000. */
static int opt_value_size(const char *a, struct tmpl_args *ta, char *err, size_t errlen)
{
    char buf[64], *dash;

    snprintf(buf, sizeof(buf), "%s", a);
    dash = strchr(buf, '-');
    if (dash)
        *dash++ = '\0';
    if (strlen(a) >= sizeof(buf) || parse_bytes(buf, &ta->vmin) != 0 ||
        (dash && parse_bytes(dash, &ta->vmax) != 0) || ta->vmin < 1 ||
        (!dash && (ta->vmax = ta->vmin) == 0) || ta->vmax < ta->vmin || ta->vmax > 1000000)
        return expected(err, errlen, "--value-size", "N or MIN-MAX bytes from 1 to 1000000", a);
    return 0;
}

/* --frame and --expect: validated now, so the message names the argument as given; they
 * apply to the last template given, or to all when none is given yet. */
static int opt_frame_expect(int c, const char *a, struct tmpl_args *ta, struct req_arg *last,
                            char *err, size_t errlen)
{
    struct frame_spec fs;
    struct frame_check ck;

    if (c == O_FRAME) {
        if (frame_parse(&fs, a, err, errlen) != 0)
            return -1;
        frame_spec_free(&fs);
        *(last ? &last->frame : &ta->frame) = a;
    } else {
        if (frame_check_parse(&ck, a, err, errlen) != 0)
            return -1;
        frame_check_free(&ck);
        *(last ? &last->expect : &ta->expect) = a;
    }
    return 0;
}

/* The options of one request template: --request, --request-file, --weight, --frame,
 * --expect (*last: the template the next ones apply to). Returns 0 when done, -1 with a
 * message in err, 1 when c is not one of them. */
static int opt_request(int c, const char *a, struct tmpl_args *ta, struct req_arg **last,
                       char *err, size_t errlen)
{
    double w;

    switch (c) {
    case O_REQUEST:
    case O_REQUEST_FILE:
        if (ta->n == TMPL_MAX)
            return fail(err, errlen, "%s: at most %d templates",
                        c == O_REQUEST ? "--request" : "--request-file", TMPL_MAX);
        *last = &ta->r[ta->n++];
        (*last)->text = a;
        (*last)->file = c == O_REQUEST_FILE;
        (*last)->weight = -1;
        return 0;
    case O_NAME:
        if (!*last)
            return fail(err, errlen, "--name: names the --request given before it");
        if (!*a || strlen(a) > 24 || strpbrk(a, " \t\r\n\"\\"))
            return expected(err, errlen, "--name", "1 to 24 characters without blanks or quotes", a);
        for (unsigned i = 0; i + 1 < ta->n; i++)
            if (ta->r[i].name && !strcmp(ta->r[i].name, a))
                return fail(err, errlen, "--name '%s': two templates have that name", a);
        (*last)->name = a;
        return 0;
    case O_WEIGHT:
        if (parse_scaled(a, &w) != 0 || w < 0 || w > 1e9)
            return expected(err, errlen, "--weight", "a weight of at least 0", a);
        *(*last ? &(*last)->weight : &ta->weight) = w;
        return 0;
    case O_FRAME:
    case O_EXPECT:
        return opt_frame_expect(c, a, ta, *last, err, errlen);
    default:
        return 1;
    }
}

/* The options of the request mix as a whole: --proto, --keys, --key-dist, --key-prefix,
 * --value-size, --set-ratio, --path. Returns 0 when done, -1 with a message in err, 1 when
 * c is not one of them. */
static int opt_mix(int c, const char *a, struct tmpl_args *ta, char *err, size_t errlen)
{
    switch (c) {
    case O_PROTO:
        if (strcmp(a, "echo") && strcmp(a, "memcache") && strcmp(a, "redis") && strcmp(a, "http") &&
            strcmp(a, "h2"))
            return expected(err, errlen, "--proto", "echo, memcache, redis, http or h2", a);
        ta->h2 |= !strcmp(a, "h2");
        ta->proto = strcmp(a, "h2") ? a : "http";
        return 0;
    case O_H2: ta->h2 = true; return 0;
    case O_STREAMS: return opt_uint("--streams", a, 1, LOAD_MAX_PIPELINE, &ta->streams, err, errlen);
    case O_DATA: ta->data_file = a; return 0;
    case O_METHOD: ta->method = a; return 0;
    case O_KEYS: return opt_uint("--keys", a, 1, 1000000000000ull, &ta->keys, err, errlen);
    case O_KEY_DIST:
    case O_KEY_PATTERN:
        if (keys_parse(a, &ta->pattern, &ta->kp1, &ta->kp2) != 0)
            return expected(err, errlen, c == O_KEY_DIST ? "--key-dist" : "--key-pattern",
                            "seq, uniform, zipf, zipf:S with S in (0, 10], gauss or gauss:MEAN,SD", a);
        return 0;
    case O_RATIO: {
        double sets, gets;
        char *end, *end2;

        errno = 0;
        sets = strtod(a, &end);
        gets = *end == ':' ? strtod(end + 1, &end2) : -1;
        if (errno || end == a || *end != ':' || *end2 || sets < 0 || gets < 0 || sets + gets <= 0 ||
            sets > 1e9 || gets > 1e9)
            return expected(err, errlen, "--ratio", "SET:GET, e.g. 1:10 or 0:1", a);
        ta->set_ratio = sets / (sets + gets);
        return 0;
    }
    case O_MGET: return opt_uint("--mget", a, 1, 100, &ta->mget, err, errlen);
    case O_PRELOAD: ta->preload = true; return 0;
    case O_KEY_PREFIX:
        if (strlen(a) > 120 || strpbrk(a, " \r\n{}"))
            return expected(err, errlen, "--key-prefix",
                            "at most 120 characters without blanks or braces", a);
        ta->key_prefix = a;
        return 0;
    case O_VALUE_SIZE: return opt_value_size(a, ta, err, errlen);
    case O_SET_RATIO:
        if (parse_scaled(a, &ta->set_ratio) != 0 || ta->set_ratio < 0 || ta->set_ratio > 1)
            return expected(err, errlen, "--set-ratio", "a share from 0 to 1 (e.g. 0.1)", a);
        return 0;
    case O_PATH:
        ta->path = a;
        ta->path_set = true;
        return 0;
    case 'H': {
        const char *colon = strchr(a, ':');
        size_t k;

        if (ta->nheaders == TMPL_MAX_HEADERS)
            return fail(err, errlen, "-H: at most %d headers", TMPL_MAX_HEADERS);
        for (k = 0; colon && a + k < colon; k++)
            if (!strchr("!#$%&'*+-.^_`|~", a[k]) && !isalnum((unsigned char)a[k]))
                break;
        if (!colon || colon == a || a + k != colon || strpbrk(a, "\r\n") || strlen(a) > 1000)
            return expected(err, errlen, "-H", "'Name: value' (a header name, a colon, no line breaks)",
                            a);
        ta->headers[ta->nheaders++] = a;
        return 0;
    }
    default: return 1;
    }
}

/* The TLS options: --tls, --tls-verify[=CAFILE], --sni, --alpn, --tls-resume,
 * --handshake-only (--handshake-timeout is numeric). Returns 0 when done, -1 with a message
 * in err, 1 when c is not one of them. */
static int opt_tls(int c, const char *a, struct tls_opts *o, char *err, size_t errlen)
{
    switch (c) {
    case O_TLS: o->on = true; return 0;
    case O_TLS_VERIFY:
        o->verify = true;
        if (a && !*a)
            return expected(err, errlen, "--tls-verify", "=CAFILE (a PEM file of CA certificates)",
                            a);
        o->ca_file = a;
        return 0;
    case O_SNI:
        if (strlen(a) >= sizeof(o->sni) || strpbrk(a, " /:\r\n\t"))
            return expected(err, errlen, "--sni", "a host name of at most 255 characters", a);
        snprintf(o->sni, sizeof(o->sni), "%s", a);
        o->sni_set = true;
        return 0;
    case O_ALPN: return tls_parse_alpn(o, a, err, errlen);
    case O_TLS_RESUME:
        if (strcmp(a, "on") && strcmp(a, "off"))
            return expected(err, errlen, "--tls-resume", "on or off", a);
        o->resume = !strcmp(a, "on");
        return 0;
    case O_HANDSHAKE_ONLY: o->handshake_only = true; return 0;
    default: return 1;
    }
}

/* The options left once numbers and templates are handled: modes, outputs, flags.
 * Returns 0 when done, -1 with a message in err, 1 after --help or --version (printed on
 * out), 2 when c is not an option at all. */
static int opt_other(int c, const char *a, struct load_config *cfg, FILE *out, char *err,
                     size_t errlen)
{
    uint64_t u;

    switch (c) {
    case O_MAX_REPLY:
        if (parse_bytes(a, &u) != 0 || u < 16 || u > (64u << 20))
            return expected(err, errlen, "--max-reply", "a size from 16 bytes to 64M", a);
        cfg->max_reply = (uint32_t)u;
        return 0;
    case O_START_AT: return opt_start_at(a, &cfg->start_at_ns, err, errlen);
    case O_SCRIPT: cfg->script = a; return 0;
    case O_SCRIPT_ARG:
        if (cfg->nscript_args == SCRIPT_MAX_ARGS)
            return fail(err, errlen, "--script-arg: at most %d", SCRIPT_MAX_ARGS);
        cfg->script_args[cfg->nscript_args++] = a;
        return 0;
    case O_MAX_REQUEST:
        if (parse_bytes(a, &u) != 0 || u < 16 || u > SCRIPT_MAX_MAX_REQUEST)
            return expected(err, errlen, "--max-request", "a size from 16 bytes to 16M", a);
        cfg->max_request = (uint32_t)u;
        return 0;
    case O_SOURCE: return opt_source(a, cfg, err, errlen);
    case 'u': cfg->udp = true; return 0;
    case O_UDP_OFFLOAD: cfg->udp_offload = true; return 0;
    case 'j': cfg->json = true; return 0;
    case 'P':
        cfg->percentiles = true;
        cfg->percentiles_out = a;
        return 0;
    case O_HLOG: cfg->hlog = a; return 0;
    case O_CSV: cfg->csv = a; return 0;
    case 'o': cfg->hist_out = a; return 0;
    case O_PLOT:
        if (!ends_with(a, ".svg") && !ends_with(a, ".html"))
            return expected(err, errlen, "--plot", "a file name ending in .svg or .html", a);
        cfg->plot = a;
        return 0;
    case O_PROGRESS: cfg->progress = 1; return 0;
    case O_NO_PROGRESS: cfg->progress = 0; return 0;
    case 'q': cfg->quiet = true; return 0;
    case 'm': cfg->merge = true; return 0;
    case 'h': opts_usage(out); return 1;
    case 'V': fprintf(out, "wharf-load %s\n", LOAD_VERSION); return 1;
    default: return 2;
    }
}

/* One option from getopt_long (c, its value a) into cfg or ta. Returns 0, -1 with a message
 * in err, or 1 after --help or --version. */
static int opt_one(int c, const char *a, char **argv, struct load_config *cfg,
                   struct tmpl_args *ta, struct req_arg **last, FILE *out, char *err,
                   size_t errlen)
{
    int r;

    if (c == O_BATCH && !strcmp(a, "auto")) {
        cfg->batch = 0;
        return 0;
    }
    if ((r = opt_number(c, a, cfg, err, errlen)) <= 0) {
        /* given explicitly: their defaults depend on other options */
        if (r == 0 && c == 'p')
            cfg->pipeline_set = true;
        if (r == 0 && c == 'd')
            cfg->duration_set = true;
        return r;
    }
    if (c == 's') {
        ta->size_set = true;
        return opt_size(a, cfg, err, errlen);
    }
    if ((r = opt_request(c, a, ta, last, err, errlen)) != 1)
        return r;
    if ((r = opt_mix(c, a, ta, err, errlen)) != 1)
        return r;
    if ((r = opt_tls(c, a, &cfg->tls, err, errlen)) != 1)
        return r;
    if ((r = opt_other(c, a, cfg, out, err, errlen)) != 2)
        return r;
    if (c == ':')
        return fail(err, errlen, "%s: needs a value", argv[optind - 1]);
    if (optopt)
        return fail(err, errlen, "unknown option '-%c'", optopt);
    return fail(err, errlen, "unknown option '%s'", argv[optind - 1]);
}

/* The TLS options that need the others: what goes with --tls, the default SNI name (the
 * target's host when it is a name, not an address), and the shared client context (which
 * loads the CA file). Returns 0 or -1 with a message in err. */
static int tls_finish(struct load_config *cfg, const char *target, char *err, size_t errlen)
{
    struct tls_opts *o = &cfg->tls;
    const char *colon = strrchr(target, ':');
    unsigned char any[sizeof(struct in6_addr)];
    char host[256];

    if (cfg->udp)
        return fail(err, errlen, "--tls: applies to TCP only (DTLS is not supported)");
    if (o->handshake_only && cfg->rate > 0)
        return fail(err, errlen, "--handshake-only: closed loop only (no --rate)");
    if (o->handshake_only && cfg->tmpls)
        return fail(err, errlen,
                    "--handshake-only: sends no requests (drop --proto, --request, --request-file)");
    if (o->handshake_only && cfg->churn)
        return fail(err, errlen, "--handshake-only: every connection ends after its handshake "
                    "(drop --churn)");
    if (!o->sni_set && target[0] != '[' && colon && (size_t)(colon - target) < sizeof(host)) {
        memcpy(host, target, (size_t)(colon - target));
        host[colon - target] = '\0';
        if (inet_pton(AF_INET, host, any) != 1 && inet_pton(AF_INET6, host, any) != 1)
            snprintf(o->sni, sizeof(o->sni), "%s", host);
    }
    cfg->tls_client = tls_client_new(o, cfg->host, err, errlen);
    return cfg->tls_client ? 0 : -1;
}

/* --h2, --streams: HTTP/2 goes with --proto http (or a URL), over TCP, with `status:`
 * checks only (response bodies are not kept); --streams is --pipeline's name there
 * (h2load's -m); the method and body are http_finish's (cfg->http); with --tls and
 * no --alpn, ALPN offers h2. Each target's request is made once here so that a bad -H is
 * refused before the run. Returns 0 or -1 with a message in err. */
static int h2_finish(struct load_config *cfg, const struct tmpl_args *ta, char *err, size_t errlen)
{
    struct h2_opts *h = &cfg->h2;
    unsigned i;

    if (!ta->h2) {
        if (ta->streams)
            return fail(err, errlen, "--streams: goes with --h2");
        return 0;
    }
    if (strcmp(ta->proto, "http"))
        return fail(err, errlen, "--h2: speaks HTTP/2 for --proto http (or a URL target), not %s",
                    ta->n ? "templates" : ta->proto);
    if (ta->expect && strncmp(ta->expect, "status:", 7))
        return fail(err, errlen, "--expect '%s': --h2 checks the status only (expected status:LO-HI)",
                    ta->expect);
    if (cfg->churn)
        return fail(err, errlen, "--churn: not with --h2");
    if (ta->streams && cfg->pipeline_set && cfg->pipeline != ta->streams)
        return fail(err, errlen, "--streams %" PRIu64 " and --pipeline %u disagree (--streams is "
                    "--pipeline's name with --h2)", ta->streams, cfg->pipeline);
    if (ta->streams) {
        cfg->pipeline = (unsigned)ta->streams;
        cfg->pipeline_set = true;
    }
    h->on = true;
    h->path = ta->path;
    h->nheaders = ta->nheaders;
    for (i = 0; i < ta->nheaders; i++) {
        h->headers[i] = ta->headers[i];
        if (strchr(ta->headers[i], '{'))
            return fail(err, errlen, "-H '%s': placeholders are not expanded with --h2 (each "
                        "target's request is built once)", ta->headers[i]);
    }
    if (cfg->tls.on && !cfg->tls.alpn_len && tls_parse_alpn(&cfg->tls, "h2", err, errlen) != 0)
        return -1;
    for (i = 0; i < cfg->ntargets; i++) {
        const struct load_target *tg = &cfg->targets[i];
        struct h2_request *rq = h2_request_new(cfg->http.method, cfg->tls.on, tg->target,
                                               tg->path[0] ? tg->path : h->path, h->headers,
                                               h->nheaders, cfg->http.body, cfg->http.body_len,
                                               err, errlen);

        if (!rq)
            return -1;
        h2_request_free(rq);
    }
    return 0;
}

/* A URL target, http://HOST[:PORT][/PATH] or https://...: the HOST:PORT into out (port 80
 * or 443 by default), the path for --proto http (the default mode then), --tls for https.
 * Returns 0 (out untouched when `a` is not a URL), or -1 with a message in err. */
static int url_target(struct load_config *cfg, struct tmpl_args *ta, const char *a, char *out,
                      size_t outlen, char *err, size_t errlen)
{
    bool tls = !strncasecmp(a, "https://", 8);
    const char *h, *slash, *close;
    size_t hl;
    bool port;

    if (!tls && strncasecmp(a, "http://", 7))
        return 0;
    h = a + (tls ? 8 : 7);
    slash = strchr(h, '/');
    hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl + 7 > outlen || memchr(h, '@', hl))
        return fail(err, errlen, "target '%s': expected http://HOST[:PORT][/PATH]", a);
    close = h[0] == '[' ? memchr(h, ']', hl) : NULL;
    port = close ? close + 1 < h + hl && close[1] == ':' : memchr(h, ':', hl) != NULL;
    snprintf(out, outlen, "%.*s%s", (int)hl, h, port ? "" : tls ? ":443" : ":80");
    if (ta->path_set)
        return fail(err, errlen, "--path: the URL target '%s' gives the path", a);
    if (!strcmp(ta->proto, "echo") && ta->n == 0)
        ta->proto = "http";
    if (strcmp(ta->proto, "http"))
        return fail(err, errlen, "target '%s': a URL goes with --proto http, not %s", a,
                    ta->n ? "templates" : ta->proto);
    ta->path = slash ? slash : "/";
    if (tls)
        cfg->tls.on = true;
    return 0;
}

/* --script: loads the script into the run's states (a script that does not load stops here,
 * exit 2); when it makes the requests, the templates only frame and check the replies (no
 * cache verification, no --expect placeholders: they cannot be tied to a script's bytes).
 * script_only: no mode was given, so request() must exist. Returns 0 or -1 with a message. */
static int script_finish(struct load_config *cfg, const struct tmpl_args *ta, bool script_only,
                         char *err, size_t errlen)
{
    struct script_params p;
    unsigned i;

    memset(&p, 0, sizeof(p));
    p.path = cfg->script;
    memcpy(p.args, cfg->script_args, sizeof(p.args));
    p.nargs = cfg->nscript_args;
    p.threads = cfg->threads;
    p.http = !strcmp(cfg->tmpls->proto, "http");
    p.target = cfg->target;
    p.host = cfg->host;
    p.port = cfg->port;
    p.path_default = cfg->targets[0].path[0] ? cfg->targets[0].path : ta->path; /* a URL's */
    p.method = cfg->http.method;
    p.body = cfg->http.body;
    p.body_len = cfg->http.body_len;
    p.max_request = cfg->max_request;
    p.connect_timeout_ms = cfg->connect_timeout_ns / 1000000;
    if (!(cfg->scripts = script_set_open(&p, err, errlen)))
        return -1;
    if (cfg->rate > 0 && script_set_has_delay(cfg->scripts))
        return fail(err, errlen, "--script %s: delay() paces the closed loop (each connection "
                    "waits before its next request); with --rate the schedule says when "
                    "requests go: drop --rate or delay()", cfg->script);
    if (!script_set_has_request(cfg->scripts)) {
        if (script_only)
            return fail(err, errlen, "--script %s: defines no request(); without --proto or "
                        "--request the script makes the requests", cfg->script);
        return 0;
    }
    for (i = 0; i < cfg->tmpls->n; i++) {
        cfg->tmpls->t[i].verify = CV_NONE;
        if (cfg->tmpls->t[i].expect)
            return fail(err, errlen, "--expect with placeholders: cannot be tied to the requests "
                        "of --script %s (check them in its response())", cfg->script);
    }
    return 0;
}

/* After the options: the --merge files, or the target, then the checks that tie options
 * together, the defaults that depend on others, and the templates. Returns 0 or -1 with a
 * message in err. */
static int opts_finish(struct load_config *cfg, int argc, char **argv, struct tmpl_args *ta,
                       char *err, size_t errlen)
{
    char url[256]; /* fits resolve_target's host buffer */
    char arg[sizeof(cfg->targets[0].target)];
    const char *target;
    int i, https = -1;
    bool script_only = false;

    if (cfg->merge) {
        if (optind >= argc)
            return fail(err, errlen, "--merge: expected one or more histogram files");
        cfg->files = argv + optind;
        cfg->nfiles = argc - optind;
        return 0;
    }
    if (optind >= argc)
        return fail(err, errlen, "missing target: expected HOST:PORT (e.g. 127.0.0.1:7000)");
    if (argc - optind > LOAD_MAX_TARGETS)
        return fail(err, errlen, "at most %d targets, got %d", LOAD_MAX_TARGETS, argc - optind);
    if (argc - optind > 1 && cfg->udp)
        return fail(err, errlen, "several targets: TCP only (got %d with --udp)", argc - optind);
    for (i = optind; i < argc; i++) {
        struct load_target *tg = &cfg->targets[cfg->ntargets];
        const char *path = ta->path;
        bool url_tls = !strncasecmp(argv[i], "https://", 8);

        if (targets_split(argv[i], arg, sizeof(arg), &tg->weight, err, errlen) != 0)
            return -1;
        url[0] = '\0';
        if (url_target(cfg, ta, arg, url, sizeof(url), err, errlen) != 0)
            return -1;
        if (url[0]) {
            if (https >= 0 && https != url_tls)
                return fail(err, errlen, "target '%s': every URL target must have the same "
                            "scheme (http:// or https://)", argv[i]);
            https = url_tls;
            if (strlen(ta->path) >= sizeof(tg->path))
                return fail(err, errlen, "target '%s': path longer than %zu bytes", argv[i],
                            sizeof(tg->path) - 1);
            snprintf(tg->path, sizeof(tg->path), "%s", ta->path);
            ta->path = path;
        }
        target = url[0] ? url : arg;
        if (resolve_target(tg, cfg->udp, target, err, errlen) != 0)
            return -1;
        cfg->ntargets++;
    }
    if (cfg->ntargets > 1 && ta->preload)
        return fail(err, errlen, "--preload: one target only (keys are not sharded over the "
                    "targets: each server would be filled in part)");
    if (cfg->ntargets > 1 && cfg->connections < cfg->ntargets)
        return fail(err, errlen, "--connections %u: fewer than the %u targets (each needs one)",
                    cfg->connections, cfg->ntargets);
    if (cfg->ntargets > 1) {
        uint8_t *who = malloc(cfg->connections);
        unsigned k;

        if (!who)
            return fail(err, errlen, "out of memory");
        targets_assign(cfg->targets, cfg->ntargets, 0, cfg->connections, who);
        for (k = 0; k < cfg->connections; k++)
            cfg->targets[who[k]].connections++;
        free(who);
        for (k = 0; k < cfg->ntargets; k++)
            if (!cfg->targets[k].connections)
                return fail(err, errlen, "--connections %u: too few for the weights, target "
                            "'%s' gets no connection", cfg->connections, cfg->targets[k].target);
    } else {
        cfg->targets[0].connections = cfg->connections;
    }
    /* the first target stands for the run where one is meant (reports, TLS name) */
    memcpy(cfg->target, cfg->targets[0].target, sizeof(cfg->target));
    memcpy(cfg->host, cfg->targets[0].host, sizeof(cfg->host));
    cfg->port = cfg->targets[0].port;
    cfg->addr = cfg->targets[0].addr;
    cfg->addrlen = cfg->targets[0].addrlen;
    target = cfg->target;
    if (cfg->udp && cfg->msg.size_max > LOAD_MAX_UDP_SIZE)
        return fail(err, errlen, "--size: UDP datagrams carry at most %u bytes", LOAD_MAX_UDP_SIZE);
    if (cfg->udp && cfg->churn)
        return fail(err, errlen, "--churn: applies to TCP only (UDP has no connections)");
    if (!cfg->tls.on && (cfg->tls.verify || cfg->tls.sni_set || cfg->tls.alpn_len ||
                         cfg->tls.resume || cfg->tls.handshake_only))
        return fail(err, errlen, "--tls-verify, --sni, --alpn, --tls-resume and "
                    "--handshake-only go with --tls");
    if (cfg->tick_ns > LOAD_MAX_TICK_NS)
        return fail(err, errlen, "--tick: at most 100ms, got %.3f ms", cfg->tick_ns / 1e6);
    if (cfg->count && !cfg->duration_set)
        cfg->duration_ns = 60ull * 1000000000u;
    if (cfg->rate > 0 && !cfg->pipeline_set)
        cfg->pipeline = LOAD_MAX_PIPELINE;
    if (cfg->batch > 1 && cfg->rate <= 0)
        return fail(err, errlen, "--batch: applies to open loop (--rate) only");
    if (cfg->batch > cfg->pipeline)
        return fail(err, errlen, "--batch %u is more than --pipeline %u (a batch goes out at once)",
                    cfg->batch, cfg->pipeline);
    if (!cfg->batch) {
        cfg->batch = opts_auto_batch(cfg);
        cfg->batch_auto = true;
    }
    if (cfg->threads > cfg->connections)
        return fail(err, errlen,
                    "--threads %u is more than --connections %u (each thread needs a connection)",
                    cfg->threads, cfg->connections);
    if (cfg->threads == 0)
        cfg->threads = load_default_threads(cfg->connections);
    if (check_sources(cfg, err, errlen) != 0)
        return -1;
    if (cfg->script && cfg->udp)
        return fail(err, errlen, "--script: applies to TCP request/response modes, not --udp");
    if (cfg->script && cfg->ntargets > 1)
        return fail(err, errlen, "--script: one target only (its requests name one host)");
    if (cfg->script && ta->h2)
        return fail(err, errlen, "--script: applies to HTTP/1.1 and the other TCP modes, not --h2");
    if (!cfg->script && (cfg->nscript_args || cfg->max_request != SCRIPT_DEFAULT_MAX_REQUEST))
        return fail(err, errlen, "--script-arg and --max-request go with --script");
    if (cfg->script && !strcmp(ta->proto, "echo") && ta->n == 0) {
        /* the script makes the requests; the template only frames the replies */
        script_only = true;
        ta->r[0] = (struct req_arg){"-", false, NULL, NULL, -1, "script"}; /* never sent */
        ta->n = 1;
    }
    if (http_finish(cfg, ta, err, errlen) != 0 || build_templates(cfg, ta, err, errlen) != 0 ||
        (cfg->script && script_finish(cfg, ta, script_only, err, errlen) != 0)) {
        load_config_free(cfg);
        return -1;
    }
    if (h2_finish(cfg, ta, err, errlen) != 0) {
        load_config_free(cfg);
        return -1;
    }
    if (script_only)
        snprintf(cfg->tmpls->proto, sizeof(cfg->tmpls->proto), "script");
    if (cfg->tls.on && tls_finish(cfg, target, err, errlen) != 0) {
        load_config_free(cfg);
        return -1;
    }
    return 0;
}

int opts_parse(struct load_config *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
    struct tmpl_args ta;
    struct req_arg *last = NULL;
    int c, r;

    load_config_defaults(cfg);
    tmpl_args_defaults(&ta);
    optind = 0; /* full reset, so tests may parse several times */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:c:p:s:d:n:w:r:ujPo:qmhVH:", long_opts, NULL)) != -1) {
        r = opt_one(c, optarg, argv, cfg, &ta, &last, out, err, errlen);
        if (r != 0)
            return r;
    }
    return opts_finish(cfg, argc, argv, &ta, err, errlen);
}
