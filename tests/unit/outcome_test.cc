// The outcome table is the one list of outcomes: every entry is whole and unique,
// the server faults are the ones the pools count, and docs/architecture.md shows
// exactly this table.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

extern "C" {
#include "io/outcome.h"
}

namespace {

std::string render()
{
	std::string out = "| outcome | lines | meaning |\n|---|---|---|\n";
	for (int i = 0; i < OUTCOME_COUNT; i++) {
		const outcome_info &o = outcome_table[i];
		std::string lines;
		if (o.lines & OUTCOME_LINE_TCP)
			lines += "tcp";
		if (o.lines & OUTCOME_LINE_REQUEST)
			lines += std::string(lines.empty() ? "" : ", ") + "request";
		if (o.lines & OUTCOME_LINE_SESSION)
			lines += std::string(lines.empty() ? "" : ", ") + "session";
		out += "| `" + std::string(o.name) + "` | " + lines + " | " + o.meaning + (o.server_fault ? " (a server fault)" : "") +
		       " |\n";
	}
	return out;
}

TEST(Outcome, EveryEntryIsWholeAndUnique)
{
	std::set<std::string> seen;
	for (int i = 0; i < OUTCOME_COUNT; i++) {
		const outcome_info &o = outcome_table[i];
		ASSERT_NE(o.name, nullptr) << "outcome " << i << " has no entry in gateway/io/outcome.c";
		ASSERT_NE(o.meaning, nullptr) << o.name;
		EXPECT_NE(o.lines, 0u) << o.name << " is on no line";
		EXPECT_TRUE(seen.insert(o.name).second) << o.name << " twice";
	}
	EXPECT_STREQ(outcome_name(OUTCOME_OK), "ok");
	EXPECT_STREQ(outcome_name(OUTCOME_CLIENT_STALLED), "client-stalled");
}

TEST(Outcome, ServerFaultsAreTheServersEnds)
{
	for (int i = 0; i < OUTCOME_COUNT; i++) {
		std::string n = outcome_table[i].name;
		bool server = n == "no-server" || n == "proxy-header-failed" || n.rfind("server-", 0) == 0;
		EXPECT_EQ(outcome_table[i].server_fault, server) << n;
	}
}

TEST(Outcome, ArchitectureDocShowsTheTable)
{
	const std::string path = std::string(ONEGATE_SOURCE_DIR) + "/docs/architecture.md";
	std::ifstream f(path);
	ASSERT_TRUE(f) << path << ": cannot read";
	std::stringstream ss;
	ss << f.rdbuf();
	std::string doc = ss.str();
	const std::string begin = "<!-- outcomes: rendered from gateway/io/outcome.c; outcome_test checks it -->\n";
	const std::string end = "<!-- end of outcomes -->";
	size_t b = doc.find(begin), e = doc.find(end);
	ASSERT_NE(b, std::string::npos) << path << ": the marker line \"" << begin << "\" is missing";
	ASSERT_NE(e, std::string::npos) << path << ": the marker line \"" << end << "\" is missing";
	std::string shown = doc.substr(b + begin.size(), e - b - begin.size());
	EXPECT_EQ(shown, render()) << path << ": the outcome table differs from gateway/io/outcome.c; put this between the markers:\n"
	                           << render();
}

}  // namespace
