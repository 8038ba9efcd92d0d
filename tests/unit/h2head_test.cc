// h2head: HTTP/2 header lists become HTTP/1.1 heads that h1_parse reads back
// as meant, every smuggling shape of RFC 9113 8.2 refused; responses come back
// without their hop-by-hop fields.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "proto/h1.h"
#include "proto/h2head.h"
}

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Req {
	std::vector<char> arena = std::vector<char>(4096);
	struct h2head_req r;
	enum h2head_result last = H2HEAD_OK;

	explicit Req(const Fields &f)
	{
		h2head_req_init(&r, arena.data(), (uint32_t)arena.size());
		for (const auto &kv : f) {
			last = h2head_req_add(&r, kv.first.data(), kv.first.size(), kv.second.data(), kv.second.size());
			if (last != H2HEAD_OK)
				return;
		}
		last = h2head_req_end(&r);
	}

	struct h1_msg written;

	// The head, and in written the h1_msg handed over with it.
	std::string write(bool body_follows, const char *ws_key = nullptr, bool close = false)
	{
		char out[8192];
		struct h2head_write w = { body_follows, close, ws_key };
		h1_req_init(&written, 0);
		size_t n = h2head_req_write(&r, &w, out, sizeof(out), &written);
		return std::string(out, n);
	}
};

const Fields kGet = {
	{ ":method", "GET" }, { ":scheme", "https" }, { ":authority", "mail.contoso.test" }, { ":path", "/owa/?a=1" },
	{ "accept", "*/*" },
};

Fields with(Fields f, const std::string &name, const std::string &value)
{
	f.emplace_back(name, value);
	return f;
}

std::string span(const std::string &buf, struct h1_span s)
{
	return buf.substr(s.off, s.len);
}

TEST(H2Head, GetBecomesAnOriginFormRequestH1Reads)
{
	Req q(kGet);
	ASSERT_EQ(q.last, H2HEAD_OK) << q.r.why;
	std::string head = q.write(false);
	EXPECT_EQ(head, "GET /owa/?a=1 HTTP/1.1\r\nhost: mail.contoso.test\r\naccept: */*\r\n\r\n");
	struct h1_msg m;
	h1_req_init(&m, 0);
	ASSERT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << m.why;
	EXPECT_EQ(span(head, m.method), "GET");
	EXPECT_EQ(span(head, m.path), "/owa/?a=1");
	EXPECT_EQ(span(head, m.host), "mail.contoso.test");
	EXPECT_FALSE(m.chunked);
	EXPECT_FALSE(m.has_content_length);
}

TEST(H2Head, CookieCrumbsAreJoinedOnce)
{
	Fields f = with(with(with(kGet, "cookie", "a=1"), "x-mid", "m"), "cookie", "b=2");
	Req q(f);
	ASSERT_EQ(q.last, H2HEAD_OK) << q.r.why;
	std::string head = q.write(false);
	EXPECT_NE(head.find("\r\ncookie: a=1; b=2\r\n"), std::string::npos) << head;
	EXPECT_EQ(head.find("cookie: a=1\r\n"), std::string::npos) << head;
	EXPECT_NE(head.find("\r\nx-mid: m\r\n"), std::string::npos) << head;
}

TEST(H2Head, BodyWithoutLengthIsSentChunked)
{
	Fields post = kGet;
	post[0].second = "POST";
	Req q(post);
	ASSERT_EQ(q.last, H2HEAD_OK);
	std::string head = q.write(true);
	struct h1_msg m;
	h1_req_init(&m, 0);
	ASSERT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << m.why;
	EXPECT_TRUE(m.chunked);
	EXPECT_EQ(q.write(false).find("transfer-encoding"), std::string::npos);
}

TEST(H2Head, ContentLengthIsRecordedAndKept)
{
	Fields post = with(kGet, "content-length", "1234");
	post[0].second = "POST";
	Req q(post);
	ASSERT_EQ(q.last, H2HEAD_OK);
	EXPECT_TRUE(q.r.has_content_length);
	EXPECT_EQ(q.r.content_length, 1234u);
	std::string head = q.write(true);
	struct h1_msg m;
	h1_req_init(&m, 0);
	ASSERT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << m.why;
	EXPECT_TRUE(m.has_content_length);
	EXPECT_EQ(m.content_length, 1234u);
	EXPECT_FALSE(m.chunked);
}

TEST(H2Head, TeTrailersIsTheOneTeAllowedAndGoesNoFurther)
{
	Req q(with(kGet, "te", "trailers"));
	ASSERT_EQ(q.last, H2HEAD_OK);
	EXPECT_TRUE(q.r.te_trailers);
	EXPECT_EQ(q.write(false).find("te:"), std::string::npos);
	EXPECT_EQ(Req(with(kGet, "te", "gzip")).last, H2HEAD_ERR_MALFORMED);
	EXPECT_EQ(Req(with(kGet, "te", "trailers, gzip")).last, H2HEAD_ERR_MALFORMED);
}

TEST(H2Head, HostAloneStandsInForAuthority)
{
	Fields f = { { ":method", "GET" }, { ":scheme", "https" }, { ":path", "/" }, { "host", "a.test:8443" } };
	Req q(f);
	ASSERT_EQ(q.last, H2HEAD_OK) << q.r.why;
	EXPECT_EQ(q.write(false), "GET / HTTP/1.1\r\nhost: a.test:8443\r\n\r\n");
	Req same(with(kGet, "host", "MAIL.contoso.test"));
	EXPECT_EQ(same.last, H2HEAD_OK);
	EXPECT_EQ(same.write(false).find("MAIL"), std::string::npos);
}

TEST(H2Head, AsteriskOnlyForOptions)
{
	Fields f = kGet;
	f[3].second = "*";
	EXPECT_EQ(Req(f).last, H2HEAD_ERR_MALFORMED);
	f[0].second = "OPTIONS";
	Req q(f);
	ASSERT_EQ(q.last, H2HEAD_OK);
	std::string head = q.write(false);
	struct h1_msg m;
	h1_req_init(&m, 0);
	EXPECT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << m.why;
}

struct Bad {
	const char *what;
	Fields fields;
	enum h2head_result want;
};

TEST(H2Head, EverySmugglingShapeIsRefused)
{
	Fields no_method(kGet.begin() + 1, kGet.end());
	Fields no_scheme = kGet, no_path = kGet;
	no_scheme.erase(no_scheme.begin() + 1);
	no_path.erase(no_path.begin() + 3);
	Fields late_pseudo = kGet;
	late_pseudo.insert(late_pseudo.begin() + 2, { "x-a", "1" });
	Fields rel_path = kGet;
	rel_path[3].second = "owa";
	Fields ftp = kGet;
	ftp[1].second = "ftp";
	Fields userinfo = kGet;
	userinfo[2].second = "user@mail.contoso.test";
	Fields space_path = kGet;
	space_path[3].second = "/a b";
	Fields bad_method = kGet;
	bad_method[0].second = "G(T";
	Fields connect = { { ":method", "CONNECT" }, { ":authority", "a.test:443" } };
	Fields connect_case = kGet;
	connect_case[0].second = "CONNECt";
	Fields ws_other = { { ":method", "CONNECT" }, { ":protocol", "h2c" }, { ":scheme", "https" },
			    { ":path", "/" },      { ":authority", "a.test" } };
	Fields protocol_get = with(kGet, ":protocol", "websocket");
	protocol_get.insert(protocol_get.begin() + 1, { ":protocol", "websocket" });
	protocol_get.pop_back();
	const std::vector<Bad> bad = {
		{ "CR in a value", with(kGet, "x-a", "1\r\nx-b: 2"), H2HEAD_ERR_MALFORMED },
		{ "LF in a value", with(kGet, "x-a", "1\nx"), H2HEAD_ERR_MALFORMED },
		{ "NUL in a value", with(kGet, "x-a", std::string("1\0x", 3)), H2HEAD_ERR_MALFORMED },
		{ "DEL in a value", with(kGet, "x-a", "1\x7f"), H2HEAD_ERR_MALFORMED },
		{ "NUL in a name", with(kGet, std::string("x\0a", 3), "1"), H2HEAD_ERR_MALFORMED },
		{ "CR in a name", with(kGet, "x\ra", "1"), H2HEAD_ERR_MALFORMED },
		{ "colon in a name", with(kGet, "x:a", "1"), H2HEAD_ERR_MALFORMED },
		{ "space in a name", with(kGet, "x a", "1"), H2HEAD_ERR_MALFORMED },
		{ "empty name", with(kGet, "", "1"), H2HEAD_ERR_MALFORMED },
		{ "leading space", with(kGet, "x-a", " 1"), H2HEAD_ERR_MALFORMED },
		{ "trailing space", with(kGet, "x-a", "1 "), H2HEAD_ERR_MALFORMED },
		{ "leading tab", with(kGet, "x-a", "\t1"), H2HEAD_ERR_MALFORMED },
		{ "trailing tab", with(kGet, "x-a", "1\t"), H2HEAD_ERR_MALFORMED },
		{ "upper-case name", with(kGet, "X-A", "1"), H2HEAD_ERR_MALFORMED },
		{ "connection", with(kGet, "connection", "close"), H2HEAD_ERR_MALFORMED },
		{ "keep-alive", with(kGet, "keep-alive", "timeout=5"), H2HEAD_ERR_MALFORMED },
		{ "proxy-connection", with(kGet, "proxy-connection", "keep-alive"), H2HEAD_ERR_MALFORMED },
		{ "upgrade", with(kGet, "upgrade", "websocket"), H2HEAD_ERR_MALFORMED },
		{ "transfer-encoding", with(kGet, "transfer-encoding", "chunked"), H2HEAD_ERR_MALFORMED },
		{ "content-length twice", with(with(kGet, "content-length", "1"), "content-length", "1"),
		  H2HEAD_ERR_MALFORMED },
		{ "content-length list", with(kGet, "content-length", "1, 1"), H2HEAD_ERR_MALFORMED },
		{ "content-length sign", with(kGet, "content-length", "+1"), H2HEAD_ERR_MALFORMED },
		{ "content-length empty", with(kGet, "content-length", ""), H2HEAD_ERR_MALFORMED },
		{ "host twice", with(with(kGet, "host", "mail.contoso.test"), "host", "mail.contoso.test"),
		  H2HEAD_ERR_MALFORMED },
		{ "host not :authority", with(kGet, "host", "evil.test"), H2HEAD_ERR_MALFORMED },
		{ "unknown pseudo", with(kGet, ":foo", "1"), H2HEAD_ERR_MALFORMED },
		{ "pseudo after regular", late_pseudo, H2HEAD_ERR_MALFORMED },
		{ "pseudo twice", with(kGet, ":path", "/x"), H2HEAD_ERR_MALFORMED },
		{ "no :method", no_method, H2HEAD_ERR_MALFORMED },
		{ "no :scheme", no_scheme, H2HEAD_ERR_MALFORMED },
		{ "no :path", no_path, H2HEAD_ERR_MALFORMED },
		{ "relative :path", rel_path, H2HEAD_ERR_MALFORMED },
		{ "space in :path", space_path, H2HEAD_ERR_MALFORMED },
		{ "scheme not http(s)", ftp, H2HEAD_ERR_MALFORMED },
		{ "userinfo in :authority", userinfo, H2HEAD_ERR_MALFORMED },
		{ "method not a token", bad_method, H2HEAD_ERR_MALFORMED },
		{ ":protocol on GET", protocol_get, H2HEAD_ERR_MALFORMED },
		{ "plain CONNECT", connect, H2HEAD_ERR_METHOD },
		{ "CONNECT in another case (fuzzer)", connect_case, H2HEAD_ERR_METHOD },
		{ ":protocol not websocket", ws_other, H2HEAD_ERR_METHOD },
	};
	for (const auto &b : bad) {
		Req q(b.fields);
		EXPECT_EQ(q.last, b.want) << b.what;
		if (q.last != H2HEAD_OK) {
			EXPECT_NE(q.r.why, nullptr) << b.what;
		}
	}
}

TEST(H2Head, ObsTextAndInnerSpacesPass)
{
	Req q(with(kGet, "x-name", "J\xc3\xa9r\xc3\xb4me  \tB"));
	ASSERT_EQ(q.last, H2HEAD_OK) << q.r.why;
	std::string head = q.write(false);
	struct h1_msg m;
	h1_req_init(&m, 0);
	EXPECT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << m.why;
}

// The h1_msg handed to the session with the head is the one h1_parse reads from it.
void expect_written_is_parsed(Req &q, const std::string &head)
{
	struct h1_msg m;
	h1_req_init(&m, 0);
	ASSERT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << m.why << head;
	EXPECT_EQ(memcmp(&m, &q.written, offsetof(struct h1_msg, headers)), 0) << head;
	ASSERT_EQ(m.nheaders, q.written.nheaders) << head;
	for (size_t i = 0; i < m.nheaders; i++) {
		EXPECT_EQ(span(head, m.headers[i].name), span(head, q.written.headers[i].name)) << i;
		EXPECT_EQ(span(head, m.headers[i].value), span(head, q.written.headers[i].value)) << i;
		EXPECT_EQ(m.headers[i].value.off, q.written.headers[i].value.off) << i;
	}
}

TEST(H2Head, TheWrittenHeadComesWithItsParsedMessage)
{
	Req get(with(with(kGet, "x-empty", ""), "expect", "100-continue"));
	ASSERT_EQ(get.last, H2HEAD_OK) << get.r.why;
	std::string head = get.write(false, nullptr, true);
	expect_written_is_parsed(get, head);
	EXPECT_TRUE(get.written.conn_close);
	EXPECT_FALSE(get.written.keepalive);
	EXPECT_TRUE(get.written.expect_continue);
	// Empty cookie crumbs: the joined value ends in "; ", whose space h1_parse trims.
	Req crumbs(with(with(with(kGet, "cookie", "a=1"), "cookie", ""), "cookie", ""));
	ASSERT_EQ(crumbs.last, H2HEAD_OK) << crumbs.r.why;
	head = crumbs.write(true);
	EXPECT_NE(head.find("\r\ncookie: a=1; ; \r\n"), std::string::npos) << head;
	expect_written_is_parsed(crumbs, head);
	EXPECT_TRUE(crumbs.written.chunked);
	Req post(with(with(kGet, "content-length", "12"), "cookie", "b=2"));
	ASSERT_EQ(post.last, H2HEAD_OK) << post.r.why;
	head = post.write(true, nullptr, true);
	expect_written_is_parsed(post, head);
	EXPECT_EQ(post.written.content_length, 12u);
}

TEST(H2Head, ExtendedConnectBecomesAnUpgrade)
{
	Fields f = { { ":method", "CONNECT" }, { ":protocol", "websocket" }, { ":scheme", "https" },
		     { ":path", "/chat" },    { ":authority", "a.test" },      { "sec-websocket-version", "13" } };
	Req q(f);
	ASSERT_EQ(q.last, H2HEAD_OK) << q.r.why;
	EXPECT_TRUE(h2head_req_is_websocket(&q.r));
	EXPECT_EQ(q.write(false), "");
	std::string head = q.write(false, "dGhlIHNhbXBsZSBub25jZQ==");
	struct h1_msg m;
	h1_req_init(&m, 0);
	ASSERT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << m.why << head;
	EXPECT_EQ(span(head, m.method), "GET");
	EXPECT_TRUE(m.upgrade);
	EXPECT_NE(head.find("sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), std::string::npos);
	EXPECT_EQ(head.find("sec-websocket-version: 13\r\nsec-websocket-version"), std::string::npos) << head;
	expect_written_is_parsed(q, head);
	Req bare(Fields(f.begin(), f.end() - 1));
	head = bare.write(false, "dGhlIHNhbXBsZSBub25jZQ==", true);
	EXPECT_NE(head.find("sec-websocket-version: 13\r\nconnection: close\r\n\r\n"), std::string::npos) << head;
	expect_written_is_parsed(bare, head);
	EXPECT_TRUE(bare.written.upgrade);
	EXPECT_EQ(Req(with(f, "content-length", "0")).last, H2HEAD_ERR_MALFORMED);
}

TEST(H2Head, FullArenaKeepsNothingAndTheFieldCanBeAddedAgain)
{
	std::vector<char> arena(8);
	struct h2head_req r;
	h2head_req_init(&r, arena.data(), (uint32_t)arena.size());
	ASSERT_EQ(h2head_req_add(&r, ":method", 7, "GET", 3), H2HEAD_OK);
	EXPECT_EQ(h2head_req_add(&r, ":path", 5, "/a-long-path", 12), H2HEAD_ERR_FULL);
	EXPECT_EQ(r.arena_used, 3u);
	std::vector<char> bigger(256);
	memcpy(bigger.data(), arena.data(), r.arena_used);
	r.arena = bigger.data();
	r.arena_cap = (uint32_t)bigger.size();
	ASSERT_EQ(h2head_req_add(&r, ":path", 5, "/a-long-path", 12), H2HEAD_OK);
	ASSERT_EQ(h2head_req_add(&r, ":scheme", 7, "https", 5), H2HEAD_OK);
	ASSERT_EQ(h2head_req_add(&r, ":authority", 10, "a.test", 6), H2HEAD_OK);
	ASSERT_EQ(h2head_req_end(&r), H2HEAD_OK);
	char out[256];
	struct h2head_write w = {};
	size_t n = h2head_req_write(&r, &w, out, sizeof(out), nullptr);
	EXPECT_EQ(std::string(out, n), "GET /a-long-path HTTP/1.1\r\nhost: a.test\r\n\r\n");
	EXPECT_EQ(h2head_req_write(&r, &w, out, 20, nullptr), 0u);
}

TEST(H2Head, MoreFieldsThanAnH1HeadHoldsIsTooMany)
{
	std::vector<char> arena(64 * 1024);
	struct h2head_req r;
	h2head_req_init(&r, arena.data(), (uint32_t)arena.size());
	enum h2head_result e = H2HEAD_OK;
	for (int i = 0; i <= H2HEAD_MAX_FIELDS && e == H2HEAD_OK; i++)
		e = h2head_req_add(&r, "x-a", 3, "1", 1);
	EXPECT_EQ(e, H2HEAD_ERR_TOO_MANY);
	EXPECT_EQ(r.nfields, (uint32_t)H2HEAD_MAX_FIELDS);
}

std::vector<std::pair<std::string, std::string>> resp_fields(const std::string &head, bool ext_connect)
{
	struct h1_msg m;
	h1_resp_init(&m, 0, false);
	EXPECT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << m.why;
	char scratch[1024];
	struct h2head_field f[64];
	int n = h2head_resp_fields(&m, head.data(), ext_connect, scratch, sizeof(scratch), f, 64);
	EXPECT_GT(n, 0);
	std::vector<std::pair<std::string, std::string>> out;
	for (int i = 0; i < n; i++)
		out.emplace_back(std::string(f[i].name, f[i].name_len), std::string(f[i].value, f[i].value_len));
	return out;
}

TEST(H2Head, ResponseDropsHopByHopAndLowerCases)
{
	auto f = resp_fields("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: keep-alive, X-Hop\r\n"
			     "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n"
			     "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n\r\n",
			     false);
	decltype(f) want = { { ":status", "200" }, { "content-type", "text/html" }, { "set-cookie", "a=1" },
			     { "set-cookie", "b=2" } };
	EXPECT_EQ(f, want);
}

TEST(H2Head, ResponseNamesOfAnyLengthAreLowerCasedWholly)
{
	// Eight bytes at a time and the rest one by one: every letter, and tchars just past Z.
	auto f = resp_fields("HTTP/1.1 200 OK\r\nX-ABCDEFGHIJKLMNOPQRSTUVWXYZ-^`|~: 1\r\nAZaz09^_|: 2\r\n"
			     "Access-Control-Allow-Origin: *\r\n\r\n",
			     false);
	decltype(f) want = { { ":status", "200" },
			     { "x-abcdefghijklmnopqrstuvwxyz-^`|~", "1" },
			     { "azaz09^_|", "2" },
			     { "access-control-allow-origin", "*" } };
	EXPECT_EQ(f, want);
}

// The common names go out as literals (nghttp2 keeps a pointer to them, no copy), in
// lower case whatever the back end wrote; the others are lower-cased into the scratch.
TEST(H2Head, CommonResponseNamesAreLiterals)
{
	const std::string head = "HTTP/1.1 200 OK\r\nCONTENT-TYPE: text/plain\r\neTaG: \"1\"\r\n"
	                         "Strict-Transport-Security: max-age=1\r\nX-Mine: 1\r\nDatE: x\r\n\r\n";
	struct h1_msg m;
	h1_resp_init(&m, 0, false);
	ASSERT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE);
	char scratch[512];
	struct h2head_field f[8];
	ASSERT_EQ(h2head_resp_fields(&m, head.data(), false, scratch, sizeof(scratch), f, 8), 6);
	const char *want[] = { ":status", "content-type", "etag", "strict-transport-security", "x-mine", "date" };
	for (int i = 0; i < 6; i++) {
		EXPECT_EQ(std::string(f[i].name, f[i].name_len), want[i]);
		bool in_scratch = f[i].name >= scratch && f[i].name < scratch + sizeof(scratch);
		EXPECT_EQ(f[i].name_static, i != 4) << want[i];
		EXPECT_EQ(in_scratch, i == 4) << want[i];
	}
}

TEST(H2Head, WebSocket101BecomesA200)
{
	auto f = resp_fields("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Server: iis\r\n\r\n",
			     true);
	decltype(f) want = { { ":status", "200" }, { "x-server", "iis" } };
	EXPECT_EQ(f, want);
}

TEST(H2Head, ResponseTooBigForTheCallersArraysIsRefused)
{
	std::string head = "HTTP/1.1 404 Not Found\r\nA: 1\r\nB: 2\r\n\r\n";
	struct h1_msg m;
	h1_resp_init(&m, 0, false);
	ASSERT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE);
	char scratch[64];
	struct h2head_field f[2];
	EXPECT_EQ(h2head_resp_fields(&m, head.data(), false, scratch, sizeof(scratch), f, 2), -1);
	EXPECT_EQ(h2head_resp_fields(&m, head.data(), false, scratch, 4, f, 2), -1);
	struct h2head_field f3[3];
	ASSERT_EQ(h2head_resp_fields(&m, head.data(), false, scratch, sizeof(scratch), f3, 3), 3);
	EXPECT_EQ(std::string(f3[0].value, 3), "404");
	EXPECT_EQ(std::string(f3[2].name, 1), "b");
}

TEST(H2Head, TrailerSectionKeepsSafeFieldsOnly)
{
	std::string block = "X-Checksum: sha-1\r\nServer-Timing:  db;dur=53 \r\nContent-Length: 9\r\n"
			    "Connection: close\r\nSet-Cookie: a=1\r\n folded\r\nBad Name: x\r\nno-colon\r\n"
			    "X-Ctl: a\x01b\r\n\r\n";
	char scratch[256];
	struct h2head_field f[8];
	int n = h2head_trailer_fields(block.data(), block.size(), scratch, sizeof(scratch), f, 8);
	ASSERT_EQ(n, 2);
	EXPECT_EQ(std::string(f[0].name, f[0].name_len), "x-checksum");
	EXPECT_EQ(std::string(f[0].value, f[0].value_len), "sha-1");
	EXPECT_EQ(std::string(f[1].name, f[1].name_len), "server-timing");
	EXPECT_EQ(std::string(f[1].value, f[1].value_len), "db;dur=53");
	EXPECT_EQ(h2head_trailer_fields(block.data(), block.size(), scratch, sizeof(scratch), f, 1), -1);
	EXPECT_TRUE(h2head_trailer_forbidden("Transfer-Encoding", 17));
	EXPECT_TRUE(h2head_trailer_forbidden("host", 4));
	EXPECT_FALSE(h2head_trailer_forbidden("grpc-status", 11));
}

} // namespace
