#ifndef ONEGATE_BUNDLED_ARGS_H
#define ONEGATE_BUNDLED_ARGS_H
/* Argument readers the bundled plugins share. Header-only: each plugin stays one
 * shared object built against onegate_plugin.h and this file alone. */
#include <stdio.h>
#include <stdlib.h>

#include "onegate_plugin.h"

/* `status = N`, an HTTP error status a filter answers with. 0, or -1 with a message
 * that gives `example` (e.g. 403) as the usual choice. */
static inline int bundled_status_arg(const struct onegate_arg *a, int example, int *status, char *err, size_t errlen)
{
	char *end = NULL;
	long st = a->is_list || !a->nvalues ? 0 : strtol(a->values[0], &end, 10);
	if (st < 400 || st > 599 || *end) {
		snprintf(err, errlen, "status must be an HTTP error status from 400 to 599, e.g. %d", example);
		return -1;
	}
	*status = (int)st;
	return 0;
}

#endif
