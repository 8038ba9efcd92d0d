"""Process lifecycle: stop signals and draining, workers, start-up failures, SIGHUP reloads."""
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import harness as h

PKI = None
_TMP = None


def setUpModule():
    global PKI, _TMP
    h.require_binary()
    _TMP = tempfile.TemporaryDirectory(prefix="onegate-lc-")
    PKI = h.make_pki(_TMP.name, ["echo", "web", "a", "b"])


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
        # The port accepts (into the backlog) as soon as it is bound, before the worker
        # threads are created; the "serving" line comes after the last one has started.
        self.assertTrue(h.wait_until(lambda: "onegate serving" in og.stderr(), 5), og.stderr())
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
        self.assertIsNone(h.SANITIZER.search(og.stderr()), og.stderr())


RELOAD_CONF = r"""
onegate = { workers = %(workers)d; drain_timeout = 10; };
pools = ( { name = "a";   servers = ( "%(a)s" ); },
          { name = "b";   servers = ( "%(b)s" ); },
          { name = "web"; servers = ( "%(web)s" ); } );
services = ( { name = "public"; listen = [ %(listen)s ];
               routes = ( { sni = "app1.test"; pool = "%(pool)s"; } );
               default = { pool = "web"; }; } );
"""


BROKEN = r"""
onegate = { workers = 1; drain_timeout = 10; };
pools = ( { name = "a"; servers = ( "127.0.0.1:1" ); bogus_key = 1; } );
services = ( { name = "public"; listen = [ "127.0.0.1:%d" ];
               routes = ( { sni = "app1.test"; pool = "nosuchpool"; } ); } );
"""


class Reload(h.OnegateTestCase):
    def setUp(self):
        self.a = self.start_backend("a", PKI, mode="echo")
        self.b = self.start_backend("b", PKI, mode="echo")
        self.web = self.start_backend("web", PKI)
        self.port = h.free_port()

    def conf(self, pool, ports=None, workers=1):
        ports = ports or [self.port]
        return RELOAD_CONF % {
            "workers": workers, "a": self.a.addr, "b": self.b.addr, "web": self.web.addr, "pool": pool,
            "listen": ", ".join('"127.0.0.1:%d"' % p for p in ports)}

    def rewrite(self, og, text):
        tmp = og.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, og.conf)

    @staticmethod
    def count(og, needle):
        return sum(1 for line in og.log_lines() if needle in line)

    def reload(self, og, text, expect_ok=True, timeout=5):
        """Rewrites the rule file, sends SIGHUP, waits for onegate's verdict."""
        ok0, bad0 = self.count(og, "reloaded "), self.count(og, "refused")
        self.rewrite(og, text)
        og.signal(signal.SIGHUP)
        done = h.wait_until(lambda: self.count(og, "reloaded ") > ok0
                            or self.count(og, "refused") > bad0, timeout)
        self.assertTrue(done, "no reload verdict in the log within %ss:\n%s" % (timeout, og.stderr()))
        if expect_ok:
            self.assertGreater(self.count(og, "reloaded "), ok0, "reload refused:\n" + og.stderr())
        else:
            self.assertGreater(self.count(og, "refused"), bad0, "broken file accepted:\n" + og.stderr())
        self.assertIsNone(og.proc.poll(), "onegate exited on SIGHUP:\n" + og.stderr())

    def peer(self, port=None, sni="app1.test"):
        """CN of the back end a new connection reaches (TLS handshake, then close),
        or a short description of what went wrong instead."""
        try:
            raw = h.connect(port or self.port, timeout=3)
        except OSError as e:
            return "connect: %s" % e
        try:
            with h.client_context(PKI.ca).wrap_socket(raw, server_hostname=sni) as s:
                return h.cert_cn(s.getpeercert())
        except (OSError, ssl.SSLError) as e:
            return "%s: %s" % (type(e).__name__, e)
        finally:
            raw.close()

    def wait_peer(self, want, port=None, timeout=3, count=10):
        """Workers apply new rules on their own thread: poll (bounded) until a new
        connection reaches want, then require the next count to reach it too."""
        h.wait_until(lambda: self.peer(port) == want, timeout, interval=0.05)
        for i in range(count):
            got = self.peer(port)
            if got != want:
                self.fail("new connection %d after the reload reached %r, wanted %r; "
                          "onegate threads: %s; stderr:\n%s"
                          % (i, got, want, self.threads(), self.og.stderr()[-3000:]))

    def threads(self):
        try:
            return len(os.listdir("/proc/%d/task" % self.og.proc.pid))
        except OSError:
            return None

    def start_onegate(self, config_text, port, **kw):
        self.og = super().start_onegate(config_text, port, **kw)
        return self.og

    def test_reload_with_nothing_open_keeps_serving(self):
        # Nothing open at the time of the SIGHUP: every worker must go on serving.
        og = self.start_onegate(self.conf("a", workers=2), self.port)
        self.assertEqual(self.peer(), "a")
        time.sleep(0.2)     # let that connection's close reach onegate
        # One worker serving does not mean the other has started: count once all have.
        self.assertTrue(h.wait_until(lambda: "onegate serving" in og.stderr(), 5), og.stderr())
        n = self.threads()
        self.assertGreaterEqual(n, 3, "expected a main thread and 2 workers")
        self.reload(og, self.conf("a", workers=2))
        time.sleep(0.3)
        self.assertEqual(self.threads(), n, "worker threads ended on SIGHUP:\n" + og.stderr())
        self.wait_peer("a", timeout=0)
        self.assertEqual(og.stop(), 0, og.stderr())

    def test_reload_changes_route_open_connection_stays(self):
        og = self.start_onegate(self.conf("a", workers=2), self.port)
        self.assertEqual([self.peer() for _ in range(4)], ["a"] * 4)
        raw = h.connect(self.port)
        self.addCleanup(raw.close)
        old = h.client_context(PKI.ca).wrap_socket(raw, server_hostname="app1.test")
        self.addCleanup(old.close)
        self.assertEqual(h.cert_cn(old.getpeercert()), "a")
        old.sendall(b"before")
        self.assertEqual(Lifecycle.recv_n(old, 6), b"before")
        a_before = len(self.a.seen())

        self.reload(og, self.conf("b", workers=2))
        self.wait_peer("b")
        # The connection opened under the old rules still relays, to a.
        old.sendall(b"after-reload")
        self.assertEqual(Lifecycle.recv_n(old, 12), b"after-reload")
        self.assertEqual(len(self.a.seen()), a_before, "new connections still reached a")
        self.assertTrue(any(c.received >= 18 for c in self.a.seen()),
                        [(c.peer, c.received) for c in self.a.seen()])
        old.close()
        f = self.assertLogged(og, lambda f: f.get("pool") == "a" and f.get("in", "0") != "0"
                              and int(f.get("out", "0")) > 18 and f.get("outcome") == "ok",
                              "the old connection finishing on pool a")
        self.assertEqual(f[0].get("route"), "app1.test", f[0]["_line"])
        self.assertEqual(og.stop(), 0, og.stderr())

    def test_reload_broken_file_keeps_old_rules(self):
        og = self.start_onegate(self.conf("a"), self.port)
        self.assertEqual(self.peer(), "a")
        self.reload(og, BROKEN % self.port, expect_ok=False)
        err = og.stderr()
        # Every error is logged with its file and line.
        self.assertRegex(err, re.escape(og.conf) + r":3: .*bogus_key")
        self.assertRegex(err, re.escape(og.conf) + r":5: .*nosuchpool")
        self.assertEqual([self.peer() for _ in range(5)], ["a"] * 5)
        self.assertEqual([self.peer(sni="unknown.test") for _ in range(2)], ["web"] * 2)
        # A good file after the broken one is taken.
        self.reload(og, self.conf("b"))
        self.wait_peer("b")
        self.assertEqual(og.stop(), 0, og.stderr())

    def test_reload_adds_and_removes_listen_address(self):
        port2 = h.free_port()
        og = self.start_onegate(self.conf("a"), self.port)
        with self.assertRaises(ConnectionRefusedError):
            h.connect(port2, timeout=2).close()
        self.reload(og, self.conf("b", ports=[self.port, port2]))
        og.wait_ready(port2, 3)
        self.wait_peer("b", port=port2)
        self.wait_peer("b", port=self.port)
        rc, body, err = h.curl("unknown.test", port2, PKI.ca)
        self.assertEqual((rc, body), (0, "backend=web sni=unknown.test"), err)
        # Removing the first address: it stops accepting, the second keeps serving.
        self.reload(og, self.conf("a", ports=[port2]))
        gone = h.wait_until(lambda: self._refused(self.port), 3, interval=0.05)
        self.assertTrue(gone, "removed listen address still accepts:\n" + og.stderr())
        self.wait_peer("a", port=port2)
        self.assertEqual(og.stop(), 0, og.stderr())

    def test_reload_new_address_in_use_is_refused(self):
        port2 = h.free_port()
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind((h.LOOP4, port2))
        blocker.listen(1)
        og = self.start_onegate(self.conf("a"), self.port)
        self.reload(og, self.conf("b", ports=[self.port, port2]), expect_ok=False)
        self.assertIn("127.0.0.1:%d" % port2, og.stderr())
        # All or nothing: the route change in that file is not taken either.
        self.assertEqual([self.peer() for _ in range(5)], ["a"] * 5)
        self.assertEqual(og.stop(), 0, og.stderr())

    @staticmethod
    def _refused(port):
        s = socket.socket()
        s.settimeout(1)
        try:
            s.connect((h.LOOP4, port))
            return False
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        finally:
            s.close()

    def test_load_across_reloads_has_no_failures(self):
        og = self.start_onegate(self.conf("a", workers=2), self.port)
        stop = threading.Event()
        results = []            # (ok, detail)
        lock = threading.Lock()

        def client(i):
            n = 0
            while not stop.is_set() and n < 2000:
                n += 1
                sni = "app1.test" if n % 2 else "c%d-%d.contoso.test" % (i, n)
                try:
                    if sni == "app1.test":
                        cn = self.peer(sni=sni)
                        ok, detail = cn in ("a", "b"), "app1.test -> %r" % cn
                    else:
                        body, cn, _ = h.https_get(self.port, sni, PKI.ca, timeout=5)
                        ok = body == "backend=web sni=%s" % sni and cn == "web"
                        detail = "%s -> %r %r" % (sni, cn, body)
                except Exception as e:
                    ok, detail = False, "%s: %s: %s" % (sni, type(e).__name__, e)
                with lock:
                    results.append((ok, detail))

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            for k in range(10):
                if k % 2 == 0:
                    self.reload(og, self.conf("b" if k % 4 == 0 else "a", workers=2))
                else:
                    self.reload(og, BROKEN % self.port, expect_ok=False)
                time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        failures = [d for ok, d in results if not ok]
        self.assertGreater(len(results), 40, "too few requests ran across the reloads")
        self.assertEqual(failures, [], "%d of %d failed; stderr:\n%s"
                         % (len(failures), len(results), og.stderr()[-4000:]))
        self.assertEqual(og.stop(), 0, og.stderr())


if __name__ == "__main__":
    unittest.main()
