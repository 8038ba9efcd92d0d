/*
 * tstream.h - a byte stream to a peer, plain or TLS: what the HTTP layer
 * reads and writes without knowing which. Plain, it is the sock's own
 * buffers; with TLS it runs a tls_stream between the sock's ciphertext
 * buffers and its own plaintext ones.
 *
 * A third kind has no socket: its peer is code of ours (one HTTP/2 stream,
 * http/h2session.c) that fills the input and takes the output through
 * struct tstream_peer_ops, so the HTTP/1.1 session serves it unchanged.
 *
 * Callbacks may free the tstream (tstream_free); it notices and releases its
 * memory once the callback returns.
 */
#ifndef ONEGATE_TSTREAM_H
#define ONEGATE_TSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "io/sock.h"

struct evbuffer;
struct tstream;

enum tstream_event {
	TSTREAM_READY,          /* connected, and the TLS handshake (if any) is done */
	TSTREAM_EOF,            /* the peer ended its side (FIN, or close_notify) */
	TSTREAM_ERROR,          /* socket or TLS error: tstream_error() says which */
};

typedef void (*tstream_data_fn)(struct tstream *t, void *arg);
typedef void (*tstream_event_fn)(struct tstream *t, enum tstream_event ev, void *arg);

/* Takes ownership of s and ssl (NULL: plain). A server-side ssl may find its
 * ClientHello already in the sock's input. A stream over a sock that is still
 * connecting reports READY once connected (and the handshake is done);
 * otherwise tstream_start() begins. */
struct tstream *tstream_new(struct sock *s, SSL *ssl);
void tstream_free(struct tstream *t);

/* The peer of a stream without a socket. Called from the owner's calls, never
 * from the loop: the peer may not call the owner back from them. */
struct tstream_peer_ops {
	void (*output)(void *peer);     /* tstream_flush: take what tstream_output holds, as much as fits */
	void (*shutdown)(void *peer);   /* the owner's side ends once the output is taken */
	/* tstream_free: the stream is gone. Its buffers are kept for the thread's
	 * next stream without a socket: the peer takes back any callback it added. */
	void (*closed)(void *peer);
	/* tstream_linger_check: whether everything the owner wrote, its end included,
	 * reached the client; broken when the peer's stream was reset. */
	bool (*delivered)(void *peer, bool *broken);
};
/* A stream whose peer is ops over peer; READY comes after tstream_start(). NULL without memory. */
struct tstream *tstream_new_peer(struct event_base *base, const struct tstream_peer_ops *ops, void *peer);
/* From the peer: it added to tstream_input (the owner hears of it from the loop). */
void tstream_peer_input(struct tstream *t);
/* From the peer: it took output; the owner's drained callback follows from the loop. */
void tstream_peer_taken(struct tstream *t);
/* From the peer: its stream ended (TSTREAM_EOF) or broke (TSTREAM_ERROR, why). */
void tstream_peer_end(struct tstream *t, enum tstream_event ev, const char *why);
void tstream_setcb(struct tstream *t, tstream_data_fn readable, tstream_data_fn drained, tstream_event_fn event,
                   void *arg);
/* For a stream over an established socket: runs the handshake on what has
 * arrived, or reports READY from the loop at once when plain. */
void tstream_start(struct tstream *t);

struct evbuffer *tstream_input(const struct tstream *t);       /* plaintext from the peer */
struct evbuffer *tstream_output(const struct tstream *t);      /* plaintext to the peer: then tstream_flush */
/* Sends what the output holds. Returns -1 when the stream is broken. */
int tstream_flush(struct tstream *t);
/* Bytes written but not yet taken by the kernel. */
size_t tstream_unsent(const struct tstream *t);
/* Also call it (with true) after taking input outside the readable callback:
 * reading that stopped at the bound goes on. */
void tstream_read_enable(struct tstream *t, bool on);
/* Reading pauses while the input holds this much. */
void tstream_set_read_max(struct tstream *t, size_t max);
/* The drained callback fires when the unsent bytes fall to this. */
void tstream_set_low_mark(struct tstream *t, size_t low);
/* sock_linger_check() over the stream: TLS plaintext not yet sealed counts as not taken. */
enum sock_linger_state tstream_linger_check(const struct tstream *t, struct sock_linger *l, unsigned stall_ms);
/* close_notify (TLS) then FIN once everything is sent. */
void tstream_shutdown(struct tstream *t);
SSL *tstream_ssl(const struct tstream *t);
struct sock *tstream_sock(const struct tstream *t);
const char *tstream_error(const struct tstream *t);

#endif
