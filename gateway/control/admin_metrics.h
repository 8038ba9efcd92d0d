/*
 * admin_metrics.h - Prometheus metrics (GET /metrics): version, uptime, each
 * server's state and counters, each pool's latency histogram, certificate
 * expiry. Control thread only.
 */
#ifndef ONEGATE_ADMIN_METRICS_H
#define ONEGATE_ADMIN_METRICS_H

#include <time.h>

struct evbuffer;
struct pool_table;

/* started: when the gateway started, for its uptime. */
void admin_metrics(const struct pool_table *t, time_t started, struct evbuffer *b);

#endif
