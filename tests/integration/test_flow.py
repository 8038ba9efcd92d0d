"""Flow control and the demo: a slow reader never makes onegate buffer without bound,
and `onegate demo` answers every curl line it prints."""
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import LOOP4, ONEGATE_BIN, OnegateTestCase, free_port, require_binary, wait_until


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class FloodBackend:
    """A raw TCP back end that, once a client's first bytes arrive, writes as fast as
    the socket takes them and counts what the kernel accepted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOOP4, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn, _ = self.sock.accept()
        conn.recv(65536)
        conn.settimeout(0.2)
        chunk = b"z" * 65536
        while not self.stop.is_set():
            try:
                self.sent += conn.send(chunk)
            except socket.timeout:
                continue
            except OSError:
                break
        conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


class BackPressure(OnegateTestCase):
    def test_slow_reader_keeps_memory_bounded(self):
        backend = FloodBackend()
        self.addCleanup(backend.close)
        port = free_port()
        og = self.start_onegate("""
onegate = { workers = 1; };
pools = ( { name = "flood"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:%d" ]; routes = ( { sni = "flood.test"; pool = "flood"; } ); } );
""" % (backend.port, port), port)
        base = rss_kib(og.proc.pid)
        client = socket.create_connection((LOOP4, port), timeout=5)
        self.addCleanup(client.close)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        ctx = ssl.create_default_context()
        out = ssl.MemoryBIO()
        # The bytes of a real ClientHello, then never read a byte.
        obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="flood.test")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        client.sendall(out.read())
        self.assertTrue(wait_until(lambda: backend.sent > 0, 5), "the back end never got the ClientHello")
        time.sleep(2.0)
        sent_then = backend.sent
        grown = rss_kib(og.proc.pid) - base
        time.sleep(1.0)
        # The back end is stalled by TCP flow control once kernel buffers and onegate's
        # bounded relay queue are full: it moves (almost) nothing more, and onegate holds
        # a few hundred KiB, not the stream.
        self.assertLess(backend.sent - sent_then, 1 << 20, "the back end kept writing: nothing pushed back")
        self.assertLess(backend.sent, 64 << 20, "%d bytes left the back end towards a client that reads none"
                        % backend.sent)
        self.assertLess(grown, 16 * 1024, "onegate grew by %d KiB holding a stalled stream" % grown)

        # Once the client reads, the stream flows again: resuming finds far more than one
        # read's bound waiting in the kernel, and onegate must keep reading after it.
        want = 32 << 20
        got = 0
        deadline = time.monotonic() + 20
        client.settimeout(2)
        while got < want and time.monotonic() < deadline:
            try:
                data = client.recv(1 << 20)
            except socket.timeout:
                break
            if not data:
                break
            got += len(data)
        self.assertGreaterEqual(got, want, "the relay stalled after the client resumed reading (%d bytes)" % got)


class Demo(unittest.TestCase):
    def test_every_printed_curl_line_answers(self):
        require_binary()
        for p in [8443, 8080, 8404, 19101, 19102, 19103, 19104, 19105]:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT from a previous run is fine
            try:
                s.bind((LOOP4, p))
            except OSError:
                self.skipTest("demo port %d is busy" % p)
            finally:
                s.close()
        state = tempfile.TemporaryDirectory(prefix="onegate-demo-")
        self.addCleanup(state.cleanup)
        out_path = os.path.join(state.name, "stdout")
        with open(out_path, "w") as out, open(os.path.join(state.name, "stderr"), "w") as err:
            proc = subprocess.Popen([ONEGATE_BIN, "demo", "--state", os.path.join(state.name, "pki")],
                                    stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and (proc.terminate(), proc.wait(10)))
        self.assertTrue(wait_until(lambda: "Ctrl-C stops" in open(out_path).read(), 30),
                        "demo printed no instructions:\n" + open(out_path).read())
        text = open(out_path).read()
        lines = [l.strip() for l in text.splitlines() if l.strip().startswith("curl ")]
        self.assertEqual(len(lines), 7, text)
        answers = []
        for line in lines:
            r = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, line + "\n" + r.stderr)
            answers.append(r.stdout)
        # Each line's comment names the pool it goes to; the back end that answers is that pool's own.
        comments = [l.strip() for l in text.splitlines() if l.strip().startswith("# ")]
        want = []
        for c in comments[:len(lines)]:
            m = re.search(r"-> pool (\w+)", c)
            want.append(m.group(1) if m else None)
        self.assertEqual(want[:5], ["adfs", "lab", "apps", "mail", "mail"], comments)
        for line, answer, pool in zip(lines[:5], answers[:5], want[:5]):
            self.assertRegex(answer, r'back end "%s-[12]" \(pool %s\)' % (pool, pool), line)
        self.assertRegex(answers[0], r'SNI was "sts.contoso.test"')
        self.assertRegex(answers[1], r'SNI was "nas.home.test"')
        self.assertRegex(answers[2], r'SNI was "app42.apps.test"')
        # re-encrypted: the gateway names the mail back end it verifies
        self.assertRegex(answers[3], r'SNI was "exch1.contoso.test"')
        self.assertRegex(answers[4], r'SNI was "exch1.contoso.test"')
        self.assertRegex(answers[5], r"^HTTP/1.1 301 (.|\n)*Location: https://mail.contoso.test/owa/")
        # the health checks have run: both AD FS servers answered their probe
        self.assertRegex(answers[6], r"adfs\s+adfs-1\s+up .*HTTP 200 on /adfs/probe")
        self.assertRegex(answers[6], r"mail\s+mail-1\s+up .*HTTP 200 on /owa/healthcheck.htm")
        proc.terminate()
        self.assertEqual(proc.wait(15), 0)


if __name__ == "__main__":
    unittest.main()
