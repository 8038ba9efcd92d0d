/*
 * daemon.h - the running gateway: workers, listeners, signals.
 *
 * daemon_run() takes the caller's reference to a loaded snapshot, binds every
 * listener (so a bad address fails before anything is served), starts the
 * worker threads and blocks until SIGTERM or SIGINT, then stops accepting and
 * lets open connections finish within the drain timeout. Returns an exit code.
 */
#ifndef ONEGATE_DAEMON_H
#define ONEGATE_DAEMON_H

#include "rules.h"

/* Called once every listener is bound, before serving; used by the demo to
 * print its instructions at the right moment. May be NULL. */
typedef void (*daemon_ready_fn)(void *arg);

int daemon_run(struct rules_config *cfg, daemon_ready_fn ready, void *arg);

/* Gives the kernel the free memory the calling thread's malloc arena keeps after a
 * peak (its free top, kept up to the trim threshold for bulk transfers), and the free
 * pages of every arena. For a worker whose connections have all closed: it costs a
 * walk of the heap and page faults when the memory is used again, never on the data path. */
void daemon_heap_give_back(void);

#endif
