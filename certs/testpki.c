/*
 * Test PKI: a root, an intermediate and leaves, with BoringSSL. Used by the
 * demo and the tests; nothing here is meant for production certificates.
 */
#include "certs.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/pkcs8.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define CERTS_DAY (24L * 3600L)

static int certs_fail(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char reason[160] = "";
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", reason);
	ERR_clear_error();
	return -1;
}

static bool certs_key_is_rsa(enum certs_key_type type)
{
	return type == CERTS_KEY_RSA1024 || type == CERTS_KEY_RSA2048 || type == CERTS_KEY_RSA4096;
}

static EVP_PKEY *certs_new_key(enum certs_key_type type)
{
	EVP_PKEY *pkey = EVP_PKEY_new();
	if (!pkey)
		return NULL;
	if (certs_key_is_rsa(type)) {
		RSA *rsa = RSA_new();
		BIGNUM *e = BN_new();
		int bits = type == CERTS_KEY_RSA1024 ? 1024 : type == CERTS_KEY_RSA2048 ? 2048 : 4096;
		int ok = rsa && e && BN_set_word(e, RSA_F4) && RSA_generate_key_ex(rsa, bits, e, NULL) &&
		         EVP_PKEY_assign_RSA(pkey, rsa);
		BN_free(e);
		if (!ok) {
			RSA_free(rsa);
			EVP_PKEY_free(pkey);
			return NULL;
		}
		return pkey;
	}
	int curve = type == CERTS_KEY_ECDSA_P384 ? NID_secp384r1
	          : type == CERTS_KEY_ECDSA_P521 ? NID_secp521r1 : NID_X9_62_prime256v1;
	EC_KEY *ec = EC_KEY_new_by_curve_name(curve);
	if (!ec || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
		EC_KEY_free(ec);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

static int certs_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

struct certs_subject {
	const char *cn;
	long not_before, not_after;     /* seconds from now */
	const char *basic, *key_usage, *ext_key_usage;
	char *san;                      /* "DNS:a,DNS:b" or NULL */
};

/* Builds and signs one certificate. issuer/issuer_key NULL: self-signed. */
static X509 *certs_make(const struct certs_subject *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	BIGNUM *serial = BN_new();
	X509_NAME *name = X509_NAME_new();
	int ok = x && serial && name && X509_set_version(x, X509_VERSION_3) &&
	         BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
	         BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) &&
	         X509_gmtime_adj(X509_getm_notBefore(x), s->not_before) &&
	         X509_gmtime_adj(X509_getm_notAfter(x), s->not_after) &&
	         X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const uint8_t *)"onegate test PKI", -1, -1, 0) &&
	         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)s->cn, -1, -1, 0) &&
	         X509_set_subject_name(x, name) &&
	         X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) &&
	         X509_set_pubkey(x, key);
	X509 *iss = issuer ? issuer : x;
	ok = ok && certs_add_ext(x, iss, NID_basic_constraints, s->basic) &&
	     certs_add_ext(x, iss, NID_key_usage, s->key_usage) &&
	     certs_add_ext(x, iss, NID_subject_key_identifier, "hash") &&
	     certs_add_ext(x, iss, NID_authority_key_identifier, "keyid:always") &&
	     (!s->ext_key_usage || certs_add_ext(x, iss, NID_ext_key_usage, s->ext_key_usage)) &&
	     (!s->san || certs_add_ext(x, iss, NID_subject_alt_name, s->san)) &&
	     X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
	BN_free(serial);
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static FILE *certs_open(const char *dir, const char *file, const char *ext, mode_t mode)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s%s", dir, file, ext) >= sizeof(path))
		return NULL;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return NULL;
	fchmod(fd, mode);       /* a key left by an earlier run keeps no wider mode */
	FILE *f = fdopen(fd, "w");
	if (!f)
		close(fd);
	return f;
}

/* Writes FILE.pem (cert, then chain if given) and FILE.key (0600). */
static int certs_write(const char *dir, const char *file, X509 *cert, X509 *chain, EVP_PKEY *key)
{
	FILE *c = certs_open(dir, file, ".pem", 0644);
	if (!c)
		return 0;
	int ok = PEM_write_X509(c, cert) && (!chain || PEM_write_X509(c, chain));
	ok = (fclose(c) == 0) && ok;
	FILE *k = certs_open(dir, file, ".key", 0600);
	if (!k)
		return 0;
	ok = PEM_write_PrivateKey(k, key, NULL, NULL, 0, NULL, NULL) && ok;
	return (fclose(k) == 0) && ok;
}

static char *certs_san(const char *const *names, size_t n)
{
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(names[i]) + 5;
	char *san = malloc(len);
	if (!san)
		return NULL;
	san[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strcat(san, i ? ",DNS:" : "DNS:");
		strcat(san, names[i]);
	}
	return san;
}

static int certs_leaf(const char *dir, const struct certs_leaf_spec *spec, X509 *ica, EVP_PKEY *ikey,
                      char *err, size_t errlen)
{
	if (!spec->file || spec->nnames == 0)
		return certs_fail(err, errlen, "a leaf needs a file name and at least one DNS name");
	bool rsa = certs_key_is_rsa(spec->key);
	struct certs_subject s = {
		.cn = spec->names[0],
		.basic = "critical,CA:FALSE",
		.key_usage = rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature",
		.ext_key_usage = "serverAuth",
		.san = certs_san(spec->names, spec->nnames),
	};
	if (spec->valid_days >= 0) {
		s.not_before = -3600;
		s.not_after = spec->valid_days * CERTS_DAY;
	} else {
		s.not_after = spec->valid_days * CERTS_DAY;
		s.not_before = s.not_after - 30 * CERTS_DAY;
	}
	EVP_PKEY *key = certs_new_key(spec->key);
	X509 *leaf = s.san && key ? certs_make(&s, key, ica, ikey) : NULL;
	int ok = leaf && certs_write(dir, spec->file, leaf, ica, key);
	free(s.san);
	X509_free(leaf);
	EVP_PKEY_free(key);
	if (!ok) {
		char what[512];
		snprintf(what, sizeof(what), "cannot make leaf %s in %s (%s)", spec->file, dir,
		         errno ? strerror(errno) : "crypto");
		return certs_fail(err, errlen, what);
	}
	return 0;
}

int certs_testpki_generate(const char *dir, const struct certs_leaf_spec *leaves, size_t nleaves,
                           char *err, size_t errlen)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	const struct certs_subject root_s = {
		.cn = "onegate test root", .not_before = -3600, .not_after = 365 * CERTS_DAY,
		.basic = "critical,CA:TRUE", .key_usage = "critical,keyCertSign,cRLSign",
	};
	const struct certs_subject int_s = {
		.cn = "onegate test intermediate", .not_before = -3600, .not_after = 365 * CERTS_DAY,
		.basic = "critical,CA:TRUE,pathlen:0", .key_usage = "critical,keyCertSign,cRLSign",
	};
	int rc = -1;
	EVP_PKEY *rkey = certs_new_key(CERTS_KEY_ECDSA_P256), *ikey = certs_new_key(CERTS_KEY_ECDSA_P256);
	X509 *root = NULL, *ica = NULL;
	errno = 0;
	if (!rkey || !ikey || !(root = certs_make(&root_s, rkey, NULL, NULL)) ||
	    !(ica = certs_make(&int_s, ikey, root, rkey))) {
		certs_fail(err, errlen, "cannot make the test CA");
		goto out;
	}
	if (!certs_write(dir, "ca", root, NULL, rkey) || !certs_write(dir, "int", ica, NULL, ikey)) {
		snprintf(err, errlen, "cannot write the test CA into %s: %s", dir, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < nleaves; i++)
		if (certs_leaf(dir, &leaves[i], ica, ikey, err, errlen) != 0)
			goto out;
	rc = 0;
out:
	X509_free(root);
	X509_free(ica);
	EVP_PKEY_free(rkey);
	EVP_PKEY_free(ikey);
	return rc;
}

/* A generated leaf back: FILE.pem (leaf, intermediate) and FILE.key. */
static int certs_read_leaf(const char *dir, const char *file, STACK_OF(X509) *certs, EVP_PKEY **key)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.pem", dir, file);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	X509 *x;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)))
		sk_X509_push(certs, x);
	fclose(f);
	ERR_clear_error();
	snprintf(path, sizeof(path), "%s/%s.key", dir, file);
	if (!(f = fopen(path, "r")))
		return 0;
	*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return sk_X509_num(certs) == 2 && *key;
}

/* As Windows exports one, 3DES (OpenSSL 3 still reads it without its legacy provider). */
int certs_testpki_pfx(const char *dir, const char *file, const char *password, char *err, size_t errlen)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	EVP_PKEY *key = NULL;
	PKCS12 *p12 = NULL;
	FILE *f = NULL;
	int ok = certs && certs_read_leaf(dir, file, certs, &key);
	if (ok) {
		X509 *leaf = sk_X509_shift(certs);
		p12 = PKCS12_create(password, file, key, leaf, certs, NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
		                    NID_pbe_WithSHA1And3_Key_TripleDES_CBC, 0, 0, 0);
		X509_free(leaf);
	}
	ok = p12 && (f = certs_open(dir, file, ".pfx", 0600)) && i2d_PKCS12_fp(f, p12);
	ok = (!f || fclose(f) == 0) && ok;
	PKCS12_free(p12);
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	if (!ok) {
		char what[512];
		snprintf(what, sizeof(what), "cannot write %s/%s.pfx from %s.pem and %s.key", dir, file, file, file);
		return certs_fail(err, errlen, what);
	}
	return 0;
}

int certs_testpki_der(const char *dir, const char *file, char *err, size_t errlen)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	EVP_PKEY *key = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	FILE *c = NULL, *k = NULL;
	CBB cbb;
	CBB_zero(&cbb);
	int ok = certs && certs_read_leaf(dir, file, certs, &key) && (c = certs_open(dir, file, ".der", 0644)) &&
	         i2d_X509_fp(c, sk_X509_value(certs, 0)) && CBB_init(&cbb, 0) && EVP_marshal_private_key(&cbb, key) &&
	         CBB_finish(&cbb, &der, &len) && (k = certs_open(dir, file, ".key.der", 0600)) &&
	         fwrite(der, 1, len, k) == len;
	ok = (!c || fclose(c) == 0) && ok;
	ok = (!k || fclose(k) == 0) && ok;
	CBB_cleanup(&cbb);
	OPENSSL_free(der);
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	if (!ok) {
		char what[512];
		snprintf(what, sizeof(what), "cannot write %s/%s.der and %s.key.der from %s.pem and %s.key", dir, file,
		         file, file, file);
		return certs_fail(err, errlen, what);
	}
	return 0;
}

int certs_self_signed(const char *const *names, size_t n, enum certs_key_type type, long seconds, X509 **cert,
                      EVP_PKEY **key)
{
	*cert = NULL;
	*key = NULL;
	if (n == 0)
		return -1;
	struct certs_subject s = {
		.cn = names[0],
		.not_before = -60,
		.not_after = seconds,
		.basic = "critical,CA:FALSE",
		.key_usage = certs_key_is_rsa(type) ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature",
		.ext_key_usage = "serverAuth",
		.san = certs_san(names, n),
	};
	EVP_PKEY *k = s.san ? certs_new_key(type) : NULL;
	X509 *x = k ? certs_make(&s, k, NULL, NULL) : NULL;
	free(s.san);
	ERR_clear_error();
	if (!x) {
		EVP_PKEY_free(k);
		return -1;
	}
	*cert = x;
	*key = k;
	return 0;
}

EVP_PKEY *certs_key_new(enum certs_key_type type)
{
	return certs_new_key(type);
}
