#include "proxy/home.h"

#include <stdlib.h>

#include "proxy/pool.h"
#include "rules.h"
#include "proxy/tlsconf.h"

struct home_snap *home_snap_new(struct rules_config *cfg, struct tlsconf *tls, struct pool_table *pools)
{
	struct home_snap *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (!(s->cursor = pool_cursor_new(pools))) {
		free(s);
		return NULL;
	}
	s->cfg = rules_config_ref(cfg);
	s->tls = tlsconf_ref(tls);
	s->pools = pool_table_ref(pools);
	s->refs = 1;
	return s;
}

void home_snap_unref(struct home_snap *s)
{
	if (!s || --s->refs > 0)
		return;
	rules_config_unref(s->cfg);
	tlsconf_unref(s->tls);
	pool_cursor_free(s->cursor);
	pool_table_unref(s->pools);
	free(s);
}

static void home_list_add(struct home_link **head, struct home_link *l)
{
	l->prev = NULL;
	l->next = *head;
	if (*head)
		(*head)->prev = l;
	*head = l;
}

static void home_list_remove(struct home_link **head, struct home_link *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		*head = l->next;
	if (l->next)
		l->next->prev = l->prev;
}

void home_live_add(struct home *home, struct home_link *l)
{
	home_list_add(&home->live, l);
	home->nlive++;
}

void home_live_remove(struct home *home, struct home_link *l)
{
	home_list_remove(&home->live, l);
	home->nlive--;
	if (home->nlive == 0 && home->on_empty)
		home->on_empty(home->on_empty_arg);
}

void home_idle_add(struct home *home, struct home_link *l)
{
	home_list_add(&home->idle, l);
	home->nidle++;
}

void home_idle_remove(struct home *home, struct home_link *l)
{
	home_list_remove(&home->idle, l);
	home->nidle--;
}

void home_close_all(struct home *home)
{
	while (home->live)
		home->live->close_now(home->live);
	while (home->idle)
		home->idle->close_now(home->idle);
}
