/* What one sleep in epoll_wait and its wake-up cost the sleeper on this machine.
 *
 * A thread pinned to CPU 0 waits in epoll_wait on an eventfd, as a gateway's worker waits
 * for its sockets; the main thread, pinned to CPU 1, writes the eventfd every GAP_US
 * microseconds (busy-waiting in between, so that nothing else wakes CPU 0) for 2 s. The
 * sleeper's own CPU time (getrusage RUSAGE_THREAD, the number /proc/PID/stat gives the
 * bench) is divided by the wakes. TIMEOUT_MS is epoll_wait's timeout (-1: none). With
 * SPIN_US, the sleeper first polls (epoll_wait with timeout 0) that long before it sleeps:
 * what a busy-polling loop would pay instead.
 *
 *   cc -O2 -pthread bench/wake.c -o /tmp/wake && /tmp/wake 50 -1
 *
 * Only an eventfd of its own: no network traffic. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int wake_fd, wake_ep, wake_timeout_ms, wake_spin_us;
static volatile int wake_done;
static long wake_count, wake_spun;
static double wake_cpu_us;

static double wake_now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int wake_pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static double wake_thread_cpu_us(void)
{
	struct rusage r;
	getrusage(RUSAGE_THREAD, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

static void *wake_sleeper(void *arg)
{
	(void)arg;
	if (wake_pin(0) != 0) {
		fprintf(stderr, "wake: cannot pin the sleeper to CPU 0\n");
		exit(1);
	}
	double start = wake_thread_cpu_us();
	while (!wake_done) {
		struct epoll_event ev;
		int n = 0;
		if (wake_spin_us) {
			double until = wake_now_us() + wake_spin_us;
			while (wake_now_us() < until && (n = epoll_wait(wake_ep, &ev, 1, 0)) == 0)
				;
			wake_spun += n > 0;
		}
		if (n == 0)
			n = epoll_wait(wake_ep, &ev, 1, wake_timeout_ms);
		uint64_t v;
		if (n > 0 && read(wake_fd, &v, sizeof(v)) == sizeof(v))
			wake_count += (long)v;
	}
	wake_cpu_us = wake_thread_cpu_us() - start;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: wake GAP_US TIMEOUT_MS [SPIN_US]\n");
		return 2;
	}
	int gap_us = atoi(argv[1]);
	wake_timeout_ms = atoi(argv[2]);
	wake_spin_us = argc > 3 ? atoi(argv[3]) : 0;
	wake_fd = eventfd(0, EFD_NONBLOCK);
	wake_ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = wake_fd };
	if (wake_fd < 0 || wake_ep < 0 || epoll_ctl(wake_ep, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
		perror("wake: eventfd/epoll");
		return 1;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, wake_sleeper, NULL) != 0 || wake_pin(1) != 0) {
		fprintf(stderr, "wake: needs two CPUs\n");
		return 1;
	}
	usleep(100000);
	uint64_t one = 1;
	double end = wake_now_us() + 2e6;
	while (wake_now_us() < end) {
		double next = wake_now_us() + gap_us;
		while (wake_now_us() < next)
			;
		if (write(wake_fd, &one, sizeof(one)) != sizeof(one))
			break;
	}
	wake_done = 1;
	if (write(wake_fd, &one, sizeof(one)) != sizeof(one))
		return 1;
	pthread_join(t, NULL);
	printf("gap %d us, timeout %d ms, spin %d us: %ld wakes, the sleeper's CPU %.2f us per wake%s", gap_us,
	       wake_timeout_ms, wake_spin_us, wake_count, wake_count ? wake_cpu_us / (double)wake_count : 0.0,
	       wake_spin_us ? "" : "\n");
	if (wake_spin_us)
		printf(", %.0f%% caught while polling\n", wake_count ? 100.0 * (double)wake_spun / (double)wake_count : 0.0);
	return 0;
}
