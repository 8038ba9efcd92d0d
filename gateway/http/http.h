/*
 * http.h - an HTTP/1.x reverse-proxy session on one client connection
 * (plain, or TLS terminated here): each request head is read, routed by
 * Host and path, and exchanged with a server of the route's pool; bodies
 * stream both ways with bounded buffers; an Upgrade becomes a tunnel.
 *
 * The session owns the client connection from http_session_start() until it
 * closes, and frees itself in one place (which also logs the connection).
 * Every request gets an access log line of its own. The code is in
 * gateway/http/ (session.h says which file does what).
 */
#ifndef ONEGATE_HTTP_H
#define ONEGATE_HTTP_H

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "proxy/home.h"
#include "rules.h"

struct sock;

struct http_start {
	struct home *home;
	struct home_snap *snap;         /* the session takes its own reference */
	const struct rules_service *svc;
	struct sock *cli;               /* ownership passes to the session */
	SSL *ssl;                       /* server side to terminate here, or NULL for plain HTTP */
	const struct sockaddr_storage *peer;    /* the client, as a PROXY header may have named it */
	socklen_t peerlen;
	const struct sockaddr_storage *local;   /* the address it connected to, as that header named it */
	socklen_t locallen;                     /* 0: unknown */
	const char *sni;                /* from the ClientHello, or NULL */
	/* peer as text ("ip:port", and the ip alone) when the caller made it already (each
	 * HTTP/2 stream has its connection's), or NULL: the session writes it then. */
	const char *client, *client_ip;
};

void http_session_start(const struct http_start *st);

#endif
