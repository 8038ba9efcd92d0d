#define _GNU_SOURCE /* asprintf */
#include "acme/acme_crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "certs.h"

char *acme_b64url(const uint8_t *p, size_t n)
{
	size_t cap;
	if (!EVP_EncodedLength(&cap, n))
		return NULL;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	EVP_EncodeBlock((uint8_t *)out, p, n);
	size_t k = 0;
	for (size_t i = 0; out[i]; i++) {
		char c = out[i];
		if (c == '=')
			break;
		out[k++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	out[k] = '\0';
	return out;
}

static char *acme_b64url_str(const char *s)
{
	return acme_b64url((const uint8_t *)s, strlen(s));
}

int acme_jwk(EVP_PKEY *account, char *jwk, size_t jcap, char *thumb, size_t tcap)
{
	const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(account);
	BIGNUM *bx = BN_new(), *by = BN_new();
	uint8_t xb[32], yb[32];
	int ok = ec && bx && by &&
	         EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec), bx, by, NULL) &&
	         BN_bn2bin_padded(xb, 32, bx) && BN_bn2bin_padded(yb, 32, by);
	BN_free(bx);
	BN_free(by);
	char *ex = ok ? acme_b64url(xb, 32) : NULL, *ey = ok ? acme_b64url(yb, 32) : NULL;
	int n = ex && ey ? snprintf(jwk, jcap, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", ex, ey) : -1;
	free(ex);
	free(ey);
	if (!ok || n < 0 || (size_t)n >= jcap)
		return -1;
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)jwk, strlen(jwk), d);
	char *t = acme_b64url(d, sizeof(d));
	n = t ? snprintf(thumb, tcap, "%s", t) : -1;
	free(t);
	return n < 0 || (size_t)n >= tcap ? -1 : 0;
}

char *acme_jws(EVP_PKEY *account, const char *jwk, const char *kid, const char *nonce, const char *url,
               const char *payload)
{
	json_error_t je;
	json_t *prot = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", nonce, "url", url);
	if (prot && kid[0])
		json_object_set_new(prot, "kid", json_string(kid));
	else if (prot)
		json_object_set_new(prot, "jwk", json_loads(jwk, 0, &je));
	char *ptext = prot ? json_dumps(prot, JSON_COMPACT) : NULL;
	json_decref(prot);
	char *p64 = ptext ? acme_b64url_str(ptext) : NULL, *b64 = acme_b64url_str(payload);
	free(ptext);
	char *input = NULL, *sig64 = NULL, *out = NULL;
	ECDSA_SIG *sig = NULL;
	if (!p64 || !b64 || asprintf(&input, "%s.%s", p64, b64) < 0) {
		input = NULL;
		goto done;
	}
	uint8_t d[SHA256_DIGEST_LENGTH], rs[64];
	SHA256((const uint8_t *)input, strlen(input), d);
	sig = ECDSA_do_sign(d, sizeof(d), EVP_PKEY_get0_EC_KEY(account));
	const BIGNUM *r, *s;
	if (!sig)
		goto done;
	ECDSA_SIG_get0(sig, &r, &s);
	if (!BN_bn2bin_padded(rs, 32, r) || !BN_bn2bin_padded(rs + 32, 32, s) || !(sig64 = acme_b64url(rs, 64)))
		goto done;
	json_t *jws = json_pack("{s:s, s:s, s:s}", "protected", p64, "payload", b64, "signature", sig64);
	out = jws ? json_dumps(jws, JSON_COMPACT) : NULL;
	json_decref(jws);
done:
	ECDSA_SIG_free(sig);
	free(p64);
	free(b64);
	free(input);
	free(sig64);
	return out;
}

char *acme_csr(const struct rules_acme *a, EVP_PKEY *key)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *subj = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	size_t len = 1;
	for (size_t i = 0; i < a->nnames; i++)
		len += strlen(a->names[i]) + 5;
	char *san = malloc(len), *out = NULL;
	uint8_t *der = NULL;
	X509_EXTENSION *ext = NULL;
	if (!req || !subj || !exts || !san)
		goto done;
	san[0] = '\0';
	for (size_t i = 0; i < a->nnames; i++) {
		strcat(san, i ? ",DNS:" : "DNS:");
		strcat(san, a->names[i]);
	}
	int n;
	if (!X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const uint8_t *)a->names[0], -1, -1, 0) ||
	    !X509_REQ_set_subject_name(req, subj) || !X509_REQ_set_pubkey(req, key) ||
	    !(ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name, san)) || !sk_X509_EXTENSION_push(exts, ext))
		goto done;
	ext = NULL;
	if (!X509_REQ_add_extensions(req, exts) || !X509_REQ_sign(req, key, EVP_sha256()) ||
	    (n = i2d_X509_REQ(req, &der)) <= 0)
		goto done;
	out = acme_b64url(der, (size_t)n);
done:
	OPENSSL_free(der);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(subj);
	X509_REQ_free(req);
	free(san);
	ERR_clear_error();
	return out;
}

int acme_alpn_make(const char *name, const char *keyauth, X509 **cert, EVP_PKEY **key)
{
	if (certs_self_signed(&name, 1, CERTS_KEY_ECDSA_P256, 7L * 24 * 3600, cert, key) != 0)
		return -1;
	uint8_t d[SHA256_DIGEST_LENGTH], der[2 + SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)keyauth, strlen(keyauth), d);
	der[0] = 0x04;
	der[1] = SHA256_DIGEST_LENGTH;
	memcpy(der + 2, d, sizeof(d));
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext = NULL;
	int ok = oid && os && ASN1_OCTET_STRING_set(os, der, sizeof(der)) &&
	         (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, os)) && X509_add_ext(*cert, ext, -1) &&
	         X509_sign(*cert, *key, EVP_sha256());
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(oid);
	if (!ok) {
		X509_free(*cert);
		EVP_PKEY_free(*key);
		*cert = NULL;
		*key = NULL;
		return -1;
	}
	return 0;
}

/* One authorization: the challenge of the kind this name takes, answered and waited for. */

char *acme_dns01_value(const char *keyauth)
{
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)keyauth, strlen(keyauth), d);
	return acme_b64url(d, sizeof(d));
}

char *acme_ari_id(const uint8_t *aki, size_t aki_len, const uint8_t *serial, size_t serial_len)
{
	char *a = acme_b64url(aki, aki_len), *s = acme_b64url(serial, serial_len), *out = NULL;
	if (a && s && asprintf(&out, "%s.%s", a, s) < 0)
		out = NULL;
	free(a);
	free(s);
	return out;
}

char *acme_ari_cert_id(X509 *cert)
{
	AUTHORITY_KEYID *akid = X509_get_ext_d2i(cert, NID_authority_key_identifier, NULL, NULL);
	const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
	char *out = NULL;
	uint8_t *der = NULL;
	int n;
	/* The serial's DER content octets: the encoding without its tag and length. */
	if (akid && akid->keyid && serial && (n = i2d_ASN1_INTEGER(serial, &der)) > 2) {
		size_t hl = der[1] & 0x80 ? 2u + (der[1] & 0x7f) : 2u;
		if ((size_t)n > hl)
			out = acme_ari_id(ASN1_STRING_get0_data(akid->keyid), (size_t)ASN1_STRING_length(akid->keyid), der + hl,
			                  (size_t)n - hl);
	}
	OPENSSL_free(der);
	AUTHORITY_KEYID_free(akid);
	ERR_clear_error();
	return out;
}
