/*
 * http/h2session.h - HTTP/2 on a client connection that chose ALPN h2 (or a
 * plain one with prior knowledge, h2c): the connection's frames go through
 * h2.c, and each stream becomes an HTTP/1.1 session of its own (session.c)
 * whose client side is a tstream without a socket (tstream_new_peer()). The stream's request reaches that session as
 * the HTTP/1.1 head h2head wrote and its body (chunked when it has no
 * content-length); a server's answer head reaches the stream as the session
 * parsed it (h2s_answer_head()), the rest of the answer as the bytes the
 * session writes for any HTTP/1.1 client (http/h2answer.h), and goes out as
 * HEADERS and DATA. So routing, rules, plugins, templates, forwarding headers,
 * timeouts, the pools and idle lists, retries and the access log are those of
 * HTTP/1.1, one request per stream.
 *
 * Memory stays bounded both ways: a stream's request body is held to the
 * HTTP/2 windows, which open only as the session passes bytes on; its answer
 * is taken from the session only as far as the stream's output buffer has
 * room, and the session stops reading its server while the rest waits.
 *
 * Windows authentication: a private server connection (http/backend.h) that
 * one stream's session leaves belongs to the client connection; the next
 * stream for that pool takes it, and streams that come while another holds
 * it wait for it, one at a time.
 */
#ifndef ONEGATE_HTTP_H2SESSION_H
#define ONEGATE_HTTP_H2SESSION_H

#include <stdbool.h>

#include "http/http.h"

struct evbuffer;
struct tstream;
struct h2s_stream;
struct http_session;
struct http_private;
struct h1_msg;

/* The session's client stream chose h2, or a plain client opened with the
 * HTTP/2 preface (h2c, proxy/conn.c): the connection goes on here. Takes cli
 * (TLS done, or plain with the preface in its input) and its own reference to
 * st->snap; st->cli and st->ssl are not used. */
void h2s_start(const struct http_start *st, struct tstream *cli);
/* Whether stream st's connection is TLS (its session's scheme is https). */
bool h2s_tls(const struct h2s_stream *st);

/* The server's final answer head for stream st's client, as its session read
 * it (m parsed from head), set_cookie a whole Set-Cookie line to add or NULL:
 * 0 when the stream took it, -1 when the session is to write it as text, as
 * for an HTTP/1.1 client (it is then read back). */
int h2s_answer_head(struct h2s_stream *st, const char *head, const struct h1_msg *m, const char *set_cookie);

/* Windows authentication, for the session of stream st (see above). A stream's
 * session asks for the connection's private server connection to pool: it gets
 * it (and holds it), NULL when there is none for that pool, or NULL with *wait
 * set when another stream holds it: http_private_ready() tells it when it comes
 * back. */
struct http_private *h2s_private_take(struct h2s_stream *st, struct http_session *s, long pool, bool *wait);
/* The session's server connection to pool became private: it holds it until it ends. */
void h2s_private_hold(struct h2s_stream *st, struct http_session *s, long pool);
/* The session ends, leaving priv (NULL: none, or it was closed); a stream that
 * waits for it gets it next. Also for a session that was waiting. */
void h2s_private_give(struct h2s_stream *st, struct http_session *s, struct http_private *priv);

/* The counters of every HTTP/2 connection of the process (h2metrics.c), live:
 * a connection counts itself as it begins, and adds what its h2_stats gained
 * since the last call (now less *reported, which then becomes now) on its
 * tick and at its end. Each worker adds to a slot of its own (as
 * proxy/stats.h); /metrics writes their sums. Any thread. */
struct h2_stats;
void h2s_metrics_connection(void);
void h2s_metrics_add(const struct h2_stats *now, struct h2_stats *reported);
void h2s_metrics_write(struct evbuffer *b);

#endif
