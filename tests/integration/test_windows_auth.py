"""Windows authentication through the gateway (Exchange, Skype for Business, IIS):
NTLM and Negotiate authenticate the server connection, so a server connection that
carried them is private to its client connection. Through pools of two back ends
that authenticate like IIS (iisback.py), over a plain HTTP service and a TLS one that
encrypts again: handshakes in a row and in parallel complete, Kerberos completes,
and an anonymous client never gets an answer meant for another user (while the user
is connected, after it left, after a reload, pipelined, with its server drained).
Anonymous requests are still balanced one by one over shared connections;
share_connections = false keeps every server connection to one client."""
import json
import os
import signal
import socket
import ssl
import tempfile
import threading
import unittest
import urllib.request

from harness import (LOOP4, OnegateTestCase, client_context, free_port, make_pki, s_client, wait_until)
from iisback import IISBackend, kerberos_token, ntlm_challenge, ntlm_type1, ntlm_type3


class Client:
    """One keep-alive client connection, plain or TLS, speaking raw HTTP/1.1."""

    def __init__(self, port, ctx=None, sni="mail.contoso.test", host="mail.contoso.test"):
        raw = socket.create_connection((LOOP4, port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname=sni) if ctx else raw
        self.host = host
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, path, auth=None, host=None):
        req = "GET %s HTTP/1.1\r\nHost: %s\r\n" % (path, host or self.host)
        if auth:
            req += "Authorization: %s\r\n" % auth
        self.s.sendall((req + "\r\n").encode())

    def read(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("the gateway closed; had %r" % self.buf[:200])
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [(k.strip().lower(), v.strip()) for k, v in (x.split(":", 1) for x in lines[1:])]
        n = int(dict(headers).get("content-length", "0"))
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("the gateway closed mid-body")
            self.buf += d
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, json.loads(body) if body.startswith(b"{") else body

    def get(self, path, auth=None, host=None):
        self.send(path, auth, host)
        return self.read()

    def ntlm_login(self, user, path="/ews/exchange.asmx"):
        """The three legs on this client connection; returns the last answer's (status, body)."""
        st, h, _ = self.get(path)
        if st != 401 or ("www-authenticate", "NTLM") not in h or ("www-authenticate", "Negotiate") not in h:
            raise AssertionError("anonymous request: %d %r" % (st, h))
        st, h, _ = self.get(path, ntlm_type1())
        ch = ntlm_challenge([v for k, v in h if k == "www-authenticate"])
        if st != 401 or ch is None:
            raise AssertionError("type 1 answered %d %r" % (st, h))
        st, _, body = self.get(path, ntlm_type3(ch, user))
        return st, body


class WindowsAuthBase(OnegateTestCase):
    """Subclasses set tls: the TLS service (back ends over TLS) or the plain one."""
    tls = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-winauth-")
        d = cls.tmp.name
        cls.pki = make_pki(d, {"contoso": ["*.contoso.test"], "iis": ["exchange.internal.test"],
                               "adfs": ["sts.contoso.test"]})
        cert = cls.pki.certs["iis"] if cls.tls else (None, None)
        cls.ews = [IISBackend("ews%d" % i, *cert) for i in (1, 2)]
        cls.owa = [IISBackend("owa%d" % i, *cert) for i in (1, 2)]
        cls.sticky = [IISBackend("sticky%d" % i, *cert) for i in (1, 2)]
        cls.port, cls.admin_port = free_port(), free_port()

    @classmethod
    def tearDownClass(cls):
        for b in cls.ews + cls.owa + cls.sticky:
            b.stop()
        cls.tmp.cleanup()

    def pool(self, name, backends, extra=""):
        tls = ('tls = { sni = "exchange.internal.test"; ca_file = "%s"; };' % self.pki.ca) if self.tls else ""
        return '{ name = "%s"; servers = ( %s ); %s %s }' % (
            name, ", ".join('"127.0.0.1:%d"' % b.port for b in backends), tls, extra)

    def conf(self):
        d = self.tmp.name
        if self.tls:
            service = """certificates = ( { name = "contoso"; cert = "%s/contoso.chain.pem"; key = "%s/contoso.key";
                                             ca_file = "%s/root.pem"; } );
services = ( { name = "https"; listen = [ "127.0.0.1:%d" ]; tls = { certificates = [ "contoso" ]; default = "contoso"; };
""" % (d, d, d, self.port)
        else:
            service = 'services = ( { name = "http"; listen = [ "127.0.0.1:%d" ];\n' % self.port
        return """
onegate = { workers = 1; admin = { listen = "127.0.0.1:%d"; }; };
pools = ( %s, %s, %s, { name = "adfs"; servers = ( "127.0.0.1:%d" ); } );
%s  routes = (
    %s
    { host = "mail.contoso.test"; path = "/ews"; pool = "ews"; },
    { host = "mail.contoso.test"; path = "/owa"; pool = "owa"; },
    { host = "sticky.contoso.test"; pool = "sticky"; }
  ); } );
""" % (self.admin_port, self.pool("ews", self.ews), self.pool("owa", self.owa),
       self.pool("sticky", self.sticky, "share_connections = false;"), self.adfs.port, service,
       '{ sni = "sts.contoso.test"; passthrough = true; pool = "adfs"; },' if self.tls else "")

    def setUp(self):
        self.adfs = self.start_backend("adfs", self.pki)
        self.og = self.start_onegate(self.conf(), self.port)
        self.og.wait_ready(self.admin_port, 10)
        self.mark_log(self.og)
        self.ctx = client_context(self.pki.ca) if self.tls else None

    def client(self, **kw):
        c = Client(self.port, self.ctx, **kw)
        self.addCleanup(c.close)
        return c

    def rejected(self):
        return sum(b.rejected for b in self.ews + self.owa + self.sticky)

    def assert_anonymous(self, n=12, path="/ews/exchange.asmx", each_new=True):
        """n anonymous requests (each on a new connection, or all on one): every one is
        401 with both challenges, never an answer as somebody."""
        c = None
        for _ in range(n):
            if each_new or c is None:
                c = self.client()
            st, h, body = c.get(path)
            self.assertEqual((st, body["user"]), (401, None), "an anonymous client got %r" % body)
            self.assertIn(("www-authenticate", "NTLM"), h)
            if each_new:
                c.close()

    def admin(self, method, path):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path), method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read().decode())

    # ------------------------------------------------------------ NTLM, Kerberos

    def test_ntlm_handshakes_in_a_row_complete(self):
        for i in range(16):
            c = self.client()
            st, body = c.ntlm_login("user%d" % i)
            self.assertEqual((st, body["user"]), (200, "user%d" % i), "handshake %d" % i)
            # IIS keeps the connection authenticated: no Authorization needed any more
            for _ in range(3):
                st, _, again = c.get("/ews/exchange.asmx")
                self.assertEqual((st, again["user"], again["conn"], again["backend"]),
                                 (200, "user%d" % i, body["conn"], body["backend"]))
            c.close()
        self.assertEqual(self.rejected(), 0)
        # the handshakes spread over both servers, one by one
        seen = {b.name for b in self.ews if any(a[1] for a in b.answers)}
        self.assertEqual(seen, {"ews1", "ews2"})

    def test_ntlm_handshakes_in_parallel_complete(self):
        results, lock = [], threading.Lock()

        def worker(w):
            for i in range(5):
                c = Client(self.port, self.ctx)
                try:
                    st, body = c.ntlm_login("w%d-%d" % (w, i))
                    st2, _, again = c.get("/ews/")
                    ok = (st, body["user"], st2, again["user"]) == (200, "w%d-%d" % (w, i), 200, "w%d-%d" % (w, i))
                except (OSError, EOFError, AssertionError) as e:
                    ok = repr(e)
                finally:
                    c.close()
                with lock:
                    results.append(ok)
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(results, [True] * 40)
        self.assertEqual(self.rejected(), 0)

    def test_kerberos_in_one_leg_without_a_401_first(self):
        c = self.client()
        st, _, body = c.get("/ews/", kerberos_token("alice"))
        self.assertEqual((st, body["user"]), (200, "alice"))
        st, _, again = c.get("/ews/")
        self.assertEqual((st, again["user"], again["conn"], again["backend"]),
                         (200, "alice", body["conn"], body["backend"]))
        self.assert_anonymous()

    def test_access_line_says_private(self):
        c = self.client()
        c.ntlm_login("alice")
        c.get("/owa/public/x")
        lines = self.assertLogged(self.og, lambda f: f.get("host") == "mail.contoso.test", "four requests", count=4)
        self.assertEqual([f.get("private") for f in lines[:4]], ["1", "1", "1", None], [f["_line"] for f in lines])

    # ------------------------------------------------------------ never another user's answer

    def test_anonymous_never_gets_an_authenticated_connection(self):
        alice = self.client()
        self.assertEqual(alice.ntlm_login("alice")[0], 200)
        bob = self.client()
        self.assertEqual(bob.get("/ews/", kerberos_token("bob"))[0], 200)
        # while they are connected: new connections and one keep-alive connection
        self.assert_anonymous(12)
        self.assert_anonymous(12, each_new=False)
        self.assertEqual(alice.get("/ews/")[2]["user"], "alice")
        self.assertEqual(bob.get("/ews/")[2]["user"], "bob")
        # after they left
        alice.close()
        bob.close()
        self.assert_anonymous(12)
        self.assert_anonymous(12, each_new=False)

    def test_pipelined_requests_of_anonymous_and_authenticated_clients(self):
        alice = self.client()
        alice.ntlm_login("alice")
        anon = self.client()
        for _ in range(10):
            alice.send("/ews/")
            anon.send("/ews/")
        for _ in range(10):
            self.assertEqual(alice.read()[2]["user"], "alice")
            st, _, body = anon.read()
            self.assertEqual((st, body["user"]), (401, None))

    def test_reload_keeps_the_private_connection_and_shares_nothing(self):
        alice = self.client()
        st, first = alice.ntlm_login("alice")
        self.assertEqual(st, 200)
        self.og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload" in self.og.stderr().lower(), 5), self.og.stderr()[-2000:])
        self.assert_anonymous(12)
        st, _, body = alice.get("/ews/")
        self.assertEqual((st, body["user"], body["conn"], body["backend"]),
                         (200, "alice", first["conn"], first["backend"]))
        alice.close()
        self.assert_anonymous(12)

    def test_drained_server_keeps_its_private_connection_and_anonymous_go_elsewhere(self):
        alice = self.client()
        st, first = alice.ntlm_login("alice")
        self.assertEqual(st, 200)
        server = next(b for b in self.ews if b.name == first["backend"])
        code, _ = self.admin("POST", "/api/pools/ews/servers/127.0.0.1:%d/drain" % server.port)
        self.assertEqual(code, 200)
        before = len(server.answers)
        self.assert_anonymous(8)
        self.assertEqual(len(server.answers), before, "a drained server got new requests")
        for _ in range(3):
            st, _, body = alice.get("/ews/")
            self.assertEqual((st, body["user"], body["conn"]), (200, "alice", first["conn"]))
        alice.close()
        self.assert_anonymous(8)

    def test_server_that_closes_the_private_connection_starts_over(self):
        alice = self.client()
        self.assertEqual(alice.ntlm_login("alice")[0], 200)
        st, _, body = alice.get("/ews/logoff")
        self.assertEqual((st, body["user"]), (200, "alice"))
        # the client stays; its next request is balanced and must authenticate again
        st, _, body = alice.get("/ews/")
        self.assertEqual((st, body["user"]), (401, None))
        st, body = alice.ntlm_login("alice")
        self.assertEqual((st, body["user"]), (200, "alice"))
        self.assertEqual(self.rejected(), 0)

    def test_request_to_another_pool_routes_as_usual_and_the_private_one_waits(self):
        alice = self.client()
        st, first = alice.ntlm_login("alice")
        self.assertEqual(st, 200)
        seen = set()
        for _ in range(4):
            st, _, body = alice.get("/owa/public/logo.png")
            self.assertEqual(st, 200)
            seen.add(body["backend"])
        self.assertEqual(seen, {"owa1", "owa2"}, "requests to the other pool are balanced one by one")
        st, _, body = alice.get("/ews/")
        self.assertEqual((st, body["user"], body["conn"], body["backend"]),
                         (200, "alice", first["conn"], first["backend"]))

    # ------------------------------------------------------------ anonymous traffic as before

    def test_anonymous_requests_are_balanced_one_by_one_on_shared_connections(self):
        c = self.client()
        backends = [c.get("/owa/public/")[2]["backend"] for _ in range(6)]
        self.assertEqual(sorted(set(backends)), ["owa1", "owa2"])
        self.assertTrue(all(a != b for a, b in zip(backends, backends[1:])), backends)
        conns = {(b.name, a[0]) for b in self.owa for a in b.answers}
        c.close()
        # another client reuses the server connections the first one left
        d = self.client()
        for _ in range(4):
            body = d.get("/owa/public/")[2]
            self.assertIn((body["backend"], body["conn"]), conns)

    def test_share_connections_false_gives_each_client_its_own(self):
        a, b = self.client(host="sticky.contoso.test"), self.client(host="sticky.contoso.test")
        got = {"a": set(), "b": set()}
        for _ in range(4):
            for name, c in (("a", a), ("b", b)):
                body = c.get("/public/")[2]
                got[name].add((body["backend"], body["conn"]))
        self.assertEqual((len(got["a"]), len(got["b"])), (1, 1), got)
        self.assertNotEqual(got["a"], got["b"])
        a.close()
        c = self.client(host="sticky.contoso.test")
        body = c.get("/public/")[2]
        self.assertNotIn((body["backend"], body["conn"]), got["a"] | got["b"], "a connection was handed on")


class WindowsAuthPlain(WindowsAuthBase):
    tls = False


class WindowsAuthTLS(WindowsAuthBase):
    tls = True

    def test_client_without_sni_gets_the_default_certificate_and_authenticates(self):
        rc, out = s_client(self.port, None, self.pki.ca)
        self.assertRegex(out, r"0 s:\s*CN\s*=\s*contoso")
        ctx = client_context(self.pki.ca, check_hostname=False)
        c = Client(self.port, ctx, sni=None)
        self.addCleanup(c.close)
        st, body = c.ntlm_login("device")
        self.assertEqual((st, body["user"]), (200, "device"))

    def test_adfs_passthrough_is_unaffected(self):
        ctx = client_context(self.pki.ca)
        with ctx.wrap_socket(socket.create_connection((LOOP4, self.port), timeout=10),
                             server_hostname="sts.contoso.test") as s:
            self.assertEqual(s.getpeercert()["subject"][0][0][1], "adfs")
            s.sendall(b"GET /adfs/ls/ HTTP/1.1\r\nHost: sts.contoso.test\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertIn(b"backend=adfs", data)


del WindowsAuthBase

if __name__ == "__main__":
    unittest.main()
