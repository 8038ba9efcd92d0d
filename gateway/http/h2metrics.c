#include "http/h2session.h"

#include <stdatomic.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "proto/h2.h"

/* Every HTTP/2 connection's h2_stats, added when it ends: process-wide, any thread. */

enum { H2S_M_STREAMS, H2S_M_MALFORMED, H2S_M_TOO_LARGE, H2S_M_NOT_IMPLEMENTED, H2S_M_RESETS, H2S_M_RAPID_RESET,
       H2S_M_CONTINUATION_FLOOD, H2S_M_PING_FLOOD, H2S_M_SETTINGS_FLOOD, H2S_M_ZERO_WINDOW, H2S_M_PROTOCOL, H2S_M_CONNS,
       H2S_M_N };

static _Atomic uint64_t h2s_totals[H2S_M_N];

static const struct {
	const char *name, *help;
} h2s_metric[H2S_M_N] = {
	{ "onegate_http2_streams_total", "HTTP/2 streams whose request was taken (each an HTTP/1.1 request on)" },
	{ "onegate_http2_malformed_total", "HTTP/2 streams reset for breaking RFC 9113 8 (never forwarded)" },
	{ "onegate_http2_too_large_total", "HTTP/2 streams answered 431: header list past the limit" },
	{ "onegate_http2_not_implemented_total", "HTTP/2 streams answered 501 (CONNECT)" },
	{ "onegate_http2_resets_received_total", "RST_STREAM frames from clients" },
	{ "onegate_http2_rapid_reset_total", "connections ended (GOAWAY) for too many resets (CVE-2023-44487)" },
	{ "onegate_http2_continuation_flood_total", "connections ended (GOAWAY) for a CONTINUATION flood" },
	{ "onegate_http2_ping_flood_total", "connections ended (GOAWAY) for a PING flood" },
	{ "onegate_http2_settings_flood_total", "connections ended (GOAWAY) for a SETTINGS flood" },
	{ "onegate_http2_zero_window_stalls_total", "connections ended (GOAWAY) for a window kept shut too long" },
	{ "onegate_http2_protocol_errors_total", "connections ended (GOAWAY) for another protocol error" },
	{ "onegate_http2_connections_total", "client connections that spoke HTTP/2" },
};

void h2s_metrics_add(const struct h2_stats *st)
{
	const uint64_t v[H2S_M_N] = {
		st->streams, st->malformed, st->too_large, st->not_implemented, st->resets_received, st->rapid_reset,
		st->continuation_flood, st->ping_flood, st->settings_flood, st->zero_window_stalls, st->protocol_errors, 1,
	};
	for (size_t i = 0; i < H2S_M_N; i++)
		if (v[i])
			atomic_fetch_add_explicit(&h2s_totals[i], v[i], memory_order_relaxed);
}

void h2s_metrics_write(struct evbuffer *b)
{
	for (size_t i = 0; i < H2S_M_N; i++)
		evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", h2s_metric[i].name, h2s_metric[i].help,
		                    h2s_metric[i].name, h2s_metric[i].name,
		                    (unsigned long long)atomic_load_explicit(&h2s_totals[i], memory_order_relaxed));
}
