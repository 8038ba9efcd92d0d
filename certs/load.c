/*
 * load.c - certificates as admins have them (PFX with a password, PEM, DER),
 * checked the way a failed publication would otherwise find out: key match,
 * validity, and a chain complete up to a trusted root.
 */
#define _GNU_SOURCE /* memmem, strndup */
#include "certs.h"
#include "item.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define CERTS_FILE_MAX (1024 * 1024)


__attribute__((format(printf, 3, 4)))
static void certs_say(const struct certs_report *rep, bool warning, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rep && rep->fn)
		rep->fn(rep->arg, warning, msg);
}

/* Reads a whole (small) file. */
static int certs_read_file(const char *path, uint8_t **out, size_t *len, const struct certs_report *rep,
                           const char *what)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		certs_say(rep, false, "cannot read %s \"%s\": %s", what, path, strerror(errno));
		return -1;
	}
	uint8_t *buf = malloc(CERTS_FILE_MAX);
	size_t n = buf ? fread(buf, 1, CERTS_FILE_MAX, f) : 0;
	bool big = buf && n == CERTS_FILE_MAX && fgetc(f) != EOF;
	fclose(f);
	if (!buf || big) {
		free(buf);
		certs_say(rep, false, "%s \"%s\" is larger than 1 MiB; that is not a certificate file", what, path);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

static bool certs_is_pem(const uint8_t *p, size_t n)
{
	return n >= 11 && memmem(p, n, "-----BEGIN ", 11) != NULL;
}

/* Every certificate in a PEM or DER file, appended to out. */
static int certs_read_certs(const char *path, STACK_OF(X509) *out, const struct certs_report *rep, const char *what)
{
	uint8_t *buf;
	size_t n;
	if (certs_read_file(path, &buf, &n, rep, what) < 0)
		return -1;
	size_t before = sk_X509_num(out);
	if (certs_is_pem(buf, n)) {
		BIO *bio = BIO_new_mem_buf(buf, (int)n);
		X509 *x;
		while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
			sk_X509_push(out, x);
		BIO_free(bio);
		ERR_clear_error();
	} else {
		const uint8_t *p = buf;
		X509 *x = d2i_X509(NULL, &p, (long)n);
		if (x)
			sk_X509_push(out, x);
		ERR_clear_error();
	}
	free(buf);
	if ((size_t)sk_X509_num(out) == before) {
		certs_say(rep, false, "%s \"%s\" holds no certificate (PEM or DER expected)", what, path);
		return -1;
	}
	return 0;
}

/* Group read is how the user onegate switches to reads a key; anyone else reading it is not. */
static bool certs_key_exposed(const struct certs_source *src, const struct stat *st)
{
	if (st->st_mode & 007)
		return true;
	return (st->st_mode & 070) && !(src->key_group_set && st->st_gid == src->key_group);
}

static EVP_PKEY *certs_read_key(const struct certs_source *src, const char *path, const struct certs_report *rep)
{
	uint8_t *buf;
	size_t n;
	struct stat st;
	if (certs_read_file(path, &buf, &n, rep, "key file") < 0)
		return NULL;
	if (stat(path, &st) == 0 && certs_key_exposed(src, &st))
		certs_say(rep, true, "key file \"%s\" can be read by other users (mode %03o); run chmod 600 \"%s\"%s", path,
		          (unsigned)(st.st_mode & 0777), path,
		          src->key_group_set ? ", or chmod 640 and chgrp it to the group onegate runs as" : "");
	EVP_PKEY *key = NULL;
	if (certs_is_pem(buf, n)) {
		BIO *bio = BIO_new_mem_buf(buf, (int)n);
		key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
	} else {
		CBS cbs;
		CBS_init(&cbs, buf, n);
		key = EVP_parse_private_key(&cbs);
	}
	ERR_clear_error();
	OPENSSL_cleanse(buf, n);
	free(buf);
	if (!key)
		certs_say(rep, false, "key file \"%s\" holds no private key (an unencrypted PEM or DER key is expected)",
		          path);
	return key;
}

/* The PFX password from exactly where the rule file said. */
static int certs_password(const struct certs_source *src, char *out, size_t cap, const struct certs_report *rep)
{
	out[0] = '\0';
	if (src->password) {
		snprintf(out, cap, "%s", src->password);
	} else if (src->password_env) {
		const char *v = getenv(src->password_env);
		if (!v) {
			certs_say(rep, false, "environment variable %s (the password of \"%s\") is not set", src->password_env,
			          src->pfx);
			return -1;
		}
		snprintf(out, cap, "%s", v);
	} else if (src->password_file) {
		uint8_t *buf;
		size_t n;
		if (certs_read_file(src->password_file, &buf, &n, NULL, "password file") < 0) {
			certs_say(rep, false, "cannot read password file \"%s\": %s", src->password_file, strerror(errno));
			return -1;
		}
		/* One line; the newline editors add is not part of the password. */
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		if (n >= cap)
			n = cap - 1;
		memcpy(out, buf, n);
		out[n] = '\0';
		OPENSSL_cleanse(buf, n);
		free(buf);
	}
	return 0;
}

static int certs_read_pfx(const struct certs_source *src, EVP_PKEY **key, STACK_OF(X509) *certs,
                          const struct certs_report *rep)
{
	char pass[1024];
	if (certs_password(src, pass, sizeof(pass), rep) < 0)
		return -1;
	uint8_t *buf;
	size_t n;
	if (certs_read_file(src->pfx, &buf, &n, rep, "PFX file") < 0)
		return -1;
	struct stat st;
	if (stat(src->pfx, &st) == 0 && certs_key_exposed(src, &st) && !pass[0])
		certs_say(rep, true, "PFX file \"%s\" has no password and can be read by other users; run chmod 600 \"%s\"",
		          src->pfx, src->pfx);
	CBS cbs;
	CBS_init(&cbs, buf, n);
	int ok = PKCS12_get_key_and_certs(key, certs, &cbs, pass);
	OPENSSL_cleanse(pass, sizeof(pass));
	free(buf);
	if (ok)
		return 0;
	uint32_t e = ERR_peek_last_error();
	ERR_clear_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PKCS8 && ERR_GET_REASON(e) == PKCS8_R_INCORRECT_PASSWORD)
		certs_say(rep, false, "wrong password for PFX file \"%s\"; check password%s", src->pfx,
		          src->password_file ? "_file" : src->password_env ? "_env" : "");
	else
		certs_say(rep, false, "PFX file \"%s\" cannot be read (%s); export it again with its private key",
		          src->pfx, ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "not PKCS#12");
	return -1;
}

static void certs_item_free(struct certs_item *c)
{
	if (!c)
		return;
	X509_free(c->leaf);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->chain, X509_free);
	for (size_t i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	free(c->name);
	free(c->ocsp);
	for (size_t i = 0; i < c->nwarnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c);
}

struct certs_item *certs_item_ref(struct certs_item *c)
{
	if (c)
		__atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

bool certs_item_try_ref(struct certs_item *c)
{
	int n = __atomic_load_n(&c->refs, __ATOMIC_RELAXED);
	while (n > 0)
		if (__atomic_compare_exchange_n(&c->refs, &n, n + 1, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return true;
	return false;
}

void certs_item_unref(struct certs_item *c)
{
	if (c && __atomic_fetch_sub(&c->refs, 1, __ATOMIC_ACQ_REL) == 1) {
		if (c->kept)
			certs_reuse_forget(c);
		certs_item_free(c);
	}
}

static void certs_name_text(X509_NAME *n, char *out, size_t cap)
{
	out[0] = '\0';
	if (n)
		X509_NAME_oneline(n, out, (int)cap);
}

static void certs_hex(const ASN1_OCTET_STRING *s, char *out, size_t cap)
{
	out[0] = '\0';
	size_t at = 0;
	for (int i = 0; s && i < ASN1_STRING_length(s) && at + 4 <= cap; i++)
		at += (size_t)snprintf(out + at, cap - at, "%s%02X", i ? ":" : "", ASN1_STRING_get0_data(s)[i]);
}

/* The key types browsers and Microsoft clients accept from a publishing gateway. */
static int certs_check_key(struct certs_item *c, const char *file, const struct certs_report *rep)
{
	int type = EVP_PKEY_id(c->key);
	if (type == EVP_PKEY_RSA) {
		unsigned bits = EVP_PKEY_bits(c->key);
		if (bits < 2048 || bits > 4096) {
			certs_say(rep, false, "\"%s\": RSA key of %u bits; use 2048 to 4096", file, bits);
			return -1;
		}
		return 0;
	}
	if (type == EVP_PKEY_EC) {
		const EC_GROUP *g = EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(c->key));
		int nid = g ? EC_GROUP_get_curve_name(g) : 0;
		if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1) {
			certs_say(rep, false, "\"%s\": ECDSA key on an unsupported curve; use P-256 or P-384", file);
			return -1;
		}
		c->ecdsa = true;
		return 0;
	}
	certs_say(rep, false, "\"%s\": unsupported key type; use RSA 2048-4096 or ECDSA P-256/P-384", file);
	return -1;
}

static int certs_check_time(struct certs_item *c, const char *file, time_t now, const struct certs_report *rep)
{
	ASN1_TIME *t = ASN1_TIME_set(NULL, now);
	int days = 0, secs = 0, bdays = 0, bsecs = 0;
	int ok = t && ASN1_TIME_diff(&days, &secs, t, X509_get0_notAfter(c->leaf)) &&
	         ASN1_TIME_diff(&bdays, &bsecs, t, X509_get0_notBefore(c->leaf));
	ASN1_TIME_free(t);
	if (!ok) {
		certs_say(rep, false, "\"%s\": the certificate's validity dates cannot be read", file);
		return -1;
	}
	c->not_after = now + (time_t)days * 86400 + secs;
	c->not_before = now + (time_t)bdays * 86400 + bsecs;
	char when[64];
	struct tm tm;
	gmtime_r(&c->not_after, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	if (days < 0 || (days == 0 && secs < 0)) {
		certs_say(rep, false, "\"%s\": the certificate expired on %s; renew it", file, when);
		return -1;
	}
	if (bdays > 0 || (bdays == 0 && bsecs > 0)) {
		certs_say(rep, false, "\"%s\": the certificate is not valid yet; check this host's clock", file);
		return -1;
	}
	if (days < CERTS_WARN_DAYS)
		certs_say(rep, true, "\"%s\": the certificate expires on %s, in %d days; renew it soon", file, when, days);
	return 0;
}

static int certs_push_name(struct certs_item *c, const char *n, size_t len)
{
	char **names = realloc(c->names, (c->nnames + 1) * sizeof(*names));
	if (!names)
		return -1;
	c->names = names;
	char *copy = strndup(n, len);
	if (!copy)
		return -1;
	for (char *p = copy; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	c->names[c->nnames++] = copy;
	return 0;
}

/* DNS names from the SAN; only when there is none, the subject's CN (RFC 6125 6.4.4). */
static int certs_read_names(struct certs_item *c)
{
	GENERAL_NAMES *san = X509_get_ext_d2i(c->leaf, NID_subject_alt_name, NULL, NULL);
	for (size_t i = 0; san && i < sk_GENERAL_NAME_num(san); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
		if (g->type == GEN_DNS &&
		    certs_push_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName), (size_t)ASN1_STRING_length(g->d.dNSName)) < 0) {
			GENERAL_NAMES_free(san);
			return -1;
		}
	}
	GENERAL_NAMES_free(san);
	if (c->nnames == 0) {
		char cn[256];
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(c->leaf), NID_commonName, cn, sizeof(cn));
		if (n > 0 && certs_push_name(c, cn, (size_t)n) < 0)
			return -1;
	}
	return 0;
}

/* Builds the chain from the leaf through the candidates to a trust anchor. */
static int certs_build_chain(struct certs_item *c, const struct certs_source *src, STACK_OF(X509) *cands, time_t now,
                             const char *file, const struct certs_report *rep)
{
	const char *ca = src->ca_file ? src->ca_file : CERTS_SYSTEM_CA;
	X509_STORE *store = certs_roots_get(ca);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = -1;
	if (!ctx)
		goto out;
	if (!store) {
		ERR_clear_error();
		certs_say(rep, false, "cannot load trusted roots from \"%s\"%s", ca,
		          src->ca_file ? "; check ca_file" : "; install the ca-certificates package or set ca_file");
		goto out;
	}
	if (!X509_STORE_CTX_init(ctx, store, c->leaf, cands))
		goto out;
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
	if (X509_verify_cert(ctx) == 1) {
		STACK_OF(X509) *full = X509_STORE_CTX_get1_chain(ctx);
		/* Served: everything between the leaf and the root. */
		for (size_t i = 1; full && i + 1 < sk_X509_num(full); i++) {
			X509 *x = sk_X509_value(full, i);
			X509_up_ref(x);
			sk_X509_push(c->chain, x);
		}
		for (size_t i = 0; i < sk_X509_num(cands); i++) {
			X509 *x = sk_X509_value(cands, i);
			bool used = false;
			for (size_t k = 0; full && k < sk_X509_num(full); k++)
				used |= X509_cmp(x, sk_X509_value(full, k)) == 0;
			if (!used) {
				char subj[256];
				certs_name_text(X509_get_subject_name(x), subj, sizeof(subj));
				certs_say(rep, true, "\"%s\": extra certificate %s is not part of the chain and is not served", file,
				          subj);
			}
		}
		sk_X509_pop_free(full, X509_free);
		rc = 0;
		goto out;
	}
	int err = X509_STORE_CTX_get_error(ctx);
	X509 *at = X509_STORE_CTX_get_current_cert(ctx);
	char issuer[256], kid[128];
	certs_name_text(at ? X509_get_issuer_name(at) : NULL, issuer, sizeof(issuer));
	certs_hex(at ? X509_get0_authority_key_id(at) : NULL, kid, sizeof(kid));
	if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	    err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN || err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT) {
		bool allowed = src->allow_incomplete_chain;
		certs_say(rep, allowed, "\"%s\": incomplete chain: no certificate of issuer %s%s%s%s; %s", file, issuer,
		          kid[0] ? " (key id " : "", kid, kid[0] ? ")" : "",
		          allowed ? "serving it as it is (allow_incomplete_chain)"
		                  : "add it with chain = \"FILE\"; or intermediates = [ ... ];, or set ca_file if the "
		                    "root is a private one");
		if (allowed) {
			for (size_t i = 0; i < sk_X509_num(cands); i++) {
				X509 *x = sk_X509_value(cands, i);
				X509_up_ref(x);
				sk_X509_push(c->chain, x);
			}
			rc = 0;
		}
		goto out;
	}
	certs_say(rep, false, "\"%s\": the chain does not verify: %s", file, X509_verify_cert_error_string(err));
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return rc;
}

/* Seconds from now to a GeneralizedTime's contents ("YYYYMMDDHHMMSSZ"); false when unreadable. */
static bool certs_ocsp_time(const CBS *t, time_t now, time_t *out)
{
	ASN1_GENERALIZEDTIME *g = ASN1_GENERALIZEDTIME_new();
	ASN1_TIME *n = ASN1_TIME_set(NULL, now);
	int days = 0, secs = 0;
	bool ok = g && n && ASN1_STRING_set(g, CBS_data(t), (int)CBS_len(t)) && ASN1_GENERALIZEDTIME_check(g) &&
	          ASN1_TIME_diff(&days, &secs, n, g);
	ASN1_GENERALIZEDTIME_free(g);
	ASN1_TIME_free(n);
	*out = now + (time_t)days * 86400 + secs;
	return ok;
}

/* The answer about the leaf in an OCSP response (RFC 6960 4.2.1), read far
 * enough to refuse what would do harm stapled: an unsuccessful response, one
 * about another certificate, a revoked or unknown status. Its signature is the
 * client's to check. An expired one is not stapled (Firefox fails a handshake
 * on a stale staple) but does not stop the load. */
static int certs_read_ocsp(struct certs_item *c, const char *path, time_t now, const struct certs_report *rep)
{
	static const uint8_t basic_oid[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01 };
	static const char *const status_names[] = { "successful", "malformedRequest", "internalError", "tryLater",
	                                             "status 4", "sigRequired", "unauthorized" };
	uint8_t *buf, *serial = NULL;
	size_t n;
	if (certs_read_file(path, &buf, &n, rep, "OCSP response file") < 0)
		return -1;
	int serial_len = i2d_ASN1_INTEGER(X509_get_serialNumber(c->leaf), &serial);
	CBS in, resp, status, wrap, bytes, oid, basic, bresp, data, list, single, id, ser, this_up;
	unsigned cert_status;
	CBS_init(&in, buf, n);
	int rc = -1;
	if (!CBS_get_asn1(&in, &resp, CBS_ASN1_SEQUENCE) || CBS_len(&in) ||
	    !CBS_get_asn1(&resp, &status, CBS_ASN1_ENUMERATED) || CBS_len(&status) != 1) {
		certs_say(rep, false, "\"%s\" is not a DER OCSP response; save the responder's answer as it is "
		          "(openssl ocsp -respout FILE)", path);
		goto out;
	}
	uint8_t st = CBS_data(&status)[0];
	if (st != 0) {
		certs_say(rep, false, "the OCSP response in \"%s\" is not a successful one (%s); fetch a new one", path,
		          st < sizeof(status_names) / sizeof(status_names[0]) ? status_names[st] : "unknown status");
		goto out;
	}
	if (!CBS_get_asn1(&resp, &wrap, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
	    !CBS_get_asn1(&wrap, &bytes, CBS_ASN1_SEQUENCE) || !CBS_get_asn1(&bytes, &oid, CBS_ASN1_OBJECT) ||
	    !CBS_mem_equal(&oid, basic_oid, sizeof(basic_oid)) || !CBS_get_asn1(&bytes, &basic, CBS_ASN1_OCTETSTRING) ||
	    !CBS_get_asn1(&basic, &bresp, CBS_ASN1_SEQUENCE) || !CBS_get_asn1(&bresp, &data, CBS_ASN1_SEQUENCE) ||
	    !CBS_get_optional_asn1(&data, NULL, NULL, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
	    !CBS_get_any_asn1_element(&data, NULL, NULL, NULL) ||          /* responderID */
	    !CBS_get_asn1(&data, NULL, CBS_ASN1_GENERALIZEDTIME) ||        /* producedAt */
	    !CBS_get_asn1(&data, &list, CBS_ASN1_SEQUENCE)) {
		certs_say(rep, false, "\"%s\" is not a basic OCSP response; save the responder's answer as it is "
		          "(openssl ocsp -respout FILE)", path);
		goto out;
	}
	while (CBS_len(&list)) {
		if (!CBS_get_asn1(&list, &single, CBS_ASN1_SEQUENCE) || !CBS_get_asn1(&single, &id, CBS_ASN1_SEQUENCE) ||
		    !CBS_get_asn1(&id, NULL, CBS_ASN1_SEQUENCE) || !CBS_get_asn1(&id, NULL, CBS_ASN1_OCTETSTRING) ||
		    !CBS_get_asn1(&id, NULL, CBS_ASN1_OCTETSTRING) || !CBS_get_asn1_element(&id, &ser, CBS_ASN1_INTEGER) ||
		    !CBS_get_any_asn1_element(&single, NULL, &cert_status, NULL) ||
		    !CBS_get_asn1(&single, &this_up, CBS_ASN1_GENERALIZEDTIME)) {
			certs_say(rep, false, "\"%s\": the OCSP response cannot be read; fetch a new one", path);
			goto out;
		}
		if (serial_len <= 0 || !CBS_mem_equal(&ser, serial, (size_t)serial_len))
			continue;
		if (cert_status != (CBS_ASN1_CONTEXT_SPECIFIC | 0)) {    /* good [0] IMPLICIT NULL */
			bool revoked = cert_status == (CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 1);
			certs_say(rep, false, "the OCSP response in \"%s\" says the certificate is %s; %s", path,
			          revoked ? "revoked" : "unknown to its CA",
			          revoked ? "replace the certificate" : "ask the certificate's own CA for the response");
			goto out;
		}
		CBS next_wrap, next;
		int has_next = 0;
		time_t until = 0;
		if (!CBS_get_optional_asn1(&single, &next_wrap, &has_next,
		                           CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
		    (has_next && (!CBS_get_asn1(&next_wrap, &next, CBS_ASN1_GENERALIZEDTIME) ||
		                  !certs_ocsp_time(&next, now, &until)))) {
			certs_say(rep, false, "\"%s\": the OCSP response's nextUpdate cannot be read; fetch a new one", path);
			goto out;
		}
		rc = 0;
		if (has_next && until <= now) {
			char when[64];
			struct tm tm;
			gmtime_r(&until, &tm);
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
			certs_say(rep, true, "the OCSP response in \"%s\" expired on %s and is not stapled; fetch a new one", path,
			          when);
			goto out;
		}
		c->ocsp = buf;
		c->ocsp_len = n;
		c->ocsp_until = until;
		buf = NULL;
		goto out;
	}
	certs_say(rep, false, "the OCSP response in \"%s\" is about another certificate; fetch the one for this "
	          "certificate's serial number", path);
out:
	OPENSSL_free(serial);
	free(buf);
	return rc;
}

/* Picks the leaf: the certificate whose public key is the private key's. */
static X509 *certs_take_leaf(STACK_OF(X509) *certs, EVP_PKEY *key)
{
	for (size_t i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (X509_check_private_key(x, key)) {
			sk_X509_delete(certs, i);
			return x;
		}
	}
	ERR_clear_error();
	return NULL;
}

/* Warnings go to the caller's report and are kept, to be said again when the item is reused. */
struct certs_record {
	const struct certs_report *rep;
	char **warnings;
	size_t nwarnings;
};

static void certs_record_say(void *arg, bool warning, const char *msg)
{
	struct certs_record *r = arg;
	if (r->rep && r->rep->fn)
		r->rep->fn(r->rep->arg, warning, msg);
	char **w = warning ? realloc(r->warnings, (r->nwarnings + 1) * sizeof(*w)) : NULL;
	if (w) {
		r->warnings = w;
		if ((w[r->nwarnings] = strdup(msg)))
			r->nwarnings++;
	}
}

static struct certs_item *certs_item_read(const struct certs_source *src, const struct certs_report *rep);

struct certs_item *certs_item_load(const struct certs_source *src, const struct certs_report *rep)
{
	struct certs_record rec = { rep, NULL, 0 };
	struct certs_report inner = { certs_record_say, &rec };
	struct certs_item *c = certs_item_read(src, &inner);
	if (c) {
		c->warnings = rec.warnings;
		c->nwarnings = rec.nwarnings;
		return c;
	}
	for (size_t i = 0; i < rec.nwarnings; i++)
		free(rec.warnings[i]);
	free(rec.warnings);
	return NULL;
}

static struct certs_item *certs_item_read(const struct certs_source *src, const struct certs_report *rep)
{
	struct certs_item *c = calloc(1, sizeof(*c));
	STACK_OF(X509) *certs = sk_X509_new_null();
	const char *file = src->pfx ? src->pfx : src->cert;
	time_t now = src->now ? src->now : time(NULL);
	if (!c || !certs || !(c->chain = sk_X509_new_null()) || !(c->name = strdup(src->name ? src->name : ""))) {
		certs_say(rep, false, "out of memory loading \"%s\"", file ? file : "");
		goto fail;
	}
	c->refs = 1;
	if (src->pfx) {
		if (certs_read_pfx(src, &c->key, certs, rep) < 0)
			goto fail;
		if (!c->key) {
			certs_say(rep, false, "PFX file \"%s\" holds no private key; export it again with the private key",
			          src->pfx);
			goto fail;
		}
	} else {
		if (!src->cert || certs_read_certs(src->cert, certs, rep, "certificate file") < 0)
			goto fail;
		if (!(c->key = certs_read_key(src, src->key, rep)))
			goto fail;
	}
	if (src->chain && certs_read_certs(src->chain, certs, rep, "chain file") < 0)
		goto fail;
	for (size_t i = 0; i < src->nintermediates; i++)
		if (certs_read_certs(src->intermediates[i], certs, rep, "intermediate file") < 0)
			goto fail;
	if (!(c->leaf = certs_take_leaf(certs, c->key))) {
		certs_say(rep, false, "\"%s\": the private key%s%s%s does not belong to %s", file,
		          src->key ? " in \"" : "", src->key ? src->key : "", src->key ? "\"" : "",
		          sk_X509_num(certs) == 1 ? "the certificate" : "any of its certificates");
		goto fail;
	}
	if (certs_check_key(c, file, rep) < 0 || certs_check_time(c, file, now, rep) < 0 ||
	    certs_build_chain(c, src, certs, now, file, rep) < 0)
		goto fail;
	if (certs_read_names(c) < 0 || c->nnames == 0) {
		certs_say(rep, false, "\"%s\": the certificate names no host (no DNS subjectAltName or CN)", file);
		goto fail;
	}
	if (src->ocsp && certs_read_ocsp(c, src->ocsp, now, rep) < 0)
		goto fail;
	sk_X509_pop_free(certs, X509_free);
	return c;
fail:
	sk_X509_pop_free(certs, X509_free);
	certs_item_free(c);
	ERR_clear_error();
	return NULL;
}

const char *certs_item_name(const struct certs_item *c)
{
	return c->name;
}

X509 *certs_item_leaf(const struct certs_item *c)
{
	return c->leaf;
}

EVP_PKEY *certs_item_key(const struct certs_item *c)
{
	return c->key;
}

STACK_OF(X509) *certs_item_chain(const struct certs_item *c)
{
	return c->chain;
}

bool certs_item_is_ecdsa(const struct certs_item *c)
{
	return c->ecdsa;
}

time_t certs_item_not_after(const struct certs_item *c)
{
	return c->not_after;
}

const uint8_t *certs_item_ocsp(const struct certs_item *c, size_t *len, time_t *until)
{
	*len = c->ocsp_len;
	*until = c->ocsp_until;
	return c->ocsp;
}

size_t certs_item_nnames(const struct certs_item *c)
{
	return c->nnames;
}

const char *certs_item_name_at(const struct certs_item *c, size_t i)
{
	return i < c->nnames ? c->names[i] : NULL;
}

/* RFC 6125: a wildcard is the whole left-most label and stands for exactly one label. */
bool certs_name_matches(const char *pattern, const char *host, size_t len)
{
	if (len && host[len - 1] == '.')
		len--;
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = memchr(host, '.', len);
		if (!dot || dot == host)
			return false;
		size_t rest = len - (size_t)(dot - host);
		return strlen(pattern + 1) == rest && strncasecmp(pattern + 1, dot, rest) == 0;
	}
	return strlen(pattern) == len && strncasecmp(pattern, host, len) == 0;
}

bool certs_item_covers(const struct certs_item *c, const char *host, size_t len)
{
	for (size_t i = 0; i < c->nnames; i++)
		if (certs_name_matches(c->names[i], host, len))
			return true;
	return false;
}

time_t certs_item_not_before(const struct certs_item *c)
{
	return c->not_before;
}

bool certs_item_is_placeholder(const struct certs_item *c)
{
	return c->placeholder;
}

struct certs_item *certs_item_placeholder(const char *name, const char *const *names, size_t n)
{
	struct certs_item *c = calloc(1, sizeof(*c));
	if (!c || !(c->chain = sk_X509_new_null()) || !(c->name = strdup(name)) ||
	    certs_self_signed(names, n, CERTS_KEY_ECDSA_P256, 7L * 24 * 3600, &c->leaf, &c->key) != 0)
		goto fail;
	c->refs = 1;
	c->ecdsa = true;
	c->placeholder = true;
	c->not_before = time(NULL) - 60;
	c->not_after = c->not_before + 7L * 24 * 3600;
	for (size_t i = 0; i < n; i++)
		if (certs_push_name(c, names[i], strlen(names[i])) < 0)
			goto fail;
	return c;
fail:
	certs_item_free(c);
	ERR_clear_error();
	return NULL;
}
