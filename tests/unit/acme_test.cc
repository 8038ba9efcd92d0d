// acme: the plan (renewal time with and without the CA's window, backoff,
// expiry-warning levels), renewalInfo's identifier and window, and the
// challenges shared through the state folder with the other gateway of a pair.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <openssl/pem.h>

extern "C" {
// acme_cert_view() is named after the struct it fills, as C allows.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include "acme/acme.h"
#pragma GCC diagnostic pop
#include "acme/acme_chal.h"
#include "acme/acme_crypto.h"
#include "acme/acme_order.h"
#include "acme/acme_plan.h"
#include "acme/acme_store.h"
#include "certs.h"
}

namespace {

const time_t kDay = 86400;

std::string sh(const std::string &cmd)
{
	std::string out;
	FILE *p = popen(cmd.c_str(), "r");
	char buf[512];
	size_t n;
	while (p && (n = fread(buf, 1, sizeof(buf), p)) > 0)
		out.append(buf, n);
	if (p)
		pclose(p);
	return out;
}

class AcmeFolder : public ::testing::Test {
protected:
	std::string dir;
	void SetUp() override
	{
		char t[] = "/tmp/onegate-acme-test-XXXXXX";
		ASSERT_NE(mkdtemp(t), nullptr);
		dir = t;
	}
	void TearDown() override
	{
		acme_chal_folder(nullptr);
		sh("rm -rf '" + dir + "'");
	}
};

}  // namespace

TEST(AcmePlan, TwoThirdsOfTheLifetimeWithoutAWindow)
{
	const time_t nb = 1800000000, na = nb + 90 * kDay;
	EXPECT_EQ(acme_plan_renew(nb, na, 0, 0, 12345), nb + 60 * kDay);
	// A window that makes no sense (ends before it starts) is not used either.
	EXPECT_EQ(acme_plan_renew(nb, na, na - kDay, na - 2 * kDay, 7), nb + 60 * kDay);
}

TEST(AcmePlan, InsideTheCasWindowWhenOffered)
{
	const time_t nb = 1800000000, na = nb + 90 * kDay;
	const time_t ws = nb + 10 * kDay, we = nb + 12 * kDay;
	for (uint32_t rnd : { 0u, 1u, 172799u, 172800u, 4000000000u }) {
		time_t at = acme_plan_renew(nb, na, ws, we, rnd);
		EXPECT_GE(at, ws) << rnd;
		EXPECT_LT(at, we) << rnd;
	}
	EXPECT_EQ(acme_plan_renew(nb, na, ws, we, 0), ws);
	// A window already past (the CA wants it renewed now) gives a time in the past: due.
	EXPECT_LT(acme_plan_renew(nb, na, 1000, 2000, 5), 2000);
}

TEST(AcmePlan, BackoffDoublesFromAMinuteUpToSixHours)
{
	EXPECT_EQ(acme_plan_backoff(1), 60);
	EXPECT_EQ(acme_plan_backoff(2), 120);
	EXPECT_EQ(acme_plan_backoff(3), 240);
	EXPECT_EQ(acme_plan_backoff(9), 60 << 8);
	EXPECT_EQ(acme_plan_backoff(10), 6 * 3600);
	EXPECT_EQ(acme_plan_backoff(1000), 6 * 3600);
}

TEST(AcmePlan, WarningLevelsAt30And14And7Days)
{
	const time_t now = 1800000000;
	EXPECT_EQ(acme_plan_warn_level(now + 31 * kDay, now), 0);
	EXPECT_EQ(acme_plan_warn_level(now + 30 * kDay, now), 1);
	EXPECT_EQ(acme_plan_warn_level(now + 15 * kDay, now), 1);
	EXPECT_EQ(acme_plan_warn_level(now + 14 * kDay, now), 2);
	EXPECT_EQ(acme_plan_warn_level(now + 8 * kDay, now), 2);
	EXPECT_EQ(acme_plan_warn_level(now + 7 * kDay, now), 3);
	EXPECT_EQ(acme_plan_warn_level(now - kDay, now), 3);
}

TEST(AcmeAri, IdentifierAsInRfc9773)
{
	// RFC 9773 section 4.1's example.
	const uint8_t aki[] = { 0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
	                        0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4 };
	const uint8_t serial[] = { 0x00, 0x87, 0x65, 0x43, 0x21 };
	char *id = acme_ari_id(aki, sizeof(aki), serial, sizeof(serial));
	ASSERT_NE(id, nullptr);
	EXPECT_STREQ(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	free(id);
}

TEST(AcmeAri, WindowParsed)
{
	const char ok[] = "{\"suggestedWindow\":{\"start\":\"2026-01-03T00:00:00Z\",\"end\":\"2026-01-04T12:30:00.5+02:00\"},"
	                  "\"explanationURL\":\"https://ca.test/why\"}";
	time_t s = 0, e = 0;
	ASSERT_EQ(acme_ari_parse(ok, strlen(ok), &s, &e), 0);
	EXPECT_EQ(s, 1767398400);
	EXPECT_EQ(e, 1767398400 + kDay + 10 * 3600 + 30 * 60);
	const char backwards[] = "{\"suggestedWindow\":{\"start\":\"2026-01-04T00:00:00Z\",\"end\":\"2026-01-03T00:00:00Z\"}}";
	EXPECT_EQ(acme_ari_parse(backwards, strlen(backwards), &s, &e), -1);
	const char none[] = "{\"explanationURL\":\"x\"}";
	EXPECT_EQ(acme_ari_parse(none, strlen(none), &s, &e), -1);
	const char garbage[] = "{\"suggestedWindow\":{\"start\":\"soon\",\"end\":\"later\"}}";
	EXPECT_EQ(acme_ari_parse(garbage, strlen(garbage), &s, &e), -1);
}

TEST_F(AcmeFolder, AriIdentifierOfAnIssuedCertificateMatchesOpenssl)
{
	const char *names[] = { "ari.test" };
	struct certs_leaf_spec leaf = { "leaf", names, 1, CERTS_KEY_ECDSA_P256, 30 };
	char err[256];
	ASSERT_EQ(certs_testpki_generate(dir.c_str(), &leaf, 1, err, sizeof(err)), 0) << err;
	FILE *f = fopen((dir + "/leaf.pem").c_str(), "r");
	ASSERT_NE(f, nullptr);
	X509 *x = PEM_read_X509(f, nullptr, nullptr, nullptr);
	fclose(f);
	ASSERT_NE(x, nullptr);
	char *id = acme_ari_cert_id(x);
	X509_free(x);
	ASSERT_NE(id, nullptr);
	// The same from openssl's view of the certificate, encoded by python.
	std::string want = sh("openssl x509 -in '" + dir + "/leaf.pem' -noout -serial -ext authorityKeyIdentifier | "
	                      "python3 -c \"import sys,base64,re; t=sys.stdin.read(); "
	                      "s=re.search(r'serial=([0-9A-F]+)',t).group(1); s=('0'+s) if len(s)%2 else s; "
	                      "s=bytes.fromhex(s); s=(b'\\\\0'+s) if s[0]&0x80 else s; "
	                      "k=re.search(r'(?:keyid:)?\\s*((?:[0-9A-F]{2}:)+[0-9A-F]{2})',t.split('Identifier:')[1]); "
	                      "k=bytes.fromhex(k.group(1).replace(':','')); "
	                      "e=lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode(); print(e(k)+'.'+e(s), end='')\"");
	EXPECT_EQ(std::string(id), want);
	free(id);
}

TEST_F(AcmeFolder, AChallengeIsSharedThroughTheStateFolderAndRemoved)
{
	acme_chal_folder(dir.c_str());
	X509 *cert = nullptr;
	EVP_PKEY *key = nullptr;
	ASSERT_EQ(acme_alpn_make("alpn.test", "tok2.thumb", &cert, &key), 0);
	ASSERT_EQ(acme_chal_add("Tok1", "Tok1.thumb", nullptr, nullptr, nullptr), 0);
	ASSERT_EQ(acme_chal_add("tok2", "tok2.thumb", "Alpn.Test", cert, key), 0);
	std::ifstream h(dir + "/acme/challenges/http-01-Tok1"), t(dir + "/acme/challenges/tls-alpn-01-alpn.test");
	std::string hv((std::istreambuf_iterator<char>(h)), {}), tv((std::istreambuf_iterator<char>(t)), {});
	EXPECT_EQ(hv, "Tok1.thumb");
	EXPECT_EQ(tv, "tok2.thumb");
	struct stat st;
	ASSERT_EQ(stat((dir + "/acme/challenges/http-01-Tok1").c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 0777, 0600u);
	acme_chal_remove("Tok1");
	acme_chal_remove("tok2");
	EXPECT_NE(access((dir + "/acme/challenges/http-01-Tok1").c_str(), F_OK), 0);
	EXPECT_NE(access((dir + "/acme/challenges/tls-alpn-01-alpn.test").c_str(), F_OK), 0);
}

TEST_F(AcmeFolder, APeersChallengeIsAnsweredFromTheStateFolder)
{
	acme_chal_folder(dir.c_str());
	ASSERT_EQ(acme_store_mkdirs((dir + "/acme/challenges").c_str()), 0);
	const std::string ka = "PeerTok_-9.thumbprint";
	ASSERT_EQ(acme_store_write((dir + "/acme/challenges/http-01-PeerTok_-9").c_str(), ka.data(), ka.size()), 0);
	char out[256];
	const std::string path = "/.well-known/acme-challenge/PeerTok_-9";
	ASSERT_EQ(acme_http01_answer(path.data(), path.size(), out, sizeof(out)), (int)ka.size());
	EXPECT_EQ(std::string(out), ka);
	// Not a token, or a file that is not this token's key authorization: the routes get the request.
	for (std::string bad : { "/.well-known/acme-challenge/../challenges/http-01-PeerTok_-9",
	                         "/.well-known/acme-challenge/PeerTok_-", "/.well-known/acme-challenge/peertok_-9" })
		EXPECT_EQ(acme_http01_answer(bad.data(), bad.size(), out, sizeof(out)), -1) << bad;
	const std::string alpn = "tok3.thumb";
	ASSERT_EQ(acme_store_write((dir + "/acme/challenges/tls-alpn-01-peer.test").c_str(), alpn.data(), alpn.size()), 0);
	EXPECT_TRUE(acme_alpn_pending("PEER.test", 9));
	EXPECT_FALSE(acme_alpn_pending("other.test", 10));
	EXPECT_FALSE(acme_alpn_pending("../x", 4));
	acme_chal_folder(nullptr);
	EXPECT_FALSE(acme_alpn_pending("peer.test", 9));
}

TEST_F(AcmeFolder, TheOrderLockIsHeldByOneOpenerAtATime)
{
	char err[256] = "";
	int a = acme_store_lock(dir.c_str(), "home", err, sizeof(err));
	ASSERT_GE(a, 0) << err;
	EXPECT_EQ(acme_store_lock(dir.c_str(), "home", err, sizeof(err)), ACME_STORE_BUSY);
	int other = acme_store_lock(dir.c_str(), "other", err, sizeof(err));
	EXPECT_GE(other, 0) << err;
	acme_store_unlock(other);
	acme_store_unlock(a);
	int b = acme_store_lock(dir.c_str(), "home", err, sizeof(err));
	EXPECT_GE(b, 0) << err;
	acme_store_unlock(b);
}
