// worker: reloads handed to a worker before its thread has applied them.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

extern "C" {
// pool.h names a function after its struct, which C++ calls shadowing; it is C.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include "proxy/pool.h"
#pragma GCC diagnostic pop
#include "rules.h"
#include "proxy/tlsconf.h"
#include "process/worker.h"
}

namespace {

// A port nothing listens on right now.
int free_port()
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	int port = -1;
	if (s >= 0 && bind(s, (sockaddr *)&a, sizeof(a)) == 0 && getsockname(s, (sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

// A listening socket on 127.0.0.1:port, as the daemon binds one per worker.
int listen_on(int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(s, (sockaddr *)&a, sizeof(a)) != 0 || listen(s, 16) != 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

bool accepts(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	bool ok = s >= 0 && connect(s, (sockaddr *)&a, sizeof(a)) == 0;
	if (s >= 0)
		close(s);
	return ok;
}

rules_config *load(const std::string &listen)
{
	std::string text = R"(pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ )" + listen + R"( ]; default = { pool = "p"; }; } );
)";
	rules_diag *d = rules_diag_new();
	rules_config *cfg = rules_load_string(text.c_str(), "t.conf", d);
	for (size_t i = 0; i < rules_diag_count(d); i++)
		if (rules_diag_severity(d, i) == RULES_ERROR)
			ADD_FAILURE() << rules_diag_message(d, i);
	rules_diag_free(d);
	return cfg;
}

std::string addr(int port)
{
	return "\"127.0.0.1:" + std::to_string(port) + "\"";
}

}  // namespace

// The daemon binds only the addresses a rule file adds to the one loaded before it. A
// second reload that comes before the worker took the first must not lose the socket the
// first brought for an address both files list: no later reload would bind it again.
//
// A worker on a file listening on p1 is handed two reloads before its thread runs: the first
// adds p2 (its new socket passed over), the second, which supersedes it, adds nothing and lists
// p2 or not. Says which of the two ports the running worker then accepts on.
static void serve_after_two_reloads(bool second_lists_p2, bool *on_p1, bool *on_p2)
{
	int p1 = free_port(), p2 = free_port();
	ASSERT_GT(p1, 0);
	ASSERT_GT(p2, 0);
	rules_config *cfg0 = load(addr(p1));
	rules_config *cfg1 = load(addr(p1) + ", " + addr(p2));
	rules_config *cfg2 = load(second_lists_p2 ? addr(p1) + ", " + addr(p2) : addr(p1));
	ASSERT_TRUE(cfg0 && cfg1 && cfg2);
	char err[256] = "";
	tlsconf *tls = tlsconf_new(cfg0, err, sizeof(err));
	ASSERT_NE(tls, nullptr) << err;
	pool_table *pools = pool_table_new(cfg0, nullptr);
	ASSERT_NE(pools, nullptr);

	worker *w = worker_new(0, cfg0, tls, pools);
	ASSERT_NE(w, nullptr);
	int fd1 = listen_on(p1);
	ASSERT_GE(fd1, 0) << strerror(errno);
	ASSERT_EQ(worker_add_listener(w, fd1, 0), 0);
	int fd2 = listen_on(p2);
	ASSERT_GE(fd2, 0) << strerror(errno);
	size_t svc = 0;
	int none = -1;      // the second file adds no address
	ASSERT_EQ(worker_reload(w, cfg1, tls, pools, &fd2, &svc, 1), 0);
	ASSERT_EQ(worker_reload(w, cfg2, tls, pools, &none, &svc, 0), 0);
	ASSERT_EQ(worker_start(w), 0);
	// The socket of p2 was open all along: a connect succeeds only if it still is.
	*on_p1 = accepts(p1);
	*on_p2 = accepts(p2);
	worker_kill(w);
	worker_free(w);

	pool_table_unref(pools);
	tlsconf_unref(tls);
	rules_config_unref(cfg2);
	rules_config_unref(cfg1);
	rules_config_unref(cfg0);
}

TEST(WorkerReload, SupersededReloadKeepsItsNewListenSocket)
{
	bool on_p1 = false, on_p2 = false;
	serve_after_two_reloads(true, &on_p1, &on_p2);
	EXPECT_TRUE(on_p2) << "the listen address the first reload added is gone";
	EXPECT_TRUE(on_p1);
}

// And a socket the newer file has no address for is closed, not served.
TEST(WorkerReload, SupersededReloadDropsAnAddressTheNewerFileRemoves)
{
	bool on_p1 = false, on_p2 = true;
	serve_after_two_reloads(false, &on_p1, &on_p2);
	EXPECT_FALSE(on_p2) << "an address the newer file removed is still served";
	EXPECT_TRUE(on_p1);
}
