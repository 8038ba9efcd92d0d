#include "proxy/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <netinet/in.h>

#include "proto/h1.h"
#include "io/log.h"
#include "proxy/stats.h"

/* One real server's live state; shared by the tables of successive reloads. */
struct pool_srv {
	struct stats_counters *live;
	struct stats_ring *ring;        /* the control thread's */
	atomic_int refs;
	char *pool_name, *name;
	atomic_int health;              /* enum pool_health */
	atomic_int admin;               /* enum pool_admin */
	atomic_uint active;
	atomic_ullong connections, requests, errors, failures, retries;
	atomic_uint passive_run;        /* consecutive failures on live traffic */
	atomic_llong last_change;
	unsigned ok_run, fail_run;      /* consecutive check results: the control thread's alone */
	pthread_mutex_t lock;           /* guards last_check only */
	char last_check[160];
	char cookie[17];
};

/* A service's or a pool's live numbers, kept across reloads by name like a server's state. */
struct pool_named {
	struct stats_counters *live;
	struct stats_ring *ring;        /* the control thread's */
	atomic_int refs;
	atomic_uint open;               /* a service's client connections open now */
	char *name;
};

struct pool_live {
	const struct rules_pool *cfg;
	struct pool_srv **srv;
	struct pool_named *named;
	atomic_uint resending;          /* requests of this table sent again and not answered yet */
};

struct pool_table {
	atomic_int refs;
	struct rules_config *cfg;
	struct pool_live *pools;
	size_t npools;
	struct pool_named **services;   /* one per cfg->services */
};

/* Per worker: the smooth weighted round robin's running weights. */
struct pool_cursor {
	int **current;
	size_t npools;
	unsigned *rotate;               /* leastconn ties start here */
};

/* ---------------------------------------------------------------- servers */

static uint64_t pool_hash(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t pool_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static struct pool_srv *pool_srv_new(const char *pool_name, const char *name)
{
	struct pool_srv *s = calloc(1, sizeof(*s));
	if (!s || !(s->pool_name = strdup(pool_name)) || !(s->name = strdup(name)) || !(s->ring = stats_ring_new()) ||
	    !(s->live = stats_counters_new())) {
		if (s) {
			free(s->pool_name);
			free(s->name);
			stats_ring_free(s->ring);
		}
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->lock, NULL);
	/* Stable across restarts and reloads, so a client's cookie keeps meaning the same server. */
	uint64_t h = pool_hash(pool_name, strlen(pool_name) + 1, 0xcbf29ce484222325ULL);
	h = pool_mix(pool_hash(name, strlen(name), h));
	snprintf(s->cookie, sizeof(s->cookie), "%016llx", (unsigned long long)h);
	return s;
}

static void pool_srv_unref(struct pool_srv *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&s->lock);
	stats_ring_free(s->ring);
	stats_counters_free(s->live);
	free(s->pool_name);
	free(s->name);
	free(s);
}

static struct pool_named *pool_named_new(const char *name)
{
	struct pool_named *n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name)) || !(n->ring = stats_ring_new()) || !(n->live = stats_counters_new())) {
		if (n) {
			free(n->name);
			stats_ring_free(n->ring);
		}
		free(n);
		return NULL;
	}
	atomic_init(&n->refs, 1);
	return n;
}

static void pool_named_unref(struct pool_named *n)
{
	if (!n || atomic_fetch_sub(&n->refs, 1) != 1)
		return;
	stats_ring_free(n->ring);
	stats_counters_free(n->live);
	free(n->name);
	free(n);
}

/* The previous table's object of that name, with a new reference, or a new one. */
static struct pool_named *pool_named_take(struct pool_named *const *prev, size_t nprev, const char *name)
{
	for (size_t i = 0; i < nprev; i++)
		if (prev[i] && strcmp(prev[i]->name, name) == 0) {
			atomic_fetch_add(&prev[i]->refs, 1);
			return prev[i];
		}
	return pool_named_new(name);
}

static struct pool_srv *pool_srv_find(const struct pool_table *t, const char *pool_name, const char *name)
{
	for (size_t p = 0; t && p < t->npools; p++) {
		if (strcmp(t->pools[p].cfg->name, pool_name) != 0)
			continue;
		for (size_t i = 0; i < t->pools[p].cfg->nservers; i++)
			if (strcmp(t->pools[p].srv[i]->name, name) == 0)
				return t->pools[p].srv[i];
	}
	return NULL;
}

/* ---------------------------------------------------------------- tables */

struct pool_table *pool_table_new(const struct rules_config *cfg, const struct pool_table *prev)
{
	struct pool_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	atomic_init(&t->refs, 1);
	t->cfg = rules_config_ref((struct rules_config *)cfg);
	t->pools = calloc(cfg->npools ? cfg->npools : 1, sizeof(*t->pools));
	t->services = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*t->services));
	if (!t->pools || !t->services)
		goto fail;
	for (size_t i = 0; i < cfg->nservices; i++)
		if (!(t->services[i] = pool_named_take(prev ? prev->services : NULL, prev ? prev->cfg->nservices : 0,
		                                       cfg->services[i].name)))
			goto fail;
	for (size_t p = 0; p < cfg->npools; p++, t->npools++) {
		const struct rules_pool *rp = &cfg->pools[p];
		struct pool_live *pl = &t->pools[p];
		pl->cfg = rp;
		pl->srv = calloc(rp->nservers ? rp->nservers : 1, sizeof(*pl->srv));
		if (!pl->srv)
			goto fail;
		for (size_t k = 0; prev && k < prev->npools && !pl->named; k++)
			if (strcmp(prev->pools[k].cfg->name, rp->name) == 0)
				pl->named = pool_named_take(&prev->pools[k].named, 1, rp->name);
		if (!pl->named && !(pl->named = pool_named_new(rp->name)))
			goto fail;
		for (size_t i = 0; i < rp->nservers; i++) {
			struct pool_srv *old = pool_srv_find(prev, rp->name, rp->servers[i].name);
			if (old) {
				atomic_fetch_add(&old->refs, 1);
				pl->srv[i] = old;
				/* A pool that lost its checks no longer has anything to keep a server down. */
				if (rp->health.type == RULES_HEALTH_NONE)
					atomic_store(&old->health, POOL_HEALTH_UNCHECKED);
			} else if (!(pl->srv[i] = pool_srv_new(rp->name, rp->servers[i].name))) {
				goto fail;
			}
		}
	}
	return t;
fail:
	pool_table_unref(t);
	return NULL;
}

struct pool_table *pool_table_ref(struct pool_table *t)
{
	if (t)
		atomic_fetch_add(&t->refs, 1);
	return t;
}

void pool_table_unref(struct pool_table *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	for (size_t p = 0; t->pools && p < t->cfg->npools; p++) {
		struct pool_live *pl = &t->pools[p];
		for (size_t i = 0; pl->srv && i < t->cfg->pools[p].nservers; i++)
			pool_srv_unref(pl->srv[i]);
		free(pl->srv);
		pool_named_unref(pl->named);
	}
	free(t->pools);
	for (size_t i = 0; t->services && i < t->cfg->nservices; i++)
		pool_named_unref(t->services[i]);
	free(t->services);
	rules_config_unref(t->cfg);
	free(t);
}

const struct rules_config *pool_table_config(const struct pool_table *t)
{
	return t->cfg;
}

static struct pool_srv *pool_srv(const struct pool_table *t, size_t pool, size_t server)
{
	return t->pools[pool].srv[server];
}

/* ---------------------------------------------------------------- picking */

struct pool_cursor *pool_cursor_new(const struct pool_table *t)
{
	struct pool_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->current = calloc(t->npools ? t->npools : 1, sizeof(*c->current));
	c->rotate = calloc(t->npools ? t->npools : 1, sizeof(*c->rotate));
	if (!c->current || !c->rotate) {
		pool_cursor_free(c);
		return NULL;
	}
	for (size_t p = 0; p < t->npools; p++, c->npools++) {
		size_t n = t->pools[p].cfg->nservers;
		if (!(c->current[p] = calloc(n ? n : 1, sizeof(int)))) {
			pool_cursor_free(c);
			return NULL;
		}
	}
	return c;
}

void pool_cursor_free(struct pool_cursor *c)
{
	if (!c)
		return;
	for (size_t p = 0; c->current && p < c->npools; p++)
		free(c->current[p]);
	free(c->current);
	free(c->rotate);
	free(c);
}

/* Alive: may be used at all (full or not). */
static bool pool_srv_alive(const struct pool_srv *s)
{
	return atomic_load_explicit(&s->admin, memory_order_relaxed) == POOL_ADMIN_ENABLED &&
	       atomic_load_explicit(&s->health, memory_order_relaxed) != POOL_HEALTH_DOWN;
}

bool pool_server_usable(const struct pool_table *t, size_t pool, size_t server)
{
	const struct rules_server *rs = &t->pools[pool].cfg->servers[server];
	const struct pool_srv *s = pool_srv(t, pool, server);
	return pool_srv_alive(s) &&
	       (!rs->max_conns || atomic_load_explicit(&s->active, memory_order_relaxed) < rs->max_conns);
}

static bool pool_excluded(const struct pool_pick *pk, size_t i)
{
	for (size_t k = 0; pk && k < pk->nexclude; k++)
		if (pk->exclude[k] == (long)i)
			return true;
	return false;
}

/* Candidates: usable, not yet tried, and backups only when no primary is alive. */
static size_t pool_candidates(const struct pool_table *t, size_t pool, const struct pool_pick *pk, bool *ok)
{
	const struct pool_live *pl = &t->pools[pool];
	size_t n = pl->cfg->nservers, count = 0;
	bool primary_alive = false;
	for (size_t i = 0; i < n; i++)
		if (!pl->cfg->servers[i].backup && pool_srv_alive(pl->srv[i]))
			primary_alive = true;
	for (size_t i = 0; i < n; i++) {
		ok[i] = pl->cfg->servers[i].backup != primary_alive && pool_server_usable(t, pool, i) &&
		        !pool_excluded(pk, i);
		count += ok[i];
	}
	return count;
}

static long pool_pick_swrr(const struct pool_table *t, struct pool_cursor *cur, size_t pool, const bool *ok)
{
	const struct rules_pool *rp = t->pools[pool].cfg;
	int *cw = cur->current[pool];
	long best = -1;
	int total = 0;
	for (size_t i = 0; i < rp->nservers; i++) {
		if (!ok[i])
			continue;
		cw[i] += (int)rp->servers[i].weight;
		total += (int)rp->servers[i].weight;
		if (best < 0 || cw[i] > cw[best])
			best = (long)i;
	}
	if (best >= 0)
		cw[best] -= total;
	return best;
}

static long pool_pick_leastconn(const struct pool_table *t, struct pool_cursor *cur, size_t pool, const bool *ok)
{
	const struct rules_pool *rp = t->pools[pool].cfg;
	size_t n = rp->nservers;
	long best = -1;
	uint64_t best_a = 0, best_w = 1;
	size_t start = cur->rotate[pool]++ % n;
	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;
		if (!ok[i])
			continue;
		uint64_t a = atomic_load_explicit(&pool_srv(t, pool, i)->active, memory_order_relaxed);
		uint64_t w = rp->servers[i].weight;
		if (best < 0 || a * best_w < best_a * w) {
			best = (long)i;
			best_a = a;
			best_w = w;
		}
	}
	return best;
}

/* Rendezvous hashing: a server going down moves only its own clients. */
static long pool_pick_source(const struct pool_table *t, size_t pool, const bool *ok, const struct sockaddr *sa)
{
	const struct rules_pool *rp = t->pools[pool].cfg;
	uint64_t ch = 0xcbf29ce484222325ULL;
	if (sa && sa->sa_family == AF_INET)
		ch = pool_hash(&((const struct sockaddr_in *)sa)->sin_addr, 4, ch);
	else if (sa && sa->sa_family == AF_INET6)
		ch = pool_hash(&((const struct sockaddr_in6 *)sa)->sin6_addr, 16, ch);
	long best = -1;
	uint64_t best_score = 0;
	for (size_t i = 0; i < rp->nservers; i++) {
		if (!ok[i])
			continue;
		uint64_t score = pool_mix(ch ^ pool_hash(pool_srv(t, pool, i)->cookie, 16, 0));
		if (best < 0 || score > best_score) {
			best = (long)i;
			best_score = score;
		}
	}
	return best;
}

long pool_pick_server(const struct pool_table *t, struct pool_cursor *cur, size_t pool, const struct pool_pick *pk)
{
	const struct rules_pool *rp = t->pools[pool].cfg;
	if (rp->nservers == 0)
		return -1;
	if (pk && pk->preferred >= 0 && (size_t)pk->preferred < rp->nservers &&
	    pool_server_usable(t, pool, (size_t)pk->preferred) && !pool_excluded(pk, (size_t)pk->preferred))
		return pk->preferred;
	bool small[64];
	bool *ok = rp->nservers <= 64 ? small : malloc(rp->nservers * sizeof(*ok));
	if (!ok)
		return -1;
	long pick = -1;
	if (pool_candidates(t, pool, pk, ok)) {
		switch (rp->balance) {
		case RULES_BALANCE_LEASTCONN:
			pick = pool_pick_leastconn(t, cur, pool, ok);
			break;
		case RULES_BALANCE_SOURCE:
			pick = pool_pick_source(t, pool, ok, pk ? pk->client : NULL);
			break;
		case RULES_BALANCE_ROUNDROBIN:
		case RULES_BALANCE_COOKIE:
			pick = pool_pick_swrr(t, cur, pool, ok);
			break;
		}
	}
	if (ok != small)
		free(ok);
	return pick;
}

/* ---------------------------------------------------------------- accounting */

void pool_conn_begin(const struct pool_table *t, size_t pool, size_t server)
{
	struct pool_srv *s = pool_srv(t, pool, server);
	atomic_fetch_add_explicit(&s->active, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->connections, 1, memory_order_relaxed);
}

void pool_conn_end(const struct pool_table *t, size_t pool, size_t server)
{
	atomic_fetch_sub_explicit(&pool_srv(t, pool, server)->active, 1, memory_order_relaxed);
}

/* The live counters one event adds to: its service's, and its pool's and
 * server's when it has them. Returns how many of live[3] are set. */
static size_t pool_live_of(const struct pool_table *t, size_t service, long pool, long server,
                           struct stats_counters *live[3])
{
	size_t n = 0;
	live[n++] = t->services[service]->live;
	if (pool >= 0) {
		live[n++] = t->pools[pool].named->live;
		if (server >= 0)
			live[n++] = pool_srv(t, (size_t)pool, (size_t)server)->live;
	}
	return n;
}

void pool_request_done(const struct pool_table *t, const struct pool_request *r)
{
	bool error = r->status >= 500;
	struct stats_counters *live[3];
	size_t n = pool_live_of(t, r->service, r->pool, r->server, live);
	if (r->pool >= 0 && r->server >= 0) {
		struct pool_srv *s = pool_srv(t, (size_t)r->pool, (size_t)r->server);
		atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
		if (error)
			atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
	}
	stats_count_request(live, n, error, r->us, r->bytes_in, r->bytes_out);
}

void pool_session_done(const struct pool_table *t, size_t service, long pool, long server, bool failed)
{
	struct stats_counters *live[3];
	stats_count_session(live, pool_live_of(t, service, pool, server, live), failed);
}

void pool_relay_bytes(const struct pool_table *t, size_t service, size_t pool, size_t server, uint64_t in,
                      uint64_t out)
{
	struct stats_counters *live[3] = { t->services[service]->live, t->pools[pool].named->live,
	                                   pool_srv(t, pool, server)->live };
	stats_count_bytes(live, 3, in, out);
}

void pool_service_open(const struct pool_table *t, size_t service, int delta)
{
	atomic_fetch_add_explicit(&t->services[service]->open, (unsigned)delta, memory_order_relaxed);
}

static void pool_set_check_text(struct pool_srv *s, const char *what)
{
	pthread_mutex_lock(&s->lock);
	snprintf(s->last_check, sizeof(s->last_check), "%s", what);
	pthread_mutex_unlock(&s->lock);
}

static void pool_changed(struct pool_srv *s)
{
	atomic_store(&s->last_change, (long long)time(NULL));
}

void pool_server_failed(const struct pool_table *t, size_t pool, size_t server, const char *why)
{
	const struct rules_pool *rp = t->pools[pool].cfg;
	struct pool_srv *s = pool_srv(t, pool, server);
	atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
	unsigned run = atomic_fetch_add_explicit(&s->passive_run, 1, memory_order_relaxed) + 1;
	if (!rp->health.passive_fall || run < rp->health.passive_fall)
		return;
	/* Only a checked server goes down on live failures: a check is what brings it back. */
	int up = POOL_HEALTH_UP;
	if (!atomic_compare_exchange_strong(&s->health, &up, POOL_HEALTH_DOWN)) {
		int unchecked = POOL_HEALTH_UNCHECKED;
		if (!atomic_compare_exchange_strong(&s->health, &unchecked, POOL_HEALTH_DOWN))
			return;
	}
	pool_changed(s);
	char text[160];
	snprintf(text, sizeof(text), "%u failures in a row on live traffic (last: %s)", run, why);
	pool_set_check_text(s, text);
	log_msg(LOG_WARN, "pool %s server %s DOWN: %s", rp->name, s->name, text);
}

void pool_server_succeeded(const struct pool_table *t, size_t pool, size_t server)
{
	struct pool_srv *s = pool_srv(t, pool, server);
	if (atomic_load_explicit(&s->passive_run, memory_order_relaxed))
		atomic_store_explicit(&s->passive_run, 0, memory_order_relaxed);
}

/* ---------------------------------------------------------------- retries */

bool pool_retry_begin(const struct pool_table *t, size_t pool)
{
	struct pool_live *pl = &t->pools[pool];
	unsigned long long active = 0;
	for (size_t i = 0; i < pl->cfg->nservers; i++)
		active += atomic_load_explicit(&pl->srv[i]->active, memory_order_relaxed);
	unsigned now = atomic_fetch_add_explicit(&pl->resending, 1, memory_order_relaxed);
	unsigned long long others = active > now ? active - now : 0;
	if (now < POOL_RETRY_FLOOR + others * pl->cfg->retry_budget / 100)
		return true;
	atomic_fetch_sub_explicit(&pl->resending, 1, memory_order_relaxed);
	return false;
}

void pool_retry_end(const struct pool_table *t, size_t pool)
{
	atomic_fetch_sub_explicit(&t->pools[pool].resending, 1, memory_order_relaxed);
}

void pool_server_retried(const struct pool_table *t, size_t pool, size_t server)
{
	atomic_fetch_add_explicit(&pool_srv(t, pool, server)->retries, 1, memory_order_relaxed);
}

const char *pool_server_cookie(const struct pool_table *t, size_t pool, size_t server)
{
	return pool_srv(t, pool, server)->cookie;
}

long pool_server_by_cookie(const struct pool_table *t, size_t pool, const char *value, size_t len)
{
	if (len != 16)
		return -1;
	for (size_t i = 0; i < t->pools[pool].cfg->nservers; i++)
		if (memcmp(pool_srv(t, pool, i)->cookie, value, 16) == 0)
			return (long)i;
	return -1;
}

long pool_cookie_find(const struct pool_table *t, size_t pool, const char *head, const struct h1_msg *q)
{
	const struct rules_cookie *c = &t->pools[pool].cfg->cookie;
	size_t nlen = strlen(c->name);
	for (size_t i = 0; i < q->nheaders; i++) {
		const struct h1_header *h = &q->headers[i];
		if (h->name.len != 6 || strncasecmp(head + h->name.off, "cookie", 6) != 0)
			continue;
		const char *v = head + h->value.off, *end = v + h->value.len;
		while (v < end) {
			while (v < end && (*v == ' ' || *v == ';'))
				v++;
			const char *semi = memchr(v, ';', (size_t)(end - v));
			const char *pair_end = semi ? semi : end;
			if ((size_t)(pair_end - v) > nlen && v[nlen] == '=' && memcmp(v, c->name, nlen) == 0) {
				const char *val = v + nlen + 1;
				size_t vlen = (size_t)(pair_end - val);
				while (vlen && val[vlen - 1] == ' ')
					vlen--;
				return pool_server_by_cookie(t, pool, val, vlen);
			}
			v = pair_end;
		}
	}
	return -1;
}

size_t pool_cookie_header(const struct pool_table *t, size_t pool, size_t server, char *buf, size_t cap)
{
	const struct rules_cookie *c = &t->pools[pool].cfg->cookie;
	char max_age[32] = "";
	if (c->max_age)
		snprintf(max_age, sizeof(max_age), "; Max-Age=%u", c->max_age);
	int n = snprintf(buf, cap, "Set-Cookie: %s=%s%s%s%s%s%s%s%s\r\n", c->name, pool_srv(t, pool, server)->cookie,
	                 c->path ? "; Path=" : "", c->path ? c->path : "", c->domain ? "; Domain=" : "",
	                 c->domain ? c->domain : "", max_age, c->secure ? "; Secure" : "", c->httponly ? "; HttpOnly" : "");
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---------------------------------------------------------------- control side */

long pool_server_find(const struct pool_table *t, size_t pool, const char *name)
{
	const struct rules_pool *rp = t->pools[pool].cfg;
	for (size_t i = 0; i < rp->nservers; i++)
		if (strcmp(rp->servers[i].name, name) == 0)
			return (long)i;
	return -1;
}

void pool_health_result(const struct pool_table *t, size_t pool, size_t server, bool ok, const char *what)
{
	const struct rules_pool *rp = t->pools[pool].cfg;
	struct pool_srv *s = pool_srv(t, pool, server);
	pool_set_check_text(s, what);
	int h = atomic_load(&s->health);
	if (ok) {
		s->fail_run = 0;
		s->ok_run++;
		/* The first result after start decides at once; after that, rise and fall apply. */
		if (h == POOL_HEALTH_UP || (h == POOL_HEALTH_DOWN && s->ok_run < rp->health.rise))
			return;
		atomic_store(&s->health, POOL_HEALTH_UP);
		atomic_store(&s->passive_run, 0);
		pool_changed(s);
		log_msg(LOG_INFO, "pool %s server %s UP: %s", rp->name, s->name, what);
		return;
	}
	s->ok_run = 0;
	s->fail_run++;
	if (h == POOL_HEALTH_DOWN || (h == POOL_HEALTH_UP && s->fail_run < rp->health.fall))
		return;
	atomic_store(&s->health, POOL_HEALTH_DOWN);
	pool_changed(s);
	log_msg(LOG_WARN, "pool %s server %s DOWN: %s", rp->name, s->name, what);
}

int pool_server_set_admin(const struct pool_table *t, size_t pool, size_t server, enum pool_admin a)
{
	static const char *const names[] = { "enabled", "draining", "disabled" };
	if ((int)a < POOL_ADMIN_ENABLED || a > POOL_ADMIN_DISABLED)
		return -1;
	struct pool_srv *s = pool_srv(t, pool, server);
	if (atomic_exchange(&s->admin, (int)a) != (int)a) {
		pool_changed(s);
		log_msg(LOG_INFO, "pool %s server %s %s by the admin", t->pools[pool].cfg->name, s->name, names[a]);
	}
	return 0;
}

void pool_server_view(const struct pool_table *t, size_t pool, size_t server, struct pool_server_view *v)
{
	struct pool_srv *s = pool_srv(t, pool, server);
	v->health = (enum pool_health)atomic_load(&s->health);
	v->admin = (enum pool_admin)atomic_load(&s->admin);
	if (v->admin == POOL_ADMIN_DISABLED)
		v->state = "disabled";
	else if (v->admin == POOL_ADMIN_DRAINING)
		v->state = "draining";
	else
		v->state = v->health == POOL_HEALTH_DOWN ? "down" : v->health == POOL_HEALTH_UP ? "up" : "unchecked";
	v->active = atomic_load(&s->active);
	v->connections = atomic_load(&s->connections);
	v->requests = atomic_load(&s->requests);
	v->errors = atomic_load(&s->errors);
	v->failures = atomic_load(&s->failures);
	v->retries = atomic_load(&s->retries);
	v->last_change = atomic_load(&s->last_change);
	pthread_mutex_lock(&s->lock);
	memcpy(v->last_check, s->last_check, sizeof(v->last_check));
	pthread_mutex_unlock(&s->lock);
}

/* ---------------------------------------------------------------- live numbers */

void pool_table_sample(const struct pool_table *t, uint64_t tick, uint64_t now_ms)
{
	for (size_t i = 0; i < t->cfg->nservices; i++) {
		struct pool_named *n = t->services[i];
		stats_ring_sample(n->ring, n->live, atomic_load_explicit(&n->open, memory_order_relaxed), tick, now_ms);
	}
	for (size_t p = 0; p < t->npools; p++) {
		unsigned open = 0;
		for (size_t i = 0; i < t->pools[p].cfg->nservers; i++) {
			struct pool_srv *s = pool_srv(t, p, i);
			unsigned a = atomic_load_explicit(&s->active, memory_order_relaxed);
			stats_ring_sample(s->ring, s->live, a, tick, now_ms);
			open += a;
		}
		stats_ring_sample(t->pools[p].named->ring, t->pools[p].named->live, open, tick, now_ms);
	}
}

const struct stats_ring *pool_service_ring(const struct pool_table *t, size_t service)
{
	return t->services[service]->ring;
}

const struct stats_ring *pool_ring(const struct pool_table *t, size_t pool)
{
	return t->pools[pool].named->ring;
}

const struct stats_ring *pool_server_ring(const struct pool_table *t, size_t pool, size_t server)
{
	return pool_srv(t, pool, server)->ring;
}

void pool_latency_histogram(const struct pool_table *t, size_t pool, uint64_t *buckets, uint64_t *sum_us,
                            uint64_t *count)
{
	memset(buckets, 0, STATS_NBUCKETS * sizeof(*buckets));
	*sum_us = *count = 0;
	stats_latency_add(t->pools[pool].named->live, buckets, sum_us, count);
}
