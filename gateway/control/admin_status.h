/*
 * admin_status.h - the gateway's state as JSON (GET /api/status) and as the
 * terminal table `onegate status` prints (GET /api/status.txt): services,
 * pools, servers, the last minute's numbers, certificates. Control thread only.
 */
#ifndef ONEGATE_ADMIN_STATUS_H
#define ONEGATE_ADMIN_STATUS_H

#include <time.h>

struct evbuffer;
struct pool_table;

/* started: when the gateway started, for its uptime. */
void admin_status_json(const struct pool_table *t, time_t started, struct evbuffer *b);
void admin_status_text(const struct pool_table *t, time_t started, struct evbuffer *b);

#endif
