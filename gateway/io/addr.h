/*
 * addr.h - socket address helpers shared by the daemon and its workers.
 */
#ifndef ONEGATE_ADDR_H
#define ONEGATE_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "rules.h"

/* Same family, address and port (what a listening socket is bound to). */
static inline bool addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* Rewrites the port of an IPv4 or IPv6 address (a route's back-end port). */
static inline void addr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons(port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(port);
}

/* "ip:port" ("[v6]:port") into out, and the bare address into ip when given. */
static inline void addr_text(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t cap, char *ip,
                             size_t ipcap)
{
	char host[INET6_ADDRSTRLEN] = "-";
	if (len == 0 || (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)) {
		snprintf(out, cap, "-");
		if (ip)
			snprintf(ip, ipcap, "-");
		return;
	}
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "[%s]:%u", host, ntohs(sin6->sin6_port));
	}
	if (ip)
		snprintf(ip, ipcap, "%s", host);
}

/* The service of cfg that listens on ss, or -1. */
static inline long addr_find_service(const struct rules_config *cfg, const struct sockaddr_storage *ss)
{
	for (size_t s = 0; s < cfg->nservices; s++)
		for (size_t a = 0; a < cfg->services[s].nlisten; a++)
			if (addr_same(&cfg->services[s].listen[a].ss, ss))
				return (long)s;
	return -1;
}

#endif
