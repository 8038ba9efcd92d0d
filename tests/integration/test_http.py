"""HTTP publishing on a plain service (port 80's job): Host and path routing across
pools, port rewriting, forwarding headers, keep-alive with back-end reuse, chunked
bodies both ways, redirects, our own 404, and requests that could smuggle refused."""
import json
import os
import socket
import subprocess
import threading
import time
import unittest

from harness import LOOP4, OnegateTestCase, fault_report, free_port, stop_and_check, wait_until
from httpback import HTTPBackend


def curl(*args, timeout=20):
    r = subprocess.run(["curl", "-sS", "--max-time", "15", *args], capture_output=True, text=True, timeout=timeout)
    return r


def raw(port, data, timeout=5, half_close=False):
    """Sends bytes (then FIN when half_close), reads until the server closes or goes quiet;
    returns what came back."""
    s = socket.create_connection((LOOP4, port), timeout=timeout)
    s.sendall(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return out


class PlainHttp(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        cls.owa = HTTPBackend("owa")
        cls.ews = HTTPBackend("ews")
        cls.lync = HTTPBackend("lync")      # listens on the rewritten port only
        cls.port = free_port()

    @classmethod
    def tearDownClass(cls):
        for b in (cls.owa, cls.ews, cls.lync):
            b.stop()

    def setUp(self):
        conf = """
onegate = { workers = 1; };
pools = ( { name = "owa";  servers = ( "127.0.0.1:%d" ); },
          { name = "ews";  servers = ( "127.0.0.1:%d" ); },
          { name = "lync"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "http"; listen = [ "127.0.0.1:%d" ];
  routes = (
    { host = "mail.contoso.test"; pool = "owa"; },
    { host = "mail.contoso.test"; path = "/EWS"; pool = "ews"; },
    { host = "lyncdiscover.contoso.test"; pool = "lync"; port = %d; },
    { host = "www.contoso.test"; redirect = "https"; },
    { host = "gone.contoso.test"; status = 410; },
    { host = "adfs.contoso.test"; pool = "owa"; forwarded = false; },
    { host = "empty.contoso.test"; status = 204; },
    { host = "busy.contoso.test"; status = 429; },
    { host = "legal.contoso.test"; status = 451; }
  ); } );
""" % (self.owa.port, self.ews.port, self.port, self.lync.port)
        from harness import Onegate
        self.og = Onegate(conf, wait_port=self.port).start()
        self.addCleanup(self.og.cleanup)
        self.addCleanup(stop_and_check, self.og)

    def get(self, host, path="/", extra=()):
        r = curl("-H", "Host: " + host, *extra, "http://127.0.0.1:%d%s" % (self.port, path))
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_host_and_path_route_to_three_pools(self):
        self.assertEqual(self.get("mail.contoso.test", "/owa/")["backend"], "owa")
        self.assertEqual(self.get("MAIL.contoso.test.", "/ews/exchange.asmx")["backend"], "ews")
        self.assertEqual(self.get("mail.contoso.test:80", "/EWS")["backend"], "ews")
        self.assertEqual(self.get("lyncdiscover.contoso.test", "/")["backend"], "lync")

    def test_port_rewrite_reaches_the_rewritten_port(self):
        info = self.get("lyncdiscover.contoso.test", "/?sipuri=x")
        self.assertEqual(info["port"], self.lync.port)
        self.assertEqual(info["target"], "/?sipuri=x")

    def test_host_kept_and_forwarding_headers_replaced(self):
        info = self.get("mail.contoso.test", "/owa/", extra=("-H", "X-Forwarded-For: 6.6.6.6",
                                                             "-H", "Forwarded: for=6.6.6.6"))
        h = {}
        for k, v in info["headers"]:
            h.setdefault(k.lower(), []).append(v)
        self.assertEqual(h["host"], ["mail.contoso.test"])
        self.assertEqual(h["x-forwarded-for"], ["127.0.0.1"], "a client's own X-Forwarded-For must not pass")
        self.assertEqual(h["x-forwarded-proto"], ["http"])
        self.assertEqual(h["x-forwarded-host"], ["mail.contoso.test"])
        self.assertEqual(h["forwarded"], ["for=127.0.0.1;proto=http"])

    def test_forwarding_headers_off_for_a_route(self):
        info = self.get("adfs.contoso.test", "/", extra=("-H", "X-Forwarded-For: 6.6.6.6"))
        names = {k.lower() for k, _ in info["headers"]}
        self.assertFalse(names & {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"}, names)

    def test_expect_100_continue(self):
        r = subprocess.run(["curl", "-sS", "-v", "--max-time", "15", "-H", "Host: mail.contoso.test",
                            "-H", "Expect: 100-continue", "--data-binary", "x" * 5000,
                            "http://127.0.0.1:%d/owa/upload" % self.port], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/1.1 100 Continue", r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual((info["method"], info["body_len"]), ("POST", 5000))
        self.assertIn(["Expect", "100-continue"], info["headers"])

    def test_own_answers_carry_their_reason_phrase(self):
        for host, line in (("gone.contoso.test", b"410 Gone"), ("busy.contoso.test", b"429 Too Many Requests"),
                           ("legal.contoso.test", b"451 Unavailable For Legal Reasons")):
            out = raw(self.port, b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n")
            head, _, body = out.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 " + line + b"\r\n"), out)
            self.assertEqual(body, line + b"\n")

    def test_own_answers_respect_connection_close_and_204_has_no_body(self):
        # pipelined: a 204 without a body, then a 404, on one connection
        out = raw(self.port, b"GET / HTTP/1.1\r\nHost: empty.contoso.test\r\n\r\n"
                             b"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n")
        first, _, rest = out.partition(b"\r\n\r\n")
        self.assertTrue(first.startswith(b"HTTP/1.1 204 No Content"), out)
        self.assertNotIn(b"Content-Length", first)
        self.assertTrue(rest.startswith(b"HTTP/1.1 404"), out)
        # Connection: close on a request answered here closes the connection at once
        for req in (b"GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n",
                    b"GET / HTTP/1.0\r\nHost: gone.contoso.test\r\n\r\n"):
            s = socket.create_connection((LOOP4, self.port), timeout=5)
            s.sendall(req)
            got = b""
            s.settimeout(3)
            while True:
                d = s.recv(4096)     # a timeout here means the gateway kept the connection open
                if not d:
                    break
                got += d
            s.close()
            self.assertIn(b"Connection: close", got)

    def test_http_1_0_client(self):
        out = raw(self.port, b"GET /owa/ HTTP/1.0\r\nHost: mail.contoso.test\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), out)
        self.assertIn(b"Connection: close", head)
        info = json.loads(body)
        self.assertEqual(info["version"], "HTTP/1.0")
        # HTTP/1.0 without Host is allowed (RFC 9112 requires Host only of 1.1); it matches no host route
        out = raw(self.port, b"GET /owa/ HTTP/1.0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 404"), out)

    def test_client_that_half_closes_after_its_requests_gets_the_answers(self):
        # The FIN arrives with the request (one segment, often one read): both pipelined requests
        # still go to their back ends and are answered in order before the gateway closes.
        before = len(self.ews.requests)
        out = raw(self.port, b"GET /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n"
                  b"GET /EWS/x HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n", half_close=True)
        self.assertEqual(out.count(b"HTTP/1.1 200 "), 2, out)
        first, second = out.split(b"HTTP/1.1 200 ")[1:]
        self.assertIn(b'"backend": "owa"', first)
        self.assertIn(b'"backend": "ews"', second)
        self.assertEqual(len(self.ews.requests), before + 1)

    def test_custom_methods_pass(self):
        r = curl("-X", "RPC_IN_DATA", "-H", "Host: mail.contoso.test", "-H", "Content-Length: 0",
                 "http://127.0.0.1:%d/rpc/rpcproxy.dll" % self.port)
        self.assertEqual(json.loads(r.stdout)["method"], "RPC_IN_DATA")

    def test_keepalive_reuses_the_backend_connection(self):
        before = self.owa.connections
        url = "http://127.0.0.1:%d/owa/" % self.port
        r = curl("-H", "Host: mail.contoso.test", url, url, url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count('"backend": "owa"'), 3)
        self.assertEqual(self.owa.connections - before, 1, "three requests on one client connection should "
                                                          "share one back-end connection")
        lines = [l for l in self.og.log_lines() if l.find(" http client=") >= 0 or "http client=" in l]
        self.assertGreaterEqual(len(lines), 3, self.og.stderr())

    def test_requests_alternating_pools_reuse_idle_backend_connections(self):
        owa, ews = self.owa.connections, self.ews.connections
        reqs = b""
        for i in range(6):
            path = b"/owa/" if i % 2 == 0 else b"/EWS/x"
            reqs += b"GET " + path + b" HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n"
        out = raw(self.port, reqs + b"GET /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\nConnection: close\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 7, out)
        self.assertEqual(self.owa.connections - owa, 1, "the idle connection to owa was not reused")
        self.assertEqual(self.ews.connections - ews, 1, "the idle connection to ews was not reused")

    def test_chunked_both_ways(self):
        body = "x" * 100000
        r = curl("-H", "Host: mail.contoso.test", "-H", "Transfer-Encoding: chunked", "--data-binary", body,
                 "http://127.0.0.1:%d/chunked/upload" % self.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual(info["body_len"], 100000)
        self.assertIn(["Transfer-Encoding", "chunked"], info["headers"])

    def test_body_sent_after_the_exchange_started(self):
        s = socket.create_connection((LOOP4, self.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"POST /owa/slow HTTP/1.1\r\nHost: mail.contoso.test\r\nContent-Length: 10\r\n"
                  b"Connection: close\r\n\r\n")
        import time
        time.sleep(0.5)
        s.sendall(b"0123456789")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK"), out)
        self.assertIn(b'"body_len": 10', out)

    def test_close_delimited_response(self):
        r = curl("-H", "Host: mail.contoso.test", "http://127.0.0.1:%d/close" % self.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "close-delimited body")

    def test_redirect_and_status_routes(self):
        r = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: www.contoso.test",
                 "http://127.0.0.1:%d/owa/?a=1" % self.port)
        self.assertEqual(r.stdout, "301 https://www.contoso.test/owa/?a=1")
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: gone.contoso.test",
                 "http://127.0.0.1:%d/" % self.port)
        self.assertEqual(r.stdout, "410")

    def test_unknown_host_is_404_and_goes_nowhere(self):
        n = len(self.owa.requests) + len(self.ews.requests) + len(self.lync.requests)
        r = curl("-i", "-H", "Host: evil.test", "http://127.0.0.1:%d/owa/" % self.port)
        self.assertTrue(r.stdout.startswith("HTTP/1.1 404"), r.stdout)
        self.assertNotIn("127.0.0.1", r.stdout)
        self.assertEqual(len(self.owa.requests) + len(self.ews.requests) + len(self.lync.requests), n)

    def test_smuggling_attempts_are_refused(self):
        cases = [
            b"POST /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
            b"GET /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\nX: a\r\n b\r\n\r\n",
            b"GET /owa/ HTTP/1.1\r\nHost : mail.contoso.test\r\n\r\n",
            b"GET /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\nHost: evil.test\r\n\r\n",
            b"GET /owa/ HTTP/1.1\r\n\r\n",
            b"GET http://evil.test/owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n",
            b"POST /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            b"GET /owa/ HTTP/1.1\nHost: mail.contoso.test\n\n",
        ]
        n = len(self.owa.requests)
        for c in cases:
            out = raw(self.port, c)
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), (c, out))
            self.assertIn(b"Connection: close", out)
        self.assertEqual(len(self.owa.requests), n, "a refused request reached the back end")

    def test_oversized_head_is_431(self):
        out = raw(self.port, b"GET /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431 "), out[:100])

    def test_pipelined_requests_answered_in_order(self):
        req = b"GET /owa/%d HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n"
        out = raw(self.port, req % 1 + req % 2 + (req % 3).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 3, out)
        self.assertLess(out.find(b'"/owa/1"'), out.find(b'"/owa/2"'))
        self.assertLess(out.find(b'"/owa/2"'), out.find(b'"/owa/3"'))


class HttpStreamsAndTimeouts(OnegateTestCase):
    """Upgrade tunnels, a 1 GiB upload with flat memory, and each timeout's answer."""

    def setUp(self):
        self.back = HTTPBackend("big")
        self.addCleanup(self.back.stop)
        self.mute = socket.socket()            # accepts (in the kernel) and never answers
        self.mute.bind((LOOP4, 0))
        self.mute.listen(16)
        self.addCleanup(self.mute.close)
        self.port = free_port()
        conf = """
onegate = { workers = 1; };
pools = ( { name = "big"; servers = ( "127.0.0.1:%d" ); },
          { name = "mute"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "http"; listen = [ "127.0.0.1:%d" ]; header_timeout = "1s"; keepalive_timeout = "1s";
  routes = ( { host = "big.test"; pool = "big"; },
             { host = "mute.test"; pool = "mute"; request_timeout = "1s"; } ); } );
""" % (self.back.port, self.mute.getsockname()[1], self.port)
        from harness import Onegate
        self.og = Onegate(conf, wait_port=self.port).start()
        self.addCleanup(self.og.cleanup)
        self.addCleanup(stop_and_check, self.og)

    def test_websocket_upgrade_becomes_a_tunnel(self):
        s = socket.create_connection((LOOP4, self.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: big.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        self.assertIn(b"Upgrade: websocket", head)
        for msg in (b"hello", b"x" * 200000):
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(65536)
            self.assertEqual(got, msg)

    def burst_tunnel(self, nbytes):
        """A client with a small receive buffer, upgraded to a tunnel whose server sends nbytes
        at once and half-closes; returns the socket and how many of those bytes came with the 101."""
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(5)
        s.connect((LOOP4, self.port))
        s.sendall(b"GET /burst?bytes=%d HTTP/1.1\r\nHost: big.test\r\nConnection: Upgrade\r\n"
                  b"Upgrade: websocket\r\n\r\n" % nbytes)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        head, rest = head.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        return s, len(rest)

    @staticmethod
    def read_to_end(s):
        n = 0
        while True:
            d = s.recv(1 << 20)
            if not d:
                return n
            n += len(d)

    def test_tunnel_client_that_ends_first_and_reads_slowly_gets_everything(self):
        # More than the kernel's buffers hold, read slowly after a half-close: the gateway
        # pauses the server and still holds bytes for the client when the server ends.
        # Before, the tunnel was freed at the server's end with those bytes unsent (the
        # client got some 8.31 million bytes of 8.39), or at the client's end if that came
        # during a pause, which read as the server's end (3.98 million).
        total = 8 << 20
        s, got = self.burst_tunnel(total)
        s.shutdown(socket.SHUT_WR)
        while True:
            d = s.recv(16384)
            if not d:
                break
            got += len(d)
            time.sleep(0.001)
        self.assertEqual(got, total)
        self.assertTrue(wait_until(lambda: self.back.tunneled == [0], 3), self.back.tunneled)

    def test_tunnel_closes_when_the_client_ends_after_the_server(self):
        # The server ends first; the client reads it all (the pause the slow read caused
        # is lifted), then sends and ends. Before, lifting the pause also forgot the server
        # had ended, and the tunnel stayed open until the idle timeout.
        total = 4 << 20
        s, got = self.burst_tunnel(total)
        port = s.getsockname()[1]
        time.sleep(0.3)
        got += self.read_to_end(s)
        self.assertEqual(got, total)
        s.sendall(b"c" * 1000)
        s.shutdown(socket.SHUT_WR)
        self.assertTrue(wait_until(lambda: self.back.tunneled == [1000], 3), self.back.tunneled)
        found = self.og.wait_conn_log(lambda f: f.get("client") == "127.0.0.1:%d" % port and "requests" in f,
                                      timeout=3)
        self.assertEqual([f["outcome"] for f in found], ["ok"], "\n".join(self.og.log_lines()[-10:]))

    def test_one_gib_upload_streams_with_flat_memory(self):
        from test_flow import rss_kib
        total = 1 << 30
        s = socket.create_connection((LOOP4, self.port), timeout=30)
        self.addCleanup(s.close)
        s.sendall(b"RPC_IN_DATA /rpc/rpcproxy.dll HTTP/1.1\r\nHost: big.test\r\nContent-Length: %d\r\n\r\n" % total)
        chunk = b"r" * (1 << 20)
        peak = 0
        for i in range(total // len(chunk)):
            s.sendall(chunk)
            if i % 64 == 0:
                peak = max(peak, rss_kib(self.og.proc.pid))
        out = b""
        while b"\r\n\r\n" not in out:
            d = s.recv(65536)
            if not d:
                break
            out += d
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK"), out[:200])
        while b'"body_len"' not in out:
            out += s.recv(65536)
        self.assertIn(b'"body_len": %d' % total, out + s.recv(65536))
        self.assertLess(peak, 64 * 1024, "onegate's RSS reached %d KiB during a 1 GiB upload" % peak)

    def test_slow_header_gets_408(self):
        s = socket.create_connection((LOOP4, self.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"GET / HTTP/1.1\r\nHost: big")
        out = s.recv(4096)
        self.assertTrue(out.startswith(b"HTTP/1.1 408 "), out)
        # The line is written once the client has taken the answer (its ACK may come after our read).
        self.assertTrue(wait_until(lambda: "outcome=header-timeout" in self.og.stderr(), 5), self.og.stderr())

    def test_idle_keepalive_closes_quietly(self):
        s = socket.create_connection((LOOP4, self.port), timeout=5)
        self.addCleanup(s.close)
        self.assertEqual(s.recv(4096), b"")

    def test_silent_backend_gets_504(self):
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: mute.test", "http://127.0.0.1:%d/" % self.port)
        self.assertEqual(r.stdout, "504", r.stderr)


class ResponseHeadAlone(OnegateTestCase):
    """A response head that comes without its body waits for it a moment (one segment for both,
    as back ends often write them apart), but never for longer: here the back end sends the body
    only once the client has the head."""

    def test_head_reaches_the_client_while_the_back_end_holds_the_body(self):
        back = socket.socket()
        back.bind((LOOP4, 0))
        back.listen(4)
        self.addCleanup(back.close)
        head_seen = threading.Event()

        def serve():
            c, _ = back.accept()
            with c:
                req = b""
                while b"\r\n\r\n" not in req:
                    d = c.recv(4096)
                    if not d:
                        return
                    req += d
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                if head_seen.wait(10):
                    c.sendall(b"hello")
                    c.recv(4096)        # until the gateway closes or sends more

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        self.addCleanup(head_seen.set)
        port = free_port()
        conf = """
onegate = { workers = 1; };
pools = ( { name = "halves"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "http"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "halves.test"; pool = "halves"; } ); } );
""" % (back.getsockname()[1], port)
        from harness import Onegate
        og = Onegate(conf, wait_port=port).start()
        self.addCleanup(og.cleanup)
        self.addCleanup(stop_and_check, og)
        # Well below the session's other timers, which would also let a held head go.
        s = socket.create_connection((LOOP4, port), timeout=2)
        self.addCleanup(s.close)
        s.sendall(b"GET / HTTP/1.1\r\nHost: halves.test\r\n\r\n")
        out = b""
        while b"\r\n\r\n" not in out:
            d = s.recv(4096)        # a head held until its body would time out here
            self.assertTrue(d, out)
            out += d
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"), out)
        head_seen.set()
        while not out.endswith(b"\r\n\r\nhello"):
            d = s.recv(4096)
            self.assertTrue(d, out)
            out += d


class ReloadUnderLoad(OnegateTestCase):
    """Keep-alive clients and new connections across ten reloads, good and bad files alternating:
    no failed request, no reset connection."""

    def test_ten_reloads_under_keepalive_and_new_connections(self):
        import http.client
        import signal
        import threading
        import time
        a, b = HTTPBackend("a"), HTTPBackend("b")
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        port = free_port()
        good = """
onegate = { workers = 2; };
pools = ( { name = "p"; servers = ( "127.0.0.1:%d", "127.0.0.1:%d" ); } );
services = ( { name = "http"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "app.test"; pool = "p"; } ); } );
""" % (a.port, b.port, port)
        bad = good.replace('pool = "p"; }', 'pool = "nope"; }')
        og = self.start_onegate(good, port)
        stop = threading.Event()
        results, lock = [], threading.Lock()

        def keepalive():
            c = http.client.HTTPConnection(LOOP4, port, timeout=10)
            while not stop.is_set():
                try:
                    c.request("GET", "/k", headers={"Host": "app.test"})
                    r = c.getresponse()
                    ok, detail = r.status == 200 and b'"backend"' in r.read(), "keep-alive %d" % r.status
                except Exception as e:
                    ok, detail = False, "keep-alive: %s: %s" % (type(e).__name__, e)
                with lock:
                    results.append((ok, detail))
            c.close()

        def fresh():
            while not stop.is_set():
                try:
                    c = http.client.HTTPConnection(LOOP4, port, timeout=10)
                    c.request("GET", "/n", headers={"Host": "app.test", "Connection": "close"})
                    r = c.getresponse()
                    ok, detail = r.status == 200 and b'"backend"' in r.read(), "new %d" % r.status
                    c.close()
                except Exception as e:
                    ok, detail = False, "new: %s: %s" % (type(e).__name__, e)
                with lock:
                    results.append((ok, detail))

        threads = [threading.Thread(target=f, daemon=True) for f in (keepalive, keepalive, fresh, fresh)]
        for t in threads:
            t.start()

        def verdicts():
            log = og.stderr()
            return log.count("reloaded ") + log.count("reload of")

        try:
            for k in range(10):
                time.sleep(0.2)
                # Each file is written whole and gets its verdict before the next: SIGHUPs sent
                # while a reload runs merge into one, and a reload must not read a file half written.
                with open(og.conf + ".new", "w") as f:
                    f.write(good if k % 2 == 0 else bad)
                os.replace(og.conf + ".new", og.conf)
                og.signal(signal.SIGHUP)
                self.assertTrue(wait_until(lambda: verdicts() > k, 10),
                                "no verdict on reload %d:\n%s" % (k + 1, og.stderr()[-3000:]))
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        log = og.stderr()
        self.assertEqual(log.count("reloaded "), 5, log[-3000:])
        self.assertEqual(log.count("reload of"), 5, log[-3000:])
        failures = [d for ok, d in results if not ok]
        fault_report("ten reloads under load, good and bad files alternating",
                     "%d requests on two keep-alive connections and new ones" % len(results),
                     "%d" % len(failures) if failures else "nothing")
        self.assertGreater(len(results), 100)
        self.assertEqual(failures, [], "%d of %d failed" % (len(failures), len(results)))
        self.assertNotIn("reset", " ".join(l for l in og.log_lines() if " http client=" in l or "conn client=" in l))


if __name__ == "__main__":
    unittest.main()
