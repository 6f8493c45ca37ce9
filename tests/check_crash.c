/*
 * check_crash.c - the fatal-signal report (crash.c): a handler that crashes
 * in each kind of callback (init, fini, on_data, on_datagram), and one that
 * runs out of stack on a worker and on the thread that starts the server,
 * each in a child process whose log is read back.  The report line names
 * the callback, handler and listener (and worker and connection where there
 * is one) and the fault address, says "stack overflow" when the stack ran
 * out, and a backtrace follows; the child dies of the signal.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "crash.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#else
#define UNDER_SANITIZER 0
#endif

/* What a child does before it (should) crash. */
enum scenario {
    IN_INIT, IN_FINI, IN_ON_DATA, IN_ON_DATAGRAM, OVERFLOW_WORKER, OVERFLOW_INIT, IN_POST,
    IN_INIT_ODD_NAME
};

/* Runs the scenario with the report installed; returns only if nothing crashed. */
static void child_run(enum scenario sc)
{
    crash_install();
    const char *crash_in = sc == IN_INIT || sc == IN_INIT_ODD_NAME ? "init"
                           : sc == IN_FINI ? "fini"
                           : sc == OVERFLOW_INIT ? "init_overflow" : "none";
    const char *proto = sc == IN_ON_DATAGRAM ? "udp" : "tcp";
    struct tserver *t = tserver_start(
        "{\"workers\": 1, \"listeners\": [{\"name\": \"%s\", \"protocol\": \"%s\", "
        "\"address\": \"127.0.0.1\", \"port\": 0, \"handler\": \"mod_crash\", "
        "\"options\": {\"crash_in\": \"%s\"}}]}",
        sc == IN_INIT_ODD_NAME ? "cr\\u0001ashy\\n\\\\" : "crashy", proto, crash_in);
    int port = tserver_port(t, 0);
    if (sc == IN_ON_DATA || sc == OVERFLOW_WORKER || sc == IN_POST) {
        int fd = tcp_connect("127.0.0.1", port);
        const char *what = sc == IN_ON_DATA ? "crash" : sc == IN_POST ? "post" : "overflow";
        send_all(fd, what, strlen(what));
        char buf[16];
        recv_exact(fd, buf, sizeof buf, 5000);
    } else if (sc == IN_ON_DATAGRAM) {
        int fd = udp_socket("127.0.0.1", 0, 5000);
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        sendto(fd, "crash", 5, 0, (struct sockaddr *)&to, sizeof to);
        char buf[16];
        recv(fd, buf, sizeof buf, 0);
    }
    tserver_stop(t); /* IN_FINI crashes here */
}

/* Runs the scenario in a child with its stderr (the log) on a pipe; fills
 * out with what it wrote and returns its wait status. */
static int run_child(enum scenario sc, char *out, size_t outlen)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        child_run(sc);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    uint64_t deadline = now_ms() + 20000;
    while (now_ms() < deadline) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t k = read(p[0], out + n, n + 1 < outlen ? outlen - n - 1 : 0);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    out[n] = '\0';
    close(p[0]);
    int status;
    pid_t got = 0;
    for (int i = 0; i < 500 && (got = waitpid(pid, &status, WNOHANG)) == 0; i++)
        usleep(10000);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("the child did not die; it wrote:\n%s", out);
    }
    return status;
}

static bool matches(const char *text, const char *pattern)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
    bool m = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

/* Runs sc and checks the report: `line` (an extended regex) matches, a
 * backtrace through mod_crash follows, and the child died of SIGSEGV. */
static void expect_report(enum scenario sc, const char *line)
{
    static char out[1 << 16];
    int status = run_child(sc, out, sizeof out);
    if (UNDER_SANITIZER) { /* the sanitizer reports the crash itself */
        ck_assert_msg(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0),
                      "the child survived:\n%s", out);
        return;
    }
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
                  "status %#x, output:\n%s", status, out);
    ck_assert_msg(matches(out, line), "no line matching\n  %s\nin:\n%s", line, out);
    ck_assert_msg(matches(out, "^wharf: backtrace") && matches(out, "mod_crash\\.so\\(.*\\)\\[0x"),
                  "no backtrace through mod_crash.so in:\n%s", out);
}

START_TEST(crash_in_init_names_init)
{
    expect_report(IN_INIT, "^wharf: fatal signal 11 \\(SEGV\\) in handler \"crash\" callback init "
                           "\\[listener crashy\\], fault address 0x10$");
}
END_TEST

START_TEST(crash_in_fini_names_fini)
{
    expect_report(IN_FINI, "^wharf: fatal signal 11 \\(SEGV\\) in handler \"crash\" callback fini "
                           "\\[listener crashy\\], fault address 0x10$");
}
END_TEST

START_TEST(crash_in_on_data_names_connection)
{
    expect_report(IN_ON_DATA, "^wharf: fatal signal 11 \\(SEGV\\) in handler \"crash\" callback "
                              "on_data \\[listener crashy worker 0 connection [0-9]+\\], fault "
                              "address 0x10$");
}
END_TEST

START_TEST(crash_in_on_datagram_names_worker)
{
    expect_report(IN_ON_DATAGRAM, "^wharf: fatal signal 11 \\(SEGV\\) in handler \"crash\" "
                                  "callback on_datagram \\[listener crashy worker 0\\], fault "
                                  "address 0x10$");
}
END_TEST

START_TEST(stack_overflow_on_a_worker_is_reported)
{
    expect_report(OVERFLOW_WORKER, "^wharf: fatal signal 11 \\(SEGV\\) in handler \"crash\" "
                                   "callback on_data \\[listener crashy worker 0 connection "
                                   "[0-9]+\\], stack overflow \\(fault address 0x[0-9a-f]+\\)$");
}
END_TEST

START_TEST(stack_overflow_on_the_starting_thread_is_reported)
{
    expect_report(OVERFLOW_INIT, "^wharf: fatal signal 11 \\(SEGV\\) in handler \"crash\" "
                                 "callback init \\[listener crashy\\], stack overflow \\(fault "
                                 "address 0x[0-9a-f]+\\)$");
}
END_TEST

START_TEST(crash_in_a_post_names_the_post)
{
    expect_report(IN_POST, "^wharf: fatal signal 11 \\(SEGV\\) in handler \"crash\" callback "
                           "wharf_post \\[listener crashy worker 0\\], fault address 0x10$");
}
END_TEST

/* A listener name with control characters and a backslash is escaped in
 * the report: the line stays one line. */
START_TEST(crash_report_escapes_names)
{
    expect_report(IN_INIT_ODD_NAME, "^wharf: fatal signal 11 \\(SEGV\\) in handler \"crash\" "
                                    "callback init \\[listener cr\\\\x01ashy\\\\x0a\\\\\\\\\\], "
                                    "fault address 0x10$");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("report");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, crash_in_init_names_init);
    tcase_add_test(tc, crash_in_fini_names_fini);
    tcase_add_test(tc, crash_in_on_data_names_connection);
    tcase_add_test(tc, crash_in_on_datagram_names_worker);
    tcase_add_test(tc, stack_overflow_on_a_worker_is_reported);
    tcase_add_test(tc, stack_overflow_on_the_starting_thread_is_reported);
    tcase_add_test(tc, crash_in_a_post_names_the_post);
    tcase_add_test(tc, crash_report_escapes_names);
    suite_add_tcase(s, tc);
    return check_run(s);
}
