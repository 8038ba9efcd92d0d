#include "io/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "schema.h"

static int log_threshold = LOG_INFO;
static bool log_level_forced;
static bool log_access = true;
/* The syslog socket: a descriptor number that stays valid for the life of the
 * process once made, so a thread that read it never writes to a reused number. */
static int log_syslog_fd = -1;
static bool log_to_syslog;
static int log_facility = 3;
/* Only the daemon's thread touches these. */
static int log_stderr_saved = -1;       /* the original stderr while a file stands in for it */
static char *log_file_path;

/* A line's level is named by the rule file's word for it. */
_Static_assert(LOG_ERROR == (int)RULES_LOG_ERROR && LOG_WARN == (int)RULES_LOG_WARN &&
               LOG_INFO == (int)RULES_LOG_INFO && LOG_DEBUG == (int)RULES_LOG_DEBUG,
               "gateway's log levels are the rule file's, in its order");

/* True while a regular file is the target: only then do access lines wait in a thread's buffer
 * (stderr may be a terminal or journald, read as it comes; syslog takes one datagram per line; an
 * append to a regular file stays whole at any size, a write to a pipe only up to PIPE_BUF). */
static bool log_to_file;
static bool log_file_regular;           /* the daemon's thread's: what log_to_file becomes for the file */

/* 64 KiB: one append per few hundred lines. Holds whole lines only, so any write of it keeps
 * lines whole; a line is at most LOG_LINE_MAX. */
#define LOG_BUF_SIZE 65536
struct log_buffer {
	size_t len;
	time_t stamp_sec;               /* the second stamp[] was made for */
	size_t stamp_len;
	char stamp[64];                 /* "2026-12-07T00:01:02.000Z info " (room for any int the compiler imagines) */
	char data[LOG_BUF_SIZE];
};
static _Thread_local struct log_buffer *log_buf;

static const int log_severity[] = { 3, 4, 6, 7 };        /* RFC 5424: err, warning, info, debug */

void log_set_level(enum log_level level)
{
	if (!log_level_forced)
		__atomic_store_n(&log_threshold, (int)level, __ATOMIC_RELAXED);
}

void log_force_debug(void)
{
	log_level_forced = true;
	__atomic_store_n(&log_threshold, LOG_DEBUG, __ATOMIC_RELAXED);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= __atomic_load_n(&log_threshold, __ATOMIC_RELAXED);
}

void log_set_access(bool on)
{
	__atomic_store_n(&log_access, on, __ATOMIC_RELAXED);
}

bool log_access_enabled(void)
{
	return __atomic_load_n(&log_access, __ATOMIC_RELAXED);
}

static void log_syslog_line(enum log_level level, const char *msg, size_t len)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	char line[2200];
	struct tm tm;
	time_t now = time(NULL);
	localtime_r(&now, &tm);
	int n = snprintf(line, sizeof(line), "<%d>%s %2d %02d:%02d:%02d onegate[%ld]: %.*s",
	                 __atomic_load_n(&log_facility, __ATOMIC_RELAXED) * 8 + log_severity[level], mon[tm.tm_mon],
	                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)getpid(), (int)len, msg);
	size_t out = n < 0 ? 0 : (size_t)n >= sizeof(line) ? sizeof(line) - 1 : (size_t)n;
	/* A full or absent syslog socket must not stall a worker: the line is dropped. */
	ssize_t w = send(__atomic_load_n(&log_syslog_fd, __ATOMIC_ACQUIRE), line, out, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)w;
}

/* All of len, on the current target, in as few writes as it takes. */
static void log_write_all(const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(STDERR_FILENO, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;         /* a full disk drops lines; nothing better to do with them */
		p += w;
		len -= (size_t)w;
	}
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

void log_buffer_start(void)
{
	if (!log_buf)
		log_buf = calloc(1, sizeof(*log_buf));
}

void log_buffer_flush(void)
{
	if (log_buf && log_buf->len) {
		log_write_all(log_buf->data, log_buf->len);
		log_buf->len = 0;
	}
}

void log_buffer_end(void)
{
	log_buffer_flush();
	free(log_buf);
	log_buf = NULL;
}

/* The room for the next line at the end of b, the line's date, time and level already in it;
 * *n is their length. */
static char *log_line_start(struct log_buffer *b, size_t *n)
{
	if (LOG_BUF_SIZE - b->len < LOG_LINE_MAX)
		log_buffer_flush();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* The date and time change once a second; formatting them is most of a line's cost. */
	if (ts.tv_sec != b->stamp_sec || !b->stamp_len) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		int k = snprintf(b->stamp, sizeof(b->stamp), "%04d-%02d-%02dT%02d:%02d:%02d.000Z info ",
		                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		if (k < (int)sizeof("000Z info ") || (size_t)k >= sizeof(b->stamp))
			k = snprintf(b->stamp, sizeof(b->stamp), "0000-00-00T00:00:00.000Z info ");
		b->stamp_len = (size_t)k;
		b->stamp_sec = ts.tv_sec;
	}
	/* All of stamp[], a length the compiler knows, is a few moves; the line has room for it. */
	char *line = b->data + b->len;
	memcpy(line, b->stamp, sizeof(b->stamp));
	char *ms = line + b->stamp_len - sizeof("000Z info ") + 1;
	unsigned m = (unsigned)(ts.tv_nsec / 1000000);
	ms[0] = (char)('0' + m / 100);
	ms[1] = (char)('0' + m / 10 % 10);
	ms[2] = (char)('0' + m % 10);
	*n = b->stamp_len;
	return line;
}

/* Takes in the line of n bytes that log_line_start() began. */
static void log_buffer_commit(struct log_buffer *b, char *line, size_t n)
{
	if (n > LOG_LINE_MAX - 2)
		n = LOG_LINE_MAX - 2;
	line[n++] = '\n';
	b->len += n;
}

static bool log_buffered(void)
{
	return log_buf && __atomic_load_n(&log_to_file, __ATOMIC_ACQUIRE);
}

void log_access_line(const char *fmt, ...)
{
	if (!log_enabled(LOG_INFO))
		return;
	va_list ap;
	va_start(ap, fmt);
	if (!log_buffered()) {
		log_buffer_flush();
		log_vmsg(LOG_INFO, fmt, ap);
		va_end(ap);
		return;
	}
	size_t n;
	char *line = log_line_start(log_buf, &n);
	int m = vsnprintf(line + n, LOG_LINE_MAX - n - 1, fmt, ap);
	va_end(ap);
	log_buffer_commit(log_buf, line, n + (m < 0 ? 0 : (size_t)m));
}

bool log_line_begin(struct log_line *l)
{
	if (!log_enabled(LOG_INFO))
		return false;
	l->buffered = log_buffered();
	if (!l->buffered) {
		l->at = l->own;
		l->end = l->own + sizeof(l->own);
		return true;
	}
	size_t n;
	char *line = log_line_start(log_buf, &n);
	l->at = line + n;
	l->end = line + LOG_LINE_MAX - 1;       /* the newline's byte stays free */
	return true;
}

void log_line_cut(struct log_line *l, const char *s)
{
	size_t room = (size_t)(l->end - l->at);
	memcpy(l->at, s, room);
	l->at += room;
}

/* Numbers in a line are short: their digits are counted first, by comparisons, then written in
 * place from the last, two at a time from a table, so a number costs a few instructions a digit. */
static const unsigned long long log_pow10[20] = {
	1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL,
	1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL, 10000000000000ULL,
	100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
	1000000000000000000ULL, 10000000000000000000ULL,
};
static const char log_digit_pairs[] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

void log_line_digits(struct log_line *l, unsigned long long v)
{
	size_t n = 1;
	while (n < 20 && v >= log_pow10[n])
		n++;
	char digits[20];
	char *to = n <= (size_t)(l->end - l->at) ? l->at : digits;
	char *p = to + n;
	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;
		v /= 100;
		*--p = log_digit_pairs[d + 1];
		*--p = log_digit_pairs[d];
	}
	if (v >= 10) {
		*--p = log_digit_pairs[v * 2 + 1];
		*--p = log_digit_pairs[v * 2];
	} else {
		*--p = (char)('0' + v);
	}
	if (to == digits)
		log_line_cut(l, digits);
	else
		l->at += n;
}

void log_line_end(struct log_line *l)
{
	if (!l->buffered) {
		log_access_line("%.*s", (int)(l->at - l->own), l->own);
		return;
	}
	*l->at++ = '\n';
	log_buf->len = (size_t)(l->at - log_buf->data);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	bool sys = __atomic_load_n(&log_to_syslog, __ATOMIC_ACQUIRE);
	int n = 0;
	if (!sys) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
		             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		             rules_words_log_level[level]);
	}
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	if (sys) {
		log_syslog_line(level, line, len);
		return;
	}
	line[len++] = '\n';
	/* One write per line: O_APPEND and pipes below PIPE_BUF keep lines whole across workers. */
	log_write_all(line, len);
}

/* Creates the file for its owner-to-be, so the unprivileged user can reopen it after rotation. */
static int log_file_open(const char *path, uid_t owner, gid_t group, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd >= 0) {
		if (owner != (uid_t)-1 && fchown(fd, owner, group) != 0) {
			snprintf(err, errlen, "cannot give the log file %s to the user onegate runs as: %s", path,
			         strerror(errno));
			close(fd);
			unlink(path);
			return -1;
		}
		return fd;
	}
	if (errno == EEXIST)
		fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open the log file %s: %s%s", path, strerror(errno),
		         errno == EACCES ? " (onegate must be able to write it and, for rotation, its folder)" : "");
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
		snprintf(err, errlen, "the log file %s is not a regular file", path);
		close(fd);
		return -1;
	}
	return fd;
}

static int log_syslog_open(const struct log_target *t, char *err, size_t errlen)
{
	int fd = socket(t->syslog->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, t->syslog, t->syslog_len) != 0) {
		snprintf(err, errlen, "cannot reach the syslog socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Puts fd where stderr was; the original is kept to go back to. */
static int log_redirect_stderr(int fd, char *err, size_t errlen)
{
	if (log_stderr_saved < 0 && (log_stderr_saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)) < 0) {
		snprintf(err, errlen, "cannot keep stderr: %s", strerror(errno));
		return -1;
	}
	if (dup2(fd, STDERR_FILENO) < 0) {
		snprintf(err, errlen, "cannot switch the log to the file: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int log_configure(const struct log_target *t, char *err, size_t errlen)
{
	if (t->file && log_file_path && strcmp(t->file, log_file_path) == 0) {
		__atomic_store_n(&log_to_syslog, false, __ATOMIC_RELEASE);
		__atomic_store_n(&log_to_file, log_file_regular, __ATOMIC_RELEASE);
		return 0;
	}
	int fd = -1;
	char *path = NULL;
	if (t->file) {
		if (!(path = strdup(t->file))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if ((fd = log_file_open(t->file, t->owner, t->group, err, errlen)) < 0) {
			free(path);
			return -1;
		}
		if (log_redirect_stderr(fd, err, errlen) != 0) {
			close(fd);
			free(path);
			return -1;
		}
		struct stat st;
		log_file_regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
		close(fd);
		__atomic_store_n(&log_to_syslog, false, __ATOMIC_RELEASE);
		__atomic_store_n(&log_to_file, log_file_regular, __ATOMIC_RELEASE);
	} else if (t->syslog) {
		__atomic_store_n(&log_to_file, false, __ATOMIC_RELEASE);
		if ((fd = log_syslog_open(t, err, errlen)) < 0)
			return -1;
		if (log_syslog_fd < 0) {
			__atomic_store_n(&log_syslog_fd, fd, __ATOMIC_RELEASE);
		} else {
			dup2(fd, log_syslog_fd);
			close(fd);
		}
		__atomic_store_n(&log_facility, t->facility, __ATOMIC_RELAXED);
		__atomic_store_n(&log_to_syslog, true, __ATOMIC_RELEASE);
		if (log_stderr_saved >= 0)
			dup2(log_stderr_saved, STDERR_FILENO);
	} else {
		__atomic_store_n(&log_to_file, false, __ATOMIC_RELEASE);
		__atomic_store_n(&log_to_syslog, false, __ATOMIC_RELEASE);
		if (log_stderr_saved >= 0)
			dup2(log_stderr_saved, STDERR_FILENO);
	}
	free(log_file_path);
	log_file_path = path;
	return 0;
}

int log_reopen(char *err, size_t errlen)
{
	if (!log_file_path || __atomic_load_n(&log_to_syslog, __ATOMIC_ACQUIRE))
		return 0;
	int fd = log_file_open(log_file_path, (uid_t)-1, (gid_t)-1, err, errlen);
	if (fd < 0)
		return -1;
	int rc = log_redirect_stderr(fd, err, errlen);
	struct stat st;
	if (rc == 0) {
		log_file_regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
		__atomic_store_n(&log_to_file, log_file_regular, __ATOMIC_RELEASE);
	}
	close(fd);
	return rc;
}
