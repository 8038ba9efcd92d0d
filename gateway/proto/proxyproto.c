#include "proto/proxyproto.h"

#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#define PP_V1_MAX 107   /* the longest v1 line, CRLF included (spec section 2.1) */
#define PP_V2_FIXED 16

static const uint8_t pp_v1_sig[] = "PROXY ";
static const uint8_t pp_v2_sig[12] = { '\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n' };

/* ---------------------------------------------------------------- reading */

/* Parses a decimal port with no sign, no leading zero and no more than 65535. */
static bool pp_port(const char *s, size_t n, uint16_t *out)
{
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static bool pp_addr(int family, const char *s, size_t n, uint16_t port, struct sockaddr_storage *ss,
                    socklen_t *len)
{
	char text[INET6_ADDRSTRLEN];
	if (n == 0 || n >= sizeof(text))
		return false;
	memcpy(text, s, n);
	text[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	*len = sizeof(*sin6);
	return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
}

/* Splits "a b c d" at single spaces into exactly n fields. */
static bool pp_fields(const char *s, size_t len, const char **f, size_t *flen, size_t n)
{
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != ' ')
			continue;
		if (k == n || i == start)
			return false;   /* too many fields, or an empty one (double space) */
		f[k] = s + start;
		flen[k++] = i - start;
		start = i + 1;
	}
	return k == n;
}

static enum pp_status pp_parse_v1(const uint8_t *buf, size_t len, struct pp_info *out)
{
	size_t scan = len < PP_V1_MAX ? len : PP_V1_MAX;
	size_t eol = 0;
	for (size_t i = 0; i < scan; i++) {
		if (buf[i] == '\r') {
			if (i + 1 == len)
				return PP_NEED_MORE;
			if (buf[i + 1] != '\n')
				return PP_INVALID;
			eol = i;
			break;
		}
		if (buf[i] == '\n' || buf[i] == 0)
			return PP_INVALID;
	}
	if (eol == 0)
		return len >= PP_V1_MAX ? PP_INVALID : PP_NEED_MORE;

	const char *line = (const char *)buf + 6;
	size_t n = eol - 6;
	memset(out, 0, sizeof(*out));
	out->version = 1;
	out->header_len = eol + 2;
	if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
		out->local = true;
		return PP_OK;
	}
	const char *f[5];
	size_t fl[5];
	if (!pp_fields(line, n, f, fl, 5) || fl[0] != 4)
		return PP_INVALID;
	int family;
	if (memcmp(f[0], "TCP4", 4) == 0)
		family = AF_INET;
	else if (memcmp(f[0], "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return PP_INVALID;
	uint16_t sport, dport;
	if (!pp_port(f[3], fl[3], &sport) || !pp_port(f[4], fl[4], &dport) ||
	    !pp_addr(family, f[1], fl[1], sport, &out->src, &out->srclen) ||
	    !pp_addr(family, f[2], fl[2], dport, &out->dst, &out->dstlen))
		return PP_INVALID;
	return PP_OK;
}

static enum pp_status pp_parse_v2(const uint8_t *buf, size_t len, struct pp_info *out)
{
	if (len < PP_V2_FIXED)
		return PP_NEED_MORE;
	uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
	uint8_t fam = buf[13] >> 4, proto = buf[13] & 0x0f;
	size_t body = (size_t)buf[14] << 8 | buf[15];
	if (ver != 2 || cmd > 1 || PP_V2_FIXED + body > PP_MAX_HEADER)
		return PP_INVALID;
	if (len < PP_V2_FIXED + body)
		return PP_NEED_MORE;

	memset(out, 0, sizeof(*out));
	out->version = 2;
	out->header_len = PP_V2_FIXED + body;
	if (cmd == 0 || fam == 0) {
		out->local = true;      /* LOCAL, or a balancer that does not know the addresses */
		return PP_OK;
	}
	const uint8_t *a = buf + PP_V2_FIXED;
	if (proto != 1)
		return PP_INVALID;      /* only TCP is relayed */
	if (fam == 1) {
		if (body < 12)
			return PP_INVALID;
		struct sockaddr_in *s = (struct sockaddr_in *)&out->src, *d = (struct sockaddr_in *)&out->dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		out->srclen = out->dstlen = sizeof(struct sockaddr_in);
		return PP_OK;
	}
	if (fam == 2) {
		if (body < 36)
			return PP_INVALID;
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src, *d = (struct sockaddr_in6 *)&out->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		out->srclen = out->dstlen = sizeof(struct sockaddr_in6);
		return PP_OK;
	}
	return PP_INVALID;              /* AF_UNIX and unknown families */
}

enum pp_status pp_parse(const uint8_t *buf, size_t len, struct pp_info *out)
{
	if (len == 0)
		return PP_NEED_MORE;
	/* Decide as soon as the bytes so far cannot begin either signature. */
	if (buf[0] == 'P') {
		size_t k = len < 6 ? len : 6;
		if (memcmp(buf, pp_v1_sig, k) != 0)
			return PP_INVALID;
		return len < 6 ? PP_NEED_MORE : pp_parse_v1(buf, len, out);
	}
	size_t k = len < sizeof(pp_v2_sig) ? len : sizeof(pp_v2_sig);
	if (memcmp(buf, pp_v2_sig, k) != 0)
		return PP_INVALID;
	return len < sizeof(pp_v2_sig) ? PP_NEED_MORE : pp_parse_v2(buf, len, out);
}

/* ---------------------------------------------------------------- writing */

/* The pair as the header will carry it: an IPv4-mapped IPv6 address is
 * written as IPv4 whenever the other side is IPv4 or mapped too, so an IPv4
 * client never appears as "TCP6 ::ffff:a.b.c.d". When one side is real IPv6 and
 * the other IPv4, the IPv4 side is written in its mapped IPv6 form. */
struct pp_pair {
	int family;
	uint8_t src[16], dst[16];
	uint16_t sport, dport;          /* network order */
};

static bool pp_is_mapped(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

static bool pp_side(const struct sockaddr *sa, int family, uint8_t *addr, uint16_t *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		*port = sin->sin_port;
		if (family == AF_INET) {
			memcpy(addr, &sin->sin_addr, 4);
		} else {
			memset(addr, 0, 10);
			addr[10] = addr[11] = 0xff;
			memcpy(addr + 12, &sin->sin_addr, 4);
		}
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		*port = sin6->sin6_port;
		if (family == AF_INET)
			memcpy(addr, sin6->sin6_addr.s6_addr + 12, 4);
		else
			memcpy(addr, &sin6->sin6_addr, 16);
		return true;
	}
	return false;
}

static bool pp_pair(const struct sockaddr *src, const struct sockaddr *dst, struct pp_pair *p)
{
	bool src4 = src->sa_family == AF_INET || pp_is_mapped(src);
	bool dst4 = dst->sa_family == AF_INET || pp_is_mapped(dst);
	p->family = src4 && dst4 ? AF_INET : AF_INET6;
	return pp_side(src, p->family, p->src, &p->sport) && pp_side(dst, p->family, p->dst, &p->dport);
}

int pp_write_v1(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap)
{
	struct pp_pair p;
	if (!pp_pair(src, dst, &p))
		return -1;
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	inet_ntop(p.family, p.src, s, sizeof(s));
	inet_ntop(p.family, p.dst, d, sizeof(d));
	int n = snprintf((char *)out, cap, "PROXY %s %s %s %u %u\r\n", p.family == AF_INET ? "TCP4" : "TCP6",
	                 s, d, ntohs(p.sport), ntohs(p.dport));
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* One TLV at out + *at, when it fits. */
static bool pp_tlv(uint8_t *out, size_t cap, size_t *at, uint8_t type, const uint8_t *v, size_t len)
{
	if (len > 0xffff || cap - *at < 3 + len)
		return false;
	out[*at] = type;
	out[*at + 1] = (uint8_t)(len >> 8);
	out[*at + 2] = (uint8_t)len;
	memcpy(out + *at + 3, v, len);
	*at += 3 + len;
	return true;
}

#define PP2_TYPE_ALPN 0x01
#define PP2_TYPE_AUTHORITY 0x02
#define PP2_TYPE_SSL 0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_CLIENT_SSL 0x01

int pp_write_v2(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out, size_t cap)
{
	return pp_write_v2_tlvs(src, dst, NULL, out, cap);
}

int pp_write_local(int version, uint8_t *out, size_t cap)
{
	if (version == 1) {
		static const char unknown[] = "PROXY UNKNOWN\r\n";
		if (cap < sizeof(unknown) - 1)
			return -1;
		memcpy(out, unknown, sizeof(unknown) - 1);
		return (int)(sizeof(unknown) - 1);
	}
	if (cap < PP_V2_FIXED)
		return -1;
	memcpy(out, pp_v2_sig, sizeof(pp_v2_sig));
	out[12] = 0x20;                                 /* version 2, LOCAL */
	out[13] = 0x00;                                 /* UNSPEC */
	out[14] = out[15] = 0;
	return PP_V2_FIXED;
}

int pp_write_v2_tlvs(const struct sockaddr *src, const struct sockaddr *dst, const struct pp_tlvs *t,
                     uint8_t *out, size_t cap)
{
	struct pp_pair p;
	if (!pp_pair(src, dst, &p))
		return -1;
	size_t alen = p.family == AF_INET ? 4 : 16;
	size_t body = 2 * alen + 4;
	if (cap < PP_V2_FIXED + body)
		return -1;
	size_t at = PP_V2_FIXED + body;
	if (t && t->alpn && *t->alpn &&
	    !pp_tlv(out, cap, &at, PP2_TYPE_ALPN, (const uint8_t *)t->alpn, strlen(t->alpn)))
		return -1;
	if (t && t->authority && *t->authority &&
	    !pp_tlv(out, cap, &at, PP2_TYPE_AUTHORITY, (const uint8_t *)t->authority, strlen(t->authority)))
		return -1;
	if (t && t->tls_version && *t->tls_version) {
		/* client flags, then verify: non-zero, no client certificate was checked */
		uint8_t ssl[5 + 3 + 32] = { PP2_CLIENT_SSL, 0, 0, 0, 1 };
		size_t vlen = strlen(t->tls_version), n = 5;
		if (vlen > 32 || !pp_tlv(ssl, sizeof(ssl), &n, PP2_SUBTYPE_SSL_VERSION, (const uint8_t *)t->tls_version, vlen) ||
		    !pp_tlv(out, cap, &at, PP2_TYPE_SSL, ssl, n))
			return -1;
	}
	body = at - PP_V2_FIXED;
	memcpy(out, pp_v2_sig, sizeof(pp_v2_sig));
	out[12] = 0x21;                                 /* version 2, PROXY */
	out[13] = p.family == AF_INET ? 0x11 : 0x21;    /* INET or INET6, STREAM */
	out[14] = (uint8_t)(body >> 8);
	out[15] = (uint8_t)body;
	uint8_t *a = out + PP_V2_FIXED;
	memcpy(a, p.src, alen);
	memcpy(a + alen, p.dst, alen);
	memcpy(a + 2 * alen, &p.sport, 2);
	memcpy(a + 2 * alen + 2, &p.dport, 2);
	return (int)(PP_V2_FIXED + body);
}
