// ClientHello reader: real captured hellos, synthetic ones from a small builder,
// every split and every error the reader promises to report.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "proto/hello.h"
}
#include "hello_captured.h"

namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes &b, size_t v) { b.push_back(uint8_t(v >> 8)); b.push_back(uint8_t(v)); }
void put24(Bytes &b, size_t v) { b.push_back(uint8_t(v >> 16)); put16(b, v & 0xffff); }
void append(Bytes &b, const Bytes &x) { b.insert(b.end(), x.begin(), x.end()); }

Bytes ext(uint16_t type, const Bytes &data)
{
	Bytes e;
	put16(e, type);
	put16(e, data.size());
	append(e, data);
	return e;
}

Bytes sni_ext(const std::string &name, uint8_t name_type = 0)
{
	Bytes entry;
	entry.push_back(name_type);
	put16(entry, name.size());
	entry.insert(entry.end(), name.begin(), name.end());
	Bytes list;
	put16(list, entry.size());
	append(list, entry);
	return ext(0, list);
}

// A ClientHello handshake message (no record header) with these extensions.
Bytes hello_msg(const std::vector<Bytes> &exts, bool with_ext_block = true)
{
	Bytes body;
	put16(body, 0x0303);
	body.insert(body.end(), 32, 0xab);          // random
	body.push_back(32);                         // session id
	body.insert(body.end(), 32, 0xcd);
	put16(body, 4);                             // two cipher suites
	put16(body, 0x1301);
	put16(body, 0x1302);
	body.push_back(1);                          // null compression
	body.push_back(0);
	if (with_ext_block) {
		Bytes all;
		for (const auto &e : exts)
			append(all, e);
		put16(body, all.size());
		append(body, all);
	}
	Bytes msg{1};
	put24(msg, body.size());
	append(msg, body);
	return msg;
}

// Wraps a handshake message in TLS records of at most `chunk` payload bytes.
Bytes records(const Bytes &msg, size_t chunk = 16384)
{
	Bytes out;
	for (size_t off = 0; off < msg.size(); off += chunk) {
		size_t n = std::min(chunk, msg.size() - off);
		out.push_back(0x16);
		put16(out, 0x0301);
		put16(out, n);
		out.insert(out.end(), msg.begin() + off, msg.begin() + off + n);
	}
	return out;
}

hello_status feed_all(hello_reader &r, const Bytes &b, size_t step = 0)
{
	hello_reader_init(&r);
	if (step == 0)
		return hello_reader_feed(&r, b.data(), b.size());
	hello_status st = HELLO_NEED_MORE;
	for (size_t off = 0; off < b.size() && st == HELLO_NEED_MORE; off += step)
		st = hello_reader_feed(&r, b.data() + off, std::min(step, b.size() - off));
	return st;
}

Bytes keyshare(size_t n) { return ext(51, Bytes(n, 0x42)); }

}  // namespace

TEST(Hello, CapturedOpensslHelloGivesLowerCasedSni)
{
	hello_reader r;
	Bytes b(openssl_hello, openssl_hello + sizeof(openssl_hello));
	ASSERT_EQ(feed_all(r, b), HELLO_DONE);
	EXPECT_TRUE(r.has_sni);
	EXPECT_STREQ(r.sni, "sts.contoso.test");
	EXPECT_EQ(r.sni_len, 16);
	EXPECT_EQ(r.legacy_version, 0x0303);
}

TEST(Hello, CapturedCurlHelloByteByByte)
{
	hello_reader r;
	Bytes b(curl_hello, curl_hello + sizeof(curl_hello));
	ASSERT_EQ(feed_all(r, b, 1), HELLO_DONE);
	EXPECT_STREQ(r.sni, "app7.apps.test");
}

TEST(Hello, NeedsMoreUntilTheLastByte)
{
	Bytes b = records(hello_msg({sni_ext("a.test")}));
	hello_reader r;
	hello_reader_init(&r);
	for (size_t i = 0; i + 1 < b.size(); i++)
		ASSERT_EQ(hello_reader_feed(&r, &b[i], 1), HELLO_NEED_MORE) << "at byte " << i;
	EXPECT_EQ(hello_reader_feed(&r, &b.back(), 1), HELLO_DONE);
}

TEST(Hello, NoSniExtension)
{
	hello_reader r;
	ASSERT_EQ(feed_all(r, records(hello_msg({keyshare(36)}))), HELLO_DONE);
	EXPECT_FALSE(r.has_sni);
	ASSERT_EQ(feed_all(r, records(hello_msg({}, false))), HELLO_DONE);
	EXPECT_FALSE(r.has_sni);
}

TEST(Hello, GreaseAndUnknownExtensionsAreSkipped)
{
	hello_reader r;
	Bytes m = hello_msg({ext(0x0a0a, {}), ext(0x1a1a, {0}), ext(0xfe0d, Bytes(200, 1)), sni_ext("x.home.test"),
	                     ext(0xdada, {})});
	ASSERT_EQ(feed_all(r, records(m)), HELLO_DONE);
	EXPECT_STREQ(r.sni, "x.home.test");
}

TEST(Hello, SplitAcrossTwoRecordsAtEveryOffset)
{
	Bytes m = hello_msg({keyshare(64), sni_ext("split.test")});
	for (size_t cut = 1; cut < m.size(); cut++) {
		Bytes b;
		Bytes first(m.begin(), m.begin() + cut), second(m.begin() + cut, m.end());
		append(b, records(first));
		append(b, records(second));
		hello_reader r;
		ASSERT_EQ(feed_all(r, b), HELLO_DONE) << "cut at " << cut << ": " << (r.error ? r.error : "");
		ASSERT_STREQ(r.sni, "split.test") << "cut at " << cut;
	}
}

TEST(Hello, PostQuantumHelloOverTwoRecordsByteByByte)
{
	// X25519MLKEM768 key shares make a ClientHello larger than one MTU.
	Bytes m = hello_msg({ext(0x0a0a, {}), keyshare(1216), sni_ext("sts.contoso.test")});
	ASSERT_GT(m.size(), 1300u);
	hello_reader r;
	ASSERT_EQ(feed_all(r, records(m, 1000), 1), HELLO_DONE);
	EXPECT_STREQ(r.sni, "sts.contoso.test");
}

TEST(Hello, ManyTinyRecords)
{
	Bytes m = hello_msg({sni_ext("tiny.test")});
	hello_reader r;
	ASSERT_EQ(feed_all(r, records(m, 1), 3), HELLO_DONE);
	EXPECT_STREQ(r.sni, "tiny.test");
}

TEST(Hello, UpperCaseAndTrailingDotAreNormalised)
{
	hello_reader r;
	ASSERT_EQ(feed_all(r, records(hello_msg({sni_ext("WWW.Example.COM.")}))), HELLO_DONE);
	EXPECT_STREQ(r.sni, "www.example.com");
	EXPECT_EQ(r.sni_len, 15);
}

TEST(Hello, NonHostNameEntriesAreSkipped)
{
	Bytes entry1{7};
	put16(entry1, 3);
	entry1.insert(entry1.end(), {'a', 'b', 'c'});
	Bytes entry2{0};
	put16(entry2, 6);
	entry2.insert(entry2.end(), {'h', '.', 't', 'e', 's', 't'});
	Bytes list;
	put16(list, entry1.size() + entry2.size());
	append(list, entry1);
	append(list, entry2);
	hello_reader r;
	ASSERT_EQ(feed_all(r, records(hello_msg({ext(0, list)}))), HELLO_DONE);
	EXPECT_STREQ(r.sni, "h.test");
}

TEST(Hello, NotTlsIsDecidedOnTheFirstByte)
{
	for (const char *s : {"GET / HTTP/1.1\r\n", "SSH-2.0-OpenSSH", "\x15\x03\x03"}) {
		hello_reader r;
		hello_reader_init(&r);
		EXPECT_EQ(hello_reader_feed(&r, reinterpret_cast<const uint8_t *>(s), 1), HELLO_NOT_TLS) << s;
	}
	hello_reader r;
	Bytes b{0x16, 0x02};
	EXPECT_EQ(feed_all(r, b), HELLO_NOT_TLS);
}

TEST(Hello, Sslv2HelloIsDoneWithoutSni)
{
	Bytes b{0x80, 0x2e, 0x01, 0x03, 0x01};
	hello_reader r;
	ASSERT_EQ(feed_all(r, b, 1), HELLO_DONE);
	EXPECT_TRUE(r.sslv2);
	EXPECT_FALSE(r.has_sni);
	Bytes bad{0x80, 0x2e, 0x02};
	EXPECT_EQ(feed_all(r, bad), HELLO_NOT_TLS);
}

TEST(Hello, StatusIsStickyOnceDecided)
{
	hello_reader r;
	Bytes b = records(hello_msg({sni_ext("a.test")}));
	ASSERT_EQ(feed_all(r, b), HELLO_DONE);
	EXPECT_EQ(hello_reader_feed(&r, b.data(), b.size()), HELLO_DONE);
	EXPECT_STREQ(r.sni, "a.test");
	Bytes g{'G'};
	ASSERT_EQ(feed_all(r, g), HELLO_NOT_TLS);
	EXPECT_EQ(hello_reader_feed(&r, b.data(), b.size()), HELLO_NOT_TLS);
}

struct MalformedCase {
	const char *what;
	Bytes bytes;
};

class HelloMalformed : public ::testing::TestWithParam<int> {};

std::vector<MalformedCase> malformed_cases()
{
	std::vector<MalformedCase> v;
	Bytes good = hello_msg({sni_ext("a.test")});

	Bytes wrong_type = good;
	wrong_type[0] = 2;
	v.push_back({"not a ClientHello", records(wrong_type)});

	Bytes huge{1};
	put24(huge, HELLO_MAX_BYTES + 1);
	v.push_back({"too large", records(huge)});

	Bytes zero_record{0x16, 0x03, 0x01, 0x00, 0x00};
	v.push_back({"empty record", zero_record});

	Bytes overlong_record{0x16, 0x03, 0x01, 0xff, 0xff};
	v.push_back({"record too long", overlong_record});

	Bytes bad_sid = good;
	bad_sid[4 + 2 + 32] = 33;
	v.push_back({"session id > 32", records(bad_sid)});

	// Extension length larger than the extensions block.
	Bytes overrun = hello_msg({ext(51, Bytes(10, 0))});
	overrun[overrun.size() - 12] = 0x7f;        // the extension's length, far past the block
	overrun[overrun.size() - 11] = 0xff;
	v.push_back({"extension overruns", records(overrun)});

	// The message says it is shorter than its extensions.
	Bytes shortmsg = good;
	shortmsg[3] = uint8_t(shortmsg[3] - 4);
	v.push_back({"extensions length mismatch", records(shortmsg)});

	v.push_back({"duplicate server_name", records(hello_msg({sni_ext("a.test"), sni_ext("b.test")}))});
	v.push_back({"invalid character", records(hello_msg({sni_ext("a b.test")}))});
	v.push_back({"NUL in name", records(hello_msg({sni_ext(std::string("a\0b", 3))}))});
	v.push_back({"empty name", records(hello_msg({sni_ext("")}))});
	v.push_back({"name too long", records(hello_msg({sni_ext(std::string(256, 'a'))}))});

	Bytes two_names{0, 0, 6, 'a', '.', 't', 'e', 's', 't', 0, 0, 6, 'b', '.', 't', 'e', 's', 't'};
	Bytes two_list;
	put16(two_list, two_names.size());
	append(two_list, two_names);
	v.push_back({"two host names", records(hello_msg({ext(0, two_list)}))});

	// The record says more than the ClientHello holds: whether the rest has come or not.
	Bytes longer = records(good);
	longer[4] = uint8_t(longer[4] + 3);
	v.push_back({"record longer than the hello, rest not sent", longer});
	longer.insert(longer.end(), {0x16, 0x00, 0x00});
	v.push_back({"record longer than the hello, rest sent", longer});

	Bytes alert_inside = records(Bytes(good.begin(), good.begin() + 20));
	alert_inside.insert(alert_inside.end(), {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28});
	v.push_back({"alert record inside the hello", alert_inside});
	return v;
}

TEST(Hello, EveryMalformedCaseIsReported)
{
	for (const auto &c : malformed_cases()) {
		for (size_t step : {size_t(0), size_t(1), size_t(7)}) {
			hello_reader r;
			EXPECT_EQ(feed_all(r, c.bytes, step), HELLO_MALFORMED) << c.what << " step " << step;
			EXPECT_NE(r.error, nullptr) << c.what;
			EXPECT_FALSE(r.has_sni) << c.what;
		}
	}
}

TEST(Hello, TruncatedHelloNeedsMore)
{
	Bytes b = records(hello_msg({sni_ext("a.test")}));
	b.resize(b.size() - 3);
	hello_reader r;
	EXPECT_EQ(feed_all(r, b), HELLO_NEED_MORE);
}

namespace {
Bytes alpn_ext(const std::vector<std::string> &protos)
{
	Bytes list;
	for (const auto &p : protos) {
		list.push_back(uint8_t(p.size()));
		list.insert(list.end(), p.begin(), p.end());
	}
	Bytes data;
	put16(data, list.size());
	append(data, list);
	return ext(16, data);
}
}  // namespace

// RFC 8737: a validation offers acme-tls/1; the gateway must see it before passthrough routing.
TEST(Hello, AlpnAcmeTlsIsSeenAtEveryByteSplit)
{
	const std::vector<std::pair<std::vector<std::string>, bool>> cases = {
		{ { "acme-tls/1" }, true },
		{ { "h2", "http/1.1" }, false },
		{ { "h2", "acme-tls/1" }, true },
		{ { "acme-tls/2" }, false },
		{ { "acme-tls/10" }, false },
		{ { "acme-tls/" }, false },
	};
	for (const auto &c : cases) {
		Bytes m = records(hello_msg({sni_ext("a.home.test"), alpn_ext(c.first), keyshare(36)}));
		for (size_t step : { 0, 1, 7 }) {
			hello_reader r;
			ASSERT_EQ(feed_all(r, m, step), HELLO_DONE) << c.first[0];
			EXPECT_EQ(r.alpn_acme, c.second) << c.first[0] << " step " << step;
			EXPECT_STREQ(r.sni, "a.home.test");
		}
	}
}

TEST(Hello, BrokenAlpnIsMalformed)
{
	hello_reader r;
	Bytes bad_list = ext(16, {0, 5, 2, 'h', '2'});
	EXPECT_EQ(feed_all(r, records(hello_msg({bad_list}))), HELLO_MALFORMED);
	Bytes empty_name = ext(16, {0, 1, 0});
	EXPECT_EQ(feed_all(r, records(hello_msg({empty_name}))), HELLO_MALFORMED);
	Bytes overrun = ext(16, {0, 3, 5, 'h', '2'});
	EXPECT_EQ(feed_all(r, records(hello_msg({overrun}))), HELLO_MALFORMED);
}

// Fed whole, a field or an extension is taken at once (a fast path); fed a byte at a time,
// one byte per turn. Both must decide alike on any hello, broken ones included: every byte
// of real and synthetic hellos set to values that break lengths, types and names.
TEST(Hello, WholeAndByteByByteDecideAlikeOnEveryMutation)
{
	std::vector<Bytes> hellos = {
		Bytes(openssl_hello, openssl_hello + sizeof(openssl_hello)),
		Bytes(curl_hello, curl_hello + sizeof(curl_hello)),
		records(hello_msg({ext(0x0a0a, {}), sni_ext("A.Test."), alpn_ext({"h2", "acme-tls/1"}), keyshare(36),
		                   ext(21, Bytes(7, 0))})),
	};
	size_t compared = 0;
	for (const Bytes &good : hellos) {
		for (size_t at = 0; at < good.size(); at++) {
			for (uint8_t v : {uint8_t(0x00), uint8_t(0x01), uint8_t(0x10), uint8_t(0x41), uint8_t(0xff),
			                  uint8_t(good[at] + 1), uint8_t(good[at] - 1)}) {
				Bytes b = good;
				b[at] = v;
				hello_reader whole, bytes;
				hello_status a = feed_all(whole, b), c = feed_all(bytes, b, 1);
				ASSERT_EQ(a, c) << "byte " << at << " = " << int(v);
				ASSERT_EQ(whole.has_sni, bytes.has_sni) << "byte " << at << " = " << int(v);
				ASSERT_STREQ(whole.has_sni ? whole.sni : "", bytes.has_sni ? bytes.sni : "") << "byte " << at;
				ASSERT_EQ(whole.alpn_acme, bytes.alpn_acme) << "byte " << at << " = " << int(v);
				ASSERT_EQ(whole.error == nullptr, bytes.error == nullptr) << "byte " << at << " = " << int(v);
				if (whole.error && bytes.error) {
					ASSERT_STREQ(whole.error, bytes.error) << "byte " << at << " = " << int(v);
				}
				compared++;
			}
		}
	}
	EXPECT_GT(compared, 7000u);
}
