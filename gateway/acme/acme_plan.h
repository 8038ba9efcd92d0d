/*
 * acme_plan.h - when the ACME thread acts: the renewal time of a
 * certificate, the pause after failures, the expiry warnings' thresholds.
 *
 * Pure functions of their arguments (no clock, no randomness of their own),
 * so that every choice is unit-tested; acme.c supplies now and the random
 * numbers.
 */
#ifndef ONEGATE_ACME_PLAN_H
#define ONEGATE_ACME_PLAN_H

#include <stdint.h>
#include <time.h>

#define ACME_PLAN_BACKOFF_FIRST 60      /* seconds after a first failure; doubles up to ACME_PLAN_BACKOFF_MAX */
#define ACME_PLAN_BACKOFF_MAX (6 * 3600)

/* When a certificate valid from not_before to not_after is renewed. With the
 * CA's suggested window (RFC 9773 section 4.2: win_start < win_end), a time
 * in it chosen by rnd; without one (both 0, or a window that makes no sense),
 * at two thirds of its lifetime. */
time_t acme_plan_renew(time_t not_before, time_t not_after, time_t win_start, time_t win_end, uint32_t rnd);

/* Seconds to wait after the failures-th failure in a row (1: the first). */
long acme_plan_backoff(unsigned failures);

/* The warnings before expiry: at 30, 14 and 7 days. The level a certificate
 * expiring at not_after has reached at now: 0 (more than 30 days left) to
 * ACME_PLAN_WARN_LEVELS. A warning is due when the level rises. */
#define ACME_PLAN_WARN_LEVELS 3
int acme_plan_warn_level(time_t not_after, time_t now);

#endif
