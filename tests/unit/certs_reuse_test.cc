// certs_item_obtain: a reload takes the item of unchanged files again and loads changed ones.
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

namespace {

class CertsReuse : public ::testing::Test {
protected:
	static void SetUpTestSuite()
	{
		char tmpl[] = "/tmp/onegate-reuse-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		pki = tmpl;
		static const char *const a[] = {"a.contoso.test"};
		static const char *const b[] = {"b.contoso.test"};
		static const char *const soon[] = {"soon.contoso.test"};
		const certs_leaf_spec leaves[] = {
			{"a", a, 1, CERTS_KEY_ECDSA_P256, 90},
			{"b", b, 1, CERTS_KEY_ECDSA_P256, 90},
			{"soon", soon, 1, CERTS_KEY_ECDSA_P256, 10},
		};
		char err[256] = "";
		ASSERT_EQ(certs_testpki_generate(pki.c_str(), leaves, 3, err, sizeof(err)), 0) << err;
	}
	static void TearDownTestSuite() { EXPECT_EQ(system(("rm -rf '" + pki + "'").c_str()), 0); }

	// Each test serves "site" from its own copy of a generated leaf, which it may overwrite.
	void SetUp() override
	{
		char tmpl[] = "/tmp/onegate-reuse-site-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir = tmpl;
		place("a");
	}
	void TearDown() override { EXPECT_EQ(system(("rm -rf '" + dir + "'").c_str()), 0); }

	// The site's files get leaf's contents, in place (same inode), as an admin's cp does.
	void place(const std::string &leaf)
	{
		copy(pki + "/" + leaf + ".pem", dir + "/site.pem");
		copy(pki + "/" + leaf + ".key", dir + "/site.key");
		chmod((dir + "/site.key").c_str(), 0600);
	}
	static void copy(const std::string &from, const std::string &to)
	{
		ASSERT_EQ(system(("cat '" + from + "' > '" + to + "'").c_str()), 0);
	}

	static void collect(void *arg, bool warning, const char *msg)
	{
		static_cast<CertsReuse *>(arg)->said.emplace_back(warning, msg);
	}

	certs_item *obtain(bool allow_incomplete = false)
	{
		said.clear();
		std::string cert = dir + "/site.pem", key = dir + "/site.key", ca = pki + "/ca.pem";
		certs_source src = {};
		src.name = "site";
		src.cert = cert.c_str();
		src.key = key.c_str();
		src.ca_file = ca.c_str();
		src.allow_incomplete_chain = allow_incomplete;
		certs_report rep = {collect, this};
		return certs_item_obtain(&src, &rep);
	}
	size_t warnings() const
	{
		size_t n = 0;
		for (const auto &m : said)
			n += m.first;
		return n;
	}

	static std::string pki;
	std::string dir;
	std::vector<std::pair<bool, std::string>> said;
};

std::string CertsReuse::pki;

struct Item {
	certs_item *p;
	explicit Item(certs_item *c) : p(c) {}
	~Item() { certs_item_unref(p); }
	Item(const Item &) = delete;
	Item &operator=(const Item &) = delete;
};

}  // namespace

TEST_F(CertsReuse, UnchangedFilesGiveTheHeldItemAgain)
{
	Item first(obtain());
	ASSERT_NE(first.p, nullptr);
	EXPECT_EQ(certs_reuse_count(), 1u);
	Item again(obtain());
	EXPECT_EQ(again.p, first.p) << "the same parsed certificate, one more reference";
	EXPECT_EQ(certs_reuse_count(), 1u);
}

TEST_F(CertsReuse, TheLastHolderFreesAndTheTableForgets)
{
	certs_item *c = obtain();
	ASSERT_NE(c, nullptr);
	certs_item *d = obtain();
	ASSERT_EQ(c, d);
	certs_item_unref(c);
	EXPECT_EQ(certs_reuse_count(), 1u) << "still held once";
	certs_item_unref(d);
	EXPECT_EQ(certs_reuse_count(), 0u) << "nobody holds it: gone from the table too";
	Item fresh(obtain());
	ASSERT_NE(fresh.p, nullptr) << "loaded again from its files";
	EXPECT_EQ(certs_reuse_count(), 1u);
}

TEST_F(CertsReuse, ChangedContentIsLoadedAgain)
{
	Item old(obtain());
	ASSERT_NE(old.p, nullptr);
	place("b");
	Item now(obtain());
	ASSERT_NE(now.p, nullptr);
	EXPECT_NE(now.p, old.p);
	EXPECT_STREQ(certs_item_name_at(now.p, 0), "b.contoso.test");
	EXPECT_STREQ(certs_item_name_at(old.p, 0), "a.contoso.test") << "the old holder keeps what it had";
	EXPECT_EQ(certs_reuse_count(), 2u);
}

TEST_F(CertsReuse, ABrokenNewFileFailsAndTheOldItemStays)
{
	Item old(obtain());
	ASSERT_NE(old.p, nullptr);
	FILE *f = fopen((dir + "/site.pem").c_str(), "w");
	ASSERT_NE(f, nullptr);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	Item broken(obtain());
	EXPECT_EQ(broken.p, nullptr);
	ASSERT_FALSE(said.empty());
	EXPECT_NE(said[0].second.find("holds no certificate"), std::string::npos) << said[0].second;
	EXPECT_STREQ(certs_item_name_at(old.p, 0), "a.contoso.test");
}

TEST_F(CertsReuse, OtherOptionsAreAnotherItem)
{
	Item strict(obtain(false));
	Item lenient(obtain(true));
	ASSERT_NE(strict.p, nullptr);
	ASSERT_NE(lenient.p, nullptr);
	EXPECT_NE(strict.p, lenient.p);
}

TEST_F(CertsReuse, AKeyOthersCanReadIsAnotherItemAndWarnsEachTime)
{
	Item kept(obtain());
	ASSERT_NE(kept.p, nullptr);
	EXPECT_EQ(warnings(), 0u);
	chmod((dir + "/site.key").c_str(), 0644);
	Item open1(obtain());
	EXPECT_NE(open1.p, kept.p) << "the mode is part of what a load decided by";
	EXPECT_EQ(warnings(), 1u);
	Item open2(obtain());
	EXPECT_EQ(open2.p, open1.p);
	ASSERT_EQ(warnings(), 1u) << "the reused item's warning is said again";
	EXPECT_NE(said[0].second.find("chmod 600"), std::string::npos) << said[0].second;
}

TEST_F(CertsReuse, ACertificateNearItsEndIsLoadedAgainToWarnAgain)
{
	place("soon");
	Item first(obtain());
	ASSERT_NE(first.p, nullptr);
	EXPECT_EQ(warnings(), 1u);
	Item second(obtain());
	ASSERT_NE(second.p, nullptr);
	EXPECT_NE(second.p, first.p) << "its days left are counted anew";
	EXPECT_EQ(warnings(), 1u);
}
