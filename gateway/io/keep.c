#include "io/keep.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* This thread's lists that have kept something; a key whose value is their head
 * makes its destructor free them when the thread ends. */
static _Thread_local struct keep_list *keep_lists;
static pthread_key_t keep_key;
static pthread_once_t keep_once = PTHREAD_ONCE_INIT;
static bool keep_keyed;

static void **keep_link(const struct keep_list *l, void *obj)
{
	return (void **)((char *)obj + l->kind->link);
}

static void keep_drop(struct keep_list *l)
{
	while (l->head) {
		void *obj = l->head;
		l->head = *keep_link(l, obj);
		l->kind->free(obj);
	}
	l->n = 0;
}

static void keep_thread_end(void *lists)
{
	for (struct keep_list *l = *(struct keep_list **)lists; l; l = l->next_list)
		keep_drop(l);
}

static void keep_key_new(void)
{
	keep_keyed = pthread_key_create(&keep_key, keep_thread_end) == 0;
}

/* The list joins the thread's lists, which the thread's end will free. */
static bool keep_join(struct keep_list *l)
{
	if (!keep_lists) {
		pthread_once(&keep_once, keep_key_new);
		if (!keep_keyed || pthread_setspecific(keep_key, &keep_lists) != 0)
			return false;
	}
	l->next_list = keep_lists;
	keep_lists = l;
	l->joined = true;
	return true;
}

void *keep_take(struct keep_list *l)
{
	void *obj = l->head;
	if (obj) {
		l->head = *keep_link(l, obj);
		l->n--;
	}
	return obj;
}

void *keep_take_zeroed(struct keep_list *l, size_t size)
{
	void *obj = keep_take(l);
	if (!obj)
		return calloc(1, size);
	memset(obj, 0, size);
	return obj;
}

bool keep_give(struct keep_list *l, void *obj)
{
	if (l->n >= l->kind->max || (!l->joined && !keep_join(l)))
		return false;
	*keep_link(l, obj) = l->head;
	l->head = obj;
	l->n++;
	return true;
}

void keep_drop_all(void)
{
	for (struct keep_list *l = keep_lists; l; l = l->next_list)
		keep_drop(l);
}
