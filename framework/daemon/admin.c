/*
 * admin.c - wharfd's admin socket (see admin.h).
 *
 * One thread polls the listening unix socket, a wake-up pipe and up to
 * ADMIN_MAX_CLIENTS clients.  A client sends commands, one per line (at
 * most ADMIN_LINE bytes); each reply is text ending with an empty line, and
 * a failed command's first line starts with "error: ".  The commands of the
 * library (wharf_server_command: show listeners|workers|conns|generations|
 * limits, pause|resume|drain listener, close conn) and wharfd's own:
 *
 *   show info            pid, version, config file, generation, reloads
 *   reload               reads the config file again; the reply is "reload
 *                        done (generation N)" or the exact error
 *   set log-level LEVEL  error, warn, info or debug
 *   help, quit
 *
 * Access is the socket file's: it is created with "mode" (default 0600)
 * and owned by the user wharfd started as.  Every command is logged with
 * the caller's uid and pid (SO_PEERCRED), the command and its result.
 * Replies are written with a 2 s send timeout: a client that does not read
 * is dropped, and the server's threads never wait for the admin thread.
 */
#include "admin.h"
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_MAX_CLIENTS 8
#define ADMIN_LINE 1024
#define ADMIN_SEND_TIMEOUT_S 2

struct admin_client {
    int fd;                  /* -1: free slot */
    struct ucred cred;
    size_t len;
    bool skipping;           /* past a line too long: dropping input up to its end */
    char line[ADMIN_LINE];
};

static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    wharf_server *srv;
    char *file;              /* the config file "reload" reads */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int fd, wake[2];
    pthread_t thread;
    bool running;
    time_t started;
    struct admin_client clients[ADMIN_MAX_CLIENTS];
} admin = {.fd = -1, .wake = {-1, -1}};

void admin_lock(void)
{
    pthread_mutex_lock(&server_lock);
}

void admin_unlock(void)
{
    pthread_mutex_unlock(&server_lock);
}

/* ---- the config's "admin" section ---------------------------------------------- */

/* admin.socket and admin.mode of cfg (path "" when none).  Returns 0 or -1
 * with the reason on stderr. */
static int admin_settings(const wharf_config *cfg, char *path, size_t pathlen, mode_t *mode)
{
    char err[512];
    char *text = wharf_config_dump(cfg, err, sizeof err);
    if (!text) {
        fprintf(stderr, "wharfd: %s\n", err);
        return -1;
    }
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    json_t *a = json_object_get(root, "admin");
    const char *sock = json_string_value(json_object_get(a, "socket"));
    const char *m = json_string_value(json_object_get(a, "mode"));
    *mode = (mode_t)strtol(m ? m : "0600", NULL, 8);
    int rc = 0;
    if (sock && strlen(sock) >= pathlen) {
        fprintf(stderr, "wharfd: admin.socket: longer than %zu bytes: %s\n", pathlen - 1, sock);
        rc = -1;
    }
    snprintf(path, pathlen, "%s", rc == 0 && sock ? sock : "");
    json_decref(root);
    return rc;
}

/* ---- the commands wharfd adds --------------------------------------------------- */

static char *admin_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *admin_strdupf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* "reload": as SIGHUP, with the result returned. */
static int admin_reload(char **reply)
{
    wharf_error e;
    char err[2048];
    wharf_config *cfg = NULL;
    int rc = wharf_config_load_file(admin.file, &cfg, &e);
    if (rc < 0) {
        wharf_server_reload(admin.srv, NULL, NULL, 0); /* counts the refusal */
        snprintf(err, sizeof err, "%s", e.text);
    } else {
        rc = wharf_server_reload(admin.srv, cfg, err, sizeof err);
    }
    wharf_config_free(cfg);
    if (rc < 0) {
        wharf_log(WHARF_LOG_ERROR, "reload failed, still serving the previous config: %s", err);
        *reply = admin_strdupf("reload failed, still serving the previous config: %s\n", err);
        return rc;
    }
    struct wharf_server_info info;
    wharf_server_info(admin.srv, &info);
    *reply = admin_strdupf("reload done (generation %llu)\n", (unsigned long long)info.generation);
    return 0;
}

static int admin_log_level(const char *level, char **reply)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const enum wharf_log_level levels[] = {WHARF_LOG_ERROR, WHARF_LOG_WARN,
                                                  WHARF_LOG_INFO, WHARF_LOG_DEBUG};
    for (int i = 0; level && i < 4; i++) {
        if (strcmp(level, names[i]) == 0) {
            wharf_log_set_level(levels[i]);
            *reply = admin_strdupf("log level %s\n", names[i]);
            return 0;
        }
    }
    *reply = admin_strdupf("set log-level: expected error, warn, info or debug\n");
    return -EINVAL;
}

static int admin_info(char **reply)
{
    struct wharf_server_info info;
    wharf_server_info(admin.srv, &info);
    *reply = admin_strdupf("pid %ld\nversion %s\nconfig %s\nuptime_s %lld\nworkers %u\n"
                           "generation %llu\nreloads %llu\nreloads_failed %llu\n"
                           "connections_open %llu\n",
                           (long)getpid(), wharf_version(), admin.file,
                           (long long)(time(NULL) - admin.started), info.workers,
                           (unsigned long long)info.generation,
                           (unsigned long long)info.reloads,
                           (unsigned long long)info.reloads_failed,
                           (unsigned long long)info.connections_open);
    return 0;
}

static const char admin_help[] =
    "show info                        pid, version, generation, reloads\n"
    "show listeners                   each listener: address, state, counters\n"
    "show workers                     each worker: connections, queued hand-offs\n"
    "show conns [LISTENER]            each connection: id, state, peer, age\n"
    "show generations                 the current and older generations still in use\n"
    "show limits                      the configured limits\n"
    "pause listener NAME|*            stop accepting (the kernel backlog holds new ones)\n"
    "drain listener NAME|*            stop accepting, close its idle connections\n"
    "resume listener NAME|*           accept again\n"
    "close conn ID                    close one connection\n"
    "set log-level LEVEL              error, warn, info or debug\n"
    "reload                           read the config file again, reply with the result\n"
    "help                             this list\n"
    "quit                             close this connection\n";

/* Runs one line.  Returns 0 or a negative errno, the reply in *reply. */
static int admin_run(const char *line, char **reply)
{
    char w0[32] = "", w1[32] = "", w2[64] = "";
    int n = sscanf(line, "%31s %31s %63s", w0, w1, w2);
    if (n == 1 && strcmp(w0, "help") == 0)
        return (*reply = strdup(admin_help)) ? 0 : -ENOMEM;
    if (n == 1 && strcmp(w0, "reload") == 0)
        return admin_reload(reply);
    if (n == 2 && strcmp(w0, "show") == 0 && strcmp(w1, "info") == 0)
        return admin_info(reply);
    if (n >= 2 && strcmp(w0, "set") == 0 && strcmp(w1, "log-level") == 0)
        return admin_log_level(n == 3 ? w2 : NULL, reply);
    return wharf_server_command(admin.srv, line, reply);
}

/* ---- clients ------------------------------------------------------------------- */

/* Writes all of s (bounded by the send timeout).  Returns 0 or -1. */
static int admin_send(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The command as logged: printable ASCII only. */
static void admin_printable(const char *in, char *out, size_t outlen)
{
    size_t k = 0;
    for (; *in && k + 1 < outlen; in++)
        out[k++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
    out[k] = '\0';
}

static void admin_client_close(struct admin_client *c)
{
    close(c->fd);
    c->fd = -1;
}

/* Runs line for client c, audits it and replies.  Returns false when the
 * client is to be closed. */
static bool admin_command(struct admin_client *c, const char *line)
{
    char shown[128];
    admin_printable(line, shown, sizeof shown);
    if (strspn(line, " \t\r") == strlen(line))
        return true;
    if (strcmp(line, "quit") == 0 || strcmp(line, "quit\r") == 0) {
        wharf_log(WHARF_LOG_INFO, "admin: uid %u pid %ld: \"quit\": ok", (unsigned)c->cred.uid,
                  (long)c->cred.pid);
        return false;
    }
    char *reply = NULL;
    admin_lock();
    int rc = admin_run(line, &reply);
    admin_unlock();
    char first[160] = "";
    if (reply) {
        snprintf(first, sizeof first, "%.*s", (int)strcspn(reply, "\n"), reply);
        admin_printable(first, first, sizeof first);
    }
    wharf_log(rc < 0 ? WHARF_LOG_WARN : WHARF_LOG_INFO, "admin: uid %u pid %ld: \"%s\": %s%s",
              (unsigned)c->cred.uid, (long)c->cred.pid, shown, rc < 0 ? "error: " : "ok",
              rc < 0 ? first : "");
    bool ok = (rc >= 0 || admin_send(c->fd, "error: ", 7) == 0) &&
              admin_send(c->fd, reply ? reply : "out of memory\n",
                         strlen(reply ? reply : "out of memory\n")) == 0 &&
              admin_send(c->fd, "\n", 1) == 0;
    free(reply);
    return ok;
}

/* Reads what client c sent and runs each whole line.  A line too long is
 * answered with an error and dropped up to its newline; the connection
 * goes on (closing at once, with the rest of the line unread, would make
 * the client's write fail before it reads the error).  Returns false when
 * the client is to be closed. */
static bool admin_read(struct admin_client *c)
{
    ssize_t n = recv(c->fd, c->line + c->len, sizeof c->line - 1 - c->len, 0);
    if (n <= 0)
        return n < 0 && (errno == EINTR || errno == EAGAIN);
    c->len += (size_t)n;
    c->line[c->len] = '\0';
    char *start = c->line, *nl;
    while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->line)))) {
        *nl = '\0';
        if (c->skipping)
            c->skipping = false;
        else if (!admin_command(c, start))
            return false;
        start = nl + 1;
    }
    c->len -= (size_t)(start - c->line);
    memmove(c->line, start, c->len);
    if (c->skipping) {
        c->len = 0;
    } else if (c->len == sizeof c->line - 1) {
        static const char msg[] = "error: line too long (at most 1023 bytes)\n\n";
        wharf_log(WHARF_LOG_WARN, "admin: uid %u pid %ld: line too long; dropped",
                  (unsigned)c->cred.uid, (long)c->cred.pid);
        c->len = 0;
        c->skipping = true;
        return admin_send(c->fd, msg, sizeof msg - 1) == 0;
    }
    return true;
}

static void admin_accept(void)
{
    int fd = accept4(admin.fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct admin_client *c = NULL;
    for (int i = 0; i < ADMIN_MAX_CLIENTS && !c; i++)
        if (admin.clients[i].fd < 0)
            c = &admin.clients[i];
    if (!c) {
        static const char msg[] = "error: too many admin clients\n\n";
        send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
        return;
    }
    socklen_t len = sizeof c->cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0)
        c->cred = (struct ucred){.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    struct timeval tv = {ADMIN_SEND_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c->fd = fd;
    c->len = 0;
    c->skipping = false;
}

static void *admin_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[ADMIN_MAX_CLIENTS + 2];
        p[0] = (struct pollfd){.fd = admin.wake[0], .events = POLLIN};
        p[1] = (struct pollfd){.fd = admin.fd, .events = POLLIN};
        for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
            p[i + 2] = (struct pollfd){.fd = admin.clients[i].fd, .events = POLLIN};
        if (poll(p, ADMIN_MAX_CLIENTS + 2, -1) < 0)
            continue;
        if (p[0].revents)
            break;
        for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
            if (p[i + 2].revents && !admin_read(&admin.clients[i]))
                admin_client_close(&admin.clients[i]);
        if (p[1].revents & POLLIN)
            admin_accept();
    }
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
        if (admin.clients[i].fd >= 0)
            admin_client_close(&admin.clients[i]);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------- */

/* Whether another process answers on the socket at path. */
static bool admin_in_use(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct stat st;
    bool used = fd >= 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
                connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return used;
}

/*
 * Binds the socket at a temporary name next to path with mode, then
 * renames it over path, so the name always leads to a listening socket: a
 * socket file left by an earlier run is replaced; one another wharfd
 * answers on is not, unless this wharfd is that one's upgrade.  Returns the
 * fd or -1 (stderr).
 */
static int admin_bind(const char *path, mode_t mode)
{
    if (!upgrade_starting() && admin_in_use(path)) {
        fprintf(stderr, "wharfd: admin.socket %s: another process answers on it\n", path);
        return -1;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path, sizeof a.sun_path, "%s.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof a.sun_path) {
        fprintf(stderr, "wharfd: admin.socket %s: name too long\n", path);
        return -1;
    }
    unlink(a.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mode_t old = umask(0777 & ~mode);
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc < 0 || chmod(a.sun_path, mode) < 0 || listen(fd, 16) < 0 ||
        rename(a.sun_path, path) < 0) {
        fprintf(stderr, "wharfd: admin.socket %s: %s\n", path, strerror(errno));
        if (rc == 0)
            unlink(a.sun_path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int admin_start(wharf_server *srv, const wharf_config *cfg, const char *file)
{
    mode_t mode;
    if (admin_settings(cfg, admin.path, sizeof admin.path, &mode) < 0)
        return -1;
    if (!admin.path[0])
        return 0;
    admin.fd = admin_bind(admin.path, mode);
    if (admin.fd < 0)
        return -1;
    admin.srv = srv;
    admin.file = strdup(file);
    admin.started = time(NULL);
    for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
        admin.clients[i].fd = -1;
    if (pipe2(admin.wake, O_CLOEXEC) < 0 ||
        pthread_create(&admin.thread, NULL, admin_main, NULL) != 0) {
        fprintf(stderr, "wharfd: admin socket: cannot start its thread\n");
        admin_stop();
        return -1;
    }
    pthread_setname_np(admin.thread, "wharf-admin");
    admin.running = true;
    wharf_log(WHARF_LOG_INFO, "admin socket on %s (mode %04o)", admin.path, (unsigned)mode);
    return 0;
}

void admin_stop(void)
{
    if (admin.running) {
        ssize_t n = write(admin.wake[1], "x", 1);
        (void)n;
        pthread_join(admin.thread, NULL);
        admin.running = false;
    }
    if (admin.fd >= 0) {
        close(admin.fd);
        if (!upgrade_handed_over()) /* else the path is the new wharfd's now */
            unlink(admin.path);
        admin.fd = -1;
    }
    for (int i = 0; i < 2; i++)
        if (admin.wake[i] >= 0)
            close(admin.wake[i]), admin.wake[i] = -1;
    free(admin.file);
    admin.file = NULL;
}

/* ---- wharfd -s status --------------------------------------------------------- */

/* Whether the process in pidfile runs (its pid in *pid). */
static bool admin_pid_alive(const char *pidfile, long *pid)
{
    FILE *f = pidfile ? fopen(pidfile, "r") : NULL;
    *pid = 0;
    if (f && fscanf(f, "%ld", pid) != 1)
        *pid = 0;
    if (f)
        fclose(f);
    return *pid > 1 && kill((pid_t)*pid, 0) == 0;
}

int admin_status(const char *file, const char *pidfile)
{
    long pid;
    char path[sizeof admin.path] = "";
    wharf_error e;
    wharf_config *cfg = NULL;
    mode_t mode;
    if (wharf_config_load_file(file, &cfg, &e) == 0)
        admin_settings(cfg, path, sizeof path, &mode);
    wharf_config_free(cfg);
    if (!path[0]) {
        bool alive = admin_pid_alive(pidfile, &pid);
        if (!pidfile)
            fprintf(stderr, "wharfd: -s status: %s has no admin.socket and no -p PIDFILE given\n",
                    file);
        else
            printf("wharfd: %s (pid file %s; no admin.socket in %s)\n",
                   alive ? "running" : "not running", pidfile, file);
        return alive ? 0 : 1;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        printf("wharfd: not running (admin socket %s: %s)\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    static const char ask[] = "show info\nshow listeners\nquit\n";
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc = admin_send(fd, ask, sizeof ask - 1) == 0 ? 0 : 1;
    char buf[4096];
    ssize_t n;
    while (rc == 0 && (n = recv(fd, buf, sizeof buf, 0)) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    close(fd);
    return rc;
}
