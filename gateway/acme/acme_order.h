/*
 * acme_order.h - the ACME protocol (RFC 8555) for one certificate: the
 * directory, the account, an order with its authorizations and challenges,
 * the CSR, the chain's download; and the CA's renewal information (RFC 9773).
 *
 * Runs on the ACME thread only and blocks it (acme_https.h): polling pauses
 * through run->pause, which returns true when the thread is stopping.
 * Challenges are put in the shared table (acme_chal.h) for the time of their
 * validation; DNS-01 goes through the admin's dns_hook, waited for.
 */
#ifndef ONEGATE_ACME_ORDER_H
#define ONEGATE_ACME_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "rules.h"

/* One run of the protocol: what it needs (set by the caller) and what it learns. */
struct acme_run {
	const struct rules_cert *rc;
	const char *state_dir;
	bool (*pause)(void *arg, long seconds);
	void *pause_arg;
	/* learnt */
	EVP_PKEY *account;              /* freed by acme_run_clear() */
	char jwk[256];                  /* {"crv","kty","x","y"}: the thumbprint's input */
	char thumb[64];
	char kid[1024];
	char nonce[256];
	char new_nonce[1024], new_account[1024], new_order[1024];
	char renewal_info[1024];        /* "" when the CA offers none */
	char err[512];                  /* why the last call failed */
};
void acme_run_clear(struct acme_run *x);

/* A whole order for x->rc; 0 when the chain and its key are in the state
 * folder (acme_store_save()), else -1 with x->err. */
int acme_order(struct acme_run *x);

/* The CA's suggested renewal window for cert (RFC 9773): 1 with *start and
 * *end (and *retry_after, the seconds before asking again, 0 when the CA
 * said nothing), 0 when the directory offers no renewalInfo, -1 with x->err. */
int acme_renewal_window(struct acme_run *x, X509 *cert, time_t *start, time_t *end, long *retry_after);

/* A renewalInfo answer's suggestedWindow: 0 with start < end, else -1. */
int acme_ari_parse(const char *json, size_t len, time_t *start, time_t *end);

#endif
