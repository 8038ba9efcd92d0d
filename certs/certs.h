/*
 * certs.h - the certificate store. For now: the test PKI generator used by
 * `onegate demo` and the test suite (a throw-away CA, an intermediate and leaf
 * certificates). Loading, chains and SNI selection arrive with the certificate
 * issue and extend this header.
 */
#ifndef ONEGATE_CERTS_H
#define ONEGATE_CERTS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum certs_key_type { CERTS_KEY_ECDSA_P256, CERTS_KEY_ECDSA_P384, CERTS_KEY_RSA2048, CERTS_KEY_RSA4096 };

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

#ifdef __cplusplus
}
#endif
#endif
