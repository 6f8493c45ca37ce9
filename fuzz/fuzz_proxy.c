/*
 * fuzz_proxy.c - libFuzzer target for proxy_parse (framework/base/proxy.h).
 *
 * Each input is parsed with every `allowed` combination, and the contract is
 * checked: the result is within the input, "need more" only below the most
 * a header can take, a reason exactly on failure, the same answer twice, the
 * same header whichever versions are allowed, and a header never depends on
 * the bytes after it (parsing just the header gives the same; one byte less
 * needs more).
 */
#include "proxy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan sees any read past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);

    int rc[4];
    struct proxy_result res[4];
    for (unsigned allowed = 0; allowed < 4; allowed++) {
        struct proxy_result r, again;
        int n = proxy_parse(buf, size, allowed, &r);
        rc[allowed] = n;
        res[allowed] = r;

        CHECK(n < 0 || (size_t)n <= size);
        CHECK(n <= PROXY_MAX_HEADER);
        CHECK((n < 0) == (r.reason != NULL));
        if (allowed == 0)
            CHECK(n < 0);
        if (n == 0)
            CHECK(size < (allowed == PROXY_V1 ? (size_t)PROXY_V1_MAX_LINE
                                              : (size_t)PROXY_MAX_HEADER));
        /* Deterministic, and nothing left over from an earlier call. */
        memset(&again, 0xa5, sizeof again);
        CHECK(proxy_parse(buf, size, allowed, &again) == n);
        CHECK(memcmp(&r, &again, sizeof r) == 0);
        CHECK(memcmp(data, buf, size) == 0);

        if (n > 0) {
            CHECK(r.version == 1 || r.version == 2);
            CHECK(r.command == PROXY_CMD_LOCAL || r.command == PROXY_CMD_PROXY);
            CHECK(r.src.ss_family == r.dst.ss_family);
            if (r.command == PROXY_CMD_LOCAL)
                CHECK(r.src.ss_family == 0);
            CHECK(r.tlv_offset + r.tlv_len <= (size_t)n);
            /* The header alone gives the same; one byte less needs more. */
            CHECK(proxy_parse(buf, (size_t)n, allowed, &again) == n);
            CHECK(memcmp(&r, &again, sizeof r) == 0);
            CHECK(proxy_parse(buf, (size_t)n - 1, allowed, &again) == 0);
        }
    }
    /* With both versions allowed, the answer is the one of the version the
     * first byte picked. */
    if (rc[3] >= 0) {
        int single = rc[3] > 0 ? res[3].version : (size && buf[0] == 'P') ? 1 : 2;
        if (size > 0) {
            CHECK(rc[single] == rc[3]);
            CHECK(memcmp(&res[single], &res[3], sizeof res[3]) == 0);
        }
    }
    free(buf);
    return 0;
}
