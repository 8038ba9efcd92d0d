/*
 * acme_https.h - one blocking HTTPS exchange with an ACME CA.
 *
 * Used only by the ACME thread (acme.c, acme_order.c): a connection of its
 * own per request (HTTP/1.0, so the answer ends at close and is never
 * chunked), the CA's certificate verified against ca_file for the URL's host,
 * every socket operation bounded by ACME_HTTPS_TIMEOUT_S. Never called on a
 * worker.
 */
#ifndef ONEGATE_ACME_HTTPS_H
#define ONEGATE_ACME_HTTPS_H

#include <stddef.h>

#define ACME_HTTPS_TIMEOUT_S 10

/* An answer. buf is owned by the answer: acme_resp_clear() frees it. */
struct acme_resp {
	int status;
	char *buf;                      /* head and body */
	const char *body;               /* inside buf */
	size_t body_len;
	char nonce[256];                /* Replay-Nonce */
	char location[1024];            /* Location */
	long retry_after;               /* Retry-After in seconds, 0 when absent */
};

/* method url (https://host[:port]/path) with body (NULL: none; otherwise sent
 * as application/jose+json). ca_file NULL: the system's roots. 0 with r
 * filled (any HTTP status), or -1 with err saying what failed and r empty. */
int acme_https(const char *ca_file, const char *method, const char *url, const char *body, struct acme_resp *r,
               char *err, size_t errcap);
void acme_resp_clear(struct acme_resp *r);

/* Splits https://host[:port]/path (host may be a bracketed IPv6 literal);
 * path points into url. 0, or -1 when url is not of that form. */
int acme_url_split(const char *url, char *host, size_t hcap, char *port, size_t pcap, const char **path);

#endif
