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
#include <string.h>
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
 * formatting was most of what logging a request cost (about 5,800 of 7,900 instructions), and
 * building it apart and copying it into the buffer most of what was left. Between
 * log_line_begin() and log_line_end() the pieces go straight into the thread's buffer when
 * log_access_line() would put a line there, else into the line's own room, written at once at
 * the end; the thread logs nothing else in between. Pieces that do not fit are cut. */
#define LOG_LINE_MAX 2048
struct log_line {
	char *at;               /* where the next piece goes */
	char *end;              /* where the room ends */
	bool buffered;          /* at points into the thread's buffer */
	char own[LOG_LINE_MAX];
};
/* False when access lines are not written (level above info): then the line is left alone. */
bool log_line_begin(struct log_line *l);
/* The end of a line that does not fit. */
void log_line_cut(struct log_line *l, const char *s);
static inline void log_line_mem(struct log_line *l, const char *s, size_t n)
{
	/* Apart from the cut, so that a copy of a length known where it is written stays a few moves. */
	if (n > (size_t)(l->end - l->at)) {
		log_line_cut(l, s);
		return;
	}
	memcpy(l->at, s, n);
	l->at += n;
}
/* A string literal: its length is known where it is written, so the copy is a few moves. */
#define log_line_lit(l, s) log_line_mem((l), "" s, sizeof(s) - 1)
static inline void log_line_str(struct log_line *l, const char *s)
{
	log_line_mem(l, s, strlen(s));
}
/* Numbers of two digits and more; log_line_uint() is what callers call. */
void log_line_digits(struct log_line *l, unsigned long long v);
/* One digit is most numbers of a line (times in ms, retries): written here, without a call. */
static inline void log_line_uint(struct log_line *l, unsigned long long v)
{
	if (v < 10 && l->at < l->end)
		*l->at++ = (char)('0' + v);
	else
		log_line_digits(l, v);
}
static inline void log_line_int(struct log_line *l, long long v)
{
	if (v < 0) {
		log_line_lit(l, "-");
		log_line_uint(l, 0ULL - (unsigned long long)v);
	} else {
		log_line_uint(l, (unsigned long long)v);
	}
}
void log_line_end(struct log_line *l);
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
