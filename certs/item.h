/*
 * item.h - what a loaded certificate holds, shared by the loader (load.c) and
 * the table of items kept for reuse across reloads (reuse.c). Private to certs/.
 */
#ifndef ONEGATE_CERTS_ITEM_H
#define ONEGATE_CERTS_ITEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "certs.h"

#define CERTS_WARN_DAYS 30
#define CERTS_DIGEST_LEN 32
#define CERTS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

struct certs_item {
	int refs;
	char *name;
	X509 *leaf;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;          /* intermediates, leaf side first, root left out */
	bool ecdsa;
	time_t not_after;
	char **names;
	size_t nnames;
	uint8_t *ocsp;                  /* DER OCSP response to staple, or NULL */
	size_t ocsp_len;
	time_t ocsp_until;              /* its nextUpdate; 0: none */
	time_t not_before;
	bool placeholder;               /* self-signed stand-in for a certificate not issued yet */
	char **warnings;                /* said at load; said again when the item is reused */
	size_t nwarnings;
	/* reuse.c's table: the digest of the files the item came from. The table holds
	 * no reference; the last unref takes the item out before freeing it. */
	bool kept;
	uint8_t digest[CERTS_DIGEST_LEN];
	struct certs_item *kept_next;
};

/* Takes a reference unless the count already fell to 0 (the item is being freed). */
bool certs_item_try_ref(struct certs_item *c);
/* A store with the trusted roots of path (a reference of the caller's own), or NULL when they
 * cannot be loaded. */
X509_STORE *certs_roots_get(const char *path);
/* Called by the last unref before the item is freed. */
void certs_reuse_forget(struct certs_item *c);

#endif
