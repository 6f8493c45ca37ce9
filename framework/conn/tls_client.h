/*
 * tls_client.h - the settings of outbound TLS connections (wharf.h's
 * wharf_tls_client): one client SSL_CTX made from a handler's options,
 * shared by every connection opened with it, and the per-connection SSL
 * object made from it (SNI, the name or address to verify).
 */
#ifndef WHARF_TLS_CLIENT_H
#define WHARF_TLS_CLIENT_H

#include <sys/socket.h>

#include "wharf.h"

struct ssl_st;

/*
 * A new client SSL object of t for a connection to addr, in connect state:
 * server_name (or t's, when NULL) is sent as SNI and verified against the
 * server's certificate; with no name at all, the certificate must name
 * addr's IP address.  Returns it (the caller frees it; it holds its own
 * reference to t's context), or NULL when out of memory.
 */
struct ssl_st *tls_client_ssl(const wharf_tls_client *t, const char *server_name,
                              const struct sockaddr *addr);

#endif
