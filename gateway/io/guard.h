/*
 * guard.h - the re-entrancy guard of an object whose owner may free it from
 * inside the object's own callbacks (sock.c, tstream.c): a free while
 * callbacks run only marks it, and the last callback to return releases it.
 *
 *   guard_enter(&g); ...callbacks...; if (guard_leave(&g)) release(obj);
 *   obj_free(): if (guard_free(&g)) release(obj);   (else it is released later)
 *   guard_freed(&g): the owner freed it; touch nothing but the release.
 *
 * One thread: the object's. Inline, so the data path pays two increments.
 */
#ifndef ONEGATE_GUARD_H
#define ONEGATE_GUARD_H

#include <stdbool.h>

struct guard {
	int busy;                       /* callbacks running */
	bool freed;                     /* the owner freed the object while they ran */
};

static inline void guard_enter(struct guard *g)
{
	g->busy++;
}

/* True when the object was freed inside the callbacks and this was the last
 * of them: the caller releases it now. */
static inline bool guard_leave(struct guard *g)
{
	return --g->busy == 0 && g->freed;
}

/* True when the object may be released now; false: callbacks run, the last
 * guard_leave() says when. */
static inline bool guard_free(struct guard *g)
{
	if (g->busy) {
		g->freed = true;
		return false;
	}
	return true;
}

static inline bool guard_freed(const struct guard *g)
{
	return g->freed;
}

#endif
