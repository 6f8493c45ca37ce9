/* main.c - entry point of wharf-load, the load generator for TCP/UDP echo servers.
 * Everything happens in cli_main (cli.c), which the tests also call. */
#include "cli.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
