"""Pools and health: balancing algorithms, health checks that take a server out
and bring it back, drain, backups, connect retry, the admin listener (JSON,
Prometheus metrics, text table, token, actions, reloads that report their
outcome), the status page as headless Chromium draws it (states, and live
numbers with their charts under load) and `onegate status --watch` on a
pseudo-terminal. Real back ends that the tests stop and start; loopback only."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from harness import LOOP4, ONEGATE_BIN, OnegateTestCase, fault_report, free_port, make_pki, wait_until
from httpback import HTTPBackend


def get(port, path="/", host="app.test", headers=None, source=None, timeout=10):
    """One request on a fresh connection (from source when given); (status, headers, body)."""
    c = http.client.HTTPConnection(LOOP4, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        c.request("GET", path, headers={"Host": host, **(headers or {})})
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        c.close()


def backend_of(body):
    return json.loads(body)["backend"]


class Admin:
    def __init__(self, port, token=None):
        self.port, self.token = port, token

    def call(self, method, path):
        req = urllib.request.Request("http://%s:%d%s" % (LOOP4, self.port, path), method=method)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()

    def status(self):
        return json.loads(self.call("GET", "/api/status")[1])

    def server(self, pool, name):
        for p in self.status()["pools"]:
            if p["name"] == pool:
                for s in p["servers"]:
                    if s["name"] == name:
                        return s
        raise KeyError((pool, name))

    def state(self, pool, name):
        return self.server(pool, name)["state"]


class Load:
    """Requests one after another on fresh connections until stopped; counts by back end and failures."""

    def __init__(self, port, host="app.test", path="/", pause=0):
        self.port, self.host, self.path, self.pause = port, host, path, pause
        self.by_backend, self.failures, self.failure_times = {}, 0, []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stopping:
            try:
                st, _, body = get(self.port, self.path, host=self.host, timeout=5)
                ok = st == 200
                if ok:
                    b = backend_of(body)
                    self.by_backend[b] = self.by_backend.get(b, 0) + 1
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
            if not ok:
                self.failures += 1
                self.failure_times.append(time.monotonic())
            time.sleep(self.pause)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stopping = True
        self.thread.join(10)


class HealthAndAdmin(OnegateTestCase):
    def setUp(self):
        self.a, self.b, self.c = HTTPBackend("a"), HTTPBackend("b"), HTTPBackend("c")
        self.backends = [self.a, self.b, self.c]
        self.addCleanup(lambda: [x.kill() for x in self.backends])
        self.port, self.admin_port = free_port(), free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="onegate-pools-")
        self.addCleanup(self.tmp.cleanup)

    # Checks of 1 s: a check's answer on a loaded machine (ctest -j, sanitizers, other jobs
    # on 2 cores) came later than 150 ms, and the first result decides a server's state at
    # once, so an up server was drawn down and requests got 503. A killed server is refused
    # at once whatever the timeout: the tests that kill one see it go down just as well.
    HEALTH = 'interval = "1s"; timeout = "1s"; rise = 2; fall = 2;'

    def conf(self, extra_pool="", admin_extra="", health=HEALTH):
        return """
onegate = { workers = 2; admin = { listen = "127.0.0.1:%d"; %s }; };
pools = ( { name = "app"; servers = ( "127.0.0.1:%d", "127.0.0.1:%d", "127.0.0.1:%d" );
            health = { path = "/health"; %s }; %s } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "app.test"; pool = "app"; } ); } );
""" % (self.admin_port, admin_extra, self.a.port, self.b.port, self.c.port, health, extra_pool, self.port)

    def start_onegate(self, config_text, port, **kw):
        og = super().start_onegate(config_text, port, **kw)
        # The admin listener is bound after the services' ports: one accepting says nothing of it.
        og.wait_ready(self.admin_port, 10)
        return og

    def wait_state(self, admin, server, state, timeout=10):
        got = wait_until(lambda: admin.state("app", server) == state, timeout)
        self.assertTrue(got, "server %s is %s, not %s" % (server, admin.state("app", server), state))

    def test_killed_server_goes_down_traffic_moves_and_comes_back(self):
        og = self.start_onegate(self.conf(), self.port)
        admin = Admin(self.admin_port)
        bname = "127.0.0.1:%d" % self.b.port
        for s in self.backends:
            self.wait_state(admin, "127.0.0.1:%d" % s.port, "up")
        with Load(self.port) as load:
            # Requests run one at a time: how many fit in a given time depends on the machine's load.
            self.assertTrue(wait_until(lambda: set(load.by_backend) == {"a", "b", "c"}, 5), load.by_backend)
            before_kill = len(og.log_lines())
            killed = time.monotonic()
            self.b.kill()
            # fall = 2 checks of 1 s: down within about 2 s; the bound only ends a test that
            # would wait forever, the order of events below is what is checked.
            self.wait_state(admin, bname, "down", timeout=15)
            down_after = time.monotonic() - killed
            # b went down after its kill, for the kill (its connects refused, by a check or by
            # live traffic, whichever counted its failures first), and only once: not drawn
            # down earlier by a slow check, not for a timeout.
            downs = [l for l in og.log_lines() if re.search(r"pool app server %s DOWN: " % re.escape(bname), l)]
            self.assertEqual(len(downs), 1, downs)
            self.assertNotIn(downs[0], og.log_lines()[:before_kill], "b was down before it was killed")
            self.assertIn("Connection refused", downs[0])
            marked = time.monotonic()
            before = dict(load.by_backend)
            time.sleep(1.0)
            late = [t for t in load.failure_times if t > marked]
            fault_report("back end killed in the middle of a load",
                         "%d requests on new connections" % (sum(load.by_backend.values()) + load.failures),
                         "%d before it was marked down %.2f s later (in flight on, or sent to, the killed "
                         "server), %d after" % (load.failures - len(late), down_after, len(late)))
            self.assertEqual(late, [], "requests failed after the server was marked down")
            self.assertEqual(load.by_backend.get("b", 0), before.get("b", 0), "traffic still reached b")
            # back on the same port: up again after rise checks, and used again
            self.b = HTTPBackend("b", port=self.b.port)
            self.backends.append(self.b)
            self.wait_state(admin, bname, "up", timeout=15)
            wait_until(lambda: load.by_backend.get("b", 0) > before.get("b", 0), 10)
            self.assertGreater(load.by_backend.get("b", 0), before.get("b", 0))
        self.assertTrue(any(re.search(r"pool app server %s DOWN: " % re.escape(bname), l) for l in og.log_lines()))
        self.assertTrue(any(re.search(r"pool app server %s UP: HTTP 200 on /health" % re.escape(bname), l)
                            for l in og.log_lines()))

    def test_failing_health_page_json_metrics_text_and_actions(self):
        og = self.start_onegate(self.conf(), self.port)
        admin = Admin(self.admin_port)
        cname = "127.0.0.1:%d" % self.c.port
        self.wait_state(admin, cname, "up")
        self.c.statuses["/health"] = 503
        self.wait_state(admin, cname, "down")
        srv = admin.server("app", cname)
        self.assertEqual(srv["last_check"], "HTTP 503 on /health (expected 200-399)")
        self.assertTrue(any("pool app server %s DOWN: HTTP 503 on /health" % cname in l for l in og.log_lines()))
        st = admin.status()
        self.assertEqual(st["pools"][0]["state"], "degraded")
        self.assertEqual(st["services"][0]["state"], "degraded")
        for _ in range(12):
            self.assertIn(backend_of(get(self.port)[2]), ("a", "b"))

        # Prometheus text exposition, read with the reference parser
        from prometheus_client.parser import text_string_to_metric_families
        _, text = admin.call("GET", "/metrics")
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        up = {s.labels["server"]: s.value for s in fams["onegate_server_up"].samples}
        self.assertEqual(up[cname], 0)
        self.assertEqual(up["127.0.0.1:%d" % self.a.port], 1)
        reqs = {s.labels["server"]: s.value for s in fams["onegate_server_requests"].samples}
        self.assertGreater(reqs["127.0.0.1:%d" % self.a.port] + reqs["127.0.0.1:%d" % self.b.port], 11)

        # actions: drain takes a server out of rotation, enable puts it back
        aname = "127.0.0.1:%d" % self.a.port
        code, body = admin.call("POST", "/api/pools/app/servers/%s/drain" % aname)
        self.assertEqual((code, json.loads(body)["state"]), (200, "draining"))
        for _ in range(8):
            self.assertEqual(backend_of(get(self.port)[2]), "b")
        r = subprocess.run([ONEGATE_BIN, "status", "-c", og.conf], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"app\s+%s\s+draining" % re.escape(aname))
        self.assertRegex(r.stdout, r"app\s+%s\s+down .*HTTP 503 on /health" % re.escape(cname))
        r = subprocess.run([ONEGATE_BIN, "server", "enable", "app", aname, "-c", og.conf], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "pool app, server %s: draining -> up; it takes new connections and requests "
                         "again (0 open now)\n" % aname)
        self.assertEqual(admin.state("app", aname), "up")
        r = subprocess.run([ONEGATE_BIN, "server", "enable", "app", aname, "-c", og.conf], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual((r.returncode, r.stdout), (0, "pool app, server %s: already up; nothing changed\n" % aname))
        r = subprocess.run([ONEGATE_BIN, "server", "drain", "app", "no-such-server", "-c", og.conf],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (1, "", "no such pool or server\n"))

        # latency histograms per pool: as many requests as the servers answered, in order
        _, text = admin.call("GET", "/metrics")
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        hist = [x for x in fams["onegate_pool_request_duration_seconds"].samples if x.labels["pool"] == "app"]
        buckets = [x.value for x in hist if x.name.endswith("_bucket")]
        count = [x.value for x in hist if x.name.endswith("_count")][0]
        self.assertEqual(buckets, sorted(buckets))
        self.assertEqual(buckets[-1], count)
        self.assertGreaterEqual(count, 20)
        self.assertGreater([x.value for x in hist if x.name.endswith("_sum")][0], 0)

    def test_every_request_adds_its_own_time_to_the_pool_histogram(self):
        # A request goes to a server and its answer comes back later: it took time, however near
        # the server. A clock that ticks every few ms would count most of them as 0 us.
        from prometheus_client.parser import text_string_to_metric_families
        self.start_onegate(self.conf(), self.port)
        admin = Admin(self.admin_port)

        def sum_and_count():
            fams = {f.name: f for f in text_string_to_metric_families(admin.call("GET", "/metrics")[1])}
            hist = {x.name: x.value for x in fams["onegate_pool_request_duration_seconds"].samples
                    if x.labels["pool"] == "app" and not x.name.endswith("_bucket")}
            return (hist["onegate_pool_request_duration_seconds_sum"],
                    hist["onegate_pool_request_duration_seconds_count"])

        for i in range(8):
            before_sum, before_count = sum_and_count()
            self.assertEqual(get(self.port)[0], 200)
            self.assertTrue(wait_until(lambda: sum_and_count()[1] == before_count + 1, 5))
            after_sum, after_count = sum_and_count()
            self.assertEqual(after_count, before_count + 1)
            self.assertGreater(after_sum, before_sum, "request %d was counted as taking no time" % i)

    def test_drain_lets_open_requests_finish_and_no_server_answers_503(self):
        og = self.start_onegate(self.conf(), self.port)
        admin = Admin(self.admin_port)
        names = ["127.0.0.1:%d" % s.port for s in self.backends]
        for n in names:
            self.wait_state(admin, n, "up")
        results = []
        slow = threading.Thread(target=lambda: results.append(get(self.port, "/slow?ms=1500")))
        slow.start()
        # Drained only once it is open at a server: a request that has not got there yet
        # is rightly refused with the 503 below.
        self.assertTrue(wait_until(lambda: any(r["target"].startswith("/slow") for b in self.backends
                                               for r in list(b.requests)), 5), "the slow request reached no server")
        for n in names:
            admin.call("POST", "/api/pools/app/servers/%s/drain" % n)
        st, hdrs, body = get(self.port)
        self.assertEqual(st, 503)
        self.assertNotIn(b"127.0.0.1", body)
        slow.join(10)
        self.assertEqual(results[0][0], 200, "the request open during the drain did not finish")
        admin.call("POST", "/api/pools/app/servers/%s/enable" % names[1])
        self.assertEqual(backend_of(get(self.port)[2]), "b")

    def test_reload_command_checks_first_then_applies(self):
        og = self.start_onegate(self.conf(), self.port)
        admin = Admin(self.admin_port)
        aname = "127.0.0.1:%d" % self.a.port
        self.wait_state(admin, aname, "up")
        admin.call("POST", "/api/pools/app/servers/%s/drain" % aname)
        with open(og.conf, "w") as f:
            f.write(self.conf().replace("rise = 2;", "rise = 2; oops = 1;"))
        r = subprocess.run([ONEGATE_BIN, "reload", "-c", og.conf], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn('unknown key "oops" in health', r.stderr)
        self.assertIn("the running gateway keeps its rules", r.stderr)
        with open(og.conf, "w") as f:
            f.write(self.conf().replace('pool = "app"; } );', 'pool = "app"; }, { host = "new.test"; status = 204; } );'))
        r = subprocess.run([ONEGATE_BIN, "reload", "-c", og.conf], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        # the command waits for the outcome: the new route answers as soon as it returns
        self.assertEqual(r.stdout, "applied %s: 1 pools, 1 services, 0 certificates\n" % og.conf)
        self.assertEqual(get(self.port, host="new.test")[0], 204)
        # the admin's drain outlives the reload: the server's state object is kept
        self.assertEqual(admin.state("app", aname), "draining")

    def test_reload_the_gateway_refuses_exits_1_with_every_line(self):
        og = self.start_onegate(self.conf(), self.port)
        # A file that checks clean but cannot be applied: its new address is held by another program.
        holder = socket.socket()
        holder.bind((LOOP4, 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        busy = holder.getsockname()[1]
        good = self.conf()
        with open(og.conf, "w") as f:
            f.write(good.replace('listen = [ "127.0.0.1:%d" ];' % self.port,
                                 'listen = [ "127.0.0.1:%d", "127.0.0.1:%d" ];' % (self.port, busy)))
        r = subprocess.run([ONEGATE_BIN, "reload", "-c", og.conf], capture_output=True, text=True, timeout=40)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(lines[0], "refused %s: a new listen address cannot be bound; still serving the previous "
                         "rules" % og.conf)
        line = [i + 1 for i, l in enumerate(good.splitlines()) if l.startswith("services")][0]
        self.assertRegex(lines[1], r"^%s:%d: service web cannot listen on 127.0.0.1:%d: Address already in use$"
                         % (re.escape(og.conf), line, busy))
        self.assertEqual(get(self.port)[0], 200)
        # the API says the same in JSON, with 409
        req = urllib.request.Request("http://%s:%d/api/reload" % (LOOP4, self.admin_port), method="POST")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=40)
        self.assertEqual(e.exception.code, 409)
        body = json.loads(e.exception.read())
        self.assertEqual(body["reload"], "refused")
        self.assertEqual(body["messages"][1:], lines[1:])
        # put right, it applies
        with open(og.conf, "w") as f:
            f.write(good)
        req = urllib.request.Request("http://%s:%d/api/reload" % (LOOP4, self.admin_port), method="POST")
        with urllib.request.urlopen(req, timeout=40) as resp:
            self.assertEqual(json.loads(resp.read())["reload"], "applied")

    def test_token_is_required_and_checked(self):
        token = "s3cret-token-0123456789"
        path = os.path.join(self.tmp.name, "admin.token")
        with open(path, "w") as f:
            f.write(token + "\n")
        self.start_onegate(self.conf(admin_extra='token_file = "%s";' % path), self.port)
        with self.assertRaises(urllib.error.HTTPError) as e:
            Admin(self.admin_port).call("GET", "/api/status")
        self.assertEqual(e.exception.code, 401)
        with self.assertRaises(urllib.error.HTTPError) as e:
            Admin(self.admin_port, "wrong-token-000000000").call("GET", "/metrics")
        self.assertEqual(e.exception.code, 401)
        self.assertEqual(Admin(self.admin_port, token).call("GET", "/api/status")[0], 200)
        with urllib.request.urlopen("http://127.0.0.1:%d/?token=%s" % (self.admin_port, token), timeout=10) as r:
            self.assertIn(b"<title>onegate status</title>", r.read())

    def test_status_page_in_headless_chromium(self):
        # Chromium takes the CPU while it draws: with 150 ms checks the up server's answers came
        # late and it was drawn down. Checks of 1 s bear that; the killed one is refused at once.
        self.start_onegate(self.conf(health='interval = "1s"; timeout = "1s"; rise = 1; fall = 2;'), self.port)
        admin = Admin(self.admin_port)
        cname = "127.0.0.1:%d" % self.c.port
        self.wait_state(admin, "127.0.0.1:%d" % self.a.port, "up")
        self.c.kill()
        self.wait_state(admin, cname, "down")
        admin.call("POST", "/api/pools/app/servers/127.0.0.1:%d/drain" % self.b.port)
        shot = os.path.join(self.tmp.name, "status.png")
        r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--no-first-run", "--user-data-dir=" + os.path.join(self.tmp.name, "chrome"),
                            "--window-size=420,900", "--screenshot=" + shot,
                            "http://127.0.0.1:%d/" % self.admin_port],
                           capture_output=True, text=True, timeout=90)
        self.assertTrue(os.path.exists(shot), r.stderr[-2000:])
        if os.environ.get("ONEGATE_KEEP_SCREENSHOT"):
            import shutil
            shutil.copy(shot, os.environ["ONEGATE_KEEP_SCREENSHOT"])
        from PIL import Image
        img = Image.open(shot).convert("RGB")
        colors = {}
        for px in img.getdata():
            colors[px] = colors.get(px, 0) + 1
        # the badges: up green, draining/degraded amber, down red (the page's own colors)
        self.assertGreater(colors.get((0x2e, 0x7d, 0x32), 0), 50, "no green 'up' badge drawn")
        self.assertGreater(colors.get((0xef, 0x8f, 0x00), 0), 50, "no amber 'draining' badge drawn")
        self.assertGreater(colors.get((0xc6, 0x28, 0x28), 0), 50, "no red 'down' badge drawn")

    def chromium(self, *args):
        return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               "--no-first-run", "--user-data-dir=" + os.path.join(self.tmp.name, "chrome")]
                              + list(args) + ["http://127.0.0.1:%d/" % self.admin_port],
                              capture_output=True, text=True, timeout=90)

    @staticmethod
    def pool_row(dom):
        """The pool's own row of the page as Chromium read it: [req/s, errors, ..., Requests]."""
        row = re.search(r"<tr class=\"all\">(.*?)</tr>", dom, re.S).group(1)
        return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]

    def test_status_page_live_numbers_and_chart_under_load(self):
        self.start_onegate(self.conf(health='interval = "1s"; timeout = "1s"; rise = 1; fall = 2;'), self.port)
        admin = Admin(self.admin_port)
        self.wait_state(admin, "127.0.0.1:%d" % self.a.port, "up")
        self.a.statuses["/fail"] = 500
        # Errors often enough to show in a rate of one decimal beside a load of thousands a
        # second (at 0.2 s apart they were 0.05% of 2.6k/s on a fast machine: "0.0%").
        with Load(self.port), Load(self.port, path="/fail", pause=0.01):
            # Numbers over the last minute and at least two steps of the chart.
            def busy():
                live = admin.status()["pools"][0]["live"]
                return live["rps"] > 0 and live["error_rate"] > 0 and \
                    len([x for x in live["history"]["rps"] if x is not None]) >= 2
            self.assertTrue(wait_until(busy, 30, interval=0.5), admin.status()["pools"][0]["live"])
            first = self.chromium("--dump-dom")
            self.assertEqual(first.returncode, 0, first.stderr[-2000:])
            # Moving: the request count grows between two reads of the page (no script needed).
            row1 = self.pool_row(first.stdout)
            self.assertTrue(wait_until(lambda: sum(x["requests"] for x in admin.status()["pools"][0]["servers"])
                                       > int(row1[11]) + 20, 10))
            second = self.chromium("--dump-dom")
            row2 = self.pool_row(second.stdout)
            shot = os.path.join(self.tmp.name, "live.png")
            # Twice the pixels: a 1.5 px line covers no pixel whole at some heights (all of it
            # blended, none of it the line's own colour); at 3 px every column has one.
            r = self.chromium("--window-size=1500,900", "--force-device-scale-factor=2", "--screenshot=" + shot)
            self.assertTrue(os.path.exists(shot), r.stderr[-2000:])
        # columns: name, state, req/s, errors, p50, p99, in, out, open, chart, changed, Requests, Errors, Failures
        for row in (row1, row2):
            self.assertGreater(float(row[2].rstrip("k")), 0, row)
            self.assertRegex(row[3], r"^\d+\.\d%$")
            self.assertNotEqual(row[3], "0.0%", row)
            self.assertRegex(row[4], r"^[\d.]+ (ms|s)$")
            self.assertRegex(row[5], r"^[\d.]+ (ms|s)$")
            self.assertRegex(row[7], r"^[\d.]+ (B|kB|MB)/s$")
        self.assertGreater(int(row2[11]), int(row1[11]), (row1, row2))
        self.assertIn("<svg class=\"chart\"", second.stdout)
        self.assertIn("<polyline", second.stdout)
        if os.environ.get("ONEGATE_KEEP_SCREENSHOT"):
            import shutil
            shutil.copy(shot, os.environ["ONEGATE_KEEP_SCREENSHOT"])
        from PIL import Image
        img = Image.open(shot).convert("RGB")
        colors = {px: n for n, px in img.getcolors(img.width * img.height)}
        # the charts: requests/s a blue line over a light blue area, errors a red line. The line
        # starts at the ring's first 10 s step, so it may be a few px short: each of its columns
        # (two per px at this scale, but for its ends) has the line's own colour at least once.
        lines = re.findall(r'<polyline[^>]*stroke="#1565c0"[^>]*points="([^"]*)"', second.stdout)
        self.assertTrue(lines, second.stdout)
        xs = [[float(p.split(",")[0]) for p in pts.split()] for pts in lines]
        columns = sum(2 * (max(x) - min(x)) - 2 for x in xs)
        self.assertGreater(colors.get((0x15, 0x65, 0xc0), 0), max(columns, 0), ("no requests line drawn", lines))
        self.assertGreater(colors.get((0xbb, 0xde, 0xfb), 0), 40, "no requests area drawn")
        self.assertGreater(colors.get((0xc6, 0x28, 0x28), 0), 10, "no errors drawn")

    def test_status_watch_redraws_in_place_on_a_terminal(self):
        import pty
        import select
        og = self.start_onegate(self.conf(), self.port)
        with Load(self.port):
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(ONEGATE_BIN, [ONEGATE_BIN, "status", "-c", og.conf, "--watch", "--interval", "1"])
            out = b""
            deadline = time.monotonic() + 30
            # Three frames: each starts at the top left corner of the alternate screen.
            while out.count(b"\x1b[H") < 4 and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.5)[0]:
                    try:
                        out += os.read(fd, 65536)
                    except OSError:
                        break
            os.kill(pid, signal.SIGINT)
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertTrue(out.startswith(b"\x1b[?1049h"), out[:100])
        self.assertTrue(out.rstrip().endswith(b"\x1b[?1049l"), out[-100:])
        frames = [f.decode(errors="replace") for f in out.split(b"\x1b[H")[1:]]
        self.assertGreaterEqual(len(frames), 4, out[-2000:])
        self.assertNotIn("\x1b[2J", "".join(frames), "a full clear flickers")

        def requests(frame):
            return sum(int(m) for m in re.findall(r"^app\s+\S+\s+up\s+\d+\s+(\d+)", frame.replace("\x1b[K", ""),
                                                  re.M))
        for f in frames[:3]:
            self.assertIn("SERVICE", f)
            self.assertIn("every 1 s, Ctrl-C quits", f)
        # Under load the counts move from one frame to the next.
        self.assertGreater(requests(frames[2]), requests(frames[0]), frames[0] + frames[2])


class Balancing(OnegateTestCase):
    def setUp(self):
        self.a, self.b, self.c = HTTPBackend("a"), HTTPBackend("b"), HTTPBackend("c")
        self.addCleanup(lambda: [x.kill() for x in (self.a, self.b, self.c)])
        self.port = free_port()

    def serve(self, pool_body, workers=1):
        conf = """
onegate = { workers = %d; };
pools = ( { name = "app"; %s } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ]; routes = ( { host = "app.test"; pool = "app"; } ); } );
""" % (workers, pool_body, self.port)
        return self.start_onegate(conf, self.port)

    def test_weighted_round_robin(self):
        self.serve('servers = ( { address = "127.0.0.1:%d"; weight = 3; }, "127.0.0.1:%d" );'
                   % (self.a.port, self.b.port))
        seen = [backend_of(get(self.port)[2]) for _ in range(40)]
        self.assertEqual((seen.count("a"), seen.count("b")), (30, 10))
        # smooth: never more than three a's in a row
        self.assertNotIn("aaaa", "".join(seen))

    def test_least_connections(self):
        self.serve('balance = "leastconn"; servers = ( "127.0.0.1:%d", "127.0.0.1:%d" );'
                   % (self.a.port, self.b.port))
        held = []
        t = threading.Thread(target=lambda: held.append(get(self.port, "/slow?ms=1500")))
        t.start()
        time.sleep(0.4)
        self.assertTrue(wait_until(lambda: len(self.a.requests) + len(self.b.requests) == 1, 2))
        busy = "a" if self.a.requests else "b"
        others = [backend_of(get(self.port)[2]) for _ in range(6)]
        self.assertEqual(set(others), {"b" if busy == "a" else "a"})
        t.join(10)
        self.assertEqual(held[0][0], 200)

    def test_source_hash_keeps_each_client_on_one_server(self):
        self.serve('balance = "source"; servers = ( "127.0.0.1:%d", "127.0.0.1:%d", "127.0.0.1:%d" );'
                   % (self.a.port, self.b.port, self.c.port))
        per_client = {}
        for i in range(2, 26):
            src = "127.0.0.%d" % i
            per_client[src] = {backend_of(get(self.port, source=src)[2]) for _ in range(4)}
        for src, seen in per_client.items():
            self.assertEqual(len(seen), 1, "client %s went to %s" % (src, seen))
        used = set().union(*per_client.values())
        self.assertGreaterEqual(len(used), 2, "24 clients all hashed to one server")

    def test_cookie_persistence_ms_wsman(self):
        self.serve('balance = "cookie"; cookie = { name = "MS-WSMAN"; httponly = false; };'
                   ' servers = ( "127.0.0.1:%d", "127.0.0.1:%d" );' % (self.a.port, self.b.port))
        st, hdrs, body = get(self.port)
        first = backend_of(body)
        cookies = [v for k, v in hdrs if k.lower() == "set-cookie"]
        self.assertEqual(len(cookies), 1)
        m = re.fullmatch(r"MS-WSMAN=([0-9a-f]{16}); Path=/", cookies[0])
        self.assertTrue(m, cookies[0])      # not HttpOnly, no expiry: what Lync 2010 coexistence needs
        self.assertNotIn(str(self.a.port), cookies[0])
        for _ in range(10):
            st, hdrs, body = get(self.port, headers={"Cookie": "other=1; MS-WSMAN=%s" % m.group(1)})
            self.assertEqual(backend_of(body), first)
            self.assertFalse([v for k, v in hdrs if k.lower() == "set-cookie"], "cookie set again")
        # without the cookie, requests are balanced and each answer sets one
        seen = set()
        for _ in range(4):
            st, hdrs, body = get(self.port)
            seen.add(backend_of(body))
            self.assertTrue([v for k, v in hdrs if k.lower() == "set-cookie"])
        self.assertEqual(seen, {"a", "b"})
        # a cookie naming a server that is gone gets a new one
        st, hdrs, body = get(self.port, headers={"Cookie": "MS-WSMAN=0000000000000000"})
        self.assertTrue([v for k, v in hdrs if k.lower() == "set-cookie"])

    def test_backup_only_when_primaries_are_down(self):
        # Checks of 1 s (see HealthAndAdmin.HEALTH): with fall = 1 one check answered later
        # than 150 ms on a loaded machine took a down, or the backup with it (503).
        og = self.serve('servers = ( "127.0.0.1:%d", { address = "127.0.0.1:%d"; backup = true; } );'
                        ' health = { path = "/health"; interval = "1s"; timeout = "1s"; fall = 1; rise = 1; };'
                        % (self.a.port, self.b.port))
        self.assertTrue(wait_until(lambda: len(self.a.requests) > 0 and len(self.b.requests) > 0, 10))
        self.assertEqual({backend_of(get(self.port)[2]) for _ in range(6)}, {"a"})
        self.a.statuses["/health"] = 500
        self.assertTrue(wait_until(lambda: backend_of(get(self.port)[2]) == "b", 10))
        self.assertTrue(any("server 127.0.0.1:%d DOWN: HTTP 500 on /health" % self.a.port in l for l in og.log_lines()))
        self.assertEqual({backend_of(get(self.port)[2]) for _ in range(6)}, {"b"})

    def test_failed_connect_is_retried_on_another_server(self):
        dead = free_port()
        og = self.serve('servers = ( "127.0.0.1:%d", "127.0.0.1:%d" );' % (dead, self.a.port))
        for _ in range(10):
            st, _, body = get(self.port)
            self.assertEqual((st, backend_of(body)), (200, "a"))
        self.assertTrue(any("pool app server 127.0.0.1:%d: Connection refused" % dead in l for l in og.log_lines()),
                        "\n".join(og.log_lines()[-20:]))

    def test_max_conns_sends_the_overflow_elsewhere(self):
        self.serve('servers = ( { address = "127.0.0.1:%d"; max_conns = 1; }, "127.0.0.1:%d" );'
                   % (self.a.port, self.b.port))
        held = []
        t = threading.Thread(target=lambda: held.append(get(self.port, "/slow?ms=1200")))
        t.start()
        self.assertTrue(wait_until(lambda: len(self.a.requests) + len(self.b.requests) == 1 or self.a.clients, 2))
        time.sleep(0.2)
        if not self.a.clients:
            self.skipTest("the slow request went to b first")
        # a holds its one allowed request: everything else goes to b until it ends
        self.assertEqual({backend_of(get(self.port)[2]) for _ in range(6)}, {"b"})
        t.join(10)
        self.assertEqual(held[0][0], 200)
        self.assertIn("a", {backend_of(get(self.port)[2]) for _ in range(4)})

    def test_live_failures_mark_a_checked_server_down(self):
        og = self.serve('servers = ( "127.0.0.1:%d", "127.0.0.1:%d" );'
                        ' health = { path = "/health"; interval = "60s"; timeout = "2s"; passive_fall = 2; };'
                        % (self.a.port, self.b.port))
        self.assertTrue(wait_until(lambda: len(self.a.requests) and len(self.b.requests), 3))
        self.a.kill()
        for _ in range(6):      # a's refusals are retried on b: nothing fails
            st, _, body = get(self.port)
            self.assertEqual((st, backend_of(body)), (200, "b"))
        line = [l for l in og.log_lines() if "pool app server 127.0.0.1:%d DOWN" % self.a.port in l]
        self.assertTrue(line, "\n".join(og.log_lines()[-20:]))
        self.assertIn("2 failures in a row on live traffic", line[0])

    def test_https_check_sends_sni_and_verifies(self):
        tmp = tempfile.TemporaryDirectory(prefix="onegate-pki-")
        self.addCleanup(tmp.cleanup)
        pki = make_pki(tmp.name, ["exch"], sans=["mail.contoso.test"])
        be = self.start_backend("exch", pki)
        og = self.serve('servers = ( "%s" ); tls = { sni = "mail.contoso.test"; ca_file = "%s"; };'
                        ' health = { path = "/owa/healthcheck.htm"; interval = "1s"; timeout = "1s"; };'
                        % (be.addr, pki.ca))
        self.assertTrue(wait_until(lambda: any(c.sni == "mail.contoso.test" and c.received for c in be.seen()), 10))
        self.assertTrue(wait_until(lambda: any("UP: HTTP 200 on /owa/healthcheck.htm" in l for l in og.log_lines()), 10),
                        "\n".join(og.log_lines()[-20:]))

    def test_passthrough_pool_with_no_server_up_closes_at_once(self):
        port, dead = free_port(), free_port()
        conf = """
onegate = { workers = 1; };
pools = ( { name = "p"; servers = ( "127.0.0.1:%d" );
            health = { interval = "1s"; timeout = "1s"; }; } );
services = ( { name = "pt"; listen = [ "127.0.0.1:%d" ]; routes = ( { sni = "x.test"; pool = "p"; } ); } );
""" % (dead, port)
        og = self.start_onegate(conf, port)
        # Once its one server is down (its first check refused), not after a guessed time.
        self.assertTrue(wait_until(lambda: any("server 127.0.0.1:%d DOWN: " % dead in l for l in og.log_lines()), 10),
                        og.log_lines()[-20:])
        import ssl
        ctx = ssl.create_default_context()
        start = time.monotonic()
        with socket.create_connection((LOOP4, port), timeout=5) as s:
            with self.assertRaises((ssl.SSLError, OSError)):
                ctx.wrap_socket(s, server_hostname="x.test")
        self.assertLess(time.monotonic() - start, 2)


if __name__ == "__main__":
    unittest.main()
