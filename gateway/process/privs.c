#define _GNU_SOURCE
#include "process/privs.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* Without libcap: the raw call takes a version 3 header and two 32-bit words. */
static int privs_keep_bind_capability(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	data[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].permitted = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
	data[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].effective = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
	return (int)syscall(SYS_capset, &hdr, data);
}

int privs_drop(const char *user, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (geteuid() != 0) {
		if (geteuid() == uid)
			return 0;
		snprintf(err, errlen, "user = \"%s\" needs onegate to start as root to switch to it; start it as root "
		         "(systemd: User= unset) or leave user out", user);
		return -1;
	}
	/* Keeping the permitted set across setuid is what lets the one capability survive. */
	if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0 || initgroups(user, gid) != 0 ||
	    setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
		snprintf(err, errlen, "cannot switch to user \"%s\": %s", user, strerror(errno));
		return -1;
	}
	if (privs_keep_bind_capability() != 0) {
		snprintf(err, errlen, "switched to user \"%s\" but cannot keep CAP_NET_BIND_SERVICE: %s", user,
		         strerror(errno));
		return -1;
	}
	/* The process stays non-dumpable (setuid did that): a core file would hold private keys. */
	prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
	return 0;
}
