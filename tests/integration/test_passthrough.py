"""SNI passthrough: routing by SNI, pools, rejects, timeouts, relay integrity, logs."""
import os
import signal
import socket
import struct
import ssl
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
    _TMP = tempfile.TemporaryDirectory(prefix="onegate-pt-")
    PKI = h.make_pki(_TMP.name, ["adfs", "lab", "apps", "special", "fallback", "rr1", "rr2",
                                 "alive", "echo", "half", "idle"])


def tearDownModule():
    if _TMP is not None:
        _TMP.cleanup()


CONFIG = r"""
# passthrough integration test
onegate = { workers = 1; drain_timeout = 5; };
pools = (
  { name = "adfs";     servers = ( "%(adfs)s" ); },
  { name = "lab";      servers = ( "%(lab)s" ); },
  { name = "apps";     servers = ( "%(apps)s" ); },
  { name = "special";  servers = ( "%(special)s" ); },
  { name = "fallback"; servers = ( "%(fallback)s" ); },
  { name = "rr";       servers = ( "%(rr1)s", "%(rr2)s" ); },
  { name = "dead";     servers = ( "127.0.0.1:%(dead)d", "%(alive)s" ); connect_timeout = 2; },
  { name = "echo";     servers = ( "%(echo)s" ); },
  { name = "half";     servers = ( "%(half)s" ); },
  { name = "idle";     servers = ( "%(idle)s" ); idle_timeout = "1s"; },
  { name = "gone";     servers = ( "127.0.0.1:%(dead)d" ); },
  { name = "mute";     servers = ( "127.0.0.1:%(mute)d" ); }
);
services = (
  { name = "public"; listen = [ "127.0.0.1:%(port)d" ]; hello_timeout = 10;
    routes = (
      { sni = "sts.contoso.test";      pool = "adfs"; },
      { sni = "~^app[0-9]+\\.test$";   pool = "apps"; },
      { sni = "~^.*\\.home\\.test$";   pool = "apps"; },
      { sni = "*.home.test";           pool = "lab"; },
      { sni = "special.home.test";     pool = "special"; },
      { sni = "rr.contoso.test";       pool = "rr"; },
      { sni = "dead.contoso.test";     pool = "dead"; },
      { sni = "echo.test";             pool = "echo"; },
      { sni = "half.contoso.test";     pool = "half"; },
      { sni = "idle.contoso.test";     pool = "idle"; },
      { sni = "gone.contoso.test";     pool = "gone"; },
      { sni = "mute.contoso.test";     pool = "mute"; }
    );
    default = { pool = "fallback"; }; },
  { name = "strict"; listen = [ "127.0.0.1:%(strict)d" ]; hello_timeout = "1s";
    routes = ( { sni = "sts.contoso.test"; pool = "adfs"; } );
    default = { reject = true; }; }
);
"""

ALERT_PREFIXES = (bytes.fromhex("15030100020270"), bytes.fromhex("15030300020270"))


class Passthrough(h.OnegateTestCase):
    """One onegate (one worker, so round robin is deterministic) for the class."""

    @classmethod
    def setUpClass(cls):
        cls.backends = {}
        modes = {"echo": "echo", "half": "echo_after_eof", "idle": "echo"}
        for name in PKI.certs:
            chain, key = PKI.certs[name]
            b = h.TLSBackend(name, chain, key, mode=modes.get(name, "http")).start()
            cls.addClassCleanup(b.stop)
            cls.backends[name] = b
        cls.port = h.free_port()
        cls.strict = h.free_port()
        cls.dead = h.free_port()
        cls.mute = cls._mute_backend()
        params = {n: b.addr for n, b in cls.backends.items()}
        params.update(port=cls.port, strict=cls.strict, dead=cls.dead, mute=cls.mute)
        cls.og = h.Onegate(CONFIG % params, wait_port=cls.port)
        cls.addClassCleanup(cls.og.cleanup)
        cls.addClassCleanup(h.stop_and_check, cls.og)
        cls.og.start()
        cls.og.wait_ready(cls.strict, 10)

    @classmethod
    def _mute_backend(cls):
        """A back end that reads twice (the hello, then whatever comes next or the end) and
        closes without a word."""
        ls = socket.socket()
        ls.bind((h.LOOP4, 0))
        ls.listen(16)
        cls.addClassCleanup(ls.close)

        def serve():
            while True:
                try:
                    c, _ = ls.accept()
                except OSError:
                    return
                c.settimeout(10)
                try:
                    if c.recv(65536):
                        c.recv(65536)
                except OSError:
                    pass
                c.close()
        threading.Thread(target=serve, daemon=True).start()
        return ls.getsockname()[1]

    def setUp(self):
        for b in self.backends.values():
            b.reset()
        time.sleep(0.05)    # let the previous test's last lines reach the log
        self.mark_log(self.og)

    def tearDown(self):
        self.assertIsNone(self.og.proc.poll(), "onegate exited during the test:\n" + self.og.stderr())

    # ---------------------------------------------------------------- helpers

    def get(self, name):
        rc, body, err = h.curl(name, self.port, PKI.ca)
        self.assertEqual(rc, 0, "curl %s failed: %s\nonegate:\n%s" % (name, err, self.og.stderr()))
        return body

    def connections(self):
        return {n: len(b.seen()) for n, b in self.backends.items()}

    # ---------------------------------------------------------------- routing

    def test_exact_wildcard_regex_routes(self):
        self.assertEqual(self.get("sts.contoso.test"), "backend=adfs sni=sts.contoso.test")
        self.assertEqual(self.get("nas.home.test"), "backend=lab sni=nas.home.test")
        self.assertEqual(self.get("app42.test"), "backend=apps sni=app42.test")
        # Each back end saw the client's SNI and no other connection.
        self.assertEqual([c.sni for c in self.backends["adfs"].seen()], ["sts.contoso.test"])
        self.assertEqual([c.sni for c in self.backends["lab"].seen()], ["nas.home.test"])
        self.assertEqual([c.sni for c in self.backends["apps"].seen()], ["app42.test"])

    def test_backend_serves_its_own_certificate(self):
        # curl verified the chain against the test CA above; here the CN says whose it is.
        for name, backend in (("sts.contoso.test", "adfs"), ("nas.home.test", "lab"), ("app1.test", "apps")):
            body, cn, _ = h.https_get(self.port, name, PKI.ca)
            self.assertEqual(body, "backend=%s sni=%s" % (backend, name))
            self.assertEqual(cn, backend)

    def test_exact_beats_wildcard_and_wildcard_beats_regex(self):
        self.assertEqual(self.get("special.home.test"), "backend=special sni=special.home.test")
        # "~^.*\.home\.test$" comes first in the file, but a wildcard match wins over any regex.
        self.assertEqual(self.get("other.home.test"), "backend=lab sni=other.home.test")
        # "*.home.test" needs a label before it; the bare name goes to the default.
        self.assertEqual(self.get("home.test"), "backend=fallback sni=home.test")

    def test_tls12_and_tls13_clients(self):
        for extra in (("--tlsv1.2", "--tls-max", "1.2"), ("--tlsv1.3",)):
            rc, body, err = h.curl("sts.contoso.test", self.port, PKI.ca, extra=extra)
            self.assertEqual(rc, 0, "curl %s: %s" % (" ".join(extra), err))
            self.assertEqual(body, "backend=adfs sni=sts.contoso.test")
        rc, out = h.s_client(self.port, "nas.home.test", PKI.ca, extra=("-tls1_2",))
        self.assertIn("CN = lab", out)
        self.assertIn("Verify return code: 0 (ok)", out)

    def test_case_insensitive_sni(self):
        body, cn, _ = h.https_get(self.port, "STS.Contoso.TEST", PKI.ca)
        self.assertEqual(body.lower(), "backend=adfs sni=sts.contoso.test")
        body, _, _ = h.https_get(self.port, "NAS.Home.Test", PKI.ca)
        self.assertTrue(body.startswith("backend=lab "), body)
        body, _, _ = h.https_get(self.port, "App42.TEST", PKI.ca)
        self.assertTrue(body.startswith("backend=apps "), body)

    def test_unknown_name_goes_to_default_pool(self):
        self.assertEqual(self.get("unknown.test"), "backend=fallback sni=unknown.test")
        # Close to the regex "~^app[0-9]+\.test$" but not matching it.
        self.assertEqual(self.get("appx.test"), "backend=fallback sni=appx.test")
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "unknown.test", "sni=unknown.test")
        self.assertEqual(f[0].get("pool"), "fallback", f[0]["_line"])
        self.assertEqual(f[0].get("route"), "default", f[0]["_line"])
        self.assertEqual(f[0].get("outcome"), "ok", f[0]["_line"])

    def test_no_sni_goes_to_default_pool(self):
        body, cn, _ = h.https_get(self.port, None, PKI.ca)
        self.assertEqual(body, "backend=fallback sni=-")
        self.assertEqual(cn, "fallback")
        rc, out = h.s_client(self.port, None, PKI.ca)
        self.assertIn("CN = fallback", out)
        self.assertEqual([c.sni for c in self.backends["fallback"].seen()], [None, None])
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "-" and f.get("pool") == "fallback",
                              "sni=- pool=fallback", count=2)
        self.assertEqual(len(f), 2)
        self.assertEqual([x.get("route") for x in f], ["default", "default"], f[0]["_line"])

    # ---------------------------------------------------------------- reject

    def _raw_hello_response(self, port, sni):
        s = h.connect(port)
        try:
            c = h.BioTLS(s, sni, PKI.ca)
            s.sendall(c.client_hello())
            data, closed, _ = h.read_until_closed(s, 5)
        finally:
            s.close()
        return data, closed

    def test_reject_sends_unrecognized_name_alert(self):
        before = self.connections()
        data, closed = self._raw_hello_response(self.strict, "nobody.test")
        self.assertTrue(closed, "connection not closed after the alert")
        self.assertIn(data[:7], ALERT_PREFIXES, "expected an unrecognized_name alert, got %r" % data)
        self.assertEqual(len(data), 7, "bytes after the alert: %r" % data)
        # No SNI at all is rejected the same way.
        data, closed = self._raw_hello_response(self.strict, None)
        self.assertIn(data[:7], ALERT_PREFIXES, data)
        self.assertEqual(self.connections(), before, "a rejected connection reached a back end")
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "nobody.test", "sni=nobody.test")
        self.assertEqual(f[0].get("outcome"), "reject", f[0]["_line"])
        self.assertEqual(f[0].get("service"), "strict", f[0]["_line"])

    def test_reject_seen_by_openssl(self):
        rc, out = h.s_client(self.strict, "nobody.test", PKI.ca)
        self.assertNotEqual(rc, 0)
        low = out.lower()
        self.assertTrue("unrecognized name" in low or "alert number 112" in low, out)

    def test_second_service_routes(self):
        body, cn, _ = h.https_get(self.strict, "sts.contoso.test", PKI.ca)
        self.assertEqual(body, "backend=adfs sni=sts.contoso.test")
        f = self.assertLogged(self.og, lambda f: f.get("service") == "strict" and f.get("pool") == "adfs",
                              "service=strict pool=adfs")
        self.assertEqual(f[0].get("outcome"), "ok")

    # ---------------------------------------------------------------- pools

    def test_round_robin_alternates(self):
        bodies = [self.get("rr.contoso.test") for _ in range(4)]
        names = [b.split()[0] for b in bodies]
        self.assertEqual(set(names), {"backend=rr1", "backend=rr2"}, names)
        self.assertEqual(names[0], names[2], names)
        self.assertEqual(names[1], names[3], names)
        self.assertNotEqual(names[0], names[1], names)
        self.assertEqual(len(self.backends["rr1"].seen()), 2)
        self.assertEqual(len(self.backends["rr2"].seen()), 2)

    def test_dead_server_is_skipped(self):
        for _ in range(4):
            self.assertEqual(self.get("dead.contoso.test"), "backend=alive sni=dead.contoso.test")
        self.assertEqual(len(self.backends["alive"].seen()), 4)
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "dead.contoso.test", "sni=dead.contoso.test",
                              count=4)
        for x in f:
            self.assertEqual(x.get("server"), self.backends["alive"].addr, x["_line"])
            self.assertEqual(x.get("outcome"), "ok", x["_line"])

    # ---------------------------------------------------------------- ClientHello reading

    def test_client_hello_byte_by_byte(self):
        s = h.connect(self.port)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = h.BioTLS(s, "app42.test", PKI.ca)
            hello = c.client_hello()
            self.assertGreater(len(hello), 100)
            for i in range(len(hello)):
                s.send(hello[i:i + 1])
                time.sleep(0.001)
            c.handshake()
            self.assertEqual(c.peer_cn(), "apps")
            c.send(b"GET / HTTP/1.1\r\nHost: app42.test\r\n\r\n")
            resp = c.recv_until_eof()
        finally:
            s.close()
        self.assertTrue(resp.endswith(b"\r\n\r\nbackend=apps sni=app42.test"), resp)

    def test_client_hello_split_over_records(self):
        # One handshake message in two TLS records (legal; the back end reassembles it).
        s = h.connect(self.port)
        try:
            c = h.BioTLS(s, "sts.contoso.test", PKI.ca)
            hello = c.client_hello()
            self.assertEqual(hello[0], 0x16)
            body = hello[5:5 + int.from_bytes(hello[3:5], "big")]
            cut = 40        # inside the random, well before the SNI extension
            recs = b"".join(hello[:3] + len(part).to_bytes(2, "big") + part
                            for part in (body[:cut], body[cut:]))
            s.sendall(recs)
            c.handshake()
            self.assertEqual(c.peer_cn(), "adfs")
            c.send(b"GET / HTTP/1.1\r\nHost: sts.contoso.test\r\n\r\n")
            resp = c.recv_until_eof()
        finally:
            s.close()
        self.assertTrue(resp.endswith(b"\r\n\r\nbackend=adfs sni=sts.contoso.test"), resp)

    def test_no_server_closes(self):
        s = h.connect(self.port)
        try:
            port = s.getsockname()[1]
            s.sendall(h.BioTLS(s, "gone.contoso.test", PKI.ca).client_hello())
            data, closed, _ = h.read_until_closed(s, 5)
        finally:
            s.close()
        self.assertTrue(closed, "connection left open with no server to reach")
        f = self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d" % port)
        self.assertEqual(f[0].get("outcome"), "no-server", f[0]["_line"])
        self.assertEqual(f[0].get("pool"), "gone", f[0]["_line"])

    def test_idle_timeout(self):
        raw = h.connect(self.port)
        port = raw.getsockname()[1]
        s = h.client_context(PKI.ca).wrap_socket(raw, server_hostname="idle.contoso.test")
        try:
            s.sendall(b"ping")
            self.assertEqual(s.recv(4), b"ping")
            t0 = time.monotonic()
            s.settimeout(6)
            try:
                d = s.recv(10)
            except (OSError, ssl.SSLError):
                d = b""
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertEqual(d, b"")
        self.assertGreaterEqual(elapsed, 0.8, "closed before idle_timeout (1s)")
        self.assertLess(elapsed, 4.0, "not closed soon after idle_timeout (1s)")
        f = self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d" % port)
        self.assertEqual(f[0].get("outcome"), "idle-timeout", f[0]["_line"])

    def test_non_tls_bytes_are_closed(self):
        before = self.connections()
        s = h.connect(self.port)
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data, closed, elapsed = h.read_until_closed(s, 5)
        finally:
            s.close()
        self.assertTrue(closed, "non-TLS connection left open")
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 3)
        f = self.assertLogged(self.og, lambda f: f.get("outcome") == "not-tls", "outcome=not-tls")
        self.assertEqual(f[0].get("pool"), "-", f[0]["_line"])
        self.assertEqual(self.connections(), before, "non-TLS bytes reached a back end")

    def test_malformed_hello_is_closed(self):
        # A TLS handshake record that holds a ServerHello, not a ClientHello.
        before = self.connections()
        s = h.connect(self.port)
        try:
            port = s.getsockname()[1]
            s.sendall(bytes.fromhex("16030100040200000000") + b"\x00" * 8)
            data, closed, elapsed = h.read_until_closed(s, 5)
        finally:
            s.close()
        self.assertTrue(closed, "malformed ClientHello left open")
        self.assertLess(elapsed, 3)
        self.assertEqual(self.connections(), before, "a malformed hello reached a back end")
        f = self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d" % port)
        self.assertEqual(f[0].get("outcome"), "malformed", f[0]["_line"])

    def _silent_client(self, first_bytes):
        s = h.connect(self.strict)
        try:
            port = s.getsockname()[1]
            if first_bytes:
                s.sendall(first_bytes)
            data, closed, elapsed = h.read_until_closed(s, 6)
        finally:
            s.close()
        self.assertTrue(closed, "silent client not closed after hello_timeout")
        self.assertEqual(data, b"")
        self.assertGreaterEqual(elapsed, 0.8, "closed before hello_timeout (1s)")
        self.assertLess(elapsed, 4.0, "closed long after hello_timeout (1s)")
        f = self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d" % port)
        self.assertEqual(f[0].get("outcome"), "hello-timeout", f[0]["_line"])

    def test_hello_timeout_nothing_sent(self):
        self._silent_client(b"")

    def test_hello_timeout_partial_hello(self):
        s = socket.socket()
        c = h.BioTLS(s, "sts.contoso.test", PKI.ca)
        hello = c.client_hello()
        s.close()
        self._silent_client(hello[:20])

    # ---------------------------------------------------------------- relay

    def test_500_concurrent_echo_byte_exact(self):
        n, size = 500, 64 * 1024
        ctx = h.client_context(PKI.ca)
        barrier = threading.Barrier(n + 1, timeout=60)
        errors, ok = [], []
        lock = threading.Lock()

        def one(i):
            payload = os.urandom(size)
            raw = None
            try:
                raw = h.connect(self.port, timeout=60)
                with ctx.wrap_socket(raw, server_hostname="echo.test") as s:
                    barrier.wait()      # all n relayed at once before any data
                    s.sendall(payload)
                    got = bytearray()
                    while len(got) < size:
                        d = s.recv(size - len(got))
                        if not d:
                            break
                        got += d
                    if bytes(got) != payload:
                        raise AssertionError("conn %d: %d bytes back, differ" % (i, len(got)))
                with lock:
                    ok.append(i)
            except Exception as e:
                barrier.abort()
                with lock:
                    errors.append("conn %d: %s: %s" % (i, type(e).__name__, e))
            finally:
                if raw is not None:
                    raw.close()

        old = threading.stack_size(256 * 1024)
        try:
            threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
            for t in threads:
                t.start()
        finally:
            threading.stack_size(old)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "client threads stuck")
        self.assertEqual(errors[:5], [], "%d of %d failed" % (len(errors), n))
        self.assertEqual(len(ok), n)
        self.assertEqual(len(self.backends["echo"].seen()), n)
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "echo.test" and f.get("outcome") == "ok",
                              "sni=echo.test outcome=ok", timeout=20, count=n)
        self.assertEqual(len(f), n)
        for x in f:
            self.assertGreater(int(x["in"]), size, x["_line"])
            self.assertGreater(int(x["out"]), size, x["_line"])

    def test_half_close(self):
        payload = os.urandom(100 * 1024)
        s = h.connect(self.port)
        try:
            c = h.BioTLS(s, "half.contoso.test", PKI.ca)
            c.handshake()
            c.send(payload)
            # TCP half-close: the back end only answers after it sees our EOF.
            socket.socket.shutdown(s, socket.SHUT_WR)
            got = c.recv_until_eof()
        finally:
            s.close()
        self.assertEqual(len(got), len(payload))
        self.assertEqual(got, payload)
        seen = self.backends["half"].seen()
        self.assertEqual(len(seen), 1)
        self.assertIsNone(seen[0].error)

    def _reset_with(self, s, data):
        """Sends data and resets at once, both queued before the gateway reads: it is
        stopped meanwhile, so that one read edge tells of the bytes and the reset."""
        os.kill(self.og.proc.pid, signal.SIGSTOP)
        try:
            s.sendall(data)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            time.sleep(0.05)
        finally:
            os.kill(self.og.proc.pid, signal.SIGCONT)

    def test_client_reset_with_its_last_bytes_after_the_back_end_closed(self):
        # The back end answers and closes; its end shuts the client's side, and the
        # gateway waits for the client's end, which comes with the client's last bytes.
        for _ in range(3):
            s = h.connect(self.port)
            port = s.getsockname()[1]
            c = h.BioTLS(s, "sts.contoso.test", PKI.ca)
            c.handshake()
            c.send(b"GET / HTTP/1.1\r\nHost: sts.contoso.test\r\n\r\n")
            self.assertIn(b"backend=adfs", c.recv_until_eof())
            self._reset_with(s, b"\x15\x03\x03\x00\x13" + os.urandom(19))
            self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d (the connection ended, not left open)" % port)

    def test_client_reset_with_its_last_bytes_before_the_back_end_closed(self):
        # The client's last bytes and its reset come in one edge; the back end then closes
        # without a word, and shutting the client's side finds the reset.
        for _ in range(3):
            s = h.connect(self.port)
            port = s.getsockname()[1]
            s.sendall(h.BioTLS(s, "mute.contoso.test", PKI.ca).client_hello())
            time.sleep(0.2)     # routed, connected, the hello read by the back end
            self._reset_with(s, os.urandom(24))
            self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d (the connection ended, not left open)" % port)

    # ---------------------------------------------------------------- log

    def test_log_line_fields(self):
        sent = received = 0
        s = h.connect(self.port)
        try:
            port = s.getsockname()[1]
            real_send, real_recv = s.sendall, s.recv

            def counted_send(d):
                nonlocal sent
                sent += len(d)
                return real_send(d)

            def counted_recv(n):
                nonlocal received
                d = real_recv(n)
                received += len(d)
                return d
            c = h.BioTLS(s, "sts.contoso.test", PKI.ca)
            c.sock = type("S", (), {"sendall": staticmethod(counted_send), "recv": staticmethod(counted_recv)})()
            c.handshake()
            c.send(b"GET / HTTP/1.1\r\nHost: sts.contoso.test\r\n\r\n")
            resp = c.recv_until_eof()
        finally:
            s.close()
        self.assertTrue(resp.endswith(b"backend=adfs sni=sts.contoso.test"), resp)
        f = self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d" % port)
        x = f[0]
        line = x["_line"]
        self.assertEqual(len(f), 1, "one line per connection")
        self.assertEqual(x.get("service"), "public", line)
        self.assertEqual(x.get("sni"), "sts.contoso.test", line)
        self.assertEqual(x.get("route"), "sts.contoso.test", line)
        self.assertEqual(x.get("pool"), "adfs", line)
        self.assertEqual(x.get("server"), self.backends["adfs"].addr, line)
        self.assertEqual(x.get("outcome"), "ok", line)
        self.assertEqual(int(x.get("in", -1)), sent, line)
        self.assertEqual(int(x.get("out", -1)), received, line)
        self.assertGreaterEqual(int(x.get("ms", -1)), 0, line)
        self.assertLess(int(x.get("ms", -1)), 10000, line)

    def test_log_route_pattern_for_wildcard_and_regex(self):
        self.get("nas.home.test")
        self.get("app1.test")
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "nas.home.test", "sni=nas.home.test")
        self.assertEqual(f[0].get("route"), "*.home.test", f[0]["_line"])
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "app1.test", "sni=app1.test")
        self.assertEqual(f[0].get("route"), r"~^app[0-9]+\.test$", f[0]["_line"])
        self.assertEqual(f[0].get("pool"), "apps", f[0]["_line"])


class LiveNumbers(h.OnegateTestCase):
    """Passthrough connections in the admin listener's live numbers: one request each when it
    ends, its bytes both ways, and an error when no server could take it."""

    def test_connections_bytes_and_failures_per_service_pool_and_server(self):
        import json
        import urllib.request
        chain, key = PKI.certs["adfs"]
        adfs = h.TLSBackend("adfs", chain, key).start()
        self.addCleanup(adfs.stop)
        port, admin, dead = h.free_port(), h.free_port(), h.free_port()
        og = self.start_onegate("""
onegate = { admin = { listen = "127.0.0.1:%d"; }; };
pools = ( { name = "adfs"; servers = ( "%s" ); }, { name = "gone"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "public"; listen = [ "127.0.0.1:%d" ];
               routes = ( { sni = "sts.contoso.test"; pool = "adfs"; }, { sni = "gone.test"; pool = "gone"; } ); } );
""" % (admin, adfs.addr, dead, port), port)
        og.wait_ready(admin, 10)
        for _ in range(5):
            rc, body, err = h.curl("sts.contoso.test", port, PKI.ca)
            self.assertEqual((rc, body), (0, "backend=adfs sni=sts.contoso.test"), err)
        for _ in range(2):
            self.assertNotEqual(h.curl("gone.test", port, PKI.ca)[0], 0)

        def status():
            with urllib.request.urlopen("http://127.0.0.1:%d/api/status" % admin, timeout=10) as r:
                return json.loads(r.read())

        def requests(live):
            return round(live["rps"] * live["window_s"])

        # Every connection the service saw, the harness's readiness probe included.
        conns = lambda: len([l for l in og.log_lines() if " conn client=" in l and "service=public" in l])

        def counted():
            st = status()
            pools = {p["name"]: p["live"] for p in st["pools"]}
            return requests(st["services"][0]["live"]) == conns() and requests(pools["gone"]) == 2 and \
                requests(pools["adfs"]) == 5
        # Sampled once a second: the numbers show within two.
        self.assertTrue(h.wait_until(counted, 5, interval=0.2), status())
        st = status()
        svc = st["services"][0]["live"]
        pools = {p["name"]: p for p in st["pools"]}
        self.assertGreater(svc["in_bps"], 0)
        self.assertGreater(svc["out_bps"], 0)
        self.assertEqual(pools["adfs"]["live"]["out_bps"], svc["out_bps"])
        self.assertAlmostEqual(svc["error_rate"], 2 / conns(), places=4)
        self.assertEqual(pools["gone"]["live"]["error_rate"], 1)
        adfs_pool = pools["adfs"]
        self.assertEqual(adfs_pool["live"]["error_rate"], 0)
        self.assertIsNone(adfs_pool["live"]["p50_ms"], "passthrough has no request latency")
        self.assertEqual(adfs_pool["servers"][0]["live"]["open"], 0)
        self.assertEqual(svc["open"], 0)


if __name__ == "__main__":
    unittest.main()
