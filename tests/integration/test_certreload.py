"""A reload with many certificates reads again only the files that changed: an unchanged
certificate is the same parsed item (the reload line counts them), a certificate file replaced in
place serves its new certificate to the next handshake, and a broken replacement fails the reload
at its line and keeps serving the one before. Real TLS clients (Python's ssl) check what each name
gets."""
import hashlib
import os
import re
import signal
import socket
import ssl
import tempfile
import unittest

from harness import LOOP4, OnegateTestCase, _openssl, free_port, require_binary, wait_until

NAMES = ["a.reload.test", "b.reload.test", "c.reload.test"]


def leaf(d, base, name, days=90):
    """An ECDSA P-256 leaf for name, signed by d's root: BASE.pem and BASE.key. 90 days: a
    certificate within 30 days of its end is read again at each reload to warn again."""
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", base + ".key", cwd=d)
    os.chmod(os.path.join(d, base + ".key"), 0o600)
    _openssl("req", "-new", "-key", base + ".key", "-out", base + ".csr", "-subj", "/CN=" + name, cwd=d)
    with open(os.path.join(d, base + ".ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:%s\n" % name)
    _openssl("x509", "-req", "-in", base + ".csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
             "-out", base + ".pem", "-days", str(days), "-sha256", "-extfile", base + ".ext", cwd=d)


class CertificateReload(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        require_binary(cls)
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-certreload-")
        d = cls.d = cls.tmp.name
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "root.key", cwd=d)
        with open(os.path.join(d, "root.ext"), "w") as f:
            f.write("[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        _openssl("req", "-new", "-x509", "-key", "root.key", "-out", "root.pem", "-days", "365", "-subj",
                 "/CN=onegate reload root", "-config", "root.ext", "-extensions", "v3", cwd=d)
        for i, name in enumerate(NAMES):
            leaf(d, "site%d" % i, name)
        leaf(d, "next0", NAMES[0])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def conf(self):
        certs = ",\n  ".join('{ name = "site%d"; cert = "%s/site%d.pem"; key = "%s/site%d.key"; '
                             'ca_file = "%s/root.pem"; }' % (i, self.d, i, self.d, i, self.d)
                             for i in range(len(NAMES)))
        return """certificates = ( %s );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ];
  tls = { certificates = [ %s ]; };
  routes = ( %s ); } );
""" % (certs, self.port, ", ".join('"site%d"' % i for i in range(len(NAMES))),
       ", ".join('{ host = "%s"; status = 204; }' % n for n in NAMES))

    def served(self, name):
        """SHA-256 of the certificate a handshake for name gets, checked against the root."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.d, "root.pem"))
        with socket.create_connection((LOOP4, self.port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=name) as t:
                return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()

    def file_cert(self, base):
        der = _openssl("x509", "-in", os.path.join(self.d, base + ".pem"), "-outform", "DER")
        return hashlib.sha256(der).hexdigest()

    def reload(self, og):
        before = og.stderr().count("reloaded ") + og.stderr().count("refused")
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: og.stderr().count("reloaded ") + og.stderr().count("refused") > before,
                                   10), og.stderr())
        return og.stderr().splitlines()[-1]

    def replace(self, target, source):
        """target's files take source's contents in place (same inode, same path)."""
        for ext in (".pem", ".key"):
            with open(os.path.join(self.d, source + ext), "rb") as f:
                data = f.read()
            with open(os.path.join(self.d, target + ext), "wb") as f:
                f.write(data)

    def test_reload_keeps_unchanged_and_reads_a_changed_certificate(self):
        self.port = free_port()
        og = self.start_onegate(self.conf(), self.port)
        first = {n: self.served(n) for n in NAMES}
        for i, n in enumerate(NAMES):
            self.assertEqual(first[n], self.file_cert("site%d" % i), n)

        line = self.reload(og)
        self.assertRegex(line, r"reloaded .*: .*3 certificates \(3 unchanged, not read again\)")
        self.assertEqual({n: self.served(n) for n in NAMES}, first)

        self.replace("site0", "next0")
        line = self.reload(og)
        self.assertRegex(line, r"3 certificates \(2 unchanged, not read again\)")
        self.assertEqual(self.served(NAMES[0]), self.file_cert("next0"), "the new certificate, at once")
        self.assertNotEqual(self.served(NAMES[0]), first[NAMES[0]])
        for n in NAMES[1:]:
            self.assertEqual(self.served(n), first[n], n)

        with open(os.path.join(self.d, "site0.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        line = self.reload(og)
        self.assertIn("refused", og.stderr())
        self.assertRegex(og.stderr(), r"onegate\.conf:1: .*site0\.pem\" holds no certificate")
        self.assertEqual(self.served(NAMES[0]), self.file_cert("next0"), "the previous rules still serve")
        for n in NAMES[1:]:
            self.assertEqual(self.served(n), first[n], n)


if __name__ == "__main__":
    unittest.main()
