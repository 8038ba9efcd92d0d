#include "proxy/tlsconf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/hkdf.h>
#include <openssl/hmac.h>
#include <openssl/pool.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "acme/acme.h"
#include "certs.h"

/* A certificate ready to be handed to an SSL: DER buffers, leaf first. */
struct tlsconf_cred {
	CRYPTO_BUFFER **chain;
	size_t nchain;
	EVP_PKEY *key;
	bool ecdsa;
	struct certs_item *item;        /* a reference: its names, its OCSP response */
	const uint8_t *ocsp;            /* in item; NULL: nothing to staple */
	size_t ocsp_len;
	time_t ocsp_until;              /* 0: no nextUpdate */
	struct tlsconf_slot *slot;      /* ACME: serve what the slot holds instead */
};

/* What an ACME certificate serves now: the certificate the control side last
 * put in, shared by every context built for it, across reloads. One per
 * certificate name for the process's life. The lock is held only to set a
 * certificate on a connection (a few reference counts) or to replace it. */
struct tlsconf_slot {
	char *name;
	pthread_mutex_t lock;
	struct tlsconf_cred cred;
	bool set;
	struct tlsconf_slot *next;
};

static pthread_mutex_t tlsconf_slots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tlsconf_slot *tlsconf_slots;

/* The certificates for one name: at most one ECDSA and one RSA. */
struct tlsconf_pick {
	long ecdsa, rsa;                /* indexes into the service's creds, or -1 */
};

struct tlsconf_service {
	SSL_CTX *ctx;
	struct tlsconf_cred *creds;
	size_t ncreds;
	struct rules_namemap *names;    /* certificate name -> pick */
	struct tlsconf_pick *picks;
	char **pick_names;
	size_t npicks;
	struct tlsconf_pick dflt;
	uint8_t *ticket_keys;           /* from ticket_key_file; NULL: the process's own */
	size_t nticket_keys;
	bool http2;                     /* ALPN offers h2 before http/1.1 */
};

struct tlsconf {
	int refs;
	struct tlsconf_service *svcs;
	size_t nsvcs;
	SSL_CTX **pools;
	size_t npools;
	SSL_CTX *unverified;            /* HTTPS health checks of pools that do not re-encrypt */
};

static int tlsconf_ex_index = -1;
static int tlsconf_acme_index = -1;    /* on an SSL: it got a TLS-ALPN-01 challenge certificate */
static uint8_t tlsconf_ticket_secret[32];
static pthread_once_t tlsconf_once = PTHREAD_ONCE_INIT;

static void tlsconf_init_once(void)
{
	tlsconf_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	tlsconf_acme_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	RAND_bytes(tlsconf_ticket_secret, sizeof(tlsconf_ticket_secret));
}

static void tlsconf_cred_clear(struct tlsconf_cred *c)
{
	for (size_t i = 0; i < c->nchain; i++)
		CRYPTO_BUFFER_free(c->chain[i]);
	free(c->chain);
	EVP_PKEY_free(c->key);
	certs_item_unref(c->item);
}

static void tlsconf_free(struct tlsconf *t)
{
	for (size_t i = 0; i < t->nsvcs; i++) {
		struct tlsconf_service *s = &t->svcs[i];
		SSL_CTX_free(s->ctx);
		for (size_t k = 0; k < s->ncreds; k++)
			tlsconf_cred_clear(&s->creds[k]);
		free(s->creds);
		rules_namemap_free(s->names);
		free(s->picks);
		for (size_t k = 0; k < s->npicks; k++)
			free(s->pick_names[k]);
		free(s->pick_names);
		if (s->ticket_keys)
			OPENSSL_cleanse(s->ticket_keys, s->nticket_keys * RULES_TICKET_KEY_LEN);
		free(s->ticket_keys);
	}
	free(t->svcs);
	for (size_t i = 0; i < t->npools; i++)
		SSL_CTX_free(t->pools[i]);
	free(t->pools);
	SSL_CTX_free(t->unverified);
	free(t);
}

struct tlsconf *tlsconf_ref(struct tlsconf *t)
{
	if (t)
		__atomic_fetch_add(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void tlsconf_unref(struct tlsconf *t)
{
	if (t && __atomic_fetch_sub(&t->refs, 1, __ATOMIC_ACQ_REL) == 1)
		tlsconf_free(t);
}

static CRYPTO_BUFFER *tlsconf_der(X509 *x)
{
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);
	if (n <= 0)
		return NULL;
	CRYPTO_BUFFER *b = CRYPTO_BUFFER_new(der, (size_t)n, NULL);
	OPENSSL_free(der);
	return b;
}

static int tlsconf_cred_init(struct tlsconf_cred *c, struct certs_item *item)
{
	STACK_OF(X509) *chain = certs_item_chain(item);
	size_t n = 1 + sk_X509_num(chain);
	if (!(c->chain = calloc(n, sizeof(*c->chain))))
		return -1;
	if (!(c->chain[c->nchain++] = tlsconf_der(certs_item_leaf(item))))
		return -1;
	for (size_t i = 0; i < sk_X509_num(chain); i++)
		if (!(c->chain[c->nchain++] = tlsconf_der(sk_X509_value(chain, i))))
			return -1;
	c->key = certs_item_key(item);
	EVP_PKEY_up_ref(c->key);
	c->ecdsa = certs_item_is_ecdsa(item);
	c->item = certs_item_ref(item);
	c->ocsp = certs_item_ocsp(item, &c->ocsp_len, &c->ocsp_until);
	return 0;
}

/* Whether the client offers an ECDSA signature algorithm (TLS 1.2 and 1.3 alike). */
static struct tlsconf_slot *tlsconf_slot_get(const char *name)
{
	pthread_mutex_lock(&tlsconf_slots_lock);
	struct tlsconf_slot *s = tlsconf_slots;
	while (s && strcmp(s->name, name) != 0)
		s = s->next;
	if (!s && (s = calloc(1, sizeof(*s)))) {
		if ((s->name = strdup(name))) {
			pthread_mutex_init(&s->lock, NULL);
			s->next = tlsconf_slots;
			tlsconf_slots = s;
		} else {
			free(s);
			s = NULL;
		}
	}
	pthread_mutex_unlock(&tlsconf_slots_lock);
	return s;
}

static int tlsconf_slot_fill(struct tlsconf_slot *s, struct certs_item *item, bool only_empty)
{
	struct tlsconf_cred next = { 0 };
	if (tlsconf_cred_init(&next, item) != 0) {
		tlsconf_cred_clear(&next);
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	struct tlsconf_cred old = s->cred;
	bool keep = only_empty && s->set;
	if (!keep) {
		s->cred = next;
		s->set = true;
	}
	pthread_mutex_unlock(&s->lock);
	if (keep)
		tlsconf_cred_clear(&next);
	else if (old.chain || old.key)
		tlsconf_cred_clear(&old);
	return 0;
}

int tlsconf_slot_publish(const char *name, struct certs_item *item)
{
	struct tlsconf_slot *s = tlsconf_slot_get(name);
	return s ? tlsconf_slot_fill(s, item, false) : -1;
}

static bool tlsconf_client_ecdsa(const SSL_CLIENT_HELLO *hello)
{
	const uint8_t *data;
	size_t len;
	if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_signature_algorithms, &data, &len) || len < 2)
		return false;
	size_t n = ((size_t)data[0] << 8 | data[1]);
	for (size_t i = 2; i + 1 < len && i < n + 2; i += 2)
		if (data[i + 1] == 0x03 && (data[i] == 0x04 || data[i] == 0x05))  /* ecdsa_secp256r1/384r1 */
			return true;
	return false;
}

/* The server name straight from the ClientHello, before BoringSSL has acted on it. */
static size_t tlsconf_sni(const SSL_CLIENT_HELLO *hello, const char **name)
{
	const uint8_t *d;
	size_t len;
	if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_server_name, &d, &len) || len < 5)
		return 0;
	size_t list = (size_t)d[0] << 8 | d[1];
	if (list + 2 > len || d[2] != 0)
		return 0;
	size_t n = (size_t)d[3] << 8 | d[4];
	if (n + 5 > len)
		return 0;
	*name = (const char *)d + 5;
	return n;
}

/* Chooses the certificate before the handshake goes on: the most specific name
 * wins (exact before wildcard), ECDSA when the client can take it, else RSA. */
static enum ssl_select_cert_result_t tlsconf_select(const SSL_CLIENT_HELLO *hello)
{
	SSL *ssl = hello->ssl;
	const struct tlsconf_service *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tlsconf_ex_index);
	if (!s)
		return ssl_select_cert_error;
	const char *name = NULL;
	size_t len = tlsconf_sni(hello, &name);
	/* RFC 8737: a validation offers only acme-tls/1; the challenge certificate
	 * answers it, for a name under validation, and nothing else is served. */
	const uint8_t *alpn;
	size_t alpn_len;
	if (len && SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_application_layer_protocol_negotiation, &alpn,
	                                                &alpn_len) &&
	    alpn_len > 2 && acme_alpn_offered(alpn + 2, alpn_len - 2)) {
		if (!acme_alpn_set(ssl, name, len))
			return ssl_select_cert_error;
		SSL_set_ex_data(ssl, tlsconf_acme_index, (void *)1);
		return ssl_select_cert_success;
	}
	struct tlsconf_pick pick = s->dflt;
	if (len) {
		int i = rules_namemap_lookup(s->names, name, len);
		if (i >= 0)
			pick = s->picks[i];
	}
	bool ecdsa = tlsconf_client_ecdsa(hello);
	long c = ecdsa && pick.ecdsa >= 0 ? pick.ecdsa : pick.rsa >= 0 ? pick.rsa : pick.ecdsa;
	if (c < 0)
		return ssl_select_cert_error;
	const struct tlsconf_cred *cred = &s->creds[c];
	if (cred->slot) {
		pthread_mutex_lock(&cred->slot->lock);
		int ok = SSL_set_chain_and_key(ssl, cred->slot->cred.chain, cred->slot->cred.nchain, cred->slot->cred.key,
		                               NULL);
		pthread_mutex_unlock(&cred->slot->lock);
		return ok ? ssl_select_cert_success : ssl_select_cert_error;
	}
	if (!SSL_set_chain_and_key(ssl, cred->chain, cred->nchain, cred->key, NULL))
		return ssl_select_cert_error;
	/* Stapled only when asked for (the copy is per connection), and never past
	 * its nextUpdate: a client may fail the handshake on a stale response. */
	const uint8_t *ext;
	size_t ext_len;
	if (cred->ocsp && (!cred->ocsp_until || time(NULL) < cred->ocsp_until) &&
	    SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_status_request, &ext, &ext_len) &&
	    !SSL_set_ocsp_response(ssl, cred->ocsp, cred->ocsp_len))
		return ssl_select_cert_error;
	return ssl_select_cert_success;
}

static void tlsconf_pick_add(struct tlsconf_pick *p, long cred, bool ecdsa)
{
	if (ecdsa && p->ecdsa < 0)
		p->ecdsa = cred;
	else if (!ecdsa && p->rsa < 0)
		p->rsa = cred;
}

/* The pick for a certificate name, made on first sight: -2 out of memory, -1 a name the map refuses.
 * The map (hashed) tells a new name from one seen before; only then are the picks searched, so
 * that a service with 10,000 names is built in linear time. */
static long tlsconf_pick_for(struct tlsconf_service *s, const char *name)
{
	struct tlsconf_pick *np = realloc(s->picks, (s->npicks + 1) * sizeof(*np));
	if (np)
		s->picks = np;
	char **nn = realloc(s->pick_names, (s->npicks + 1) * sizeof(*nn));
	if (nn)
		s->pick_names = nn;
	char *copy = np && nn ? strdup(name) : NULL;
	if (!copy)
		return -2;
	char e[256];
	int rc = rules_namemap_add(s->names, name, (int)s->npicks, e, sizeof(e));
	if (rc < 0) {
		free(copy);
		for (size_t i = 0; rc == -2 && i < s->npicks; i++)
			if (strcasecmp(s->pick_names[i], name) == 0)
				return (long)i;
		return -1;
	}
	s->pick_names[s->npicks] = copy;
	s->picks[s->npicks] = (struct tlsconf_pick){ -1, -1 };
	return (long)s->npicks++;
}

/* One period's key: HKDF of the process secret, the period number as info. */
static void tlsconf_period_key(uint64_t period, uint8_t key[RULES_TICKET_KEY_LEN])
{
	uint8_t info[8];
	for (int i = 0; i < 8; i++)
		info[i] = (uint8_t)(period >> (56 - 8 * i));
	HKDF(key, RULES_TICKET_KEY_LEN, EVP_sha256(), tlsconf_ticket_secret, sizeof(tlsconf_ticket_secret), NULL, 0,
	     info, sizeof(info));
}

void tlsconf_own_ticket_keys(time_t now, uint8_t keys[2][RULES_TICKET_KEY_LEN])
{
	pthread_once(&tlsconf_once, tlsconf_init_once);
	uint64_t period = (uint64_t)now / TLSCONF_TICKET_ROTATE;
	tlsconf_period_key(period, keys[0]);
	tlsconf_period_key(period - 1, keys[1]);
}

/* Session tickets (TLS 1.2 and 1.3): AES-256-CBC and HMAC-SHA256 under a key
 * laid out as nginx's 80-byte ssl_session_ticket_key: name, HMAC key, AES key.
 * A ticket under a key other than the first is accepted and renewed. */
static int tlsconf_ticket(SSL *ssl, uint8_t *name, uint8_t *iv, EVP_CIPHER_CTX *cipher, HMAC_CTX *hmac, int encrypt)
{
	const struct tlsconf_service *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tlsconf_ex_index);
	uint8_t own[2][RULES_TICKET_KEY_LEN];
	const uint8_t *keys = s->ticket_keys;
	size_t n = s->nticket_keys;
	if (!keys) {
		tlsconf_own_ticket_keys(time(NULL), own);
		keys = own[0];
		n = 2;
	}
	int rc = 0;
	if (encrypt) {
		memcpy(name, keys, SSL_TICKET_KEY_NAME_LEN);
		rc = RAND_bytes(iv, 16) && EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, keys + 48, iv) &&
		     HMAC_Init_ex(hmac, keys + 16, 32, EVP_sha256(), NULL) ? 1 : -1;
	}
	for (size_t i = 0; !encrypt && i < n; i++) {
		const uint8_t *k = keys + i * RULES_TICKET_KEY_LEN;
		if (memcmp(name, k, SSL_TICKET_KEY_NAME_LEN) == 0) {
			rc = EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, k + 48, iv) &&
			     HMAC_Init_ex(hmac, k + 16, 32, EVP_sha256(), NULL) ? (i ? 2 : 1) : -1;
			break;
		}
	}
	OPENSSL_cleanse(own, sizeof(own));
	return rc;
}

/* The protocol named proto (length-prefixed, as on the wire) in the client's list, or NULL. */
static const uint8_t *tlsconf_alpn_find(const uint8_t *in, unsigned inlen, const char *proto)
{
	size_t len = strlen(proto);
	for (unsigned i = 0; i < inlen; i += 1u + in[i])
		if (in[i] == len && i + 1 + len <= inlen && memcmp(in + i + 1, proto, len) == 0)
			return in + i + 1;
	return NULL;
}

/* ALPN, the server's order: h2 (unless the service says http2 = false), then http/1.1;
 * a client offering neither gets no ALPN and speaks HTTP/1.1. A TLS-ALPN-01 validation
 * got the challenge certificate in the early callback and is answered acme-tls/1. */
static int tlsconf_alpn(SSL *ssl, const uint8_t **out, uint8_t *outlen, const uint8_t *in, unsigned inlen, void *arg)
{
	const struct tlsconf_service *s = arg;
	if (SSL_get_ex_data(ssl, tlsconf_acme_index)) {
		*out = (const uint8_t *)"acme-tls/1";
		*outlen = 10;
		return SSL_TLSEXT_ERR_OK;
	}
	const uint8_t *p = s->http2 ? tlsconf_alpn_find(in, inlen, "h2") : NULL;
	if (!p)
		p = tlsconf_alpn_find(in, inlen, "http/1.1");
	if (!p)
		return SSL_TLSEXT_ERR_NOACK;
	*out = p;
	*outlen = p[-1];
	return SSL_TLSEXT_ERR_OK;
}

static int tlsconf_service_init(struct tlsconf_service *s, const struct rules_config *cfg,
                                const struct rules_service *svc, char *err, size_t errlen)
{
	s->dflt = (struct tlsconf_pick){ -1, -1 };
	s->ctx = SSL_CTX_new(TLS_method());
	s->names = rules_namemap_new();
	s->creds = calloc(svc->ncerts ? svc->ncerts : 1, sizeof(*s->creds));
	if (!s->ctx || !s->names || !s->creds)
		goto nomem;
	/* TLS 1.2 and 1.3 only: 1.0 and 1.1 are gone from every client worth serving. */
	SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(s->ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(s->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_strict_cipher_list(s->ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	                                       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	                                       "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
	/* Resumption by ticket only: nothing to share between workers, and gateways that share
	 * ticket_key_file resume each other's sessions. A TLS 1.3 ticket lives no longer than
	 * the process's own keys are sure to decrypt it. */
	SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_psk_dhe_timeout(s->ctx, TLSCONF_TICKET_ROTATE);
	SSL_CTX_set_tlsext_ticket_key_cb(s->ctx, tlsconf_ticket);
	if (svc->nticket_keys) {
		size_t len = svc->nticket_keys * RULES_TICKET_KEY_LEN;
		if (!(s->ticket_keys = malloc(len)))
			goto nomem;
		memcpy(s->ticket_keys, svc->ticket_keys, len);
		s->nticket_keys = svc->nticket_keys;
	}
	s->http2 = svc->http2;
	SSL_CTX_set_alpn_select_cb(s->ctx, tlsconf_alpn, s);
	SSL_CTX_set_select_certificate_cb(s->ctx, tlsconf_select);
	SSL_CTX_set_ex_data(s->ctx, tlsconf_ex_index, s);
	for (size_t k = 0; k < svc->ncerts; k++) {
		const struct rules_cert *rc = &cfg->certs[svc->certs[k]];
		if (!rc->item) {
			snprintf(err, errlen, "certificate \"%s\" is not loaded", rc->name);
			return -1;
		}
		struct tlsconf_cred *cred = &s->creds[s->ncreds];
		if (tlsconf_cred_init(cred, rc->item) != 0) {
			tlsconf_cred_clear(cred);
			memset(cred, 0, sizeof(*cred));
			goto nomem;
		}
		long ci = (long)s->ncreds++;
		/* The slot starts with what the loader found; later ones come from the ACME side. */
		if (rc->acme && (!(cred->slot = tlsconf_slot_get(rc->name)) || tlsconf_slot_fill(cred->slot, rc->item, true) != 0))
			goto nomem;
		if (rc->acme)
			cred->ecdsa = rc->acme->key != RULES_ACME_RSA2048;
		if ((long)svc->certs[k] == svc->default_cert)
			tlsconf_pick_add(&s->dflt, ci, cred->ecdsa);
		for (size_t n = 0; n < certs_item_nnames(rc->item); n++) {
			long pi = tlsconf_pick_for(s, certs_item_name_at(rc->item, n));
			if (pi == -2)
				goto nomem;
			if (pi >= 0)
				tlsconf_pick_add(&s->picks[pi], ci, cred->ecdsa);
		}
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory building the TLS context of service \"%s\"", svc->name);
	return -1;
}

static SSL_CTX *tlsconf_pool_init(const struct rules_pool *p, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (p->tls.verify) {
		const char *ca = p->tls.ca_file ? p->tls.ca_file : "/etc/ssl/certs/ca-certificates.crt";
		if (!SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
			ERR_clear_error();
			snprintf(err, errlen, "pool %s: cannot load the CA file \"%s\" to verify its servers; check tls.ca_file",
			         p->name, ca);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (p->tls.cert && (!SSL_CTX_use_certificate_chain_file(ctx, p->tls.cert) ||
	                    !SSL_CTX_use_PrivateKey_file(ctx, p->tls.key, SSL_FILETYPE_PEM))) {
		ERR_clear_error();
		snprintf(err, errlen, "pool %s: cannot load the client certificate \"%s\" with key \"%s\"", p->name,
		         p->tls.cert, p->tls.key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct tlsconf *tlsconf_new(const struct rules_config *cfg, char *err, size_t errlen)
{
	pthread_once(&tlsconf_once, tlsconf_init_once);
	struct tlsconf *t = calloc(1, sizeof(*t));
	if (!t || !(t->svcs = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*t->svcs))) ||
	    !(t->pools = calloc(cfg->npools ? cfg->npools : 1, sizeof(*t->pools)))) {
		snprintf(err, errlen, "out of memory");
		if (t)
			free(t->svcs);
		free(t);
		return NULL;
	}
	t->refs = 1;
	for (; t->nsvcs < cfg->nservices; t->nsvcs++)
		if (cfg->services[t->nsvcs].mode == RULES_MODE_TLS &&
		    tlsconf_service_init(&t->svcs[t->nsvcs], cfg, &cfg->services[t->nsvcs], err, errlen) != 0) {
			t->nsvcs++;
			tlsconf_free(t);
			return NULL;
		}
	bool unverified = false;
	for (; t->npools < cfg->npools; t->npools++) {
		const struct rules_pool *p = &cfg->pools[t->npools];
		unverified |= !p->tls.on && p->health.type == RULES_HEALTH_HTTPS;
		if (p->tls.on && !(t->pools[t->npools] = tlsconf_pool_init(p, err, errlen))) {
			tlsconf_free(t);
			return NULL;
		}
	}
	if (unverified && !(t->unverified = SSL_CTX_new(TLS_method()))) {
		snprintf(err, errlen, "out of memory");
		tlsconf_free(t);
		return NULL;
	}
	return t;
}

SSL *tlsconf_server_ssl(const struct tlsconf *t, size_t svc)
{
	if (!t || svc >= t->nsvcs || !t->svcs[svc].ctx)
		return NULL;
	SSL *ssl = SSL_new(t->svcs[svc].ctx);
	if (ssl)
		SSL_set_accept_state(ssl);
	return ssl;
}

SSL *tlsconf_pool_ssl(const struct tlsconf *t, size_t pool, const char *name)
{
	if (!t || pool >= t->npools)
		return NULL;
	SSL_CTX *ctx = t->pools[pool] ? t->pools[pool] : t->unverified;
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	if (!ssl)
		return NULL;
	SSL_set_connect_state(ssl);
	if (name && name[0]) {
		SSL_set_tlsext_host_name(ssl, name);
		if (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER)
			X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), name, strlen(name));
	}
	return ssl;
}

static bool tlsconf_pick_covers(const struct tlsconf_service *s, struct tlsconf_pick p, const char *host, size_t len)
{
	return (p.ecdsa >= 0 && certs_item_covers(s->creds[p.ecdsa].item, host, len)) ||
	       (p.rsa >= 0 && certs_item_covers(s->creds[p.rsa].item, host, len));
}

bool tlsconf_host_fits(const struct tlsconf *t, size_t svc, const char *sni, size_t sni_len, const char *host,
                       size_t host_len)
{
	if (!t || svc >= t->nsvcs || !t->svcs[svc].ctx || !sni_len || !host_len ||
	    (sni_len == host_len && strncasecmp(sni, host, host_len) == 0))
		return true;
	const struct tlsconf_service *s = &t->svcs[svc];
	int hi = rules_namemap_lookup(s->names, host, host_len);
	if (hi < 0)
		return true;
	int si = rules_namemap_lookup(s->names, sni, sni_len);
	if (si == hi || tlsconf_pick_covers(s, si >= 0 ? s->picks[si] : s->dflt, host, host_len))
		return true;
	/* The map's wildcards also take deeper names, which the certificate itself does not cover. */
	return !tlsconf_pick_covers(s, s->picks[hi], host, host_len);
}
