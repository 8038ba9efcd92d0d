/*
 * io/keep.h - objects of one kind that ended, kept per thread for the next ones.
 *
 * Allocating a socket's, a stream's or a session's memory afresh costs more than
 * reusing one that just ended (glibc serves those sizes from its sorted bins):
 * each kind keeps a thread-local list of them, up to its bound. A kind names its
 * bound, where an object's link is, and how an object is freed. Objects kept are
 * out of every loop (their events not pending), so they are freed without one:
 * when the thread ends, or at once by keep_drop_all() (a worker gone quiet gives
 * their memory back).
 *
 * Use: static const struct keep_kind kind = { .max = N, .link = offsetof(...),
 * .free = fn }; static _Thread_local struct keep_list list = { .kind = &kind };
 */
#ifndef ONEGATE_IO_KEEP_H
#define ONEGATE_IO_KEEP_H

#include <stdbool.h>
#include <stddef.h>

struct keep_kind {
	unsigned max;                   /* objects kept at most */
	size_t link;                    /* offsetof the object's `void *` link */
	void (*free)(void *obj);        /* frees one kept object (keep_drop_all, thread end) */
};

/* One kind's list in one thread: _Thread_local, with .kind set, nothing else. */
struct keep_list {
	const struct keep_kind *kind;
	void *head;
	unsigned n;
	bool joined;                    /* in this thread's lists (keep_drop_all) */
	struct keep_list *next_list;
};

/* The object kept last, or NULL when none is: the caller resets it for its new use. */
void *keep_take(struct keep_list *l);
/* For kinds with nothing to carry over: the object kept last, zeroed, or else a
 * new zeroed one of size bytes; NULL when out of memory. */
void *keep_take_zeroed(struct keep_list *l, size_t size);
/* Keeps obj for the next take; false when the list is full (or the thread's lists
 * cannot be registered for its end): obj is then the caller's to free. */
bool keep_give(struct keep_list *l, void *obj);
/* Frees every object this thread keeps, of every kind. */
void keep_drop_all(void);

#endif
