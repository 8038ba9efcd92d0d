/*
 * admin_wait.h - POST /api/reload: the request starts a reload (SIGHUP to the
 * daemon, the same all-or-nothing reload as an admin's kill -HUP) and waits,
 * up to ADMIN_RELOAD_WAIT_S, for the outcome of a reload that began after it;
 * the answer is the verdict and its FILE:LINE messages, as JSON or as lines.
 * Control thread only.
 */
#ifndef ONEGATE_ADMIN_WAIT_H
#define ONEGATE_ADMIN_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "control/admin.h"

struct event_base;
struct evhttp_request;
struct admin_waits;

/* The requests waiting on base; reloads_begun(arg) says how many reloads the
 * daemon has begun. NULL when out of memory. */
struct admin_waits *admin_wait_new(struct event_base *base, admin_reloads_fn reloads_begun, void *arg);
/* req waits for the next reload, which this asks for. */
void admin_wait_add(struct admin_waits *ws, struct evhttp_request *req);
/* Reload seq ended: every request waiting for it or an earlier one is answered. */
void admin_wait_done(struct admin_waits *ws, uint64_t seq, bool applied, const char *text);
/* Answers every request still waiting (503) and frees ws. */
void admin_wait_free(struct admin_waits *ws);

#endif
