// live.c: when GET /api/health says a gateway may hold a floating address.
#include <gtest/gtest.h>

extern "C" {
#include "control/live.h"
}

namespace {

struct Live : ::testing::Test {
	void TearDown() override { live_stop(); }
	char why[200] = "";
};

TEST_F(Live, StartingIsNotHealthy)
{
	ASSERT_EQ(live_start(2), 0);
	EXPECT_FALSE(live_check(live_now_ms(), why, sizeof(why)));
	EXPECT_NE(std::string(why).find("starting"), std::string::npos) << why;
}

TEST_F(Live, ServingWithFreshWorkersIsHealthy)
{
	ASSERT_EQ(live_start(2), 0);
	live_set_serving();
	EXPECT_TRUE(live_check(live_now_ms(), why, sizeof(why))) << why;
	EXPECT_NE(std::string(why).find("2 workers"), std::string::npos) << why;
}

TEST_F(Live, AWorkerThatStopsBeatingFailsNamingIt)
{
	ASSERT_EQ(live_start(2), 0);
	live_set_serving();
	uint64_t later = live_now_ms() + LIVE_STALE_MS + 100;
	EXPECT_FALSE(live_check(later, why, sizeof(why)));
	EXPECT_NE(std::string(why).find("worker 0"), std::string::npos) << why;
	// Worker 0 beats again (its clock is the real one: age the check less than a stale span).
	live_beat(0);
	live_beat(1);
	EXPECT_TRUE(live_check(live_now_ms() + LIVE_STALE_MS / 2, why, sizeof(why))) << why;
}

TEST_F(Live, StandbyAndDrainingFail)
{
	ASSERT_EQ(live_start(1), 0);
	live_set_serving();
	live_set_standby(true);
	EXPECT_TRUE(live_standby());
	EXPECT_FALSE(live_check(live_now_ms(), why, sizeof(why)));
	EXPECT_NE(std::string(why).find("standby"), std::string::npos) << why;
	live_set_standby(false);
	EXPECT_TRUE(live_check(live_now_ms(), why, sizeof(why))) << why;
	live_set_draining();
	EXPECT_FALSE(live_check(live_now_ms(), why, sizeof(why)));
	EXPECT_NE(std::string(why).find("draining"), std::string::npos) << why;
}

TEST_F(Live, BeatsOutOfRangeAreIgnored)
{
	ASSERT_EQ(live_start(1), 0);
	live_beat(7);
	live_set_serving();
	EXPECT_TRUE(live_check(live_now_ms(), why, sizeof(why))) << why;
}

} // namespace
