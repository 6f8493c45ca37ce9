/*
 * version.c - wharf_version (wharf.h): the version of the library that is
 * running, which a program or a module may compare with the
 * WHARF_VERSION_* macros it was built with.  configure.ac's AC_INIT holds
 * the same number (tests/check_api.c fails when they differ).
 */
#include "wharf.h"

const char *wharf_version(void)
{
    return WHARF_VERSION_STRING;
}
