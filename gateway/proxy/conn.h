/*
 * conn.h - the front door: one accepted client connection until it is known
 * what it is.
 *
 * Phases: [PROXY header from a trusted balancer] -> ClientHello peek -> route
 * by SNI -> dispatch, which hands the client socket on with whatever was
 * peeked still in its input: HTTP (plain, or TLS terminated here) to the HTTP
 * session (http.h), a passthrough route to a passthrough connection (pass.h);
 * a name without a route gets an unrecognized_name alert. A connection belongs
 * to exactly one worker (its home, home.h); one that ends before dispatch is
 * freed in one place, conn_free(), which writes its `conn` line.
 */
#ifndef ONEGATE_CONN_H
#define ONEGATE_CONN_H

#include <stddef.h>
#include <sys/socket.h>

#include <event2/util.h>

struct home;

/* Takes ownership of fd, accepted on the listener of service svc_index. */
void conn_accept(struct home *home, evutil_socket_t fd, const struct sockaddr *peer,
                 socklen_t peerlen, size_t svc_index);

#endif
