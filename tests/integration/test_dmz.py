"""A two-perimeter DMZ on real (virtual) networks: rules/examples/dmz.conf as it
ships, in namespaces built with ip netns and veth pairs (docs/dmz.md has the
drawing):

  client 192.0.2.10 -- edge router -- outer DMZ 198.51.100.0/26 (gateway .10)
                           |
                        transit 198.51.100.128/30
                           |
  inner DMZ 198.51.100.64/26 (gateway .74) -- inner firewall -- LAN 203.0.113.0/24 (servers)

The gateway's default route is on the outer side; a policy rule sends what
leaves from the inner address to the inner firewall. The firewall (nftables)
forwards to the LAN only what comes from the inner DMZ, drops anything from the
outer DMZ, and drops spoofed sources (reverse-path check). With `source` set,
the published Exchange, Skype and AD FS routes work and the servers see the
client only in X-Forwarded-For or a PROXY header; without it the firewall drops
the gateway's connections and the gateway reports the servers down with the
reason. Skipped where network namespaces are not allowed (not root, or ip netns
add refused)."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import ONEGATE_BIN, SANITIZER, SOURCE_DIR, make_pki, require_binary, wait_until
from netns import Topology, netns_unavailable

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT, PUBLIC, INNER = "192.0.2.10", "198.51.100.10", "198.51.100.74"
EXCHANGE, SKYPE, ADFS = "203.0.113.11", "203.0.113.12", "203.0.113.13"
TABLE = "ogdmz"

FIREWALL = """
table inet %(t)s {
  counter from_outer_dmz { }
  counter spoofed { }
  chain prerouting {
    type filter hook prerouting priority -150; policy accept;
    # A source this firewall would not route back out of the interface it came in on is forged.
    fib saddr . iif oif missing counter name "spoofed" drop
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "inner" oifname "lan" ip saddr 198.51.100.64/26 ip daddr 203.0.113.0/24 tcp dport { 80, 443, 4443, 8080 } accept
    ip saddr 198.51.100.0/26 counter name "from_outer_dmz" drop
  }
}
""" % {"t": TABLE}


def tools_missing():
    for tool in ("nft", "curl", "sysctl"):
        if not shutil.which(tool):
            return "%s is not installed (scripts/deps.sh test installs it)" % tool
    return None


class DMZ(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_binary()
        why = netns_unavailable() or tools_missing()
        if why:
            raise unittest.SkipTest(why)
        cls.tmp = tempfile.mkdtemp(prefix="onegate-dmz-")
        cls.topo = Topology("dmz")
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
        cls.topo.close()
        shutil.rmtree(cls.tmp, True)

    @classmethod
    def _build(cls):
        t = cls.topo
        c, edge, gw, fw, srv = (t.ns(n) for n in ("client", "edge", "gw", "fw", "srv"))
        cls.c, cls.edge, cls.gw, cls.fw, cls.srv = c, edge, gw, fw, srv
        t.link(c, "out", edge, "out")
        t.link(edge, "dmz", gw, "outer")
        t.link(gw, "inner", fw, "inner")
        t.link(edge, "fw", fw, "edge")
        t.link(fw, "lan", srv, "lan")
        t.addr(c, "out", CLIENT + "/24")
        t.addr(edge, "out", "192.0.2.1/24")
        t.addr(edge, "dmz", "198.51.100.1/26")
        t.addr(gw, "outer", PUBLIC + "/26")
        t.addr(gw, "inner", INNER + "/26")
        t.addr(fw, "inner", "198.51.100.65/26")
        t.addr(edge, "fw", "198.51.100.129/30")
        t.addr(fw, "edge", "198.51.100.130/30")
        t.addr(fw, "lan", "203.0.113.1/24")
        for a in (EXCHANGE, SKYPE, ADFS):
            t.addr(srv, "lan", a + "/24")
        t.run(c, "ip", "route", "add", "default", "via", "192.0.2.1")
        t.run(edge, "ip", "route", "add", "203.0.113.0/24", "via", "198.51.100.130")
        t.run(edge, "ip", "route", "add", "198.51.100.64/26", "via", "198.51.100.130")
        t.run(gw, "ip", "route", "add", "default", "via", "198.51.100.1")
        # What leaves from the inner address goes to the inner firewall; everything else out.
        t.run(gw, "ip", "route", "add", "203.0.113.0/24", "via", "198.51.100.65", "dev", "inner", "table", "100")
        t.run(gw, "ip", "rule", "add", "from", INNER, "lookup", "100")
        t.run(fw, "ip", "route", "add", "default", "via", "198.51.100.129")
        t.run(srv, "ip", "route", "add", "default", "via", "203.0.113.1")
        for ns in (edge, fw):
            t.sysctl(ns, "net.ipv4.ip_forward", 1)
        t.run(fw, "nft", "-f", "-", input_text=FIREWALL)

        names = {"exchange": ["mail.contoso.com"], "skype": ["webext.contoso.com"],
                 "adfs": ["sts.contoso.com"], "public": ["*.contoso.com", "contoso.com"]}
        pki = make_pki(os.path.join(cls.tmp, "pki"), names)
        cls.ca = pki.ca
        spec = [
            {"name": "exchange", "addr": EXCHANGE, "port": 443, "cert": pki.certs["exchange"][0],
             "key": pki.certs["exchange"][1]},
            {"name": "skype", "addr": SKYPE, "port": 4443, "cert": pki.certs["skype"][0],
             "key": pki.certs["skype"][1]},
            {"name": "skype-http", "addr": SKYPE, "port": 8080},
            {"name": "adfs", "addr": ADFS, "port": 443, "cert": pki.certs["adfs"][0], "key": pki.certs["adfs"][1]},
            {"name": "adfs-probe", "addr": ADFS, "port": 80},
        ]
        spec_path = os.path.join(cls.tmp, "servers.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        cls.server_log = os.path.join(cls.tmp, "servers.log")
        p = t.popen(srv, ["/usr/bin/python3", os.path.join(HERE, "nsback.py"), spec_path, cls.server_log],
                    stdout=subprocess.PIPE, cwd=HERE)
        if p.stdout.readline().strip() != b"ready":
            raise RuntimeError("the servers did not start")

        # The example as it ships, beside the certificates it names.
        cls.conf_dir = os.path.join(cls.tmp, "gw")
        os.makedirs(cls.conf_dir)
        shutil.copy(pki.certs["public"][0], os.path.join(cls.conf_dir, "public.pem"))
        shutil.copy(pki.certs["public"][1], os.path.join(cls.conf_dir, "public.key"))
        shutil.copy(pki.ca, os.path.join(cls.conf_dir, "ca.pem"))
        with open(os.path.join(SOURCE_DIR, "rules", "examples", "dmz.conf")) as f:
            cls.example = f.read()

    # ----------------------------------------------------------------- helpers

    def start_gateway(self, text, name):
        conf = os.path.join(self.conf_dir, name)
        with open(conf, "w") as f:
            f.write(text)
        err_path = os.path.join(self.tmp, name + ".stderr")
        err = open(err_path, "wb")
        self.addCleanup(err.close)
        p = self.topo.popen(self.gw, [ONEGATE_BIN, "run", "-c", conf], stdout=err, stderr=err)
        self.gateway, self.gateway_err = p, err_path
        self.addCleanup(self.stop_gateway)
        ok = wait_until(lambda: p.poll() is not None or self.admin("/api/health")[0] == 200, 15, 0.1)
        self.assertTrue(ok and p.poll() is None, "the gateway did not come up:\n" + self.gateway_log())

    def stop_gateway(self):
        p = self.gateway
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        m = SANITIZER.search(self.gateway_log())
        if m:
            raise AssertionError("sanitizer report in onegate stderr:\n" + self.gateway_log()[m.start():][:6000])

    def gateway_log(self):
        with open(self.gateway_err, "rb") as f:
            return f.read().decode(errors="replace")

    def admin(self, path):
        r = self.topo.run(self.gw, "curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}",
                          "http://127.0.0.1:8404" + path, check=False)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body

    def pools(self):
        code, body = self.admin("/api/status")
        return {p["name"]: p for p in json.loads(body)["pools"]} if code == 200 else {}

    def client_get(self, url, host, port):
        r = self.topo.run(self.c, "curl", "-sS", "--max-time", "10", "--noproxy", "*", "--cacert", self.ca,
                          "--resolve", "%s:%d:%s" % (host, port, PUBLIC), "-o", "-", "-w", "\n%{http_code}", url,
                          check=False, timeout=20)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body, r.stderr

    def server_connections(self):
        with open(self.server_log) as f:
            return [line.split() for line in f if line.strip()]

    def counter(self, name):
        r = self.topo.run(self.fw, "nft", "list", "counter", "inet", TABLE, name)
        return int(re.search(r"packets (\d+)", r.stdout).group(1))

    # ------------------------------------------------------------------- tests

    def test_published_routes_from_the_inner_address(self):
        # The adfs pool also sends a PROXY header here: nsback reads it (AD FS itself would not).
        text = self.example.replace('servers = ( "203.0.113.13:443" );',
                                    'servers = ( "203.0.113.13:443" ); proxy_protocol = 2;')
        self.assertNotEqual(text, self.example)
        seen_before = len(self.server_connections())
        self.start_gateway(text, "dmz.conf")
        up = wait_until(lambda: all(p["state"] == "up" for p in self.pools().values()) and len(self.pools()) == 4,
                        15, 0.2)
        self.assertTrue(up, "pools not up: %s\n%s" % (self.pools(), self.gateway_log()))

        cases = [
            ("https://mail.contoso.com/owa/", "mail.contoso.com", 443, "exchange", "xff"),
            ("https://webext.contoso.com/meet/", "webext.contoso.com", 443, "skype", "xff"),
            ("http://lyncdiscover.contoso.com/", "lyncdiscover.contoso.com", 80, "skype-http", "xff"),
            ("https://sts.contoso.com/adfs/ls/", "sts.contoso.com", 443, "adfs", "proxy_src"),
        ]
        for url, host, port, server, via in cases:
            with self.subTest(url=url):
                code, body, err = self.client_get(url, host, port)
                self.assertEqual(code, 200, "%s: %s %s\n%s" % (url, body, err, self.gateway_log()[-3000:]))
                seen = json.loads(body)
                self.assertEqual(seen["name"], server)
                # The connection comes from the inner address, never from the client's.
                self.assertEqual(seen["peer"], INNER)
                self.assertEqual(seen[via], CLIENT)
        conns = self.server_connections()[seen_before:]
        self.assertTrue(conns)
        self.assertEqual({peer for _, peer in conns}, {INNER}, conns)

    def test_without_source_the_firewall_drops_and_servers_are_down(self):
        text = re.sub(r'\n\s*source = "198\.51\.100\.74";', "", self.example)
        self.assertNotIn("source =", re.sub(r"#.*", "", text))
        seen_before = len(self.server_connections())
        dropped_before = self.counter("from_outer_dmz")
        self.start_gateway(text, "dmz-nosource.conf")
        down = wait_until(lambda: len(self.pools()) == 4 and all(p["state"] == "down" for p in self.pools().values()),
                          20, 0.2)
        pools = self.pools()
        self.assertTrue(down, "pools not all down: %s" % pools)
        for name, p in pools.items():
            for s in p["servers"]:
                self.assertRegex(s["last_check"], r"no answer|timed out|unreachable", (name, s))
        self.assertRegex(self.gateway_log(), r"pool exchange server 203\.0\.113\.11:443 DOWN: \S")
        code, body, _ = self.client_get("https://mail.contoso.com/owa/", "mail.contoso.com", 443)
        self.assertEqual(code, 503, body)
        # Left from the public address, which the inner firewall drops: nothing reached a server.
        self.assertGreater(self.counter("from_outer_dmz"), dropped_before)
        self.assertEqual(self.server_connections()[seen_before:], [])

    def test_spoofed_inner_source_from_the_outside_is_dropped(self):
        # Someone on the outer side claiming the gateway's inner address gets nowhere.
        self.topo.run(self.edge, "ip", "addr", "add", INNER + "/32", "dev", "lo")
        self.addCleanup(self.topo.run, self.edge, "ip", "addr", "del", INNER + "/32", "dev", "lo", check=False)
        before, seen_before = self.counter("spoofed"), len(self.server_connections())
        r = self.topo.run(self.edge, "curl", "-sS", "--max-time", "2", "--interface", INNER,
                          "http://%s:80/" % ADFS, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertGreater(self.counter("spoofed"), before)
        self.assertEqual(self.server_connections()[seen_before:], [])


if __name__ == "__main__":
    unittest.main()
