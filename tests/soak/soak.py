#!/usr/bin/env python3
"""
soak.py - mixed traffic through one gateway for a set time, all on loopback, proving
nothing is lost: every body carries a checksum the far end verifies.

Kinds: HTTPS keep-alive and new connections, plain HTTP, SNI passthrough (TLS echo),
uploads and downloads with Content-Length and chunked, Upgrade echo tunnels, slow
readers, slow writers, long polls, clients that half-close. Meanwhile: SIGHUP every
RELOAD_S (two rule files alternating), a back end killed and restarted every KILL_S,
one drained and enabled through the admin API, and a burst of BURST new connections.
At the end: a table of requests and bytes per kind, failures by cause, and whether each
was allowed (the request was in flight on a server when it was killed: the back end
records which ones it read; one it never read is matched to the killed server through
the gateway's access line, which names the request in its path, when it is a request
the gateway never sends twice) or a defect (anything else, a request begun after the
drain that went to the drained server, a kind that never completed, a request still in
flight 30 s after the load stopped).
Exits 1 on a defect, or when the gateway's RSS (with --heap: after malloc_trim, at both
ends) or descriptor count grew more than 10 % from the start.

  python3 soak.py --onegate build/gateway/onegate [--minutes 10] [--big MiB] [--results FILE]
"""
import argparse
import collections
import datetime
import faulthandler
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import LOOP4, Onegate, TLSBackend, client_context, free_port, make_pki  # noqa: E402
from httpback import pattern  # noqa: E402


def sha(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------- back end

class Life:
    """One run of a back end between start() and kill(): its listener, its connections and
    the requests whose answers it has not finished."""

    def __init__(self, n):
        self.n = n              # the how-manieth run of its back end
        self.stopping = False
        self.clients = set()
        self.inflight = set()
        self.done = threading.Event()


class SoakBackend:
    """HTTP/1.1 on loopback: POST /up answers the length and SHA-256 of the body it read
    (Content-Length or chunked); GET /down?bytes=N[&chunked=1] sends pattern(N); GET
    /poll?ms=N answers after N ms; an Upgrade echoes. Each request names itself in X-Req.

    Like a real server it closes a kept connection only between requests, after keepalive
    seconds without one (longer than the gateway keeps idle server connections, as in real
    deployments; shortened once the load is over so the gateway's descriptors settle).

    kill() is a crash: every request the server has begun and not finished is in flight and
    its failure allowed. So are those the kernel already holds for it: a head still queued
    on a connection, or a connection still waiting in the listener's backlog; both are read
    (and their X-Req recorded) before they are closed, as a dying process would have."""

    SLICE = 0.2     # how often a waiting thread looks at keepalive and at a kill

    def __init__(self, name, port=0):
        self.name, self.port = name, port
        self.lock = threading.Lock()
        self.keepalive = 75.0
        self.killed_inflight = set()
        self.held = set()       # of those, the ones found unread in a socket at its close
        self.seen = {}          # rid -> (life, connection's local port, monotonic) when its head came
        self.deaths = []        # wall clock of each kill: life n was killed at deaths[n - 1]
        self.births = []        # wall clock of each start(): life n began at births[n - 1]
        self.lives = 0
        self.start()

    def start(self):
        self.births.append(time.time())
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOP4, self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(512)
        self.sock.settimeout(self.SLICE)
        self.lives += 1
        self.life = Life(self.lives)
        threading.Thread(target=self._accept, args=(self.sock, self.life), daemon=True).start()

    def kill(self):
        life = self.life
        at = time.time()
        with self.lock:
            life.stopping = True
            self.killed_inflight |= life.inflight
            clients = list(life.clients)
        # The server says no more: the gateway gets our FIN, and a request it sent before
        # seeing it still arrives, is read by its thread and counted in flight.
        for c in clients:
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        life.done.wait(10)      # the listener is closed: start() may bind again
        self.deaths.append(at)

    def _accept(self, lsock, life):
        while not life.stopping:
            try:
                c, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self._spawn(c, life)
        # What the kernel accepted for us is taken in, then the listener goes: a connection
        # in its backlog at close would be reset with its request unrecorded. For 2 s at
        # most: the gateway keeps connecting (its retries), and a listener that never
        # closed kept start() from binding again.
        lsock.setblocking(False)
        until = time.monotonic() + 2
        while time.monotonic() < until:
            try:
                c, _ = lsock.accept()
            except OSError:
                break
            self._spawn(c, life)
        lsock.close()
        life.done.set()

    def _spawn(self, c, life):
        c.setblocking(True)
        c.settimeout(self.SLICE)
        with self.lock:
            life.clients.add(c)
            if life.stopping:
                try:
                    c.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        threading.Thread(target=self._serve, args=(c, life), daemon=True).start()

    def _recv(self, c, life, n, idle_close=False):
        """Bytes from c; b"" at its end. Between requests (idle_close) it ends after
        keepalive seconds of nothing; a killed life ends it after a grace for the
        requests the gateway sent before it saw the FIN."""
        quiet = 0.0
        while True:
            try:
                return c.recv(n)
            except socket.timeout:
                quiet += self.SLICE
                if idle_close and quiet >= self.keepalive:
                    return b""
                if life.stopping and quiet >= 2.0:
                    return b""

    def _send(self, c, life, data):
        view = memoryview(data)
        while view:
            if life.stopping:
                raise OSError("killed")
            try:
                n = c.send(view)
            except socket.timeout:
                continue
            view = view[n:]

    def _until(self, c, life, buf, marker, idle_close=False):
        while marker not in buf:
            d = self._recv(c, life, 65536, idle_close and not buf)
            if not d:
                return None
            buf += d
        return buf

    def _body(self, c, life, buf, h, digest):
        if "chunked" in h.get("transfer-encoding", "").lower():
            buf = bytearray(buf)        # grown in place: a 1 MiB chunk comes in many reads
            n = 0
            while True:
                buf = self._until(c, life, buf, b"\r\n")
                if buf is None:
                    return None, 0
                line, buf = buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    buf = self._until(c, life, buf, b"\r\n")
                    return (None, 0) if buf is None else (buf.split(b"\r\n", 1)[1], n)
                while len(buf) < size + 2:
                    d = self._recv(c, life, 1 << 20)
                    if not d:
                        return None, 0
                    buf += d
                digest.update(memoryview(buf)[:size])
                n += size
                del buf[:size + 2]
        left = int(h.get("content-length", "0"))
        n = left
        while left:
            if not buf:
                buf = self._recv(c, life, min(1 << 20, left))
                if not buf:
                    return None, 0
            take = buf[:left]
            digest.update(take)
            left -= len(take)
            buf = buf[len(take):]
        return buf, n

    def _serve(self, c, life):
        buf = b""
        try:
            while True:
                buf = self._until(c, life, buf, b"\r\n\r\n", idle_close=True)
                if buf is None:
                    return
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                h = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
                rid = h.get("x-req")
                with self.lock:
                    self.seen[rid] = (life.n, c.getpeername()[1], time.monotonic())
                    life.inflight.add(rid)
                    if life.stopping:
                        self.killed_inflight.add(rid)
                if life.stopping:
                    while self._recv(c, life, 1 << 20):
                        pass        # read and recorded, never answered
                    return
                buf = self._answer(c, life, buf, target, h, rid)
                if buf is None:
                    return
                with self.lock:
                    life.inflight.discard(rid)
                if h.get("connection", "").lower() == "close" or h.get("upgrade"):
                    return
        except (OSError, ValueError, KeyError):
            return
        finally:
            if life.stopping:
                self._record_held(c)
            with self.lock:
                life.clients.discard(c)
            c.close()

    def _record_held(self, c):
        """A killed server's connection about to close: what the kernel still holds for it
        was sent to the server before it died, so a request in it was in flight (and the
        close would reset it unread). Its X-Req is recorded."""
        held = bytearray()
        try:
            c.setblocking(False)
            while True:
                d = c.recv(1 << 20)
                if not d:
                    break
                held += d
        except OSError:
            pass
        rids = re.findall(rb"\r\nX-Req: *([^\r]+)", held)
        if rids:
            with self.lock:
                self.held.update(r.decode("latin-1") for r in rids)
                self.killed_inflight.update(r.decode("latin-1") for r in rids)

    def _answer(self, c, life, buf, target, h, rid):
        """Answers one request: what the connection holds after it, or None when it ended."""
        if h.get("upgrade"):
            self._send(c, life, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n"
                       % h["upgrade"].encode())
            if buf:
                self._send(c, life, buf)
            while True:
                d = self._recv(c, life, 65536)
                if not d:
                    break
                self._send(c, life, d)
            c.shutdown(socket.SHUT_WR)
            return b""
        digest = hashlib.sha256()
        buf, n = self._body(c, life, buf, h, digest)
        if buf is None:
            return None
        q = dict(p.split("=", 1) for p in target.split("?", 1)[1].split("&")) if "?" in target else {}
        if target.startswith("/up"):
            body = json.dumps({"len": n, "sha": digest.hexdigest(), "backend": self.name}).encode()
            self._send(c, life, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif target.startswith("/down"):
            size = int(q["bytes"])
            chunked = q.get("chunked") == "1"
            self._send(c, life, b"HTTP/1.1 200 OK\r\n%s\r\n" % (b"Transfer-Encoding: chunked\r\n" if chunked
                                                                 else b"Content-Length: %d\r\n" % size))
            for off in range(0, size, 1 << 20):
                part = pattern(min(1 << 20, size - off), off)
                self._send(c, life, b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            if chunked:
                self._send(c, life, b"0\r\n\r\n")
        else:
            if target.startswith("/poll"):
                time.sleep(int(q["ms"]) / 1000.0)
            body = json.dumps({"req": rid, "backend": self.name}).encode()
            self._send(c, life, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return buf


# --------------------------------------------------------------- client side

class Failed(Exception):
    pass


class Conn:
    """One client connection, plain or TLS, with a small reader for HTTP/1.1 answers."""

    def __init__(self, port, tls, ca, rcvbuf=None, timeout=30):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((LOOP4, port))
        self.raw = s
        self.s = client_context(ca).wrap_socket(s, server_hostname="app.soak.test") if tls else s
        # Grown in place: as bytes, every read copied the whole body so far (100 MiB in reads
        # of one TLS record, 16 KiB: minutes of copying under the GIL, which starved every
        # other thread of the run, back ends included, and kept it going long past its end).
        self.buf = bytearray()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def _more(self, pace=None):
        d = self.s.recv(pace or 65536)
        if not d:
            raise Failed("closed")
        self.buf += d

    def answer(self, head_request=False, pace=None):
        """(status, headers, body) of one answer; pace: bytes a read (a slow reader)."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        h = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        body = bytearray()
        if "content-length" in h:
            n = int(h["content-length"])
            while len(self.buf) < n:
                self._more(pace)
                if pace:
                    time.sleep(0.001)
            body = self.buf[:n]
            del self.buf[:n]
        elif "chunked" in h.get("transfer-encoding", ""):
            while True:
                while b"\r\n" not in self.buf:
                    self._more()
                line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._more()
                if size == 0:
                    del self.buf[:2]
                    break
                body += self.buf[:size]
                del self.buf[:size + 2]
        return status, h, bytes(body)


class Soak:
    def __init__(self, args):
        self.args = args
        self.big = args.big << 20
        self.big_sha = sha(pattern(self.big))
        self.tmp = tempfile.TemporaryDirectory(prefix="onegate-soak-")
        self.pki = make_pki(self.tmp.name, {"app": ["*.soak.test"], "pass": ["pass.soak.test"]})
        self.backs = [SoakBackend("b%d" % i) for i in range(3)]
        self.echo = TLSBackend("echo", *self.pki.certs["pass"], mode="echo")
        self.echo.start()
        self.port, self.plain, self.passp, self.adminp = free_port(), free_port(), free_port(), free_port()
        self.stats = collections.defaultdict(lambda: [0, 0])      # kind -> [requests, bytes]
        self.failures = collections.Counter()                     # (kind, cause, allowed) -> n
        self.failed_ids = []                                      # (kind, rid, cause)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.seq = 0
        self.busy = {}          # thread ident -> (kind, rid, monotonic start) of its request
        self.kill_times, self.notes = [], []
        self.deadline = None    # (monotonic, what): the watchdog's
        self.conf_path = os.path.join(self.tmp.name, "onegate.conf")
        self.write_conf(0)
        self.og = Onegate(open(self.conf_path).read(), workdir=self.tmp.name, wait_port=self.port)
        self.og.start()
        self.og.wait_ready(self.plain, 10)
        self.og.wait_ready(self.passp, 10)

    def write_conf(self, n):
        d = self.tmp.name
        servers = ", ".join('"127.0.0.1:%d"' % b.port for b in self.backs)
        # The two files differ in a route and a timeout: a reload swaps real work.
        extra = '{ host = "other.soak.test"; status = 404; },' if n % 2 else ""
        text = """onegate = { workers = 2; drain_timeout = "20s"; send_timeout = "10s";
            admin = { listen = "127.0.0.1:%(admin)d"; }; };
certificates = ( { name = "app"; cert = "%(d)s/app.chain.pem"; key = "%(d)s/app.key"; ca_file = "%(d)s/root.pem"; } );
pools = ( { name = "app"; servers = ( %(servers)s ); idle_timeout = "60s";
            health = { type = "tcp"; interval = "500ms"; timeout = "400ms"; rise = 1; fall = 1; }; },
          { name = "echo"; servers = ( "127.0.0.1:%(echo)d" ); } );
services = ( { name = "tls"; listen = [ "127.0.0.1:%(port)d" ]; tls = { certificates = [ "app" ]; };
               keepalive_timeout = "%(ka)ds";
               routes = ( %(extra)s { host = "app.soak.test"; pool = "app"; request_timeout = "30s"; } ); },
             { name = "plain"; listen = [ "127.0.0.1:%(plain)d" ];
               routes = ( { host = "app.soak.test"; pool = "app"; request_timeout = "30s"; } ); },
             { name = "pass"; listen = [ "127.0.0.1:%(passp)d" ];
               routes = ( { sni = "pass.soak.test"; passthrough = true; pool = "echo"; } ); } );
""" % {"d": d, "servers": servers, "echo": self.echo.port, "port": self.port, "plain": self.plain,
       "passp": self.passp, "admin": self.adminp, "extra": extra, "ka": 30 + n % 2}
        tmp = self.conf_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.conf_path)

    def rid(self, kind):
        with self.lock:
            self.seq += 1
            return "%s-%d" % (kind, self.seq)

    def count(self, kind, nbytes):
        with self.lock:
            self.stats[kind][0] += 1
            self.stats[kind][1] += nbytes

    def fail(self, kind, rid, cause):
        with self.lock:
            self.failed_ids.append((kind, rid, cause, time.monotonic()))

    # Each kind: one request (or exchange); raises Failed (or OSError) with the cause.
    def one(self, kind, conn_cache):
        rid = self.rid(kind)
        me = threading.get_ident()
        self.busy[me] = (kind, rid, time.monotonic())
        try:
            n = getattr(self, "k_" + kind)(rid, conn_cache)
            self.count(kind, n)
        except (Failed, OSError, ValueError, ssl.SSLError) as e:
            conn_cache.pop(kind, None)
            self.fail(kind, rid, type(e).__name__ + (": %s" % e if isinstance(e, Failed) else ""))
        finally:
            self.busy.pop(me, None)

    def request(self, c, rid, method, path, body=b"", chunked=False, close=False, pace=None, slow_write=False):
        # The request names itself in its path too: the gateway's access line then says
        # which server it went to and how it ended.
        path += "%srid=%s" % ("&" if "?" in path else "?", rid)
        hdr = "%s %s HTTP/1.1\r\nHost: app.soak.test\r\nX-Req: %s\r\n" % (method, path, rid)
        if chunked:
            hdr += "Transfer-Encoding: chunked\r\n"
        elif body or method == "POST":
            hdr += "Content-Length: %d\r\n" % len(body)
        if close:
            hdr += "Connection: close\r\n"
        c.s.sendall(hdr.encode() + b"\r\n")
        step = 1 << 20
        for off in range(0, len(body), step):
            part = body[off:off + step]
            c.s.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            if slow_write:
                time.sleep(0.01)
        if chunked:
            c.s.sendall(b"0\r\n\r\n")
        st, h, b = c.answer(pace=pace)
        if st != 200:
            raise Failed("status %d" % st)
        return h, b

    def kept(self, cache, kind, tls):
        c = cache.get(kind)
        if c is None:
            c = cache[kind] = Conn(self.port if tls else self.plain, tls, self.pki.ca)
        return c

    def check_small(self, b, rid):
        if json.loads(b)["req"] != rid:
            raise Failed("wrong answer")
        return len(b)

    def k_https_keepalive(self, rid, cache):
        _, b = self.request(self.kept(cache, "https_keepalive", True), rid, "GET", "/g")
        return self.check_small(b, rid)

    def k_https_new(self, rid, cache):
        c = Conn(self.port, True, self.pki.ca)
        try:
            _, b = self.request(c, rid, "GET", "/g", close=True)
            return self.check_small(b, rid)
        finally:
            c.close()

    def k_plain(self, rid, cache):
        _, b = self.request(self.kept(cache, "plain", False), rid, "GET", "/g")
        return self.check_small(b, rid)

    def k_long_poll(self, rid, cache):
        _, b = self.request(self.kept(cache, "long_poll", True), rid, "GET", "/poll?ms=2000")
        return self.check_small(b, rid)

    def upload(self, rid, chunked, slow=False):
        body = os.urandom(1 << 20) * (self.big >> 20)
        c = Conn(self.port, True, self.pki.ca)
        try:
            _, b = self.request(c, rid, "POST", "/up", body, chunked=chunked, close=True, slow_write=slow)
        finally:
            c.close()
        got = json.loads(b)
        if (got["len"], got["sha"]) != (len(body), sha(body)):
            raise Failed("upload checksum")
        return len(body)

    def k_upload_length(self, rid, cache):
        return self.upload(rid, False)

    def k_upload_chunked(self, rid, cache):
        return self.upload(rid, True)

    def k_slow_writer(self, rid, cache):
        return self.upload(rid, False, slow=True)

    def download(self, rid, chunked, tls=True, pace=None):
        c = Conn(self.port if tls else self.plain, tls, self.pki.ca, rcvbuf=16384 if pace else None)
        try:
            _, b = self.request(c, rid, "GET", "/down?bytes=%d&chunked=%d" % (self.big, chunked), close=True,
                                pace=pace)
        finally:
            c.close()
        if len(b) != self.big or sha(b) != self.big_sha:
            raise Failed("download cut or changed (%d of %d)" % (len(b), self.big))
        return len(b)

    def k_download_length(self, rid, cache):
        return self.download(rid, 0)

    def k_download_chunked(self, rid, cache):
        return self.download(rid, 1, tls=False)

    def k_slow_reader(self, rid, cache):
        return self.download(rid, 0, pace=16384)

    def k_half_close(self, rid, cache):
        c = Conn(self.plain, False, self.pki.ca)
        try:
            c.s.sendall(b"GET /g?rid=%s HTTP/1.1\r\nHost: app.soak.test\r\nX-Req: %s\r\n\r\n" % (rid.encode(), rid.encode()))
            c.s.shutdown(socket.SHUT_WR)
            st, _, b = c.answer()
            if st != 200:
                raise Failed("status %d" % st)
            return self.check_small(b, rid)
        finally:
            c.close()

    def k_websocket(self, rid, cache):
        c = Conn(self.port, True, self.pki.ca)
        try:
            c.s.sendall(b"GET /ws?rid=%s HTTP/1.1\r\nHost: app.soak.test\r\nX-Req: %s\r\nConnection: Upgrade\r\n"
                        b"Upgrade: websocket\r\n\r\n" % (rid.encode(), rid.encode()))
            while b"\r\n\r\n" not in c.buf:
                c._more()
            head, c.buf = c.buf.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 101"):
                raise Failed("no 101")
            msg = os.urandom(256 << 10)
            c.s.sendall(msg)
            while len(c.buf) < len(msg):
                c._more()
            if c.buf[:len(msg)] != msg:
                raise Failed("echo changed")
            return 2 * len(msg)
        finally:
            c.close()

    def k_passthrough(self, rid, cache):
        raw = socket.create_connection((LOOP4, self.passp), timeout=30)
        s = client_context(self.pki.ca).wrap_socket(raw, server_hostname="pass.soak.test")
        try:
            msg = os.urandom(512 << 10)
            s.sendall(msg)
            got = bytearray()
            while len(got) < len(msg):
                d = s.recv(65536)
                if not d:
                    break
                got += d
            if bytes(got) != msg:
                raise Failed("passthrough echo cut or changed")
            return 2 * len(msg)
        finally:
            s.close()

    KINDS = {"https_keepalive": 4, "https_new": 2, "plain": 2, "long_poll": 1, "upload_length": 1,
             "upload_chunked": 1, "slow_writer": 1, "download_length": 1, "download_chunked": 1,
             "slow_reader": 1, "half_close": 1, "websocket": 1, "passthrough": 1}

    def client(self, kind):
        cache = {}
        while not self.stop.is_set():
            self.one(kind, cache)
        for c in cache.values():
            c.close()

    def burst(self, n):
        def worker(k):
            for _ in range(k):
                self.one("burst", {})
        ts = [threading.Thread(target=worker, args=(n // 50,), name="burst", daemon=True) for _ in range(50)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def k_burst(self, rid, cache):
        c = Conn(self.plain, False, self.pki.ca)
        try:
            _, b = self.request(c, rid, "GET", "/g", close=True)
            return self.check_small(b, rid)
        finally:
            c.close()

    def proc_numbers(self):
        pid = self.og.proc.pid
        with open("/proc/%d/status" % pid) as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return rss, len(os.listdir("/proc/%d/fd" % pid))

    def mappings(self):
        """The gateway's memory by mapping, from /proc/PID/smaps: {start: [name, RSS KiB]}. An
        anonymous mapping is named after what it holds: a thread's stack (the thread's stack
        pointer is in it), a thread's malloc arena (glibc aligns those to 64 MiB), or anon."""
        pid = self.og.proc.pid
        sps = {}
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                    sp = int(f.read().split()[-2], 16)
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    sps[sp] = f.read().strip()
            except (OSError, ValueError, IndexError):
                pass        # a thread that ended, or one in no system call
        out, cur = {}, None
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                m = re.match(r"([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)", line)
                if m:
                    lo, hi = int(m.group(1), 16), int(m.group(2), 16)
                    name = m.group(3) or next(("stack of %s" % t for sp, t in sps.items() if lo <= sp < hi),
                                              "malloc arena" if lo % (64 << 20) == 0 else "anon")
                    cur = out[lo] = [os.path.basename(name) if name.startswith("/") else name, 0]
                elif line.startswith("Rss:"):
                    cur[1] = int(line.split()[1])
        return out

    def rss_parts(self):
        """RSS as anonymous memory (the heap, stacks) and file pages (the binary and its
        libraries, paged in as code runs for the first time): KiB each."""
        with open("/proc/%d/status" % self.og.proc.pid) as f:
            kv = dict(l.split(":", 1) for l in f)
        return int(kv["RssAnon"].split()[0]), int(kv["RssFile"].split()[0])

    def heap_numbers(self):
        """At a quiet moment, with --heap: the gateway's malloc heap (all arenas and mmap),
        in use and held from the system, from glibc's malloc_stats() called in it through
        gdb; then malloc_trim(0) gives back what is free, and RSS is read again. Returns
        (in use, held, RSS after the trim, its anonymous part, its file pages) in KiB, or
        None (no --heap, no gdb). RSS
        alone cannot tell a leak (in use grows) from what the allocator keeps after a peak
        (held grows, in use does not)."""
        if not self.args.heap:
            return None
        try:
            subprocess.run(["gdb", "-p", str(self.og.proc.pid), "-batch", "-ex", "call (void)malloc_stats()",
                            "-ex", "call (int)malloc_trim(0)"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = self.og.stderr()
        m = re.match(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)",
                     text[text.rfind("Total (incl. mmap):"):])
        if not m:
            return None
        return (int(m.group(2)) >> 10, int(m.group(1)) >> 10, self.proc_numbers()[0]) + self.rss_parts()

    def load(self):
        self.stop.clear()
        threads = [threading.Thread(target=self.client, args=(k,), name=k, daemon=True)
                   for k, n in self.KINDS.items() for _ in range(n)]
        for t in threads:
            t.start()
        return threads

    GRACE_S = 30        # how long the requests in flight at the end may take to finish

    def unload(self, threads):
        """Stops the load; each thread ends its request in flight. One still in it after
        GRACE_S (a 100 MiB body takes seconds) is named with its stack and counted a defect:
        the run's end is bounded, never a wait on a request that hung."""
        self.stop.set()
        t0 = time.monotonic()
        for t in threads:
            t.join(max(0.0, t0 + self.GRACE_S - time.monotonic()))
        frames = sys._current_frames()
        for t in threads:
            if not t.is_alive():
                continue
            kind, rid, since = self.busy.get(t.ident, (t.name, "-", t0))
            print("soak: HUNG: %s thread in request %s for %.0f s, %.0f s after the load stopped:\n%s"
                  % (kind, rid, time.monotonic() - since, time.monotonic() - t0,
                     "".join(traceback.format_stack(frames.get(t.ident))) if t.ident in frames else ""))
            self.notes.append("DEFECT: %s request %s still in flight %d s after the load stopped (hung)"
                              % (kind, rid, self.GRACE_S))
        return time.monotonic() - t0

    def watch(self, seconds, what):
        """From now the run must reach its next step (or its end) within seconds: else
        every thread's stack is printed, the gateway killed and the run exits 1."""
        first = self.deadline is None
        self.deadline = (time.monotonic() + seconds, what)
        if not first:
            return

        def bite():
            while self.deadline[0] > time.monotonic():
                time.sleep(1)
            print("soak: HUNG: %s did not end in time; every thread's stack:" % self.deadline[1], flush=True)
            faulthandler.dump_traceback(sys.stdout, all_threads=True)
            sys.stdout.flush()
            self.og.proc.kill()
            os._exit(1)
        threading.Thread(target=bite, name="watchdog", daemon=True).start()

    def progress(self, text):
        """A line as the run goes (stdout is line-buffered: a run redirected to a file shows
        where it is)."""
        at = time.monotonic() - self.t0 if getattr(self, "t0", None) else 0.0
        print("soak %s +%.0f s: %s" % (time.strftime("%H:%M:%S", time.gmtime()), at, text))

    def quiet_numbers(self, than=None, within=40):
        """RSS and descriptors once the gateway is quiet. The back ends close kept
        connections after 0.5 s meanwhile (between requests, as they may), and the count is
        read until it stops falling (or, at the end, is down to than's), within seconds."""
        for b in self.backs:
            b.keepalive = 0.5
        deadline = time.monotonic() + within
        last, since = None, time.monotonic()
        while True:
            time.sleep(0.25)
            rss, fds = self.proc_numbers()
            if last is None or fds < last:
                last, since = fds, time.monotonic()
            # A worker gives back what its malloc arena kept within a beat (0.5 s, worker.c)
            # of its last connection's close: a second without a descriptor closing covers it.
            settled = (than[1] * 1.10 + 2 >= fds if than else True) and time.monotonic() - since >= (1.0 if than else 1.5)
            if settled or time.monotonic() > deadline:
                for b in self.backs:
                    b.keepalive = 75.0
                return rss, fds

    def admin(self, pool, server, action):
        c = http.client.HTTPConnection(LOOP4, self.adminp, timeout=10)
        try:
            c.request("POST", "/api/pools/%s/servers/%s/%s" % (pool, server, action))
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError("admin %s: %d %s" % (action, r.status, body[:200]))
        finally:
            c.close()

    def starts_at(self, server, since, until):
        """Requests given server between since and until (wall clock). The access line is
        written at the end: ms= after the request's head began to arrive, backend_ms= after
        the exchange with its last server began. That server was chosen between the two:
        at the head for a request sent once (a connect that took 60 ms under load must not
        count as a choice after the drain), after the attempts before it for a retried one
        (a long poll that began during the drain, lost its server to a kill after the
        enable and was retried on the enabled server is right). So a request counts only
        when both ends of that span lie inside the window. The line's time, ms= and
        backend_ms= are cut to the millisecond, so each end must be 2 ms inside: one that
        began within a millisecond of the enable may have come after it."""
        out = []
        for line in self.og.stderr().splitlines():
            m = re.match(r"(\S+)Z info http .* server=%s\b.*? backend_ms=(\d+) ms=(\d+) " % re.escape(server), line)
            if m:
                end = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                began, exchange = end - int(m.group(3)) / 1000.0, end - int(m.group(2)) / 1000.0
                if since + 0.002 <= began and exchange < until - 0.002:
                    out.append(line)
        return out

    def run(self):
        a = self.args
        self.wall0 = time.time()
        start_load = " ".join(open("/proc/loadavg").read().split()[:3])
        # A warm-up under the same load first, a burst and a reload included: the numbers
        # the end is compared with are those of a quiet gateway that has already had every
        # kind at once (glibc keeps what a peak took; that is not a leak).
        warm_s = min(60.0, max(2.0, a.minutes * 6))
        self.watch(warm_s + 300, "the warm-up")
        self.progress("warm-up: every kind once, then all at once for %.0f s with a burst, a reload, "
                      "a kill and a drain" % warm_s)
        self.unload(self.load())
        warm = time.monotonic() + warm_s
        threads = self.load()
        self.burst(a.burst)
        self.write_conf(1)
        self.og.signal(signal.SIGHUP)
        # Every event once too: the code and buffers they use are in the start's numbers.
        self.backs[1].kill()
        time.sleep(1)
        self.backs[1].start()
        self.admin("app", "127.0.0.1:%d" % self.backs[0].port, "drain")
        time.sleep(1)
        self.admin("app", "127.0.0.1:%d" % self.backs[0].port, "enable")
        while time.monotonic() < warm:
            time.sleep(0.2)
        self.unload(threads)
        self.stats.clear()
        self.failed_ids.clear()
        start_rss, start_fds = self.quiet_numbers()
        self.maps = [self.mappings()]
        self.heap = [self.heap_numbers()]
        length = a.minutes * 60
        self.t0 = time.monotonic()
        self.watch(length + 120, "the load")
        self.progress("start: gateway RSS %d KiB, %d descriptors; %.1f minutes of load"
                      % (start_rss, start_fds, a.minutes))
        end = self.t0 + length
        # What happens when, in seconds from the start: reloads, kills (each back end in
        # turn, never the drained one), the drain and enable of back end 0, the burst.
        events = [(r * a.reload_s, "reload") for r in range(1, int(length / a.reload_s) + 1)]
        events += [(k * a.kill_s, "kill") for k in range(1, int(length / a.kill_s) + 1)]
        drain_at = 0.2 * length
        drain_s = min(30.0, 0.2 * length)
        events += [(drain_at, "drain"), (drain_at + drain_s, "enable"), (0.5 * length, "burst")]
        events = sorted(e for e in events if e[0] < length)
        reloads = kills = 0
        burst = drained = enabled = None
        threads = self.load()
        for at, what in events:
            time.sleep(max(0.0, self.t0 + at - time.monotonic()))
            if what == "reload":
                reloads += 1
                self.write_conf(reloads)
                self.og.signal(signal.SIGHUP)
            elif what == "kill":
                kills += 1
                b = self.backs[1 + kills % 2]
                self.kill_times.append(time.monotonic() - self.t0)
                b.kill()
                time.sleep(1)
                b.start()
                with self.lock:
                    done, failed = sum(n for n, _ in self.stats.values()), len(self.failed_ids)
                self.progress("back end %s killed and started again; %d requests done, %d failed; "
                              "gateway RSS %d KiB, %d descriptors" % ((b.name, done, failed) + self.proc_numbers()))
            elif what == "drain":
                self.admin("app", "127.0.0.1:%d" % self.backs[0].port, "drain")
                drained = time.time()
            elif what == "enable":
                enabled = time.time()
                self.admin("app", "127.0.0.1:%d" % self.backs[0].port, "enable")
            elif what == "burst":
                burst = threading.Thread(target=self.burst, args=(a.burst,), name="burst", daemon=True)
                burst.start()
        time.sleep(max(0.0, end - time.monotonic()))
        self.watch(90, "the end (requests in flight, quiet numbers, report, stop)")
        self.progress("length over: the load stops")
        took = self.unload(threads + ([burst] if burst else []))
        self.progress("load stopped in %.1f s" % took)
        # A drained server gets no request begun after the drain; an enabled one gets
        # requests again.
        if drained and enabled:
            server = "127.0.0.1:%d" % self.backs[0].port
            late = self.starts_at(server, drained, enabled)
            again = self.starts_at(server, enabled, time.time())
            for line in late[:5]:
                print("sent to the drained server: " + line)
            if late:
                self.notes.append("DEFECT: %d requests begun after the drain went to the drained server" % len(late))
            if not again:
                self.notes.append("DEFECT: the enabled server got no request")
            self.notes.append("back end 0 drained for %.1f s: %d requests begun meanwhile went to it, %d after enable"
                              % (enabled - drained, len(late), len(again)))
        end_rss, end_fds = self.quiet_numbers((start_rss, start_fds), within=20)
        self.maps.append(self.mappings())
        self.heap.append(self.heap_numbers())
        self.progress("end: gateway RSS %d KiB, %d descriptors" % (end_rss, end_fds))
        return self.report(reloads, kills, (start_rss, start_fds), (end_rss, end_fds), start_load)

    # What the gateway never sends twice (docs/rules.md): an Upgrade, and a body it does not
    # keep (these are far past retry_body). Any other request a dying server did not read
    # goes again to another server, so its failure is a defect.
    SENT_ONCE = ("websocket", "upload_length", "upload_chunked", "slow_writer")

    def failed_on_killed_server(self, kind, rid, lines):
        """A request sent once that the back end never read can still have been in flight on
        it: sent on a connection the back end's death reset before it was read (one that came
        into the listener's backlog as it closed, or that the gateway wrote to as the reset
        came). The request's own access line (found by the rid= in its path) says so: the
        server it went to is a back end the soak killed, that server failed it
        (server-closed or server-reset), the request began while that life of the back end
        was up (after its start, before the start that replaced it) and its failure came
        after that life's kill. No window around the kill is guessed: a sent-once request
        to a killed server is allowed whenever the scheduler ran the kill, and anything
        else (a request the back end read and a live server failed, a resendable request,
        a failure on a server never killed, or before its kill) stays a defect."""
        if kind not in self.SENT_ONCE or any(rid in b.seen for b in self.backs):
            return False
        for line in lines:
            # The server failed it: its outcome says so, or the gateway answered 502 for it
            # and the client (an Upgrade's, that wanted a 101) closed at once on reading it,
            # which the line's outcome tells instead.
            m = re.match(r"(\S+)Z info http .* status=(\d+) .* server=127\.0\.0\.1:(\d+) .*backend_ms=(\d+) .*"
                         r"outcome=(server-closed|server-reset|client-reset)$", line)
            if not m or (m.group(5) == "client-reset" and m.group(2) != "502"):
                continue
            # The line's time and backend_ms are cut to the millisecond.
            written = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            began, end = written - int(m.group(4)) / 1000.0, written + 0.001
            for b in self.backs:
                if b.port != int(m.group(3)):
                    continue
                for n, killed in enumerate(b.deaths):
                    replaced = b.births[n + 1] if n + 1 < len(b.births) else float("inf")
                    if b.births[n] <= began < replaced and end >= killed:
                        return True
        return False

    def report(self, reloads, kills, start, end, start_load):
        killed, held = set(), set()
        for b in self.backs:
            killed |= b.killed_inflight
            held |= b.held
        defects = sum(n.startswith("DEFECT") for n in self.notes)
        causes = collections.Counter()
        log_lines = self.og.stderr().splitlines()
        by_rid = collections.defaultdict(list)      # the access lines of each request
        for line in log_lines:
            m = re.search(r" path=\S*[?&]rid=([^ &]+)", line)
            if m:
                by_rid[m.group(1)].append(line)
        for kind, rid, cause, at in self.failed_ids:
            allowed = rid in killed
            verdict = "allowed (in flight on a killed server)" if allowed else "DEFECT"
            if not allowed and self.failed_on_killed_server(kind, rid, by_rid[rid]):
                allowed, verdict = True, "allowed (sent once to a killed server, unread)"
            causes[(kind, cause, verdict)] += 1
            defects += not allowed
            if not allowed:
                mine = by_rid[rid]
                saw = ["%s run %d from port %d at %.1f s" % ((b.name,) + b.seen[rid][:2] + (b.seen[rid][2] - self.t0,))
                       for b in self.backs if rid in b.seen]
                print("defect: %s %s at %.1f s (kills at %s): %s\n  gateway: %s\n  back end: %s"
                      % (kind, rid, at - self.t0, ", ".join("%.1f" % k for k in self.kill_times), cause,
                         "\n  gateway: ".join(mine) or "no access line", ", ".join(saw) or "never saw its head"))
                if mine:
                    # What else the gateway said in the 3 s before: pool and server messages.
                    last = mine[-1][:23]
                    begin = (datetime.datetime.strptime(last, "%Y-%m-%dT%H:%M:%S.%f")
                             - datetime.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]
                    print("  before it:\n    " + "\n    ".join(
                        l for l in log_lines if begin <= l[:23] <= last and " info http " not in l
                        and " info conn " not in l and " cut with " not in l))
        out = ["soak: %.1f minutes, %d reloads, %d back-end kills, burst of %d"
               % (self.args.minutes, reloads, kills, self.args.burst), "",
               "%-18s %10s %16s %8s" % ("kind", "requests", "bytes", "failed")]
        failed_by_kind = collections.Counter(f[0] for f in self.failed_ids)
        # A kind that never completed proves nothing: that is a defect of the run.
        for kind in sorted(set(self.KINDS) - set(self.stats)):
            self.notes.append("DEFECT: no %s exchange completed" % kind)
            defects += 1
        for kind in sorted(self.stats):
            n, nb = self.stats[kind]
            out.append("%-18s %10d %16d %8d" % (kind, n, nb, failed_by_kind[kind]))
        out.append("")
        out += self.notes
        out.append("requests a killed back end held unread at a socket's close (counted in flight): %d, "
                   "of them failed: %d" % (len(held), sum(f[1] in held for f in self.failed_ids)))
        out.append("failures by cause:" if causes else "failures: none")
        for (kind, cause, verdict), n in sorted(causes.items()):
            out.append("  %-16s %-40s %5d  %s" % (kind, cause[:40], n, verdict))
        # With --heap the leak check reads RSS after malloc_trim at both ends: free memory
        # glibc's arenas keep after a peak is given back first, the same way at both.
        trimmed = all(self.heap)
        rss = (self.heap[0][2], self.heap[1][2]) if trimmed else (start[0], end[0])
        grew = [what for what, a, b in (("RSS", rss[0], rss[1]), ("descriptors", start[1], end[1]))
                if b > a * (1 + (self.args.rss_slack if what == "RSS" else 0.10)) + (2 if what == "descriptors" else 0)]
        out.append("")
        out.append("gateway RSS %d -> %d KiB, descriptors %d -> %d%s" % (start[0], end[0], start[1], end[1],
                   "" if trimmed or not grew else "  GREW: " + ", ".join(grew)))
        if trimmed:
            (u0, h0, r0, a0, f0), (u1, h1, r1, a1, f1) = self.heap
            out.append("gateway heap in use %d -> %d KiB, held from the system %d -> %d KiB" % (u0, u1, h0, h1))
            out.append("gateway RSS after malloc_trim %d -> %d KiB (anonymous %d -> %d, file pages %d -> %d)%s"
                       % (r0, r1, a0, a1, f0, f1, "  GREW: " + ", ".join(grew) if grew else ""))
        # Where RSS grew (before the trim), mapping by mapping: the first thing to look at.
        m0, m1 = self.maps
        growth = sorted(((m1[k][1] - m0.get(k, ["", 0])[1], k) for k in m1), reverse=True)
        out.append("mappings that grew most (RSS KiB): " + (", ".join(
            "%s %x %d -> %d" % (m1[k][0], k, m0.get(k, ["", 0])[1], m1[k][1]) for d, k in growth[:3] if d > 0) or "none"))
        log = self.og.stderr()
        if defects:
            keep = os.path.join(tempfile.gettempdir(), "onegate-soak-%s.stderr" % time.strftime("%H%M%S"))
            with open(keep, "w") as f:
                f.write(log)
            print("the gateway's log is kept in " + keep)
        ok_cut = [l for l in log.splitlines() if "client-stalled" in l or "drain-timeout" in l]
        out.append("lines with client-stalled or drain-timeout: %d" % len(ok_cut))
        out.append("defects: %d" % defects)
        print("\n".join(out), flush=True)
        if self.args.results:
            self.write_results(out, start_load)
        return 1 if defects or grew else 0

    def write_results(self, table, start_load):
        """The run's table with what it ran on: a soak's numbers mean little without the
        machine's load beside them."""
        def sh(*cmd):
            try:
                return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10,
                                      cwd=HERE).stdout.decode().strip()
            except OSError:
                return "?"
        a = self.args
        lines = ["# onegate soak %s UTC" % time.strftime("%Y-%m-%d %H:%M", time.gmtime(self.wall0)), "",
                 "- onegate: %s, commit %s" % ((sh(a.onegate, "version") or "?").splitlines()[0], sh("git", "rev-parse", "--short", "HEAD")),
                 "- run: `%s`" % " ".join(sys.argv),
                 "- length %.1f minutes, bodies %d MiB, SIGHUP every %g s, a back end killed every %g s, "
                 "burst of %d" % (a.minutes, a.big, a.reload_s, a.kill_s, a.burst),
                 "- machine: %d CPUs, load average %s at the start and %s at the end "
                 "(other jobs shared it: the counts say what got through, not what onegate can do)"
                 % (os.cpu_count(), start_load, " ".join(open("/proc/loadavg").read().split()[:3])),
                 "", "```"] + table + ["```", ""]
        with open(a.results, "w") as f:
            f.write("\n".join(lines))
        print("results: " + a.results)

    def close(self):
        """Stops everything; returns a sanitizer's report from the gateway's exit, if any
        (under ASan this is where a leak of the whole run shows)."""
        import harness
        self.og.stop(30)
        text = self.og.stderr()
        m = harness.SANITIZER.search(text)
        self.og.cleanup()
        for b in self.backs:
            b.kill()
        self.echo.stop()
        self.tmp.cleanup()
        return text[max(0, m.start() - 200):m.start() + 6000] if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onegate", default=os.environ.get("ONEGATE_BIN"))
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    ap.add_argument("--big", type=int, default=100, help="MiB per upload and download")
    ap.add_argument("--reload-s", type=float, default=30)
    ap.add_argument("--kill-s", type=float, default=60)
    ap.add_argument("--burst", type=int, default=5000)
    ap.add_argument("--results", help="also write the table and the run's conditions to this file")
    ap.add_argument("--heap", action="store_true",
                    help="read the gateway's heap through gdb at both ends and compare RSS after malloc_trim")
    ap.add_argument("--rss-slack", type=float, default=0.10,
                    help="how much the gateway's RSS may grow before it counts as a leak (0.10: 10%%)")
    args = ap.parse_args()
    os.environ["ONEGATE_BIN"] = os.path.abspath(args.onegate)
    import harness
    harness.ONEGATE_BIN = os.environ["ONEGATE_BIN"]
    random.seed(1)
    # Progress shows in a file too; SIGUSR1 prints where every thread is.
    sys.stdout.reconfigure(line_buffering=True)
    faulthandler.register(signal.SIGUSR1, file=sys.stdout, all_threads=True)
    soak = Soak(args)
    rc = 1
    try:
        rc = soak.run()
    finally:
        report = soak.close()
    if getattr(soak, "t0", None):
        print("soak: ended %.0f s after its length" % (time.monotonic() - soak.t0 - args.minutes * 60))
    if report:
        print("sanitizer report in the gateway's stderr:\n" + report)
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
