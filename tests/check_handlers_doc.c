/*
 * check_handlers_doc.c - promises of docs/guide.md that no other suite
 * checks, each through the test kit (wharf_test.h) with a small handler
 * defined here: kept input comes back once output that was pending when a
 * call consumed nothing is all written ("The input contract", rule 2, last
 * case), and a connection that keeps consuming a long burst yields to other
 * work after a bounded number of calls (rule 2, first case).
 */
#include <check.h>
#include <stdbool.h>
#include <string.h>

#include "check_main.h"
#include "wharf_test.h"

/* ---- "pending": one line per call, none while output is pending ---------- */

/* The answer to a line "a": larger than a socketpair takes at once, below
 * the high watermark set in pending_listener (so no on_drain is involved). */
static char big_answer[1 << 20];

static size_t pending_data(wharf_conn *c, const void *data, size_t len)
{
    if (wharf_output_pending(c) > 0)
        return 0; /* the rule says: offered again once the output is out */
    const char *p = data, *nl = memchr(p, '\n', len);
    if (!nl)
        return 0;
    if (p[0] == 'a')
        wharf_send(c, big_answer, sizeof big_answer);
    else
        wharf_send(c, "B\n", 2);
    return (size_t)(nl - p) + 1;
}

static const struct wharf_handler pending_handler = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "pending",
    .on_data = pending_data,
};

static const char *const pending_listener =
    "\"buffers\": {\"high_watermark\": 8388608, \"low_watermark\": 4194304, "
    "\"max_output\": 16777216}";

/* Reads the client's side until "B\n" arrives (or the bounded rounds run
 * out); returns the bytes read before it ended, or 0 without it. */
static size_t read_until_b(wharf_test *t, wharf_test_conn *c)
{
    size_t total = 0, len;
    for (int i = 0; i < 500; i++) {
        const char *out = wharf_test_output(c, &len);
        total += len;
        if (len >= 2 && memcmp(out + len - 2, "B\n", 2) == 0)
            return total;
        wharf_test_run(t, 10);
    }
    return 0;
}

/* Both lines in one read: "b" is refused while the answer to "a" is
 * pending (a re-offer in the same event), and must come back once the
 * answer is all written. */
START_TEST(input_refused_while_output_pends_comes_back_once_written)
{
    char err[256];
    memset(big_answer, 'x', sizeof big_answer);
    wharf_test *t = wharf_test_new(&pending_handler, pending_listener, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    wharf_test_pause_reading(c, true);
    ck_assert_int_eq(wharf_test_send(c, "a\nb\n", 4), 0);
    wharf_test_pause_reading(c, false);
    ck_assert_uint_eq(read_until_b(t, c), sizeof big_answer + 2);
    wharf_test_free(t);
}
END_TEST

/* The same, with "b" arriving in a read of its own while the answer to
 * "a" is still pending: the call made for the new bytes takes nothing, and
 * the rule holds the same. */
START_TEST(input_refused_on_a_fresh_read_comes_back_once_written)
{
    char err[256];
    memset(big_answer, 'x', sizeof big_answer);
    wharf_test *t = wharf_test_new(&pending_handler, pending_listener, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    wharf_test_conn *c = wharf_test_connect(t);
    wharf_test_pause_reading(c, true);
    ck_assert_int_eq(wharf_test_send(c, "a\n", 2), 0);
    ck_assert_int_eq(wharf_test_send(c, "b\n", 2), 0);
    wharf_test_pause_reading(c, false);
    ck_assert_uint_eq(read_until_b(t, c), sizeof big_answer + 2);
    wharf_test_free(t);
}
END_TEST

/* ---- "yield": one 2-byte line per call; the first call posts a marker ----- */

static unsigned yield_calls;      /* on_data calls so far */
static unsigned calls_before_post; /* on_data calls when the marker ran (0: not yet) */

static void yield_marker(void *arg, bool cancelled)
{
    (void)arg;
    if (!cancelled)
        calls_before_post = yield_calls;
}

static size_t yield_data(wharf_conn *c, const void *data, size_t len)
{
    (void)data;
    if (len < 2)
        return 0;
    if (yield_calls++ == 0)
        ck_assert_int_eq(wharf_post(wharf_conn_worker(c), yield_marker, NULL), 0);
    wharf_send(c, "k", 1);
    return 2;
}

static const struct wharf_handler yield_handler = {
    .abi_version = WHARF_ABI_VERSION,
    .name = "yield",
    .on_data = yield_data,
};

/* 1,000 lines in one read, one line per call: a post made during the first
 * call runs before the burst is finished (the connection yields after at
 * most 16 re-offers in one event), and the burst is still answered whole. */
START_TEST(a_long_burst_yields_to_other_work)
{
    enum { LINES = 1000 };
    char err[256], burst[2 * LINES];
    wharf_test *t = wharf_test_new(&yield_handler, NULL, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    yield_calls = calls_before_post = 0;
    for (int i = 0; i < LINES; i++)
        burst[2 * i] = 'y', burst[2 * i + 1] = '\n';
    wharf_test_conn *c = wharf_test_connect(t);
    ck_assert_int_eq(wharf_test_send(c, burst, sizeof burst), 0);
    size_t total = 0, len;
    for (int i = 0; i < 100 && total < LINES; i++) {
        wharf_test_output(c, &len);
        total += len;
        if (total < LINES)
            wharf_test_run(t, 10);
    }
    ck_assert_uint_eq(total, LINES);
    ck_assert_uint_eq(yield_calls, LINES);
    ck_assert_msg(calls_before_post > 0 && calls_before_post < LINES,
                  "the post ran after %u of %u calls", calls_before_post, LINES);
    wharf_test_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("handlers_doc");
    TCase *tc = tcase_create("handlers_doc");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, input_refused_while_output_pends_comes_back_once_written);
    tcase_add_test(tc, input_refused_on_a_fresh_read_comes_back_once_written);
    tcase_add_test(tc, a_long_burst_yields_to_other_work);
    suite_add_tcase(s, tc);
    return check_run(s);
}
