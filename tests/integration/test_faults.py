"""Fault tests: back ends that misbehave, clients that stall, many connections at once,
descriptors exhausted, garbage on every port. Each test says what it tried and what was
lost; the gateway must answer or close cleanly, never crash, and serve again afterwards."""
import os
import random
import socket
import subprocess
import threading
import time
import unittest

from harness import LOOP4, ONEGATE_BIN, Onegate, OnegateTestCase, free_port, stop_and_check, wait_until
from harness import fault_report as report
from httpback import HTTPBackend


def ask(port, host="app.test", path="/", timeout=10):
    s = socket.create_connection((LOOP4, port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d
    finally:
        s.close()


class SilentAndBrokenBackends(OnegateTestCase):
    def setUp(self):
        self.good = HTTPBackend("good")
        self.addCleanup(self.good.kill)
        # accepts and never answers
        self.silent = socket.socket()
        self.silent.bind((LOOP4, 0))
        self.silent.listen(64)
        self.addCleanup(self.silent.close)
        # answers half a response, then closes
        self.breaker = socket.socket()
        self.breaker.bind((LOOP4, 0))
        self.breaker.listen(64)
        self.addCleanup(self.breaker.close)
        threading.Thread(target=self._break_loop, daemon=True).start()
        self.port = free_port()
        conf = """
onegate = { workers = 1; };
pools = ( { name = "good"; servers = ( "127.0.0.1:%d" ); },
          { name = "silent"; servers = ( "127.0.0.1:%d" ); },
          { name = "breaker"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; header_timeout = 1;
  routes = ( { host = "app.test"; pool = "good"; },
             { host = "silent.test"; pool = "silent"; request_timeout = 1; },
             { host = "broken.test"; pool = "breaker"; } ); } );
""" % (self.good.port, self.silent.getsockname()[1], self.breaker.getsockname()[1], self.port)
        self.og = self.start_onegate(conf, self.port)

    def _break_loop(self):
        while True:
            try:
                c, _ = self.breaker.accept()
            except OSError:
                return
            try:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
            except OSError:
                pass
            c.close()

    def test_silent_backend_gets_504_and_others_are_served(self):
        t0 = time.monotonic()
        out = ask(self.port, "silent.test")
        self.assertTrue(out.startswith(b"HTTP/1.1 504"), out[:100])
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn(b'"backend": "good"', ask(self.port))
        report("back end that accepts and never answers", "1 request", "nothing (504 after the route's 1 s)")

    def test_backend_closing_mid_response_closes_the_client_cleanly(self):
        out = ask(self.port, "broken.test")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"))
        self.assertEqual(len(body), 1000, "the client must see the cut, not a made-up end")
        self.assertTrue(wait_until(lambda: any("outcome=server-closed" in l for l in self.og.log_lines()), 3))
        self.assertIn(b"good", ask(self.port))
        report("back end that closes mid-response", "1 request", "that response (cut at 1000 of 100000 bytes)")

    def test_slowloris_and_slow_reader(self):
        # a head sent a byte at a time, slower than header_timeout allows
        s = socket.create_connection((LOOP4, self.port), timeout=10)
        t0 = time.monotonic()
        got = b""
        try:
            for ch in b"GET / HTTP/1.1\r\nHost: app.test\r\n":
                s.sendall(bytes([ch]))
                time.sleep(0.1)
                if time.monotonic() - t0 > 3:
                    break
        except OSError:
            pass        # the gateway answered and closed while we were still sending
        try:
            s.settimeout(3)
            got = s.recv(4096)
        except OSError:
            pass
        s.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 408"), got[:80])
        # a reader that never reads a big answer: the gateway keeps serving others meanwhile
        self.good.statuses = {}
        r = socket.create_connection((LOOP4, self.port), timeout=10)
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(200):
            r.sendall(b"GET /chunked HTTP/1.1\r\nHost: app.test\r\n\r\n")
        for _ in range(5):
            self.assertIn(b"good", ask(self.port))
        r.close()
        report("slowloris and a slow reader", "1 byte-by-byte head, 200 pipelined requests never read",
               "nothing (408 for the slow head; others served meanwhile)")


class ManyConnections(OnegateTestCase):
    def test_5000_concurrent_keepalive_connections(self):
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < 12000:
            self.skipTest("needs 12,000 descriptors, the hard limit is %d" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        be = HTTPBackend("many")
        self.addCleanup(be.kill)
        port = free_port()
        self.start_onegate("""
onegate = { workers = 2; };
pools = ( { name = "p"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "app.test"; pool = "p"; } ); } );
""" % (be.port, port), port)
        n = 5000
        socks = []
        try:
            for _ in range(n):
                socks.append(socket.create_connection((LOOP4, port), timeout=30))
            # every connection is open at once; now each asks one question over its own connection
            for i in range(0, n, 250):
                for s in socks[i:i + 250]:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
                for s in socks[i:i + 250]:
                    got = b""
                    while b"}" not in got:
                        d = s.recv(65536)
                        if not d:
                            break
                        got += d
                    self.assertIn(b'"backend": "many"', got)
        finally:
            for s in socks:
                s.close()
        report("5,000 concurrent client connections", "5,000 requests, one per open connection", "nothing")


class DescriptorsExhausted(unittest.TestCase):
    def test_emfile_keeps_serving_and_recovers(self):
        be = HTTPBackend("fd")
        self.addCleanup(be.kill)
        port = free_port()
        og = Onegate("""
onegate = { workers = 1; };
pools = ( { name = "p"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "app.test"; pool = "p"; } ); } );
""" % (be.port, port), wait_port=port)
        self.addCleanup(og.cleanup)
        og._err = open(og.stderr_path, "wb")
        # 64 descriptors in all, hard limit too, so the daemon cannot raise it
        og.proc = subprocess.Popen(["prlimit", "--nofile=64:64", ONEGATE_BIN, "run", "-c", og.conf],
                                   stdin=subprocess.DEVNULL, stdout=og._err, stderr=og._err)
        og.wait_ready(port, 10)
        hogs = []
        try:
            for _ in range(120):
                try:
                    hogs.append(socket.create_connection((LOOP4, port), timeout=2))
                except OSError:
                    break
            # The connects complete in the backlog; the worker hits the limit when it accepts them.
            self.assertTrue(wait_until(lambda: any("accept:" in l and "pausing" in l for l in og.log_lines()), 5),
                            og.stderr()[-2000:])
        finally:
            for s in hogs:
                s.close()
        # once descriptors are free again, it serves
        self.assertTrue(wait_until(lambda: self._ok(port), 10), og.stderr()[-2000:])
        self.assertIsNone(og.proc.poll(), "onegate exited")
        stop_and_check(og)
        report("descriptors exhausted (limit 64)", "%d idle connections held" % len(hogs),
               "only connections past the limit (paused accepts), served again after")

    @staticmethod
    def _ok(port):
        try:
            return b'"backend": "fd"' in ask(port, timeout=3)
        except OSError:
            return False


class Garbage(OnegateTestCase):
    def test_garbage_on_every_port(self):
        be = HTTPBackend("g")
        self.addCleanup(be.kill)
        http_port, pt_port, admin_port = free_port(), free_port(), free_port()
        og = self.start_onegate("""
onegate = { workers = 1; admin = { listen = "127.0.0.1:%d"; }; };
pools = ( { name = "p"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; header_timeout = 1;
               routes = ( { host = "app.test"; pool = "p"; } ); },
             { name = "pt"; listen = [ "127.0.0.1:%d" ]; hello_timeout = 1;
               routes = ( { sni = "x.test"; pool = "p"; } ); } );
""" % (admin_port, be.port, http_port, pt_port), http_port)
        # Bound one after another, the admin listener last: garbage sent to a port not yet
        # listening would be refused unread, and the loop below takes that for an answer.
        og.wait_ready(pt_port, 10)
        og.wait_ready(admin_port, 10)
        rnd = random.Random(7)
        sent = 0
        for port in (http_port, pt_port, admin_port):
            for i in range(40):
                blob = bytes(rnd.getrandbits(8) for _ in range(rnd.choice((1, 5, 100, 3000, 20000))))
                if i % 4 == 0:
                    blob = b"\x16\x03\x01" + blob        # looks like TLS at first
                s = None
                try:
                    s = socket.create_connection((LOOP4, port), timeout=5)
                    s.sendall(blob)
                    # half-close: what the gateway does with an incomplete message and EOF is the test
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
                finally:
                    if s:
                        s.close()
                sent += 1
        self.assertIn(b'"backend": "g"', ask(http_port))
        self.assertIsNone(og.proc.poll())
        report("garbage on every port", "%d connections of random bytes" % sent, "nothing (each closed or answered)")


if __name__ == "__main__":
    unittest.main()
