#include "acme/acme_chal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "acme/acme.h"
#include "acme/acme_crypto.h"
#include "acme/acme_store.h"
#include "io/log.h"

#define ACME_CHALLENGES_MAX 64
#define ACME_HTTP01_PREFIX "/.well-known/acme-challenge/"
#define ACME_CHAL_ID_MAX 253            /* a token or a DNS name */

struct acme_challenge {
	bool used;
	char token[128];
	char keyauth[256];
	char name[256];                 /* TLS-ALPN-01: the name being validated */
	X509 *alpn_cert;                /* TLS-ALPN-01 */
	EVP_PKEY *alpn_key;
};

static pthread_mutex_t acme_chal_lock = PTHREAD_MUTEX_INITIALIZER;
static struct acme_challenge acme_chals[ACME_CHALLENGES_MAX];
static char acme_chal_dir[PATH_MAX - 300];  /* guarded by acme_chal_lock; "" shares nothing */

void acme_chal_folder(const char *state_dir)
{
	char dir[sizeof(acme_chal_dir)] = "";
	if (state_dir && state_dir[0] && acme_store_challenges_dir(state_dir, dir, sizeof(dir)) != 0)
		dir[0] = '\0';
	pthread_mutex_lock(&acme_chal_lock);
	memcpy(acme_chal_dir, dir, sizeof(dir));
	pthread_mutex_unlock(&acme_chal_lock);
}

/* A token (base64url, case-sensitive) or a DNS name (lowercased), safe as a file name. */
static bool acme_chal_id(const char *id, size_t len, bool name, char *out, size_t cap)
{
	if (len == 0 || len > ACME_CHAL_ID_MAX || len >= cap || id[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return false;
		out[i] = name ? (char)tolower(c) : (char)c;
	}
	out[len] = '\0';
	return true;
}

static bool acme_chal_path(const char *kind, const char *id, char *path, size_t cap)
{
	pthread_mutex_lock(&acme_chal_lock);
	int n = acme_chal_dir[0] ? snprintf(path, cap, "%s/%s-%s", acme_chal_dir, kind, id) : -1;
	pthread_mutex_unlock(&acme_chal_lock);
	return n > 0 && (size_t)n < cap;
}

/* Shares a challenge with the peer; a failure only means the peer cannot answer it. */
static void acme_chal_share(const char *kind, const char *id, const char *keyauth)
{
	char path[PATH_MAX], dir[sizeof(acme_chal_dir)];
	if (!acme_chal_path(kind, id, path, sizeof(path)))
		return;
	snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(path, '/') - path), path);
	if (acme_store_mkdirs(dir) != 0 || acme_store_write(path, keyauth, strlen(keyauth)) != 0)
		log_msg(LOG_WARN, "acme: cannot write %s (%s): the other gateway sharing the state folder cannot "
		        "answer this %s challenge", path, strerror(errno), kind);
}

static void acme_chal_unshare(const char *kind, const char *id)
{
	char path[PATH_MAX];
	if (acme_chal_path(kind, id, path, sizeof(path)))
		unlink(path);
}

/* The peer's key authorization for kind and id (already checked by acme_chal_id). */
static int acme_chal_peer(const char *kind, const char *id, char *out, size_t cap)
{
	char path[PATH_MAX];
	if (!acme_chal_path(kind, id, path, sizeof(path)))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, out, cap - 1);
	close(fd);
	if (n <= 0 || (size_t)n >= cap - 1)
		return -1;
	out[n] = '\0';
	return (int)n;
}

int acme_chal_add(const char *token, const char *keyauth, const char *name, X509 *cert, EVP_PKEY *key)
{
	int rc = -1;
	pthread_mutex_lock(&acme_chal_lock);
	for (size_t i = 0; i < ACME_CHALLENGES_MAX; i++)
		if (!acme_chals[i].used) {
			struct acme_challenge *c = &acme_chals[i];
			snprintf(c->token, sizeof(c->token), "%s", token);
			snprintf(c->keyauth, sizeof(c->keyauth), "%s", keyauth);
			snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
			c->alpn_cert = cert;
			c->alpn_key = key;
			c->used = true;
			rc = 0;
			break;
		}
	pthread_mutex_unlock(&acme_chal_lock);
	if (rc != 0) {
		X509_free(cert);
		EVP_PKEY_free(key);
		return rc;
	}
	char id[ACME_CHAL_ID_MAX + 1];
	if (cert && acme_chal_id(name, strlen(name), true, id, sizeof(id)))
		acme_chal_share(ACME_CHAL_TLSALPN01, id, keyauth);
	else if (!cert && acme_chal_id(token, strlen(token), false, id, sizeof(id)))
		acme_chal_share(ACME_CHAL_HTTP01, id, keyauth);
	return 0;
}

void acme_chal_remove(const char *token)
{
	char id[ACME_CHAL_ID_MAX + 1] = "";
	bool alpn = false;
	pthread_mutex_lock(&acme_chal_lock);
	for (size_t i = 0; i < ACME_CHALLENGES_MAX; i++) {
		struct acme_challenge *c = &acme_chals[i];
		if (c->used && strcmp(c->token, token) == 0) {
			alpn = c->alpn_cert != NULL;
			if (!acme_chal_id(alpn ? c->name : c->token, strlen(alpn ? c->name : c->token), alpn, id, sizeof(id)))
				id[0] = '\0';
			X509_free(c->alpn_cert);
			EVP_PKEY_free(c->alpn_key);
			memset(c, 0, sizeof(*c));
		}
	}
	pthread_mutex_unlock(&acme_chal_lock);
	if (id[0])
		acme_chal_unshare(alpn ? ACME_CHAL_TLSALPN01 : ACME_CHAL_HTTP01, id);
}

int acme_http01_answer(const char *path, size_t len, char *out, size_t cap)
{
	size_t plen = sizeof(ACME_HTTP01_PREFIX) - 1;
	if (len <= plen || strncmp(path, ACME_HTTP01_PREFIX, plen) != 0)
		return -1;
	const char *tok = path + plen;
	size_t tlen = len - plen;
	int n = -1;
	pthread_mutex_lock(&acme_chal_lock);
	for (size_t i = 0; i < ACME_CHALLENGES_MAX && n < 0; i++) {
		const struct acme_challenge *c = &acme_chals[i];
		if (c->used && !c->alpn_cert && strlen(c->token) == tlen && memcmp(c->token, tok, tlen) == 0) {
			size_t k = strlen(c->keyauth);
			if (k < cap) {
				memcpy(out, c->keyauth, k + 1);
				n = (int)k;
			}
		}
	}
	pthread_mutex_unlock(&acme_chal_lock);
	/* Not ours: the peer's, when it shared it. A token is case-sensitive: read as given. */
	char id[ACME_CHAL_ID_MAX + 1];
	bool b64url = n < 0 && tlen < sizeof(id);
	for (size_t i = 0; i < tlen && b64url; i++)
		b64url = isalnum((unsigned char)tok[i]) || tok[i] == '-' || tok[i] == '_';
	if (b64url) {
		memcpy(id, tok, tlen);
		id[tlen] = '\0';
		n = acme_chal_peer(ACME_CHAL_HTTP01, id, out, cap);
		/* A key authorization is TOKEN.THUMBPRINT. */
		if (n >= 0 && ((size_t)n <= tlen || memcmp(out, tok, tlen) != 0 || out[tlen] != '.'))
			n = -1;
	}
	return n;
}

bool acme_alpn_offered(const uint8_t *list, size_t len)
{
	static const char proto[] = "acme-tls/1";
	for (size_t i = 0; i < len; i += 1u + list[i])
		if (list[i] == sizeof(proto) - 1 && i + 1 + list[i] <= len && memcmp(list + i + 1, proto, list[i]) == 0)
			return true;
	return false;
}

bool acme_alpn_pending(const char *name, size_t len)
{
	bool found = false;
	pthread_mutex_lock(&acme_chal_lock);
	for (size_t i = 0; i < ACME_CHALLENGES_MAX && !found; i++) {
		const struct acme_challenge *c = &acme_chals[i];
		found = c->used && c->alpn_cert && strlen(c->name) == len && strncasecmp(c->name, name, len) == 0;
	}
	pthread_mutex_unlock(&acme_chal_lock);
	char id[ACME_CHAL_ID_MAX + 1], keyauth[256];
	if (!found && acme_chal_id(name, len, true, id, sizeof(id)))
		found = acme_chal_peer(ACME_CHAL_TLSALPN01, id, keyauth, sizeof(keyauth)) > 0;
	return found;
}

bool acme_alpn_set(SSL *ssl, const char *name, size_t len)
{
	bool ok = false, found = false;
	pthread_mutex_lock(&acme_chal_lock);
	for (size_t i = 0; i < ACME_CHALLENGES_MAX && !found; i++) {
		const struct acme_challenge *c = &acme_chals[i];
		if (c->used && c->alpn_cert && strlen(c->name) == len && strncasecmp(c->name, name, len) == 0) {
			found = true;
			ok = SSL_use_certificate(ssl, c->alpn_cert) && SSL_use_PrivateKey(ssl, c->alpn_key);
		}
	}
	pthread_mutex_unlock(&acme_chal_lock);
	/* The peer's: its certificate is made here from the key authorization it shared. */
	char id[ACME_CHAL_ID_MAX + 1], keyauth[256];
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	if (!found && acme_chal_id(name, len, true, id, sizeof(id)) &&
	    acme_chal_peer(ACME_CHAL_TLSALPN01, id, keyauth, sizeof(keyauth)) > 0 &&
	    acme_alpn_make(id, keyauth, &cert, &key) == 0)
		ok = SSL_use_certificate(ssl, cert) && SSL_use_PrivateKey(ssl, key);
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return ok;
}
