#include "acme/acme_https.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proto/h1.h"

#define ACME_HTTPS_BODY_MAX (1024 * 1024)

void acme_resp_clear(struct acme_resp *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

__attribute__((format(printf, 3, 4)))
static int acme_https_fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

int acme_url_split(const char *url, char *host, size_t hcap, char *port, size_t pcap, const char **path)
{
	if (strncmp(url, "https://", 8) != 0)
		return -1;
	const char *h = url + 8, *end = h + strcspn(h, "/"), *colon = NULL;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (!rb)
			return -1;
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if ((size_t)(rb - h - 1) >= hcap)
			return -1;
		memcpy(host, h + 1, (size_t)(rb - h - 1));
		host[rb - h - 1] = '\0';
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		const char *he = colon ? colon : end;
		if ((size_t)(he - h) >= hcap || he == h)
			return -1;
		memcpy(host, h, (size_t)(he - h));
		host[he - h] = '\0';
	}
	if (colon) {
		if ((size_t)(end - colon - 1) >= pcap || end == colon + 1)
			return -1;
		memcpy(port, colon + 1, (size_t)(end - colon - 1));
		port[end - colon - 1] = '\0';
	} else {
		snprintf(port, pcap, "443");
	}
	*path = *end ? end : "/";
	return 0;
}

static int acme_connect(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	int fd = -1;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		struct timeval tv = { ACME_HTTPS_TIMEOUT_S, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

static void acme_header_copy(const char *buf, const struct h1_header *h, char *out, size_t cap)
{
	size_t n = h->value.len < cap - 1 ? h->value.len : cap - 1;
	memcpy(out, buf + h->value.off, n);
	out[n] = '\0';
}

/* One request on a connection of its own (HTTP/1.0: the answer ends at close,
 * never chunked). The CA's certificate is verified for its host name. */
int acme_https(const char *ca_file, const char *method, const char *url, const char *body, struct acme_resp *r,
               char *err, size_t errcap)
{
	memset(r, 0, sizeof(*r));
	char host[256], port[16];
	const char *path;
	if (acme_url_split(url, host, sizeof(host), port, sizeof(port), &path) != 0)
		return acme_https_fail(err, errcap, "not an https URL: %.200s", url);
	const char *ca = ca_file ? ca_file : "/etc/ssl/certs/ca-certificates.crt";
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	SSL *ssl = NULL;
	int fd = -1, rc = -1;
	size_t len = 0, cap = 16384;
	if (!ctx || !(r->buf = malloc(cap))) {
		acme_https_fail(err, errcap, "out of memory");
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (!SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
		acme_https_fail(err, errcap, "cannot load trusted roots from %s", ca);
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((fd = acme_connect(host, port)) < 0) {
		acme_https_fail(err, errcap, "cannot connect to %s port %s: %s", host, port, strerror(errno ? errno : ECONNREFUSED));
		goto out;
	}
	if (!(ssl = SSL_new(ctx)) || !SSL_set_fd(ssl, fd)) {
		acme_https_fail(err, errcap, "out of memory");
		goto out;
	}
	struct in6_addr a6;
	bool literal = inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
	if (literal)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else {
		SSL_set_tlsext_host_name(ssl, host);
		X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), host, strlen(host));
	}
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);
		acme_https_fail(err, errcap, "TLS to %s:%s failed: %s", host, port,
		          v != X509_V_OK ? X509_verify_cert_error_string(v) : "handshake error");
		goto out;
	}
	/* The CA builds its URLs from Host: the port goes with it. */
	char hosthdr[300];
	bool v6 = strchr(host, ':') != NULL;
	if (strcmp(port, "443") == 0)
		snprintf(hosthdr, sizeof(hosthdr), v6 ? "[%s]" : "%s", host);
	else
		snprintf(hosthdr, sizeof(hosthdr), v6 ? "[%s]:%s" : "%s:%s", host, port);
	char head[2048];
	size_t blen = body ? strlen(body) : 0;
	int hn = body ? snprintf(head, sizeof(head),
	                         "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: onegate/" ONEGATE_VERSION "\r\nAccept: */*\r\n"
	                         "Content-Type: application/jose+json\r\nContent-Length: %zu\r\n\r\n",
	                         method, path, hosthdr, blen)
	              : snprintf(head, sizeof(head),
	                         "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: onegate/" ONEGATE_VERSION "\r\nAccept: */*\r\n\r\n",
	                         method, path, hosthdr);
	if (hn <= 0 || (size_t)hn >= sizeof(head)) {
		acme_https_fail(err, errcap, "URL too long: %.200s", url);
		goto out;
	}
	if (SSL_write(ssl, head, hn) != hn || (blen && SSL_write(ssl, body, (int)blen) != (int)blen)) {
		acme_https_fail(err, errcap, "cannot send to %s:%s", host, port);
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= ACME_HTTPS_BODY_MAX) {
				acme_https_fail(err, errcap, "the answer from %s is larger than %d bytes", host, ACME_HTTPS_BODY_MAX);
				goto out;
			}
			char *nb = realloc(r->buf, cap * 2);
			if (!nb) {
				acme_https_fail(err, errcap, "out of memory");
				goto out;
			}
			r->buf = nb;
			cap *= 2;
		}
		int n = SSL_read(ssl, r->buf + len, (int)(cap - len));
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	struct h1_msg m;
	h1_resp_init(&m, H1_HEAD_LIMIT, strcmp(method, "HEAD") == 0);
	if (h1_parse(&m, r->buf, len) != H1_DONE) {
		acme_https_fail(err, errcap, "no HTTP answer from %s:%s", host, port);
		goto out;
	}
	r->status = m.status;
	r->body = r->buf + m.head_len;
	r->body_len = len - m.head_len;
	if (m.has_content_length && m.content_length < r->body_len)
		r->body_len = (size_t)m.content_length;
	for (size_t i = 0; i < m.nheaders; i++) {
		const struct h1_header *h = &m.headers[i];
		const char *name = r->buf + h->name.off;
		if (h->name.len == 12 && strncasecmp(name, "Replay-Nonce", 12) == 0)
			acme_header_copy(r->buf, h, r->nonce, sizeof(r->nonce));
		else if (h->name.len == 8 && strncasecmp(name, "Location", 8) == 0)
			acme_header_copy(r->buf, h, r->location, sizeof(r->location));
		else if (h->name.len == 11 && strncasecmp(name, "Retry-After", 11) == 0) {
			char v[32];
			acme_header_copy(r->buf, h, v, sizeof(v));
			r->retry_after = strtol(v, NULL, 10);
		}
	}
	rc = 0;
out:
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	if (rc != 0)
		acme_resp_clear(r);
	return rc;
}

