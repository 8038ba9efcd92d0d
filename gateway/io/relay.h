/*
 * relay.h - bytes both ways between two ends that have stopped speaking a
 * protocol: a passthrough connection (conn.c, on sockets) and an HTTP
 * Upgrade tunnel (http/body.c, on streams that may be TLS). One set of rules:
 *
 * - back-pressure: once max bytes wait for one end, the other is not read
 *   until that end has taken half;
 * - end of stream: an end that has said all it will has the other end's
 *   write side shut after what it sent; when both have, the relay closes;
 * - a reset after either end's EOF ends an exchange that completed (TLS
 *   peers often reset rather than close); only an earlier one cuts it short;
 * - closing lasts until each end has taken what the other sent, the kernel's
 *   queue included (sock_linger_check()), or until one stops taking it for
 *   stall_ms, or resets with bytes of ours still waiting for it;
 * - an open relay waiting for a slow end (back-pressure) looks at that end
 *   as closing does: it keeps its time while it takes bytes and is cut once
 *   it took none for stall_ms, however long the owner's idle time.
 *
 * The relay is a value inside its owner's struct (no allocation) and owns
 * nothing: the owner keeps its ends, its timer and its log line, and calls in
 * from its callbacks. Functions that return false mean the relay is over: the
 * owner frees itself with *end as the outcome.
 */
#ifndef ONEGATE_RELAY_H
#define ONEGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/outcome.h"
#include "io/sock.h"

struct tstream;

struct relay_end {
	struct sock *sock;              /* passthrough: the socket; NULL with ts */
	struct tstream *ts;             /* a tunnel: the stream; NULL with sock */
	uint64_t *count;                /* the owner's count of bytes taken from this end */
	bool eof;                       /* it has said all it will */
	bool waited;                    /* the other end is not read until this one takes half */
	struct sock_linger linger;      /* closing, or waited: what it has still to take */
};

struct relay {
	struct relay_end cli, srv;
	size_t max;                     /* bytes queued towards one end before the other is not read */
	unsigned stall_ms;              /* send_timeout: how long an end may take nothing while closing */
	bool closing;                   /* both ended: their last bytes are leaving */
};

/* Both ends are read from now on (an end already at its EOF excepted). */
void relay_start(struct relay *r);

/* Moves what from has to the other end and flushes it; *moved says how much.
 * *watch_ms is 0, or the time in which the owner's timer calls relay_watch()
 * because the relay began to wait for the other end. False: the other end broke. */
bool relay_move(struct relay *r, struct relay_end *from, size_t *moved, unsigned *watch_ms, enum outcome *end);

/* Open relay, the owner's timer: looks at an end the relay waits for. False when
 * that end stopped taking bytes for stall_ms or reset: the relay is over, *end
 * says how, the counts say what each end took. Else *watch_ms is when to look
 * again, or 0 when nothing is waited for (the owner's idle rule holds). */
bool relay_watch(struct relay *r, unsigned *watch_ms, enum outcome *end);

/* e's output fell to its low mark: the other end is read again. */
void relay_drained(struct relay *r, struct relay_end *e);

/* e has said all it will: the other end's write side is shut. True when both
 * have: the owner stops its idle timer and calls relay_linger(). */
bool relay_ended(struct relay *r, struct relay_end *e);

/* e reset (or failed) before closing: how the relay ended. */
enum outcome relay_reset(const struct relay *r, const struct relay_end *e);

/* Closing: looks at what the ends have still to take (the kernel's queue has
 * no event of its own, so the owner's timer comes back in *next_ms). False
 * when the relay is over; a cut one has the counts reduced to what each end took. */
bool relay_linger(struct relay *r, unsigned *next_ms, enum outcome *end);

/* The owner ends the relay now (a drain's end): the counts say what each end took. */
void relay_cut(struct relay *r);

#endif
