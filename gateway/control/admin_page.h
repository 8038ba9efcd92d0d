/*
 * admin_page.h - the status page (GET /): one self-contained HTML document
 * (no script, no outside asset) that refreshes itself every 5 s: services,
 * pools and servers with the last minute's numbers and a 10-minute chart,
 * certificates. Control thread only.
 */
#ifndef ONEGATE_ADMIN_PAGE_H
#define ONEGATE_ADMIN_PAGE_H

#include <time.h>

struct evbuffer;
struct pool_table;

/* started: when the gateway started, for its uptime. */
void admin_page(const struct pool_table *t, time_t started, struct evbuffer *b);

#endif
