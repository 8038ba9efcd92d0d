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

/* What a v2 header may say of the client connection besides its addresses
 * (type-length-value fields). Any member may be NULL or empty: not written. */
struct pp_tlvs {
	const char *alpn;               /* the protocol the client's TLS negotiated (PP2_TYPE_ALPN) */
	const char *authority;          /* the host name the client asked for, its SNI (PP2_TYPE_AUTHORITY) */
	const char *tls_version;        /* the client's TLS version, "TLSv1.3", when its TLS ended here
	                                 * (PP2_TYPE_SSL with PP2_SUBTYPE_SSL_VERSION) */
};
/* pp_write_v2 with those fields after the addresses; the whole header fits
 * PP_MAX_HEADER when each string is a host name or shorter. */
int pp_write_v2_tlvs(const struct sockaddr *src, const struct sockaddr *dst, const struct pp_tlvs *t,
                     uint8_t *out, size_t cap);
/* A header that names no client, for a connection of the gateway's own (a
 * health check): v2 LOCAL, or v1 "PROXY UNKNOWN". The back end then keeps the
 * connection's real addresses. Returns the length, or -1. */
int pp_write_local(int version, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
