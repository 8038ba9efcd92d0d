#include "proxy/health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "io/addr.h"
#include "proto/h1.h"
#include "io/log.h"
#include "proxy/pool.h"
#include "proto/proxyproto.h"
#include "io/sock.h"
#include "proxy/tlsconf.h"
#include "io/tstream.h"

/* What a check reads at most: a status page's head and enough body to find a word in. */
#define HEALTH_READ_MAX (64 * 1024)
#define HEALTH_HEAD_MAX (16 * 1024)
/* Checks of many servers start spread out, not all in the same tick. */
#define HEALTH_STAGGER_MS 7

struct health_check {
	struct health *h;
	size_t pool, server;
	struct event *timer;            /* idle: the next start; running: the timeout */
	struct tstream *t;              /* while a check runs */
	struct h1_msg *resp;            /* while an HTTP check runs */
	bool head_done;
	struct timeval started;
};

struct health {
	struct event_base *base;
	struct pool_table *table;
	struct tlsconf *tls;
	struct health_check **checks;
	size_t nchecks;
};

static void health_start(struct health_check *c);

static const struct rules_pool *health_pool(const struct health_check *c)
{
	return &pool_table_config(c->h->table)->pools[c->pool];
}

static void health_arm(struct health_check *c, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_add(c->timer, &tv);
}

static long health_elapsed_ms(const struct health_check *c)
{
	struct timeval now;
	event_base_gettimeofday_cached(c->h->base, &now);
	return (now.tv_sec - c->started.tv_sec) * 1000L + (now.tv_usec - c->started.tv_usec) / 1000L;
}

/* Ends the running check with its result and schedules the next one an interval after this one began. */
static void health_finish(struct health_check *c, bool ok, const char *what)
{
	const struct rules_health *hc = &health_pool(c)->health;
	tstream_free(c->t);
	c->t = NULL;
	free(c->resp);
	c->resp = NULL;
	pool_health_result(c->h->table, c->pool, c->server, ok, what);
	long spent = health_elapsed_ms(c);
	health_arm(c, spent >= (long)hc->interval_ms ? 0 : hc->interval_ms - (unsigned)spent);
}

static void health_timer(evutil_socket_t fd, short what, void *arg)
{
	struct health_check *c = arg;
	(void)fd;
	(void)what;
	if (!c->t) {
		health_start(c);
		return;
	}
	char text[96];
	snprintf(text, sizeof(text), "no answer within %u ms", health_pool(c)->health.timeout_ms);
	health_finish(c, false, text);
}

static const char *health_host(const struct health_check *c)
{
	const struct rules_pool *p = health_pool(c);
	return p->health.host ? p->health.host : p->tls.sni ? p->tls.sni : p->servers[c->server].host;
}

static void health_send(struct health_check *c)
{
	const struct rules_health *hc = &health_pool(c)->health;
	evbuffer_add_printf(tstream_output(c->t),
	                    "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: onegate-health\r\nAccept: */*\r\n"
	                    "Connection: close\r\n\r\n",
	                    hc->method ? hc->method : "GET", hc->path ? hc->path : "/", health_host(c));
	if (tstream_flush(c->t) != 0)
		health_finish(c, false, tstream_error(c->t));
}

/* The answer so far: a status in range, then (when asked) the word somewhere in the body. */
static void health_readable(struct tstream *t, void *arg)
{
	struct health_check *c = arg;
	const struct rules_health *hc = &health_pool(c)->health;
	struct evbuffer *in = tstream_input(t);
	size_t len = evbuffer_get_length(in);
	char text[160];
	if (!c->head_done) {
		size_t take = len < HEALTH_HEAD_MAX ? len : HEALTH_HEAD_MAX;
		const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)take);
		enum h1_result rc = h1_parse(c->resp, head, take);
		if (rc == H1_NEED_MORE && take < HEALTH_HEAD_MAX)
			return;
		if (rc != H1_DONE) {
			snprintf(text, sizeof(text), "bad HTTP answer on %s: %s", hc->path, h1_error_text(c->resp, rc));
			health_finish(c, false, text);
			return;
		}
		int st = c->resp->status;
		if (st < hc->status_min || st > hc->status_max) {
			snprintf(text, sizeof(text), "HTTP %d on %s (expected %d-%d)", st, hc->path, hc->status_min,
			         hc->status_max);
			health_finish(c, false, text);
			return;
		}
		c->head_done = true;
		evbuffer_drain(in, c->resp->head_len);
		if (!hc->body) {
			snprintf(text, sizeof(text), "HTTP %d on %s", st, hc->path);
			health_finish(c, true, text);
			return;
		}
		len = evbuffer_get_length(in);
	}
	struct evbuffer_ptr at = evbuffer_search(in, hc->body, strlen(hc->body), NULL);
	if (at.pos >= 0) {
		snprintf(text, sizeof(text), "HTTP %d on %s with \"%s\"", c->resp->status, hc->path, hc->body);
		health_finish(c, true, text);
		return;
	}
	if (len >= HEALTH_READ_MAX) {
		snprintf(text, sizeof(text), "\"%s\" not in the first %d KiB of %s", hc->body, HEALTH_READ_MAX / 1024,
		         hc->path);
		health_finish(c, false, text);
	}
}

static void health_event(struct tstream *t, enum tstream_event ev, void *arg)
{
	struct health_check *c = arg;
	const struct rules_health *hc = &health_pool(c)->health;
	char text[200];
	if (ev == TSTREAM_READY) {
		if (hc->type == RULES_HEALTH_TCP) {
			health_finish(c, true, "TCP connect succeeded");
			return;
		}
		health_send(c);
		return;
	}
	if (ev == TSTREAM_EOF && c->head_done) {
		snprintf(text, sizeof(text), "\"%s\" not in the answer on %s", hc->body, hc->path);
		health_finish(c, false, text);
		return;
	}
	if (ev == TSTREAM_EOF && c->resp) {
		/* Whatever is there may still be a whole answer closed by the server. */
		health_readable(t, c);
		if (!c->t)
			return;
	}
	snprintf(text, sizeof(text), "%s", ev == TSTREAM_EOF ? "closed without an answer" : tstream_error(t));
	health_finish(c, false, text);
}

static SSL *health_ssl(struct health_check *c)
{
	const struct rules_pool *p = health_pool(c);
	const char *name = p->health.sni ? p->health.sni : p->health.host ? p->health.host : p->tls.sni;
	return tlsconf_pool_ssl(c->h->tls, c->pool, name);
}

static void health_start(struct health_check *c)
{
	const struct rules_pool *p = health_pool(c);
	const struct rules_health *hc = &p->health;
	const struct rules_server *sv = &p->servers[c->server];
	char text[200];
	event_base_gettimeofday_cached(c->h->base, &c->started);
	c->head_done = false;
	struct sockaddr_storage to = sv->addr.ss;
	addr_set_port(&to, (uint16_t)(hc->port ? hc->port : sv->port));
	/* From the pool's source address, like the traffic it vouches for. */
	struct sock *sk = sock_connect(c->h->base, (const struct sockaddr *)&to, sv->addr.len,
	                               (const struct sockaddr *)&p->source.ss, p->source.len);
	if (!sk) {
		snprintf(text, sizeof(text), "connect failed: %s", strerror(errno));
		pool_health_result(c->h->table, c->pool, c->server, false, text);
		health_arm(c, hc->interval_ms);
		return;
	}
	/* A back end that requires the PROXY header refuses a connection without one; a check
	 * is the gateway's own connection, so its header names no client (v2 LOCAL, v1 UNKNOWN). */
	if (p->proxy_protocol) {
		uint8_t hdr[PP_MAX_HEADER];
		int n = pp_write_local(p->proxy_protocol, hdr, sizeof(hdr));
		if (n < 0 || evbuffer_add(sock_output(sk), hdr, (size_t)n) != 0) {
			sock_free(sk);
			health_arm(c, hc->interval_ms);
			return;
		}
	}
	SSL *ssl = NULL;
	if (hc->type == RULES_HEALTH_HTTPS && !(ssl = health_ssl(c))) {
		sock_free(sk);
		pool_health_result(c->h->table, c->pool, c->server, false, "cannot start TLS");
		health_arm(c, hc->interval_ms);
		return;
	}
	if (hc->type != RULES_HEALTH_TCP) {
		if (!(c->resp = malloc(sizeof(*c->resp)))) {
			sock_free(sk);
			SSL_free(ssl);
			health_arm(c, hc->interval_ms);
			return;
		}
		h1_resp_init(c->resp, HEALTH_HEAD_MAX, false);
	}
	c->t = tstream_new(sk, ssl);
	if (!c->t) {
		free(c->resp);
		c->resp = NULL;
		health_arm(c, hc->interval_ms);
		return;
	}
	tstream_setcb(c->t, health_readable, NULL, health_event, c);
	tstream_set_read_max(c->t, HEALTH_READ_MAX);
	health_arm(c, hc->timeout_ms);
}

static void health_clear(struct health *h)
{
	for (size_t i = 0; i < h->nchecks; i++) {
		struct health_check *c = h->checks[i];
		event_free(c->timer);
		tstream_free(c->t);
		free(c->resp);
		free(c);
	}
	free(h->checks);
	h->checks = NULL;
	h->nchecks = 0;
	pool_table_unref(h->table);
	tlsconf_unref(h->tls);
	h->table = NULL;
	h->tls = NULL;
}

struct health *health_new(struct event_base *base)
{
	struct health *h = calloc(1, sizeof(*h));
	if (h)
		h->base = base;
	return h;
}

int health_set(struct health *h, struct pool_table *t, struct tlsconf *tls)
{
	health_clear(h);
	h->table = pool_table_ref(t);
	h->tls = tlsconf_ref(tls);
	const struct rules_config *cfg = pool_table_config(t);
	size_t n = 0;
	for (size_t p = 0; p < cfg->npools; p++)
		if (cfg->pools[p].health.type != RULES_HEALTH_NONE)
			n += cfg->pools[p].nservers;
	if (!(h->checks = calloc(n ? n : 1, sizeof(*h->checks))))
		return -1;
	for (size_t p = 0; p < cfg->npools; p++) {
		if (cfg->pools[p].health.type == RULES_HEALTH_NONE)
			continue;
		for (size_t s = 0; s < cfg->pools[p].nservers; s++) {
			struct health_check *c = calloc(1, sizeof(*c));
			if (!c || !(c->timer = evtimer_new(h->base, health_timer, c))) {
				free(c);
				return -1;
			}
			c->h = h;
			c->pool = p;
			c->server = s;
			h->checks[h->nchecks] = c;
			health_arm(c, (unsigned)(h->nchecks * HEALTH_STAGGER_MS % 1000));
			h->nchecks++;
		}
	}
	return 0;
}

void health_free(struct health *h)
{
	if (!h)
		return;
	health_clear(h);
	free(h);
}
