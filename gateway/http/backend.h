/*
 * http/backend.h - a session's server connections: the worker's idle list of
 * kept connections (any client's, per server, port and TLS name), private
 * connections kept for one client (Windows authentication, PROXY headers,
 * share_connections = false), connecting to the servers a pool picks, and
 * what a server's failure means for the request (retry or answer).
 */
#ifndef ONEGATE_HTTP_BACKEND_H
#define ONEGATE_HTTP_BACKEND_H

#include "http/session.h"

/* Closes the private connection kept for the client's next request, if any. */
void http_private_free(struct http_session *s);
/* Closes the server connection under way (its server's active count ends). */
void http_drop_server(struct http_session *s);
/* The server connection under way is this client's alone from now on (Windows
 * authentication): never parked for another, never retried elsewhere. */
void http_make_private(struct http_session *s);
/* A pool whose connections are private from their connect (share_connections = false, PROXY header). */
bool http_pool_private(const struct rules_pool *p);
/* The request goes over the client's private connection to its pool, when it has one. */
bool http_take_private(struct http_session *s);
/* The exchange is over: the server connection is kept (idle list, or private) or closed. */
void http_park_server(struct http_session *s);
/* Decided as the request first goes out: whether it may go again, and so whether it is kept. */
bool http_request_resendable(const struct http_session *s);
/* The server connection failed the request: it goes again (same or next server) or is answered 502/504. */
void http_server_failed(struct http_session *s, enum http_retry_cause why, const char *what);
/* Tries the pool's servers in the algorithm's order, each once, within its retries; 503 when none may. */
void http_connect_next(struct http_session *s);

#endif
