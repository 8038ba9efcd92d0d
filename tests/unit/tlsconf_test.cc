// tlsconf: the process's own session ticket keys, and which Host a connection may carry.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

extern "C" {
#include "certs.h"
#include "rules.h"
#include "proxy/tlsconf.h"
}

namespace {

using Keys = uint8_t[2][RULES_TICKET_KEY_LEN];

bool same(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, RULES_TICKET_KEY_LEN) == 0;
}

}  // namespace

TEST(TicketKeys, OneKeyPerPeriodThePreviousStillDecrypts)
{
	const time_t start = (time_t)1800000000 / TLSCONF_TICKET_ROTATE * TLSCONF_TICKET_ROTATE;
	Keys a, b, c;
	tlsconf_own_ticket_keys(start, a);
	tlsconf_own_ticket_keys(start + TLSCONF_TICKET_ROTATE - 1, b);
	EXPECT_TRUE(same(a[0], b[0])) << "the same key all period long";
	EXPECT_TRUE(same(a[1], b[1]));
	EXPECT_FALSE(same(a[0], a[1]));
	tlsconf_own_ticket_keys(start + TLSCONF_TICKET_ROTATE, c);
	EXPECT_FALSE(same(c[0], a[0])) << "a new key each period";
	EXPECT_TRUE(same(c[1], a[0])) << "the previous period's key still decrypts";
	EXPECT_NE(memcmp(c[0], a[0], 16), 0) << "key names differ, so a ticket finds its key";
	tlsconf_own_ticket_keys(start + 2 * TLSCONF_TICKET_ROTATE, b);
	EXPECT_FALSE(same(b[0], a[0]));
	EXPECT_FALSE(same(b[1], a[0])) << "two periods on, the key is gone";
}

namespace {

// One TLS service with three certificates: a wildcard (the default), an exact name the
// wildcard also covers, and another site.
class HostFits : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		char tmpl[] = "/tmp/onegate-tlsconf-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir = tmpl;
		static const char *const wild[] = {"*.contoso.test", "contoso.test"};
		static const char *const mail[] = {"mail.contoso.test"};
		static const char *const fab[] = {"www.fabrikam.test"};
		const certs_leaf_spec leaves[] = {
			{"wild", wild, 2, CERTS_KEY_ECDSA_P256, 90},
			{"mail", mail, 1, CERTS_KEY_RSA2048, 90},
			{"fab", fab, 1, CERTS_KEY_ECDSA_P256, 90},
		};
		char err[256] = "";
		ASSERT_EQ(certs_testpki_generate(dir.c_str(), leaves, 3, err, sizeof(err)), 0) << err;
		std::string text = "certificates = (";
		for (const char *n : {"wild", "mail", "fab"})
			text += std::string(n == std::string("wild") ? "" : ",") + " { name = \"" + n + "\"; cert = \"" + dir +
			        "/" + n + ".pem\"; key = \"" + dir + "/" + n + ".key\"; ca_file = \"" + dir + "/ca.pem\"; }";
		text += R"( );
services = ( { name = "https"; listen = [ "127.0.0.1:8443" ];
  tls = { certificates = [ "wild", "mail", "fab" ]; };
  routes = ( { host = "www.fabrikam.test"; status = 204; }, { host = "mail.contoso.test"; status = 204; } ); } );
)";
		rules_diag *d = rules_diag_new();
		cfg = rules_load_string(text.c_str(), "t.conf", d);
		for (size_t i = 0; i < rules_diag_count(d); i++)
			if (rules_diag_severity(d, i) == RULES_ERROR)
				ADD_FAILURE() << rules_diag_message(d, i);
		rules_diag_free(d);
		ASSERT_NE(cfg, nullptr);
		tls = tlsconf_new(cfg, err, sizeof(err));
		ASSERT_NE(tls, nullptr) << err;
	}
	static void TearDownTestSuite()
	{
		tlsconf_unref(tls);
		rules_config_unref(cfg);
		std::string cmd = "rm -rf '" + dir + "'";
		EXPECT_EQ(system(cmd.c_str()), 0);
	}
	static bool fits(const char *sni, const char *host)
	{
		return tlsconf_host_fits(tls, 0, sni, sni ? strlen(sni) : 0, host, strlen(host));
	}
	static std::string dir;
	static rules_config *cfg;
	static tlsconf *tls;
};

std::string HostFits::dir;
rules_config *HostFits::cfg;
tlsconf *HostFits::tls;

}  // namespace

TEST_F(HostFits, SameNameOrSameCertificate)
{
	EXPECT_TRUE(fits("www.fabrikam.test", "www.fabrikam.test"));
	EXPECT_TRUE(fits("WWW.Fabrikam.test", "www.fabrikam.test"));
	EXPECT_TRUE(fits("a.contoso.test", "b.contoso.test")) << "one wildcard certificate";
	EXPECT_TRUE(fits("contoso.test", "b.contoso.test"));
	// mail has a certificate of its own, but the wildcard the connection got covers it too.
	EXPECT_TRUE(fits("a.contoso.test", "mail.contoso.test"));
}

TEST_F(HostFits, AnotherCertificatesSiteIsMisdirected)
{
	EXPECT_FALSE(fits("mail.contoso.test", "www.fabrikam.test"));
	EXPECT_FALSE(fits("www.fabrikam.test", "mail.contoso.test"));
	EXPECT_FALSE(fits("www.fabrikam.test", "a.contoso.test"));
	// The connection got mail's own certificate, which does not cover the wildcard's names.
	EXPECT_FALSE(fits("mail.contoso.test", "a.contoso.test"));
	// An unknown SNI got the default (the wildcard): fabrikam's site is not on it.
	EXPECT_FALSE(fits("unknown.example", "www.fabrikam.test"));
	EXPECT_TRUE(fits("unknown.example", "a.contoso.test"));
}

TEST_F(HostFits, NothingToCompareIsLeftToTheRoutes)
{
	EXPECT_TRUE(fits(nullptr, "www.fabrikam.test")) << "no SNI";
	EXPECT_TRUE(tlsconf_host_fits(tls, 0, "www.fabrikam.test", 17, "", 0)) << "no Host";
	EXPECT_TRUE(fits("www.fabrikam.test", "other.example")) << "no certificate covers it";
	EXPECT_TRUE(fits("www.fabrikam.test", "a.b.contoso.test")) << "a wildcard covers one label only";
	EXPECT_TRUE(fits("www.fabrikam.test", "127.0.0.1"));
}
