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

// --print shows every key of the groups below when it is set (a password never).
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
    balance = "cookie"; cookie = { name = "C"; path = "/x"; domain = "example.test"; secure = true; httponly = true;
    max_age = 60; };
    tls = { sni = "b.test"; verify = true; ca_file = "/ca.pem"; cert = "/c.pem"; key = "/c.key"; };
    health = { type = "https"; port = 8443; method = "HEAD"; path = "/h"; host = "h.test"; sni = "s.test";
      expect = "200-204"; body = "ok"; interval = 10; timeout = 2; rise = 3; fall = 4; passive_fall = 6; };
    retries = 2; retry_budget = 50; retry_body = "8k"; },
  { name = "q"; servers = ( "127.0.0.1:4" ); } );
services = (
  { name = "h"; listen = [ "127.0.0.1:8080" ]; accept_proxy = true; proxy_timeout = 2; windows_paths = false;
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
		if (!(k->places & groups) || (k->flags & RULES_KEY_SECRET) || std::string(k->name) == "template" ||
		    std::string(k->name) == "plain_http")
			continue;
		EXPECT_NE(out.find(std::string(" ") + k->name + " = "), std::string::npos)
		    << k->name << " (" << rules_schema_groups[__builtin_ctz(k->places & groups)].where
		    << ") is not printed:\n" << out;
	}
	rules_config_unref(c);
}

// The defaults the docs give are what a file that says nothing gets.
TEST(Schema, DocumentedDefaultsAreWhatLoads)
{
	struct rules_config *c = load("pools = ( { name = \"p\"; servers = ( \"127.0.0.1:1\" ); health = { type = \"http\"; }; } );\n"
	                              "services = ( { name = \"s\"; listen = [ \"127.0.0.1:2\" ]; accept_proxy = true;\n"
	                              "  routes = ( { host = \"a.test\"; pool = \"p\"; } ); } );\n");
	ASSERT_NE(c, nullptr);
	const std::string out = printed(c);
	int checked = 0;
	for (size_t i = 0; i < rules_schema_count; i++) {
		const struct rules_schema_key *k = &rules_schema[i];
		if (!k->dflt || !(k->places & (RULES_IN(RULES_G_POOL) | RULES_IN(RULES_G_HEALTH) |
		                               RULES_IN(RULES_G_SERVICE) | RULES_IN(RULES_G_ROUTE))))
			continue;
		std::string d = k->dflt;
		// Defaults written as a sentence (another key's value, a choice) are not literal values.
		if (d.find(' ') != std::string::npos || d.find('.') != std::string::npos)
			continue;
		std::string want;
		if (k->type == RULES_T_DURATION)
			want = std::string(" ") + k->name + " = \"" + (d.back() == 'm' ? std::to_string(std::stoi(d) * 60) + "s"
			                                                                 : d) + "\";";
		else if (k->type == RULES_T_WORD || k->type == RULES_T_STRING)
			want = std::string(" ") + k->name + " = \"" + d + "\";";
		else if (k->type == RULES_T_SIZE)
			want = std::string(" ") + k->name + " = " + std::to_string(std::stoi(d) * 1024) + ";";
		else if (k->type == RULES_T_NUMBER && d != "0")
			want = std::string(" ") + k->name + " = " + d + ";";
		else
			continue;       // booleans are printed only when they differ from the default
		EXPECT_NE(out.find(want), std::string::npos) << k->name << ": documented default " << d << "\n" << out;
		checked++;
	}
	EXPECT_GE(checked, 10);
	rules_config_unref(c);
}

} // namespace
