#include "io/tstream.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "io/guard.h"
#include "io/keep.h"
#include "io/sock.h"
#include "io/tls.h"

/* Ciphertext read ahead of the plaintext bound: a few records. */
#define TSTREAM_CIPHER_MAX (64 * 1024)

/* Streams without a socket that ended, kept per thread for the next ones (one
 * per HTTP/2 stream) with their buffers and event: allocating those afresh
 * cost about 2k instructions a stream. At most this many, some 700 bytes each,
 * as many as the sessions kept (http/spare.c), since each stream has both. */
#define TSTREAM_PEERS_KEPT 1024

struct tstream {
	struct sock *s;
	struct tls_stream *tls;         /* NULL: plain */
	struct evbuffer *in, *out;      /* TLS: plaintext buffers; plain: the sock's */
	struct event *kick;             /* runs pending work from the loop */
	tstream_data_fn on_readable, on_drained;
	tstream_event_fn on_event;
	void *arg;
	size_t read_max, low_mark;
	bool reading, ready, eof_sent, shut;
	bool sock_eof;                  /* the socket ended; with TLS, reported once nothing is left to decrypt */
	const struct tstream_peer_ops *peer_ops;        /* a stream without a socket: its peer */
	void *peer;
	bool peer_drained, peer_end;    /* the peer's news, for the loop to tell the owner */
	enum tstream_event peer_ev;
	struct guard guard;             /* callbacks running: tstream_free() waits for them */
	void *spare_next;               /* kept for the next stream without a socket (io/keep.h) */
	char error[200];
};

/* The thread's kept streams without a socket. Their event (memory of ours,
 * event_assign()) is not pending, so it is assigned again to the next
 * stream's base, and the thread's end frees them without their loop. */
static void tstream_peer_free(struct tstream *t)
{
	if (t->in)
		evbuffer_free(t->in);
	if (t->out)
		evbuffer_free(t->out);
	free(t->kick);
	free(t);
}

static void tstream_spare_free(void *obj)
{
	tstream_peer_free(obj);
}

static const struct keep_kind tstream_spare_kind = {
	.max = TSTREAM_PEERS_KEPT, .link = offsetof(struct tstream, spare_next), .free = tstream_spare_free,
};
static _Thread_local struct keep_list tstream_spares = { .kind = &tstream_spare_kind };

/* A stream without a socket ends: kept for the next one when the thread has room. */
static void tstream_peer_release(struct tstream *t)
{
	event_del(t->kick);
	evbuffer_drain(t->in, evbuffer_get_length(t->in));
	evbuffer_drain(t->out, evbuffer_get_length(t->out));
	if (!keep_give(&tstream_spares, t))
		tstream_peer_free(t);
}

static void tstream_release(struct tstream *t)
{
	if (t->peer_ops) {
		tstream_peer_release(t);
		return;
	}
	sock_free(t->s);
	if (t->tls) {
		tls_stream_free(t->tls);
		evbuffer_free(t->in);
		evbuffer_free(t->out);
	}
	if (t->kick)
		event_free(t->kick);
	free(t);
}

void tstream_free(struct tstream *t)
{
	if (!t)
		return;
	if (t->peer_ops && t->peer) {
		t->peer_ops->closed(t->peer);
		t->peer = NULL;
	}
	if (guard_free(&t->guard))
		tstream_release(t);
}

static void tstream_enter(struct tstream *t)
{
	guard_enter(&t->guard);
}

static bool tstream_leave(struct tstream *t)
{
	if (guard_leave(&t->guard)) {
		tstream_release(t);
		return false;
	}
	return !guard_freed(&t->guard);
}

static void tstream_report(struct tstream *t, enum tstream_event ev)
{
	if (ev != TSTREAM_READY) {
		if (t->eof_sent)
			return;
		t->eof_sent = true;
	}
	if (t->on_event && !guard_freed(&t->guard))
		t->on_event(t, ev, t->arg);
}

static void tstream_fail(struct tstream *t, const char *why)
{
	snprintf(t->error, sizeof(t->error), "%s", why);
	tstream_report(t, TSTREAM_ERROR);
}

static void tstream_sock_reading(struct tstream *t)
{
	bool room = evbuffer_get_length(t->in) < t->read_max;
	sock_read_enable(t->s, t->reading && room);
}

/* Moves ciphertext through the handshake or into plaintext; calls up. */
static void tstream_tls_pump(struct tstream *t)
{
	if (!t->ready) {
		enum tls_result r = tls_stream_handshake(t->tls);
		if (sock_flush(t->s) != 0) {
			tstream_fail(t, "connection reset during the TLS handshake");
			return;
		}
		if (r == TLS_AGAIN)
			return;
		if (r != TLS_DONE) {
			tstream_fail(t, r == TLS_CLOSED ? "the peer closed during the TLS handshake"
			                                : tls_stream_error(t->tls));
			return;
		}
		t->ready = true;
		tstream_report(t, TSTREAM_READY);
		if (guard_freed(&t->guard))
			return;
	}
	/* Decrypt until the owner's bound or the ciphertext runs out: records already
	 * read from the socket get no socket event of their own. */
	while (t->reading && evbuffer_get_length(t->in) < t->read_max) {
		size_t got = 0;
		enum tls_result r = tls_stream_read(t->tls, t->in, t->read_max - evbuffer_get_length(t->in), &got);
		/* Alerts and session tickets may have been queued. */
		if (sock_flush(t->s) != 0 && r != TLS_CLOSED) {
			tstream_fail(t, "connection reset");
			return;
		}
		if (got && t->on_readable)
			t->on_readable(t, t->arg);
		if (guard_freed(&t->guard))
			return;
		if (r == TLS_CLOSED) {
			tstream_report(t, TSTREAM_EOF);
			return;
		}
		if (r == TLS_FAIL) {
			tstream_fail(t, tls_stream_error(t->tls));
			return;
		}
		if (!got)
			break;
	}
	tstream_sock_reading(t);
}

static void tstream_on_readable(struct sock *s, void *arg)
{
	struct tstream *t = arg;
	(void)s;
	tstream_enter(t);
	if (t->tls)
		tstream_tls_pump(t);
	else if (t->on_readable)
		t->on_readable(t, t->arg);
	tstream_leave(t);
}

static void tstream_on_drained(struct sock *s, void *arg)
{
	struct tstream *t = arg;
	(void)s;
	tstream_enter(t);
	if (t->on_drained)
		t->on_drained(t, t->arg);
	tstream_leave(t);
}

static void tstream_begin(struct tstream *t)
{
	if (!t->tls) {
		t->ready = true;
		tstream_report(t, TSTREAM_READY);
		return;
	}
	tstream_tls_pump(t);
}

static void tstream_on_event(struct sock *s, enum sock_event ev, int err, void *arg)
{
	struct tstream *t = arg;
	(void)s;
	tstream_enter(t);
	if (ev == SOCK_CONNECTED) {
		tstream_begin(t);
	} else if (ev == SOCK_EOF) {
		if (t->tls) {
			/* Ciphertext already read still counts; a clean end needs close_notify. */
			/* Ciphertext not yet decrypted, or the rest of a record the owner's bound cut
			 * (which BoringSSL holds, the socket's input empty), comes before the end: the
			 * pump reports it once it has decrypted them (TLS_CLOSED). */
			t->sock_eof = true;
			tls_stream_set_eof(t->tls);
			tstream_tls_pump(t);
			if (!guard_freed(&t->guard) && !t->ready)
				tstream_fail(t, "the peer closed during the TLS handshake");
			else if (!guard_freed(&t->guard) && !tls_stream_has_input(t->tls))
				tstream_report(t, TSTREAM_EOF);
		} else {
			tstream_report(t, TSTREAM_EOF);
		}
	} else {
		snprintf(t->error, sizeof(t->error), "%s", strerror(err ? err : EIO));
		tstream_report(t, TSTREAM_ERROR);
	}
	tstream_leave(t);
}

/* A peer's news, told the owner from the loop: never inside the peer's own code. */
static void tstream_peer_kick(struct tstream *t)
{
	if (!t->ready) {
		t->ready = true;
		tstream_report(t, TSTREAM_READY);
		if (guard_freed(&t->guard))
			return;
	}
	if (t->peer_drained) {
		t->peer_drained = false;
		if (t->on_drained)
			t->on_drained(t, t->arg);
		if (guard_freed(&t->guard))
			return;
	}
	if (t->reading && evbuffer_get_length(t->in) > 0 && t->on_readable) {
		t->on_readable(t, t->arg);
		if (guard_freed(&t->guard))
			return;
	}
	/* An end comes after the input before it, as a socket's FIN does. */
	if (t->peer_end && (t->peer_ev == TSTREAM_ERROR || evbuffer_get_length(t->in) == 0 || t->reading))
		tstream_report(t, t->peer_ev);
}

static void tstream_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct tstream *t = arg;
	(void)fd;
	(void)what;
	tstream_enter(t);
	if (t->peer_ops)
		tstream_peer_kick(t);
	else if (!t->ready)
		tstream_begin(t);
	else if (t->tls)
		tstream_tls_pump(t);
	tstream_leave(t);
}

struct tstream *tstream_new(struct sock *s, SSL *ssl)
{
	struct tstream *t = calloc(1, sizeof(*t));
	if (!t)
		goto fail;
	t->s = s;
	t->read_max = SIZE_MAX;
	t->reading = true;
	t->kick = event_new(sock_base(s), -1, 0, tstream_on_kick, t);
	if (!t->kick)
		goto fail;
	if (ssl) {
		t->in = evbuffer_new();
		t->out = evbuffer_new();
		if (!t->in || !t->out)
			goto fail;
		t->tls = tls_stream_new(ssl, sock_input(s), sock_output(s));
		if (!t->tls) {
			ssl = NULL;     /* tls_stream_new freed it */
			goto fail;
		}
		sock_set_read_max(s, TSTREAM_CIPHER_MAX);
	} else {
		t->in = sock_input(s);
		t->out = sock_output(s);
	}
	sock_setcb(s, tstream_on_readable, tstream_on_drained, tstream_on_event, t);
	sock_read_enable(s, true);
	return t;
fail:
	if (t) {
		if (t->kick)
			event_free(t->kick);
		if (ssl && t->in != sock_input(s)) {
			if (t->in)
				evbuffer_free(t->in);
			if (t->out)
				evbuffer_free(t->out);
		}
		free(t);
	}
	if (ssl)
		SSL_free(ssl);
	sock_free(s);
	return NULL;
}

struct tstream *tstream_new_peer(struct event_base *base, const struct tstream_peer_ops *ops, void *peer)
{
	struct tstream *t = keep_take(&tstream_spares);
	if (t) {
		struct evbuffer *in = t->in, *out = t->out;
		struct event *kick = t->kick;
		memset(t, 0, sizeof(*t));
		t->in = in;
		t->out = out;
		t->kick = kick;
	} else if ((t = calloc(1, sizeof(*t)))) {
		t->in = evbuffer_new();
		t->out = evbuffer_new();
		t->kick = malloc(event_get_struct_event_size());
		if (!t->in || !t->out || !t->kick) {
			tstream_peer_free(t);
			return NULL;
		}
	} else {
		return NULL;
	}
	if (event_assign(t->kick, base, -1, 0, tstream_on_kick, t) != 0) {
		tstream_peer_free(t);
		return NULL;
	}
	t->peer_ops = ops;
	t->peer = peer;
	t->read_max = SIZE_MAX;
	t->reading = true;
	return t;
}

void tstream_peer_input(struct tstream *t)
{
	if (t->reading)
		event_active(t->kick, EV_TIMEOUT, 0);
}

void tstream_peer_taken(struct tstream *t)
{
	if (evbuffer_get_length(t->out) <= t->low_mark) {
		t->peer_drained = true;
		event_active(t->kick, EV_TIMEOUT, 0);
	}
}

void tstream_peer_end(struct tstream *t, enum tstream_event ev, const char *why)
{
	if (t->peer_end)
		return;
	t->peer_end = true;
	t->peer_ev = ev;
	if (why)
		snprintf(t->error, sizeof(t->error), "%s", why);
	event_active(t->kick, EV_TIMEOUT, 0);
}

void tstream_setcb(struct tstream *t, tstream_data_fn readable, tstream_data_fn drained, tstream_event_fn event,
                   void *arg)
{
	t->on_readable = readable;
	t->on_drained = drained;
	t->on_event = event;
	t->arg = arg;
}

void tstream_start(struct tstream *t)
{
	event_active(t->kick, EV_TIMEOUT, 0);
}

struct evbuffer *tstream_input(const struct tstream *t)
{
	return t->in;
}

struct evbuffer *tstream_output(const struct tstream *t)
{
	return t->out;
}

int tstream_flush(struct tstream *t)
{
	if (t->peer_ops) {
		if (!t->peer || (t->peer_end && t->peer_ev == TSTREAM_ERROR)) {
			if (!t->error[0])
				snprintf(t->error, sizeof(t->error), "stream reset");
			return -1;
		}
		if (evbuffer_get_length(t->out) > 0)
			t->peer_ops->output(t->peer);
		return 0;
	}
	if (t->tls && evbuffer_get_length(t->out) > 0 && tls_stream_write(t->tls, t->out) == TLS_FAIL) {
		snprintf(t->error, sizeof(t->error), "%s", tls_stream_error(t->tls));
		return -1;
	}
	if (sock_flush(t->s) != 0) {
		snprintf(t->error, sizeof(t->error), "%s", strerror(errno ? errno : EPIPE));
		return -1;
	}
	return 0;
}

size_t tstream_unsent(const struct tstream *t)
{
	if (t->peer_ops)
		return evbuffer_get_length(t->out);
	return evbuffer_get_length(sock_output(t->s)) + (t->tls ? evbuffer_get_length(t->out) : 0);
}

/* A peer without a socket: it says whether the client has it all; a stall is the
 * peer's to detect (HTTP/2: the zero-window timer), so this one only looks again. */
static enum sock_linger_state tstream_peer_linger(const struct tstream *t, struct sock_linger *l)
{
	bool broken = false;
	if (!t->peer)
		return SOCK_LINGER_BROKEN;
	if (t->peer_ops->delivered(t->peer, &broken) && evbuffer_get_length(t->out) == 0)
		return SOCK_LINGER_DONE;
	if (broken)
		return SOCK_LINGER_BROKEN;
	l->left = evbuffer_get_length(t->out);
	l->next_ms = 1000;
	return SOCK_LINGER_TAKING;
}

enum sock_linger_state tstream_linger_check(const struct tstream *t, struct sock_linger *l, unsigned stall_ms)
{
	if (t->peer_ops)
		return tstream_peer_linger(t, l);
	return sock_linger_check(l, t->s, t->tls ? evbuffer_get_length(t->out) : 0, stall_ms);
}

/* Records already read but not decrypted, the rest of one the owner's bound cut, and
 * the socket's end behind them get no socket event of their own. */
static void tstream_kick_pending(struct tstream *t)
{
	if (t->tls && t->reading && t->ready && evbuffer_get_length(t->in) < t->read_max &&
	    (tls_stream_has_input(t->tls) || (t->sock_eof && !t->eof_sent)))
		event_active(t->kick, EV_TIMEOUT, 0);
}

void tstream_read_enable(struct tstream *t, bool on)
{
	t->reading = on;
	if (t->peer_ops) {
		if (on && (evbuffer_get_length(t->in) > 0 || t->peer_end))
			event_active(t->kick, EV_TIMEOUT, 0);
		return;
	}
	if (!t->tls) {
		sock_read_enable(t->s, on);
		return;
	}
	tstream_sock_reading(t);
	tstream_kick_pending(t);
}

void tstream_set_read_max(struct tstream *t, size_t max)
{
	t->read_max = max;
	if (t->peer_ops)
		return;
	if (!t->tls) {
		sock_set_read_max(t->s, max);
		return;
	}
	tstream_sock_reading(t);
	tstream_kick_pending(t);
}

void tstream_set_low_mark(struct tstream *t, size_t low)
{
	t->low_mark = low;
	if (!t->peer_ops)
		sock_set_low_mark(t->s, low);
}

void tstream_shutdown(struct tstream *t)
{
	if (t->shut)
		return;
	t->shut = true;
	if (t->peer_ops) {
		if (t->peer)
			t->peer_ops->shutdown(t->peer);
		return;
	}
	if (t->tls && t->ready) {
		tstream_flush(t);
		tls_stream_close_notify(t->tls);
	}
	sock_shutdown_write(t->s);
	sock_flush(t->s);
}

SSL *tstream_ssl(const struct tstream *t)
{
	return t->tls ? tls_stream_ssl(t->tls) : NULL;
}

struct sock *tstream_sock(const struct tstream *t)
{
	return t->s;
}

const char *tstream_error(const struct tstream *t)
{
	return t->error[0] ? t->error : "no error";
}
