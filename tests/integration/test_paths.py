"""Path rules that hold: a real onegate in front of a real back end (httpback's
echo, which reports the request target it received), with a status route
(/powershell: 403) and a plugin-guarded route (/ecp behind an ip_filter that
refuses loopback) ahead of a catch-all route to the same back end. Every
spelling of the two prefixes is sent byte for byte over plain HTTP and over
TLS terminated by onegate: none reaches the back end, the ones that read two
ways get 400, the others the route's answer; requests for other paths are
unaffected and the back end receives their target exactly as sent. Also the
absolute form (matched on its path, forwarded in origin form) and
normalize_path. Loopback only."""
import json
import socket
import ssl
import tempfile
import unittest

import harness as h
from harness import LOOP4, OnegateTestCase, client_context, free_port, make_pki
from httpback import HTTPBackend
from test_plugins import compile_so

HOST = "mail.contoso.test"

# A third party's path guard, built against onegate_plugin.h alone: it reads the path onegate
# matched the route with (path_resolved, ABI 2), refuses what resolves under /secret with 451,
# and tells the back end what it saw.
GUARD_C = r"""
#include <stdio.h>
#include <strings.h>
#include "onegate_plugin.h"
static void *create(const struct onegate_args *a, const struct onegate_host *h, struct onegate_error *e)
{ (void)a; (void)e; return (void *)h; }
static int on_request(void *inst, const struct onegate_request *req, struct onegate_edits *ed)
{
    const struct onegate_host *h = inst;
    size_t n;
    const char *p = h->path_resolved(req, &n);
    if (n >= 7 && strncasecmp(p, "/secret", 7) == 0 && (n == 7 || p[7] == '/'))
        return 451;
    char v[512];
    snprintf(v, sizeof(v), "%.*s", (int)n, p);
    h->header_set(ed, ONEGATE_REQUEST_HEADERS, "X-Resolved", v);
    return 0;
}
static const struct onegate_plugin plugin = { ONEGATE_PLUGIN_ABI, "guard", create, 0, on_request, 0 };
ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void) { return &plugin; }
"""

# Every spelling of /ecp and /powershell an IIS back end resolves to them: each must take the
# prefix's route (403 here: the filter refuses loopback, the status route everyone).
BLOCKED = [
    "/ecp", "/ecp/", "/ECP/", "/Ecp/default.aspx", "/%65cp/", "/%45%43%50/", "//ecp/", "///ecp", "/./ecp/",
    "/owa/../ecp/", "/owa/%2e%2e/ecp/", "/owa/%2E%2E/ecp/", "/owa/.%2e/ecp/", "/\\ecp\\", "/owa\\..\\ecp/",
    "/ecp./", "/ecp%20/", "/ecp.%20/", "/ecp;x/", "/ecp%3bx/", "/owa/..;/ecp/", "/ecp::$DATA/", "/ecp?x=/owa",
    "/ecp/?a=/../owa", "/power%C5%BFhell/", "/powershell", "/PowerShell/", "/%70owershell", "//powershell",
    "/owa/../powershell?serializationLevel=Full", "/powershell.", "/powershell%20", "/powershell;x",
]
# Spellings that cannot be resolved safely, or whose encoded separator reads two ways: 400.
REFUSED = [
    "/owa%2f..%2fecp/", "/owa%5c..%5cecp/", "/owa%2F..%2Fpowershell", "/ecp%2fx", "/ecp%5Cx", "/%2e%2e/ecp/",
    "/%252e%252e/ecp/", "/%2565cp/", "/%c0%ae%c0%ae/ecp/", "/%u0065cp/", "/ecp%00/", "/%00", "/%zz",
    "/x/../../ecp", "/.../ecp", "/ecp/x%2f..%2f..%2fowa", "/%c0%afecp",
    "\\ecp\\",     # not origin form: the request parser refuses it before any route
]
# Not /ecp nor /powershell: the catch-all, target passed on as sent.
PASSED = [
    "/", "/owa/", "/OWA/auth/logon.aspx?url=/ecp/", "/ecpx", "/ecp2/", "/EWS/Exchange.asmx", "/powershellx",
    "/owa/%2e/x", "/owa/a%2fb", "/Microsoft-Server-ActiveSync?Cmd=Sync&User=a%2Fb", "/owa/x%20y",
    "/owa/caf%C3%A9", "/owa/;jsessionid=1", "/owa/../owa/",
]


def exchange(sock, target, host=HOST, absolute=None):
    """Sends one GET with target as raw bytes; returns (status, body)."""
    line = absolute if absolute is not None else target
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (line, host)).encode("latin-1"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise AssertionError("connection closed before an answer to %r" % target)
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = dict((k.strip().lower(), v.strip()) for k, v in (l.split(":", 1) for l in lines[1:]))
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        d = sock.recv(65536)
        if not d:
            break
        body += d
    return status, body[:n], headers


class Paths(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binary()
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-paths-")
        cls.pki = make_pki(cls.tmp.name, {"mail": [HOST, "other.test", "plug.test"]})
        cls.guard = compile_so(cls.tmp.name, "guard", GUARD_C)
        cls.echo = HTTPBackend("echo")

    @classmethod
    def tearDownClass(cls):
        cls.echo.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.port, self.tls_port = free_port(), free_port()
        self.echo.requests.clear()

    def conf(self):
        chain, key = self.pki.certs["mail"]
        routes = """
      { host = "%(host)s"; path = "/ecp"; pool = "echo"; plugins = [ "lan-only" ]; },
      { host = "%(host)s"; path = "/powershell"; status = 403; },
      { host = "%(host)s"; path = "/norm"; pool = "echo"; normalize_path = true; },
      { host = "%(host)s"; pool = "echo"; },
      { host = "plug.test"; pool = "echo"; plugins = [ "guard" ]; }""" % {"host": HOST}
        return """
onegate = { workers = 1; };
certificates = ( { name = "mail"; cert = "%(chain)s"; key = "%(key)s"; ca_file = "%(ca)s"; } );
plugins = ( { name = "lan-only"; module = "ip_filter"; args = { allow = [ "10.0.0.0/8" ]; }; },
            { name = "guard"; path = "%(guard)s"; } );
pools = ( { name = "echo"; servers = ( "127.0.0.1:%(echo)d" ); } );
services = (
  { name = "plain"; listen = [ "127.0.0.1:%(port)d" ]; routes = ( %(routes)s ); },
  { name = "tls"; listen = [ "127.0.0.1:%(tls_port)d" ]; tls = { certificates = [ "mail" ]; };
    routes = ( %(routes)s ); }
);
""" % {"chain": chain, "key": key, "ca": self.pki.ca, "echo": self.echo.port, "port": self.port,
       "tls_port": self.tls_port, "routes": routes, "guard": self.guard}

    def open(self, tls):
        s = socket.create_connection((LOOP4, self.tls_port if tls else self.port), timeout=10)
        if tls:
            s = client_context(self.pki.ca).wrap_socket(s, server_hostname=HOST)
        self.addCleanup(s.close)
        return s

    def test_every_spelling_of_a_guarded_prefix_is_held(self):
        og = self.start_onegate(self.conf(), self.port)
        for tls in (False, True):
            self.echo.requests.clear()
            for target in BLOCKED:
                st, body, _ = exchange(self.open(tls), target)
                self.assertEqual(st, 403, "%r reached %d (tls=%s): %r" % (target, st, tls, body))
            for target in REFUSED:
                st, body, _ = exchange(self.open(tls), target)
                self.assertEqual(st, 400, "%r got %d (tls=%s): %r" % (target, st, tls, body))
            self.assertEqual([r["target"] for r in self.echo.requests], [],
                             "a spelling of a guarded prefix reached the back end")
            # The rest goes on, on one kept-alive connection, byte for byte.
            conn = self.open(tls)
            for target in PASSED:
                st, body, _ = exchange(conn, target)
                self.assertEqual(st, 200, target)
                self.assertEqual(json.loads(body)["target"], target)
            self.assertEqual([r["target"] for r in self.echo.requests], PASSED)
        self.assertLogged(og, lambda f: f.get("outcome") == "bad-path" and f.get("status") == "400",
                          "outcome=bad-path")
        self.assertLogged(og, lambda f: f.get("outcome") == "plugin:lan-only", "outcome=plugin:lan-only")

    def test_a_third_party_plugin_sees_the_resolved_path(self):
        self.start_onegate(self.conf(), self.port)
        for tls in (False, True):
            self.echo.requests.clear()
            for target in ["/secret", "/SECRET/x", "/%73ecret/", "//secret", "/a/../secret", "/secret./",
                           "/secret;x/"]:
                st, _, _ = exchange(self.open(tls), target, host="plug.test")
                self.assertEqual(st, 451, "%r (tls=%s)" % (target, tls))
            self.assertEqual(self.echo.requests, [])
            st, body, _ = exchange(self.open(tls), "/a/./b//c/../%64?q=1", host="plug.test")
            self.assertEqual(st, 200)
            got = json.loads(body)
            self.assertEqual(got["target"], "/a/./b//c/../%64?q=1")
            self.assertIn(["X-Resolved", "/a/b/d"], got["headers"])

    def test_absolute_form_is_routed_and_sent_in_origin_form(self):
        self.start_onegate(self.conf(), self.port)
        for tls in (False, True):
            self.echo.requests.clear()
            conn = self.open(tls)
            for absolute, origin in [("http://%s/owa/?a=1" % HOST, "/owa/?a=1"),
                                     ("https://%s/EWS/Exchange.asmx" % HOST, "/EWS/Exchange.asmx"),
                                     ("http://%s" % HOST, "/"), ("http://%s?x=1" % HOST, "/?x=1"),
                                     ("HTTP://%s/owa/%%2e/x" % HOST.upper(), "/owa/%2e/x")]:
                st, body, _ = exchange(conn, None, host=HOST, absolute=absolute)
                self.assertEqual(st, 200, absolute)
                self.assertEqual(json.loads(body)["target"], origin)
                got = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
                self.assertEqual(got["host"], HOST)
            for absolute, want in [("http://%s/%%65cp/" % HOST, 403), ("http://%s/owa/../powershell" % HOST, 403),
                                   ("http://%s/owa%%2f..%%2fecp/" % HOST, 400)]:
                st, _, _ = exchange(self.open(tls), None, absolute=absolute)
                self.assertEqual(st, want, absolute)
            # An authority that is not Host: refused, as before.
            st, _, _ = exchange(self.open(tls), None, host=HOST, absolute="http://other.test/owa/")
            self.assertEqual(st, 400)
            self.assertEqual(len(self.echo.requests), 5)

    def test_normalize_path_sends_the_resolved_path(self):
        self.start_onegate(self.conf(), self.port)
        for tls in (False, True):
            self.echo.requests.clear()
            conn = self.open(tls)
            for target, sent in [("/norm/x/../y?q=/../a%2F", "/norm/y?q=/../a%2F"), ("//NORM/%7euser/", "/NORM/~user/"),
                                 ("/norm/a%20b/c%3fd", "/norm/a%20b/c%3Fd"), ("/norm/caf%c3%a9.", "/norm/caf%C3%A9"),
                                 ("/x/../norm\\y", "/norm/y"), ("/norm/100%25", "/norm/100%25")]:
                st, body, _ = exchange(conn, target)
                self.assertEqual(st, 200, target)
                self.assertEqual(json.loads(body)["target"], sent, target)


if __name__ == "__main__":
    unittest.main()
