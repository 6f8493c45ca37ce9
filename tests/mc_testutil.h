/*
 * mc_testutil.h - what the memcache handler's Check suites (check_memcache,
 * check_mc_meta, check_mc_binary, check_mc_ops) share: a test kit around the
 * handler compiled into the program, a round trip that returns the bytes a
 * command got back, and a `stats` field read.  Failures abort the test via
 * Check.
 */
#ifndef WHARF_MC_TESTUTIL_H
#define WHARF_MC_TESTUTIL_H

#include <check.h>

#include "wharf_test.h"

/* handlers/memcache/, compiled into the program. */
extern const struct wharf_handler wharf_handler;

/* A max_input that takes the suites' largest lines and values whole. */
#define MC_TEST_BUFFERS "\"buffers\": {\"max_input\": 2097152}"

/* A kit running the memcache handler with MC_TEST_BUFFERS and the given
 * listener options (JSON members without braces; NULL: none). */
wharf_test *mc_test_new(const char *options);
/* The same from a whole listener JSON text (NULL: the defaults). */
wharf_test *mc_test_new_json(const char *json);

/* Sends `in` and returns what the handler answered (all output not taken
 * yet): a NUL-terminated copy, valid until the next call. */
const char *mc_test_rt(wharf_test_conn *c, const char *in);

/* The value of "STAT <name>" in the answer to `stats`. */
unsigned long long mc_test_stat(wharf_test_conn *c, const char *name);

/* Sends `in` and checks that the answer is `out`, byte for byte. */
#define EXPECT(c, in, out) ck_assert_str_eq(mc_test_rt(c, in), out)

#endif
