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
struct tlsconf;
struct pool_table;

struct worker *worker_new(unsigned id, struct rules_config *cfg, struct tlsconf *tls, struct pool_table *pools);
/* Adds an already bound and listening socket for service svc_index; takes fd. */
int worker_add_listener(struct worker *w, int fd, size_t svc_index);
int worker_start(struct worker *w);
/* Hands the worker a new snapshot (the worker takes a reference) and sockets
 * for listen addresses the new rules add (fds[i] serves service svcs[i]; the
 * worker takes the fds). The worker applies it on its own thread: listeners
 * whose address the new rules no longer have are closed, the others serve the
 * service that now owns their address, and new connections use the new rules
 * while open ones finish on the rules they were accepted under. Safe from any
 * thread; returns -1 (and closes the fds) only when out of memory. */
int worker_reload(struct worker *w, struct rules_config *cfg, struct tlsconf *tls, struct pool_table *pools,
                  const int *fds, const size_t *svcs, size_t n);
/* Stop accepting; the thread ends once its last connection has closed. */
void worker_stop(struct worker *w);
/* Close every connection now and end the thread. */
void worker_kill(struct worker *w);
/* True once the thread has left its loop (safe from any thread). */
bool worker_finished(const struct worker *w);
/* Joins the thread (if started) and frees everything. */
void worker_free(struct worker *w);

#endif
