"""HTTP/2 on the front door (issue 17): ALPN h2 on a TLS service (and only http/1.1 where
http2 = false), each stream routed on its own to an HTTP/1.1 back end, bodies both ways with
checksums (64 MiB each way), many concurrent streams (nghttp, h2load), 421 for a stream whose
:authority belongs to another certificate or to a passthrough route, malformed streams and the
known denial-of-service shapes answered with RST_STREAM or GOAWAY and counted in /metrics,
Windows authentication streams sharing one private server connection, and GOAWAY on reload
and stop with the streams under way finishing. Real clients: curl --http2, nghttp, h2load,
and raw frames written with Debian's python3-hyperframe and python3-hpack."""
import hashlib
import json
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
import urllib.request

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from harness import Onegate, OnegateTestCase, free_port, make_pki, stop_and_check, wait_until
from httpback import HTTPBackend, pattern
from iisback import IISBackend, ntlm_challenge, ntlm_type1, ntlm_type3

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR, ENHANCE_YOUR_CALM = 1, 11


def run(cmd, timeout=120, input=None):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)


class RawH2:
    """One HTTP/2 client connection written frame by frame: what a client library would refuse
    to send goes out as it is, and every frame that comes back is seen."""

    def __init__(self, port, sni, cafile, alpn=("h2",)):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(list(alpn))
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=sni)
        self.alpn = self.sock.selected_alpn_protocol()
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.buf = b""
        self.closed = False
        if self.alpn == "h2":
            self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def send(self, *frames):
        self.sock.sendall(b"".join(f.serialize() for f in frames))

    def block(self, fields):
        return self.enc.encode(fields, huffman=False)

    def request(self, sid, fields, body=None, end_stream=None):
        f = HeadersFrame(sid)
        f.data = self.block(fields)
        f.flags.add("END_HEADERS")
        if body is None and end_stream is not False:
            f.flags.add("END_STREAM")
        frames = [f]
        if body is not None:
            d = DataFrame(sid)
            d.data = body
            d.flags.add("END_STREAM")
            frames.append(d)
        self.send(*frames)

    def frame(self, timeout=10):
        """The next frame (HEADERS decoded into a dict), or None once the connection ended."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    f, _ = Frame.parse_frame_header(memoryview(self.buf[:9]))
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    if isinstance(f, HeadersFrame):
                        f.field_list = [(k.decode() if isinstance(k, bytes) else k,
                                         v.decode() if isinstance(v, bytes) else v) for k, v in self.dec.decode(f.data)]
                        f.fields = dict(f.field_list)
                    return f
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLError, ConnectionResetError):
                d = b""
            if not d:
                self.closed = True
                continue
            self.buf += d

    def until(self, pred, timeout=10):
        """Frames up to the first one pred accepts (all of them, and that one last)."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.frame(deadline - time.monotonic())
            if f is None:
                break
            seen.append(f)
            if isinstance(f, DataFrame) and f.data:
                self.send(WindowUpdateFrame(0, window_increment=len(f.data)),
                          WindowUpdateFrame(f.stream_id, window_increment=len(f.data)))
            if pred(f):
                break
        return seen

    def response(self, sid, timeout=10):
        """(status, body) of stream sid, or (None, reset code) when it was reset."""
        status, body = None, b""
        self.last_fields = []
        for f in self.until(lambda f: f.stream_id == sid and ("END_STREAM" in f.flags
                                                               or isinstance(f, RstStreamFrame))
                            or isinstance(f, GoAwayFrame), timeout):
            if f.stream_id != sid:
                continue
            if isinstance(f, HeadersFrame) and ":status" in f.fields:
                status = int(f.fields[":status"])
                self.last_fields = f.field_list
            elif isinstance(f, DataFrame):
                body += f.data
            elif isinstance(f, RstStreamFrame):
                return None, f.error_code
        return status, body

    def close(self):
        self.sock.close()


def get_fields(host, path="/owa/", method="GET"):
    return [(":method", method), (":scheme", "https"), (":authority", host), (":path", path)]


class Http2(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-h2-")
        cls.pki = make_pki(cls.tmp.name, {
            "contoso": ["*.contoso.test", "contoso.test"],
            "fabrikam": ["www.fabrikam.test"],
        })
        cls.owa = HTTPBackend("owa")
        cls.iis = IISBackend("iis")

    @classmethod
    def tearDownClass(cls):
        cls.owa.stop()
        cls.iis.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.port, self.port1, self.admin = free_port(), free_port(), free_port()
        d = self.tmp.name
        self.conf = """
onegate = { workers = 1; admin = { listen = "127.0.0.1:%(admin)d"; }; };
certificates = (
  { name = "contoso"; cert = "%(d)s/contoso.pem"; key = "%(d)s/contoso.key";
    intermediates = [ "%(d)s/intermediate.pem" ]; ca_file = "%(d)s/root.pem"; },
  { name = "fabrikam"; cert = "%(d)s/fabrikam.pem"; key = "%(d)s/fabrikam.key";
    intermediates = [ "%(d)s/intermediate.pem" ]; ca_file = "%(d)s/root.pem"; } );
pools = ( { name = "owa"; servers = ( "127.0.0.1:%(owa)d" ); },
          { name = "iis"; servers = ( "127.0.0.1:%(iis)d" ); } );
services = (
  { name = "https"; listen = [ "127.0.0.1:%(port)d" ];
    tls = { certificates = [ "contoso", "fabrikam" ]; default = "contoso"; };
    routes = (
      { sni = "sts.contoso.test"; passthrough = true; pool = "owa"; },
      { host = "mail.contoso.test"; pool = "owa"; },
      { host = "auth.contoso.test"; pool = "iis"; },
      { host = "www.fabrikam.test"; pool = "owa"; } ); },
  { name = "h1only"; listen = [ "127.0.0.1:%(port1)d" ]; http2 = false;
    tls = { certificates = [ "contoso" ]; };
    routes = ( { host = "mail.contoso.test"; pool = "owa"; } ); } );
""" % {"d": d, "owa": self.owa.port, "iis": self.iis.port, "port": self.port, "port1": self.port1,
       "admin": self.admin}
        self.og = Onegate(self.conf, wait_port=self.port).start()
        self.addCleanup(self.og.cleanup)
        self.addCleanup(stop_and_check, self.og)
        wait_until(lambda: self.metrics() is not None, 5, 0.05)

    def curl(self, name, path, *extra, port=None, input=None):
        port = port or self.port
        return run(input=input, cmd=["curl", "-sS", "--max-time", "60", "--cacert", self.pki.ca, "--resolve",
                    "%s:%d:127.0.0.1" % (name, port), *extra, "https://%s:%d%s" % (name, port, path)])

    def metrics(self):
        try:
            return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin, timeout=5).read().decode()
        except OSError:
            return None

    def metric(self, name):
        m = re.search(r"(?m)^%s (\d+)$" % name, self.metrics() or "")
        return int(m.group(1)) if m else None

    def h2(self, sni="mail.contoso.test"):
        c = RawH2(self.port, sni, self.pki.ca)
        self.addCleanup(c.close)
        self.assertEqual(c.alpn, "h2")
        return c

    def http_lines(self):
        return [l for l in self.og.log_lines() if " http client=" in l]

    # ---- ALPN and the plain path

    def test_get_over_h2_is_routed_and_logged_per_stream(self):
        r = self.curl("mail.contoso.test", "/owa/", "--http2", "-w", "\n%{http_version}")
        self.assertEqual(r.returncode, 0, r.stderr)
        body, version = r.stdout.rsplit(b"\n", 1)
        self.assertEqual(version, b"2")
        info = json.loads(body)
        self.assertEqual(info["backend"], "owa")
        self.assertEqual(info["version"], "HTTP/1.1")
        headers = {k.lower(): v for k, v in info["headers"]}
        self.assertEqual(headers["host"], "mail.contoso.test:%d" % self.port)
        self.assertEqual(headers["x-forwarded-proto"], "https")
        self.assertNotIn("connection", headers)
        self.assertTrue(wait_until(lambda: any("path=/owa/ proto=HTTP/2.0 status=200" in l
                                               for l in self.http_lines()), 5))
        self.assertTrue(wait_until(lambda: any("proto=h2 requests=1" in l for l in self.og.log_lines()), 5))

    def test_http2_false_offers_only_http11(self):
        r = self.curl("mail.contoso.test", "/owa/", "--http2", "-w", "\n%{http_version}", port=self.port1)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.rsplit(b"\n", 1)[1], b"1.1")
        c = RawH2(self.port1, "mail.contoso.test", self.pki.ca, alpn=("h2", "http/1.1"))
        self.addCleanup(c.close)
        self.assertEqual(c.alpn, "http/1.1")
        c2 = RawH2(self.port, "mail.contoso.test", self.pki.ca, alpn=("http/1.1", "h2"))
        self.addCleanup(c2.close)
        self.assertEqual(c2.alpn, "h2", "the server's order: h2 first")

    def test_bodies_both_ways_with_checksums(self):
        with tempfile.NamedTemporaryFile(dir=self.tmp.name) as f:
            data = os.urandom(300000)
            f.write(data)
            f.flush()
            r = self.curl("mail.contoso.test", "/owa/up", "--http2", "--data-binary", "@" + f.name)
            self.assertEqual(r.returncode, 0, r.stderr)
            info = json.loads(r.stdout)
            self.assertEqual(info["body_len"], len(data))
            self.assertEqual(info["body_sha256"], hashlib.sha256(data).hexdigest())
        # No length known: the back end gets it chunked.
        r = self.curl("mail.contoso.test", "/owa/up", "--http2", "-T", "-", input=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual((info["method"], info["body_len"]), ("PUT", len(data)))
        self.assertEqual(info["body_sha256"], hashlib.sha256(data).hexdigest())
        self.assertIn(["transfer-encoding", "chunked"], [[k.lower(), v] for k, v in info["headers"]])
        r = self.curl("mail.contoso.test", "/owa/head", "--http2", "-I")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rb"(?m)^HTTP/2 200")
        self.assertRegex(r.stdout, rb"(?m)^content-length: [1-9]\d*")
        r = self.curl("mail.contoso.test", "/chunked/x", "--http2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["target"], "/chunked/x")
        r = self.curl("mail.contoso.test", "/bigclose?bytes=200000", "--http2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, pattern(200000))

    def test_a_long_answer_head_comes_whole(self):
        # The stream reads the answer's head where the session wrote it, without copying it
        # together with the body first: short and long heads come whole.
        for n in (100, 3000, 20000):
            r = self.curl("mail.contoso.test", "/bighead?bytes=%d" % n, "--http2", "-D", "-", "-o", "/dev/null")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"HTTP/2 200", r.stdout)
            self.assertIn(b"x-big: %s\r\n" % (b"x" * n), r.stdout)

    def test_64_mib_each_way(self):
        n = 64 << 20
        path = os.path.join(self.tmp.name, "up.bin")
        with open(path, "wb") as f:
            for off in range(0, n, 1 << 20):
                f.write(os.urandom(1 << 20))
        with open(path, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        r = self.curl("mail.contoso.test", "/owa/up", "--http2", "--data-binary", "@" + path)
        os.unlink(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual((info["body_len"], info["body_sha256"]), (n, want))
        r = self.curl("mail.contoso.test", "/big?bytes=%d" % n, "--http2", "-o", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout), n)
        self.assertEqual(hashlib.sha256(r.stdout).hexdigest(), hashlib.sha256(pattern(n)).hexdigest())

    def test_nghttp_many_concurrent_streams(self):
        before = len(self.http_lines())
        r = run(["nghttp", "-n", "-v", "-m", "60", "https://127.0.0.1:%d/owa/many" % self.port,
                 "-H", ":authority: mail.contoso.test"])
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout[-2000:])
        self.assertEqual(r.stdout.count(b":status: 200"), 60)
        self.assertTrue(wait_until(lambda: len(self.http_lines()) - before >= 60, 10))
        self.assertTrue(wait_until(lambda: sum("proto=h2 requests=60 " in l for l in self.og.log_lines()) == 1, 5),
                        "60 streams on one connection")

    def test_h2load_short_run(self):
        r = run(["h2load", "-n", "400", "-c", "4", "-m", "10", "https://127.0.0.1:%d/owa/load" % self.port,
                 "-H", ":authority: mail.contoso.test"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"400 succeeded, 0 failed, 0 errored", r.stdout, r.stdout)
        self.assertIn(b"status codes: 400 2xx", r.stdout)

    def rss_kib(self):
        with open("/proc/%d/status" % self.og.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def test_a_client_that_does_not_read_holds_the_back_end(self):
        n = 64 << 20
        c = self.h2()
        before = self.rss_kib()
        c.request(1, get_fields("mail.contoso.test", "/big?bytes=%d" % n))
        time.sleep(2.5)
        grown = self.rss_kib() - before
        self.assertLess(grown, 16 * 1024, "a stalled stream must not buffer its answer (%d KiB)" % grown)
        # Then it reads: the whole answer comes, in order.
        c.send(WindowUpdateFrame(0, window_increment=(1 << 30)), WindowUpdateFrame(1, window_increment=(1 << 30)))
        got, digest = 0, hashlib.sha256()
        for f in c.until(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags, 120):
            if isinstance(f, DataFrame):
                got += len(f.data)
                digest.update(f.data)
        self.assertEqual(got, n)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(pattern(n)).hexdigest())

    # ---- 421: coalescing

    def test_421_for_another_certificate_or_a_passthrough_name(self):
        c = self.h2("mail.contoso.test")
        c.request(1, get_fields("mail.contoso.test"))
        self.assertEqual(c.response(1)[0], 200)
        c.request(3, get_fields("www.fabrikam.test"))
        self.assertEqual(c.response(3)[0], 421)
        c.request(5, get_fields("sts.contoso.test"))
        self.assertEqual(c.response(5)[0], 421)
        # Names under the connection's certificate share it freely.
        c.request(7, get_fields("mail.contoso.test:%d" % self.port))
        self.assertEqual(c.response(7)[0], 200)
        self.assertTrue(wait_until(lambda: any("host=www.fabrikam.test" in l and "status=421" in l
                                               and "outcome=misdirected" in l for l in self.http_lines()), 5))

    # ---- malformed streams and floods

    def test_malformed_streams_are_reset_never_forwarded(self):
        before = len(self.owa.requests)
        c = self.h2()
        c.request(1, get_fields("mail.contoso.test") + [("X-Upper", "1")])
        self.assertEqual(c.response(1), (None, PROTOCOL_ERROR))
        c.request(3, get_fields("mail.contoso.test") + [("connection", "keep-alive")])
        self.assertEqual(c.response(3), (None, PROTOCOL_ERROR))
        c.request(5, get_fields("mail.contoso.test") + [("transfer-encoding", "chunked")])
        self.assertEqual(c.response(5), (None, PROTOCOL_ERROR))
        c.request(7, get_fields("mail.contoso.test", method="POST") + [("content-length", "10")], body=b"abc")
        self.assertEqual(c.response(7), (None, PROTOCOL_ERROR))
        c.request(9, get_fields("mail.contoso.test"))
        self.assertEqual(c.response(9)[0], 200, "the connection goes on")
        self.assertEqual(len(self.owa.requests) - before, 1)
        c.close()
        self.assertTrue(wait_until(lambda: (self.metric("onegate_http2_malformed_total") or 0) >= 4, 5),
                        self.metrics())

    @staticmethod
    def flood(c, frames):
        try:
            c.send(*frames)
        except (ssl.SSLError, OSError):
            pass        # the gateway may end the connection before the last of them is written

    def goaway(self, c):
        frames = c.until(lambda f: isinstance(f, GoAwayFrame), 10)
        self.assertTrue(frames and isinstance(frames[-1], GoAwayFrame), [type(f).__name__ for f in frames])
        return frames[-1]

    def test_rapid_reset_ends_the_connection(self):
        c = self.h2()
        frames = []
        for sid in range(1, 2 * 150, 2):
            h = HeadersFrame(sid)
            h.data = c.block(get_fields("mail.contoso.test", "/slow?ms=200"))
            h.flags.add("END_HEADERS")
            h.flags.add("END_STREAM")
            frames += [h, RstStreamFrame(sid, error_code=8)]
        self.flood(c, frames)
        self.assertEqual(self.goaway(c).error_code, ENHANCE_YOUR_CALM)
        self.assertTrue(wait_until(lambda: (self.metric("onegate_http2_rapid_reset_total") or 0) >= 1, 5))

    def test_ping_flood_ends_the_connection(self):
        c = self.h2()
        self.flood(c, [PingFrame(0, opaque_data=b"%08d" % i) for i in range(60)])
        self.assertEqual(self.goaway(c).error_code, ENHANCE_YOUR_CALM)
        self.assertTrue(wait_until(lambda: (self.metric("onegate_http2_ping_flood_total") or 0) >= 1, 5))

    def test_settings_flood_ends_the_connection(self):
        c = self.h2()
        self.flood(c, [SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE: 16384}) for _ in range(60)])
        self.assertEqual(self.goaway(c).error_code, ENHANCE_YOUR_CALM)
        self.assertTrue(wait_until(lambda: (self.metric("onegate_http2_settings_flood_total") or 0) >= 1, 5))

    def test_continuation_flood_ends_the_connection(self):
        c = self.h2()
        h = HeadersFrame(1)
        h.data = c.block(get_fields("mail.contoso.test"))
        frames = [h]
        for i in range(50):
            f = ContinuationFrame(1)
            f.data = c.enc.encode([("x-c%d" % i, "v")], huffman=False)
            frames.append(f)
        self.flood(c, frames)
        self.assertEqual(self.goaway(c).error_code, ENHANCE_YOUR_CALM)
        self.assertTrue(wait_until(lambda: (self.metric("onegate_http2_continuation_flood_total") or 0) >= 1, 5))

    # ---- Windows authentication

    def test_ntlm_streams_share_one_private_server_connection(self):
        c = self.h2()
        path = "/ews/exchange.asmx"
        c.request(1, get_fields("auth.contoso.test", path) + [("authorization", ntlm_type1())])
        st, _ = c.response(1)
        self.assertEqual(st, 401)
        ch = ntlm_challenge([v for k, v in c.last_fields if k == "www-authenticate"])
        self.assertIsNotNone(ch, c.last_fields)
        c.request(3, get_fields("auth.contoso.test", path) + [("authorization", ntlm_type3(ch, "alice"))])
        st, body = c.response(3)
        self.assertEqual(st, 200, body)
        first = json.loads(body)
        self.assertEqual(first["user"], "alice")
        # Streams at once, without credentials: each waits for the authenticated connection.
        for sid in (5, 7, 9, 11):
            c.request(sid, get_fields("auth.contoso.test", path + "?s=%d" % sid))
        for sid in (5, 7, 9, 11):
            st, body = c.response(sid)
            self.assertEqual(st, 200, body)
            self.assertEqual(json.loads(body), first)
        self.assertEqual(self.iis.rejected, 0)
        other = self.h2()
        other.request(1, get_fields("auth.contoso.test", path))
        self.assertEqual(other.response(1)[0], 401, "another client connection is not alice's")
        self.assertTrue(wait_until(lambda: sum("host=auth.contoso.test" in l and "status=200" in l
                                               for l in self.http_lines()) >= 5, 5), "\n".join(self.http_lines()))
        self.assertEqual(len({a[0] for a in self.iis.answers if a[1] == "alice"}), 1,
                         "alice's streams all went over one server connection")

    # ---- GOAWAY on reload and stop

    def slow_stream_survives(self, sig):
        c = self.h2()
        c.request(1, get_fields("mail.contoso.test", "/slow?ms=1500"))
        time.sleep(0.3)
        self.og.signal(sig)
        frames = c.until(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags, 10)
        kinds = [type(f).__name__ for f in frames]
        self.assertIn("GoAwayFrame", kinds)
        goaway = next(f for f in frames if isinstance(f, GoAwayFrame))
        self.assertEqual((goaway.error_code, goaway.last_stream_id), (0, 1))
        heads = [f for f in frames if isinstance(f, HeadersFrame) and f.stream_id == 1]
        self.assertEqual(heads[0].fields[":status"], "200")
        self.assertEqual(json.loads(b"".join(f.data for f in frames if isinstance(f, DataFrame)))["target"],
                         "/slow?ms=1500")
        self.assertIsNone(c.frame(5), "the connection closes once its streams are done")

    def test_reload_sends_goaway_and_open_streams_finish(self):
        self.slow_stream_survives(signal.SIGHUP)

    def test_stop_sends_goaway_and_open_streams_finish(self):
        self.slow_stream_survives(signal.SIGTERM)
        self.assertEqual(self.og.wait(10), 0)


if __name__ == "__main__":
    unittest.main()
