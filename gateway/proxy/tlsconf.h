/*
 * tlsconf.h - the TLS contexts one configuration needs: per terminating
 * service a server context that picks the certificate from the client's SNI
 * and signature algorithms before the handshake goes on, and per pool with
 * tls a client context for re-encryption. Built once per load, shared by all
 * workers, reference-counted like the rules snapshot it belongs to.
 */
#ifndef ONEGATE_TLSCONF_H
#define ONEGATE_TLSCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "rules.h"

struct tlsconf;

/* NULL with a reason in err when a context cannot be built (a pool's
 * ca_file unreadable, say). Certificates themselves were checked by the loader. */
struct tlsconf *tlsconf_new(const struct rules_config *cfg, char *err, size_t errlen);
struct tlsconf *tlsconf_ref(struct tlsconf *t);
void tlsconf_unref(struct tlsconf *t);

/* A server-side SSL for a connection to a terminating service, or NULL. */
SSL *tlsconf_server_ssl(const struct tlsconf *t, size_t svc);
/* A client SSL to a server of this pool, sending name as SNI (NULL or "": none)
 * and, when the pool verifies, requiring the server's certificate to be for it.
 * A pool without tls gets an unverified connection (only its HTTPS health
 * checks ask for one). NULL when out of memory. */
SSL *tlsconf_pool_ssl(const struct tlsconf *t, size_t pool, const char *name);

/* Whether a request's Host belongs on a connection whose ClientHello named sni
 * (RFC 9110 15.5.20, 421 Misdirected Request): false when another certificate
 * of the service covers host and the certificates chosen for sni do not, so
 * the client reused a connection meant for another site. With no SNI, no Host,
 * or a host no certificate covers, the routes decide. Allocation-free. */
bool tlsconf_host_fits(const struct tlsconf *t, size_t svc, const char *sni, size_t sni_len, const char *host,
                       size_t host_len);

/* ACME certificates: every context built for the rule file's certificate
 * named name serves item from now on (new handshakes; open connections keep
 * theirs), across reloads. Thread-safe; takes its own reference. 0, or -1
 * when out of memory. */
struct certs_item;
int tlsconf_slot_publish(const char *name, struct certs_item *item);

/* Session tickets of a service without ticket_key_file: this process's own
 * keys, derived from a secret drawn at start, a new one every
 * TLSCONF_TICKET_ROTATE seconds. keys[0] encrypts; keys[1], the previous
 * period's, still decrypts, so a ticket lives at least one period. Shared by
 * every service and kept across reloads. */
#define TLSCONF_TICKET_ROTATE (12 * 3600)
void tlsconf_own_ticket_keys(time_t now, uint8_t keys[2][RULES_TICKET_KEY_LEN]);

#endif
