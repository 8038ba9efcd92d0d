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

# How each shipped template is meant to be used: on the pool and an HTTP route, on the pool and a
# passthrough route by SNI, or on a route (and a default) that answers by itself. A template file
# whose template is missing here fails test_templates_check: say how it is used, and what it sets.
TEMPLATE_USE = {
    "adfs": "passthrough", "exchange": "http", "exchange-owa": "http", "exchange-ecp": "http",
    "exchange-ews": "http", "exchange-activesync": "http", "exchange-autodiscover": "http",
    "exchange-mapi": "http", "exchange-rpc": "http", "exchange-oab": "http", "redirect-https": "answer",
    "skype-lyncdiscover-http": "http", "skype-web": "http", "skype-web-http": "http", "web": "http",
}

# What --print must show each template set, on its route and in its pool ("" where it sets nothing there).
SKYPE_ROUTE = 'request_timeout = "960s"; idle_timeout = "1800s"; }'
SKYPE_POOL = ('connect_timeout = "5s"; idle_timeout = "1800s"; balance = "roundrobin";',
              'health = { type = "https"; port = 4443; method = "GET"; path = "/meet/"; expect = "200-499";')
EXCHANGE_ROUTE = 'request_timeout = "1800s"; idle_timeout = "1800s"; }'


def exchange_pool(vdir):
    return ('connect_timeout = "5s"; idle_timeout = "1800s"; balance = "leastconn";',
            'tls = { };',
            'health = { type = "https"; method = "GET"; path = "/%s/healthcheck.htm"; expect = "200-200";' % vdir)


TEMPLATE_SETS = {
    "adfs": ("passthrough = true; pool = \"p-adfs\"; }",
             ('connect_timeout = "5s"; idle_timeout = "1800s"; balance = "roundrobin";',
              'health = { type = "http"; port = 80; method = "GET"; path = "/adfs/probe"; expect = "200-200";')),
    "exchange": (EXCHANGE_ROUTE, exchange_pool("owa")),
    "exchange-owa": (EXCHANGE_ROUTE, exchange_pool("owa")),
    "exchange-ecp": (EXCHANGE_ROUTE, exchange_pool("ecp")),
    "exchange-ews": (EXCHANGE_ROUTE, exchange_pool("ews")),
    "exchange-activesync": (EXCHANGE_ROUTE, exchange_pool("Microsoft-Server-ActiveSync")),
    "exchange-autodiscover": (EXCHANGE_ROUTE, exchange_pool("autodiscover")),
    "exchange-mapi": (EXCHANGE_ROUTE, exchange_pool("mapi")),
    "exchange-rpc": (EXCHANGE_ROUTE, exchange_pool("rpc")),
    "exchange-oab": (EXCHANGE_ROUTE, exchange_pool("oab")),
    "redirect-https": ('redirect = "https"; status = 301; }', ()),
    "skype-lyncdiscover-http": ("port = 8080; " + SKYPE_ROUTE, SKYPE_POOL),
    "skype-web": ("port = 4443; " + SKYPE_ROUTE, SKYPE_POOL + ("tls = { };",)),
    "skype-web-http": ("port = 8080; " + SKYPE_ROUTE, SKYPE_POOL),
    "web": ('request_timeout = "120s"; idle_timeout = "1800s"; }',
            ('balance = "roundrobin";', 'health = { type = "http"; method = "GET"; path = "/"; expect = "200-499"; '
                                        'interval = "10s";')),
}

# What each template's comment block must say: the workload's requirements it cites.
TEMPLATE_CITES = {
    "adfs": ("passthrough", "certificate authentication", "49443", "/adfs/probe", "port 80", "no IP or sticky"),
    "exchange": ("OWA", "ECP", "EWS", "ActiveSync", "Autodiscover", "MAPI", "RPC over HTTP", "OAB",
                 "one health probe per virtual directory", "healthcheck.htm", "1 GiB", "RPC_IN_DATA",
                 "RPC_OUT_DATA", "15", "no affinity", "encrypted again"),
    "redirect-https": ("https://", "301"),
    "skype-lyncdiscover-http": ("lyncdiscover", "80 -> 8080", "Host"),
    "skype-web": ("Lync Server 2013", "Skype for Business Server 2015 and 2019", "external web services FQDN",
                  "meet", "dialin", "lyncdiscover", "scheduler", "4443", "SSL offloading is not supported",
                  "Host forwarded unchanged", "no pre-authentication", "960 s", "1800 s", "no affinity",
                  "request by request", "health"),
    "skype-web-http": ("8080", "80"),
    "web": ("homelab", "Round robin", "401"),
}


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

    def test_missing_token_file_fails_check_as_it_fails_run(self):
        """check builds what run builds: an admin token file that cannot be read fails both, at its line."""
        p = self.write("token.conf", 'onegate = { workers = 1;\n'
                                     '  admin = { listen = "127.0.0.1:%d"; token_file = "absent.token"; }; };\n'
                                     'pools = ( { name = "a"; servers = ( "127.0.0.1:9001" ); } );\n'
                                     'services = ( { name = "s"; listen = [ "127.0.0.1:%d" ];\n'
                                     '  default = { pool = "a"; }; } );\n' % (h.free_port(), h.free_port()))
        want = re.escape(p) + r":2: .*absent\.token"
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 1, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertNotIn(": OK", out)
        self.assertRegex(err, "(?m)^" + want)
        # run logs it (after a time stamp and level) and stops before serving.
        rc, out, err = run("run", "-c", p)
        self.assertNotEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertRegex(err, want)
        # With the file in place both pass the token step: check says OK.
        self.write("absent.token", "s3cret-token-for-the-test\n")
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))

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
        self.assertRegex(out, r'name = "skype-ee1"; connect_timeout = "5s"; idle_timeout = "1800s"; '
                              r'balance = "roundrobin";')
        self.assertIn('health = { type = "https"; port = 4443; method = "GET"; path = "/meet/"', out)
        self.assertIn('{ host = "webext-ee1.contoso.com"; pool = "skype-ee1"; port = 4443; '
                      'request_timeout = "960s"; idle_timeout = "1800s"; }', out)
        self.assertIn('path = "/adfs/probe"', out)
        self.assertIn('{ host = "*"; redirect = "https"; status = 301; }', out)
        # AD FS passed through on 443 and on its certificate-authentication port 49443.
        self.assertIn('{ sni = "sts.contoso.com"; passthrough = true; pool = "adfs"; },', out)
        self.assertRegex(out, r'name = "adfs-certauth"; listen = \[ "0\.0\.0\.0:49443", "\[::\]:49443" \];.*TLS passthrough')
        self.assertIn('{ sni = "sts.contoso.com"; passthrough = true; pool = "adfs"; port = 49443; }', out)
        # Every name the Skype pool serves, on the 443 service.
        for name in ("webext-ee1", "meet", "dialin", "lyncdiscover", "scheduler"):
            self.assertIn('{ host = "%s.contoso.com"; pool = "skype-ee1"; port = 4443; ' % name, out)
        # What --print writes loads again.
        printed = self.write("printed.conf", "".join(l + "\n" for l in out.splitlines() if ": OK (" not in l))
        shutil.copy(printed, os.path.join(pki_dir, "printed.conf"))
        rc, out2, err = run("check", "-c", os.path.join(pki_dir, "printed.conf"))
        self.assertEqual(rc, 0, err)

    def test_templates_check(self):
        """Every file in rules/templates/ passes onegate check with each of its templates in use,
        and --print shows what each one sets."""
        files = sorted(glob.glob(os.path.join(h.SOURCE_DIR, "rules", "templates", "*.conf")))
        self.assertTrue(files, "no rules/templates/*.conf")
        seen = set()
        for path in files:
            base = os.path.basename(path)
            with self.subTest(template_file=base):
                with open(path) as f:
                    text = f.read()
                code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
                names = re.findall(r'\{\s*name\s*=\s*"([^"]+)"', code)
                self.assertTrue(names, "%s defines no template" % base)
                unknown = [n for n in names if n not in TEMPLATE_USE]
                self.assertEqual(unknown, [], "say in TEMPLATE_USE how these are used")
                seen.update(names)
                # The file itself, @included, replaces the built-in copy of each of its templates.
                shutil.copy(path, os.path.join(self.tmp.name, base))
                pools, http, passthrough = [], [], []
                default = ""
                for n in names:
                    use = TEMPLATE_USE[n]
                    if use in ("http", "passthrough"):
                        pools.append('{ name = "p-%s"; template = "%s"; servers = ( "127.0.0.1:9443" ); }' % (n, n))
                    if use == "http":
                        http.append('{ host = "%s.test"; pool = "p-%s"; template = "%s"; }' % (n, n, n))
                    elif use == "passthrough":
                        passthrough.append('{ sni = "%s.test"; pool = "p-%s"; template = "%s"; }' % (n, n, n))
                    else:
                        http.append('{ host = "%s.test"; template = "%s"; }' % (n, n))
                        default = 'default = { template = "%s"; };' % n
                services = []
                if http:
                    services.append('{ name = "http"; listen = [ "127.0.0.1:18080" ];\n  routes = ( %s ); %s }'
                                    % (",\n    ".join(http), default))
                if passthrough:
                    services.append('{ name = "pt"; listen = [ "127.0.0.1:18443" ];\n  routes = ( %s ); }'
                                    % ",\n    ".join(passthrough))
                conf = self.write("uses-" + base, '@include "%s"\n%spools = ( %s );\nservices = ( %s );\n' % (
                    base, "", ",\n  ".join(pools), ",\n  ".join(services)))
                rc, out, err = run("check", "--print", "-c", conf)
                self.assertEqual(rc, 0, "%s:\n%s\nthe file:\n%s" % (base, err, open(conf).read()))
                self.assertNotRegex(err, r"(?m)^\S+:\d+: (?!warning)", err)
                for n in names:
                    route, pool = TEMPLATE_SETS[n]
                    route_line = [l for l in out.splitlines() if '"%s.test"' % n in l]
                    self.assertEqual(len(route_line), 1, out)
                    self.assertIn(route, route_line[0], "route of template %s" % n)
                    if pool:
                        block = out[out.index('{ name = "p-%s";' % n):]
                        block = block[:block.index("\n  }")]
                        for want in pool:
                            self.assertIn(want, block, "pool of template %s" % n)
                if default:
                    self.assertIn("    default = { redirect = \"https\"; status = 301; };", out)
        self.assertEqual(sorted(set(TEMPLATE_USE) - seen), [], "TEMPLATE_USE names templates no file defines")

    def test_template_comments_cite_requirements(self):
        """Each template file opens with a comment block that cites what it meets."""
        for path in sorted(glob.glob(os.path.join(h.SOURCE_DIR, "rules", "templates", "*.conf"))):
            name = os.path.basename(path)[:-len(".conf")]
            with self.subTest(template=name):
                with open(path) as f:
                    lines = f.read().splitlines()
                block = []
                for line in lines:
                    if not line.startswith("#"):
                        break
                    block.append(line.lstrip("# "))
                self.assertGreaterEqual(len(block), 2, "%s.conf opens with no comment block" % name)
                comment = " ".join(block)
                self.assertTrue(comment.startswith(name + ":"), "the block starts by naming the template")
                self.assertIn(name, TEMPLATE_CITES, "say in TEMPLATE_CITES what %s.conf must cite" % name)
                for want in TEMPLATE_CITES[name]:
                    self.assertIn(want, comment)

    def test_version(self):
        rc, out, err = run("version")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.splitlines()[0], r"^onegate \S+")


if __name__ == "__main__":
    unittest.main()
