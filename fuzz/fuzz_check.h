/* fuzz_check.h - what the libFuzzer targets here share: CHECK, an invariant
 * that aborts (so libFuzzer keeps the input as a crash) naming the file,
 * the line and the condition that failed. */
#ifndef WHARF_FUZZ_CHECK_H
#define WHARF_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond) do {                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                      \
        }                                                                 \
    } while (0)

#endif
