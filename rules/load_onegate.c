/*
 * load_onegate.c - the onegate group: the admin listener, the log, the user
 * and group onegate runs as, and its state folder.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "load.h"

/* Loopback by default; anywhere else only behind a token, since the API drains and disables servers. */
void rules_set_admin(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	struct rules_admin *a = &L->cfg->admin;
	struct rules_admin_entry en = { 0 };
	char err[512];
	if (!config_setting_is_group(s)) {
		rules_error(L, s, "admin must be a group: admin = { listen = \"127.0.0.1:8404\"; };");
		return;
	}
	rules_section_apply(L, s, RULES_G_ADMIN, &en);
	a->line = config_setting_source_line(s);
	const config_setting_t *ls = config_setting_get_member(s, "listen");
	/* No listen: its setter said why. */
	if (en.listen && rules_addr_parse(en.listen, &a->listen, NULL, NULL, err, sizeof(err)) < 0) {
		rules_error(L, ls ? ls : s, "%s", err);
	} else if (en.listen) {
		a->on = true;
		rules_listen_claim(L, ls ? ls : s, &a->listen);
	}
	a->token_file = en.token_file;
	rules_path_resolve(L, s, &a->token_file);
	if (a->on && !a->token_file && !rules_addr_loopback(&a->listen))
		rules_error(L, ls, "the admin listener on %s is not loopback, so it needs a token: token_file = \"admin.token\";",
		            a->listen.text);
	free(en.listen);
}

const int rules_facility_codes[RULES_FACILITIES] = { 3, 1, 16, 17, 18, 19, 20, 21, 22, 23 };

void rules_set_facility(struct rules_load *L, const config_setting_t *s, void *field)
{
	int i = rules_word(L, s, L->key->words);
	if (i >= 0)
		*(int *)field = rules_facility_codes[i];
}

/* A syslog target is a local datagram socket (a path) or a UDP collector (HOST:PORT). */
static void rules_log_syslog(struct rules_load *L, const config_setting_t *s, struct rules_log *lg)
{
	char err[512];
	if (lg->syslog[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&lg->syslog_ss;
		struct stat st;
		if (strlen(lg->syslog) >= sizeof(un->sun_path)) {
			rules_error(L, s, "syslog path \"%s\" is too long for a socket path", lg->syslog);
			return;
		}
		/* Missing may only mean this is not the machine it runs on; onegate run refuses to start then. */
		if (stat(lg->syslog, &st) != 0)
			rules_warn(L, s, "syslog = \"%s\": %s; is a syslog daemon (rsyslog, systemd-journald) running here?",
			           lg->syslog, strerror(errno));
		else if (!S_ISSOCK(st.st_mode)) {
			rules_error(L, s, "syslog = \"%s\" is not a socket; name the syslog socket (\"/dev/log\") or log to a "
			            "file: file = \"/var/log/onegate/onegate.log\";", lg->syslog);
			return;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, lg->syslog, strlen(lg->syslog) + 1);
		lg->syslog_len = (socklen_t)sizeof(*un);
		return;
	}
	struct rules_addr a = { 0 };
	if (rules_addr_parse(lg->syslog, &a, NULL, NULL, err, sizeof(err)) < 0) {
		rules_error(L, s, "syslog: %s (a local socket path like \"/dev/log\" or a UDP collector HOST:PORT)", err);
		return;
	}
	lg->syslog_ss = a.ss;
	lg->syslog_len = a.len;
	rules_addr_clear(&a);
}

/* s NULL: onegate has no log group, and every key takes its default. */
void rules_set_log(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	struct rules_log *lg = &L->cfg->log;
	struct rules_log_entry en = { 0 };
	if (s && !config_setting_is_group(s)) {
		rules_error(L, s, "log must be a group: log = { level = \"info\"; file = \"/var/log/onegate/onegate.log\"; };");
		return;
	}
	rules_section_apply(L, s, RULES_G_LOG, &en);
	lg->line = s ? config_setting_source_line(s) : 0;
	lg->level = (enum rules_log_level)en.level;
	lg->access = en.access;
	lg->facility = en.facility;
	lg->file = en.file;
	lg->syslog = en.syslog;
	if (lg->file && lg->syslog) {
		rules_error(L, s, "log has both file and syslog; onegate writes to one of them: keep one");
		return;
	}
	if (!s)
		return;
	rules_path_resolve(L, s, &lg->file);
	if (lg->syslog)
		rules_log_syslog(L, config_setting_get_member(s, "syslog"), lg);
	if (config_setting_get_member(s, "facility") && !lg->syslog)
		rules_warn(L, config_setting_get_member(s, "facility"), "facility only matters with syslog = \"/dev/log\";");
}

/* Names are looked up at load, so a typo fails the check and not the start. */
void rules_set_user(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	struct rules_identity *id = &L->cfg->run_as;
	rules_set_string(L, s, &id->user);
	if (!id->user)
		return;
	id->line = config_setting_source_line(s);
	struct passwd *pw = getpwnam(id->user);
	if (!pw) {
		rules_error(L, s, "there is no user \"%s\" on this system: create it (useradd --system --no-create-home "
		            "--shell /usr/sbin/nologin %s) or name another", id->user, id->user);
		return;
	}
	if (pw->pw_uid == 0) {
		rules_error(L, s, "user \"%s\" is root; name an unprivileged user, or leave user out to stay as started",
		            id->user);
		return;
	}
	id->uid = pw->pw_uid;
	if (!id->group)
		id->gid = pw->pw_gid;
}

void rules_set_group(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	struct rules_identity *id = &L->cfg->run_as;
	rules_set_string(L, s, &id->group);
	if (!id->group)
		return;
	struct group *gr = getgrnam(id->group);
	if (!gr)
		rules_error(L, s, "there is no group \"%s\" on this system: create it (groupadd --system %s) or name another",
		            id->group, id->group);
	else
		id->gid = gr->gr_gid;
}

void rules_set_state(struct rules_load *L, const config_setting_t *s, void *field)
{
	(void)field;
	rules_set_string(L, s, &L->cfg->state_dir);
	rules_path_resolve(L, s, &L->cfg->state_dir);
	struct stat st;
	if (L->cfg->state_dir && stat(L->cfg->state_dir, &st) == 0 && !S_ISDIR(st.st_mode))
		rules_error(L, s, "state = \"%s\" is not a folder; name a folder (onegate creates it when missing)",
		            L->cfg->state_dir);
}

/* s NULL: the file has no onegate group, and every key takes its default. */
void rules_set_onegate(struct rules_load *L, const config_setting_t *s, void *field)
{
	if (s && !config_setting_is_group(s)) {
		rules_error(L, s, "onegate must be a group: onegate = { workers = 0; };");
		return;
	}
	rules_section_apply(L, s, RULES_G_ONEGATE, field);
	if (!s || !config_setting_get_member(s, "log"))
		rules_set_log(L, NULL, NULL);
}
