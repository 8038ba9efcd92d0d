/*
 * reuse.c - certificates kept across reloads: a table of the items loaded by
 * certs_item_obtain(), found by a digest of everything their load read, so
 * that a reload of 10,000 certificates parses and verifies only the ones whose
 * files changed. The table owns nothing: an item is in it while someone (a
 * running configuration) holds it, and the last unref takes it out. And the
 * trusted roots of the last roots file, kept while that file is unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "certs.h"
#include "item.h"

static pthread_mutex_t certs_reuse_lock = PTHREAD_MUTEX_INITIALIZER;
static struct certs_item **certs_reuse_buckets;
static size_t certs_reuse_nbuckets;
static size_t certs_reuse_n;

static size_t certs_reuse_bucket(const uint8_t digest[CERTS_DIGEST_LEN], size_t nbuckets)
{
	uint64_t h;
	memcpy(&h, digest, sizeof(h));
	return (size_t)(h % nbuckets);
}

static void certs_digest_bytes(SHA256_CTX *sha, const void *p, size_t n)
{
	SHA256_Update(sha, &n, sizeof(n));
	SHA256_Update(sha, p, n);
}

static void certs_digest_str(SHA256_CTX *sha, const char *s)
{
	certs_digest_bytes(sha, s ? s : "", s ? strlen(s) + 1 : 0);
}

/* A file by its path, contents, mode and group (the loader warns about a key others can read). */
static int certs_digest_file(SHA256_CTX *sha, const char *path)
{
	certs_digest_str(sha, path);
	if (!path)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	uint64_t meta[2] = { st.st_mode, st.st_gid };
	SHA256_Update(sha, meta, sizeof(meta));
	uint8_t buf[16384];
	ssize_t n;
	uint64_t total = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		SHA256_Update(sha, buf, (size_t)n);
		total += (uint64_t)n;
	}
	close(fd);
	SHA256_Update(sha, &total, sizeof(total));
	return n < 0 ? -1 : 0;
}

/* The trusted roots by path, size, times and inode: a system bundle is too large to read for
 * each of 10,000 certificates, and a package update replaces it, which changes all four. */
static int certs_digest_stat(SHA256_CTX *sha, const char *path)
{
	struct stat st;
	certs_digest_str(sha, path);
	if (stat(path, &st) != 0)
		return -1;
	int64_t meta[7] = { (int64_t)st.st_dev, (int64_t)st.st_ino, (int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec,
	                    st.st_mtim.tv_nsec, (int64_t)st.st_ctim.tv_sec, st.st_ctim.tv_nsec };
	SHA256_Update(sha, meta, sizeof(meta));
	return 0;
}

/* Everything a load of src reads or decides by; -1 when a file cannot be read (the load says why). */
static int certs_source_digest(const struct certs_source *src, uint8_t out[CERTS_DIGEST_LEN])
{
	SHA256_CTX sha;
	SHA256_Init(&sha);
	certs_digest_str(&sha, src->name);
	certs_digest_str(&sha, src->password);
	certs_digest_str(&sha, src->password_env);
	certs_digest_str(&sha, src->password_env ? getenv(src->password_env) : NULL);
	int64_t opts[4] = { src->allow_incomplete_chain, src->key_group_set, src->key_group, (int64_t)src->now };
	SHA256_Update(&sha, opts, sizeof(opts));
	int rc = certs_digest_file(&sha, src->pfx) | certs_digest_file(&sha, src->password_file) |
	         certs_digest_file(&sha, src->cert) | certs_digest_file(&sha, src->key) |
	         certs_digest_file(&sha, src->chain) | certs_digest_file(&sha, src->ocsp);
	for (size_t i = 0; i < src->nintermediates; i++)
		rc |= certs_digest_file(&sha, src->intermediates[i]);
	rc |= certs_digest_stat(&sha, src->ca_file ? src->ca_file : CERTS_SYSTEM_CA);
	SHA256_Final(out, &sha);
	return rc ? -1 : 0;
}

/* Whether a kept item still says at now what its load would: not expired nor near it, and its
 * OCSP response still fresh. Otherwise it is loaded again, and its messages are current. */
static bool certs_item_current(const struct certs_item *c, time_t now)
{
	return c->not_before <= now && c->not_after - now >= (time_t)CERTS_WARN_DAYS * 86400 &&
	       (!c->ocsp || !c->ocsp_until || c->ocsp_until > now);
}

static struct certs_item *certs_reuse_find(const uint8_t digest[CERTS_DIGEST_LEN], time_t now)
{
	struct certs_item *found = NULL;
	pthread_mutex_lock(&certs_reuse_lock);
	if (certs_reuse_nbuckets)
		for (struct certs_item *c = certs_reuse_buckets[certs_reuse_bucket(digest, certs_reuse_nbuckets)];
		     c && !found; c = c->kept_next)
			if (memcmp(c->digest, digest, CERTS_DIGEST_LEN) == 0 && certs_item_current(c, now) &&
			    certs_item_try_ref(c))
				found = c;
	pthread_mutex_unlock(&certs_reuse_lock);
	return found;
}

/* Keeping is an optimisation: out of memory, the item is simply not kept. */
static void certs_reuse_keep(struct certs_item *c, const uint8_t digest[CERTS_DIGEST_LEN])
{
	pthread_mutex_lock(&certs_reuse_lock);
	if (certs_reuse_n >= certs_reuse_nbuckets) {
		size_t nb = certs_reuse_nbuckets ? 2 * certs_reuse_nbuckets : 64;
		struct certs_item **b = calloc(nb, sizeof(*b));
		for (size_t i = 0; b && i < certs_reuse_nbuckets; i++)
			while (certs_reuse_buckets[i]) {
				struct certs_item *k = certs_reuse_buckets[i];
				certs_reuse_buckets[i] = k->kept_next;
				size_t at = certs_reuse_bucket(k->digest, nb);
				k->kept_next = b[at];
				b[at] = k;
			}
		if (b) {
			free(certs_reuse_buckets);
			certs_reuse_buckets = b;
			certs_reuse_nbuckets = nb;
		}
	}
	if (certs_reuse_nbuckets) {
		memcpy(c->digest, digest, CERTS_DIGEST_LEN);
		size_t at = certs_reuse_bucket(digest, certs_reuse_nbuckets);
		c->kept_next = certs_reuse_buckets[at];
		certs_reuse_buckets[at] = c;
		c->kept = true;
		certs_reuse_n++;
	}
	pthread_mutex_unlock(&certs_reuse_lock);
}

void certs_reuse_forget(struct certs_item *c)
{
	pthread_mutex_lock(&certs_reuse_lock);
	struct certs_item **p = &certs_reuse_buckets[certs_reuse_bucket(c->digest, certs_reuse_nbuckets)];
	while (*p && *p != c)
		p = &(*p)->kept_next;
	if (*p) {
		*p = c->kept_next;
		certs_reuse_n--;
	}
	if (!certs_reuse_n) {
		free(certs_reuse_buckets);
		certs_reuse_buckets = NULL;
		certs_reuse_nbuckets = 0;
	}
	pthread_mutex_unlock(&certs_reuse_lock);
}

/* The trusted roots of the last roots file loaded, kept while the file is unchanged (same
 * inode, size, mtime and ctime): 10,000 certificates against the system's bundle parsed its
 * roots 10,000 times. The cache holds one reference for the process's life; each load takes
 * its own. A store is only read once loaded, which BoringSSL allows from several threads. */
static pthread_mutex_t certs_roots_lock = PTHREAD_MUTEX_INITIALIZER;
static char *certs_roots_path;
static struct stat certs_roots_st;
static X509_STORE *certs_roots;

static bool certs_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

X509_STORE *certs_roots_get(const char *path)
{
	struct stat st;
	bool known = stat(path, &st) == 0;
	X509_STORE *store = NULL;
	pthread_mutex_lock(&certs_roots_lock);
	if (known && certs_roots && strcmp(certs_roots_path, path) == 0 && certs_same_file(&certs_roots_st, &st) &&
	    X509_STORE_up_ref(certs_roots))
		store = certs_roots;
	pthread_mutex_unlock(&certs_roots_lock);
	if (store)
		return store;
	if (!(store = X509_STORE_new()) || !X509_STORE_load_locations(store, path, NULL)) {
		X509_STORE_free(store);
		return NULL;
	}
	/* Kept only when the file did not change while it was read, and not in the clock tick it was
	 * last written in: a write in the same tick would leave the times as they are. */
	struct stat after;
	char *copy = known && stat(path, &after) == 0 && certs_same_file(&st, &after) &&
	             st.st_ctim.tv_sec + 1 < time(NULL) ? strdup(path) : NULL;
	if (!copy || !X509_STORE_up_ref(store)) {
		free(copy);
		return store;
	}
	pthread_mutex_lock(&certs_roots_lock);
	X509_STORE *old = certs_roots;
	char *old_path = certs_roots_path;
	certs_roots = store;
	certs_roots_path = copy;
	certs_roots_st = st;
	pthread_mutex_unlock(&certs_roots_lock);
	X509_STORE_free(old);
	free(old_path);
	return store;
}

size_t certs_reuse_count(void)
{
	pthread_mutex_lock(&certs_reuse_lock);
	size_t n = certs_reuse_n;
	pthread_mutex_unlock(&certs_reuse_lock);
	return n;
}

struct certs_item *certs_item_obtain(const struct certs_source *src, const struct certs_report *rep)
{
	uint8_t before[CERTS_DIGEST_LEN], after[CERTS_DIGEST_LEN];
	time_t now = src->now ? src->now : time(NULL);
	bool known = certs_source_digest(src, before) == 0;
	struct certs_item *c = known ? certs_reuse_find(before, now) : NULL;
	if (c) {
		for (size_t i = 0; i < c->nwarnings && rep && rep->fn; i++)
			rep->fn(rep->arg, true, c->warnings[i]);
		return c;
	}
	c = certs_item_load(src, rep);
	/* Kept only when the files did not change while they were read: the digest must be what was loaded. */
	if (c && known && certs_source_digest(src, after) == 0 && memcmp(before, after, CERTS_DIGEST_LEN) == 0)
		certs_reuse_keep(c, before);
	return c;
}
