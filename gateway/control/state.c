#include "control/state.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "io/log.h"
#include "proxy/pool.h"
#include "rules.h"

#define STATE_PID "onegate.pid"
#define STATE_SERVERS "servers.state"

/* Another onegate alive on this pid file, or 0. */
static long state_pid_alive(const char *dir)
{
	char path[4096], comm[64] = "";
	snprintf(path, sizeof(path), "%s/" STATE_PID, dir);
	FILE *f = fopen(path, "r");
	long pid = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0 || pid == (long)getpid() || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
		return 0;
	/* A pid reused by some other program is not a running gateway. */
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if (!(f = fopen(path, "r")))
		return 0;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return strncmp(comm, "onegate", 7) == 0 ? pid : 0;
}

int state_prepare(const char *dir, uid_t owner, gid_t group, char *err, size_t errlen)
{
	if (mkdir(dir, 0750) == 0) {
		if (owner != (uid_t)-1 && chown(dir, owner, group) != 0) {
			snprintf(err, errlen, "state folder %s: cannot give it to the user onegate runs as: %s", dir,
			         strerror(errno));
			return -1;
		}
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create the state folder %s: %s (create its parent, or name another folder)",
		         dir, strerror(errno));
		return -1;
	}
	long pid = state_pid_alive(dir);
	if (pid) {
		snprintf(err, errlen, "another onegate (pid %ld) is running with the state folder %s; stop it, or give "
		         "this one its own state folder", pid, dir);
		return -1;
	}
	return 0;
}

/* Writes text to dir/name through a temporary file and a rename. */
static int state_replace(const char *dir, const char *name, const char *text, size_t len, char *err, size_t errlen)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "cannot write %s: %s (the state folder must be writable by the user onegate "
		         "runs as)", path, strerror(errno));
		return -1;
	}
	ssize_t w = write(fd, text, len);
	int bad = w != (ssize_t)len || fsync(fd) != 0;
	int saved = errno;
	if (close(fd) != 0 || bad || rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(bad ? saved : errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int state_pid_write(const char *dir, char *err, size_t errlen)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	return state_replace(dir, STATE_PID, text, (size_t)n, err, errlen);
}

void state_pid_remove(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/" STATE_PID, dir);
	unlink(path);
}

/* One line per server out of rotation: ACTION TAB POOL TAB SERVER. Names with a
 * tab or a line break cannot be written back unambiguously and are skipped. */
void state_servers_save(const struct pool_table *t, const char *dir)
{
	const struct rules_config *cfg = pool_table_config(t);
	char *text = NULL, err[600];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f) {
		log_msg(LOG_ERROR, "cannot save server states: out of memory");
		return;
	}
	fprintf(f, "# onegate: servers an admin took out of rotation; read at start\n");
	for (size_t p = 0; p < cfg->npools; p++)
		for (size_t s = 0; s < cfg->pools[p].nservers; s++) {
			struct pool_server_view v;
			pool_server_view(t, p, s, &v);
			const char *pn = cfg->pools[p].name, *sn = cfg->pools[p].servers[s].name;
			if (v.admin == POOL_ADMIN_ENABLED || strpbrk(pn, "\t\r\n") || strpbrk(sn, "\t\r\n"))
				continue;
			fprintf(f, "%s\t%s\t%s\n", v.admin == POOL_ADMIN_DRAINING ? "drain" : "disable", pn, sn);
		}
	if (fclose(f) != 0 || !text) {
		log_msg(LOG_ERROR, "cannot save server states: out of memory");
	} else if (state_replace(dir, STATE_SERVERS, text, len, err, sizeof(err)) != 0) {
		log_msg(LOG_ERROR, "%s; the change applies until onegate restarts", err);
	}
	free(text);
}

void state_servers_restore(const struct pool_table *t, const char *dir)
{
	const struct rules_config *cfg = pool_table_config(t);
	char path[4096], line[1200];
	snprintf(path, sizeof(path), "%s/" STATE_SERVERS, dir);
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno != ENOENT)
			log_msg(LOG_WARN, "cannot read %s: %s; every server starts enabled", path, strerror(errno));
		return;
	}
	for (int no = 1; fgets(line, sizeof(line), f); no++) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\r\n")] = '\0';
		char *pool = strchr(line, '\t'), *server = pool ? strchr(pool + 1, '\t') : NULL;
		if (!server) {
			log_msg(LOG_WARN, "%s:%d: not ACTION<TAB>POOL<TAB>SERVER; line skipped", path, no);
			continue;
		}
		*pool++ = '\0';
		*server++ = '\0';
		enum pool_admin a = strcmp(line, "drain") == 0 ? POOL_ADMIN_DRAINING : POOL_ADMIN_DISABLED;
		long p = rules_pool_find(cfg, pool);
		long s = p >= 0 ? pool_server_find(t, (size_t)p, server) : -1;
		if (s < 0 || (strcmp(line, "drain") != 0 && strcmp(line, "disable") != 0)) {
			log_msg(LOG_WARN, "%s:%d: %s %s/%s is not in the rules any more; skipped", path, no, line, pool, server);
			continue;
		}
		pool_server_set_admin(t, (size_t)p, (size_t)s, a);
	}
	fclose(f);
}
