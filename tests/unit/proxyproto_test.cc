// PROXY protocol v1/v2: round trips, the mapped-address rule, incremental input, every refusal.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "proto/proxyproto.h"
}

namespace {

sockaddr_storage v4(const char *ip, uint16_t port)
{
	sockaddr_storage ss{};
	auto *sin = reinterpret_cast<sockaddr_in *>(&ss);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

sockaddr_storage v6(const char *ip, uint16_t port)
{
	sockaddr_storage ss{};
	auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&ss);
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

const sockaddr *sa(const sockaddr_storage &ss) { return reinterpret_cast<const sockaddr *>(&ss); }

std::string text(const sockaddr_storage &ss)
{
	char buf[INET6_ADDRSTRLEN] = "";
	if (ss.ss_family == AF_INET) {
		auto *sin = reinterpret_cast<const sockaddr_in *>(&ss);
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
	}
	auto *sin6 = reinterpret_cast<const sockaddr_in6 *>(&ss);
	inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
	return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
}

pp_status parse(const std::string &s, pp_info *pi)
{
	return pp_parse(reinterpret_cast<const uint8_t *>(s.data()), s.size(), pi);
}

std::string v2_header(uint8_t ver_cmd, uint8_t fam, const std::string &body)
{
	std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
	h += char(ver_cmd);
	h += char(fam);
	h += char(body.size() >> 8);
	h += char(body.size() & 0xff);
	return h + body;
}

}  // namespace

TEST(ProxyProto, V1RoundTripIPv4AndIPv6)
{
	uint8_t buf[PP_MAX_HEADER];
	pp_info pi;
	auto s4 = v4("203.0.113.7", 5555), d4 = v4("127.0.0.1", 443);
	int n = pp_write_v1(sa(s4), sa(d4), buf, sizeof(buf));
	ASSERT_GT(n, 0);
	EXPECT_EQ(std::string(reinterpret_cast<char *>(buf), n), "PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n");
	ASSERT_EQ(pp_parse(buf, n, &pi), PP_OK);
	EXPECT_EQ(pi.version, 1);
	EXPECT_FALSE(pi.local);
	EXPECT_EQ(pi.header_len, size_t(n));
	EXPECT_EQ(text(pi.src), "203.0.113.7:5555");
	EXPECT_EQ(text(pi.dst), "127.0.0.1:443");

	auto s6 = v6("2001:db8::1", 1), d6 = v6("::1", 65535);
	n = pp_write_v1(sa(s6), sa(d6), buf, sizeof(buf));
	EXPECT_EQ(std::string(reinterpret_cast<char *>(buf), n), "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n");
	ASSERT_EQ(pp_parse(buf, n, &pi), PP_OK);
	EXPECT_EQ(text(pi.src), "[2001:db8::1]:1");
}

TEST(ProxyProto, V2RoundTripIPv4AndIPv6)
{
	uint8_t buf[PP_MAX_HEADER];
	pp_info pi;
	auto s4 = v4("198.51.100.9", 40000), d4 = v4("127.0.0.1", 8443);
	int n = pp_write_v2(sa(s4), sa(d4), buf, sizeof(buf));
	ASSERT_EQ(n, 16 + 12);
	EXPECT_EQ(buf[12], 0x21);
	EXPECT_EQ(buf[13], 0x11);
	ASSERT_EQ(pp_parse(buf, n, &pi), PP_OK);
	EXPECT_EQ(pi.version, 2);
	EXPECT_EQ(text(pi.src), "198.51.100.9:40000");
	EXPECT_EQ(text(pi.dst), "127.0.0.1:8443");

	auto s6 = v6("2001:db8::7", 7), d6 = v6("::1", 443);
	n = pp_write_v2(sa(s6), sa(d6), buf, sizeof(buf));
	ASSERT_EQ(n, 16 + 36);
	EXPECT_EQ(buf[13], 0x21);
	ASSERT_EQ(pp_parse(buf, n, &pi), PP_OK);
	EXPECT_EQ(text(pi.src), "[2001:db8::7]:7");
	EXPECT_EQ(text(pi.dst), "[::1]:443");
}

TEST(ProxyProto, MappedIPv4IsNeverWrittenAsTcp6)
{
	uint8_t buf[PP_MAX_HEADER];
	auto s = v6("::ffff:192.0.2.10", 1234), d = v6("::ffff:127.0.0.1", 443), d4 = v4("127.0.0.1", 443);
	int n = pp_write_v1(sa(s), sa(d), buf, sizeof(buf));
	EXPECT_EQ(std::string(reinterpret_cast<char *>(buf), n), "PROXY TCP4 192.0.2.10 127.0.0.1 1234 443\r\n");
	n = pp_write_v1(sa(s), sa(d4), buf, sizeof(buf));
	EXPECT_EQ(std::string(reinterpret_cast<char *>(buf), n), "PROXY TCP4 192.0.2.10 127.0.0.1 1234 443\r\n");
	n = pp_write_v2(sa(s), sa(d), buf, sizeof(buf));
	EXPECT_EQ(n, 28);
	EXPECT_EQ(buf[13], 0x11);
	// A real IPv6 side forces TCP6; the IPv4 side is then written mapped.
	auto real6 = v6("2001:db8::2", 443);
	n = pp_write_v1(sa(s), sa(real6), buf, sizeof(buf));
	EXPECT_EQ(std::string(reinterpret_cast<char *>(buf), n), "PROXY TCP6 ::ffff:192.0.2.10 2001:db8::2 1234 443\r\n");
}

TEST(ProxyProto, WriteRefusesSmallBuffersAndOtherFamilies)
{
	uint8_t buf[16];
	auto s = v4("192.0.2.1", 1), d = v4("192.0.2.2", 2);
	EXPECT_EQ(pp_write_v1(sa(s), sa(d), buf, 10), -1);
	EXPECT_EQ(pp_write_v2(sa(s), sa(d), buf, sizeof(buf)), -1);
	sockaddr_storage un{};
	un.ss_family = AF_UNIX;
	uint8_t big[PP_MAX_HEADER];
	EXPECT_EQ(pp_write_v1(sa(un), sa(d), big, sizeof(big)), -1);
}

TEST(ProxyProto, ByteByByteNeedsMoreThenOk)
{
	for (const std::string &h : {std::string("PROXY TCP4 192.0.2.1 127.0.0.1 5555 443\r\n"),
	                             v2_header(0x21, 0x11, std::string("\xc0\x00\x02\x01\x7f\x00\x00\x01\x15\xb3\x01\xbb", 12))}) {
		pp_info pi;
		for (size_t i = 1; i < h.size(); i++)
			ASSERT_EQ(pp_parse(reinterpret_cast<const uint8_t *>(h.data()), i, &pi), PP_NEED_MORE) << i;
		ASSERT_EQ(parse(h, &pi), PP_OK);
		EXPECT_EQ(text(pi.src), "192.0.2.1:5555");
	}
}

TEST(ProxyProto, PayloadAfterTheHeaderIsNotPartOfIt)
{
	pp_info pi;
	std::string h = "PROXY TCP4 192.0.2.1 127.0.0.1 5555 443\r\n";
	ASSERT_EQ(parse(h + "\x16\x03\x01", &pi), PP_OK);
	EXPECT_EQ(pi.header_len, h.size());
	std::string v2 = v2_header(0x21, 0x11, std::string(12, '\x01') + std::string("\x04\x00\x02zz", 5));
	ASSERT_EQ(parse(v2 + "payload", &pi), PP_OK);
	EXPECT_EQ(pi.header_len, v2.size());   // TLVs are inside the header and skipped
}

TEST(ProxyProto, V2TlvsAfterTheAddresses)
{
	uint8_t buf[PP_MAX_HEADER];
	pp_info pi;
	auto s4 = v4("198.51.100.9", 40000), d4 = v4("127.0.0.1", 8443);
	pp_tlvs t = { "http/1.1", "mail.contoso.test", "TLSv1.3" };
	int n = pp_write_v2_tlvs(sa(s4), sa(d4), &t, buf, sizeof(buf));
	ASSERT_EQ(n, 16 + 12 + (3 + 8) + (3 + 17) + (3 + 5 + 3 + 7));
	EXPECT_EQ((buf[14] << 8) | buf[15], n - 16);
	ASSERT_EQ(pp_parse(buf, n, &pi), PP_OK);
	EXPECT_EQ(pi.header_len, (size_t)n);
	EXPECT_EQ(text(pi.src), "198.51.100.9:40000");
	const uint8_t *v = buf + 28;
	EXPECT_EQ(std::string(reinterpret_cast<const char *>(v), 11), std::string("\x01\x00\x08http/1.1", 11));
	v += 11;
	EXPECT_EQ(std::string(reinterpret_cast<const char *>(v), 20), std::string("\x02\x00\x11mail.contoso.test", 20));
	v += 20;
	EXPECT_EQ(std::string(reinterpret_cast<const char *>(v), 18),
	          std::string("\x20\x00\x0f\x01\x00\x00\x00\x01\x21\x00\x07TLSv1.3", 18));
	// empty and absent fields are left out; a buffer too small is refused
	pp_tlvs none = { "", nullptr, nullptr };
	EXPECT_EQ(pp_write_v2_tlvs(sa(s4), sa(d4), &none, buf, sizeof(buf)), 16 + 12);
	EXPECT_EQ(pp_write_v2_tlvs(sa(s4), sa(d4), &t, buf, 40), -1);
	std::string host(253, 'a');
	pp_tlvs longest = { "http/1.1", host.c_str(), "TLSv1.2" };
	auto s6 = v6("2001:db8::7", 7), d6 = v6("::1", 443);
	n = pp_write_v2_tlvs(sa(s6), sa(d6), &longest, buf, sizeof(buf));
	ASSERT_GT(n, 0);
	ASSERT_EQ(pp_parse(buf, n, &pi), PP_OK);
}

TEST(ProxyProto, LocalHeadersOfOurOwn)
{
	uint8_t buf[PP_MAX_HEADER];
	pp_info pi;
	int n = pp_write_local(1, buf, sizeof(buf));
	ASSERT_EQ(std::string(reinterpret_cast<char *>(buf), n), "PROXY UNKNOWN\r\n");
	ASSERT_EQ(pp_parse(buf, n, &pi), PP_OK);
	EXPECT_TRUE(pi.local);
	n = pp_write_local(2, buf, sizeof(buf));
	ASSERT_EQ(n, 16);
	EXPECT_EQ(buf[12], 0x20);
	ASSERT_EQ(pp_parse(buf, n, &pi), PP_OK);
	EXPECT_TRUE(pi.local);
	EXPECT_EQ(pp_write_local(2, buf, 15), -1);
}

TEST(ProxyProto, LocalForms)
{
	pp_info pi;
	ASSERT_EQ(parse("PROXY UNKNOWN\r\n", &pi), PP_OK);
	EXPECT_TRUE(pi.local);
	ASSERT_EQ(parse("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", &pi), PP_OK);
	EXPECT_TRUE(pi.local);
	ASSERT_EQ(parse(v2_header(0x20, 0x00, ""), &pi), PP_OK);
	EXPECT_TRUE(pi.local);
	ASSERT_EQ(parse(v2_header(0x21, 0x00, ""), &pi), PP_OK);
	EXPECT_TRUE(pi.local);
}

TEST(ProxyProto, EveryInvalidHeaderIsRefused)
{
	const std::vector<std::string> bad = {
		"G",                                                    // decided on the first byte
		"PROXZ",
		std::string("\r\n\r\n\0\r\nQUIX", 11),
		"PROXY TCP5 192.0.2.1 127.0.0.1 1 2\r\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 1 65536\r\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 +1 2\r\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 01 2\r\n",
		"PROXY TCP4 192.0.2.1  127.0.0.1 1 2\r\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 1\r\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 1 2 3\r\n",
		"PROXY TCP4 ::1 127.0.0.1 1 2\r\n",
		"PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
		"PROXY TCP4 192.0.2.256 127.0.0.1 1 2\r\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\n",
		"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\rX",
		"PROXY " + std::string(120, 'A'),
		v2_header(0x11, 0x11, std::string(12, '\0')),          // version 1 in a v2 signature
		v2_header(0x22, 0x11, std::string(12, '\0')),          // command 2
		v2_header(0x21, 0x31, std::string(12, '\0')),          // AF_UNIX
		v2_header(0x21, 0x12, std::string(12, '\0')),          // DGRAM
		v2_header(0x21, 0x11, std::string(8, '\0')),           // address block too short
		v2_header(0x21, 0x21, std::string(20, '\0')),
		v2_header(0x21, 0x11, std::string(600, '\0')),         // longer than we accept
	};
	for (const auto &h : bad) {
		pp_info pi;
		EXPECT_EQ(parse(h, &pi), PP_INVALID) << "accepted: " << h;
	}
}
