// io/keep: objects kept per thread, up to the kind's bound, freed by keep_drop_all()
// and when the thread ends.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <thread>
#include <vector>

extern "C" {
#include "io/keep.h"
}

namespace {

struct thing {
	int id;
	void *link;
};

std::atomic<int> freed;

void thing_free(void *obj)
{
	freed++;
	delete static_cast<thing *>(obj);
}

const keep_kind two_kind = {2, offsetof(thing, link), thing_free};
const keep_kind many_kind = {100, offsetof(thing, link), thing_free};
thread_local keep_list two = {&two_kind, nullptr, 0, false, nullptr};
thread_local keep_list many = {&many_kind, nullptr, 0, false, nullptr};

TEST(Keep, TakesTheLastKeptFirstAndNothingWhenEmpty)
{
	EXPECT_EQ(keep_take(&two), nullptr);
	thing *a = new thing{1, nullptr}, *b = new thing{2, nullptr};
	ASSERT_TRUE(keep_give(&two, a));
	ASSERT_TRUE(keep_give(&two, b));
	EXPECT_EQ(keep_take(&two), b);
	EXPECT_EQ(keep_take(&two), a);
	EXPECT_EQ(keep_take(&two), nullptr);
	delete a;
	delete b;
}

// keep_take_zeroed(): a kept object comes back cleared; with none kept, a new zeroed one.
TEST(Keep, TakeZeroedClearsAKeptObjectOrMakesOne)
{
	static const keep_kind raw_kind = {4, offsetof(thing, link), free};
	static thread_local keep_list raw = {&raw_kind, nullptr, 0, false, nullptr};
	thing *a = static_cast<thing *>(keep_take_zeroed(&raw, sizeof(thing)));
	ASSERT_NE(a, nullptr);
	EXPECT_EQ(a->id, 0);
	a->id = 7;
	ASSERT_TRUE(keep_give(&raw, a));
	thing *b = static_cast<thing *>(keep_take_zeroed(&raw, sizeof(thing)));
	EXPECT_EQ(b, a);
	EXPECT_EQ(b->id, 0);
	EXPECT_EQ(b->link, nullptr);
	free(b);
}

TEST(Keep, AFullListRefusesAndTheCallerFrees)
{
	thing *a = new thing{1, nullptr}, *b = new thing{2, nullptr}, *c = new thing{3, nullptr};
	ASSERT_TRUE(keep_give(&two, a));
	ASSERT_TRUE(keep_give(&two, b));
	EXPECT_FALSE(keep_give(&two, c));
	delete c;
	// Taking one makes room again.
	EXPECT_EQ(keep_take(&two), b);
	EXPECT_TRUE(keep_give(&two, b));
	freed = 0;
	keep_drop_all();
	EXPECT_EQ(freed, 2);
	EXPECT_EQ(keep_take(&two), nullptr);
}

TEST(Keep, DropAllFreesEveryKindOfThisThread)
{
	freed = 0;
	for (int i = 0; i < 5; i++)
		ASSERT_TRUE(keep_give(&many, new thing{i, nullptr}));
	ASSERT_TRUE(keep_give(&two, new thing{9, nullptr}));
	keep_drop_all();
	EXPECT_EQ(freed, 6);
	EXPECT_EQ(keep_take(&many), nullptr);
	EXPECT_EQ(keep_take(&two), nullptr);
	// The lists stay usable after a drop.
	thing *a = new thing{1, nullptr};
	ASSERT_TRUE(keep_give(&many, a));
	EXPECT_EQ(keep_take(&many), a);
	delete a;
}

TEST(Keep, AThreadsEndFreesWhatItKept)
{
	freed = 0;
	std::thread t([] {
		for (int i = 0; i < 7; i++)
			ASSERT_TRUE(keep_give(&many, new thing{i, nullptr}));
		ASSERT_TRUE(keep_give(&two, new thing{7, nullptr}));
	});
	t.join();
	EXPECT_EQ(freed, 8);
	// Another thread's lists are its own: this one keeps nothing of them.
	EXPECT_EQ(keep_take(&many), nullptr);
}

} // namespace
