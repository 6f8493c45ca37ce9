/*
 * mod_no_symbol.c - a test shared object that exports a function but no
 * "wharf_handler" descriptor, so the loader must call it "not a wharf module".
 */
int mod_no_symbol_answer(void);

int mod_no_symbol_answer(void)
{
    return 42;
}
