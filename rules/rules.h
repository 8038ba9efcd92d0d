/*
 * rules.h - the rule file: loading, checking, and the compiled name matcher.
 *
 * Contract: rules_load_file() turns a libconfig rule file into one immutable,
 * reference-counted snapshot (struct rules_config). Workers read a snapshot
 * without locks; whoever holds a pointer holds a reference. A load either
 * produces a complete snapshot or NULL with every problem in the diagnostics:
 * nothing is half-applied.
 *
 * The structs below are read-only for every other module.
 */
#ifndef ONEGATE_RULES_H
#define ONEGATE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- diagnostics: every error and warning as "FILE:LINE: message" ---- */

struct rules_diag;

enum rules_severity { RULES_ERROR, RULES_WARNING };

struct rules_diag *rules_diag_new(void);
void rules_diag_free(struct rules_diag *d);
void rules_diag_add(struct rules_diag *d, enum rules_severity sev, const char *file, int line,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
size_t rules_diag_count(const struct rules_diag *d);
size_t rules_diag_errors(const struct rules_diag *d);
/* i-th message, formatted "FILE:LINE: message" (warnings: "FILE:LINE: warning: message"). */
const char *rules_diag_message(const struct rules_diag *d, size_t i);
enum rules_severity rules_diag_severity(const struct rules_diag *d, size_t i);

/* ---- name matcher: exact > wildcard (longest suffix) > regex (file order) ---- */

/*
 * Patterns: "host.example.com" (exact), "*.example.com" (any name ending in
 * ".example.com", at least one label before it), "~REGEX" (PCRE2, JIT,
 * caseless, matched against the whole lower-cased name unless anchored
 * otherwise by the regex itself). Names are compared case-insensitively and a
 * single trailing dot is ignored, on patterns and on looked-up names alike.
 */
struct rules_namemap;
struct certs_item;

struct rules_namemap *rules_namemap_new(void);
void rules_namemap_free(struct rules_namemap *m);
/* Adds a pattern with the caller's value (>= 0). On a bad pattern returns -1 and
 * writes a one-line reason (with PCRE2's offset for a regex) into err. Adding an
 * exact or wildcard pattern that is already present (after lower-casing and
 * dropping a trailing dot), or a regex with the same text, returns -2 (duplicate). */
int rules_namemap_add(struct rules_namemap *m, const char *pattern, int value, char *err, size_t errlen);
/* Thread-safe; never allocates on the hot path. Returns the value or -1. */
int rules_namemap_lookup(const struct rules_namemap *m, const char *name, size_t len);
size_t rules_namemap_size(const struct rules_namemap *m);

/* ---- the configuration snapshot ---- */

struct rules_addr {
	char *text;                     /* as written, e.g. "[::1]:8443" */
	struct sockaddr_storage ss;     /* resolved at load */
	socklen_t len;
};

struct rules_server {
	struct rules_addr addr;
	char *host;                     /* host part as written (IP literal or DNS name) */
	char *name;                     /* how status pages and the admin API name it: its own name, or addr.text */
	uint16_t port;
	unsigned weight;                /* 1..256: share of new connections/requests */
	unsigned max_conns;             /* 0: no limit; at the limit the server takes nothing new */
	bool backup;                    /* only used while no primary server is up */
	int line;
};

enum rules_balance {
	RULES_BALANCE_ROUNDROBIN,       /* weighted, request by request */
	RULES_BALANCE_LEASTCONN,        /* fewest active connections (weighted) */
	RULES_BALANCE_SOURCE,           /* a client address sticks to a server while it is up */
	RULES_BALANCE_COOKIE,           /* HTTP: an inserted cookie names the server */
};

/* The persistence cookie onegate inserts (balance = "cookie"). */
struct rules_cookie {
	char *name;
	char *path;                     /* NULL: no Path attribute */
	char *domain;                   /* NULL: no Domain attribute */
	bool secure, httponly;
	unsigned max_age;               /* seconds; 0: a session cookie (no expiry) */
};

enum rules_health_type { RULES_HEALTH_NONE, RULES_HEALTH_TCP, RULES_HEALTH_HTTP, RULES_HEALTH_HTTPS };

/* Active checks of every server of a pool, and the passive count on live traffic. */
struct rules_health {
	enum rules_health_type type;
	unsigned port;                  /* 0: the server's own port */
	char *method, *path, *host;     /* HTTP(S); host NULL: the server's host */
	char *body;                     /* a substring the answer's body must contain, or NULL */
	char *sni;                      /* HTTPS: the name sent; NULL: host, else the pool's tls sni */
	int status_min, status_max;     /* expected status range */
	unsigned interval_ms, timeout_ms;
	unsigned rise, fall;            /* consecutive successes to come up, failures to go down */
	unsigned passive_fall;          /* consecutive failures on live traffic that mark a server down; 0: off */
	int line;
};

enum rules_acme_challenge { RULES_ACME_HTTP01, RULES_ACME_TLSALPN01, RULES_ACME_DNS01 };
enum rules_acme_key { RULES_ACME_ECDSA_P256, RULES_ACME_ECDSA_P384, RULES_ACME_RSA2048 };

/* A certificate obtained from an ACME CA (RFC 8555) instead of loaded from files. */
struct rules_acme {
	char **names;                   /* DNS names, lower case; "*.x" needs dns-01 */
	size_t nnames;
	char *email;
	char *directory;                /* the CA's directory URL (https) */
	bool staging;                   /* the default directory is the CA's staging one */
	enum rules_acme_key key;
	enum rules_acme_challenge challenge;    /* for names that are not wildcards */
	char *dns_hook;                 /* dns-01: "HOOK present|cleanup NAME VALUE" */
	char *ca_file;                  /* roots for the directory's HTTPS and the issued chain; NULL: the system's */
};

#define RULES_ACME_LETSENCRYPT "https://acme-v02.api.letsencrypt.org/directory"
#define RULES_ACME_LETSENCRYPT_STAGING "https://acme-staging-v02.api.letsencrypt.org/directory"

/* Where an ACME certificate's key and chain live under the state folder. */
#define RULES_ACME_DIR "acme"

/* A certificate as the rule file names it; the certificate store loads it (certs.h). */
struct rules_cert {
	char *name;
	int line;
	char *pfx, *password, *password_file, *password_env;
	char *cert, *key, *chain, *ca_file;
	char *ocsp;                     /* DER OCSP response to staple, or NULL */
	char **intermediates;
	size_t nintermediates;
	bool allow_incomplete_chain;
	struct rules_acme *acme;        /* obtained, not loaded; NULL for files */
	struct certs_item *item;        /* loaded and checked at load time; for acme: the one
	                                   issued before (state folder), else a placeholder */
};

/* TLS from onegate to a pool's servers (re-encryption). */
struct rules_pool_tls {
	bool on;
	char *sni;                      /* NULL: the client's host name (Host, else SNI) */
	bool verify;                    /* check the server's certificate against ca_file and sni */
	char *ca_file;                  /* NULL: the system store */
	char *cert, *key;               /* client certificate, if the back end asks for one */
};

struct rules_pool {
	char *name;
	int line;
	struct rules_server *servers;
	size_t nservers;
	int proxy_protocol;             /* 0 (off), 1 or 2: PROXY header sent to the back end */
	bool share_connections;         /* HTTP: a server connection may serve other clients after one
	                                 * (default true); false: each is private to its client connection */
	unsigned connect_timeout_ms;    /* back-end connect */
	unsigned idle_timeout_ms;       /* relay: no byte either way for this long closes */
	struct rules_pool_tls tls;
	struct rules_addr source;       /* connect from this address (len 0: the kernel's choice) */
	enum rules_balance balance;
	struct rules_cookie cookie;     /* balance = "cookie" */
	struct rules_health health;
	unsigned retries;               /* times a request (a passthrough connection: its connect) is tried again */
	unsigned retry_budget;          /* percent: resends under way at once, against the pool's other requests */
	unsigned retry_body;            /* request bodies up to this many bytes are kept to be sent again */
};

/* The bounds of a pool's retries (the defaults are schema.def's). */
#define RULES_RETRIES_MAX 8
#define RULES_RETRY_BUDGET_MAX 1000
#define RULES_RETRY_BODY_MAX (1024 * 1024)

/* One argument of a plugin entry: a scalar (one value, as text) or a list. */
struct rules_plugin_arg {
	char *name;
	char **values;
	size_t nvalues;
	bool is_list;
	int line;
};

/* A plugin entry: which module, under which name routes use it, with which
 * arguments. The loader only records it and checks names; the gateway loads
 * the module and makes the instance (gateway/proxy/plugin.h), so nothing here runs
 * a plugin's code. */
struct rules_plugin {
	char *name;
	char *module;                   /* a bundled plugin, or NULL */
	char *path;                     /* a third party's .so, resolved against the rule file's folder, or NULL */
	struct rules_plugin_arg *args;
	size_t nargs;
	char *file;                     /* the file the entry is in (an @include's), for messages */
	int line;
};

/* A route's wait for the back end's first byte when it names no request_timeout. */
#define RULES_REQUEST_TIMEOUT_MS (120 * 1000)

/* A route matches a connection by SNI (passthrough), or a request by host,
 * path prefix and optionally SNI; what it does is forward to a pool, redirect,
 * or answer a fixed status. */
struct rules_route {
	char *sni;                      /* patterns as written, or NULL */
	char *host;
	char *path;                     /* prefix, or NULL */
	size_t path_len;
	long pool;                      /* index into rules_config.pools, or -1 */
	unsigned port;                  /* back-end port rewrite; 0: the server's own */
	bool passthrough;               /* relay the TLS connection untouched (matched on SNI) */
	char *redirect;                 /* "https", or a URL prefix the request path is appended to */
	int status;                     /* redirect code, or a fixed answer when no pool/redirect */
	char *host_rewrite;             /* Host header sent to the back end; NULL: unchanged */
	unsigned request_timeout_ms;    /* back end's answer to one request (first byte) */
	unsigned idle_timeout_ms;       /* no byte either way on an exchange or tunnel */
	bool forwarded;                 /* add X-Forwarded-For/-Proto/-Host and Forwarded (default true) */
	bool normalize_path;            /* the back end gets the resolved path (and the query), not the target as sent */
	bool retry_on_timeout;          /* an idempotent request without a first byte in time goes to another server */
	struct rules_namemap *sni_only; /* for an HTTP route that also names sni: that one pattern */
	size_t *plugins;                /* indexes into rules_config.plugins, in the order they run */
	size_t nplugins;
	int line;
};

enum rules_service_mode {
	RULES_MODE_PASSTHROUGH,         /* no tls group, routes by sni: every connection relayed untouched */
	RULES_MODE_HTTP,                /* no tls group, routes by host/path: plain HTTP */
	RULES_MODE_TLS,                 /* tls group: terminated HTTPS, passthrough routes excepted */
};

struct rules_service {
	char *name;
	int line;
	enum rules_service_mode mode;
	struct rules_addr *listen;
	size_t nlisten;
	bool accept_proxy;              /* read a PROXY v1/v2 header from a trusted balancer first */
	bool plain_http;                /* TLS service: a client whose first byte is not TLS speaks plain HTTP */
	bool http2;                     /* TLS service: ALPN offers h2 before http/1.1 (default true) */
	bool h2c;                       /* plain connections opening with the HTTP/2 preface speak HTTP/2 */
	bool windows_paths;             /* paths resolve as IIS does (RULES_PATH_WINDOWS; default true) */
	unsigned proxy_timeout_ms;      /* for that header */
	unsigned hello_timeout_ms;      /* a client that sends no complete ClientHello in time is closed */
	unsigned header_timeout_ms;     /* HTTP: a request head must arrive within this (slowloris) */
	unsigned keepalive_timeout_ms;  /* HTTP: idle client between requests */
	unsigned send_timeout_ms;       /* a closing connection's peer that takes no byte for this long is cut */
	struct rules_route *routes;     /* in file order; the default, when there is one, last */
	size_t nroutes;
	long default_route;             /* index into routes of the default (the last one), or -1 */
	bool default_reject;            /* passthrough: no match gets unrecognized_name */
	struct rules_namemap *sni_map;  /* SNI -> route index: passthrough routes */
	struct rules_namemap *host_map; /* host -> index into host_sets */
	struct rules_route_set *host_sets;  /* per host pattern: its routes, longest path first */
	size_t nhost_sets;
	struct rules_route_set *any_host;   /* routes without a host (or host "*") */
	size_t *certs;                  /* TLS: indexes into rules_config.certs */
	size_t ncerts;
	long default_cert;              /* TLS: index into certs for no or unknown SNI */
	char *ticket_key_file;          /* TLS: session ticket keys shared with other gateways, or NULL */
	uint8_t *ticket_keys;           /* read from it: RULES_TICKET_KEY_LEN bytes each, the first encrypts */
	size_t nticket_keys;            /* 0: the process's own keys, rotating (tlsconf.c) */
};

/* A session ticket key as nginx's ssl_session_ticket_key writes it: 16 bytes of
 * name, 32 of HMAC-SHA256 key, 32 of AES-256 key. */
#define RULES_TICKET_KEY_LEN 80
#define RULES_TICKET_KEYS_MAX 16

/* Routes that share a host pattern, ordered for matching: longest path prefix first, then file order. */
struct rules_route_set {
	size_t *routes;
	size_t n;
};

/* The loopback admin listener (status page, JSON, metrics, server actions). */
struct rules_admin {
	bool on;
	struct rules_addr listen;
	char *token_file;               /* NULL: no token (only allowed on loopback) */
	int line;
};

/* Where onegate's own lines go. Order of levels as in gateway/io/log.h. */
enum rules_log_level { RULES_LOG_ERROR, RULES_LOG_WARN, RULES_LOG_INFO, RULES_LOG_DEBUG };

struct rules_log {
	enum rules_log_level level;
	bool access;                    /* one line per request/connection at info */
	char *file;                     /* append here, or NULL */
	char *syslog;                   /* "/dev/log" (a local socket) or "HOST:PORT" (UDP), as written, or NULL */
	struct sockaddr_storage syslog_ss;  /* resolved at load: AF_UNIX for a path */
	socklen_t syslog_len;
	int facility;                   /* syslog facility code (daemon = 3, local0 = 16, ...) */
	int line;
};

/* Who onegate runs as once its listeners are bound (user NULL: it stays who started it). */
struct rules_identity {
	char *user, *group;
	unsigned uid, gid;
	int line;
};

struct rules_config {
	char *path;
	struct rules_admin admin;
	struct rules_log log;
	struct rules_identity run_as;
	char *state_dir;                /* pid file and the admin's server states; NULL: none kept */
	unsigned workers;               /* resolved: the file's value or the number of CPUs */
	unsigned drain_timeout_ms;      /* on SIGTERM/SIGINT, open connections get this long */
	struct rules_cert *certs;
	size_t ncerts;
	struct rules_pool *pools;
	size_t npools;
	struct rules_service *services;
	size_t nservices;
	struct rules_plugin *plugins;
	size_t nplugins;
	/* The plugin instances made for this snapshot (gateway/proxy/plugin.c sets
	 * both before the snapshot is shared): they belong to it, and
	 * plugins_release runs with its last reference, once no request can
	 * reach them. */
	void *plugins_live;
	void (*plugins_release)(void *live);
	int refs;                       /* private: use rules_config_ref/unref */
};

/* Loads and checks a rule file. Returns a snapshot holding one reference, or
 * NULL when there was any error (all of them are in diag; warnings may be there
 * either way). */
struct rules_config *rules_load_file(const char *path, struct rules_diag *diag);
/* Same from memory; name is what messages call the file. Used by tests and fuzzing. */
struct rules_config *rules_load_string(const char *text, const char *name, struct rules_diag *diag);

struct rules_config *rules_config_ref(struct rules_config *c);
void rules_config_unref(struct rules_config *c);

/* `onegate check --print`: the effective configuration in rule-file syntax. */
void rules_print(FILE *out, const struct rules_config *c);

/* Looks a pool up by name; -1 when absent. */
long rules_pool_find(const struct rules_config *c, const char *name);

/* ---- request paths as a back end resolves them ---- */

/* "\" is "/" as well, and a name's trailing dots and spaces and what follows a
 * ":" in it do not count (IIS on Windows). Services read paths this way unless
 * the rule file says windows_paths = false. */
#define RULES_PATH_WINDOWS 1u
/* %2F (and on Windows %5C) stay three bytes of a name, as a back end that does
 * not decode separators sees them: the second reading the matcher compares. */
#define RULES_PATH_SEP_OPAQUE 2u

enum rules_path_result {
	RULES_PATH_OK = 0,
	RULES_PATH_ENCODED_SEP = 1,     /* resolved; an encoded separator in it reads two ways */
	RULES_PATH_BAD = -1,            /* cannot be resolved safely: answer 400 */
};

/* Resolves a request target's path (and query, which is cut: "/a/../b?x", or an
 * absolute form's "" or "?x") into out, at least len + 2 bytes: the resolved
 * path is never longer than the raw one plus a leading "/". The result starts
 * with "/", is NUL-terminated, keeps a trailing "/" and the case it was sent in
 * (compare it without case); it has %XX decoded once, "." and ".." resolved,
 * repeated "/" merged, ";" parameters cut. Refused with a reason in *why: a bad
 * escape (%uNNNN included), an encoded NUL or control character, double escaping
 * (%25 and hex digits), bytes that are not UTF-8 or an overlong sequence, ".."
 * above the root, a "#". Pure: no allocation, no state. */
int rules_urlpath_resolve(const char *raw, size_t len, unsigned flags, char *out, size_t cap, size_t *out_len,
                       const char **why);

/* The route for one HTTP request on a service: host (already lower-cased,
 * without port or trailing dot), path (resolved by rules_urlpath_resolve), and
 * the connection's SNI (NULL when none). Returns the route index, the
 * service's default route, or -1: nothing may serve it. Lock-free and
 * allocation-free. */
long rules_route_match_http(const struct rules_service *svc, const char *host, size_t host_len,
                            const char *path, size_t path_len, const char *sni, size_t sni_len);

/* rules_route_request's answer for a path that cannot be resolved safely (400). */
#define RULES_ROUTE_BAD_PATH (-2)

/* Resolves the request target's path (and query) as the service reads paths
 * into out (cap >= path_len + 2, *out_len its length) and picks the route for
 * it as rules_route_match_http does. When an encoded separator reads two ways
 * and the two readings take different routes, or the path cannot be resolved,
 * returns RULES_ROUTE_BAD_PATH with the reason in *why: such a request is
 * never given to a less specific route. */
long rules_route_request(const struct rules_service *svc, const char *host, size_t host_len, const char *path,
                         size_t path_len, const char *sni, size_t sni_len, char *out, size_t cap, size_t *out_len,
                         const char **why);

#ifdef __cplusplus
}
#endif
#endif
