/*
 * sock.h - a non-blocking socket with an input and an output evbuffer: our
 * replacement for libevent's bufferevent on the data path.
 *
 * Why not bufferevents: libevent 2.1 reads at most 4 KiB per call (after an
 * FIONREAD ioctl) and adds and removes the write event around every write, so
 * bulk relays spend their time in system calls. A sock reads up to
 * SOCK_READ_CHUNK at once (4 KiB while messages are small), writes as soon as it
 * is asked to, and arms the write event only when the kernel's buffer is full.
 *
 * Callbacks may free the sock (sock_free); the sock notices and releases its
 * memory once the callback returns.
 */
#ifndef ONEGATE_SOCK_H
#define ONEGATE_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/util.h>

struct event_base;
struct evbuffer;
struct sock;

#define SOCK_READ_CHUNK (64 * 1024)

enum sock_event { SOCK_CONNECTED, SOCK_EOF, SOCK_ERROR };

typedef void (*sock_data_fn)(struct sock *s, void *arg);
typedef void (*sock_event_fn)(struct sock *s, enum sock_event ev, int err, void *arg);

/* Wraps fd, which must already be non-blocking (evconnlistener's are); the sock owns and closes it. */
struct sock *sock_new(struct event_base *base, evutil_socket_t fd);
/* Starts a non-blocking connect, from src when given (srclen 0: the kernel's
 * choice); SOCK_CONNECTED or SOCK_ERROR arrives later. Returns NULL with errno
 * when the connect fails at once (no route, source address not ours). */
struct sock *sock_connect(struct event_base *base, const struct sockaddr *sa, socklen_t len,
                          const struct sockaddr *src, socklen_t srclen);
void sock_free(struct sock *s);

/* readable: new bytes are in the input. drained: the output fell to the low mark
 * after having been above it. event: connected, EOF (reading stops) or error. */
void sock_setcb(struct sock *s, sock_data_fn readable, sock_data_fn drained, sock_event_fn event, void *arg);
struct evbuffer *sock_input(const struct sock *s);
struct evbuffer *sock_output(const struct sock *s);
evutil_socket_t sock_fd(const struct sock *s);
struct event_base *sock_base(const struct sock *s);

/* Reading stops while disabled or while the input holds read_max bytes or more. */
void sock_read_enable(struct sock *s, bool on);
void sock_set_read_max(struct sock *s, size_t read_max);
/* The drained callback fires when the output falls to this many bytes. */
void sock_set_low_mark(struct sock *s, size_t low);
/* Writes what the output holds now, as far as the kernel takes it; the rest
 * goes when the socket is writable. Returns -1 when the socket is broken: the
 * caller closes it. */
int sock_flush(struct sock *s);
/* Half-close: sends FIN once the output is empty (now, or when it drains). */
void sock_shutdown_write(struct sock *s);
/* Bytes the kernel still holds for the peer: not sent yet, or sent and not yet
 * acknowledged; a FIN counts one (SIOCOUTQ). What a close would leave to the
 * kernel alone, for a peer that may never take it. */
size_t sock_kernel_unsent(const struct sock *s);

/* Blocks of SOCK_BLOCK bytes from a per-thread free list, which small reads fill:
 * for memory taken and given back at every message, which malloc serves slowly at
 * this size. A block may be given back on any thread; NULL when memory is short. */
#define SOCK_BLOCK 4096
void *sock_block_alloc(void);
void sock_block_free(void *block);
/* Appends the block's first len bytes to buf by reference, without a copy; the
 * block goes back to the list once buf lets go of them. Returns -1 (the block
 * freed) when memory is short. */
int sock_block_lend(struct evbuffer *buf, void *block, size_t len);

/* The last bytes of a closing connection. A fixed time to take them cuts a slow
 * reader of a large answer short (an 8 MB answer at 530 KB/s lost 3 MB), so the
 * peer keeps its time for as long as it keeps taking bytes: what its owner still
 * holds above the sock (TLS plaintext), the sock's output and the kernel's queue
 * together keep falling. Only a peer they stopped falling for stall_ms is cut. */
struct sock_linger {
	uint64_t left;          /* bytes not taken at the last check */
	uint64_t moved_at;      /* monotonic ms when they last fell */
	unsigned next_ms;       /* when to look again: the kernel's queue has no event */
};

enum sock_linger_state {
	SOCK_LINGER_DONE,       /* the peer has everything, FIN included */
	SOCK_LINGER_TAKING,     /* still taking: look again in next_ms */
	SOCK_LINGER_STALLED,    /* nothing taken for stall_ms */
	SOCK_LINGER_BROKEN,     /* the peer reset the connection: what was left is lost */
};

void sock_linger_start(struct sock_linger *l);
/* above: bytes the owner holds for this sock beyond its output. l->left says
 * how many the peer has not taken (as of the last check that could count them). */
enum sock_linger_state sock_linger_check(struct sock_linger *l, const struct sock *s, size_t above, unsigned stall_ms);

#endif
