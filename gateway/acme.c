#define _GNU_SOURCE /* strcasestr */
#include "acme.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <jansson.h>
#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs.h"
#include "h1.h"
#include "log.h"
#include "tlsconf.h"

#define ACME_IO_TIMEOUT_S 10
#define ACME_BODY_MAX (1024 * 1024)
#define ACME_BACKOFF_FIRST 60           /* seconds after a first failure; doubles up to ACME_BACKOFF_MAX */
#define ACME_BACKOFF_MAX (6 * 3600)
#define ACME_POLL_MAX 120               /* seconds an authorization or order may stay pending */
#define ACME_CHALLENGES_MAX 64
#define ACME_HTTP01_PREFIX "/.well-known/acme-challenge/"

/* ---------------------------------------------------------------- challenges under way */

/* Shared with the workers (HTTP-01) and the TLS contexts (TLS-ALPN-01): small,
 * looked up only for challenge requests, so one lock is enough. */
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

static int acme_chal_add(const char *token, const char *keyauth, const char *name, X509 *cert, EVP_PKEY *key)
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
	return rc;
}

static void acme_chal_remove(const char *token)
{
	pthread_mutex_lock(&acme_chal_lock);
	for (size_t i = 0; i < ACME_CHALLENGES_MAX; i++) {
		struct acme_challenge *c = &acme_chals[i];
		if (c->used && strcmp(c->token, token) == 0) {
			X509_free(c->alpn_cert);
			EVP_PKEY_free(c->alpn_key);
			memset(c, 0, sizeof(*c));
		}
	}
	pthread_mutex_unlock(&acme_chal_lock);
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
	return found;
}

bool acme_alpn_set(SSL *ssl, const char *name, size_t len)
{
	bool ok = false;
	pthread_mutex_lock(&acme_chal_lock);
	for (size_t i = 0; i < ACME_CHALLENGES_MAX && !ok; i++) {
		const struct acme_challenge *c = &acme_chals[i];
		if (c->used && c->alpn_cert && strlen(c->name) == len && strncasecmp(c->name, name, len) == 0)
			ok = SSL_use_certificate(ssl, c->alpn_cert) && SSL_use_PrivateKey(ssl, c->alpn_key);
	}
	pthread_mutex_unlock(&acme_chal_lock);
	ERR_clear_error();
	return ok;
}

/* ---------------------------------------------------------------- the manager */

/* What is known of one ACME certificate, kept across reloads by its name. */
struct acme_cert {
	char *name;
	struct certs_item *item;        /* served now */
	time_t renew_at;                /* 0: due */
	time_t retry_at;                /* after a failure */
	unsigned failures;
	char last_error[512];
	bool seen;                      /* in the current rules */
};

struct acme {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	struct rules_config *cfg;       /* guarded by lock */
	bool cfg_changed;
	struct acme_cert *certs;        /* guarded by lock for readers; written by the thread */
	size_t ncerts;
	struct acme_warned *warned;     /* the thread's own */
	size_t nwarned;
};

/* The running client, for the status views (one per process). */
static pthread_mutex_t acme_current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct acme *acme_current;

/* The expiry warnings already given: per certificate name and notAfter, how many
 * of the thresholds (30, 14, 7 days) were passed. */
struct acme_warned {
	char *name;
	time_t not_after;
	int level;
};

/* One run of the protocol: what it needs and what it learns. */
struct acme_run {
	struct acme *a;
	const struct rules_cert *rc;
	const char *state_dir;
	EVP_PKEY *account;
	char jwk[256];                  /* {"crv","kty","x","y"}: the thumbprint's input */
	char thumb[64];
	char kid[1024];
	char nonce[256];
	char new_nonce[1024], new_account[1024], new_order[1024];
	char err[512];
};

struct acme_resp {
	int status;
	char *buf;                      /* head and body */
	const char *body;
	size_t body_len;
	char nonce[256];
	char location[1024];
	long retry_after;
};

static void acme_resp_clear(struct acme_resp *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

__attribute__((format(printf, 2, 3)))
static int acme_fail(struct acme_run *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, sizeof(x->err), fmt, ap);
	va_end(ap);
	return -1;
}

/* Waits up to seconds unless stopped; true when stopping. */
static bool acme_sleep(struct acme *a, long seconds)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	pthread_mutex_lock(&a->lock);
	while (!a->stop && pthread_cond_timedwait(&a->wake, &a->lock, &ts) != ETIMEDOUT)
		;
	bool stop = a->stop;
	pthread_mutex_unlock(&a->lock);
	return stop;
}

/* ---------------------------------------------------------------- HTTPS to the CA */

/* https://host[:port]/path; host may be an IPv6 literal in brackets. */
static int acme_url_split(const char *url, char *host, size_t hcap, char *port, size_t pcap, const char **path)
{
	if (strncmp(url, "https://", 8) != 0)
		return -1;
	const char *h = url + 8, *end = h + strcspn(h, "/"), *colon = NULL;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (!rb)
			return -1;
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if ((size_t)(rb - h - 1) >= hcap)
			return -1;
		memcpy(host, h + 1, (size_t)(rb - h - 1));
		host[rb - h - 1] = '\0';
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		const char *he = colon ? colon : end;
		if ((size_t)(he - h) >= hcap || he == h)
			return -1;
		memcpy(host, h, (size_t)(he - h));
		host[he - h] = '\0';
	}
	if (colon) {
		if ((size_t)(end - colon - 1) >= pcap || end == colon + 1)
			return -1;
		memcpy(port, colon + 1, (size_t)(end - colon - 1));
		port[end - colon - 1] = '\0';
	} else {
		snprintf(port, pcap, "443");
	}
	*path = *end ? end : "/";
	return 0;
}

static int acme_connect(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	int fd = -1;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		struct timeval tv = { ACME_IO_TIMEOUT_S, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

static void acme_header_copy(const char *buf, const struct h1_header *h, char *out, size_t cap)
{
	size_t n = h->value.len < cap - 1 ? h->value.len : cap - 1;
	memcpy(out, buf + h->value.off, n);
	out[n] = '\0';
}

/* One request on a connection of its own (HTTP/1.0: the answer ends at close,
 * never chunked). The CA's certificate is verified for its host name. */
static int acme_https(struct acme_run *x, const char *method, const char *url, const char *body,
                      struct acme_resp *r)
{
	memset(r, 0, sizeof(*r));
	char host[256], port[16];
	const char *path;
	if (acme_url_split(url, host, sizeof(host), port, sizeof(port), &path) != 0)
		return acme_fail(x, "not an https URL: %.200s", url);
	const char *ca = x->rc->acme->ca_file ? x->rc->acme->ca_file : "/etc/ssl/certs/ca-certificates.crt";
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	SSL *ssl = NULL;
	int fd = -1, rc = -1;
	size_t len = 0, cap = 16384;
	if (!ctx || !(r->buf = malloc(cap))) {
		acme_fail(x, "out of memory");
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (!SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
		acme_fail(x, "cannot load trusted roots from %s", ca);
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((fd = acme_connect(host, port)) < 0) {
		acme_fail(x, "cannot connect to %s port %s: %s", host, port, strerror(errno ? errno : ECONNREFUSED));
		goto out;
	}
	if (!(ssl = SSL_new(ctx)) || !SSL_set_fd(ssl, fd)) {
		acme_fail(x, "out of memory");
		goto out;
	}
	struct in6_addr a6;
	bool literal = inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
	if (literal)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else {
		SSL_set_tlsext_host_name(ssl, host);
		X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), host, strlen(host));
	}
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);
		acme_fail(x, "TLS to %s:%s failed: %s", host, port,
		          v != X509_V_OK ? X509_verify_cert_error_string(v) : "handshake error");
		goto out;
	}
	/* The CA builds its URLs from Host: the port goes with it. */
	char hosthdr[300];
	bool v6 = strchr(host, ':') != NULL;
	if (strcmp(port, "443") == 0)
		snprintf(hosthdr, sizeof(hosthdr), v6 ? "[%s]" : "%s", host);
	else
		snprintf(hosthdr, sizeof(hosthdr), v6 ? "[%s]:%s" : "%s:%s", host, port);
	char head[2048];
	size_t blen = body ? strlen(body) : 0;
	int hn = body ? snprintf(head, sizeof(head),
	                         "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: onegate/" ONEGATE_VERSION "\r\nAccept: */*\r\n"
	                         "Content-Type: application/jose+json\r\nContent-Length: %zu\r\n\r\n",
	                         method, path, hosthdr, blen)
	              : snprintf(head, sizeof(head),
	                         "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: onegate/" ONEGATE_VERSION "\r\nAccept: */*\r\n\r\n",
	                         method, path, hosthdr);
	if (hn <= 0 || (size_t)hn >= sizeof(head)) {
		acme_fail(x, "URL too long: %.200s", url);
		goto out;
	}
	if (SSL_write(ssl, head, hn) != hn || (blen && SSL_write(ssl, body, (int)blen) != (int)blen)) {
		acme_fail(x, "cannot send to %s:%s", host, port);
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= ACME_BODY_MAX) {
				acme_fail(x, "the answer from %s is larger than %d bytes", host, ACME_BODY_MAX);
				goto out;
			}
			char *nb = realloc(r->buf, cap * 2);
			if (!nb) {
				acme_fail(x, "out of memory");
				goto out;
			}
			r->buf = nb;
			cap *= 2;
		}
		int n = SSL_read(ssl, r->buf + len, (int)(cap - len));
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	struct h1_msg m;
	h1_resp_init(&m, H1_HEAD_LIMIT, strcmp(method, "HEAD") == 0);
	if (h1_parse(&m, r->buf, len) != H1_DONE) {
		acme_fail(x, "no HTTP answer from %s:%s", host, port);
		goto out;
	}
	r->status = m.status;
	r->body = r->buf + m.head_len;
	r->body_len = len - m.head_len;
	if (m.has_content_length && m.content_length < r->body_len)
		r->body_len = (size_t)m.content_length;
	for (size_t i = 0; i < m.nheaders; i++) {
		const struct h1_header *h = &m.headers[i];
		const char *name = r->buf + h->name.off;
		if (h->name.len == 12 && strncasecmp(name, "Replay-Nonce", 12) == 0)
			acme_header_copy(r->buf, h, r->nonce, sizeof(r->nonce));
		else if (h->name.len == 8 && strncasecmp(name, "Location", 8) == 0)
			acme_header_copy(r->buf, h, r->location, sizeof(r->location));
		else if (h->name.len == 11 && strncasecmp(name, "Retry-After", 11) == 0) {
			char v[32];
			acme_header_copy(r->buf, h, v, sizeof(v));
			r->retry_after = strtol(v, NULL, 10);
		}
	}
	rc = 0;
out:
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	if (rc != 0)
		acme_resp_clear(r);
	return rc;
}

/* ---------------------------------------------------------------- JWS (ES256) */

static char *acme_b64url(const uint8_t *p, size_t n)
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

/* The account key's JWK, members in the order RFC 7638 hashes them. */
static int acme_jwk(struct acme_run *x)
{
	const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(x->account);
	BIGNUM *bx = BN_new(), *by = BN_new();
	uint8_t xb[32], yb[32];
	int ok = ec && bx && by &&
	         EC_POINT_get_affine_coordinates_GFp(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec), bx, by, NULL) &&
	         BN_bn2bin_padded(xb, 32, bx) && BN_bn2bin_padded(yb, 32, by);
	BN_free(bx);
	BN_free(by);
	char *ex = ok ? acme_b64url(xb, 32) : NULL, *ey = ok ? acme_b64url(yb, 32) : NULL;
	if (ex && ey)
		snprintf(x->jwk, sizeof(x->jwk), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", ex, ey);
	free(ex);
	free(ey);
	if (!ok || !x->jwk[0])
		return acme_fail(x, "cannot read the account key");
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const uint8_t *)x->jwk, strlen(x->jwk), d);
	char *t = acme_b64url(d, sizeof(d));
	if (!t)
		return acme_fail(x, "out of memory");
	snprintf(x->thumb, sizeof(x->thumb), "%s", t);
	free(t);
	return 0;
}

/* The flattened JSON serialization of a JWS over payload ("" for POST-as-GET). */
static char *acme_jws(struct acme_run *x, const char *url, const char *payload)
{
	json_error_t je;
	json_t *prot = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", x->nonce, "url", url);
	if (prot && x->kid[0])
		json_object_set_new(prot, "kid", json_string(x->kid));
	else if (prot)
		json_object_set_new(prot, "jwk", json_loads(x->jwk, 0, &je));
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
	sig = ECDSA_do_sign(d, sizeof(d), EVP_PKEY_get0_EC_KEY(x->account));
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

static const char *acme_problem(const struct acme_resp *r, char *out, size_t cap)
{
	json_error_t je;
	json_t *j = json_loadb(r->body, r->body_len, 0, &je);
	const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
	const char *detail = j ? json_string_value(json_object_get(j, "detail")) : NULL;
	snprintf(out, cap, "HTTP %d%s%s%s%s", r->status, type ? " " : "", type ? type : "", detail ? ": " : "",
	         detail ? detail : "");
	json_decref(j);
	return out;
}

/* A signed POST; a badNonce answer is retried with the nonce it brought. */
static int acme_post(struct acme_run *x, const char *url, const char *payload, struct acme_resp *r)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		if (!x->nonce[0]) {
			struct acme_resp n;
			if (acme_https(x, "HEAD", x->new_nonce, NULL, &n) != 0)
				return -1;
			snprintf(x->nonce, sizeof(x->nonce), "%s", n.nonce);
			acme_resp_clear(&n);
			if (!x->nonce[0])
				return acme_fail(x, "the CA gave no nonce at %.200s", x->new_nonce);
		}
		char *jws = acme_jws(x, url, payload);
		if (!jws)
			return acme_fail(x, "cannot sign a request (out of memory)");
		x->nonce[0] = '\0';
		int rc = acme_https(x, "POST", url, jws, r);
		free(jws);
		if (rc != 0)
			return -1;
		snprintf(x->nonce, sizeof(x->nonce), "%s", r->nonce);
		char why[512];
		if (r->status == 400 && strstr(acme_problem(r, why, sizeof(why)), "badNonce") && attempt < 2) {
			acme_resp_clear(r);
			continue;
		}
		if (r->status >= 400) {
			acme_fail(x, "%.200s: %s", url, acme_problem(r, why, sizeof(why)));
			acme_resp_clear(r);
			return -1;
		}
		return 0;
	}
	return acme_fail(x, "the CA refused three nonces in a row");
}

static json_t *acme_post_json(struct acme_run *x, const char *url, const char *payload, struct acme_resp *r)
{
	if (acme_post(x, url, payload, r) != 0)
		return NULL;
	json_error_t je;
	json_t *j = json_loadb(r->body, r->body_len, 0, &je);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		acme_resp_clear(r);
		acme_fail(x, "%.200s: the CA's answer is not a JSON object", url);
		return NULL;
	}
	return j;
}

/* ---------------------------------------------------------------- files */

static int acme_mkdirs(const char *dir)
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

/* Written aside (0600) and renamed over, so a reader sees the old file or the new one. */
static int acme_write_file(const char *path, const char *data, size_t len)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
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

static char *acme_key_pem(EVP_PKEY *key)
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

/* The account key for this directory, made and kept on first use. */
static EVP_PKEY *acme_account_key(struct acme_run *x)
{
	uint8_t d[SHA256_DIGEST_LENGTH];
	const char *dir = x->rc->acme->directory;
	SHA256((const uint8_t *)dir, strlen(dir), d);
	char path[PATH_MAX], folder[PATH_MAX - 64];
	snprintf(folder, sizeof(folder), "%s/" RULES_ACME_DIR, x->state_dir);
	snprintf(path, sizeof(path), "%s/account-%02x%02x%02x%02x%02x%02x%02x%02x.key", folder, d[0], d[1], d[2], d[3],
	         d[4], d[5], d[6], d[7]);
	FILE *f = fopen(path, "r");
	if (f) {
		EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!k)
			acme_fail(x, "cannot read the account key %s; move it away to make a new account", path);
		return k;
	}
	EVP_PKEY *k = certs_key_new(CERTS_KEY_ECDSA_P256);
	char *pem = k ? acme_key_pem(k) : NULL;
	if (!pem || acme_mkdirs(folder) != 0 || acme_write_file(path, pem, strlen(pem)) != 0) {
		acme_fail(x, "cannot write the account key %s: %s", path, strerror(errno));
		EVP_PKEY_free(k);
		k = NULL;
	}
	free(pem);
	return k;
}

/* ---------------------------------------------------------------- the protocol */

static int acme_directory(struct acme_run *x)
{
	struct acme_resp r;
	const char *url = x->rc->acme->directory;
	if (acme_https(x, "GET", url, NULL, &r) != 0)
		return -1;
	json_error_t je;
	json_t *j = r.status == 200 ? json_loadb(r.body, r.body_len, 0, &je) : NULL;
	const char *nn = j ? json_string_value(json_object_get(j, "newNonce")) : NULL;
	const char *na = j ? json_string_value(json_object_get(j, "newAccount")) : NULL;
	const char *no = j ? json_string_value(json_object_get(j, "newOrder")) : NULL;
	int rc = 0;
	if (!nn || !na || !no)
		rc = acme_fail(x, "%s is not an ACME directory (HTTP %d)", url, r.status);
	else {
		snprintf(x->new_nonce, sizeof(x->new_nonce), "%s", nn);
		snprintf(x->new_account, sizeof(x->new_account), "%s", na);
		snprintf(x->new_order, sizeof(x->new_order), "%s", no);
	}
	json_decref(j);
	acme_resp_clear(&r);
	return rc;
}

static int acme_account(struct acme_run *x)
{
	json_t *p = json_pack("{s:b, s:[s+]}", "termsOfServiceAgreed", 1, "contact", "mailto:", x->rc->acme->email);
	char *payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	if (!payload)
		return acme_fail(x, "out of memory");
	struct acme_resp r;
	json_t *j = acme_post_json(x, x->new_account, payload, &r);
	free(payload);
	if (!j)
		return -1;
	const char *st = json_string_value(json_object_get(j, "status"));
	int rc = 0;
	if (!r.location[0] || !st || strcmp(st, "valid") != 0)
		rc = acme_fail(x, "the CA did not open an account (status %s)", st ? st : "none");
	else
		snprintf(x->kid, sizeof(x->kid), "%s", r.location);
	json_decref(j);
	acme_resp_clear(&r);
	return rc;
}

/* POST-as-GET until status leaves the pending states, with the CA's Retry-After
 * or a growing pause. The object is returned (the caller frees). */
static json_t *acme_poll(struct acme_run *x, const char *url, const char *what)
{
	long waited = 0, pause = 1;
	for (;;) {
		struct acme_resp r;
		json_t *j = acme_post_json(x, url, "", &r);
		long ra = r.retry_after;
		acme_resp_clear(&r);
		if (!j)
			return NULL;
		const char *st = json_string_value(json_object_get(j, "status"));
		if (!st || (strcmp(st, "pending") != 0 && strcmp(st, "processing") != 0))
			return j;
		json_decref(j);
		long s = ra > 0 && ra < 60 ? ra : pause;
		if (waited >= ACME_POLL_MAX) {
			acme_fail(x, "the %s stayed pending for %ld s", what, waited);
			return NULL;
		}
		if (acme_sleep(x->a, s)) {
			acme_fail(x, "stopping");
			return NULL;
		}
		waited += s;
		pause = pause < 8 ? pause * 2 : 8;
	}
}

/* "present" or "cleanup" NAME VALUE through the admin's dns_hook, waited for. */
static int acme_dns_hook(struct acme_run *x, const char *action, const char *name, const char *value)
{
	pid_t pid = fork();
	if (pid == 0) {
		execl(x->rc->acme->dns_hook, x->rc->acme->dns_hook, action, name, value, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return acme_fail(x, "dns_hook %s %s %s failed (%s %d)", x->rc->acme->dns_hook, action, name,
		                 pid < 0 ? "fork" : WIFEXITED(st) ? "exit" : "signal",
		                 pid < 0 ? errno : WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

/* The self-signed certificate RFC 8737 asks for: the name, and the SHA-256 of the
 * key authorization in a critical acmeIdentifier extension. */
static int acme_alpn_make(const char *name, const char *keyauth, X509 **cert, EVP_PKEY **key)
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
static int acme_authorize(struct acme_run *x, const char *url)
{
	struct acme_resp r;
	json_t *az = acme_post_json(x, url, "", &r);
	acme_resp_clear(&r);
	if (!az)
		return -1;
	int rc = -1;
	const char *st = json_string_value(json_object_get(az, "status"));
	const char *ident = json_string_value(json_object_get(json_object_get(az, "identifier"), "value"));
	bool wildcard = json_is_true(json_object_get(az, "wildcard"));
	if (st && strcmp(st, "valid") == 0) {
		json_decref(az);
		return 0;
	}
	enum rules_acme_challenge kind = wildcard ? RULES_ACME_DNS01 : x->rc->acme->challenge;
	static const char *const kinds[] = { "http-01", "tls-alpn-01", "dns-01" };
	const char *curl = NULL, *token = NULL;
	json_t *chs = json_object_get(az, "challenges");
	for (size_t i = 0; i < json_array_size(chs) && !curl; i++) {
		json_t *c = json_array_get(chs, i);
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && strcmp(t, kinds[kind]) == 0) {
			curl = json_string_value(json_object_get(c, "url"));
			token = json_string_value(json_object_get(c, "token"));
		}
	}
	if (!ident || !curl || !token || strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
	                                     strlen(token)) {
		acme_fail(x, "the CA offers no usable %s challenge for %s", kinds[kind], ident ? ident : "a name");
		json_decref(az);
		return -1;
	}
	char keyauth[256], txt[64] = "", dnsname[300] = "";
	snprintf(keyauth, sizeof(keyauth), "%s.%s", token, x->thumb);
	bool added = false, presented = false;
	if (kind == RULES_ACME_HTTP01)
		added = acme_chal_add(token, keyauth, NULL, NULL, NULL) == 0;
	else if (kind == RULES_ACME_TLSALPN01) {
		X509 *cert;
		EVP_PKEY *key;
		added = acme_alpn_make(ident, keyauth, &cert, &key) == 0 && acme_chal_add(token, keyauth, ident, cert, key) == 0;
	} else {
		uint8_t d[SHA256_DIGEST_LENGTH];
		SHA256((const uint8_t *)keyauth, strlen(keyauth), d);
		char *v = acme_b64url(d, sizeof(d));
		snprintf(txt, sizeof(txt), "%s", v ? v : "");
		free(v);
		snprintf(dnsname, sizeof(dnsname), "_acme-challenge.%s", ident);
		added = presented = txt[0] && acme_dns_hook(x, "present", dnsname, txt) == 0;
		if (!added)
			goto out;
	}
	if (!added) {
		acme_fail(x, "cannot set up the %s challenge for %s", kinds[kind], ident);
		goto out;
	}
	log_msg(LOG_INFO, "acme %s: answering %s for %s", x->rc->name, kinds[kind], ident);
	json_t *resp = acme_post_json(x, curl, "{}", &r);
	acme_resp_clear(&r);
	if (!resp)
		goto out;
	json_decref(resp);
	json_t *done = acme_poll(x, url, "authorization");
	if (!done)
		goto out;
	st = json_string_value(json_object_get(done, "status"));
	if (st && strcmp(st, "valid") == 0)
		rc = 0;
	else {
		char why[300] = "";
		json_t *chs2 = json_object_get(done, "challenges");
		for (size_t i = 0; i < json_array_size(chs2); i++) {
			json_t *e = json_object_get(json_array_get(chs2, i), "error");
			if (e)
				snprintf(why, sizeof(why), ": %s", json_string_value(json_object_get(e, "detail")) ?
				                                     json_string_value(json_object_get(e, "detail")) : "");
		}
		acme_fail(x, "the CA did not validate %s by %s (status %s)%s", ident, kinds[kind], st ? st : "none", why);
	}
	json_decref(done);
out:
	if (added && kind != RULES_ACME_DNS01)
		acme_chal_remove(token);
	if (presented)
		acme_dns_hook(x, "cleanup", dnsname, txt);
	json_decref(az);
	return rc;
}

static enum certs_key_type acme_key_type(enum rules_acme_key k)
{
	return k == RULES_ACME_ECDSA_P384 ? CERTS_KEY_ECDSA_P384 : k == RULES_ACME_RSA2048 ? CERTS_KEY_RSA2048
	                                                                                   : CERTS_KEY_ECDSA_P256;
}

/* The CSR, base64url DER: the names as SANs, the first also as CN. */
static char *acme_csr(const struct rules_acme *a, EVP_PKEY *key)
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

/* A whole order; on success the chain and key are in the state folder. */
static int acme_order(struct acme_run *x)
{
	const struct rules_acme *a = x->rc->acme;
	if (!(x->account = acme_account_key(x)) || acme_jwk(x) != 0 || acme_directory(x) != 0 || acme_account(x) != 0)
		return -1;
	json_t *ids = json_array();
	for (size_t i = 0; ids && i < a->nnames; i++)
		json_array_append_new(ids, json_pack("{s:s, s:s}", "type", "dns", "value", a->names[i]));
	json_t *p = json_pack("{s:o}", "identifiers", ids);
	char *payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	if (!payload)
		return acme_fail(x, "out of memory");
	struct acme_resp r;
	json_t *order = acme_post_json(x, x->new_order, payload, &r);
	free(payload);
	if (!order)
		return -1;
	char order_url[1024];
	snprintf(order_url, sizeof(order_url), "%s", r.location);
	acme_resp_clear(&r);
	int rc = -1;
	EVP_PKEY *key = NULL;
	char *csr = NULL, *pem = NULL;
	json_t *done = NULL, *fin = NULL;
	json_t *auths = json_object_get(order, "authorizations");
	const char *finalize = json_string_value(json_object_get(order, "finalize"));
	if (!order_url[0] || !finalize || !json_array_size(auths)) {
		acme_fail(x, "the CA's order has no authorizations, finalize URL or location");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(auths); i++) {
		const char *u = json_string_value(json_array_get(auths, i));
		if (!u || acme_authorize(x, u) != 0)
			goto out;
	}
	if (!(key = certs_key_new(acme_key_type(a->key))) || !(csr = acme_csr(a, key))) {
		acme_fail(x, "cannot make the key and CSR");
		goto out;
	}
	json_t *fp = json_pack("{s:s}", "csr", csr);
	char *fpayload = fp ? json_dumps(fp, JSON_COMPACT) : NULL;
	json_decref(fp);
	fin = fpayload ? acme_post_json(x, finalize, fpayload, &r) : NULL;
	free(fpayload);
	acme_resp_clear(&r);
	if (!fin || !(done = acme_poll(x, order_url, "order")))
		goto out;
	const char *st = json_string_value(json_object_get(done, "status"));
	const char *cert_url = json_string_value(json_object_get(done, "certificate"));
	if (!st || strcmp(st, "valid") != 0 || !cert_url) {
		acme_fail(x, "the order ended %s, without a certificate", st ? st : "without a status");
		goto out;
	}
	if (acme_post(x, cert_url, "", &r) != 0)
		goto out;
	if (r.body_len == 0 || !memmem(r.body, r.body_len, "-----BEGIN CERTIFICATE-----", 27)) {
		acme_fail(x, "the CA's certificate download is not PEM");
		acme_resp_clear(&r);
		goto out;
	}
	char dir[PATH_MAX - 64], cpath[PATH_MAX], kpath[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/" RULES_ACME_DIR "/%s", x->state_dir, x->rc->name);
	snprintf(cpath, sizeof(cpath), "%s/cert.pem", dir);
	snprintf(kpath, sizeof(kpath), "%s/key.pem", dir);
	pem = acme_key_pem(key);
	if (!pem || acme_mkdirs(dir) != 0 || acme_write_file(kpath, pem, strlen(pem)) != 0 ||
	    acme_write_file(cpath, r.body, r.body_len) != 0)
		acme_fail(x, "cannot write the certificate to %s: %s", dir, strerror(errno));
	else
		rc = 0;
	acme_resp_clear(&r);
out:
	if (pem)
		OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	free(csr);
	EVP_PKEY_free(key);
	json_decref(fin);
	json_decref(done);
	json_decref(order);
	return rc;
}

/* ---------------------------------------------------------------- schedule */

static void acme_report_quiet(void *arg, bool warning, const char *msg)
{
	(void)warning;
	snprintf(arg, 512, "%s", msg);
}

/* The certificate in the state folder, when it is there and fits the names. */
static struct certs_item *acme_load_saved(const struct rules_cert *rc, const char *state_dir, char *why)
{
	char cert[PATH_MAX], key[PATH_MAX];
	snprintf(cert, sizeof(cert), "%s/" RULES_ACME_DIR "/%s/cert.pem", state_dir, rc->name);
	snprintf(key, sizeof(key), "%s/" RULES_ACME_DIR "/%s/key.pem", state_dir, rc->name);
	struct certs_source src = { .name = rc->name, .cert = cert, .key = key, .ca_file = rc->acme->ca_file,
	                            .allow_incomplete_chain = true };
	struct certs_report rep = { acme_report_quiet, why };
	return certs_item_load(&src, &rep);
}

static bool acme_names_fit(const struct certs_item *item, const struct rules_acme *a)
{
	if (!item || certs_item_is_placeholder(item) || certs_item_nnames(item) != a->nnames)
		return false;
	for (size_t i = 0; i < a->nnames; i++) {
		bool found = false;
		for (size_t k = 0; k < a->nnames; k++)
			found |= strcmp(certs_item_name_at(item, k), a->names[i]) == 0;
		if (!found)
			return false;
	}
	return true;
}

static time_t acme_renew_time(const struct certs_item *item)
{
	time_t nb = certs_item_not_before(item), na = certs_item_not_after(item);
	return nb + (na - nb) * 2 / 3;
}

static struct acme_cert *acme_cert_find(struct acme *a, const char *name)
{
	for (size_t i = 0; i < a->ncerts; i++)
		if (strcmp(a->certs[i].name, name) == 0)
			return &a->certs[i];
	return NULL;
}

/* Brings the table in line with the rules: new entries start from what the
 * loader found, entries no longer in the rules are dropped. */
static void acme_sync(struct acme *a, const struct rules_config *cfg)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->ncerts; i++)
		a->certs[i].seen = false;
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		if (!rc->acme || !rc->item)
			continue;
		struct acme_cert *c = acme_cert_find(a, rc->name);
		if (!c) {
			struct acme_cert *n = realloc(a->certs, (a->ncerts + 1) * sizeof(*n));
			if (!n)
				continue;
			a->certs = n;
			c = &a->certs[a->ncerts];
			memset(c, 0, sizeof(*c));
			if (!(c->name = strdup(rc->name)))
				continue;
			a->ncerts++;
		}
		c->seen = true;
		/* A newer certificate on disk (the other gateway of a pair renewed it) takes over. */
		bool better = !certs_item_is_placeholder(rc->item) &&
		              (!c->item || certs_item_is_placeholder(c->item) ||
		               certs_item_not_after(rc->item) > certs_item_not_after(c->item));
		if (better || !c->item) {
			certs_item_unref(c->item);
			c->item = certs_item_ref(rc->item);
			tlsconf_slot_publish(rc->name, c->item);
		}
		c->renew_at = acme_names_fit(c->item, rc->acme) ? acme_renew_time(c->item) : 0;
	}
	for (size_t i = 0; i < a->ncerts;) {
		if (a->certs[i].seen) {
			i++;
			continue;
		}
		certs_item_unref(a->certs[i].item);
		free(a->certs[i].name);
		a->certs[i] = a->certs[--a->ncerts];
	}
	pthread_mutex_unlock(&a->lock);
}

static void acme_issue(struct acme *a, const struct rules_config *cfg, const struct rules_cert *rc, time_t now)
{
	struct acme_run x = { .a = a, .rc = rc, .state_dir = cfg->state_dir };
	log_msg(LOG_INFO, "acme %s: ordering a certificate for %zu name%s from %s", rc->name, rc->acme->nnames,
	        rc->acme->nnames == 1 ? "" : "s", rc->acme->directory);
	int rc_order = acme_order(&x);
	EVP_PKEY_free(x.account);
	struct certs_item *item = NULL;
	char why[512] = "";
	if (rc_order == 0 && !(item = acme_load_saved(rc, cfg->state_dir, why)))
		snprintf(x.err, sizeof(x.err), "the issued certificate does not load: %.*s",
		         (int)(sizeof(x.err) - sizeof("the issued certificate does not load: ")), why);
	pthread_mutex_lock(&a->lock);
	struct acme_cert *c = acme_cert_find(a, rc->name);
	if (c && item) {
		certs_item_unref(c->item);
		c->item = item;
		c->failures = 0;
		c->retry_at = 0;
		c->last_error[0] = '\0';
		c->renew_at = acme_renew_time(item);
		tlsconf_slot_publish(rc->name, item);
		item = NULL;
		char until[64];
		time_t na = certs_item_not_after(c->item);
		struct tm tm;
		gmtime_r(&na, &tm);
		strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S UTC", &tm);
		log_msg(LOG_INFO, "acme %s: certificate issued, valid until %s, now served", rc->name, until);
	} else if (c) {
		c->failures++;
		long back = ACME_BACKOFF_FIRST;
		for (unsigned i = 1; i < c->failures && back < ACME_BACKOFF_MAX; i++)
			back *= 2;
		if (back > ACME_BACKOFF_MAX)
			back = ACME_BACKOFF_MAX;
		c->retry_at = now + back;
		snprintf(c->last_error, sizeof(c->last_error), "%s", x.err);
		log_msg(LOG_WARN, "acme %s: %s; the current certificate stays, next attempt in %ld s", rc->name, x.err,
		        back);
	}
	pthread_mutex_unlock(&a->lock);
	certs_item_unref(item);
}

static const int acme_warn_days[] = { 30, 14, 7 };

/* What a certificate serves now: the ACME one issued (else NULL: nothing to warn
 * about yet), or the file's. */
static time_t acme_serving_until(struct acme *a, const struct rules_cert *rc)
{
	if (!rc->acme)
		return rc->item ? certs_item_not_after(rc->item) : 0;
	pthread_mutex_lock(&a->lock);
	struct acme_cert *c = acme_cert_find(a, rc->name);
	time_t na = c && c->item && !certs_item_is_placeholder(c->item) ? certs_item_not_after(c->item) : 0;
	pthread_mutex_unlock(&a->lock);
	return na;
}

/* A warning in the log when a certificate, file or ACME, passes 30, 14 and 7 days
 * before it expires: once per threshold, again for the next certificate. */
static void acme_expiry_warn(struct acme *a, const struct rules_config *cfg, time_t now)
{
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		time_t na = acme_serving_until(a, rc);
		if (!na)
			continue;
		int level = 0;
		for (size_t k = 0; k < sizeof(acme_warn_days) / sizeof(acme_warn_days[0]); k++)
			if (na - now <= (time_t)acme_warn_days[k] * 86400)
				level = (int)k + 1;
		struct acme_warned *w = NULL;
		for (size_t k = 0; k < a->nwarned && !w; k++)
			if (strcmp(a->warned[k].name, rc->name) == 0)
				w = &a->warned[k];
		if (!w) {
			struct acme_warned *n = realloc(a->warned, (a->nwarned + 1) * sizeof(*n));
			if (!n)
				continue;
			a->warned = n;
			w = &a->warned[a->nwarned];
			*w = (struct acme_warned){ strdup(rc->name), na, 0 };
			if (!w->name)
				continue;
			a->nwarned++;
		}
		if (w->not_after != na) {
			w->not_after = na;
			w->level = 0;
		}
		if (level <= w->level)
			continue;
		w->level = level;
		char when[64];
		struct tm tm;
		gmtime_r(&na, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
		long left = (long)(na - now);
		log_msg(LOG_WARN, "certificate %s expires on %s, in %ld days%s%s", rc->name, when,
		        left > 0 ? left / 86400 : 0L,
		        rc->acme ? "; ACME renews it (see onegate certs list)" : "; replace its file and reload",
		        left <= 0 ? " (it has expired)" : "");
	}
}

static void *acme_main(void *arg)
{
	struct acme *a = arg;
	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		struct rules_config *cfg = rules_config_ref(a->cfg);
		bool changed = a->cfg_changed;
		a->cfg_changed = false;
		pthread_mutex_unlock(&a->lock);
		if (changed)
			acme_sync(a, cfg);
		time_t now = time(NULL), next = now + 3600;
		for (size_t i = 0; i < cfg->ncerts; i++) {
			const struct rules_cert *rc = &cfg->certs[i];
			if (!rc->acme)
				continue;
			pthread_mutex_lock(&a->lock);
			struct acme_cert *c = acme_cert_find(a, rc->name);
			time_t due = c ? (c->renew_at > c->retry_at ? c->renew_at : c->retry_at) : next;
			bool stop = a->stop;
			pthread_mutex_unlock(&a->lock);
			if (stop)
				break;
			if (due <= now) {
				acme_issue(a, cfg, rc, now);
				now = time(NULL);
				pthread_mutex_lock(&a->lock);
				c = acme_cert_find(a, rc->name);
				due = c ? (c->renew_at > c->retry_at ? c->renew_at : c->retry_at) : next;
				pthread_mutex_unlock(&a->lock);
			}
			if (due < next)
				next = due;
		}
		acme_expiry_warn(a, cfg, now);
		rules_config_unref(cfg);
		struct timespec ts = { next > now ? next : now + 1, 0 };
		pthread_mutex_lock(&a->lock);
		while (!a->stop && !a->cfg_changed && pthread_cond_timedwait(&a->wake, &a->lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

struct acme *acme_start(struct rules_config *cfg)
{
	struct acme *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	a->cfg = rules_config_ref(cfg);
	acme_sync(a, cfg);
	if (pthread_create(&a->thread, NULL, acme_main, a) != 0) {
		log_msg(LOG_ERROR, "cannot start the ACME thread");
		rules_config_unref(a->cfg);
		free(a);
		return NULL;
	}
	pthread_mutex_lock(&acme_current_lock);
	acme_current = a;
	pthread_mutex_unlock(&acme_current_lock);
	return a;
}

void acme_reload(struct acme *a, struct rules_config *cfg)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	struct rules_config *old = a->cfg;
	a->cfg = rules_config_ref(cfg);
	a->cfg_changed = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	rules_config_unref(old);
}

void acme_stop(struct acme *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&acme_current_lock);
	if (acme_current == a)
		acme_current = NULL;
	pthread_mutex_unlock(&acme_current_lock);
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	for (size_t i = 0; i < a->ncerts; i++) {
		certs_item_unref(a->certs[i].item);
		free(a->certs[i].name);
	}
	free(a->certs);
	for (size_t i = 0; i < a->nwarned; i++)
		free(a->warned[i].name);
	free(a->warned);
	rules_config_unref(a->cfg);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

bool acme_cert_view(const char *name, struct acme_cert_view *v)
{
	memset(v, 0, sizeof(*v));
	bool found = false;
	pthread_mutex_lock(&acme_current_lock);
	struct acme *a = acme_current;
	if (a) {
		pthread_mutex_lock(&a->lock);
		const struct acme_cert *c = acme_cert_find(a, name);
		if (c) {
			found = true;
			v->issued = c->item && !certs_item_is_placeholder(c->item);
			v->not_after = v->issued ? certs_item_not_after(c->item) : 0;
			v->next_attempt = c->renew_at > c->retry_at ? c->renew_at : c->retry_at;
			v->failures = c->failures;
			snprintf(v->last_error, sizeof(v->last_error), "%s", c->last_error);
		}
		pthread_mutex_unlock(&a->lock);
	}
	pthread_mutex_unlock(&acme_current_lock);
	return found;
}
