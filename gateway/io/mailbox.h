/*
 * mailbox.h - how other threads hand work to the thread of one event loop
 * (a worker's, the control thread's): an eventfd doorbell the loop watches,
 * and the lock around what the owner keeps pending for that thread.
 *
 * The pending state itself is the owner's (each owner's has its own type);
 * the mailbox is the one mechanism: a sender takes the lock, sets the
 * owner's pending state, lets go and rings; on the loop's thread on_ring runs
 * (once for any number of rings), takes the lock and takes the state.
 * mailbox_lock/unlock/ring may be called from any thread; mailbox_new and
 * mailbox_free by the owner while the loop does not run.
 */
#ifndef ONEGATE_MAILBOX_H
#define ONEGATE_MAILBOX_H

struct event_base;
struct mailbox;

/* NULL when the eventfd, the event or the memory cannot be had. */
struct mailbox *mailbox_new(struct event_base *base, void (*on_ring)(void *arg), void *arg);
void mailbox_free(struct mailbox *m);

void mailbox_lock(struct mailbox *m);
void mailbox_unlock(struct mailbox *m);
void mailbox_ring(struct mailbox *m);

#endif
