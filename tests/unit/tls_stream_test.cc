// The TLS layer over evbuffers: a real BoringSSL client and server talk through
// four buffers, with certificates from the test PKI.
#include <gtest/gtest.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "certs.h"
#include "io/tls.h"
}

namespace {

class TlsStream : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		char tmpl[] = "/tmp/onegate-tls-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir = tmpl;
		static const char *const names[] = {"www.contoso.test"};
		const certs_leaf_spec leaf = {"www", names, 1, CERTS_KEY_ECDSA_P256, 30};
		char err[256];
		ASSERT_EQ(certs_testpki_generate(dir.c_str(), &leaf, 1, err, sizeof(err)), 0) << err;
	}
	static void TearDownTestSuite() { std::system(("rm -rf '" + dir + "'").c_str()); }

	void SetUp() override
	{
		sctx = SSL_CTX_new(TLS_method());
		ASSERT_EQ(SSL_CTX_use_certificate_chain_file(sctx, (dir + "/www.pem").c_str()), 1);
		ASSERT_EQ(SSL_CTX_use_PrivateKey_file(sctx, (dir + "/www.key").c_str(), SSL_FILETYPE_PEM), 1);
		cctx = SSL_CTX_new(TLS_method());
		ASSERT_EQ(SSL_CTX_load_verify_locations(cctx, (dir + "/ca.pem").c_str(), nullptr), 1);
		SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);
		for (auto *&b : bufs)
			b = evbuffer_new();
	}
	void TearDown() override
	{
		tls_stream_free(client);
		tls_stream_free(server);
		for (auto *b : bufs)
			evbuffer_free(b);
		SSL_CTX_free(sctx);
		SSL_CTX_free(cctx);
	}
	// bufs[0]: client -> server ciphertext, bufs[1]: server -> client.
	void make(const char *host)
	{
		SSL *c = SSL_new(cctx);
		SSL_set_connect_state(c);
		SSL_set_tlsext_host_name(c, host);
		X509_VERIFY_PARAM_set1_host(SSL_get0_param(c), host, strlen(host));
		SSL *s = SSL_new(sctx);
		SSL_set_accept_state(s);
		client = tls_stream_new(c, bufs[1], bufs[0]);
		server = tls_stream_new(s, bufs[0], bufs[1]);
		ASSERT_NE(client, nullptr);
		ASSERT_NE(server, nullptr);
	}
	// Runs both handshakes in turn until both finish or one fails.
	std::pair<tls_result, tls_result> handshake()
	{
		tls_result c = TLS_AGAIN, s = TLS_AGAIN;
		for (int i = 0; i < 20 && (c == TLS_AGAIN || s == TLS_AGAIN); i++) {
			if (c == TLS_AGAIN)
				c = tls_stream_handshake(client);
			if (s == TLS_AGAIN)
				s = tls_stream_handshake(server);
		}
		return {c, s};
	}
	std::string drain(evbuffer *b)
	{
		std::string s(evbuffer_get_length(b), '\0');
		evbuffer_remove(b, s.data(), s.size());
		return s;
	}

	static std::string dir;
	SSL_CTX *sctx = nullptr, *cctx = nullptr;
	evbuffer *bufs[4] = {};
	tls_stream *client = nullptr, *server = nullptr;
};
std::string TlsStream::dir;

}  // namespace

TEST_F(TlsStream, HandshakeAndDataBothWays)
{
	make("www.contoso.test");
	auto [c, s] = handshake();
	ASSERT_EQ(c, TLS_DONE) << tls_stream_error(client);
	ASSERT_EQ(s, TLS_DONE) << tls_stream_error(server);
	EXPECT_STREQ(SSL_get_servername(tls_stream_ssl(server), TLSEXT_NAMETYPE_host_name), "www.contoso.test");

	evbuffer_add(bufs[2], "GET / HTTP/1.1\r\n\r\n", 18);
	ASSERT_EQ(tls_stream_write(client, bufs[2]), TLS_DONE);
	EXPECT_EQ(evbuffer_get_length(bufs[2]), 0u);
	size_t got = 0;
	EXPECT_EQ(tls_stream_read(server, bufs[3], 1 << 20, &got), TLS_AGAIN);
	EXPECT_EQ(got, 18u);
	EXPECT_EQ(drain(bufs[3]), "GET / HTTP/1.1\r\n\r\n");
}

TEST_F(TlsStream, OneMegabyteArrivesIntactAndReadsRespectMax)
{
	make("www.contoso.test");
	ASSERT_EQ(handshake().first, TLS_DONE);
	std::string data(1 << 20, '\0');
	for (size_t i = 0; i < data.size(); i++)
		data[i] = char(i * 131 % 251);
	evbuffer_add(bufs[2], data.data(), data.size());
	ASSERT_EQ(tls_stream_write(server, bufs[2]), TLS_DONE);
	std::string back;
	size_t got = 0;
	for (int i = 0; i < 1000 && back.size() < data.size(); i++) {
		tls_result r = tls_stream_read(client, bufs[3], 100000, &got);
		ASSERT_NE(r, TLS_FAIL) << tls_stream_error(client);
		ASSERT_LE(got, 100000u);
		back += drain(bufs[3]);
	}
	EXPECT_EQ(back, data);
}

TEST_F(TlsStream, CloseNotifyIsSeenAsClosed)
{
	make("www.contoso.test");
	ASSERT_EQ(handshake().first, TLS_DONE);
	tls_stream_close_notify(client);
	size_t got;
	EXPECT_EQ(tls_stream_read(server, bufs[3], 1024, &got), TLS_CLOSED);
}

TEST_F(TlsStream, EofWithoutCloseNotifyIsClosedOnlyAfterEof)
{
	make("www.contoso.test");
	ASSERT_EQ(handshake().first, TLS_DONE);
	size_t got;
	EXPECT_EQ(tls_stream_read(server, bufs[3], 1024, &got), TLS_AGAIN);
	tls_stream_set_eof(server);
	EXPECT_EQ(tls_stream_read(server, bufs[3], 1024, &got), TLS_CLOSED);
}

TEST_F(TlsStream, WrongNameFailsWithAReason)
{
	make("other.contoso.test");
	auto [c, s] = handshake();
	EXPECT_EQ(c, TLS_FAIL);
	EXPECT_NE(std::string(tls_stream_error(client)).find("CERTIFICATE"), std::string::npos)
	    << tls_stream_error(client);
}

TEST_F(TlsStream, HandshakeBytesFedOneAtATime)
{
	make("www.contoso.test");
	// The server sees the client's flight one byte at a time, as a slow network would deliver it.
	ASSERT_EQ(tls_stream_handshake(client), TLS_AGAIN);
	evbuffer *trickle = evbuffer_new();
	evbuffer_add_buffer(trickle, bufs[0]);
	tls_result s = TLS_AGAIN;
	while (evbuffer_get_length(trickle) > 0) {
		evbuffer_remove_buffer(trickle, bufs[0], 1);
		s = tls_stream_handshake(server);
		ASSERT_NE(s, TLS_FAIL) << tls_stream_error(server);
	}
	evbuffer_free(trickle);
	auto [c2, s2] = handshake();
	EXPECT_EQ(c2, TLS_DONE);
	EXPECT_EQ(s2, TLS_DONE);
}
