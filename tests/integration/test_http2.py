"""HTTP/2 on the front door (issue 17): ALPN h2 on a TLS service (and only http/1.1 where
http2 = false), each stream routed on its own to an HTTP/1.1 back end, bodies both ways with
checksums (64 MiB each way), many concurrent streams (nghttp, h2load), 421 for a stream whose
:authority belongs to another certificate or to a passthrough route, malformed streams and the
known denial-of-service shapes (empty DATA frames among them) answered with RST_STREAM or
GOAWAY and counted in /metrics, a flooding client that leaves the worker's other connections
their turn, Windows authentication streams sharing one private server connection, and GOAWAY
on reload and stop with the streams under way finishing. Real clients: curl --http2, nghttp,
h2load, and raw frames written with Debian's python3-hyperframe and python3-hpack."""
import base64
import hashlib
import json
import multiprocessing
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
PROTOCOL_ERROR, ENHANCE_YOUR_CALM, CONNECT_ERROR = 1, 11, 10
ENABLE_CONNECT_PROTOCOL = 0x8
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


def run(cmd, timeout=120, input=None):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)


def ws_frame(opcode, payload, mask=True):
    """One WebSocket frame (RFC 6455 5.2), masked as a client sends it, or not as a server does."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([m | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_parse(buf):
    """(opcode, payload, rest) of the first whole frame in buf, unmasking it, or None."""
    if len(buf) < 2:
        return None
    n, at = buf[1] & 0x7f, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = int.from_bytes(buf[2:10], "big"), 10
    key = None
    if buf[1] & 0x80:
        key, at = buf[at:at + 4], at + 4
    if len(buf) < at + n:
        return None
    payload = buf[at:at + n]
    if key:
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return buf[0] & 0x0f, payload, buf[at + n:]


class WSBackend:
    """An HTTP/1.1 back end that speaks WebSocket (RFC 6455): it checks the handshake, answers 101
    with Sec-WebSocket-Accept and echoes each message unmasked, a close frame with a close. A path
    under /deny is answered 403. /trailers answers a chunked body with trailers; any request with
    a chunked body is answered with the JSON of the trailers it brought. `handshakes` keeps each
    upgrade request's fields."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.handshakes, self.closed = [], []
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.srv.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    _recv_until = staticmethod(HTTPBackend._read_until)

    def _serve(self, c):
        try:
            buf = self._recv_until(c, b"", b"\r\n\r\n")
            if buf is None:
                return
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            fields = {}
            for line in lines[1:]:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
            if "chunked" in fields.get("transfer-encoding", ""):
                self._trailers_echo(c, buf)
            elif target.startswith("/trailers"):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                          b"Trailer: X-Checksum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n"
                          b"X-Checksum: sha-1234\r\nServer-Timing: db;dur=53 \r\n"
                          b"Content-Length: 999\r\nConnection: x-bad\r\nSet-Cookie: s=1\r\n\r\n")
            elif target.startswith("/deny"):
                c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied")
            else:
                self._websocket(c, buf, method, target, fields)
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def _trailers_echo(self, c, buf):
        body, trailers = b"", []
        while True:
            buf = self._recv_until(c, buf, b"\r\n")
            size_line, buf = buf.split(b"\r\n", 1)
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            while len(buf) < n + 2:
                buf += c.recv(65536)
            body, buf = body + buf[:n], buf[n + 2:]
        while True:
            buf = self._recv_until(c, buf, b"\r\n")
            line, buf = buf.split(b"\r\n", 1)
            if not line:
                break
            k, v = line.decode("latin-1").split(":", 1)
            trailers.append([k.strip(), v.strip()])
        out = json.dumps({"body_len": len(body), "trailers": trailers}).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))

    def _websocket(self, c, buf, method, target, fields):
        key = fields.get("sec-websocket-key", "")
        ok = (method == "GET" and fields.get("upgrade", "").lower() == "websocket"
              and "upgrade" in fields.get("connection", "").lower() and fields.get("sec-websocket-version") == "13"
              and len(base64.b64decode(key)) == 16)
        self.handshakes.append(dict(fields, method=method, target=target))
        if not ok:
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\n\r\nhandshake")
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: %s\r\n\r\n" % accept)
        while True:
            f = ws_parse(buf)
            if f is None:
                d = c.recv(1 << 20)
                if not d:
                    self.closed.append("eof")
                    return
                buf += d
                continue
            opcode, payload, buf = f
            if opcode == 8:
                c.sendall(ws_frame(8, payload, mask=False))
                c.shutdown(socket.SHUT_WR)
                self.closed.append("close")
                while c.recv(65536):
                    pass
                return
            c.sendall(ws_frame(opcode, payload, mask=False))


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


class H2Tunnel:
    """One extended CONNECT stream (RFC 8441) on a RawH2 connection, with the flow control a
    client keeps: it sends no more DATA than the gateway's windows allow and, while reading,
    gives back what it took."""

    def __init__(self, c, sid, authority, path, fields=()):
        self.c, self.sid = c, sid
        self.conn_win = self.win = 65535
        self.got, self.status, self.fields, self.ended, self.reset, self.goaway = b"", None, {}, False, None, None
        self.settings = {}
        c.request(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                        (":authority", authority), (":path", path)] + list(fields), end_stream=False)

    def pump(self, timeout=10, read=True):
        """Takes one frame; False once the connection ended."""
        f = self.c.frame(timeout)
        if f is None:
            return False
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            self.settings.update(f.settings)
            if SettingsFrame.INITIAL_WINDOW_SIZE in f.settings:
                self.win += f.settings[SettingsFrame.INITIAL_WINDOW_SIZE] - 65535
            self.c.send(SettingsFrame(0, flags=["ACK"]))
        elif isinstance(f, WindowUpdateFrame):
            if f.stream_id == 0:
                self.conn_win += f.window_increment
            elif f.stream_id == self.sid:
                self.win += f.window_increment
        elif isinstance(f, GoAwayFrame):
            self.goaway = f
        elif f.stream_id == self.sid:
            if isinstance(f, HeadersFrame):
                self.status = int(f.fields.get(":status", 0)) or self.status
                self.fields.update(f.fields)
            elif isinstance(f, DataFrame):
                self.got += f.data
                if f.data and read:
                    self.c.send(WindowUpdateFrame(0, window_increment=len(f.data)),
                                WindowUpdateFrame(self.sid, window_increment=len(f.data)))
            elif isinstance(f, RstStreamFrame):
                self.reset = f.error_code
            if "END_STREAM" in f.flags:
                self.ended = True
        return True

    def head(self):
        while self.status is None and self.reset is None:
            self.assert_alive(self.pump())
        return self.status

    @staticmethod
    def assert_alive(alive):
        if not alive:
            raise AssertionError("the connection ended")

    def send(self, data, end=False):
        while data:
            n = min(len(data), 16384, self.win, self.conn_win)
            if n <= 0:
                self.assert_alive(self.pump())
                continue
            self.c.send(DataFrame(self.sid, data=data[:n]))
            self.win, self.conn_win, data = self.win - n, self.conn_win - n, data[n:]
        if end:
            self.c.send(DataFrame(self.sid, flags=["END_STREAM"]))

    def message(self):
        """The next WebSocket frame from the back end: (opcode, payload)."""
        while True:
            f = ws_parse(self.got)
            if f is not None:
                self.got = f[2]
                return f[0], f[1]
            self.assert_alive(self.pump())


def get_fields(host, path="/owa/", method="GET"):
    return [(":method", method), (":scheme", "https"), (":authority", host), (":path", path)]


def window_update_flood(port, cafile, mib, started, sent, answered):
    """A client that sends mib MiB of connection WINDOW_UPDATE frames (each +1) as fast as it
    can, then a PING: started once it is connected, sent when the last byte is written,
    answered when the PING's ACK came back."""
    c = RawH2(port, "mail.contoso.test", cafile)
    c.sock.settimeout(300)
    frame = WindowUpdateFrame(0, window_increment=1).serialize()
    flood = frame * (mib * 1024 * 1024 // len(frame))
    started.set()
    c.sock.sendall(flood)
    sent.set()
    c.send(PingFrame(0, opaque_data=b"12345678"))
    seen = c.until(lambda f: isinstance(f, PingFrame) and "ACK" in f.flags, 60)
    if seen and isinstance(seen[-1], PingFrame):
        answered.set()
    c.close()


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
        cls.ws = WSBackend()
        cls.hold = HTTPBackend("hold")

    @classmethod
    def tearDownClass(cls):
        cls.owa.stop()
        cls.iis.stop()
        cls.ws.stop()
        cls.hold.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.port, self.port1, self.port2, self.admin = free_port(), free_port(), free_port(), free_port()
        d = self.tmp.name
        self.conf = """
onegate = { workers = 1; admin = { listen = "127.0.0.1:%(admin)d"; }; };
certificates = (
  { name = "contoso"; cert = "%(d)s/contoso.pem"; key = "%(d)s/contoso.key";
    intermediates = [ "%(d)s/intermediate.pem" ]; ca_file = "%(d)s/root.pem"; },
  { name = "fabrikam"; cert = "%(d)s/fabrikam.pem"; key = "%(d)s/fabrikam.key";
    intermediates = [ "%(d)s/intermediate.pem" ]; ca_file = "%(d)s/root.pem"; } );
pools = ( { name = "owa"; servers = ( "127.0.0.1:%(owa)d" ); },
          { name = "iis"; servers = ( "127.0.0.1:%(iis)d" ); },
          { name = "ws"; servers = ( "127.0.0.1:%(ws)d" ); },
          { name = "hold"; servers = ( "127.0.0.1:%(hold)d" ); } );
services = (
  { name = "https"; listen = [ "127.0.0.1:%(port)d" ];
    tls = { certificates = [ "contoso", "fabrikam" ]; default = "contoso"; };
    routes = (
      { sni = "sts.contoso.test"; passthrough = true; pool = "owa"; },
      { host = "mail.contoso.test"; pool = "owa"; },
      { host = "auth.contoso.test"; pool = "iis"; },
      { host = "ws.contoso.test"; pool = "ws"; },
      { host = "hold.contoso.test"; pool = "hold"; request_timeout = "60s"; },
      { host = "www.fabrikam.test"; pool = "owa"; } ); },
  { name = "h1only"; listen = [ "127.0.0.1:%(port1)d" ]; http2 = false;
    tls = { certificates = [ "contoso" ]; };
    routes = ( { host = "mail.contoso.test"; pool = "owa"; } ); },
  { name = "quick"; listen = [ "127.0.0.1:%(port2)d" ]; send_timeout = "1s";
    tls = { certificates = [ "contoso" ]; };
    routes = ( { host = "mail.contoso.test"; pool = "owa"; } ); } );
""" % {"d": d, "owa": self.owa.port, "iis": self.iis.port, "ws": self.ws.port, "port": self.port,
       "port1": self.port1, "port2": self.port2, "admin": self.admin, "hold": self.hold.port}
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

    def active(self, pool):
        """The back-end connections of pool's servers serving a request now (/metrics)."""
        return sum(int(n) for n in re.findall(r'(?m)^onegate_server_active_connections\{pool="%s",[^}]*\} (\d+)$'
                                              % pool, self.metrics() or ""))

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

    def test_a_client_gone_mid_body_ends_its_stream_and_server_connection(self):
        # Stream 1's request is whole and waits for its answer; stream 3 has sent half its body
        # when the client ends the connection (a FIN, no close_notify: a client that quits).
        c = self.h2("hold.contoso.test")
        c.request(1, get_fields("hold.contoso.test", "/slow?ms=1500"))
        c.request(3, get_fields("hold.contoso.test", "/up", "POST") + [("content-length", "100000")],
                  end_stream=False)
        c.send(*[DataFrame(3, data=b"h" * 12500) for _ in range(4)])
        self.assertTrue(wait_until(lambda: self.active("hold") == 2 and len(self.hold.clients) == 2, 5),
                        self.metrics())
        c.sock.shutdown(socket.SHUT_WR)
        # The route's request_timeout is 60 s: what follows comes from the client's end alone.
        self.assertTrue(wait_until(lambda: any("path=/up " in l and "outcome=client-closed" in l
                                               for l in self.http_lines()), 5), "\n".join(self.http_lines()))
        self.assertTrue(wait_until(lambda: any("path=/slow" in l and "status=200" in l and "outcome=ok" in l
                                               for l in self.http_lines()), 5), "\n".join(self.http_lines()))
        self.assertTrue(wait_until(lambda: self.active("hold") == 0, 5), self.metrics())
        self.assertTrue(wait_until(lambda: len(self.hold.clients) <= 1, 5),
                        "the half-sent request's server connection was closed (the answered one may be kept)")
        self.assertTrue(wait_until(lambda: any("proto=h2 requests=2" in l for l in self.og.log_lines()), 5),
                        "the client connection ended once its streams were done")

    # ---- WebSocket over HTTP/2 (RFC 8441)

    def test_websocket_over_h2_echoes_messages_both_ways(self):
        c = self.h2("ws.contoso.test")
        t = H2Tunnel(c, 1, "ws.contoso.test", "/chat?room=1", [("sec-websocket-version", "13")])
        self.assertEqual(t.head(), 200, t.fields)
        self.assertEqual(t.settings.get(ENABLE_CONNECT_PROTOCOL), 1, "SETTINGS_ENABLE_CONNECT_PROTOCOL offered")
        self.assertNotIn("sec-websocket-accept", t.fields)
        self.assertNotIn("upgrade", t.fields)
        hs = self.ws.handshakes[-1]
        self.assertEqual((hs["method"], hs["target"], hs["upgrade"]), ("GET", "/chat?room=1", "websocket"))
        self.assertEqual(len(base64.b64decode(hs["sec-websocket-key"])), 16, "a key of the gateway's own")
        big = os.urandom(1 << 20)
        for opcode, msg in ((1, b"hello over h2"), (2, big), (1, b"after")):
            t.send(ws_frame(opcode, msg))
            self.assertEqual(t.message(), (opcode, msg))
        t.send(ws_frame(8, b"\x03\xe8bye"), end=True)
        self.assertEqual(t.message(), (8, b"\x03\xe8bye"))
        while not t.ended and t.reset is None:
            t.assert_alive(t.pump())
        self.assertIsNone(t.reset, "the tunnel ends with END_STREAM both ways")
        self.assertTrue(wait_until(lambda: any("host=ws.contoso.test" in l and "status=101" in l
                                               and "outcome=ok" in l for l in self.http_lines()), 5),
                        "\n".join(self.http_lines()))
        line = next(l for l in self.http_lines() if "host=ws.contoso.test" in l and "status=101" in l)
        self.assertGreater(int(re.search(r" in=(\d+)", line).group(1)), 1 << 20)
        self.assertGreater(int(re.search(r" out=(\d+)", line).group(1)), 1 << 20)
        # Without the client's version the back end still gets RFC 6455's.
        t = H2Tunnel(c, 3, "ws.contoso.test", "/chat")
        self.assertEqual(t.head(), 200)
        self.assertEqual(self.ws.handshakes[-1]["sec-websocket-version"], "13")
        c.send(RstStreamFrame(3, error_code=8))
        self.assertTrue(wait_until(lambda: self.ws.closed.count("eof") >= 1, 5),
                        "a client's RST_STREAM closes the tunnel to the back end")

    def test_websocket_refused_by_the_back_end_is_the_streams_answer(self):
        c = self.h2("ws.contoso.test")
        t = H2Tunnel(c, 1, "ws.contoso.test", "/deny")
        self.assertEqual(t.head(), 403)
        while not t.ended and t.reset is None:
            t.assert_alive(t.pump())
        self.assertEqual(t.got, b"denied")
        c.request(3, get_fields("mail.contoso.test"))
        self.assertEqual(c.response(3)[0], 200, "the connection goes on")

    def test_websocket_half_close_each_way_and_windows_bound_both_ways(self):
        # The back end sends 4 MiB and half-closes (END_STREAM reaches the client), then counts
        # what the client sends until the client's END_STREAM (its end of the tunnel).
        n, up = 4 << 20, 3 << 20
        c = self.h2()
        t = H2Tunnel(c, 1, "mail.contoso.test", "/burst?bytes=%d" % n)
        self.assertEqual(t.head(), 200)
        while not t.ended:
            t.assert_alive(t.pump())
        self.assertEqual(t.got, b"b" * n)
        self.assertIsNone(t.reset)
        t.send(os.urandom(up), end=True)
        self.assertTrue(wait_until(lambda: up in self.owa.tunneled, 10), self.owa.tunneled)
        self.assertTrue(wait_until(lambda: any("path=/burst" in l and "status=101" in l and "outcome=ok" in l
                                               for l in self.http_lines()), 5), "\n".join(self.http_lines()))

    def test_websocket_client_that_stops_reading_is_cut_after_the_send_timeout(self):
        n = 64 << 20
        c = RawH2(self.port2, "mail.contoso.test", self.pki.ca)
        self.addCleanup(c.close)
        before = self.rss_kib()
        t = H2Tunnel(c, 1, "mail.contoso.test", "/burst?bytes=%d" % n)
        self.assertEqual(t.head(), 200)
        time.sleep(2.5)
        grown = self.rss_kib() - before
        self.assertLess(grown, 16 * 1024, "a tunnel to a client that reads nothing must not buffer (%d KiB)" % grown)
        while t.pump(10, read=False):
            pass
        self.assertLess(len(t.got), 1 << 20)
        self.assertEqual(t.goaway.error_code if t.goaway else None, ENHANCE_YOUR_CALM)
        self.assertTrue(wait_until(lambda: any("proto=h2" in l and "outcome=client-stalled" in l
                                               for l in self.og.log_lines()), 5), "\n".join(self.og.log_lines()))
        self.assertTrue(wait_until(lambda: any("path=/burst" in l and "status=101" in l
                                               for l in self.http_lines()), 5), "\n".join(self.http_lines()))
        self.assertTrue(wait_until(lambda: (self.metric("onegate_http2_zero_window_stalls_total") or 0) >= 1, 5))

    def test_a_tunnel_its_client_stops_reading_is_reset_alone(self):
        # The client reads the connection (its window stays open) and every stream but the
        # tunnel, whose own window it never opens: after send_timeout (1 s) only that stream
        # is reset, the requests on the other streams go on before and after.
        c = RawH2(self.port2, "mail.contoso.test", self.pki.ca)
        self.addCleanup(c.close)
        t = H2Tunnel(c, 1, "mail.contoso.test", "/burst?bytes=%d" % (64 << 20))
        self.assertEqual(t.head(), 200)
        self.assertTrue(wait_until(lambda: self.active("owa") == 1, 5), self.metrics())
        tunnel_bytes, reset, goaway, answered, after_reset = 0, None, None, 0, 0
        sid, deadline = 3, time.monotonic() + 15
        while time.monotonic() < deadline and after_reset < 3 and goaway is None:
            c.request(sid, get_fields("mail.contoso.test", "/owa/s%d" % sid))
            status = None
            while goaway is None:
                f = c.frame(5)
                self.assertIsNotNone(f, "the connection ended")
                if isinstance(f, DataFrame) and f.data:
                    c.send(WindowUpdateFrame(0, window_increment=len(f.data)))
                    if f.stream_id == 1:
                        tunnel_bytes += len(f.data)
                    else:
                        c.send(WindowUpdateFrame(f.stream_id, window_increment=len(f.data)))
                if isinstance(f, RstStreamFrame) and f.stream_id == 1:
                    reset = f.error_code
                elif isinstance(f, GoAwayFrame):
                    goaway = f
                elif isinstance(f, HeadersFrame) and f.stream_id == sid:
                    status = f.fields.get(":status")
                if f.stream_id == sid and ("END_STREAM" in f.flags or isinstance(f, RstStreamFrame)):
                    break
            self.assertEqual(status, "200", "stream %d" % sid)
            answered += 1
            after_reset += reset is not None
            sid += 2
            time.sleep(0.1)
        self.assertIsNone(goaway and goaway.error_code, "the connection was ended for one stalled stream")
        self.assertEqual(reset, ENHANCE_YOUR_CALM, "the stalled tunnel is reset")
        self.assertLessEqual(tunnel_bytes, 65535, "the tunnel sent past its window")
        self.assertGreaterEqual(answered, 6)
        self.assertTrue(wait_until(lambda: self.active("owa") == 0, 5),
                        "the tunnel's server connection is closed\n" + "\n".join(self.og.log_lines()))
        self.assertTrue(wait_until(lambda: (self.metric("onegate_http2_stream_stalls_total") or 0) == 1, 5),
                        self.metrics())
        self.assertEqual(self.metric("onegate_http2_zero_window_stalls_total"), 0)
        c.request(sid, get_fields("mail.contoso.test"))
        self.assertEqual(c.response(sid)[0], 200, "the connection goes on")

    # ---- trailers

    def test_response_trailers_become_a_trailing_headers_frame(self):
        c = self.h2("ws.contoso.test")
        c.request(1, get_fields("ws.contoso.test", "/trailers"))
        frames = c.until(lambda f: f.stream_id == 1 and ("END_STREAM" in f.flags or isinstance(f, RstStreamFrame)))
        heads = [f for f in frames if isinstance(f, HeadersFrame) and f.stream_id == 1]
        self.assertEqual(len(heads), 2, [type(f).__name__ for f in frames])
        self.assertEqual(heads[0].fields[":status"], "200")
        self.assertNotIn("trailer", heads[0].fields)
        self.assertIn("END_STREAM", heads[1].flags)
        self.assertEqual(heads[1].field_list, [("x-checksum", "sha-1234"), ("server-timing", "db;dur=53")],
                         "framing, connection-specific and cookie fields never pass as trailers")
        self.assertEqual(b"".join(f.data for f in frames if isinstance(f, DataFrame)), b"hello world")
        r = self.curl("ws.contoso.test", "/trailers", "--http2", "-sS", "-D", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"x-checksum: sha-1234", r.stdout)

    def test_request_trailers_go_to_the_back_end_as_chunked_trailers(self):
        c = self.h2("ws.contoso.test")
        h = HeadersFrame(1)
        h.data = c.block(get_fields("ws.contoso.test", "/up", "POST") + [("te", "trailers")])
        h.flags.add("END_HEADERS")
        tr = HeadersFrame(1)
        tr.data = c.block([("x-checksum", "abc"), ("content-length", "5"), ("host", "evil.test")])
        tr.flags.add("END_HEADERS")
        tr.flags.add("END_STREAM")
        c.send(h, DataFrame(1, data=b"a" * 1000), tr)
        st, body = c.response(1)
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body), {"body_len": 1000, "trailers": [["x-checksum", "abc"]]})
        c.request(3, get_fields("ws.contoso.test", "/up", "POST"), end_stream=False)
        tr = HeadersFrame(3)
        tr.data = c.block([(":path", "/x")])
        tr.flags.add("END_HEADERS")
        tr.flags.add("END_STREAM")
        c.send(DataFrame(3, data=b"b"), tr)
        self.assertEqual(c.response(3), (None, PROTOCOL_ERROR), "no pseudo-header in trailers")

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

    def test_counters_are_live_while_the_connection_is_open(self):
        c = self.h2()
        c.request(1, get_fields("mail.contoso.test"))
        self.assertEqual(c.response(1)[0], 200)
        c.request(3, get_fields("mail.contoso.test") + [("X-Upper", "1")])
        self.assertEqual(c.response(3), (None, PROTOCOL_ERROR))
        c.request(5, get_fields("mail.contoso.test", "/slow?ms=5000"))
        c.send(RstStreamFrame(5, error_code=8))
        want = {"onegate_http2_connections_total": 1, "onegate_http2_streams_total": 2,
                "onegate_http2_malformed_total": 1, "onegate_http2_resets_received_total": 1}
        self.assertTrue(wait_until(lambda: all((self.metric(k) or 0) >= v for k, v in want.items()), 5),
                        self.metrics())
        c.request(7, get_fields("mail.contoso.test"))
        self.assertEqual(c.response(7)[0], 200, "the connection was open all along")
        self.assertFalse(any("proto=h2" in l for l in self.og.log_lines()))
        c.close()
        self.assertTrue(wait_until(lambda: any("proto=h2" in l for l in self.og.log_lines()), 5))
        self.assertTrue(wait_until(lambda: self.metric("onegate_http2_streams_total") == 3, 5), self.metrics())
        self.assertEqual(self.metric("onegate_http2_malformed_total"), 1, "counted once, not again at the end")

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

    def test_answers_go_out_while_another_connection_keeps_the_worker_busy(self):
        """Another client's stream of WINDOW_UPDATE frames (harmless, answered with nothing),
        sent faster than the one worker takes them, keeps that worker busy for as long as it
        sends. Reading it must still leave the worker's other connections their turn (a read
        stopped by its bound goes on after the loop's next poll), and their answers must go
        out although the loop never goes idle (H2S_FLUSH_LATE_MS): ten requests in a row each
        get their answer while the flood is still being sent. Without the first, the first
        answer waited for the flood's end; without the second, answers waited for the
        connection's 500 ms tick or a moment the loop went idle, and ten did not fit in the
        flood. The flood comes from a process of its own, so that the client's threads do not
        take turns with it."""
        ctx = multiprocessing.get_context("fork")
        started, sent, answered = ctx.Event(), ctx.Event(), ctx.Event()
        flooder = ctx.Process(target=window_update_flood, daemon=True,
                              args=(self.port, self.pki.ca, 64, started, sent, answered))
        flooder.start()
        self.addCleanup(flooder.join, 300)
        c = self.h2()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # each request's frames at once
        self.assertTrue(started.wait(60))
        for sid in range(1, 21, 2):
            c.request(sid, get_fields("mail.contoso.test", "/owa/"))
            status, _ = c.response(sid, timeout=60)
            self.assertEqual(status, 200)
            self.assertFalse(sent.is_set(), "answer %d came after the other client's flood was all sent" % sid)
        self.assertTrue(sent.wait(300))
        self.assertTrue(answered.wait(60), "the flooding connection was not served after its flood")

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

    def test_empty_data_flood_ends_the_connection(self):
        c = self.h2()
        h = HeadersFrame(1)
        h.data = c.block(get_fields("mail.contoso.test", "/owa/", method="POST"))
        h.flags.add("END_HEADERS")
        self.flood(c, [h] + [DataFrame(1) for _ in range(150)])
        self.assertEqual(self.goaway(c).error_code, ENHANCE_YOUR_CALM)
        self.assertTrue(wait_until(lambda: (self.metric("onegate_http2_empty_data_flood_total") or 0) >= 1, 5))

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
