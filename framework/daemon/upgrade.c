/*
 * upgrade.c - the binary upgrade (see upgrade.h), nginx's USR2 with socket
 * activation's names.
 *
 * The old wharfd forks and, in the child, puts its listening sockets at
 * descriptors 3 .. 3+N-1 and the write end of a pipe at 3+N, then execs the
 * binary it was started from (the path as given, made absolute: a binary
 * replaced at that path is the new one) with the same arguments and
 *
 *   LISTEN_PID=<child> LISTEN_FDS=N LISTEN_FDNAMES=::...   (empty names)
 *   WHARF_UPGRADE_FD=3+N
 *   NOTIFY_SOCKET, WATCHDOG_USEC/WATCHDOG_PID as the old one had them
 *
 * The new wharfd's listeners take the passed socket bound to their address
 * and port (activation.c) instead of binding: both processes now accept
 * from the same kernel queues, so nothing is refused.  Once its server runs
 * and its pid file is written it writes one byte on the pipe
 * (upgrade_ready).  The old one, waiting on the pipe, then stops accepting,
 * gives the connections it had taken a moment for their first request,
 * drains them (shutdown_timeout_ms) and exits without removing the pid
 * file.  EOF on the pipe (the new binary exited: bad config, missing
 * module, not executable) or no byte in UPGRADE_WAIT_MS (it is killed)
 * means failure: the old one logs why and keeps serving.
 *
 * Under systemd (Type=notify) the old process tells the manager the new
 * main pid (MAINPID=) itself once the new one is ready, and never sends
 * STOPPING=1 while handing over.  Between fork and exec the child calls
 * only async-signal-safe functions (dup2, execve, _exit): the environment
 * is built before the fork, with room for the child's pid.
 */
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UPGRADE_WAIT_MS 30000  /* the new binary must be serving within this */
#define UPGRADE_SETTLE_MS 300  /* after pausing, before the graceful stop */
#define UPGRADE_MAX_FDS 256
#define UPGRADE_PID_DIGITS 20

extern char **environ;

static char binary[PATH_MAX + 256]; /* the path to exec, absolute */
static char **args;            /* argv as given */
static char *notify_socket;    /* NOTIFY_SOCKET as it was at start */
static int ready_fd = -1;      /* in a new wharfd: the pipe to the old one */
static bool handed_over;
static int pidfile_fd = -1;    /* old side: the locked pid file, passed on */
static int pidfile_fd_in = -1; /* new side: the one the old wharfd passed */

/* The absolute path of the binary: argv0 with a '/' is taken from the
 * start-up directory; a bare name is looked up in PATH. */
static void upgrade_find_binary(const char *argv0)
{
    char cwd[PATH_MAX];
    if (strchr(argv0, '/')) {
        if (argv0[0] == '/' || !getcwd(cwd, sizeof cwd))
            snprintf(binary, sizeof binary, "%s", argv0);
        else
            snprintf(binary, sizeof binary, "%.*s/%.200s", PATH_MAX, cwd, argv0);
        return;
    }
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        snprintf(binary, sizeof binary, "%.*s/%s", (int)n, p, argv0);
        if (n && access(binary, X_OK) == 0)
            return;
        p += n + (end != NULL);
    }
    snprintf(binary, sizeof binary, "%s", argv0);
}

void upgrade_init(int argc, char **argv)
{
    (void)argc;
    args = argv;
    upgrade_find_binary(argv[0]);
    const char *ns = getenv("NOTIFY_SOCKET");
    notify_socket = ns ? strdup(ns) : NULL;
    const char *fd = getenv("WHARF_UPGRADE_FD");
    struct stat st;
    if (fd) {
        int n = atoi(fd);
        if (n > 2 && fstat(n, &st) == 0 && S_ISFIFO(st.st_mode)) {
            ready_fd = n;
            fcntl(n, F_SETFD, FD_CLOEXEC);
        }
        unsetenv("WHARF_UPGRADE_FD");
    }
    const char *pf = getenv("WHARF_PIDFILE_FD");
    if (pf) {
        int n = atoi(pf);
        if (ready_fd >= 0 && n > 2 && fstat(n, &st) == 0 && S_ISREG(st.st_mode)) {
            pidfile_fd_in = n;
            fcntl(n, F_SETFD, FD_CLOEXEC);
        }
        unsetenv("WHARF_PIDFILE_FD");
    }
}

void upgrade_set_pidfile(int fd)
{
    pidfile_fd = fd;
}

int upgrade_pidfile_fd(void)
{
    return pidfile_fd_in;
}

void upgrade_ready(void)
{
    if (ready_fd < 0)
        return;
    ssize_t n;
    do
        n = write(ready_fd, "R", 1);
    while (n < 0 && errno == EINTR);
    close(ready_fd);
    ready_fd = -1;
}

bool upgrade_starting(void)
{
    return ready_fd >= 0;
}

bool upgrade_handed_over(void)
{
    return handed_over;
}

/* ---- the old side ----------------------------------------------------------- */

/* Whether environment entry e is one the new process gets from us. */
static bool upgrade_own_var(const char *e)
{
    static const char *const own[] = {"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=",
                                      "WHARF_UPGRADE_FD=", "WHARF_PIDFILE_FD=", "NOTIFY_SOCKET=",
                                      "WATCHDOG_PID="};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strncmp(e, own[i], strlen(own[i])) == 0)
            return true;
    return false;
}

/* The child's environment: ours without the variables we set, then ours.
 * pid_slots[0..1] point at the digits to fill in the child (LISTEN_PID,
 * WATCHDOG_PID or NULL).  Returns NULL on ENOMEM; free with free_env. */
static char **upgrade_env(int nfds, char **pid_slots)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 8, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!upgrade_own_var(environ[i]) && (env[k] = strdup(environ[i])))
            k++;
    char *names = malloc((size_t)nfds + 16);
    if (names) {
        memcpy(names, "LISTEN_FDNAMES=", 15);
        memset(names + 15, ':', nfds > 0 ? (size_t)nfds - 1 : 0);
        names[15 + (nfds > 0 ? nfds - 1 : 0)] = '\0';
        env[k++] = names;
    }
    if (asprintf(&env[k], "LISTEN_FDS=%d", nfds) >= 0)
        k++;
    if (asprintf(&env[k], "WHARF_UPGRADE_FD=%d", 3 + nfds) >= 0)
        k++;
    if (pidfile_fd >= 0 && asprintf(&env[k], "WHARF_PIDFILE_FD=%d", 3 + nfds + 1) >= 0)
        k++;
    if (notify_socket && asprintf(&env[k], "NOTIFY_SOCKET=%s", notify_socket) >= 0)
        k++;
    const char *vars[2] = {"LISTEN_PID=", getenv("WATCHDOG_USEC") ? "WATCHDOG_PID=" : NULL};
    for (int i = 0; i < 2; i++) {
        pid_slots[i] = NULL;
        if (!vars[i] || !(env[k] = calloc(1, strlen(vars[i]) + UPGRADE_PID_DIGITS + 1)))
            continue;
        strcpy(env[k], vars[i]);
        pid_slots[i] = env[k++] + strlen(vars[i]);
    }
    env[k] = NULL;
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* Writes v in decimal at p (async-signal-safe). */
static void put_pid(char *p, long v)
{
    char tmp[UPGRADE_PID_DIGITS];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0 && n < UPGRADE_PID_DIGITS);
    while (n > 0)
        *p++ = tmp[--n];
    *p = '\0';
}

/* In the child: descriptors in place, the pid filled in, exec.  Never
 * returns. */
static void upgrade_exec(const int *high, int nfds, int pipe_high, int pid_high, char **env,
                         char **pid_slots)
{
    for (int i = 0; i < nfds; i++)
        if (dup2(high[i], 3 + i) < 0)
            _exit(127);
    if (dup2(pipe_high, 3 + nfds) < 0)
        _exit(127);
    if (pid_high >= 0 && dup2(pid_high, 3 + nfds + 1) < 0) /* above every one dup2'd */
        _exit(127);
    for (int i = 0; i < 2; i++)
        if (pid_slots[i])
            put_pid(pid_slots[i], (long)getpid());
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(binary, args, env);
    _exit(127);
}

/* Waits for the child's byte.  Returns 1 (ready), 0 (EOF: it gave up) or
 * -1 (timed out). */
static int upgrade_wait(int fd)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = UPGRADE_WAIT_MS - ((now.tv_sec - start.tv_sec) * 1000LL +
                                            (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return rc < 0 ? 0 : -1;
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        return n == 1 ? 1 : 0;
    }
}

/* Reaps a child that failed: bounded, then killed. */
static void upgrade_reap(pid_t pid, const char *why)
{
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < 100 && (got = waitpid(pid, &status, WNOHANG)) == 0; i++)
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    char how[64] = "was killed";
    if (got > 0 && WIFEXITED(status))
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    else if (got > 0 && WIFSIGNALED(status))
        snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(status));
    wharf_log(WHARF_LOG_ERROR,
              "upgrade failed: the new wharfd %s (pid %ld) %s %s; this one (pid %ld) keeps "
              "serving and accepting",
              binary, (long)pid, why, how, (long)getpid());
}

/* Writes pidfile again (a failed new binary may have written or removed it). */
static void upgrade_restore_pidfile(const char *pidfile)
{
    FILE *f = pidfile ? fopen(pidfile, "w") : NULL;
    if (f) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
}

/* Tells the service manager the new main process (the old one still runs
 * and is the main one until then). */
static void upgrade_notify(pid_t pid)
{
    if (!notify_socket || strlen(notify_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(notify_socket);
    memcpy(a.sun_path, notify_socket, n);
    if (a.sun_path[0] == '@')
        a.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    char msg[96];
    snprintf(msg, sizeof msg, "MAINPID=%ld\nREADY=1\nSTATUS=serving (upgraded)", (long)pid);
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&a,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
        wharf_log(WHARF_LOG_WARN, "NOTIFY_SOCKET: %s", strerror(errno));
    close(fd);
}

/* Duplicates fds[0..n) and the pipe's write end to descriptors above 3+n,
 * close-on-exec, so the child's dup2 into 3.. never overwrites one it still
 * needs.  Returns 0 or -errno (nothing left open). */
static int upgrade_dup_high(const int *fds, int n, int pipe_w, int *high, int *pipe_high)
{
    for (int i = 0; i <= n; i++) {
        int fd = fcntl(i < n ? fds[i] : pipe_w, F_DUPFD_CLOEXEC, 3 + n + 1);
        if (fd < 0) {
            int e = errno;
            while (--i >= 0)
                close(i < n ? high[i] : *pipe_high);
            return -e;
        }
        if (i < n)
            high[i] = fd;
        else
            *pipe_high = fd;
    }
    return 0;
}

/* Forks and execs the new binary.  Returns its pid, or -errno. */
static pid_t upgrade_spawn(const int *fds, int n, int pipe_w)
{
    int high[UPGRADE_MAX_FDS], pipe_high = -1;
    int rc = upgrade_dup_high(fds, n, pipe_w, high, &pipe_high);
    if (rc < 0)
        return rc;
    /* The pid file's descriptor shares its lock with ours (a flock belongs
     * to the file description), so the new wharfd holds it on after we go. */
    int pid_high = pidfile_fd >= 0 ? fcntl(pidfile_fd, F_DUPFD_CLOEXEC, 3 + n + 2) : -1;
    char *slots[2];
    char **env = upgrade_env(n, slots);
    pid_t pid = env ? fork() : (errno = ENOMEM, -1);
    if (pid == 0)
        upgrade_exec(high, n, pipe_high, pid_high, env, slots);
    int e = errno;
    if (pid_high >= 0)
        close(pid_high);
    for (int i = 0; i < n; i++)
        close(high[i]);
    close(pipe_high);
    free_env(env);
    return pid < 0 ? -e : pid;
}

bool upgrade_run(wharf_server *srv, const char *pidfile)
{
    int fds[UPGRADE_MAX_FDS];
    int n = wharf_server_sockets(srv, fds, UPGRADE_MAX_FDS);
    if (n == -EOPNOTSUPP) {
        wharf_log(WHARF_LOG_ERROR, "upgrade refused: a listener has \"accept\": \"workers\", "
                  "whose per-worker SO_REUSEPORT sockets cannot be handed over (closing them "
                  "would reset the connections queued on them); restart wharfd instead; still "
                  "serving");
        return false;
    }
    if (n < 0 || n > UPGRADE_MAX_FDS) {
        wharf_log(WHARF_LOG_ERROR, "upgrade failed: %s; still serving",
                  n < 0 ? strerror(-n) : "too many listening sockets");
        return false;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        wharf_log(WHARF_LOG_ERROR, "upgrade failed: pipe: %s; still serving", strerror(errno));
        return false;
    }
    wharf_log(WHARF_LOG_INFO, "SIGUSR2: upgrading: starting %s with %d listening sockets",
              binary, n);
    pid_t pid = upgrade_spawn(fds, n, p[1]);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        wharf_log(WHARF_LOG_ERROR, "upgrade failed: cannot start %s: %s; still serving",
                  binary, strerror((int)-pid));
        return false;
    }
    int ready = upgrade_wait(p[0]);
    close(p[0]);
    if (ready <= 0) {
        if (ready < 0)
            kill(pid, SIGKILL);
        upgrade_reap(pid, ready < 0 ? "was not serving within 30 s and" : "did not start:");
        upgrade_restore_pidfile(pidfile);
        return false;
    }
    handed_over = true;
    upgrade_notify(pid);
    wharf_log(WHARF_LOG_INFO,
              "upgrade: the new wharfd (pid %ld) serves; this one (pid %ld) stops accepting, "
              "drains its connections and exits",
              (long)pid, (long)getpid());
    return true;
}

void upgrade_hand_over(wharf_server *srv)
{
    char *reply = NULL;
    int rc = wharf_server_command(srv, "pause listener *", &reply);
    if (rc < 0 && rc != -ENOENT)
        wharf_log(WHARF_LOG_WARN, "upgrade: cannot pause the listeners: %s",
                  reply ? reply : strerror(-rc));
    free(reply);
    nanosleep(&(struct timespec){0, UPGRADE_SETTLE_MS * 1000L * 1000L}, NULL);
}
