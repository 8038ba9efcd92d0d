/*
 * inspect.c - `onegate certs inspect FILE`: what a certificate file holds and
 * what is missing, before an admin puts it in a rule file.
 */
#define _GNU_SOURCE /* memmem */
#include "certs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define CERTS_INSPECT_MAX (1024 * 1024)

static void certs_print_time(FILE *out, const char *label, const ASN1_TIME *t, time_t now)
{
	BIO *b = BIO_new(BIO_s_mem());
	char text[64] = "?";
	if (b && ASN1_TIME_print(b, t)) {
		int n = BIO_read(b, text, (int)sizeof(text) - 1);
		text[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	ASN1_TIME *nt = ASN1_TIME_set(NULL, now);
	int days = 0, secs = 0;
	if (nt && ASN1_TIME_diff(&days, &secs, nt, t))
		fprintf(out, days > 0 || (days == 0 && secs >= 0) ? "    %-10s %s (in %d days)\n" : "    %-10s %s (%d days ago)\n",
		        label, text, days >= 0 ? days : -days);
	else
		fprintf(out, "    %-10s %s\n", label, text);
	ASN1_TIME_free(nt);
}

static void certs_print_hex(FILE *out, const char *label, const ASN1_OCTET_STRING *s)
{
	if (!s)
		return;
	fprintf(out, "    %-10s ", label);
	for (int i = 0; i < ASN1_STRING_length(s); i++)
		fprintf(out, "%s%02X", i ? ":" : "", ASN1_STRING_get0_data(s)[i]);
	fprintf(out, "\n");
}

static void certs_print_key(FILE *out, EVP_PKEY *k)
{
	if (!k) {
		fprintf(out, "    key        ?\n");
		return;
	}
	if (EVP_PKEY_id(k) == EVP_PKEY_RSA)
		fprintf(out, "    key        RSA %u bits\n", EVP_PKEY_bits(k));
	else if (EVP_PKEY_id(k) == EVP_PKEY_EC) {
		const EC_GROUP *g = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(k));
		int nid = g ? EC_GROUP_get_curve_name(g) : 0;
		fprintf(out, "    key        ECDSA %s\n", nid == NID_X9_62_prime256v1 ? "P-256" : nid == NID_secp384r1 ? "P-384" : "other curve");
	} else {
		fprintf(out, "    key        other type\n");
	}
}

static void certs_print_one(FILE *out, size_t i, X509 *x, time_t now)
{
	char subj[512], iss[512];
	X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
	X509_NAME_oneline(X509_get_issuer_name(x), iss, sizeof(iss));
	fprintf(out, "certificate %zu\n    subject    %s\n    issuer     %s\n", i, subj, iss);
	GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (size_t k = 0; san && k < sk_GENERAL_NAME_num(san); k++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, k);
		if (g->type == GEN_DNS)
			fprintf(out, "    %-10s %.*s\n", k ? "" : "names", ASN1_STRING_length(g->d.dNSName),
			        (const char *)ASN1_STRING_get0_data(g->d.dNSName));
	}
	GENERAL_NAMES_free(san);
	EVP_PKEY *k = X509_get_pubkey(x);
	certs_print_key(out, k);
	EVP_PKEY_free(k);
	certs_print_time(out, "not before", X509_get0_notBefore(x), now);
	certs_print_time(out, "not after", X509_get0_notAfter(x), now);
	certs_print_hex(out, "key id", X509_get0_subject_key_id(x));
	certs_print_hex(out, "issuer id", X509_get0_authority_key_id(x));
	if (X509_check_ca(x))
		fprintf(out, "    %-10s yes\n", "CA");
}

/* Reads every certificate (and a key, when there is one) from PEM, DER or PKCS#12. */
static int certs_inspect_read(const char *path, const char *password, STACK_OF(X509) *certs, EVP_PKEY **key,
                              FILE *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(err, "cannot read \"%s\": %s\n", path, strerror(errno));
		return -1;
	}
	uint8_t *buf = malloc(CERTS_INSPECT_MAX);
	size_t n = buf ? fread(buf, 1, CERTS_INSPECT_MAX, f) : 0;
	fclose(f);
	if (!buf)
		return -1;
	if (memmem(buf, n, "-----BEGIN ", 11)) {
		BIO *b = BIO_new_mem_buf(buf, (int)n);
		X509 *x;
		while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
			sk_X509_push(certs, x);
		BIO_free(b);
		ERR_clear_error();
		b = BIO_new_mem_buf(buf, (int)n);
		*key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	} else {
		const uint8_t *p = buf;
		X509 *x = d2i_X509(NULL, &p, (long)n);
		if (x) {
			sk_X509_push(certs, x);
		} else {
			CBS cbs;
			CBS_init(&cbs, buf, n);
			if (!PKCS12_get_key_and_certs(key, certs, &cbs, password ? password : "")) {
				uint32_t e = ERR_peek_last_error();
				fprintf(err, "\"%s\": %s\n", path,
				        ERR_GET_REASON(e) == PKCS8_R_INCORRECT_PASSWORD
				            ? "a PFX file and the password is wrong (give it with --password-file FILE)"
				            : "neither a PEM, DER nor PFX certificate file");
				free(buf);
				ERR_clear_error();
				return -1;
			}
		}
	}
	ERR_clear_error();
	free(buf);
	if (sk_X509_num(certs) == 0) {
		fprintf(err, "\"%s\" holds no certificate\n", path);
		return -1;
	}
	return 0;
}

int certs_inspect(FILE *out, const char *path, const char *password, const char *ca_file)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	EVP_PKEY *key = NULL;
	int rc = 1;
	time_t now = time(NULL);
	if (!certs || certs_inspect_read(path, password, certs, &key, out) < 0)
		goto out;
	size_t leaf = 0;
	for (size_t i = 0; key && i < sk_X509_num(certs); i++)
		if (X509_check_private_key(sk_X509_value(certs, i), key)) {
			leaf = i;
			break;
		}
	ERR_clear_error();
	fprintf(out, "%s: %zu certificate%s%s\n\n", path, sk_X509_num(certs), sk_X509_num(certs) == 1 ? "" : "s",
	        key ? ", and the private key of certificate 1" : ", no private key");
	for (size_t i = 0; i < sk_X509_num(certs); i++)
		certs_print_one(out, i + 1, sk_X509_value(certs, i), now);

	/* The chain as a client would build it: from the leaf through the file's other certificates. */
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	const char *ca = ca_file ? ca_file : "/etc/ssl/certs/ca-certificates.crt";
	fprintf(out, "\nchain (trusted roots: %s)\n", ca);
	if (store && ctx && X509_STORE_load_locations(store, ca, NULL) &&
	    X509_STORE_CTX_init(ctx, store, sk_X509_value(certs, leaf), certs)) {
		if (X509_verify_cert(ctx) == 1) {
			STACK_OF(X509) *full = X509_STORE_CTX_get1_chain(ctx);
			for (size_t i = 0; full && i < sk_X509_num(full); i++) {
				char s[512];
				X509_NAME_oneline(X509_get_subject_name(sk_X509_value(full, i)), s, sizeof(s));
				fprintf(out, "    %zu %s%s\n", i, s, i + 1 == sk_X509_num(full) ? "  (root, not served)" : "");
			}
			sk_X509_pop_free(full, X509_free);
			fprintf(out, "complete: yes\n");
			rc = 0;
		} else {
			int e = X509_STORE_CTX_get_error(ctx);
			X509 *at = X509_STORE_CTX_get_current_cert(ctx);
			char iss[512] = "?";
			if (at)
				X509_NAME_oneline(X509_get_issuer_name(at), iss, sizeof(iss));
			fprintf(out, "complete: no: %s\nmissing: the certificate of issuer %s\n", X509_verify_cert_error_string(e),
			        iss);
			if (at)
				certs_print_hex(out, "issuer id", X509_get0_authority_key_id(at));
		}
	} else {
		fprintf(out, "cannot load trusted roots from %s\n", ca);
	}
	if (!key)
		fprintf(out, "missing: the private key (a PFX export with the key, or key = \"FILE\" in the rule file)\n");
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}
