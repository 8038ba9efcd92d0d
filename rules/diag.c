/*
 * diag.c - collected diagnostics. A load reports every problem it finds, so
 * messages accumulate here instead of stopping at the first one.
 */
#define _GNU_SOURCE /* asprintf */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "rules.h"

struct rules_diag_msg {
	enum rules_severity sev;
	char *text;
};

struct rules_diag {
	struct rules_diag_msg *msgs;
	size_t n, cap;
	size_t errors;          /* counted even when out of memory loses the text, so a load still fails */
};

struct rules_diag *rules_diag_new(void)
{
	return calloc(1, sizeof(struct rules_diag));
}

void rules_diag_free(struct rules_diag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->msgs[i].text);
	free(d->msgs);
	free(d);
}

static int rules_diag_grow(struct rules_diag *d)
{
	if (d->n < d->cap)
		return 0;
	size_t cap = d->cap ? d->cap * 2 : 8;
	struct rules_diag_msg *m = realloc(d->msgs, cap * sizeof(*m));
	if (!m)
		return -1;
	d->msgs = m;
	d->cap = cap;
	return 0;
}

/* "FILE:LINE: [warning: ]" - a line of 0 means the problem has no single line. */
__attribute__((format(printf, 4, 0)))
static char *rules_diag_format(enum rules_severity sev, const char *file, int line, const char *fmt,
                               va_list ap)
{
	char body[1024];
	char *out = NULL;
	vsnprintf(body, sizeof(body), fmt, ap);
	const char *kind = sev == RULES_WARNING ? "warning: " : "";
	int rc = line > 0 ? asprintf(&out, "%s:%d: %s%s", file ? file : "-", line, kind, body)
	                  : asprintf(&out, "%s: %s%s", file ? file : "-", kind, body);
	return rc < 0 ? NULL : out;
}

void rules_diag_add(struct rules_diag *d, enum rules_severity sev, const char *file, int line,
                    const char *fmt, ...)
{
	if (!d)
		return;
	if (sev == RULES_ERROR)
		d->errors++;
	va_list ap;
	va_start(ap, fmt);
	char *text = rules_diag_format(sev, file, line, fmt, ap);
	va_end(ap);
	if (!text || rules_diag_grow(d) < 0) {
		free(text);
		return;
	}
	d->msgs[d->n].sev = sev;
	d->msgs[d->n].text = text;
	d->n++;
}

size_t rules_diag_count(const struct rules_diag *d)
{
	return d ? d->n : 0;
}

size_t rules_diag_errors(const struct rules_diag *d)
{
	return d ? d->errors : 0;
}

const char *rules_diag_message(const struct rules_diag *d, size_t i)
{
	return d && i < d->n ? d->msgs[i].text : NULL;
}

enum rules_severity rules_diag_severity(const struct rules_diag *d, size_t i)
{
	return d && i < d->n ? d->msgs[i].sev : RULES_ERROR;
}
