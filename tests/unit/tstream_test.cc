// tstream: a TLS client and a TLS echo server, both tstreams over real loopback
// sockets in one event loop, with back-pressure on the echo side.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include "certs.h"
#include "io/sock.h"
#include "io/tstream.h"
}

namespace {

constexpr size_t kTotal = 8u << 20;
constexpr size_t kHigh = 256 * 1024;

struct Side {
	tstream *t = nullptr;
	bool ready = false, eof = false, error = false;
	size_t got = 0, sent = 0;
	std::string err;
	uint8_t expect = 0;
	bool paused = false;
	Side *peer_of_echo = nullptr;   // server: none; used only for bookkeeping
};

struct Pair {
	event_base *base;
	Side cli, srv;
	bool pattern_ok = true;
};

Pair *g;

void srv_readable(tstream *t, void *arg)
{
	auto *s = static_cast<Side *>(arg);
	evbuffer *in = tstream_input(t);
	s->got += evbuffer_get_length(in);
	evbuffer_add_buffer(tstream_output(t), in);
	ASSERT_EQ(tstream_flush(t), 0);
	if (tstream_unsent(t) > kHigh) {
		tstream_read_enable(t, false);
		s->paused = true;
	}
}

void srv_drained(tstream *t, void *arg)
{
	auto *s = static_cast<Side *>(arg);
	if (s->paused) {
		s->paused = false;
		tstream_read_enable(t, true);
	}
}

void srv_event(tstream *t, tstream_event ev, void *arg)
{
	auto *s = static_cast<Side *>(arg);
	if (ev == TSTREAM_READY)
		s->ready = true;
	else if (ev == TSTREAM_EOF) {
		s->eof = true;
		tstream_shutdown(t);
	} else {
		s->error = true;
		s->err = tstream_error(t);
	}
}

void cli_send_more(tstream *t, Side *s)
{
	char buf[64 * 1024];
	while (s->sent < kTotal && tstream_unsent(t) < kHigh) {
		size_t n = std::min(sizeof(buf), kTotal - s->sent);
		for (size_t i = 0; i < n; i++)
			buf[i] = static_cast<char>((s->sent + i) * 7);
		evbuffer_add(tstream_output(t), buf, n);
		s->sent += n;
		ASSERT_EQ(tstream_flush(t), 0);
	}
	if (s->sent == kTotal)
		tstream_shutdown(t);
}

void cli_readable(tstream *t, void *arg)
{
	auto *s = static_cast<Side *>(arg);
	evbuffer *in = tstream_input(t);
	size_t n = evbuffer_get_length(in);
	auto *p = static_cast<unsigned char *>(evbuffer_pullup(in, static_cast<ev_ssize_t>(n)));
	for (size_t i = 0; i < n; i++)
		if (p[i] != static_cast<unsigned char>((s->got + i) * 7))
			g->pattern_ok = false;
	s->got += n;
	evbuffer_drain(in, n);
}

void cli_drained(tstream *t, void *arg)
{
	cli_send_more(t, static_cast<Side *>(arg));
}

void cli_event(tstream *t, tstream_event ev, void *arg)
{
	auto *s = static_cast<Side *>(arg);
	if (ev == TSTREAM_READY) {
		s->ready = true;
		cli_send_more(t, s);
	} else if (ev == TSTREAM_EOF) {
		s->eof = true;
		event_base_loopexit(g->base, nullptr);
	} else {
		s->error = true;
		s->err = tstream_error(t);
		event_base_loopexit(g->base, nullptr);
	}
}

class TStream : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		char tmpl[] = "/tmp/onegate-tstream-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir = tmpl;
		static const char *const names[] = {"echo.contoso.test"};
		const certs_leaf_spec leaf = {"echo", names, 1, CERTS_KEY_ECDSA_P256, 30};
		char err[256];
		ASSERT_EQ(certs_testpki_generate(dir.c_str(), &leaf, 1, err, sizeof(err)), 0) << err;
	}
	static void TearDownTestSuite() { std::system(("rm -rf '" + dir + "'").c_str()); }
	static std::string dir;
};
std::string TStream::dir;

// Accepts one connection on a loopback listener the kernel picked a port for.
struct Listener {
	int fd;
	sockaddr_in sin{};
	Listener()
	{
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof(sin);
		EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&sin), len), 0);
		EXPECT_EQ(listen(fd, 4), 0);
		getsockname(fd, reinterpret_cast<sockaddr *>(&sin), &len);
	}
	~Listener() { close(fd); }
};

TEST_F(TStream, TlsEchoWithBackPressureAndCleanClose)
{
	Pair pair;
	g = &pair;
	pair.base = event_base_new();
	SSL_CTX *sctx = SSL_CTX_new(TLS_method());
	ASSERT_EQ(SSL_CTX_use_certificate_chain_file(sctx, (dir + "/echo.pem").c_str()), 1);
	ASSERT_EQ(SSL_CTX_use_PrivateKey_file(sctx, (dir + "/echo.key").c_str(), SSL_FILETYPE_PEM), 1);
	SSL_CTX *cctx = SSL_CTX_new(TLS_method());
	ASSERT_EQ(SSL_CTX_load_verify_locations(cctx, (dir + "/ca.pem").c_str(), nullptr), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);

	Listener l;
	sock *cs = sock_connect(pair.base, reinterpret_cast<sockaddr *>(&l.sin), sizeof(l.sin), nullptr, 0);
	ASSERT_NE(cs, nullptr);
	int afd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ASSERT_GE(afd, 0);

	SSL *cssl = SSL_new(cctx);
	SSL_set_connect_state(cssl);
	SSL_set_tlsext_host_name(cssl, "echo.contoso.test");
	X509_VERIFY_PARAM_set1_host(SSL_get0_param(cssl), "echo.contoso.test", strlen("echo.contoso.test"));
	pair.cli.t = tstream_new(cs, cssl);
	ASSERT_NE(pair.cli.t, nullptr);
	tstream_setcb(pair.cli.t, cli_readable, cli_drained, cli_event, &pair.cli);
	tstream_set_low_mark(pair.cli.t, kHigh / 2);

	SSL *sssl = SSL_new(sctx);
	SSL_set_accept_state(sssl);
	pair.srv.t = tstream_new(sock_new(pair.base, afd), sssl);
	ASSERT_NE(pair.srv.t, nullptr);
	tstream_setcb(pair.srv.t, srv_readable, srv_drained, srv_event, &pair.srv);
	tstream_set_low_mark(pair.srv.t, kHigh / 2);
	tstream_set_read_max(pair.srv.t, 64 * 1024);
	tstream_start(pair.srv.t);

	timeval limit = {30, 0};
	event_base_loopexit(pair.base, &limit);
	event_base_dispatch(pair.base);

	EXPECT_TRUE(pair.cli.ready);
	EXPECT_TRUE(pair.srv.ready);
	EXPECT_FALSE(pair.cli.error) << pair.cli.err;
	EXPECT_FALSE(pair.srv.error) << pair.srv.err;
	EXPECT_EQ(pair.srv.got, kTotal);
	EXPECT_EQ(pair.cli.got, kTotal);
	EXPECT_TRUE(pair.pattern_ok);
	EXPECT_TRUE(pair.srv.eof) << "the server never saw close_notify";
	EXPECT_TRUE(pair.cli.eof) << "the client never saw the server's close_notify";
	tstream_free(pair.cli.t);
	tstream_free(pair.srv.t);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	event_base_free(pair.base);
}

// The TLS end-of-stream question: a peer's FIN (no close_notify) right behind a record the
// owner's bound cut. BoringSSL holds the rest of that record, the socket's input is empty:
// the end must not be reported until those bytes are out.
struct BoundedReader {
	event_base *base;
	tstream *t = nullptr;
	event *tick = nullptr;
	size_t taken = 0, at_eof = 0;
	bool eof = false, error = false;
	std::string err;
};

constexpr size_t kRecord = 5000;       // one record: tls_stream_write seals up to 16 KiB at once
constexpr size_t kBound = 1000;

void bounded_readable(tstream *, void *) {}  // leaves the input alone: the bound holds

void bounded_event(tstream *t, tstream_event ev, void *arg)
{
	auto *r = static_cast<BoundedReader *>(arg);
	if (ev == TSTREAM_READY)
		return;
	if (ev == TSTREAM_EOF) {
		r->eof = true;
		r->at_eof = r->taken + evbuffer_get_length(tstream_input(t));
	} else {
		r->error = true;
		r->err = tstream_error(t);
	}
	event_base_loopexit(r->base, nullptr);
}

// Takes 100 bytes at a time from the loop, as HTTP takes a request and reads on.
void bounded_tick(evutil_socket_t, short, void *arg)
{
	auto *r = static_cast<BoundedReader *>(arg);
	evbuffer *in = tstream_input(r->t);
	size_t n = std::min<size_t>(100, evbuffer_get_length(in));
	evbuffer_drain(in, n);
	r->taken += n;
	tstream_read_enable(r->t, true);
	timeval again = {0, 2000};
	event_add(r->tick, &again);
}

struct FinWriter {
	tstream *t = nullptr;
	bool sent = false;
};

void fin_event(tstream *t, tstream_event ev, void *arg)
{
	auto *w = static_cast<FinWriter *>(arg);
	if (ev != TSTREAM_READY)
		return;
	std::string rec(kRecord, 'r');
	evbuffer_add(tstream_output(t), rec.data(), rec.size());
	ASSERT_EQ(tstream_flush(t), 0);
	ASSERT_EQ(tstream_unsent(t), 0u);
	// A FIN without close_notify, as a client that just shuts its socket sends.
	ASSERT_EQ(shutdown(sock_fd(tstream_sock(t)), SHUT_WR), 0);
	w->sent = true;
}

TEST_F(TStream, TlsEndIsReportedOnlyAfterTheRecordTheBoundCut)
{
	event_base *base = event_base_new();
	SSL_CTX *sctx = SSL_CTX_new(TLS_method());
	ASSERT_EQ(SSL_CTX_use_certificate_chain_file(sctx, (dir + "/echo.pem").c_str()), 1);
	ASSERT_EQ(SSL_CTX_use_PrivateKey_file(sctx, (dir + "/echo.key").c_str(), SSL_FILETYPE_PEM), 1);
	SSL_CTX *cctx = SSL_CTX_new(TLS_method());
	ASSERT_EQ(SSL_CTX_load_verify_locations(cctx, (dir + "/ca.pem").c_str(), nullptr), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);

	Listener l;
	sock *cs = sock_connect(base, reinterpret_cast<sockaddr *>(&l.sin), sizeof(l.sin), nullptr, 0);
	ASSERT_NE(cs, nullptr);
	int afd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ASSERT_GE(afd, 0);
	SSL *cssl = SSL_new(cctx);
	SSL_set_connect_state(cssl);
	SSL_set_tlsext_host_name(cssl, "echo.contoso.test");
	FinWriter w;
	w.t = tstream_new(cs, cssl);
	ASSERT_NE(w.t, nullptr);
	tstream_setcb(w.t, nullptr, nullptr, fin_event, &w);

	BoundedReader r;
	r.base = base;
	SSL *sssl = SSL_new(sctx);
	SSL_set_accept_state(sssl);
	r.t = tstream_new(sock_new(base, afd), sssl);
	ASSERT_NE(r.t, nullptr);
	tstream_setcb(r.t, bounded_readable, nullptr, bounded_event, &r);
	tstream_set_read_max(r.t, kBound);
	tstream_start(r.t);
	r.tick = evtimer_new(base, bounded_tick, &r);
	timeval first = {0, 50000};
	event_add(r.tick, &first);

	timeval limit = {10, 0};
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);

	EXPECT_TRUE(w.sent);
	EXPECT_FALSE(r.error) << r.err;
	EXPECT_TRUE(r.eof) << "the end never came";
	EXPECT_EQ(r.at_eof, kRecord) << "the end was reported with bytes still inside BoringSSL";
	event_free(r.tick);
	tstream_free(w.t);
	tstream_free(r.t);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	event_base_free(base);
}

TEST_F(TStream, HandshakeFailureIsReported)
{
	Pair pair;
	g = &pair;
	pair.base = event_base_new();
	SSL_CTX *sctx = SSL_CTX_new(TLS_method());
	ASSERT_EQ(SSL_CTX_use_certificate_chain_file(sctx, (dir + "/echo.pem").c_str()), 1);
	ASSERT_EQ(SSL_CTX_use_PrivateKey_file(sctx, (dir + "/echo.key").c_str(), SSL_FILETYPE_PEM), 1);
	SSL_CTX *cctx = SSL_CTX_new(TLS_method());
	// No trust anchor: the client must refuse the server's certificate.
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);

	Listener l;
	sock *cs = sock_connect(pair.base, reinterpret_cast<sockaddr *>(&l.sin), sizeof(l.sin), nullptr, 0);
	int afd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ASSERT_GE(afd, 0);
	SSL *cssl = SSL_new(cctx);
	SSL_set_connect_state(cssl);
	pair.cli.t = tstream_new(cs, cssl);
	tstream_setcb(pair.cli.t, cli_readable, cli_drained, cli_event, &pair.cli);
	SSL *sssl = SSL_new(sctx);
	SSL_set_accept_state(sssl);
	pair.srv.t = tstream_new(sock_new(pair.base, afd), sssl);
	tstream_setcb(pair.srv.t, srv_readable, srv_drained, srv_event, &pair.srv);
	tstream_start(pair.srv.t);

	timeval limit = {10, 0};
	event_base_loopexit(pair.base, &limit);
	event_base_dispatch(pair.base);
	EXPECT_TRUE(pair.cli.error);
	EXPECT_FALSE(pair.cli.ready);
	EXPECT_NE(pair.cli.err.find("CERTIFICATE_VERIFY_FAILED"), std::string::npos) << pair.cli.err;
	tstream_free(pair.cli.t);
	tstream_free(pair.srv.t);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	event_base_free(pair.base);
}

} // namespace
