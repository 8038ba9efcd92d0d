/*
 * onegate_plugin.h - the plugin ABI of onegate, version 1.
 *
 * A plugin is a shared object (built with -shared -fPIC against this header
 * alone) that exports one function, ONEGATE_PLUGIN_ENTRY, returning a static
 * struct onegate_plugin. The rule file names it and gives its arguments:
 *
 *   plugins = ( { name = "lan-only"; module = "ip_filter";            # bundled
 *                 args = { allow = [ "192.168.0.0/16", "fd00::/8" ]; }; },
 *               { name = "mine"; path = "plugins/mine.so";           # third party
 *                 args = { greeting = "hello"; }; } );
 *   ... routes = ( { host = "nas.example"; pool = "nas"; plugins = [ "lan-only", "mine" ]; } );
 *
 * Life cycle. onegate dlopen()s the file and calls create() once per plugin
 * entry each time it loads the rule file (at start, at `onegate check`, on
 * every reload); a reload makes new instances with the new arguments, and an
 * instance is destroyed once the last request under the rules that made it
 * has finished. create() runs on the main thread. on_request() and
 * on_response() run on the worker threads, concurrently for one instance:
 * treat the instance as read-only after create(), or lock. destroy() may run
 * on any thread. Nothing here may block: a worker serves many connections.
 *
 * Per request, for the route's plugins in the order the route lists them:
 * on_request() returns 0 to go on, or an HTTP status (200..599, e.g. 403) that
 * onegate answers at once; later plugins and the back end then never see the
 * request. Then, when the back end's response head arrives, on_response() of
 * the same plugins in the same order. Filters run before a route's redirect or
 * status, so they guard those too; onegate's own answers carry no response
 * edits. Plugins apply to HTTP routes (terminated TLS or plain HTTP), not to
 * connections relayed untouched (passthrough).
 *
 * Strings the host hands out are not NUL-terminated (a length comes with
 * each) and live until the hook returns. Strings a plugin hands the host are
 * copied. This header is the whole contract: a plugin sees nothing else of
 * onegate.
 */
#ifndef ONEGATE_PLUGIN_H
#define ONEGATE_PLUGIN_H

#include <stddef.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2 added path_resolved and path_resolve at the end of the host's table; a
 * plugin built for 1 runs unchanged, and one that uses them on an onegate
 * older than 2 is refused at load (its abi is higher than the host's). */
#define ONEGATE_PLUGIN_ABI 2
#define ONEGATE_PLUGIN_ENTRY "onegate_plugin_v1"

#define ONEGATE_PLUGIN_EXPORT __attribute__((visibility("default")))

/* One argument from the rule file's args group. A string, number or boolean
 * is one value in text ("30", "true"); a list [ ... ] any number of them. */
struct onegate_arg {
	const char *name;
	const char *const *values;
	size_t nvalues;
	int is_list;
};

struct onegate_args {
	const struct onegate_arg *v;
	size_t n;
};

/* What create() fills in when it refuses its arguments: msg says what is
 * wrong and how to fix it; arg is the index of the argument at fault (onegate
 * reports that argument's line), or stays -1 for the entry as a whole. */
struct onegate_error {
	char msg[512];
	int arg;
};

struct onegate_request;         /* the request under way: read it through the host */
struct onegate_edits;           /* the header edits of this request: make them through the host */

enum onegate_side {
	ONEGATE_REQUEST_HEADERS = 0,    /* what the back end gets (only from on_request) */
	ONEGATE_RESPONSE_HEADERS = 1,   /* what the client gets from the back end's answer */
};

enum onegate_log_level { ONEGATE_LOG_ERROR = 0, ONEGATE_LOG_WARN = 1, ONEGATE_LOG_INFO = 2, ONEGATE_LOG_DEBUG = 3 };

/* The host's functions, the same table for the life of the process. */
struct onegate_host {
	unsigned abi;                   /* ONEGATE_PLUGIN_ABI of the running onegate */

	/* The client's address (the PROXY header's when a balancer in front sent one). */
	const struct sockaddr *(*client_addr)(const struct onegate_request *r, socklen_t *len);
	/* 1 when the client came over TLS terminated by onegate, 0 for plain HTTP. */
	int (*is_tls)(const struct onegate_request *r);
	const char *(*method)(const struct onegate_request *r, size_t *len);
	/* The request target's path and query as sent ("/owa/?x=1"), not decoded;
	 * compare paths with path_resolved below, which is what routes match. */
	const char *(*path)(const struct onegate_request *r, size_t *len);
	/* Host as routes match it: lower case, no port, no trailing dot; "" when absent. */
	const char *(*host)(const struct onegate_request *r, size_t *len);
	/* The nth (from 0) value of a header, name without case, or NULL: in
	 * on_request the request's headers as the client sent them, in
	 * on_response the back end's response headers as it sent them (edits
	 * are not reflected). */
	const char *(*header)(const struct onegate_request *r, const char *name, size_t nth, size_t *len);

	/* Header edits, applied in the order made: add appends a header, set
	 * replaces every header of that name with one, remove drops them all
	 * (including those an earlier edit added). Return 0, or -1 when refused: a
	 * name that is not an HTTP token, a value with CR, LF or NUL, a request
	 * header edit from on_response, or a header onegate owns (Host,
	 * Content-Length, Transfer-Encoding, Connection and the other hop-by-hop
	 * headers, X-Forwarded-*, Forwarded). */
	int (*header_add)(struct onegate_edits *e, enum onegate_side side, const char *name, const char *value);
	int (*header_set)(struct onegate_edits *e, enum onegate_side side, const char *name, const char *value);
	int (*header_remove)(struct onegate_edits *e, enum onegate_side side, const char *name);

	/* A line in onegate's log ("plugin: " and the text); say which plugin in it. */
	void (*log)(enum onegate_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

	/* From ABI 2. The path as onegate matched the route with it, which is how
	 * the back end resolves it: query cut, %XX decoded once, "." and ".."
	 * resolved, "//" as "/", ";" parameters cut, and (IIS, unless the service
	 * says windows_paths = false) "\" as "/" and a name's trailing dots and
	 * spaces dropped. Starts with "/"; compare it without case. A request whose
	 * path cannot be resolved safely never reaches a plugin (onegate answers 400). */
	const char *(*path_resolved)(const struct onegate_request *r, size_t *len);
	/* From ABI 2. The same resolution (IIS rules) of a path of the plugin's own,
	 * e.g. from its arguments in create(): out needs len + 2 bytes; returns 0
	 * (out NUL-terminated, *out_len its length) or -1 when it cannot be resolved. */
	int (*path_resolve)(const char *path, size_t len, char *out, size_t cap, size_t *out_len);
};

struct onegate_plugin {
	unsigned abi;                   /* ONEGATE_PLUGIN_ABI the plugin was built for */
	const char *name;               /* the module's own name, for messages */
	/* A new instance for one plugin entry, or NULL with err filled in. */
	void *(*create)(const struct onegate_args *args, const struct onegate_host *host, struct onegate_error *err);
	void (*destroy)(void *instance);
	/* 0: go on; 200..599: answer the request with that status. May be NULL. */
	int (*on_request)(void *instance, const struct onegate_request *req, struct onegate_edits *edits);
	/* status: the back end's. May be NULL. */
	void (*on_response)(void *instance, const struct onegate_request *req, int status, struct onegate_edits *edits);
};

/* The one symbol a plugin exports. */
ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void);

#ifdef __cplusplus
}
#endif
#endif
