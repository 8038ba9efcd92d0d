/*
 * path.c - a request path as the back end will resolve it, for comparison.
 *
 * One pass over the target, writing the resolved path as it goes: %XX decoded
 * once, every byte checked (controls, UTF-8), and each segment finished when
 * its separator comes: ";" parameters cut, on Windows trailing dots and
 * spaces and an ":stream" too, then "" and "." dropped and ".." taking its
 * parent. Whatever could be read two ways by the back ends we publish is
 * refused instead of guessed: the caller answers 400.
 */
#include <stdbool.h>
#include <string.h>

#include "rules.h"

struct rules_path_state {
	char *out;
	size_t o;                       /* bytes written */
	size_t seg;                     /* where the current segment starts in out */
	unsigned flags;
	const char *why;
	/* UTF-8 sequence under way */
	unsigned need;                  /* continuation bytes still to come */
	unsigned long cp, min;          /* code point so far, the least one its length may encode */
	size_t lead;                    /* where its first byte is in out */
	/* double escaping: 1 after a decoded "%", 2 after that and one hex digit */
	unsigned dbl;
};

static int rules_path_hex(unsigned char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int rules_path_fail(struct rules_path_state *st, const char *why)
{
	st->why = why;
	return -1;
}

/* A complete UTF-8 character at st->lead: refused when it could hide an ASCII byte
 * (overlong), is no character (surrogate, past U+10FFFF) or a C1 control (HTTP.sys
 * refuses those); the few whose case folds to ASCII (Kelvin sign, long s, dotted and
 * dotless i) become that letter, so that caseless comparisons cannot be sidestepped. */
static int rules_path_utf8_end(struct rules_path_state *st)
{
	unsigned long cp = st->cp;
	if (cp < st->min)
		return rules_path_fail(st, "an overlong UTF-8 sequence");
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return rules_path_fail(st, "a UTF-8 sequence that is no character");
	if (cp >= 0x80 && cp <= 0x9f)
		return rules_path_fail(st, "an encoded control character");
	char ascii = cp == 0x212a ? 'k' : cp == 0x17f ? 's' : cp == 0x130 || cp == 0x131 ? 'i' : 0;
	if (ascii) {
		st->o = st->lead;
		st->out[st->o++] = ascii;
	}
	return 0;
}

static int rules_path_utf8(struct rules_path_state *st, unsigned char c)
{
	if (st->need) {
		if ((c & 0xc0) != 0x80)
			return rules_path_fail(st, "a truncated UTF-8 sequence");
		st->cp = st->cp << 6 | (c & 0x3f);
		return --st->need ? 0 : rules_path_utf8_end(st);
	}
	if (c < 0x80)
		return 0;
	st->lead = st->o - 1;
	if (c >= 0xc2 && c <= 0xdf) {
		st->need = 1, st->cp = c & 0x1f, st->min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		st->need = 2, st->cp = c & 0x0f, st->min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		st->need = 3, st->cp = c & 0x07, st->min = 0x10000;
	} else if (c == 0xc0 || c == 0xc1) {
		return rules_path_fail(st, "an overlong UTF-8 sequence");
	} else {
		return rules_path_fail(st, "a byte that is not UTF-8");
	}
	return 0;
}

/* One byte of a segment (decoded or not): checked, then written. */
static int rules_path_byte(struct rules_path_state *st, unsigned char c, bool decoded)
{
	if (c < 0x20 || c == 0x7f)
		return rules_path_fail(st, c ? "a control character" : "an encoded NUL");
	/* "%25" then two hex digits (or %u): a second decoding, which IIS refuses by
	 * default (allowDoubleEscaping) and some applications still do, gives another path. */
	if (decoded && c == '%') {
		st->dbl = 1;
	} else if (st->dbl == 1 && (rules_path_hex(c) >= 0 || c == 'u' || c == 'U')) {
		if (c == 'u' || c == 'U')
			return rules_path_fail(st, "a double-escaped %u escape");
		st->dbl = 2;
	} else if (st->dbl == 2 && rules_path_hex(c) >= 0) {
		return rules_path_fail(st, "double escaping (%25 followed by hex digits)");
	} else {
		st->dbl = 0;
	}
	st->out[st->o++] = (char)c;
	return rules_path_utf8(st, c);
}

/* The current segment ends (at a separator when sep, else at the end of the path). */
static int rules_path_segment_end(struct rules_path_state *st, bool sep)
{
	if (st->need)
		return rules_path_fail(st, "a truncated UTF-8 sequence");
	st->dbl = 0;
	char *s = st->out + st->seg;
	size_t n = st->o - st->seg;
	/* Path parameters (Tomcat and Jetty drop them, "..;" included); on Windows an
	 * alternate data stream ("name::$DATA") is the file itself. */
	for (size_t i = 0; i < n; i++)
		if (s[i] == ';' || (s[i] == ':' && (st->flags & RULES_PATH_WINDOWS))) {
			n = i;
			break;
		}
	bool dots = n && (n <= 2) && s[0] == '.' && s[n - 1] == '.';
	/* Windows drops trailing dots and spaces of a name: "ecp." and "ecp " are "ecp". */
	if ((st->flags & RULES_PATH_WINDOWS) && !dots && n) {
		size_t k = n;
		while (k && (s[k - 1] == '.' || s[k - 1] == ' '))
			k--;
		if (!k)
			return rules_path_fail(st, "a segment of dots and spaces");
		n = k;
	}
	st->o = st->seg + n;
	if (!n || (n == 1 && dots)) {
		st->o = st->seg;
		return 0;
	}
	if (n == 2 && dots) {
		if (st->seg == 1)
			return rules_path_fail(st, "\"..\" above the root");
		st->o = st->seg - 1;
		while (st->out[st->o - 1] != '/')
			st->o--;
		st->seg = st->o;
		return 0;
	}
	if (sep) {
		st->out[st->o++] = '/';
		st->seg = st->o;
	}
	return 0;
}

/* Most request paths are already what every back end resolves them to: each
 * byte printable ASCII that no rule above rewrites or refuses, no "//", no
 * segment that starts with a dot or ends with one. Saying so takes one look
 * per byte instead of the resolver's state machine (about 250 instructions of
 * a short request). *end is where the path ends (at "?" or len). */
static bool rules_path_resolved_already(const char *raw, size_t len, size_t *end)
{
	if (!len || raw[0] != '/')
		return false;
	size_t i = 1;
	for (; i < len && raw[i] != '?'; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c == '/') {
			if (raw[i - 1] == '/')
				return false;
		} else if (c == '.') {
			if (raw[i - 1] == '/' || i + 1 == len || raw[i + 1] == '/' || raw[i + 1] == '?')
				return false;
		} else if (c <= 0x20 || c >= 0x7f || c == '%' || c == ';' || c == ':' || c == '\\' || c == '#') {
			return false;
		}
	}
	*end = i;
	return true;
}

int rules_urlpath_resolve(const char *raw, size_t len, unsigned flags, char *out, size_t cap, size_t *out_len,
                       const char **why)
{
	struct rules_path_state st = { .out = out, .o = 1, .seg = 1, .flags = flags };
	bool windows = flags & RULES_PATH_WINDOWS, encoded_sep = false;
	int rc = 0;
	*why = NULL;
	if (cap < len + 2) {
		*why = "no room";
		return RULES_PATH_BAD;
	}
	size_t end;
	if (rules_path_resolved_already(raw, len, &end)) {
		memcpy(out, raw, end);
		out[end] = '\0';
		*out_len = end;
		return RULES_PATH_OK;
	}
	out[0] = '/';
	for (size_t i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c == '?')
			break;
		/* Never sent by a client; a back end could take it as a literal or as an end. */
		if (c == '#') {
			*why = "a \"#\" in the path";
			return RULES_PATH_BAD;
		}
		if (c == '/' || (c == '\\' && windows)) {
			rc = rules_path_segment_end(&st, true);
			continue;
		}
		if (c != '%') {
			rc = rules_path_byte(&st, c, false);
			continue;
		}
		/* %uNNNN (HTTP.sys takes it) and anything else that is not %XX: refused. */
		int hi = i + 2 < len ? rules_path_hex((unsigned char)raw[i + 1]) : -1;
		int lo = hi >= 0 ? rules_path_hex((unsigned char)raw[i + 2]) : -1;
		if (lo < 0) {
			*why = "a bad %-escape";
			return RULES_PATH_BAD;
		}
		i += 2;
		c = (unsigned char)(hi << 4 | lo);
		if (c == '/' || (c == '\\' && windows)) {
			encoded_sep = true;
			if (!(flags & RULES_PATH_SEP_OPAQUE)) {
				rc = rules_path_segment_end(&st, true);
				continue;
			}
			/* As a back end that does not decode it sees it: three bytes of a name. */
			rc = rules_path_byte(&st, '%', false);
			if (rc == 0)
				rc = rules_path_byte(&st, c == '/' ? '2' : '5', false);
			if (rc == 0)
				rc = rules_path_byte(&st, c == '/' ? 'F' : 'C', false);
			continue;
		}
		rc = rules_path_byte(&st, c, true);
	}
	if (rc == 0)
		rc = rules_path_segment_end(&st, false);
	if (rc != 0) {
		*why = st.why;
		return RULES_PATH_BAD;
	}
	out[st.o] = '\0';
	*out_len = st.o;
	return encoded_sep ? RULES_PATH_ENCODED_SEP : RULES_PATH_OK;
}
