#define _GNU_SOURCE /* memmem */
#include "acme/acme_order.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>

#include "acme/acme_chal.h"
#include "acme/acme_crypto.h"
#include "acme/acme_https.h"
#include "acme/acme_store.h"
#include "certs.h"
#include "io/log.h"
#include "schema.h"

#define ACME_POLL_MAX 120               /* seconds an authorization or order may stay pending */
/* A CA may refuse any nonce (pebble refuses 5% on purpose): with 3 tries an
 * order of a dozen POSTs failed about once in 700; with 5, once in 3 million. */
#define ACME_NONCE_TRIES 5

__attribute__((format(printf, 2, 3)))
static int acme_fail(struct acme_run *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, sizeof(x->err), fmt, ap);
	va_end(ap);
	return -1;
}

void acme_run_clear(struct acme_run *x)
{
	EVP_PKEY_free(x->account);
	x->account = NULL;
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
	for (int attempt = 0; attempt < ACME_NONCE_TRIES; attempt++) {
		if (!x->nonce[0]) {
			struct acme_resp n;
			if (acme_https(x->rc->acme->ca_file, "HEAD", x->new_nonce, NULL, &n, x->err, sizeof(x->err)) != 0)
				return -1;
			snprintf(x->nonce, sizeof(x->nonce), "%s", n.nonce);
			acme_resp_clear(&n);
			if (!x->nonce[0])
				return acme_fail(x, "the CA gave no nonce at %.200s", x->new_nonce);
		}
		char *jws = acme_jws(x->account, x->jwk, x->kid, x->nonce, url, payload);
		if (!jws)
			return acme_fail(x, "cannot sign a request (out of memory)");
		x->nonce[0] = '\0';
		int rc = acme_https(x->rc->acme->ca_file, "POST", url, jws, r, x->err, sizeof(x->err));
		free(jws);
		if (rc != 0)
			return -1;
		snprintf(x->nonce, sizeof(x->nonce), "%s", r->nonce);
		char why[512];
		if (r->status == 400 && strstr(acme_problem(r, why, sizeof(why)), "badNonce") && attempt < ACME_NONCE_TRIES - 1) {
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
	return acme_fail(x, "the CA refused %d nonces in a row", ACME_NONCE_TRIES);
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


static int acme_directory(struct acme_run *x)
{
	struct acme_resp r;
	const char *url = x->rc->acme->directory;
	if (acme_https(x->rc->acme->ca_file, "GET", url, NULL, &r, x->err, sizeof(x->err)) != 0)
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
		const char *ri = json_string_value(json_object_get(j, "renewalInfo"));
		snprintf(x->renewal_info, sizeof(x->renewal_info), "%s", ri ? ri : "");
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
		if (x->pause(x->pause_arg, s)) {
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
	/* The rule file's words for challenges are RFC 8555's type names. */
	const char *const *kinds = rules_words_acme_challenge;
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
		char *v = acme_dns01_value(keyauth);
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

int acme_order(struct acme_run *x)
{
	const struct rules_acme *a = x->rc->acme;
	if (!x->account && !(x->account = acme_store_account_key(x->state_dir, a->directory, x->err, sizeof(x->err))))
		return -1;
	if (acme_jwk(x->account, x->jwk, sizeof(x->jwk), x->thumb, sizeof(x->thumb)) != 0)
		return acme_fail(x, "cannot read the account key (not P-256)");
	if (acme_directory(x) != 0 || acme_account(x) != 0)
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
	char *csr = NULL;
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
	rc = acme_store_save(x->state_dir, x->rc->name, key, r.body, r.body_len, x->err, sizeof(x->err));
	acme_resp_clear(&r);
out:
	free(csr);
	EVP_PKEY_free(key);
	json_decref(fin);
	json_decref(done);
	json_decref(order);
	return rc;
}

/* RFC 3339, as RFC 9773 sends it: 2025-01-02T04:00:00Z, fractions and offsets allowed. */
static int acme_rfc3339(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	int n = 0;
	if (!s || sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	                 &tm.tm_min, &tm.tm_sec, &n) != 6 || n == 0)
		return -1;
	const char *p = s + n;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	long off = 0;
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		int hh, mm, k = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &k) != 2 || k != 5)
			return -1;
		off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	} else
		return -1;
	if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm) - off;
	return 0;
}

int acme_ari_parse(const char *json, size_t len, time_t *start, time_t *end)
{
	json_error_t je;
	json_t *j = json_loadb(json, len, 0, &je);
	json_t *w = j ? json_object_get(j, "suggestedWindow") : NULL;
	bool ok = acme_rfc3339(json_string_value(json_object_get(w, "start")), start) == 0 &&
	          acme_rfc3339(json_string_value(json_object_get(w, "end")), end) == 0 && *start < *end;
	json_decref(j);
	return ok ? 0 : -1;
}

int acme_renewal_window(struct acme_run *x, X509 *cert, time_t *start, time_t *end, long *retry_after)
{
	if (acme_directory(x) != 0)
		return -1;
	if (!x->renewal_info[0])
		return 0;
	char *id = acme_ari_cert_id(cert);
	if (!id)
		return acme_fail(x, "the certificate has no Authority Key Identifier to ask the CA's renewalInfo about");
	char url[2048];
	size_t ul = strlen(x->renewal_info);
	snprintf(url, sizeof(url), "%s%s%s", x->renewal_info, ul && x->renewal_info[ul - 1] == '/' ? "" : "/", id);
	free(id);
	struct acme_resp r;
	if (acme_https(x->rc->acme->ca_file, "GET", url, NULL, &r, x->err, sizeof(x->err)) != 0)
		return -1;
	int rc = 1;
	*retry_after = r.retry_after;
	if (r.status != 200 || acme_ari_parse(r.body, r.body_len, start, end) != 0)
		rc = acme_fail(x, "%.200s: no suggestedWindow in the answer (HTTP %d)", url, r.status);
	acme_resp_clear(&r);
	return rc;
}
