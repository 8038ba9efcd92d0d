/*
 * conn.h - the front door: one accepted client connection until it is known
 * what it is, and a passthrough connection from then on.
 *
 * Phases: [PROXY header from a trusted balancer] -> ClientHello peek -> route
 * by SNI -> dispatch: HTTP (plain, or TLS terminated here) goes to the HTTP
 * session (http.h) with the client socket; passthrough connects to a server
 * of the pool -> [PROXY header to the back end] + replay of the peeked bytes
 * -> two-way relay with back-pressure. A connection belongs to exactly one
 * worker (its home, home.h) and is freed in one place, conn_free(), which
 * also writes its log line.
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
