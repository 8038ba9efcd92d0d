/*
 * stats.h - live numbers: what a service, pool or server is doing now.
 *
 * Each worker adds to a slot of its own in an object's struct stats_counters
 * (plain adds, no lock, no shared cache line); other threads add atomically to
 * a shared slot. Readers sum the slots.
 * The control thread samples each object's counters once a second into the
 * object's struct stats_ring (cumulative values, the last 10 minutes), and the
 * admin listener reads from the ring what happened over the last minute
 * (rates, error rate, latency quantiles) and a series for a chart. Only the
 * control thread ever touches a ring, so rings need no lock either.
 *
 * A request's latency is the time from its first byte to the last byte of its
 * answer, as its access line gives it; latencies fall into fixed buckets
 * (stats_bucket_us), from which quantiles are read the way Prometheus reads
 * a histogram (linear within the bucket).
 */
#ifndef ONEGATE_STATS_H
#define ONEGATE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Samples a ring holds: one a second. */
#define STATS_RING_S 600
/* The window of the "now" numbers. */
#define STATS_WINDOW_S 60
#define STATS_NBUCKETS 20

/* Upper bounds of the latency buckets in microseconds; the last is UINT64_MAX (+Inf). */
extern const uint64_t stats_bucket_us[STATS_NBUCKETS];

/* Requests (HTTP requests, and passthrough connections when they end), errors
 * (5xx answers; passthrough connections a server cut short or found no
 * server), bytes from and to clients, HTTP latencies by bucket and their sum. */
struct stats_counters;

/* Workers that get a slot of their own in counters made from now on. The
 * daemon calls it once before it builds the first pool table (the number of
 * workers changes only with a restart). */
void stats_workers(unsigned n);
/* The calling thread is worker id (0-based): its adds go to its own slot. */
void stats_thread_worker(unsigned id);
/* The calling thread's slot: its worker id + 1, or 0 (shared, added to
 * atomically) for any other thread. For counters of other modules kept the
 * same way (http/h2metrics.c). */
unsigned stats_thread_slot(void);

/* Zeroed: the shared slot and one per worker (stats_workers()). NULL when out of memory. */
struct stats_counters *stats_counters_new(void);
void stats_counters_free(struct stats_counters *c);

/* ---- the data path (any worker) ---- */

/* Each adds to the n objects cs (a service, its pool, the server: one call
 * for what one event counts everywhere). */

/* An HTTP request answered, us from its first byte to its answer's last. */
void stats_count_request(struct stats_counters *const *cs, size_t n, bool error, uint64_t us, uint64_t in,
                         uint64_t out);
/* A passthrough connection ended: one request without a latency. */
void stats_count_session(struct stats_counters *const *cs, size_t n, bool error);
/* Bytes relayed as they go (passthrough), so a long transfer shows while it runs. */
void stats_count_bytes(struct stats_counters *const *cs, size_t n, uint64_t in, uint64_t out);

/* ---- the control thread ---- */

struct stats_ring;

struct stats_ring *stats_ring_new(void);
void stats_ring_free(struct stats_ring *r);
/* Sample number tick (one a second, counted by the sampler from 1) taken at
 * now_ms (monotonic); open: connections or requests open now. */
void stats_ring_sample(struct stats_ring *r, const struct stats_counters *c, unsigned open, uint64_t tick,
                       uint64_t now_ms);

/* What the last window_s seconds (at most STATS_RING_S) looked like. */
struct stats_live {
	double span_s;                  /* seconds covered: less than asked right after start; 0: no sample yet */
	double rps, in_bps, out_bps;    /* per second */
	double error_rate;              /* errors / requests, 0 without requests */
	double p50_ms, p99_ms;          /* -1 without a timed request in the window */
	uint64_t requests, errors;      /* in the window */
	unsigned open;                  /* at the last sample */
};
void stats_ring_live(const struct stats_ring *r, unsigned window_s, struct stats_live *out);

/* Requests per second and errors per second in each step_s-long step of the
 * last npoints * step_s seconds, oldest first; a step that ends before the
 * second sample is -1, one that began before the first covers what followed
 * it. Returns npoints. */
size_t stats_ring_series(const struct stats_ring *r, unsigned step_s, size_t npoints, double *rps, double *eps);

/* Adds the cumulative latency buckets, their sum and count, into the arrays (for /metrics). */
void stats_latency_add(const struct stats_counters *c, uint64_t buckets[STATS_NBUCKETS], uint64_t *sum_us,
                       uint64_t *count);

#endif
