#include "io/tls.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/bio.h>
#include <openssl/err.h>

#include "io/sock.h"

/* One record's worth: SSL_read never returns more than this at once, and
 * SSL_write never puts more than this in one record. */
#define TLS_READ_CHUNK 16384
#define TLS_RECORD_MAX 16384

struct tls_stream {
	SSL *ssl;
	struct evbuffer *in, *out;
	bool eof;
	char error[160];
};

/* ---- the BIO: ciphertext straight from and to the owner's evbuffers ---- */

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

static int tls_bio_read(BIO *bio, char *buf, int len)
{
	struct tls_stream *t = BIO_get_data(bio);
	BIO_clear_retry_flags(bio);
	if (len <= 0)
		return 0;
	int n = evbuffer_remove(t->in, buf, (size_t)len);
	if (n > 0)
		return n;
	if (t->eof)
		return 0;
	BIO_set_retry_read(bio);
	return -1;
}

static int tls_bio_write(BIO *bio, const char *buf, int len)
{
	struct tls_stream *t = BIO_get_data(bio);
	BIO_clear_retry_flags(bio);
	if (len <= 0)
		return 0;
	/* Never refuses: the owner bounds the output by pausing its reads. A record into
	 * an empty output (an answer's) goes into a lent block: evbuffer_add() would
	 * malloc a 2 KiB chain, which glibc serves slowly. */
	if (evbuffer_get_length(t->out) == 0 && (size_t)len <= SOCK_BLOCK) {
		void *b = sock_block_alloc();
		if (!b)
			return -1;
		memcpy(b, buf, (size_t)len);
		return sock_block_lend(t->out, b, (size_t)len) == 0 ? len : -1;
	}
	return evbuffer_add(t->out, buf, (size_t)len) == 0 ? len : -1;
}

static long tls_bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
	(void)bio;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int tls_bio_create(BIO *bio)
{
	BIO_set_init(bio, 1);
	return 1;
}

static void tls_bio_init_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "onegate evbuffer");
	if (m && BIO_meth_set_read(m, tls_bio_read) && BIO_meth_set_write(m, tls_bio_write) &&
	    BIO_meth_set_ctrl(m, tls_bio_ctrl) && BIO_meth_set_create(m, tls_bio_create))
		tls_bio_method = m;
	else
		BIO_meth_free(m);
}

/* ---- the stream ---- */

struct tls_stream *tls_stream_new(SSL *ssl, struct evbuffer *cipher_in, struct evbuffer *cipher_out)
{
	pthread_once(&tls_bio_once, tls_bio_init_method);
	struct tls_stream *t = calloc(1, sizeof(*t));
	BIO *bio = tls_bio_method ? BIO_new(tls_bio_method) : NULL;
	if (!t || !bio) {
		free(t);
		BIO_free(bio);
		SSL_free(ssl);
		return NULL;
	}
	t->ssl = ssl;
	t->in = cipher_in;
	t->out = cipher_out;
	BIO_set_data(bio, t);
	SSL_set_bio(ssl, bio, bio);     /* one BIO both ways: SSL_set_bio takes a single reference */
	return t;
}

void tls_stream_free(struct tls_stream *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

SSL *tls_stream_ssl(const struct tls_stream *t)
{
	return t->ssl;
}

void tls_stream_set_eof(struct tls_stream *t)
{
	t->eof = true;
}

const char *tls_stream_error(const struct tls_stream *t)
{
	return t->error[0] ? t->error : "TLS error";
}

/* Maps an SSL_* return to our result, keeping the library's reason for logs. */
static enum tls_result tls_result_of(struct tls_stream *t, int rc)
{
	int err = SSL_get_error(t->ssl, rc);
	switch (err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		return TLS_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_CLOSED;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			snprintf(t->error, sizeof(t->error), "connection ended without close_notify");
			return t->eof ? TLS_CLOSED : TLS_FAIL;
		}
		break;
	default:
		break;
	}
	unsigned long e = ERR_get_error();
	if (e)
		snprintf(t->error, sizeof(t->error), "%s", ERR_reason_error_string(e));
	else
		snprintf(t->error, sizeof(t->error), "TLS error %d", err);
	ERR_clear_error();
	return TLS_FAIL;
}

enum tls_result tls_stream_handshake(struct tls_stream *t)
{
	int rc = SSL_do_handshake(t->ssl);
	return rc == 1 ? TLS_DONE : tls_result_of(t, rc);
}

enum tls_result tls_stream_read(struct tls_stream *t, struct evbuffer *plain, size_t max, size_t *got)
{
	*got = 0;
	while (*got < max) {
		/* Reserving room for a read that cannot succeed would leave a 16 KiB chain on every idle
		 * connection: only try when there is ciphertext, buffered TLS data, or an end to report. */
		if (evbuffer_get_length(t->in) == 0 && !t->eof && !SSL_has_pending(t->ssl))
			return TLS_AGAIN;
		size_t want = max - *got < TLS_READ_CHUNK ? max - *got : TLS_READ_CHUNK;
		if (evbuffer_get_length(plain) == 0) {
			/* A message's first record (a request's, all of it): into a lent block,
			 * where room reserved would malloc a 32 KiB chain for a few bytes. */
			void *b = sock_block_alloc();
			if (!b)
				return TLS_FAIL;
			int n = SSL_read(t->ssl, b, (int)(want < SOCK_BLOCK ? want : SOCK_BLOCK));
			if (n <= 0) {
				enum tls_result r = tls_result_of(t, n);
				sock_block_free(b);
				return r;
			}
			if (sock_block_lend(plain, b, (size_t)n) != 0)
				return TLS_FAIL;
			*got += (size_t)n;
			continue;
		}
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(plain, (ev_ssize_t)want, &v, 1) < 1)
			return TLS_FAIL;
		size_t room = v.iov_len < want ? v.iov_len : want;
		int n = SSL_read(t->ssl, v.iov_base, (int)room);
		if (n <= 0) {
			v.iov_len = 0;
			evbuffer_commit_space(plain, &v, 1);
			return tls_result_of(t, n);
		}
		v.iov_len = (size_t)n;
		evbuffer_commit_space(plain, &v, 1);
		*got += (size_t)n;
	}
	return TLS_DONE;
}

bool tls_stream_has_input(const struct tls_stream *t)
{
	return evbuffer_get_length(t->in) > 0 || SSL_has_pending(t->ssl);
}

enum tls_result tls_stream_write(struct tls_stream *t, struct evbuffer *plain)
{
	size_t left;
	while ((left = evbuffer_get_length(plain)) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(plain, -1, NULL, &v, 1) < 1)
			break;
		size_t len = left < TLS_RECORD_MAX ? left : TLS_RECORD_MAX;
		const void *p = v.iov_base;
		/* A response head and its body sit in separate pieces of the buffer: gathered,
		 * they go out as one record (one seal, one header and tag, one read for the peer). */
		unsigned char rec[TLS_RECORD_MAX];
		if (v.iov_len < len) {
			evbuffer_copyout(plain, rec, len);
			p = rec;
		}
		int n = SSL_write(t->ssl, p, (int)len);
		if (n <= 0)
			return tls_result_of(t, n);
		evbuffer_drain(plain, (size_t)n);
	}
	return TLS_DONE;
}

void tls_stream_close_notify(struct tls_stream *t)
{
	SSL_shutdown(t->ssl);
	ERR_clear_error();
}
