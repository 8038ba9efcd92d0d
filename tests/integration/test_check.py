"""onegate check and onegate version."""
import glob
import os
import shutil
import re
import subprocess
import tempfile
import unittest

import harness as h

VALID = r"""# a valid rule file
onegate  = { workers = 2; drain_timeout = 10; };
pools    = ( { name = "adfs"; servers = ( "127.0.0.1:9001", "127.0.0.1:9002" ); proxy_protocol = 2;
               connect_timeout = 5; idle_timeout = 1800; },
             { name = "lab";  servers = ( "127.0.0.1:9003" ); connect_timeout = "500ms"; },
             { name = "apps"; servers = ( "[::1]:9004" ); idle_timeout = "30s"; } );
services = ( { name = "public"; listen = [ "127.0.0.1:8443" ]; accept_proxy = false; proxy_timeout = 5;
               hello_timeout = 10;
               routes  = ( { sni = "sts.contoso.test"; pool = "adfs"; },
                           { sni = "*.home.test";     pool = "lab"; },
                           { sni = "~^app[0-9]+\\.test$"; pool = "apps"; } );
               default = { pool = "lab"; }; },
             { name = "strict"; listen = [ "127.0.0.1:8444" ]; hello_timeout = 2.5;
               routes  = ( { sni = "sts.contoso.test"; pool = "adfs"; } );
               default = { reject = true; }; } );
"""

# Four independent errors, each on a line of its own (numbers in the comments).
ERRORS = r"""onegate = { workers = 1; };
pools = (
  { name = "a"; servers = ( "127.0.0.1:9001" );
    colour = "blue"; },
  { name = "b";
    servers = ( "127.0.0.1:99999" ); }
);
services = ( { name = "s"; listen = [ "127.0.0.1:8443" ];
  routes = (
    { sni = "x.test"; pool = "nosuch"; },
    { sni = "~^(unclosed"; pool = "a"; }
  );
  default = { pool = "a"; }; } );
"""
# line -> a word the message must contain (case-insensitive alternatives)
ERROR_LINES = {
    4: ("colour",),
    6: ("99999",),
    10: ("nosuch",),
    11: ("regex", "regular expression", "pcre", "(unclosed"),
}

DIAG = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<msg>.+)$")


def run(*args, timeout=20):
    r = subprocess.run([h.ONEGATE_BIN] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    err = r.stderr.decode(errors="replace")
    m = h.SANITIZER.search(err)
    if m:
        raise AssertionError("sanitizer report from onegate %s:\n%s" % (" ".join(args), err[m.start():][:6000]))
    return r.returncode, r.stdout.decode(errors="replace"), err


class Check(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binary()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="onegate-check-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, text):
        p = os.path.join(self.tmp.name, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_valid_file(self):
        p = self.write("valid.conf", VALID)
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertTrue(out.startswith(p + ": OK"), "stdout: %r" % out)
        self.assertNotRegex(err, re.escape(p) + r":\d+: (?!warning)", "errors printed for a valid file")

    def test_errors_with_line_numbers(self):
        p = self.write("broken.conf", ERRORS)
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 1, "stdout:\n%s\nstderr:\n%s" % (out, err))
        errors = {}
        for line in err.splitlines():
            m = DIAG.match(line)
            if not m or m.group("msg").startswith("warning:"):
                continue
            self.assertEqual(m.group("file"), p, line)
            errors.setdefault(int(m.group("line")), []).append(m.group("msg"))
        self.assertEqual(sorted(errors), sorted(ERROR_LINES),
                         "error lines differ; stderr:\n%s" % err)
        for line, words in ERROR_LINES.items():
            msgs = " ".join(errors.get(line, [])).lower()
            self.assertTrue(any(w in msgs for w in words),
                            "line %d: expected one of %s in %r" % (line, words, msgs))

    def test_bad_listen_address_and_duration(self):
        p = self.write("listen.conf", 'onegate = { workers = 1; drain_timeout = "ten"; };\n'
                                      'pools = ( { name = "a"; servers = ( "127.0.0.1:9001" ); } );\n'
                                      'services = ( { name = "s";\n'
                                      '  listen = [ "127.0.0.1:8443", "not an address" ];\n'
                                      '  default = { pool = "a"; }; } );\n')
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, "(?m)^" + re.escape(p) + r":1: .*(drain_timeout|ten)", err)
        self.assertRegex(err, "(?m)^" + re.escape(p) + r":4: .*not an address", err)

    def test_syntax_error_has_line(self):
        p = self.write("syntax.conf", 'onegate = { workers = 1; };\npools = ( { name = = "a"; } );\n'
                                      'services = ( );\n')
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, "^" + re.escape(p) + r":2: ", err)

    def test_missing_file(self):
        rc, out, err = run("check", "-c", os.path.join(self.tmp.name, "absent.conf"))
        self.assertNotEqual(rc, 0)
        self.assertIn("absent.conf", err)

    def test_examples_check(self):
        examples = sorted(glob.glob(os.path.join(h.SOURCE_DIR, "rules", "examples", "*.conf")))
        if not examples:
            self.skipTest("no rules/examples/*.conf yet")
        # Examples name their certificates beside themselves, as `onegate demo` lays them out.
        pki_dir = os.path.join(self.tmp.name, "examples")
        h.make_pki(pki_dir, {"gateway": ["mail.contoso.test", "lyncdiscover.contoso.test"],
                             "public": ["*.contoso.com", "contoso.com"],
                             "home": ["*.home.example"]})
        shutil.copy(os.path.join(pki_dir, "root.pem"), os.path.join(pki_dir, "ca.pem"))
        for name in ("gateway", "public", "home"):
            shutil.copy(os.path.join(pki_dir, name + ".chain.pem"), os.path.join(pki_dir, name + ".pem"))
        for p in examples:
            with self.subTest(example=os.path.basename(p)):
                copy = os.path.join(pki_dir, os.path.basename(p))
                shutil.copy(p, copy)
                rc, out, err = run("check", "-c", copy)
                self.assertEqual(rc, 0, "%s:\n%s" % (p, err))
        # --print shows what the templates set
        rc, out, err = run("check", "--print", "-c", os.path.join(pki_dir, "one-ip-microsoft.conf"))
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r'name = "skype-ee1"; balance = "roundrobin"; connect_timeout = "5s"; '
                              r'idle_timeout = "1800s";')
        self.assertIn('health = { type = "https"; port = 4443; method = "GET"; path = "/meet/"', out)
        self.assertIn('{ host = "webext-ee1.contoso.com"; pool = "skype-ee1"; port = 4443; '
                      'request_timeout = "960s"; idle_timeout = "1800s"; }', out)
        self.assertIn('path = "/adfs/probe"', out)
        self.assertIn('{ host = "*"; redirect = "https"; status = 301; }', out)

    def test_version(self):
        rc, out, err = run("version")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.splitlines()[0], r"^onegate \S+")


if __name__ == "__main__":
    unittest.main()
