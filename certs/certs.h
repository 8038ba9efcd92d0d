/*
 * certs.h - the certificate store: certificates loaded from PFX, PEM or DER
 * and checked (key, validity, complete chain), the names each one covers, and
 * the test PKI generator used by `onegate demo` and the test suite.
 */
#ifndef ONEGATE_CERTS_H
#define ONEGATE_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <openssl/x509.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where a certificate comes from, as the rule file says it. Paths are used as given. */
struct certs_source {
	const char *name;
	const char *pfx, *password, *password_file, *password_env;  /* PKCS#12; at most one password source */
	const char *cert, *key, *chain;         /* PEM or DER; cert may hold the chain too */
	const char *const *intermediates;
	size_t nintermediates;
	const char *ca_file;                    /* trusted roots; NULL: the system's */
	const char *ocsp;                       /* DER OCSP response to staple, or NULL */
	bool allow_incomplete_chain;
	bool key_group_set;                     /* keys readable by this group are expected: onegate runs in it */
	unsigned key_group;
	time_t now;                             /* 0: the current time (tests pass a fixed one) */
};

/* Where errors and warnings go: complete sentences naming the file and the fix. */
struct certs_report {
	void (*fn)(void *arg, bool warning, const char *msg);
	void *arg;
};

struct certs_item;

/* Loads and checks one certificate; NULL after reporting why. Holds one reference. */
struct certs_item *certs_item_load(const struct certs_source *src, const struct certs_report *rep);
/* As certs_item_load, unless an item loaded by this function from the same files, unchanged,
 * is still held (by the running configuration, during a reload): then that item with one more
 * reference, and the warnings of its load said again. The same: name, paths, password and
 * options alike, and every file's contents (SHA-256), mode and group; the trusted roots' file
 * by its inode, size, mtime and ctime. An item that expired, comes within 30 days of it, or
 * whose OCSP response went stale since is loaded again, so that its messages are current. */
struct certs_item *certs_item_obtain(const struct certs_source *src, const struct certs_report *rep);
/* How many items certs_item_obtain() can hand out again (for tests). */
size_t certs_reuse_count(void);
struct certs_item *certs_item_ref(struct certs_item *c);
void certs_item_unref(struct certs_item *c);
const char *certs_item_name(const struct certs_item *c);
X509 *certs_item_leaf(const struct certs_item *c);
EVP_PKEY *certs_item_key(const struct certs_item *c);
STACK_OF(X509) *certs_item_chain(const struct certs_item *c);  /* to serve after the leaf; no root */
bool certs_item_is_ecdsa(const struct certs_item *c);
time_t certs_item_not_after(const struct certs_item *c);
/* The OCSP response to staple (DER) and its nextUpdate (0: none given), or
 * NULL: none was configured, or the one configured had already expired at load. */
const uint8_t *certs_item_ocsp(const struct certs_item *c, size_t *len, time_t *until);
/* DNS names the certificate covers, lower case ("*.contoso.com" for a wildcard). */
size_t certs_item_nnames(const struct certs_item *c);
const char *certs_item_name_at(const struct certs_item *c, size_t i);
/* Whether a host name is covered (RFC 6125: a wildcard is one whole left-most label). */
bool certs_item_covers(const struct certs_item *c, const char *host, size_t len);
bool certs_name_matches(const char *pattern, const char *host, size_t len);

/* `onegate certs inspect`: prints what a PEM, DER or PFX file holds (subjects,
 * names, keys, validity, key ids) and whether its chain is complete up to
 * ca_file (NULL: the system's roots). Returns 0 when complete. */
int certs_inspect(FILE *out, const char *path, const char *password, const char *ca_file);

/* RSA 1024 and P-521 are keys the store refuses: tests make them to see it do so. */
enum certs_key_type {
	CERTS_KEY_ECDSA_P256, CERTS_KEY_ECDSA_P384, CERTS_KEY_RSA2048, CERTS_KEY_RSA4096,
	CERTS_KEY_RSA1024, CERTS_KEY_ECDSA_P521,
};

struct certs_leaf_spec {
	const char *file;               /* base name: writes FILE.pem (leaf then intermediate) and FILE.key */
	const char *const *names;       /* DNS SANs; names[0] is also the subject CN */
	size_t nnames;
	enum certs_key_type key;
	int valid_days;                 /* < 0: already expired that many days ago */
};

/* Creates dir if needed and writes ca.pem/ca.key (root), int.pem/int.key
 * (intermediate, signed by the root) and one leaf per spec, signed by the
 * intermediate. Keys are written with mode 0600. Returns 0, or -1 with a reason. */
int certs_testpki_generate(const char *dir, const struct certs_leaf_spec *leaves, size_t nleaves,
                           char *err, size_t errlen);
/* From a generated leaf's FILE.pem and FILE.key: FILE.pfx (key, leaf and
 * intermediate under password, mode 0600), or FILE.der (the leaf alone) and
 * FILE.key.der (PKCS#8, mode 0600). Return 0, or -1 with a reason. */
int certs_testpki_pfx(const char *dir, const char *file, const char *password, char *err, size_t errlen);
int certs_testpki_der(const char *dir, const char *file, char *err, size_t errlen);

/* A fresh key of that type, or NULL. */
EVP_PKEY *certs_key_new(enum certs_key_type type);
/* A self-signed server certificate for names (names[0] also the CN), valid from
 * a minute ago for seconds, with a fresh key of that type. 0, or -1. */
int certs_self_signed(const char *const *names, size_t n, enum certs_key_type type, long seconds, X509 **cert,
                      EVP_PKEY **key);

/* What an ACME certificate serves until the CA has issued one: self-signed,
 * ECDSA P-256, for the names it will have. Marked so that the one who orders
 * knows it still has to. NULL when out of memory. */
struct certs_item *certs_item_placeholder(const char *name, const char *const *names, size_t n);
bool certs_item_is_placeholder(const struct certs_item *c);
time_t certs_item_not_before(const struct certs_item *c);

#ifdef __cplusplus
}
#endif
#endif
