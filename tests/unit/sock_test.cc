// sock: a peer that sends as fast as the loop reads still leaves the loop its other
// events. Real loopback TCP; the sender is a thread of its own with a blocking socket.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

extern "C" {
#include "io/sock.h"
}

namespace {

// A connected pair on 127.0.0.1: fds[0] the accepted end (non-blocking, for the sock),
// fds[1] the client's (blocking, for the sender). False when loopback is not there.
bool tcp_pair(int fds[2])
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (l < 0 || bind(l, (sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (sockaddr *)&a, &len) != 0) {
		if (l >= 0)
			close(l);
		return false;
	}
	fds[1] = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = fds[1] >= 0 && connect(fds[1], (sockaddr *)&a, sizeof(a)) == 0 &&
		  (fds[0] = accept4(l, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;
	close(l);
	return ok;
}

struct Reader {
	size_t got = 0;
	bool ended = false;
};

// Takes its input at about 64 MB/s (1 ms a read of up to 64 KiB), far below what the
// sender can write, so that the kernel's queue stays full as it does for a gateway that
// decrypts and parses what a fast client sends.
void on_readable(sock *s, void *arg)
{
	auto *r = static_cast<Reader *>(arg);
	evbuffer *in = sock_input(s);
	r->got += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
	while (std::chrono::steady_clock::now() < until)
		;
}

void on_event(sock *, sock_event, int, void *arg)
{
	static_cast<Reader *>(arg)->ended = true;
}

struct Tick {
	std::atomic<bool> *sender_done;
	bool fired = false, sender_was_done = false;
	size_t got_then = 0;
	Reader *reader;
};

void on_tick(evutil_socket_t, short, void *arg)
{
	auto *t = static_cast<Tick *>(arg);
	t->fired = true;
	t->sender_was_done = t->sender_done->load();
	t->got_then = t->reader->got;
}

// Before: a read stopped by its bound went on in the same pass of the loop, so while the
// sender kept the kernel's queue full the loop never polled and a 1 ms timer waited for
// the whole flood. Now each bound is the end of a pass, and the timer fires mid-flood.
TEST(Sock, ABoundedReaderLeavesTheLoopItsTimersWhileThePeerKeepsSending)
{
	int fds[2];
	ASSERT_TRUE(tcp_pair(fds));
	event_base *base = event_base_new();
	ASSERT_NE(base, nullptr);
	sock *s = sock_new(base, fds[0]);
	ASSERT_NE(s, nullptr);
	Reader r;
	sock_setcb(s, on_readable, nullptr, on_event, &r);
	sock_set_read_max(s, 16 * 1024);
	sock_read_enable(s, true);

	constexpr size_t kTotal = 32u << 20;
	std::atomic<bool> done{ false };
	std::thread sender([&] {
		std::vector<char> chunk(1 << 20, 'x');
		for (size_t sent = 0; sent < kTotal;) {
			ssize_t n = send(fds[1], chunk.data(), chunk.size(), 0);
			if (n <= 0)
				break;
			sent += (size_t)n;
		}
		done = true;
		shutdown(fds[1], SHUT_WR);
	});
	// The flood under way first: the kernel's queue full, the loop reading it.
	while (r.got < (1u << 20))
		event_base_loop(base, EVLOOP_ONCE);

	Tick t{ &done, false, false, 0, &r };
	event *timer = evtimer_new(base, on_tick, &t);
	timeval ms = { 0, 1000 };
	evtimer_add(timer, &ms);
	while (!r.ended)
		event_base_loop(base, EVLOOP_ONCE);
	sender.join();

	EXPECT_TRUE(t.fired);
	EXPECT_FALSE(t.sender_was_done) << "the timer waited for the flood: " << t.got_then << " bytes read by then";
	EXPECT_LT(t.got_then, kTotal);
	EXPECT_EQ(r.got, kTotal);
	event_free(timer);
	sock_free(s);
	close(fds[1]);
	event_base_free(base);
}

}  // namespace
