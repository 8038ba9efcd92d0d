// An access line built piece by piece (log_line_*) reaches a real log file whole: the same text
// whether it waits in the thread's buffer or is written at once, numbers as printf writes them,
// a line too long cut but still one line, and a buffer that fills written out in order.
#include <gtest/gtest.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

extern "C" {
#include "io/log.h"
}

namespace {

class LogLine : public ::testing::Test {
protected:
	void SetUp() override
	{
		char dir[] = "/tmp/onegate-log-test-XXXXXX";
		ASSERT_NE(mkdtemp(dir), nullptr);
		dir_ = dir;
		path_ = dir_ + "/access.log";
		log_target t = {};
		t.file = path_.c_str();
		t.owner = (uid_t)-1;
		t.group = (gid_t)-1;
		char err[256];
		ASSERT_EQ(log_configure(&t, err, sizeof(err)), 0) << err;
	}

	void TearDown() override
	{
		log_target t = {};
		char err[256];
		EXPECT_EQ(log_configure(&t, err, sizeof(err)), 0) << err;
		unlink(path_.c_str());
		rmdir(dir_.c_str());
	}

	std::string read() const
	{
		std::ifstream f(path_);
		std::stringstream s;
		s << f.rdbuf();
		return s.str();
	}

	// The text of each line, after checking its date, time and level. By hand rather than with
	// std::regex, whose inlined std::function gcc's Sanitize build warns about.
	static bool stamped(const std::string &line)
	{
		static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ info ";
		if (line.size() < sizeof shape - 1)
			return false;
		for (size_t i = 0; i < sizeof shape - 1; i++) {
			bool ok = shape[i] == 'd' ? line[i] >= '0' && line[i] <= '9' : line[i] == shape[i];
			if (!ok)
				return false;
		}
		return true;
	}

	std::vector<std::string> lines() const
	{
		static const size_t stamp_len = sizeof "2026-12-07T00:00:00.000Z info " - 1;
		std::vector<std::string> out;
		std::istringstream in(read());
		std::string line;
		while (std::getline(in, line)) {
			bool ok = stamped(line);
			EXPECT_TRUE(ok) << line.substr(0, 200);
			out.push_back(ok ? line.substr(stamp_len) : line);
		}
		return out;
	}

	std::string dir_, path_;
};

// Every kind of piece, in a line of its own.
void write_pieces()
{
	log_line l;
	ASSERT_TRUE(log_line_begin(&l));
	log_line_lit(&l, "http client=");
	log_line_str(&l, "127.0.0.1:5");
	log_line_lit(&l, " n=");
	for (unsigned long long v : { 0ULL, 9ULL, 10ULL, 99ULL, 100ULL, 12345ULL, 1000000ULL, ULLONG_MAX }) {
		log_line_uint(&l, v);
		log_line_lit(&l, ",");
	}
	for (long long v : { -1LL, -10LL, 0LL, LLONG_MAX, LLONG_MIN }) {
		log_line_int(&l, v);
		log_line_lit(&l, ",");
	}
	log_line_lit(&l, " outcome=ok");
	log_line_end(&l);
}

const char *const kPieces = "http client=127.0.0.1:5 n=0,9,10,99,100,12345,1000000,18446744073709551615,"
                            "-1,-10,0,9223372036854775807,-9223372036854775808, outcome=ok";

TEST_F(LogLine, WrittenAtOnceWithoutABuffer)
{
	write_pieces();
	EXPECT_EQ(lines(), std::vector<std::string>{ kPieces });
}

TEST_F(LogLine, WaitsInTheThreadsBufferUntilFlushed)
{
	std::string before;
	std::thread t([&] {
		log_buffer_start();
		write_pieces();
		before = read();
		log_buffer_flush();
		write_pieces();
		log_buffer_end();
	});
	t.join();
	EXPECT_EQ(before, "") << "the line waited in the buffer";
	EXPECT_EQ(lines(), (std::vector<std::string>{ kPieces, kPieces }));
}

// A piece longer than the line has room for is cut, the numbers after it too: the line stays
// one line of at most LOG_LINE_MAX bytes, buffered or not, and the next line is whole.
TEST_F(LogLine, TooLongIsCutToOneLine)
{
	std::string path(3 * LOG_LINE_MAX, 'p');
	auto long_line = [&] {
		log_line l;
		ASSERT_TRUE(log_line_begin(&l));
		log_line_lit(&l, "http path=");
		log_line_str(&l, path.c_str());
		log_line_uint(&l, 12345);
		log_line_int(&l, -5);
		log_line_lit(&l, " outcome=ok");
		log_line_end(&l);
	};
	long_line();
	std::thread t([&] {
		log_buffer_start();
		long_line();
		write_pieces();
		log_buffer_end();
	});
	t.join();
	std::string text = read();
	std::vector<std::string> got = lines();
	ASSERT_EQ(got.size(), 3u) << text.substr(0, 300);
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(got[i].rfind("http path=ppp", 0), 0u);
		EXPECT_EQ(got[i].find_first_not_of('p', 10), std::string::npos) << "cut in the path";
	}
	EXPECT_EQ(got[2], kPieces);
	std::istringstream in(text);
	for (std::string line; std::getline(in, line);)
		EXPECT_LT(line.size(), (size_t)LOG_LINE_MAX);
}

// More lines than the 64 KiB buffer holds: written as it fills, every line whole and in order.
TEST_F(LogLine, AFullBufferIsWrittenInOrder)
{
	const int n = 2000;
	std::string during;
	std::thread t([&] {
		log_buffer_start();
		for (int i = 0; i < n; i++) {
			log_line l;
			ASSERT_TRUE(log_line_begin(&l));
			log_line_lit(&l, "http path=/r");
			log_line_uint(&l, (unsigned long long)i);
			log_line_lit(&l, " filler=");
			log_line_str(&l, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
			log_line_end(&l);
		}
		during = read();
		log_buffer_end();
	});
	t.join();
	EXPECT_GT(during.size(), 65536u / 2) << "full buffers were written before the end";
	EXPECT_EQ(during.back(), '\n') << "only whole lines were written";
	std::vector<std::string> got = lines();
	ASSERT_EQ(got.size(), (size_t)n);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(got[i].rfind("http path=/r" + std::to_string(i) + " ", 0), 0u) << got[i];
}

TEST_F(LogLine, NothingAboveInfo)
{
	log_set_level(LOG_WARN);
	log_line l;
	EXPECT_FALSE(log_line_begin(&l));
	log_set_level(LOG_INFO);
	EXPECT_EQ(read(), "");
}

} // namespace
