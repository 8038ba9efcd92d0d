/*
 * acme_crypto.h - the cryptography of ACME, on BoringSSL: base64url, the
 * account key's JWK and thumbprint (RFC 7638), ES256 JWS (RFC 7515/8555), the
 * CSR, the TLS-ALPN-01 challenge certificate (RFC 8737) and the ARI
 * certificate identifier (RFC 9773).
 *
 * Pure functions of their arguments: no I/O, no global state, callable from
 * any thread. Every char * returned is malloc'd and freed by the caller;
 * NULL means out of memory or a key that is not what the function needs.
 */
#ifndef ONEGATE_ACME_CRYPTO_H
#define ONEGATE_ACME_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "rules.h"

/* base64url without padding (RFC 7515 section 2). */
char *acme_b64url(const uint8_t *p, size_t n);

/* The JWK of a P-256 account key, members in the order RFC 7638 hashes
 * them, and its thumbprint. 0, or -1 when the key is not P-256 or the
 * buffers are short. */
int acme_jwk(EVP_PKEY *account, char *jwk, size_t jcap, char *thumb, size_t tcap);

/* The flattened JSON serialization of a JWS signed by account over payload
 * ("" for POST-as-GET), protected header naming kid, or the jwk when kid is "". */
char *acme_jws(EVP_PKEY *account, const char *jwk, const char *kid, const char *nonce, const char *url,
               const char *payload);

/* The CSR for a's names (all as SANs, the first also as CN), base64url DER. */
char *acme_csr(const struct rules_acme *a, EVP_PKEY *key);

/* The self-signed certificate RFC 8737 asks for: name, and the SHA-256 of
 * keyauth in a critical acmeIdentifier extension. 0 with *cert and *key
 * owned by the caller, or -1. */
int acme_alpn_make(const char *name, const char *keyauth, X509 **cert, EVP_PKEY **key);

/* The DNS-01 TXT value: base64url(SHA-256(keyauth)). */
char *acme_dns01_value(const char *keyauth);

/* RFC 9773 section 4.1: base64url(Authority Key Identifier's keyIdentifier)
 * "." base64url(serial number's DER content octets). */
char *acme_ari_id(const uint8_t *aki, size_t aki_len, const uint8_t *serial, size_t serial_len);
/* The same from a certificate; NULL when it has no Authority Key Identifier. */
char *acme_ari_cert_id(X509 *cert);

#endif
