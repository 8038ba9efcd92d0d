// tlsconf: the process's own session ticket keys.
#include <gtest/gtest.h>

#include <cstring>

extern "C" {
#include "tlsconf.h"
}

namespace {

using Keys = uint8_t[2][RULES_TICKET_KEY_LEN];

bool same(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, RULES_TICKET_KEY_LEN) == 0;
}

}  // namespace

TEST(TicketKeys, OneKeyPerPeriodThePreviousStillDecrypts)
{
	const time_t start = (time_t)1800000000 / TLSCONF_TICKET_ROTATE * TLSCONF_TICKET_ROTATE;
	Keys a, b, c;
	tlsconf_own_ticket_keys(start, a);
	tlsconf_own_ticket_keys(start + TLSCONF_TICKET_ROTATE - 1, b);
	EXPECT_TRUE(same(a[0], b[0])) << "the same key all period long";
	EXPECT_TRUE(same(a[1], b[1]));
	EXPECT_FALSE(same(a[0], a[1]));
	tlsconf_own_ticket_keys(start + TLSCONF_TICKET_ROTATE, c);
	EXPECT_FALSE(same(c[0], a[0])) << "a new key each period";
	EXPECT_TRUE(same(c[1], a[0])) << "the previous period's key still decrypts";
	EXPECT_NE(memcmp(c[0], a[0], 16), 0) << "key names differ, so a ticket finds its key";
	tlsconf_own_ticket_keys(start + 2 * TLSCONF_TICKET_ROTATE, b);
	EXPECT_FALSE(same(b[0], a[0]));
	EXPECT_FALSE(same(b[1], a[0])) << "two periods on, the key is gone";
}
