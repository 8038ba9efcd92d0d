#include "proto/hello.h"

#include <string.h>

/* The largest TLS record payload a client may send (RFC 8446 5.2 allows
 * 2^14 + 256 for protected records; plaintext handshake records stay under 2^14,
 * old stacks sent a little more). */
#define HELLO_MAX_RECORD (16384 + 2048)
#define HELLO_TYPE_HANDSHAKE 0x16
#define HELLO_MSG_CLIENT_HELLO 1
#define HELLO_EXT_SERVER_NAME 0
#define HELLO_EXT_ALPN 16
#define HELLO_NAME_HOST 0

enum { R_HDR, R_BODY };

/* Message fields in wire order. Number fields collect `need` bytes into acc;
 * skip fields jump over `need` bytes; M_NAME copies them. */
enum {
	M_TYPE, M_LEN,
	M_VERSION, M_RANDOM, M_SID_LEN, M_SID, M_CS_LEN, M_CS, M_COMP_LEN, M_COMP,
	M_EXTS_LEN, M_EXT_TYPE, M_EXT_LEN, M_EXT_SKIP,
	M_SNI_LIST_LEN, M_SNI_TYPE, M_SNI_NAME_LEN, M_SNI_NAME, M_SNI_SKIP,
	M_ALPN_LIST_LEN, M_ALPN_LEN, M_ALPN_PROTO,
};

/* The one ALPN protocol looked for: RFC 8737's TLS-ALPN-01 validation. */
static const char hello_acme_tls[] = "acme-tls/1";

static bool hello_is_skip(int st)
{
	return st == M_RANDOM || st == M_SID || st == M_CS || st == M_COMP || st == M_EXT_SKIP ||
	       st == M_SNI_SKIP;
}

static enum hello_status hello_fail(struct hello_reader *r, enum hello_status st, const char *why)
{
	r->status = st;
	r->error = why;
	r->has_sni = false;     /* a name from a broken hello is not one to route on */
	return st;
}

void hello_reader_init(struct hello_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->status = HELLO_NEED_MORE;
	r->rstate = R_HDR;
	r->mstate = M_TYPE;
	r->need = 1;
}

/* Starts the next field, after checking it fits in every enclosing length:
 * the ClientHello body, the extensions block, the current extension. */
static enum hello_status hello_want(struct hello_reader *r, int st, uint32_t need)
{
	if (st >= M_VERSION && need > r->msg_left)
		return hello_fail(r, HELLO_MALFORMED, "a length overruns the ClientHello");
	if (st >= M_EXT_TYPE && need > r->exts_left)
		return hello_fail(r, HELLO_MALFORMED, "an extension overruns the extensions block");
	if (st >= M_EXT_SKIP && need > r->ext_left)
		return hello_fail(r, HELLO_MALFORMED, "a field overruns its extension");
	r->mstate = (uint8_t)st;
	r->need = need;
	r->acc = 0;
	return HELLO_NEED_MORE;
}

static enum hello_status hello_done(struct hello_reader *r)
{
	if (r->msg_left != 0)
		return hello_fail(r, HELLO_MALFORMED, "bytes left over after the extensions");
	r->status = HELLO_DONE;
	return HELLO_DONE;
}

static enum hello_status hello_next_ext(struct hello_reader *r)
{
	if (r->exts_left == 0)
		return hello_done(r);
	return hello_want(r, M_EXT_TYPE, 2);
}

static enum hello_status hello_after_name(struct hello_reader *r)
{
	if (r->ext_left == 0)
		return hello_next_ext(r);
	return hello_want(r, M_SNI_TYPE, 1);
}

static enum hello_status hello_after_protocol(struct hello_reader *r)
{
	if (r->ext_left == 0)
		return hello_next_ext(r);
	return hello_want(r, M_ALPN_LEN, 1);
}

static bool hello_name_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* Copies the n bytes of a server name at p into dst, lower-cased; returns how many of
 * them are name characters (n when all are). */
static size_t hello_name_copy(char *dst, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		if (!hello_name_char(c))
			return i;
		dst[i] = (char)c;
	}
	return n;
}

/* A whole name of *len bytes: its trailing dot goes; false for an empty name or one
 * that starts with a dot. */
static bool hello_name_end(const char *name, uint16_t *len)
{
	if (*len > 1 && name[*len - 1] == '.')
		(*len)--;
	return *len > 0 && name[0] != '.';
}

static enum hello_status hello_name_done(struct hello_reader *r)
{
	if (!hello_name_end(r->sni, &r->sni_len))
		return hello_fail(r, HELLO_MALFORMED, "invalid server name");
	r->sni[r->sni_len] = '\0';
	r->has_sni = true;
	return hello_after_name(r);
}

/* A field has all its bytes: decide what comes next. */
static enum hello_status hello_field_done(struct hello_reader *r)
{
	uint32_t v = r->acc;
	switch (r->mstate) {
	case M_TYPE:
		if (v != HELLO_MSG_CLIENT_HELLO)
			return hello_fail(r, HELLO_MALFORMED, "the first handshake message is not a ClientHello");
		return hello_want(r, M_LEN, 3);
	case M_LEN:
		if (v > HELLO_MAX_BYTES)
			return hello_fail(r, HELLO_MALFORMED, "ClientHello too large");
		r->msg_left = v;
		return hello_want(r, M_VERSION, 2);
	case M_VERSION:
		r->legacy_version = (uint16_t)v;
		return hello_want(r, M_RANDOM, 32);
	case M_RANDOM:
		return hello_want(r, M_SID_LEN, 1);
	case M_SID_LEN:
		if (v > 32)
			return hello_fail(r, HELLO_MALFORMED, "session id longer than 32 bytes");
		return v ? hello_want(r, M_SID, v) : hello_want(r, M_CS_LEN, 2);
	case M_SID:
		return hello_want(r, M_CS_LEN, 2);
	case M_CS_LEN:
		if (v == 0 || v % 2)
			return hello_fail(r, HELLO_MALFORMED, "bad cipher suites length");
		return hello_want(r, M_CS, v);
	case M_CS:
		return hello_want(r, M_COMP_LEN, 1);
	case M_COMP_LEN:
		if (v == 0)
			return hello_fail(r, HELLO_MALFORMED, "no compression methods");
		return hello_want(r, M_COMP, v);
	case M_COMP:
		if (r->msg_left == 0)
			return hello_done(r);
		return hello_want(r, M_EXTS_LEN, 2);
	case M_EXTS_LEN:
		if (v != r->msg_left)
			return hello_fail(r, HELLO_MALFORMED, "extensions length does not match the ClientHello");
		r->exts_left = v;
		return hello_next_ext(r);
	case M_EXT_TYPE:
		/* The type is kept in ext_left's place until the length arrives. */
		r->ext_left = v;
		return hello_want(r, M_EXT_LEN, 2);
	case M_EXT_LEN: {
		uint32_t type = r->ext_left;
		if (v > r->exts_left)
			return hello_fail(r, HELLO_MALFORMED, "an extension overruns the extensions block");
		r->ext_left = v;
		if (type == HELLO_EXT_ALPN && v >= 2)
			return hello_want(r, M_ALPN_LIST_LEN, 2);
		if (type != HELLO_EXT_SERVER_NAME)
			return v ? hello_want(r, M_EXT_SKIP, v) : hello_next_ext(r);
		if (r->sni_seen)
			return hello_fail(r, HELLO_MALFORMED, "two server_name extensions");
		r->sni_seen = true;
		return hello_want(r, M_SNI_LIST_LEN, 2);
	}
	case M_EXT_SKIP:
		return hello_next_ext(r);
	case M_SNI_LIST_LEN:
		if (v != r->ext_left || v == 0)
			return hello_fail(r, HELLO_MALFORMED, "server_name list length does not match its extension");
		return hello_want(r, M_SNI_TYPE, 1);
	case M_SNI_TYPE:
		r->name_type = (uint8_t)v;
		return hello_want(r, M_SNI_NAME_LEN, 2);
	case M_SNI_NAME_LEN:
		if (r->name_type != HELLO_NAME_HOST)
			return v ? hello_want(r, M_SNI_SKIP, v) : hello_after_name(r);
		/* RFC 6066 allows one: we would route on one name and a back end might serve the other. */
		if (r->has_sni)
			return hello_fail(r, HELLO_MALFORMED, "two host names in server_name");
		if (v == 0 || v > HELLO_MAX_NAME)
			return hello_fail(r, HELLO_MALFORMED, "invalid server name");
		return hello_want(r, M_SNI_NAME, v);
	case M_SNI_SKIP:
		return hello_after_name(r);
	case M_ALPN_LIST_LEN:
		if (v != r->ext_left || v == 0)
			return hello_fail(r, HELLO_MALFORMED, "ALPN list length does not match its extension");
		return hello_want(r, M_ALPN_LEN, 1);
	case M_ALPN_LEN:
		if (v == 0)
			return hello_fail(r, HELLO_MALFORMED, "an empty ALPN protocol name");
		r->alpn_len = (uint8_t)v;
		r->alpn_same = v == sizeof(hello_acme_tls) - 1;
		return hello_want(r, M_ALPN_PROTO, v);
	case M_ALPN_PROTO:
		r->alpn_acme |= r->alpn_same;
		return hello_after_protocol(r);
	}
	return hello_fail(r, HELLO_MALFORMED, "internal state");
}

/* An extension that is neither server_name nor ALPN, whole in these n bytes and within
 * both enclosing lengths, is skipped at once: the same checks and counts as its type,
 * length and body fields one by one (hello_field_done()), which most of a hello's
 * twenty-odd extensions went through. Returns false to leave it to the fields. */
static bool hello_skip_ext(struct hello_reader *r, const uint8_t *p, size_t n)
{
	uint32_t type = (uint32_t)p[0] << 8 | p[1];
	uint32_t len = (uint32_t)p[2] << 8 | p[3];
	if (type == HELLO_EXT_SERVER_NAME || (type == HELLO_EXT_ALPN && len >= 2))
		return false;
	if (n < 4 + (size_t)len || r->msg_left < 4 + len || r->exts_left < 4 + len)
		return false;
	r->msg_left -= 4 + len;
	r->exts_left -= 4 + len;
	r->ext_left = 0;
	return true;
}

/* Bytes of the handshake message (record headers already stripped). Returns how many of the
 * n bytes were left when the ClientHello was decided (done or broken). Each field takes as
 * many of its bytes as are there at once: a byte at a time cost ~8 instructions a byte, a
 * tenth of a passthrough connection's user time. */
static size_t hello_msg(struct hello_reader *r, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (r->mstate == M_EXT_TYPE && r->need == 2 && n >= 4 && hello_skip_ext(r, p, n)) {
			uint32_t whole = 4 + ((uint32_t)p[2] << 8 | p[3]);
			p += whole;
			n -= whole;
			if (hello_next_ext(r) != HELLO_NEED_MORE)
				return n;
			continue;
		}
		uint32_t take = r->need < n ? r->need : (uint32_t)n;
		if (hello_is_skip(r->mstate)) {
			/* nothing to look at */
		} else if (r->mstate == M_SNI_NAME) {
			size_t ok = hello_name_copy(r->sni + r->sni_len, p, take);
			r->sni_len += (uint16_t)ok;
			if (ok < take) {
				hello_fail(r, HELLO_MALFORMED, "invalid server name");
				return n - ok;
			}
		} else if (r->mstate == M_ALPN_PROTO) {
			uint32_t at = r->alpn_len - r->need;
			r->alpn_same = r->alpn_same && memcmp(p, hello_acme_tls + at, take) == 0;
		} else {
			for (uint32_t i = 0; i < take; i++)
				r->acc = (r->acc << 8) | p[i];
		}
		p += take;
		n -= take;
		r->need -= take;
		if (r->mstate >= M_VERSION)
			r->msg_left -= take;
		if (r->mstate >= M_EXT_TYPE)
			r->exts_left -= take;
		if (r->mstate >= M_EXT_SKIP)
			r->ext_left -= take;
		if (r->need > 0)
			continue;
		enum hello_status st = r->mstate == M_SNI_NAME ? hello_name_done(r) : hello_field_done(r);
		if (st != HELLO_NEED_MORE)
			return n;
	}
	return 0;
}

/* The first bytes decide between TLS, an SSLv2-compatible hello and anything else. */
static enum hello_status hello_header_byte(struct hello_reader *r, uint8_t b)
{
	r->hdr[r->hdr_len++] = b;
	if (!r->first_record_done) {
		if (r->hdr_len == 1) {
			if (b == HELLO_TYPE_HANDSHAKE)
				return HELLO_NEED_MORE;
			if (b & 0x80) {
				r->sslv2 = true;
				return HELLO_NEED_MORE;
			}
			return hello_fail(r, HELLO_NOT_TLS, "not a TLS handshake");
		}
		if (r->sslv2) {
			if (r->hdr_len < 3)
				return HELLO_NEED_MORE;
			if (b != HELLO_MSG_CLIENT_HELLO)
				return hello_fail(r, HELLO_NOT_TLS, "not a TLS handshake");
			r->status = HELLO_DONE;     /* SSLv2 hellos carry no extensions, so no SNI */
			return HELLO_DONE;
		}
		if (r->hdr_len == 2 && b != 0x03)
			return hello_fail(r, HELLO_NOT_TLS, "not a TLS handshake");
	} else {
		if (r->hdr_len == 1 && b != HELLO_TYPE_HANDSHAKE)
			return hello_fail(r, HELLO_MALFORMED, "a non-handshake record inside the ClientHello");
		if (r->hdr_len == 2 && b != 0x03)
			return hello_fail(r, HELLO_MALFORMED, "bad record version");
	}
	if (r->hdr_len < 5)
		return HELLO_NEED_MORE;
	r->rec_left = (uint32_t)r->hdr[3] << 8 | r->hdr[4];
	if (r->rec_left == 0 || r->rec_left > HELLO_MAX_RECORD)
		return hello_fail(r, HELLO_MALFORMED, "bad record length");
	r->hdr_len = 0;
	r->first_record_done = true;
	r->rstate = R_BODY;
	return HELLO_NEED_MORE;
}

/* Reads n bytes at p as a big-endian number; the caller checked they are there. */
static uint32_t hello_be(const uint8_t *p, size_t n)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* The bytes of a server_name extension (after its type and length), whole. False where
 * the fields would fail; else the name, if any, is in r->sni and *len. */
static bool hello_whole_sni(struct hello_reader *r, const uint8_t *p, const uint8_t *end, uint16_t *len,
                            bool *has)
{
	if (end - p < 2 || hello_be(p, 2) != (size_t)(end - p - 2) || p + 2 == end)
		return false;
	for (p += 2; p < end;) {
		if (end - p < 3)
			return false;
		uint8_t type = p[0];
		size_t nl = hello_be(p + 1, 2);
		p += 3;
		if ((size_t)(end - p) < nl)
			return false;
		if (type == HELLO_NAME_HOST) {
			uint16_t name_len = (uint16_t)nl;
			if (*has || nl == 0 || nl > HELLO_MAX_NAME || hello_name_copy(r->sni, p, nl) < nl ||
			    !hello_name_end(r->sni, &name_len))
				return false;
			*len = name_len;
			*has = true;
		}
		p += nl;
	}
	return true;
}

/* The bytes of an ALPN extension of 2 bytes or more, whole. False where the fields would fail. */
static bool hello_whole_alpn(const uint8_t *p, const uint8_t *end, bool *acme)
{
	if (hello_be(p, 2) != (size_t)(end - p - 2) || p + 2 == end)
		return false;
	for (p += 2; p < end;) {
		size_t pl = p[0];
		p++;
		if (pl == 0 || (size_t)(end - p) < pl)
			return false;
		if (pl == sizeof(hello_acme_tls) - 1 && memcmp(p, hello_acme_tls, pl) == 0)
			*acme = true;
		p += pl;
	}
	return true;
}

/* A ClientHello whole in the first bytes fed, in one record that it ends (as every client
 * sends it): read straight from the buffer, about a fifth of the instructions the fields
 * one by one take. True when it is DONE, with the results the fields would give; false
 * leaves the reader untouched for them, which also name whatever is wrong. */
static bool hello_whole(struct hello_reader *r, const uint8_t *data, size_t n)
{
	if (r->status != HELLO_NEED_MORE || r->rstate != R_HDR || r->hdr_len || r->first_record_done || n < 9 ||
	    data[0] != HELLO_TYPE_HANDSHAKE || data[1] != 0x03)
		return false;
	size_t rec = hello_be(data + 3, 2), len = hello_be(data + 6, 3);
	if (rec > HELLO_MAX_RECORD || n - 5 < rec || data[5] != HELLO_MSG_CLIENT_HELLO || len > HELLO_MAX_BYTES ||
	    rec != 4 + len)
		return false;
	const uint8_t *p = data + 9, *end = p + len;
	if (len < 2 + 32 + 1)
		return false;
	uint16_t version = (uint16_t)hello_be(p, 2);
	size_t sid = p[34];
	p += 35;
	if (sid > 32 || (size_t)(end - p) < sid + 2)
		return false;
	p += sid;
	size_t cs = hello_be(p, 2);
	p += 2;
	if (cs == 0 || cs % 2 || (size_t)(end - p) < cs + 1)
		return false;
	p += cs;
	size_t comp = p[0];
	p++;
	if (comp == 0 || (size_t)(end - p) < comp)
		return false;
	p += comp;
	uint16_t sni_len = 0;
	bool has = false, seen = false, acme = false;
	if (p < end) {
		if (end - p < 2 || hello_be(p, 2) != (size_t)(end - p - 2))
			return false;
		for (p += 2; p < end;) {
			if (end - p < 4)
				return false;
			uint32_t type = hello_be(p, 2);
			size_t el = hello_be(p + 2, 2);
			p += 4;
			if ((size_t)(end - p) < el)
				return false;
			if (type == HELLO_EXT_SERVER_NAME) {
				if (seen || !hello_whole_sni(r, p, p + el, &sni_len, &has))
					return false;
				seen = true;
			} else if (type == HELLO_EXT_ALPN && el >= 2 && !hello_whole_alpn(p, p + el, &acme)) {
				return false;
			}
			p += el;
		}
	}
	r->legacy_version = version;
	r->sni_seen = seen;
	r->has_sni = has;
	r->sni_len = sni_len;
	r->sni[sni_len] = '\0';
	r->alpn_acme = acme;
	r->first_record_done = true;
	r->status = HELLO_DONE;
	return true;
}

enum hello_status hello_reader_feed(struct hello_reader *r, const uint8_t *data, size_t n)
{
	if (hello_whole(r, data, n))
		return HELLO_DONE;
	while (n > 0 && r->status == HELLO_NEED_MORE) {
		if (r->rstate == R_HDR) {
			hello_header_byte(r, *data);
			data++;
			n--;
			continue;
		}
		size_t take = r->rec_left < n ? r->rec_left : n;
		size_t left = hello_msg(r, data, take);
		/* Nothing may follow a ClientHello in its record (RFC 8446 5.1: a key change comes next):
		 * a record that says more is not one a TLS server would answer, so not one to route. */
		if (r->status == HELLO_DONE && (left || r->rec_left > take))
			hello_fail(r, HELLO_MALFORMED, "the ClientHello does not end its record");
		data += take;
		n -= take;
		r->rec_left -= (uint32_t)take;
		if (r->rec_left == 0)
			r->rstate = R_HDR;
	}
	return r->status;
}
