/*
 * wharfd.c - the standalone server, a thin front-end over wharf_server.h:
 * loads a JSON config, runs it in the foreground, and turns signals into
 * server calls:
 *
 *   SIGHUP          reload the config file (on any error the old one keeps serving)
 *   SIGUSR1         re-open the log file (after rotation)
 *   SIGUSR2         binary upgrade: start the binary again with the listening
 *                   sockets, then drain and exit once it serves (upgrade.c)
 *   SIGINT/TERM/QUIT  stop gracefully; a second one exits at once
 *
 * Every signal is logged.  `wharfd -s reload|reopen|stop -p PIDFILE` sends
 * them to the wharfd that wrote PIDFILE.  Under systemd it reports its
 * state on NOTIFY_SOCKET (READY=1, RELOADING=1, STOPPING=1, and WATCHDOG=1
 * when WatchdogSec is set) and takes passed sockets (socket activation, in
 * the library).  An "admin" socket in the config serves runtime commands
 * (admin.c; `wharfd -s status` asks it).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "upgrade.h"
#include "wharf_server.h"

#ifndef WHARF_SYSCONFDIR
#define WHARF_SYSCONFDIR "/usr/local/etc/wharf"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wharfd [-c FILE] [-p PIDFILE] [-t | -T | -s SIGNAL] [-V] [-h]\n"
            "  -c FILE     the JSON config (default " WHARF_SYSCONFDIR "/wharf.json)\n"
            "  -p PIDFILE  write the process id there once started (locked while running,\n"
            "              removed at exit; a second wharfd with it refuses to start)\n"
            "  -t          check the config, load the handler modules and run their init,\n"
            "              check the TLS certificates and keys, then exit 0 (valid) or 1\n"
            "              (with the reason)\n"
            "  -T          print the effective config, every default filled in, and exit\n"
            "  -s SIGNAL   send reload, reopen, stop or upgrade to the wharfd of -p PIDFILE;\n"
            "              status: ask the admin socket of -c FILE (else check -p PIDFILE)\n"
            "  -V, -v, --version  print the version and exit\n"
            "  -h          print this help and exit\n"
            "Signals: HUP reloads the config, USR1 re-opens the log file, INT/TERM/QUIT\n"
            "stop gracefully (a second one exits at once), USR2 upgrades the binary.\n");
}

/* -s: signal the wharfd whose pid is in pidfile. */
static int send_signal(const char *what, const char *pidfile)
{
    int sig = strcmp(what, "reload") == 0    ? SIGHUP
              : strcmp(what, "reopen") == 0  ? SIGUSR1
              : strcmp(what, "stop") == 0    ? SIGTERM
              : strcmp(what, "upgrade") == 0 ? SIGUSR2
                                             : 0;
    if (!sig) {
        fprintf(stderr, "wharfd: -s: expected reload, reopen, stop, upgrade or status, got \"%s\"\n",
                what);
        return 1;
    }
    if (!pidfile) {
        fprintf(stderr, "wharfd: -s needs -p PIDFILE (the running wharfd's)\n");
        return 1;
    }
    FILE *f = fopen(pidfile, "r");
    long pid = 0;
    if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
        fprintf(stderr, "wharfd: %s: no process id in it: %s\n", pidfile,
                f ? "bad contents" : strerror(errno));
        if (f)
            fclose(f);
        return 1;
    }
    fclose(f);
    if (kill((pid_t)pid, sig) < 0) {
        fprintf(stderr, "wharfd: cannot signal process %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- the service manager (sd_notify(3)'s protocol, without libsystemd) ---- */

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

/* Opens NOTIFY_SOCKET, if the service manager gave one ("@name": abstract). */
static void notify_open(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= sizeof notify_addr.sun_path || (path[0] != '/' && path[0] != '@'))
        return;
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify_fd < 0)
        return;
    memset(&notify_addr, 0, sizeof notify_addr);
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, path, n);
    if (path[0] == '@')
        notify_addr.sun_path[0] = '\0';
    notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    unsetenv("NOTIFY_SOCKET"); /* handlers' children must not talk for us */
}

/* Sends one state message ("READY=1", ...). */
static void notify(const char *state)
{
    if (notify_fd < 0)
        return;
    if (sendto(notify_fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
               notify_len) < 0)
        wharf_log(WHARF_LOG_WARN, "NOTIFY_SOCKET: %s", strerror(errno));
}

/* WATCHDOG_USEC (for this process): the interval to send WATCHDOG=1 at
 * (half the manager's timeout), in milliseconds, or 0. */
static long watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!usec || (pid && strtol(pid, NULL, 10) != (long)getpid()))
        return 0;
    long long us = strtoll(usec, NULL, 10);
    return us > 0 ? (long)(us / 2000 > 0 ? us / 2000 : 1) : 0;
}

/* The name of the user this process runs as now (for messages). */
static const char *run_as_name(void)
{
    struct passwd *pw = getpwuid(geteuid());
    return pw ? pw->pw_name : "?";
}

static _Atomic int stop_done;
static const char *pidfile_path; /* -p, for a failed upgrade to write again */

static void *stopper(void *arg)
{
    wharf_server_stop(arg);
    atomic_store(&stop_done, 1);
    return NULL;
}

/* Tells the service manager the state after a reload: READY=1 and a
 * one-line STATUS= ("serving", or why the last reload was refused). */
static void notify_reloaded(const char *why)
{
    char msg[600];
    int n = snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s%s", why ? "reload failed: " : "serving",
                     why ? why : "");
    for (int i = (int)strlen("READY=1\n"); i < n && i < (int)sizeof msg - 1; i++)
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';
    notify(msg);
}

/* SIGHUP: reads the file again and switches, or keeps the old config.
 * Every refusal counts in reloads_failed, a file that cannot be read or
 * parsed too (wharf_server_reload with no config counts it). */
static void reload(wharf_server *srv, const char *file)
{
    wharf_error e;
    char err[2048];
    wharf_config *cfg = NULL;
    const char *why = NULL;
    if (wharf_config_load_file(file, &cfg, &e) < 0) {
        snprintf(err, sizeof err, "%s", e.text);
        if (e.code == -EACCES && geteuid() != 0)
            snprintf(err + strlen(err), sizeof err - strlen(err),
                     " (wharfd runs as user \"%s\" since it gave up root at start: the config "
                     "must be readable by that user)", run_as_name());
        wharf_server_reload(srv, NULL, NULL, 0);
        why = err;
    } else if (wharf_server_reload(srv, cfg, err, sizeof err) < 0) {
        why = err;
    }
    if (why)
        wharf_log(WHARF_LOG_ERROR, "reload failed, still serving the previous config: %s", why);
    wharf_config_free(cfg);
    notify_reloaded(why);
}

/* What the command line asked for. */
struct wharfd_args {
    const char *file, *pidfile, *signal_name;
    int check_only, dump;
};

/* Reads the options into *a.  Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct wharfd_args *a)
{
    *a = (struct wharfd_args){.file = WHARF_SYSCONFDIR "/wharf.json"};
    static const struct option longopts[] = {{"version", no_argument, NULL, 'V'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:p:s:tTVvh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': a->file = optarg; break;
        case 'p': a->pidfile = optarg; break;
        case 's': a->signal_name = optarg; break;
        case 't': a->check_only = 1; break;
        case 'T': a->dump = 1; break;
        case 'V':
        case 'v': printf("wharfd %s\n", wharf_version()); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wharfd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 1;
    }
    return -1;
}

/* -T: prints the effective config.  Returns the exit status. */
static int dump_config(wharf_config *cfg)
{
    char err[2048];
    char *text = wharf_config_dump(cfg, err, sizeof err);
    if (!text) {
        fprintf(stderr, "wharfd: %s\n", err);
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

/* -t: loads the modules and runs their init.  Returns the exit status. */
static int check_config(wharf_server *srv, wharf_config *cfg, const char *file)
{
    /* A handler's init may crash here as at a start: say where. */
    int crash = wharf_crash_report_install();
    if (crash < 0)
        fprintf(stderr, "wharfd: no crash report: %s\n", strerror(-crash));
    char err[2048];
    if (wharf_server_check(srv, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "wharfd: %s\n", err);
        return 1;
    }
    printf("wharfd: %s: configuration OK (io: %s)\n", file, wharf_server_io(srv));
    return 0;
}

/* Signals are taken synchronously by the main thread; every thread started
 * from here on inherits the blocked mask.  SIGPIPE never kills us. */
static void block_signals(sigset_t *set)
{
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(set);
    int sigs[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(set, sigs[i]);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* The pid file (-p): locked from before the start until exit, so a second
 * wharfd given the same file refuses at once and never touches it; the
 * process id goes in only once the start has succeeded, and only a file
 * this process created or wrote is removed. */
struct pidfile {
    const char *path;
    int fd;
    int ours; /* created by us, or written with our pid */
};

/* Opens and locks pf->path.  Returns 0, or -1 with the reason on stderr.
 * A wharfd started by an upgrade takes the old one's open, locked file
 * (upgrade_pidfile_fd: the lock belongs to the file description both
 * share, so it stays held when the old one exits), and owns the file only
 * once it serves (run). */
static int pidfile_lock(struct pidfile *pf)
{
    pf->fd = upgrade_pidfile_fd();
    if (pf->fd >= 0 && flock(pf->fd, LOCK_EX | LOCK_NB) == 0) {
        pf->ours = 0;
        return 0;
    }
    if (pf->fd >= 0)
        close(pf->fd);
    pf->ours = 1;
    pf->fd = open(pf->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
    if (pf->fd < 0 && errno == EEXIST) {
        pf->ours = 0;
        pf->fd = open(pf->path, O_RDWR | O_CLOEXEC | O_NOCTTY);
    }
    if (pf->fd < 0) {
        fprintf(stderr, "wharfd: cannot open the pid file %s: %s\n", pf->path, strerror(errno));
        return -1;
    }
    if (flock(pf->fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    int code = errno;
    char text[32] = "";
    ssize_t n = pread(pf->fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    text[strcspn(text, "\n")] = '\0';
    if (code == EWOULDBLOCK)
        fprintf(stderr, "wharfd: the pid file %s is held by a running wharfd (pid %s); "
                "not starting\n", pf->path, text[0] ? text : "?");
    else
        fprintf(stderr, "wharfd: cannot lock the pid file %s: %s\n", pf->path, strerror(code));
    close(pf->fd);
    pf->fd = -1;
    return -1;
}

/* Writes our process id into the locked file (after a good start). */
static void pidfile_write(struct pidfile *pf)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (!upgrade_starting())
        pf->ours = 1; /* an upgrade's: once it serves (run) */
    if (ftruncate(pf->fd, 0) < 0 || pwrite(pf->fd, text, (size_t)n, 0) != n)
        wharf_log(WHARF_LOG_ERROR, "cannot write the pid file %s: %s", pf->path, strerror(errno));
}

/* Removes the file if it is ours, and lets the lock go. */
static void pidfile_release(struct pidfile *pf)
{
    if (pf->fd < 0)
        return;
    if (pf->ours && unlink(pf->path) < 0 && errno != ENOENT)
        wharf_log(WHARF_LOG_WARN, "cannot remove the pid file %s: %s", pf->path, strerror(errno));
    close(pf->fd);
    pf->fd = -1;
}

/* With a watchdog: pings the server every wd ms (alive means every worker
 * and the acceptor answer, not just this thread: a stuck worker stops the
 * pings) and waits for a signal in between.  Returns the signal, or -1 when
 * none came yet. */
static int watchdog_wait(wharf_server *srv, const sigset_t *set, long wd,
                         struct timespec *next_ping)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long left = (next_ping->tv_sec - now.tv_sec) * 1000LL +
                     (next_ping->tv_nsec - now.tv_nsec) / 1000000;
    if (left > 0) {
        struct timespec tick = {left / 1000, (left % 1000) * 1000000L};
        siginfo_t si;
        return sigtimedwait(set, &si, &tick);
    }
    admin_lock();
    int ping = wharf_server_ping(srv, (uint64_t)wd);
    admin_unlock();
    if (ping == 0)
        notify("WATCHDOG=1");
    else if (ping == -ETIMEDOUT)
        wharf_log(WHARF_LOG_ERROR, "watchdog: a server thread did not answer in %ld ms", wd);
    else
        wharf_log(WHARF_LOG_ERROR, "watchdog: %s", strerror(-ping));
    *next_ping = now;
    next_ping->tv_sec += wd / 1000;
    next_ping->tv_nsec += (wd % 1000) * 1000000L;
    if (next_ping->tv_nsec >= 1000000000L) {
        next_ping->tv_sec++;
        next_ping->tv_nsec -= 1000000000L;
    }
    return -1;
}

/* Serves until a stopping signal, which it returns; reloads on SIGHUP and
 * re-opens the log on SIGUSR1. */
static int serve(wharf_server *srv, const char *file, const sigset_t *set)
{
    long wd = watchdog_ms();
    struct timespec next_ping;
    clock_gettime(CLOCK_MONOTONIC, &next_ping);
    for (;;) {
        int sig;
        if (wd > 0) {
            if ((sig = watchdog_wait(srv, set, wd, &next_ping)) < 0)
                continue;
        } else if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            wharf_log(WHARF_LOG_INFO, "SIGHUP: reloading %s", file);
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            char msg[96];
            snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%lld",
                     (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
            notify(msg);
            admin_lock();
            reload(srv, file); /* it tells the service manager READY=1 and STATUS= */
            admin_unlock();
        } else if (sig == SIGUSR2) {
            admin_lock();
            bool upgraded = upgrade_run(srv, pidfile_path);
            admin_unlock();
            if (upgraded)
                return sig;
        } else if (sig == SIGUSR1) {
            wharf_log(WHARF_LOG_INFO, "SIGUSR1: re-opening the log file");
            int reopened = wharf_log_reopen();
            if (reopened < 0)
                wharf_log(WHARF_LOG_ERROR, "cannot re-open the log file: %s",
                          strerror(-reopened));
        } else {
            return sig;
        }
    }
}

/* The graceful stop, on a thread of its own: a second stopping signal
 * meanwhile exits at once. */
static void stop(wharf_server *srv, const sigset_t *set, int sig)
{
    admin_stop();
    if (sig == SIGUSR2) { /* handing over: the new one is the service now */
        upgrade_hand_over(srv);
        wharf_log(WHARF_LOG_INFO, "upgrade: stopping (SIGTERM exits at once)");
    } else {
        wharf_log(WHARF_LOG_INFO, "SIG%s: stopping (send it again to exit at once)",
                  sigabbrev_np(sig));
        notify("STOPPING=1");
    }
    pthread_t t;
    if (pthread_create(&t, NULL, stopper, srv) != 0) {
        wharf_server_stop(srv);
        return;
    }
    const struct timespec tick = {0, 50 * 1000 * 1000};
    while (!atomic_load(&stop_done)) {
        siginfo_t si;
        int s = sigtimedwait(set, &si, &tick);
        if (s == SIGINT || s == SIGTERM || s == SIGQUIT) {
            wharf_log(WHARF_LOG_WARN, "SIG%s again: exiting now", sigabbrev_np(s));
            _exit(1);
        } else if (s > 0) {
            wharf_log(WHARF_LOG_INFO, "SIG%s: ignored while stopping", sigabbrev_np(s));
        }
    }
    pthread_join(t, NULL);
}

/* Starts srv on cfg and serves until stopped.  Returns the exit status. */
static int run(wharf_server *srv, wharf_config *cfg, const struct wharfd_args *a)
{
    sigset_t set;
    block_signals(&set);
    int crash = wharf_crash_report_install();
    if (crash < 0)
        fprintf(stderr, "wharfd: no crash report: %s\n", strerror(-crash));
    notify_open();
    /* Locked before the start, which may give up root ("user"). */
    struct pidfile pf = {.path = a->pidfile, .fd = -1};
    if (a->pidfile && pidfile_lock(&pf) < 0)
        return 1;
    char err[2048];
    if (wharf_server_start(srv, cfg, err, sizeof err) < 0) {
        pidfile_release(&pf);
        fprintf(stderr, "wharfd: %s\n", err);
        return 1;
    }
    if (a->pidfile)
        pidfile_write(&pf);
    char ready[64];
    snprintf(ready, sizeof ready, "READY=1\nMAINPID=%ld\nSTATUS=serving", (long)getpid());
    notify(ready);
    if (admin_start(srv, cfg, a->file) < 0) {
        wharf_server_stop(srv);
        pidfile_release(&pf);
        return 1;
    }
    pidfile_path = a->pidfile;
    upgrade_set_pidfile(pf.fd);
    upgrade_ready();
    pf.ours = pf.fd >= 0; /* serving: the file is this process's now */
    stop(srv, &set, serve(srv, a->file, &set));
    if (upgrade_handed_over())
        pf.ours = 0; /* the new wharfd's now */
    pidfile_release(&pf);
    return 0;
}

int main(int argc, char **argv)
{
    upgrade_init(argc, argv);
    struct wharfd_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (a.signal_name && strcmp(a.signal_name, "status") == 0)
        return admin_status(a.file, a.pidfile);
    if (a.signal_name)
        return send_signal(a.signal_name, a.pidfile);

    wharf_error e;
    wharf_config *cfg = NULL;
    if (wharf_config_load_file(a.file, &cfg, &e) < 0) {
        fprintf(stderr, "wharfd: %s\n", e.text);
        return 1;
    }
    if (a.dump) {
        rc = dump_config(cfg);
        wharf_config_free(cfg);
        return rc;
    }
    wharf_server *srv = wharf_server_new();
    if (!srv) {
        fprintf(stderr, "wharfd: out of memory\n");
        wharf_config_free(cfg);
        return 1;
    }
    rc = a.check_only ? check_config(srv, cfg, a.file) : run(srv, cfg, &a);
    wharf_config_free(cfg);
    wharf_server_free(srv);
    return rc;
}
