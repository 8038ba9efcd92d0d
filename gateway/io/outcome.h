/*
 * outcome.h - how a connection or a request ended: the `outcome=` of every
 * access line, as one enum and one table of name and meaning.
 *
 * The table is the only list: conn.c and http/ pass enum values, the log
 * prints outcome_table[o].name, and docs/architecture.md's outcome table is
 * rendered from it (outcome_test checks the committed doc against it).
 * Read-only data: any thread may read it.
 */
#ifndef ONEGATE_OUTCOME_H
#define ONEGATE_OUTCOME_H

#include <stdbool.h>

enum outcome {
	OUTCOME_OK,
	OUTCOME_REJECT,
	OUTCOME_NOT_TLS,
	OUTCOME_MALFORMED,
	OUTCOME_HELLO_TIMEOUT,
	OUTCOME_PROXY_INVALID,
	OUTCOME_PROXY_TIMEOUT,
	OUTCOME_PROXY_HEADER_FAILED,
	OUTCOME_TLS_SETUP_FAILED,
	OUTCOME_HANDSHAKE_TIMEOUT,
	OUTCOME_KEEPALIVE_TIMEOUT,
	OUTCOME_HEADER_TIMEOUT,
	OUTCOME_BAD_REQUEST,
	OUTCOME_BAD_HOST,
	OUTCOME_BAD_PATH,
	OUTCOME_BAD_CHUNKED_BODY,
	OUTCOME_NO_ROUTE,
	OUTCOME_MISDIRECTED,
	OUTCOME_REDIRECT,
	OUTCOME_REDIRECT_WITHOUT_HOST,
	OUTCOME_STATUS,
	OUTCOME_PLUGIN,
	OUTCOME_ACME_CHALLENGE,
	OUTCOME_NO_SERVER,
	OUTCOME_SERVER_CLOSED,
	OUTCOME_SERVER_RESET,
	OUTCOME_SERVER_STALLED,
	OUTCOME_BAD_RESPONSE,
	OUTCOME_BAD_RESPONSE_BODY,
	OUTCOME_BAD_UPGRADE,
	OUTCOME_BACKEND_TIMEOUT,
	OUTCOME_IDLE_TIMEOUT,
	OUTCOME_CLIENT_CLOSED,
	OUTCOME_CLIENT_ERROR,
	OUTCOME_CLIENT_RESET,
	OUTCOME_CLIENT_STALLED,
	OUTCOME_DRAIN_TIMEOUT,
	OUTCOME_NO_MEMORY,
	OUTCOME_COUNT
};

/* Which access lines may carry an outcome (a bit set). */
enum outcome_line {
	OUTCOME_LINE_TCP = 1,           /* the `conn` line of a connection that never became HTTP (passthrough) */
	OUTCOME_LINE_REQUEST = 2,       /* an `http` line: one request */
	OUTCOME_LINE_SESSION = 4,       /* the `conn` line that ends an HTTP connection */
};

struct outcome_info {
	const char *name;               /* as logged; OUTCOME_PLUGIN logs "plugin:" and the plugin's name */
	unsigned lines;                 /* enum outcome_line bits */
	bool server_fault;              /* the pool's failure, not the client's: counts against the servers */
	const char *meaning;            /* one line for the docs */
};

extern const struct outcome_info outcome_table[OUTCOME_COUNT];

static inline const char *outcome_name(enum outcome o)
{
	return outcome_table[o].name;
}

#endif
