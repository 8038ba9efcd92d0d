// tstream without a socket (tstream_new_peer): its peer fills the input and takes the
// output; the owner hears of it from the loop only, and reads, writes, ends and lingers
// through the same calls as over a socket.
#include <gtest/gtest.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <string>

extern "C" {
#include "io/tstream.h"
}

namespace {

struct Peer {
	tstream *t = nullptr;
	size_t take = SIZE_MAX;         // bytes output() takes per call
	std::string taken;
	int outputs = 0, shutdowns = 0, closes = 0;
	bool delivered = false, broken = false;
};

void peer_output(void *arg)
{
	auto *p = static_cast<Peer *>(arg);
	p->outputs++;
	evbuffer *out = tstream_output(p->t);
	size_t n = evbuffer_get_length(out) < p->take ? evbuffer_get_length(out) : p->take;
	std::string s(n, '\0');
	evbuffer_remove(out, &s[0], n);
	p->taken += s;
}

void peer_shutdown(void *arg)
{
	static_cast<Peer *>(arg)->shutdowns++;
}

void peer_closed(void *arg)
{
	static_cast<Peer *>(arg)->closes++;
}

bool peer_delivered(void *arg, bool *broken)
{
	auto *p = static_cast<Peer *>(arg);
	*broken = p->broken;
	return p->delivered;
}

const tstream_peer_ops ops = { peer_output, peer_shutdown, peer_closed, peer_delivered };

struct Owner {
	bool ready = false, eof = false, error = false;
	int readable = 0, drained = 0;
	std::string got;
	bool free_on_error = false;
};

void own_readable(tstream *t, void *arg)
{
	auto *o = static_cast<Owner *>(arg);
	o->readable++;
	evbuffer *in = tstream_input(t);
	std::string s(evbuffer_get_length(in), '\0');
	evbuffer_remove(in, &s[0], s.size());
	o->got += s;
}

void own_drained(tstream *t, void *arg)
{
	(void)t;
	static_cast<Owner *>(arg)->drained++;
}

void own_event(tstream *t, tstream_event ev, void *arg)
{
	auto *o = static_cast<Owner *>(arg);
	if (ev == TSTREAM_READY)
		o->ready = true;
	else if (ev == TSTREAM_EOF)
		o->eof = true;
	else
		o->error = true;
	if (ev == TSTREAM_ERROR && o->free_on_error)
		tstream_free(t);
}

struct PeerStream : ::testing::Test {
	event_base *base = event_base_new();
	Peer peer;
	Owner own;
	void SetUp() override
	{
		peer.t = tstream_new_peer(base, &ops, &peer);
		ASSERT_NE(peer.t, nullptr);
		tstream_setcb(peer.t, own_readable, own_drained, own_event, &own);
	}
	void TearDown() override { event_base_free(base); }
	void loop() { event_base_loop(base, EVLOOP_NONBLOCK); }
};

TEST_F(PeerStream, ReadyThenInputFromTheLoopOnly)
{
	evbuffer_add(tstream_input(peer.t), "GET / HTTP/1.1\r\n\r\n", 18);
	tstream_start(peer.t);
	tstream_peer_input(peer.t);
	EXPECT_FALSE(own.ready);
	EXPECT_EQ(own.readable, 0);
	loop();
	EXPECT_TRUE(own.ready);
	EXPECT_EQ(own.got, "GET / HTTP/1.1\r\n\r\n");
	// Not reading: the input waits, and is told once reading resumes.
	tstream_read_enable(peer.t, false);
	evbuffer_add(tstream_input(peer.t), "body", 4);
	tstream_peer_input(peer.t);
	loop();
	EXPECT_EQ(own.readable, 1);
	tstream_read_enable(peer.t, true);
	loop();
	EXPECT_EQ(own.got, "GET / HTTP/1.1\r\n\r\nbody");
	tstream_free(peer.t);
	EXPECT_EQ(peer.closes, 1);
}

TEST_F(PeerStream, OutputTakenAsThePeerHasRoomAndDrainedFromTheLoop)
{
	tstream_start(peer.t);
	loop();
	tstream_set_low_mark(peer.t, 0);
	peer.take = 40;
	evbuffer_add(tstream_output(peer.t), std::string(100, 'x').data(), 100);
	EXPECT_EQ(tstream_flush(peer.t), 0);
	EXPECT_EQ(peer.taken.size(), 40u);
	EXPECT_EQ(tstream_unsent(peer.t), 60u);
	tstream_peer_taken(peer.t);
	loop();
	EXPECT_EQ(own.drained, 0) << "60 bytes still wait: above the low mark";
	peer.take = SIZE_MAX;
	peer_output(&peer);
	tstream_peer_taken(peer.t);
	EXPECT_EQ(own.drained, 0);
	loop();
	EXPECT_EQ(own.drained, 1);
	EXPECT_EQ(peer.taken, std::string(100, 'x'));
	tstream_shutdown(peer.t);
	tstream_shutdown(peer.t);
	EXPECT_EQ(peer.shutdowns, 1);
	tstream_free(peer.t);
}

TEST_F(PeerStream, EndComesAfterTheInputBeforeIt)
{
	tstream_start(peer.t);
	loop();
	tstream_read_enable(peer.t, false);
	evbuffer_add(tstream_input(peer.t), "last", 4);
	tstream_peer_end(peer.t, TSTREAM_EOF, nullptr);
	loop();
	EXPECT_FALSE(own.eof);
	tstream_read_enable(peer.t, true);
	loop();
	EXPECT_EQ(own.got, "last");
	EXPECT_TRUE(own.eof);
	tstream_free(peer.t);
}

TEST_F(PeerStream, ResetBreaksWritesAndTheOwnerMayFreeInItsCallback)
{
	tstream_start(peer.t);
	loop();
	own.free_on_error = true;
	tstream_peer_end(peer.t, TSTREAM_ERROR, "the client reset the stream");
	EXPECT_EQ(tstream_flush(peer.t), -1);
	EXPECT_STREQ(tstream_error(peer.t), "the client reset the stream");
	loop();
	EXPECT_TRUE(own.error);
	EXPECT_EQ(peer.closes, 1);
}

TEST_F(PeerStream, LingerAsksThePeer)
{
	sock_linger l;
	sock_linger_start(&l);
	EXPECT_EQ(tstream_linger_check(peer.t, &l, 1000), SOCK_LINGER_TAKING);
	peer.delivered = true;
	evbuffer_add(tstream_output(peer.t), "x", 1);
	EXPECT_EQ(tstream_linger_check(peer.t, &l, 1000), SOCK_LINGER_TAKING) << "output not taken yet";
	peer_output(&peer);
	EXPECT_EQ(tstream_linger_check(peer.t, &l, 1000), SOCK_LINGER_DONE);
	peer.delivered = false;
	peer.broken = true;
	EXPECT_EQ(tstream_linger_check(peer.t, &l, 1000), SOCK_LINGER_BROKEN);
	EXPECT_EQ(tstream_ssl(peer.t), nullptr);
	tstream_free(peer.t);
}

}  // namespace
