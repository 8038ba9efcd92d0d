// Request paths as a back end resolves them (rules_urlpath_resolve), and routes
// that hold against every spelling of their prefix (rules_route_request).
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <string>
#include <vector>

#include "rules.h"

namespace {

// The resolved path, or "400: why".
std::string resolve(const std::string &raw, unsigned flags = RULES_PATH_WINDOWS)
{
	std::string out(raw.size() + 2, '\x55');
	size_t n = 0;
	const char *why = nullptr;
	int rc = rules_urlpath_resolve(raw.data(), raw.size(), flags, out.data(), out.size(), &n, &why);
	if (rc == RULES_PATH_BAD)
		return std::string("400: ") + (why ? why : "(no reason)");
	EXPECT_LE(n + 1, out.size()) << raw;
	EXPECT_EQ(out[n], '\0') << raw;
	EXPECT_EQ(out[0], '/') << raw;
	return out.substr(0, n);
}

// Resolved paths keep their case; routes and filters compare them without it.
std::string lower(std::string s)
{
	for (char &c : s)
		c = (char)tolower((unsigned char)c);
	return s;
}

bool refused(const std::string &raw, unsigned flags = RULES_PATH_WINDOWS)
{
	return resolve(raw, flags).rfind("400: ", 0) == 0;
}

TEST(UrlPath, PlainPathsStayAsTheyAre)
{
	for (const char *p : { "/", "/owa", "/owa/", "/OWA/auth/logon.aspx", "/EWS/Exchange.asmx", "/a-b_c~d/e.f",
	                       "/api/v4/projects/1", "/x+y", "/a/b.c/d" })
		EXPECT_EQ(resolve(p), p);
	EXPECT_EQ(resolve(""), "/");                     // an absolute form without a path
	EXPECT_EQ(resolve("?x=1"), "/");
	EXPECT_EQ(resolve("/owa/?ae=Item&a=/../ecp"), "/owa/");  // the query is cut, whatever is in it
	EXPECT_EQ(resolve("/owa?x"), "/owa");
}

// The spellings the issue found reaching /ecp past a raw prefix compare.
// A path that starts "/./" is never taken as already resolved, so it goes through the
// resolver's every rule; it must read as the path without that "." segment, whichever
// way the path itself was read. Paths at the edge of "already resolved" and past it.
TEST(UrlPath, PathsTakenAsResolvedReadAsTheFullResolverReadsThem)
{
	for (const char *p : { "/", "/a", "/a/", "/a.", "/a./b", "/a.b", "/a..b", "/a/.", "/a/..", "/a/./b", "/a/../b",
	                       "/.a", "/a/.b", "/a//b", "//", "/a.?x", "/a?/../b", "/a ", "/a /b", "/a;b", "/a:b", "/a\\b",
	                       "/a%41", "/a#b", "/caf\xc3\xa9", "/a\x7f", "/~!$&'()*+,=@", "/.well-known/acme-challenge/t",
	                       "/owa/auth/logon.aspx?replaceCurrent=1" })
		for (unsigned flags : { 0u, (unsigned)RULES_PATH_WINDOWS }) {
			std::string raw(p);
			EXPECT_EQ(resolve(raw, flags), resolve("/." + raw, flags)) << raw << " flags " << flags;
		}
}

TEST(UrlPath, EveryIisSpellingOfAPrefixResolvesToIt)
{
	const char *ecp[] = {
		"/ecp/", "/ECP/", "/%65cp/", "/%45%43%50/", "//ecp/", "///ecp//", "/./ecp/", "/owa/../ecp/",
		"/owa/%2e%2e/ecp/", "/owa/%2E%2E/ecp/", "/owa/.%2e/ecp/", "/%2e/ecp/", "/owa%2f..%2fecp/",
		"/owa%5c..%5cecp/", "\\ecp\\", "/owa\\..\\ecp/", "/ecp%2f", "/ecp%5c", "/ecp./", "/ecp%20/", "/ecp.%20./",
		"/ecp;x/", "/ecp%3bx/", "/owa/..;/ecp/", "/ecp::$DATA/", "/ecp:x/", "/x/y/../../ecp/", "/ecp/.", "/ecp/x/..",
	};
	for (const char *p : ecp)
		EXPECT_EQ(lower(resolve(p)), "/ecp/") << p;
	EXPECT_EQ(resolve("/powershell"), "/powershell");
	EXPECT_EQ(resolve("/PowerShell."), "/PowerShell");
	EXPECT_EQ(resolve("/%70owershell?serializationLevel=Full"), "/powershell");
	EXPECT_EQ(resolve("/owa/../powershell/"), "/powershell/");
}

// Windows reading off: "\" and trailing dots are bytes of a name (a Linux back end).
TEST(UrlPath, WithoutWindowsBackslashAndTrailingDotsAreNames)
{
	EXPECT_EQ(resolve("\\ecp\\", 0), "/\\ecp\\");
	EXPECT_EQ(resolve("/ecp./", 0), "/ecp./");
	EXPECT_EQ(resolve("/ecp:x/", 0), "/ecp:x/");
	EXPECT_EQ(resolve("/owa%5c..%5cecp/", 0), "/owa\\..\\ecp/");
	EXPECT_EQ(resolve("/owa/..;/ecp/", 0), "/ecp/");  // path parameters either way (Tomcat)
	EXPECT_EQ(resolve("/...", 0), "/...");
}

TEST(UrlPath, EncodedSeparatorsAreFlaggedAndReadTwoWays)
{
	std::string out(40, '\0');
	size_t n;
	const char *why;
	EXPECT_EQ(rules_urlpath_resolve("/a%2Fb", 6, RULES_PATH_WINDOWS, out.data(), out.size(), &n, &why),
	          RULES_PATH_ENCODED_SEP);
	EXPECT_EQ(rules_urlpath_resolve("/a/b", 4, RULES_PATH_WINDOWS, out.data(), out.size(), &n, &why), RULES_PATH_OK);
	EXPECT_EQ(resolve("/owa%2f..%2fecp/", RULES_PATH_WINDOWS | RULES_PATH_SEP_OPAQUE), "/owa%2F..%2Fecp/");
	EXPECT_EQ(resolve("/a%5cb", RULES_PATH_WINDOWS | RULES_PATH_SEP_OPAQUE), "/a%5Cb");
	EXPECT_EQ(resolve("/a%5cb", RULES_PATH_SEP_OPAQUE), "/a\\b");   // not a separator without Windows
	EXPECT_EQ(resolve("/api/v4/projects/group%2Fproject"), "/api/v4/projects/group/project");
}

// What cannot be resolved safely is refused, never guessed.
TEST(UrlPath, UnsafeSpellingsAreRefused)
{
	const char *bad[] = {
		"/%00", "/ecp%00/", "/%zz", "/%4", "/%", "/%%41", "/%u0065cp/", "/%U0065cp/",   // bad escapes, %u
		"/..", "/../ecp", "/x/../../ecp", "/%2e%2e/ecp", "/x/..%2f..%2fecp", "/..\\ecp",  // above the root
		"/%252e%252e/ecp", "/%2565cp/", "/%25%32%65", "/%25u002e", "/%2525",            // double escaping
		"/%c0%ae%c0%ae/ecp", "/%c0%afecp", "/%e0%80%ae", "/%f0%80%80%ae", "/%c1%bf",     // overlong UTF-8
		"/%ed%a0%80", "/%f4%90%80%80", "/%f5%80%80%80", "/%ff", "/%80", "/%c3", "/%c3/x", // not UTF-8
		"/%c2%80", "/%c2%9f",                                                             // C1 controls
		"/%01", "/%0a", "/%0d%0aX:y", "/%09", "/%7f", "/a\x01",                           // controls
		"/ecp#x", "/x#/../ecp",                                                           // a fragment
		"/.../ecp", "/. /ecp", "/.. /ecp", "/ ./", "/%20/",                              // only dots and spaces
	};
	for (const char *p : bad)
		EXPECT_TRUE(refused(p)) << p << " -> " << resolve(p);
	EXPECT_EQ(resolve("/%25"), "/%");               // one "%" is a character
	EXPECT_EQ(resolve("/100%25off"), "/100%off");
	EXPECT_EQ(resolve("/%25x1"), "/%x1");
	EXPECT_EQ(resolve("/a/%2e%2e"), "/");
}

TEST(UrlPath, Utf8IsKeptAndCaseFoldsToAsciiAreFolded)
{
	EXPECT_EQ(resolve("/caf%C3%A9/"), "/caf\xC3\xA9/");
	EXPECT_EQ(resolve("/%E2%82%AC"), "/\xE2\x82\xAC");
	EXPECT_EQ(resolve("/%F0%9F%98%80"), "/\xF0\x9F\x98\x80");
	// Kelvin sign, long s, dotted and dotless i: caseless comparison would make them ASCII.
	EXPECT_EQ(resolve("/power%C5%BFhell/"), "/powershell/");
	EXPECT_EQ(resolve("/%E2%84%AAey"), "/key");
	EXPECT_EQ(resolve("/adm%C4%B1n"), "/admin");
	EXPECT_EQ(resolve("/adm%C4%B0n"), "/admin");
}

TEST(UrlPath, NeverWritesPastItsRoom)
{
	std::string out(3, '\0');
	size_t n;
	const char *why;
	EXPECT_EQ(rules_urlpath_resolve("/abc", 4, 0, out.data(), out.size(), &n, &why), RULES_PATH_BAD);
	// The longest result: a leading "/" added to a path that had none.
	std::string raw(1000, 'a');
	EXPECT_EQ(resolve(raw), "/" + raw);
}

// ---- routes against every spelling ----

struct Loaded {
	struct rules_config *cfg = nullptr;
	std::string errors;
	~Loaded() { rules_config_unref(cfg); }
};

void load(const std::string &text, Loaded &out)
{
	struct rules_diag *d = rules_diag_new();
	out.cfg = rules_load_string(text.c_str(), "t.conf", d);
	for (size_t i = 0; i < rules_diag_count(d); i++)
		out.errors += std::string(rules_diag_message(d, i)) + "\n";
	rules_diag_free(d);
}

// What a request gets: the pool's name, the route's status, "400" or "nothing".
std::string to(const struct rules_config *cfg, const char *path, const char *host = "mail.contoso.test")
{
	const struct rules_service &s = cfg->services[0];
	std::string out(strlen(path) + 2, '\0');
	size_t n;
	const char *why;
	long r = rules_route_request(&s, host, strlen(host), path, strlen(path), nullptr, 0, out.data(), out.size(), &n,
	                             &why);
	if (r == RULES_ROUTE_BAD_PATH)
		return "400";
	if (r < 0)
		return "nothing";
	const struct rules_route &rt = s.routes[r];
	return rt.pool >= 0 ? cfg->pools[rt.pool].name : std::to_string(rt.status);
}

const char *const kExchange = R"(
pools = ( { name = "ex"; servers = ( "127.0.0.1:1" ); }, { name = "gitlab"; servers = ( "127.0.0.1:2" ); } );
services = ( { name = "http"; listen = [ "127.0.0.1:8080" ];
  routes = (
    { host = "mail.contoso.test"; path = "/ecp"; status = 403; },
    { host = "mail.contoso.test"; path = "/powershell"; status = 403; },
    { host = "mail.contoso.test"; pool = "ex"; },
    { host = "git.contoso.test"; pool = "gitlab"; }
  ); } );
)";

TEST(UrlPathRoutes, ABlockedPrefixHoldsAgainstEverySpelling)
{
	Loaded l;
	load(kExchange, l);
	ASSERT_NE(l.cfg, nullptr) << l.errors;
	const char *blocked[] = {
		"/ecp", "/ecp/", "/ECP/", "/Ecp/default.aspx", "/%65cp/", "/%45cp/", "//ecp/", "/./ecp/", "/owa/../ecp/",
		"/owa/%2e%2e/ecp/", "\\ecp\\", "/owa\\..\\ecp/", "/ecp./", "/ecp%20/", "/ecp;x/", "/owa/..;/ecp/",
		"/ecp?x=1", "/ecp/?a=/../owa", "/ecp::$DATA", "/power%C5%BFhell", "/powershell", "/PowerShell/",
		"/%70owershell", "//powershell?serializationLevel=Full", "/owa/../powershell", "/powershell.",
	};
	for (const char *p : blocked)
		EXPECT_EQ(to(l.cfg, p), "403") << p;
	// Readings that disagree on the route, and what cannot be resolved: 400, never the catch-all.
	const char *bad[] = {
		"/owa%2f..%2fecp/", "/owa%5c..%5cecp/", "/ecp%2fx", "/ecp%5cx", "/%2e%2e/ecp", "/%252e%252e/ecp/",
		"/%c0%ae%c0%ae/ecp", "/%u0065cp/", "/ecp%00/", "/x#/../ecp", "/ecp/x%2f..%2f..%2fowa", "/ecp%2F",
	};
	for (const char *p : bad)
		EXPECT_EQ(to(l.cfg, p), "400") << p;
	// What is not /ecp or /powershell goes on as before.
	const char *pass[] = {
		"/", "/owa/", "/OWA/auth/logon.aspx", "/ecpx", "/ecp2/", "/EWS/Exchange.asmx", "/owa/?path=/ecp",
		"/Microsoft-Server-ActiveSync?Cmd=Sync", "/powershellx", "/owa/%2e/x", "/owa/a%2fb",
		"/ecp%2f..%2fowa/",
	};
	for (const char *p : pass)
		EXPECT_EQ(to(l.cfg, p), "ex") << p;
	EXPECT_EQ(to(l.cfg, "/api/v4/projects/group%2Fproject", "git.contoso.test"), "gitlab");
}

TEST(UrlPathRoutes, PathsAreWrittenPlainInTheRuleFile)
{
	for (const char *p : { "/%65cp", "/ecp.", "/a/../ecp", "//ecp", "/./ecp", "/ecp;x", "/ecp\\\\x", "/ecp:x" }) {
		Loaded l;
		load(std::string(R"(pools = ( { name = "ex"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "http"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; path = ")") + p + R"("; pool = "ex"; } ); } );
)",
		     l);
		EXPECT_EQ(l.cfg, nullptr) << p;
		EXPECT_NE(l.errors.find("t.conf:3: path"), std::string::npos) << p << ": " << l.errors;
	}
	Loaded dots;
	load(R"(pools = ( { name = "ex"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "http"; listen = [ "127.0.0.1:8080" ];
  routes = ( { host = "a.test"; path = "/a/./b"; pool = "ex"; } ); } );
)",
	     dots);
	EXPECT_NE(dots.errors.find("resolves to \"/a/b\""), std::string::npos) << dots.errors;
}

TEST(UrlPathRoutes, WindowsPathsOffReadsBackslashAsAName)
{
	Loaded l;
	load(R"(pools = ( { name = "ex"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "http"; listen = [ "127.0.0.1:8080" ]; windows_paths = false;
  routes = ( { host = "mail.contoso.test"; path = "/ecp"; status = 403; },
             { host = "mail.contoso.test"; pool = "ex"; } ); } );
)",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.errors;
	EXPECT_FALSE(l.cfg->services[0].windows_paths);
	EXPECT_EQ(to(l.cfg, "\\ecp\\"), "ex");
	EXPECT_EQ(to(l.cfg, "/ecp./"), "ex");
	EXPECT_EQ(to(l.cfg, "/%65cp/"), "403");
	EXPECT_EQ(to(l.cfg, "/owa/../ecp/"), "403");
	EXPECT_EQ(to(l.cfg, "/owa%2f..%2fecp/"), "400");
}

TEST(UrlPathRoutes, WindowsPathsOnAPassthroughServiceIsWarned)
{
	Loaded l;
	load(R"(pools = ( { name = "adfs"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "pt"; listen = [ "127.0.0.1:8443" ];
  windows_paths = false;
  routes = ( { sni = "sts.contoso.test"; pool = "adfs"; } ); } );
)",
	     l);
	ASSERT_NE(l.cfg, nullptr) << l.errors;
	EXPECT_NE(l.errors.find("t.conf:3: warning: windows_paths says how request paths are resolved"), std::string::npos)
	    << l.errors;
}

} // namespace
