"""An active/backup pair of gateways on a floating address, on real (virtual)
networks: two gateways in two namespaces, keepalived in each with
rules/examples/ha/keepalived.conf (VRRP, a track_script asking onegate's
GET /api/health), the same rule file (rules/examples/ha/onegate.conf) and
ticket-key file on both, and a client
in a third namespace (which also holds the segment's bridge and the back end)
running steady HTTPS traffic to the floating address 192.0.2.10.

Three failovers, each from whichever gateway holds the address: its onegate
killed, its keepalived stopped, its health endpoint made to fail (standby).
Each time the other gateway takes the address, new connections succeed, and
TLS sessions resume there with tickets the first gateway issued. Every
failover is reported: how long until the other gateway answered, connections
that failed (in flight at the event, and started before the takeover), and the
resumption rate after it. Skipped where network namespaces are not allowed."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from harness import ONEGATE_BIN, SANITIZER, SOURCE_DIR, fault_report, make_pki, require_binary, wait_until
from netns import Topology, netns_unavailable

HERE = os.path.dirname(os.path.abspath(__file__))
VIP, GW1, GW2, CLIENT, BACKEND = "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.100", "192.0.2.200"
NAME = "app.contoso.test"
# Long enough to include VRRP's first election (3 adverts and a skew) and a check or two.
TAKEOVER_WAIT = 20



def tools_missing():
    for tool in ("keepalived", "curl", "sysctl"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            return "%s is not installed (scripts/deps.sh test installs it)" % tool
    return None


class Node:
    """One gateway: its namespace, onegate and keepalived."""

    def __init__(self, test, name, ns, addr, priority):
        self.test, self.name, self.ns, self.addr, self.priority = test, name, ns, addr, priority
        self.dir = os.path.join(test.tmp, name)
        os.makedirs(self.dir)
        self.onegate = self.keepalived = None
        self.og_log = os.path.join(self.dir, "onegate.log")
        self.ka_log = os.path.join(self.dir, "keepalived.log")

    def start_onegate(self):
        t = self.test
        out = open(self.og_log, "ab")
        self.onegate = t.topo.popen(self.ns, [ONEGATE_BIN, "run", "-c", t.rules], stdout=out, stderr=out)
        out.close()

    def start_keepalived(self):
        t = self.test
        conf = os.path.join(self.dir, "keepalived.conf")
        text = t.keepalived_conf.replace("router_id onegate1", "router_id " + self.name)
        text = text.replace("priority 150", "priority %d" % self.priority)
        with open(conf, "w") as f:
            f.write(text)
        out = open(self.ka_log, "ab")
        self.keepalived = t.topo.popen(self.ns, [
            "keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", conf,
            "--pid", os.path.join(self.dir, "keepalived.pid"), "--vrrp_pid", os.path.join(self.dir, "vrrp.pid"),
            "--checkers_pid", os.path.join(self.dir, "checkers.pid")], stdout=out, stderr=out)
        out.close()

    def healthy(self):
        r = self.test.topo.run(self.ns, "curl", "-fsS", "-o", "/dev/null", "--max-time", "1",
                               "http://127.0.0.1:8404/api/health", check=False)
        return r.returncode == 0

    def holds_vip(self):
        r = self.test.topo.run(self.ns, "ip", "-4", "-o", "addr", "show", "dev", "eth0", check=False)
        return (" %s/" % VIP) in r.stdout

    def stop_process(self, p, sig=signal.SIGTERM):
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def text(self, path):
        try:
            with open(path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class HAPair(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_binary()
        why = netns_unavailable() or tools_missing()
        if why:
            raise unittest.SkipTest(why)
        cls.tmp = tempfile.mkdtemp(prefix="onegate-ha-")
        cls.topo = Topology("ha")
        try:
            cls._build()
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    @classmethod
    def _teardown(cls):
        client = getattr(cls, "client", None)
        if client is not None:
            open(cls.stopfile, "w").close()
        cls.topo.close()
        for n in getattr(cls, "nodes", []):
            text = n.text(n.og_log)
            m = SANITIZER.search(text)
            if m:
                print("sanitizer report in %s's onegate:\n%s" % (n.name, text[m.start():][:6000]))
                cls.sanitizer = True
        shutil.rmtree(cls.tmp, True)

    @classmethod
    def _build(cls):
        t = cls.topo
        c, g1, g2 = t.ns("client"), t.ns("gw1"), t.ns("gw2")
        cls.c = c
        t.run(c, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        t.run(c, "ip", "link", "set", "br0", "up")
        for g, port in ((g1, "p1"), (g2, "p2")):
            t.link(g, "eth0", c, port)
            t.run(c, "ip", "link", "set", port, "master", "br0")
            # The backup listens on the floating address before it holds it.
            t.sysctl(g, "net.ipv4.ip_nonlocal_bind", 1)
        t.addr(c, "br0", CLIENT + "/24")
        t.addr(c, "br0", BACKEND + "/24")
        t.addr(g1, "eth0", GW1 + "/24")
        t.addr(g2, "eth0", GW2 + "/24")

        pki = make_pki(os.path.join(cls.tmp, "pki"), {"site": [NAME]})
        cls.ca = pki.ca
        gwdir = os.path.join(cls.tmp, "rules")
        os.makedirs(gwdir)
        shutil.copy(pki.certs["site"][0], os.path.join(gwdir, "site.pem"))
        shutil.copy(pki.certs["site"][1], os.path.join(gwdir, "site.key"))
        shutil.copy(pki.ca, os.path.join(gwdir, "ca.pem"))
        with open(os.path.join(gwdir, "tickets.key"), "wb") as f:
            f.write(os.urandom(80))
        # The example as it ships, beside the certificates and keys it names.
        cls.rules = os.path.join(gwdir, "onegate.conf")
        shutil.copy(os.path.join(SOURCE_DIR, "rules", "examples", "ha", "onegate.conf"), cls.rules)
        with open(os.path.join(SOURCE_DIR, "rules", "examples", "ha", "keepalived.conf")) as f:
            cls.keepalived_conf = f.read()

        spec = os.path.join(cls.tmp, "backend.json")
        with open(spec, "w") as f:
            json.dump([{"name": "app", "addr": BACKEND, "port": 8080}], f)
        p = t.popen(c, ["/usr/bin/python3", os.path.join(HERE, "nsback.py"), spec,
                        os.path.join(cls.tmp, "backend.log")], stdout=subprocess.PIPE, cwd=HERE)
        if p.stdout.readline().strip() != b"ready":
            raise RuntimeError("the back end did not start")

        cls.nodes = [Node(cls, "onegate1", g1, GW1, 150), Node(cls, "onegate2", g2, GW2, 100)]
        for n in cls.nodes:
            n.start_onegate()
        for n in cls.nodes:
            if not wait_until(n.healthy, 15, 0.1):
                raise RuntimeError("%s's onegate is not healthy:\n%s" % (n.name, n.text(n.og_log)))
        for n in cls.nodes:
            n.start_keepalived()
        if not wait_until(lambda: any(n.holds_vip() for n in cls.nodes), TAKEOVER_WAIT, 0.1):
            raise RuntimeError("no gateway took %s:\n%s" % (VIP, "\n".join(n.text(n.ka_log) for n in cls.nodes)))

        # The client: steady HTTPS, its records collected here.
        cls.stopfile = os.path.join(cls.tmp, "client.stop")
        cls.records = []
        cls.lock = threading.Lock()
        cls.client = t.popen(c, ["/usr/bin/python3", os.path.join(HERE, "haclient.py"), VIP, NAME, cls.ca,
                                 cls.stopfile], stdout=subprocess.PIPE, cwd=HERE)

        def collect():
            for line in cls.client.stdout:
                with cls.lock:
                    cls.records.append(json.loads(line))
        threading.Thread(target=collect, daemon=True).start()

    # ----------------------------------------------------------------- helpers

    def since(self, t0):
        with self.lock:
            return [r for r in self.records if r["end"] >= t0]

    def active(self):
        holders = [n for n in self.nodes if n.holds_vip()]
        self.assertEqual(len(holders), 1, "the address is on %d gateways:\n%s" % (
            len(holders), "\n".join(n.name + ":\n" + n.text(n.ka_log)[-3000:] for n in self.nodes)))
        return holders[0]

    def settle(self):
        """Both gateways healthy, one holds the address, the client gets answers through it."""
        ok = wait_until(lambda: all(n.healthy() for n in self.nodes), 15, 0.1)
        self.assertTrue(ok, "not both healthy:\n" + "\n".join(n.text(n.og_log)[-2000:] for n in self.nodes))
        found = []

        def one_holder_other_ready():
            # One gateway holds the address, and the other's keepalived is out of FAULT again
            # (rise 2), ready to take over; judged together, at one moment.
            holders = [n for n in self.nodes if n.holds_vip()]
            if len(holders) != 1:
                return False
            other = [n for n in self.nodes if n is not holders[0]][0]
            log = other.text(other.ka_log)
            found[:] = [holders[0], other]
            return log.rfind("Entering BACKUP STATE") > log.rfind("Entering FAULT STATE")
        ok = wait_until(one_holder_other_ready, TAKEOVER_WAIT, 0.1)
        self.assertTrue(ok, "no stable pair:\n" + "\n".join(n.name + ":\n" + n.text(n.ka_log)[-3000:]
                                                          for n in self.nodes))
        node, other = found
        t0 = time.monotonic()
        ok = wait_until(lambda: sum(r["ok"] and r["via"] == node.addr for r in self.since(t0)) >= 10, 15, 0.05)
        self.assertTrue(ok, "no steady traffic through %s: %s\nclient's neighbours: %s\n%s" % (
            node.name, self.since(t0)[-5:], self.topo.run(self.c, "ip", "neigh", check=False).stdout,
            "\n".join("%s holds the address: %s\n%s" % (n.name, n.holds_vip(), n.text(n.ka_log)[-3000:])
                      for n in self.nodes)))
        return node, other

    def failover(self, what, act, restore):
        """act(node) on the gateway holding the address; the other must take over."""
        old, new = self.settle()
        t0 = time.monotonic()
        act(old)
        took = wait_until(lambda: any(r["ok"] and r["via"] == new.addr and r["start"] >= t0 for r in self.since(t0)),
                          TAKEOVER_WAIT, 0.05)
        after = self.since(t0)
        self.assertTrue(took, "%s: %s never answered after %s; last records %s\n%s\n%s"
                        % (what, new.name, what, after[-5:], old.text(old.ka_log)[-3000:], new.text(new.ka_log)[-3000:]))
        first = min((r for r in after if r["ok"] and r["via"] == new.addr and r["start"] >= t0), key=lambda r: r["start"])
        # 20 more connections through the new gateway.
        t1 = first["end"]
        wait_until(lambda: len([r for r in self.since(t1) if r["start"] > t1]) >= 20, 15, 0.05)
        later = [r for r in self.since(t1) if r["start"] > t1][:20]
        in_flight = [r for r in after if not r["ok"] and r["start"] < t0]
        window = [r for r in after if not r["ok"] and t0 <= r["start"] < first["start"]]
        resumed = sum(r["resumed"] for r in [first] + later)
        fault_report("HA failover: " + what,
                     "%d connections from the event until 20 after the takeover" % (len(after) + len(later)),
                     "%d in flight at the event, %d started before %s answered; %s answered %.2f s after the event; "
                     "TLS resumed on %s: %d of %d (the first with %s's ticket: %s)"
                     % (len(in_flight), len(window), new.name, new.name, first["end"] - t0, new.name, resumed,
                        1 + len(later), old.name, first["resumed"]))
        self.assertEqual(len(later), 20, "the traffic stopped after the takeover")
        self.assertTrue(all(r["ok"] and r["via"] == new.addr for r in later),
                        "connections after the takeover failed or went elsewhere: %s" % later)
        # The first connection through the new gateway resumed the old one's session: shared keys.
        self.assertTrue(first["resumed"], first)
        self.assertEqual(resumed, 1 + len(later))
        restore(old)
        return old, new

    # ------------------------------------------------------------------- tests

    def test_1_onegate_killed(self):
        def kill(node):
            node.stop_process(node.onegate, signal.SIGKILL)

        def restart(node):
            node.start_onegate()
        self.failover("onegate killed", kill, restart)

    def test_2_keepalived_stopped(self):
        def stop(node):
            node.stop_process(node.keepalived, signal.SIGTERM)

        def restart(node):
            node.start_keepalived()
        self.failover("keepalived stopped", stop, restart)

    def test_3_health_endpoint_fails(self):
        def standby(node):
            r = self.topo.run(node.ns, "curl", "-sS", "-X", "POST", "http://127.0.0.1:8404/api/health/standby",
                              check=False)
            self.assertIn('"health":"fail"', r.stdout, r.stderr)

        def active(node):
            r = self.topo.run(node.ns, "curl", "-fsS", "-X", "POST", "http://127.0.0.1:8404/api/health/active")
            self.assertIn('"health":"ok"', r.stdout)
        old, _ = self.failover("health endpoint failing (standby)", standby, active)
        # Standby moved the address, it did not stop the gateway: it served until then and serves still.
        self.assertIn("admin: standby", old.text(old.og_log))

    def test_4_no_sanitizer_report_so_far(self):
        for n in self.nodes:
            self.assertIsNone(SANITIZER.search(n.text(n.og_log)), n.text(n.og_log)[-6000:])


if __name__ == "__main__":
    unittest.main()
