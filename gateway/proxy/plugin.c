/*
 * plugin.c - loads plugin modules per rules snapshot, runs their hooks, and
 * keeps the header edits of one request.
 */
#define _GNU_SOURCE /* asprintf */
#include "proxy/plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>

#include <event2/buffer.h>

#include "io/log.h"

#ifndef ONEGATE_PLUGIN_DIR
#error "ONEGATE_PLUGIN_DIR must name the folder of the bundled plugins"
#endif

/* ---------------------------------------------------------------- instances */

struct plugin_instance {
	void *dl;
	const struct onegate_plugin *api;
	void *instance;
	char *outcome;                  /* "plugin:NAME", for the access line of a request it answered */
};

struct plugin_live {
	size_t n;
	struct plugin_instance v[];
};

static void plugin_live_release(void *arg)
{
	struct plugin_live *live = arg;
	for (size_t i = 0; live && i < live->n; i++) {
		struct plugin_instance *p = &live->v[i];
		if (p->instance && p->api->destroy)
			p->api->destroy(p->instance);
		if (p->dl)
			dlclose(p->dl);
		free(p->outcome);
	}
	free(live);
}

/* ---------------------------------------------------------------- one request */

struct plugin_add {
	enum onegate_side side;
	char *name, *value;
};

struct plugin_drop {
	enum onegate_side side;
	char *name;
};

/* What the host functions get as a struct onegate_request (and as edits: the same object). */
struct onegate_request {
	const struct rules_route *route;
	struct plugin_live *live;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	bool tls, in_response;
	const char *head;               /* the head header() reads: the request's, then the response's; NULL between */
	const struct h1_msg *msg;
	const char *method, *path, *host, *rpath;   /* copies in text[], kept for on_response */
	size_t method_len, path_len, host_len, rpath_len;
	struct plugin_add *adds;
	size_t nadds, capadds;
	struct plugin_drop *drops;
	size_t ndrops, capdrops;
	char text[];
};

struct onegate_edits {
	struct onegate_request q;
};

static const struct sockaddr *plugin_client_addr(const struct onegate_request *r, socklen_t *len)
{
	*len = r->peerlen;
	return (const struct sockaddr *)&r->peer;
}

static int plugin_is_tls(const struct onegate_request *r)
{
	return r->tls;
}

static const char *plugin_method(const struct onegate_request *r, size_t *len)
{
	*len = r->method_len;
	return r->method;
}

static const char *plugin_path(const struct onegate_request *r, size_t *len)
{
	*len = r->path_len;
	return r->path;
}

static const char *plugin_path_resolved(const struct onegate_request *r, size_t *len)
{
	*len = r->rpath_len;
	return r->rpath;
}

static int plugin_path_resolve(const char *path, size_t len, char *out, size_t cap, size_t *out_len)
{
	const char *why;
	return rules_urlpath_resolve(path, len, RULES_PATH_WINDOWS, out, cap, out_len, &why) == RULES_PATH_BAD ? -1 : 0;
}

static const char *plugin_host(const struct onegate_request *r, size_t *len)
{
	*len = r->host_len;
	return r->host;
}

static const char *plugin_header(const struct onegate_request *r, const char *name, size_t nth, size_t *len)
{
	size_t n = strlen(name);
	for (size_t i = 0; r->head && i < r->msg->nheaders; i++) {
		const struct h1_header *h = &r->msg->headers[i];
		if (h->name.len != n || strncasecmp(r->head + h->name.off, name, n) != 0 || nth--)
			continue;
		*len = h->value.len;
		return r->head + h->value.off;
	}
	*len = 0;
	return NULL;
}

/* RFC 9110 5.6.2 token characters. */
static bool plugin_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", *s)))
			return false;
	return true;
}

/* Framing, routing and forwarding are onegate's: an edit there could smuggle a request or forge a client. */
static bool plugin_owned(const char *name)
{
	static const char *const owned[] = { "host", "content-length", "transfer-encoding", "connection", "keep-alive",
		                             "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate",
		                             "proxy-authorization", "x-forwarded-for", "x-forwarded-proto",
		                             "x-forwarded-host", "forwarded" };
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
		if (strcasecmp(owned[i], name) == 0)
			return true;
	return false;
}

static bool plugin_edit_ok(const struct onegate_request *q, enum onegate_side side, const char *name)
{
	if (side != ONEGATE_REQUEST_HEADERS && side != ONEGATE_RESPONSE_HEADERS)
		return false;
	if (side == ONEGATE_REQUEST_HEADERS && q->in_response)
		return false;
	return name && plugin_token(name) && !plugin_owned(name);
}

static bool plugin_value_ok(const char *v)
{
	for (; v && *v; v++)
		if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
			return false;
	return v != NULL;
}

static int plugin_remove(struct onegate_edits *e, enum onegate_side side, const char *name)
{
	struct onegate_request *q = &e->q;
	if (!plugin_edit_ok(q, side, name))
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < q->nadds; i++) {
		struct plugin_add *a = &q->adds[i];
		if (a->side == side && strcasecmp(a->name, name) == 0) {
			free(a->name);
			free(a->value);
		} else {
			q->adds[k++] = *a;
		}
	}
	q->nadds = k;
	for (size_t i = 0; i < q->ndrops; i++)
		if (q->drops[i].side == side && strcasecmp(q->drops[i].name, name) == 0)
			return 0;
	if (q->ndrops == q->capdrops) {
		size_t cap = q->capdrops ? 2 * q->capdrops : 4;
		struct plugin_drop *d = realloc(q->drops, cap * sizeof(*d));
		if (!d)
			return -1;
		q->drops = d;
		q->capdrops = cap;
	}
	if (!(q->drops[q->ndrops].name = strdup(name)))
		return -1;
	q->drops[q->ndrops++].side = side;
	return 0;
}

static int plugin_add(struct onegate_edits *e, enum onegate_side side, const char *name, const char *value)
{
	struct onegate_request *q = &e->q;
	if (!plugin_edit_ok(q, side, name) || !plugin_value_ok(value))
		return -1;
	if (q->nadds == q->capadds) {
		size_t cap = q->capadds ? 2 * q->capadds : 4;
		struct plugin_add *a = realloc(q->adds, cap * sizeof(*a));
		if (!a)
			return -1;
		q->adds = a;
		q->capadds = cap;
	}
	struct plugin_add *a = &q->adds[q->nadds];
	a->side = side;
	a->name = strdup(name);
	a->value = strdup(value);
	if (!a->name || !a->value) {
		free(a->name);
		free(a->value);
		return -1;
	}
	q->nadds++;
	return 0;
}

static int plugin_set(struct onegate_edits *e, enum onegate_side side, const char *name, const char *value)
{
	if (!plugin_edit_ok(&e->q, side, name) || !plugin_value_ok(value))
		return -1;
	return plugin_remove(e, side, name) == 0 ? plugin_add(e, side, name, value) : -1;
}

/* A printf format, as onegate_plugin.h declares the member: clang then takes fmt on to vsnprintf. */
__attribute__((format(printf, 2, 3)))
static void plugin_log(enum onegate_log_level level, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	enum log_level l = level <= ONEGATE_LOG_ERROR ? LOG_ERROR : level == ONEGATE_LOG_WARN ? LOG_WARN
	                   : level == ONEGATE_LOG_INFO ? LOG_INFO : LOG_DEBUG;
	log_msg(l, "plugin: %s", text);
}

static const struct onegate_host plugin_host_api = {
	.abi = ONEGATE_PLUGIN_ABI,
	.client_addr = plugin_client_addr,
	.is_tls = plugin_is_tls,
	.method = plugin_method,
	.path = plugin_path,
	.host = plugin_host,
	.header = plugin_header,
	.header_add = plugin_add,
	.header_set = plugin_set,
	.header_remove = plugin_remove,
	.log = plugin_log,
	.path_resolved = plugin_path_resolved,
	.path_resolve = plugin_path_resolve,
};

static struct onegate_request *plugin_req_new(const struct rules_config *cfg, const struct rules_route *r,
                                              const struct plugin_view *v)
{
	const struct h1_msg *m = v->msg;
	size_t hl = strlen(v->host);
	struct onegate_request *q = calloc(1, sizeof(*q) + m->method.len + m->path.len + hl + v->rpath_len + 4);
	if (!q)
		return NULL;
	q->route = r;
	q->live = cfg->plugins_live;
	q->peer = *v->peer;
	q->peerlen = q->peer.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	q->tls = v->tls;
	char *t = q->text;
	q->method = memcpy(t, v->head + m->method.off, m->method.len);
	q->method_len = m->method.len;
	t += m->method.len + 1;
	q->path = memcpy(t, v->head + m->path.off, m->path.len);
	q->path_len = m->path.len;
	t += m->path.len + 1;
	q->host = memcpy(t, v->host, hl + 1);
	q->host_len = hl;
	t += hl + 1;
	q->rpath = memcpy(t, v->rpath, v->rpath_len);
	q->rpath_len = v->rpath_len;
	return q;
}

int plugin_on_request(const struct rules_config *cfg, const struct rules_route *r, const struct plugin_view *v,
                      struct plugin_req **req, const char **outcome)
{
	struct onegate_request *q = (struct onegate_request *)*req;
	if (!q && !(q = plugin_req_new(cfg, r, v))) {
		*outcome = NULL;
		return 503;
	}
	*req = (struct plugin_req *)q;
	q->head = v->head;
	q->msg = v->msg;
	int status = 0;
	for (size_t i = 0; i < r->nplugins && !status; i++) {
		const struct plugin_instance *p = &q->live->v[r->plugins[i]];
		if (!p->api->on_request)
			continue;
		status = p->api->on_request(p->instance, q, (struct onegate_edits *)q);
		*outcome = p->outcome;
		if (status && (status < 200 || status > 599)) {
			log_msg(LOG_ERROR, "%s answered status %d, which is not 200 to 599; the client gets 500",
			        p->outcome, status);
			status = 500;
		}
	}
	q->head = NULL;
	q->msg = NULL;
	return status;
}

void plugin_on_response(struct plugin_req *req, int status, const char *head, const struct h1_msg *msg)
{
	struct onegate_request *q = (struct onegate_request *)req;
	q->in_response = true;
	q->head = head;
	q->msg = msg;
	for (size_t i = 0; i < q->route->nplugins; i++) {
		const struct plugin_instance *p = &q->live->v[q->route->plugins[i]];
		if (p->api->on_response)
			p->api->on_response(p->instance, q, status, (struct onegate_edits *)q);
	}
	q->head = NULL;
	q->msg = NULL;
}

bool plugin_header_kept(const struct plugin_req *req, enum onegate_side side, const char *name, size_t len)
{
	const struct onegate_request *q = (const struct onegate_request *)req;
	for (size_t i = 0; i < q->ndrops; i++)
		if (q->drops[i].side == side && strlen(q->drops[i].name) == len && strncasecmp(q->drops[i].name, name, len) == 0)
			return false;
	return true;
}

void plugin_headers_write(const struct plugin_req *req, enum onegate_side side, struct evbuffer *out)
{
	const struct onegate_request *q = (const struct onegate_request *)req;
	for (size_t i = 0; i < q->nadds; i++)
		if (q->adds[i].side == side)
			evbuffer_add_printf(out, "%s: %s\r\n", q->adds[i].name, q->adds[i].value);
}

void plugin_req_free(struct plugin_req *req)
{
	struct onegate_request *q = (struct onegate_request *)req;
	if (!q)
		return;
	for (size_t i = 0; i < q->nadds; i++) {
		free(q->adds[i].name);
		free(q->adds[i].value);
	}
	for (size_t i = 0; i < q->ndrops; i++)
		free(q->drops[i].name);
	free(q->adds);
	free(q->drops);
	free(q);
}

/* ---------------------------------------------------------------- loading */

/* "ip_filter, path_filter, ...": what the plugin folder holds, for a module name that is not there. */
static void plugin_bundled_list(char *out, size_t cap)
{
	DIR *d = opendir(ONEGATE_PLUGIN_DIR);
	struct dirent *e;
	out[0] = '\0';
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name), used = strlen(out);
		if (n > 3 && strcmp(e->d_name + n - 3, ".so") == 0)
			snprintf(out + used, cap - used, "%s%.*s", used ? ", " : "", (int)(n - 3), e->d_name);
	}
	if (d)
		closedir(d);
}

static int plugin_args_line(const struct rules_plugin *p, int arg)
{
	return arg >= 0 && (size_t)arg < p->nargs ? p->args[arg].line : p->line;
}

/* One entry: the module opened, checked and its instance made; -1 with the error in diag. */
static int plugin_make(const struct rules_plugin *p, struct plugin_instance *out, struct rules_diag *diag)
{
	char file[4096];
	if (p->module)
		snprintf(file, sizeof(file), "%s/%s.so", ONEGATE_PLUGIN_DIR, p->module);
	else    /* dlopen() would search the library path for a name without a slash */
		snprintf(file, sizeof(file), "%s%s", strchr(p->path, '/') ? "" : "./", p->path);
	if (access(file, R_OK) != 0) {
		char list[512];
		if (p->module) {
			plugin_bundled_list(list, sizeof(list));
			rules_diag_add(diag, RULES_ERROR, p->file, p->line, "plugin \"%s\": no bundled plugin \"%s\" (%s: %s); "
			               "the bundled plugins are %s", p->name, p->module, file, strerror(errno),
			               list[0] ? list : "(none: is onegate installed with its plugins?)");
		} else {
			rules_diag_add(diag, RULES_ERROR, p->file, p->line, "plugin \"%s\": cannot read %s: %s; path names "
			               "the plugin's .so file (relative to the rule file's folder)", p->name, file,
			               strerror(errno));
		}
		return -1;
	}
	if (!(out->dl = dlopen(file, RTLD_NOW | RTLD_LOCAL))) {
		rules_diag_add(diag, RULES_ERROR, p->file, p->line, "plugin \"%s\": cannot load %s: %s", p->name, file,
		               dlerror());
		return -1;
	}
	const struct onegate_plugin *(*entry)(void);
	*(void **)&entry = dlsym(out->dl, ONEGATE_PLUGIN_ENTRY);
	if (!entry) {
		rules_diag_add(diag, RULES_ERROR, p->file, p->line, "plugin \"%s\": %s is not an onegate plugin: it exports "
		               "no %s() (see onegate_plugin.h)", p->name, file, ONEGATE_PLUGIN_ENTRY);
		return -1;
	}
	out->api = entry();
	/* ABI 2 only added host functions at the end of the table: a plugin built for 1 runs as it is. */
	if (!out->api || out->api->abi < 1 || out->api->abi > ONEGATE_PLUGIN_ABI || !out->api->create) {
		rules_diag_add(diag, RULES_ERROR, p->file, p->line, "plugin \"%s\": %s was built for plugin ABI %u, and "
		               "this onegate speaks ABI 1 to %d; rebuild it against this onegate's onegate_plugin.h", p->name,
		               file, out->api ? out->api->abi : 0, ONEGATE_PLUGIN_ABI);
		out->api = NULL;
		return -1;
	}
	if (asprintf(&out->outcome, "plugin:%s", p->name) < 0) {
		out->outcome = NULL;
		rules_diag_add(diag, RULES_ERROR, p->file, p->line, "out of memory");
		return -1;
	}
	/* The arguments as the ABI lays them out; values point into the snapshot, which outlives create(). */
	struct onegate_arg *args = calloc(p->nargs ? p->nargs : 1, sizeof(*args));
	if (!args) {
		rules_diag_add(diag, RULES_ERROR, p->file, p->line, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < p->nargs; i++)
		args[i] = (struct onegate_arg){ p->args[i].name, (const char *const *)p->args[i].values,
			                        p->args[i].nvalues, p->args[i].is_list };
	struct onegate_args a = { args, p->nargs };
	struct onegate_error err = { .arg = -1 };
	out->instance = out->api->create(&a, &plugin_host_api, &err);
	free(args);
	if (!out->instance) {
		err.msg[sizeof(err.msg) - 1] = '\0';
		rules_diag_add(diag, RULES_ERROR, p->file, plugin_args_line(p, err.arg), "plugin \"%s\" (%s): %s", p->name,
		               p->module ? p->module : file, err.msg[0] ? err.msg : "refused its arguments");
		return -1;
	}
	return 0;
}

int plugin_attach(struct rules_config *cfg, struct rules_diag *diag)
{
	if (!cfg->nplugins)
		return 0;
	struct plugin_live *live = calloc(1, sizeof(*live) + cfg->nplugins * sizeof(live->v[0]));
	if (!live) {
		rules_diag_add(diag, RULES_ERROR, cfg->path, 0, "out of memory");
		return -1;
	}
	live->n = cfg->nplugins;
	int rc = 0;
	/* Every entry is tried, so that check reports every plugin problem at once. */
	for (size_t i = 0; i < cfg->nplugins; i++)
		if (plugin_make(&cfg->plugins[i], &live->v[i], diag) != 0)
			rc = -1;
	if (rc != 0) {
		plugin_live_release(live);
		return -1;
	}
	cfg->plugins_live = live;
	cfg->plugins_release = plugin_live_release;
	return 0;
}

struct rules_config *plugin_rules_load(const char *path, struct rules_diag *diag)
{
	struct rules_config *cfg = rules_load_file(path, diag);
	if (cfg && plugin_attach(cfg, diag) != 0) {
		rules_config_unref(cfg);
		return NULL;
	}
	return cfg;
}
