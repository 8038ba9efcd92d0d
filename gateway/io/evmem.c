#include "io/evmem.h"

#include <malloc.h>
#include <stdlib.h>

#include <event2/event.h>

#include "io/keep.h"

/* Classes of 1 KiB << k. Chains of the buffers HTTP uses most are 1-4 KiB (heads,
 * 1 KiB answers) and 16 KiB (TLS records); the bounds keep a burst of those and
 * hold under 4 MiB a thread. The 4 KiB class also holds io/sock's read blocks,
 * one per message in flight and one per request under way (its parsed heads), so
 * its bound follows a worker's requests in flight: with HTTP/2 they are hundreds
 * (bench scenario 10's 32 connections of 10 streams went past a bound of 64 in
 * bursts, and took 70% of their blocks from malloc). Larger chains (a relay's
 * 128 KiB) stay glibc's: at that size its own free lists do as well. */
#define EVMEM_MIN_SHIFT 10
#define EVMEM_CLASSES 7
#define EVMEM_MIN ((size_t)1 << EVMEM_MIN_SHIFT)
#define EVMEM_MAX (EVMEM_MIN << (EVMEM_CLASSES - 1))

/* A kept block's first word links it to the next (keep's link at offset 0). */
#define EVMEM_KIND(n) { .max = (n), .link = 0, .free = free }
static const struct keep_kind evmem_kinds[EVMEM_CLASSES] = {
	EVMEM_KIND(128), EVMEM_KIND(128), EVMEM_KIND(512), EVMEM_KIND(32),
	EVMEM_KIND(32), EVMEM_KIND(8), EVMEM_KIND(8),
};
static _Thread_local struct keep_list evmem_lists[EVMEM_CLASSES] = {
	{ .kind = &evmem_kinds[0] }, { .kind = &evmem_kinds[1] }, { .kind = &evmem_kinds[2] },
	{ .kind = &evmem_kinds[3] }, { .kind = &evmem_kinds[4] }, { .kind = &evmem_kinds[5] },
	{ .kind = &evmem_kinds[6] },
};

/* The class whose blocks all hold size bytes: the smallest power of two not under it. */
static unsigned evmem_class_for(size_t size)
{
	unsigned k = 0;
	while ((EVMEM_MIN << k) < size)
		k++;
	return k;
}

void *evmem_malloc(size_t size)
{
	if (size < EVMEM_MIN || size > EVMEM_MAX)
		return malloc(size);
	unsigned k = evmem_class_for(size);
	void *block = keep_take(&evmem_lists[k]);
	return block ? block : malloc(EVMEM_MIN << k);
}

void *evmem_realloc(void *p, size_t size)
{
	return realloc(p, size);
}

void evmem_free(void *p)
{
	if (!p)
		return;
	/* Filed under the largest class it holds: whatever malloc() gave, it serves
	 * every size of that class. */
	size_t usable = malloc_usable_size(p);
	if (usable < EVMEM_MIN || usable >= 2 * EVMEM_MAX) {
		free(p);
		return;
	}
	unsigned k = (unsigned)(63 - __builtin_clzll((unsigned long long)usable)) - EVMEM_MIN_SHIFT;
	if (k >= EVMEM_CLASSES)
		k = EVMEM_CLASSES - 1;
	if (!keep_give(&evmem_lists[k], p))
		free(p);
}

void evmem_free_sized(void *p, size_t size)
{
	if (!p)
		return;
	if (size < EVMEM_MIN || size > EVMEM_MAX || !keep_give(&evmem_lists[evmem_class_for(size)], p))
		free(p);
}

#if defined(__SANITIZE_ADDRESS__)
#define EVMEM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVMEM_SANITIZED 1
#endif
#endif

bool evmem_install(void)
{
#ifdef EVMEM_SANITIZED
	return false;
#else
	event_set_mem_functions(evmem_malloc, evmem_realloc, evmem_free);
	return true;
#endif
}
