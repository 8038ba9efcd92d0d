/*
 * http/session.h - the HTTP session's types and the contract between its files
 * (gateway/http/): session.c (the client side: lifetime, the request state
 * machine, our own answers, the access log), backend.c (server connections:
 * idle list, private connections, connect, retry), body.c (the exchange:
 * bodies both ways, the response head, the Upgrade tunnel), head.c (pure head
 * writing). Not for use outside gateway/http/: the public face is http.h.
 *
 * A session belongs to one worker's thread; every function here runs there.
 * Functions that take a session may free it (http_free()): after a call that
 * can end the session, the caller touches it no more.
 */
#ifndef ONEGATE_HTTP_SESSION_H
#define ONEGATE_HTTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "proto/h1.h"
#include "proxy/home.h"
#include "io/outcome.h"
#include "io/relay.h"
#include "rules.h"
#include "io/sock.h"

struct evbuffer;
struct event;
struct tstream;
struct plugin_req;
struct h2s_stream;
struct http_start;

/* How long a response head waits for the first bytes of its body, to go out with them. */
#define HTTP_HEAD_WAIT_MS 1

/* Bytes queued towards one side before we stop reading the other. */
#define HTTP_RELAY_MAX (256 * 1024)

/* Request and response heads: past this a request gets 431, a response 502. */
#define HTTP_HEAD_MAX (32 * 1024)

/* A connection closed on a request not read to its end reads and drops what the client
 * still sends, until its end, for this long and this much at most (http_linger_begin()). */
#define HTTP_DRAIN_MS 2000
#define HTTP_DRAIN_MAX (1024 * 1024)

enum http_phase {
	HP_HEAD,        /* waiting for (the rest of) a request head */
	HP_CONNECT,     /* connecting to a server */
	HP_EXCHANGE,    /* request body out, response in */
	HP_TUNNEL,      /* after a 101: bytes both ways */
	HP_CLOSING,     /* our last bytes are leaving (both ways, at a tunnel's end); then we close */
};

enum http_framing { HF_NONE, HF_LENGTH, HF_CHUNKED, HF_CLOSE };

/* Why a server connection failed a request before any byte of the answer reached the client. */
enum http_retry_cause {
	HR_CONNECT,     /* it never carried the request: refused, reset or timed out while opening */
	HR_BROKEN,      /* closed or reset with the request out, before the answer's head */
	HR_TIMEOUT,     /* no answer's head within the route's request_timeout */
};

/* What came of giving a request a connection to one server. */
enum http_connect_result {
	HC_STARTED,     /* connecting, or the exchange is under way on a kept connection */
	HC_NEXT,        /* not even a connect could start (a failure already counted): try another server */
	HC_STOP,        /* nothing could start on any server (no PROXY header for this client) */
};

/* The parsed heads of the exchange under way (some 3.5 KiB): allocated when a
 * request starts and released while the connection waits idle, so ten
 * thousand idle keep-alive clients do not hold them. */
struct http_msgs {
	struct h1_msg req, resp;
};

/* A server connection private to its client connection, kept between that
 * client's requests: Windows authentication (NTLM, Negotiate) authenticates the
 * TCP connection, a PROXY header names the client that opened it, a pool with
 * share_connections = false has other state bound to it. It must never serve
 * another client, and the client's next request to the pool goes back to it.
 * Allocated only while one is kept. */
struct http_private {
	struct tstream *t;
	long pool, server;
	unsigned port;
	char name[256];                 /* the TLS server name it was opened for, or "" */
};

/* One request, from its first byte to its access line: what the next one starts
 * afresh with is one assignment (http_request_reset()). Its words, which are
 * large and written whole by the head, are apart (struct http_request_text). */
struct http_request {
	struct timeval req_start, srv_start;
	size_t host_len;                /* of http_request_text.host; 0 without a Host */
	long route, pool, server;
	long tried[RULES_RETRIES_MAX + 1];      /* servers tried for this request */
	size_t ntried;
	unsigned attempts;              /* server connections the request was given: the first and its retries */
	long failed_server;             /* the server whose failure the next attempt retries, or -1 */
	enum http_retry_cause fail_cause;       /* the last failure: answered so when nothing more is tried */
	bool srv_reused;                /* the server connection is a kept one */
	bool req_sent;                  /* the request head went to a server */
	bool head_held;                 /* it still heads the client's input (a bodyless request that may go again) */
	bool resending;                 /* counted among the pool's resends under way */
	bool resp_forwarded;            /* an interim (1xx) answer reached the client */
	struct evbuffer *kept;          /* a request with a body that may go again: its head, then the body sent */
	long cookie_server;             /* the server the request's persistence cookie names, or -1 */
	bool counted;                   /* the server counts this request among its active ones */
	unsigned port;                  /* the server's port after the route's rewrite */
	enum http_framing req_framing, resp_framing;
	uint64_t req_left, resp_left;
	struct h1_chunked req_chunks, resp_chunks;
	bool req_done, resp_head_done, resp_done, keepalive, upgrade, head_request;
	bool head_waits;                /* the response head waits in the client's output for its body (body.c) */
	int status;
	uint64_t bytes_in, bytes_out;   /* body bytes up, response bytes down */
	bool srv_reusable;              /* the server may take another request on this connection */
	bool req_private;               /* it went over a private server connection (the log says so) */
	struct plugin_req *plug;        /* the route's plugins' edits; NULL without plugins */
	char *target;                   /* normalize_path: the target the back end gets; NULL: the client's */
	const char *answered_by;        /* OUTCOME_PLUGIN: "plugin:NAME", the plugin's own string */
};

/* The request's words as its head gave them, C strings for routing and the log.
 * A new request empties each by its first byte (http_request_reset()): a string
 * is read only up to its NUL, so the rest need not be cleared. */
struct http_request_text {
	char method[24], host[256], path[256];
};

struct http_session {
	struct home_link link;          /* first: a link is its session */
	struct home *home;
	struct home_snap *snap;
	const struct rules_service *svc;
	struct tstream *cli, *srv;
	struct event *timer;
	struct event *next;             /* reads the next request after one of our own answers, from the loop */
	uint64_t deadline;              /* http_now_ms() when the phase times out, or 0 */
	uint64_t timer_at;              /* when the timer fires (at or before the deadline), or 0 */
	enum http_phase phase;
	bool tls;
	bool handshaken;                /* the client's TLS handshake is done (always, without TLS) */
	char client[64];                /* "ip:port" for logs */
	char client_ip[INET6_ADDRSTRLEN];
	struct sockaddr_storage peer;   /* for balance = "source" and the PROXY header */
	struct sockaddr_storage local;  /* the address the client connected to, for the PROXY header */
	socklen_t locallen;             /* 0: unknown */
	char sni[256];
	unsigned requests;
	struct timeval start;
	enum outcome close_outcome;
	struct sock_linger cli_linger, srv_linger;
	bool log_at_close;              /* the request's access line waits for the client to take the answer */
	bool cli_draining;              /* HP_CLOSING: what the client still sends is read and dropped */
	bool cli_has_all;               /* HP_CLOSING: the peers have taken our last bytes; a drain goes on */
	uint64_t drain_until;           /* http_now_ms() when the drain ends, its end not seen; 0: no drain */
	size_t drained;                 /* bytes dropped so far */

	struct h1_msg *req, *resp;      /* in msgs, while a request is under way */
	struct http_msgs *msgs;
	bool cli_paused, srv_paused, cli_eof, req_started;
	struct relay relay;             /* HP_TUNNEL: the client and server streams after a 101 */
	bool srv_private;               /* s->srv belongs to this client connection alone: http_srv_private() */
	struct http_private *priv;      /* a private server connection waiting for this client's next request */
	struct http_request rq;         /* the request in flight */
	struct http_request_text rqt;   /* and its words */
	struct h2s_stream *h2;          /* the HTTP/2 stream this session serves (http/h2session.h), or NULL */
	bool moved;                     /* the connection went on as HTTP/2: it logs its own line */
	void *spare_next;                       /* kept for the next session (spare.c, io/keep.h) */
};

/* Monotonic milliseconds; the coarse clock (a few ms) is plenty for timeouts. */
static inline uint64_t http_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline size_t http_service_index(const struct http_session *s)
{
	return (size_t)(s->svc - s->snap->cfg->services);
}

static inline const struct rules_pool *http_pool(const struct http_session *s)
{
	return &s->snap->cfg->pools[s->rq.pool];
}

static inline unsigned http_timeout(const struct http_session *s, bool first_byte)
{
	const struct rules_route *r = &s->svc->routes[s->rq.route];
	if (first_byte)
		return r->request_timeout_ms ? r->request_timeout_ms : RULES_REQUEST_TIMEOUT_MS;
	return r->idle_timeout_ms ? r->idle_timeout_ms : http_pool(s)->idle_timeout_ms;
}

/* Whether the server connection under way is private to this client connection:
 * what it carries (an authenticated Windows session, a PROXY header naming this
 * client) would be wrong on any other server connection, so a request on it is
 * never sent again elsewhere, and it is never parked for another client. */
static inline bool http_srv_private(const struct http_session *s)
{
	return s->srv_private;
}

static inline void http_disarm(struct http_session *s)
{
	s->deadline = 0;
}

/* ---- spare.c: sessions' memory, kept per thread between sessions */

/* A zeroed session whose timer and next point to event memory for
 * event_assign(), or NULL without memory. */
struct http_session *http_spare_take(void);
/* The session is done with (its events assigned, or never): kept for the next. */
void http_spare_give(struct http_session *s);

/* ---- session.c: the client side */

/* The precise monotonic clock, for request times (libevent's cached time ticks in 4 ms). */
static inline void http_clock(struct timeval *tv)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = (suseconds_t)(ts.tv_nsec / 1000);
}

/* Sets the session's timer to fire ms from now. */
void http_timer_set(struct http_session *s, uint64_t now, uint64_t ms);
/* The same, unless the timer already fires sooner. */
void http_timer_soon(struct http_session *s, uint64_t now, uint64_t ms);

/* The phase's deadline, ms from now. A request moves it several times, mostly later:
 * then the timer keeps its earlier time and, if it fires before the deadline, sleeps
 * again for the rest. Only a nearer deadline re-arms it, so a kept-alive request
 * costs no timer work at all. */
static inline void http_arm(struct http_session *s, unsigned ms)
{
	uint64_t now = http_now_ms();
	s->deadline = now + ms;
	if (s->timer_at && s->timer_at <= s->deadline)
		return;
	http_timer_set(s, now, ms);
}

/* A span as a C string for the log, cut to fit. Inline: twice per request. */
static inline void http_copy(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}
/* The request can no longer go again: what was kept for that goes. */
void http_resend_end(struct http_session *s);
/* The one place a session's memory is released; logs the connection (and the
 * request, when its line waited for the close). */
void http_free(struct http_session *s, enum outcome outcome);
/* Closing: looks at what the client has still to take. */
void http_linger_check(struct http_session *s);
/* Closing, cut short: the line counts what the client got; the session is freed. */
void http_linger_cut(struct http_session *s, enum outcome outcome);
/* Closing: drops what the client sent meanwhile (HTTP_DRAIN_MAX at most). */
void http_drain_client(struct http_session *s);
/* The request ends the connection: its line waits until the client took the answer. */
void http_close_request(struct http_session *s, enum outcome outcome);
/* The request's access line and its live numbers. */
void http_access_log(struct http_session *s, enum outcome outcome);
/* A short answer of our own; the connection closes after it unless keep (and the client) say otherwise. */
void http_respond(struct http_session *s, int status, const char *extra, enum outcome outcome, bool keep);
/* Reads (the rest of) a request head from what the client sent, and routes it. */
void http_read_request(struct http_session *s);
/* A session for one HTTP/2 stream: cli is its client side (tstream_new_peer()),
 * holding the request as HTTP/1.1, whose head req is (h2head_req_write()'s
 * h1_msg), so that the session does not parse it again. */
void http_stream_start(const struct http_start *st, struct tstream *cli, struct h2s_stream *h2,
		       const struct h1_msg *req);
/* The private server connection a stream's session waited for is free (h2s_private_take()). */
void http_private_ready(struct http_session *s);

#endif
