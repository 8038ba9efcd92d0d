#include "io/sock.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/guard.h"
#include "io/evmem.h"
#include "io/keep.h"

/* A read reserves room in the input, which libevent allocates as a chain of its
 * header plus the room, rounded up to a power of two: SOCK_READ_CHUNK of room is a
 * 128 KiB malloc, too much for each 1 KiB request. Small messages get a 4 KiB
 * chain; a read that fills it goes back to SOCK_READ_CHUNK, which bulk relays keep
 * (their chains fill over several reads). */
#define SOCK_READ_SMALL (4096 - 64)

/* A small read into an empty input goes into a 4 KiB block lent to the input by
 * reference (evbuffer_add_reference) and given back once the input let go of it.
 * The blocks are io/evmem's, kept per thread with libevent's own chains of that
 * size: a 4 KiB chain malloc'ed and freed from glibc's sorted bins (its per-thread
 * cache ends at 1 KiB) cost about 750 instructions a message both ways, the
 * reference's small header from that cache a tenth of it. */
void *sock_block_alloc(void)
{
	return evmem_malloc(SOCK_BLOCK);
}

void sock_block_free(void *block)
{
	evmem_free_sized(block, SOCK_BLOCK);
}

/* evbuffer_add_reference()'s cleanup: the block goes back to this thread's list. */
static void sock_block_put(const void *data, size_t len, void *unused)
{
	(void)len;
	(void)unused;
	sock_block_free((void *)data);
}

int sock_block_lend(struct evbuffer *buf, void *block, size_t len)
{
	if (evbuffer_add_reference(buf, block, len, sock_block_put, NULL) == 0)
		return 0;
	sock_block_free(block);
	return -1;
}

struct sock {
	evutil_socket_t fd;
	struct event rev, wev;          /* in the struct, not two allocations per socket */
	struct evbuffer *in, *out;
	sock_data_fn on_readable, on_drained;
	sock_event_fn on_event;
	void *arg;
	size_t read_max, low_mark;
	size_t read_size;       /* the next read's room: SOCK_READ_SMALL or SOCK_READ_CHUNK */
	bool reading;           /* the owner wants input */
	bool rev_armed;         /* the read event is in the loop (it outlives the wish to read) */
	bool maybe_unread;      /* the kernel may hold bytes no edge will announce again */
	bool peer_shut;         /* the peer's FIN is in the kernel (EPOLLRDHUP): read up to it */
	bool wev_armed;
	bool connecting, eof, shut_pending, shut_done, broken;
	struct guard guard;     /* callbacks running: sock_free() waits for them */
	void *next_kept;        /* in this thread's list of released socks (io/keep.h) */
};

/* Released socks are kept per thread, their two evbuffers emptied but not freed, for
 * the next connection: a passthrough connection opens and closes two sockets, and the
 * socket, its buffers and their frees were ~3,000 instructions of its ~27,000. */
#define SOCK_KEPT 128

static void sock_kept_free(void *obj)
{
	struct sock *s = obj;
	evbuffer_free(s->in);
	evbuffer_free(s->out);
	free(s);
}

static const struct keep_kind sock_kind = {
	.max = SOCK_KEPT, .link = offsetof(struct sock, next_kept), .free = sock_kept_free,
};
static _Thread_local struct keep_list sock_kept = { .kind = &sock_kind };

/* A kept sock, zeroed but for its empty buffers, or NULL. */
static struct sock *sock_take_kept(void)
{
	struct sock *s = keep_take(&sock_kept);
	if (!s)
		return NULL;
	struct evbuffer *in = s->in, *out = s->out;
	memset(s, 0, sizeof(*s));
	s->in = in;
	s->out = out;
	return s;
}

static bool sock_wants_read(const struct sock *s)
{
	return s->reading && !s->eof && !s->connecting && !s->broken && evbuffer_get_length(s->in) < s->read_max;
}

/* Arms the read event when reading is wanted. Events are edge-triggered, as in
 * nginx and HAProxy: a level-triggered descriptor goes back on epoll's ready list
 * after every report and is polled again at the next wait, which showed as 0.2 us
 * per request. An edge is announced once, so bytes left in the kernel when it came
 * (reading paused, or the owner's bound reached) are read on resuming, from the
 * loop. Reading that stops leaves the event armed: an owner that pauses and
 * resumes within one callback (an HTTP request handed to a kept server
 * connection) then costs no epoll_ctl at all. */
static void sock_update_read(struct sock *s)
{
	if (!sock_wants_read(s))
		return;
	if (!s->rev_armed) {
		event_add(&s->rev, NULL);       /* epoll reports bytes already there when armed */
		s->rev_armed = true;
		s->maybe_unread = false;
	} else if (s->maybe_unread) {
		s->maybe_unread = false;
		event_active(&s->rev, EV_READ, 1);
	}
}

static void sock_set_write(struct sock *s, bool want)
{
	if (want == s->wev_armed)
		return;
	if (want)
		event_add(&s->wev, NULL);
	else
		event_del(&s->wev);
	s->wev_armed = want;
}

static void sock_release(struct sock *s)
{
	event_del(&s->rev);
	event_del(&s->wev);
	if (s->fd >= 0)
		evutil_closesocket(s->fd);
	evbuffer_drain(s->in, evbuffer_get_length(s->in));
	evbuffer_drain(s->out, evbuffer_get_length(s->out));
	if (!keep_give(&sock_kept, s))
		sock_kept_free(s);
}

void sock_free(struct sock *s)
{
	if (!s)
		return;
	if (!guard_free(&s->guard)) {
		event_del(&s->rev);
		event_del(&s->wev);
		return;
	}
	sock_release(s);
}

/* Brackets callbacks into the owner, who may free the sock inside them. */
static void sock_enter(struct sock *s)
{
	guard_enter(&s->guard);
}

/* Returns false when the sock was freed inside the callbacks. */
static bool sock_leave(struct sock *s)
{
	if (guard_leave(&s->guard)) {
		sock_release(s);
		return false;
	}
	return !guard_freed(&s->guard);
}

static void sock_report(struct sock *s, enum sock_event ev, int err)
{
	if (s->on_event)
		s->on_event(s, ev, err, s->arg);
}

static void sock_do_shutdown(struct sock *s)
{
	if (s->shut_pending && !s->shut_done && evbuffer_get_length(s->out) == 0) {
		shutdown(s->fd, SHUT_WR);
		s->shut_done = true;
	}
}

/* A write's pieces: enough for a relay's chains of 4 KiB to 128 KiB in one call. */
#define SOCK_WRITE_IOV 64

/* send() for one piece, sendmsg() for several: socket calls, not writev()/readv(),
 * which pass through the file layer (position lock, permission and fsnotify hooks)
 * and cost about 0.5 us more per request in scenario 4, as nginx and HAProxy avoid. */
static ssize_t sock_send(struct sock *s, size_t *tried)
{
	struct evbuffer_iovec v[SOCK_WRITE_IOV];
	int nv = evbuffer_peek(s->out, -1, NULL, v, SOCK_WRITE_IOV);
	if (nv > SOCK_WRITE_IOV)
		nv = SOCK_WRITE_IOV;
	if (nv == 1) {
		*tried = v[0].iov_len;
		return send(s->fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL);
	}
	struct iovec io[SOCK_WRITE_IOV];
	*tried = 0;
	for (int i = 0; i < nv; i++) {
		io[i].iov_base = v[i].iov_base;
		io[i].iov_len = v[i].iov_len;
		*tried += v[i].iov_len;
	}
	struct msghdr msg = { .msg_iov = io, .msg_iovlen = (size_t)nv };
	return sendmsg(s->fd, &msg, MSG_NOSIGNAL);
}

/* Writes until the output is empty or the kernel says EAGAIN. */
static int sock_write_now(struct sock *s)
{
	while (evbuffer_get_length(s->out) > 0) {
		size_t tried;
		ssize_t n = sock_send(s, &tried);
		if (n > 0) {
			evbuffer_drain(s->out, (size_t)n);
			if ((size_t)n < tried)
				break;  /* the kernel took what it had room for; don't pay for an EAGAIN */
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		s->broken = true;
		return -1;
	}
	sock_set_write(s, evbuffer_get_length(s->out) > 0);
	sock_do_shutdown(s);
	return 0;
}

/* One read into the input: into a lent block when messages are small and the input
 * is empty (as before each request and each response), else into room reserved at
 * its end. *want: the room offered. Returns recv()'s result; ENOMEM when no room. */
static ssize_t sock_recv(struct sock *s, evutil_socket_t fd, size_t *want)
{
	if (s->read_size == SOCK_READ_SMALL && evbuffer_get_length(s->in) == 0) {
		char *b = sock_block_alloc();
		if (!b) {
			errno = ENOMEM;
			return -1;
		}
		*want = SOCK_BLOCK;
		ssize_t n = recv(fd, b, SOCK_BLOCK, 0);
		if (n <= 0) {
			int e = errno;
			sock_block_free(b);
			errno = e;
		} else if (sock_block_lend(s->in, b, (size_t)n) != 0) {
			errno = ENOMEM;
			return -1;
		}
		return n;
	}
	struct evbuffer_iovec v[2];
	*want = s->read_size;
	int nv = evbuffer_reserve_space(s->in, (ev_ssize_t)*want, v, 2);
	if (nv < 1) {
		errno = ENOMEM;
		return -1;
	}
	ssize_t n;
	if (nv == 1) {
		n = recv(fd, v[0].iov_base, v[0].iov_len, 0);
	} else {
		struct iovec io[2];
		for (int i = 0; i < nv; i++) {
			io[i].iov_base = v[i].iov_base;
			io[i].iov_len = v[i].iov_len;
		}
		struct msghdr msg = { .msg_iov = io, .msg_iovlen = (size_t)nv };
		n = recvmsg(fd, &msg, 0);
	}
	int e = errno;
	size_t left = n > 0 ? (size_t)n : 0;
	for (int i = 0; i < nv; i++) {
		size_t take = left < v[i].iov_len ? left : v[i].iov_len;
		v[i].iov_len = take;
		left -= take;
	}
	evbuffer_commit_space(s->in, v, nv);
	errno = e;
	return n;
}

static void sock_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct sock *s = arg;
	size_t got = 0;
	int err = 0;
	bool eof = false;
	/* The FIN's edge may come with the last bytes: after it no edge comes again, so a
	 * short read no longer means there is nothing more to see (see below). */
	if (what & EV_CLOSED)
		s->peer_shut = true;
	if (!sock_wants_read(s)) {
		/* Paused since the event was armed: the bytes stay in the kernel until reading resumes. */
		s->maybe_unread = !s->eof && !s->broken;
		return;
	}
	/* Drain what the kernel holds, within the owner's bound, before calling up. */
	s->maybe_unread = true;         /* unless a read finds the kernel empty */
	bool at_bound;                  /* the loop ended at the bound, not at the kernel's end */
	while (!(at_bound = evbuffer_get_length(s->in) >= s->read_max)) {
		size_t want;
		ssize_t n = sock_recv(s, fd, &want);
		if (n <= 0) {
			if (n == 0)
				eof = true;
			else if (errno == EAGAIN || errno == EWOULDBLOCK)
				s->maybe_unread = false;
			else if (errno != EINTR)
				err = errno;
			break;
		}
		got += (size_t)n;
		if ((size_t)n < want) {
			if ((size_t)n < SOCK_READ_SMALL / 2)
				s->read_size = SOCK_READ_SMALL;
			/* The kernel had no more; don't pay for an EAGAIN. A FIN behind these bytes is
			 * read on a pass of its own, once the owner has seen them (and perhaps paused,
			 * as HTTP does while it finds a server: its client's end must wait for that).
			 * Once our side is shut, only the peer's end is awaited, so the read goes on
			 * to the EAGAIN, the end or the error: a reset that came with these bytes has
			 * no edge of its own (epoll's EPOLLERR|EPOLLHUP reaches us as a plain read,
			 * libevent drops EV_CLOSED with it), and the connection would stay open until
			 * idle_timeout (2.5-3% of scenario 3b's, whose clients reset after their
			 * close_notify). */
			if (s->shut_done)
				continue;
			s->maybe_unread = s->peer_shut;
			break;
		}
		s->read_size = SOCK_READ_CHUNK;
	}
	if (eof)
		s->eof = true;
	if (err)
		s->broken = true;
	if (eof || err) {
		event_del(&s->rev);     /* for good */
		s->rev_armed = false;
		s->maybe_unread = false;
	}

	sock_enter(s);
	if (got && s->on_readable)
		s->on_readable(s, s->arg);
	if (!guard_freed(&s->guard) && (eof || err))
		sock_report(s, err ? SOCK_ERROR : SOCK_EOF, err);
	/* The owner usually took the input: reading may go on even if the bound stopped it above. */
	if (!sock_leave(s))
		return;
	if (at_bound && s->rev_armed && sock_wants_read(s)) {
		/* What the bound left in the kernel is read after the loop's next poll, not in this
		 * pass: a peer that sends as fast as we read would otherwise keep the pass going,
		 * and every other connection of the worker and its timers waiting, for as long as
		 * it sends. Armed again, the edge-triggered event has epoll report those bytes. */
		event_del(&s->rev);
		s->rev_armed = false;
	}
	sock_update_read(s);
}

static void sock_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct sock *s = arg;
	if (s->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		s->connecting = false;
		sock_set_write(s, false);
		sock_enter(s);
		if (err) {
			s->broken = true;
			sock_report(s, SOCK_ERROR, err);
		} else {
			sock_update_read(s);
			sock_report(s, SOCK_CONNECTED, 0);
		}
		if (sock_leave(s) && !err)
			sock_flush(s);
		return;
	}
	size_t before = evbuffer_get_length(s->out);
	int rc = sock_write_now(s);
	sock_enter(s);
	if (rc != 0)
		sock_report(s, SOCK_ERROR, errno);
	else if (before > s->low_mark && evbuffer_get_length(s->out) <= s->low_mark && s->on_drained)
		s->on_drained(s, s->arg);
	sock_leave(s);
}

static struct sock *sock_alloc(struct event_base *base, evutil_socket_t fd)
{
	struct sock *s = sock_take_kept();
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		s->in = evbuffer_new();
		s->out = evbuffer_new();
		if (!s->in || !s->out) {
			if (s->in)
				evbuffer_free(s->in);
			if (s->out)
				evbuffer_free(s->out);
			free(s);
			return NULL;
		}
	}
	int one = 1;
	/* Heads, small bodies and TLS records go out as written: Nagle's wait would meet the
	 * peer's delayed ACK and cost 40 ms per exchange. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->fd = fd;
	s->read_max = SIZE_MAX;
	s->read_size = SOCK_READ_SMALL;
	/* event_assign() checks only its arguments, which are right here. */
	(void)event_assign(&s->rev, base, fd, EV_READ | EV_CLOSED | EV_PERSIST | EV_ET, sock_on_read, s);
	(void)event_assign(&s->wev, base, fd, EV_WRITE | EV_PERSIST | EV_ET, sock_on_write, s);
	return s;
}

struct sock *sock_new(struct event_base *base, evutil_socket_t fd)
{
	return sock_alloc(base, fd);
}

struct sock *sock_connect(struct event_base *base, const struct sockaddr *sa, socklen_t len,
                          const struct sockaddr *src, socklen_t srclen)
{
	evutil_socket_t fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (srclen) {
		int one = 1;
		/* Many connections from one source address: the port is picked at connect time, per destination. */
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, src, srclen) != 0) {
			int err = errno;
			evutil_closesocket(fd);
			errno = err;
			return NULL;
		}
	}
	if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
		int err = errno;
		evutil_closesocket(fd);
		errno = err;
		return NULL;
	}
	struct sock *s = sock_alloc(base, fd);
	if (!s) {
		evutil_closesocket(fd);
		errno = ENOMEM;
		return NULL;
	}
	/* Even an immediate success is reported from the loop, so the owner's
	 * callbacks are always in place first. */
	s->connecting = true;
	sock_set_write(s, true);
	return s;
}

void sock_setcb(struct sock *s, sock_data_fn readable, sock_data_fn drained, sock_event_fn event, void *arg)
{
	s->on_readable = readable;
	s->on_drained = drained;
	s->on_event = event;
	s->arg = arg;
}

struct evbuffer *sock_input(const struct sock *s)
{
	return s->in;
}

struct evbuffer *sock_output(const struct sock *s)
{
	return s->out;
}

evutil_socket_t sock_fd(const struct sock *s)
{
	return s->fd;
}

struct event_base *sock_base(const struct sock *s)
{
	return event_get_base(&s->rev);
}

void sock_read_enable(struct sock *s, bool on)
{
	s->reading = on;
	sock_update_read(s);
}

void sock_set_read_max(struct sock *s, size_t read_max)
{
	s->read_max = read_max;
	sock_update_read(s);
}

void sock_set_low_mark(struct sock *s, size_t low)
{
	s->low_mark = low;
}

int sock_flush(struct sock *s)
{
	if (s->connecting)
		return 0;
	if (s->broken)
		return -1;
	if (s->wev_armed)
		return 0;       /* the kernel is full; the write event will carry on */
	return sock_write_now(s);
}

void sock_shutdown_write(struct sock *s)
{
	s->shut_pending = true;
	if (!s->connecting)
		sock_do_shutdown(s);
}

size_t sock_kernel_unsent(const struct sock *s)
{
	int n = 0;
	if (s->fd < 0 || ioctl(s->fd, SIOCOUTQ, &n) != 0 || n < 0)
		return 0;
	return (size_t)n;
}

/* The first look comes soon (on loopback the last ACK is a few microseconds away),
 * later ones less often: a slow reader costs a few timer wakes a second at most. */
#define SOCK_LINGER_FIRST_MS 2
#define SOCK_LINGER_MAX_MS 250

static uint64_t sock_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sock_linger_start(struct sock_linger *l)
{
	uint64_t now_ms = sock_now_ms();
	l->left = UINT64_MAX;
	l->moved_at = now_ms;
	l->next_ms = SOCK_LINGER_FIRST_MS;
}

enum sock_linger_state sock_linger_check(struct sock_linger *l, const struct sock *s, size_t above, unsigned stall_ms)
{
	uint64_t now_ms = sock_now_ms();
	/* After a reset the count still says what was never acknowledged; only the error tells
	 * a reset from the end of the bytes. */
	uint64_t left = (uint64_t)above + evbuffer_get_length(s->out) + sock_kernel_unsent(s);
	if (left < l->left)
		l->moved_at = now_ms;
	l->left = left;
	int err = 0;
	socklen_t len = sizeof(err);
	if (s->broken || getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)
		return SOCK_LINGER_BROKEN;
	if (left == 0)
		return SOCK_LINGER_DONE;
	if (now_ms - l->moved_at >= stall_ms)
		return SOCK_LINGER_STALLED;
	l->next_ms = l->next_ms * 2 < SOCK_LINGER_MAX_MS ? l->next_ms * 2 : SOCK_LINGER_MAX_MS;
	unsigned stall_in = (unsigned)(l->moved_at + stall_ms - now_ms);
	if (l->next_ms > stall_in)
		l->next_ms = stall_in;
	return SOCK_LINGER_TAKING;
}
