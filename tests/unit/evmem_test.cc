// io/evmem: libevent's blocks of 1 KiB to 64 KiB kept per thread by size, every
// block glibc's, so that either free takes what either malloc gave.
#include <gtest/gtest.h>

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <event2/buffer.h>

extern "C" {
#include "io/evmem.h"
#include "io/keep.h"
}

namespace {

TEST(Evmem, AFreedBlockServesTheNextOfItsClass)
{
	keep_drop_all();
	void *a = evmem_malloc(1500);
	ASSERT_NE(a, nullptr);
	EXPECT_GE(malloc_usable_size(a), 2048u);
	evmem_free(a);
	// Any size of the class (1025-2048 bytes) gets the same block back.
	void *b = evmem_malloc(2048);
	EXPECT_EQ(b, a);
	evmem_free(b);
	void *c = evmem_malloc(1025);
	EXPECT_EQ(c, a);
	// Another class does not.
	void *d = evmem_malloc(3000);
	EXPECT_NE(d, a);
	EXPECT_GE(malloc_usable_size(d), 4096u);
	evmem_free(c);
	evmem_free(d);
	keep_drop_all();
}

TEST(Evmem, ABlockHoldsEveryByteOfEachSizeItServes)
{
	keep_drop_all();
	for (size_t size : {1024u, 1025u, 4096u, 5000u, 16384u, 65536u}) {
		for (int round = 0; round < 2; round++) {   // a new block, then a kept one
			auto *p = static_cast<unsigned char *>(evmem_malloc(size));
			ASSERT_NE(p, nullptr) << size;
			ASSERT_GE(malloc_usable_size(p), size) << size;
			memset(p, 0xab, size);
			evmem_free(p);
		}
	}
	keep_drop_all();
}

TEST(Evmem, GlibcBlocksGoEitherWay)
{
	keep_drop_all();
	// A block from malloc() of a class's size is kept, and served to that class.
	void *m = malloc(3000);
	ASSERT_NE(m, nullptr);
	evmem_free(m);
	EXPECT_EQ(evmem_malloc(2048), m);
	// What evmem gives, free() takes (libevent's strings go to callers who free them).
	free(m);
	// Small and large sizes are plain malloc and free.
	void *small = evmem_malloc(100), *large = evmem_malloc(200 * 1024);
	ASSERT_NE(small, nullptr);
	ASSERT_NE(large, nullptr);
	EXPECT_LT(malloc_usable_size(small), 1024u);
	evmem_free(small);
	evmem_free(large);
	evmem_free(nullptr);
	keep_drop_all();
}

TEST(Evmem, KeepsNoMoreThanItsBound)
{
	keep_drop_all();
	std::vector<void *> blocks;
	for (int i = 0; i < 300; i++)
		blocks.push_back(evmem_malloc(1024));
	for (void *b : blocks)
		evmem_free(b);
	// 1 KiB blocks are kept up to 128, the first freed, and come back last kept first;
	// the 129th is glibc's, none of them.
	for (int i = 127; i >= 0; i--) {
		void *b = evmem_malloc(1024);
		ASSERT_EQ(b, blocks[i]) << i;
		blocks[i] = b;
	}
	void *more = evmem_malloc(1024);
	EXPECT_EQ(std::find(blocks.begin(), blocks.begin() + 128, more), blocks.begin() + 128);
	evmem_free(more);
	for (int i = 0; i < 128; i++)
		evmem_free(blocks[i]);
	keep_drop_all();
}

TEST(Evmem, ReallocKeepsTheBytes)
{
	auto *p = static_cast<char *>(evmem_malloc(2000));
	ASSERT_NE(p, nullptr);
	memset(p, 'x', 2000);
	p = static_cast<char *>(evmem_realloc(p, 9000));
	ASSERT_NE(p, nullptr);
	for (int i = 0; i < 2000; i++)
		ASSERT_EQ(p[i], 'x') << i;
	evmem_free(p);
	keep_drop_all();
}

TEST(Evmem, EvbuffersRunOnIt)
{
	// libevent's memory functions are set once per process: this test's binary sets them
	// here, before its first evbuffer, as the gateway's main() does.
	(void)evmem_install();
	evbuffer *buf = evbuffer_new();
	ASSERT_NE(buf, nullptr);
	std::string chunk(3000, 'y');
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 20; i++)
			ASSERT_EQ(evbuffer_add(buf, chunk.data(), chunk.size()), 0);
		ASSERT_EQ(evbuffer_get_length(buf), 20 * chunk.size());
		std::string back(evbuffer_get_length(buf), '\0');
		ASSERT_EQ(evbuffer_remove(buf, back.data(), back.size()), static_cast<int>(back.size()));
		EXPECT_EQ(back, std::string(back.size(), 'y'));
	}
	evbuffer_free(buf);
	// Threads keep their own blocks, freed when they end.
	std::thread t([] {
		evbuffer *b = evbuffer_new();
		std::string s(5000, 'z');
		evbuffer_add(b, s.data(), s.size());
		evbuffer_drain(b, s.size());
		evbuffer_free(b);
	});
	t.join();
}

TEST(Evmem, SizedFreeKeepsInTheSizesClass)
{
	keep_drop_all();
	// io/sock's read blocks: freed with their size, served again to that size and to
	// libevent's chains of the same class, and 512 of them are kept.
	std::vector<void *> blocks;
	for (int i = 0; i < 600; i++)
		blocks.push_back(evmem_malloc(4096));
	for (void *b : blocks)
		evmem_free_sized(b, 4096);
	EXPECT_EQ(evmem_malloc(4096), blocks[511]);
	EXPECT_EQ(evmem_malloc(3000), blocks[510]);
	evmem_free_sized(blocks[511], 4096);
	evmem_free(blocks[510]);
	// Outside the classes the sized free is free().
	void *small = evmem_malloc(100);
	ASSERT_NE(small, nullptr);
	evmem_free_sized(small, 100);
	evmem_free_sized(nullptr, 4096);
	keep_drop_all();
}

}  // namespace
