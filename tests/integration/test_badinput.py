"""Bad input (issue 7, "Proof"): malformed ClientHellos, oversize heads and request smuggling
shapes against one running gateway. Every case must get its status or a clean close within the
service's timeout, nothing may reach a back end the rule file did not route it to, and the
gateway must serve good requests afterwards. Each test reports what it tried.

The smuggling shapes test_http.py already covers (CL with TE, two differing Content-Lengths,
obs-fold, whitespace before a colon, two Hosts, no Host, an absolute-form target naming another
host, "chunked, identity", bare LF line ends) are not repeated here."""
import collections
import concurrent.futures
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import (LOOP4, OnegateTestCase, client_context, curl, free_port, make_pki, require_binary,
                     wait_until)
from httpback import HTTPBackend

PT_NAME = "pt.badinput.test"       # the only name the passthrough service routes
WWW = "www.badinput.test"          # HTTP route to the "web" back end (plain and TLS)
REC = "rec.badinput.test"          # HTTP route to the recorder, for the smuggling shapes
HELLO_TIMEOUT = 0.5
# A connection must be over by hello_timeout plus this: 128 clients at once, maybe sanitizers.
SLACK = 2.7
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "hello")

PKI = None
_TMP = None
CAPTURED = {}


def report(what, text):
    print("\n[badinput] %s: %s" % (what, text), file=sys.stderr)


def u16(n):
    return struct.pack("!H", n)


def u24(n):
    return struct.pack("!I", n)[1:]


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        d = sock.recv(n - len(buf))
        if not d:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += d
    return buf


def capture_hello(argv):
    """The ClientHello record a real client sends, as a listener sees it."""
    ls = socket.socket()
    ls.bind((LOOP4, 0))
    ls.listen(1)
    ls.settimeout(10)
    proc = subprocess.Popen(argv(ls.getsockname()[1]), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c, _ = ls.accept()
        with c:
            c.settimeout(10)
            head = recv_exact(c, 5)
            record = head + recv_exact(c, struct.unpack("!H", head[3:5])[0])
    finally:
        ls.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return record


def setUpModule():
    global PKI, _TMP
    require_binary()
    _TMP = tempfile.TemporaryDirectory(prefix="onegate-bad-")
    PKI = make_pki(_TMP.name, {"gw": [WWW, REC], "pt": [PT_NAME]})
    CAPTURED["openssl s_client"] = capture_hello(
        lambda port: ["openssl", "s_client", "-connect", "%s:%d" % (LOOP4, port), "-servername", PT_NAME])
    CAPTURED["curl"] = capture_hello(
        lambda port: ["curl", "-sS", "--max-time", "10", "--noproxy", "*", "--resolve",
                      "%s:%d:%s" % (PT_NAME, port, LOOP4), "https://%s:%d/" % (PT_NAME, port)])


def tearDownModule():
    if _TMP is not None:
        _TMP.cleanup()


# ------------------------------------------------------------------ ClientHellos

def record(payload, rtype=0x16, version=b"\x03\x01", length=None):
    return bytes([rtype]) + version + u16(len(payload) if length is None else length) + payload


def sni_data(entries):
    """server_name extension data: a list of (name type, name) entries."""
    names = b"".join(bytes([t]) + u16(len(n)) + n for t, n in entries)
    return u16(len(names)) + names


class Hello:
    """A real ClientHello taken apart, so that one field at a time can be broken while every
    other byte stays what the client sent."""

    def __init__(self, rec):
        assert rec[0] == 0x16 and rec[5] == 1, "not a handshake record holding a ClientHello"
        self.version = rec[1:3]
        m = rec[9:]
        assert len(m) == int.from_bytes(rec[6:9], "big"), "the ClientHello is not in one record"
        self.legacy, self.random = m[0:2], m[2:34]
        p = 35 + m[34]
        self.sid = m[35:p]
        n = int.from_bytes(m[p:p + 2], "big")
        self.suites, p = m[p + 2:p + 2 + n], p + 2 + n
        self.comp, p = m[p + 1:p + 1 + m[p]], p + 1 + m[p]
        end = p + 2 + int.from_bytes(m[p:p + 2], "big")
        p += 2
        self.exts = []
        while p < end:
            t, n = int.from_bytes(m[p:p + 2], "big"), int.from_bytes(m[p + 2:p + 4], "big")
            self.exts.append((t, m[p + 4:p + 4 + n]))
            p += 4 + n
        assert p == len(m), "bytes after the extensions"

    def message(self, exts=None, ext_bytes=None, ext_len_delta=0, after_exts=b"", sid=None, suites=None,
                comp=None, msg_type=1, len_delta=0, length=None):
        if ext_bytes is None:
            ext_bytes = b"".join(u16(t) + u16(len(d)) + d for t, d in (self.exts if exts is None else exts))
        sid = self.sid if sid is None else sid
        suites = self.suites if suites is None else suites
        comp = self.comp if comp is None else comp
        body = (self.legacy + self.random + bytes([len(sid)]) + sid + u16(len(suites)) + suites +
                bytes([len(comp)]) + comp + u16(len(ext_bytes) + ext_len_delta) + ext_bytes + after_exts)
        return bytes([msg_type]) + u24(len(body) + len_delta if length is None else length) + body

    def record(self, msg, **kw):
        return record(msg, version=self.version, **kw)

    def with_sni(self, data, extra=()):
        """The extensions with the server_name data replaced (and extra extensions added)."""
        return [(t, data if t == 0 else d) for t, d in self.exts] + list(extra)


def sslv2_hello(version):
    """An SSLv2-compatible ClientHello (RFC 5246 E.2): no extensions, so no SNI."""
    specs = bytes.fromhex("00c02f00009c00002f")
    body = b"\x01" + u16(version) + u16(len(specs)) + u16(0) + u16(16) + specs + b"\x5a" * 16
    return u16(0x8000 | len(body)) + body


def handmade_cases(h):
    """(what, bytes, kind): "broken" must be closed with nothing or an alert and go nowhere;
    "unrouted" is a hello the reader accepts whose name routes nowhere (an unrecognized_name alert
    on the passthrough service; the terminating service may handshake)."""
    pt = PT_NAME.encode()
    m = h.message()
    ext_raw = b"".join(u16(t) + u16(len(d)) + d for t, d in h.exts)
    last_len = len(ext_raw) - len(h.exts[-1][1]) - 2    # the last extension's length field
    overrun = ext_raw[:last_len] + u16(len(h.exts[-1][1]) + 5) + ext_raw[last_len + 2:]

    def sni(entries):
        return h.record(h.message(exts=h.with_sni(sni_data(entries))))

    return [
        ("record length 100 more than the data", h.record(m, length=len(m) + 100), "broken"),
        ("record length past the largest record", h.record(m, length=0xffff), "broken"),
        ("an empty record before the hello", h.record(b"") + h.record(m), "broken"),
        ("handshake length 10 more than the message", h.record(h.message(len_delta=10)), "broken"),
        ("handshake length 10 less than the message", h.record(h.message(len_delta=-10)), "broken"),
        ("handshake length past 64 KiB", h.record(h.message(length=0x10001)), "broken"),
        ("a ServerHello instead of a ClientHello", h.record(h.message(msg_type=2)), "broken"),
        ("session id of 33 bytes", h.record(h.message(sid=b"\x11" * 33)), "broken"),
        ("odd cipher suites length", h.record(h.message(suites=h.suites + b"\x00")), "broken"),
        ("no compression methods", h.record(h.message(comp=b"")), "broken"),
        ("extension list length 1 past its extensions", h.record(h.message(ext_len_delta=1)), "broken"),
        ("extension list length 1000 past the message", h.record(h.message(ext_len_delta=1000)), "broken"),
        ("the last extension's length past the list", h.record(h.message(ext_bytes=overrun)), "broken"),
        ("bytes after the extension list", h.record(h.message(after_exts=b"\x00\x00\x00")), "broken"),
        ("a server name of length zero", sni([(0, b"")]), "broken"),
        ("a server name with a 300-byte label", sni([(0, b"a" * 300 + b"." + pt)]), "broken"),
        ("two host_name entries, the routed one first", sni([(0, pt), (0, b"evil.test")]), "broken"),
        ("two host_name entries, the routed one second", sni([(0, b"evil.test"), (0, pt)]), "broken"),
        ("the routed host_name twice", sni([(0, pt), (0, pt)]), "broken"),
        ("a NUL byte inside the name", sni([(0, pt + b"\x00.evil.test")]), "broken"),
        ("a NUL byte ending the name", sni([(0, pt + b"\x00")]), "broken"),
        ("a slash in the name", sni([(0, pt + b"/x")]), "broken"),
        ("a name starting with a dot", sni([(0, b"." + pt)]), "broken"),
        ("server_name list length 1 past its extension",
         h.record(h.message(exts=h.with_sni(u16(len(pt) + 4) + b"\x00" + u16(len(pt)) + pt))), "broken"),
        ("an empty server_name extension", h.record(h.message(exts=h.with_sni(b""))), "broken"),
        ("two server_name extensions",
         h.record(h.message(exts=h.with_sni(sni_data([(0, pt)]), [(0, sni_data([(0, pt)]))]))), "broken"),
        ("the hello's second record is application data",
         h.record(m[:40]) + h.record(m[40:], rtype=0x17), "broken"),
        ("the hello's second record has version 2.1",
         h.record(m[:40]) + record(m[40:], version=b"\x02\x01"), "broken"),
        ("an application data record first", record(b"\x00" * 32, rtype=0x17, version=b"\x03\x03"), "broken"),
        ("a ChangeCipherSpec record first", record(b"\x01", rtype=0x14, version=b"\x03\x03") + h.record(m),
         "broken"),
        ("an alert record first", record(b"\x02\x28", rtype=0x15, version=b"\x03\x03"), "broken"),
        ("64 KiB of 0x16", b"\x16" * 65536, "broken"),
        ("a name of another type only", sni([(1, pt)]), "unrouted"),
        ("a name with a 64-byte label", sni([(0, b"a" * 64 + b".badinput.test")]), "unrouted"),
        ("an SSLv2-compatible hello for SSL 2.0", sslv2_hello(0x0002), "unrouted"),
        ("an SSLv2-compatible hello for TLS 1.2", sslv2_hello(0x0303), "unrouted"),
    ]


def corpus_cases():
    """Each seed of the hello fuzz corpus twice: as fuzz_hello.c reads it (its first byte picks
    the piece size, the rest is fed in pieces of that size) and as the raw file."""
    cases = []
    for name in sorted(os.listdir(CORPUS)):
        with open(os.path.join(CORPUS, name), "rb") as f:
            data = f.read()
        if not data:
            continue
        step = data[0] % 17 + 1
        cases.append(("corpus %s in %d-byte pieces" % (name, step),
                      [data[i:i + step] for i in range(1, len(data), step)], "corpus"))
        cases.append(("corpus %s as the raw file" % name, [data], "corpus"))
    return cases


def only_alerts(data):
    while data:
        if len(data) < 7 or data[0] != 0x15 or data[1] != 3 or data[3:5] != b"\x00\x02":
            return False
        data = data[7:]
    return True


UNRECOGNIZED_NAME = (bytes.fromhex("15030100020270"), bytes.fromhex("15030300020270"))


def probe(port, pieces, half_close):
    """Sends the pieces on a fresh connection (half-closing after them, or not) and waits for the
    gateway to end it. Returns (reply, "eof" | "reset" | None when still open, seconds after
    the last byte was sent, the client's "ip:port" as the gateway logs it)."""
    s = socket.create_connection((LOOP4, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = "%s:%d" % s.getsockname()[:2]
    data, how = b"", None
    try:
        try:
            for p in pieces:
                s.sendall(p)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass        # refused before everything was sent; what came back still counts
        t0 = time.monotonic()
        deadline = t0 + HELLO_TIMEOUT + SLACK
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                how = "reset"
                break
            if not d:
                how = "eof"
                break
            data += d
        return data, how, time.monotonic() - t0, client
    finally:
        s.close()


# ------------------------------------------------------------------ back ends

class Recorder:
    """A back end that records every byte of every connection and never answers: whatever
    the gateway let through a smuggling attempt is there to read."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOOP4, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []         # [bytearray, closed]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            entry = [bytearray(), False]
            with self.lock:
                self.conns.append(entry)
            threading.Thread(target=self._read, args=(c, entry), daemon=True).start()

    def _read(self, c, entry):
        with c:
            c.settimeout(30)
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    break
                if not d:
                    break
                with self.lock:
                    entry[0] += d
        entry[1] = True

    def snapshot(self):
        with self.lock:
            return [(bytes(b), closed) for b, closed in self.conns]

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------ the tests

class BadInput(OnegateTestCase):
    def setUp(self):
        d = PKI.dir
        self.pt = self.start_backend("pt", PKI)
        self.web = HTTPBackend("web")
        self.addCleanup(self.web.kill)
        self.rec = Recorder()
        self.addCleanup(self.rec.close)
        self.pt_port, self.tls_port, self.http_port = free_port(), free_port(), free_port()
        self.https_port = free_port()
        conf = """
onegate = { workers = 2; };
certificates = ( { name = "gw"; cert = "%(d)s/gw.chain.pem"; key = "%(d)s/gw.key"; ca_file = "%(d)s/root.pem"; } );
pools = ( { name = "pt"; servers = ( "%(pt)s" ); },
          { name = "web"; servers = ( "127.0.0.1:%(web)d" ); },
          { name = "rec"; servers = ( "127.0.0.1:%(rec)d" ); } );
services = (
  { name = "pt"; listen = [ "127.0.0.1:%(pt_port)d" ]; hello_timeout = "%(hello)dms";
    routes = ( { sni = "%(pt_name)s"; pool = "pt"; } ); },
  { name = "tls"; listen = [ "127.0.0.1:%(tls_port)d" ]; hello_timeout = "%(hello)dms"; header_timeout = "3s";
    tls = { certificates = [ "gw" ]; };
    routes = ( { host = "%(www)s"; pool = "web"; }, { host = "%(rec_name)s"; pool = "rec"; } ); },
  { name = "http"; listen = [ "127.0.0.1:%(http_port)d" ]; header_timeout = "3s";
    routes = ( { host = "%(www)s"; pool = "web"; }, { host = "%(rec_name)s"; pool = "rec"; } ); },
  # The HTTP heads over TLS, and assert_still_serving(): "tls" and "pt" above give a
  # handshake (or its hello) only hello_timeout, which a client on a loaded machine
  # (sanitizers, ctest -j) can outlast.
  { name = "https"; listen = [ "127.0.0.1:%(https_port)d" ]; header_timeout = "3s";
    tls = { certificates = [ "gw" ]; };
    routes = ( { sni = "%(pt_name)s"; passthrough = true; pool = "pt"; },
               { host = "%(www)s"; pool = "web"; }, { host = "%(rec_name)s"; pool = "rec"; } ); } );
""" % {"d": d, "pt": self.pt.addr, "web": self.web.port, "rec": self.rec.port, "pt_port": self.pt_port,
       "tls_port": self.tls_port, "http_port": self.http_port, "https_port": self.https_port,
       "hello": int(HELLO_TIMEOUT * 1000),
       "pt_name": PT_NAME, "www": WWW, "rec_name": REC}
        self.og = self.start_onegate(conf, self.pt_port)
        self.og.wait_ready(self.tls_port, 10)
        self.og.wait_ready(self.http_port, 10)
        self.og.wait_ready(self.https_port, 10)

    # ---------------------------------------------------------------- helpers

    def forwarded(self):
        """Connections every back end has accepted so far."""
        return {"pt": len(self.pt.seen()), "web": self.web.connections, "rec": len(self.rec.snapshot())}

    def assert_still_serving(self):
        # Through "https": on the 0.5 s hello_timeout services curl's handshake, slowed on a
        # loaded machine, was closed as it went and curl failed ("Broken pipe").
        self.assertIsNone(self.og.proc.poll(), "onegate exited:\n" + self.og.stderr()[-3000:])
        rc, body, err = curl(PT_NAME, self.https_port, PKI.ca)
        self.assertEqual(rc, 0, err + self.og.stderr()[-3000:])
        self.assertIn("backend=pt sni=%s" % PT_NAME, body)
        rc, body, err = curl(WWW, self.https_port, PKI.ca)
        self.assertEqual(rc, 0, err + self.og.stderr()[-3000:])
        self.assertIn('"backend": "web"', body)
        reply, _, _ = self.exchange(self.http_port, None, b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                   % WWW.encode())
        self.assertIn(b'"backend": "web"', reply)

    def run_hellos(self, cases):
        """Every case on both services, held open and half-closed, 128 connections at a time.
        Returns a summary: connections, what came back per service, the gateway's outcomes and
        the slowest close."""
        services = (("passthrough", self.pt_port), ("terminating", self.tls_port))
        jobs = [(what, pieces, kind, svc, port, half)
                for what, pieces, kind in cases for svc, port in services for half in (False, True)]
        before = self.forwarded()
        self.mark_log(self.og)
        failures, seen, labels, slowest = [], collections.Counter(), {}, 0.0
        with concurrent.futures.ThreadPoolExecutor(max_workers=128) as ex:
            futures = {ex.submit(probe, port, pieces, half): (what, kind, svc, half)
                       for what, pieces, kind, svc, port, half in jobs}
            for fut in concurrent.futures.as_completed(futures):
                what, kind, svc, half = futures[fut]
                data, how, elapsed, client = fut.result()
                label = "%s, %s, %s" % (what, svc, "half-closed" if half else "held open")
                labels[client] = label
                slowest = max(slowest, elapsed)
                answer = "nothing" if not data else "alert" if only_alerts(data) else "handshake"
                seen["%s %s then %s" % (svc, answer, how)] += 1
                if how is None:
                    failures.append("%s: still open %.1f s after the last byte" % (label, elapsed))
                elif kind == "broken" and answer == "handshake":
                    failures.append("%s: answered %r" % (label, data[:16]))
                elif kind == "unrouted" and svc == "passthrough" and data not in UNRECOGNIZED_NAME:
                    failures.append("%s: expected the unrecognized_name alert, got %r" % (label, data[:16]))
        # Anything forwarded would have been accepted by now: every client saw its connection end.
        time.sleep(0.2)
        failures += ["%s: forwarded (%s)" % (labels.get(f.get("client"), f.get("client")), f["_line"])
                     for f in self.og.conn_logs(self.log_mark) if f.get("pool", "-") != "-"]
        if self.forwarded() != before:
            failures.append("back ends accepted %s connections, %s before" % (self.forwarded(), before))
        self.assertEqual(failures, [], "\n".join(sorted(failures)[:40]))
        outcomes = collections.Counter(f.get("outcome") for f in self.og.conn_logs(self.log_mark)
                                       if f.get("client") in labels)
        return "%d connections; %s; gateway outcomes: %s; slowest close %.2f s after the last byte " \
               "(hello_timeout %.1f s); none forwarded" % (
                   len(jobs), ", ".join("%s: %d" % kv for kv in sorted(seen.items())),
                   ", ".join("%s %d" % kv for kv in sorted(outcomes.items())), slowest, HELLO_TIMEOUT)

    # ---------------------------------------------------------------- ClientHellos

    def test_the_control_hello_is_forwarded(self):
        # The cases below break one field of these hellos; untouched, each reaches its back end.
        for name, raw in CAPTURED.items():
            h = Hello(raw)
            self.assertEqual(h.record(h.message()), raw, "rebuilding the %s hello changed it" % name)
            self.assertIn(PT_NAME.encode(), raw)
            n = len(self.pt.seen())
            # A client port may repeat from one hello to the next: only this one's lines count.
            self.mark_log(self.og)
            data, how, _, client = probe(self.pt_port, [raw], True)
            self.assertTrue(data.startswith(b"\x16\x03"), (name, data[:16]))
            self.assertTrue(wait_until(lambda: len(self.pt.seen()) == n + 1, 5), name)
            self.assertLogged(self.og, lambda f: f.get("client") == client and f.get("pool") == "pt"
                              and f.get("sni") == PT_NAME, "the %s hello routed to pool pt" % name)

    def test_a_handshake_left_unfinished_is_closed_at_hello_timeout(self):
        # A whole ClientHello, answered, then nothing more: the terminating service closes the
        # connection once hello_timeout has passed and says the handshake never finished.
        for name, raw in CAPTURED.items():
            self.mark_log(self.og)
            data, how, elapsed, client = probe(self.tls_port, [raw], False)
            self.assertTrue(data.startswith(b"\x16\x03"), (name, data[:16]))
            self.assertEqual(how, "eof", name)
            self.assertLess(elapsed, HELLO_TIMEOUT + SLACK, name)
            line = self.assertLogged(self.og, lambda f: f.get("client") == client and " conn " in f["_line"],
                                     "the connection line of the %s hello" % name)[0]
            self.assertEqual(line.get("outcome"), "handshake-timeout", (name, line["_line"]))
            self.assertEqual(line.get("requests"), "0", line["_line"])

    def test_malformed_hellos_and_the_fuzz_corpus(self):
        cases = corpus_cases()
        for what, pieces, kind in cases:
            self.assertNotIn(PT_NAME.encode(), b"".join(pieces).lower(), what)
        for name, raw in CAPTURED.items():
            cases += [("%s (%s hello)" % (what, name), [data], kind)
                      for what, data, kind in handmade_cases(Hello(raw))]
        summary = self.run_hellos(cases)
        self.assert_still_serving()
        report("malformed ClientHellos", "%d cases (%d fuzz corpus replays, %d hand-made from the s_client and "
               "curl hellos) x passthrough/terminating x held open/half-closed: %s; good requests served after"
               % (len(cases), len(corpus_cases()), len(cases) - len(corpus_cases()), summary))

    def test_every_truncation_of_real_hellos(self):
        cases = []
        for name, raw in CAPTURED.items():
            cases += [("%s hello cut at %d of %d bytes" % (name, n, len(raw)), [raw[:n]], "broken")
                      for n in range(len(raw))]
        summary = self.run_hellos(cases)
        self.assert_still_serving()
        report("truncated ClientHellos", "%d cuts (%s) x passthrough/terminating x held open/half-closed: %s; "
               "good requests served after"
               % (len(cases), ", ".join("%s %d bytes" % (n, len(r)) for n, r in CAPTURED.items()), summary))

    # ---------------------------------------------------------------- HTTP heads

    def exchange(self, port, tls, data, timeout=10, then=b"", wait=None):
        """One connection: data sent (then, once wait() returns, the bytes of then), and read
        until the gateway closes. (reply, "eof" | "reset" | None, the client's "ip:port")."""
        raw = socket.create_connection((LOOP4, port), timeout=timeout)
        client = "%s:%d" % raw.getsockname()[:2]
        s = client_context(PKI.ca).wrap_socket(raw, server_hostname=tls) if tls else raw
        out, how = b"", None
        try:
            try:
                s.sendall(data)
                if then:
                    wait()
                    s.sendall(then)
            except OSError:
                pass    # the gateway answered and closed before it had it all
            while True:
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:
                    how = "reset"
                    break
                if not d:
                    how = "eof"
                    break
                out += d
        finally:
            s.close()
        return out, how, client

    def transports(self):
        return (("plain", self.http_port, None), ("TLS", self.https_port, WWW))

    def test_oversize_heads(self):
        limit = 32 * 1024       # HTTP_HEAD_MAX in gateway/http/session.h, the final CRLF included
        start = b"GET /o HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % WWW.encode()

        def head_of(size):
            """A head of exactly size bytes, padded with header lines of at most 1000 bytes."""
            lines, left = [], size - len(start) - 2
            while left > 0:
                # Past 1000, leave room for the shortest line, "X-Pad-NNN: \r\n" (13 bytes).
                n = left if left <= 1000 else min(1000, left - 13)
                lines.append(b"X-Pad-%03d: " % len(lines) + b"a" * (n - 13) + b"\r\n")
                left -= n
            return start + b"".join(lines) + b"\r\n"

        def fields(n):
            return start + b"".join(b"X-F-%05d: v\r\n" % i for i in range(n - 2)) + b"\r\n"

        target_at_limit = start.replace(b"/o", b"/" + b"t" * (limit - len(start) - 1), 1) + b"\r\n"
        self.assertEqual([len(head_of(limit)), len(head_of(limit + 1)), len(target_at_limit)],
                         [limit, limit + 1, limit])
        cases = [
            ("a head of exactly the limit, %d bytes" % limit, head_of(limit), 200),
            ("a head of the limit plus one byte", head_of(limit + 1), 431),
            ("one header line of 64 KiB", start + b"X-Big: " + b"a" * 65536 + b"\r\n\r\n", 431),
            ("a header name of 40,000 bytes", start + b"X" * 40000 + b": v\r\n\r\n", 431),
            ("100 header fields, the most a head may have", fields(100), 200),
            ("101 header fields", fields(101), 431),
            ("1,000 header fields", fields(1000), 431),
            ("5,000 header fields, past the byte limit too", fields(5000), 431),
            ("a request target that fills the head to the limit", target_at_limit, 200),
            ("a request target of 64 KiB", start.replace(b"/o", b"/" + b"t" * 65536, 1) + b"\r\n", 431),
        ]
        for transport, port, tls in self.transports():
            for what, data, status in cases:
                n = len(self.web.requests)
                reply, how, _ = self.exchange(port, tls, data)
                label = "%s (%s)" % (what, transport)
                self.assertTrue(reply.startswith(b"HTTP/1.1 %d " % status), (label, reply[:120], how))
                self.assertEqual(how, "eof", label)
                if status == 200:
                    self.assertIn(b'"backend": "web"', reply, label)
                    self.assertEqual(len(self.web.requests), n + 1, label)
                    got = self.web.requests[-1]
                    self.assertEqual(got["target"].encode(), data.split(b" ", 2)[1], label)
                    self.assertEqual(sum(k.startswith(("X-Pad-", "X-F-")) for k, _ in got["headers"]),
                                     data.count(b"\r\nX-Pad-") + data.count(b"\r\nX-F-"), label)
                else:
                    self.assertIn(b"\r\nConnection: close\r\n", reply, label)
                    self.assertEqual(len(self.web.requests), n, "%s reached the back end" % label)
        self.assert_still_serving()
        report("oversize heads", "%d cases x plain/TLS: the limit and 100 fields served, everything past "
               "them 431 and closed, nothing past them forwarded" % len(cases))

    def test_a_client_still_sending_after_its_431_reads_it_and_is_not_reset(self):
        # The gateway answers 431 once it has 32 KiB of a head and closes its side. A client
        # still sending the head (curl writing a long header on a loaded machine) wrote into
        # a socket the gateway had closed with bytes unread: the kernel's reset failed the
        # client's next write ("Send failure: Broken pipe") before it read the answer. Now
        # the gateway reads and drops what comes until the client's end.
        head = b"GET /o HTTP/1.1\r\nHost: %s\r\nX-Big: " % WWW.encode() + b"a" * 40000
        for transport, port, tls in self.transports():
            raw = socket.create_connection((LOOP4, port), timeout=10)
            s = client_context(PKI.ca).wrap_socket(raw, server_hostname=tls) if tls else raw
            try:
                s.sendall(head)
                reply = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    reply += d
                # The answer and the gateway's end came with the head unfinished: the
                # client sends on, as one that had not looked would, then ends.
                for _ in range(8):
                    s.sendall(b"a" * 65536)
                s.shutdown(socket.SHUT_WR)
                # Closed: the gateway took the end (our FIN acknowledged), or reset.
                closed = wait_until(lambda: s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == 7, 10)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            finally:
                s.close()
            self.assertTrue(reply.startswith(b"HTTP/1.1 431 "), (transport, reply[:100]))
            self.assertTrue(closed, transport)
            self.assertEqual(err, 0, "%s: the connection was reset (%s)" % (transport, os.strerror(err)))
        self.assert_still_serving()

    # ---------------------------------------------------------------- request smuggling

    def test_smuggling_shapes_not_in_test_http(self):
        host = b"Host: %s\r\n" % REC.encode()
        smuggled = b"GET /smuggled HTTP/1.1\r\n" + host + b"\r\n"
        post = b"POST /s HTTP/1.1\r\n" + host
        chunked = post + b"Transfer-Encoding: chunked\r\n\r\n"
        # Refused on the head: nothing of these may reach the back end.
        on_head = [
            ("Transfer-Encoding before Content-Length",
             post + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400),
            ("chunked after another coding", post + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled,
             501),
            ("chunked twice", post + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + smuggled, 501),
            ("chunked, then identity on a second Transfer-Encoding line",
             post + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n"
             b"0\r\n\r\n" + smuggled, 400),
            ("Transfer-Encoding: xchunked", post + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, 400),
            ("whitespace before the colon of Transfer-Encoding",
             post + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400),
            ("a vertical tab before chunked",
             post + b"Transfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400),
            ("the same Content-Length twice", post + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled,
             400),
            ("Content-Length as a list", post + b"Content-Length: 5, 5\r\n\r\nhello" + smuggled, 400),
            ("Content-Length with a plus sign", post + b"Content-Length: +5\r\n\r\nhello" + smuggled, 400),
            ("Content-Length in hex", post + b"Content-Length: 0x5\r\n\r\nhello" + smuggled, 400),
            ("Content-Length of 20 digits", post + b"Content-Length: 18446744073709551621\r\n\r\nhello" + smuggled,
             400),
            ("a bare CR inside a header value",
             b"GET /s HTTP/1.1\r\n" + host + b"X-A: a\rContent-Length: 5\r\n\r\nhello" + smuggled, 400),
            ("a NUL byte in a header value", b"GET /s HTTP/1.1\r\n" + host + b"X-A: a\x00b\r\n\r\n" + smuggled, 400),
            ("one header line ending in a bare LF",
             b"GET /s HTTP/1.1\r\n" + host + b"X-A: a\nContent-Length: 5\r\n\r\nhello" + smuggled, 400),
            ("two spaces in the request line", b"GET  /s HTTP/1.1\r\n" + host + b"\r\n" + smuggled, 400),
            ("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + smuggled, 505),
        ]
        # The head is good and goes to the back end; the body's framing is not, and nothing from
        # the bad chunk on may follow it there.
        in_body = [
            ("a chunk size of 17 hex digits that wraps to 5 in 64 bits",
             chunked + b"10000000000000005\r\nhello\r\n0\r\n\r\n" + smuggled, 400),
            ("a chunk size with a 0x prefix", chunked + b"0x5\r\nhello\r\n0\r\n\r\n" + smuggled, 400),
            ("a negative chunk size", chunked + b"-5\r\nhello\r\n0\r\n\r\n" + smuggled, 400),
            ("a space after the chunk size", chunked + b"5 \r\nhello\r\n0\r\n\r\n" + smuggled, 400),
            ("a chunk size line ending in a bare LF", chunked + b"5\nhello\r\n0\r\n\r\n" + smuggled, 400),
            ("chunk data longer than its size", chunked + b"3\r\nhello\r\n0\r\n\r\n" + smuggled, 400),
            ("a bare LF in the trailer", chunked + b"0\r\nX-T: a\n\r\n" + smuggled, 400),
        ]
        picked = 0      # requests the gateway sent to a server: a good head, then a bad chunk
        cases = [(False, c) for c in on_head] + [(True, c) for c in in_body]
        for transport, port, tls in self.transports():
            for bad_body, (what, data, status) in cases:
                label = "%s (%s)" % (what, transport)
                # Client ports are picked at random and may repeat across cases: this case's
                # access line is looked for only among the lines written from here on.
                self.mark_log(self.og)
                if not bad_body:
                    reply, how, client = self.exchange(port, tls, data)
                else:
                    # The body follows once the head is at the back end, so the bad chunk is read
                    # on a request already under way there.
                    n = len(self.rec.snapshot())

                    def head_arrived():
                        self.assertTrue(wait_until(lambda: len(self.rec.snapshot()) > n and
                                                   self.rec.snapshot()[n][0].endswith(b"\r\n\r\n"), 5), label)
                    reply, how, client = self.exchange(port, tls, data[:len(chunked)], then=data[len(chunked):],
                                                       wait=head_arrived)
                self.assertTrue(reply.startswith(b"HTTP/1.1 %d " % status), (label, reply[:120], how))
                self.assertIn(b"\r\nConnection: close\r\n", reply, label)
                self.assertEqual(reply.count(b"HTTP/1.1 "), 1, (label, reply))
                self.assertEqual(how, "eof", label)
                line = self.assertLogged(self.og, lambda f: f.get("client") == client and " http " in f["_line"],
                                         "the access line of " + label)[0]
                if bad_body:
                    self.assertNotEqual(line.get("server"), "-", label)
                    picked += 1
                else:
                    self.assertEqual(line.get("server"), "-", "%s went to a server: %s" % (label, line["_line"]))
        # The recorder accepts at its own pace: wait for every connection the gateway made to it.
        wait_until(lambda: len(self.rec.snapshot()) >= picked and all(c for _, c in self.rec.snapshot()), 5)
        got = self.rec.snapshot()
        self.assertEqual(len(got), picked, "the back end saw connections the gateway did not log")
        for data, closed in got:
            self.assertTrue(closed, "the gateway kept a back-end connection after a bad body")
            self.assertTrue(data.startswith(b"POST /s HTTP/1.1\r\n"), data[:60])
            self.assertEqual(data.count(b" HTTP/1.1\r\n"), 1, data)
            self.assertNotIn(b"smuggled", data)
        self.assert_still_serving()
        report("request smuggling", "%d shapes refused on the head and %d in a chunked body x plain/TLS: each "
               "answered with its status and closed; nothing of the refused heads, and nothing past a bad "
               "chunk, reached the back end (%d back-end connections, %d bytes, no second request)"
               % (len(on_head), len(in_body), len(got), sum(len(d) for d, _ in got)))


if __name__ == "__main__":
    unittest.main()
