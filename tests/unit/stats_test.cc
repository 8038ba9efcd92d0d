// Live numbers: counters sampled into a ring, read back as rates, error rate,
// latency quantiles and a chart's series.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

extern "C" {
#include "proxy/stats.h"
}

namespace {

struct Live {
	stats_counters *c = stats_counters_new();
	stats_ring *r = stats_ring_new();
	~Live()
	{
		stats_counters_free(c);
		stats_ring_free(r);
	}
};

TEST(Stats, NothingSampledReadsAsNothing)
{
	Live l;
	stats_live out;
	stats_ring_live(l.r, STATS_WINDOW_S, &out);
	EXPECT_EQ(out.span_s, 0);
	EXPECT_EQ(out.rps, 0);
	EXPECT_EQ(out.p50_ms, -1);
	double rps[4], eps[4];
	stats_ring_series(l.r, 10, 4, rps, eps);
	for (double v : rps)
		EXPECT_EQ(v, -1);
}

TEST(Stats, RatesErrorsAndQuantilesOverTheWindow)
{
	Live l;
	stats_ring_sample(l.r, l.c, 0, 1, 1000);
	// 10 s: 100 requests a second, 1 in 100 an error; latencies 1..100 ms, one each.
	for (uint64_t tick = 2; tick <= 11; tick++) {
		for (int i = 1; i <= 100; i++)
			stats_count_request(&l.c, 1, i == 100, (uint64_t)i * 1000, 10, 1000);
		stats_ring_sample(l.r, l.c, 7, tick, tick * 1000);
	}
	stats_live out;
	stats_ring_live(l.r, STATS_WINDOW_S, &out);
	EXPECT_DOUBLE_EQ(out.span_s, 10);
	EXPECT_DOUBLE_EQ(out.rps, 100);
	EXPECT_DOUBLE_EQ(out.in_bps, 1000);
	EXPECT_DOUBLE_EQ(out.out_bps, 100000);
	EXPECT_DOUBLE_EQ(out.error_rate, 0.01);
	EXPECT_EQ(out.requests, 1000u);
	EXPECT_EQ(out.open, 7u);
	// The true median is 50 ms and p99 99 ms; buckets 25-50 ms and 50-100 ms bound them.
	EXPECT_GE(out.p50_ms, 25);
	EXPECT_LE(out.p50_ms, 50);
	EXPECT_GE(out.p99_ms, 50);
	EXPECT_LE(out.p99_ms, 100);

	// A window of 2 s sees only the last two seconds.
	stats_ring_live(l.r, 2, &out);
	EXPECT_DOUBLE_EQ(out.span_s, 2);
	EXPECT_EQ(out.requests, 200u);
}

TEST(Stats, QuietMinuteAfterBusyOneReadsQuiet)
{
	Live l;
	uint64_t tick = 1;
	for (; tick <= 61; tick++) {
		for (int i = 0; i < 10; i++)
			stats_count_request(&l.c, 1, false, 5000, 0, 0);
		stats_ring_sample(l.r, l.c, 0, tick, tick * 1000);
	}
	for (; tick <= 200; tick++)
		stats_ring_sample(l.r, l.c, 0, tick, tick * 1000);
	stats_live out;
	stats_ring_live(l.r, STATS_WINDOW_S, &out);
	EXPECT_EQ(out.rps, 0);
	EXPECT_EQ(out.p50_ms, -1);
	// The chart still shows the busy minute, 10 a second, and the quiet after it.
	double rps[20], eps[20];
	stats_ring_series(l.r, 10, 20, rps, eps);
	EXPECT_DOUBLE_EQ(rps[0], 10);     // seconds 1..10 before the newest 200
	EXPECT_DOUBLE_EQ(rps[19], 0);
	EXPECT_DOUBLE_EQ(eps[0], 0);
}

TEST(Stats, SeriesBeforeTheFirstSampleIsEmptyAndTheRingWraps)
{
	Live l;
	// An object that appeared at tick 1000 (a reload added it): earlier steps have no numbers.
	for (uint64_t tick = 1000; tick <= 1025; tick++) {
		stats_count_request(&l.c, 1, false, 100, 0, 0);
		stats_ring_sample(l.r, l.c, 0, tick, tick * 1000);
	}
	double rps[6], eps[6];
	stats_ring_series(l.r, 10, 6, rps, eps);
	EXPECT_EQ(rps[0], -1);
	EXPECT_EQ(rps[2], -1);
	EXPECT_DOUBLE_EQ(rps[3], 1);      // 1000..1005: a partial first step
	EXPECT_DOUBLE_EQ(rps[5], 1);
	// Past the ring's length the oldest samples are overwritten; the window still reads right.
	for (uint64_t tick = 1026; tick <= 1000 + 3 * STATS_RING_S; tick++) {
		stats_count_request(&l.c, 1, true, 100, 0, 0);
		stats_ring_sample(l.r, l.c, 0, tick, tick * 1000);
	}
	stats_live out;
	stats_ring_live(l.r, STATS_RING_S + 100, &out);
	EXPECT_DOUBLE_EQ(out.span_s, STATS_RING_S);
	EXPECT_DOUBLE_EQ(out.rps, 1);
	EXPECT_DOUBLE_EQ(out.error_rate, 1);
}

TEST(Stats, HistogramCountIsTheBucketsSum)
{
	Live l;
	stats_count_request(&l.c, 1, false, 50, 0, 0);
	stats_count_request(&l.c, 1, false, 40000000, 0, 0);   // past the last bound: +Inf
	uint64_t b[STATS_NBUCKETS] = {}, sum = 0, count = 0;
	stats_latency_add(l.c, b, &sum, &count);
	EXPECT_EQ(count, 2u);
	EXPECT_EQ(b[0], 1u);
	EXPECT_EQ(b[STATS_NBUCKETS - 1], 1u);
	EXPECT_EQ(sum, 40000050u);
}

// Workers add to slots of their own, any other thread to the shared one; the
// readers see the sum of them all.
TEST(Stats, WorkersSlotsAndTheSharedOneSumUp)
{
	stats_workers(3);
	Live l;
	stats_workers(0);
	stats_ring_sample(l.r, l.c, 0, 1, 1000);
	std::vector<std::thread> ts;
	// Worker 3 has no slot in an object made for 3 workers: it shares slot 0 with
	// this thread, atomically.
	for (unsigned id = 0; id < 4; id++)
		ts.emplace_back([&l, id] {
			stats_thread_worker(id);
			for (int i = 0; i < 10000; i++)
				stats_count_request(&l.c, 1, i % 10 == 0, 1000, 1, 2);
		});
	for (int i = 0; i < 10000; i++) {
		stats_count_bytes(&l.c, 1, 1, 0);
		stats_count_session(&l.c, 1, false);
	}
	for (auto &t : ts)
		t.join();
	stats_ring_sample(l.r, l.c, 0, 2, 2000);
	stats_live out;
	stats_ring_live(l.r, STATS_WINDOW_S, &out);
	EXPECT_EQ(out.requests, 50000u);
	EXPECT_EQ(out.errors, 4000u);
	EXPECT_DOUBLE_EQ(out.in_bps, 50000);
	EXPECT_DOUBLE_EQ(out.out_bps, 80000);
	uint64_t b[STATS_NBUCKETS] = {}, sum = 0, count = 0;
	stats_latency_add(l.c, b, &sum, &count);
	EXPECT_EQ(count, 40000u);
	EXPECT_EQ(sum, 40000u * 1000);
	EXPECT_EQ(b[3], 40000u);
}

}  // namespace
