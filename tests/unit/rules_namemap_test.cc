// rules_namemap: precedence, normalization, pattern errors and scale.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "rules.h"

namespace {

class NameMap : public ::testing::Test {
protected:
	void SetUp() override { m = rules_namemap_new(); ASSERT_NE(m, nullptr); }
	void TearDown() override { rules_namemap_free(m); }

	int add(const char *pattern, int value)
	{
		return rules_namemap_add(m, pattern, value, err, sizeof(err));
	}
	int lookup(const std::string &name) const { return rules_namemap_lookup(m, name.data(), name.size()); }

	struct rules_namemap *m = nullptr;
	char err[256] = "";
};

TEST_F(NameMap, ExactBeatsWildcardBeatsRegex)
{
	ASSERT_EQ(add("~^.*\\.example\\.com$", 3), 0) << err;
	ASSERT_EQ(add("*.example.com", 2), 0) << err;
	ASSERT_EQ(add("www.example.com", 1), 0) << err;
	EXPECT_EQ(lookup("www.example.com"), 1);
	EXPECT_EQ(lookup("mail.example.com"), 2);
	EXPECT_EQ(lookup("a.b.example.com"), 2);
	EXPECT_EQ(rules_namemap_size(m), 3u);
}

TEST_F(NameMap, LongestWildcardWins)
{
	ASSERT_EQ(add("*.example.com", 1), 0) << err;
	ASSERT_EQ(add("*.a.b.example.com", 2), 0) << err;
	ASSERT_EQ(add("*.b.example.com", 3), 0) << err;
	EXPECT_EQ(lookup("x.a.b.example.com"), 2);
	EXPECT_EQ(lookup("y.x.a.b.example.com"), 2);
	EXPECT_EQ(lookup("a.b.example.com"), 3);
	EXPECT_EQ(lookup("c.example.com"), 1);
}

TEST_F(NameMap, FirstRegexInInsertionOrderWins)
{
	ASSERT_EQ(add("~^app[0-9]+\\.test$", 1), 0) << err;
	ASSERT_EQ(add("~^app", 2), 0) << err;
	EXPECT_EQ(lookup("app12.test"), 1);
	EXPECT_EQ(lookup("application.test"), 2);
	EXPECT_EQ(lookup("web.test"), -1);
}

TEST_F(NameMap, RegexIsCaselessAndNotFooledByNewline)
{
	ASSERT_EQ(add("~^APP[0-9]+\\.test$", 1), 0) << err;
	EXPECT_EQ(lookup("App7.TEST"), 1);
	EXPECT_EQ(lookup(std::string("app7.test\n")), -1);
}

TEST_F(NameMap, CaseInsensitiveBothWays)
{
	ASSERT_EQ(add("Sts.Contoso.TEST", 1), 0) << err;
	ASSERT_EQ(add("*.HOME.test", 2), 0) << err;
	EXPECT_EQ(lookup("sts.contoso.test"), 1);
	EXPECT_EQ(lookup("STS.CONTOSO.TEST"), 1);
	EXPECT_EQ(lookup("NAS.Home.Test"), 2);
}

TEST_F(NameMap, TrailingDotIgnored)
{
	ASSERT_EQ(add("sts.contoso.test.", 1), 0) << err;
	ASSERT_EQ(add("*.home.test", 2), 0) << err;
	EXPECT_EQ(lookup("sts.contoso.test"), 1);
	EXPECT_EQ(lookup("sts.contoso.test."), 1);
	EXPECT_EQ(lookup("nas.home.test."), 2);
	EXPECT_EQ(lookup("sts.contoso.test.."), -1);
}

TEST_F(NameMap, WildcardDoesNotMatchApex)
{
	ASSERT_EQ(add("*.example.com", 1), 0) << err;
	EXPECT_EQ(lookup("example.com"), -1);
	EXPECT_EQ(lookup(".example.com"), -1);
	EXPECT_EQ(lookup("xexample.com"), -1);
	EXPECT_EQ(lookup("x.example.com"), 1);
}

TEST_F(NameMap, LookupUsesLengthNotTerminator)
{
	ASSERT_EQ(add("a.test", 1), 0) << err;
	const char buf[] = "a.testXYZ";
	EXPECT_EQ(rules_namemap_lookup(m, buf, 6), 1);
	EXPECT_EQ(rules_namemap_lookup(m, buf, 7), -1);
	EXPECT_EQ(rules_namemap_lookup(m, buf, 0), -1);
}

TEST_F(NameMap, BadRegexReportsOffset)
{
	EXPECT_EQ(add("~^(unclosed", 1), -1);
	EXPECT_STREQ(err, "regex error at offset 10: missing closing parenthesis");
	EXPECT_EQ(add("~", 1), -1);
	EXPECT_STREQ(err, "empty regex after \"~\"");
	EXPECT_EQ(rules_namemap_size(m), 0u);
}

TEST_F(NameMap, MisplacedStarExplainsAllowedForms)
{
	const char *expect = "\"*\" is allowed only as the whole first label, as in \"*.example.com\"; "
	                     "use \"~REGEX\" for other shapes";
	for (const char *p : { "a*.example.com", "*", "*.", "x.*.example.com", "*example.com", "**.example.com" }) {
		EXPECT_EQ(add(p, 1), -1) << p;
		EXPECT_STREQ(err, expect) << p;
	}
}

TEST_F(NameMap, BadNames)
{
	EXPECT_EQ(add("", 1), -1);
	EXPECT_STREQ(err, "empty name");
	EXPECT_EQ(add("a..b", 1), -1);
	EXPECT_STREQ(err, "empty label in name (a leading dot or two dots in a row)");
	EXPECT_EQ(add("a b.test", 1), -1);
	EXPECT_STREQ(err, "invalid character ' ' in name; use letters, digits, '-', '_' and '.'");
	EXPECT_EQ(add("*.b\xc3\xbc" "cher.test", 1), -1);
	EXPECT_STREQ(err, "non-ASCII byte 0xc3 in name; write an internationalized name in punycode, as clients send it "
	                  "(idn2 NAME prints it, e.g. \"xn--mnchen-3ya.de\")");
	EXPECT_EQ(add("a\x01.test", 1), -1);
	EXPECT_STREQ(err, "invalid byte 0x01 in name; use letters, digits, '-', '_' and '.'");
	EXPECT_EQ(add(std::string(64, 'a').append(".test").c_str(), 1), -1);
	EXPECT_STREQ(err, "label longer than 63 characters");
	EXPECT_EQ(add(std::string(63, 'a').append(".test").c_str(), 1), 0) << err;
}

TEST_F(NameMap, DuplicatesAfterNormalization)
{
	ASSERT_EQ(add("a.test", 1), 0) << err;
	EXPECT_EQ(add("A.Test.", 2), -2);
	ASSERT_EQ(add("*.test", 3), 0) << err;
	EXPECT_EQ(add("*.TEST", 4), -2);
	ASSERT_EQ(add("~^x", 5), 0) << err;
	EXPECT_EQ(add("~^x", 6), -2);
	EXPECT_EQ(lookup("a.test"), 1);
	EXPECT_EQ(rules_namemap_size(m), 3u);
}

TEST_F(NameMap, TenThousandNamesAllFound)
{
	const int n = 10000;
	for (int i = 0; i < n; i++) {
		std::string name = "host" + std::to_string(i) + ".example.com";
		ASSERT_EQ(add(name.c_str(), i), 0) << name << ": " << err;
	}
	ASSERT_EQ(add("*.example.com", n), 0) << err;
	EXPECT_EQ(rules_namemap_size(m), static_cast<size_t>(n + 1));
	for (int i = 0; i < n; i++)
		ASSERT_EQ(lookup("HOST" + std::to_string(i) + ".example.com."), i) << i;
	EXPECT_EQ(lookup("host10000.example.com"), n);
	EXPECT_EQ(lookup("host1.example.org"), -1);
}

TEST_F(NameMap, ConcurrentRegexLookups)
{
	ASSERT_EQ(add("~^app[0-9]+\\.test$", 7), 0) << err;
	std::vector<std::thread> threads;
	std::vector<int> bad(4, 0);
	for (int t = 0; t < 4; t++)
		threads.emplace_back([this, t, &bad] {
			for (int i = 0; i < 20000; i++)
				if (lookup("app" + std::to_string(i) + ".test") != 7 || lookup("web.test") != -1)
					bad[t]++;
		});
	for (auto &th : threads)
		th.join();
	for (int t = 0; t < 4; t++)
		EXPECT_EQ(bad[t], 0) << "thread " << t;
}

TEST(NameMapNull, NullSafe)
{
	EXPECT_EQ(rules_namemap_lookup(nullptr, "a", 1), -1);
	EXPECT_EQ(rules_namemap_size(nullptr), 0u);
	rules_namemap_free(nullptr);
}

} // namespace
