/*
 * config_schema_tsv.c - prints the config file's schema table
 * (framework/config/config_schema.c) as tab-separated lines: key path, type,
 * min, max, default, choices.  tests/check_docs.sh compares it with
 * docs/config.md and docs/wharf.json.5.
 */
#include <stdio.h>

#include "config_schema.h"

int main(void)
{
    config_schema_tsv(stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}
