/*
 * tstream.h - a byte stream to a peer, plain or TLS: what the HTTP layer
 * reads and writes without knowing which. Plain, it is the sock's own
 * buffers; with TLS it runs a tls_stream between the sock's ciphertext
 * buffers and its own plaintext ones.
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
