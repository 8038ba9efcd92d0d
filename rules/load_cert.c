/*
 * load_cert.c - certificates (files, or obtained by ACME) and a service's tls
 * group, with its session ticket keys.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "certs.h"
#include "load.h"

void rules_set_intermediates(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_cert *c = field;
	if (!rules_is_string_list(L, s, "intermediates = [ \"issuing-ca.pem\" ];"))
		return;
	size_t n = (size_t)config_setting_length(s);
	if (!(c->intermediates = rules_calloc(L, s, n, sizeof(*c->intermediates))))
		return;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			rules_error(L, e, "each entry of intermediates must be a file name in double quotes");
		else if (!(c->intermediates[c->nintermediates++] = strdup(config_setting_get_string(e))))
			rules_error(L, e, "out of memory");
	}
}

struct rules_cert_report {
	struct rules_load *L;
	const config_setting_t *s;
};

static void rules_cert_say(void *arg, bool warning, const char *msg)
{
	struct rules_cert_report *r = arg;
	if (warning)
		rules_warn(r->L, r->s, "%s", msg);
	else
		rules_error(r->L, r->s, "%s", msg);
}

static void rules_cert_load(struct rules_load *L, const config_setting_t *s, struct rules_cert *c)
{
	rules_path_resolve(L, s, &c->pfx);
	rules_path_resolve(L, s, &c->password_file);
	rules_path_resolve(L, s, &c->cert);
	rules_path_resolve(L, s, &c->key);
	rules_path_resolve(L, s, &c->chain);
	rules_path_resolve(L, s, &c->ca_file);
	rules_path_resolve(L, s, &c->ocsp);
	for (size_t i = 0; i < c->nintermediates; i++)
		rules_path_resolve(L, s, &c->intermediates[i]);
	struct certs_source src = {
		.name = c->name, .pfx = c->pfx, .password = c->password, .password_file = c->password_file,
		.password_env = c->password_env, .cert = c->cert, .key = c->key, .chain = c->chain,
		.intermediates = (const char *const *)c->intermediates, .nintermediates = c->nintermediates,
		.ca_file = c->ca_file, .ocsp = c->ocsp, .allow_incomplete_chain = c->allow_incomplete_chain,
		.key_group_set = L->cfg->run_as.user != NULL, .key_group = L->cfg->run_as.gid,
	};
	struct rules_cert_report r = { L, s };
	struct certs_report rep = { rules_cert_say, &r };
	/* A reload takes the running configuration's item for files that did not change. */
	c->item = certs_item_obtain(&src, &rep);
}

/* A DNS name a CA can issue for: letters, digits, hyphens, dots, and "*." only in front. */
static bool rules_acme_name_ok(const char *n)
{
	const char *p = strncmp(n, "*.", 2) == 0 ? n + 2 : n;
	if (!*p || *p == '.' || strlen(n) > 253 || !strchr(p, '.'))
		return false;
	for (; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || (*p == '.' && p[1] != '.' && p[1] != '\0')))
			return false;
	return true;
}

void rules_set_acme_names(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_acme *a = field;
	if (!rules_is_string_list(L, s, "names = [ \"home.example.com\", \"*.home.example.com\" ];"))
		return;
	size_t n = (size_t)config_setting_length(s);
	if (n == 0) {
		rules_error(L, s, "names is empty; name at least one host the certificate is for");
		return;
	}
	if (!(a->names = rules_calloc(L, s, n, sizeof(*a->names))))
		return;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			rules_error(L, e, "each entry of names must be a host name in double quotes");
			continue;
		}
		char *v = strdup(config_setting_get_string(e));
		if (!v) {
			rules_error(L, e, "out of memory");
			return;
		}
		size_t len = strlen(v);
		if (len && v[len - 1] == '.')
			v[len - 1] = '\0';
		for (char *p = v; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (!rules_acme_name_ok(v)) {
			rules_error(L, e, "\"%s\" is not a name a CA issues for: use a full DNS name (a.example.com), "
			            "or *.example.com for a wildcard", config_setting_get_string(e));
			free(v);
			continue;
		}
		bool dup = false;
		for (size_t k = 0; k < a->nnames; k++)
			dup |= strcmp(a->names[k], v) == 0;
		if (dup) {
			rules_error(L, e, "\"%s\" is named twice in names; keep one", v);
			free(v);
			continue;
		}
		a->names[a->nnames++] = v;
	}
}

void rules_set_acme(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_acme **out = field;
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "acme must be a group: acme = { names = [ \"home.example.com\" ]; email = "
		            "\"admin@example.com\"; };");
		return;
	}
	struct rules_acme *a = rules_calloc(L, s, 1, sizeof(*a));
	if (!(*out = a))
		return;
	rules_section_apply(L, s, RULES_G_ACME, a);
	rules_path_resolve(L, s, &a->ca_file);
	rules_path_resolve(L, s, &a->dns_hook);
	if (a->email && (!strchr(a->email, '@') || strchr(a->email, ' ') || strchr(a->email, ':')))
		rules_error(L, config_setting_get_member(s, "email"),
		            "email \"%s\" is not an address; the CA writes to it about expiring certificates", a->email);
	if (a->directory && strncmp(a->directory, "https://", 8) != 0)
		rules_error(L, config_setting_get_member(s, "directory"),
		            "directory must be the CA's https:// URL, e.g. \"%s\"", RULES_ACME_LETSENCRYPT);
	if (!a->directory && !(a->directory = strdup(a->staging ? RULES_ACME_LETSENCRYPT_STAGING : RULES_ACME_LETSENCRYPT)))
		rules_error(L, s, "out of memory");
	bool wildcard = false;
	for (size_t i = 0; i < a->nnames; i++)
		wildcard |= a->names[i][0] == '*';
	if ((wildcard || a->challenge == RULES_ACME_DNS01) && !a->dns_hook)
		rules_error(L, s, "%s needs dns-01: add dns_hook = \"/usr/local/bin/dns-update\"; (see docs/rules.md, ACME)",
		            wildcard ? "a wildcard name" : "challenge = \"dns-01\"");
	if (a->dns_hook && access(a->dns_hook, X_OK) != 0)
		rules_error(L, config_setting_get_member(s, "dns_hook"),
		            "dns_hook \"%s\" is not an executable file (%s); make it one (chmod +x)", a->dns_hook,
		            strerror(errno));
	if (a->ca_file && access(a->ca_file, R_OK) != 0)
		rules_error(L, config_setting_get_member(s, "ca_file"), "cannot read ca_file \"%s\": %s", a->ca_file,
		            strerror(errno));
}

static void rules_cert_quiet(void *arg, bool warning, const char *msg)
{
	(void)arg;
	(void)warning;
	(void)msg;
}

/* The certificate issued before (kept in the state folder) when it still fits the
 * names, else a placeholder until the gateway has ordered one. Nothing here talks
 * to the CA. */
static void rules_acme_load(struct rules_load *L, const config_setting_t *s, struct rules_cert *c)
{
	const struct rules_acme *a = c->acme;
	const char *sd = L->cfg->state_dir;
	if (!sd) {
		rules_error(L, s, "certificate \"%s\" is obtained by ACME and needs a state folder for its keys: add "
		            "onegate = { state = \"/var/lib/onegate\"; };", c->name);
		return;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", sd);
	struct stat st;
	while (stat(dir, &st) != 0 && strrchr(dir, '/') && strrchr(dir, '/') != dir)
		*strrchr(dir, '/') = '\0';
	if (access(dir, W_OK) != 0)
		rules_error(L, s, "certificate \"%s\" is obtained by ACME, but the state folder \"%s\" is not writable "
		            "here (%s is not); give it to the user onegate runs as", c->name, sd, dir);
	char cert[PATH_MAX], key[PATH_MAX];
	snprintf(cert, sizeof(cert), "%s/" RULES_ACME_DIR "/%s/cert.pem", sd, c->name);
	snprintf(key, sizeof(key), "%s/" RULES_ACME_DIR "/%s/key.pem", sd, c->name);
	if (access(cert, R_OK) == 0 && access(key, R_OK) == 0) {
		struct certs_source src = { .name = c->name, .cert = cert, .key = key, .ca_file = a->ca_file,
		                            .allow_incomplete_chain = true };
		struct certs_report rep = { rules_cert_quiet, NULL };
		c->item = certs_item_load(&src, &rep);
		bool same = c->item && certs_item_nnames(c->item) == a->nnames;
		for (size_t i = 0; same && i < a->nnames; i++) {
			bool found = false;
			for (size_t k = 0; k < a->nnames; k++)
				found |= strcmp(certs_item_name_at(c->item, k), a->names[i]) == 0;
			same = found;
		}
		if (!same) {
			certs_item_unref(c->item);
			c->item = NULL;
		}
	}
	if (!c->item && a->nnames && !(c->item = certs_item_placeholder(c->name, (const char *const *)a->names, a->nnames)))
		rules_error(L, s, "out of memory");
}

/* Whether a route's host or sni pattern takes a name the CA issues for. */
static bool rules_acme_pattern_takes(const char *pattern, const char *name)
{
	if (!pattern || strcmp(pattern, "*") == 0 || pattern[0] == '~')
		return true;
	if (strcasecmp(pattern, name) == 0)
		return true;
	return name[0] != '*' && certs_name_matches(pattern, name, strlen(name));
}

/* An ACME name no route takes would be proved and paid for to serve nothing; one
 * whose challenge cannot reach the gateway would never be issued. */
void rules_check_acme(struct rules_load *L)
{
	const struct rules_config *cfg = L->cfg;
	bool plain = false;
	for (size_t v = 0; v < cfg->nservices; v++)
		plain |= cfg->services[v].mode == RULES_MODE_HTTP || cfg->services[v].plain_http;
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *c = &cfg->certs[i];
		if (!c->acme)
			continue;
		const config_setting_t *s = config_setting_get_elem(L->certs_set, (unsigned)i);
		bool used = false;
		for (size_t n = 0; n < c->acme->nnames; n++) {
			const char *name = c->acme->names[n];
			bool routed = false;
			for (size_t v = 0; v < cfg->nservices && !routed; v++) {
				const struct rules_service *svc = &cfg->services[v];
				bool listed = false;
				for (size_t k = 0; k < svc->ncerts; k++)
					listed |= svc->certs[k] == i;
				used |= listed;
				for (size_t r = 0; listed && r < svc->nroutes && !routed; r++)
					routed = !svc->routes[r].passthrough &&
					         rules_acme_pattern_takes(svc->routes[r].host, name);
			}
			if (!routed)
				rules_error(L, s, "ACME name \"%s\" of certificate \"%s\" is not routed by any service that uses "
				            "the certificate; add a route with host = \"%s\"; or drop the name", name, c->name, name);
			if (name[0] != '*' && c->acme->challenge == RULES_ACME_HTTP01 && !plain)
				rules_error(L, s, "certificate \"%s\" proves \"%s\" with http-01, but no service takes plain HTTP: add "
				            "one listening on port 80, or set challenge = \"tls-alpn-01\";", c->name, name);
		}
		if (!used)
			rules_warn(L, s, "certificate \"%s\" is obtained by ACME but no service uses it", c->name);
	}
}

/* A certificate's name and its place in the list. */
struct rules_cert_name {
	const char *name;
	size_t index;
};

static int rules_cert_name_cmp(const void *a, const void *b)
{
	const struct rules_cert_name *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : x->index < y->index ? -1 : x->index > y->index;
}

/* The names as the file writes them, sorted once before the entries are read, so that finding
 * a certificate by name (each service's list, each duplicate check) is a binary search: 10,000
 * certificates took a quarter of the load's time in linear searches. */
static void rules_cert_names_index(struct rules_load *L, const config_setting_t *list, size_t n)
{
	if (!(L->cert_names = rules_calloc(L, list, n ? n : 1, sizeof(*L->cert_names))))
		return;
	for (size_t i = 0; i < n; i++) {
		const char *name = NULL;
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		if (e && config_setting_is_group(e) && config_setting_lookup_string(e, "name", &name) && name)
			L->cert_names[L->ncert_names++] = (struct rules_cert_name){ name, i };
	}
	qsort(L->cert_names, L->ncert_names, sizeof(*L->cert_names), rules_cert_name_cmp);
}

/* The first certificate of the list with this name, or -1. */
static long rules_cert_find(const struct rules_load *L, const char *name)
{
	size_t lo = 0, hi = L->ncert_names;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(L->cert_names[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Only entries read so far, whose name the schema took. */
	for (; lo < L->ncert_names && strcmp(L->cert_names[lo].name, name) == 0; lo++) {
		size_t i = L->cert_names[lo].index;
		if (i < L->cfg->ncerts && L->cfg->certs[i].name && strcmp(L->cfg->certs[i].name, name) == 0)
			return (long)i;
	}
	return -1;
}

static void rules_cert_read(struct rules_load *L, const config_setting_t *list, size_t i)
{
	const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
	struct rules_cert *c = &L->cfg->certs[i];
	c->line = config_setting_source_line(s);
	if (!rules_is_group(L, s, "certificates"))
		return;
	size_t before = rules_diag_errors(L->diag);
	rules_section_apply(L, s, RULES_G_CERTIFICATE, c);
	long first = c->name ? rules_cert_find(L, c->name) : -1;
	if (first >= 0 && (size_t)first < i)
		rules_error(L, s, "duplicate certificate name \"%s\"; the first is at %s", c->name,
		            rules_where(L, config_setting_get_elem(list, (unsigned)first)));
	int npass = !!c->password + !!c->password_file + !!c->password_env;
	if (c->acme) {
		if (c->pfx || c->cert || c->key || c->chain || c->nintermediates || c->ocsp || npass)
			rules_error(L, s, "certificate \"%s\" is obtained by ACME; files (pfx, cert, key, chain, ocsp) belong "
			            "to another entry", c->name ? c->name : "");
		if (rules_diag_errors(L->diag) == before && c->name)
			rules_acme_load(L, s, c);
		return;
	}
	if (c->pfx && (c->cert || c->key))
		rules_error(L, s, "certificate \"%s\" has both pfx and cert/key; keep one", c->name ? c->name : "");
	else if (!c->pfx && !c->cert)
		rules_error(L, s, "certificate \"%s\" needs pfx = \"FILE.pfx\"; or cert = \"FILE.pem\"; key = \"FILE.key\";",
		            c->name ? c->name : "");
	else if (c->cert && !c->key)
		rules_error(L, s, "certificate \"%s\" has cert but no key; add key = \"FILE.key\"; (or use pfx)",
		            c->name ? c->name : "");
	if (npass > 1)
		rules_error(L, s, "certificate \"%s\" gives its password more than one way; keep one of password, "
		            "password_file, password_env", c->name ? c->name : "");
	else if (npass && !c->pfx)
		rules_error(L, s, "a password only applies to a pfx file");
	if (rules_diag_errors(L->diag) == before)
		rules_cert_load(L, s, c);
}

void rules_set_certificates(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	if (!rules_is_group_list(L, s, "certificates = ( { name = \"NAME\"; pfx = \"FILE.pfx\"; password_file = \"FILE\"; } );"))
		return;
	size_t n = (size_t)config_setting_length(s);
	struct rules_config *c = L->cfg;
	L->certs_set = s;
	if (!(c->certs = rules_calloc(L, s, n, sizeof(*c->certs))))
		return;
	rules_cert_names_index(L, s, n);
	for (size_t i = 0; i < n; i++, c->ncerts++)
		rules_cert_read(L, s, i);
}

static void rules_cert_unknown(struct rules_load *L, const config_setting_t *s, const char *name)
{
	struct rules_hint h = { .word = name };
	for (size_t i = 0; i < L->cfg->ncerts; i++)
		if (L->cfg->certs[i].name)
			rules_hint_try(&h, L->cfg->certs[i].name);
	if (h.n)
		rules_error(L, s, "no certificate named \"%s\"%s", name, rules_hint_done(&h));
	else
		rules_error(L, s, "no certificate named \"%s\"; define it in certificates = ( { name = \"%s\"; ... } );",
		            name, name);
}

/* Session ticket keys several gateways share, so that a session one of them
 * started resumes on another: 80-byte keys one after another, the first
 * encrypts and every one decrypts. Read at load, so a reload picks up a
 * rotated file. */
static void rules_ticket_keys_read(struct rules_load *L, const config_setting_t *s, struct rules_service *svc)
{
	rules_path_resolve(L, s, &svc->ticket_key_file);
	const char *path = svc->ticket_key_file;
	uint8_t buf[RULES_TICKET_KEY_LEN * RULES_TICKET_KEYS_MAX + 1];
	FILE *f = fopen(path, "rb");
	if (!f) {
		rules_error(L, s, "cannot read ticket_key_file \"%s\": %s", path, strerror(errno));
		return;
	}
	size_t n = fread(buf, 1, sizeof(buf), f);
	struct stat st;
	const struct rules_identity *id = &L->cfg->run_as;
	bool shared = fstat(fileno(f), &st) == 0 &&
	              ((st.st_mode & 007) || ((st.st_mode & 070) && !(id->user && st.st_gid == id->gid)));
	fclose(f);
	if (n == 0 || n % RULES_TICKET_KEY_LEN || n > RULES_TICKET_KEY_LEN * RULES_TICKET_KEYS_MAX) {
		rules_error(L, s, "ticket_key_file \"%s\" holds %s%zu bytes; it must hold 1 to %d keys of %d random bytes "
		            "one after another (openssl rand %d > \"%s\")", path, n == sizeof(buf) ? "more than " : "",
		            n == sizeof(buf) ? n - 1 : n, RULES_TICKET_KEYS_MAX, RULES_TICKET_KEY_LEN, RULES_TICKET_KEY_LEN,
		            path);
	} else if (!(svc->ticket_keys = malloc(n))) {
		rules_error(L, s, "out of memory");
	} else {
		memcpy(svc->ticket_keys, buf, n);
		svc->nticket_keys = n / RULES_TICKET_KEY_LEN;
		if (shared)
			rules_warn(L, s, "ticket_key_file \"%s\" can be read by other users (mode %03o), and it decrypts "
			           "every session it protects; run chmod 600 \"%s\"", path, (unsigned)(st.st_mode & 0777), path);
	}
	explicit_bzero(buf, sizeof(buf));
}

void rules_set_service_tls(struct rules_load *L, const config_setting_t *s, void *field)
{
	struct rules_service *svc = field;
	struct rules_service_tls t = { 0 };
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "tls must be a group: tls = { certificates = [ \"NAME\" ]; };");
		return;
	}
	svc->mode = RULES_MODE_TLS;
	rules_section_apply(L, s, RULES_G_SERVICE_TLS, &t);
	const config_setting_t *list = t.certificates;
	if (list && rules_is_string_list(L, list, "certificates = [ \"contoso\", \"lab\" ];")) {
		size_t n = (size_t)config_setting_length(list);
		if (n == 0)
			rules_error(L, list, "certificates is empty; name at least one certificate");
		if ((svc->certs = rules_calloc(L, list, n, sizeof(*svc->certs))))
			for (size_t i = 0; i < n; i++) {
				const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
				long k = config_setting_type(e) == CONFIG_TYPE_STRING
				                 ? rules_cert_find(L, config_setting_get_string(e)) : -2;
				if (k == -2)
					rules_error(L, e, "each entry of certificates must be a certificate name in double quotes");
				else if (k < 0)
					rules_cert_unknown(L, e, config_setting_get_string(e));
				else
					svc->certs[svc->ncerts++] = (size_t)k;
			}
	}
	svc->default_cert = svc->ncerts ? (long)svc->certs[0] : -1;
	if (t.dflt) {
		const config_setting_t *d = config_setting_get_member(s, "default");
		long k = rules_cert_find(L, t.dflt);
		bool listed = false;
		for (size_t i = 0; k >= 0 && i < svc->ncerts; i++)
			listed |= svc->certs[i] == (size_t)k;
		if (k < 0)
			rules_cert_unknown(L, d, t.dflt);
		else if (!listed)
			rules_error(L, d, "default certificate \"%s\" is not in this service's certificates; add it there",
			            t.dflt);
		else
			svc->default_cert = k;
		free(t.dflt);
	}
	if ((svc->ticket_key_file = t.ticket_key_file))
		rules_ticket_keys_read(L, config_setting_get_member(s, "ticket_key_file"), svc);
}
