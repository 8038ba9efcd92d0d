/*
 * notify.h - systemd's readiness protocol without libsystemd: one datagram
 * per state change ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...")
 * to the AF_UNIX socket named in $NOTIFY_SOCKET (a path, or '@' for an
 * abstract name). Without that variable nothing is sent: onegate runs the
 * same under any supervisor.
 */
#ifndef ONEGATE_NOTIFY_H
#define ONEGATE_NOTIFY_H

/* Sends state (newline-separated assignments). 0 when sent or when there is
 * no socket to send to; -1 (errno set) when the socket named cannot take it. */
int notify_send(const char *state);

#endif
