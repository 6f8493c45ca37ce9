/* fuzz_check.h - what the libFuzzer targets here share: CHECK, an invariant
 * that aborts (so libFuzzer keeps the input as a crash) naming the file,
 * the line and the condition that failed; fuzz_cuts, where an input's cut
 * bytes split the stream that follows them into reads. */
#ifndef WHARF_FUZZ_CHECK_H
#define WHARF_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond) do {                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                      \
        }                                                                 \
    } while (0)

static inline int fuzz_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    return x < y ? -1 : x > y;
}

/* The ends of the reads a stream of len bytes arrives in: each of the ncut
 * bytes of cut falls in 256ths of len; at[0..ncut] ascending, at[ncut] = len
 * (at has room for ncut + 1). */
static inline void fuzz_cuts(const uint8_t *cut, unsigned ncut, size_t len, size_t *at)
{
    for (unsigned i = 0; i < ncut; i++)
        at[i] = (size_t)cut[i] * len / 256;
    qsort(at, ncut, sizeof(at[0]), fuzz_cmp_size);
    at[ncut] = len;
}

#endif
