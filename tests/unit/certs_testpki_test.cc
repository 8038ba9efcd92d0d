// The test PKI generator, checked by an independent verifier: the openssl command-line tool.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

extern "C" {
#include "certs.h"
}

namespace {

std::string sh(const std::string &cmd, int *rc)
{
	std::string out;
	FILE *p = popen((cmd + " 2>&1").c_str(), "r");
	char buf[512];
	while (p && fgets(buf, sizeof(buf), p))
		out += buf;
	int st = p ? pclose(p) : -1;
	*rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return out;
}

std::string read_file(const std::string &path)
{
	std::ifstream f(path);
	std::stringstream s;
	s << f.rdbuf();
	return s.str();
}

class TestPki : public ::testing::Test {
protected:
	void SetUp() override
	{
		char tmpl[] = "/tmp/onegate-pki-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir = tmpl;
		static const char *const web[] = {"www.contoso.test", "*.contoso.test"};
		static const char *const rsa[] = {"rsa.contoso.test"};
		static const char *const old[] = {"old.contoso.test"};
		const certs_leaf_spec leaves[] = {
			{"web", web, 2, CERTS_KEY_ECDSA_P256, 30},
			{"rsa", rsa, 1, CERTS_KEY_RSA2048, 30},
			{"old", old, 1, CERTS_KEY_ECDSA_P384, -2},
		};
		char err[256] = "";
		ASSERT_EQ(certs_testpki_generate(dir.c_str(), leaves, 3, err, sizeof(err)), 0) << err;
	}
	void TearDown() override
	{
		int rc;
		sh("rm -rf '" + dir + "'", &rc);
	}
	// Verifies FILE.pem's first certificate against the root with the intermediate as untrusted.
	int verify(const std::string &file, std::string *out)
	{
		int rc;
		sh("openssl x509 -in '" + dir + "/" + file + ".pem' -out '" + dir + "/" + file + "-leaf.pem'", &rc);
		*out = sh("openssl verify -CAfile '" + dir + "/ca.pem' -untrusted '" + dir + "/int.pem' '" + dir + "/" +
		          file + "-leaf.pem'", &rc);
		return rc;
	}
	std::string dir;
};

}  // namespace

TEST_F(TestPki, LeavesVerifyThroughTheIntermediate)
{
	std::string out;
	EXPECT_EQ(verify("web", &out), 0) << out;
	EXPECT_EQ(verify("rsa", &out), 0) << out;
}

TEST_F(TestPki, ExpiredLeafFailsVerification)
{
	std::string out;
	EXPECT_NE(verify("old", &out), 0);
	EXPECT_NE(out.find("expired"), std::string::npos) << out;
}

TEST_F(TestPki, SubjectAltNamesAndKeyTypes)
{
	int rc;
	std::string san = sh("openssl x509 -noout -ext subjectAltName -in '" + dir + "/web.pem'", &rc);
	EXPECT_NE(san.find("DNS:www.contoso.test"), std::string::npos) << san;
	EXPECT_NE(san.find("DNS:*.contoso.test"), std::string::npos) << san;
	std::string rsa = sh("openssl x509 -noout -text -in '" + dir + "/rsa.pem'", &rc);
	EXPECT_NE(rsa.find("Public-Key: (2048 bit)"), std::string::npos);
	std::string ec = sh("openssl x509 -noout -text -in '" + dir + "/old.pem'", &rc);
	EXPECT_NE(ec.find("NIST CURVE: P-384"), std::string::npos) << ec;
}

TEST_F(TestPki, ChainFileHoldsLeafThenIntermediate)
{
	std::string pem = read_file(dir + "/web.pem");
	size_t first = pem.find("BEGIN CERTIFICATE"), second = pem.find("BEGIN CERTIFICATE", first + 1);
	ASSERT_NE(second, std::string::npos);
	EXPECT_EQ(pem.find("BEGIN CERTIFICATE", second + 1), std::string::npos);
	EXPECT_NE(pem.find(read_file(dir + "/int.pem")), std::string::npos);
}

TEST_F(TestPki, KeyMatchesCertificateAndIsPrivate)
{
	int rc;
	for (const char *f : {"web", "rsa"}) {
		std::string a = sh("openssl x509 -noout -pubkey -in '" + dir + "/" + f + ".pem'", &rc);
		std::string b = sh("openssl pkey -pubout -in '" + dir + "/" + f + ".key'", &rc);
		EXPECT_EQ(a, b) << f;
		struct stat st;
		ASSERT_EQ(stat((dir + "/" + f + ".key").c_str(), &st), 0);
		EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
	}
}

TEST_F(TestPki, PfxAndDerAreWhatOpensslReads)
{
	char err[256] = "";
	ASSERT_EQ(certs_testpki_pfx(dir.c_str(), "rsa", "pfx pass", err, sizeof(err)), 0) << err;
	ASSERT_EQ(certs_testpki_der(dir.c_str(), "rsa", err, sizeof(err)), 0) << err;
	int rc;
	std::string p12 = sh("openssl pkcs12 -in '" + dir + "/rsa.pfx' -passin 'pass:pfx pass' -nodes", &rc);
	EXPECT_EQ(rc, 0) << p12;
	EXPECT_NE(p12.find("CN = rsa.contoso.test\n"), std::string::npos) << p12;
	EXPECT_NE(p12.find("subject=O = onegate test PKI, CN = onegate test intermediate"), std::string::npos) << p12;
	EXPECT_NE(p12.find("PRIVATE KEY"), std::string::npos);
	sh("openssl pkcs12 -in '" + dir + "/rsa.pfx' -passin pass:wrong -nodes", &rc);
	EXPECT_NE(rc, 0);
	std::string a = sh("openssl x509 -inform DER -noout -pubkey -in '" + dir + "/rsa.der'", &rc);
	EXPECT_EQ(rc, 0) << a;
	std::string b = sh("openssl pkey -inform DER -pubout -in '" + dir + "/rsa.key.der'", &rc);
	EXPECT_EQ(rc, 0) << b;
	EXPECT_EQ(a, b);
	struct stat st;
	for (const char *f : {"/rsa.pfx", "/rsa.key.der"}) {
		ASSERT_EQ(stat((dir + f).c_str(), &st), 0);
		EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
	}
	EXPECT_EQ(certs_testpki_der(dir.c_str(), "nothing", err, sizeof(err)), -1);
	EXPECT_NE(std::string(err).find("nothing.pem"), std::string::npos) << err;
}

TEST(TestPkiErrors, UnwritableFolderIsReported)
{
	char err[256] = "";
	EXPECT_EQ(certs_testpki_generate("/proc/onegate-cannot-be-here", nullptr, 0, err, sizeof(err)), -1);
	EXPECT_NE(std::string(err).find("/proc/onegate-cannot-be-here"), std::string::npos) << err;
}
