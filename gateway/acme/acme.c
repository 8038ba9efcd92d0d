#include "acme/acme.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "acme/acme_chal.h"
#include "acme/acme_order.h"
#include "acme/acme_plan.h"
#include "acme/acme_store.h"
#include "certs.h"
#include "io/log.h"
#include "proxy/tlsconf.h"

#define ACME_WATCH_S 30                 /* how often the state folder is looked at for a peer's certificate */
#define ACME_PEER_WAIT_S 2              /* while the peer orders: how often its certificate is looked for */
#define ACME_ARI_DEFAULT_S (6 * 3600)   /* renewalInfo asked again after this, unless the CA says */
#define ACME_ARI_NONE_S (24 * 3600)     /* the directory offered none: asked again after this */
#define ACME_ARI_FAILED_S 3600

/* What is known of one ACME certificate, kept across reloads by its name. */
struct acme_cert {
	char *name;
	struct certs_item *item;        /* served now */
	struct acme_store_stamp stamp;  /* of the saved certificate last loaded or written */
	time_t renew_at;                /* 0: due */
	time_t retry_at;                /* after a failure, or while the peer orders */
	time_t ari_at;                  /* renewalInfo to be asked then (0: now) */
	time_t win_start, win_end;      /* the CA's suggested window, 0 when none */
	unsigned failures;
	bool peer_ordering;             /* the order lock was busy at the last attempt */
	char last_error[512];
	bool seen;                      /* in the current rules */
};

/* The expiry warnings already given: per certificate name and notAfter, how
 * many of the thresholds were passed. */
struct acme_warned {
	char *name;
	time_t not_after;
	int level;
};

struct acme {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	struct rules_config *cfg;       /* guarded by lock */
	bool cfg_changed;
	struct acme_cert *certs;        /* guarded by lock for readers; written by the thread */
	size_t ncerts;
	struct acme_warned *warned;     /* the thread's own */
	size_t nwarned, warned_cap;
};

/* The running client, for the status views (one per process). */
static pthread_mutex_t acme_current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct acme *acme_current;

/* Waits up to seconds unless stopped; true when stopping. */
static bool acme_pause(void *arg, long seconds)
{
	struct acme *a = arg;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	pthread_mutex_lock(&a->lock);
	while (!a->stop && pthread_cond_timedwait(&a->wake, &a->lock, &ts) != ETIMEDOUT)
		;
	bool stop = a->stop;
	pthread_mutex_unlock(&a->lock);
	return stop;
}

static bool acme_names_fit(const struct certs_item *item, const struct rules_acme *a)
{
	if (!item || certs_item_is_placeholder(item) || certs_item_nnames(item) != a->nnames)
		return false;
	for (size_t i = 0; i < a->nnames; i++) {
		bool found = false;
		for (size_t k = 0; k < a->nnames; k++)
			found |= strcmp(certs_item_name_at(item, k), a->names[i]) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* Under a->lock. */
static void acme_plan_set(struct acme_cert *c, const struct rules_acme *ra)
{
	uint32_t rnd = 0;
	RAND_bytes((uint8_t *)&rnd, sizeof(rnd));
	c->renew_at = acme_names_fit(c->item, ra) ? acme_plan_renew(certs_item_not_before(c->item),
	                                                            certs_item_not_after(c->item), c->win_start,
	                                                            c->win_end, rnd)
	                                          : 0;
}

static time_t acme_due(const struct acme_cert *c)
{
	return c->renew_at > c->retry_at ? c->renew_at : c->retry_at;
}

static struct acme_cert *acme_cert_find(struct acme *a, const char *name)
{
	for (size_t i = 0; i < a->ncerts; i++)
		if (strcmp(a->certs[i].name, name) == 0)
			return &a->certs[i];
	return NULL;
}

static void acme_time_text(time_t t, char *out, size_t cap)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* Under a->lock: item (a reference passed in) served from now on as c. */
static void acme_adopt(struct acme_cert *c, const struct rules_cert *rc, struct certs_item *item)
{
	certs_item_unref(c->item);
	c->item = item;
	c->failures = 0;
	c->retry_at = 0;
	c->peer_ordering = false;
	c->last_error[0] = '\0';
	c->win_start = c->win_end = 0;
	c->ari_at = 0;
	acme_plan_set(c, rc->acme);
	tlsconf_slot_publish(rc->name, item);
}

/* A certificate in the state folder newer than the one served (the other
 * gateway of a pair obtained it) is taken up. True when one was. */
static bool acme_watch(struct acme *a, const struct rules_config *cfg, const struct rules_cert *rc)
{
	struct acme_store_stamp now_stamp;
	acme_store_stamp_read(cfg->state_dir, rc->name, &now_stamp);
	pthread_mutex_lock(&a->lock);
	struct acme_cert *c = acme_cert_find(a, rc->name);
	bool same = !c || acme_store_stamp_same(&c->stamp, &now_stamp);
	pthread_mutex_unlock(&a->lock);
	if (same || !now_stamp.ino)
		return false;
	char why[512] = "";
	struct certs_item *item = acme_store_load(rc, cfg->state_dir, why, sizeof(why));
	bool taken = false;
	pthread_mutex_lock(&a->lock);
	c = acme_cert_find(a, rc->name);
	/* A pair half-written (a new key, the old chain) does not load: looked at again next time. */
	if (c && item) {
		c->stamp = now_stamp;
		if (acme_names_fit(item, rc->acme) &&
		    (!acme_names_fit(c->item, rc->acme) || certs_item_not_after(item) > certs_item_not_after(c->item))) {
			char until[64];
			acme_time_text(certs_item_not_after(item), until, sizeof(until));
			acme_adopt(c, rc, item);
			item = NULL;
			taken = true;
			log_msg(LOG_INFO, "acme %s: took up the certificate found in the state folder, valid until %s, now served",
			        rc->name, until);
		}
	}
	pthread_mutex_unlock(&a->lock);
	certs_item_unref(item);
	return taken;
}

/* Brings the table in line with the rules: new entries start from what the
 * loader found, entries no longer in the rules are dropped. */
static void acme_sync(struct acme *a, const struct rules_config *cfg)
{
	acme_chal_folder(cfg->state_dir);
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->ncerts; i++)
		a->certs[i].seen = false;
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		if (!rc->acme || !rc->item)
			continue;
		struct acme_cert *c = acme_cert_find(a, rc->name);
		if (!c) {
			struct acme_cert *n = realloc(a->certs, (a->ncerts + 1) * sizeof(*n));
			if (!n)
				continue;
			a->certs = n;
			c = &a->certs[a->ncerts];
			memset(c, 0, sizeof(*c));
			if (!(c->name = strdup(rc->name)))
				continue;
			a->ncerts++;
			/* What the loader read from the state folder: not to be taken up again. */
			if (!certs_item_is_placeholder(rc->item))
				acme_store_stamp_read(cfg->state_dir, rc->name, &c->stamp);
		}
		c->seen = true;
		bool better = !certs_item_is_placeholder(rc->item) &&
		              (!c->item || certs_item_is_placeholder(c->item) ||
		               certs_item_not_after(rc->item) > certs_item_not_after(c->item));
		if (better || !c->item) {
			certs_item_unref(c->item);
			c->item = certs_item_ref(rc->item);
			tlsconf_slot_publish(rc->name, c->item);
		}
		acme_plan_set(c, rc->acme);
	}
	for (size_t i = 0; i < a->ncerts;) {
		if (a->certs[i].seen) {
			i++;
			continue;
		}
		certs_item_unref(a->certs[i].item);
		free(a->certs[i].name);
		a->certs[i] = a->certs[--a->ncerts];
	}
	pthread_mutex_unlock(&a->lock);
}

static void acme_failed(struct acme *a, const struct rules_cert *rc, const char *err, time_t now)
{
	pthread_mutex_lock(&a->lock);
	struct acme_cert *c = acme_cert_find(a, rc->name);
	if (c) {
		c->failures++;
		c->peer_ordering = false;
		long back = acme_plan_backoff(c->failures);
		c->retry_at = now + back;
		snprintf(c->last_error, sizeof(c->last_error), "%s", err);
		log_msg(LOG_WARN, "acme %s: %s; the current certificate stays, next attempt in %ld s", rc->name, err,
		        back);
	}
	pthread_mutex_unlock(&a->lock);
}

/* An order under the state folder's lock: the other gateway of a pair that
 * holds it is ordering, and its certificate is taken up when it lands. */
static void acme_issue(struct acme *a, const struct rules_config *cfg, const struct rules_cert *rc, time_t now)
{
	struct acme_run x = { .rc = rc, .state_dir = cfg->state_dir, .pause = acme_pause, .pause_arg = a };
	int lock = acme_store_lock(cfg->state_dir, rc->name, x.err, sizeof(x.err));
	if (lock == ACME_STORE_BUSY) {
		pthread_mutex_lock(&a->lock);
		struct acme_cert *c = acme_cert_find(a, rc->name);
		if (c && !c->peer_ordering)
			log_msg(LOG_INFO, "acme %s: another gateway sharing %s is ordering it; its certificate will be taken up",
			        rc->name, cfg->state_dir);
		if (c) {
			c->peer_ordering = true;
			c->retry_at = now + ACME_PEER_WAIT_S;
		}
		pthread_mutex_unlock(&a->lock);
		return;
	}
	if (lock < 0) {
		acme_failed(a, rc, x.err, now);
		return;
	}
	/* The peer may have finished between the last look and the lock. */
	if (acme_watch(a, cfg, rc)) {
		acme_store_unlock(lock);
		return;
	}
	log_msg(LOG_INFO, "acme %s: ordering a certificate for %zu name%s from %s", rc->name, rc->acme->nnames,
	        rc->acme->nnames == 1 ? "" : "s", rc->acme->directory);
	int rc_order = acme_order(&x);
	acme_run_clear(&x);
	struct certs_item *item = NULL;
	struct acme_store_stamp stamp;
	acme_store_stamp_read(cfg->state_dir, rc->name, &stamp);
	acme_store_unlock(lock);
	char why[400] = "";
	if (rc_order == 0 && !(item = acme_store_load(rc, cfg->state_dir, why, sizeof(why))))
		snprintf(x.err, sizeof(x.err), "the issued certificate does not load: %s", why);
	if (!item) {
		acme_failed(a, rc, x.err, now);
		return;
	}
	pthread_mutex_lock(&a->lock);
	struct acme_cert *c = acme_cert_find(a, rc->name);
	if (c) {
		char until[64];
		acme_time_text(certs_item_not_after(item), until, sizeof(until));
		c->stamp = stamp;
		acme_adopt(c, rc, item);
		item = NULL;
		log_msg(LOG_INFO, "acme %s: certificate issued, valid until %s, now served", rc->name, until);
	}
	pthread_mutex_unlock(&a->lock);
	certs_item_unref(item);
}

/* The CA's renewal window (RFC 9773), when its directory offers renewalInfo:
 * the renewal moves into it. Without one, two thirds of the lifetime stay. */
static void acme_ari(struct acme *a, const struct rules_config *cfg, const struct rules_cert *rc, time_t now)
{
	pthread_mutex_lock(&a->lock);
	struct acme_cert *c = acme_cert_find(a, rc->name);
	struct certs_item *item = c && c->ari_at <= now && acme_names_fit(c->item, rc->acme) ? certs_item_ref(c->item)
	                                                                                     : NULL;
	pthread_mutex_unlock(&a->lock);
	if (!item)
		return;
	struct acme_run x = { .rc = rc, .state_dir = cfg->state_dir, .pause = acme_pause, .pause_arg = a };
	time_t start = 0, end = 0;
	long retry = 0;
	int got = acme_renewal_window(&x, certs_item_leaf(item), &start, &end, &retry);
	acme_run_clear(&x);
	pthread_mutex_lock(&a->lock);
	c = acme_cert_find(a, rc->name);
	if (c && c->item == item) {
		if (got == 1) {
			bool moved = c->win_start != start || c->win_end != end;
			c->win_start = start;
			c->win_end = end;
			if (moved) {
				acme_plan_set(c, rc->acme);
				char from[64], to[64], at[64];
				acme_time_text(start, from, sizeof(from));
				acme_time_text(end, to, sizeof(to));
				acme_time_text(c->renew_at, at, sizeof(at));
				log_msg(LOG_INFO, "acme %s: the CA suggests renewing between %s and %s; renewal at %s", rc->name,
				        from, to, at);
			}
		} else if (got < 0)
			log_msg(LOG_INFO, "acme %s: renewal info: %s; the renewal stays as planned", rc->name, x.err);
		c->ari_at = now + (got == 1 ? (retry >= 60 && retry <= 86400 ? retry : ACME_ARI_DEFAULT_S)
		                            : got == 0 ? ACME_ARI_NONE_S : ACME_ARI_FAILED_S);
	}
	pthread_mutex_unlock(&a->lock);
	certs_item_unref(item);
}

/* What a certificate serves now: the ACME one issued (else 0: nothing to warn
 * about yet), or the file's. */
static time_t acme_serving_until(struct acme *a, const struct rules_cert *rc)
{
	if (!rc->acme)
		return rc->item ? certs_item_not_after(rc->item) : 0;
	pthread_mutex_lock(&a->lock);
	struct acme_cert *c = acme_cert_find(a, rc->name);
	time_t na = c && c->item && !certs_item_is_placeholder(c->item) ? certs_item_not_after(c->item) : 0;
	pthread_mutex_unlock(&a->lock);
	return na;
}

static int acme_warned_cmp(const void *x, const void *y)
{
	return strcmp(((const struct acme_warned *)x)->name, ((const struct acme_warned *)y)->name);
}

/* A warning in the log when a certificate, file or ACME, passes 30, 14 and 7
 * days before it expires: once per threshold, again for the next certificate.
 * What was warned is kept sorted by name: a search per certificate, so that a
 * pass over 10,000 certificates takes milliseconds, not a second. */
static void acme_expiry_warn(struct acme *a, const struct rules_config *cfg, time_t now)
{
	size_t sorted = a->nwarned;
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		time_t na = acme_serving_until(a, rc);
		if (!na)
			continue;
		int level = acme_plan_warn_level(na, now);
		struct acme_warned key = { .name = rc->name };
		/* Names are unique in a rule file: one added in this pass is not looked for again. */
		struct acme_warned *w = sorted ? bsearch(&key, a->warned, sorted, sizeof(*a->warned), acme_warned_cmp) : NULL;
		if (!w) {
			if (a->nwarned == a->warned_cap) {
				size_t cap = a->warned_cap ? 2 * a->warned_cap : 16;
				struct acme_warned *n = realloc(a->warned, cap * sizeof(*n));
				if (!n)
					continue;
				a->warned = n;
				a->warned_cap = cap;
			}
			w = &a->warned[a->nwarned];
			*w = (struct acme_warned){ strdup(rc->name), na, 0 };
			if (!w->name)
				continue;
			a->nwarned++;
		}
		if (w->not_after != na) {
			w->not_after = na;
			w->level = 0;
		}
		if (level <= w->level)
			continue;
		w->level = level;
		char when[64];
		struct tm tm;
		gmtime_r(&na, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
		long left = (long)(na - now);
		log_msg(LOG_WARN, "certificate %s expires on %s, in %ld days%s%s", rc->name, when,
		        left > 0 ? left / 86400 : 0L,
		        rc->acme ? "; ACME renews it (see onegate certs list)" : "; replace its file and reload",
		        left <= 0 ? " (it has expired)" : "");
	}
	if (a->nwarned > sorted)
		qsort(a->warned, a->nwarned, sizeof(*a->warned), acme_warned_cmp);
}

/* One pass over the ACME certificates; the time of the next pass. */
static time_t acme_pass(struct acme *a, const struct rules_config *cfg, time_t now)
{
	time_t next = now + ACME_WATCH_S;
	for (size_t i = 0; i < cfg->ncerts; i++) {
		const struct rules_cert *rc = &cfg->certs[i];
		if (!rc->acme)
			continue;
		pthread_mutex_lock(&a->lock);
		bool stop = a->stop;
		pthread_mutex_unlock(&a->lock);
		if (stop)
			break;
		acme_watch(a, cfg, rc);
		acme_ari(a, cfg, rc, now);
		pthread_mutex_lock(&a->lock);
		struct acme_cert *c = acme_cert_find(a, rc->name);
		time_t due = c ? acme_due(c) : next;
		pthread_mutex_unlock(&a->lock);
		if (due <= now) {
			acme_issue(a, cfg, rc, now);
			now = time(NULL);
			pthread_mutex_lock(&a->lock);
			c = acme_cert_find(a, rc->name);
			due = c ? acme_due(c) : next;
			pthread_mutex_unlock(&a->lock);
		}
		if (due < next)
			next = due;
	}
	return next;
}

static void *acme_main(void *arg)
{
	struct acme *a = arg;
	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		struct rules_config *cfg = rules_config_ref(a->cfg);
		bool changed = a->cfg_changed;
		a->cfg_changed = false;
		pthread_mutex_unlock(&a->lock);
		if (changed)
			acme_sync(a, cfg);
		time_t now = time(NULL);
		time_t next = acme_pass(a, cfg, now);
		now = time(NULL);
		acme_expiry_warn(a, cfg, now);
		rules_config_unref(cfg);
		struct timespec ts = { next > now ? next : now + 1, 0 };
		pthread_mutex_lock(&a->lock);
		while (!a->stop && !a->cfg_changed && pthread_cond_timedwait(&a->wake, &a->lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}
struct acme *acme_start(struct rules_config *cfg)
{
	struct acme *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	a->cfg = rules_config_ref(cfg);
	acme_sync(a, cfg);
	if (pthread_create(&a->thread, NULL, acme_main, a) != 0) {
		log_msg(LOG_ERROR, "cannot start the ACME thread");
		rules_config_unref(a->cfg);
		free(a);
		return NULL;
	}
	pthread_mutex_lock(&acme_current_lock);
	acme_current = a;
	pthread_mutex_unlock(&acme_current_lock);
	return a;
}

void acme_reload(struct acme *a, struct rules_config *cfg)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	struct rules_config *old = a->cfg;
	a->cfg = rules_config_ref(cfg);
	a->cfg_changed = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	rules_config_unref(old);
}

void acme_stop(struct acme *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&acme_current_lock);
	if (acme_current == a)
		acme_current = NULL;
	pthread_mutex_unlock(&acme_current_lock);
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	acme_chal_folder(NULL);
	for (size_t i = 0; i < a->ncerts; i++) {
		certs_item_unref(a->certs[i].item);
		free(a->certs[i].name);
	}
	free(a->certs);
	for (size_t i = 0; i < a->nwarned; i++)
		free(a->warned[i].name);
	free(a->warned);
	rules_config_unref(a->cfg);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

bool acme_cert_view(const char *name, struct acme_cert_view *v)
{
	memset(v, 0, sizeof(*v));
	bool found = false;
	pthread_mutex_lock(&acme_current_lock);
	struct acme *a = acme_current;
	if (a) {
		pthread_mutex_lock(&a->lock);
		const struct acme_cert *c = acme_cert_find(a, name);
		if (c) {
			found = true;
			v->issued = c->item && !certs_item_is_placeholder(c->item);
			v->not_after = v->issued ? certs_item_not_after(c->item) : 0;
			v->next_attempt = c->renew_at > c->retry_at ? c->renew_at : c->retry_at;
			v->failures = c->failures;
			snprintf(v->last_error, sizeof(v->last_error), "%s", c->last_error);
		}
		pthread_mutex_unlock(&a->lock);
	}
	pthread_mutex_unlock(&acme_current_lock);
	return found;
}
