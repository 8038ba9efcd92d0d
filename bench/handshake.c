/* bench/handshake.c: new TCP+TLS connections as fast as it can, each with a full handshake
 * (scenarios 2a and 2b) or each resuming a session (scenario 2c).
 *
 *   handshake full|resume HOST PORT SNI HOSTHEADER CAFILE TLS(1.2|1.3) CONNS SECONDS
 *
 * h2load cannot measure full handshakes: it keeps the session of a client's first connection and
 * resumes it on every later one (nghttp2 1.52 has no switch to stop it), so its "new connections"
 * are resumed after the first. In full mode this client keeps no session at all and fails the run
 * if the server resumed one anyway.
 *
 * CONNS connections are kept under way at once (non-blocking, epoll). Each one connects, resumes
 * the session its slot saved last (resume mode), sends one "GET /1k HTTP/1.1" with Connection:
 * close, reads the
 * whole answer up to the server's close, checks it (200, 1024-byte body) and closes. Sessions are
 * saved from the new-session callback, that is whenever a ticket arrives: under TLS 1.3 tickets
 * come after the handshake (BoringSSL sends them with its first write), so they are only seen
 * while the answer is read. Before the timed loop each slot makes one full handshake of its own
 * for a first session (resume mode), then the client prints "primed CONNS" and waits for a line
 * on stdin, so that the caller can leave those handshakes out of what it measures. After SECONDS
 * no connection is started; those under way get 5 more seconds.
 *
 * Then prints:  done N resumed R failed F seconds S tls12 N12 tls13 N13 key ec|rsa|other
 * (key: the type of the server's public key on the last connection that had one) and the first
 * failure's reason, if any, on stderr.
 *
 * bench/run.py builds it against Debian's BoringSSL (android-libboringssl-dev, which onegate
 * builds with anyway): a resumed handshake costs this client about half the CPU it costs with
 * OpenSSL 3.0, and the client shares CPU 1 with the back end, so it keeps the gateways busier.
 * It builds against OpenSSL (libssl-dev) as well: cc -O2 resume.c -lssl -lcrypto.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY 1024
#define BUFSZ 4096

enum { S_CONNECT, S_HANDSHAKE, S_WRITE, S_READ };

struct slot {
	int fd;
	int state;
	SSL *ssl;
	SSL_SESSION *sess; /* the newest session this slot was given, for its next connection */
	char buf[BUFSZ];
	size_t len;   /* bytes of the answer kept in buf (head and the start of the body) */
	size_t total; /* bytes of the answer read in all */
};

static struct sockaddr_in addr;
static const char *sni;
static char request[512];
static size_t request_len;
static SSL_CTX *ctx;
static int slot_idx;
static int epfd;
static long done, resumed, failed, started;
static long versions[2]; /* TLS 1.2, TLS 1.3 */
static const char *server_key = "none";
static char first_error[256];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct slot *s = SSL_get_ex_data(ssl, slot_idx);
	if (!s)
		return 0;
	if (s->sess)
		SSL_SESSION_free(s->sess);
	s->sess = sess;
	return 1; /* the slot keeps the reference */
}

static void fail(struct slot *s, const char *what)
{
	if (!first_error[0]) {
		unsigned long e = ERR_peek_error();
		snprintf(first_error, sizeof(first_error), "%s: %s (errno %d)", what,
			 e ? ERR_reason_error_string(e) : "-", errno);
	}
	failed++;
	(void)s;
}

static void finish(struct slot *s)
{
	if (s->ssl) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	ERR_clear_error();
}

static int start(struct slot *s)
{
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		fail(s, "socket");
		return -1;
	}
	int one = 1;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->ssl = SSL_new(ctx);
	SSL_set_ex_data(s->ssl, slot_idx, s);
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_tlsext_host_name(s->ssl, sni);
#ifdef OPENSSL_IS_BORINGSSL
	X509_VERIFY_PARAM_set1_host(SSL_get0_param(s->ssl), sni, strlen(sni));
#else
	SSL_set1_host(s->ssl, sni);
#endif
	if (s->sess)
		SSL_set_session(s->ssl, s->sess);
	s->len = s->total = 0;
	started++;
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = s };
	if (connect(s->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		s->state = S_HANDSHAKE;
	else if (errno == EINPROGRESS)
		s->state = S_CONNECT;
	else {
		fail(s, "connect");
		finish(s);
		return -1;
	}
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		fail(s, "epoll_ctl");
		finish(s);
		return -1;
	}
	return 0;
}

static void want(struct slot *s, int err)
{
	struct epoll_event ev = { .events = err == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN, .data.ptr = s };
	epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

/* The answer is whole: a 200 with BODY bytes after the head. */
static int check(struct slot *s)
{
	char *end = memmem(s->buf, s->len, "\r\n\r\n", 4);
	if (s->len < 12 || memcmp(s->buf, "HTTP/1.", 7) != 0 || memcmp(s->buf + 8, " 200", 4) != 0 || !end)
		return -1;
	return s->total - (size_t)(end + 4 - s->buf) == BODY ? 0 : -1;
}

/* Runs the slot's connection as far as it goes; returns 1 when it is over (either way). */
static int step(struct slot *s)
{
	int r, err;
	switch (s->state) {
	case S_CONNECT: {
		int soerr = 0;
		socklen_t l = sizeof(soerr);
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
		if (soerr) {
			errno = soerr;
			fail(s, "connect");
			return 1;
		}
		s->state = S_HANDSHAKE;
	}
	/* fall through */
	case S_HANDSHAKE:
		r = SSL_connect(s->ssl);
		if (r != 1) {
			err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				want(s, err);
				return 0;
			}
			fail(s, "handshake");
			return 1;
		}
		s->state = S_WRITE;
	/* fall through */
	case S_WRITE:
		r = SSL_write(s->ssl, request, request_len);
		if (r <= 0) {
			err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				want(s, err);
				return 0;
			}
			fail(s, "write");
			return 1;
		}
		s->state = S_READ;
		want(s, SSL_ERROR_WANT_READ);
	/* fall through */
	case S_READ:
		for (;;) {
			char tmp[BUFSZ];
			r = SSL_read(s->ssl, tmp, sizeof(tmp));
			if (r > 0) {
				size_t keep = r < (int)(BUFSZ - s->len) ? (size_t)r : BUFSZ - s->len;
				memcpy(s->buf + s->len, tmp, keep);
				s->len += keep;
				s->total += r;
				continue;
			}
			err = SSL_get_error(s->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				want(s, err);
				return 0;
			}
			/* close_notify or a plain close (SSL_OP_IGNORE_UNEXPECTED_EOF): the answer is over */
			if (err != SSL_ERROR_ZERO_RETURN && err != SSL_ERROR_SYSCALL) {
				fail(s, "read");
				return 1;
			}
			if (check(s) != 0) {
				errno = 0;
				if (!first_error[0])
					snprintf(first_error, sizeof(first_error), "bad answer (%zu bytes): %.60s",
						 s->total, s->buf);
				failed++;
				return 1;
			}
			/* A clean end: without it SSL_free marks the slot's session not resumable. */
			SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
			done++;
			if (SSL_session_reused(s->ssl))
				resumed++;
			X509 *cert = SSL_get_peer_certificate(s->ssl);
			if (cert) {
				EVP_PKEY *key = X509_get_pubkey(cert);
				int type = key ? EVP_PKEY_id(key) : EVP_PKEY_NONE;
				server_key = type == EVP_PKEY_EC ? "ec" : type == EVP_PKEY_RSA ? "rsa" : "other";
				EVP_PKEY_free(key);
				X509_free(cert);
			}
			versions[SSL_version(s->ssl) == TLS1_3_VERSION]++;
			return 1;
		}
	}
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 10 || (strcmp(argv[1], "full") != 0 && strcmp(argv[1], "resume") != 0)) {
		fprintf(stderr, "usage: %s full|resume HOST PORT SNI HOSTHEADER CAFILE 1.2|1.3 CONNS SECONDS\n",
			argv[0]);
		return 2;
	}
	bool resume = strcmp(argv[1], "resume") == 0;
	argv++;
	addr.sin_family = AF_INET;
	addr.sin_port = htons(atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
		fprintf(stderr, "bad address %s\n", argv[1]);
		return 2;
	}
	sni = argv[3];
	request_len = snprintf(request, sizeof(request),
			       "GET /1k HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[4]);
	int version = strcmp(argv[6], "1.2") == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
	int nconns = atoi(argv[7]);
	double seconds = atof(argv[8]);

	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF /* OpenSSL 3: a close without close_notify ends the answer too */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	if (SSL_CTX_load_verify_locations(ctx, argv[5], NULL) != 1) {
		fprintf(stderr, "cannot load %s\n", argv[5]);
		return 2;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (resume) {
		/* Sessions go to the callback only: each slot keeps its own newest one. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_session);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	slot_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	epfd = epoll_create1(EPOLL_CLOEXEC);

	struct slot *slots = calloc(nconns, sizeof(*slots));
	for (int i = 0; i < nconns; i++)
		slots[i].fd = -1;

	/* One full handshake per slot first, one at a time, each saving the slot's first session.
	 * A server may take a TLS 1.3 ticket only once, so slots do not share one. */
	for (int i = 0; resume && i < nconns; i++) {
		struct slot *p = &slots[i];
		double t = now();
		if (start(p) != 0)
			break;
		while (p->fd >= 0) {
			struct epoll_event ev;
			if (epoll_wait(epfd, &ev, 1, 1000) <= 0 || now() - t > 10) {
				fail(p, "timed out");
				finish(p);
				break;
			}
			if (step(p))
				finish(p);
		}
		if (done != i + 1 || !p->sess) {
			fprintf(stderr, "first connection failed: %s\n", first_error[0] ? first_error : "no session saved");
			printf("done 0 resumed 0 failed %ld seconds 0 tls12 0 tls13 0 key none\n", failed ? failed : 1);
			return 1;
		}
	}
	/* Say so and wait for a line on stdin: the caller starts counting the server's CPU time now. */
	printf("primed %d\n", nconns);
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	done = resumed = failed = started = 0;
	versions[0] = versions[1] = 0;

	double t0 = now(), stop = t0 + seconds, end = stop + 5;
	int active = 0;
	for (int i = 0; i < nconns; i++)
		if (start(&slots[i]) == 0)
			active++;
	struct epoll_event evs[256];
	while (active > 0) {
		double tn = now();
		if (tn > end)
			break;
		int n = epoll_wait(epfd, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			struct slot *s = evs[i].data.ptr;
			if (!step(s))
				continue;
			finish(s);
			active--;
			if (now() < stop && start(s) == 0)
				active++;
		}
	}
	double elapsed = now() - t0;
	for (int i = 0; i < nconns; i++)
		finish(&slots[i]);
	if (first_error[0])
		fprintf(stderr, "first failure: %s\n", first_error);
	printf("done %ld resumed %ld failed %ld seconds %.3f tls12 %ld tls13 %ld key %s\n", done, resumed, failed,
	       elapsed, versions[0], versions[1], server_key);
	return 0;
}
