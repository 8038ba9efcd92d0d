"""HTTP/2 beyond the stream tunnel (issue 17): h2c with prior knowledge on plain services, only
where a service asks for it (curl --http2-prior-knowledge, h2load; the preface is a bad HTTP/1.1
request elsewhere, as before); 100-continue over HTTP/2 (python3-h2, curl) and HTTP/1.1, the
back end's 100 reaching the client before it sends its body; one large stream each way through
TLS with the checksum checked at the far end and the gateway's RSS sampled during the transfer;
a back end that reads slowly holding an uploading client through the stream's window.

ONEGATE_H2_FLOW_BYTES sets the size of the large transfers (default 256 MiB, so that `make test`
stays short on a 2-core machine); `make test-h2-gib` runs them with 1 GiB."""
import hashlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import h2.config
import h2.connection
import h2.events

from harness import (LOOP4, ONEGATE_BIN, Onegate, OnegateTestCase, client_context, free_ports, make_pki,
                     read_until_closed, stop_and_check, wait_until)
from httpback import HTTPBackend, pattern
from test_flow import rss_kib

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MIB = 1 << 20
FLOW_BYTES = int(os.environ.get("ONEGATE_H2_FLOW_BYTES", str(256 * MIB))) // MIB * MIB
# What one stream may add to the gateway's RSS while it moves: its windows (1 MiB stream,
# 4 MiB connection), the answer's queue (256 KiB to the client, 64 KiB per stream) and the TLS
# and socket buffers are about 3 MiB at most; 8 MiB leaves room for the allocator's arenas and
# still catches a body held in memory, or a leak of more than ~128 bytes per 16 KiB frame over
# 1 GiB. Under ASan freed memory waits in a 16 MiB quarantine (make test-asan) first.
RSS_BOUND_KIB = (8 + (24 if "ASAN_OPTIONS" in os.environ else 0)) * 1024
HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, timeout=120, input=None):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)


class ProcBackend:
    """httpback.py in a process of its own: hashing and writing a large body there does not
    share this process's interpreter lock with the client side of the test."""

    def __init__(self, name):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "httpback.py"), name],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.thread = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self.thread.start()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class SlowBackend:
    """A back end that reads a request body slowly (16 KiB every 20 ms through a 64 KiB
    receive buffer) and counts what it took."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOOP4, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        conn.settimeout(0.5)
        while not self.stopping.is_set():
            try:
                d = conn.recv(16384)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            self.received += len(d)
            time.sleep(0.02)
        conn.close()

    def close(self):
        self.stopping.set()
        self.sock.close()
        self.thread.join(5)


class RssSampler:
    """The gateway's RSS every 50 ms while a transfer runs; moved() says how far it got, and
    the baseline is taken once an eighth of it has moved (buffers and TLS state exist by then)."""

    def __init__(self, pid, total, moved):
        self.pid, self.total, self.moved = pid, total, moved
        self.first, self.start, self.peak = rss_kib(pid), None, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(0.05):
            try:
                kib = rss_kib(self.pid)
            except FileNotFoundError:
                return
            if self.start is None and self.moved() >= self.total // 8:
                self.start = kib
            if self.start is not None:
                self.peak = max(self.peak, kib)

    def stop(self):
        if not self.done.is_set():
            self.done.set()
            self.thread.join(5)
            self.end = rss_kib(self.pid)
        return self

    def report(self, what, seconds):
        line = ("%s: %d MiB in %.1f s (%.0f MiB/s); gateway RSS KiB before %d, baseline %s, peak %d, end %d"
                % (what, self.total // MIB, seconds, self.total / MIB / max(seconds, 1e-6), self.first,
                   self.start, self.peak, self.end))
        sys.stderr.write(line + "\n")
        return line


class H2Client:
    """One HTTP/2 connection with python3-h2 over TLS (harness's client context) or plain (h2c)."""

    def __init__(self, port, cafile=None, sni=None):
        raw = socket.create_connection((LOOP4, port), timeout=10)
        if cafile:
            ctx = client_context(cafile)
            ctx.set_alpn_protocols(["h2"])
            self.sock = ctx.wrap_socket(raw, server_hostname=sni)
            assert self.sock.selected_alpn_protocol() == "h2"
        else:
            self.sock = raw
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def events(self, timeout):
        """The events of what arrives within timeout (an empty list when nothing does)."""
        if not getattr(self.sock, "pending", lambda: 0)() and not select.select([self.sock], [], [], timeout)[0]:
            return []
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("the gateway closed the connection")
        evs = self.conn.receive_data(d)
        for e in evs:
            if isinstance(e, h2.events.DataReceived):
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        self.flush()
        return evs

    def close(self):
        self.sock.close()


class Http2Flow(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-h2flow-")
        cls.pki = make_pki(cls.tmp.name, {"contoso": ["*.contoso.test", "contoso.test"]})
        cls.owa = HTTPBackend("owa")
        cls.big = ProcBackend("big")

    @classmethod
    def tearDownClass(cls):
        cls.owa.stop()
        cls.big.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.slow = SlowBackend()
        self.addCleanup(self.slow.close)
        self.tls, self.h2c, self.plain, self.mixed = free_ports(4)
        self.conf = """
onegate = { workers = 1; };
certificates = ( { name = "contoso"; cert = "%(d)s/contoso.pem"; key = "%(d)s/contoso.key";
                   intermediates = [ "%(d)s/intermediate.pem" ]; ca_file = "%(d)s/root.pem"; } );
pools = ( { name = "owa"; servers = ( "127.0.0.1:%(owa)d" ); },
          { name = "big"; servers = ( "127.0.0.1:%(big)d" ); },
          { name = "slow"; servers = ( "127.0.0.1:%(slow)d" ); } );
services = (
  { name = "tls"; listen = [ "127.0.0.1:%(tls)d" ]; tls = { certificates = [ "contoso" ]; };
    routes = ( { host = "mail.contoso.test"; pool = "owa"; },
               { host = "big.contoso.test"; pool = "big"; },
               { host = "slow.contoso.test"; pool = "slow"; } ); },
  { name = "h2c"; listen = [ "127.0.0.1:%(h2c)d" ]; h2c = true;
    routes = ( { host = "mail.contoso.test"; pool = "owa"; } ); },
  { name = "plain"; listen = [ "127.0.0.1:%(plain)d" ];
    routes = ( { host = "mail.contoso.test"; pool = "owa"; } ); },
  { name = "mixed"; listen = [ "127.0.0.1:%(mixed)d" ]; plain_http = true; h2c = true;
    tls = { certificates = [ "contoso" ]; };
    routes = ( { host = "mail.contoso.test"; pool = "owa"; } ); } );
""" % {"d": self.tmp.name, "owa": self.owa.port, "big": self.big.port, "slow": self.slow.port, "tls": self.tls,
       "h2c": self.h2c, "plain": self.plain, "mixed": self.mixed}
        self.og = Onegate(self.conf, wait_port=self.tls).start()
        self.addCleanup(self.og.cleanup)
        self.addCleanup(stop_and_check, self.og)
        self.og.wait_ready(self.h2c, 5)

    def curl(self, url, port, *extra, name="mail.contoso.test", **kw):
        return run(["curl", "-sS", "--max-time", "60", "--cacert", self.pki.ca, "--resolve",
                    "%s:%d:127.0.0.1" % (name, port), *extra, url % (name, port)], **kw)

    # ---- h2c with prior knowledge

    def test_h2c_prior_knowledge_with_curl(self):
        r = self.curl("http://%s:%d/owa/", self.h2c, "--http2-prior-knowledge", "-w", "\n%{http_version}")
        self.assertEqual(r.returncode, 0, r.stderr)
        body, version = r.stdout.rsplit(b"\n", 1)
        self.assertEqual(version, b"2")
        info = json.loads(body)
        headers = {k.lower(): v for k, v in info["headers"]}
        self.assertEqual((info["backend"], info["version"]), ("owa", "HTTP/1.1"))
        self.assertEqual(headers["x-forwarded-proto"], "http", "an h2c stream came in plain")
        self.assertTrue(wait_until(lambda: any("path=/owa/ proto=HTTP/2.0 status=200" in l
                                               for l in self.og.log_lines()), 5))
        self.assertTrue(wait_until(lambda: any("service=h2c sni=- proto=h2c requests=1 " in l
                                               for l in self.og.log_lines()), 5))

    def test_h2c_with_h2load(self):
        r = run(["h2load", "-n", "300", "-c", "3", "-m", "10", "-H", ":authority: mail.contoso.test",
                 "http://127.0.0.1:%d/owa/" % self.h2c])
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("Application protocol: h2c", out)
        self.assertIn("300 succeeded, 0 failed, 0 errored", out)
        self.assertIn("status codes: 300 2xx", out)

    def test_h2c_service_still_serves_http11(self):
        r = self.curl("http://%s:%d/owa/up", self.h2c, "--http1.1", "--data-binary", "posted",
                      "-w", "\n%{http_version}")
        self.assertEqual(r.returncode, 0, r.stderr)
        body, version = r.stdout.rsplit(b"\n", 1)
        self.assertEqual((version, json.loads(body)["body_len"]), (b"1.1", 6))
        # A request line that starts as the preface does and then parts from it, in pieces.
        s = socket.create_connection((LOOP4, self.h2c), timeout=10)
        self.addCleanup(s.close)
        for piece in (b"P", b"R", b"IX", b" /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\nConnection: close\r\n\r\n"):
            s.sendall(piece)
            time.sleep(0.1)
        out, _, _ = read_until_closed(s, 10)
        self.assertTrue(out.startswith(b"HTTP/1.1 200 "), out[:200])
        self.assertEqual(json.loads(out.partition(b"\r\n\r\n")[2])["method"], "PRIX")

    def test_preface_without_h2c_is_a_bad_http11_request(self):
        for port in (self.plain, self.tls):
            r = self.curl("http://%s:%d/owa/", port, "--http2-prior-knowledge")
            self.assertNotEqual(r.returncode, 0, "h2c answered where the service did not ask for it")
        s = socket.create_connection((LOOP4, self.plain), timeout=10)
        self.addCleanup(s.close)
        s.sendall(PREFACE)
        out = s.recv(4096)
        self.assertTrue(out.startswith(b"HTTP/1.1 505 "), out)
        self.assertTrue(wait_until(lambda: any("service=plain " in l and "outcome=bad-request" in l
                                               for l in self.og.log_lines()), 5))

    def test_h2c_on_a_tls_service_plain_http_port(self):
        r = self.curl("http://%s:%d/owa/", self.mixed, "--http2-prior-knowledge", "-w", "\n%{http_version}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.rsplit(b"\n", 1)[1], b"2")
        r = self.curl("https://%s:%d/owa/", self.mixed, "--http2", "-w", "\n%{http_version}")
        self.assertEqual(r.returncode, 0, r.stderr)
        body, version = r.stdout.rsplit(b"\n", 1)
        self.assertEqual(version, b"2")
        self.assertIn(["X-Forwarded-Proto", "https"], json.loads(body)["headers"])
        r = self.curl("http://%s:%d/owa/", self.mixed, "--http1.1", "-w", "\n%{http_version}")
        self.assertEqual((r.returncode, r.stdout.rsplit(b"\n", 1)[1]), (0, b"1.1"), r.stderr)

    def test_check_refuses_h2c_where_no_plain_http_is_read(self):
        d = self.tmp.name
        cert = ('certificates = ( { name = "c"; cert = "%s/contoso.pem"; key = "%s/contoso.key"; } );\n'
                'pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );\n' % (d, d))
        cases = {
            "tls-only": ('{ name = "s"; listen = [ "127.0.0.1:1" ]; h2c = true; tls = { certificates = [ "c" ]; };'
                         ' routes = ( { host = "a.contoso.test"; pool = "p"; } ); }', "add plain_http = true"),
            "relay": ('{ name = "s"; listen = [ "127.0.0.1:1" ]; h2c = true; default = { pool = "p"; }; }',
                      "relays TLS"),
            "http2-off": ('{ name = "s"; listen = [ "127.0.0.1:1" ]; h2c = true; http2 = false;'
                          ' routes = ( { host = "a.contoso.test"; pool = "p"; } ); }', "remove one of them"),
            "not-bool": ('{ name = "s"; listen = [ "127.0.0.1:1" ]; h2c = "yes";'
                         ' routes = ( { host = "a.contoso.test"; pool = "p"; } ); }', "h2c"),
        }
        for name, (svc, words) in cases.items():
            path = os.path.join(d, name + ".conf")
            with open(path, "w") as f:
                f.write(cert + "services = ( %s );\n" % svc)
            r = run([ONEGATE_BIN, "check", "-c", path], timeout=20)
            err = r.stderr.decode()
            self.assertNotEqual(r.returncode, 0, "%s: accepted\n%s" % (name, err))
            self.assertRegex(err, re.escape(path) + r":\d+: .*h2c", name)
            self.assertIn(words, err, name)
        # --print writes h2c where plain HTTP is read, and what it writes loads again.
        r = run([ONEGATE_BIN, "check", "--print", "-c", self.og.conf], timeout=20)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        blocks = {b.split('"', 1)[0]: b for b in out.split('\n  { name = "')[1:]}
        self.assertIn("h2c = true;", blocks["h2c"])
        self.assertIn("h2c = true;", blocks["mixed"])
        self.assertNotIn("h2c", blocks["plain"] + blocks["tls"], "h2c is off by default")
        printed = os.path.join(d, "printed.conf")
        with open(printed, "w") as f:
            f.write("".join(l + "\n" for l in out.splitlines() if ": OK (" not in l))
        r = run([ONEGATE_BIN, "check", "--print", "-c", printed], timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        def body(text):
            return [re.sub(r"#.*", "", l) for l in text.splitlines() if ": OK (" not in l]
        self.assertEqual(body(r.stdout.decode()), body(out))

    # ---- 100-continue

    def test_100_continue_with_python_h2(self):
        for port, cafile in ((self.tls, self.pki.ca), (self.h2c, None)):
            c = H2Client(port, cafile, "mail.contoso.test")
            self.addCleanup(c.close)
            body = pattern(300000)
            c.conn.send_headers(1, [(":method", "POST"), (":scheme", "https" if cafile else "http"),
                                    (":authority", "mail.contoso.test"), (":path", "/owa/upload"),
                                    ("expect", "100-continue"), ("content-length", str(len(body)))])
            c.flush()
            interim, deadline = None, time.monotonic() + 5
            while interim is None and time.monotonic() < deadline:
                for e in c.events(deadline - time.monotonic()):
                    self.assertNotIsInstance(e, (h2.events.ResponseReceived, h2.events.StreamReset), e)
                    if isinstance(e, h2.events.InformationalResponseReceived):
                        interim = dict(e.headers)
            self.assertEqual(interim, {b":status": b"100"}, "no 100 Continue before the body was sent")
            sent = 0
            while sent < len(body):
                n = min(c.conn.local_flow_control_window(1), c.conn.max_outbound_frame_size, len(body) - sent)
                if n:
                    c.conn.send_data(1, body[sent:sent + n], end_stream=sent + n == len(body))
                    c.flush()
                    sent += n
                else:
                    c.events(1)
            status, got, deadline = None, b"", time.monotonic() + 10
            ended = False
            while not ended and time.monotonic() < deadline:
                for e in c.events(deadline - time.monotonic()):
                    if isinstance(e, h2.events.ResponseReceived):
                        status = dict(e.headers)[b":status"]
                    elif isinstance(e, h2.events.DataReceived):
                        got += e.data
                    elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                        ended = True
            self.assertEqual(status, b"200", got[:200])
            info = json.loads(got)
            self.assertEqual((info["body_len"], info["body_sha256"]),
                             (len(body), hashlib.sha256(body).hexdigest()))
            self.assertIn(["expect", "100-continue"], info["headers"])

    def test_100_continue_with_curl(self):
        path = os.path.join(self.tmp.name, "post.bin")
        with open(path, "wb") as f:
            f.write(pattern(4 * MIB))
        for url, port, version in (("https://%s:%d/owa/up", self.tls, "--http2"),
                                   ("http://%s:%d/owa/up", self.h2c, "--http2-prior-knowledge")):
            r = self.curl(url, port, version, "-v", "-H", "Expect: 100-continue", "--data-binary", "@" + path)
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 0, err)
            self.assertIn("< HTTP/2 100", err)
            # curl gives up waiting after 1 s and sends the body anyway: the 100 came first.
            self.assertNotIn("Done waiting for 100-continue", err)
            info = json.loads(r.stdout)
            self.assertEqual((info["method"], info["body_len"]), ("POST", 4 * MIB))

    def test_100_continue_over_http11_comes_before_the_body(self):
        s = socket.create_connection((LOOP4, self.plain), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"POST /owa/up HTTP/1.1\r\nHost: mail.contoso.test\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 5\r\nConnection: close\r\n\r\n")
        s.settimeout(5)
        self.assertEqual(s.recv(4096), b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        out, _, _ = read_until_closed(s, 10)
        self.assertTrue(out.startswith(b"HTTP/1.1 200 "), out[:200])

    # ---- large streams and bounded memory

    def test_large_upload_over_one_stream(self):
        chunk = pattern(MIB)
        want = hashlib.sha256()
        moved = [0]
        p = subprocess.Popen(["curl", "-sS", "--http2", "--max-time", "900", "--cacert", self.pki.ca, "--resolve",
                              "big.contoso.test:%d:127.0.0.1" % self.tls, "-T", "-",
                              "https://big.contoso.test:%d/up" % self.tls],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        sampler = RssSampler(self.og.proc.pid, FLOW_BYTES, lambda: moved[0])
        self.addCleanup(sampler.stop)
        t0 = time.monotonic()
        for _ in range(FLOW_BYTES // MIB):
            p.stdin.write(chunk)
            want.update(chunk)
            moved[0] += MIB
        p.stdin.close()
        out = p.stdout.read()
        err = p.stderr.read()
        p.wait(60)
        seconds = time.monotonic() - t0
        sampler.stop()
        line = sampler.report("h2 upload", seconds)
        self.assertEqual(p.returncode, 0, err)
        info = json.loads(out)
        self.assertEqual((info["method"], info["body_len"], info["body_sha256"]),
                         ("PUT", FLOW_BYTES, want.hexdigest()))
        self.assertLess(sampler.peak - sampler.start, RSS_BOUND_KIB, line)

    def test_large_download_over_one_stream(self):
        chunk = pattern(MIB)
        want = hashlib.sha256()
        got = hashlib.sha256()
        moved = [0]
        p = subprocess.Popen(["curl", "-sS", "--http2", "--max-time", "900", "--cacert", self.pki.ca, "--resolve",
                              "big.contoso.test:%d:127.0.0.1" % self.tls, "-w", "%{http_version}", "-o", "/dev/stdout",
                              "https://big.contoso.test:%d/big?bytes=%d" % (self.tls, FLOW_BYTES)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        sampler = RssSampler(self.og.proc.pid, FLOW_BYTES, lambda: moved[0])
        self.addCleanup(sampler.stop)
        t0 = time.monotonic()
        while moved[0] < FLOW_BYTES:
            d = p.stdout.read(min(MIB, FLOW_BYTES - moved[0]))
            if not d:
                break
            got.update(d)
            moved[0] += len(d)
        rest, err = p.communicate(timeout=60)
        seconds = time.monotonic() - t0
        sampler.stop()
        line = sampler.report("h2 download", seconds)
        for _ in range(FLOW_BYTES // MIB):
            want.update(chunk)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual((moved[0], rest), (FLOW_BYTES, b"2"))
        self.assertEqual(got.hexdigest(), want.hexdigest(), "the body that came is not the one the back end sent")
        self.assertLess(sampler.peak - sampler.start, RSS_BOUND_KIB, line)

    def test_slow_back_end_holds_the_uploading_client(self):
        total = 256 * MIB
        c = H2Client(self.tls, self.pki.ca, "slow.contoso.test")
        self.addCleanup(c.close)
        c.conn.send_headers(1, [(":method", "POST"), (":scheme", "https"), (":authority", "slow.contoso.test"),
                                (":path", "/up"), ("content-length", str(total))])
        c.flush()
        base = rss_kib(self.og.proc.pid)
        chunk = b"s" * 16384
        sent, peak = 0, 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            n = min(c.conn.local_flow_control_window(1), len(chunk))
            if n:
                c.conn.send_data(1, chunk[:n])
                c.flush()
                sent += n
            else:
                for e in c.events(0.1):
                    self.assertNotIsInstance(e, (h2.events.ResponseReceived, h2.events.StreamReset), e)
            peak = max(peak, rss_kib(self.og.proc.pid))
        received = self.slow.received
        sys.stderr.write("slow back end: the client sent %d KiB, the back end took %d KiB, %d KiB ahead; "
                         "gateway RSS grew %d KiB\n" % (sent >> 10, received >> 10, (sent - received) >> 10, peak - base))
        self.assertGreater(received, 0, "the back end got nothing")
        # What left the client and has not reached the back end: the stream's window (1 MiB), the
        # session's queue to the back end and the socket buffers on the way (about 5 MiB); not
        # the 256 MiB offered.
        self.assertLess(sent - received, 8 * MIB, "the client sent %d bytes, the back end took %d" % (sent, received))
        self.assertLess(peak - base, RSS_BOUND_KIB,
                        "the gateway's RSS grew from %d to %d KiB while the back end read slowly" % (base, peak))


if __name__ == "__main__":
    unittest.main()
