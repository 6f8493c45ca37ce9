/*
 * tls_ocsp.h - OCSP stapling from a response file ("ocsp_file" of a "tls"
 * object or of one of its "sni" certificates), as nginx's
 * ssl_stapling_file and HAProxy's .ocsp files do: the operator fetches the
 * response (openssl ocsp ... -respout) and reloads; the server never asks
 * a responder itself.
 *
 * The response is read and checked when the listener's contexts are built
 * (tls_ctx.c: wharfd -t, start and reload), kept with the certificate's
 * SSL_CTX (freed with it), and handed to each client that sends the
 * status_request extension, in TLS 1.2 (CertificateStatus) and TLS 1.3
 * (the certificate's extension).  Clients that do not ask get nothing.
 */
#ifndef WHARF_TLS_OCSP_H
#define WHARF_TLS_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct ssl_ctx_st;

/*
 * Reads the DER OCSP response in file `name` and checks it against the
 * certificate of ctx (already loaded, with its chain): a successful
 * response with one basic single response, whose cert id is the
 * certificate's with its issuer (which must be in the chain), signed by that
 * issuer or a responder it delegated to (OCSP signing), with status good,
 * thisUpdate not in the future (5 minutes of leeway) and nextUpdate not in
 * the past.  Then ctx staples it.  `label` ("FILE: listeners[0].tls.
 * ocsp_file") starts the log lines: one at load naming the nextUpdate, a
 * warning when that is a day away or less, and a warning (once) when a
 * handshake finds it passed (the response is then no longer sent).
 * Returns true, or false with the reason in why (the caller names the
 * file).  Any thread; the cost is a file read and a signature check.
 */
bool tls_ocsp_use_file(struct ssl_ctx_st *ctx, const char *label, const char *name, char *why,
                       size_t whylen);

/* Whether ctx staples a response that has a nextUpdate; then its time into
 * *when (Unix time).  Any thread. */
bool tls_ocsp_next_update(const struct ssl_ctx_st *ctx, time_t *when);

#endif
