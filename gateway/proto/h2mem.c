#include "proto/h2mem.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Blocks by steps of 64 bytes up to 1 KiB, each headed by its class; at most
 * this many of a class kept on its list. */
#define H2MEM_STEP 64
#define H2MEM_CLASSES 16
#define H2MEM_KEPT 16
#define H2MEM_LARGE UINT32_MAX          /* the class of a block from malloc alone */

/* Before each block; 16 bytes, so what follows is aligned as malloc's. */
struct h2mem_head {
	_Alignas(16) uint32_t cls;
	struct h2mem_head *next;        /* on a free list */
};

struct h2mem {
	nghttp2_mem mem;
	struct h2mem_head *free[H2MEM_CLASSES];
	unsigned nfree[H2MEM_CLASSES];
};

static size_t h2mem_usable(uint32_t cls)
{
	return (size_t)(cls + 1) * H2MEM_STEP - sizeof(struct h2mem_head);
}

static void *h2mem_malloc(size_t size, void *arg)
{
	struct h2mem *m = arg;
	size_t total = size + sizeof(struct h2mem_head);
	struct h2mem_head *b;
	if (size > SIZE_MAX - sizeof(struct h2mem_head) || total > (size_t)H2MEM_CLASSES * H2MEM_STEP) {
		if (size > SIZE_MAX - sizeof(struct h2mem_head) || !(b = malloc(total)))
			return NULL;
		b->cls = H2MEM_LARGE;
		return b + 1;
	}
	uint32_t cls = (uint32_t)((total - 1) / H2MEM_STEP);
	if ((b = m->free[cls])) {
		m->free[cls] = b->next;
		m->nfree[cls]--;
	} else if (!(b = malloc((size_t)(cls + 1) * H2MEM_STEP))) {
		return NULL;
	}
	b->cls = cls;
	return b + 1;
}

static void h2mem_release(void *ptr, void *arg)
{
	struct h2mem *m = arg;
	if (!ptr)
		return;
	struct h2mem_head *b = (struct h2mem_head *)ptr - 1;
	uint32_t cls = b->cls;
	if (cls == H2MEM_LARGE || m->nfree[cls] == H2MEM_KEPT) {
		free(b);
		return;
	}
	b->next = m->free[cls];
	m->free[cls] = b;
	m->nfree[cls]++;
}

static void *h2mem_calloc(size_t n, size_t size, void *arg)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = h2mem_malloc(n * size, arg);
	if (p)
		memset(p, 0, n * size);
	return p;
}

static void *h2mem_realloc(void *ptr, size_t size, void *arg)
{
	if (!ptr)
		return h2mem_malloc(size, arg);
	struct h2mem_head *b = (struct h2mem_head *)ptr - 1;
	if (b->cls == H2MEM_LARGE) {
		if (size > SIZE_MAX - sizeof(struct h2mem_head) || !(b = realloc(b, size + sizeof(struct h2mem_head))))
			return NULL;
		return b + 1;
	}
	size_t had = h2mem_usable(b->cls);
	if (size <= had)
		return ptr;
	void *p = h2mem_malloc(size, arg);
	if (p) {
		memcpy(p, ptr, had);
		h2mem_release(ptr, arg);
	}
	return p;
}

struct h2mem *h2mem_new(void)
{
	struct h2mem *m = calloc(1, sizeof(*m));
	if (m)
		m->mem = (nghttp2_mem){ m, h2mem_malloc, h2mem_release, h2mem_calloc, h2mem_realloc };
	return m;
}

void h2mem_trim(struct h2mem *m)
{
	for (size_t i = 0; i < H2MEM_CLASSES; i++) {
		while (m->free[i]) {
			struct h2mem_head *b = m->free[i];
			m->free[i] = b->next;
			free(b);
		}
		m->nfree[i] = 0;
	}
}

void h2mem_free(struct h2mem *m)
{
	if (!m)
		return;
	h2mem_trim(m);
	free(m);
}

nghttp2_mem *h2mem_nghttp2(struct h2mem *m)
{
	return &m->mem;
}
