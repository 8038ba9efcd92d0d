#include "control/live.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum live_phase { LIVE_STARTING, LIVE_SERVING, LIVE_DRAINING };

static atomic_int live_phase_now = LIVE_STARTING;
static atomic_bool live_standby_on;
static _Atomic(uint64_t) *live_beats;
static unsigned live_nworkers;

uint64_t live_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int live_start(unsigned nworkers)
{
	live_stop();
	live_beats = calloc(nworkers ? nworkers : 1, sizeof(*live_beats));
	if (!live_beats)
		return -1;
	uint64_t now = live_now_ms();
	for (unsigned i = 0; i < nworkers; i++)
		atomic_store(&live_beats[i], now);
	live_nworkers = nworkers;
	return 0;
}

void live_set_serving(void)
{
	atomic_store(&live_phase_now, LIVE_SERVING);
}

void live_set_draining(void)
{
	atomic_store(&live_phase_now, LIVE_DRAINING);
}

void live_set_standby(bool on)
{
	atomic_store(&live_standby_on, on);
}

bool live_standby(void)
{
	return atomic_load(&live_standby_on);
}

void live_beat(unsigned id)
{
	if (live_beats && id < live_nworkers)
		atomic_store_explicit(&live_beats[id], live_now_ms(), memory_order_relaxed);
}

bool live_check(uint64_t now_ms, char *why, size_t whylen)
{
	int phase = atomic_load(&live_phase_now);
	if (phase == LIVE_STARTING) {
		snprintf(why, whylen, "starting: the listeners are not all serving yet");
		return false;
	}
	if (phase == LIVE_DRAINING) {
		snprintf(why, whylen, "draining after a stop signal: no new connections are taken");
		return false;
	}
	if (atomic_load(&live_standby_on)) {
		snprintf(why, whylen, "standby: an admin took this gateway out (POST /api/health/active brings it back)");
		return false;
	}
	for (unsigned i = 0; i < live_nworkers; i++) {
		uint64_t last = atomic_load_explicit(&live_beats[i], memory_order_relaxed);
		if (now_ms > last && now_ms - last > LIVE_STALE_MS) {
			snprintf(why, whylen, "worker %u has not run its event loop for %llu ms", i,
			         (unsigned long long)(now_ms - last));
			return false;
		}
	}
	snprintf(why, whylen, "serving with %u workers", live_nworkers);
	return true;
}

void live_stop(void)
{
	free(live_beats);
	live_beats = NULL;
	live_nworkers = 0;
	atomic_store(&live_phase_now, LIVE_STARTING);
	atomic_store(&live_standby_on, false);
}
