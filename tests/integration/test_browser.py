"""Headless Chromium against onegate's HTTP/2 front door (issue 17): connection coalescing.

A browser that holds an HTTP/2 connection whose certificate is valid for another name at the
same address sends that name's requests on it too (RFC 9113 9.1.1). The page here comes from
a.example.test; its scripts come from a.example.test and b.example.test, both mapped to
127.0.0.1 and the one onegate port, and the certificate a.example.test gets is *.example.test,
so Chromium coalesces b's requests onto a's connection.

- Refused: b.example.test is a passthrough route (SNI routing to a TLS back end of its own).
  onegate has no HTTP route for b on a TLS-terminated connection and answers 421; Chromium must
  open a connection of its own for b, which onegate passes through, and the page must still get
  every script. The access log shows the 421 on a's connection and then b's passthrough
  connection to b's back end; each back end answers with its own name and a per-run nonce,
  which the page's script writes into the DOM that --dump-dom reads.
- Fine: both names are HTTP routes on the one wildcard certificate. Every stream of the page,
  to both back ends, goes over one connection (one client port in the access lines, HTTP/2.0),
  and there is no 421.

Chromium's net log says the same from its side (a session found in the IP pool; a transaction
restarted for a misdirected request, or none), lists every TCP connection it made (each must go
to onegate's port), and each of those must have onegate's conn line within 3 s of Chromium's exit:
it opens a spare connection to the page's name and closes it unused, which onegate once kept for
send_timeout.

A certificate of its own for b that the wildcard also covers is no reason for a 421 (see
tlsconf_host_fits and its unit test): the browser checked the wildcard for b, so onegate serves
b on that connection. That is the "fine" case again, so it is not repeated here.

Chromium trusts the test root through an NSS database in a throwaway HOME (certutil), not
--ignore-certificate-errors: it pools connections only under a certificate it verified. Its
resolver maps the two names to 127.0.0.1 and every other name to nothing, and its background
traffic (updates, sync, safe browsing, metrics) is turned off, so it reaches only loopback."""
import http.server
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import unittest

from harness import OnegateTestCase, free_port, make_pki, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CERTUTIL = shutil.which("certutil")
NAMES = ("a.example.test", "b.example.test")
LOG_FIELD = re.compile(r"(\w+)=(\S+)")

# The page: scripts from both names, then a script that writes what they left into the DOM.
PAGE = """<!doctype html>
<html><head><title>coalescing</title></head><body>
<script src="https://a.example.test:%(port)d/a.js"></script>
<script src="https://b.example.test:%(port)d/b1.js"></script>
<script src="https://b.example.test:%(port)d/b2.js"></script>
<script>
var got = {a: window.A || null, b1: window.B1 || null, b2: window.B2 || null};
var out = document.createElement("pre");
out.id = "result";
out.textContent = JSON.stringify(got);
document.body.appendChild(out);
</script>
</body></html>
"""
ASSETS = {"/a.js": "A", "/b1.js": "B1", "/b2.js": "B2"}


class Origin:
    """An HTTP/1.1 back end (TLS when given a certificate) that answers the page and the
    scripts, each script setting window.NAME to its own name, the path and a nonce of this run.
    It records (path, Host, client port) for each request."""

    def __init__(self, name, nonce, page="", tls=None):
        self.name, self.nonce, self.page = name, nonce, page
        self.requests = []
        lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                if tls:
                    self.request.do_handshake()
                super().setup()

            def do_GET(self):
                with lock:
                    origin.requests.append((self.path, self.headers.get("Host"), self.client_address[1]))
                if self.path == "/" and origin.page:
                    body, ctype = origin.page.encode(), "text/html; charset=utf-8"
                elif self.path in ASSETS:
                    me = {"backend": origin.name, "path": self.path, "nonce": origin.nonce}
                    body = ("window.%s = %s;\n" % (ASSETS[self.path], json.dumps(me))).encode()
                    ctype = "text/javascript"
                else:
                    body, ctype = b"not here\n", "text/plain"
                self.send_response(200 if ctype != "text/plain" else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            ctx.set_alpn_protocols(["http/1.1"])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@unittest.skipUnless(os.access(CHROMIUM, os.X_OK), "chromium is not installed (scripts/deps.sh test installs it)")
@unittest.skipUnless(CERTUTIL, "certutil is not installed (libnss3-tools; scripts/deps.sh test installs it)")
class Coalescing(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-browser-")
        d = cls.tmp.name
        cls.pki = make_pki(os.path.join(d, "pki"), {"wild": ["*.example.test"], "b": ["b.example.test"]})
        # Chromium on Linux reads the user's trust anchors from $HOME/.pki/nssdb.
        cls.home = os.path.join(d, "home")
        nssdb = os.path.join(cls.home, ".pki", "nssdb")
        os.makedirs(nssdb)
        for args in (["-N", "--empty-password"],
                     ["-A", "-n", "onegate test root", "-t", "C,,", "-i", cls.pki.ca]):
            r = subprocess.run([CERTUTIL, "-d", "sql:" + nssdb] + args, capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.port, self.admin = free_port(), free_port()
        self.nonce = secrets.token_hex(8)

    def origin(self, name, **kw):
        o = Origin(name, self.nonce, **kw)
        self.addCleanup(o.stop)
        return o

    def conf(self, routes):
        wild_chain, wild_key = self.pki.certs["wild"]
        return """
onegate = { workers = 1; admin = { listen = "127.0.0.1:%(admin)d"; }; };
certificates = ( { name = "wild"; cert = "%(chain)s"; key = "%(key)s"; ca_file = "%(ca)s"; } );
pools = ( { name = "alpha"; servers = ( "127.0.0.1:%(alpha)d" ); },
          { name = "beta"; servers = ( "127.0.0.1:%(beta)d" ); } );
services = (
  { name = "https"; listen = [ "127.0.0.1:%(port)d" ];
    tls = { certificates = [ "wild" ]; };
    routes = ( %(routes)s ); } );
""" % {"admin": self.admin, "chain": wild_chain, "key": wild_key, "ca": self.pki.ca, "alpha": self.alpha.port,
       "beta": self.beta.port, "port": self.port, "routes": routes}

    def chromium(self, url):
        """Chromium's DOM of url once loaded; its net log goes to self.netlog_path."""
        run = tempfile.mkdtemp(dir=self.tmp.name)
        self.netlog_path = os.path.join(run, "netlog.json")
        rules = ", ".join("MAP %s 127.0.0.1" % n for n in NAMES) + ", MAP * ~NOTFOUND"
        env = dict(os.environ, HOME=self.home)
        r = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--user-data-dir=" + os.path.join(run, "profile"),
             "--host-resolver-rules=" + rules, "--disable-quic",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
             "--disable-client-side-phishing-detection", "--safebrowsing-disable-auto-update",
             "--disable-breakpad", "--metrics-recording-only", "--no-pings",
             "--disable-features=OptimizationHints,Translate,MediaRouter,DialMediaRouteProvider,"
             "AutofillServerCommunication,CertificateTransparencyComponentUpdater,DnsOverHttps",
             "--log-net-log=" + self.netlog_path, "--dump-dom", url],
            capture_output=True, text=True, timeout=90, env=env)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return r.stdout

    def netlog(self):
        """Chromium's own account of its run: {event name: [params]} and the local ports of
        the TCP connections it made (every one checked to go to onegate's port)."""
        with open(self.netlog_path) as f:
            log = json.load(f)
        names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
        events, ports = {}, []
        for e in log["events"]:
            name = names.get(e["type"], "")
            params = e.get("params") or {}
            events.setdefault(name, []).append(params)
            if name == "TCP_CONNECT" and "remote_address" in params:
                self.assertEqual(params["remote_address"], "127.0.0.1:%d" % self.port, params)
                ports.append(int(params["local_address"].rsplit(":", 1)[1]))
        return events, ports

    def assertEveryConnectionEnded(self, og, ports):
        """Each connection Chromium made has onegate's conn line soon after Chromium exited,
        and none was taken for a stalled client: onegate saw each one end."""
        def missing():
            clients = {f["client"] for f in self.access_lines(og, "conn")}
            return [p for p in ports if "127.0.0.1:%d" % p not in clients]
        wait_until(lambda: not missing(), 3)
        self.assertEqual(missing(), [], "connections Chromium made and closed, still open in onegate 3 s later "
                         "(client ports; it made %s):\n%s" % (ports, "\n".join(og.log_lines()[-20:])))
        clients = {f["client"]: f for f in self.access_lines(og, "conn")}
        for p in ports:
            f = clients["127.0.0.1:%d" % p]
            self.assertNotEqual(f["outcome"], "client-stalled", f["_line"])

    def result(self, dom):
        m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
        self.assertIsNotNone(m, "the page's last script did not run:\n" + dom[-2000:])
        return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    def assertAllAssets(self, got):
        """Every script ran, each from its own back end, with this run's nonce."""
        want = {"a": ("alpha", "/a.js"), "b1": ("beta", "/b1.js"), "b2": ("beta", "/b2.js")}
        for key, (backend, path) in want.items():
            self.assertEqual(got.get(key), {"backend": backend, "path": path, "nonce": self.nonce},
                             "script %s: %s" % (path, got))

    def access_lines(self, og, kind):
        """key=value fields of onegate's access lines of one kind ('http' or 'conn'), in order."""
        out = []
        for line in og.log_lines():
            m = re.search(r"\b%s (client=.*)$" % kind, line)
            if m:
                f = dict(LOG_FIELD.findall(m.group(1)))
                f["_line"] = line
                out.append(f)
        return out

    def page_url(self):
        return "https://a.example.test:%d/" % self.port

    def test_coalesced_passthrough_name_gets_421_and_the_page_loads_over_a_new_connection(self):
        self.alpha = self.origin("alpha", page=PAGE % {"port": self.port})
        self.beta = self.origin("beta", tls=self.pki.certs["b"])
        og = self.start_onegate(self.conf(
            '{ sni = "b.example.test"; passthrough = true; pool = "beta"; },'
            '{ host = "a.example.test"; pool = "alpha"; }'), self.port)
        got = self.result(self.chromium(self.page_url()))
        self.assertAllAssets(got)

        # The 421: a stream for b on a's connection (SNI a), which has no HTTP route for b.
        lines = lambda: self.access_lines(og, "http")
        self.assertTrue(wait_until(lambda: any(f["host"].startswith("b.example.test") and f["status"] == "421"
                                               for f in lines()), 5), "\n".join(og.log_lines()[-40:]))
        http = lines()
        misdirected = [i for i, f in enumerate(http) if f["status"] == "421"]
        for i in misdirected:
            f = http[i]
            self.assertEqual((f["sni"], f["proto"], f["pool"]), ("a.example.test", "HTTP/2.0", "-"), f["_line"])
            self.assertTrue(f["host"].startswith("b.example.test"), f["_line"])
        # a's streams, the 421 ones among them, came over one connection: the coalesced one.
        a_conn = {f["client"] for f in http if f["sni"] == "a.example.test"}
        self.assertEqual(len(a_conn), 1, "\n".join(f["_line"] for f in http))
        self.assertTrue(any(f["path"] == "/a.js" and f["status"] == "200" and f["pool"] == "alpha" for f in http))

        # The retry: a connection of its own with SNI b, passed through to beta, after the 421.
        self.assertTrue(wait_until(lambda: any(f.get("sni") == "b.example.test" for f in self.access_lines(og, "conn")),
                                   5), "\n".join(og.log_lines()[-40:]))
        log = og.log_lines()
        first_421 = log.index(http[misdirected[0]]["_line"])
        b_conns = [f for f in self.access_lines(og, "conn") if f.get("sni") == "b.example.test"]
        for f in b_conns:
            self.assertEqual((f["pool"], f["server"], f["outcome"]), ("beta", "127.0.0.1:%d" % self.beta.port, "ok"),
                             f["_line"])
            self.assertNotIn(f["client"], a_conn)
        # Each b connection's line is written when it ends, after the 421 that sent Chromium to it.
        self.assertGreater(log.index(b_conns[0]["_line"]), first_421)
        # beta got both scripts, on its own connections, and alpha got none of b's.
        self.assertEqual(sorted(p for p, _, _ in self.beta.requests if p in ASSETS), ["/b1.js", "/b2.js"],
                         self.beta.requests)
        self.assertTrue(all(h == "b.example.test:%d" % self.port for p, h, _ in self.beta.requests),
                        self.beta.requests)
        self.assertEqual([p for p, _, _ in self.alpha.requests if p in ASSETS], ["/a.js"], self.alpha.requests)

        # Chromium's side: it put b's requests on a's connection and restarted them after the 421.
        events, ports = self.netlog()
        self.assertTrue(events.get("HTTP2_SESSION_POOL_FOUND_EXISTING_SESSION_FROM_IP_POOL"), "no coalescing")
        self.assertTrue(events.get("HTTP_TRANSACTION_RESTART_MISDIRECTED_REQUEST"), "no restart after the 421")
        self.assertEveryConnectionEnded(og, ports)

    def test_names_on_one_wildcard_share_one_connection_without_421(self):
        self.alpha = self.origin("alpha", page=PAGE % {"port": self.port})
        self.beta = self.origin("beta")
        og = self.start_onegate(self.conf(
            '{ host = "a.example.test"; pool = "alpha"; },'
            '{ host = "b.example.test"; pool = "beta"; }'), self.port)
        got = self.result(self.chromium(self.page_url()))
        self.assertAllAssets(got)

        want = {"/": "alpha", "/a.js": "alpha", "/b1.js": "beta", "/b2.js": "beta"}
        lines = lambda: [f for f in self.access_lines(og, "http") if f["path"] in want]
        self.assertTrue(wait_until(lambda: len(lines()) >= len(want), 5), "\n".join(og.log_lines()[-40:]))
        http = self.access_lines(og, "http")
        self.assertFalse([f["_line"] for f in http if f["status"] == "421"])
        for f in lines():
            self.assertEqual((f["status"], f["proto"], f["sni"], f["pool"]),
                             ("200", "HTTP/2.0", "a.example.test", want[f["path"]]), f["_line"])
        self.assertEqual({f["path"] for f in lines()}, set(want))
        # One connection: one client port for every stream, both names among them.
        clients = {f["client"] for f in lines()}
        self.assertEqual(len(clients), 1, "\n".join(f["_line"] for f in lines()))
        self.assertEqual({f["host"].split(":")[0] for f in lines()}, set(NAMES))
        self.assertFalse([f for f in self.access_lines(og, "conn") if f.get("sni") == "b.example.test"])
        # That connection's own line, once Chromium has gone: HTTP/2, every stream on it.
        client = clients.pop()
        self.assertTrue(wait_until(lambda: any(f["client"] == client for f in self.access_lines(og, "conn")), 5),
                        "\n".join(og.log_lines()[-40:]))
        conn = [f for f in self.access_lines(og, "conn") if f["client"] == client][0]
        self.assertEqual(conn["proto"], "h2", conn["_line"])
        self.assertGreaterEqual(int(conn["requests"]), len(want), conn["_line"])

        events, ports = self.netlog()
        self.assertTrue(events.get("HTTP2_SESSION_POOL_FOUND_EXISTING_SESSION_FROM_IP_POOL"), "no coalescing")
        self.assertFalse(events.get("HTTP_TRANSACTION_RESTART_MISDIRECTED_REQUEST"))
        self.assertEveryConnectionEnded(og, ports)


if __name__ == "__main__":
    unittest.main()
