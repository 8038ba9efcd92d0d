"""Running onegate as a service: the user it switches to after binding (and what
it can still do then), its log (level, access lines, a file that rotates, syslog
over a local socket and over UDP), the state folder (pid file, drained servers
that stay drained across a restart) and the file-wide default timeouts.
Loopback only; the user tests need root, as switching users does."""
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import tempfile
import time
import unittest
import urllib.request

from harness import LOOP4, Onegate, OnegateTestCase, curl, free_port, make_pki, wait_until
from httpback import HTTPBackend

USER, GROUP = "nobody", "nogroup"


def free_privileged_port():
    """A port below 1024 that nothing on loopback holds (the test runs as root)."""
    for port in range(991, 700, -7):
        s = socket.socket()
        try:
            s.bind((LOOP4, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise unittest.SkipTest("no free port below 1024 on loopback")


def proc_status(pid):
    """Uid, Gid, CapEff and CapPrm lines of /proc/PID/status, for the process and every thread."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Uid", "Gid", "CapEff", "CapPrm", "Groups"):
                    fields[k] = v.split()
        out.append(fields)
    return out


def get(port, host="app.test", path="/"):
    import http.client
    c = http.client.HTTPConnection(LOOP4, port, timeout=10)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def no_leak_check_env():
    # LeakSanitizer stops the world with ptrace, which a process that switched
    # users (and so is not dumpable) refuses; the rest of ASan stays on.
    env = dict(os.environ)
    opts = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "detect_leaks=0"
    return env


class RunAsUser(OnegateTestCase):
    """onegate started as root with user = "nobody": every thread is nobody with
    one capability, a reload still binds a port below 1024, and files the user
    cannot read stop the start instead of a later reload."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("switching users needs root")
        try:
            self.uid, self.gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(GROUP).gr_gid
        except KeyError:
            self.skipTest("no user %s/group %s" % (USER, GROUP))
        self.tmp = tempfile.mkdtemp(prefix="onegate-user-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        os.chmod(self.tmp, 0o755)
        self.pki = make_pki(os.path.join(self.tmp, "pki"), ["web"], sans=["app.test"])
        os.chmod(self.pki.dir, 0o755)
        self.chain, self.key = self.pki.certs["web"]
        for f in os.listdir(self.pki.dir):
            os.chmod(os.path.join(self.pki.dir, f), 0o600)
        os.chmod(self.chain, 0o644)
        os.chmod(self.pki.ca, 0o644)
        # the way an admin hands a key to the service's group
        os.chown(self.key, 0, self.gid)
        os.chmod(self.key, 0o640)
        self.be = HTTPBackend("app")
        self.addCleanup(self.be.kill)
        self.work = os.path.join(self.tmp, "run")
        os.mkdir(self.work)
        os.chmod(self.work, 0o755)

    def conf(self, ports, user=USER, key=None):
        listen = ", ".join('"127.0.0.1:%d"' % p for p in ports)
        return """
onegate = { workers = 2; user = "%s"; group = "%s"; state = "%s/state"; };
certificates = ( { name = "web"; cert = "%s"; key = "%s"; ca_file = "%s"; } );
pools = ( { name = "app"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ %s ]; tls = { certificates = [ "web" ]; };
               routes = ( { host = "app.test"; pool = "app"; } ); } );
""" % (user, GROUP, self.tmp, self.chain, key or self.key, self.pki.ca, self.be.port, listen)

    def https(self, port):
        rc, body, err = curl("app.test", port, self.pki.ca)
        return rc, body, err

    def test_switches_user_keeps_bind_capability_and_reloads(self):
        p1 = free_privileged_port()
        og = Onegate(self.conf([p1]), workdir=self.work, wait_port=p1)
        self.addCleanup(og.cleanup)
        og.start(env=no_leak_check_env())
        rc, body, err = self.https(p1)
        self.assertEqual(rc, 0, err)
        self.assertIn('"backend": "app"', body)

        threads = proc_status(og.proc.pid)
        self.assertGreaterEqual(len(threads), 4, "main, control and two workers")
        for t in threads:
            self.assertEqual(t["Uid"], [str(self.uid)] * 4, t)
            self.assertEqual(t["Gid"], [str(self.gid)] * 4, t)
            # CAP_NET_BIND_SERVICE (bit 10) and nothing else
            self.assertEqual(int(t["CapEff"][0], 16), 1 << 10, t)
            self.assertEqual(int(t["CapPrm"][0], 16), 1 << 10, t)
        self.assertNotIn(str(0), t["Groups"], "root's supplementary groups are dropped")
        st = os.stat(os.path.join(self.tmp, "state"))
        self.assertEqual((st.st_uid, st.st_gid), (self.uid, self.gid), "the state folder belongs to the user")
        with open(os.path.join(self.tmp, "state", "onegate.pid")) as f:
            self.assertEqual(int(f.read()), og.proc.pid)

        # as nobody: a new listener below 1024 on reload, certificates read as nobody
        p2 = free_privileged_port()
        while p2 == p1:
            p2 = free_privileged_port()
        with open(og.conf, "w") as f:
            f.write(self.conf([p1, p2]))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reloaded" in og.stderr(), 10), og.stderr())
        rc, body, err = self.https(p2)
        self.assertEqual(rc, 0, "the reload bound %d as %s: %s\n%s" % (p2, USER, err, og.stderr()))

        # another user needs a restart: refused, the running rules stay
        with open(og.conf, "w") as f:
            f.write(self.conf([p1, p2], user="daemon"))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "takes a restart" in og.stderr(), 10), og.stderr())
        self.assertEqual(self.https(p1)[0], 0)

        self.assertEqual(og.stop(), 0, og.stderr())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "state", "onegate.pid")), "pid file removed at stop")

    def test_key_the_user_cannot_read_stops_the_start(self):
        os.chown(self.key, 0, 0)
        os.chmod(self.key, 0o600)
        p1 = free_privileged_port()
        og = Onegate(self.conf([p1]), workdir=self.work)
        self.addCleanup(og.cleanup)
        og.start(expect_ready=False, env=no_leak_check_env())
        rc = og.wait(20)
        self.assertEqual(rc, 1, og.stderr())
        text = og.stderr()
        self.assertIn("as user %s: " % USER, text)
        self.assertIn(self.key, text)
        self.assertRegex(text, r"onegate\.conf:2: onegate runs as user nobody .* chgrp nogroup KEY; chmod 0640 KEY")
        s = socket.socket()
        self.assertNotEqual(s.connect_ex((LOOP4, p1)), 0, "nothing is left listening")
        s.close()


class Logging(OnegateTestCase):
    def setUp(self):
        self.be = HTTPBackend("app")
        self.addCleanup(self.be.kill)
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="onegate-log-")
        self.addCleanup(self.tmp.cleanup)

    def conf(self, log):
        return """
onegate = { workers = 1; log = { %s }; };
pools = ( { name = "app"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "app.test"; pool = "app"; } ); } );
""" % (log, self.be.port, self.port)

    def read(self, path):
        try:
            with open(path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def test_file_level_access_and_rotation(self):
        logf = os.path.join(self.tmp.name, "logs", "onegate.log")
        os.mkdir(os.path.dirname(logf))
        og = self.start_onegate(self.conf('level = "warn"; file = "%s";' % logf), self.port)
        self.assertEqual(get(self.port)[0], 200)
        self.assertEqual(get(self.port, host="nothing.test")[0], 404)
        time.sleep(0.2)
        self.assertEqual(self.read(logf), "", "warn: no info lines (start-up, access)")
        self.assertEqual(stat.S_IMODE(os.stat(logf).st_mode), 0o640)

        with open(og.conf, "w") as f:
            f.write(self.conf('level = "info"; access = false; file = "%s";' % logf))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reloaded" in self.read(logf), 10), og.stderr())
        get(self.port)
        time.sleep(0.2)
        self.assertNotRegex(self.read(logf), r" info (http|conn) ", "access = false: no request lines")

        with open(og.conf, "w") as f:
            f.write(self.conf('level = "info"; file = "%s";' % logf))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: self.read(logf).count("reloaded") == 2, 10))
        get(self.port, path="/before-rotation")
        self.assertTrue(wait_until(lambda: "path=/before-rotation" in self.read(logf), 5), self.read(logf))

        # logrotate: move the file, then SIGUSR1 opens a new one by the same name
        os.rename(logf, logf + ".1")
        og.signal(signal.SIGUSR1)
        self.assertTrue(wait_until(lambda: os.path.exists(logf), 5), "SIGUSR1 made a new file")
        get(self.port, path="/after-rotation")
        self.assertTrue(wait_until(lambda: "path=/after-rotation" in self.read(logf), 5), self.read(logf))
        self.assertNotIn("after-rotation", self.read(logf + ".1"))

        # back to stderr: the file gets nothing more
        with open(og.conf, "w") as f:
            f.write(self.conf('level = "info";'))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: og.stderr().count("reloaded") == 1, 10), og.stderr())
        get(self.port, path="/on-stderr")
        self.assertTrue(wait_until(lambda: "path=/on-stderr" in og.stderr(), 5))
        self.assertNotIn("on-stderr", self.read(logf))

    LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) .*outcome=\S+$|"
                      r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) (?!http |conn ).*$")

    def requests(self, paths):
        """One kept connection, one GET per path, each answered 200."""
        import http.client
        c = http.client.HTTPConnection(LOOP4, self.port, timeout=10)
        try:
            for p in paths:
                c.request("GET", p, headers={"Host": "app.test"})
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
        finally:
            c.close()

    def access_paths(self, text):
        """The path of every http access line in text, after checking that every line is whole."""
        for line in text.splitlines():
            self.assertRegex(line, self.LINE)
        self.assertTrue(text == "" or text.endswith("\n"), "the file ends with a whole line")
        return re.findall(r" info http .* path=(\S+) ", text)

    def test_access_lines_in_a_file_are_written_at_sigterm(self):
        """Access lines to a file wait in the worker's buffer (at most LOG_BUFFER_FLUSH_MS): the
        ones of the last requests before SIGTERM reach the file as the worker stops."""
        logf = os.path.join(self.tmp.name, "onegate.log")
        og = self.start_onegate(self.conf('file = "%s";' % logf), self.port)
        paths = ["/r%d" % i for i in range(300)]
        self.requests(paths)
        og.signal(signal.SIGTERM)
        self.assertEqual(og.wait(20), 0, og.stderr())
        text = self.read(logf)
        self.assertEqual(self.access_paths(text), paths, text[-2000:])
        self.assertRegex(text, r" info conn client=.* requests=300 ")

    def test_access_lines_across_a_reopen_are_each_written_once_and_whole(self):
        logf = os.path.join(self.tmp.name, "onegate.log")
        og = self.start_onegate(self.conf('file = "%s";' % logf), self.port)
        before = ["/before%d" % i for i in range(200)]
        after = ["/after%d" % i for i in range(200)]
        self.requests(before)
        os.rename(logf, logf + ".1")
        og.signal(signal.SIGUSR1)
        self.assertTrue(wait_until(lambda: os.path.exists(logf), 5), "SIGUSR1 made a new file")
        self.requests(after)
        self.assertTrue(wait_until(lambda: "path=/after199 " in self.read(logf), 5),
                        "lines reach the file while onegate runs")
        og.signal(signal.SIGTERM)
        self.assertEqual(og.wait(20), 0, og.stderr())
        old, new = self.access_paths(self.read(logf + ".1")), self.access_paths(self.read(logf))
        # Lines still in the buffer at the reopen go to the new file: each once, in order.
        self.assertEqual(sorted(old + new), sorted(before + after))
        self.assertEqual([p for p in old + new if p in before], before)
        self.assertEqual([p for p in new if p in after], after)

    def test_access_lines_reach_the_file_when_traffic_stops_and_across_a_reload(self):
        """Lines waiting in the worker's buffer are written by time, with no more traffic and no
        stop (within LOG_BUFFER_FLUSH_MS), and a reload loses none of them."""
        logf = os.path.join(self.tmp.name, "onegate.log")
        og = self.start_onegate(self.conf('file = "%s";' % logf), self.port)
        before = ["/before%d" % i for i in range(100)]
        after = ["/after%d" % i for i in range(100)]
        self.requests(before)
        self.assertTrue(wait_until(lambda: "path=/before99 " in self.read(logf), 5),
                        "the last lines reach the file while traffic has stopped")
        self.requests(after[:50])
        with open(og.conf, "w") as f:
            f.write(self.conf('level = "info"; file = "%s";' % logf))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reloaded" in self.read(logf), 10), og.stderr())
        self.requests(after[50:])
        self.assertTrue(wait_until(lambda: "path=/after99 " in self.read(logf), 5), self.read(logf)[-2000:])
        self.assertEqual(self.access_paths(self.read(logf)), before + after, "each line once, in order")
        og.signal(signal.SIGTERM)
        self.assertEqual(og.wait(20), 0, og.stderr())
        self.assertEqual(self.access_paths(self.read(logf)), before + after)

    def receive(self, sock, want, timeout=5):
        """Datagrams until one contains want; returns them all."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got.append(sock.recv(65536).decode(errors="replace"))
            except socket.timeout:
                break
            if want in got[-1]:
                return got
        self.fail("no datagram with %r; got %r" % (want, got))

    def test_syslog_local_socket_then_udp(self):
        path = os.path.join(self.tmp.name, "log.sock")
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        unix.bind(path)
        self.addCleanup(unix.close)
        og = self.start_onegate(self.conf('syslog = "%s"; facility = "local3";' % path), self.port)
        lines = self.receive(unix, "onegate serving")
        # local3 (19) * 8 + info (6) = 158, RFC 3164 header with our pid
        self.assertRegex(lines[-1], r"^<158>\w{3} [ \d]\d \d\d:\d\d:\d\d onegate\[%d\]: onegate serving" % og.proc.pid)
        get(self.port, path="/via-syslog")
        self.assertRegex(self.receive(unix, "/via-syslog")[-1], r"^<158>.* http client=127\.0\.0\.1:")
        get(self.port, host="nothing.test")
        self.receive(unix, "status=404")

        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((LOOP4, 0))
        self.addCleanup(udp.close)
        with open(og.conf, "w") as f:
            f.write(self.conf('syslog = "127.0.0.1:%d"; level = "debug";' % udp.getsockname()[1]))
        og.signal(signal.SIGHUP)
        # daemon (3) * 8 + info (6) = 30
        self.assertRegex(self.receive(udp, "reloaded")[-1], r"^<30>.*onegate\[\d+\]: reloaded ")
        get(self.port, path="/via-udp")
        self.receive(udp, "/via-udp")
        self.assertNotIn("onegate serving", og.stderr(), "syslog lines do not go to stderr too")

    def test_bad_log_file_at_reload_keeps_everything(self):
        og = self.start_onegate(self.conf('level = "info";'), self.port)
        with open(og.conf, "w") as f:
            f.write(self.conf('file = "%s/no/such/folder/onegate.log";' % self.tmp.name))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload of" in og.stderr(), 10))
        self.assertRegex(og.stderr(), r"reload of .* refused: cannot open the log file .*No such file or directory")
        get(self.port, path="/still-here")
        self.assertTrue(wait_until(lambda: "path=/still-here" in og.stderr(), 5), "still logging to stderr")


class StateFolder(OnegateTestCase):
    def setUp(self):
        self.a, self.b = HTTPBackend("a"), HTTPBackend("b")
        self.addCleanup(self.a.kill)
        self.addCleanup(self.b.kill)
        self.port, self.admin_port = free_port(), free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="onegate-state-")
        self.addCleanup(self.tmp.cleanup)
        self.state = os.path.join(self.tmp.name, "state")

    def conf(self, port=None):
        return """
onegate = { workers = 2; state = "%s"; admin = { listen = "127.0.0.1:%d"; }; };
pools = ( { name = "app"; servers = ( "127.0.0.1:%d", "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "app.test"; pool = "app"; } ); } );
""" % (self.state, self.admin_port, self.a.port, self.b.port, port or self.port)

    def start(self):
        og = self.start_onegate(self.conf(), self.port)
        # the service port takes connections once bound; the admin listener opens a moment later
        og.wait_ready(self.admin_port, 10)
        return og

    def admin(self, method, path):
        req = urllib.request.Request("http://%s:%d%s" % (LOOP4, self.admin_port, path), method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())

    def states(self):
        pools = self.admin("GET", "/api/status")["pools"]
        return {s["name"]: s["state"] for p in pools for s in p["servers"]}

    def backends_used(self, n=20):
        return {json.loads(get(self.port)[1])["backend"] for _ in range(n)}

    def test_drained_server_stays_drained_across_restart(self):
        a, b = "127.0.0.1:%d" % self.a.port, "127.0.0.1:%d" % self.b.port
        og = self.start()
        self.assertEqual(self.backends_used(), {"a", "b"})
        self.admin("POST", "/api/pools/app/servers/%s/drain" % b)
        with open(os.path.join(self.state, "servers.state")) as f:
            self.assertIn("drain\tapp\t%s\n" % b, f.read())

        # a second gateway on the same folder is refused while the first runs
        other = Onegate(self.conf(port=free_port()))
        self.addCleanup(other.cleanup)
        other.start(expect_ready=False)
        self.assertEqual(other.wait(10), 1)
        self.assertIn("another onegate (pid %d) is running with the state folder" % og.proc.pid, other.stderr())

        self.assertEqual(og.stop(), 0)
        self.assertFalse(os.path.exists(os.path.join(self.state, "onegate.pid")))
        og2 = self.start()
        self.assertEqual(self.states()[b], "draining", "the admin's drain survived the restart")
        self.assertEqual(self.states()[a], "unchecked")
        self.assertEqual(self.backends_used(), {"a"})

        self.admin("POST", "/api/pools/app/servers/%s/enable" % b)
        with open(os.path.join(self.state, "servers.state")) as f:
            self.assertNotIn(b, f.read())
        self.assertEqual(og2.stop(), 0)
        self.start()
        self.assertEqual(self.backends_used(), {"a", "b"})

    def test_server_gone_from_rules_is_skipped(self):
        os.mkdir(self.state)
        with open(os.path.join(self.state, "servers.state"), "w") as f:
            f.write("disable\tapp\t127.0.0.1:%d\ndisable\tgone\t127.0.0.1:1\nnonsense\n" % self.a.port)
        og = self.start()
        self.assertEqual(self.states()["127.0.0.1:%d" % self.a.port], "disabled")
        self.assertIn("servers.state:2: disable gone/127.0.0.1:1 is not in the rules any more; skipped", og.stderr())
        self.assertIn("servers.state:3: not ACTION<TAB>POOL<TAB>SERVER; line skipped", og.stderr())
        self.assertEqual(self.backends_used(), {"b"})


class DefaultTimeouts(OnegateTestCase):
    """Timeouts set once under onegate hold for every service and route that sets none."""

    def test_header_and_request_timeouts_from_onegate(self):
        silent = socket.socket()
        silent.bind((LOOP4, 0))
        silent.listen(16)
        self.addCleanup(silent.close)
        port = free_port()
        og = self.start_onegate("""
onegate = { workers = 1; header_timeout = "1s"; request_timeout = "1s"; };
pools = ( { name = "silent"; servers = ( "127.0.0.1:%d" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "app.test"; pool = "silent"; } ); } );
""" % (silent.getsockname()[1], port), port)
        # the services' and routes' defaults would be 30 s and 120 s
        t0 = time.monotonic()
        s = socket.create_connection((LOOP4, port), timeout=20)
        s.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n")
        self.assertRegex(s.recv(4096), rb"^HTTP/1.1 408 ")
        self.assertLess(time.monotonic() - t0, 10)
        s.close()
        t0 = time.monotonic()
        self.assertEqual(get(port)[0], 504)
        self.assertLess(time.monotonic() - t0, 10)


if __name__ == "__main__":
    unittest.main()
