"""
harness.py - shared pieces of onegate's integration tests.

Real processes, real sockets, loopback only: a test PKI made with the openssl
CLI, threaded Python TLS back ends that record what they saw (SNI, PROXY
header), an Onegate wrapper that runs the binary on a rule file, and client
helpers (curl, openssl s_client, raw sockets, a MemoryBIO TLS client whose
ClientHello can be sent byte by byte).

Every socket binds or connects to 127.0.0.1 or ::1 only. Every wait is bounded.
Python 3.11 standard library only.
"""
import os
import random
import re
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

LOOP4 = "127.0.0.1"
LOOP6 = "::1"

ONEGATE_BIN = os.environ.get("ONEGATE_BIN", "")
SOURCE_DIR = os.environ.get(
    "ONEGATE_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))

# The names every back end certificate covers: each back end serves its own
# certificate (CN = its name) valid for every name the tests route.
TEST_NAMES = [
    "sts.contoso.test", "*.contoso.test", "*.home.test", "home.test",
    "app1.test", "app42.test", "appx.test", "unknown.test", "echo.test", "localhost",
]


def require_binary(testcase=None):
    """Skips (module level) when ONEGATE_BIN is not set or not executable."""
    if not ONEGATE_BIN or not os.access(ONEGATE_BIN, os.X_OK):
        raise unittest.SkipTest("ONEGATE_BIN is not set to an executable onegate")


def ipv6_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind((LOOP6, 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


# Ports handed out so far in this process: the kernel may give a port just closed again, and
# two parts of one test (a service and its admin listener, say) must never get the same one.
_ports_given = set()


def _listen_port_range():
    """Ports for onegate to listen on, below the kernel's ephemeral range. A port that binding
    to 0 gives is from that range, and before onegate binds it any connection on the machine
    (another test's, run at the same time) may take it as its source port: onegate then fails
    to start (EADDRINUSE, seen in CI). Below the range only a listener takes a port, and only
    one it was told. None when the range leaves no room below it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    top = low - 1
    return (max(10000, top - 12000), top) if top - 10000 >= 1000 else None


_PORT_RANGE = _listen_port_range()
_port_pick = random.Random(os.getpid())


def _bind_free(socks, host):
    for s in socks:
        if _PORT_RANGE is None:
            s.bind((host, 0))
            continue
        for _ in range(200):
            try:
                s.bind((host, _port_pick.randint(*_PORT_RANGE)))
                break
            except OSError:
                continue
        else:
            s.bind((host, 0))
    return [s.getsockname()[1] for s in socks]


def free_ports(n, family=socket.AF_INET):
    """n distinct ports nothing listens on right now, none handed out before in this process."""
    host = LOOP4 if family == socket.AF_INET else LOOP6
    for _ in range(100):
        socks = [socket.socket(family, socket.SOCK_STREAM) for _ in range(n)]
        try:
            ports = _bind_free(socks, host)
        finally:
            for s in socks:
                s.close()
        if not _ports_given.intersection(ports):
            _ports_given.update(ports)
            return ports
    raise RuntimeError("no free ports left that this test was not given already")


def free_port(family=socket.AF_INET):
    """A port nothing listens on right now (bound once and closed), below the ephemeral range
    where the kernel allows (_listen_port_range), never one handed out before in this process."""
    return free_ports(1, family)[0]


def fault_report(what, tried, lost):
    """One line a fault or load test leaves on stderr: what it tried and what was lost."""
    import sys
    print("\n[fault] %s: tried %s; lost %s" % (what, tried, lost), file=sys.stderr)


def wait_until(pred, timeout, interval=0.02):
    """Polls pred() until true or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# --------------------------------------------------------------------- PKI

class PKI:
    """Paths of a generated PKI: ca (root, PEM), and per back end name
    certs[name] = (chainfile, keyfile) where chainfile is leaf + intermediate."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "root.pem")
        self.intermediate = os.path.join(directory, "intermediate.pem")
        self.certs = {}


def _openssl(*args, cwd=None, input_bytes=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, input=input_bytes,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout


def make_pki(directory, names, sans=None):
    """Root CA -> intermediate CA -> one ECDSA P-256 leaf per name in names.

    Each leaf has CN = its back end name and subjectAltName DNS entries for
    sans (default TEST_NAMES); names may also be a dict name -> list of SANs.
    Returns a PKI."""
    os.makedirs(directory, exist_ok=True)
    pki = PKI(directory)
    if not isinstance(names, dict):
        names = {n: list(sans or TEST_NAMES) for n in names}
    d = directory

    def key(path):
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)

    def ext_file(fname, text):
        p = os.path.join(d, fname)
        with open(p, "w") as f:
            f.write(text)
        return p

    key(os.path.join(d, "root.key"))
    root_ext = ext_file("root.ext", "[v3]\nbasicConstraints=critical,CA:TRUE\n"
                        "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n")
    _openssl("req", "-new", "-x509", "-key", "root.key", "-out", "root.pem", "-days", "30",
             "-subj", "/CN=onegate test root", "-config", root_ext, "-extensions", "v3",
             "-sha256", cwd=d)

    key(os.path.join(d, "intermediate.key"))
    _openssl("req", "-new", "-key", "intermediate.key", "-out", "intermediate.csr",
             "-subj", "/CN=onegate test intermediate", cwd=d)
    int_ext = ext_file("intermediate.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\n"
                       "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n"
                       "authorityKeyIdentifier=keyid\n")
    _openssl("x509", "-req", "-in", "intermediate.csr", "-CA", "root.pem", "-CAkey", "root.key",
             "-CAcreateserial", "-out", "intermediate.pem", "-days", "30", "-sha256",
             "-extfile", int_ext, cwd=d)

    for name, alt in names.items():
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        key(os.path.join(d, base + ".key"))
        _openssl("req", "-new", "-key", base + ".key", "-out", base + ".csr",
                 "-subj", "/CN=" + name, cwd=d)
        leaf_ext = ext_file(base + ".ext", "basicConstraints=critical,CA:FALSE\n"
                            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                            "subjectAltName=" + ",".join("DNS:" + a for a in alt) + "\n")
        _openssl("x509", "-req", "-in", base + ".csr", "-CA", "intermediate.pem",
                 "-CAkey", "intermediate.key", "-CAcreateserial", "-out", base + ".pem",
                 "-days", "30", "-sha256", "-extfile", leaf_ext, cwd=d)
        chain = os.path.join(d, base + ".chain.pem")
        with open(chain, "w") as out:
            for part in (base + ".pem", "intermediate.pem"):
                with open(os.path.join(d, part)) as f:
                    out.write(f.read())
        pki.certs[name] = (chain, os.path.join(d, base + ".key"))
    return pki


# --------------------------------------------------------------- PROXY protocol

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def read_proxy_header(sock):
    """Reads exactly one PROXY v1 or v2 header from a raw socket (never a byte
    more) and returns a dict: version, command, family, src, dst, sport, dport,
    raw. Raises ValueError on anything else."""
    first = _recv_exact(sock, 1)
    if first == b"P":
        buf = first
        while not buf.endswith(b"\r\n"):
            if len(buf) >= 107:
                raise ValueError("PROXY v1 line too long: %r" % buf)
            buf += _recv_exact(sock, 1)
        parts = buf[:-2].decode("ascii").split(" ")
        if parts[0] != "PROXY":
            raise ValueError("bad v1 header %r" % buf)
        if parts[1] == "UNKNOWN":
            return {"version": 1, "command": "LOCAL", "family": "UNKNOWN", "src": None,
                    "dst": None, "sport": None, "dport": None, "raw": buf}
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            raise ValueError("bad v1 header %r" % buf)
        return {"version": 1, "command": "PROXY", "family": parts[1], "src": parts[2],
                "dst": parts[3], "sport": int(parts[4]), "dport": int(parts[5]), "raw": buf}
    if first == PP2_SIG[:1]:
        head = first + _recv_exact(sock, 15)
        if head[:12] != PP2_SIG:
            raise ValueError("bad v2 signature %r" % head)
        ver_cmd, fam, length = head[12], head[13], struct.unpack("!H", head[14:16])[0]
        body = _recv_exact(sock, length)
        if ver_cmd >> 4 != 2:
            raise ValueError("bad v2 version byte %#x" % ver_cmd)
        cmd = {0: "LOCAL", 1: "PROXY"}.get(ver_cmd & 0xF)
        if cmd is None:
            raise ValueError("bad v2 command %#x" % ver_cmd)
        info = {"version": 2, "command": cmd, "family": None, "src": None, "dst": None,
                "sport": None, "dport": None, "raw": head + body}
        if fam == 0x11:
            if length < 12:
                raise ValueError("v2 TCP4 body too short")
            info.update(family="TCP4", src=socket.inet_ntop(socket.AF_INET, body[0:4]),
                        dst=socket.inet_ntop(socket.AF_INET, body[4:8]),
                        sport=struct.unpack("!H", body[8:10])[0],
                        dport=struct.unpack("!H", body[10:12])[0])
        elif fam == 0x21:
            if length < 36:
                raise ValueError("v2 TCP6 body too short")
            info.update(family="TCP6", src=socket.inet_ntop(socket.AF_INET6, body[0:16]),
                        dst=socket.inet_ntop(socket.AF_INET6, body[16:32]),
                        sport=struct.unpack("!H", body[32:34])[0],
                        dport=struct.unpack("!H", body[34:36])[0])
        elif fam == 0x00:
            info["family"] = "UNSPEC"
        else:
            raise ValueError("unexpected v2 family byte %#x" % fam)
        return info
    raise ValueError("not a PROXY header, first byte %r" % first)


def proxy_v1(src, dst, sport, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode("ascii")


def proxy_v2(src, dst, sport, dport):
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
    else:
        fam, af = 0x11, socket.AF_INET
    body = socket.inet_pton(af, src) + socket.inet_pton(af, dst) + struct.pack("!HH", sport, dport)
    return PP2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


# --------------------------------------------------------------- back ends

class BackendConn:
    """What a back end saw on one accepted connection."""

    def __init__(self, peer):
        self.peer = peer
        self.proxy = None       # dict from read_proxy_header
        self.sni = None         # server name the client sent, None when absent
        self.handshake = False
        self.error = None
        self.received = 0


class TLSBackend:
    """A threaded TLS server on 127.0.0.1 (or ::1) standing for one real server.

    mode "http": answers a request with 200 and body "backend=NAME sni=SNI".
    mode "echo": echoes every byte back as it arrives, until EOF.
    mode "echo_after_eof": collects until EOF (a half-close), then sends it all back.
    expect_proxy: read a PROXY v1/v2 header from the raw socket before TLS.
    """

    def __init__(self, name, certfile, keyfile, port=0, expect_proxy=False, mode="http", host=LOOP4):
        self.name = name
        self.host = host
        self.port = port
        self.expect_proxy = expect_proxy
        self.mode = mode
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        # A half-close (TCP FIN, no close_notify) reads as a clean end of data.
        self.ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        self.ctx.sni_callback = self._sni
        self.conns = []
        self.lock = threading.Lock()
        self._lsock = None
        self._stop = threading.Event()
        self._thread = None
        self._live = set()

    @staticmethod
    def _sni(sslsock, server_name, ctx):
        sslsock.og_sni = server_name
        return None

    @property
    def addr(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(1024)
        s.settimeout(0.1)
        self.port = s.getsockname()[1]
        self._lsock = s
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="backend-" + self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
            self._thread = None
        if self._lsock:
            self._lsock.close()
            self._lsock = None
        with self.lock:
            live = list(self._live)
        for s in live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def reset(self):
        with self.lock:
            self.conns = []

    def seen(self):
        with self.lock:
            return list(self.conns)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                sock, peer = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = BackendConn(peer)
            with self.lock:
                self.conns.append(rec)
                self._live.add(sock)
            threading.Thread(target=self._serve, args=(sock, rec), daemon=True).start()

    def _serve(self, sock, rec):
        ssock = None
        try:
            sock.settimeout(20)
            if self.expect_proxy:
                rec.proxy = read_proxy_header(sock)
            ssock = self.ctx.wrap_socket(sock, server_side=True)
            rec.handshake = True
            rec.sni = getattr(ssock, "og_sni", None)
            if self.mode == "http":
                req = b""
                while b"\r\n\r\n" not in req and len(req) < 65536:
                    d = ssock.recv(4096)
                    if not d:
                        break
                    req += d
                rec.received = len(req)
                body = ("backend=%s sni=%s" % (self.name, rec.sni or "-")).encode()
                ssock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                              b"Connection: close\r\n\r\n%s" % (len(body), body))
            elif self.mode == "echo":
                while True:
                    d = ssock.recv(65536)
                    if not d:
                        break
                    rec.received += len(d)
                    ssock.sendall(d)
            elif self.mode == "echo_after_eof":
                chunks = []
                while True:
                    d = ssock.recv(65536)
                    if not d:
                        break
                    rec.received += len(d)
                    chunks.append(d)
                ssock.sendall(b"".join(chunks))
        except Exception as e:  # recorded for the test to look at
            rec.error = "%s: %s" % (type(e).__name__, e)
        finally:
            with self.lock:
                self._live.discard(sock)
            for s in (ssock, sock):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass


# --------------------------------------------------------------- onegate

LOG_FIELD = re.compile(r"(\w+)=(\S+)")


def parse_conn_line(line):
    """key=value fields of a connection log line as a dict (None if not one)."""
    if "client=" not in line or "outcome=" not in line:
        return None
    return dict(LOG_FIELD.findall(line))


class Onegate:
    """onegate run -c FILE on a rule file text, stderr captured to a file."""

    def __init__(self, config_text, workdir=None, wait_port=None, wait_family=socket.AF_INET):
        require_binary()
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="onegate-it-")
            workdir = self._tmp.name
        self.dir = workdir
        self.conf = os.path.join(workdir, "onegate.conf")
        with open(self.conf, "w") as f:
            f.write(config_text)
        self.stderr_path = os.path.join(workdir, "onegate.stderr")
        self.proc = None
        self.probe_ports = set()
        self.wait_port = wait_port
        self.wait_family = wait_family
        self.returncode = None

    def start(self, ready_timeout=10, expect_ready=True, env=None):
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([ONEGATE_BIN, "run", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=self._err, env=env)
        if expect_ready and self.wait_port:
            self.wait_ready(self.wait_port, ready_timeout, self.wait_family)
        return self

    def wait_ready(self, port, timeout, family=socket.AF_INET):
        host = LOOP4 if family == socket.AF_INET else LOOP6
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("onegate exited with %s before serving:\n%s"
                                     % (self.proc.returncode, self.stderr()))
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect((host, port))
                self.probe_ports.add(s.getsockname()[1])
                return
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        raise AssertionError("onegate did not accept on port %d within %ss:\n%s"
                             % (port, timeout, self.stderr()))

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=15):
        """SIGTERM, wait; SIGKILL if it does not stop. Returns the exit code
        (None if it had to be killed)."""
        if self.proc is None:
            return None
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait(timeout)
            if rc is None:
                self.proc.kill()
                self.proc.wait(5)
        else:
            rc = self.proc.returncode
        self.returncode = rc
        return rc

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if getattr(self, "_err", None):
            self._err.close()
            self._err = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_lines(self):
        return self.stderr().splitlines()

    def conn_logs(self, since=0):
        """Parsed connection log lines, readiness probes left out; since skips
        that many (a mark taken earlier with len(conn_logs()))."""
        out = []
        for line in self.log_lines():
            f = parse_conn_line(line)
            if f is None:
                continue
            m = re.match(r".*:(\d+)$", f.get("client", ""))
            if m and int(m.group(1)) in self.probe_ports and f.get("sni") == "-" \
                    and f.get("pool", "-") == "-" and f.get("outcome") == "client-closed":
                continue
            f["_line"] = line
            out.append(f)
        return out[since:]

    def wait_conn_log(self, pred, timeout=5, count=1, since=0):
        """Waits until at least count parsed connection lines satisfy pred; returns them."""
        found = []

        def check():
            found[:] = [f for f in self.conn_logs(since) if pred(f)]
            return len(found) >= count
        wait_until(check, timeout)
        return list(found)


SANITIZER = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: |"
                       r"SUMMARY: UndefinedBehaviorSanitizer")


def stop_and_check(og):
    """Stops onegate (SIGTERM) and fails if its stderr holds a sanitizer report:
    under `make test-asan` this is how leaks and UB on the data path surface."""
    if og.proc is None:
        return
    og.stop()
    text = og.stderr()
    m = SANITIZER.search(text)
    if m:
        start = max(0, m.start() - 200)
        raise AssertionError("sanitizer report in onegate stderr:\n" + text[start:start + 6000])


class OnegateTestCase(unittest.TestCase):
    """Base: helpers that register cleanups so nothing outlives a test."""

    def start_backend(self, name, pki, cert=None, **kw):
        chain, key = pki.certs[cert or name]
        b = TLSBackend(name, chain, key, **kw).start()
        self.addCleanup(b.stop)
        return b

    def start_onegate(self, config_text, port, family=socket.AF_INET, ready_timeout=10):
        og = Onegate(config_text, wait_port=port, wait_family=family)
        self.addCleanup(og.cleanup)
        self.addCleanup(stop_and_check, og)     # runs first (cleanups are LIFO)
        og.start(ready_timeout=ready_timeout)
        return og

    # Lines before this mark are not searched: a long-lived onegate has served
    # earlier tests, whose clients may have used the same ephemeral ports.
    log_mark = 0

    def mark_log(self, og):
        self.log_mark = len(og.conn_logs())

    def assertLogged(self, og, pred, what, timeout=5, count=1):
        found = og.wait_conn_log(pred, timeout=timeout, count=count, since=self.log_mark)
        if len(found) < count:
            self.fail("expected %d log line(s) with %s, found %d; onegate stderr (last 40 lines):\n%s"
                      % (count, what, len(found), "\n".join(og.log_lines()[-40:])))
        return found


# --------------------------------------------------------------- clients

def curl(name, port, cacert, path="/", extra=()):
    """curl over https://NAME:PORT/ resolved to 127.0.0.1. Returns (rc, body, stderr)."""
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--noproxy", "*",
                        "--resolve", "%s:%d:%s" % (name, port, LOOP4), "--cacert", cacert]
                       + list(extra) + ["https://%s:%d%s" % (name, port, path)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def s_client(port, servername=None, cafile=None, host=LOOP4, extra=(), timeout=15):
    """openssl s_client with stdin closed; returns (rc, stdout + stderr)."""
    target = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    args = ["openssl", "s_client", "-connect", target]
    args += ["-servername", servername] if servername else ["-noservername"]
    if cafile:
        args += ["-CAfile", cafile]
    r = subprocess.run(args + list(extra), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace")


def client_context(cafile, check_hostname=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.check_hostname = check_hostname
    ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def connect(port, host=LOOP4, timeout=10):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def cert_cn(cert):
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def https_get(port, server_hostname, cafile, host=LOOP4, prefix=b"", timeout=10):
    """GET / over TLS with Python's ssl (server_hostname None sends no SNI).
    prefix is sent on the raw socket first (a PROXY header). Returns
    (body, peer certificate CN, client local (ip, port))."""
    ctx = client_context(cafile, check_hostname=server_hostname is not None)
    raw = connect(port, host, timeout)
    try:
        local = raw.getsockname()
        if prefix:
            raw.sendall(prefix)
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            cn = cert_cn(s.getpeercert())
            s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % (server_hostname or "x").encode())
            data = b""
            while True:
                try:
                    d = s.recv(65536)
                except (ssl.SSLEOFError, ConnectionResetError):
                    break
                if not d:
                    break
                data += d
    finally:
        raw.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError("unexpected response %r" % data[:200])
    return body.decode(), cn, local[:2]


def read_until_closed(sock, timeout, limit=1 << 20):
    """Reads until EOF/reset or timeout. Returns (data, closed, elapsed)."""
    t0 = time.monotonic()
    data = b""
    deadline = t0 + timeout
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False, time.monotonic() - t0
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return data, False, time.monotonic() - t0
        except (ConnectionResetError, BrokenPipeError):
            return data, True, time.monotonic() - t0
        if not d:
            return data, True, time.monotonic() - t0
        data += d
    return data, False, time.monotonic() - t0


class BioTLS:
    """A TLS client over a raw socket with ssl.MemoryBIO: the ClientHello can be
    taken as bytes and sent however the test likes, the rest runs normally."""

    def __init__(self, sock, server_hostname, cafile):
        self.sock = sock
        self.ctx = client_context(cafile, check_hostname=server_hostname is not None)
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = self.ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)

    def client_hello(self):
        """Bytes of the ClientHello (not sent)."""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def flush(self):
        d = self.out.read()
        if d:
            self.sock.sendall(d)

    def handshake(self):
        for _ in range(1000):
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                d = self.sock.recv(65536)
                if not d:
                    raise EOFError("connection closed during the handshake")
                self.inc.write(d)
        raise AssertionError("handshake did not finish")

    def peer_cn(self):
        return cert_cn(self.obj.getpeercert())

    def send(self, data):
        self.obj.write(data)
        self.flush()

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                buf += self.obj.read(n - len(buf))
            except ssl.SSLWantReadError:
                self.flush()
                d = self.sock.recv(65536)
                if not d:
                    raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
                self.inc.write(d)
        return bytes(buf)

    def recv_until_eof(self, limit=16 << 20):
        buf = bytearray()
        while len(buf) < limit:
            try:
                d = self.obj.read(65536)
                if not d:
                    break
                buf += d
            except ssl.SSLWantReadError:
                self.flush()
                try:
                    d = self.sock.recv(65536)
                except ConnectionResetError:
                    break
                if not d:
                    self.inc.write_eof()
                else:
                    self.inc.write(d)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
        return bytes(buf)


def fmt_addr(host, port):
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
