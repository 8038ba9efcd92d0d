/*
 * pass.h - a passthrough connection: a client whose ClientHello the front door
 * (conn.h) routed by SNI to a pool that speaks TLS itself.
 *
 * Phases: connect to a server of the pool (balanced, from the pool's source
 * address, to the route's port; a failed connect tries another, up to the
 * pool's retries) -> [PROXY header to the back end] + the peeked bytes,
 * untouched -> bytes both ways (relay.h) until both sides end, one stops
 * taking them, or it is idle. The connection owns the client socket from
 * pass_start() on, belongs to one worker (its home, home.h) and is freed in
 * one place, which counts it (one request for the live numbers) and writes
 * its `conn` access line.
 */
#ifndef ONEGATE_PASS_H
#define ONEGATE_PASS_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "proxy/home.h"
#include "io/outcome.h"
#include "rules.h"

struct sock;

struct pass_start {
	struct home *home;
	struct home_snap *snap;         /* the connection takes its own reference */
	const struct rules_service *svc;
	long route;                     /* the route the SNI chose; its pool is >= 0 */
	struct sock *cli;               /* ownership passes; the peeked bytes are still in its input */
	const struct sockaddr_storage *peer;    /* the client, as a PROXY header may have named it */
	socklen_t peerlen;
	const struct sockaddr_storage *local;   /* the address it connected to, as that header named it */
	socklen_t locallen;                     /* 0: unknown */
	const char *sni;                /* from the ClientHello, or NULL */
	struct timeval start;           /* when the client was accepted (the line's ms) */
};

/* Starts connecting; the client is not read until a server is there. The
 * connection takes the client socket; -1 when out of memory, and then it
 * took nothing. */
int pass_start(const struct pass_start *st);

/* A TCP connection's `conn` access line (docs/architecture.md, "Log lines").
 * The front door writes it too, for a connection that ended before it was
 * dispatched: then route, pool and server are NULL and the counts 0. */
struct pass_line {
	const struct sockaddr_storage *peer;
	socklen_t peerlen;
	const char *service, *sni, *route, *pool, *server;      /* NULL: "-" */
	uint64_t in, out;               /* bytes client->server, server->client */
	long ms;
	enum outcome outcome;
};

void pass_log(const struct pass_line *l);

#endif
