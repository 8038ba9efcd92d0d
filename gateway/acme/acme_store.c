#define _GNU_SOURCE /* F_OFD_SETLK */
#include "acme/acme_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

int acme_store_mkdirs(const char *dir)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0700) != 0 && errno != EEXIST)
				return -1;
			*s = '/';
		}
	return mkdir(p, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* Written aside (0600) and renamed over, so a reader sees the old file or the
 * new one. The aside name carries the pid: two gateways writing at once do
 * not write into each other's file. */
int acme_store_write(const char *path, const char *data, size_t len)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.%ld.new", path, (long)getpid()) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	fchmod(fd, 0600);
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n <= 0) {
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static char *acme_store_key_pem(EVP_PKEY *key)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL;
	const uint8_t *p;
	size_t n;
	if (b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) && BIO_mem_contents(b, &p, &n) &&
	    (out = malloc(n + 1))) {
		memcpy(out, p, n);
		out[n] = '\0';
	}
	BIO_free(b);
	return out;
}

static void acme_store_pem_free(char *pem)
{
	if (pem)
		OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
}

EVP_PKEY *acme_store_account_key(const char *state_dir, const char *directory, char *err, size_t errcap)
{
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)directory, strlen(directory), d);
	char path[PATH_MAX], folder[PATH_MAX - 64];
	snprintf(folder, sizeof(folder), "%s/" RULES_ACME_DIR, state_dir);
	snprintf(path, sizeof(path), "%s/account-%02x%02x%02x%02x%02x%02x%02x%02x.key", folder, d[0], d[1], d[2], d[3],
	         d[4], d[5], d[6], d[7]);
	FILE *f = fopen(path, "r");
	if (f) {
		EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!k)
			snprintf(err, errcap, "cannot read the account key %s; move it away to make a new account", path);
		ERR_clear_error();
		return k;
	}
	EVP_PKEY *k = certs_key_new(CERTS_KEY_ECDSA_P256);
	char *pem = k ? acme_store_key_pem(k) : NULL;
	if (!pem || acme_store_mkdirs(folder) != 0 || acme_store_write(path, pem, strlen(pem)) != 0) {
		snprintf(err, errcap, "cannot write the account key %s: %s", path, strerror(errno));
		EVP_PKEY_free(k);
		k = NULL;
	}
	acme_store_pem_free(pem);
	return k;
}

int acme_store_save(const char *state_dir, const char *name, EVP_PKEY *key, const char *chain, size_t len,
                    char *err, size_t errcap)
{
	char dir[PATH_MAX - 64], cpath[PATH_MAX], kpath[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/" RULES_ACME_DIR "/%s", state_dir, name);
	snprintf(cpath, sizeof(cpath), "%s/cert.pem", dir);
	snprintf(kpath, sizeof(kpath), "%s/key.pem", dir);
	char *pem = acme_store_key_pem(key);
	int rc = 0;
	if (!pem || acme_store_mkdirs(dir) != 0 || acme_store_write(kpath, pem, strlen(pem)) != 0 ||
	    acme_store_write(cpath, chain, len) != 0) {
		snprintf(err, errcap, "cannot write the certificate to %s: %s", dir, pem ? strerror(errno) : "out of memory");
		rc = -1;
	}
	acme_store_pem_free(pem);
	return rc;
}

struct acme_store_why {
	char *buf;
	size_t cap;
};

static void acme_store_report(void *arg, bool warning, const char *msg)
{
	(void)warning;
	struct acme_store_why *w = arg;
	snprintf(w->buf, w->cap, "%s", msg);
}

struct certs_item *acme_store_load(const struct rules_cert *rc, const char *state_dir, char *why, size_t whycap)
{
	char cert[PATH_MAX], key[PATH_MAX];
	snprintf(cert, sizeof(cert), "%s/" RULES_ACME_DIR "/%s/cert.pem", state_dir, rc->name);
	snprintf(key, sizeof(key), "%s/" RULES_ACME_DIR "/%s/key.pem", state_dir, rc->name);
	struct certs_source src = { .name = rc->name, .cert = cert, .key = key, .ca_file = rc->acme->ca_file,
	                            .allow_incomplete_chain = true };
	struct acme_store_why w = { why, whycap };
	struct certs_report rep = { acme_store_report, &w };
	return certs_item_load(&src, &rep);
}

void acme_store_stamp_read(const char *state_dir, const char *name, struct acme_store_stamp *s)
{
	char cert[PATH_MAX];
	struct stat st;
	memset(s, 0, sizeof(*s));
	snprintf(cert, sizeof(cert), "%s/" RULES_ACME_DIR "/%s/cert.pem", state_dir, name);
	if (stat(cert, &st) != 0)
		return;
	s->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	s->size = (long long)st.st_size;
	s->ino = (unsigned long long)st.st_ino;
}

bool acme_store_stamp_same(const struct acme_store_stamp *a, const struct acme_store_stamp *b)
{
	return a->mtime_ns == b->mtime_ns && a->size == b->size && a->ino == b->ino;
}

int acme_store_lock(const char *state_dir, const char *name, char *err, size_t errcap)
{
	char dir[PATH_MAX - 64], path[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/" RULES_ACME_DIR "/%s", state_dir, name);
	snprintf(path, sizeof(path), "%s/order.lock", dir);
	int fd = acme_store_mkdirs(dir) == 0 ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
	if (fd < 0) {
		snprintf(err, errcap, "cannot open the order lock %s: %s", path, strerror(errno));
		return -1;
	}
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return fd;
	int e = errno;
	close(fd);
	if (e == EAGAIN || e == EACCES)
		return ACME_STORE_BUSY;
	snprintf(err, errcap, "cannot lock %s: %s (the state folder's file system must support locks)", path,
	         strerror(e));
	return -1;
}

void acme_store_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

int acme_store_challenges_dir(const char *state_dir, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/" RULES_ACME_DIR "/challenges", state_dir);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}
