/*
 * h2mem.h - nghttp2's memory for one HTTP/2 connection (h2.c): small blocks
 * kept on the connection's free lists by size, so that what nghttp2 allocates
 * for each stream (its stream, its frames, copies of the answer's fields) is
 * not taken from malloc and given back every time. Blocks past 1 KiB (HPACK
 * tables, buffers) go to malloc as before. Nothing is shared between
 * connections; h2mem_trim() gives back what the lists hold.
 */
#ifndef ONEGATE_H2MEM_H
#define ONEGATE_H2MEM_H

#include <nghttp2/nghttp2.h>

struct h2mem;

/* NULL without memory. */
struct h2mem *h2mem_new(void);
/* After the nghttp2 session that used it is gone. */
void h2mem_free(struct h2mem *m);
void h2mem_trim(struct h2mem *m);
/* The allocator to give nghttp2_session_server_new3(); valid while m is. */
nghttp2_mem *h2mem_nghttp2(struct h2mem *m);

#endif
