/* libFuzzer: the PROXY protocol reader, and the writer's output read back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_info pi;
	enum pp_status st = pp_parse(data, size, &pi);
	if (st != PP_OK)
		return 0;
	if (pi.header_len > size || pi.header_len > PP_MAX_HEADER)
		abort();
	if (pi.local)
		return 0;
	/* Whatever we accept we can write again, and read back the same addresses. */
	uint8_t out[PP_MAX_HEADER];
	int n = pp_write_v2((struct sockaddr *)&pi.src, (struct sockaddr *)&pi.dst, out, sizeof(out));
	struct pp_info back;
	if (n < 0 || pp_parse(out, (size_t)n, &back) != PP_OK || back.local)
		abort();
	return 0;
}
