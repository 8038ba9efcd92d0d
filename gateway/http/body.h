/*
 * http/body.h - the exchange under way on a session: the request head and body
 * to the server (kept while the request may go again), the response head and
 * body to the client, both bounded by back-pressure; an Upgrade becomes a
 * tunnel (relay.h). The server connection's callbacks are here, and the
 * connection's close: its last bytes taken, what the client still sends dropped.
 */
#ifndef ONEGATE_HTTP_BODY_H
#define ONEGATE_HTTP_BODY_H

#include "http/session.h"
#include "io/tstream.h"

/* The server connection's callbacks (tstream_setcb()), whatever the phase. */
void http_srv_readable(struct tstream *t, void *arg);
void http_srv_drained(struct tstream *t, void *arg);
void http_srv_event(struct tstream *t, enum tstream_event ev, void *arg);
/* The server is there: the request head (and what body is here) goes out. */
void http_start_exchange(struct http_session *s);
/* Request body from the client to the server, within the back-pressure bound. */
void http_pump_request(struct http_session *s);
/* The timer: a response head that waited HTTP_HEAD_WAIT_MS for its body goes alone.
 * False when the session is gone. */
bool http_head_wait_end(struct http_session *s);
/* The tunnel after a 101 (relay.h): moves what from sent, ends it broken, or looks at its closing. */
void http_tunnel_move(struct http_session *s, struct relay_end *from);
void http_tunnel_end(struct http_session *s, enum outcome end);
void http_tunnel_linger(struct http_session *s);
/* The timer, an open tunnel: a slow end it waits for is cut once it takes nothing for
 * send_timeout (relay_watch()). False when the session is gone. */
bool http_tunnel_watch(struct http_session *s);

#endif
