#include "proxy/stats.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* From 100 us to 30 s: a request answered from a cache and a slow report both land in a bucket
 * narrow enough that p50 and p99 read right to a few percent. */
const uint64_t stats_bucket_us[STATS_NBUCKETS] = {
	100, 250, 500, 1000, 2000, 3000, 5000, 7500, 10000, 25000,
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, UINT64_MAX,
};

/* One thread's counts. Each worker has a slot of its own, on cache lines of its own,
 * that only it writes: an add is a plain load and store (relaxed atomics, so the
 * control thread's reads are defined), never a locked instruction on a line another
 * core is writing. Slot 0 is shared by every other thread and added to atomically. */
struct stats_slot {
	_Atomic uint64_t requests, errors, bytes_in, bytes_out;
	_Atomic uint64_t latency_us;
	_Atomic uint64_t latency[STATS_NBUCKETS];
};

#define STATS_SLOT_SIZE ((sizeof(struct stats_slot) + 63) / 64 * 64)

struct stats_counters {
	unsigned nslots;                /* slot 0 (shared) and one per worker */
	unsigned char *slots;           /* nslots * STATS_SLOT_SIZE, 64-byte aligned */
};

/* Worker slots given to counters made from now on; the daemon sets it before the
 * first pool table, once (the number of workers needs a restart). */
static unsigned stats_nworkers;
/* This thread's slot: 0 unless it is a worker (stats_thread_worker()). */
static _Thread_local unsigned stats_my_slot __attribute__((tls_model("initial-exec")));

void stats_workers(unsigned n)
{
	stats_nworkers = n;
}

void stats_thread_worker(unsigned id)
{
	stats_my_slot = id + 1;
}

unsigned stats_thread_slot(void)
{
	return stats_my_slot;
}

struct stats_counters *stats_counters_new(void)
{
	struct stats_counters *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	c->nslots = stats_nworkers + 1;
	c->slots = aligned_alloc(64, c->nslots * STATS_SLOT_SIZE);
	if (!c->slots) {
		free(c);
		return NULL;
	}
	memset(c->slots, 0, c->nslots * STATS_SLOT_SIZE);
	return c;
}

void stats_counters_free(struct stats_counters *c)
{
	if (!c)
		return;
	free(c->slots);
	free(c);
}

static struct stats_slot *stats_slot_at(const struct stats_counters *c, unsigned i)
{
	return (struct stats_slot *)(c->slots + (size_t)i * STATS_SLOT_SIZE);
}

/* ---------------------------------------------------------------- the data path */

/* This thread's slot in c, or the shared one (*shared) for any other thread and
 * for a worker the object has no slot for. */
static struct stats_slot *stats_mine(struct stats_counters *c, unsigned mine, bool *shared)
{
	unsigned i = mine < c->nslots ? mine : 0;
	*shared = i == 0;
	return stats_slot_at(c, i);
}

static void stats_add(_Atomic uint64_t *v, uint64_t n, bool shared)
{
	if (shared)
		atomic_fetch_add_explicit(v, n, memory_order_relaxed);
	else
		atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n, memory_order_relaxed);
}

static size_t stats_bucket(uint64_t us)
{
	size_t i = 0;
	while (us > stats_bucket_us[i])
		i++;
	return i;
}

/* The objects of one request share its bucket and this thread's slot number:
 * both are found once. */
void stats_count_request(struct stats_counters *const *cs, size_t n, bool error, uint64_t us, uint64_t in,
                         uint64_t out)
{
	size_t b = stats_bucket(us);
	unsigned mine = stats_my_slot;
	for (size_t i = 0; i < n; i++) {
		bool shared;
		struct stats_slot *s = stats_mine(cs[i], mine, &shared);
		stats_add(&s->requests, 1, shared);
		if (error)
			stats_add(&s->errors, 1, shared);
		if (in)
			stats_add(&s->bytes_in, in, shared);
		if (out)
			stats_add(&s->bytes_out, out, shared);
		stats_add(&s->latency_us, us, shared);
		stats_add(&s->latency[b], 1, shared);
	}
}

void stats_count_session(struct stats_counters *const *cs, size_t n, bool error)
{
	unsigned mine = stats_my_slot;
	for (size_t i = 0; i < n; i++) {
		bool shared;
		struct stats_slot *s = stats_mine(cs[i], mine, &shared);
		stats_add(&s->requests, 1, shared);
		if (error)
			stats_add(&s->errors, 1, shared);
	}
}

void stats_count_bytes(struct stats_counters *const *cs, size_t n, uint64_t in, uint64_t out)
{
	unsigned mine = stats_my_slot;
	for (size_t i = 0; i < n; i++) {
		bool shared;
		struct stats_slot *s = stats_mine(cs[i], mine, &shared);
		if (in)
			stats_add(&s->bytes_in, in, shared);
		if (out)
			stats_add(&s->bytes_out, out, shared);
	}
}

/* ---------------------------------------------------------------- the ring */

struct stats_sample {
	uint64_t tick;                  /* 0: never written */
	uint64_t at_ms;
	uint64_t requests, errors, bytes_in, bytes_out;
	unsigned open;
};

/* Latency buckets are kept for the window only: the chart does not need them. */
struct stats_lat {
	uint64_t tick;
	uint64_t b[STATS_NBUCKETS];
};

struct stats_ring {
	uint64_t first, last;           /* tick numbers of the oldest sample ever taken and the newest; 0: none */
	struct stats_sample s[STATS_RING_S + 1];
	struct stats_lat lat[STATS_WINDOW_S + 1];
};

struct stats_ring *stats_ring_new(void)
{
	return calloc(1, sizeof(struct stats_ring));
}

void stats_ring_free(struct stats_ring *r)
{
	free(r);
}

/* Every counter summed over the slots, each read once, relaxed: a sum may miss
 * an add under way, which the next sample takes up. */
struct stats_total {
	uint64_t requests, errors, bytes_in, bytes_out;
	uint64_t latency_us;
	uint64_t latency[STATS_NBUCKETS];
};

static uint64_t stats_load(const _Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void stats_total(const struct stats_counters *c, struct stats_total *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < c->nslots; i++) {
		const struct stats_slot *s = stats_slot_at(c, i);
		t->requests += stats_load(&s->requests);
		t->errors += stats_load(&s->errors);
		t->bytes_in += stats_load(&s->bytes_in);
		t->bytes_out += stats_load(&s->bytes_out);
		t->latency_us += stats_load(&s->latency_us);
		for (size_t b = 0; b < STATS_NBUCKETS; b++)
			t->latency[b] += stats_load(&s->latency[b]);
	}
}

void stats_ring_sample(struct stats_ring *r, const struct stats_counters *c, unsigned open, uint64_t tick,
                       uint64_t now_ms)
{
	struct stats_sample *s = &r->s[tick % (STATS_RING_S + 1)];
	s->tick = tick;
	s->at_ms = now_ms;
	struct stats_total t;
	stats_total(c, &t);
	s->requests = t.requests;
	s->errors = t.errors;
	s->bytes_in = t.bytes_in;
	s->bytes_out = t.bytes_out;
	s->open = open;
	struct stats_lat *l = &r->lat[tick % (STATS_WINDOW_S + 1)];
	l->tick = tick;
	for (size_t i = 0; i < STATS_NBUCKETS; i++)
		l->b[i] = t.latency[i];
	if (!r->first)
		r->first = tick;
	r->last = tick;
}

static const struct stats_sample *stats_at(const struct stats_ring *r, uint64_t tick)
{
	const struct stats_sample *s = &r->s[tick % (STATS_RING_S + 1)];
	return tick && s->tick == tick ? s : NULL;
}

static const struct stats_lat *stats_lat_at(const struct stats_ring *r, uint64_t tick)
{
	const struct stats_lat *l = &r->lat[tick % (STATS_WINDOW_S + 1)];
	return tick && l->tick == tick ? l : NULL;
}

/* The value below which a fraction q of the timed requests fell, in ms. */
static double stats_quantile(const uint64_t *d, uint64_t total, double q)
{
	double target = q * (double)total, below = 0;
	for (size_t i = 0; i < STATS_NBUCKETS; i++) {
		if (below + (double)d[i] >= target && d[i]) {
			/* The last bucket has no upper bound: its lower one is all we know. */
			if (i == STATS_NBUCKETS - 1)
				return (double)stats_bucket_us[i - 1] / 1000.0;
			double lo = i ? (double)stats_bucket_us[i - 1] : 0, hi = (double)stats_bucket_us[i];
			return (lo + (hi - lo) * (target - below) / (double)d[i]) / 1000.0;
		}
		below += (double)d[i];
	}
	return -1;
}

void stats_ring_live(const struct stats_ring *r, unsigned window_s, struct stats_live *out)
{
	memset(out, 0, sizeof(*out));
	out->p50_ms = out->p99_ms = -1;
	const struct stats_sample *now = stats_at(r, r->last);
	if (!now)
		return;
	out->open = now->open;
	if (window_s > STATS_RING_S)
		window_s = STATS_RING_S;
	uint64_t from = r->last > window_s ? r->last - window_s : 1;
	if (from < r->first)
		from = r->first;
	const struct stats_sample *then = stats_at(r, from);
	if (!then || then == now || now->at_ms <= then->at_ms)
		return;
	double span = (double)(now->at_ms - then->at_ms) / 1000.0;
	out->span_s = span;
	out->requests = now->requests - then->requests;
	out->errors = now->errors - then->errors;
	out->rps = (double)out->requests / span;
	out->in_bps = (double)(now->bytes_in - then->bytes_in) / span;
	out->out_bps = (double)(now->bytes_out - then->bytes_out) / span;
	out->error_rate = out->requests ? (double)out->errors / (double)out->requests : 0;
	uint64_t lfrom = r->last > STATS_WINDOW_S ? r->last - STATS_WINDOW_S : 1;
	if (lfrom < from)
		lfrom = from;
	const struct stats_lat *ln = stats_lat_at(r, r->last), *lt = stats_lat_at(r, lfrom);
	if (!ln || !lt)
		return;
	uint64_t d[STATS_NBUCKETS], total = 0;
	for (size_t i = 0; i < STATS_NBUCKETS; i++) {
		d[i] = ln->b[i] - lt->b[i];
		total += d[i];
	}
	if (total) {
		out->p50_ms = stats_quantile(d, total, 0.50);
		out->p99_ms = stats_quantile(d, total, 0.99);
	}
}

size_t stats_ring_series(const struct stats_ring *r, unsigned step_s, size_t npoints, double *rps, double *eps)
{
	for (size_t j = 0; j < npoints; j++) {
		rps[j] = eps[j] = -1;
		uint64_t back = (uint64_t)(npoints - 1 - j) * step_s;
		if (!r->first || r->last < r->first + back + 1)
			continue;
		/* The oldest step may have begun before the first sample: it covers what there is. */
		uint64_t from = r->last - back > step_s ? r->last - back - step_s : 0;
		if (from < r->first)
			from = r->first;
		const struct stats_sample *end = stats_at(r, r->last - back), *start = stats_at(r, from);
		if (!end || !start || end->at_ms <= start->at_ms)
			continue;
		double span = (double)(end->at_ms - start->at_ms) / 1000.0;
		rps[j] = (double)(end->requests - start->requests) / span;
		eps[j] = (double)(end->errors - start->errors) / span;
	}
	return npoints;
}

void stats_latency_add(const struct stats_counters *c, uint64_t buckets[STATS_NBUCKETS], uint64_t *sum_us,
                       uint64_t *count)
{
	struct stats_total t;
	stats_total(c, &t);
	/* The count is the buckets' own sum, so that +Inf equals it as Prometheus requires. */
	for (size_t i = 0; i < STATS_NBUCKETS; i++) {
		uint64_t n = t.latency[i];
		buckets[i] += n;
		*count += n;
	}
	*sum_us += t.latency_us;
}
