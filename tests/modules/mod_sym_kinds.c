/*
 * mod_sym_kinds.c - test modules whose "wharf_handler" symbol is not a
 * descriptor, built three times: SYM_FUNC (a function), SYM_SMALL (a 16-byte
 * object), SYM_INT (an int).  The loader must refuse each one before it
 * reads it.
 */
#include <stdint.h>

#if defined(SYM_FUNC)
__attribute__((visibility("default"))) int wharf_handler(void);
int wharf_handler(void)
{
    return 2;
}
#elif defined(SYM_SMALL)
__attribute__((visibility("default"))) const uint32_t wharf_handler[4] = {2, 0, 0, 0};
#else
__attribute__((visibility("default"))) const int wharf_handler = 2;
#endif
