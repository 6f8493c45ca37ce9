/*
 * check_main.h - the end of every suite's main(): run the suite in Check's
 * default (forking) mode and turn its result into the exit status.
 */
#ifndef WHARF_CHECK_MAIN_H
#define WHARF_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

/* Runs s (and frees it); EXIT_SUCCESS when every test passed. */
static inline int check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
