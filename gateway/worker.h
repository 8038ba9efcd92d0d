/*
 * worker.h - one thread, one event_base, its own SO_REUSEPORT listening
 * sockets and the connections they accept. Nothing on the data path is shared
 * with another worker; the daemon talks to a worker only through
 * worker_stop()/worker_kill(), which are safe from any thread.
 */
#ifndef ONEGATE_WORKER_H
#define ONEGATE_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "rules.h"

struct worker;

struct worker *worker_new(unsigned id, struct rules_config *cfg);
/* Adds an already bound and listening socket for service svc_index; takes fd. */
int worker_add_listener(struct worker *w, int fd, size_t svc_index);
int worker_start(struct worker *w);
/* Stop accepting; the thread ends once its last connection has closed. */
void worker_stop(struct worker *w);
/* Close every connection now and end the thread. */
void worker_kill(struct worker *w);
/* True once the thread has left its loop (safe from any thread). */
bool worker_finished(const struct worker *w);
/* Joins the thread (if started) and frees everything. */
void worker_free(struct worker *w);

#endif
