/*
 * hello.h - incremental TLS ClientHello reader (the SNI peek).
 *
 * Bytes are fed as they arrive, in pieces of any size (one byte at a time is
 * fine); the reader keeps a small state machine and looks at a byte at most
 * twice (a hello whole in the first piece is read straight from it, or else by
 * the fields), so a client dripping bytes cannot make it quadratic. It never consumes the
 * caller's buffer: the caller keeps the bytes and replays them to the back end.
 * Handles a ClientHello spread over several TLS records, GREASE values, no SNI,
 * SSLv2-style hellos (reported as HELLO_DONE without SNI) and non-TLS bytes.
 * Malformed, so never routed: two host names (a back end might serve the one we
 * did not route on) and a record that goes on past the ClientHello (no TLS
 * server answers it; the connection would sit at the back end).
 */
#ifndef ONEGATE_HELLO_H
#define ONEGATE_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HELLO_MAX_NAME 255
/* A ClientHello larger than this is refused (real ones, post-quantum key shares
 * included, are far below it). */
#define HELLO_MAX_BYTES (64 * 1024)

enum hello_status {
	HELLO_NEED_MORE,        /* feed more bytes */
	HELLO_DONE,             /* the ClientHello is complete (SNI or not) */
	HELLO_NOT_TLS,          /* the first bytes are not a TLS handshake record */
	HELLO_MALFORMED,        /* a TLS record, but the ClientHello is broken or too large */
};

struct hello_reader {
	/* private state; initialise with hello_reader_init() */
	uint8_t rstate;         /* record layer: header or payload */
	uint8_t mstate;         /* handshake message field being read */
	uint8_t hdr_len;        /* record header bytes collected */
	uint8_t name_type;      /* server_name entry type being read */
	uint8_t hdr[5];
	bool first_record_done;
	bool sni_seen;          /* a server_name extension was present */
	uint32_t rec_left;      /* payload bytes left in the current record */
	uint32_t need;          /* bytes left in the current field */
	uint32_t acc;           /* number field accumulator */
	uint32_t msg_left;      /* ClientHello body bytes left */
	uint32_t exts_left;     /* extensions block bytes left */
	uint32_t ext_left;      /* current extension's data bytes left */
	uint8_t alpn_len;       /* the ALPN protocol name being read */
	bool alpn_same;         /* so far it is acme-tls/1 */
	enum hello_status status;
	/* results */
	bool has_sni;
	bool sslv2;
	uint16_t legacy_version;
	uint16_t sni_len;
	bool alpn_acme;         /* ALPN offers acme-tls/1 (RFC 8737 TLS-ALPN-01 validation) */
	char sni[HELLO_MAX_NAME + 1];   /* lower-cased, NUL-terminated, trailing dot removed */
	const char *error;      /* static reason for HELLO_NOT_TLS / HELLO_MALFORMED */
};

void hello_reader_init(struct hello_reader *r);
/* Feeds the next n bytes; returns the status after them. Once DONE, NOT_TLS or
 * MALFORMED is returned, further calls return the same status. */
enum hello_status hello_reader_feed(struct hello_reader *r, const uint8_t *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif
