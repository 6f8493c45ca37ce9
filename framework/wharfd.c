/*
 * wharfd.c - the standalone server: loads a JSON config, runs it in the
 * foreground, logs to stderr, and stops gracefully on SIGINT or SIGTERM
 * (a second signal exits at once).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"

#ifndef WHARF_SYSCONFDIR
#define WHARF_SYSCONFDIR "/usr/local/etc/wharf"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wharfd [-c FILE] [-t] [-V] [-h]\n"
            "  -c FILE   the JSON config (default " WHARF_SYSCONFDIR "/wharf.json)\n"
            "  -t        check the config, load the handler modules and run their init,\n"
            "            then exit 0 (valid) or 1 (with the reason)\n"
            "  -V        print the version and exit\n"
            "  -h        print this help and exit\n"
            "Signals: SIGINT/SIGTERM stop gracefully; a second one exits at once.\n");
}

static _Atomic int stop_done;

static void *stopper(void *arg)
{
    server_stop(arg);
    atomic_store(&stop_done, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *file = WHARF_SYSCONFDIR "/wharf.json";
    int check_only = 0;
    int opt;
    while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
        switch (opt) {
        case 'c': file = optarg; break;
        case 't': check_only = 1; break;
        case 'V': printf("wharfd %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wharfd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    char err[2048];
    struct config *cfg = NULL;
    if (config_load_file(file, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "wharfd: %s\n", err);
        return 1;
    }
    log_set_level((enum wharf_log_level)cfg->log_level);

    struct server *srv = NULL;
    if (server_new(cfg, &srv, err, sizeof err) < 0) {
        fprintf(stderr, "wharfd: %s\n", err);
        config_free(cfg);
        return 1;
    }
    if (check_only) {
        printf("wharfd: %s: configuration OK (%zu listeners, %d workers)\n", file,
               cfg->nlisteners, cfg->workers);
        server_free(srv);
        config_free(cfg);
        return 0;
    }

    /* Signals are taken synchronously by this thread; every thread started
     * from here on inherits the blocked mask.  SIGPIPE never kills us. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (server_start(srv, err, sizeof err) < 0) {
        fprintf(stderr, "wharfd: %s\n", err);
        server_free(srv);
        config_free(cfg);
        return 1;
    }

    int sig;
    while (sigwait(&set, &sig) != 0)
        ;
    log_info("%s: stopping (send it again to exit at once)", strsignal(sig));
    pthread_t t;
    if (pthread_create(&t, NULL, stopper, srv) != 0) {
        server_stop(srv);
    } else {
        const struct timespec tick = {0, 50 * 1000 * 1000};
        while (!atomic_load(&stop_done)) {
            siginfo_t si;
            if (sigtimedwait(&set, &si, &tick) > 0) {
                log_warn("%s again: exiting now", strsignal(si.si_signo));
                _exit(1);
            }
        }
        pthread_join(t, NULL);
    }
    server_free(srv);
    config_free(cfg);
    return 0;
}
