#include "acme/acme_plan.h"

time_t acme_plan_renew(time_t not_before, time_t not_after, time_t win_start, time_t win_end, uint32_t rnd)
{
	if (win_start > 0 && win_start < win_end)
		return win_start + (time_t)(rnd % (uint64_t)(win_end - win_start));
	return not_before + (not_after - not_before) * 2 / 3;
}

long acme_plan_backoff(unsigned failures)
{
	long back = ACME_PLAN_BACKOFF_FIRST;
	for (unsigned i = 1; i < failures && back < ACME_PLAN_BACKOFF_MAX; i++)
		back *= 2;
	return back > ACME_PLAN_BACKOFF_MAX ? ACME_PLAN_BACKOFF_MAX : back;
}

int acme_plan_warn_level(time_t not_after, time_t now)
{
	static const int days[ACME_PLAN_WARN_LEVELS] = { 30, 14, 7 };
	int level = 0;
	for (int k = 0; k < ACME_PLAN_WARN_LEVELS; k++)
		if (not_after - now <= (time_t)days[k] * 86400)
			level = k + 1;
	return level;
}
