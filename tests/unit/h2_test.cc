// h2: the server side of an HTTP/2 connection, driven by a real nghttp2 client
// session over bytes: requests reach the stream events translated, malformed
// streams never do, windows bound what is in flight, and every flood shape
// ends in GOAWAY with its counter.
#include <gtest/gtest.h>

#include <list>
#include <map>
#include <string>
#include <vector>

#include <nghttp2/nghttp2.h>

extern "C" {
#include "proto/h2.h"
}

namespace {

// What the server's stream events saw.
struct ServerSide {
	struct StreamLog {
		std::string head;
		bool end_stream = false, websocket = false, ended = false;
		std::string body;
		std::vector<std::pair<std::string, std::string>> trailers;
		int64_t reset = -1;
		bool ctx_at_reset = false;      // h2_stream_ctx() still found it in the reset event
	};
	std::map<int32_t, StreamLog> streams;
	std::vector<int32_t> writable;
	bool consume = true;            // give body bytes back as they arrive
	struct h2_conn *conn = nullptr;
};

int ev_request(void *ctx, int32_t id, const struct h2_request *req)
{
	auto *s = static_cast<ServerSide *>(ctx);
	auto &l = s->streams[id];
	l.head.assign(req->head, req->head_len);
	l.end_stream = req->end_stream;
	l.websocket = req->websocket;
	h2_stream_set_ctx(s->conn, id, &l);
	return 0;
}

void ev_data(void *ctx, int32_t id, const uint8_t *p, size_t len)
{
	auto *s = static_cast<ServerSide *>(ctx);
	s->streams[id].body.append(reinterpret_cast<const char *>(p), len);
	if (s->consume)
		h2_consume(s->conn, id, len);
}

void ev_end(void *ctx, int32_t id, const struct h2head_field *t, size_t n)
{
	auto *s = static_cast<ServerSide *>(ctx);
	s->streams[id].ended = true;
	for (size_t i = 0; i < n; i++)
		s->streams[id].trailers.emplace_back(std::string(t[i].name, t[i].name_len),
						     std::string(t[i].value, t[i].value_len));
}

void ev_reset(void *ctx, int32_t id, uint32_t code)
{
	auto *s = static_cast<ServerSide *>(ctx);
	s->streams[id].reset = code;
	s->streams[id].ctx_at_reset = h2_stream_ctx(s->conn, id) == &s->streams[id];
}

void ev_writable(void *ctx, int32_t id)
{
	static_cast<ServerSide *>(ctx)->writable.push_back(id);
}

const struct h2_stream_ops kOps = { ev_request, ev_data, ev_end, ev_reset, ev_writable };

// What the client saw of each stream and of the connection.
struct ClientSide {
	struct StreamLog {
		std::vector<std::pair<std::string, std::string>> headers;
		std::string body;
		int64_t rst = -1;
		bool closed = false;
	};
	std::map<int32_t, StreamLog> streams;
	int64_t goaway = -1;
	int32_t goaway_last = -1;
	std::string upload;             // what the data provider sends
	size_t upload_off = 0;
};

int cl_header(nghttp2_session *, const nghttp2_frame *f, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl,
	      uint8_t, void *ud)
{
	static_cast<ClientSide *>(ud)->streams[f->hd.stream_id].headers.emplace_back(
		std::string(reinterpret_cast<const char *>(n), nl), std::string(reinterpret_cast<const char *>(v), vl));
	return 0;
}

int cl_data(nghttp2_session *, uint8_t, int32_t id, const uint8_t *p, size_t len, void *ud)
{
	static_cast<ClientSide *>(ud)->streams[id].body.append(reinterpret_cast<const char *>(p), len);
	return 0;
}

int cl_frame(nghttp2_session *, const nghttp2_frame *f, void *ud)
{
	auto *c = static_cast<ClientSide *>(ud);
	if (f->hd.type == NGHTTP2_GOAWAY) {
		c->goaway = f->goaway.error_code;
		c->goaway_last = f->goaway.last_stream_id;
	} else if (f->hd.type == NGHTTP2_RST_STREAM) {
		c->streams[f->hd.stream_id].rst = f->rst_stream.error_code;
	}
	return 0;
}

int cl_close(nghttp2_session *, int32_t id, uint32_t, void *ud)
{
	static_cast<ClientSide *>(ud)->streams[id].closed = true;
	return 0;
}

ssize_t cl_upload(nghttp2_session *, int32_t, uint8_t *buf, size_t len, uint32_t *flags, nghttp2_data_source *,
		  void *ud)
{
	auto *c = static_cast<ClientSide *>(ud);
	size_t n = std::min(len, c->upload.size() - c->upload_off);
	memcpy(buf, c->upload.data() + c->upload_off, n);
	c->upload_off += n;
	if (c->upload_off == c->upload.size())
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

class H2 : public ::testing::Test {
      protected:
	struct h2_config cfg;
	ServerSide srv;
	ClientSide cli;
	nghttp2_session *client = nullptr;
	uint64_t now_ms = 1000;
	int recv_rc = 0;

	void SetUp() override { h2_config_default(&cfg); }

	// Starts both sides; client_window: the client's initial stream window;
	// client_reads: the client opens its windows as bytes arrive.
	void start(uint32_t client_window = 65535, size_t max_send_block = 0, bool settle = true,
		   bool client_reads = true)
	{
		srv.conn = h2_new(&cfg, &kOps, &srv);
		ASSERT_NE(srv.conn, nullptr);
		nghttp2_session_callbacks *cb;
		nghttp2_session_callbacks_new(&cb);
		nghttp2_session_callbacks_set_on_header_callback(cb, cl_header);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_data);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cl_frame);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, cl_close);
		nghttp2_option *opt;
		nghttp2_option_new(&opt);
		nghttp2_option_set_no_http_messaging(opt, 1);   // lets the test send what a browser never would
		if (max_send_block)
			nghttp2_option_set_max_send_header_block_length(opt, max_send_block);
		if (!client_reads)
			nghttp2_option_set_no_auto_window_update(opt, 1);
		ASSERT_EQ(nghttp2_session_client_new2(&client, cb, &cli, opt), 0);
		nghttp2_option_del(opt);
		nghttp2_session_callbacks_del(cb);
		nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, client_window } };
		ASSERT_EQ(nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, iv, 1), 0);
		if (settle)
			pump();
	}

	void TearDown() override
	{
		nghttp2_session_del(client);
		h2_free(srv.conn);
	}

	// Moves bytes both ways until neither side has any.
	void pump()
	{
		for (int round = 0; round < 10000; round++) {
			bool moved = false;
			const uint8_t *p;
			ssize_t n;
			while ((n = nghttp2_session_mem_send(client, &p)) > 0) {
				moved = true;
				if (recv_rc == 0)
					recv_rc = h2_recv(srv.conn, p, (size_t)n, now_ms);
			}
			while ((n = h2_output(srv.conn, &p)) > 0) {
				moved = true;
				ASSERT_EQ(nghttp2_session_mem_recv(client, p, (size_t)n), n);
			}
			if (!moved)
				return;
		}
		FAIL() << "the two sides never went quiet";
	}

	// Names are sent as given (nghttp2 lower-cases the ones it copies), so they
	// live here until the frames have gone.
	std::list<std::vector<std::pair<std::string, std::string>>> sent;

	int32_t request(std::vector<std::pair<std::string, std::string>> fields, bool body = false)
	{
		sent.push_back(std::move(fields));
		std::vector<nghttp2_nv> nv;
		for (auto &f : sent.back())
			nv.push_back({ (uint8_t *)f.first.data(), (uint8_t *)f.second.data(), f.first.size(), f.second.size(),
				       NGHTTP2_NV_FLAG_NO_COPY_NAME });
		nghttp2_data_provider up;
		up.read_callback = cl_upload;
		int32_t id = nghttp2_submit_request(client, nullptr, nv.data(), nv.size(), body ? &up : nullptr, nullptr);
		EXPECT_GT(id, 0);
		return id;
	}

	int32_t get(const std::string &path = "/")
	{
		return request({ { ":method", "GET" }, { ":scheme", "https" }, { ":authority", "a.test" }, { ":path", path } });
	}

	void respond(int32_t id, const std::string &status, bool end)
	{
		struct h2head_field f[] = { { ":status", status.data(), 7, status.size(), true }, { "x-by", "onegate", 4, 7, false } };
		ASSERT_EQ(h2_respond(srv.conn, id, f, 2, end), 0);
	}

	std::string status_of(int32_t id)
	{
		for (auto &h : cli.streams[id].headers)
			if (h.first == ":status")
				return h.second;
		return "";
	}
};

TEST_F(H2, GetReachesTheStreamAsHttp11AndTheAnswerGoesBack)
{
	start();
	int32_t id = request({ { ":method", "GET" },
			       { ":scheme", "https" },
			       { ":authority", "mail.contoso.test" },
			       { ":path", "/owa/" },
			       { "cookie", "a=1" },
			       { "cookie", "b=2" } });
	pump();
	ASSERT_EQ(srv.streams.count(id), 1u);
	EXPECT_EQ(srv.streams[id].head, "GET /owa/ HTTP/1.1\r\nhost: mail.contoso.test\r\ncookie: a=1; b=2\r\nconnection: close\r\n\r\n");
	EXPECT_TRUE(srv.streams[id].end_stream);
	EXPECT_TRUE(srv.streams[id].ended);
	respond(id, "200", false);
	std::string body = "hello over h2";
	EXPECT_EQ(h2_send_data(srv.conn, id, (const uint8_t *)body.data(), body.size()), body.size());
	struct h2head_field tr[] = { { "x-sum", "42", 5, 2, false } };
	ASSERT_EQ(h2_send_end(srv.conn, id, tr, 1), 0);
	pump();
	EXPECT_EQ(status_of(id), "200");
	EXPECT_EQ(cli.streams[id].body, body);
	EXPECT_EQ(cli.streams[id].headers.back(), std::make_pair(std::string("x-sum"), std::string("42")));
	EXPECT_TRUE(cli.streams[id].closed);
	EXPECT_EQ(cli.streams[id].rst, -1);
	EXPECT_EQ(srv.streams[id].reset, -1);
	EXPECT_EQ(h2_conn_stats(srv.conn)->streams, 1u);
}

TEST_F(H2, UploadIsHeldToTheStreamWindowUntilConsumed)
{
	cfg.stream_window = 16 * 1024;
	srv.consume = false;
	start();
	cli.upload.assign(100 * 1024, 'u');
	int32_t id = request({ { ":method", "POST" }, { ":scheme", "https" }, { ":authority", "a.test" },
			       { ":path", "/up" }, { "content-length", std::to_string(cli.upload.size()) } },
			     true);
	pump();
	EXPECT_NE(srv.streams[id].head.find("content-length: 102400\r\n"), std::string::npos);
	EXPECT_EQ(srv.streams[id].body.size(), 16u * 1024) << "more than the window came in";
	EXPECT_FALSE(srv.streams[id].ended);
	size_t given = 0;
	for (int i = 0; i < 100 && !srv.streams[id].ended; i++) {
		size_t have = srv.streams[id].body.size();
		EXPECT_LE(have - given, 16u * 1024) << "more than the window in flight";
		h2_consume(srv.conn, id, have - given);
		given = have;
		pump();
	}
	EXPECT_EQ(srv.streams[id].body, cli.upload);
	EXPECT_TRUE(srv.streams[id].ended);
}

TEST_F(H2, BodyWithoutLengthIsChunkedForTheBackEndAndTrailersArrive)
{
	start();
	cli.upload = "part";
	int32_t id = request({ { ":method", "POST" }, { ":scheme", "https" }, { ":authority", "a.test" }, { ":path", "/" } },
			     true);
	pump();
	EXPECT_NE(srv.streams[id].head.find("transfer-encoding: chunked\r\n"), std::string::npos);
	EXPECT_FALSE(srv.streams[id].end_stream);
	EXPECT_EQ(srv.streams[id].body, "part");
	EXPECT_TRUE(srv.streams[id].ended);
}

TEST_F(H2, MalformedStreamIsResetAndNeverReachesTheCaller)
{
	start();
	const std::vector<std::vector<std::pair<std::string, std::string>>> bad = {
		{ { ":method", "GET" }, { ":scheme", "https" }, { ":authority", "a.test" }, { ":path", "/" }, { "X-Up", "1" } },
		{ { ":method", "GET" }, { ":scheme", "https" }, { ":authority", "a.test" }, { ":path", "/" },
		  { "x-a", "1\r\nx-b: 2" } },
		{ { ":method", "GET" }, { ":scheme", "https" }, { ":authority", "a.test" }, { ":path", "/" },
		  { "transfer-encoding", "chunked" } },
		{ { ":method", "GET" }, { ":scheme", "https" }, { ":authority", "a.test" }, { "x-a", "1" }, { ":path", "/" } },
		{ { ":method", "GET" }, { ":scheme", "https" }, { ":authority", "a.test" } },
	};
	std::vector<int32_t> ids;
	for (auto &f : bad)
		ids.push_back(request(f));
	pump();
	for (int32_t id : ids) {
		EXPECT_EQ(srv.streams.count(id), 0u) << "stream " << id << " reached the caller";
		EXPECT_EQ(cli.streams[id].rst, NGHTTP2_PROTOCOL_ERROR) << "stream " << id;
	}
	EXPECT_EQ(h2_conn_stats(srv.conn)->malformed, bad.size());
	int32_t ok = get();
	pump();
	EXPECT_EQ(srv.streams.count(ok), 1u) << "the connection survives stream errors";
}

TEST_F(H2, ContentLengthThatDisagreesWithDataResetsTheStream)
{
	start();
	cli.upload = "short";
	int32_t id = request({ { ":method", "POST" }, { ":scheme", "https" }, { ":authority", "a.test" },
			       { ":path", "/" }, { "content-length", "10" } },
			     true);
	pump();
	EXPECT_EQ(cli.streams[id].rst, NGHTTP2_PROTOCOL_ERROR);
	EXPECT_EQ(srv.streams[id].reset, NGHTTP2_PROTOCOL_ERROR) << "the caller hears of it";
	EXPECT_FALSE(srv.streams[id].ended);
	EXPECT_EQ(h2_conn_stats(srv.conn)->malformed, 1u);

	cli.upload.assign(20, 'x');
	cli.upload_off = 0;
	id = request({ { ":method", "POST" }, { ":scheme", "https" }, { ":authority", "a.test" }, { ":path", "/" },
		       { "content-length", "10" } },
		     true);
	pump();
	EXPECT_EQ(cli.streams[id].rst, NGHTTP2_PROTOCOL_ERROR);
	EXPECT_LE(srv.streams[id].body.size(), 10u) << "bytes past content-length went on";
	EXPECT_EQ(h2_conn_stats(srv.conn)->malformed, 2u);
}

TEST_F(H2, HeaderListPastTheLimitIsAnswered431)
{
	cfg.max_header_list_size = 4096;
	start();
	int32_t id = request({ { ":method", "GET" }, { ":scheme", "https" }, { ":authority", "a.test" }, { ":path", "/" },
			       { "x-big", std::string(5000, 'b') } });
	pump();
	EXPECT_EQ(status_of(id), "431");
	EXPECT_EQ(srv.streams.count(id), 0u);
	EXPECT_EQ(h2_conn_stats(srv.conn)->too_large, 1u);
}

TEST_F(H2, PlainConnectIsAnswered501)
{
	start();
	int32_t id = request({ { ":method", "CONNECT" }, { ":authority", "a.test:443" } });
	pump();
	EXPECT_EQ(status_of(id), "501");
	EXPECT_EQ(srv.streams.count(id), 0u);
	EXPECT_EQ(h2_conn_stats(srv.conn)->not_implemented, 1u);
}

TEST_F(H2, ExtendedConnectAsksTheBackEndForAWebSocketUpgrade)
{
	start();
	int32_t id = request({ { ":method", "CONNECT" },
			       { ":protocol", "websocket" },
			       { ":scheme", "https" },
			       { ":authority", "a.test" },
			       { ":path", "/chat" },
			       { "sec-websocket-version", "13" } },
			     true);
	pump();
	ASSERT_EQ(srv.streams.count(id), 1u);
	EXPECT_TRUE(srv.streams[id].websocket);
	const std::string &h = srv.streams[id].head;
	EXPECT_EQ(h.rfind("GET /chat HTTP/1.1\r\n", 0), 0u) << h;
	EXPECT_NE(h.find("upgrade: websocket\r\n"), std::string::npos);
	size_t k = h.find("sec-websocket-key: ");
	ASSERT_NE(k, std::string::npos);
	EXPECT_EQ(h.find("\r\n", k) - k, 19u + 24u);
}

TEST_F(H2, RapidResetIsCountedPerIntervalAndEndsInGoaway)
{
	cfg.max_resets = 50;
	start();
	// Within the limit in each interval: the connection stays.
	auto open_and_reset = [&](int n) {
		std::vector<int32_t> ids;
		for (int i = 0; i < n; i++)
			ids.push_back(get());
		pump();
		for (int32_t id : ids)
			nghttp2_submit_rst_stream(client, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		pump();
	};
	for (int round = 0; round < 3; round++) {
		open_and_reset(40);
		now_ms += cfg.flood_interval_ms;
	}
	EXPECT_EQ(cli.goaway, -1);
	EXPECT_EQ(recv_rc, 0);
	EXPECT_EQ(h2_conn_stats(srv.conn)->resets_received, 120u);
	// Past it within one interval: GOAWAY.
	open_and_reset(60);
	EXPECT_EQ(cli.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
	EXPECT_EQ(recv_rc, -1);
	EXPECT_EQ(h2_conn_stats(srv.conn)->rapid_reset, 1u);
	EXPECT_TRUE(h2_done(srv.conn));
}

TEST_F(H2, PingFloodEndsInGoaway)
{
	cfg.max_pings = 10;
	start();
	for (int i = 0; i < 10; i++)
		nghttp2_submit_ping(client, NGHTTP2_FLAG_NONE, nullptr);
	pump();
	EXPECT_EQ(cli.goaway, -1);
	for (int i = 0; i < 5; i++)
		nghttp2_submit_ping(client, NGHTTP2_FLAG_NONE, nullptr);
	pump();
	EXPECT_EQ(cli.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
	EXPECT_EQ(h2_conn_stats(srv.conn)->ping_flood, 1u);
}

TEST_F(H2, SettingsFloodEndsInGoaway)
{
	cfg.max_settings = 5;
	start();   // the client's first SETTINGS counts
	for (int i = 0; i < 10; i++)
		nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, nullptr, 0);
	pump();
	EXPECT_EQ(cli.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
	EXPECT_EQ(h2_conn_stats(srv.conn)->settings_flood, 1u);
}

// A DATA frame with no data on stream id, as bytes: padded (its pad-length byte and no
// padding) or plain, and with END_STREAM or not.
std::string empty_data_frame(int32_t id, bool padded, bool end_stream)
{
	std::string f(9, '\0');
	f[2] = padded ? 1 : 0;
	f[4] = (char)((padded ? 0x8 : 0) | (end_stream ? 0x1 : 0));
	for (int i = 0; i < 4; i++)
		f[5 + i] = (char)(((uint32_t)id >> (24 - 8 * i)) & 0xff);
	if (padded)
		f.push_back('\0');
	return f;
}

TEST_F(H2, EmptyDataFloodEndsInGoaway)
{
	cfg.max_empty_data = 10;
	start();
	nghttp2_nv nv[] = {
		{ (uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":scheme", (uint8_t *)"https", 7, 5, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)"a.test", 10, 6, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":path", (uint8_t *)"/up", 5, 3, NGHTTP2_NV_FLAG_NONE },
	};
	int32_t id = nghttp2_submit_headers(client, NGHTTP2_FLAG_NONE, -1, nullptr, nv, 4, nullptr);
	ASSERT_GT(id, 0);
	pump();
	ASSERT_EQ(srv.streams.count(id), 1u);
	// Up to the limit, padded or not, and an empty end of a request (which is how
	// a body ends) does not count at all.
	std::string frames;
	for (int i = 0; i < 10; i++)
		frames += empty_data_frame(id, i % 2 == 1, false);
	frames += empty_data_frame(id, false, true);
	EXPECT_EQ(h2_recv(srv.conn, (const uint8_t *)frames.data(), frames.size(), now_ms), 0);
	pump();
	EXPECT_EQ(cli.goaway, -1);
	EXPECT_TRUE(srv.streams[id].ended);
	int32_t next = nghttp2_submit_headers(client, NGHTTP2_FLAG_NONE, -1, nullptr, nv, 4, nullptr);
	pump();
	std::string one = empty_data_frame(next, true, false);
	EXPECT_EQ(h2_recv(srv.conn, (const uint8_t *)one.data(), one.size(), now_ms), -1);
	pump();
	EXPECT_EQ(cli.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
	EXPECT_EQ(h2_conn_stats(srv.conn)->empty_data_flood, 1u);
}

TEST_F(H2, ContinuationFloodEndsTheConnection)
{
	cfg.max_continuations = 4;
	start(65535, 1024 * 1024);
	// Incompressible values: the block needs many CONTINUATION frames of 16 KiB.
	std::vector<std::pair<std::string, std::string>> f = {
		{ ":method", "GET" }, { ":scheme", "https" }, { ":authority", "a.test" }, { ":path", "/" }
	};
	uint32_t x = 12345;
	for (int k = 0; k < 40; k++) {
		std::string noise;
		for (int i = 0; i < 5000; i++) {
			x = x * 1103515245 + 12345;
			noise.push_back((char)('!' + (x >> 16) % 90));
		}
		f.emplace_back("x-noise-" + std::to_string(k), noise);
	}
	int32_t id = request(f);
	pump();
	EXPECT_EQ(recv_rc, -1);
	EXPECT_EQ(h2_conn_stats(srv.conn)->continuation_flood, 1u);
	EXPECT_EQ(cli.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
	EXPECT_EQ(srv.streams.count(id), 0u);
	EXPECT_TRUE(h2_done(srv.conn));
}

TEST_F(H2, ShutConnectionWindowIsFlaggedAndEndsInGoaway)
{
	start(1 << 20, 0, true, false);
	int32_t id = get();
	pump();
	respond(id, "200", false);
	std::string body(65536, 'd');
	EXPECT_EQ(h2_send_data(srv.conn, id, (const uint8_t *)body.data(), body.size()), body.size());
	pump();
	EXPECT_EQ(cli.streams[id].body.size(), 65535u);    // the connection's first window, then shut
	EXPECT_TRUE(h2_window_stalled(srv.conn));
	h2_stalled(srv.conn);
	pump();
	EXPECT_EQ(cli.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
	EXPECT_EQ(h2_conn_stats(srv.conn)->zero_window_stalls, 1u);
}

TEST_F(H2, ShutStreamWindowResetsThatStreamAlone)
{
	start(0);
	int32_t id = get();
	pump();
	respond(id, "200", false);
	std::string body(1000, 'd');
	h2_send_data(srv.conn, id, (const uint8_t *)body.data(), body.size());
	pump();
	EXPECT_EQ(status_of(id), "200");
	EXPECT_TRUE(cli.streams[id].body.empty());
	EXPECT_FALSE(h2_window_stalled(srv.conn)) << "the connection's window is open";
	h2_reset_stalled(srv.conn, now_ms, 1000);      // the stall is seen: its time starts
	h2_reset_stalled(srv.conn, now_ms + 999, 1000);
	pump();
	EXPECT_EQ(cli.streams[id].rst, -1) << "not before its time";
	h2_reset_stalled(srv.conn, now_ms + 1000, 1000);
	pump();
	EXPECT_EQ(cli.streams[id].rst, NGHTTP2_ENHANCE_YOUR_CALM);
	EXPECT_EQ(srv.streams[id].reset, NGHTTP2_ENHANCE_YOUR_CALM) << "the caller hears of it";
	EXPECT_EQ(h2_conn_stats(srv.conn)->stream_stalls, 1u);
	EXPECT_EQ(h2_conn_stats(srv.conn)->zero_window_stalls, 0u);
	EXPECT_EQ(cli.goaway, -1);
	// The connection goes on.
	int32_t next = get();
	pump();
	respond(next, "204", true);
	pump();
	EXPECT_EQ(status_of(next), "204");
	h2_reset_stalled(srv.conn, now_ms + 5000, 1000);
	EXPECT_EQ(h2_conn_stats(srv.conn)->stream_stalls, 1u);
}

TEST_F(H2, EndedAnswerStuckOnItsWindowIsResetToo)
{
	// The caller has handed over the whole answer and let go of the stream:
	// its bytes still wait on the stream's shut window, and are not kept for good.
	start(0);
	int32_t id = get();
	pump();
	respond(id, "200", false);
	std::string body(1000, 'e');
	h2_send_data(srv.conn, id, (const uint8_t *)body.data(), body.size());
	ASSERT_EQ(h2_send_end(srv.conn, id, nullptr, 0), 0);
	pump();
	h2_reset_stalled(srv.conn, now_ms, 1000);
	h2_reset_stalled(srv.conn, now_ms + 1000, 1000);
	pump();
	EXPECT_EQ(cli.streams[id].rst, NGHTTP2_ENHANCE_YOUR_CALM);
	EXPECT_EQ(srv.streams[id].reset, -1) << "no event for a stream the caller ended";
	EXPECT_EQ(h2_conn_stats(srv.conn)->stream_stalls, 1u);
}

TEST_F(H2, ShutConnectionWindowLeavesTheStreamsToTheConnectionsStall)
{
	start(1 << 20, 0, true, false);
	int32_t id = get();
	pump();
	respond(id, "200", false);
	std::string body(65536, 'd');
	h2_send_data(srv.conn, id, (const uint8_t *)body.data(), body.size());
	pump();
	ASSERT_TRUE(h2_window_stalled(srv.conn));
	h2_reset_stalled(srv.conn, now_ms, 1000);
	h2_reset_stalled(srv.conn, now_ms + 5000, 1000);
	pump();
	EXPECT_EQ(cli.streams[id].rst, -1);
	EXPECT_EQ(h2_conn_stats(srv.conn)->stream_stalls, 0u);
}

TEST_F(H2, WindowOpenedMeansNoStall)
{
	start();
	int32_t id = get();
	pump();
	respond(id, "200", false);
	std::string body(1000, 'd');
	h2_send_data(srv.conn, id, (const uint8_t *)body.data(), body.size());
	pump();
	EXPECT_FALSE(h2_window_stalled(srv.conn));
	EXPECT_EQ(cli.streams[id].body, body);
}

TEST_F(H2, FullStreamBufferTakesPartAndSaysWhenWritable)
{
	cfg.stream_out_buffer = 1024;
	start();
	int32_t id = get();
	pump();
	respond(id, "200", false);
	std::string body(4096, 'w');
	size_t took = h2_send_data(srv.conn, id, (const uint8_t *)body.data(), body.size());
	EXPECT_EQ(took, 1024u);
	pump();
	ASSERT_EQ(srv.writable, std::vector<int32_t>{ id });
	size_t off = took;
	while (off < body.size()) {
		srv.writable.clear();
		off += h2_send_data(srv.conn, id, (const uint8_t *)body.data() + off, body.size() - off);
		pump();
	}
	ASSERT_EQ(h2_send_end(srv.conn, id, nullptr, 0), 0);
	pump();
	EXPECT_EQ(cli.streams[id].body, body);
	EXPECT_TRUE(cli.streams[id].closed);
}

TEST_F(H2, ClientResetOfADeliveredStreamIsAnEvent)
{
	start();
	int32_t id = get();
	pump();
	nghttp2_submit_rst_stream(client, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
	pump();
	EXPECT_EQ(srv.streams[id].reset, NGHTTP2_CANCEL);
	EXPECT_TRUE(srv.streams[id].ctx_at_reset) << "the caller's pointer is found during the event";
	EXPECT_EQ(h2_stream_ctx(srv.conn, id), nullptr) << "and gone with the stream";
	EXPECT_EQ(h2_send_data(srv.conn, id, (const uint8_t *)"x", 1), 0u) << "the stream is gone";
}

TEST_F(H2, GracefulShutdownLetsOpenStreamsFinish)
{
	start();
	int32_t id = get();
	pump();
	h2_shutdown(srv.conn);
	pump();
	EXPECT_EQ(cli.goaway, NGHTTP2_NO_ERROR);
	EXPECT_EQ(cli.goaway_last, id);
	respond(id, "204", true);
	pump();
	EXPECT_EQ(status_of(id), "204");
	EXPECT_TRUE(cli.streams[id].closed);
	EXPECT_TRUE(h2_done(srv.conn));
}

TEST_F(H2, StreamsPastTheConcurrencyLimitAreRefused)
{
	cfg.max_concurrent_streams = 2;
	start(65535, 0, false);   // the client sends before it has read the server's SETTINGS
	int32_t a = get(), b = get(), c = get();
	pump();
	EXPECT_EQ(srv.streams.count(a) + srv.streams.count(b), 2u);
	EXPECT_EQ(srv.streams.count(c), 0u);
	EXPECT_EQ(cli.streams[c].rst, NGHTTP2_REFUSED_STREAM);
}

TEST_F(H2, InterimResponsePrecedesTheFinalOne)
{
	start();
	int32_t id = get();
	pump();
	respond(id, "103", false);
	respond(id, "200", true);
	pump();
	auto &h = cli.streams[id].headers;
	ASSERT_GE(h.size(), 4u);
	EXPECT_EQ(h[0].second, "103");
	EXPECT_EQ(status_of(id), "103");
	EXPECT_EQ(h[2], std::make_pair(std::string(":status"), std::string("200")));
}

} // namespace
