/*
 * io/evmem.h - libevent's memory: its buffers' blocks kept per thread.
 *
 * An evbuffer frees its chains as soon as it is drained and allocates new ones
 * for the next bytes, in powers of two from 1 KiB. glibc's per-thread cache ends
 * at 1 KiB and its calloc() skips that cache, so each such chain came from the
 * sorted bins: some 300 instructions a chain, malloc and free, three or four
 * chains an HTTP/2 request. evmem gives libevent (event_set_mem_functions) a
 * free that keeps blocks of 1 KiB to 64 KiB per thread by size (io/keep.h), and
 * a malloc that takes from them.
 *
 * Every block is glibc's: a kept block came from malloc() and is found by
 * malloc_usable_size(), so memory libevent hands out (evhttp_uridecode(), say)
 * may still go to free(), and a block from malloc() to libevent's free.
 * Not installed under AddressSanitizer, which must see every free.
 */
#ifndef ONEGATE_IO_EVMEM_H
#define ONEGATE_IO_EVMEM_H

#include <stdbool.h>
#include <stddef.h>

/* Before the process's first libevent call. False when it stays with libevent's
 * own malloc (a sanitizer build). */
bool evmem_install(void);

/* The functions evmem_install() hands to libevent; io/sock takes its read blocks
 * from them too, installed or not. */
void *evmem_malloc(size_t size);
void *evmem_realloc(void *p, size_t size);
void evmem_free(void *p);
/* For a block from evmem_malloc(size) whose size the caller knows: no lookup of it. */
void evmem_free_sized(void *p, size_t size);

#endif
