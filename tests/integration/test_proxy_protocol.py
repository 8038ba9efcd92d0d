"""PROXY protocol: headers onegate sends to back ends, and headers it accepts
from a trusted balancer in front (accept_proxy)."""
import socket
import tempfile
import unittest

import harness as h

PKI = None
_TMP = None


def setUpModule():
    global PKI, _TMP
    h.require_binary()
    _TMP = tempfile.TemporaryDirectory(prefix="onegate-pp-")
    PKI = h.make_pki(_TMP.name, ["pp1", "pp2", "plain"])


def tearDownModule():
    if _TMP is not None:
        _TMP.cleanup()


class ProxyToBackend(h.OnegateTestCase):
    """proxy_protocol = 1 / 2 on a pool: the back end learns the client's address."""

    def setUp(self):
        self.pp1 = self.start_backend("pp1", PKI, expect_proxy=True)
        self.pp2 = self.start_backend("pp2", PKI, expect_proxy=True)
        self.port = h.free_port()
        self.v6 = h.ipv6_available()
        self.port6 = h.free_port(socket.AF_INET6) if self.v6 else 0
        listen = '"127.0.0.1:%d"' % self.port
        if self.v6:
            listen += ', "[::1]:%d"' % self.port6
        conf = r"""
onegate = { workers = 1; };
pools = (
  { name = "v1"; servers = ( "%s" ); proxy_protocol = 1; },
  { name = "v2"; servers = ( "%s" ); proxy_protocol = 2; }
);
services = (
  { name = "pp"; listen = [ %s ];
    routes = ( { sni = "one.contoso.test"; pool = "v1"; },
               { sni = "two.contoso.test"; pool = "v2"; } );
    default = { reject = true; }; }
);
""" % (self.pp1.addr, self.pp2.addr, listen)
        self.og = self.start_onegate(conf, self.port)
        if self.v6:
            self.og.wait_ready(self.port6, 10, socket.AF_INET6)

    def _check(self, backend, name, version, host, family):
        port = self.port if host == h.LOOP4 else self.port6
        body, cn, local = h.https_get(port, name, PKI.ca, host=host)
        self.assertEqual(body, "backend=%s sni=%s" % (backend.name, name))
        seen = backend.seen()
        self.assertEqual(len(seen), 1)
        self.assertIsNone(seen[0].error, seen[0].error)
        p = seen[0].proxy
        self.assertIsNotNone(p, "no PROXY header")
        self.assertEqual(p["version"], version, p)
        self.assertEqual(p["command"], "PROXY", p)
        self.assertEqual(p["family"], family, p)
        self.assertEqual(p["src"], host, p)
        self.assertEqual(p["sport"], local[1], p)
        self.assertEqual(p["dst"], host, p)
        self.assertEqual(p["dport"], port, p)
        if version == 1:
            self.assertNotIn(b"::ffff:", p["raw"])
        f = self.assertLogged(self.og, lambda f: f.get("sni") == name, "sni=" + name)
        self.assertEqual(f[0].get("client"), h.fmt_addr(host, local[1]), f[0]["_line"])
        self.assertEqual(f[0].get("server"), backend.addr, f[0]["_line"])

    def test_v1_ipv4_client(self):
        self._check(self.pp1, "one.contoso.test", 1, h.LOOP4, "TCP4")

    def test_v2_ipv4_client(self):
        self._check(self.pp2, "two.contoso.test", 2, h.LOOP4, "TCP4")

    def test_v1_ipv6_client(self):
        if not self.v6:
            self.skipTest("::1 is not available")
        self._check(self.pp1, "one.contoso.test", 1, h.LOOP6, "TCP6")

    def test_v2_ipv6_client(self):
        if not self.v6:
            self.skipTest("::1 is not available")
        self._check(self.pp2, "two.contoso.test", 2, h.LOOP6, "TCP6")


class AcceptProxy(h.OnegateTestCase):
    """accept_proxy = true: a PROXY header from the balancer comes first."""

    def setUp(self):
        self.pp1 = self.start_backend("pp1", PKI, expect_proxy=True)
        self.plain = self.start_backend("plain", PKI)
        self.port = h.free_port()
        conf = r"""
onegate = { workers = 1; };
pools = (
  { name = "v1";    servers = ( "%s" ); proxy_protocol = 1; },
  { name = "plain"; servers = ( "%s" ); }
);
services = (
  { name = "behind-lb"; listen = [ "127.0.0.1:%d" ]; accept_proxy = true; proxy_timeout = "1s";
    routes = ( { sni = "one.contoso.test"; pool = "v1"; },
               { sni = "plain.contoso.test"; pool = "plain"; } );
    default = { reject = true; }; }
);
""" % (self.pp1.addr, self.plain.addr, self.port)
        self.og = self.start_onegate(conf, self.port)

    def _through_balancer(self, header, src="203.0.113.7", sport=5555, family="TCP4"):
        body, _, local = h.https_get(self.port, "one.contoso.test", PKI.ca, prefix=header)
        self.assertEqual(body, "backend=pp1 sni=one.contoso.test")
        seen = self.pp1.seen()
        self.assertEqual(len(seen), 1)
        p = seen[0].proxy
        self.assertIsNotNone(p, "no PROXY header at the back end")
        self.assertEqual(p["version"], 1)
        if src is None:         # LOCAL / UNKNOWN: the real peer is what counts
            src, sport = local
        self.assertEqual(p["family"], family, p)
        self.assertEqual(p["src"], src, p)
        self.assertEqual(p["sport"], sport, p)
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "one.contoso.test", "sni=one.contoso.test")
        self.assertEqual(f[0].get("client"), h.fmt_addr(src, sport), f[0]["_line"])
        self.assertEqual(f[0].get("outcome"), "ok", f[0]["_line"])

    def test_v1_header_from_balancer(self):
        self._through_balancer(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n")

    def test_v2_header_from_balancer(self):
        self._through_balancer(h.proxy_v2("203.0.113.7", "127.0.0.1", 5555, 443))

    def test_v1_tcp6_header_from_balancer(self):
        # Documentation addresses, only ever written into bytes; the log shows [addr]:port.
        self._through_balancer(b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n",
                               src="2001:db8::7", family="TCP6")

    def test_v2_local_keeps_real_peer(self):
        # A balancer's health check (v2 LOCAL): the connection's own address stands.
        local = h.PP2_SIG + bytes([0x20, 0x00, 0x00, 0x00])
        self._through_balancer(local, src=None)

    def test_header_to_plain_pool_not_forwarded(self):
        # The balancer's header is consumed: a pool without proxy_protocol gets bare TLS.
        body, _, _ = h.https_get(self.port, "plain.contoso.test", PKI.ca,
                                 prefix=b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n")
        self.assertEqual(body, "backend=plain sni=plain.contoso.test")
        f = self.assertLogged(self.og, lambda f: f.get("sni") == "plain.contoso.test", "sni=plain.contoso.test")
        self.assertEqual(f[0].get("client"), "203.0.113.7:5555", f[0]["_line"])

    def test_garbage_instead_of_header(self):
        s = h.connect(self.port)
        try:
            port = s.getsockname()[1]
            s.sendall(b"GET / HTTP/1.1\r\nHost: one.contoso.test\r\n\r\n")
            data, closed, elapsed = h.read_until_closed(s, 5)
        finally:
            s.close()
        self.assertTrue(closed, "garbage instead of a PROXY header: connection left open")
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 0.9, "closed by the timeout, not by the parser")
        f = self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d" % port)
        self.assertEqual(f[0].get("outcome"), "proxy-invalid", f[0]["_line"])
        self.assertEqual(self.pp1.seen() + self.plain.seen(), [])

    def test_tls_without_header_is_invalid(self):
        # A client that skips the balancer: its ClientHello is not a PROXY header.
        s = h.connect(self.port)
        try:
            c = h.BioTLS(s, "one.contoso.test", PKI.ca)
            s.sendall(c.client_hello())
            data, closed, _ = h.read_until_closed(s, 5)
        finally:
            s.close()
        self.assertTrue(closed)
        self.assertEqual(data, b"")
        self.assertEqual(self.pp1.seen(), [])

    def test_nothing_sent_times_out(self):
        s = h.connect(self.port)
        try:
            port = s.getsockname()[1]
            data, closed, elapsed = h.read_until_closed(s, 6)
        finally:
            s.close()
        self.assertTrue(closed, "silent client not closed after proxy_timeout")
        self.assertGreaterEqual(elapsed, 0.8, "closed before proxy_timeout (1s)")
        self.assertLess(elapsed, 4.0, "closed long after proxy_timeout (1s)")
        f = self.assertLogged(self.og, lambda f: f.get("client") == "127.0.0.1:%d" % port,
                              "client=127.0.0.1:%d" % port)
        self.assertEqual(f[0].get("outcome"), "proxy-timeout", f[0]["_line"])


if __name__ == "__main__":
    unittest.main()
