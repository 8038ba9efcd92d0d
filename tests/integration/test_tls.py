"""TLS termination on one listener: the certificate each SNI gets (with its complete
chain), TLS 1.0/1.1 refused, resumption, Host routing behind TLS, 421 for a host
nothing routes and for a Host of another certificate than the SNI's, a passthrough
route on the same port, and re-encryption to a TLS back end with the expected SNI,
verified, and a client certificate when it asks for one. OCSP stapling, session
ticket keys shared between gateways, and the load errors of each."""
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness as h
from harness import LOOP4, Onegate, OnegateTestCase, free_port, make_pki, stop_and_check, wait_until
from httpback import HTTPBackend


def run(cmd, input_text="", timeout=20):
    return subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout)


class TlsTermination(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-tls-")
        cls.pki = make_pki(cls.tmp.name, {
            "contoso": ["*.contoso.test", "contoso.test"],
            "fabrikam": ["www.fabrikam.test"],
            "exch": ["exchange.internal.test", "webext.contoso.test"],
            "adfs": ["sts.contoso.test"],
        })
        cls.owa = HTTPBackend("owa")
        cls.port = free_port()

    @classmethod
    def tearDownClass(cls):
        cls.owa.stop()
        cls.tmp.cleanup()

    def setUp(self):
        d = self.tmp.name
        self.exch = self.start_backend("exch", self.pki)
        self.adfs = self.start_backend("adfs", self.pki)
        conf = """
onegate = { workers = 1; };
certificates = (
  { name = "contoso"; cert = "%(d)s/contoso.pem"; key = "%(d)s/contoso.key";
    intermediates = [ "%(d)s/intermediate.pem" ]; ca_file = "%(d)s/root.pem"; },
  { name = "fabrikam"; cert = "%(d)s/fabrikam.chain.pem"; key = "%(d)s/fabrikam.key"; ca_file = "%(d)s/root.pem"; } );
pools = ( { name = "owa"; servers = ( "127.0.0.1:%(owa)d" ); },
          { name = "exch"; servers = ( "127.0.0.1:%(exch)d" );
            tls = { sni = "exchange.internal.test"; verify = true; ca_file = "%(d)s/root.pem"; }; },
          { name = "adfs"; servers = ( "127.0.0.1:%(adfs)d" ); },
          { name = "skype"; servers = ( "127.0.0.1" );
            tls = { sni = "webext.contoso.test"; verify = true; ca_file = "%(d)s/root.pem"; }; } );
services = ( { name = "https"; listen = [ "127.0.0.1:%(port)d" ]; plain_http = true;
  tls = { certificates = [ "contoso", "fabrikam" ]; default = "contoso"; };
  routes = (
    { sni = "sts.contoso.test"; passthrough = true; pool = "adfs"; },
    { host = "mail.contoso.test"; pool = "owa"; },
    { host = "www.fabrikam.test"; pool = "owa"; },
    { host = "ex.contoso.test"; pool = "exch"; },
    { host = "webext.contoso.test"; pool = "skype"; port = %(exch)d; }
  ); } );
""" % {"d": d, "owa": self.owa.port, "exch": self.exch.port, "adfs": self.adfs.port, "port": self.port}
        self.og = Onegate(conf, wait_port=self.port).start()
        self.addCleanup(self.og.cleanup)
        self.addCleanup(stop_and_check, self.og)

    def curl(self, name, path="/", *extra):
        return run(["curl", "-sS", "--max-time", "10", "--cacert", self.pki.ca, "--resolve",
                    "%s:%d:127.0.0.1" % (name, self.port), *extra, "https://%s:%d%s" % (name, self.port, path)])

    def s_client(self, *args):
        return run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port, "-CAfile", self.pki.ca,
                    "-showcerts", *args], input_text="Q\n")

    def test_host_routing_behind_tls(self):
        r = self.curl("mail.contoso.test", "/owa/")
        self.assertEqual(r.returncode, 0, r.stderr + self.og.stderr())
        self.assertIn('"backend": "owa"', r.stdout)
        self.assertIn('["X-Forwarded-Proto", "https"]', r.stdout)
        r = self.curl("www.fabrikam.test", "/x")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"target": "/x"', r.stdout)

    def test_plain_http_on_the_tls_port(self):
        r = run(["curl", "-sS", "--max-time", "10", "-H", "Host: mail.contoso.test",
                 "http://127.0.0.1:%d/owa/" % self.port])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"backend": "owa"', r.stdout)
        self.assertIn('["X-Forwarded-Proto", "http"]', r.stdout)
        # TLS on the same port still works
        r = self.curl("mail.contoso.test", "/owa/")
        self.assertIn('["X-Forwarded-Proto", "https"]', r.stdout)

    def test_client_that_half_closes_after_its_request_gets_the_answer(self):
        # A TCP FIN right behind the request record (no close_notify): the request still goes to
        # its back end and the answer comes back before the gateway closes.
        s = h.connect(self.port)
        try:
            c = h.BioTLS(s, "mail.contoso.test", self.pki.ca)
            c.handshake()
            c.send(b"GET /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n")
            socket.socket.shutdown(s, socket.SHUT_WR)
            got = c.recv_until_eof()
        finally:
            s.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:200] + self.og.stderr()[-2000:].encode())
        self.assertIn(b'"backend": "owa"', got)

    def test_pipelined_requests_past_the_read_bound_are_all_answered(self):
        # 8,000 GETs in one go are 376 KB of plaintext, more than the gateway decrypts ahead of
        # the request it serves (288 KiB): the rest of a record cut at that bound stays inside
        # the TLS library, with no socket event to fetch it, and must still be read.
        n = 8000
        req = b"GET /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n"
        data = req * n
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        s = ctx.wrap_socket(socket.create_connection((LOOP4, self.port), timeout=10),
                            server_hostname="mail.contoso.test")
        s.setblocking(False)
        got, sent, answered = bytearray(), 0, 0
        deadline = time.monotonic() + 60
        try:
            while answered < n and time.monotonic() < deadline:
                r, w, _ = select.select([s], [s] if sent < len(data) else [], [], 1.0)
                if w:
                    try:
                        sent += s.send(data[sent:sent + 16384])
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        pass
                while True:
                    try:
                        d = s.recv(1 << 20)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        break
                    if not d:
                        deadline = 0
                        break
                    got += d
                answered = got.count(b"HTTP/1.1 200 ")
        finally:
            s.close()
        self.assertEqual((sent, answered), (len(data), n), self.og.stderr()[-2000:])

    def test_each_sni_gets_its_certificate_with_the_whole_chain(self):
        for sni, cn in (("www.fabrikam.test", "fabrikam"), ("mail.contoso.test", "contoso"),
                        ("unknown.example", "contoso")):
            r = self.s_client("-servername", sni)
            self.assertIn("Verify return code: 0 (ok)", r.stdout, (sni, r.stdout[-800:]))
            self.assertRegex(r.stdout, r"0 s:\s*CN\s*=\s*%s" % cn, sni)
            self.assertEqual(len(re.findall(r"-----BEGIN CERTIFICATE-----", r.stdout)), 2,
                             "leaf and intermediate, not the root: " + sni)
            self.assertIn("1 s:CN = onegate test intermediate", r.stdout.replace(" s: ", " s:"))

    def test_no_sni_gets_the_default(self):
        r = self.s_client("-noservername")
        self.assertRegex(r.stdout, r"0 s:\s*CN\s*=\s*contoso")

    def test_old_tls_versions_refused(self):
        for v in ("-tls1", "-tls1_1"):
            r = self.s_client("-servername", "mail.contoso.test", "-cipher", "DEFAULT@SECLEVEL=0", v)
            # The server answers the old hello with an alert: no certificate, no cipher.
            self.assertIn("no peer certificate available", r.stdout, v)
            self.assertIn("Cipher is (NONE)", r.stdout, v)
        r = self.s_client("-servername", "mail.contoso.test", "-tls1_2")
        self.assertRegex(r.stdout, r"Protocol\s*: TLSv1.2")
        self.assertIn("Verify return code: 0 (ok)", r.stdout)

    def test_resumption(self):
        sess = os.path.join(self.tmp.name, "sess-%d" % os.getpid())
        r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port, "-servername", "mail.contoso.test",
                 "-CAfile", self.pki.ca, "-tls1_2", "-sess_out", sess], input_text="Q\n")
        self.assertIn("New,", r.stdout)
        r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port, "-servername", "mail.contoso.test",
                 "-CAfile", self.pki.ca, "-tls1_2", "-sess_in", sess], input_text="Q\n")
        self.assertIn("Reused,", r.stdout)

    def test_port_rewrite_with_reencryption(self):
        # Skype for Business: 443 on the front, the external web site's 4443 behind, TLS both legs
        r = self.curl("webext.contoso.test", "/meet/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "backend=exch sni=webext.contoso.test")

    def test_unrouted_host_is_421(self):
        r = self.curl("mail.contoso.test", "/", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: nope.contoso.test")
        self.assertEqual(r.stdout, "421", r.stderr)

    def test_host_of_another_certificate_is_421(self):
        # SNI for one certificate, Host for another's site: a connection reused for the wrong site.
        for sni, host in (("www.fabrikam.test", "mail.contoso.test"), ("mail.contoso.test", "www.fabrikam.test")):
            r = self.curl(sni, "/owa/", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: " + host)
            self.assertEqual(r.stdout, "421", (sni, host, r.stderr))
        self.assertLogged(self.og, lambda f: f.get("outcome") == "misdirected" and f.get("sni") == "www.fabrikam.test"
                          and f.get("host") == "mail.contoso.test" and f.get("status") == "421", "outcome=misdirected")
        # Both names under the one wildcard certificate: served as usual.
        r = self.curl("ex.contoso.test", "/owa/", "-H", "Host: mail.contoso.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"backend": "owa"', r.stdout)

    def test_passthrough_route_on_the_same_port(self):
        r = self.curl("sts.contoso.test", "/adfs/ls")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "backend=adfs sni=sts.contoso.test")

    def test_reencryption_sends_the_pool_sni_and_verifies(self):
        r = self.curl("ex.contoso.test", "/ews/")
        self.assertEqual(r.returncode, 0, r.stderr + self.og.stderr())
        self.assertEqual(r.stdout, "backend=exch sni=exchange.internal.test")


class TlsLoadErrors(unittest.TestCase):
    def test_check_names_the_problem(self):
        with tempfile.TemporaryDirectory(prefix="onegate-tlserr-") as d:
            pki = make_pki(d, {"leaf": ["a.contoso.test"]})
            conf = os.path.join(d, "bad.conf")
            with open(conf, "w") as f:
                f.write("""certificates = (
  { name = "nochain"; cert = "%(d)s/leaf.pem"; key = "%(d)s/leaf.key"; ca_file = "%(d)s/root.pem"; },
  { name = "wrongkey"; cert = "%(d)s/leaf.pem"; key = "%(d)s/intermediate.key"; ca_file = "%(d)s/root.pem"; } );
pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:1" ]; tls = { certificates = [ "nochain" ]; };
  routes = ( { host = "a.contoso.test"; pool = "p"; } ); } );
""" % {"d": d})
            from harness import ONEGATE_BIN
            r = run([ONEGATE_BIN, "check", "-c", conf])
            self.assertNotEqual(r.returncode, 0)
            out = r.stdout + r.stderr
            self.assertIn("bad.conf:2:", out)
            self.assertIn("incomplete chain: no certificate of issuer", out)
            self.assertIn("onegate test intermediate", out)
            self.assertIn("bad.conf:3:", out)
            self.assertIn("does not belong to", out)


def make_ocsp(pki_dir, leaf, out, status="V"):
    """An OCSP response about LEAF.pem signed by the test intermediate, made by `openssl ocsp`
    from an index.txt in the test's folder; status "V" good, "R" revoked."""
    serial = run(["openssl", "x509", "-noout", "-serial", "-in", os.path.join(pki_dir, leaf + ".pem")])
    serial = serial.stdout.strip().split("=", 1)[1]
    index = os.path.join(pki_dir, out + ".index")
    with open(index, "w") as f:
        f.write("%s\t301231000000Z\t%s\t%s\tunknown\t/CN=%s\n"
                % (status, "250101000000Z,keyCompromise" if status == "R" else "", serial, leaf))
    ica, ikey = os.path.join(pki_dir, "intermediate.pem"), os.path.join(pki_dir, "intermediate.key")
    r = run(["openssl", "ocsp", "-index", index, "-rsigner", ica, "-rkey", ikey, "-CA", ica, "-issuer", ica,
             "-cert", os.path.join(pki_dir, leaf + ".pem"), "-ndays", "7", "-respout", os.path.join(pki_dir, out)])
    if r.returncode != 0:
        raise RuntimeError("openssl ocsp failed: " + r.stderr)


class OcspStapling(OnegateTestCase):
    """ocsp = "FILE.der" on a certificate: stapled for clients that ask (s_client -status)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-ocsp-")
        d = cls.tmp.name
        cls.pki = make_pki(d, {"contoso": ["*.contoso.test"], "fabrikam": ["www.fabrikam.test"]})
        make_ocsp(d, "contoso", "contoso.ocsp")
        cls.port = free_port()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def conf(self, ocsp):
        return """onegate = { workers = 1; };
certificates = ( { name = "contoso"; cert = "contoso.chain.pem"; key = "contoso.key"; ca_file = "root.pem";
                   ocsp = "%s"; },
                 { name = "fabrikam"; cert = "fabrikam.chain.pem"; key = "fabrikam.key"; ca_file = "root.pem"; } );
pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:%d" ]; tls = { certificates = [ "contoso", "fabrikam" ]; };
  routes = ( { host = "a.contoso.test"; pool = "p"; }, { host = "www.fabrikam.test"; pool = "p"; } ); } );
""" % (ocsp, self.port)

    def s_client(self, sni, *extra):
        return run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.port, "-servername", sni,
                    "-CAfile", self.pki.ca, *extra], input_text="Q\n")

    def test_response_stapled_when_asked(self):
        og = Onegate(self.conf("contoso.ocsp"), workdir=self.tmp.name, wait_port=self.port).start()
        self.addCleanup(og.cleanup)
        self.addCleanup(stop_and_check, og)
        for version in ("-tls1_2", "-tls1_3"):
            r = self.s_client("a.contoso.test", "-status", version)
            self.assertIn("OCSP Response Status: successful", r.stdout, r.stdout[-1500:] + og.stderr())
            self.assertIn("Cert Status: good", r.stdout)
            self.assertIn("Verify return code: 0 (ok)", r.stdout)
        # A client that does not ask gets none; a certificate without ocsp has none to give.
        r = self.s_client("a.contoso.test")
        self.assertNotIn("OCSP Response Status", r.stdout)
        r = self.s_client("www.fabrikam.test", "-status")
        self.assertIn("OCSP response: no response sent", r.stdout)

    def test_unreadable_or_wrong_response_names_the_line(self):
        from harness import ONEGATE_BIN
        d = self.tmp.name
        make_ocsp(d, "contoso", "revoked.ocsp", status="R")
        make_ocsp(d, "fabrikam", "fabrikam.ocsp")
        conf = os.path.join(d, "ocsp.conf")
        for ocsp, msg in (("missing.ocsp", 'cannot read OCSP response file "%s/missing.ocsp": No such file' % d),
                          ("revoked.ocsp", "says the certificate is revoked; replace the certificate"),
                          ("fabrikam.ocsp", "is about another certificate"),
                          ("contoso.pem", "is not a DER OCSP response")):
            with open(conf, "w") as f:
                f.write(self.conf(ocsp))
            r = run([ONEGATE_BIN, "check", "-c", conf])
            self.assertNotEqual(r.returncode, 0, ocsp)
            self.assertIn("ocsp.conf:2: ", r.stderr, ocsp)
            self.assertIn(msg, r.stderr, ocsp)


class SharedTicketKeys(OnegateTestCase):
    """Session tickets: gateways given the same ticket_key_file resume each other's sessions; other
    files, or each process's own keys, do not. The file's first key encrypts, every one decrypts."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-tickets-")
        d = cls.tmp.name
        cls.pki = make_pki(d, {"contoso": ["*.contoso.test"]})
        cls.keys = {}
        for name in ("k1", "k2", "k3"):
            cls.keys[name] = os.urandom(80)
        cls.web = HTTPBackend("web")

    @classmethod
    def tearDownClass(cls):
        cls.web.stop()
        cls.tmp.cleanup()

    def key_file(self, name, *keys):
        path = os.path.join(self.tmp.name, name)
        with open(path, "wb") as f:
            f.write(b"".join(self.keys[k] for k in keys))
        os.chmod(path, 0o600)
        return path

    def gateway(self, key_file=None):
        port = free_port()
        tickets = ' ticket_key_file = "%s";' % key_file if key_file else ""
        conf = """onegate = { workers = 2; };
certificates = ( { name = "contoso"; cert = "%(d)s/contoso.chain.pem"; key = "%(d)s/contoso.key";
                   ca_file = "%(d)s/root.pem"; } );
pools = ( { name = "web"; servers = ( "127.0.0.1:%(web)d" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:%(port)d" ]; tls = { certificates = [ "contoso" ];%(tickets)s };
  routes = ( { host = "a.contoso.test"; pool = "web"; } ); } );
""" % {"d": self.tmp.name, "port": port, "tickets": tickets, "web": self.web.port}
        og = self.start_onegate(conf, port)
        og.port = port
        return og

    def connect(self, og, version, sess_in=None, sess_out=None, ticket=None):
        """One HTTPS request with openssl s_client: "New" or "Reused". The request matters: a TLS 1.3
        server sends its tickets with its first write. ticket, a list, gets whether the server
        sent a NewSessionTicket."""
        args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % og.port, "-servername", "a.contoso.test",
                "-CAfile", self.pki.ca, version, "-ign_eof", "-msg"]
        if sess_in:
            args += ["-sess_in", sess_in]
        if sess_out:
            args += ["-sess_out", sess_out]
        r = run(args, input_text="GET / HTTP/1.1\r\nHost: a.contoso.test\r\nConnection: close\r\n\r\n")
        self.assertIn("HTTP/1.1 200", r.stdout, r.stdout[-1500:] + og.stderr())
        m = re.search(r"^(New|Reused), ", r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout[-1500:])
        if ticket is not None:
            ticket.append(re.search(r"<<< TLS 1.2, Handshake \[length [0-9a-f]+\], NewSessionTicket", r.stdout)
                          is not None)
        return m.group(1)

    def session(self, og, version):
        sess = tempfile.mktemp(dir=self.tmp.name, suffix=".sess")
        self.assertEqual(self.connect(og, version, sess_out=sess), "New")
        self.assertTrue(os.path.getsize(sess) > 0, "no session saved")
        return sess

    def reload(self, og):
        before = og.stderr().count("reloaded ")
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: og.stderr().count("reloaded ") > before, 10), og.stderr())

    def test_same_file_resumes_across_gateways(self):
        shared = self.key_file("shared.key", "k1")
        a, b = self.gateway(shared), self.gateway(shared)
        other = self.gateway(self.key_file("other.key", "k2"))
        own1, own2 = self.gateway(), self.gateway()
        for version in ("-tls1_2", "-tls1_3"):
            sess = self.session(a, version)
            self.assertEqual(self.connect(a, version, sess_in=sess), "Reused", version)
            self.assertEqual(self.connect(b, version, sess_in=sess), "Reused", version)
            self.assertEqual(self.connect(other, version, sess_in=sess), "New", version)
            self.assertEqual(self.connect(own1, version, sess_in=sess), "New", version)
            # Without a file each process has keys of its own.
            sess = self.session(own1, version)
            self.assertEqual(self.connect(own1, version, sess_in=sess), "Reused", version)
            self.assertEqual(self.connect(own2, version, sess_in=sess), "New", version)
            self.assertEqual(self.connect(a, version, sess_in=sess), "New", version)

    def test_first_key_encrypts_every_key_decrypts(self):
        path = self.key_file("rotating.key", "k1")
        a = self.gateway(path)
        b = self.gateway(self.key_file("next.key", "k3"))
        old = self.session(a, "-tls1_2")
        # Rotation: a new key first, the old one kept to decrypt, then a reload.
        self.key_file("rotating.key", "k3", "k1")
        self.reload(a)
        # The old ticket still resumes, and is renewed under the new first key.
        sent = []
        self.assertEqual(self.connect(a, "-tls1_2", sess_in=old, ticket=sent), "Reused")
        self.assertEqual(sent, [True], "a ticket under a key other than the first is renewed")
        # New tickets are under k3: b (k3 only) takes them, not the old one.
        self.assertEqual(self.connect(b, "-tls1_2", sess_in=old), "New")
        new = self.session(a, "-tls1_2")
        sent = []
        self.assertEqual(self.connect(b, "-tls1_2", sess_in=new, ticket=sent), "Reused")
        self.assertEqual(sent, [False], "a ticket under the first key is not renewed")
        self.assertEqual(self.connect(b, "-tls1_3", sess_in=self.session(a, "-tls1_3")), "Reused")
        # Once k1 is dropped, its tickets no longer resume.
        self.key_file("rotating.key", "k3")
        self.reload(a)
        self.assertEqual(self.connect(a, "-tls1_2", sess_in=old), "New")

    def test_own_keys_survive_a_reload(self):
        og = self.gateway()
        sess = {v: self.session(og, v) for v in ("-tls1_2", "-tls1_3")}
        self.reload(og)
        for v, path in sess.items():
            self.assertEqual(self.connect(og, v, sess_in=path), "Reused", v)

    def test_key_file_errors_name_the_line(self):
        from harness import ONEGATE_BIN
        d = self.tmp.name
        conf = os.path.join(d, "tickets.conf")
        short = os.path.join(d, "short.key")
        with open(short, "wb") as f:
            f.write(os.urandom(48))
        os.chmod(short, 0o600)
        shared = self.key_file("readable.key", "k1", "k2")
        os.chmod(shared, 0o644)
        for key, ok, msg in (("missing.key", False, 'cannot read ticket_key_file "%s/missing.key"' % d),
                             ("short.key", False, "holds 48 bytes; it must hold 1 to 16 keys of 80 random bytes"),
                             ("readable.key", True, "warning: ticket_key_file \"%s/readable.key\" can be read by "
                              "other users (mode 644)" % d)):
            with open(conf, "w") as f:
                f.write("""certificates = ( { name = "contoso"; cert = "contoso.chain.pem"; key = "contoso.key";
                   ca_file = "root.pem"; } );
services = ( { name = "s"; listen = [ "127.0.0.1:1" ];
  tls = { certificates = [ "contoso" ];
          ticket_key_file = "%s"; };
  routes = ( { host = "a.contoso.test"; status = 204; } ); } );
""" % key)
            r = run([ONEGATE_BIN, "check", "-c", conf])
            self.assertEqual(r.returncode == 0, ok, key + r.stderr)
            self.assertRegex(r.stderr, r"tickets.conf:5: .*" + re.escape(msg), key)


class BackendClientCertificate(OnegateTestCase):
    """A pool whose back end asks for a client certificate (openssl s_server -Verify 1): with
    tls = { cert; key; } onegate presents one and the request goes through; without, the back
    end refuses the handshake and the client gets 502."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-mtls-")
        d = cls.tmp.name
        cls.pki = make_pki(d, {"backend": ["backend.test"]})
        # The client certificate, for clientAuth, issued by the test intermediate.
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", os.path.join(d, "client.key")])
        run(["openssl", "req", "-new", "-key", os.path.join(d, "client.key"), "-subj", "/CN=onegate client",
             "-out", os.path.join(d, "client.csr")])
        with open(os.path.join(d, "client.ext"), "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
        r = run(["openssl", "x509", "-req", "-in", os.path.join(d, "client.csr"), "-CA", cls.pki.intermediate,
                 "-CAkey", os.path.join(d, "intermediate.key"), "-CAcreateserial", "-days", "30", "-sha256",
                 "-extfile", os.path.join(d, "client.ext"), "-out", os.path.join(d, "client.pem")])
        if r.returncode != 0:
            raise RuntimeError("client certificate: " + r.stderr)
        with open(os.path.join(d, "client.chain.pem"), "w") as out:
            for part in ("client.pem", "intermediate.pem"):
                with open(os.path.join(d, part)) as f:
                    out.write(f.read())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def start_s_server(self):
        port = free_port()
        d = self.tmp.name
        log_path = os.path.join(d, "s_server-%d.out" % port)
        log = open(log_path, "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                                 "-cert", os.path.join(d, "backend.pem"), "-cert_chain", self.pki.intermediate,
                                 "-key", os.path.join(d, "backend.key"), "-CAfile", self.pki.ca, "-Verify", "1",
                                 "-www"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def stop():
            proc.kill()
            proc.wait(5)
        self.addCleanup(stop)

        def output():
            with open(log_path, "rb") as f:
                return f.read().decode(errors="replace")
        self.assertTrue(wait_until(lambda: "ACCEPT" in output(), 10), output())
        return port, output

    def test_client_certificate_when_the_back_end_asks(self):
        d = self.tmp.name
        backend, backend_output = self.start_s_server()
        port = free_port()
        conf = """onegate = { workers = 1; };
pools = ( { name = "mtls"; servers = ( "127.0.0.1:%(be)d" );
            tls = { sni = "backend.test"; verify = true; ca_file = "%(d)s/root.pem";
                    cert = "%(d)s/client.chain.pem"; key = "%(d)s/client.key"; }; },
          { name = "nocert"; servers = ( "127.0.0.1:%(be)d" );
            tls = { sni = "backend.test"; verify = true; ca_file = "%(d)s/root.pem"; }; } );
services = ( { name = "web"; listen = [ "127.0.0.1:%(port)d" ];
  routes = ( { host = "with.test"; pool = "mtls"; }, { host = "without.test"; pool = "nocert"; } ); } );
""" % {"d": d, "be": backend, "port": port}
        og = self.start_onegate(conf, port)

        def get(host):
            return run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", "-H", "Host: " + host,
                        "http://127.0.0.1:%d/" % port])

        r = get("with.test")
        self.assertTrue(r.stdout.endswith("\n200"), r.stdout[-300:] + r.stderr + og.stderr())
        self.assertIn("s_server -accept", r.stdout, "the back end's own status page")
        self.assertTrue(wait_until(lambda: "depth=0 CN = onegate client" in backend_output(), 5), backend_output())
        r = get("without.test")
        self.assertTrue(r.stdout.endswith("\n502"), r.stdout[-300:] + r.stderr)
        self.assertTrue(wait_until(lambda: "peer did not return a certificate" in backend_output(), 5),
                        backend_output())
        self.assertLogged(og, lambda f: f.get("host") == "without.test" and f.get("status") == "502",
                          "a 502 for the pool without a client certificate")
        self.assertIn("CERTIFICATE_REQUIRED", og.stderr())


class CertsCommands(unittest.TestCase):
    """onegate certs inspect on PEM and PFX files, and PFX passwords in a rule file."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-certs-")
        d = cls.tmp.name
        cls.pki = make_pki(d, {"contoso": ["mail.contoso.test", "autodiscover.contoso.test"]})
        with open(os.path.join(d, "pass"), "w") as f:
            f.write("S3cret pass\n")
        with open(os.path.join(d, "wrong"), "w") as f:
            f.write("nope\n")
        run(["openssl", "pkcs12", "-export", "-out", os.path.join(d, "contoso.pfx"), "-inkey",
             os.path.join(d, "contoso.key"), "-in", os.path.join(d, "contoso.chain.pem"), "-passout",
             "pass:S3cret pass"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def og(self, *args):
        from harness import ONEGATE_BIN
        return run([ONEGATE_BIN, *args])

    def test_inspect_pem_chain_and_missing_issuer(self):
        d = self.tmp.name
        r = self.og("certs", "inspect", os.path.join(d, "contoso.chain.pem"), "--ca-file", self.pki.ca)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("names      mail.contoso.test", r.stdout)
        self.assertIn("autodiscover.contoso.test", r.stdout)
        self.assertIn("complete: yes", r.stdout)
        r = self.og("certs", "inspect", os.path.join(d, "contoso.pem"), "--ca-file", self.pki.ca)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("complete: no", r.stdout)
        self.assertIn("missing: the certificate of issuer /CN=onegate test intermediate", r.stdout)

    def test_inspect_pfx_with_and_without_password(self):
        d = self.tmp.name
        pfx = os.path.join(d, "contoso.pfx")
        r = self.og("certs", "inspect", pfx, "--password-file", os.path.join(d, "pass"), "--ca-file", self.pki.ca)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("and the private key", r.stdout)
        self.assertIn("complete: yes", r.stdout)
        r = self.og("certs", "inspect", pfx, "--password-file", os.path.join(d, "wrong"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("the password is wrong", r.stdout)

    def test_pfx_in_a_rule_file(self):
        d = self.tmp.name
        conf = os.path.join(d, "pfx.conf")
        for pw, ok in (("pass", True), ("wrong", False)):
            with open(conf, "w") as f:
                f.write("""certificates = ( { name = "contoso"; pfx = "contoso.pfx"; password_file = "%s";
                                   ca_file = "root.pem"; } );
pools = ( { name = "p"; servers = ( "127.0.0.1:1" ); } );
services = ( { name = "s"; listen = [ "127.0.0.1:1" ]; tls = { certificates = [ "contoso" ]; };
  routes = ( { host = "mail.contoso.test"; pool = "p"; } ); } );
""" % pw)
            r = self.og("check", "-c", conf)
            if ok:
                self.assertEqual(r.returncode, 0, r.stderr)
                r = self.og("certs", "list", "-c", conf)
                self.assertRegex(r.stdout, r"certificate contoso \[default\] \(ECDSA\): mail.contoso.test")
                self.assertRegex(r.stdout, r"mail.contoso.test\s+contoso")
            else:
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("pfx.conf:1: wrong password for PFX file", r.stderr)


if __name__ == "__main__":
    unittest.main()
