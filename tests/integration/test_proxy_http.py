"""PROXY protocol to HTTP back ends: a pool's proxy_protocol (1 or 2) on terminated
HTTP routes, against a real back end that requires the header (Debian's nginx with
`listen ... proxy_protocol` and `real_ip_header proxy_protocol`, started here as a
test process with its own prefix on loopback ports). Plain and TLS-terminated
services, a back end reached over TLS, the true client address behind a
PROXY-sending HAProxy, v2's TLV fields, server connections never shared between
clients, health checks that send a header of their own, and `onegate check`
reporting keys that would do nothing."""
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.request

from harness import (LOOP4, ONEGATE_BIN, OnegateTestCase, client_context, free_port, make_pki, wait_until)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def wait_port(port, timeout=10):
    def up():
        try:
            socket.create_connection((LOOP4, port), timeout=0.5).close()
            return True
        except OSError:
            return False
    return wait_until(up, timeout)


class Process:
    """A back end or front end started by the test, stopped (and reaped) at cleanup."""

    def __init__(self, args, log):
        self.log = log
        self.out = open(log, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")


def start_nginx(d, port, cert=None):
    """nginx in the foreground with its own prefix d, requiring a PROXY header on port
    (over TLS when cert = (chain, key)). Every answer names the client nginx took from
    the header and the number of the connection it came on."""
    os.makedirs(d, exist_ok=True)
    ssl_conf = ""
    if cert:
        ssl_conf = "ssl_certificate %s; ssl_certificate_key %s;" % cert
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
worker_processes 1;
daemon off;
master_process off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 256; }
http {
  access_log %(d)s/access.log;
  client_body_temp_path %(d)s/body; proxy_temp_path %(d)s/proxy; fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi; scgi_temp_path %(d)s/scgi;
  server {
    listen 127.0.0.1:%(port)d %(ssl)s proxy_protocol;
    %(ssl_conf)s
    set_real_ip_from 127.0.0.0/8;
    real_ip_header proxy_protocol;
    location / { default_type text/plain; return 200 "addr=$remote_addr conn=$connection\\n"; }
  }
}
""" % {"d": d, "port": port, "ssl": "ssl" if cert else "", "ssl_conf": ssl_conf})
    return Process([NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")], os.path.join(d, "stderr"))


class Client:
    """A keep-alive HTTP/1.1 client from a loopback address of its own (127.0.0.x), so
    that the address a back end logs says whether the true client went through."""

    def __init__(self, port, source=LOOP4, ctx=None, sni=None):
        raw = socket.socket()
        raw.settimeout(10)
        raw.bind((source, 0))
        raw.connect((LOOP4, port))
        self.s = ctx.wrap_socket(raw, server_hostname=sni) if ctx else raw
        self.buf = b""

    def close(self):
        self.s.close()

    def get(self, host, path="/"):
        self.s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), host.encode()))
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed; had %r" % self.buf)
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, v = line.split(b":", 1)
            if k.strip().lower() == b"content-length":
                n = int(v)
        while len(self.buf) < n:
            self.buf += self.s.recv(65536)
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(head.split(b" ")[1]), body.decode()


def nginx_answer(body):
    """{'addr': ..., 'conn': ...} from the nginx answer's line."""
    return dict(kv.split("=", 1) for kv in body.split())


def tlvs(raw):
    """The TLV fields of a v2 header: {type: value}."""
    length = struct.unpack("!H", raw[14:16])[0]
    fam = raw[13]
    at = 16 + (12 if fam == 0x11 else 36 if fam == 0x21 else 0)
    out = {}
    while at < 16 + length:
        t, n = raw[at], struct.unpack("!H", raw[at + 1:at + 3])[0]
        out[t] = raw[at + 3:at + 3 + n]
        at += 3 + n
    return out


@unittest.skipUnless(os.path.exists(NGINX) and os.path.exists(HAPROXY), "needs nginx and haproxy (scripts/deps.sh)")
class ProxyProtocolToHttpBackends(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-pphttp-")
        d = cls.tmp.name
        cls.pki = make_pki(os.path.join(d, "pki"), {"contoso": ["*.contoso.test"], "backend": ["backend.test"]})
        cls.ports = {k: free_port() for k in ("n1", "n2", "n2tls", "http", "https", "behind", "haproxy", "admin")}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        d, p = self.tmp.name, self.ports
        self.nginx = {}
        for name, cert in (("n1", None), ("n2", None), ("n2tls", self.pki.certs["backend"])):
            n = start_nginx(os.path.join(d, "%s-%d" % (name, time.monotonic_ns())), p[name], cert)
            self.addCleanup(n.stop)
            self.assertTrue(wait_port(p[name]), n.text())
            self.nginx[name] = n
        self.tlv = self.start_backend("backend", self.pki, expect_proxy=True)
        hp = os.path.join(d, "haproxy-%d.cfg" % time.monotonic_ns())
        with open(hp, "w") as f:
            f.write("""
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:%d
  default_backend be
backend be
  server og 127.0.0.1:%d send-proxy-v2
""" % (p["haproxy"], p["behind"]))
        h = Process([HAPROXY, "-db", "-f", hp], hp + ".log")
        self.addCleanup(h.stop)
        self.assertTrue(wait_port(p["haproxy"]), h.text())
        health = 'health = { path = "/health"; interval = "1s"; timeout = "1s"; rise = 1; fall = 1; };'
        tls = 'tls = { sni = "backend.test"; ca_file = "%s"; };' % self.pki.ca
        routes = """routes = ( { host = "v1.contoso.test"; pool = "v1"; }, { host = "v2.contoso.test"; pool = "v2"; },
                               { host = "tls.contoso.test"; pool = "v2tls"; }, { host = "tlv.contoso.test"; pool = "tlv"; } );"""
        conf = """
onegate = { workers = 1; admin = { listen = "127.0.0.1:%(admin)d"; }; };
certificates = ( { name = "contoso"; cert = "%(pki)s/contoso.chain.pem"; key = "%(pki)s/contoso.key"; ca_file = "%(pki)s/root.pem"; } );
pools = ( { name = "v1"; servers = ( "127.0.0.1:%(n1)d" ); proxy_protocol = 1; %(health)s },
          { name = "v2"; servers = ( "127.0.0.1:%(n2)d" ); proxy_protocol = 2; %(health)s },
          { name = "v2tls"; servers = ( "127.0.0.1:%(n2tls)d" ); proxy_protocol = 2; %(tls)s %(health)s },
          { name = "tlv"; servers = ( "127.0.0.1:%(tlv)d" ); proxy_protocol = 2; %(tls)s } );
services = ( { name = "http"; listen = [ "127.0.0.1:%(http)d" ]; %(routes)s },
             { name = "https"; listen = [ "127.0.0.1:%(https)d" ]; tls = { certificates = [ "contoso" ]; }; %(routes)s },
             { name = "behind"; listen = [ "127.0.0.1:%(behind)d" ]; accept_proxy = true; %(routes)s } );
""" % dict(p, pki=self.pki.dir, health=health, tls=tls, routes=routes, tlv=self.tlv.port)
        self.og = self.start_onegate(conf, p["http"])
        self.og.wait_ready(p["admin"], 10)
        self.ctx = client_context(self.pki.ca)

    def client(self, port, source="127.0.0.3", sni=None):
        c = Client(port, source, self.ctx if sni else None, sni)
        self.addCleanup(c.close)
        return c

    def test_plain_service_v1_and_v2_the_back_end_sees_the_true_client(self):
        c = self.client(self.ports["http"])
        for host in ("v1.contoso.test", "v2.contoso.test", "tls.contoso.test"):
            st, body = c.get(host)
            self.assertEqual((st, nginx_answer(body)["addr"]), (200, "127.0.0.3"), (host, body))

    def test_tls_service_v1_and_v2_the_back_end_sees_the_true_client(self):
        for host in ("v1.contoso.test", "v2.contoso.test", "tls.contoso.test"):
            c = self.client(self.ports["https"], "127.0.0.4", sni=host)
            st, body = c.get(host)
            self.assertEqual((st, nginx_answer(body)["addr"]), (200, "127.0.0.4"), (host, body))

    def test_behind_haproxy_the_back_end_sees_the_client_haproxy_named(self):
        c = self.client(self.ports["haproxy"], "127.0.0.2")
        for host in ("v1.contoso.test", "v2.contoso.test", "tls.contoso.test"):
            st, body = c.get(host)
            self.assertEqual((st, nginx_answer(body)["addr"]), (200, "127.0.0.2"), (host, body))

    def test_two_clients_never_share_a_server_connection(self):
        a, b = self.client(self.ports["http"], "127.0.0.5"), self.client(self.ports["http"], "127.0.0.6")
        seen = {"a": set(), "b": set()}
        for _ in range(4):
            for name, c, addr in (("a", a, "127.0.0.5"), ("b", b, "127.0.0.6")):
                st, body = c.get("v2.contoso.test")
                ans = nginx_answer(body)
                self.assertEqual((st, ans["addr"]), (200, addr))
                seen[name].add(ans["conn"])
        # each client keeps its own server connection; none serves the other
        self.assertEqual((len(seen["a"]), len(seen["b"])), (1, 1), seen)
        self.assertNotEqual(seen["a"], seen["b"])
        a.close()
        c = self.client(self.ports["http"], "127.0.0.7")
        st, body = c.get("v2.contoso.test")
        ans = nginx_answer(body)
        self.assertEqual(ans["addr"], "127.0.0.7")
        self.assertNotIn(ans["conn"], seen["a"] | seen["b"], "a server connection was handed to another client")

    def test_health_checks_send_a_header_and_pass(self):
        def states():
            with urllib.request.urlopen("http://127.0.0.1:%d/api/status" % self.ports["admin"], timeout=5) as r:
                st = json.loads(r.read().decode())
            return {p["name"]: [s["state"] for s in p["servers"]] for p in st["pools"]}
        self.assertTrue(wait_until(lambda: all(states()[n] == ["up"] for n in ("v1", "v2", "v2tls")), 10), states())
        # nginx answered the checks themselves (it closes a connection without the header unanswered)
        for n in self.nginx.values():
            with open(os.path.join(os.path.dirname(n.log), "access.log")) as f:
                self.assertRegex(f.read(), r'"GET /health HTTP/1.1" 200 ')

    def test_v2_tlv_fields_of_a_terminated_connection(self):
        c = self.client(self.ports["https"], "127.0.0.8", sni="tlv.contoso.test")
        self.assertEqual(c.s.selected_alpn_protocol(), None)
        ctx = client_context(self.pki.ca)
        ctx.set_alpn_protocols(["http/1.1"])
        c2 = Client(self.ports["https"], "127.0.0.8", ctx, "tlv.contoso.test")
        self.addCleanup(c2.close)
        st, body = c2.get("tlv.contoso.test")
        self.assertEqual((st, body), (200, "backend=backend sni=backend.test"))
        recs = [r for r in self.tlv.seen() if r.proxy and r.proxy["command"] == "PROXY"]
        self.assertEqual(len(recs), 1, [r.proxy for r in self.tlv.seen()])
        pp = recs[0].proxy
        self.assertEqual((pp["version"], pp["src"], pp["dst"], pp["dport"]), (2, "127.0.0.8", LOOP4, self.ports["https"]))
        t = tlvs(pp["raw"])
        self.assertEqual(t.get(0x01), b"http/1.1")
        self.assertEqual(t.get(0x02), b"tlv.contoso.test")
        ssl_tlv = t.get(0x20)
        self.assertIsNotNone(ssl_tlv, t)
        self.assertEqual(ssl_tlv[0] & 1, 1, "PP2_CLIENT_SSL")
        self.assertEqual(ssl_tlv[5:8], b"\x21\x00\x07")
        self.assertEqual(ssl_tlv[8:], b"TLSv1.3")
        # a plain client connection: addresses only
        self.tlv.reset()
        st, _ = self.client(self.ports["http"], "127.0.0.9").get("tlv.contoso.test")
        self.assertEqual(st, 200)
        pp = [r for r in self.tlv.seen() if r.proxy][0].proxy
        self.assertEqual((pp["src"], tlvs(pp["raw"])), ("127.0.0.9", {}))


class CheckReportsKeysWithoutEffect(unittest.TestCase):
    def test_check_names_each_key_at_its_line(self):
        with tempfile.TemporaryDirectory(prefix="onegate-ppcheck-") as d:
            path = os.path.join(d, "r.conf")
            with open(path, "w") as f:
                f.write('pools = ( { name = "relay"; servers = ( "127.0.0.1:1" );\n'
                        '  share_connections = false; } );\n'
                        'services = ( { name = "s"; listen = [ "127.0.0.1:2" ];\n'
                        '  proxy_timeout = 2;\n'
                        '  routes = ( { sni = "a.test"; pool = "relay"; } ); } );\n')
            r = subprocess.run([ONEGATE_BIN, "check", "-c", path], capture_output=True, text=True, timeout=20)
            self.assertIn("r.conf:2: warning: share_connections has no effect", r.stdout + r.stderr)
            self.assertIn("r.conf:4: warning: proxy_timeout bounds the wait for a PROXY header", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
