/*
 * conn.h - one client connection from accept to close.
 *
 * Phases: [PROXY header from a trusted balancer] -> ClientHello peek -> route
 * by SNI -> connect to a server of the pool -> [PROXY header to the back end]
 * + replay of the peeked bytes -> two-way relay with back-pressure. A
 * connection belongs to exactly one worker (its conn_home) and is freed in one
 * place, conn_free(), which also writes its log line.
 */
#ifndef ONEGATE_CONN_H
#define ONEGATE_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "rules.h"

struct event_base;
struct conn;
struct tlsconf;
struct pool_table;
struct pool_cursor;

/* A configuration snapshot as one worker uses it: the rules plus the worker's
 * own balancing state, so that nothing on the data path is shared between
 * threads. Connections hold a reference until they close. */
struct conn_snap {
	struct rules_config *cfg;
	struct tlsconf *tls;            /* the TLS contexts built from cfg */
	struct pool_table *pools;       /* servers' live state, shared with the other workers */
	struct pool_cursor *cursor;     /* this worker's balancing position */
	int refs;                       /* only touched by the owning worker's thread */
};

/* Takes a reference to cfg, tls and pools. */
struct conn_snap *conn_snap_new(struct rules_config *cfg, struct tlsconf *tls, struct pool_table *pools);
void conn_snap_unref(struct conn_snap *s);

/* Every live client connection, whichever module runs it (relay here, HTTP
 * in http.c), is linked into its worker's home so a drain can end them all. */
struct conn_link {
	struct conn_link *next, *prev;
	void (*close_now)(struct conn_link *l);    /* frees the connection; it logs drain-timeout */
};

/* What a worker lends its connections. */
struct conn_home {
	struct event_base *base;
	struct conn_snap *snap;         /* snapshot for newly accepted connections */
	struct conn_link *live;         /* all live connections (intrusive list) */
	size_t nlive;
	struct conn_link *idle;         /* idle back-end connections kept for reuse (http.c's) */
	size_t nidle;
	struct event *idle_timer;       /* http.c's: closes those kept too long; there while idle is not empty */
	void (*on_empty)(void *arg);    /* called when the last live connection closes */
	void *on_empty_arg;
};

/* Takes ownership of fd, accepted on the listener of service svc_index. */
void conn_accept(struct conn_home *home, evutil_socket_t fd, const struct sockaddr *peer,
                 socklen_t peerlen, size_t svc_index);

/* Closes every live connection at once (end of the drain time). */
void conn_close_all(struct conn_home *home);

void conn_home_link(struct conn_home *home, struct conn_link *l);
/* The idle list: not client connections, so they never hold a drain open. */
void conn_home_idle_link(struct conn_home *home, struct conn_link *l);
void conn_home_idle_unlink(struct conn_home *home, struct conn_link *l);
/* Calls home->on_empty when l was the last. */
void conn_home_unlink(struct conn_home *home, struct conn_link *l);

#endif
