// HTTP routes: service modes, host/path/sni matching precedence, and the checks
// that refuse routes which could never match or mix what cannot be mixed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <unistd.h>
#include <string>
#include <vector>

#include "certs.h"
#include "rules.h"

namespace {

struct Loaded {
	struct rules_config *cfg = nullptr;
	std::vector<std::string> errors;
	~Loaded() { rules_config_unref(cfg); }
	std::string all() const
	{
		std::string s;
		for (const auto &e : errors)
			s += e + "\n";
		return s;
	}
};

void load(const std::string &text, Loaded &out)
{
	struct rules_diag *d = rules_diag_new();
	out.cfg = rules_load_string(text.c_str(), "t.conf", d);
	for (size_t i = 0; i < rules_diag_count(d); i++)
		if (rules_diag_severity(d, i) == RULES_ERROR)
			out.errors.push_back(rules_diag_message(d, i));
	rules_diag_free(d);
}

const char *const kPools = "pools = ( { name = \"owa\"; servers = ( \"127.0.0.1:1\" ); },\n"
                           "          { name = \"ews\"; servers = ( \"127.0.0.1:2\" ); },\n"
                           "          { name = \"web\"; servers = ( \"127.0.0.1:3\" ); },\n"
                           "          { name = \"adfs\"; servers = ( \"127.0.0.1:4\" ); } );\n";

bool has_sub(const Loaded &l, const char *sub)
{
	for (const auto &e : l.errors)
		if (e.find(sub) != std::string::npos)
			return true;
	return false;
}

const int kBadPath = -400;

// The route a request gets, as "line" of the route (0: none, -1: the default, kBadPath: 400).
int match(const struct rules_service &svc, const char *host, const char *path, const char *sni = nullptr)
{
	std::string resolved(strlen(path) + 2, '\0');
	size_t n = 0;
	const char *why = nullptr;
	long r = rules_route_request(&svc, host, host ? strlen(host) : 0, path, strlen(path), sni, sni ? strlen(sni) : 0,
	                             resolved.data(), resolved.size(), &n, &why);
	if (r == RULES_ROUTE_BAD_PATH)
		return kBadPath;
	if (r < 0)
		return 0;
	if (r == svc.default_route)
		return -1;
	return svc.routes[r].line;
}

TEST(Routes, PlainHttpHostAndPathPrecedence)
{
	Loaded l;
	load(std::string(kPools) + R"(services = ( { name = "http"; listen = [ "127.0.0.1:8080" ];
  routes = (
    { host = "mail.contoso.test"; pool = "owa"; },
    { host = "mail.contoso.test"; path = "/EWS"; pool = "ews"; port = 8443; },
    { host = "mail.contoso.test"; path = "/ews/exchange.asmx/x"; pool = "web"; },
    { host = "*.contoso.test"; pool = "web"; },
    { host = "~^app[0-9]+\\.lab\\.test$"; pool = "web"; },
    { path = "/.well-known/"; status = 404; },
    { host = "*"; redirect = "https"; status = 308; }
  ); } );
)",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	const struct rules_service &s = l.cfg->services[0];
	EXPECT_EQ(s.mode, RULES_MODE_HTTP);
	EXPECT_EQ(match(s, "mail.contoso.test", "/owa/"), 7);
	EXPECT_EQ(match(s, "mail.contoso.test", "/ews"), 8);         // paths compare without case
	EXPECT_EQ(match(s, "mail.contoso.test", "/EWS/Exchange.asmx"), 8);
	EXPECT_EQ(match(s, "mail.contoso.test", "/EWS/Exchange.asmx/x/y"), 9);   // longest prefix wins
	EXPECT_EQ(match(s, "mail.contoso.test", "/ews?wsdl"), 8);
	EXPECT_EQ(match(s, "mail.contoso.test", "/ewsx"), 7);         // a prefix ends at a segment
	EXPECT_EQ(match(s, "autodiscover.contoso.test", "/"), 10);     // wildcard after exact
	EXPECT_EQ(match(s, "contoso.test", "/"), 13);                  // the wildcard needs a label
	EXPECT_EQ(match(s, "app12.lab.test", "/x"), 11);               // regex
	EXPECT_EQ(match(s, "other.test", "/.well-known/acme"), 12);    // any-host routes, longest path first
	EXPECT_EQ(match(s, "other.test", "/"), 13);
	EXPECT_EQ(match(s, nullptr, "/"), 13);
	EXPECT_EQ(s.routes[1].port, 8443u);
	EXPECT_EQ(s.routes[6].status, 308);
}

TEST(Routes, NothingMatchesWithoutADefault)
{
	Loaded l;
	load(std::string(kPools) + R"(services = ( { name = "http"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; pool = "owa"; }, { host = "b.test"; path = "/x"; pool = "ews"; } ); },
  { name = "d"; listen = [ "127.0.0.1:8081" ];
    routes = ( { host = "a.test"; pool = "web"; } ); default = { pool = "adfs"; port = 81; }; } );
)",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(match(l.cfg->services[0], "c.test", "/"), 0);
	EXPECT_EQ(match(l.cfg->services[0], "b.test", "/y"), 0);
	EXPECT_EQ(match(l.cfg->services[1], "c.test", "/"), -1);
	EXPECT_EQ(l.cfg->services[1].routes[l.cfg->services[1].default_route].port, 81u);
}

// A certificate for *.contoso.test from the test PKI, in a folder of its own.
std::string contoso_pki()
{
	static std::string dir;
	if (dir.empty()) {
		char tmpl[] = "/tmp/onegate-routes-XXXXXX";
		if (!mkdtemp(tmpl))
			return "";
		dir = tmpl;
		static const char *const names[] = {"*.contoso.test", "contoso.test"};
		const certs_leaf_spec leaf = {"contoso", names, 2, CERTS_KEY_ECDSA_P256, 90};
		char err[256];
		if (certs_testpki_generate(dir.c_str(), &leaf, 1, err, sizeof(err)) != 0)
			return "";
	}
	return dir;
}

TEST(Routes, TlsServiceWithPassthroughAndSniConstraint)
{
	Loaded l;
	std::string d = contoso_pki();
	ASSERT_FALSE(d.empty());
	load(std::string(kPools) + "certificates = ( { name = \"contoso\"; cert = \"" + d + "/contoso.pem\"; key = \"" + d +
	         "/contoso.key\"; ca_file = \"" + d + "/ca.pem\"; } );" + R"(
services = ( { name = "https"; listen = [ "127.0.0.1:8443" ];
  tls = { certificates = [ "contoso" ]; };
  routes = (
    { sni = "sts.contoso.test"; passthrough = true; pool = "adfs"; },
    { host = "mail.contoso.test"; sni = "mail.contoso.test"; pool = "owa"; },
    { host = "mail.contoso.test"; pool = "web"; }
  ); } );
)",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	const struct rules_service &s = l.cfg->services[0];
	EXPECT_EQ(s.mode, RULES_MODE_TLS);
	EXPECT_EQ(rules_namemap_lookup(s.sni_map, "sts.contoso.test", 16), 0);
	EXPECT_EQ(rules_namemap_lookup(s.sni_map, "mail.contoso.test", 17), -1);
	EXPECT_EQ(match(s, "mail.contoso.test", "/", "mail.contoso.test"), 10);
	EXPECT_EQ(match(s, "mail.contoso.test", "/", "other.contoso.test"), 11);
	EXPECT_EQ(match(s, "sts.contoso.test", "/", "mail.contoso.test"), 0);
	ASSERT_EQ(l.cfg->ncerts, 1u);
	EXPECT_EQ(s.default_cert, 0);
}

TEST(Routes, SniOnlyServiceIsPassthrough)
{
	Loaded l;
	load(std::string(kPools) + R"(services = ( { name = "p"; listen = [ "127.0.0.1:8443" ];
  routes = ( { sni = "a.test"; pool = "owa"; } ); default = { pool = "web"; }; },
  { name = "q"; listen = [ "127.0.0.1:8444" ]; default = { pool = "ews"; }; } );
)",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(l.cfg->services[0].mode, RULES_MODE_PASSTHROUGH);
	EXPECT_TRUE(l.cfg->services[0].routes[0].passthrough);
	EXPECT_EQ(l.cfg->services[1].mode, RULES_MODE_PASSTHROUGH);
}

TEST(Routes, Errors)
{
	Loaded l;
	load(std::string(kPools) + R"(services = ( { name = "mix"; listen = [ "127.0.0.1:8080" ];
  routes = ( { sni = "a.test"; pool = "owa"; },
             { host = "b.test"; pool = "ews"; } ); },
  { name = "h"; listen = [ "127.0.0.1:8081" ];
  routes = ( { host = "a.test"; path = "/x"; pool = "owa"; },
             { host = "A.test."; path = "/X"; pool = "ews"; },
             { host = "c.test:80"; pool = "web"; },
             { path = "owa"; pool = "web"; },
             { host = "d.test"; pool = "web"; redirect = "https"; },
             { host = "e.test"; redirect = "ftp://x"; },
             { host = "f.test"; redirect = "https"; status = 200; },
             { host = "g.test"; port = 70000; pool = "web"; },
             { host = "h.test"; port = 8080; status = 404; },
             { sni = "i.test"; host = "i.test"; pool = "web"; },
             { pool = "web"; },
             { host = "~(unclosed"; pool = "web"; }
  ); default = { reject = true; }; },
  { name = "t"; listen = [ "127.0.0.1:8443" ]; tls = { certificates = [ "nope" ]; default = "nope2"; };
  routes = ( { sni = "s.test"; passthrough = true; path = "/x"; pool = "adfs"; },
             { host = "p.test"; passthrough = true; pool = "adfs"; } ); } );
)",
	     l);
	EXPECT_EQ(l.cfg, nullptr);
	EXPECT_FALSE(has_sub(l, "t.conf:6: sni needs TLS")) << "a mixed service is reported once";
	std::vector<std::string> want = {
	    "t.conf:16: port must be from 1 to 65535, not 70000",
	    "t.conf:7: this service has no tls group, so it either relays TLS by sni (like the route at t.conf:6) or "
	    "serves plain HTTP by host and path (like this one); add tls = { ... } to terminate, or split it into two "
	    "services",
	    "t.conf:11: host \"c.test:80\" has a port; the port in a Host header is ignored when matching, so drop it",
	    "t.conf:12: path \"owa\" must start with \"/\", e.g. path = \"/owa\";",
	};
	for (const auto &w : want) {
		bool found = false;
		for (const auto &e : l.errors)
			found |= e == w;
		EXPECT_TRUE(found) << "missing: " << w << "\ngot:\n" << l.all();
	}
	auto has = [&](const char *sub) {
		for (const auto &e : l.errors)
			if (e.find(sub) != std::string::npos)
				return true;
		return false;
	};
	EXPECT_TRUE(has("t.conf:10: this route can never match: the route at t.conf:9 has the same host and path first"));
	EXPECT_TRUE(has("t.conf:13: a route either forwards to a pool, redirects, or answers a status; keep one"));
	EXPECT_TRUE(has("t.conf:14: redirect must be \"https\""));
	EXPECT_TRUE(has("t.conf:15: a redirect's status must be 301, 302, 303, 307 or 308, not 200"));
	EXPECT_TRUE(has("t.conf:17: port rewrites the back-end port; it needs pool"));
	EXPECT_TRUE(has("t.conf:18: sni needs TLS: this service has no tls group"));
	EXPECT_TRUE(has("t.conf:19: this route matches nothing"));
	EXPECT_TRUE(has("t.conf:20: bad host \"~(unclosed\": regex error at offset 9: missing closing parenthesis"));
	EXPECT_TRUE(has("t.conf:21: reject = true only applies to a passthrough service; an HTTP service answers 404"));
	EXPECT_TRUE(has("t.conf:22: no certificate named \"nope\"; define it in certificates"));
	EXPECT_TRUE(has("t.conf:22: no certificate named \"nope2\""));
	EXPECT_TRUE(has("t.conf:23: a passthrough route relays TLS untouched, so path cannot apply (HTTP only)"));
	EXPECT_TRUE(has("t.conf:24: a passthrough route is matched on the TLS server name; add sni"));
}

TEST(Routes, CertificateSectionErrors)
{
	Loaded l;
	load(std::string(kPools) + R"(certificates = (
  { name = "a"; pfx = "a.pfx"; cert = "a.pem"; key = "a.key"; },
  { name = "b"; },
  { name = "c"; cert = "c.pem"; },
  { name = "d"; pfx = "d.pfx"; password = "x"; password_env = "P"; },
  { name = "e"; cert = "e.pem"; key = "e.key"; password = "x"; },
  { name = "a"; cert = "a.pem"; key = "a.key"; } );
services = ( { name = "t"; listen = [ "127.0.0.1:8443" ]; tls = { certificates = [ "a", "b" ]; default = "c"; };
  routes = ( { host = "x.test"; pool = "web"; } ); } );
)",
	     l);
	EXPECT_EQ(l.cfg, nullptr);
	std::vector<std::string> want = {
	    "t.conf:6: certificate \"a\" has both pfx and cert/key; keep one",
	    "t.conf:7: certificate \"b\" needs pfx = \"FILE.pfx\"; or cert = \"FILE.pem\"; key = \"FILE.key\";",
	    "t.conf:8: certificate \"c\" has cert but no key; add key = \"FILE.key\"; (or use pfx)",
	    "t.conf:9: certificate \"d\" gives its password more than one way; keep one of password, password_file, "
	    "password_env",
	    "t.conf:10: a password only applies to a pfx file",
	    "t.conf:11: duplicate certificate name \"a\"; the first is at t.conf:6",
	    "t.conf:12: default certificate \"c\" is not in this service's certificates; add it there",
	};
	for (const auto &w : want) {
		bool found = false;
		for (const auto &e : l.errors)
			found |= e == w;
		EXPECT_TRUE(found) << "missing: " << w << "\ngot:\n" << l.all();
	}
}

} // namespace

namespace {

TEST(Routes, HostNoCertificateCoversIsAnError)
{
	Loaded l;
	std::string d = contoso_pki();
	ASSERT_FALSE(d.empty());
	load(std::string(kPools) + "certificates = ( { name = \"contoso\"; cert = \"" + d + "/contoso.pem\"; key = \"" + d +
	         "/contoso.key\"; ca_file = \"" + d + "/ca.pem\"; } );\n" + R"(services = ( { name = "https";
  listen = [ "127.0.0.1:8443" ]; tls = { certificates = [ "contoso" ]; };
  routes = ( { host = "mail.contoso.test"; pool = "owa"; },
             { host = "mail.fabrikam.test"; pool = "owa"; },
             { host = "a.b.contoso.test"; pool = "owa"; },
             { host = "*.contoso.test"; pool = "web"; },
             { sni = "sts.fabrikam.test"; passthrough = true; pool = "adfs"; } ); } );
)",
	     l);
	EXPECT_EQ(l.cfg, nullptr);
	EXPECT_TRUE(has_sub(l, "t.conf:9: no certificate of this service covers host \"mail.fabrikam.test\"")) << l.all();
	EXPECT_TRUE(has_sub(l, "t.conf:10: no certificate of this service covers host \"a.b.contoso.test\"")) << l.all();
	EXPECT_EQ(l.errors.size(), 2u) << l.all();
}

TEST(Routes, CertificateLoadErrorsNameTheRuleLine)
{
	Loaded l;
	load(std::string(kPools) + R"(certificates = ( { name = "x"; cert = "/nonexistent/x.pem"; key = "/nonexistent/x.key"; } );
services = ( { name = "h"; listen = [ "127.0.0.1:8080" ]; routes = ( { host = "a.test"; pool = "web"; } ); } );
)",
	     l);
	EXPECT_EQ(l.cfg, nullptr);
	EXPECT_TRUE(has_sub(l, "t.conf:5: cannot read certificate file \"/nonexistent/x.pem\": No such file or directory"))
	    << l.all();
}

} // namespace

namespace {

TEST(Routes, ServersWithoutPortTakeTheRoutePort)
{
	Loaded l;
	load(R"(pools = ( { name = "skype"; servers = ( "127.0.0.1", "[::1]" ); } );
services = ( { name = "h"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "lyncdiscover.contoso.test"; pool = "skype"; port = 8080; } ); } );
)",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(l.cfg->pools[0].servers[0].port, 0u);
	EXPECT_STREQ(l.cfg->pools[0].servers[1].addr.text, "[::1]");
	Loaded bad;
	load(R"(pools = ( { name = "skype"; servers = ( "127.0.0.1" ); } );
services = ( { name = "h"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; pool = "skype"; } ); default = { pool = "skype"; }; } );
)",
	     bad);
	EXPECT_EQ(bad.cfg, nullptr);
	EXPECT_TRUE(has_sub(bad, "t.conf:3: pool \"skype\" lists server \"127.0.0.1\" without a port, so this route must "
	                         "give one: port = 443;"))
	    << bad.all();
	EXPECT_TRUE(has_sub(bad, "t.conf:3: pool \"skype\" lists a server without a port, so the default must give one"))
	    << bad.all();
}

} // namespace

namespace {

// Every message, in order: nothing missing and nothing extra.
void expect_exactly(const std::string &text, const std::vector<std::string> &want)
{
	Loaded l;
	load(text, l);
	EXPECT_EQ(l.cfg, nullptr);
	EXPECT_EQ(l.errors, want) << l.all();
}

std::string contoso_cert_line()
{
	std::string d = contoso_pki();
	return "certificates = ( { name = \"contoso\"; cert = \"" + d + "/contoso.pem\"; key = \"" + d +
	       "/contoso.key\"; ca_file = \"" + d + "/ca.pem\"; } );\n";
}

TEST(Routes, PassthroughRouteWithHttpOnlySettings)
{
	ASSERT_FALSE(contoso_pki().empty());
	expect_exactly(std::string(kPools) + contoso_cert_line() + R"(services = ( { name = "pt"; listen = [ "127.0.0.1:8443" ];
  routes = (
    { sni = "a.test"; pool = "adfs";
      request_timeout = "16m"; },
    { sni = "b.test"; pool = "adfs"; host_rewrite = "x.test"; forwarded = false; },
    { sni = "c.test"; pool = "adfs"; idle_timeout = "1h"; },
    { sni = "d.test"; status = 404; } ); },
  { name = "tls"; listen = [ "127.0.0.1:8444" ]; tls = { certificates = [ "contoso" ]; };
    routes = ( { sni = "e.contoso.test"; passthrough = true; pool = "adfs";
                 path = "/x"; } ); } );
)",
	               {
	                   "t.conf:9: a passthrough route relays TLS untouched, so request_timeout cannot apply (HTTP "
	                   "only); remove it or remove passthrough",
	                   "t.conf:10: a passthrough route relays TLS untouched, so host_rewrite and forwarded cannot apply "
	                   "(HTTP only); remove them or remove passthrough",
	                   "t.conf:11: a passthrough route's relay ends after its pool's idle_timeout, not the route's; set "
	                   "idle_timeout on pool \"adfs\" instead",
	                   "t.conf:12: a passthrough route relays TLS untouched, so status cannot apply (HTTP only); remove "
	                   "it or remove passthrough",
	                   "t.conf:15: a passthrough route relays TLS untouched, so path cannot apply (HTTP only); remove "
	                   "it or remove passthrough",
	               });
	// The default of a passthrough service relays too.
	for (const char *extra : { "status = 404;", "request_timeout = \"1m\";", "forwarded = false;", "idle_timeout = 5;",
	                           "host_rewrite = \"x.test\";" }) {
		const char *pool = strncmp(extra, "status", 6) == 0 ? "" : "pool = \"adfs\"; ";
		expect_exactly(std::string(kPools) + "services = ( { name = \"pt\"; listen = [ \"127.0.0.1:8443\" ];\n"
		                                      "  routes = ( { sni = \"a.test\"; pool = \"adfs\"; } );\n"
		                                      "  default = { " + pool + extra + " }; } );\n",
		               { "t.conf:7: this service relays TLS by sni, so its default can only say pool = \"NAME\"; "
		                 "(and port) or reject = true;" });
	}
	Loaded ok;
	load(std::string(kPools) + "services = ( { name = \"pt\"; listen = [ \"127.0.0.1:8443\" ];\n"
	                           "  routes = ( { sni = \"a.test\"; pool = \"adfs\"; } ); default = { pool = \"web\"; port = 8443; }; } );\n",
	     ok);
	EXPECT_NE(ok.cfg, nullptr) << ok.all();
}

TEST(Routes, ShadowedRoutesAndDefault)
{
	expect_exactly(std::string(kPools) + R"(services = ( { name = "h"; listen = [ "127.0.0.1:8080" ];
  routes = (
    { host = "a.test"; path = "/x"; pool = "owa"; },
    { host = "A.TEST."; path = "/X"; pool = "ews"; },
    { host = "a.test"; path = "/x"; status = 404; },
    { host = "a.test"; path = "/x/"; pool = "web"; },
    { host = "*"; path = "/y"; pool = "web"; },
    { path = "/y"; pool = "owa"; },
    { host = "*"; pool = "web"; }
  );
  default = { pool = "adfs"; }; } );
)",
	               {
	                   "t.conf:8: this route can never match: the route at t.conf:7 has the same host and path first; "
	                   "remove one or change its path",
	                   "t.conf:9: this route can never match: the route at t.conf:7 has the same host and path first; "
	                   "remove one or change its path",
	                   "t.conf:12: this route can never match: the route at t.conf:11 has the same host and path "
	                   "first; remove one or change its path",
	                   "t.conf:15: default can never be used: the route at t.conf:13 takes every request the other "
	                   "routes leave; remove default, or give that route a host or path",
	               });
}

TEST(Routes, ShadowedBySniOrByPassthrough)
{
	ASSERT_FALSE(contoso_pki().empty());
	std::string text = std::string(kPools) + contoso_cert_line() + R"(services = ( { name = "https";
  listen = [ "127.0.0.1:8443" ]; tls = { certificates = [ "contoso" ]; };
  routes = (
    { host = "mail.contoso.test"; pool = "owa"; },
    { host = "mail.contoso.test"; sni = "mail.contoso.test"; pool = "ews"; },
    { host = "www.contoso.test"; sni = "www.contoso.test"; pool = "ews"; },
    { host = "www.contoso.test"; pool = "owa"; },
    { host = "www.contoso.test"; sni = "WWW.contoso.test."; pool = "web"; },
    { sni = "sts.contoso.test"; passthrough = true; pool = "adfs"; },
    { sni = "*.lab.contoso.test"; passthrough = true; pool = "adfs"; },
    { host = "sts.contoso.test"; sni = "sts.contoso.test"; pool = "web"; },
    { host = "lab.contoso.test";
      sni = "x.lab.contoso.test"; pool = "web"; },
    { host = "lab.contoso.test"; sni = "*.lab.contoso.test"; path = "/a"; pool = "web"; },
    { host = "lab.contoso.test"; sni = "*.contoso.test"; path = "/b"; pool = "web"; }
  ); } );
)";
	expect_exactly(text,
	               {
	                   "t.conf:10: this route can never match: the route at t.conf:9 has the same host and no sni, so "
	                   "it takes every sni first; remove one or change its path",
	                   "t.conf:13: this route can never match: the route at t.conf:11 has the same host and sni "
	                   "first; remove one or change its path",
	                   "t.conf:16: this route can never match: a connection with sni \"sts.contoso.test\" is relayed "
	                   "untouched by the passthrough route at t.conf:14; change this route's sni or remove it",
	                   "t.conf:18: this route can never match: a connection with sni \"x.lab.contoso.test\" is relayed "
	                   "untouched by the passthrough route at t.conf:15; change this route's sni or remove it",
	                   "t.conf:19: this route can never match: a connection with sni \"*.lab.contoso.test\" is relayed "
	                   "untouched by the passthrough route at t.conf:15; change this route's sni or remove it",
	               });
}

TEST(Routes, PunycodeNamesMatchAsClientsSendThem)
{
	Loaded l;
	load(std::string(kPools) + R"(services = ( { name = "h"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "xn--mnchen-3ya.test"; pool = "owa"; },
             { host = "*.XN--BCHER-KVA.test"; pool = "ews"; } ); } );
)",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	const struct rules_service &s = l.cfg->services[0];
	EXPECT_EQ(match(s, "xn--mnchen-3ya.test", "/"), 6);
	EXPECT_EQ(match(s, "www.xn--bcher-kva.test", "/"), 7);
	EXPECT_EQ(match(s, "mnchen.test", "/"), 0);
	// Written as UTF-8, a name could never match what clients send: say how to write it.
	expect_exactly(std::string(kPools) + "services = ( { name = \"h\"; listen = [ \"127.0.0.1:8080\" ];\n"
	                                      "  routes = ( { host = \"m\xc3\xbcnchen.test\"; pool = \"owa\"; } ); } );\n",
	               { "t.conf:6: bad host \"m\xc3\xbcnchen.test\": non-ASCII byte 0xc3 in name; write an "
	                 "internationalized name in punycode, as clients send it (idn2 NAME prints it, e.g. "
	                 "\"xn--mnchen-3ya.de\")" });
}

} // namespace

namespace {

// What rules_print writes, without its "# line N" notes (they name the file printed from).
std::string printed(const struct rules_config *c, bool strip_lines)
{
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return "";
	rules_print(f, c);
	fclose(f);
	std::string s(buf, len);
	free(buf);
	if (!strip_lines)
		return s;
	std::string out;
	size_t at = s.find('\n') + 1;     // the first line names the file
	while (at < s.size()) {
		size_t end = s.find('\n', at);
		std::string line = s.substr(at, end - at);
		size_t note = line.find("  # line ");
		out += (note == std::string::npos ? line : line.substr(0, note)) + "\n";
		at = end + 1;
	}
	return out;
}

TEST(RoutesPrint, PrintedConfigurationLoadsAgainAsTheSame)
{
	ASSERT_FALSE(contoso_pki().empty());
	Loaded a;
	load(contoso_cert_line() + R"(onegate = { workers = 3; request_timeout = "16m"; };
templates = ( { name = "mine"; balance = "cookie"; cookie = { name = "MS-WSMAN"; httponly = false; };
                idle_timeout = "20m"; forwarded = false; retries = 1; retry_body = "4k"; retry_on_timeout = true; } );
plugins = ( { name = "lan"; module = "ip_filter"; args = { allow = [ "10.0.0.0/8", "::1/128" ]; status = 403; }; } );
pools = ( { name = "web"; template = "skype-web"; servers = ( "127.0.0.1", { address = "127.0.0.2"; weight = 3;
                                                               max_conns = 9; backup = true; } );
            tls = { sni = "web.contoso.test"; verify = false; }; },
          { name = "lync"; template = "mine"; servers = ( "127.0.0.1:9001" ); health = { type = "tcp"; }; },
          { name = "adfs"; template = "adfs"; servers = ( "127.0.0.1:9002" ); } );
services = ( { name = "https"; listen = [ "127.0.0.1:8443", "[::1]:8443" ];
    tls = { certificates = [ "contoso" ]; }; plain_http = true; header_timeout = "7s";
    routes = ( { sni = "sts.contoso.test"; template = "adfs"; pool = "adfs"; },
               { host = "webext.contoso.test"; template = "skype-web"; pool = "web"; plugins = [ "lan" ]; },
               { host = "~^app[0-9]+\\.contoso\\.test$"; path = "/x"; pool = "lync"; template = "mine";
                 host_rewrite = "app.internal"; normalize_path = true; } );
    default = { status = 404; }; },
  { name = "pt"; listen = [ "127.0.0.1:9443" ]; accept_proxy = true;
    routes = ( { sni = "*.contoso.test"; pool = "adfs"; port = 49443; } ); default = { reject = true; }; },
  { name = "http"; listen = [ "127.0.0.1:8080" ]; windows_paths = false;
    routes = ( { host = "lyncdiscover.contoso.test"; template = "skype-lyncdiscover-http"; pool = "web"; } );
    default = { template = "redirect-https"; }; } );
)",
	     a);
	ASSERT_NE(a.cfg, nullptr) << a.all();
	std::string once = printed(a.cfg, false);
	// Templates and defaults applied, in the file's own syntax: the admin sees what they set.
	EXPECT_NE(once.find("{ host = \"webext.contoso.test\"; pool = \"web\"; port = 4443; "
	                    "request_timeout = \"960s\"; idle_timeout = \"1800s\"; plugins = [ \"lan\" ]; },"),
	          std::string::npos)
	    << once;
	EXPECT_NE(once.find("host = \"~^app[0-9]+\\\\.contoso\\\\.test$\"; path = \"/x\"; pool = \"lync\"; "
	                    "host_rewrite = \"app.internal\"; request_timeout = \"960s\"; idle_timeout = \"1200s\"; "
	                    "forwarded = false; normalize_path = true; retry_on_timeout = true; }"),
	          std::string::npos)
	    << once;
	EXPECT_NE(once.find("windows_paths = false;"), std::string::npos) << once;
	EXPECT_NE(once.find("retries = 1; retry_budget = 100; retry_body = 4096;"), std::string::npos) << once;
	EXPECT_NE(once.find("    default = { status = 404; };"), std::string::npos) << once;
	EXPECT_NE(once.find("    default = { reject = true; };"), std::string::npos) << once;
	EXPECT_NE(once.find("    default = { redirect = \"https\"; status = 301; };"), std::string::npos) << once;
	EXPECT_NE(once.find("cookie = { name = \"MS-WSMAN\"; path = \"/\"; httponly = false; };"),
	          std::string::npos)
	    << once;

	Loaded b;
	load(once, b);
	ASSERT_NE(b.cfg, nullptr) << b.all() << "\nprinted:\n" << once;
	EXPECT_EQ(printed(b.cfg, true), printed(a.cfg, true));
	EXPECT_EQ(b.cfg->services[0].routes[2].request_timeout_ms, 960000u);
	EXPECT_EQ(b.cfg->pools[1].balance, RULES_BALANCE_COOKIE);
}

} // namespace

namespace {

// The example in docs/rules.md's Matching section, read from the document itself, routes the
// requests its table says where the table says.
TEST(Routes, TheDocumentedExampleRoutesAsItsTableSays)
{
	std::string src = __FILE__;
	std::ifstream in(src.substr(0, src.rfind("tests/unit/")) + "docs/rules.md");
	ASSERT_TRUE(in.good());
	std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	size_t at = doc.find("\nroutes = (\n", doc.find("## Matching"));
	ASSERT_NE(at, std::string::npos);
	std::string routes = doc.substr(at + 1, doc.find("\n);\n", at) + 3 - at);

	static std::string dir;
	if (dir.empty()) {
		char tmpl[] = "/tmp/onegate-docroutes-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir = tmpl;
		static const char *const names[] = {"*.contoso.com", "*.lab.contoso.com"};
		const certs_leaf_spec leaf = {"contoso", names, 2, CERTS_KEY_ECDSA_P256, 90};
		char err[256];
		ASSERT_EQ(certs_testpki_generate(dir.c_str(), &leaf, 1, err, sizeof(err)), 0) << err;
	}
	std::string pools = "pools = (";
	const char *const names[] = { "adfs", "ex-owa", "ex-ews", "lab", "apps", "old-apps", "muenchen", "skype", "acme" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		pools += std::string(i ? "," : "") + " { name = \"" + names[i] + "\"; servers = ( \"127.0.0.1:" +
		         std::to_string(9001 + i) + "\" ); }";
	Loaded l;
	load(pools + " );\ncertificates = ( { name = \"c\"; cert = \"" + dir + "/contoso.pem\"; key = \"" + dir +
	         "/contoso.key\"; ca_file = \"" + dir + "/ca.pem\"; } );\n"
	         "services = ( { name = \"https\"; listen = [ \"127.0.0.1:8443\" ]; tls = { certificates = [ \"c\" ]; };\n" +
	         routes + " } );\n",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.all() << routes;
	const struct rules_service &s = l.cfg->services[0];
	auto to = [&](const char *host, const char *path) -> std::string {
		long r = rules_route_match_http(&s, host, strlen(host), path, strlen(path), nullptr, 0);
		if (r < 0)
			return "nothing";
		const struct rules_route &rt = s.routes[r];
		return rt.pool >= 0 ? l.cfg->pools[rt.pool].name : std::to_string(rt.status);
	};
	long sts = rules_namemap_lookup(s.sni_map, "sts.contoso.com", 15);
	ASSERT_GE(sts, 0);
	EXPECT_TRUE(s.routes[sts].passthrough);
	EXPECT_STREQ(l.cfg->pools[s.routes[sts].pool].name, "adfs");
	EXPECT_EQ(to("mail.contoso.com", "/owa/auth/logon.aspx"), "ex-owa");  // the gateway lowers case, drops . and :port
	EXPECT_EQ(to("mail.contoso.com", "/ews/exchange.asmx"), "ex-ews");
	EXPECT_EQ(to("mail.contoso.com", "/owakey"), "ex-owa");
	EXPECT_EQ(s.routes[rules_route_match_http(&s, "mail.contoso.com", 16, "/owakey", 7, nullptr, 0)].path, nullptr);
	EXPECT_EQ(to("app7.contoso.com", "/"), "404");
	EXPECT_EQ(to("x.lab.contoso.com", "/"), "lab");
	EXPECT_EQ(to("lab.contoso.com", "/"), "404");
	EXPECT_EQ(to("app7.other.net", "/"), "old-apps");
	EXPECT_EQ(to("xn--mnchen-3ya.contoso.com", "/"), "muenchen");
	EXPECT_EQ(to("webext.contoso.com", "/"), "skype");
	EXPECT_EQ(to("files.example", "/.well-known/acme-challenge/t"), "acme");
	EXPECT_EQ(to("files.example", "/"), "nothing");
}

} // namespace
