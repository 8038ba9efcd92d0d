"""Plugins end to end: a real onegate loading the bundled plugins from the build
(ip_filter, path_filter, security_headers, header_rules) and a third-party one
this test compiles with the system C compiler against plugins/onegate_plugin.h
alone; real back ends (httpback's echo, which reports what it received, and one
that sends a Server header); clients over plain HTTP and TLS. What each plugin
does is checked where it shows: the client's answer and the back end's request.
Also the order of a route's plugins, a reload that changes their arguments
(open connections keep the old instances), and every load error with its line
through `onegate check`. Loopback only."""
import http.client
import http.server
import json
import os
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
import unittest

import harness as h
from harness import LOOP4, OnegateTestCase, free_port, make_pki, wait_until
from httpback import HTTPBackend

SRC = os.environ.get("ONEGATE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
ABI_DIR = os.path.join(SRC, "plugins")

# A third party's plugin: stamps requests with its argument and the User-Agent
# it read, answers 418 under /teapot, reports the client address it was given
# and whether a late request edit was refused (it must be: the request is gone).
STAMP_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "onegate_plugin.h"

struct stamp { const struct onegate_host *host; const char *text; };

static void *create(const struct onegate_args *args, const struct onegate_host *host, struct onegate_error *err)
{
    struct stamp *s = calloc(1, sizeof(*s));
    s->host = host;
    for (size_t i = 0; i < args->n; i++) {
        if (strcmp(args->v[i].name, "text") == 0 && args->v[i].nvalues == 1) {
            s->text = args->v[i].values[0];
        } else {
            err->arg = (int)i;
            snprintf(err->msg, sizeof(err->msg), "stamp takes text = \"...\", not %s", args->v[i].name);
            free(s);
            return NULL;
        }
    }
    if (!s->text) {
        snprintf(err->msg, sizeof(err->msg), "stamp needs text = \"...\"");
        free(s);
        return NULL;
    }
    return s;
}

static void destroy(void *inst) { free(inst); }

static int on_request(void *inst, const struct onegate_request *req, struct onegate_edits *e)
{
    const struct stamp *s = inst;
    size_t len;
    const char *path = s->host->path(req, &len);
    if (len >= 7 && memcmp(path, "/teapot", 7) == 0)
        return 418;
    char ua[256] = "none";
    const char *v = s->host->header(req, "user-agent", 0, &len);
    if (v)
        snprintf(ua, sizeof(ua), "%.*s", (int)len, v);
    s->host->header_set(e, ONEGATE_REQUEST_HEADERS, "X-Stamp", s->text);
    s->host->header_add(e, ONEGATE_REQUEST_HEADERS, "X-Stamp-UA", ua);
    /* Refused edits: a header onegate owns, a value that would split the head. */
    char refused[64];
    snprintf(refused, sizeof(refused), "%d %d",
             s->host->header_set(e, ONEGATE_REQUEST_HEADERS, "Content-Length", "0"),
             s->host->header_add(e, ONEGATE_REQUEST_HEADERS, "X-Evil", "a\r\nX-Injected: 1"));
    s->host->header_add(e, ONEGATE_REQUEST_HEADERS, "X-Stamp-Refused", refused);
    return 0;
}

static void on_response(void *inst, const struct onegate_request *req, int status, struct onegate_edits *e)
{
    const struct stamp *s = inst;
    socklen_t alen;
    const struct sockaddr *sa = s->host->client_addr(req, &alen);
    char ip[64] = "?", line[128];
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
    size_t mlen;
    const char *m = s->host->method(req, &mlen);
    snprintf(line, sizeof(line), "%s %.*s %d late=%d", ip, (int)mlen, m, status,
             s->host->header_add(e, ONEGATE_REQUEST_HEADERS, "X-Late", "1"));
    s->host->header_add(e, ONEGATE_RESPONSE_HEADERS, "X-Stamp-Seen", line);
}

static const struct onegate_plugin plugin = {
    ONEGATE_PLUGIN_ABI, "stamp", create, destroy, on_request, on_response,
};

ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void) { return &plugin; }
"""

# Built for an ABI this onegate does not speak.
FUTURE_C = r"""
#include "onegate_plugin.h"
static void *create(const struct onegate_args *a, const struct onegate_host *h, struct onegate_error *e)
{ (void)a; (void)h; (void)e; return (void *)1; }
static const struct onegate_plugin plugin = { ONEGATE_PLUGIN_ABI + 1, "future", create, 0, 0, 0 };
ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void) { return &plugin; }
"""

# Built for ABI 1, before path_resolved: still loads (the host's table only grew at its end).
ABI1_C = r"""
#include "onegate_plugin.h"
static void *create(const struct onegate_args *a, const struct onegate_host *h, struct onegate_error *e)
{ (void)a; (void)h; (void)e; return (void *)1; }
static const struct onegate_plugin plugin = { 1, "abi1", create, 0, 0, 0 };
ONEGATE_PLUGIN_EXPORT const struct onegate_plugin *onegate_plugin_v1(void) { return &plugin; }
"""

# A shared object that is no plugin.
NOENTRY_C = "int onegate_something_else(void) { return 1; }\n"


def compile_so(directory, name, source, std="c11"):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise unittest.SkipTest("no C compiler")
    src = os.path.join(directory, name + ".c")
    out = os.path.join(directory, name + ".so")
    with open(src, "w") as f:
        f.write(source)
    r = subprocess.run([cc, "-std=" + std, "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden",
                        "-I", ABI_DIR, "-o", out, src], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise AssertionError("%s does not compile against onegate_plugin.h alone:\n%s" % (name, r.stdout.decode()))
    return out


class _Handler(http.server.BaseHTTPRequestHandler):
    """A back end that says what it runs (Server, X-Powered-By), as IIS and friends do."""
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"

    def do_GET(self):
        body = json.dumps({"headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        self.send_header("X-Powered-By", "ASP.NET")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ChattyBackend:
    def __init__(self):
        self.server = socketserver.ThreadingTCPServer((LOOP4, 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def request(port, host, path="/", headers=None, conn=None):
    """(status, headers as a list of pairs, body); reuses conn when given."""
    c = conn or http.client.HTTPConnection(LOOP4, port, timeout=10)
    try:
        c.request("GET", path, headers=dict({"Host": host}, **(headers or {})))
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        if conn is None:
            c.close()


def header_values(pairs, name):
    return [v for k, v in pairs if k.lower() == name.lower()]


class Plugins(OnegateTestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binary()
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-plugins-")
        cls.pki = make_pki(cls.tmp.name, ["app"])
        cls.stamp = compile_so(cls.tmp.name, "stamp", STAMP_C)
        compile_so(cls.tmp.name, "stamp99", STAMP_C, std="c99")    # C only, no newer dialect needed
        cls.echo = HTTPBackend("echo")
        cls.chatty = ChattyBackend()

    @classmethod
    def tearDownClass(cls):
        cls.echo.stop()
        cls.chatty.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.port, self.tls_port = free_port(), free_port()
        self.echo.requests.clear()

    def conf(self, lan="127.0.0.0/8"):
        chain, key = self.pki.certs["app"]
        return """
onegate = { workers = 2; };
certificates = ( { name = "app"; cert = "%(chain)s"; key = "%(key)s"; ca_file = "%(ca)s"; } );
plugins = (
  { name = "lan-only"; module = "ip_filter"; args = { allow = [ "%(lan)s", "::1" ]; }; },
  { name = "far-only"; module = "ip_filter"; args = { allow = [ "10.0.0.0/8" ]; status = 404; }; },
  { name = "no-admin"; module = "path_filter"; args = { deny = [ "/admin", "~\\\\.(bak|old)$" ]; }; },
  { name = "sec";      module = "security_headers"; },
  { name = "hide";     module = "header_rules";
    args = { request_remove = [ "Cookie" ]; request_set = [ "X-Env: prod" ];
             response_remove = [ "Server", "X-Powered-By" ]; response_add = [ "X-Served-By: onegate" ]; }; },
  { name = "first";    module = "header_rules"; args = { request_add = [ "X-Order: first" ]; }; },
  { name = "second";   module = "header_rules"; args = { request_add = [ "X-Order: second" ]; }; },
  { name = "stamp";    path = "%(stamp)s"; args = { text = "third party"; }; }
);
pools = ( { name = "echo"; servers = ( "127.0.0.1:%(echo)d" ); },
          { name = "chatty"; servers = ( "127.0.0.1:%(chatty)d" ); } );
services = (
  { name = "plain"; listen = [ "127.0.0.1:%(port)d" ];
    routes = (
      { host = "lan.test"; pool = "echo"; plugins = [ "lan-only" ]; },
      { host = "far.test"; pool = "echo"; plugins = [ "far-only" ]; },
      { host = "far.test"; path = "/go"; redirect = "https://elsewhere.test"; plugins = [ "far-only" ]; },
      { host = "paths.test"; pool = "echo"; plugins = [ "no-admin" ]; },
      { host = "hide.test"; pool = "chatty"; plugins = [ "hide" ]; },
      { host = "order.test"; pool = "echo"; plugins = [ "first", "second", "stamp" ]; },
      { host = "reverse.test"; pool = "echo"; plugins = [ "second", "first" ]; },
      { host = "gate.test"; pool = "echo"; plugins = [ "far-only", "stamp" ]; },
      { host = "none.test"; pool = "echo"; }
    );
    default = { pool = "chatty"; plugins = [ "sec" ]; }; },
  { name = "tls"; listen = [ "127.0.0.1:%(tls_port)d" ]; tls = { certificates = [ "app" ]; };
    routes = ( { host = "app1.test"; pool = "chatty"; plugins = [ "sec", "hide" ]; } ); }
);
""" % {"chain": chain, "key": key, "ca": self.pki.ca, "lan": lan, "stamp": self.stamp, "echo": self.echo.port,
       "chatty": self.chatty.port, "port": self.port, "tls_port": self.tls_port}

    def start(self, lan="127.0.0.0/8"):
        return self.start_onegate(self.conf(lan), self.port)

    def seen(self):
        """What the echo back end received, as header lists, oldest first."""
        return [r["headers"] for r in self.echo.requests]

    def test_ip_filter(self):
        og = self.start()
        st, _, body = request(self.port, "lan.test")
        self.assertEqual(st, 200, body)
        self.assertEqual(len(self.echo.requests), 1)
        st, _, body = request(self.port, "far.test")
        self.assertEqual(st, 404, "127.0.0.1 is not in 10.0.0.0/8")
        # A filter guards a redirect route too: no Location for a client it refuses.
        st, hdrs, _ = request(self.port, "far.test", "/go")
        self.assertEqual(st, 404)
        self.assertEqual(header_values(hdrs, "Location"), [])
        self.assertEqual(len(self.echo.requests), 1, "a refused request must not reach the back end")
        self.assertLogged(og, lambda f: f.get("host") == "far.test" and f.get("outcome") == "plugin:far-only",
                          "outcome=plugin:far-only")

    def test_path_filter(self):
        self.start()
        for path, want in [("/", 200), ("/admin", 403), ("/ADMIN/users", 403), ("/%61dmin", 403), ("//admin", 403),
                           ("/x/../admin", 403), ("/administrator", 200), ("/db.bak", 403), ("/db.BAK?x=1", 403),
                           ("/%2e%2e/etc", 400), ("/q?next=/admin", 200)]:
            st, _, _ = request(self.port, "paths.test", path)
            self.assertEqual(st, want, path)
        self.assertEqual([r["target"] for r in self.echo.requests], ["/", "/administrator", "/q?next=/admin"])

    def test_header_rules_both_ways(self):
        self.start()
        st, hdrs, body = request(self.port, "hide.test", "/", {"Cookie": "session=secret", "X-Env": "dev"})
        self.assertEqual(st, 200, body)
        got = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
        self.assertNotIn("cookie", got, "the back end must not get the client's cookie")
        self.assertEqual(got.get("x-env"), "prod")
        self.assertEqual(header_values(hdrs, "Server"), [])
        self.assertEqual(header_values(hdrs, "X-Powered-By"), [])
        self.assertEqual(header_values(hdrs, "X-Served-By"), ["onegate"])
        # Without the plugin the same back end tells all (and the default route adds security headers).
        st, hdrs, _ = request(self.port, "other.test")
        self.assertEqual(header_values(hdrs, "Server")[0].split()[0], "Microsoft-IIS/10.0")
        self.assertEqual(header_values(hdrs, "X-Content-Type-Options"), ["nosniff"])
        self.assertEqual(header_values(hdrs, "X-Frame-Options"), ["DENY"], "the back end's own value wins")
        self.assertEqual(header_values(hdrs, "Strict-Transport-Security"), [], "no HSTS over plain HTTP")

    def test_security_headers_over_tls(self):
        self.start()
        r = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--max-time", "10", "--noproxy", "*",
                            "--cacert", self.pki.ca, "--resolve", "app1.test:%d:%s" % (self.tls_port, LOOP4),
                            "https://app1.test:%d/" % self.tls_port], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        head = r.stdout.decode().lower()
        self.assertIn("strict-transport-security: max-age=31536000", head)
        self.assertIn("x-content-type-options: nosniff", head)
        self.assertIn("referrer-policy: strict-origin-when-cross-origin", head)
        self.assertIn("x-frame-options: deny", head)
        self.assertNotIn("server:", head)
        self.assertNotIn("x-powered-by", head)

    def test_order_and_third_party(self):
        self.start()
        request(self.port, "order.test", "/", {"User-Agent": "it/1"})
        request(self.port, "reverse.test")
        st, hdrs, _ = request(self.port, "order.test", "/teapot")
        self.assertEqual(st, 418)
        first, second = self.seen()
        self.assertEqual(header_values(first, "X-Order"), ["first", "second"])
        self.assertEqual(header_values(second, "X-Order"), ["second", "first"])
        self.assertEqual(header_values(first, "X-Stamp"), ["third party"])
        self.assertEqual(header_values(first, "X-Stamp-UA"), ["it/1"])
        self.assertEqual(header_values(first, "X-Stamp-Refused"), ["-1 -1"], "owned header and CRLF refused")
        self.assertEqual(header_values(first, "X-Injected"), [])
        st, hdrs, _ = request(self.port, "order.test")
        self.assertEqual(header_values(hdrs, "X-Stamp-Seen"), ["127.0.0.1 GET 200 late=-1"])
        # A refusal stops the run: the plugin after it never sees the request.
        st, hdrs, _ = request(self.port, "gate.test")
        self.assertEqual(st, 404)
        self.assertEqual(header_values(hdrs, "X-Stamp-Seen"), [])
        # A route without plugins is untouched.
        request(self.port, "none.test", "/", {"Cookie": "a=1"})
        last = self.seen()[-1]
        self.assertEqual(header_values(last, "Cookie"), ["a=1"])
        self.assertEqual(header_values(last, "X-Order") + header_values(last, "X-Stamp"), [])

    def test_reload_changes_arguments(self):
        og = self.start(lan="10.0.0.0/8")
        kept = http.client.HTTPConnection(LOOP4, self.port, timeout=10)
        self.addCleanup(kept.close)
        self.assertEqual(request(self.port, "lan.test", conn=kept)[0], 403)
        with open(og.conf, "w") as f:
            f.write(self.conf(lan="127.0.0.0/8"))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: request(self.port, "lan.test")[0] == 200, 10), og.stderr())
        # The connection opened before the reload finishes on its rules and their instances.
        self.assertEqual(request(self.port, "lan.test", conn=kept)[0], 403)
        # A reload whose plugin refuses its arguments changes nothing.
        with open(og.conf, "w") as f:
            f.write(self.conf(lan="10.0.0.1/8"))
        og.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload of %s refused" % og.conf in og.stderr(), 10), og.stderr())
        self.assertIn('write "10.0.0.0/8"', og.stderr())
        self.assertEqual(request(self.port, "lan.test")[0], 200)


class CheckErrors(unittest.TestCase):
    """Each plugin load error, reported by onegate check as FILE:LINE: message."""

    @classmethod
    def setUpClass(cls):
        h.require_binary()
        cls.tmp = tempfile.TemporaryDirectory(prefix="onegate-plugin-check-")
        d = cls.tmp.name
        compile_so(d, "future", FUTURE_C)
        compile_so(d, "abi1", ABI1_C)
        compile_so(d, "noentry", NOENTRY_C)
        compile_so(d, "stamp", STAMP_C)
        with open(os.path.join(d, "garbage.so"), "w") as f:
            f.write("not an ELF file\n")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, plugins, route_plugins='"p"', passthrough=False):
        text = ("pools = ( { name = \"echo\"; servers = ( \"127.0.0.1:9\" ); } );\n"   # 1
                "plugins = (\n"                                                        # 2
                + plugins + "\n"                                                       # 3..
                ");\n"
                "services = ( { name = \"s\"; listen = [ \"127.0.0.1:%d\" ];\n" % free_port()
                + "  routes = ( { host = \"a.test\"; pool = \"echo\";\n"
                "    plugins = [ %s ]; } ); } );\n" % route_plugins)
        if passthrough:
            text = text.replace('{ host = "a.test"; pool = "echo";', '{ sni = "a.test"; passthrough = true; pool = "echo";')
        path = os.path.join(self.tmp.name, "t.conf")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([h.ONEGATE_BIN, "check", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        err = r.stderr.decode()
        self.assertIsNone(h.SANITIZER.search(err), err)
        return r.returncode, err, text.count("\n")

    def assertError(self, plugins, line, *words, route_plugins='"p"', passthrough=False):
        rc, err, lines = self.check(plugins, route_plugins, passthrough)
        self.assertEqual(rc, 1, err)
        want = "t.conf:%d: " % line
        hits = [m for m in err.splitlines() if want in m and all(w in m for w in words)]
        self.assertTrue(hits, "expected %s with %s; got:\n%s" % (want, words, err))

    def test_valid(self):
        rc, err, _ = self.check('  { name = "p"; path = "stamp.so"; args = { text = "x"; }; }')
        self.assertEqual(rc, 0, err)

    def test_unknown_name_with_hint(self):
        self.assertError('  { name = "lan-only"; module = "ip_filter"; args = { allow = [ "10.0.0.0/8" ]; }; }',
                         7, 'no plugin named "lan-onyl"', 'did you mean "lan-only"', route_plugins='"lan-onyl"')

    def test_module_missing(self):
        self.assertError('  { name = "p"; module = "security_header"; }', 3, 'no bundled plugin "security_header"',
                         "security_headers")

    def test_path_missing(self):
        self.assertError('  { name = "p"; path = "nothere.so"; }', 3, "cannot read", "nothere.so")

    def test_dlopen_error(self):
        self.assertError('  { name = "p"; path = "garbage.so"; }', 3, "cannot load", "garbage.so")

    def test_missing_entry(self):
        self.assertError('  { name = "p"; path = "noentry.so"; }', 3, "is not an onegate plugin",
                         "onegate_plugin_v1")

    def test_abi_mismatch(self):
        self.assertError('  { name = "p"; path = "future.so"; }', 3, "built for plugin ABI 3", "speaks ABI 1 to 2")

    def test_abi1_plugin_still_loads(self):
        rc, err, _ = self.check('  { name = "p"; path = "abi1.so"; }')
        self.assertEqual(rc, 0, err)

    def test_create_error_on_its_argument_line(self):
        self.assertError('  { name = "p"; module = "ip_filter";\n'
                         '    args = { deny = [ "10.0.0.0/8" ];\n'
                         '             allow = [ "192.168.1.1/24" ]; }; }', 5, 'plugin "p" (ip_filter)',
                         'write "192.168.1.0/24"')
        self.assertError('  { name = "p"; path = "stamp.so"; }', 3, "stamp needs text")

    def test_passthrough_route(self):
        self.assertError('  { name = "p"; module = "security_headers"; }', 7, "plugins apply to HTTP routes",
                         passthrough=True)

    def test_every_error_at_once(self):
        rc, err, _ = self.check('  { name = "p"; path = "future.so"; },\n  { name = "q"; path = "noentry.so"; }',
                                route_plugins='"p", "q"')
        self.assertEqual(rc, 1)
        self.assertIn("t.conf:3: ", err)
        self.assertIn("t.conf:4: ", err)


if __name__ == "__main__":
    unittest.main()
