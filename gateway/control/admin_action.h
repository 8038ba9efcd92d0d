/*
 * admin_action.h - server actions: POST /api/pools/POOL/servers/SERVER/
 * drain|enable|disable sets the server's admin state in the live pool table
 * (kept across reloads, saved in the state folder when there is one) and
 * answers what changed. Control thread only.
 */
#ifndef ONEGATE_ADMIN_ACTION_H
#define ONEGATE_ADMIN_ACTION_H

struct evhttp_request;
struct pool_table;

/* path: the request's path, still URI-encoded. Answers req. */
void admin_action(struct pool_table *t, struct evhttp_request *req, const char *path);

#endif
