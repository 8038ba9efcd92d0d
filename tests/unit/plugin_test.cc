// The bundled plugins through gateway/proxy/plugin.c as the HTTP session drives it:
// a rule file loaded from text, modules loaded from the build's plugin folder,
// request and response heads parsed by h1, the heads rebuilt from what the
// edits keep and add.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include <event2/buffer.h>
#include <gtest/gtest.h>

extern "C" {
#include "proto/h1.h"
#include "proxy/plugin.h"
#include "rules.h"
}

namespace {

struct Loaded {
	rules_config *cfg = nullptr;
	std::vector<std::string> msgs;
	~Loaded() { rules_config_unref(cfg); }
	bool has(const std::string &s) const
	{
		for (const auto &m : msgs)
			if (m.find(s) != std::string::npos)
				return true;
		return false;
	}
	std::string all() const
	{
		std::string out;
		for (const auto &m : msgs)
			out += m + "\n";
		return out;
	}
};

// One plain HTTP service on 127.0.0.1:1; routes given by the test.
void load(Loaded &L, const std::string &plugins, const std::string &routes)
{
	std::string text = "plugins = (" + plugins + ");\n"
	                   "pools = ( { name = \"p\"; servers = ( \"127.0.0.1:2\" ); } );\n"
	                   "services = ( { name = \"h\"; listen = [ \"127.0.0.1:1\" ];\n"
	                   "  routes = (" + routes + "); } );\n";
	rules_diag *d = rules_diag_new();
	L.cfg = rules_load_string(text.c_str(), "t.conf", d);
	if (L.cfg && plugin_attach(L.cfg, d) != 0) {
		rules_config_unref(L.cfg);
		L.cfg = nullptr;
	}
	for (size_t i = 0; i < rules_diag_count(d); i++)
		L.msgs.push_back(rules_diag_message(d, i));
	rules_diag_free(d);
}

sockaddr_storage addr(const char *ip)
{
	sockaddr_storage ss = {};
	if (strchr(ip, ':')) {
		auto *s6 = reinterpret_cast<sockaddr_in6 *>(&ss);
		s6->sin6_family = AF_INET6;
		EXPECT_EQ(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1) << ip;
	} else {
		auto *s4 = reinterpret_cast<sockaddr_in *>(&ss);
		s4->sin_family = AF_INET;
		EXPECT_EQ(inet_pton(AF_INET, ip, &s4->sin_addr), 1) << ip;
	}
	return ss;
}

// The heads as the session writes them: kept original headers, then the added ones.
std::string rebuild(const plugin_req *q, onegate_side side, const std::string &head, const h1_msg &m)
{
	std::string out;
	for (size_t i = 0; i < m.nheaders; i++) {
		const h1_header &h = m.headers[i];
		if (q && !plugin_header_kept(q, side, head.data() + h.name.off, h.name.len))
			continue;
		out += head.substr(h.name.off, h.name.len) + ": " + head.substr(h.value.off, h.value.len) + "\n";
	}
	if (q) {
		evbuffer *b = evbuffer_new();
		plugin_headers_write(q, side, b);
		std::string added(evbuffer_get_length(b), '\0');
		evbuffer_remove(b, added.data(), added.size());
		evbuffer_free(b);
		for (char c : added)
			if (c != '\r')
				out += c;
	}
	return out;
}

struct Exchange {
	int status = 0;
	std::string outcome, request, response;
};

// One request on route 0 from ip; the back end answers with resp_headers.
Exchange run(const Loaded &L, const char *ip, const std::string &path, const std::string &req_headers = "",
             bool tls = false, const std::string &resp_headers = "Server: iis\r\n", size_t route = 0)
{
	Exchange x;
	std::string head = "GET " + path + " HTTP/1.1\r\nHost: a.test\r\n" + req_headers + "\r\n";
	h1_msg m;
	h1_req_init(&m, 32768);
	EXPECT_EQ(h1_parse(&m, head.data(), head.size()), H1_DONE) << head;
	sockaddr_storage peer = addr(ip);
	// As the HTTP session does: the path resolved once, a path that cannot be resolved answered 400.
	std::string rpath(path.size() + 2, '\0');
	size_t rlen = 0;
	const char *bad = nullptr;
	if (rules_urlpath_resolve(path.data(), path.size(), RULES_PATH_WINDOWS, rpath.data(), rpath.size(), &rlen, &bad) ==
	    RULES_PATH_BAD) {
		x.status = 400;
		return x;
	}
	plugin_view v = { &peer, tls, head.data(), &m, "a.test", rpath.data(), rlen };
	plugin_req *q = nullptr;
	const char *why = nullptr;
	x.status = plugin_on_request(L.cfg, &L.cfg->services[0].routes[route], &v, &q, &why);
	if (why)
		x.outcome = why;
	x.request = rebuild(q, ONEGATE_REQUEST_HEADERS, head, m);
	if (!x.status) {
		std::string rhead = "HTTP/1.1 200 OK\r\n" + resp_headers + "Content-Length: 0\r\n\r\n";
		h1_msg r;
		h1_resp_init(&r, 32768, false);
		EXPECT_EQ(h1_parse(&r, rhead.data(), rhead.size()), H1_DONE);
		plugin_on_response(q, 200, rhead.data(), &r);
		x.response = rebuild(q, ONEGATE_RESPONSE_HEADERS, rhead, r);
	}
	plugin_req_free(q);
	return x;
}

const char *kRoute = "{ host = \"a.test\"; pool = \"p\"; plugins = [ \"f\" ]; }";

TEST(PluginIpFilter, AllowAndDenyBothFamilies)
{
	Loaded L;
	load(L, "{ name = \"f\"; module = \"ip_filter\"; args = { allow = [ \"10.0.0.0/8\", \"fd00::/8\", "
	        "\"192.168.1.7\", \"172.16.0.0/12\" ]; deny = [ \"10.9.0.0/16\" ]; }; }", kRoute);
	ASSERT_NE(L.cfg, nullptr) << L.all();
	EXPECT_EQ(run(L, "10.1.2.3", "/").status, 0);
	EXPECT_EQ(run(L, "10.255.255.255", "/").status, 0);
	EXPECT_EQ(run(L, "10.9.1.1", "/").status, 403);        // deny wins over allow
	EXPECT_EQ(run(L, "11.0.0.1", "/").status, 403);
	EXPECT_EQ(run(L, "9.255.255.255", "/").status, 403);
	EXPECT_EQ(run(L, "::ffff:10.1.2.3", "/").status, 0);   // IPv4 through an IPv6 socket
	EXPECT_EQ(run(L, "::ffff:10.9.0.1", "/").status, 403);
	EXPECT_EQ(run(L, "fd12::1", "/").status, 0);
	EXPECT_EQ(run(L, "fe80::1", "/").status, 403);
	EXPECT_EQ(run(L, "::1", "/").status, 403);
	EXPECT_EQ(run(L, "192.168.1.7", "/").status, 0);
	EXPECT_EQ(run(L, "192.168.1.8", "/").status, 403);
	EXPECT_EQ(run(L, "172.31.255.255", "/").status, 0);     // /12: an odd prefix
	EXPECT_EQ(run(L, "172.32.0.0", "/").status, 403);
	EXPECT_EQ(run(L, "11.0.0.1", "/").outcome, "plugin:f");
}

TEST(PluginIpFilter, DenyOnlyAndStatus)
{
	Loaded L;
	load(L, "{ name = \"f\"; module = \"ip_filter\"; args = { deny = [ \"127.0.0.0/8\", \"::1\" ]; status = 404; }; }",
	     kRoute);
	ASSERT_NE(L.cfg, nullptr) << L.all();
	EXPECT_EQ(run(L, "127.0.0.1", "/").status, 404);
	EXPECT_EQ(run(L, "::1", "/").status, 404);
	EXPECT_EQ(run(L, "::2", "/").status, 0);
	EXPECT_EQ(run(L, "128.0.0.1", "/").status, 0);
}

TEST(PluginIpFilter, AllowEverything)
{
	Loaded L;
	load(L, "{ name = \"f\"; module = \"ip_filter\"; args = { allow = [ \"0.0.0.0/0\" ]; }; }", kRoute);
	ASSERT_NE(L.cfg, nullptr) << L.all();
	EXPECT_EQ(run(L, "1.2.3.4", "/").status, 0);
	EXPECT_EQ(run(L, "2001:db8::1", "/").status, 403);      // an IPv4 range takes no IPv6 client
}

TEST(PluginIpFilter, BadArgumentsNameTheirLine)
{
	struct Case {
		const char *args, *want;
		int line;
	} cases[] = {
		{ "allow = [ \"10.0.0.1/24\" ];", "write \"10.0.0.0/24\"", 2 },
		{ "allow = [ \"10.0.0.0/33\" ];", "prefix length must be 0 to 32", 2 },
		{ "allow = [ \"fd00::/129\" ];", "0 to 128", 2 },
		{ "deny = [ \"lan\" ];", "not an address or CIDR", 2 },
		{ "alow = [ \"10.0.0.0/8\" ];", "unknown argument \"alow\"", 2 },
		{ "status = 200;", "status must be", 2 },
	};
	for (const auto &c : cases) {
		Loaded L;
		load(L, std::string("{ name = \"f\"; module = \"ip_filter\";\n args = { ") + c.args + " }; }", kRoute);
		EXPECT_EQ(L.cfg, nullptr) << c.args;
		EXPECT_TRUE(L.has("t.conf:" + std::to_string(c.line) + ": plugin \"f\" (ip_filter): ")) << L.all();
		EXPECT_TRUE(L.has(c.want)) << c.args << "\n" << L.all();
	}
	Loaded none;
	load(none, "{ name = \"f\"; module = \"ip_filter\"; }", kRoute);
	EXPECT_TRUE(none.has("t.conf:1: plugin \"f\" (ip_filter): give allow")) << none.all();
}

TEST(PluginPathFilter, ResolvesThePathBeforeMatching)
{
	Loaded L;
	load(L, "{ name = \"f\"; module = \"path_filter\"; args = { deny = [ \"/admin\", \"~\\\\.php$\", \"/private/\" ]; }; }",
	     kRoute);
	ASSERT_NE(L.cfg, nullptr) << L.all();
	struct {
		const char *path;
		int status;
	} cases[] = {
		{ "/", 0 },
		{ "/admin", 403 },
		{ "/admin/", 403 },
		{ "/Admin/users", 403 },
		{ "/administrator", 0 },
		{ "/%61dmin", 403 },
		{ "//admin", 403 },
		{ "/./admin", 403 },
		{ "/x/../admin", 403 },
		{ "/x/..%2fadmin", 403 },
		{ "/%5cadmin", 403 },
		{ "/x/%2e%2e/admin/", 403 },
		{ "/adm%69n?x=1", 403 },
		{ "/ok?next=/admin", 0 },
		{ "/index.php", 403 },
		{ "/INDEX.PHP?x=1", 403 },
		{ "/index.php5", 0 },
		{ "/private", 0 },             // "/private/" is what is under it
		{ "/private/x", 403 },
		{ "/a/b/..", 0 },
		{ "/admin/..", 0 },
		{ "/%00", 400 },
		{ "/%zz", 400 },
		{ "/%4", 400 },
		{ "/..", 400 },
		{ "/x/../../admin", 400 },
		{ "/admin./", 403 },
		{ "/admin%20/x", 403 },
		{ "/admin;x/", 403 },
		{ "/x/..;/admin", 403 },
		{ "/%c0%ae%c0%ae/admin", 400 },
		{ "/%2561dmin", 400 },         // double escaping: refused before any plugin runs
		{ "/%252e%252e/admin", 400 },
	};
	for (const auto &c : cases)
		EXPECT_EQ(run(L, "10.0.0.1", c.path).status, c.status) << c.path;
}

TEST(PluginPathFilter, BadArguments)
{
	Loaded bad_re;
	load(bad_re, "{ name = \"f\"; module = \"path_filter\";\n\n args = { deny = [ \"~(unclosed\" ]; }; }", kRoute);
	EXPECT_TRUE(bad_re.has("t.conf:3: plugin \"f\" (path_filter): bad regex \"~(unclosed\"")) << bad_re.all();
	Loaded relative;
	load(relative, "{ name = \"f\"; module = \"path_filter\"; args = { deny = [ \"admin\" ]; }; }", kRoute);
	EXPECT_TRUE(relative.has("must be a path prefix starting with \"/\"")) << relative.all();
}

TEST(PluginSecurityHeaders, DefaultsHttpsOnlyHstsAndTheBackEndWins)
{
	Loaded L;
	load(L, "{ name = \"f\"; module = \"security_headers\"; }", kRoute);
	ASSERT_NE(L.cfg, nullptr) << L.all();
	Exchange tls = run(L, "10.0.0.1", "/", "", true, "Server: iis\r\nX-Frame-Options: DENY\r\n");
	EXPECT_EQ(tls.response, "Server: iis\nX-Frame-Options: DENY\nContent-Length: 0\n"
	                        "Strict-Transport-Security: max-age=31536000\nX-Content-Type-Options: nosniff\n"
	                        "Referrer-Policy: strict-origin-when-cross-origin\n");
	Exchange plain = run(L, "10.0.0.1", "/", "", false, "");
	EXPECT_EQ(plain.response, "Content-Length: 0\nX-Content-Type-Options: nosniff\nX-Frame-Options: SAMEORIGIN\n"
	                          "Referrer-Policy: strict-origin-when-cross-origin\n");
}

TEST(PluginSecurityHeaders, OverriddenAndRemoved)
{
	Loaded L;
	load(L, "{ name = \"f\"; module = \"security_headers\"; args = { hsts = \"max-age=63072000; includeSubDomains\"; "
	        "x_frame_options = false; referrer_policy = \"\"; content_security_policy = \"default-src 'self'\"; "
	        "override = true; }; }", kRoute);
	ASSERT_NE(L.cfg, nullptr) << L.all();
	Exchange x = run(L, "10.0.0.1", "/", "", true, "X-Content-Type-Options: sniff-away\r\nX-Frame-Options: DENY\r\n");
	EXPECT_EQ(x.response, "X-Frame-Options: DENY\nContent-Length: 0\n"
	                      "Strict-Transport-Security: max-age=63072000; includeSubDomains\n"
	                      "X-Content-Type-Options: nosniff\nContent-Security-Policy: default-src 'self'\n");
	Loaded bad;
	load(bad, "{ name = \"f\"; module = \"security_headers\"; args = { x_frame = \"DENY\"; }; }", kRoute);
	EXPECT_TRUE(bad.has("unknown argument \"x_frame\"")) << bad.all();
}

TEST(PluginHeaderRules, EditsBothWays)
{
	Loaded L;
	load(L, "{ name = \"f\"; module = \"header_rules\"; args = { request_remove = [ \"Cookie\" ]; "
	        "request_set = [ \"X-Env: prod\" ]; request_add = [ \"X-Via:  onegate\" ]; "
	        "response_remove = [ \"server\", \"X-Powered-By\" ]; response_add = [ \"X-Served-By: gw1\" ]; }; }",
	     kRoute);
	ASSERT_NE(L.cfg, nullptr) << L.all();
	Exchange x = run(L, "10.0.0.1", "/", "Cookie: a=1\r\nX-Env: test\r\nX-Env: dev\r\nAccept: */*\r\n", false,
	                 "Server: iis\r\nX-Powered-By: ASP.NET\r\nX-Powered-By: PHP\r\n");
	EXPECT_EQ(x.request, "Host: a.test\nAccept: */*\nX-Env: prod\nX-Via: onegate\n");
	EXPECT_EQ(x.response, "Content-Length: 0\nX-Served-By: gw1\n");
}

TEST(PluginHeaderRules, OwnedAndMalformedHeadersRefusedAtLoad)
{
	const char *cases[][2] = {
		{ "request_set = [ \"Content-Length: 5\" ];", "Content-Length is onegate's" },
		{ "request_remove = [ \"X-Forwarded-For\" ];", "X-Forwarded-For is onegate's" },
		{ "response_add = [ \"Transfer-Encoding: chunked\" ];", "onegate's" },
		{ "request_add = [ \"X A: 1\" ];", "\"X A\" is not a header name" },
		{ "request_add = [ \"X-A\" ];", "must be \"Name: value\"" },
		{ "response_sets = [ \"X-A: 1\" ];", "unknown argument \"response_sets\"" },
	};
	for (const auto &c : cases) {
		Loaded L;
		load(L, std::string("{ name = \"f\"; module = \"header_rules\"; args = { ") + c[0] + " }; }", kRoute);
		EXPECT_EQ(L.cfg, nullptr);
		EXPECT_TRUE(L.has(c[1])) << c[0] << "\n" << L.all();
	}
}

// Plugins run in the route's order, edits apply in that order, and the first status ends the run.
TEST(Plugin, RouteOrder)
{
	Loaded L;
	load(L, "{ name = \"one\"; module = \"header_rules\"; args = { request_set = [ \"X-Order: one\" ]; }; },"
	        "{ name = \"two\"; module = \"header_rules\"; args = { request_add = [ \"X-Order: two\" ]; }; },"
	        "{ name = \"reset\"; module = \"header_rules\"; args = { request_set = [ \"X-Order: reset\" ]; }; },"
	        "{ name = \"lan\"; module = \"ip_filter\"; args = { allow = [ \"10.0.0.0/8\" ]; }; }",
	     "{ host = \"a.test\"; path = \"/a\"; pool = \"p\"; plugins = [ \"one\", \"two\" ]; },"
	     "{ host = \"a.test\"; path = \"/b\"; pool = \"p\"; plugins = [ \"two\", \"one\" ]; },"
	     "{ host = \"a.test\"; path = \"/c\"; pool = \"p\"; plugins = [ \"one\", \"two\", \"reset\" ]; },"
	     "{ host = \"a.test\"; path = \"/d\"; pool = \"p\"; plugins = [ \"lan\", \"one\" ]; },"
	     "{ host = \"a.test\"; path = \"/e\"; pool = \"p\"; }");
	ASSERT_NE(L.cfg, nullptr) << L.all();
	EXPECT_EQ(run(L, "10.0.0.1", "/a", "", false, "", 0).request, "Host: a.test\nX-Order: one\nX-Order: two\n");
	EXPECT_EQ(run(L, "10.0.0.1", "/b", "", false, "", 1).request, "Host: a.test\nX-Order: one\n");
	EXPECT_EQ(run(L, "10.0.0.1", "/c", "", false, "", 2).request, "Host: a.test\nX-Order: reset\n");
	Exchange refused = run(L, "11.0.0.1", "/d", "", false, "", 3);
	EXPECT_EQ(refused.status, 403);
	EXPECT_EQ(refused.outcome, "plugin:lan");
	EXPECT_EQ(L.cfg->services[0].routes[4].nplugins, 0u);
}

TEST(PluginLoad, RuleFileErrors)
{
	Loaded unknown;
	load(unknown, "{ name = \"lan-only\"; module = \"ip_filter\"; args = { allow = [ \"10.0.0.0/8\" ]; }; }",
	     "{ host = \"a.test\"; pool = \"p\";\n plugins = [ \"lan-onyl\" ]; }");
	EXPECT_TRUE(unknown.has("t.conf:5: no plugin named \"lan-onyl\"; did you mean \"lan-only\"?")) << unknown.all();

	Loaded missing;
	load(missing, "{ name = \"sec\"; module = \"security_header\"; }",
	     "{ host = \"a.test\"; pool = \"p\"; plugins = [ \"sec\" ]; }");
	EXPECT_TRUE(missing.has("t.conf:1: plugin \"sec\": no bundled plugin \"security_header\"")) << missing.all();
	EXPECT_TRUE(missing.has("security_headers")) << missing.all();

	Loaded both;
	load(both, "{ name = \"x\"; module = \"ip_filter\"; path = \"x.so\"; }",
	     "{ host = \"a.test\"; pool = \"p\"; plugins = [ \"x\" ]; }");
	EXPECT_TRUE(both.has("has both module and path")) << both.all();

	Loaded escape;
	load(escape, "{ name = \"x\"; module = \"../../tmp/evil\"; }",
	     "{ host = \"a.test\"; pool = \"p\"; plugins = [ \"x\" ]; }");
	EXPECT_TRUE(escape.has("is not a bundled plugin's name")) << escape.all();

	Loaded twice;
	load(twice, "{ name = \"x\"; module = \"security_headers\"; }",
	     "{ host = \"a.test\"; pool = \"p\"; plugins = [ \"x\", \"x\" ]; }");
	EXPECT_TRUE(twice.has("listed twice")) << twice.all();
}

}  // namespace
