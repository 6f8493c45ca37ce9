/* cli.h - wharf-load's main program as a function, so tests can run it in-process. */
#ifndef WLOAD_CLI_H
#define WLOAD_CLI_H

/* Parses argv, runs (or merges), reports on stdout, and returns the exit status:
 * 0 pass, 1 fail (verification or thresholds), 2 bad arguments, 3 could not run. */
int cli_main(int argc, char **argv);

#endif
