/*
 * health.h - active health checks: for every server of every pool that asks
 * for them, a TCP connect or an HTTP(S) request every interval, each result
 * handed to the pool table (pool_health_result), which applies rise and fall.
 *
 * Runs on the control thread's event_base, never on a worker's: a slow or
 * silent server delays nothing but its own check.
 */
#ifndef ONEGATE_HEALTH_H
#define ONEGATE_HEALTH_H

struct event_base;
struct pool_table;
struct tlsconf;

struct health;

struct health *health_new(struct event_base *base);
/* Checks the servers of this table from now on (the checks of the previous
 * one stop). Takes references to t and tls. Returns -1 when out of memory. */
int health_set(struct health *h, struct pool_table *t, struct tlsconf *tls);
void health_free(struct health *h);

#endif
