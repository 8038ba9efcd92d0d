/*
 * live.h - whether this gateway is fit to hold a floating address: the facts
 * GET /api/health answers from, for keepalived's track_script or any other
 * engine that moves an address between identical gateways.
 *
 * Healthy means: the daemon is serving (started, every listener bound, not
 * draining after a stop signal), every worker's event loop has turned within
 * LIVE_STALE_MS, and no admin has put the gateway in standby. A rule file that
 * fails to load at start never gets this far: the process exits and the
 * health request is refused.
 *
 * Process-wide state, like the log: workers beat, the daemon sets serving and
 * draining, the admin listener sets standby and asks live_check(). Every call
 * is safe from any thread; a beat is one atomic store.
 */
#ifndef ONEGATE_LIVE_H
#define ONEGATE_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A worker whose loop has not turned for this long is stuck. */
#define LIVE_STALE_MS 3000
/* How often a worker beats: well inside LIVE_STALE_MS. */
#define LIVE_BEAT_MS 500

/* The daemon, before the workers start: nworkers beat from now on (each
 * counts as fresh until LIVE_STALE_MS passes without its beat). -1 when out of memory. */
int live_start(unsigned nworkers);
/* Every listener is bound and every worker runs. */
void live_set_serving(void);
/* A stop signal came: no new connections are taken, so the address should move. */
void live_set_draining(void);
/* An admin's choice: true fails the health check while everything still serves. */
void live_set_standby(bool on);
bool live_standby(void);
/* From worker id's own thread. */
void live_beat(unsigned id);
/* true when healthy; otherwise false and why, in words, in why. now_ms: a
 * CLOCK_MONOTONIC reading in ms (live_now_ms()), passed in so tests can age beats. */
bool live_check(uint64_t now_ms, char *why, size_t whylen);
uint64_t live_now_ms(void);
/* Frees what live_start() took; the state is as before live_start(). */
void live_stop(void);

#endif
