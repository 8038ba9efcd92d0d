/*
 * log.h - one line per event, written with a single write() or send() so that
 * lines from several workers never interleave.
 *
 * Lines go to stderr until log_configure() names a file (appended to; it then
 * takes stderr's place, so stray library output lands there too) or a syslog
 * target (a local datagram socket such as /dev/log, or a UDP collector; RFC
 * 3164 lines). Any thread may log at any time, including while the daemon
 * switches targets: descriptors that a logging thread may hold are replaced
 * with dup2(), never closed.
 *
 * Access lines of worker threads to a regular file are the exception to one
 * write per line: see log_access_line().
 */
#ifndef ONEGATE_LOG_H
#define ONEGATE_LOG_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
/* -d on the command line: debug lines whatever level the rule file names. */
void log_force_debug(void);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Per-request lines (http/tcp access lines) are written only while this is on. */
void log_set_access(bool on);
bool log_access_enabled(void);
/* One access line at level info. On a thread that called log_buffer_start() and while a regular
 * file is the target, lines gather in that thread's buffer and go out in one append when it is full
 * or at log_buffer_flush(); otherwise each is written at once, like log_msg(). */
void log_access_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A worker thread's access-line buffer: started on the thread, flushed by its loop at least
 * every LOG_BUFFER_FLUSH_MS (so a crash loses at most that much), ended (flushed and freed) when
 * the thread stops. Without memory for it the thread writes each line at once. Lines written
 * after a SIGUSR1 reopen land in the new file, each whole. */
#define LOG_BUFFER_FLUSH_MS 500

/* An access line built piece by piece, for the line of every request: printf's generic
 * formatting was most of what logging a request cost (about 5,800 of 7,900 instructions).
 * Pieces that do not fit are cut; log_line_write() writes it as log_access_line() would. */
struct log_line {
	size_t len;
	char text[2000];
};
void log_line_str(struct log_line *l, const char *s);
void log_line_uint(struct log_line *l, unsigned long long v);
void log_line_int(struct log_line *l, long long v);
void log_line_write(const struct log_line *l);
void log_buffer_start(void);
void log_buffer_flush(void);
void log_buffer_end(void);

struct log_target {
	const char *file;               /* append to this file, or NULL */
	const struct sockaddr *syslog;  /* or send to this syslog socket, or NULL */
	socklen_t syslog_len;
	int facility;                   /* syslog facility code */
	uid_t owner;                    /* a file this call creates is given to owner/group; (uid_t)-1: left as is */
	gid_t group;
};

/* Switches where lines go. Everything new is opened first: on failure nothing
 * changes and err says why. A file that is already the target is kept open
 * (log_reopen() is for rotation). */
int log_configure(const struct log_target *t, char *err, size_t errlen);
/* SIGUSR1 after logrotate moved the file: opens it anew by name. On failure the
 * old descriptor keeps being written and err says why. No-op unless a file is the target. */
int log_reopen(char *err, size_t errlen);

#endif
