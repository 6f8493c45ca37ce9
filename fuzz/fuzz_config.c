/*
 * fuzz_config.c - libFuzzer target for the config loader: the input, made a
 * C string, goes through config_load_string (framework/config/config.h), and on
 * success the config is freed.  Success must come with a config and no
 * failure with one; a failure must leave a one-line message.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char err[256];
    struct config *cfg = (struct config *)&cfg; /* must be overwritten */
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    err[0] = '\0';
    int rc = config_load_string(text, "fuzz.json", &cfg, err, sizeof err);
    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        CHECK(cfg != NULL);
        config_free(cfg);
    } else {
        CHECK(cfg == NULL);
        CHECK(err[0] != '\0');
        CHECK(strchr(err, '\n') == NULL);
    }
    free(text);
    return 0;
}
