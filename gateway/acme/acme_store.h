/*
 * acme_store.h - the ACME part of the state folder: account keys,
 * certificates and their keys (0600, written aside and renamed over), the
 * per-certificate order lock, and the challenge answers a peer may need.
 *
 *   STATE/acme/account-HASH.key          one per directory URL
 *   STATE/acme/NAME/key.pem, cert.pem    the certificate served as NAME
 *   STATE/acme/NAME/order.lock           held while NAME is being ordered
 *   STATE/acme/challenges/KIND-ID        key authorizations under validation
 *
 * Two gateways may share the folder (an HA pair, on one host or over NFS).
 * The order lock is an open-file-description lock (fcntl F_OFD_SETLK): the
 * kernel, or the NFS server's lease, drops it when its holder exits or dies,
 * so no lock is ever stale and no pid or host is recorded. Writers rename
 * complete files into place, the key before the certificate, so a reader
 * sees either pair whole or a pair that does not match (and tries again).
 *
 * Functions that fail return -1 (NULL) with err saying what to do; none
 * keeps state, all may be called from any thread.
 */
#ifndef ONEGATE_ACME_STORE_H
#define ONEGATE_ACME_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "certs.h"
#include "rules.h"

/* mkdir -p with 0700. */
int acme_store_mkdirs(const char *dir);
/* path written as a whole (0600) or not at all. */
int acme_store_write(const char *path, const char *data, size_t len);

/* The account key for directory, made and kept on first use. Caller frees. */
EVP_PKEY *acme_store_account_key(const char *state_dir, const char *directory, char *err, size_t errcap);

/* key and the chain (PEM) as name's certificate. */
int acme_store_save(const char *state_dir, const char *name, EVP_PKEY *key, const char *chain, size_t len,
                    char *err, size_t errcap);
/* name's certificate as saved, loaded for serving; NULL with why. */
struct certs_item *acme_store_load(const struct rules_cert *rc, const char *state_dir, char *why, size_t whycap);

/* What identifies one version of a saved certificate: a peer's new one
 * changes it. All zero when there is none. */
struct acme_store_stamp {
	long long mtime_ns;
	long long size;
	unsigned long long ino;
};
void acme_store_stamp_read(const char *state_dir, const char *name, struct acme_store_stamp *s);
bool acme_store_stamp_same(const struct acme_store_stamp *a, const struct acme_store_stamp *b);

/* Takes name's order lock without waiting: a descriptor to pass to
 * acme_store_unlock(), ACME_STORE_BUSY when another process holds it, or -1
 * with err. */
#define ACME_STORE_BUSY (-2)
int acme_store_lock(const char *state_dir, const char *name, char *err, size_t errcap);
void acme_store_unlock(int fd);

/* The challenges folder, for acme_chal.c: STATE/acme/challenges. */
int acme_store_challenges_dir(const char *state_dir, char *out, size_t cap);

#endif
