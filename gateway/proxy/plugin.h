/*
 * plugin.h - plugins (plugins/onegate_plugin.h) as the gateway runs them.
 *
 * Ownership: the rules snapshot owns its plugin instances. plugin_attach()
 * loads every plugin entry of a freshly loaded snapshot (dlopen, ABI check,
 * create() with the entry's arguments) and hangs the instances on it
 * (rules_config.plugins_live); they are destroyed and their modules closed
 * with the snapshot's last reference. A reload's snapshot so has instances of
 * its own, made with its own arguments, while requests under the previous
 * rules finish with the previous ones. All or nothing: a failure is a
 * FILE:LINE error in the diagnostics and no instance of that load survives.
 * Module loading lives here and not in rules/, so that the rule loader (and
 * its fuzzer) never runs code a file names.
 *
 * Per request: a route without plugins costs its caller one branch. With
 * plugins, plugin_on_request() runs them and keeps their header edits in a
 * struct plugin_req, which the HTTP session frees when the request ends.
 */
#ifndef ONEGATE_PLUGIN_GW_H
#define ONEGATE_PLUGIN_GW_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "proto/h1.h"
#include "onegate_plugin.h"
#include "rules.h"

struct evbuffer;
struct plugin_req;

/* rules_load_file(), then plugin_attach(): what every caller that serves or
 * checks a rule file wants. NULL on any error, all of them in diag. */
struct rules_config *plugin_rules_load(const char *path, struct rules_diag *diag);

/* Loads the modules and makes the instances of cfg's plugin entries; call it
 * before cfg is shared. Returns 0, or -1 with every error in diag (cfg then
 * holds no instance). */
int plugin_attach(struct rules_config *cfg, struct rules_diag *diag);

/* The request as the HTTP session has it, while its head is in hand. */
struct plugin_view {
	const struct sockaddr_storage *peer;
	bool tls;
	const char *head;               /* the request head's bytes, msg's spans point into them */
	const struct h1_msg *msg;
	const char *host;               /* normalized (h1_host_normalize), "" when absent */
	const char *rpath;              /* the path as routes matched it (rules_route_request) */
	size_t rpath_len;
};

/* Runs the on_request hooks of route r (r->nplugins > 0) in order. Returns 0
 * to go on, or the status to answer with *outcome naming the plugin for the
 * access log ("plugin:NAME"; NULL with 503: no memory to run them). *req is
 * made on the first call of a request and keeps the edits for the head writers
 * below. */
int plugin_on_request(const struct rules_config *cfg, const struct rules_route *r, const struct plugin_view *v,
                      struct plugin_req **req, const char **outcome);

/* Runs the on_response hooks with the back end's status and response head
 * (which the hooks' header() reads). */
void plugin_on_response(struct plugin_req *q, int status, const char *head, const struct h1_msg *msg);

/* Whether a header of the original message goes out: false when an edit
 * removed or replaced it. */
bool plugin_header_kept(const struct plugin_req *q, enum onegate_side side, const char *name, size_t len);

/* Appends the headers the edits added ("Name: value\r\n" each). */
void plugin_headers_write(const struct plugin_req *q, enum onegate_side side, struct evbuffer *out);

void plugin_req_free(struct plugin_req *q);

#endif
