// rules_load_*: values, defaults, @include, and every error with its FILE:LINE.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "rules.h"

namespace {

struct Loaded {
	struct rules_config *cfg = nullptr;
	std::vector<std::string> errors, warnings;

	~Loaded() { rules_config_unref(cfg); }
	std::string all() const
	{
		std::string s;
		for (const auto &e : errors)
			s += e + "\n";
		for (const auto &w : warnings)
			s += w + "\n";
		return s;
	}
};

void collect(struct rules_diag *d, Loaded &out)
{
	for (size_t i = 0; i < rules_diag_count(d); i++)
		(rules_diag_severity(d, i) == RULES_ERROR ? out.errors : out.warnings)
		    .push_back(rules_diag_message(d, i));
	EXPECT_EQ(rules_diag_errors(d), out.errors.size());
}

void load_string(const char *text, Loaded &out)
{
	struct rules_diag *d = rules_diag_new();
	ASSERT_NE(d, nullptr);
	out.cfg = rules_load_string(text, "t.conf", d);
	collect(d, out);
	rules_diag_free(d);
}

void load_file(const std::string &path, Loaded &out)
{
	struct rules_diag *d = rules_diag_new();
	ASSERT_NE(d, nullptr);
	out.cfg = rules_load_file(path.c_str(), d);
	collect(d, out);
	rules_diag_free(d);
}

// Expects the load to fail with exactly these errors, in order.
void expect_errors(const char *text, const std::vector<std::string> &want)
{
	Loaded l;
	load_string(text, l);
	EXPECT_EQ(l.cfg, nullptr);
	EXPECT_EQ(l.errors, want) << l.all();
}

const char *const kGood = R"(# a good file
onegate  = { workers = 2; drain_timeout = "30s"; idle_timeout = "15m"; };
pools    = ( { name = "adfs"; servers = ( "127.0.0.1:9001", "127.0.0.1:9002" ); proxy_protocol = 2;
               connect_timeout = 0.5; idle_timeout = 1800; },
             { name = "lab";  servers = [ "127.0.0.1:9003" ]; },
             { name = "apps"; servers = ( "[::1]:9004" ); connect_timeout = "250ms"; idle_timeout = "2h"; } );
services = ( { name = "public"; listen = [ "127.0.0.1:8443", "[::1]:8443" ];
               accept_proxy = true; proxy_timeout = 3; hello_timeout = "1m";
               routes  = ( { sni = "STS.contoso.test."; pool = "adfs"; },
                           { sni = "*.home.test";       pool = "lab"; },
                           { sni = "~^app[0-9]+\\.test$"; pool = "apps"; } );
               default = { pool = "lab"; }; },
             { name = "strict"; listen = ( "127.0.0.1:8444" );
               routes = ( { sni = "sts.contoso.test"; pool = "adfs"; } );
               default = { reject = true; }; } );
)";

/* The pool of a service's default route, or -1 when there is none. */
static long default_pool(const struct rules_service &svc)
{
	return svc.default_route >= 0 ? svc.routes[svc.default_route].pool : -1;
}

TEST(Loader, GoodFileValues)
{
	Loaded l;
	load_string(kGood, l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_TRUE(l.errors.empty());
	EXPECT_TRUE(l.warnings.empty()) << l.all();
	const struct rules_config *c = l.cfg;
	EXPECT_STREQ(c->path, "t.conf");
	EXPECT_EQ(c->workers, 2u);
	EXPECT_EQ(c->drain_timeout_ms, 30000u);

	ASSERT_EQ(c->npools, 3u);
	const struct rules_pool &adfs = c->pools[0];
	EXPECT_STREQ(adfs.name, "adfs");
	EXPECT_EQ(adfs.line, 3);
	ASSERT_EQ(adfs.nservers, 2u);
	EXPECT_STREQ(adfs.servers[1].addr.text, "127.0.0.1:9002");
	EXPECT_STREQ(adfs.servers[1].host, "127.0.0.1");
	EXPECT_EQ(adfs.servers[1].port, 9002);
	EXPECT_EQ(adfs.servers[1].line, 3);
	const auto *sin = reinterpret_cast<const struct sockaddr_in *>(&adfs.servers[0].addr.ss);
	EXPECT_EQ(sin->sin_family, AF_INET);
	EXPECT_EQ(ntohs(sin->sin_port), 9001);
	EXPECT_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	EXPECT_EQ(adfs.servers[0].addr.len, sizeof(struct sockaddr_in));
	EXPECT_EQ(adfs.proxy_protocol, 2);
	EXPECT_EQ(adfs.connect_timeout_ms, 500u);
	EXPECT_EQ(adfs.idle_timeout_ms, 1800000u);

	const struct rules_pool &lab = c->pools[1];   // file-wide idle default, built-in connect default
	EXPECT_EQ(lab.proxy_protocol, 0);
	EXPECT_EQ(lab.connect_timeout_ms, 5000u);
	EXPECT_EQ(lab.idle_timeout_ms, 900000u);
	EXPECT_EQ(c->pools[2].connect_timeout_ms, 250u);
	EXPECT_EQ(c->pools[2].idle_timeout_ms, 7200000u);
	EXPECT_STREQ(c->pools[2].servers[0].host, "::1");
	EXPECT_EQ(rules_pool_find(c, "apps"), 2);
	EXPECT_EQ(rules_pool_find(c, "nope"), -1);

	ASSERT_EQ(c->nservices, 2u);
	const struct rules_service &pub = c->services[0];
	EXPECT_STREQ(pub.name, "public");
	EXPECT_EQ(pub.line, 7);
	ASSERT_EQ(pub.nlisten, 2u);
	EXPECT_STREQ(pub.listen[1].text, "[::1]:8443");
	const auto *sin6 = reinterpret_cast<const struct sockaddr_in6 *>(&pub.listen[1].ss);
	EXPECT_EQ(sin6->sin6_family, AF_INET6);
	EXPECT_EQ(ntohs(sin6->sin6_port), 8443);
	EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	EXPECT_EQ(pub.listen[1].len, sizeof(struct sockaddr_in6));
	EXPECT_TRUE(pub.accept_proxy);
	EXPECT_EQ(pub.proxy_timeout_ms, 3000u);
	EXPECT_EQ(pub.hello_timeout_ms, 60000u);
	ASSERT_EQ(pub.nroutes, 4u); /* three and the default */
	EXPECT_STREQ(pub.routes[0].sni, "STS.contoso.test.");
	EXPECT_EQ(pub.routes[0].pool, 0);
	EXPECT_EQ(pub.routes[2].pool, 2);
	EXPECT_EQ(pub.routes[2].line, 11);
	EXPECT_EQ(default_pool(pub), 1);
	EXPECT_EQ(rules_namemap_size(pub.sni_map), 3u);
	EXPECT_EQ(rules_namemap_lookup(pub.sni_map, "sts.contoso.test", 16), 0);
	EXPECT_EQ(rules_namemap_lookup(pub.sni_map, "nas.home.test", 13), 1);
	EXPECT_EQ(rules_namemap_lookup(pub.sni_map, "app3.test", 9), 2);
	EXPECT_EQ(rules_namemap_lookup(pub.sni_map, "home.test", 9), -1);

	const struct rules_service &strict = c->services[1];
	EXPECT_EQ(default_pool(strict), -1);
	EXPECT_FALSE(strict.accept_proxy);
	EXPECT_EQ(strict.proxy_timeout_ms, 5000u);
	EXPECT_EQ(strict.hello_timeout_ms, 10000u);
}

TEST(Loader, DefaultsForAMinimalFile)
{
	Loaded l;
	load_string("pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );\n"
	            "services = ( { name = \"s\"; listen = [ \"127.0.0.1:2\" ]; default = { pool = \"p\"; }; } );\n",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	EXPECT_EQ(l.cfg->workers, static_cast<unsigned>(cpus > 0 ? cpus : 1));
	EXPECT_EQ(l.cfg->drain_timeout_ms, 10000u);
	EXPECT_EQ(l.cfg->pools[0].connect_timeout_ms, 5000u);
	EXPECT_EQ(l.cfg->pools[0].idle_timeout_ms, 1800000u);
	EXPECT_EQ(l.cfg->services[0].nroutes, 1u); /* the default */
	EXPECT_EQ(default_pool(l.cfg->services[0]), 0);
}

TEST(Loader, AbsentDefaultRejects)
{
	Loaded l;
	load_string("onegate = { workers = 0; };\n"
	            "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );\n"
	            "services = ( { name = \"s\"; listen = [ \"127.0.0.1:2\" ];\n"
	            "  routes = ( { sni = \"a.test\"; pool = \"p\"; } ); } );\n",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(default_pool(l.cfg->services[0]), -1);
	EXPECT_GE(l.cfg->workers, 1u);
}

TEST(Loader, RefCounting)
{
	Loaded l;
	load_string(kGood, l);
	ASSERT_NE(l.cfg, nullptr);
	EXPECT_EQ(rules_config_ref(l.cfg), l.cfg);
	rules_config_unref(l.cfg);      // back to the one reference Loaded drops
	EXPECT_EQ(rules_config_ref(nullptr), nullptr);
	rules_config_unref(nullptr);
}

TEST(Loader, SyntaxError)
{
	expect_errors("onegate = { workers = 1; };\npools = ( { name = = \"a\"; } );\n",
	              { "t.conf:2: syntax error" });
}

TEST(Loader, UnknownKeysWithHints)
{
	expect_errors(R"(pools = ( { name = "p"; servers = ( "127.0.0.1:1" );
  colour = "blue"; conect_timeout = 1; } );
services = ( { name = "s"; listen = [ "127.0.0.1:2" ];
  routes = ( { sni = "a.test"; pol = "p"; } );
  default = { pool = "p"; rejct = false; }; } );
onegat = { };
)",
	              {
	                  // A group's own keys are checked before the groups inside it.
	                  "t.conf:6: unknown key \"onegat\" at top level; did you mean \"onegate\"?",
	                  "t.conf:2: unknown key \"colour\" in pool; known keys: name, servers, proxy_protocol, "
	                  "share_connections, connect_timeout, idle_timeout, tls, source, balance, cookie, health, retries, "
	                  "retry_budget, retry_body, template",
	                  "t.conf:2: unknown key \"conect_timeout\" in pool; did you mean \"connect_timeout\"?",
	                  "t.conf:4: unknown key \"pol\" in route; did you mean \"pool\" or \"port\"?",
	                  "t.conf:5: unknown key \"rejct\" in default; did you mean \"reject\"?",
	                  "t.conf:4: this route does nothing; add pool = \"NAME\";, redirect = \"https\"; or status = 404;",
	              });
}

TEST(Loader, WrongTypes)
{
	expect_errors(R"(onegate = { workers = "two"; drain_timeout = true; };
pools = ( { name = 7; servers = "127.0.0.1:1"; proxy_protocol = 3; },
          { name = "q"; servers = ( 5 ); proxy_protocol = 1.0; } );
services = ( { name = "s"; listen = [ "127.0.0.1:2" ]; accept_proxy = 1;
  routes = { sni = "a.test"; }; default = "q"; } );
)",
	              {
	                  "t.conf:1: workers must be a whole number",
	                  "t.conf:1: drain_timeout: write a number of seconds or a string like \"500ms\", \"30s\", "
	                  "\"15m\", \"2h\"",
	                  "t.conf:2: name must be a string in double quotes",
	                  "t.conf:2: servers must be a list: servers = ( \"10.0.0.1:443\", "
	                  "{ address = \"10.0.0.2:443\"; backup = true; } );",
	                  "t.conf:2: proxy_protocol must be 0 (off), 1 or 2, not 3",
	                  "t.conf:3: each entry of servers must be \"host:port\" or { address = \"host:port\"; weight = 2; }",
	                  "t.conf:3: proxy_protocol must be a whole number",
	                  "t.conf:4: accept_proxy must be true or false",
	                  "t.conf:5: routes must be a list of groups: routes = ( { host = \"host.example.com\"; "
	                  "pool = \"NAME\"; } );",
	                  "t.conf:5: default must be a group: default = { pool = \"NAME\"; }; or default = { reject "
	                  "= true; };",
	              });
}

TEST(Loader, MissingRequiredKeys)
{
	expect_errors(R"(pools = ( { servers = ( "127.0.0.1:1" ); },
  { name = "p"; } );
services = ( { routes = ( { pool = "p"; } ); default = { }; } );
)",
	              {
	                  "t.conf:1: missing \"name\" in pool; add name = \"NAME\";",
	                  "t.conf:2: missing \"servers\" in pool; add servers = ( \"host:port\" );",
	                  "t.conf:3: missing \"name\" in service; add name = \"NAME\";",
	                  "t.conf:3: missing \"listen\" in service; add listen = [ \"0.0.0.0:443\" ];",
	                  "t.conf:3: default needs pool = \"NAME\";, reject = true;, redirect = \"https\"; or status = 404;",
	                  "t.conf:3: this route matches nothing; give it sni, host or path (use default = { ... } for "
	                  "the rest)",
	              });
	expect_errors("onegate = { workers = 1; };\n",
	              { "t.conf: missing \"services\" at top level; add services = ( { name = \"NAME\"; listen = [ "
	                "\"0.0.0.0:443\" ]; default = { pool = \"NAME\"; }; } );" });
}

TEST(Loader, UnknownPools)
{
	expect_errors(R"(pools = ( { name = "lab"; servers = ( "127.0.0.1:1" ); },
           { name = "adfs"; servers = ( "127.0.0.1:2" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:3" ];
  routes = ( { sni = "a.test"; pool = "lba"; },
             { sni = "b.test"; pool = "zzzzzz"; } );
  default = { pool = "labs"; reject = false; }; } );
)",
	              {
	                  "t.conf:4: no pool named \"lba\"; did you mean \"lab\"?",
	                  "t.conf:5: no pool named \"zzzzzz\"; the pools are \"lab\", \"adfs\"",
	                  "t.conf:6: no pool named \"labs\"; did you mean \"lab\"?",
	              });
	expect_errors("services = ( { name = \"s\"; listen = [ \"127.0.0.1:3\" ]; default = { pool = \"x\"; }; } );\n",
	              { "t.conf:1: no pool named \"x\"; define it in pools = ( { name = \"x\"; ... } );" });
}

TEST(Loader, Duplicates)
{
	expect_errors(R"(pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); },
           { name = "p"; servers = ( "127.0.0.1:2" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:3", "[::1]:3" ];
  routes = ( { sni = "a.test"; pool = "p"; },
             { sni = "A.TEST."; pool = "p"; },
             { sni = "~^x"; pool = "p"; },
             { sni = "~^x"; pool = "p"; } ); },
  { name = "s"; listen = [ "127.0.0.1:4",
      "[::1]:3" ]; } );
)",
	              {
	                  "t.conf:2: duplicate pool name \"p\"; the first is at t.conf:1",
	                  "t.conf:5: duplicate sni \"A.TEST.\" in this service; the first is at t.conf:4",
	                  "t.conf:7: duplicate sni \"~^x\" in this service; the first is at t.conf:6",
	                  "t.conf:9: listen address \"[::1]:3\" is already used at t.conf:3; each address belongs "
	                  "to one service",
	                  "t.conf:8: duplicate service name \"s\"; the first is at t.conf:3",
	              });
}

TEST(Loader, BadSniPatterns)
{
	expect_errors(R"(pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:3" ];
  routes = ( { sni = "~^(unclosed"; pool = "p"; },
             { sni = "www.*.test"; pool = "p"; },
             { sni = ""; pool = "p"; } ); } );
)",
	              {
	                  "t.conf:3: bad sni \"~^(unclosed\": regex error at offset 10: missing closing parenthesis",
	                  "t.conf:4: bad sni \"www.*.test\": \"*\" is allowed only as the whole first label, as in "
	                  "\"*.example.com\"; use \"~REGEX\" for other shapes",
	                  "t.conf:5: bad sni \"\": empty name",
	              });
}

TEST(Loader, BadAddresses)
{
	expect_errors(R"(pools = ( { name = "p"; servers = ( "127.0.0.1:1",
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "::1:80",
    "[::1:80",
    "[nothex]:80",
    ":80",
    "127.0.0.1:8x" ); },
  { name = "q"; servers = ( ); } );
services = ( { name = "s"; listen = [ ]; } );
)",
	              {
	                  "t.conf:2: bad port \"0\" in \"127.0.0.1:0\": use a number from 1 to 65535",
	                  "t.conf:3: bad port \"65536\" in \"127.0.0.1:65536\": use a number from 1 to 65535",
	                  "t.conf:4: bad address \"::1:80\": put an IPv6 address in brackets, as in \"[::1]:443\"",
	                  "t.conf:5: bad address \"[::1:80\": write an IPv6 address as \"[IPv6]:port\"",
	                  "t.conf:6: bad IPv6 address \"nothex\" in \"[nothex]:80\"",
	                  "t.conf:7: bad address \":80\": missing host (\"0.0.0.0:PORT\" or \"[::]:PORT\" means every "
	                  "address)",
	                  "t.conf:8: bad port \"8x\" in \"127.0.0.1:8x\": use a number from 1 to 65535",
	                  "t.conf:9: servers is empty; list at least one \"host:port\"",
	                  "t.conf:10: listen is empty; list at least one \"address:port\"",
	              });
	// A listen address always has its port; a server may leave it to its routes.
	expect_errors("services = ( { name = \"s\"; listen = [ \"127.0.0.1\" ]; } );\n",
	              { "t.conf:1: missing port in \"127.0.0.1\"; write \"127.0.0.1:PORT\"" });
}

TEST(Loader, UnresolvableServer)
{
	Loaded l;
	load_string("pools = ( { name = \"p\";\n  servers = ( \"no-such-host.invalid:80\" ); } );\n"
	            "services = ( { name = \"s\"; listen = [ \"127.0.0.1:3\" ]; default = { pool = \"p\"; }; } );\n",
	            l);
	EXPECT_EQ(l.cfg, nullptr);
	ASSERT_EQ(l.errors.size(), 1u) << l.all();
	// The resolver's reason differs with and without a network; the rest is ours.
	EXPECT_EQ(l.errors[0].rfind("t.conf:2: cannot resolve \"no-such-host.invalid\" in \"no-such-host.invalid:80\": ", 0),
	          0u)
	    << l.errors[0];
}

TEST(Loader, BadDurationsAndWorkers)
{
	expect_errors(R"(onegate = { workers = -1; drain_timeout = 0;
  connect_timeout = "5x"; idle_timeout = "-3s"; };
pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); idle_timeout = 0.0001; } );
services = ( { name = "s"; listen = [ "127.0.0.1:3" ]; hello_timeout = "10 s";
  default = { pool = "p"; reject = true; }; } );
)",
	              {
	                  "t.conf:1: workers must be 0 (one per CPU) or a number up to 1024, not -1",
	                  "t.conf:1: drain_timeout: must be greater than 0",
	                  "t.conf:2: connect_timeout: bad duration \"5x\": write a number of seconds or a string like "
	                  "\"500ms\", \"30s\", \"15m\", \"2h\"",
	                  "t.conf:2: idle_timeout: bad duration \"-3s\": write a number of seconds or a string like "
	                  "\"500ms\", \"30s\", \"15m\", \"2h\"",
	                  "t.conf:3: idle_timeout: must be at least 1ms",
	                  "t.conf:4: hello_timeout: bad duration \"10 s\": write a number of seconds or a string like "
	                  "\"500ms\", \"30s\", \"15m\", \"2h\"",
	                  "t.conf:5: default has more than one of pool, reject, redirect and status; keep one",
	              });
}

TEST(Loader, UnusedPoolWarns)
{
	Loaded l;
	load_string("pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); },\n"
	            "  { name = \"spare\"; servers = ( \"127.0.0.1:2\" ); } );\n"
	            "services = ( { name = \"s\"; listen = [ \"127.0.0.1:3\" ]; default = { pool = \"p\"; }; } );\n",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(l.warnings,
	          std::vector<std::string>{ "t.conf:2: warning: pool \"spare\" is not used by any route or default" });
}

// Keys that would do nothing where they are written are reported at their line.
TEST(Loader, KeysWithoutEffectWarn)
{
	Loaded l;
	load_string("pools = ( { name = \"relay\"; servers = ( \"127.0.0.1:1\" );\n"
	            "  share_connections = false;\n"
	            "  tls = { verify = false;\n"
	            "    ca_file = \"/nonexistent/ca.pem\"; };\n"
	            "  balance = \"cookie\"; retry_body = 0; retry_budget = 50; },\n"
	            "  { name = \"web\"; servers = ( \"127.0.0.1:2\" ); share_connections = false; proxy_protocol = 2; } );\n"
	            "services = ( { name = \"pass\"; listen = [ \"127.0.0.1:3\" ];\n"
	            "    header_timeout = 5;\n"
	            "    keepalive_timeout = 5;\n"
	            "    proxy_timeout = 2;\n"
	            "    routes = ( { sni = \"a.test\"; pool = \"relay\"; } ); },\n"
	            "  { name = \"http\"; listen = [ \"127.0.0.1:4\" ];\n"
	            "    hello_timeout = 5; accept_proxy = true; proxy_timeout = 2;\n"
	            "    routes = ( { host = \"b.test\"; pool = \"web\"; } ); } );\n",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	std::vector<std::string> want = {
		"t.conf:4: warning: ca_file has no effect with verify = false: the server's certificate is not checked at "
		"all; remove ca_file, or verify",
		"t.conf:10: warning: proxy_timeout bounds the wait for a PROXY header, which this service does not read; add "
		"accept_proxy = true; or remove proxy_timeout",
		"t.conf:8: warning: header_timeout applies to HTTP requests, and this service relays TLS by sni without "
		"reading any; remove it (a relay's idle time is its pool's idle_timeout)",
		"t.conf:9: warning: keepalive_timeout applies to HTTP requests, and this service relays TLS by sni without "
		"reading any; remove it (a relay's idle time is its pool's idle_timeout)",
		"t.conf:13: warning: hello_timeout bounds the wait for a TLS ClientHello, and this plain HTTP service reads "
		"none; header_timeout bounds the request head: remove hello_timeout",
		"t.conf:2: warning: share_connections has no effect on pool \"relay\": only passthrough routes use it, and "
		"each of their connections is relayed on a server connection of its own; remove it",
		"t.conf:3: warning: tls has no effect on pool \"relay\": only passthrough routes use it, and they relay the "
		"client's TLS untouched; remove it, or terminate TLS on the service (no passthrough)",
		"t.conf:5: warning: balance = \"cookie\" cannot work on pool \"relay\": only passthrough routes use it, and "
		"a relay sees no HTTP to put a cookie in; use balance = \"source\" for affinity",
		"t.conf:5: warning: retry_body has no effect on pool \"relay\": only passthrough routes use it, and a relay "
		"retries only a failed connect, before anything was sent (retries bounds that); remove it",
		"t.conf:5: warning: retry_budget has no effect on pool \"relay\": only passthrough routes use it, and a "
		"relay retries only a failed connect, before anything was sent (retries bounds that); remove it",
	};
	EXPECT_EQ(l.warnings, want) << l.all();
}

TEST(Loader, HealthAndRouteKeysWithoutEffectWarn)
{
	Loaded l;
	load_string("pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" );\n"
	            "  health = { type = \"tcp\";\n"
	            "    expect = 200; },\n"
	            "  },\n"
	            "  { name = \"q\"; servers = ( \"127.0.0.1:2\" ); health = { path = \"/h\";\n"
	            "    sni = \"x.test\"; }; },\n"
	            "  { name = \"r\"; servers = ( \"127.0.0.1:4\" ); health = { type = \"none\";\n"
	            "    interval = 5; }; } );\n"
	            "services = ( { name = \"s\"; listen = [ \"127.0.0.1:3\" ]; routes = (\n"
	            "  { host = \"a.test\"; pool = \"p\"; }, { host = \"b.test\"; pool = \"q\"; },"
	            " { host = \"e.test\"; pool = \"r\"; },\n"
	            "  { host = \"c.test\"; redirect = \"https\";\n"
	            "    request_timeout = 5; retry_on_timeout = true; },\n"
	            "  { host = \"d.test\"; status = 410; forwarded = false; host_rewrite = \"x\"; } );\n"
	            "  default = { status = 404; idle_timeout = 5; }; } );\n",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	std::vector<std::string> want = {
		"t.conf:3: warning: expect has no effect on a tcp check, which reads no answer; give the check a path (or "
		"type = \"http\"), or remove expect",
		"t.conf:6: warning: sni is the TLS name an https check sends, and this check is not https; remove sni, or "
		"give the pool tls (or type = \"https\")",
		"t.conf:8: warning: type = \"none\" turns checks off, so interval and the other keys of this health group do "
		"nothing; remove them, or choose type = \"tcp\", \"http\" or \"https\"",
		"t.conf:12: warning: request_timeout has no effect on a route that redirects: no back end is asked; remove it",
		"t.conf:12: warning: retry_on_timeout has no effect on a route that redirects: no back end is asked; remove "
		"it",
		"t.conf:13: warning: host_rewrite has no effect on a route that answers a status: no back end is asked; "
		"remove it",
		"t.conf:13: warning: forwarded has no effect on a route that answers a status: no back end is asked; remove "
		"it",
		"t.conf:14: warning: idle_timeout has no effect on a route that answers a status: no back end is asked; "
		"remove it",
	};
	EXPECT_EQ(l.warnings, want) << l.all();
}

class LoaderFiles : public ::testing::Test {
protected:
	void SetUp() override
	{
		char tmpl[] = "/tmp/rules_loader_test.XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir = tmpl;
	}
	void TearDown() override
	{
		for (const auto &f : files)
			unlink(f.c_str());
		rmdir(dir.c_str());
	}
	std::string write(const std::string &name, const std::string &text)
	{
		std::string p = dir + "/" + name;
		std::ofstream(p) << text;
		files.push_back(p);
		return p;
	}

	std::string dir;
	std::vector<std::string> files;
};

TEST_F(LoaderFiles, IncludeIsRelativeToTheFile)
{
	write("pools.conf", "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );\n");
	std::string main = write("main.conf", "# main\n@include \"pools.conf\"\n"
	                                      "services = ( { name = \"s\"; listen = [ \"127.0.0.1:3\" ];\n"
	                                      "  default = { pool = \"p\"; }; } );\n");
	Loaded l;
	load_file(main, l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_STREQ(l.cfg->path, main.c_str());
	ASSERT_EQ(l.cfg->npools, 1u);
	EXPECT_EQ(default_pool(l.cfg->services[0]), 0);
}

TEST_F(LoaderFiles, PathWithoutFolder)
{
	write("pools.conf", "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );\n");
	write("main.conf", "@include \"pools.conf\"\n"
	                   "services = ( { name = \"s\"; listen = [ \"127.0.0.1:3\" ]; default = { pool = \"p\"; }; } );\n");
	char cwd[4096];
	ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
	ASSERT_EQ(chdir(dir.c_str()), 0);
	Loaded l;
	load_file("main.conf", l);
	ASSERT_EQ(chdir(cwd), 0);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_STREQ(l.cfg->path, "main.conf");
}

TEST_F(LoaderFiles, ErrorsNameTheIncludedFile)
{
	std::string inc = write("pools.conf", "pools = (\n  { name = \"p\"; servers = ( \"127.0.0.1:0\" ); } );\n");
	std::string main = write("main.conf", "@include \"pools.conf\"\n"
	                                      "services = ( { name = \"s\"; listen = [ \"127.0.0.1:3\" ];\n"
	                                      "  default = { pool = \"p\"; }; } );\n");
	Loaded l;
	load_file(main, l);
	EXPECT_EQ(l.cfg, nullptr);
	EXPECT_EQ(l.errors, std::vector<std::string>{ inc + ":2: bad port \"0\" in \"127.0.0.1:0\": use a number from "
	                                                    "1 to 65535" });
}

TEST_F(LoaderFiles, MissingFileAndMissingInclude)
{
	Loaded a;
	load_file(dir + "/absent.conf", a);
	EXPECT_EQ(a.cfg, nullptr);
	EXPECT_EQ(a.errors, std::vector<std::string>{ dir + "/absent.conf: cannot read the rule file: No such file or "
	                                                    "directory" });
	std::string main = write("main.conf", "# x\n@include \"nope.conf\"\n");
	Loaded b;
	load_file(main, b);
	EXPECT_EQ(b.cfg, nullptr);
	EXPECT_EQ(b.errors, std::vector<std::string>{ main + ":2: cannot open include file" });
}

TEST_F(LoaderFiles, ExampleFileLoads)
{
	Loaded l;
	// CMake compiles with absolute paths, so the source tree is found from this file.
	std::string src = __FILE__;
	load_file(src.substr(0, src.rfind("tests/unit/")) + "rules/examples/passthrough.conf", l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_TRUE(l.warnings.empty()) << l.all();
}

} // namespace

namespace {

TEST(LoaderPools, BalanceHealthCookieServersAndAdmin)
{
	Loaded l;
	load_string(R"(onegate = { admin = { listen = "127.0.0.1:8404"; }; };
pools = ( { name = "skype"; balance = "leastconn";
            servers = ( "10.0.1.11", { address = "10.0.1.12"; name = "fe2"; weight = 3; max_conns = 100; },
                        { address = "10.0.1.13"; backup = true; } );
            tls = { sni = "webint.contoso.test"; verify = false; };
            health = { port = 4443; path = "/meet/"; expect = "200-499"; interval = "10s"; timeout = "4s";
                       rise = 3; fall = 2; body = "Skype"; }; },
          { name = "lync2010"; balance = "cookie"; cookie = { name = "MS-WSMAN"; httponly = false; };
            servers = ( "127.0.0.1:9000" ); health = { type = "tcp"; passive_fall = 0; }; } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; pool = "skype"; port = 8080; }, { host = "b.test"; pool = "lync2010"; } ); } );
)",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	const rules_pool &p = l.cfg->pools[0];
	EXPECT_EQ(p.balance, RULES_BALANCE_LEASTCONN);
	EXPECT_STREQ(p.servers[0].name, "10.0.1.11");
	EXPECT_EQ(p.servers[0].weight, 1u);
	EXPECT_STREQ(p.servers[1].name, "fe2");
	EXPECT_EQ(p.servers[1].weight, 3u);
	EXPECT_EQ(p.servers[1].max_conns, 100u);
	EXPECT_TRUE(p.servers[2].backup);
	// A path without a type is HTTP, and HTTPS because the pool re-encrypts.
	EXPECT_EQ(p.health.type, RULES_HEALTH_HTTPS);
	EXPECT_EQ(p.health.port, 4443u);
	EXPECT_EQ(p.health.status_min, 200);
	EXPECT_EQ(p.health.status_max, 499);
	EXPECT_EQ(p.health.interval_ms, 10000u);
	EXPECT_EQ(p.health.rise, 3u);
	EXPECT_STREQ(p.health.body, "Skype");
	EXPECT_EQ(p.health.passive_fall, 5u);
	const rules_pool &q = l.cfg->pools[1];
	EXPECT_EQ(q.balance, RULES_BALANCE_COOKIE);
	EXPECT_STREQ(q.cookie.name, "MS-WSMAN");
	EXPECT_STREQ(q.cookie.path, "/");
	EXPECT_FALSE(q.cookie.httponly);
	EXPECT_EQ(q.cookie.max_age, 0u);
	EXPECT_EQ(q.health.type, RULES_HEALTH_TCP);
	EXPECT_EQ(q.health.passive_fall, 0u);
	EXPECT_TRUE(l.cfg->admin.on);
	EXPECT_STREQ(l.cfg->admin.listen.text, "127.0.0.1:8404");
}

// A cookie group keeps the defaults of the keys it does not write: an empty one
// or one that only names the cookie still sends HttpOnly.
TEST(LoaderPools, CookieGroupKeepsDefaultsItDoesNotWrite)
{
	Loaded l;
	load_string(R"(pools = ( { name = "a"; balance = "cookie"; cookie = { }; servers = ( "127.0.0.1:9000" ); },
          { name = "b"; balance = "cookie"; cookie = { name = "SRV"; }; servers = ( "127.0.0.1:9001" ); },
          { name = "c"; balance = "cookie"; servers = ( "127.0.0.1:9002" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; pool = "a"; }, { host = "b.test"; pool = "b"; }, { host = "c.test"; pool = "c"; } ); } );
)",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	const char *names[] = { "ONEGATEID", "SRV", "ONEGATEID" };
	for (size_t i = 0; i < 3; i++) {
		const rules_cookie &c = l.cfg->pools[i].cookie;
		EXPECT_STREQ(c.name, names[i]) << i;
		EXPECT_STREQ(c.path, "/") << i;
		EXPECT_EQ(c.domain, nullptr) << i;
		EXPECT_TRUE(c.httponly) << i;
		EXPECT_FALSE(c.secure) << i;
		EXPECT_EQ(c.max_age, 0u) << i;
	}
}

// Every whole-number key is read by one setter from one table of bounds; each
// says its own bounds, at its line, when a value is outside them.
TEST(LoaderPools, WholeNumbersOutsideTheirBounds)
{
	expect_errors(R"(pools = ( { name = "p"; servers = ( { address = "127.0.0.1:1"; max_conns = -1; } );
            balance = "cookie"; cookie = { max_age = 2000000; };
            health = { rise = 0; fall = 0; passive_fall = -2; port = 0; }; } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; status = 700; }, { host = "b.test"; pool = "p"; port = 70000; } ); } );
)",
	              {
	                  "t.conf:1: max_conns must be a number from 0 to 1000000, not -1",
	                  "t.conf:2: max_age must be a number from 0 to 1000000, not 2000000",
	                  "t.conf:3: port must be from 1 to 65535, not 0",
	                  "t.conf:3: rise must be a number from 1 to 1000000, not 0",
	                  "t.conf:3: fall must be a number from 1 to 1000000, not 0",
	                  "t.conf:3: passive_fall must be a number from 0 to 1000000, not -2",
	                  "t.conf:5: status must be an HTTP status from 200 to 599, not 700",
	                  "t.conf:5: port must be from 1 to 65535, not 70000",
	                  "t.conf:5: this route does nothing; add pool = \"NAME\";, redirect = \"https\"; or status = 404;",
	              });
}

TEST(LoaderPools, RetriesBudgetAndKeptBodies)
{
	Loaded l;
	load_string(R"(pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); },
          { name = "q"; servers = ( "127.0.0.1:2" ); retries = 0; retry_budget = 20; retry_body = "64KiB"; },
          { name = "r"; servers = ( "127.0.0.1:3" ); retries = 8; retry_budget = 0; retry_body = 0; },
          { name = "s"; servers = ( "127.0.0.1:4" ); retry_body = "1m"; },
          { name = "t"; servers = ( "127.0.0.1:5" ); retry_body = 100; } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; pool = "p"; retry_on_timeout = true; }, { host = "b.test"; pool = "q"; },
             { host = "c.test"; pool = "r"; }, { host = "d.test"; pool = "s"; }, { host = "e.test"; pool = "t"; } ); } );
)",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	const rules_pool *p = l.cfg->pools;
	EXPECT_EQ(p[0].retries, 3u);
	EXPECT_EQ(p[0].retry_budget, 100u);
	EXPECT_EQ(p[0].retry_body, 16384u);
	EXPECT_EQ(p[1].retries, 0u);
	EXPECT_EQ(p[1].retry_budget, 20u);
	EXPECT_EQ(p[1].retry_body, 65536u);
	EXPECT_EQ(p[2].retries, 8u);
	EXPECT_EQ(p[2].retry_budget, 0u);
	EXPECT_EQ(p[2].retry_body, 0u);
	EXPECT_EQ(p[3].retry_body, 1048576u);
	EXPECT_EQ(p[4].retry_body, 100u);
	EXPECT_TRUE(l.cfg->services[0].routes[0].retry_on_timeout);
	EXPECT_FALSE(l.cfg->services[0].routes[1].retry_on_timeout);

	expect_errors(R"(pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); retries = 9; retry_budget = -1;
            retry_body = "2m"; },
          { name = "q"; servers = ( "127.0.0.1:2" ); retries = "3"; retry_budget = 1001; retry_body = "16 k"; },
          { name = "r"; servers = ( "127.0.0.1:3" ); retry_body = -5; } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; pool = "p"; retry_on_timeout = 1; }, { host = "b.test"; pool = "q"; },
             { host = "c.test"; pool = "r"; } ); },
  { name = "pt"; listen = [ "127.0.0.1:9443" ];
    routes = ( { sni = "x.test"; pool = "p"; retry_on_timeout = true; } ); } );
)",
	              {
	                  "t.conf:1: retries must be from 0 (never try again) to 8, not 9",
	                  "t.conf:1: retry_budget is a percentage from 0 to 1000, not -1",
	                  "t.conf:2: retry_body: \"2m\" is too large; the limit is 1048576 bytes",
	                  "t.conf:3: retries must be a whole number",
	                  "t.conf:3: retry_budget is a percentage from 0 to 1000, not 1001",
	                  "t.conf:3: retry_body: bad size \"16 k\": write a number of bytes or a string like \"16k\", "
	                  "\"64KiB\", \"1m\"",
	                  "t.conf:4: retry_body must be 0 or more bytes",
	                  "t.conf:6: retry_on_timeout must be true or false",
	                  "t.conf:9: a passthrough route relays TLS untouched, so retry_on_timeout cannot apply (HTTP "
	                  "only); remove it or remove passthrough",
	              });
}

TEST(LoaderPools, Errors)
{
	expect_errors(R"(onegate = { admin = { listen = "0.0.0.0:8404"; }; };
pools = ( { name = "p"; balance = "random"; servers = ( "127.0.0.1:1", { address = "127.0.0.1:1"; weight = 0; } );
            cookie = { name = "bad name"; };
            health = { type = "tcp"; path = "/x"; expect = "600"; interval = "1s"; timeout = "2s"; }; },
          { name = "q"; servers = ( "10.0.0.1", "10.0.0.1" ); health = { path = "x"; }; } );
services = ( { name = "s"; listen = [ "127.0.0.1:8404" ];
  routes = ( { host = "a.test"; pool = "p"; }, { host = "b.test"; pool = "q"; port = 80; } ); } );
)",
	              {
	                  "t.conf:1: the admin listener on 0.0.0.0:8404 is not loopback, so it needs a token: "
	                  "token_file = \"admin.token\";",
	                  "t.conf:2: weight must be from 1 to 256, not 0",
	                  "t.conf:2: balance must be \"roundrobin\", \"leastconn\", \"source\" or \"cookie\"",
	                  "t.conf:3: cookie name \"bad name\" must be a token: letters, digits and !#$%&'*+-.^_`|~",
	                  "t.conf:4: expect must be a status or a range of statuses, e.g. expect = \"200-399\"; or "
	                  "expect = 200;",
	                  "t.conf:4: a tcp check only connects; path, method, host and body need type = \"http\" or "
	                  "\"https\"",
	                  "t.conf:4: timeout (2000 ms) is longer than interval (1000 ms); a check must end before the "
	                  "next starts",
	                  "t.conf:3: cookie applies with balance = \"cookie\"; add it or remove cookie",
	                  "t.conf:5: server \"10.0.0.1\" is listed twice in this pool; give one a name = \"...\"; if "
	                  "both are meant",
	                  "t.conf:5: path must start with \"/\", e.g. path = \"/owa/healthcheck.htm\";",
	                  "t.conf:5: server \"10.0.0.1\" has no port of its own, so health needs one: port = 4443;",
	              });
	expect_errors(R"(pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:80" ]; plain_http = true;
  routes = ( { host = "a.test"; pool = "p"; forwarded = "no"; } ); } );
)",
	              {
	                  "t.conf:3: forwarded must be true or false",
	                  "t.conf:2: plain_http lets a TLS service also take plain HTTP on its port; this service has "
	                  "no tls group, so it is plain already: remove plain_http",
	              });
	expect_errors(R"(onegate = { admin = { listen = "127.0.0.1:8404"; }; };
pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:8404" ]; routes = ( { host = "a.test"; pool = "p"; } ); } );
)",
	              {
	                  "t.conf:3: listen address \"127.0.0.1:8404\" is already used at t.conf:1; each address "
	                  "belongs to one service",
	              });
}

} // namespace

namespace {

TEST(LoaderTemplates, RoutesAndPoolsInheritWhatTheyDoNotSet)
{
	Loaded l;
	load_string(R"(templates = (
  { name = "exchange"; idle_timeout = "20m"; request_timeout = "30m"; balance = "leastconn";
    health = { path = "/owa/healthcheck.htm"; interval = "10s"; }; forwarded = false; } );
pools = ( { name = "ex"; template = "exchange"; servers = ( "127.0.0.1:9443" ); },
          { name = "ex2"; template = "exchange"; balance = "source"; servers = ( "127.0.0.1:9444" );
            health = { path = "/ews/healthcheck.htm"; }; } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "mail.test"; path = "/owa"; pool = "ex"; template = "exchange"; },
             { host = "mail.test"; path = "/ews"; pool = "ex2"; template = "exchange"; request_timeout = 60; } ); } );
)",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(l.cfg->pools[0].balance, RULES_BALANCE_LEASTCONN);
	EXPECT_EQ(l.cfg->pools[0].idle_timeout_ms, 1200000u);
	EXPECT_STREQ(l.cfg->pools[0].health.path, "/owa/healthcheck.htm");
	EXPECT_EQ(l.cfg->pools[0].health.interval_ms, 10000u);
	EXPECT_EQ(l.cfg->pools[1].balance, RULES_BALANCE_SOURCE);
	EXPECT_STREQ(l.cfg->pools[1].health.path, "/ews/healthcheck.htm");
	EXPECT_EQ(l.cfg->pools[1].health.interval_ms, 5000u);      // a group is replaced whole, not merged
	const rules_service &s = l.cfg->services[0];
	EXPECT_EQ(s.routes[0].request_timeout_ms, 1800000u);
	EXPECT_EQ(s.routes[0].idle_timeout_ms, 1200000u);
	EXPECT_FALSE(s.routes[0].forwarded);
	EXPECT_EQ(s.routes[1].request_timeout_ms, 60000u);
}

TEST(LoaderTemplates, Errors)
{
	expect_errors(R"(templates = ( { name = "t"; idle_timout = 5; servers = ( "127.0.0.1:1" ); request_timeout = "x"; },
                   { name = "t"; } );
pools = ( { name = "p"; template = "tt"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; pool = "p"; template = "t"; }, { host = "b.test"; pool = "p"; template = "zz"; } ); } );
)",
	              {
	                  "t.conf:1: unknown key \"idle_timout\" in template; did you mean \"idle_timeout\"?",
	                  "t.conf:1: servers belongs to each route or pool, not to a template",
	                  "t.conf:2: duplicate template name \"t\"; the first is at t.conf:1",
	                  "t.conf:3: no template named \"tt\"; define it in templates = ( { name = \"tt\"; ... } );",
	                  "t.conf:1: request_timeout: bad duration \"x\": write a number of seconds or a string like "
	                  "\"500ms\", \"30s\", \"15m\", \"2h\"",
	                  "t.conf:5: no template named \"zz\"; define it in templates = ( { name = \"zz\"; ... } );",
	              });
}

} // namespace

namespace {

TEST(LoaderTemplates, BuiltInWorkloadTemplates)
{
	Loaded l;
	load_string(R"(pools = (
  { name = "skype"; template = "skype-web"; servers = ( "10.0.3.11" ); tls = { sni = "webext.contoso.test"; }; },
  { name = "skype-http"; template = "skype-web-http"; servers = ( "10.0.3.11" ); },
  { name = "adfs"; template = "adfs"; servers = ( "10.0.2.21:443" ); },
  { name = "owa"; template = "exchange-owa"; servers = ( "10.0.1.21:443" ); },
  { name = "mapi"; template = "exchange-mapi"; servers = ( "10.0.1.21:443" ); },
  { name = "autod"; template = "exchange-autodiscover"; servers = ( "10.0.1.21:443" ); } );
services = ( { name = "pt"; listen = [ "127.0.0.1:9443" ]; routes = ( { sni = "sts.contoso.test"; pool = "adfs"; template = "adfs"; } ); },
  { name = "http"; listen = [ "127.0.0.1:9080" ];
    routes = ( { host = "webext.contoso.test"; pool = "skype"; template = "skype-web"; },
               { host = "lyncdiscover.contoso.test"; pool = "skype-http"; template = "skype-lyncdiscover-http"; },
               { host = "mail.contoso.test"; pool = "owa"; template = "exchange"; },
               { host = "*"; template = "redirect-https"; } ); } );
)",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	const rules_pool &skype = l.cfg->pools[0];
	EXPECT_TRUE(skype.tls.on);
	EXPECT_EQ(skype.health.type, RULES_HEALTH_HTTPS);
	EXPECT_EQ(skype.health.port, 4443u);
	EXPECT_EQ(skype.idle_timeout_ms, 1800000u);
	EXPECT_FALSE(l.cfg->pools[1].tls.on);
	EXPECT_EQ(l.cfg->pools[2].health.type, RULES_HEALTH_HTTP);
	EXPECT_EQ(l.cfg->pools[2].health.port, 80u);
	EXPECT_STREQ(l.cfg->pools[2].health.path, "/adfs/probe");
	EXPECT_STREQ(l.cfg->pools[3].health.path, "/owa/healthcheck.htm");
	EXPECT_EQ(l.cfg->pools[3].balance, RULES_BALANCE_LEASTCONN);
	// POSTs that act on a mailbox or stream are never sent twice; Autodiscover's may be.
	EXPECT_EQ(l.cfg->pools[3].retry_body, 0u);
	EXPECT_EQ(l.cfg->pools[4].retry_body, 0u);
	EXPECT_EQ(l.cfg->pools[5].retry_body, 16384u);
	EXPECT_EQ(skype.retry_body, 16384u);
	EXPECT_TRUE(l.cfg->services[0].routes[0].passthrough);
	const rules_service &h = l.cfg->services[1];
	EXPECT_EQ(h.routes[0].port, 4443u);
	EXPECT_GE(h.routes[0].request_timeout_ms, 960000u);
	EXPECT_EQ(h.routes[0].idle_timeout_ms, 1800000u);
	EXPECT_EQ(h.routes[1].port, 8080u);
	EXPECT_EQ(h.routes[2].request_timeout_ms, 1800000u);
	EXPECT_STREQ(h.routes[3].redirect, "https");
	EXPECT_EQ(h.routes[3].status, 301);
}

} // namespace

namespace {

const char *const kTail = R"(
pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ]; routes = ( { host = "a.test"; pool = "p"; } );
               default = { pool = "p"; }; } );
)";

TEST(LoaderOnegate, LogUserStateAndDefaultTimeouts)
{
	Loaded l;
	std::string text = std::string(R"(onegate = { log = { level = "warn"; access = false; syslog = "127.0.0.1:514";
                               facility = "local3"; };
  user = "nobody"; group = "nogroup"; state = "/var/lib/onegate";
  request_timeout = "16m"; hello_timeout = "3s"; header_timeout = "5s"; keepalive_timeout = "1m"; };)") + kTail;
	load_string(text.c_str(), l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(l.cfg->log.level, RULES_LOG_WARN);
	EXPECT_FALSE(l.cfg->log.access);
	EXPECT_STREQ(l.cfg->log.syslog, "127.0.0.1:514");
	EXPECT_EQ(l.cfg->log.syslog_ss.ss_family, AF_INET);
	EXPECT_EQ(l.cfg->log.facility, 19);
	EXPECT_EQ(l.cfg->log.file, nullptr);
	EXPECT_STREQ(l.cfg->run_as.user, "nobody");
	EXPECT_EQ(l.cfg->run_as.uid, 65534u);
	EXPECT_EQ(l.cfg->run_as.gid, 65534u);
	EXPECT_STREQ(l.cfg->state_dir, "/var/lib/onegate");
	const struct rules_service &svc = l.cfg->services[0];
	EXPECT_EQ(svc.hello_timeout_ms, 3000u);
	EXPECT_EQ(svc.header_timeout_ms, 5000u);
	EXPECT_EQ(svc.keepalive_timeout_ms, 60000u);
	EXPECT_EQ(svc.routes[0].request_timeout_ms, 960000u);
	EXPECT_EQ(svc.routes[svc.default_route].request_timeout_ms, 960000u);
}

TEST(LoaderOnegate, MissingSyslogSocketOnlyWarns)
{
	Loaded l;
	load_string((std::string(R"(onegate = { log = { syslog = "/nonexistent/log"; }; };)") + kTail).c_str(), l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(l.warnings, std::vector<std::string>{ "t.conf:1: warning: syslog = \"/nonexistent/log\": No such file or "
	                                                "directory; is a syslog daemon (rsyslog, systemd-journald) running here?" });
}

TEST(LoaderOnegate, DefaultsWithoutAnOnegateGroup)
{
	Loaded l;
	load_string(kTail + 1, l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	EXPECT_EQ(l.cfg->log.level, RULES_LOG_INFO);
	EXPECT_TRUE(l.cfg->log.access);
	EXPECT_EQ(l.cfg->log.file, nullptr);
	EXPECT_EQ(l.cfg->log.syslog, nullptr);
	EXPECT_EQ(l.cfg->run_as.user, nullptr);
	EXPECT_EQ(l.cfg->state_dir, nullptr);
	EXPECT_EQ(l.cfg->services[0].routes[0].request_timeout_ms, static_cast<unsigned>(RULES_REQUEST_TIMEOUT_MS));
	EXPECT_EQ(l.cfg->services[0].header_timeout_ms, 30000u);
}

TEST(LoaderOnegate, Errors)
{
	std::string text = std::string(R"(onegate = { log = { level = "loud"; facility = "kern"; file = "a.log"; syslog = "/x"; };
  user = "no-such-user-here"; group = "no-such-group-here"; state = "/etc/passwd"; };)") + kTail;
	expect_errors(text.c_str(),
	              {
	                  "t.conf:1: level must be \"error\", \"warn\", \"info\" or \"debug\"",
	                  "t.conf:1: facility must be \"daemon\", \"user\", \"local0\", \"local1\", \"local2\", "
	                  "\"local3\", \"local4\", \"local5\", \"local6\" or \"local7\"",
	                  "t.conf:1: log has both file and syslog; onegate writes to one of them: keep one",
	                  "t.conf:2: there is no user \"no-such-user-here\" on this system: create it (useradd --system "
	                  "--no-create-home --shell /usr/sbin/nologin no-such-user-here) or name another",
	                  "t.conf:2: there is no group \"no-such-group-here\" on this system: create it (groupadd --system "
	                  "no-such-group-here) or name another",
	                  "t.conf:2: state = \"/etc/passwd\" is not a folder; name a folder (onegate creates it when missing)",
	              });
	expect_errors((std::string(R"(onegate = { user = "root"; log = { syslog = "/etc/passwd"; }; };)") + kTail).c_str(),
	              {
	                  "t.conf:1: syslog = \"/etc/passwd\" is not a socket; name the syslog socket (\"/dev/log\") or "
	                  "log to a file: file = \"/var/log/onegate/onegate.log\";",
	                  "t.conf:1: user \"root\" is root; name an unprivileged user, or leave user out to stay as started",
	              });
	expect_errors((std::string(R"(onegate = { log = "debug"; };)") + kTail).c_str(),
	              { "t.conf:1: log must be a group: log = { level = \"info\"; file = \"/var/log/onegate/onegate.log\"; };" });
}

} // namespace

namespace {

TEST(LoaderTemplates, UnknownTemplateNamesTheClosest)
{
	expect_errors(R"(pools = ( { name = "p"; template = "exchange-ow"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; pool = "p"; template = "skype-wbe"; } );
  default = { pool = "p"; template = "Web"; }; } );
)",
	              {
	                  "t.conf:1: no template named \"exchange-ow\"; did you mean \"exchange-owa\" or \"exchange-ews\" or "
	                  "\"exchange-oab\"?",
	                  "t.conf:3: no template named \"skype-wbe\"; did you mean \"skype-web\"?",
	                  "t.conf:4: no template named \"Web\"; did you mean \"web\"?",
	              });
}

// The unknown-key message lists a section's keys when none is close; each must be in docs/rules.md,
// so that a key added to the loader and not to the documentation fails here.
TEST(LoaderDocs, EveryKeyOfEverySectionIsDocumented)
{
	std::string src = __FILE__;
	std::ifstream in(src.substr(0, src.rfind("tests/unit/")) + "docs/rules.md");
	ASSERT_TRUE(in.good());
	std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	const std::string q = "qqqqqqqqqqqq = 1;";
	const std::string tail = "\nservices = ( { name = \"s\"; listen = [ \"127.0.0.1:8080\" ]; default = { pool = \"p\"; }; } );\n";
	const std::string pool = "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );";
	const std::vector<std::pair<const char *, std::string>> sections = {
	    { "at top level", q + "\n" + pool + tail },
	    { "in onegate", "onegate = { " + q + " };\n" + pool + tail },
	    { "in admin", "onegate = { admin = { listen = \"127.0.0.1:8404\"; " + q + " }; };\n" + pool + tail },
	    { "in log", "onegate = { log = { " + q + " }; };\n" + pool + tail },
	    { "in certificate", "certificates = ( { name = \"c\"; " + q + " } );\n" + pool + tail },
	    { "in acme", "certificates = ( { name = \"c\"; acme = { " + q + " }; } );\n" + pool + tail },
	    { "in plugin", "plugins = ( { name = \"x\"; module = \"ip_filter\"; " + q + " } );\n" + pool + tail },
	    { "in pool", "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); " + q + " } );" + tail },
	    { "in server", "pools = ( { name = \"p\"; servers = ( { address = \"127.0.0.1:1\"; " + q + " } ); } );" + tail },
	    { "in pool tls", "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); tls = { " + q + " }; } );" + tail },
	    { "in cookie", "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); balance = \"cookie\"; cookie = { " + q +
	                       " }; } );" + tail },
	    { "in health", "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); health = { " + q + " }; } );" + tail },
	    { "in service", pool + "\nservices = ( { name = \"s\"; listen = [ \"127.0.0.1:8080\" ]; " + q +
	                        " default = { pool = \"p\"; }; } );\n" },
	    { "in tls", pool + "\nservices = ( { name = \"s\"; listen = [ \"127.0.0.1:8080\" ]; tls = { " + q +
	                    " }; default = { pool = \"p\"; }; } );\n" },
	    { "in route", pool + "\nservices = ( { name = \"s\"; listen = [ \"127.0.0.1:8080\" ]; routes = ( { host = "
	                      "\"a.test\"; pool = \"p\"; " + q + " } ); } );\n" },
	    { "in default", pool + "\nservices = ( { name = \"s\"; listen = [ \"127.0.0.1:8080\" ]; default = { pool = "
	                        "\"p\"; " + q + " }; } );\n" },
	};
	for (const auto &sec : sections) {
		Loaded l;
		load_string(sec.second.c_str(), l);
		const std::string lead = std::string("unknown key \"qqqqqqqqqqqq\" ") + sec.first + "; known keys: ";
		std::string keys;
		for (const auto &e : l.errors)
			if (e.find(lead) != std::string::npos)
				keys = e.substr(e.find(lead) + lead.size());
		ASSERT_FALSE(keys.empty()) << sec.first << ":\n" << l.all();
		size_t n = 0;
		for (size_t at = 0; at <= keys.size(); n++) {
			size_t end = keys.find(", ", at);
			std::string k = keys.substr(at, end == std::string::npos ? std::string::npos : end - at);
			bool found = false;
			// Named in the text (`key`, `key = ...`) or set in an example (... key = ...).
			for (const std::string &form : { "`" + k + "`", "`" + k + " ", "`" + k + ";", " " + k + " = " })
				found |= doc.find(form) != std::string::npos;
			EXPECT_TRUE(found) << "key " << k << " " << sec.first << " is not in docs/rules.md";
			if (end == std::string::npos)
				break;
			at = end + 2;
		}
		EXPECT_GE(n, 1u) << sec.first;
	}
}

} // namespace

// `source` is an address without a port (the kernel picks the port per connection).
TEST(Loader, SourceAddressWithoutPort)
{
	Loaded l;
	load_string(R"(pools = ( { name = "a"; servers = ( "127.0.0.1:9001" ); source = "127.0.0.1"; },
                             { name = "b"; servers = ( "[::1]:9002" ); source = "::1"; } );
services = ( { name = "s"; listen = [ "127.0.0.1:8443" ]; default = { pool = "a"; }; } );
)",
	            l);
	ASSERT_NE(l.cfg, nullptr) << l.all();
	const struct rules_addr &a = l.cfg->pools[0].source;
	ASSERT_EQ(a.ss.ss_family, AF_INET);
	EXPECT_EQ(ntohs(((const struct sockaddr_in *)&a.ss)->sin_port), 0);
	EXPECT_STREQ(a.text, "127.0.0.1");
	const struct rules_addr &b = l.cfg->pools[1].source;
	ASSERT_EQ(b.ss.ss_family, AF_INET6);
	EXPECT_EQ(ntohs(((const struct sockaddr_in6 *)&b.ss)->sin6_port), 0);
	EXPECT_STREQ(b.text, "::1");
	expect_errors(R"(pools = ( { name = "a"; servers = ( "127.0.0.1:9001" ); source = "127.0.0.1:80"; } );
services = ( { name = "s"; listen = [ "127.0.0.1:8443" ]; default = { pool = "a"; }; } );
)",
	              { "t.conf:1: bad source address \"127.0.0.1:80\": write an IPv4 or IPv6 address this host owns, "
	                "without a port" });
}
