/*
 * pool.h - the live side of pools: each real server's state (up, down,
 * draining, disabled), its counters, and the choice of a server for a new
 * connection or request; and the live numbers (stats.h) of every service,
 * pool and server.
 *
 * A pool table belongs to one rules snapshot and is shared by every worker
 * and the control thread; everything in it that changes is atomic, so the
 * data path takes no lock. A server's state object outlives reloads: the next
 * table takes over the object of the server with the same pool and server
 * name, so counters, health history and an admin's drain survive a SIGHUP and
 * connections still open on the old rules keep counting on the same object.
 * Services and pools have such objects too, for their live numbers.
 *
 * Balancing state that only steers (the smooth weighted round robin) is per
 * worker (struct pool_cursor), not shared.
 */
#ifndef ONEGATE_POOL_H
#define ONEGATE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rules.h"

struct h1_msg;

/* Resends a pool allows at once whatever its budget says (a quiet pool's budget is near 0). */
#define POOL_RETRY_FLOOR 10

enum pool_health { POOL_HEALTH_UNCHECKED, POOL_HEALTH_UP, POOL_HEALTH_DOWN };
enum pool_admin { POOL_ADMIN_ENABLED, POOL_ADMIN_DRAINING, POOL_ADMIN_DISABLED };

struct pool_table;
struct pool_cursor;
struct stats_ring;

/* prev may be NULL; servers found in prev (same pool name, same server name) keep their state. */
struct pool_table *pool_table_new(const struct rules_config *cfg, const struct pool_table *prev);
struct pool_table *pool_table_ref(struct pool_table *t);
void pool_table_unref(struct pool_table *t);

/* ---- the data path ---- */

/* One per worker and table. */
struct pool_cursor *pool_cursor_new(const struct pool_table *t);
void pool_cursor_free(struct pool_cursor *c);

/* What a pick may use besides the pool's algorithm. */
struct pool_pick {
	const struct sockaddr *client;  /* for balance = "source" */
	long preferred;                 /* a server the request's cookie names, or -1 */
	const long *exclude;            /* servers already tried for this request */
	size_t nexclude;
};

/* A server that may take a new connection now (up or unchecked, enabled, under
 * its limit; backups only while no primary is up), or -1. */
long pool_pick_server(const struct pool_table *t, struct pool_cursor *cur, size_t pool, const struct pool_pick *pk);
/* Whether server may take new work now (what the cookie's choice must pass). */
bool pool_server_usable(const struct pool_table *t, size_t pool, size_t server);

/* Accounting, called by whoever opened the connection: begin before connecting,
 * end exactly once. A failure is a connect that failed or a server that broke
 * an exchange off; enough of them in a row mark a checked server down. */
void pool_conn_begin(const struct pool_table *t, size_t pool, size_t server);
void pool_conn_end(const struct pool_table *t, size_t pool, size_t server);

/* Live numbers, from the data path. An HTTP request answered, where its access
 * line is written: by a server of the pool, or by the gateway (server -1, and
 * pool -1 when the route had none). us: from its first byte to its answer's last. */
struct pool_request {
	size_t service;
	long pool, server;
	int status;
	uint64_t us, bytes_in, bytes_out;
};
void pool_request_done(const struct pool_table *t, const struct pool_request *r);
/* A passthrough connection ended; failed: the server (or the lack of one) cut it short. */
void pool_session_done(const struct pool_table *t, size_t service, long pool, long server, bool failed);
/* Passthrough bytes as they are relayed. */
void pool_relay_bytes(const struct pool_table *t, size_t service, size_t pool, size_t server, uint64_t in,
                      uint64_t out);
/* A client connection of the service opened (+1) or closed (-1). */
void pool_service_open(const struct pool_table *t, size_t service, int delta);

void pool_server_failed(const struct pool_table *t, size_t pool, size_t server, const char *why);
void pool_server_succeeded(const struct pool_table *t, size_t pool, size_t server);

/* A resend: a request sent again after a server failed it once it had gone out. The
 * pool's budget bounds those under way at once: at most retry_budget percent of the
 * pool's other requests in flight, plus POOL_RETRY_FLOOR, so that a pool where every
 * server fails does not take each request several times over. Returns false when
 * there is no room; otherwise call pool_retry_end() once, when the answer's head came
 * or the request ended. */
bool pool_retry_begin(const struct pool_table *t, size_t pool);
void pool_retry_end(const struct pool_table *t, size_t pool);
/* Counts a request this server failed that was then tried again. */
void pool_server_retried(const struct pool_table *t, size_t pool, size_t server);

/* The persistence cookie's value for a server: an opaque token that names
 * neither its address nor its place in the list. */
const char *pool_server_cookie(const struct pool_table *t, size_t pool, size_t server);
/* The server whose cookie value this is, or -1. */
long pool_server_by_cookie(const struct pool_table *t, size_t pool, const char *value, size_t len);
/* The server a request's persistence cookie names (the pool's cookie in any Cookie
 * header, at any position), or -1. head and q are the request head as h1_parse() left them. */
long pool_cookie_find(const struct pool_table *t, size_t pool, const char *head, const struct h1_msg *q);
/* Writes the Set-Cookie header line (CRLF included) that keeps a client on server;
 * returns its length, or 0 when it does not fit in cap. */
size_t pool_cookie_header(const struct pool_table *t, size_t pool, size_t server, char *buf, size_t cap);

/* ---- the control side (health checks, admin) ---- */

const struct rules_config *pool_table_config(const struct pool_table *t);
long pool_server_find(const struct pool_table *t, size_t pool, const char *name);
/* Health results: consecutive counts are applied against the pool's rise/fall;
 * a change of state is logged with the reason. */
void pool_health_result(const struct pool_table *t, size_t pool, size_t server, bool ok, const char *what);
/* Returns 0, or -1 when the action is unknown. */
int pool_server_set_admin(const struct pool_table *t, size_t pool, size_t server, enum pool_admin a);

struct pool_server_view {
	const char *state;              /* "up", "down", "draining", "disabled", "unchecked" */
	enum pool_health health;
	enum pool_admin admin;
	unsigned active;
	uint64_t connections, requests, errors, failures, retries;
	char last_check[160];           /* the last check's result, "" before the first */
	int64_t last_change;            /* unix time of the last state change, 0: never */
};
void pool_server_view(const struct pool_table *t, size_t pool, size_t server, struct pool_server_view *v);

/* Once a second, from the control thread: every service's, pool's and server's
 * counters into its ring (sample tick, taken at monotonic now_ms). */
void pool_table_sample(const struct pool_table *t, uint64_t tick, uint64_t now_ms);
/* Rings to read live numbers from, on the control thread only. */
const struct stats_ring *pool_service_ring(const struct pool_table *t, size_t service);
const struct stats_ring *pool_ring(const struct pool_table *t, size_t pool);
const struct stats_ring *pool_server_ring(const struct pool_table *t, size_t pool, size_t server);
/* The pool's HTTP latencies since its first request: STATS_NBUCKETS counts
 * (stats_bucket_us), their sum and count. */
void pool_latency_histogram(const struct pool_table *t, size_t pool, uint64_t *buckets, uint64_t *sum_us,
                            uint64_t *count);

#endif
