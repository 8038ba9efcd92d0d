"""Process lifecycle: stop signals and draining, workers, start-up failures."""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness as h

PKI = None
_TMP = None


def setUpModule():
    global PKI, _TMP
    h.require_binary()
    _TMP = tempfile.TemporaryDirectory(prefix="onegate-lc-")
    PKI = h.make_pki(_TMP.name, ["echo", "web"])


def tearDownModule():
    if _TMP is not None:
        _TMP.cleanup()


def config(port, echo, web, workers=1, drain='10'):
    return r"""
onegate = { workers = %d; drain_timeout = %s; };
pools = ( { name = "echo"; servers = ( "%s" ); },
          { name = "web";  servers = ( "%s" ); } );
services = ( { name = "public"; listen = [ "127.0.0.1:%d" ];
               routes = ( { sni = "echo.test"; pool = "echo"; } );
               default = { pool = "web"; }; } );
""" % (workers, drain, echo.addr, web.addr, port)


class Lifecycle(h.OnegateTestCase):
    def setUp(self):
        self.echo = self.start_backend("echo", PKI, mode="echo")
        self.web = self.start_backend("web", PKI)
        self.port = h.free_port()

    def open_echo(self):
        raw = h.connect(self.port)
        self.addCleanup(raw.close)
        s = h.client_context(PKI.ca).wrap_socket(raw, server_hostname="echo.test")
        self.addCleanup(s.close)
        s.sendall(b"one")
        self.assertEqual(self.recv_n(s, 3), b"one")
        return s

    @staticmethod
    def recv_n(s, n):
        buf = b""
        while len(buf) < n:
            d = s.recv(n - len(buf))
            if not d:
                break
            buf += d
        return buf

    def wait_refused(self, timeout=3):
        """True once a new connection is refused."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = socket.socket()
            s.settimeout(1)
            try:
                s.connect((h.LOOP4, self.port))
            except ConnectionRefusedError:
                return True
            except OSError:
                pass
            finally:
                s.close()
            time.sleep(0.05)
        return False

    def test_sigterm_drains_open_connection(self):
        og = self.start_onegate(config(self.port, self.echo, self.web, drain='10'), self.port)
        s = self.open_echo()
        t0 = time.monotonic()
        og.signal(signal.SIGTERM)
        self.assertTrue(self.wait_refused(3), "new connections still accepted after SIGTERM")
        self.assertIsNone(og.proc.poll(), "onegate exited with a connection still open")
        # The open connection still relays both ways.
        s.sendall(b"two")
        self.assertEqual(self.recv_n(s, 3), b"two")
        s.close()
        rc = og.wait(8)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit code %r after SIGTERM; stderr:\n%s" % (rc, og.stderr()))
        self.assertLess(elapsed, 8, "onegate waited for the whole drain time though nothing was open")
        f = self.assertLogged(og, lambda f: f.get("sni") == "echo.test", "sni=echo.test", timeout=1)
        self.assertEqual(f[0].get("outcome"), "ok", f[0]["_line"])

    def test_sigint_stops(self):
        og = self.start_onegate(config(self.port, self.echo, self.web), self.port)
        og.signal(signal.SIGINT)
        self.assertEqual(og.wait(5), 0, og.stderr())

    def test_drain_timeout_bounds_exit(self):
        og = self.start_onegate(config(self.port, self.echo, self.web, drain='"1s"'), self.port)
        s = self.open_echo()
        t0 = time.monotonic()
        og.signal(signal.SIGTERM)
        rc = og.wait(6)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(rc, "onegate still running 6s after SIGTERM with drain_timeout = 1s")
        self.assertEqual(rc, 0, og.stderr())
        self.assertGreaterEqual(elapsed, 0.8, "did not wait for the drain time")
        self.assertLess(elapsed, 4)
        # The open connection was closed by onegate.
        s.settimeout(3)
        try:
            d = s.recv(10)
        except (OSError, ConnectionResetError):
            d = b""
        self.assertEqual(d, b"")

    def test_two_workers_serve(self):
        og = self.start_onegate(config(self.port, self.echo, self.web, workers=2), self.port)
        tasks = os.listdir("/proc/%d/task" % og.proc.pid)
        self.assertGreaterEqual(len(tasks), 3, "expected a main thread and 2 workers")
        for i in range(10):
            rc, body, err = h.curl("web%d.contoso.test" % i, self.port, PKI.ca)
            self.assertEqual(rc, 0, err + og.stderr())
            self.assertEqual(body, "backend=web sni=web%d.contoso.test" % i)
        self.assertEqual(len(self.web.seen()), 10)
        self.assertEqual(og.stop(), 0, og.stderr())

    def test_address_in_use(self):
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind((h.LOOP4, self.port))
        blocker.listen(1)
        og = h.Onegate(config(self.port, self.echo, self.web))
        self.addCleanup(og.cleanup)
        og.start(expect_ready=False)
        rc = og.wait(10)
        self.assertIsNotNone(rc, "onegate kept running on an address in use")
        self.assertNotEqual(rc, 0)
        self.assertIn("127.0.0.1:%d" % self.port, og.stderr())


if __name__ == "__main__":
    unittest.main()
