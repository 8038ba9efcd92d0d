"""ACME (RFC 8555) against Debian's pebble, started here on loopback with a
generated configuration: HTTP-01 and TLS-ALPN-01 validated for real (pebble's
validation goes to the gateway's loopback ports, names resolved to 127.0.0.1 by
pebble-challtestsrv), the chain served checked by curl and openssl against
pebble's root, renewal of short-lived certificates, a restart that orders
nothing, a CA that cannot be reached or refuses (the old certificate kept and
the error shown), two gateways on one state folder ordering once, and onegate
check on ACME entries."""
import hashlib
import json
import re
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness as h
from harness import LOOP4, Onegate, OnegateTestCase, free_port, make_pki, wait_until
from httpback import HTTPBackend

PEBBLE = shutil.which("pebble")
CHALLTESTSRV = shutil.which("pebble-challtestsrv")


class Pebble:
    """pebble and pebble-challtestsrv (its DNS: every name is 127.0.0.1) on free loopback ports."""

    def __init__(self, workdir, http_port, tls_port, validity=None, env=None):
        self.dir = workdir
        self.pki = make_pki(os.path.join(workdir, "pebble-pki"), {"pebble": ["localhost"]})
        self.port = free_port()
        self.mgmt = free_port()
        self.dns = free_port()
        self.dns_mgmt = free_port()
        cfg = {"pebble": {
            "listenAddress": "%s:%d" % (LOOP4, self.port),
            "managementListenAddress": "%s:%d" % (LOOP4, self.mgmt),
            "certificate": self.pki.certs["pebble"][0],
            "privateKey": self.pki.certs["pebble"][1],
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        if validity:
            cfg["pebble"]["certificateValidityPeriod"] = validity
        self.conf = os.path.join(workdir, "pebble.json")
        with open(self.conf, "w") as f:
            json.dump(cfg, f)
        self.env = dict(os.environ, PEBBLE_VA_NOSLEEP="1")
        self.env.update(env or {})
        self.procs = []

    @property
    def directory(self):
        return "https://localhost:%d/dir" % self.port

    def dns_answers(self):
        """Whether pebble-challtestsrv answers an A query over UDP, as pebble will ask it,
        and its management port (the dns-01 hook's) accepts."""
        query = b"\x4f\x47\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04home\x04test\x00\x00\x01\x00\x01"
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(0.5)
                u.sendto(query, (LOOP4, self.dns))
                answer = u.recv(512)
            socket.create_connection((LOOP4, self.dns_mgmt), timeout=0.5).close()
        except OSError:
            return False
        # Our id, one answer, the default address in it (4 bytes of data).
        return answer[:2] == query[:2] and answer[6:8] == b"\x00\x01" and \
            b"\x00\x04" + socket.inet_aton(LOOP4) in answer

    def start_challtestsrv(self):
        """pebble-challtestsrv, answering. Only waiting for pebble left it unchecked: a dns-01
        hook or a validation could come before it listened, and a port free_port() gave can
        be taken before it binds (it then logs "bind: address already in use" and runs on
        without its DNS); it is started again on new ports then."""
        path = os.path.join(self.dir, "challtestsrv.log")

        def log():
            with open(path, errors="replace") as f:
                return f.read()
        for _ in range(3):
            mark = len(log()) if os.path.exists(path) else 0
            with open(path, "ab") as out:
                proc = subprocess.Popen(
                    [CHALLTESTSRV, "-dns01", "%s:%d" % (LOOP4, self.dns), "-http01", "", "-https01", "",
                     "-tlsalpn01", "", "-management", "%s:%d" % (LOOP4, self.dns_mgmt),
                     "-defaultIPv4", LOOP4, "-defaultIPv6", ""],
                    stdout=out, stderr=out, stdin=subprocess.DEVNULL)
            if wait_until(lambda: proc.poll() is not None or "address already in use" in log()[mark:]
                          or self.dns_answers(), 20, 0.1) and self.dns_answers() \
                    and "address already in use" not in log()[mark:]:
                self.procs.append(proc)
                return
            proc.kill()
            proc.wait(5)
            self.dns, self.dns_mgmt = free_port(), free_port()
        raise AssertionError("pebble-challtestsrv does not answer:\n" + log()[-4000:])

    def start(self):
        self.start_challtestsrv()
        with open(os.path.join(self.dir, "pebble.log"), "wb") as log:
            self.procs.append(subprocess.Popen(
                [PEBBLE, "-config", self.conf, "-dnsserver", "%s:%d" % (LOOP4, self.dns)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env))
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        self.ctx = ctx

        def up():
            try:
                urllib.request.urlopen(self.directory, context=ctx, timeout=2).read()
                return True
            except OSError:
                return False
        if not wait_until(up, 20, 0.1):
            raise AssertionError("pebble did not start:\n" + self.log())
        # The roots the gateway trusts: pebble's listener's, and the one it issues under.
        root = urllib.request.urlopen("https://localhost:%d/roots/0" % self.mgmt, context=ctx, timeout=5).read()
        self.issuing_root = os.path.join(self.dir, "pebble-issuing-root.pem")
        with open(self.issuing_root, "wb") as f:
            f.write(root)
        self.roots = os.path.join(self.dir, "acme-roots.pem")
        with open(self.roots, "wb") as f, open(self.pki.ca, "rb") as ca:
            f.write(ca.read() + b"\n" + root)
        return self

    def log(self):
        try:
            with open(os.path.join(self.dir, "pebble.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.procs = []


def rules(state, directory, roots, https_port, http_port, backend_port, names=("home.test", "www.home.test"),
          challenge="http-01", admin_port=None, extra_routes="", dns_hook=None, extra_pools=""):
    admin = 'admin = { listen = "127.0.0.1:%d"; };' % admin_port if admin_port else ""
    hook = 'dns_hook = "%s";' % dns_hook if dns_hook else ""
    routes = ", ".join('{ host = "%s"; pool = "app"; }' % n for n in names)
    return """
onegate = { state = "%s"; %s };
certificates = ( { name = "home"; acme = { names = [ %s ]; email = "admin@home.test";
                   directory = "%s"; ca_file = "%s"; challenge = "%s"; %s }; } );
pools = ( { name = "app"; servers = ( "127.0.0.1:%d" ); } %s );
services = ( { name = "https"; listen = [ "127.0.0.1:%d" ]; tls = { certificates = [ "home" ]; };
               routes = ( %s %s ); },
             { name = "http"; listen = [ "127.0.0.1:%d" ];
               routes = ( { host = "*"; redirect = "https"; } ); } );
""" % (state, admin, ", ".join('"%s"' % n for n in names), directory, roots, challenge, hook, backend_port,
       extra_pools, https_port, extra_routes, routes, http_port)


def served_cert(port, name, cafile=None):
    """The leaf the gateway serves for name (PEM), and whether curl verifies it against cafile."""
    r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (LOOP4, port), "-servername", name,
                        "-showcerts"] + (["-CAfile", cafile, "-verify_return_error", "-verify_hostname", name]
                                         if cafile else []),
                       input=b"", capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode(errors="replace")


def cert_serial(port, name):
    rc, out = served_cert(port, name)
    r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-issuer"], input=out.encode(),
                       capture_output=True, timeout=10)
    return r.stdout.decode().strip()


@unittest.skipUnless(PEBBLE and CHALLTESTSRV, "pebble is not installed (apt-get install pebble)")
class AcmeIssuance(OnegateTestCase):
    def setUp(self):
        h.require_binary(self)
        self.tmp = tempfile.TemporaryDirectory(prefix="onegate-acme-")
        self.addCleanup(self.tmp.cleanup)
        self.https = free_port()
        self.http = free_port()
        self.backend = HTTPBackend("app")
        self.addCleanup(self.backend.stop)
        self.state = os.path.join(self.tmp.name, "state")

    def start_pebble(self, **kw):
        p = Pebble(self.tmp.name, self.http, self.https, **kw).start()
        self.addCleanup(p.stop)
        return p

    def wait_issued(self, og, count=1, timeout=60):
        def issued():
            return sum("certificate issued" in l for l in og.log_lines()) >= count
        if not wait_until(issued, timeout, 0.2):
            self.fail("no certificate issued within %ss; onegate log:\n%s" % (timeout, "\n".join(og.log_lines()[-30:])))

    def curl_ok(self, name, cafile):
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "--noproxy", "*", "--resolve",
                            "%s:%d:%s" % (name, self.https, LOOP4), "--cacert", cafile,
                            "https://%s:%d/" % (name, self.https)], capture_output=True, timeout=20)
        return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")

    def admin(self, port, path):
        def up():
            try:
                socket.create_connection((LOOP4, port), timeout=1).close()
                return True
            except OSError:
                return False
        self.assertTrue(wait_until(up, 5, 0.05), "the admin listener does not accept")
        return urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5).read().decode()

    def certs_list(self, og):
        r = subprocess.run([h.ONEGATE_BIN, "certs", "list", "-c", og.conf], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_http01_issues_serves_and_restart_orders_nothing(self):
        p = self.start_pebble()
        admin = free_port()
        conf = rules(self.state, p.directory, p.roots, self.https, self.http, self.backend.port, admin_port=admin)
        og = self.start_onegate(conf, self.https)
        self.wait_issued(og)
        # Visible: /api/status, /metrics, the page and certs list.
        st = json.loads(self.admin(admin, "/api/status"))
        c = [c for c in st["certificates"] if c["name"] == "home"][0]
        self.assertEqual(c["source"], "acme")
        self.assertEqual(c["names"], ["home.test", "www.home.test"])
        self.assertTrue(c["acme"]["issued"])
        self.assertEqual(c["acme"]["last_error"], "")
        self.assertGreater(c["expires_in_s"], 0)
        self.assertGreater(c["acme"]["next_renewal"], time.time())
        self.assertLess(c["acme"]["next_renewal"], c["not_after"])
        self.assertRegex(self.admin(admin, "/metrics"), r'(?m)^onegate_certificate_expiry_seconds\{certificate="home"\} \d+$')
        self.assertIn("<h2>Certificates</h2>", self.admin(admin, "/"))
        self.assertRegex(self.certs_list(og), r"home +acme expires \d{4}-\d\d-\d\d .* renews \d{4}-.* home.test www.home.test")
        self.assertTrue(any("answering http-01 for home.test" in l for l in og.log_lines()))
        # Validated for real: pebble fetched the token from the gateway's plain HTTP port.
        self.assertTrue(any("outcome=acme-challenge" in l for l in og.log_lines()), og.stderr()[-3000:])
        for name in ("home.test", "www.home.test"):
            rc, out = self.curl_ok(name, p.issuing_root)
            self.assertEqual(rc, 0, out)
            rc, out = served_cert(self.https, name, p.issuing_root)
            self.assertEqual(rc, 0, out)
            self.assertIn("Verify return code: 0 (ok)", out)
        for f in ("cert.pem", "key.pem"):
            st = os.stat(os.path.join(self.state, "acme", "home", f))
            self.assertEqual(st.st_mode & 0o777, 0o600, f)
        first = cert_serial(self.https, "home.test")
        h.stop_and_check(og)
        # A restart serves the certificate kept in the state folder and orders nothing.
        og2 = self.start_onegate(conf, self.https)
        self.assertEqual(cert_serial(self.https, "home.test"), first)
        time.sleep(1)
        self.assertFalse(any("ordering" in l for l in og2.log_lines()), og2.stderr())
        rc, out = self.curl_ok("home.test", p.issuing_root)
        self.assertEqual(rc, 0, out)

    def test_tls_alpn01_issues(self):
        p = self.start_pebble()
        conf = rules(self.state, p.directory, p.roots, self.https, self.http, self.backend.port,
                     challenge="tls-alpn-01")
        og = self.start_onegate(conf, self.https)
        self.wait_issued(og)
        self.assertTrue(any("answering tls-alpn-01 for home.test" in l for l in og.log_lines()))
        self.assertFalse(any("outcome=acme-challenge" in l for l in og.log_lines()))
        rc, out = self.curl_ok("www.home.test", p.issuing_root)
        self.assertEqual(rc, 0, out)

    def test_tls_alpn01_ahead_of_passthrough_routes(self):
        # www.home.test is also taken by a passthrough wildcard: its validation is still ours;
        # other.test (passthrough) keeps reaching its back end with the back end's certificate.
        p = self.start_pebble()
        pki = make_pki(os.path.join(self.tmp.name, "backend"), {"pt": ["other.test", "*.home.test"]})
        be = self.start_backend("pt", pki)
        conf = rules(self.state, p.directory, p.roots, self.https, self.http, self.backend.port,
                     challenge="tls-alpn-01",
                     extra_pools=', { name = "pt"; servers = ( "127.0.0.1:%d" ); }' % be.port,
                     extra_routes='{ sni = "*.home.test"; passthrough = true; pool = "pt"; }, '
                                  '{ sni = "other.test"; passthrough = true; pool = "pt"; },')
        og = self.start_onegate(conf, self.https)
        self.wait_issued(og)
        self.assertTrue(any("answering tls-alpn-01 for www.home.test" in l for l in og.log_lines()))
        rc, out = served_cert(self.https, "other.test", pki.ca)
        self.assertEqual(rc, 0, out)
        self.assertIn("CN = pt", out)
        rc, out = served_cert(self.https, "home.test", p.issuing_root)
        self.assertEqual(rc, 0, out)
        # The issued certificate holds www.home.test, proved by the gateway; the name itself
        # still goes where its passthrough route says.
        rc, out = served_cert(self.https, "www.home.test", pki.ca)
        self.assertEqual(rc, 0, out)
        self.assertIn("CN = pt", out)

    def test_dns01_hook_for_a_wildcard(self):
        p = self.start_pebble()
        calls = os.path.join(self.tmp.name, "hook.calls")
        hook = os.path.join(self.tmp.name, "dns-update")
        # The admin's hook: here it publishes the TXT record in pebble-challtestsrv's DNS.
        with open(hook, "w") as f:
            f.write("""#!/bin/sh
echo "$1 $2 $3" >> %s
case "$1" in
  present) path=set-txt; body="{\\"host\\":\\"$2.\\",\\"value\\":\\"$3\\"}" ;;
  cleanup) path=clear-txt; body="{\\"host\\":\\"$2.\\"}" ;;
  *) exit 2 ;;
esac
exec curl -sS --fail --noproxy '*' --max-time 5 -d "$body" http://127.0.0.1:%d/$path
""" % (calls, p.dns_mgmt))
        os.chmod(hook, 0o755)
        conf = rules(self.state, p.directory, p.roots, self.https, self.http, self.backend.port,
                     names=("home.test", "*.home.test"), dns_hook=hook)
        og = self.start_onegate(conf, self.https)
        self.wait_issued(og)
        self.assertTrue(any("answering dns-01 for home.test" in l for l in og.log_lines()), og.stderr())
        with open(calls) as f:
            lines = f.read().split("\n")
        self.assertTrue(any(l.startswith("present _acme-challenge.home.test ") for l in lines), lines)
        self.assertTrue(any(l.startswith("cleanup _acme-challenge.home.test ") for l in lines), lines)
        for name in ("home.test", "nas.home.test"):
            rc, out = served_cert(self.https, name, p.issuing_root)
            self.assertEqual(rc, 0, out)

    def test_expiry_warned_at_30_days(self):
        p = self.start_pebble(validity=20 * 86400)
        conf = rules(self.state, p.directory, p.roots, self.https, self.http, self.backend.port)
        og = self.start_onegate(conf, self.https)
        self.wait_issued(og)
        want = re.compile(r"warn certificate home expires on \S+ \S+ UTC, in 19 days; ACME renews it")
        self.assertTrue(wait_until(lambda: any(want.search(l) for l in og.log_lines()), 10, 0.1), og.stderr())
        # Each reload runs the check again: the 30-day threshold is not warned twice.
        for n in (1, 2):
            og.signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: sum("reloaded" in l for l in og.log_lines()) >= n, 10, 0.1),
                            og.stderr())
        time.sleep(0.5)
        self.assertEqual(sum(bool(want.search(l)) for l in og.log_lines()), 1, og.stderr())

    def test_short_lived_certificates_renew_without_reload(self):
        p = self.start_pebble(validity=15)
        conf = rules(self.state, p.directory, p.roots, self.https, self.http, self.backend.port)
        og = self.start_onegate(conf, self.https)
        self.wait_issued(og)
        first = cert_serial(self.https, "home.test")
        # Due at two thirds of 15 s: a new one is ordered and served, same process, no signal.
        self.wait_issued(og, count=2, timeout=60)
        self.assertTrue(wait_until(lambda: cert_serial(self.https, "home.test") != first, 10, 0.2))
        rc, out = self.curl_ok("home.test", p.issuing_root)
        self.assertEqual(rc, 0, out)
        self.assertFalse(any("reloaded" in l for l in og.log_lines()))

    def test_ca_unreachable_keeps_serving_and_says_why(self):
        dead = free_port()
        roots = os.path.join(self.tmp.name, "roots.pem")
        make_pki(os.path.join(self.tmp.name, "pki"), {"x": ["localhost"]})
        shutil.copy(os.path.join(self.tmp.name, "pki", "root.pem"), roots)
        admin = free_port()
        conf = rules(self.state, "https://localhost:%d/dir" % dead, roots, self.https, self.http,
                     self.backend.port, admin_port=admin)
        og = self.start_onegate(conf, self.https)
        self.assertTrue(wait_until(lambda: any("next attempt in 60 s" in l for l in og.log_lines()), 20, 0.1),
                        og.stderr())
        self.assertTrue(any("cannot connect to localhost port %d" % dead in l for l in og.log_lines()), og.stderr())
        # The stand-in is still served, and the reason is shown.
        rc, out = served_cert(self.https, "home.test")
        self.assertIn("home.test", out)
        st = json.loads(self.admin(admin, "/api/status"))
        c = st["certificates"][0]
        self.assertFalse(c["acme"]["issued"])
        self.assertIn("cannot connect to localhost port %d" % dead, c["acme"]["last_error"])
        self.assertEqual(c["acme"]["failures"], 1)
        self.assertGreater(c["acme"]["next_renewal"], time.time() + 30)
        self.assertIsNone(c["expires_in_s"])
        out = self.certs_list(og)
        self.assertIn("not issued yet", out)
        self.assertIn("last error: cannot connect to localhost port %d" % dead, out)


    def issue_then_lose_the_ca(self, config=None):
        """A certificate valid 30 s issued and served; then pebble stopped (and, with config, started
        again on the same ports with that added to its configuration). Returns (onegate, admin port,
        serial, the first issuing root)."""
        p = self.start_pebble(validity=30)
        admin = free_port()
        conf = rules(self.state, p.directory, p.roots, self.https, self.http, self.backend.port, admin_port=admin)
        og = self.start_onegate(conf, self.https)
        self.wait_issued(og)
        first = cert_serial(self.https, "home.test")
        root = os.path.join(self.tmp.name, "first-issuing-root.pem")
        shutil.copy(p.issuing_root, root)
        p.stop()
        if config is not None:
            with open(p.conf) as f:
                cfg = json.load(f)
            cfg["pebble"].update(config)
            with open(p.conf, "w") as f:
                json.dump(cfg, f)
            p.start()
        return og, admin, first, root

    def assert_old_certificate_kept(self, og, admin, first, root, error):
        # Renewal is due at two thirds of 30 s; it fails, and the failure is backed off.
        self.assertTrue(wait_until(lambda: any("next attempt in 60 s" in l for l in og.log_lines()), 40, 0.2),
                        og.stderr())
        self.assertEqual(sum("ordering" in l for l in og.log_lines()), 2, og.stderr())
        self.assertEqual(cert_serial(self.https, "home.test"), first)
        rc, out = self.curl_ok("home.test", root)
        self.assertEqual(rc, 0, out)
        c = json.loads(self.admin(admin, "/api/status"))["certificates"][0]
        self.assertTrue(c["acme"]["issued"])
        self.assertEqual(c["acme"]["failures"], 1)
        self.assertIn(error, c["acme"]["last_error"])
        self.assertGreater(c["acme"]["next_renewal"], time.time() + 30)
        self.assertGreater(c["expires_in_s"], 0)
        out = self.certs_list(og)
        self.assertRegex(out, r"home +acme expires \d{4}-")
        self.assertIn("last error: ", out)
        self.assertIn(error, out)
        # Backed off: nothing more is tried within the minute.
        time.sleep(2)
        self.assertEqual(sum("ordering" in l for l in og.log_lines()), 2, og.stderr())

    def test_ca_refusing_keeps_the_old_certificate_and_says_why(self):
        # pebble 2.4 has no switch that fails validations; it refuses names on its block list.
        og, admin, first, root = self.issue_then_lose_the_ca(config={"domainBlocklist": ["home.test"]})
        self.assert_old_certificate_kept(og, admin, first, root, "urn:ietf:params:acme:error:rejectedIdentifier")

    def test_ca_gone_after_issue_keeps_the_old_certificate_and_says_why(self):
        og, admin, first, root = self.issue_then_lose_the_ca()
        self.assert_old_certificate_kept(og, admin, first, root, "cannot connect to localhost port")

    def test_two_gateways_on_one_state_folder_order_once(self):
        # pebble validates on A's ports; whichever gateway takes the order lock, A answers
        # (its own challenge, or B's from the shared folder), B waits and takes up the result.
        # Each gateway has its own state folder (its pid file and server states are its own);
        # their acme folders are one folder, as a shared mount would make them.
        p = self.start_pebble()
        https_b, http_b, admin_a, admin_b = free_port(), free_port(), free_port(), free_port()
        shared = os.path.join(self.tmp.name, "shared-acme")
        state_b = os.path.join(self.tmp.name, "state-b")
        os.makedirs(shared, mode=0o700)
        for st in (self.state, state_b):
            os.makedirs(st, mode=0o750)
            os.symlink(shared, os.path.join(st, "acme"))
        conf_a = rules(self.state, p.directory, p.roots, self.https, self.http, self.backend.port, admin_port=admin_a)
        conf_b = rules(state_b, p.directory, p.roots, https_b, http_b, self.backend.port, admin_port=admin_b)
        og_a = self.start_onegate(conf_a, self.https)
        og_b = self.start_onegate(conf_b, https_b)
        both = lambda: "\n".join(og_a.log_lines() + og_b.log_lines())

        def settled():
            t = both()
            return t.count("certificate issued") == 1 and "took up the certificate" in t
        self.assertTrue(wait_until(settled, 60, 0.2), both())
        self.assertEqual(both().count("ordering a certificate"), 1, both())
        self.assertIn("is ordering it; its certificate will be taken up", both())
        orderer = og_a if any("ordering" in l for l in og_a.log_lines()) else og_b
        if orderer is og_b:
            # B's validation reached A, which answered from the state folder.
            self.assertFalse(any("answering" in l for l in og_a.log_lines()), both())
        self.assertTrue(any("outcome=acme-challenge" in l for l in og_a.log_lines()), both())
        self.assertEqual(cert_serial(self.https, "home.test"), cert_serial(https_b, "home.test"))
        for port in (self.https, https_b):
            rc, out = served_cert(port, "www.home.test", p.issuing_root)
            self.assertEqual(rc, 0, out)
        for admin in (admin_a, admin_b):
            c = json.loads(self.admin(admin, "/api/status"))["certificates"][0]
            self.assertTrue(c["acme"]["issued"])
            self.assertEqual(c["acme"]["last_error"], "")
        # The shared challenges are cleaned up after the validation.
        left = os.listdir(os.path.join(self.state, "acme", "challenges"))
        self.assertEqual(left, [])

    def test_a_peers_challenges_are_answered_from_the_state_folder(self):
        # What the other gateway of a pair writes while it orders: this gateway, which is not
        # ordering (its CA is unreachable), answers both kinds of challenge that reach it.
        dead = free_port()
        make_pki(os.path.join(self.tmp.name, "pki"), {"x": ["localhost"]})
        conf = rules(self.state, "https://localhost:%d/dir" % dead, os.path.join(self.tmp.name, "pki", "root.pem"),
                     self.https, self.http, self.backend.port)
        og = self.start_onegate(conf, self.https)
        chal = os.path.join(self.state, "acme", "challenges")
        os.makedirs(chal, exist_ok=True)
        token = "Pe3r_tok-en"
        with open(os.path.join(chal, "http-01-" + token), "w") as f:
            f.write(token + ".thumbprint")
        with open(os.path.join(chal, "tls-alpn-01-www.home.test"), "w") as f:
            f.write("alpntoken.thumbprint")
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "--noproxy", "*",
                            "http://127.0.0.1:%d/.well-known/acme-challenge/%s" % (self.http, token)],
                           capture_output=True, timeout=20)
        self.assertEqual(r.stdout.decode(), token + ".thumbprint", r.stderr)
        r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (LOOP4, self.https), "-servername",
                            "www.home.test", "-alpn", "acme-tls/1"], input=b"", capture_output=True, timeout=20)
        out = subprocess.run(["openssl", "x509", "-noout", "-text"], input=r.stdout, capture_output=True,
                             timeout=10).stdout.decode()
        self.assertIn("1.3.6.1.5.5.7.1.31: critical", out, r.stdout.decode(errors="replace"))
        self.assertIn("ALPN protocol: acme-tls/1", r.stdout.decode(errors="replace"))
        # The SHA-256 of the key authorization, as an OCTET STRING in the acmeIdentifier extension.
        der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=r.stdout, capture_output=True,
                             timeout=10).stdout
        self.assertIn(b"\x04\x20" + hashlib.sha256(b"alpntoken.thumbprint").digest(), der)
        # Gone from the folder: no longer answered, the request goes to the routes.
        os.unlink(os.path.join(chal, "http-01-" + token))
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "--noproxy", "*", "-o", "/dev/null", "-w",
                            "%{http_code}", "http://127.0.0.1:%d/.well-known/acme-challenge/%s" % (self.http, token)],
                           capture_output=True, timeout=20)
        self.assertNotEqual(r.stdout.decode(), "200")


class FileCertificateExpiry(OnegateTestCase):
    def test_a_file_certificate_30_days_from_expiry_is_warned_once(self):
        h.require_binary(self)
        tmp = tempfile.TemporaryDirectory(prefix="onegate-expiry-")
        self.addCleanup(tmp.cleanup)
        pki = make_pki(tmp.name, {"web": ["web.test"]})     # valid 30 days: under the first threshold
        port, admin = free_port(), free_port()
        og = self.start_onegate("""
onegate = { admin = { listen = "127.0.0.1:%d"; }; };
certificates = ( { name = "web"; cert = "%s"; key = "%s"; ca_file = "%s"; } );
pools = ( { name = "app"; servers = ( "127.0.0.1:9" ); } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; tls = { certificates = [ "web" ]; };
               routes = ( { host = "web.test"; pool = "app"; } ); } );
""" % (admin, pki.certs["web"][0], pki.certs["web"][1], pki.ca, port), port)
        want = re.compile(r"warn certificate web expires on \S+ \S+ UTC, in (29|30) days; replace its file and reload")
        self.assertTrue(wait_until(lambda: any(want.search(l) for l in og.log_lines()), 10, 0.1), og.stderr())
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: any("reloaded" in l for l in og.log_lines()), 10, 0.1), og.stderr())
        time.sleep(0.5)
        self.assertEqual(sum(bool(want.search(l)) for l in og.log_lines()), 1, og.stderr())
        def metrics():
            try:
                return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=5).read().decode()
            except OSError:
                return ""
        self.assertTrue(wait_until(lambda: "onegate_certificate_expiry_seconds" in metrics(), 5, 0.1))
        m = re.search(r'(?m)^onegate_certificate_expiry_seconds\{certificate="web"\} (\d+)$', metrics())
        self.assertTrue(m and 29 * 86400 < int(m.group(1)) <= 30 * 86400, metrics())


@unittest.skipUnless(PEBBLE, "pebble is not installed")
class AcmeCheck(unittest.TestCase):
    def setUp(self):
        h.require_binary(self)
        self.tmp = tempfile.TemporaryDirectory(prefix="onegate-acme-check-")
        self.addCleanup(self.tmp.cleanup)

    def check(self, text):
        path = os.path.join(self.tmp.name, "r.conf")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([h.ONEGATE_BIN, "check", "-c", path], capture_output=True, text=True, timeout=20)
        return r.returncode, r.stdout + r.stderr

    def test_valid_entry_passes_without_contacting_a_ca(self):
        conf = rules(os.path.join(self.tmp.name, "state"), "https://127.0.0.1:9/dir", "/etc/ssl/certs/ca-certificates.crt",
                     free_port(), free_port(), 9)
        rc, out = self.check(conf)
        self.assertEqual(rc, 0, out)

    def test_errors_name_the_line_and_the_fix(self):
        bad = """
certificates = ( { name = "home"; acme = { names = [ "home.test", "*.home.test", "bad name" ]; email = "nobody";
                   directory = "http://ca.test/dir"; }; } );
pools = ( { name = "app"; servers = ( "127.0.0.1:9" ); } );
services = ( { name = "https"; listen = [ "127.0.0.1:%d" ]; tls = { certificates = [ "home" ]; };
               routes = ( { host = "other.test"; pool = "app"; } ); } );
""" % free_port()
        rc, out = self.check(bad)
        self.assertEqual(rc, 1, out)
        for want in ("r.conf:2:", "is not a name a CA issues for", "email \"nobody\" is not an address",
                     "directory must be the CA's https:// URL", "a wildcard name needs dns-01",
                     "no service takes plain HTTP",
                     "ACME name \"home.test\" of certificate \"home\" is not routed"):
            self.assertIn(want, out)


if __name__ == "__main__":
    unittest.main()
