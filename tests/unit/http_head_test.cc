// http/head: the heads the gateway writes. What a back end and a client get is
// checked byte for byte: hop-by-hop and forged forwarding headers gone, ours
// added, the request line in origin form, Windows credentials and challenges
// reported as binding the server connection.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include <event2/buffer.h>

extern "C" {
#include "proto/h1.h"
#include "http/head.h"
}

namespace {

std::string drain(struct evbuffer *b)
{
	std::string s(evbuffer_get_length(b), '\0');
	evbuffer_remove(b, &s[0], s.size());
	return s;
}

struct Parsed {
	std::string head;
	struct h1_msg m;
	Parsed(const std::string &h, bool request) : head(h)
	{
		if (request)
			h1_req_init(&m, 0);
		else
			h1_resp_init(&m, 0, false);
		EXPECT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << head;
	}
};

struct http_head_request plain(const Parsed &p)
{
	struct http_head_request in = {};
	in.head = p.head.data();
	in.q = &p.m;
	in.client_ip = "192.0.2.7";
	return in;
}

TEST(HttpHead, ReasonPhrases)
{
	EXPECT_STREQ(http_head_reason(200), "OK");
	EXPECT_STREQ(http_head_reason(421), "Misdirected Request");
	EXPECT_STREQ(http_head_reason(451), "Unavailable For Legal Reasons");
	EXPECT_STREQ(http_head_reason(599), "Status");
}

TEST(HttpHead, HopByHopAndForwardingHeaders)
{
	for (const char *h : { "Connection", "keep-alive", "TE", "Upgrade", "Proxy-Connection", "Proxy-Authorization" })
		EXPECT_TRUE(http_head_hop_by_hop(h, strlen(h))) << h;
	for (const char *h : { "Host", "Authorization", "Trailer", "Te-x" })
		EXPECT_FALSE(http_head_hop_by_hop(h, strlen(h))) << h;
	for (const char *h : { "Forwarded", "X-Forwarded-For", "x-forwarded-host", "X-Forwarded-Proto" })
		EXPECT_TRUE(http_head_forwarding(h, strlen(h))) << h;
	EXPECT_FALSE(http_head_forwarding("X-Forwarded", 11));
}

TEST(HttpHead, RequestKeepsEndToEndHeadersAndDropsTheRest)
{
	Parsed p("GET /a?b HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"
	         "X-Forwarded-For: 6.6.6.6\r\nAccept: */*\r\nTE: trailers\r\n\r\n", true);
	struct http_head_request in = plain(p);
	struct evbuffer *out = evbuffer_new();
	EXPECT_FALSE(http_head_write_request(out, &in));
	EXPECT_EQ(drain(out), "GET /a?b HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n");
	evbuffer_free(out);
}

TEST(HttpHead, RequestGetsOurForwardingHeadersAndRewrites)
{
	Parsed p("GET http://a.test/x HTTP/1.0\r\nHost: a.test\r\n\r\n", true);
	struct http_head_request in = plain(p);
	in.forwarded = true;
	in.tls = true;
	in.host = "a.test";
	in.host_len = 6;
	in.host_rewrite = "inside.test";
	struct evbuffer *out = evbuffer_new();
	http_head_write_request(out, &in);
	EXPECT_EQ(drain(out), "GET /x HTTP/1.0\r\nHost: inside.test\r\nX-Forwarded-For: 192.0.2.7\r\n"
	                      "X-Forwarded-Proto: https\r\nX-Forwarded-Host: a.test\r\n"
	                      "Forwarded: for=192.0.2.7;proto=https\r\nConnection: close\r\n\r\n");
	in.client_ip = "2001:db8::1";
	in.target = "/n%20x";
	http_head_write_request(out, &in);
	std::string v6 = drain(out);
	EXPECT_EQ(v6.rfind("GET /n%20x HTTP/1.0\r\n", 0), 0u) << v6;
	EXPECT_NE(v6.find("Forwarded: for=\"[2001:db8::1]\";proto=https\r\n"), std::string::npos) << v6;
	evbuffer_free(out);
}

TEST(HttpHead, WindowsCredentialsBindTheConnection)
{
	Parsed ntlm("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: NTLM TlRMTVNTUAABAAAA\r\n\r\n", true);
	Parsed basic("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dTpw\r\n\r\n", true);
	struct http_head_request a = plain(ntlm), b = plain(basic);
	struct evbuffer *out = evbuffer_new();
	EXPECT_TRUE(http_head_write_request(out, &a));
	EXPECT_FALSE(http_head_write_request(out, &b));
	evbuffer_free(out);
}

TEST(HttpHead, ResponseHead)
{
	Parsed p("HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nConnection: keep-alive\r\n"
	         "Content-Length: 0\r\n\r\n", false);
	struct http_head_response in = {};
	in.head = p.head.data();
	in.r = &p.m;
	in.status = 401;
	in.set_cookie = "Set-Cookie: s=0123456789abcdef\r\n";
	struct evbuffer *out = evbuffer_new();
	EXPECT_TRUE(http_head_write_response(out, &in));
	EXPECT_EQ(drain(out), "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n"
	                      "Set-Cookie: s=0123456789abcdef\r\nConnection: close\r\n\r\n");
	in.status = 200;
	in.set_cookie = nullptr;
	in.keepalive = true;
	EXPECT_FALSE(http_head_write_response(out, &in));
	evbuffer_free(out);
}

TEST(HttpHead, OurAnswers)
{
	struct evbuffer *out = evbuffer_new();
	http_head_write_answer(out, 404, nullptr, 14, false);
	EXPECT_EQ(drain(out), "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                      "Content-Length: 14\r\nConnection: close\r\n\r\n");
	http_head_write_answer(out, 304, "ETag: \"x\"\r\n", 0, true);
	EXPECT_EQ(drain(out), "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");
	evbuffer_free(out);
}

}  // namespace
