/*
 * mc_testutil.c - the memcache suites' shared helpers (mc_testutil.h).
 */
#include "mc_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

wharf_test *mc_test_new_json(const char *json)
{
    char err[512] = "";
    wharf_test *t = wharf_test_new(&wharf_handler, json, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    return t;
}

wharf_test *mc_test_new(const char *options)
{
    char json[1024];
    int n = snprintf(json, sizeof json, "%s, \"options\": {%s}", MC_TEST_BUFFERS,
                     options ? options : "");
    ck_assert_int_lt(n, (int)sizeof json);
    return mc_test_new_json(json);
}

const char *mc_test_rt(wharf_test_conn *c, const char *in)
{
    static char *last;
    free(last);
    wharf_test_send(c, in, strlen(in));
    size_t n;
    const char *out = wharf_test_output(c, &n);
    last = malloc(n + 1);
    ck_assert_ptr_nonnull(last);
    memcpy(last, out, n + 1);
    return last;
}

unsigned long long mc_test_stat(wharf_test_conn *c, const char *name)
{
    const char *out = mc_test_rt(c, "stats\r\n");
    char pat[128];
    snprintf(pat, sizeof pat, "STAT %s ", name);
    const char *p = strstr(out, pat);
    ck_assert_msg(p != NULL, "no %s in %s", name, out);
    return strtoull(p + strlen(pat), NULL, 10);
}
