/* admin.h's command-line side: one request to the admin listener, the answer's body printed. */
#include "control/admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>

static int admin_client_send(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int admin_client(const struct rules_admin *a, const char *method, const char *path, FILE *out, char *err,
                 size_t errlen)
{
	char token[ADMIN_TOKEN_MAX] = "", req[1024];
	if (!a->on) {
		snprintf(err, errlen, "the rule file has no admin listener; add onegate = { admin = { listen = \"127.0.0.1:8404\"; }; };");
		return -1;
	}
	if (a->token_file && admin_token_read(a->token_file, token, sizeof(token), err, errlen) != 0)
		return -1;
	int fd = socket(a->listen.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Longer than a reload's wait on the other side, which then answers on its own. */
	struct timeval tv = { ADMIN_RELOAD_WAIT_S + 5, 0 };
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (const struct sockaddr *)&a->listen.ss, a->listen.len) != 0) {
		snprintf(err, errlen, "cannot reach the admin listener on %s: %s (is onegate running with this rule file?)",
		         a->listen.text, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int n = snprintf(req, sizeof(req),
	                 "%s %s HTTP/1.1\r\nHost: %s\r\nAccept: text/plain, application/json;q=0.5\r\n%s%s%s"
	                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
	                 method, path, a->listen.text, token[0] ? "Authorization: Bearer " : "", token, token[0] ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req) || admin_client_send(fd, req, (size_t)n) != 0) {
		snprintf(err, errlen, "cannot send to the admin listener on %s: %s", a->listen.text, strerror(errno));
		close(fd);
		return -1;
	}
	struct evbuffer *in = evbuffer_new();
	int status = -1;
	while (in) {
		int r = evbuffer_read(in, fd, 65536);
		if (r <= 0)
			break;
	}
	close(fd);
	/* Terminated, so the head can be searched as a string. */
	if (in && evbuffer_add(in, "", 1) != 0) {
		evbuffer_free(in);
		in = NULL;
	}
	size_t len = in ? evbuffer_get_length(in) - 1 : 0;
	const char *all = len ? (const char *)evbuffer_pullup(in, -1) : NULL;
	const char *body = all ? strstr(all, "\r\n\r\n") : NULL;
	if (!body || sscanf(all, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(err, errlen, "the admin listener on %s gave no answer", a->listen.text);
		status = -1;
	} else {
		body += 4;
		fwrite(body, 1, len - (size_t)(body - all), out);
	}
	if (in)
		evbuffer_free(in);
	return status;
}
