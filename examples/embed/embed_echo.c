/*
 * embed_echo.c - a program that embeds a wharf server: the configuration is
 * built in code, the handler is compiled into the program (no module file),
 * the log goes through a callback, and SIGHUP reloads with a new prefix.
 *
 * Build it against an installed wharf:
 *     cc -o embed_echo embed_echo.c $(pkg-config --cflags --libs wharf)
 * Run:  ./embed_echo [PORT]        (0 or nothing: an ephemeral port, printed)
 * Then: printf 'hi\n' | nc -q1 127.0.0.1 PORT     -> "embedded: hi"
 *
 * Errors: every wharf_server_* call returns 0 or a negative errno; those that
 * take an err buffer also explain the failure there (file, JSON path,
 * reason), the others are explained by strerror(-rc).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wharf.h>
#include <wharf_server.h>

/* The handler: answers each chunk with the listener's prefix + the chunk. */
static int shout_init(const wharf_options *opts, void **data, char *err, size_t errlen)
{
    static const char *const keys[] = {"prefix", NULL};
    const char *prefix = "";
    if (wharf_options_check_keys(opts, keys, err, errlen) < 0)
        return -1;
    wharf_options_string(opts, "prefix", &prefix);
    *data = strdup(prefix);
    return *data ? 0 : -1;
}

static void shout_fini(void *data)
{
    free(data);
}

static size_t shout_data(wharf_conn *c, const void *data, size_t len)
{
    const char *prefix = wharf_listener_data(c);
    wharf_send(c, prefix, strlen(prefix));
    wharf_send(c, data, len);
    return len;
}

static const struct wharf_handler shout = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "shout",
    .init = shout_init,
    .fini = shout_fini,
    .on_data = shout_data,
};

static void to_stdout(void *arg, enum wharf_log_level level, const char *line)
{
    (void)arg;
    (void)level;
    printf("log: %s\n", line);
    fflush(stdout);
}

/* The configuration, built in code.  NULL with the reason in err. */
static wharf_config *make_config(const char *port, const char *prefix, char *err, size_t len)
{
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", prefix);
    wharf_config *cfg = wharf_config_new();
    if (!cfg) {
        snprintf(err, len, "out of memory");
        return NULL;
    }
    if (wharf_config_set(cfg, "workers", "2", err, len) < 0 ||
        wharf_config_set(cfg, "listeners[0]", "{\"name\": \"shout\", \"handler\": \"shout\"}",
                         err, len) < 0 ||
        wharf_config_set(cfg, "listeners[0].port", port, err, len) < 0 ||
        wharf_config_set(cfg, "listeners[0].options.prefix", quoted, err, len) < 0) {
        wharf_config_free(cfg);
        return NULL;
    }
    return cfg;
}

int main(int argc, char **argv)
{
    const char *port = argc > 1 ? argv[1] : "0";
    char err[1024] = "";
    wharf_log_set_callback(to_stdout, NULL);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the server's threads inherit it */
    signal(SIGPIPE, SIG_IGN);

    wharf_config *cfg = make_config(port, "embedded: ", err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "embed_echo: config: %s\n", err);
        return 1;
    }
    wharf_server *srv = wharf_server_new();
    if (!srv) {
        fprintf(stderr, "embed_echo: %s\n", strerror(ENOMEM));
        wharf_config_free(cfg);
        return 1;
    }
    int rc = wharf_server_add_handler(srv, &shout);
    if (rc < 0) {
        /* No err buffer here: the code says it all (-EINVAL, -EEXIST, -ENOSPC). */
        fprintf(stderr, "embed_echo: cannot register the handler \"%s\": %s\n", shout.name,
                strerror(-rc));
    } else if ((rc = wharf_server_start(srv, cfg, err, sizeof err)) < 0) {
        fprintf(stderr, "embed_echo: %s\n", err);
        if (rc == -EADDRINUSE)
            fprintf(stderr, "embed_echo: port %s is taken; try another, or 0 for any\n", port);
    }
    if (rc < 0) {
        wharf_server_free(srv);
        wharf_config_free(cfg);
        return 1;
    }
    printf("listening on %d\n", wharf_server_port(srv, "shout"));
    fflush(stdout);

    int sig;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
        char bound[16];
        snprintf(bound, sizeof bound, "%d", wharf_server_port(srv, "shout"));
        wharf_config *next = make_config(bound, "reloaded: ", err, sizeof err);
        if (!next || (rc = wharf_server_reload(srv, next, err, sizeof err)) < 0)
            fprintf(stderr, "embed_echo: reload: %s\n", err);
        wharf_config_free(next);
    }

    struct wharf_listener_stats st;
    if (wharf_server_stats(srv, "shout", &st) == 0)
        printf("served %llu connections\n", (unsigned long long)st.accepted);
    wharf_server_free(srv);
    wharf_config_free(cfg);
    return 0;
}
