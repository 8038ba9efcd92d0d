/*
 * tls.h - TLS over libevent buffers: our own small layer (no libevent_openssl).
 *
 * A tls_stream sits between two evbuffers that carry ciphertext (filled from
 * and drained to a socket by its owner, usually a bufferevent) and the
 * plaintext its owner reads and writes. The ciphertext buffers are read and
 * written through a custom BIO, so bytes already in the input buffer (the
 * ClientHello the SNI peek read) are simply the first bytes the handshake sees.
 * Nothing here blocks or touches a socket; the owner decides when to call in,
 * and keeps back-pressure by watching the size of the output buffer.
 */
#ifndef ONEGATE_TLS_H
#define ONEGATE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct evbuffer;
struct tls_stream;

enum tls_result {
	TLS_DONE,       /* the handshake finished, or the call did all it could */
	TLS_AGAIN,      /* more ciphertext is needed before anything else can happen */
	TLS_CLOSED,     /* the peer sent close_notify, or its ciphertext ended cleanly */
	TLS_FAIL,       /* a TLS error: tls_stream_error() says which */
};

/* Takes ownership of ssl (already in connect or accept state). */
struct tls_stream *tls_stream_new(SSL *ssl, struct evbuffer *cipher_in, struct evbuffer *cipher_out);
void tls_stream_free(struct tls_stream *t);
SSL *tls_stream_ssl(const struct tls_stream *t);

/* The socket under cipher_in said EOF: once its bytes are used up, reads end. */
void tls_stream_set_eof(struct tls_stream *t);

enum tls_result tls_stream_handshake(struct tls_stream *t);
/* Decrypts what cipher_in holds into plain, at most max bytes. TLS_DONE or
 * TLS_AGAIN both mean "all that could be read was read"; *got says how much. */
enum tls_result tls_stream_read(struct tls_stream *t, struct evbuffer *plain, size_t max, size_t *got);
/* Something is left to decrypt: ciphertext in cipher_in, or the rest of a record a
 * bounded tls_stream_read took only part of. */
bool tls_stream_has_input(const struct tls_stream *t);
/* Encrypts everything in plain into cipher_out and drains plain. */
enum tls_result tls_stream_write(struct tls_stream *t, struct evbuffer *plain);
/* Queues a close_notify alert in cipher_out. */
void tls_stream_close_notify(struct tls_stream *t);
/* Why the last TLS_FAIL happened (static or library text). */
const char *tls_stream_error(const struct tls_stream *t);

#endif
