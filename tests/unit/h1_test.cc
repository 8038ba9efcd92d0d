// h1: request and response heads read strictly and incrementally, every
// smuggling shape refused, chunked bodies framed exactly.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "proto/h1.h"
}

namespace {

// Parses in one go, then byte by byte, then in every two-part split: all must agree.
enum h1_result parse_all_ways(const std::string &in, struct h1_msg &out, bool request = true)
{
	auto init = [&](struct h1_msg &m) {
		if (request)
			h1_req_init(&m, 0);
		else
			h1_resp_init(&m, 0, false);
	};
	init(out);
	enum h1_result whole = h1_parse(&out, in.data(), in.size());
	struct h1_msg m;
	init(m);
	enum h1_result r = H1_NEED_MORE;
	for (size_t i = 1; i <= in.size() && r == H1_NEED_MORE; i++)
		r = h1_parse(&m, in.data(), i);
	EXPECT_EQ(r, whole) << "byte by byte differs";
	for (size_t cut = 1; cut < in.size(); cut++) {
		init(m);
		r = h1_parse(&m, in.data(), cut);
		if (r == H1_NEED_MORE)
			r = h1_parse(&m, in.data(), in.size());
		EXPECT_EQ(r, whole) << "split at " << cut;
	}
	return whole;
}

std::string span(const std::string &buf, struct h1_span s)
{
	return buf.substr(s.off, s.len);
}

TEST(H1, SimpleGet)
{
	std::string in = "GET /owa/?a=1 HTTP/1.1\r\nHost: Mail.Contoso.test\r\nX-Empty:\r\nAccept:  */*  \r\n\r\nNEXT";
	struct h1_msg m;
	ASSERT_EQ(parse_all_ways(in, m), H1_DONE);
	EXPECT_EQ(span(in, m.method), "GET");
	EXPECT_EQ(span(in, m.target), "/owa/?a=1");
	EXPECT_EQ(span(in, m.path), "/owa/?a=1");
	EXPECT_EQ(m.minor, 1);
	ASSERT_EQ(m.nheaders, 3u);
	EXPECT_EQ(span(in, m.headers[2].value), "*/*");
	EXPECT_EQ(span(in, m.headers[1].value), "");
	EXPECT_TRUE(m.has_host);
	EXPECT_EQ(span(in, m.host), "Mail.Contoso.test");
	EXPECT_TRUE(m.keepalive);
	EXPECT_EQ(m.head_len, in.size() - 4);
}

TEST(H1, CustomMethodsAndBodies)
{
	std::string in = "RPC_IN_DATA /rpc/rpcproxy.dll?x:6001 HTTP/1.1\r\nHost: a\r\nContent-Length: 1073741824\r\n"
	                 "Connection: Keep-Alive\r\n\r\n";
	struct h1_msg m;
	ASSERT_EQ(parse_all_ways(in, m), H1_DONE);
	EXPECT_EQ(span(in, m.method), "RPC_IN_DATA");
	EXPECT_TRUE(m.has_content_length);
	EXPECT_EQ(m.content_length, 1073741824u);
	in = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n";
	ASSERT_EQ(parse_all_ways(in, m), H1_DONE);
	EXPECT_TRUE(m.chunked);
	EXPECT_TRUE(m.expect_continue);
}

TEST(H1, ConnectionAndUpgrade)
{
	std::string in = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
	                 "X-Hop: 1\r\n\r\n";
	struct h1_msg m;
	ASSERT_EQ(parse_all_ways(in, m), H1_DONE);
	EXPECT_TRUE(m.upgrade);
	EXPECT_EQ(span(in, m.upgrade_value), "websocket");
	in = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\n";
	ASSERT_EQ(parse_all_ways(in, m), H1_DONE);
	EXPECT_FALSE(m.keepalive);
	EXPECT_TRUE(h1_connection_lists(&m, in.data(), "x-hop", 5));
	EXPECT_FALSE(h1_connection_lists(&m, in.data(), "x-ho", 4));
	in = "GET / HTTP/1.0\r\n\r\n";
	ASSERT_EQ(parse_all_ways(in, m), H1_DONE);   // 1.0 needs no Host
	EXPECT_FALSE(m.keepalive);
}

TEST(H1, AbsoluteAndOtherTargetForms)
{
	std::string in = "GET http://mail.contoso.test/owa/x HTTP/1.1\r\nHost: MAIL.contoso.test\r\n\r\n";
	struct h1_msg m;
	ASSERT_EQ(parse_all_ways(in, m), H1_DONE);
	EXPECT_EQ(span(in, m.path), "/owa/x");
	in = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
	EXPECT_EQ(parse_all_ways(in, m), H1_DONE);
}

TEST(H1, SmugglingAndMalformedHeadsAreRefused)
{
	const std::vector<std::pair<std::string, enum h1_result>> cases = {
	    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", H1_ERR_BAD},
	    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", H1_ERR_BAD},
	    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", H1_ERR_BAD},
	    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", H1_ERR_BAD},
	    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", H1_ERR_BAD},
	    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", H1_ERR_BAD},
	    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", H1_ERR_BAD},
	    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", H1_ERR_CODING},
	    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", H1_ERR_CODING},
	    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", H1_ERR_BAD},
	    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", H1_ERR_BAD},
	    {"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", H1_ERR_BAD},          // obs-fold
	    {"GET / HTTP/1.1\r\nHost: a\r\nX: y\rz\r\n\r\n", H1_ERR_BAD},            // bare CR
	    {"GET / HTTP/1.1\nHost: a\n\n", H1_ERR_BAD},                              // bare LF
	    {"GET / HTTP/1.1\r\nHost: a\r\nX: y\x01\r\n\r\n", H1_ERR_BAD},           // control byte
	    {std::string("GET / HTTP/1.1\r\nHost: a\r\nX: y\0z\r\n\r\n", 35), H1_ERR_BAD},   // NUL
	    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", H1_ERR_BAD},                       // space before colon
	    {"GET / HTTP/1.1\r\n: a\r\n\r\n", H1_ERR_BAD},                            // empty name
	    {"GET / HTTP/1.1\r\nX(y): a\r\nHost: a\r\n\r\n", H1_ERR_BAD},             // non-token name
	    {"GET / HTTP/1.1\r\n\r\n", H1_ERR_BAD},                                   // no Host
	    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", H1_ERR_BAD},             // two Hosts
	    {"GET http://evil.test/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_ERR_BAD},        // authority != Host
	    {"GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_ERR_BAD},
	    {"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", H1_ERR_BAD},                     // space in target
	    {"GET /\r\n\r\n", H1_ERR_BAD},                                            // no version
	    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", H1_ERR_VERSION},
	    {"GET / HTTX/1.1\r\nHost: a\r\n\r\n", H1_ERR_BAD},
	    {"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", H1_ERR_BAD},
	    {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", H1_ERR_CODING},
	    {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", H1_ERR_BAD},
	};
	for (const auto &c : cases) {
		struct h1_msg m;
		EXPECT_EQ(parse_all_ways(c.first, m), c.second) << c.first;
		EXPECT_NE(h1_error_text(&m, c.second), nullptr);
	}
	EXPECT_EQ(h1_error_status(H1_ERR_BAD), 400);
	EXPECT_EQ(h1_error_status(H1_ERR_TOO_LARGE), 431);
	EXPECT_EQ(h1_error_status(H1_ERR_CODING), 501);
	EXPECT_EQ(h1_error_status(H1_ERR_VERSION), 505);
}

// The line scanner looks eight bytes at a time: a byte a head may not hold must be
// caught at every offset of a word, in the start line, a name and a value, and the
// bytes a value may hold (tab, obs-text) must pass at every offset.
TEST(H1, EveryByteAtEveryOffset)
{
	const std::string head = "GET /abcdefghijklmnopq HTTP/1.1\r\nHost: a\r\n";
	const std::string name = "X-Long-Header-Name", value = "0123456789abcdefghijklmnopqrstuv";
	const std::string tail = "\r\n\r\n";
	for (size_t at = 0; at < value.size(); at++) {
		for (int bad : {0x00, 0x01, 0x0b, 0x1f, 0x7f, 13, 10}) {
			std::string v = value;
			v[at] = (char)bad;
			struct h1_msg m;
			EXPECT_EQ(parse_all_ways(head + name + ": " + v + tail, m), H1_ERR_BAD)
			    << "byte " << (int)bad << " at " << at << " of the value";
		}
		for (int ok : {9, 32, 0x80, 0xff, 126}) {
			std::string v = value;
			v[at] = (char)ok;
			struct h1_msg m;
			EXPECT_EQ(parse_all_ways(head + name + ": " + v + tail, m), H1_DONE)
			    << "byte " << (int)ok << " at " << at << " of the value";
			EXPECT_EQ(m.nheaders, 2u);
		}
	}
	for (size_t at = 0; at < name.size(); at++) {
		for (int bad : {0x00, 0x09, 0x7f, 13, 32, 0x80}) {
			std::string n = name;
			n[at] = (char)bad;
			struct h1_msg m;
			EXPECT_EQ(parse_all_ways(head + n + ": " + value + tail, m), H1_ERR_BAD)
			    << "byte " << (int)bad << " at " << at << " of the name";
		}
	}
	for (size_t at = 5; at < 21; at++) {
		for (int bad : {0x00, 0x09, 0x7f, 13, 10}) {
			std::string h = head;
			h[at] = (char)bad;
			struct h1_msg m;
			EXPECT_EQ(parse_all_ways(h + tail.substr(2), m), H1_ERR_BAD)
			    << "byte " << (int)bad << " at " << at << " of the target";
		}
	}
}

// Names take a fast path for letters, digits and '-' (16 at a time); every other token
// byte must still pass and every separator still fail, wherever in a long name it falls.
TEST(H1, NameBytesAtEveryOffset)
{
	const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
	const std::string name = "X-A-Rather-Long-Header-Name-0123";
	for (size_t at = 0; at < name.size(); at++) {
		for (char ok : std::string("!#$%&'*+-.^_`|~09azAZ")) {
			std::string n = name;
			n[at] = ok;
			struct h1_msg m;
			ASSERT_EQ(parse_all_ways(head + n + ": v\r\n\r\n", m), H1_DONE)
			    << "'" << ok << "' at " << at << " of the name";
			EXPECT_EQ(m.headers[1].name.len, name.size());
		}
		for (char bad : std::string("\"(),/;<=>?@[\\]{}")) {
			std::string n = name;
			n[at] = bad;
			struct h1_msg m;
			EXPECT_EQ(parse_all_ways(head + n + ": v\r\n\r\n", m), H1_ERR_BAD)
			    << "'" << bad << "' at " << at << " of the name";
		}
	}
	// A colon inside ends the name there: the rest belongs to the value.
	struct h1_msg m;
	ASSERT_EQ(parse_all_ways(head + "X-Name-Sixteen-Bytes:x:y\r\n\r\n", m), H1_DONE);
	EXPECT_EQ(m.headers[1].name.len, 20u);
}

TEST(H1, Limits)
{
	std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(40000, 'a') + "\r\n\r\n";
	struct h1_msg m;
	h1_req_init(&m, 32 * 1024);
	EXPECT_EQ(h1_parse(&m, big.data(), big.size()), H1_ERR_TOO_LARGE);
	std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
	for (int i = 0; i < H1_MAX_HEADERS; i++)
		many += "X: 1\r\n";
	many += "\r\n";
	h1_req_init(&m, 0);
	EXPECT_EQ(h1_parse(&m, many.data(), many.size()), H1_ERR_TOO_LARGE);
	// Exactly at the limit, complete: fine.
	std::string fits = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	h1_req_init(&m, (uint32_t)fits.size());
	EXPECT_EQ(h1_parse(&m, fits.data(), fits.size()), H1_DONE);
}

TEST(H1, Responses)
{
	struct h1_msg m;
	std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
	ASSERT_EQ(parse_all_ways(in, m, false), H1_DONE);
	EXPECT_EQ(m.status, 200);
	EXPECT_EQ(span(in, m.status_rest), "200 OK");
	EXPECT_TRUE(m.keepalive);
	in = "HTTP/1.1 204 No Content\r\n\r\n";
	ASSERT_EQ(parse_all_ways(in, m, false), H1_DONE);
	EXPECT_TRUE(m.no_body);
	in = "HTTP/1.1 200 OK\r\n\r\n";
	ASSERT_EQ(parse_all_ways(in, m, false), H1_DONE);
	EXPECT_TRUE(m.close_delimited);
	EXPECT_FALSE(m.keepalive);
	in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
	ASSERT_EQ(parse_all_ways(in, m, false), H1_DONE);
	EXPECT_TRUE(m.close_delimited);
	in = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
	ASSERT_EQ(parse_all_ways(in, m, false), H1_DONE);
	EXPECT_TRUE(m.upgrade);
	EXPECT_TRUE(m.no_body);
	in = "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n";
	EXPECT_EQ(parse_all_ways(in, m, false), H1_DONE);
	EXPECT_EQ(parse_all_ways("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", m, false),
	          H1_ERR_BAD);
	EXPECT_EQ(parse_all_ways("HTTP/1.1 2000 OK\r\n\r\n", m, false), H1_ERR_BAD);
	EXPECT_EQ(parse_all_ways("HTTP/1.1 20 OK\r\n\r\n", m, false), H1_ERR_BAD);
	h1_resp_init(&m, 0, true);
	in = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
	ASSERT_EQ(h1_parse(&m, in.data(), in.size()), H1_DONE);
	EXPECT_TRUE(m.no_body) << "the answer to HEAD has no body whatever it says";
}

TEST(H1, AuthSchemesThatBindTheConnection)
{
	auto binds = [](const std::string &v) { return h1_auth_binds_connection(v.data(), v.size()); };
	// credentials
	EXPECT_TRUE(binds("NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw=="));
	EXPECT_TRUE(binds("Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag"));
	EXPECT_TRUE(binds("negotiate abc"));
	EXPECT_TRUE(binds("NTLM"));
	EXPECT_FALSE(binds("Basic dXNlcjpwYXNz"));
	EXPECT_FALSE(binds("Bearer eyJhbGciOi.NTLM.x"));
	EXPECT_FALSE(binds("NTLMv2 abc"));
	EXPECT_FALSE(binds("XNTLM abc"));
	EXPECT_FALSE(binds(""));
	// challenges, one or several per header
	EXPECT_TRUE(binds("Negotiate, NTLM"));
	EXPECT_TRUE(binds("Basic realm=\"mail\", charset=\"UTF-8\", NTLM"));
	EXPECT_TRUE(binds("Basic realm=\"a, NTLM\" , Negotiate"));
	EXPECT_FALSE(binds("Basic realm=\"NTLM\""));
	EXPECT_FALSE(binds("Basic realm=\"x, Negotiate\""));
	EXPECT_FALSE(binds("Basic realm=NTLM"));
	EXPECT_FALSE(binds("Bearer realm=\"x\", error=\"invalid_token\", negotiate=1"));
	EXPECT_FALSE(binds("Basic realm=\"a\\\"NTLM\""));
	EXPECT_TRUE(binds("\tNTLM"));
	EXPECT_FALSE(binds("\"NTLM\""));
}

TEST(H1, HostNormalize)
{
	char out[256];
	uint16_t port;
	auto norm = [&](const std::string &h) -> std::string {
		if (h1_host_normalize(h.data(), h.size(), out, sizeof(out), &port) < 0)
			return "ERR";
		return std::string(out) + (port ? ":" + std::to_string(port) : "");
	};
	EXPECT_EQ(norm("Mail.Contoso.TEST"), "mail.contoso.test");
	EXPECT_EQ(norm("mail.contoso.test."), "mail.contoso.test");
	EXPECT_EQ(norm("mail.contoso.test:443"), "mail.contoso.test:443");
	EXPECT_EQ(norm("mail.contoso.test.:8080"), "mail.contoso.test:8080");
	EXPECT_EQ(norm("xn--mnchen-3ya.test"), "xn--mnchen-3ya.test");
	EXPECT_EQ(norm("[::1]:8443"), "[::1]:8443");
	EXPECT_EQ(norm("[::1]"), "[::1]");
	EXPECT_EQ(norm("a.test:0"), "ERR");
	EXPECT_EQ(norm("a.test:99999"), "ERR");
	EXPECT_EQ(norm("a.test:"), "ERR");
	EXPECT_EQ(norm("a b"), "ERR");
	EXPECT_EQ(norm("a/b"), "ERR");
	EXPECT_EQ(norm("[::1"), "ERR");
	EXPECT_EQ(norm(""), "ERR");
	EXPECT_EQ(norm("."), "ERR");
}

// Feeds a chunked body in every split; returns the result and how much was used.
std::pair<enum h1_result, size_t> chunked_all_ways(const std::string &in)
{
	struct h1_chunked c;
	h1_chunked_init(&c);
	size_t used;
	enum h1_result whole = h1_chunked_feed(&c, in.data(), in.size(), &used);
	for (size_t cut = 1; cut < in.size(); cut++) {
		h1_chunked_init(&c);
		size_t u1 = 0, u2 = 0;
		enum h1_result r = h1_chunked_feed(&c, in.data(), cut, &u1);
		if (r == H1_NEED_MORE) {
			EXPECT_EQ(u1, cut);
			r = h1_chunked_feed(&c, in.data() + cut, in.size() - cut, &u2);
		}
		EXPECT_EQ(r, whole) << "split at " << cut;
		if (r == H1_DONE && whole == H1_DONE) {
			EXPECT_EQ(u1 + u2, used) << "split at " << cut;
		}
	}
	return {whole, used};
}

TEST(H1, Chunked)
{
	std::string body = "5\r\nhello\r\nA;name=value\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
	auto r = chunked_all_ways(body + "GET /next");
	EXPECT_EQ(r.first, H1_DONE);
	EXPECT_EQ(r.second, body.size()) << "pipelined bytes after the body are left alone";
	EXPECT_EQ(chunked_all_ways("0\r\n\r\n").first, H1_DONE);
	EXPECT_EQ(chunked_all_ways("5\r\nhel").first, H1_NEED_MORE);
	EXPECT_EQ(chunked_all_ways("10000000000000000\r\n").first, H1_ERR_BAD);    // 17 digits
	EXPECT_EQ(chunked_all_ways("fffffffffffffff0\r\n").first, H1_ERR_BAD);
	EXPECT_EQ(chunked_all_ways("x\r\n").first, H1_ERR_BAD);
	EXPECT_EQ(chunked_all_ways("\r\n").first, H1_ERR_BAD);
	EXPECT_EQ(chunked_all_ways("5\r\nhelloX\r\n").first, H1_ERR_BAD);        // data longer than its size
	EXPECT_EQ(chunked_all_ways("5\nhello\r\n").first, H1_ERR_BAD);           // bare LF
	EXPECT_EQ(chunked_all_ways("5;" + std::string(5000, 'e') + "\r\n").first, H1_ERR_BAD);
	EXPECT_EQ(chunked_all_ways("0\r\nX: " + std::string(20000, 't') + "\r\n\r\n").first, H1_ERR_BAD);
	EXPECT_EQ(chunked_all_ways("0\r\nX: y\n\r\n").first, H1_ERR_BAD);
}

} // namespace
