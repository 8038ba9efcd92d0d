/*
 * acme_chal.h - the challenges under way, answered ahead of every route.
 *
 * The ACME thread adds a challenge before it tells the CA to validate and
 * removes it after; the workers look them up (acme_http01_answer(),
 * acme_alpn_pending(), acme_alpn_set(), declared in acme.h and defined in
 * acme_chal.c). A small table under one lock: only challenge requests look.
 *
 * Each challenge is also written to the state folder's challenges folder
 * (acme_store.h), so that the other gateway of a pair answers a validation
 * that reaches it; a lookup that misses the table reads that folder. Those
 * reads happen on a worker, only for /.well-known/acme-challenge/ requests
 * and ClientHellos offering acme-tls/1, and are one small local file.
 */
#ifndef ONEGATE_ACME_CHAL_H
#define ONEGATE_ACME_CHAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#define ACME_CHAL_HTTP01 "http-01"
#define ACME_CHAL_TLSALPN01 "tls-alpn-01"

/* Where this process's challenges are shared and its peer's are read; ""
 * (or never called) shares none. Called by the ACME thread's start and
 * reloads. */
void acme_chal_folder(const char *state_dir);

/* HTTP-01: token's key authorization. TLS-ALPN-01: also the name validated
 * and the challenge certificate, whose ownership passes to the table (freed
 * on removal, or here on failure). 0, or -1 when the table is full. */
int acme_chal_add(const char *token, const char *keyauth, const char *name, X509 *cert, EVP_PKEY *key);
void acme_chal_remove(const char *token);

#endif
