#include "http/h2session.h"

#include <stdatomic.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "proto/h2.h"
#include "proxy/stats.h"

/* Every HTTP/2 connection's h2_stats, added as they grow: process-wide, any thread. */

enum { H2S_M_STREAMS, H2S_M_MALFORMED, H2S_M_TOO_LARGE, H2S_M_NOT_IMPLEMENTED, H2S_M_RESETS, H2S_M_RAPID_RESET,
       H2S_M_CONTINUATION_FLOOD, H2S_M_PING_FLOOD, H2S_M_SETTINGS_FLOOD, H2S_M_EMPTY_DATA_FLOOD, H2S_M_ZERO_WINDOW,
       H2S_M_STREAM_STALLS, H2S_M_PROTOCOL, H2S_M_CONNS, H2S_M_N };

/* The shared slot and one per worker (as proxy/stats.c: a worker's plain adds
 * on cache lines of its own); workers past the last share slot 0. */
#define H2S_SLOTS 65

struct h2s_slot {
	_Alignas(64) _Atomic uint64_t v[H2S_M_N];
};

static struct h2s_slot h2s_slots[H2S_SLOTS];

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
	{ "onegate_http2_empty_data_flood_total", "connections ended (GOAWAY) for empty DATA frames (CVE-2019-9518)" },
	{ "onegate_http2_zero_window_stalls_total", "connections ended (GOAWAY) for a window kept shut too long" },
	{ "onegate_http2_stream_stalls_total", "streams reset (RST_STREAM) for a stream window kept shut too long" },
	{ "onegate_http2_protocol_errors_total", "connections ended (GOAWAY) for another protocol error" },
	{ "onegate_http2_connections_total", "client connections that spoke HTTP/2" },
};

static void h2s_count(size_t m, uint64_t n)
{
	unsigned i = stats_thread_slot();
	if (i >= H2S_SLOTS)
		i = 0;
	_Atomic uint64_t *v = &h2s_slots[i].v[m];
	if (i == 0)
		atomic_fetch_add_explicit(v, n, memory_order_relaxed);
	else
		atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n, memory_order_relaxed);
}

void h2s_metrics_connection(void)
{
	h2s_count(H2S_M_CONNS, 1);
}

void h2s_metrics_add(const struct h2_stats *now, struct h2_stats *reported)
{
	const uint64_t v[H2S_M_CONNS] = {
		now->streams - reported->streams,
		now->malformed - reported->malformed,
		now->too_large - reported->too_large,
		now->not_implemented - reported->not_implemented,
		now->resets_received - reported->resets_received,
		now->rapid_reset - reported->rapid_reset,
		now->continuation_flood - reported->continuation_flood,
		now->ping_flood - reported->ping_flood,
		now->settings_flood - reported->settings_flood,
		now->empty_data_flood - reported->empty_data_flood,
		now->zero_window_stalls - reported->zero_window_stalls,
		now->stream_stalls - reported->stream_stalls,
		now->protocol_errors - reported->protocol_errors,
	};
	for (size_t i = 0; i < H2S_M_CONNS; i++)
		if (v[i])
			h2s_count(i, v[i]);
	*reported = *now;
}

void h2s_metrics_write(struct evbuffer *b)
{
	for (size_t i = 0; i < H2S_M_N; i++) {
		uint64_t sum = 0;
		for (size_t k = 0; k < H2S_SLOTS; k++)
			sum += atomic_load_explicit(&h2s_slots[k].v[i], memory_order_relaxed);
		evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", h2s_metric[i].name, h2s_metric[i].help,
		                    h2s_metric[i].name, h2s_metric[i].name, (unsigned long long)sum);
	}
}
