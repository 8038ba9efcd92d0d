"""onegate under a service manager and beside a floating-address engine: the
health endpoint keepalived's track_script asks (GET /api/health, token-free;
standby and active with the token; failing while draining), systemd's notify
protocol played by the test (READY, RELOADING then READY, STOPPING, on a path
and an abstract socket), and `cmake --install` into a temporary DESTDIR (the
layout `make install` makes, and a unit systemd-analyze accepts).
Loopback only."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

from harness import LOOP4, ONEGATE_BIN, SOURCE_DIR, Onegate, OnegateTestCase, free_port, wait_until
from httpback import HTTPBackend

TOKEN = "0123456789abcdef-health-test"


def http(port, path, method="GET", token=None, timeout=5):
    """(status, parsed JSON body) from the admin listener."""
    req = urllib.request.Request("http://%s:%d%s" % (LOOP4, port, path), method=method,
                                 data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body else None


def rules(port, admin, backend_port, token_file=None):
    tok = '; token_file = "%s"' % token_file if token_file else ""
    return """
onegate = { workers = 2; drain_timeout = "20s"; admin = { listen = "127.0.0.1:%d"%s; }; };
pools = ( { name = "app"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ];
               routes = ( { host = "*"; pool = "app"; } ); } );
""" % (admin, tok, backend_port, port)


class Health(OnegateTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="onegate-health-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.token_file = os.path.join(self.tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.back = HTTPBackend("app")
        self.addCleanup(self.back.kill)
        self.port, self.admin = free_port(), free_port()
        self.og = self.start_onegate(rules(self.port, self.admin, self.back.port, self.token_file), self.port)
        wait_until(lambda: self._admin_accepts(), 5)

    def _admin_accepts(self):
        try:
            socket.create_connection((LOOP4, self.admin), timeout=0.5).close()
            return True
        except OSError:
            return False

    def test_ok_without_token_standby_needs_it_and_fails_until_active(self):
        # The port accepts a moment before the daemon calls itself serving ("starting").
        wait_until(lambda: http(self.admin, "/api/health")[0] == 200, 5)
        st, body = http(self.admin, "/api/health")
        self.assertEqual((st, body["health"]), (200, "ok"), body)
        self.assertIn("2 workers", body["reason"])
        # Everything else still needs the token.
        self.assertEqual(http(self.admin, "/api/status")[0], 401)
        self.assertEqual(http(self.admin, "/api/health/standby", "POST")[0], 401)
        self.assertEqual(http(self.admin, "/api/health")[0], 200)

        st, body = http(self.admin, "/api/health/standby", "POST", TOKEN)
        self.assertEqual((st, body["health"]), (503, "fail"), body)
        st, body = http(self.admin, "/api/health")
        self.assertEqual(st, 503)
        self.assertIn("standby", body["reason"])
        # Standby moves an address away; the gateway itself still serves.
        self.assertEqual(http_client(self.port), 200)

        st, body = http(self.admin, "/api/health/active", "POST", TOKEN)
        self.assertEqual((st, body["health"]), (200, "ok"), body)
        self.assertEqual(http(self.admin, "/api/health")[0], 200)
        self.assertTrue(any("admin: standby" in l for l in self.og.log_lines()), self.og.stderr())

    def test_fails_while_draining(self):
        # A slow request keeps the gateway draining after SIGTERM; meanwhile the
        # health check must fail so that the address moves before the process ends.
        done = {}

        def slow():
            done["status"] = http_client(self.port, "/slow?ms=3000")
        t = threading.Thread(target=slow)
        t.start()
        self.addCleanup(t.join, 10)
        self.assertTrue(wait_until(lambda: self.back.connections >= 1, 5), "the slow request never reached the server")
        self.og.signal(signal.SIGTERM)
        ok = wait_until(lambda: http(self.admin, "/api/health")[0] == 503, 5)
        st, body = http(self.admin, "/api/health")
        self.assertTrue(ok, body)
        self.assertIn("draining", body["reason"])
        t.join(10)
        self.assertEqual(done.get("status"), 200, "the open request did not finish during the drain")


def http_client(port, path="/"):
    import http.client
    c = http.client.HTTPConnection(LOOP4, port, timeout=10)
    try:
        c.request("GET", path, headers={"Host": "app.test"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


class Notify(unittest.TestCase):
    """The test plays systemd: a datagram socket in NOTIFY_SOCKET."""

    def run_with(self, address, bind_to):
        back = HTTPBackend("app")
        self.addCleanup(back.kill)
        port, admin = free_port(), free_port()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(bind_to)
        sock.settimeout(10)
        og = Onegate(rules(port, admin, back.port))
        self.addCleanup(og.cleanup)
        env = dict(os.environ, NOTIFY_SOCKET=address)
        og.start(env=env)

        def recv():
            try:
                return sock.recv(4096).decode()
            except socket.timeout:
                self.fail("no notification within 10 s; onegate stderr:\n" + og.stderr())
        first = recv()
        self.assertTrue(first.startswith("READY=1\nSTATUS=serving 1 services"), first)
        # READY means serving: the port answers now, not eventually.
        self.assertEqual(http_client(port), 200)
        og.signal(signal.SIGHUP)
        self.assertEqual(recv(), "RELOADING=1")
        ready = recv()
        self.assertTrue(ready.startswith("READY=1\nSTATUS=applied "), ready)
        # A file that does not load: still ready (the previous rules serve), and the status says why.
        with open(og.conf, "a") as f:
            f.write("pools = oops;\n")
        og.signal(signal.SIGHUP)
        self.assertEqual(recv(), "RELOADING=1")
        ready = recv()
        self.assertTrue(ready.startswith("READY=1\nSTATUS=refused "), ready)
        self.assertEqual(http_client(port), 200)
        og.signal(signal.SIGTERM)
        self.assertEqual(recv(), "STOPPING=1")
        self.assertEqual(og.wait(15), 0, og.stderr())

    def test_path_socket(self):
        d = tempfile.mkdtemp(prefix="onegate-notify-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "notify")
        self.run_with(path, path)

    def test_abstract_socket(self):
        name = "onegate-notify-test-%d" % os.getpid()
        self.run_with("@" + name, "\0" + name)

    def test_without_notify_socket_nothing_is_needed(self):
        back = HTTPBackend("app")
        self.addCleanup(back.kill)
        port, admin = free_port(), free_port()
        og = Onegate(rules(port, admin, back.port), wait_port=port)
        self.addCleanup(og.cleanup)
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        og.start(env=env)
        self.assertEqual(http_client(port), 200)
        self.assertEqual(og.stop(), 0)
        self.assertNotIn("service manager", og.stderr())


class Install(unittest.TestCase):
    """cmake --install of the tree the tests run from, staged into a temporary DESTDIR."""

    def test_layout_unit_and_logrotate(self):
        build = os.path.dirname(os.path.dirname(os.path.abspath(ONEGATE_BIN)))
        cache = os.path.join(build, "CMakeCache.txt")
        if not os.path.exists(cache):
            self.skipTest("no CMakeCache.txt beside %s" % ONEGATE_BIN)
        with open(cache) as f:
            text = f.read()
        prefix = re.search(r"^CMAKE_INSTALL_PREFIX:PATH=(.*)$", text, re.M).group(1)
        dest = tempfile.mkdtemp(prefix="onegate-install-")
        self.addCleanup(shutil.rmtree, dest, True)
        r = subprocess.run(["cmake", "--install", build], env=dict(os.environ, DESTDIR=dest),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        root = dest + prefix
        binary = os.path.join(root, "sbin", "onegate")
        for rel in ("sbin/onegate", "lib/onegate/plugins/ip_filter.so", "lib/onegate/plugins/path_filter.so",
                    "lib/onegate/plugins/security_headers.so", "lib/onegate/plugins/header_rules.so",
                    "include/onegate/onegate_plugin.h", "share/onegate/templates/exchange.conf",
                    "share/onegate/examples/ha/keepalived.conf", "share/onegate/examples/dmz.conf",
                    "share/doc/onegate/operations.md", "share/doc/onegate/dmz.md",
                    "lib/systemd/system/onegate.service"):
            self.assertTrue(os.path.exists(os.path.join(root, rel)), rel + " not installed")
        self.assertTrue(os.access(binary, os.X_OK))
        v = subprocess.run([binary, "version"], stdout=subprocess.PIPE, timeout=10)
        self.assertEqual(v.returncode, 0)
        self.assertIn(b"onegate", v.stdout)
        # The sysconf files go where the tree was configured to put them (/etc with make install).
        logrotate = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs
                     if f == "onegate" and d.endswith("logrotate.d")]
        self.assertEqual(len(logrotate), 1, "one logrotate file")
        with open(logrotate[0]) as f:
            self.assertIn("--signal=USR1", f.read())

        with open(os.path.join(root, "lib/systemd/system/onegate.service")) as f:
            unit = f.read()
        exe = prefix + "/sbin/onegate"
        self.assertIn("ExecStart=%s run -c" % exe, unit)
        self.assertIn("ExecReload=%s reload -c" % exe, unit)
        for line in ("Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE"):
            self.assertIn("\n" + line + "\n", unit)
        if shutil.which("systemd-analyze"):
            # verify wants the binary at its path: point the staged unit at the staged binary.
            staged = os.path.join(dest, "onegate.service")
            with open(staged, "w") as f:
                f.write(unit.replace(exe, binary))
            r = subprocess.run(["systemd-analyze", "verify", staged], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))


if __name__ == "__main__":
    unittest.main()
