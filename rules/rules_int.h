/*
 * rules_int.h - private to rules/: the scalar syntaxes of the rule file,
 * shared by the loader and its tests through the library only.
 */
#ifndef ONEGATE_RULES_INT_H
#define ONEGATE_RULES_INT_H

#include "rules.h"

/* Levenshtein distance, for "did you mean" hints; saturates on long input. */
size_t rules_edit_distance(const char *a, const char *b);

/* "500ms", "30s", "15m", "2h" or a bare number of seconds -> milliseconds (> 0).
 * On error returns -1 with a reason in err. */
int rules_duration_text(const char *s, unsigned *ms, char *err, size_t errlen);
int rules_duration_seconds(double seconds, unsigned *ms, char *err, size_t errlen);

/* "16k", "64KiB", "1m" (binary units) or a bare number of bytes, at most max
 * (below 4 GiB). On error returns -1 with a reason in err. */
int rules_size_text(const char *s, unsigned long long max, unsigned *bytes, char *err, size_t errlen);

/* "IPv4:port", "[IPv6]:port" or "dns.name:port" -> a resolved address. host
 * (may be NULL) receives a malloc'd copy of the host part. On error returns -1
 * with a complete sentence in err and leaves nothing allocated. */
int rules_addr_parse(const char *text, struct rules_addr *addr, char **host, uint16_t *port, char *err,
                     size_t errlen);
void rules_addr_clear(struct rules_addr *addr);

/* syslog's facility codes, in the order of the log facility key's words (schema.def). */
#define RULES_FACILITIES 10
extern const int rules_facility_codes[RULES_FACILITIES];
/* A pool's server: "host:port", or "host" alone (*port = 0: routes give the port). */
int rules_server_parse(const char *text, struct rules_addr *addr, char **host, uint16_t *port, char *err,
                       size_t errlen);

#endif
