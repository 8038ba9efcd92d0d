#include "io/relay.h"

#include <event2/buffer.h>

#include "io/tstream.h"

/* Passthrough runs on sockets, a tunnel on streams: a branch, not a call through a table. */
static struct evbuffer *relay_input(const struct relay_end *e)
{
	return e->ts ? tstream_input(e->ts) : sock_input(e->sock);
}

static struct evbuffer *relay_output(const struct relay_end *e)
{
	return e->ts ? tstream_output(e->ts) : sock_output(e->sock);
}

static size_t relay_unsent(const struct relay_end *e)
{
	return e->ts ? tstream_unsent(e->ts) : evbuffer_get_length(sock_output(e->sock));
}

static int relay_flush(struct relay_end *e)
{
	return e->ts ? tstream_flush(e->ts) : sock_flush(e->sock);
}

static void relay_read_enable(struct relay_end *e, bool on)
{
	if (e->ts)
		tstream_read_enable(e->ts, on);
	else
		sock_read_enable(e->sock, on);
}

static void relay_set_low_mark(struct relay_end *e, size_t low)
{
	if (e->ts)
		tstream_set_low_mark(e->ts, low);
	else
		sock_set_low_mark(e->sock, low);
}

static void relay_shutdown(struct relay_end *e)
{
	if (e->ts)
		tstream_shutdown(e->ts);
	else
		sock_shutdown_write(e->sock);
}

static enum sock_linger_state relay_linger_check(struct relay_end *e, unsigned stall_ms)
{
	return e->ts ? tstream_linger_check(e->ts, &e->linger, stall_ms)
	             : sock_linger_check(&e->linger, e->sock, 0, stall_ms);
}

static struct relay_end *relay_peer(struct relay *r, const struct relay_end *e)
{
	return e == &r->cli ? &r->srv : &r->cli;
}

void relay_start(struct relay *r)
{
	if (!r->srv.eof)
		relay_read_enable(&r->srv, true);
	if (!r->cli.eof)
		relay_read_enable(&r->cli, true);
}

bool relay_move(struct relay *r, struct relay_end *from, size_t *moved, unsigned *watch_ms, enum outcome *end)
{
	struct relay_end *to = relay_peer(r, from);
	struct evbuffer *in = relay_input(from);
	struct evbuffer *out = relay_output(to);
	size_t n = evbuffer_get_length(in);
	*moved = n;
	*from->count += n;
	evbuffer_add_buffer(out, in);   /* moves chains; no byte is copied */
	/* An end that ended before the relay began (a client's FIN behind a whole hello) is followed by it. */
	if (from->eof)
		relay_shutdown(to);
	if (relay_flush(to) != 0) {
		*end = relay_reset(r, to);
		return false;
	}
	*watch_ms = 0;
	if (relay_unsent(to) >= r->max) {
		relay_read_enable(from, false);
		relay_set_low_mark(to, r->max / 2);
		if (!to->waited) {
			to->waited = true;
			sock_linger_start(&to->linger);
			*watch_ms = to->linger.next_ms;
		}
	}
	return true;
}

void relay_drained(struct relay *r, struct relay_end *e)
{
	struct relay_end *peer = relay_peer(r, e);
	e->waited = false;
	e->linger.left = 0;
	relay_set_low_mark(e, 0);
	if (!peer->eof)
		relay_read_enable(peer, true);
}

bool relay_ended(struct relay *r, struct relay_end *e)
{
	e->eof = true;
	relay_shutdown(relay_peer(r, e));
	if (!r->cli.eof || !r->srv.eof)
		return false;
	r->closing = true;
	r->cli.waited = r->srv.waited = false;
	relay_set_low_mark(&r->cli, 0);
	relay_set_low_mark(&r->srv, 0);
	sock_linger_start(&r->cli.linger);
	sock_linger_start(&r->srv.linger);
	return true;
}

enum outcome relay_reset(const struct relay *r, const struct relay_end *e)
{
	if (r->cli.eof || r->srv.eof)
		return OUTCOME_OK;
	return e == &r->cli ? OUTCOME_CLIENT_RESET : OUTCOME_SERVER_RESET;
}

/* A reset with nothing of ours still waiting for that end is its own end; one with
 * bytes we still hold for it cut them. */
static enum sock_linger_state relay_linger_side(struct relay_end *e, unsigned stall_ms)
{
	enum sock_linger_state st = relay_linger_check(e, stall_ms);
	if (st == SOCK_LINGER_BROKEN && relay_unsent(e) == 0) {
		e->linger.left = 0;
		return SOCK_LINGER_DONE;
	}
	return st;
}

static bool relay_stopped(enum sock_linger_state st)
{
	return st == SOCK_LINGER_BROKEN || st == SOCK_LINGER_STALLED;
}

/* An end that broke or stopped taking bytes ends the relay with that end's word. */
static enum outcome relay_stop_outcome(bool client, enum sock_linger_state st)
{
	if (st == SOCK_LINGER_BROKEN)
		return client ? OUTCOME_CLIENT_RESET : OUTCOME_SERVER_RESET;
	return client ? OUTCOME_CLIENT_STALLED : OUTCOME_SERVER_STALLED;
}

/* What an end did not take is not counted as moved to it. */
static void relay_uncount(struct relay *r)
{
	uint64_t cli_left = r->cli.linger.left, srv_left = r->srv.linger.left;
	*r->srv.count -= cli_left < *r->srv.count ? cli_left : *r->srv.count;
	*r->cli.count -= srv_left < *r->cli.count ? srv_left : *r->cli.count;
}

bool relay_linger(struct relay *r, unsigned *next_ms, enum outcome *end)
{
	enum sock_linger_state cs = relay_linger_side(&r->cli, r->stall_ms);
	enum sock_linger_state ss = relay_linger_side(&r->srv, r->stall_ms);
	if (relay_stopped(cs) || relay_stopped(ss)) {
		*end = relay_stopped(cs) ? relay_stop_outcome(true, cs) : relay_stop_outcome(false, ss);
		relay_uncount(r);
		return false;
	}
	if (cs == SOCK_LINGER_DONE && ss == SOCK_LINGER_DONE) {
		*end = OUTCOME_OK;
		return false;
	}
	unsigned next = cs == SOCK_LINGER_TAKING ? r->cli.linger.next_ms : r->srv.linger.next_ms;
	if (ss == SOCK_LINGER_TAKING && r->srv.linger.next_ms < next)
		next = r->srv.linger.next_ms;
	*next_ms = next;
	return true;
}

bool relay_watch(struct relay *r, unsigned *watch_ms, enum outcome *end)
{
	*watch_ms = 0;
	if (r->closing)
		return true;
	for (struct relay_end *e = &r->cli; e; e = e == &r->cli ? &r->srv : NULL) {
		if (!e->waited)
			continue;
		enum sock_linger_state st = relay_linger_check(e, r->stall_ms);
		if (relay_stopped(st)) {
			*end = st == SOCK_LINGER_BROKEN ? relay_reset(r, e) : relay_stop_outcome(e == &r->cli, st);
			relay_peer(r, e)->linger.left = 0;
			relay_uncount(r);
			return false;
		}
		if (st == SOCK_LINGER_TAKING && (!*watch_ms || e->linger.next_ms < *watch_ms))
			*watch_ms = e->linger.next_ms;
	}
	return true;
}

void relay_cut(struct relay *r)
{
	if (r->closing) {
		(void)relay_linger_check(&r->cli, r->stall_ms);
		(void)relay_linger_check(&r->srv, r->stall_ms);
		relay_uncount(r);
	}
}
