"""
httpback.py - a small HTTP/1.1 back end for the integration tests.

Raw sockets and threads, loopback only. It answers every request with a JSON
description of what it received (its own name and port, method, target, headers,
body length and SHA-256), keeps connections alive, reads Content-Length and chunked bodies,
and answers with a chunked body when the path starts with /chunked. It counts
the connections it accepted, so tests can see back-end connection reuse.
/slow?ms=N answers after N milliseconds; /bighead?bytes=N adds an X-Big field of N bytes to
its answer's head; /big?bytes=N answers N bytes of pattern(N) with a Content-Length, /bigclose?bytes=N the same delimited by the close; `statuses` maps a path to the status
it answers (a health page a test turns to 503). An Upgrade is echoed, except one to
/burst?bytes=N: N bytes at once, a half-close, then what the client sends is counted
until its end (in `tunneled`). kill() stops it the hard way: listener and every open
connection closed at once; graceful() as a server asked to quit: no new connections,
idle kept ones closed, requests under way answered.

Misbehaviour for the retry tests, counted in `requests` all the same (each entry says
whether it was answered, once it was sent): `reset=True` reads each whole request, then resets the
connection; `close_kept=P` closes a kept connection (one that has served a request)
without an answer when a request comes on it, with probability P; `delay_ms` holds
every answer. Run as a program (`httpback.py NAME [--delay MS]`) it prints its port,
then a JSON line per request it got and another once it answered it, so that a test
can SIGKILL it and still count.
"""
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time

LOOP4 = "127.0.0.1"

_PATTERN = bytes(range(256)) * 4096


def pattern(n, offset=0):
    """n bytes of a repeating 0..255 sequence starting at offset: a cut or shifted body shows."""
    out = bytearray()
    while len(out) < n:
        start = (offset + len(out)) % 256
        out += _PATTERN[start:start + min(n - len(out), len(_PATTERN) - 256)]
    return bytes(out)


class HTTPBackend:
    def __init__(self, name, port=0, reset=False, close_kept=0.0, delay_ms=0, on_request=None):
        self.name = name
        self.reset, self.close_kept, self.delay_ms, self.on_request = reset, close_kept, delay_ms, on_request
        self.quitting = False
        self.busy = set()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOP4, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = False
        self.statuses = {}
        self.clients = set()
        self.tunneled = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def graceful(self):
        self.stop()
        self.quitting = True
        with self.lock:
            idle = [c for c in self.clients if c not in self.busy]
        for c in idle:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def kill(self):
        self.stop()
        with self.lock:
            clients = list(self.clients)
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.clients.add(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_until(c, buf, marker):
        while marker not in buf:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        return buf

    def _read_body(self, c, buf, headers, digest=None):
        te = headers.get("transfer-encoding", "")
        if "chunked" in te.lower():
            total = 0
            while True:
                buf = self._read_until(c, buf, b"\r\n")
                if buf is None:
                    return None, 0
                line, buf = buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    buf = self._read_until(c, buf, b"\r\n")
                    _, buf = buf.split(b"\r\n", 1)
                    return buf, total
                while len(buf) < size + 2:
                    d = c.recv(1 << 20)
                    if not d:
                        return None, 0
                    buf += d
                total += size
                if digest:
                    digest.update(buf[:size])
                buf = buf[size + 2:]
        n = int(headers.get("content-length", "0"))
        total = n
        while n > 0:
            if buf:
                take = min(n, len(buf))
                if digest:
                    digest.update(buf[:take])
                buf = buf[take:]
                n -= take
                continue
            d = c.recv(min(1 << 20, n))
            if not d:
                return None, 0
            buf = d
        return buf, total

    def _record(self, info):
        with self.lock:
            self.requests.append(info)
        if self.on_request:
            self.on_request(info)

    def _serve(self, c):
        buf = b""
        served = 0
        try:
            while True:
                buf = self._read_until(c, buf, b"\r\n\r\n")
                if buf is None:
                    return
                with self.lock:
                    self.busy.add(c)
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                hlist = []
                headers = {}
                for line in lines[1:]:
                    k, v = line.split(":", 1)
                    hlist.append([k, v.strip()])
                    headers[k.strip().lower()] = v.strip()
                info = {"backend": self.name, "port": self.port, "method": method, "target": target,
                        "version": version, "headers": hlist, "req": headers.get("x-req"), "answered": False}
                upgrade = "upgrade" in headers.get("connection", "").lower() and headers.get("upgrade")
                if served and random.random() < self.close_kept:
                    info["body_len"] = 0
                    self._record(info)
                    return
                if self.reset:
                    buf, info["body_len"] = (buf, 0) if upgrade else self._read_body(c, buf, headers)
                    self._record(info)
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if headers.get("expect", "").lower() == "100-continue":
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                if upgrade:
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n"
                              % headers["upgrade"].encode())
                    if target.startswith("/burst"):
                        c.sendall(b"b" * int(target.split("bytes=", 1)[1]))
                        c.shutdown(socket.SHUT_WR)
                        got = len(buf)
                        while True:
                            d = c.recv(65536)
                            if not d:
                                break
                            got += len(d)
                        with self.lock:
                            self.tunneled.append(got)
                        return
                    if buf:
                        c.sendall(buf)
                    while True:
                        d = c.recv(65536)
                        if not d:
                            return
                        c.sendall(d)
                digest = hashlib.sha256()
                buf, info["body_len"] = self._read_body(c, buf, headers, digest)
                info["body_sha256"] = digest.hexdigest()
                if buf is None:
                    return
                self._record(info)
                if self.delay_ms:
                    time.sleep(self.delay_ms / 1000.0)
                if target.startswith("/slow"):
                    time.sleep(int(target.split("ms=", 1)[1]) / 1000.0)
                status = self.statuses.get(target.split("?", 1)[0], 200)
                body = json.dumps({k: v for k, v in info.items() if k != "answered"}).encode()
                if status != 200:
                    c.sendall(b"HTTP/1.1 %d Status\r\nContent-Length: 4\r\n\r\nnope" % status)
                elif target.startswith("/bighead"):
                    big = b"x" * int(target.split("bytes=", 1)[1])
                    c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: %s\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (big, len(body), body))
                elif target.startswith("/big"):
                    n = int(target.split("bytes=", 1)[1])
                    close = target.startswith("/bigclose")
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n%s\r\n"
                              % (b"" if close else b"Content-Length: %d\r\n" % n))
                    for off in range(0, n, 1 << 20):
                        c.sendall(pattern(min(1 << 20, n - off), off))
                    if close:
                        return
                elif target.startswith("/close"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body")
                    return
                elif target.startswith("/chunked"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")
                    for i in range(0, len(body), 7):
                        part = body[i:i + 7]
                        c.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                    c.sendall(b"0\r\n\r\n")
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                              % (len(body), body if method != "HEAD" else b""))
                served += 1
                info["answered"] = True
                if self.on_request:
                    self.on_request(info)
                with self.lock:
                    self.busy.discard(c)
                if headers.get("connection", "").lower() == "close" or self.quitting:
                    return
        except (OSError, ValueError):
            return
        finally:
            with self.lock:
                self.clients.discard(c)
                self.busy.discard(c)
            c.close()


if __name__ == "__main__":
    delay = int(sys.argv[sys.argv.index("--delay") + 1]) if "--delay" in sys.argv else 0
    out = threading.Lock()

    def emit(info):
        with out:
            sys.stdout.write(json.dumps(info) + "\n")
            sys.stdout.flush()

    b = HTTPBackend(sys.argv[1], delay_ms=delay, on_request=emit)
    emit({"port": b.port})
    threading.Event().wait()
