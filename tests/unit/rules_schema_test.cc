// rules/schema.def: each key once, what is derived from it (templates, restart-only
// keys, enum words, --print) agrees with it, and its documented defaults are what loads.
#include <gtest/gtest.h>

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "schema.h"

namespace {

struct rules_config *load(const std::string &text)
{
	struct rules_diag *d = rules_diag_new();
	struct rules_config *c = rules_load_string(text.c_str(), "t.conf", d);
	for (size_t i = 0; c == nullptr && i < rules_diag_count(d); i++)
		ADD_FAILURE() << rules_diag_message(d, i);
	rules_diag_free(d);
	return c;
}

std::string printed(const struct rules_config *c)
{
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	rules_print(f, c);
	fclose(f);
	std::string s(buf, len);
	free(buf);
	return s;
}

TEST(Schema, EachKeyOnceWithItsDocAndWords)
{
	std::set<std::pair<int, std::string>> seen;
	for (size_t i = 0; i < rules_schema_count; i++) {
		const struct rules_schema_key *k = &rules_schema[i];
		EXPECT_NE(k->places, 0u) << k->name;
		EXPECT_TRUE(k->doc && *k->doc) << k->name;
		EXPECT_EQ(k->type == RULES_T_WORD, k->words != nullptr) << k->name;
		// A template may hold a pool's and a route's key of one name (idle_timeout): each takes its own.
		for (int g = 0; g < RULES_G_TEMPLATE; g++) {
			if (k->places & RULES_IN(g)) {
				EXPECT_TRUE(seen.insert({ g, k->name }).second) << k->name << " twice " << rules_schema_groups[g].where;
			}
		}
		// What a template holds, a route or a pool takes.
		if (k->places & RULES_IN(RULES_G_TEMPLATE)) {
			EXPECT_TRUE(k->places & (RULES_IN(RULES_G_ROUTE) | RULES_IN(RULES_G_POOL))) << k->name;
		}
	}
	EXPECT_STREQ(rules_schema_word(RULES_G_POOL, "balance", RULES_BALANCE_COOKIE), "cookie");
	EXPECT_STREQ(rules_schema_word(RULES_G_HEALTH, "type", RULES_HEALTH_HTTPS), "https");
	EXPECT_STREQ(rules_schema_word(RULES_G_ACME, "challenge", RULES_ACME_DNS01), "dns-01");
	EXPECT_STREQ(rules_schema_word(RULES_G_LOG, "level", RULES_LOG_DEBUG), "debug");
	EXPECT_STREQ(rules_schema_word(RULES_G_POOL, "balance", 9), "?");
}

// Every key flagged restart-only is one a reload refuses to change, and no other.
TEST(Schema, RestartOnlyKeysAreTheOnesAReloadRefuses)
{
	if (!getpwnam("nobody") || !getgrnam("daemon"))
		GTEST_SKIP() << "needs the user nobody and the group daemon";
	char a[] = "/tmp/schema-test-XXXXXX", b[] = "/tmp/schema-test-XXXXXX";
	ASSERT_NE(mkdtemp(a), nullptr);
	ASSERT_NE(mkdtemp(b), nullptr);
	const std::string tail = "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );\n"
	                         "services = ( { name = \"s\"; listen = [ \"127.0.0.1:2\" ]; default = { pool = \"p\"; }; } );\n";
	const std::string base = std::string("onegate = { user = \"nobody\"; state = \"") + a + "\"; };\n";
	// For each restart-only key: the base file with that key changed.
	const std::map<std::string, std::string> changed = {
		{ "user", std::string("onegate = { state = \"") + a + "\"; };\n" },
		{ "group", std::string("onegate = { user = \"nobody\"; group = \"daemon\"; state = \"") + a + "\"; };\n" },
		{ "state", std::string("onegate = { user = \"nobody\"; state = \"") + b + "\"; };\n" },
	};
	struct rules_config *cur = load(base + tail);
	ASSERT_NE(cur, nullptr);
	size_t flagged = 0;
	for (size_t i = 0; i < rules_schema_count; i++) {
		const struct rules_schema_key *k = &rules_schema[i];
		if (!(k->flags & RULES_KEY_RESTART))
			continue;
		flagged++;
		ASSERT_TRUE(changed.count(k->name)) << k->name << " is restart-only: add a case here";
		struct rules_config *next = load(changed.at(k->name) + tail);
		ASSERT_NE(next, nullptr);
		const char *why = rules_schema_restart_change(cur, next);
		EXPECT_EQ(std::string(why ? why : "(none)"), std::string("onegate.") + k->name);
		rules_config_unref(next);
	}
	EXPECT_EQ(flagged, changed.size());
	// What is not restart-only applies.
	struct rules_config *same =
	    load(std::string("onegate = { user = \"nobody\"; drain_timeout = 3; state = \"") + a + "\"; };\n" + tail);
	if (same) {
		EXPECT_EQ(rules_schema_restart_change(cur, same), nullptr);
		rules_config_unref(same);
	}
	rules_config_unref(cur);
	rmdir(a);
	rmdir(b);
}

// --print shows every key of the groups below when it is set (a password never;
// a bool when it is not its default).
// Certificates, acme, a service's tls and plain_http (a TLS service's) need
// certificate files; the loader's and test_check's tests print those.
TEST(Schema, PrintShowsEveryKeyItCanReloadFrom)
{
	if (!getpwnam("nobody") || !getgrnam("daemon"))
		GTEST_SKIP() << "needs the user nobody and the group daemon";
	struct rules_config *file_log = load("onegate = { log = { file = \"/tmp/onegate-schema-test.log\"; }; };\n"
	                                     "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );\n"
	                                     "services = ( { name = \"s\"; listen = [ \"127.0.0.1:2\" ]; "
	                                     "default = { pool = \"p\"; }; } );\n");
	ASSERT_NE(file_log, nullptr);
	struct rules_config *c = load(R"(
onegate = { workers = 2; user = "nobody"; group = "daemon"; state = "/nonexistent/onegate-state"; drain_timeout = 3; connect_timeout = 4; idle_timeout = 5; request_timeout = 6;
  hello_timeout = 7; header_timeout = 8; keepalive_timeout = 9; send_timeout = 11;
  admin = { listen = "127.0.0.1:8404"; token_file = "/nonexistent/admin.token"; };
  log = { level = "debug"; access = false; syslog = "127.0.0.1:514"; facility = "local3"; }; };
plugins = ( { name = "lan"; module = "ip_filter"; args = { allow = [ "127.0.0.0/8" ]; }; } );
pools = ( { name = "p"; servers = ( { address = "127.0.0.1:1"; name = "one"; weight = 2; max_conns = 9; backup = false; },
                                    { address = "127.0.0.1:3"; backup = true; } );
    proxy_protocol = 2; share_connections = false; connect_timeout = 1; idle_timeout = 2; source = "127.0.0.1";
    balance = "cookie"; cookie = { name = "C"; path = "/x"; domain = "example.test"; secure = true; httponly = false;
    max_age = 60; };
    tls = { sni = "b.test"; verify = false; ca_file = "/ca.pem"; cert = "/c.pem"; key = "/c.key"; };
    health = { type = "https"; port = 8443; method = "HEAD"; path = "/h"; host = "h.test"; sni = "s.test";
      expect = "200-204"; body = "ok"; interval = 10; timeout = 2; rise = 3; fall = 4; passive_fall = 6; };
    retries = 2; retry_budget = 50; retry_body = "8k"; },
  { name = "q"; servers = ( "127.0.0.1:4" ); } );
services = (
  { name = "h"; listen = [ "127.0.0.1:8080" ]; accept_proxy = true; proxy_timeout = 2; h2c = true; windows_paths = false;
    hello_timeout = 1; header_timeout = 2; keepalive_timeout = 3; send_timeout = 4;
    routes = ( { host = "a.test"; path = "/a"; pool = "p"; port = 81; host_rewrite = "in.test"; request_timeout = 7;
                 idle_timeout = 8; forwarded = false; normalize_path = true; retry_on_timeout = true;
                 plugins = [ "lan" ]; },
               { host = "r.test"; redirect = "https"; status = 308; } );
    default = { pool = "p"; port = 82; }; },
  { name = "t"; listen = [ "127.0.0.1:8443" ]; routes = ( { sni = "x.test"; passthrough = true; pool = "q"; } );
    default = { reject = true; }; } );
)");
	ASSERT_NE(c, nullptr);
	const std::string out = printed(c) + printed(file_log);
	rules_config_unref(file_log);
	const unsigned groups = RULES_IN(RULES_G_ONEGATE) | RULES_IN(RULES_G_ADMIN) | RULES_IN(RULES_G_LOG) |
	                        RULES_IN(RULES_G_PLUGIN) | RULES_IN(RULES_G_POOL) | RULES_IN(RULES_G_SERVER) |
	                        RULES_IN(RULES_G_POOL_TLS) | RULES_IN(RULES_G_COOKIE) | RULES_IN(RULES_G_HEALTH) |
	                        RULES_IN(RULES_G_SERVICE) | RULES_IN(RULES_G_ROUTE) | RULES_IN(RULES_G_DEFAULT);
	for (size_t i = 0; i < rules_schema_count; i++) {
		const struct rules_schema_key *k = &rules_schema[i];
		// A template is applied, not named; the keys it holds are printed where it put them.
		// plain_http and http2 are printed on TLS services, which this file has none of.
		if (!(k->places & groups) || (k->flags & RULES_KEY_SECRET) || std::string(k->name) == "template" ||
		    std::string(k->name) == "plain_http" || std::string(k->name) == "http2")
			continue;
		EXPECT_NE(out.find(std::string(" ") + k->name + " = "), std::string::npos)
		    << k->name << " (" << rules_schema_groups[__builtin_ctz(k->places & groups)].where
		    << ") is not printed:\n" << out;
	}
	rules_config_unref(c);
}

// rules_print without its "# ..." notes, which name lines of the file printed from.
std::string printed_plain(const struct rules_config *c)
{
	std::string out, text = printed(c);
	size_t at = 0;
	while (at < text.size()) {
		size_t nl = text.find('\n', at);
		std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
		size_t hash = line.find("  #");
		if (line.rfind("#", 0) == 0)
			line.clear();
		else if (hash != std::string::npos)
			line.resize(hash);
		out += line + "\n";
		at = nl == std::string::npos ? text.size() : nl + 1;
	}
	return out;
}

// Every key of group g whose default is a value, written with that value.
std::string defaults_of(enum rules_group g, const std::set<std::string> &skip = {})
{
	std::string out;
	for (size_t i = 0; i < rules_schema_count; i++) {
		const struct rules_schema_key *k = &rules_schema[i];
		size_t len;
		if ((k->places & RULES_IN(g)) && !skip.count(k->name) &&
		    rules_schema_default(k, &len) == RULES_DEFAULT_VALUE)
			out += std::string(" ") + k->name + " = " + std::string(k->dflt, len) + ";";
	}
	return out;
}

// What the schema says of defaults holds: a value is one the key takes (a word
// among its words), and a reference names a duration of onegate's from a duration.
TEST(Schema, DefaultsAreValuesKeysOrSentences)
{
	int values = 0;
	for (size_t i = 0; i < rules_schema_count; i++) {
		const struct rules_schema_key *k = &rules_schema[i];
		size_t len = 0;
		switch (rules_schema_default(k, &len)) {
		case RULES_DEFAULT_VALUE:
			values++;
			if (k->type == RULES_T_WORD) {
				std::string w(k->dflt + 1, len - 2);
				bool found = false;
				for (int n = 0; k->words[n]; n++)
					found |= w == k->words[n];
				EXPECT_TRUE(found) << k->name << ": " << w;
			}
			EXPECT_NE(k->type, RULES_T_GROUP) << k->name;
			break;
		case RULES_DEFAULT_KEY: {
			const struct rules_schema_key *src = rules_schema_find(RULES_G_ONEGATE, k->dflt + 8);
			ASSERT_NE(src, nullptr) << k->name << ": " << k->dflt;
			EXPECT_EQ(src->type, RULES_T_DURATION) << k->name;
			EXPECT_EQ(k->type, RULES_T_DURATION) << k->name;
			break;
		}
		case RULES_DEFAULT_NONE:
		case RULES_DEFAULT_TEXT:
			break;
		}
	}
	EXPECT_GE(values, 40);
}

// A file that writes nothing gets what the schema's defaults say: it loads and
// prints the same as one that writes every default value out (an empty pool,
// server, pool tls, cookie, health, service, route, default, onegate, admin, log).
TEST(Schema, EffectiveDefaultsAreTheSchemas)
{
	const std::string empty = R"(onegate = { admin = { }; };
pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); tls = { }; health = { type = "http"; }; },
          { name = "c"; servers = ( "127.0.0.1:3" ); balance = "cookie"; } );
services = ( { name = "s"; listen = [ "127.0.0.1:2" ];
  routes = ( { host = "a.test"; pool = "p"; }, { host = "c.test"; pool = "c"; } ); default = { pool = "p"; }; } );
)";
	const std::string written =
	    "onegate = {" + defaults_of(RULES_G_ONEGATE) + " admin = {" + defaults_of(RULES_G_ADMIN) + " }; log = {" +
	    defaults_of(RULES_G_LOG) + " }; };\n"
	    "pools = ( { name = \"p\"; servers = ( { address = \"127.0.0.1:1\";" + defaults_of(RULES_G_SERVER) + " } );" +
	    defaults_of(RULES_G_POOL) + " tls = {" + defaults_of(RULES_G_POOL_TLS) + " }; health = { type = \"http\";" +
	    defaults_of(RULES_G_HEALTH, { "type" }) + " }; },\n"
	    "  { name = \"c\"; servers = ( \"127.0.0.1:3\" ); balance = \"cookie\"; cookie = {" +
	    defaults_of(RULES_G_COOKIE) + " }; } );\n"
	    "services = ( { name = \"s\"; listen = [ \"127.0.0.1:2\" ];" + defaults_of(RULES_G_SERVICE, { "plain_http" }) +
	    "\n  routes = ( { host = \"a.test\"; pool = \"p\";" + defaults_of(RULES_G_ROUTE) +
	    " }, { host = \"c.test\"; pool = \"c\"; } ); default = { pool = \"p\";" + defaults_of(RULES_G_DEFAULT) +
	    " }; } );\n";
	struct rules_config *a = load(empty), *b = load(written);
	ASSERT_NE(a, nullptr);
	ASSERT_NE(b, nullptr) << written;
	EXPECT_EQ(printed_plain(a), printed_plain(b)) << written;
	// What the print leaves out when it is the default, compared directly.
	const struct rules_pool &p = a->pools[0], &c = a->pools[1];
	EXPECT_TRUE(p.share_connections);
	EXPECT_EQ(p.proxy_protocol, 0);
	EXPECT_EQ(p.retries, 3u);
	EXPECT_EQ(p.retry_budget, 100u);
	EXPECT_EQ(p.retry_body, 16u * 1024);
	EXPECT_EQ(p.connect_timeout_ms, 5000u);
	EXPECT_EQ(p.idle_timeout_ms, 1800u * 1000);
	EXPECT_TRUE(p.tls.verify);
	EXPECT_EQ(p.servers[0].weight, 1u);
	EXPECT_EQ(p.health.interval_ms, 5000u);
	EXPECT_EQ(p.health.timeout_ms, 3000u);
	EXPECT_EQ(p.health.status_min, 200);
	EXPECT_EQ(p.health.status_max, 399);
	EXPECT_STREQ(p.health.method, "GET");
	EXPECT_STREQ(p.health.path, "/");
	EXPECT_STREQ(c.cookie.name, "ONEGATEID");
	EXPECT_STREQ(c.cookie.path, "/");
	EXPECT_TRUE(c.cookie.httponly);
	const struct rules_service &s = a->services[0];
	EXPECT_TRUE(s.windows_paths);
	EXPECT_EQ(s.proxy_timeout_ms, 5000u);
	EXPECT_EQ(s.hello_timeout_ms, 10000u);
	EXPECT_EQ(s.send_timeout_ms, 10000u);
	EXPECT_TRUE(s.routes[0].forwarded);
	EXPECT_EQ(s.routes[0].request_timeout_ms, 120000u);
	EXPECT_TRUE(s.routes[s.default_route].forwarded);
	EXPECT_EQ(a->log.level, RULES_LOG_INFO);
	EXPECT_TRUE(a->log.access);
	EXPECT_EQ(a->log.facility, 3);
	EXPECT_EQ(a->drain_timeout_ms, 10000u);
	EXPECT_STREQ(a->admin.listen.text, "127.0.0.1:8404");
	rules_config_unref(a);
	rules_config_unref(b);
	// A file with no onegate group at all, and onegate's keys as the defaults of others.
	a = load("pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );\n"
	         "services = ( { name = \"s\"; listen = [ \"127.0.0.1:2\" ]; routes = ( { host = \"a.test\"; pool = \"p\"; } ); } );\n");
	ASSERT_NE(a, nullptr);
	EXPECT_EQ(a->log.level, RULES_LOG_INFO);
	EXPECT_TRUE(a->log.access);
	EXPECT_FALSE(a->admin.on);
	EXPECT_EQ(a->pools[0].idle_timeout_ms, 1800u * 1000);
	EXPECT_EQ(a->services[0].keepalive_timeout_ms, 120000u);
	rules_config_unref(a);
	a = load("onegate = { connect_timeout = 1; idle_timeout = 2; request_timeout = 3; hello_timeout = 4;"
	         " header_timeout = 5; keepalive_timeout = 6; send_timeout = 7; };\n"
	         "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); } );\n"
	         "services = ( { name = \"s\"; listen = [ \"127.0.0.1:2\" ]; routes = ( { host = \"a.test\"; pool = \"p\"; } ); } );\n");
	ASSERT_NE(a, nullptr);
	EXPECT_EQ(a->pools[0].connect_timeout_ms, 1000u);
	EXPECT_EQ(a->pools[0].idle_timeout_ms, 2000u);
	EXPECT_EQ(a->services[0].routes[0].request_timeout_ms, 3000u);
	EXPECT_EQ(a->services[0].hello_timeout_ms, 4000u);
	EXPECT_EQ(a->services[0].header_timeout_ms, 5000u);
	EXPECT_EQ(a->services[0].keepalive_timeout_ms, 6000u);
	EXPECT_EQ(a->services[0].send_timeout_ms, 7000u);
	rules_config_unref(a);
}

} // namespace
