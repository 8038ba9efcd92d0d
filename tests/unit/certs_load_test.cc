// certs_item_load: every check a certificate goes through at load, with the message an admin reads.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "certs.h"
}

#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace {

const char kPassword[] = "S3cret pass";

class CertsLoad : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		char tmpl[] = "/tmp/onegate-certs-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir = tmpl;
		static const char *const web[] = {"www.contoso.test", "*.contoso.test"};
		static const char *const rsa[] = {"rsa.contoso.test"};
		static const char *const soon[] = {"soon.contoso.test"};
		static const char *const old[] = {"old.contoso.test"};
		static const char *const weak[] = {"weak.contoso.test"};
		static const char *const p521[] = {"p521.contoso.test"};
		const certs_leaf_spec leaves[] = {
			{"web", web, 2, CERTS_KEY_ECDSA_P256, 90},
			{"rsa", rsa, 1, CERTS_KEY_RSA2048, 90},
			{"soon", soon, 1, CERTS_KEY_ECDSA_P256, 10},
			{"old", old, 1, CERTS_KEY_ECDSA_P256, -2},
			{"weak", weak, 1, CERTS_KEY_RSA1024, 90},
			{"p521", p521, 1, CERTS_KEY_ECDSA_P521, 90},
		};
		char err[256] = "";
		ASSERT_EQ(certs_testpki_generate(dir.c_str(), leaves, sizeof(leaves) / sizeof(leaves[0]), err, sizeof(err)),
		          0)
		        << err;
		ASSERT_EQ(certs_testpki_pfx(dir.c_str(), "web", kPassword, err, sizeof(err)), 0) << err;
		ASSERT_EQ(certs_testpki_der(dir.c_str(), "web", err, sizeof(err)), 0) << err;
	}
	static void TearDownTestSuite()
	{
		std::string cmd = "rm -rf '" + dir + "'";
		EXPECT_EQ(system(cmd.c_str()), 0);
	}

	static void collect(void *arg, bool warning, const char *msg)
	{
		static_cast<CertsLoad *>(arg)->said.emplace_back(warning, msg);
	}

	// Loads src with the test PKI's root trusted; every message lands in said.
	certs_item *load(certs_source src)
	{
		said.clear();
		std::string ca = path("ca.pem");
		if (!src.ca_file)
			src.ca_file = ca.c_str();
		src.name = "t";
		certs_report rep = {collect, this};
		return certs_item_load(&src, &rep);
	}
	certs_item *load_pem(const std::string &cert, const std::string &key)
	{
		std::string c = path(cert), k = path(key);
		certs_source src = {};
		src.cert = c.c_str();
		src.key = k.c_str();
		return load(src);
	}
	static std::string path(const std::string &f) { return dir + "/" + f; }

	// An OCSP response about leaf FILE.pem from the intermediate, made by the openssl
	// CLI (an independent responder); status "V" (good) or "R" (revoked). Returns its path.
	static std::string ocsp(const std::string &file, const std::string &status, const std::string &out)
	{
		std::string serial = sh("openssl x509 -noout -serial -in '" + path(file + ".pem") + "' | cut -d= -f2");
		while (!serial.empty() && serial.back() == '\n')
			serial.pop_back();
		std::string index = path(out + ".index");
		FILE *f = fopen(index.c_str(), "w");
		if (!f)
			return "";
		fprintf(f, "%s\t301231000000Z\t%s\t%s\tunknown\t/CN=%s\n", status.c_str(),
		        status == "R" ? "250101000000Z,keyCompromise" : "", serial.c_str(), file.c_str());
		fclose(f);
		std::string cmd = "openssl ocsp -index '" + index + "' -rsigner '" + path("int.pem") + "' -rkey '" +
		                  path("int.key") + "' -CA '" + path("int.pem") + "' -issuer '" + path("int.pem") +
		                  "' -cert '" + path(file + ".pem") + "' -ndays 7 -respout '" + path(out) + "' >/dev/null 2>&1";
		return system(cmd.c_str()) == 0 ? path(out) : "";
	}
	static std::string sh(const std::string &cmd)
	{
		std::string out;
		FILE *p = popen(cmd.c_str(), "r");
		char buf[256];
		while (p && fgets(buf, sizeof(buf), p))
			out += buf;
		if (p)
			pclose(p);
		return out;
	}
	certs_item *load_with_ocsp(const std::string &resp, time_t now = 0)
	{
		std::string cert = path("web.pem"), key = path("web.key");
		certs_source src = {};
		src.cert = cert.c_str();
		src.key = key.c_str();
		src.ocsp = resp.c_str();
		src.now = now;
		return load(src);
	}

	size_t count(bool warning) const
	{
		size_t n = 0;
		for (const auto &m : said)
			n += m.first == warning;
		return n;
	}
	// The one error (or warning) said, which must contain every part.
	void expect_one(bool warning, std::initializer_list<std::string> parts) const
	{
		ASSERT_EQ(count(warning), 1u) << all();
		for (const auto &m : said) {
			if (m.first != warning)
				continue;
			for (const auto &p : parts)
				EXPECT_NE(m.second.find(p), std::string::npos) << "no \"" << p << "\" in: " << m.second;
		}
	}
	std::string all() const
	{
		std::string s;
		for (const auto &m : said)
			s += (m.first ? "warning: " : "error: ") + m.second + "\n";
		return s;
	}

	static std::string dir;
	std::vector<std::pair<bool, std::string>> said;
};

std::string CertsLoad::dir;

struct Item {
	certs_item *p;
	explicit Item(certs_item *c) : p(c) {}
	~Item() { certs_item_unref(p); }
};

}  // namespace

TEST_F(CertsLoad, PemWithItsChainLoadsClean)
{
	Item c(load_pem("web.pem", "web.key"));
	ASSERT_NE(c.p, nullptr) << all();
	EXPECT_TRUE(said.empty()) << all();
	EXPECT_TRUE(certs_item_is_ecdsa(c.p));
	ASSERT_EQ(certs_item_nnames(c.p), 2u);
	EXPECT_STREQ(certs_item_name_at(c.p, 1), "*.contoso.test");
	EXPECT_EQ(sk_X509_num(certs_item_chain(c.p)), 1u) << "the intermediate, not the root";
}

TEST_F(CertsLoad, KeyOfAnotherCertificateIsAnError)
{
	Item c(load_pem("web.pem", "rsa.key"));
	EXPECT_EQ(c.p, nullptr);
	expect_one(false, {"web.pem", "rsa.key", "does not belong to"});
}

TEST_F(CertsLoad, PfxWithItsPassword)
{
	std::string pfx = path("web.pfx");
	certs_source src = {};
	src.pfx = pfx.c_str();
	src.password = kPassword;
	Item c(load(src));
	ASSERT_NE(c.p, nullptr) << all();
	EXPECT_TRUE(said.empty()) << all();
	EXPECT_EQ(sk_X509_num(certs_item_chain(c.p)), 1u) << "the intermediate from the PFX";
}

TEST_F(CertsLoad, PfxWithAWrongPasswordNamesWhereItCameFrom)
{
	std::string pfx = path("web.pfx"), wrong = path("wrong.pass");
	FILE *f = fopen(wrong.c_str(), "w");
	ASSERT_NE(f, nullptr);
	fputs("not it\n", f);
	fclose(f);
	certs_source src = {};
	src.pfx = pfx.c_str();
	src.password = "not it";
	Item a(load(src));
	EXPECT_EQ(a.p, nullptr);
	expect_one(false, {"wrong password for PFX file", "web.pfx"});
	EXPECT_EQ(said[0].second.substr(said[0].second.size() - 16), "; check password");
	src.password = nullptr;
	src.password_file = wrong.c_str();
	Item b(load(src));
	EXPECT_EQ(b.p, nullptr);
	expect_one(false, {"wrong password for PFX file", "check password_file"});
}

TEST_F(CertsLoad, UnreadableFilesAreNamed)
{
	Item a(load_pem("missing.pem", "web.key"));
	EXPECT_EQ(a.p, nullptr);
	expect_one(false, {"cannot read certificate file", "missing.pem", "No such file"});
	Item b(load_pem("web.pem", "missing.key"));
	EXPECT_EQ(b.p, nullptr);
	expect_one(false, {"cannot read key file", "missing.key"});
	std::string pfx = path("missing.pfx");
	certs_source src = {};
	src.pfx = pfx.c_str();
	Item c(load(src));
	EXPECT_EQ(c.p, nullptr);
	expect_one(false, {"cannot read PFX file", "missing.pfx"});
}

TEST_F(CertsLoad, KeyOthersCanReadIsAWarning)
{
	std::string open_key = path("open.key");
	std::string cmd = "cp '" + path("web.key") + "' '" + open_key + "'";
	ASSERT_EQ(system(cmd.c_str()), 0);
	ASSERT_EQ(chmod(open_key.c_str(), 0644), 0);
	Item c(load_pem("web.pem", "open.key"));
	ASSERT_NE(c.p, nullptr) << all();
	expect_one(true, {"open.key", "can be read by other users", "mode 644", "chmod 600"});
	EXPECT_EQ(count(false), 0u) << all();
}

TEST_F(CertsLoad, ExpiredIsAnError)
{
	Item c(load_pem("old.pem", "old.key"));
	EXPECT_EQ(c.p, nullptr);
	expect_one(false, {"old.pem", "the certificate expired on", "renew it"});
}

TEST_F(CertsLoad, ExpiringWithin30DaysIsAWarning)
{
	Item c(load_pem("soon.pem", "soon.key"));
	ASSERT_NE(c.p, nullptr) << all();
	expect_one(true, {"soon.pem", "the certificate expires on", " days; renew it soon"});
	EXPECT_EQ(count(false), 0u) << all();
}

TEST_F(CertsLoad, Rsa1024AndOtherCurvesAreRefused)
{
	Item a(load_pem("weak.pem", "weak.key"));
	EXPECT_EQ(a.p, nullptr);
	expect_one(false, {"weak.pem", "RSA key of 1024 bits", "use 2048 to 4096"});
	Item b(load_pem("p521.pem", "p521.key"));
	EXPECT_EQ(b.p, nullptr);
	expect_one(false, {"p521.pem", "unsupported curve", "P-256 or P-384"});
	Item c(load_pem("rsa.pem", "rsa.key"));
	ASSERT_NE(c.p, nullptr) << all();
	EXPECT_FALSE(certs_item_is_ecdsa(c.p));
}

TEST_F(CertsLoad, IncompleteChainNamesTheMissingIssuerAndItsKeyId)
{
	// web.der is the leaf alone: nothing says who issued it.
	std::string cert = path("web.der"), key = path("web.key");
	certs_source src = {};
	src.cert = cert.c_str();
	src.key = key.c_str();
	Item c(load(src));
	EXPECT_EQ(c.p, nullptr);
	FILE *f = fopen(path("int.pem").c_str(), "r");
	ASSERT_NE(f, nullptr);
	X509 *ica = PEM_read_X509(f, nullptr, nullptr, nullptr);
	fclose(f);
	ASSERT_NE(ica, nullptr);
	auto *ski = static_cast<ASN1_OCTET_STRING *>(X509_get_ext_d2i(ica, NID_subject_key_identifier, nullptr, nullptr));
	ASSERT_NE(ski, nullptr);
	std::string kid;
	for (int i = 0; i < ASN1_STRING_length(ski); i++) {
		char b[4];
		snprintf(b, sizeof(b), "%s%02X", i ? ":" : "", ASN1_STRING_get0_data(ski)[i]);
		kid += b;
	}
	ASN1_OCTET_STRING_free(ski);
	X509_free(ica);
	expect_one(false, {"web.der", "incomplete chain: no certificate of issuer", "CN=onegate test intermediate",
	                   "(key id " + kid + ")", "chain = \"FILE\"", "intermediates"});
}

TEST_F(CertsLoad, AllowIncompleteChainServesItAsItIs)
{
	std::string cert = path("web.der"), key = path("web.key");
	certs_source src = {};
	src.cert = cert.c_str();
	src.key = key.c_str();
	src.allow_incomplete_chain = true;
	Item c(load(src));
	ASSERT_NE(c.p, nullptr) << all();
	expect_one(true, {"incomplete chain", "serving it as it is (allow_incomplete_chain)"});
	EXPECT_EQ(sk_X509_num(certs_item_chain(c.p)), 0u);
}

TEST_F(CertsLoad, IntermediatesListOrChainFileCompleteIt)
{
	std::string cert = path("web.der"), key = path("web.key"), ica = path("int.pem");
	const char *const list[] = {ica.c_str()};
	certs_source src = {};
	src.cert = cert.c_str();
	src.key = key.c_str();
	src.intermediates = list;
	src.nintermediates = 1;
	Item a(load(src));
	ASSERT_NE(a.p, nullptr) << all();
	EXPECT_TRUE(said.empty()) << all();
	EXPECT_EQ(sk_X509_num(certs_item_chain(a.p)), 1u);
	src.intermediates = nullptr;
	src.nintermediates = 0;
	src.chain = ica.c_str();
	Item b(load(src));
	ASSERT_NE(b.p, nullptr) << all();
	EXPECT_EQ(sk_X509_num(certs_item_chain(b.p)), 1u);
	// An intermediate that is not this leaf's issuer is not served, and said so.
	std::string other = path("rsa.pem");
	const char *const extra[] = {ica.c_str(), other.c_str()};
	src.chain = nullptr;
	src.intermediates = extra;
	src.nintermediates = 2;
	Item d(load(src));
	ASSERT_NE(d.p, nullptr) << all();
	expect_one(true, {"extra certificate", "rsa.contoso.test", "is not part of the chain"});
	EXPECT_EQ(sk_X509_num(certs_item_chain(d.p)), 1u);
}

TEST_F(CertsLoad, DerCertificateAndDerKey)
{
	std::string cert = path("web.der"), key = path("web.key.der"), ica = path("int.pem");
	certs_source src = {};
	src.cert = cert.c_str();
	src.key = key.c_str();
	src.chain = ica.c_str();
	Item c(load(src));
	ASSERT_NE(c.p, nullptr) << all();
	EXPECT_TRUE(said.empty()) << all();
	EXPECT_TRUE(certs_item_covers(c.p, "mail.contoso.test", 17));
	EXPECT_FALSE(certs_item_covers(c.p, "a.b.contoso.test", 16));
}

TEST_F(CertsLoad, UnreadableCaFileIsNamed)
{
	std::string cert = path("web.pem"), key = path("web.key");
	certs_source src = {};
	src.cert = cert.c_str();
	src.key = key.c_str();
	src.ca_file = "/nonexistent/roots.pem";
	Item c(load(src));
	EXPECT_EQ(c.p, nullptr);
	expect_one(false, {"cannot load trusted roots from \"/nonexistent/roots.pem\"", "check ca_file"});
}

TEST_F(CertsLoad, OcspResponseForTheLeafIsKeptToStaple)
{
	std::string resp = ocsp("web", "V", "web-good.ocsp");
	ASSERT_FALSE(resp.empty());
	Item c(load_with_ocsp(resp));
	ASSERT_NE(c.p, nullptr) << all();
	EXPECT_TRUE(said.empty()) << all();
	size_t len = 0;
	time_t until = 0;
	const uint8_t *der = certs_item_ocsp(c.p, &len, &until);
	ASSERT_NE(der, nullptr);
	EXPECT_EQ(der[0], 0x30);
	EXPECT_GT(until, time(nullptr) + 6 * 86400);
	EXPECT_LT(until, time(nullptr) + 8 * 86400);
	// Without ocsp, nothing to staple.
	Item d(load_pem("web.pem", "web.key"));
	ASSERT_NE(d.p, nullptr);
	EXPECT_EQ(certs_item_ocsp(d.p, &len, &until), nullptr);
}

TEST_F(CertsLoad, OcspResponsesThatWouldHarmAreErrors)
{
	std::string revoked = ocsp("web", "R", "web-revoked.ocsp");
	ASSERT_FALSE(revoked.empty());
	Item a(load_with_ocsp(revoked));
	EXPECT_EQ(a.p, nullptr);
	expect_one(false, {"web-revoked.ocsp", "says the certificate is revoked", "replace the certificate"});
	std::string other = ocsp("rsa", "V", "rsa-good.ocsp");
	ASSERT_FALSE(other.empty());
	Item b(load_with_ocsp(other));
	EXPECT_EQ(b.p, nullptr);
	expect_one(false, {"rsa-good.ocsp", "is about another certificate"});
	Item c(load_with_ocsp(path("web.pem")));
	EXPECT_EQ(c.p, nullptr);
	expect_one(false, {"web.pem\" is not a DER OCSP response", "openssl ocsp -respout"});
	Item d(load_with_ocsp(path("missing.ocsp")));
	EXPECT_EQ(d.p, nullptr);
	expect_one(false, {"cannot read OCSP response file", "missing.ocsp"});
}

TEST_F(CertsLoad, ExpiredOcspResponseIsNotStapled)
{
	std::string resp = ocsp("web", "V", "web-later.ocsp");
	ASSERT_FALSE(resp.empty());
	// Thirty days on, the certificate is still valid and the response's week is over.
	Item c(load_with_ocsp(resp, time(nullptr) + 30 * 86400));
	ASSERT_NE(c.p, nullptr) << all();
	expect_one(true, {"web-later.ocsp", "expired on", "is not stapled", "fetch a new one"});
	size_t len;
	time_t until;
	EXPECT_EQ(certs_item_ocsp(c.p, &len, &until), nullptr);
}
