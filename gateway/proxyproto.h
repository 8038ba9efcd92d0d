/*
 * proxyproto.h - the PROXY protocol (v1 text, v2 binary): reading the header a
 * trusted L4 balancer puts in front of a connection, and writing one to a back end.
 *
 * Pure functions over bytes: no sockets, no allocation.
 */
#ifndef ONEGATE_PROXYPROTO_H
#define ONEGATE_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest header either version may carry that we accept (v1: 107 bytes; v2: 16 + TLVs). */
#define PP_MAX_HEADER 536

enum pp_status {
	PP_NEED_MORE,   /* not enough bytes yet to decide */
	PP_OK,          /* header complete; pp_info filled */
	PP_INVALID,     /* garbage, wrong signature, bad addresses or too long */
};

struct pp_info {
	int version;                    /* 1 or 2 */
	bool local;                     /* v2 LOCAL or v1 UNKNOWN: keep the real peer address */
	struct sockaddr_storage src, dst;
	socklen_t srclen, dstlen;       /* 0 when local */
	size_t header_len;              /* bytes the header occupies; the payload follows */
};

/* Parses the start of buf (len bytes so far). Re-parsing the whole prefix on each
 * call is intended: the header is at most PP_MAX_HEADER bytes. */
enum pp_status pp_parse(const uint8_t *buf, size_t len, struct pp_info *out);

/* Writes a header for a connection from src to dst into out (cap bytes).
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are written as IPv4, never as
 * "TCP6 ::ffff:...". Returns the header length, or -1 if cap is too small or
 * the address families are unsupported. */
int pp_write_v1(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap);
int pp_write_v2(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
