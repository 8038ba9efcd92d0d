/*
 * acme.h - certificates obtained from an ACME CA (RFC 8555) and renewed
 * without anyone's help.
 *
 * One thread of its own (acme.c) keeps the schedule: it orders what is
 * missing or due, watches the state folder, and warns before expiry. Its
 * HTTPS to the CA is blocking BoringSSL over a socket, on that thread only,
 * so no worker ever waits for the CA. A certificate it obtains is written to
 * the state folder (0600) and put into the running TLS contexts
 * (tlsconf_slot_publish()): no reload, no connection dropped.
 *
 * The parts, each with its own header:
 *   acme_plan.h    when: renewal time, backoff, expiry-warning thresholds
 *   acme_order.h   the protocol: directory, account, order, renewalInfo
 *   acme_https.h   one HTTPS exchange with the CA
 *   acme_crypto.h  JWK, JWS, CSR, challenge certificate, ARI identifier
 *   acme_store.h   the state folder: keys, certificates, order lock
 *   acme_chal.h    the challenges under way, shared with a peer
 *
 * Challenges are answered by the gateway itself, ahead of every route:
 * HTTP-01 through acme_http01_answer() on plain HTTP; TLS-ALPN-01 (RFC 8737)
 * through acme_alpn_set() in the TLS contexts' certificate choice.
 *
 * Renewal is due inside the CA's suggested window when its directory offers
 * renewalInfo (RFC 9773), else at two thirds of a certificate's lifetime; a
 * failure is retried with backoff while the old certificate is served.
 *
 * Two gateways sharing one state folder (an HA pair) do not both order: the
 * order runs under the folder's lock for that certificate, the other
 * gateway waits, takes up the certificate when it lands, and answers the
 * challenges that reach it from the folder. The same thread warns in the log
 * at 30, 14 and 7 days before any certificate, file or ACME, expires: once
 * per threshold and certificate.
 */
#ifndef ONEGATE_ACME_H
#define ONEGATE_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <openssl/ssl.h>

#include "rules.h"

struct acme;

/* Starts the thread on the certificates of cfg. Takes its own reference to
 * cfg. NULL (logged) when no thread can be started. */
struct acme *acme_start(struct rules_config *cfg);
/* A reloaded rule file: new entries are ordered, dropped ones forgotten. */
void acme_reload(struct acme *a, struct rules_config *cfg);
/* Stops the thread; an exchange with the CA under way ends within its timeout. */
void acme_stop(struct acme *a);

/* HTTP-01: when path is /.well-known/acme-challenge/TOKEN for a challenge
 * under way, writes its key authorization into out and returns its length;
 * otherwise -1 (the request goes to the routes). Thread-safe, no allocation. */
int acme_http01_answer(const char *path, size_t len, char *out, size_t cap);

/* TLS-ALPN-01: the challenge certificate for a name under validation, set
 * on ssl; false when there is none (the ClientHello is served as usual). */
bool acme_alpn_set(SSL *ssl, const char *name, size_t len);
/* Whether a TLS-ALPN-01 validation of that name is under way: the connection
 * offering acme-tls/1 for it is terminated here, even under a passthrough route. */
bool acme_alpn_pending(const char *name, size_t len);
/* Whether an ALPN list (wire format) offers acme-tls/1. */
bool acme_alpn_offered(const uint8_t *list, size_t len);

/* An ACME certificate as the running client knows it, for the status page,
 * /api/status, /metrics and `onegate certs list`. False when no client runs
 * or it has no certificate of that name. Thread-safe. */
struct acme_cert_view {
	bool issued;                    /* false: the self-signed stand-in is served */
	time_t not_after;               /* of the issued one */
	time_t next_attempt;            /* the renewal (or the retry after a failure) is due then */
	unsigned failures;              /* in a row */
	char last_error[512];           /* "" after a success */
};
bool acme_cert_view(const char *name, struct acme_cert_view *v);

#endif
