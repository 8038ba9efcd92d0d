"""Retries: a request whose server connection fails before any byte of the answer reached the
client goes again, to another server (or, for a kept connection the server closed, to the same
server on a new connection), when that is safe. Several keep-alive clients under load while a
server is SIGKILLed, stopped gracefully, closes kept connections at random or resets after
reading each request: no idempotent request fails, and every request is answered once. POSTs
with a small body go again, a streamed one never; timeouts only where a route says so; the
pool's budget bounds resends. The back ends count what they got. Loopback only."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

from harness import LOOP4, OnegateTestCase, fault_report, free_port, wait_until
from httpback import HTTPBackend

HERE = os.path.dirname(os.path.abspath(__file__))


class KeepAliveLoad:
    """n clients, each sending GETs one after another on its own kept connection until
    stopped; every request carries a unique X-Req. Any answer but 200, and any broken
    connection, is a failure."""

    def __init__(self, port, n=8, path="/slow?ms=20", host="app.test"):
        self.port, self.path, self.host = port, path, host
        self.lock = threading.Lock()
        self.answers, self.failures = {}, []
        self.stopping = False
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(n)]

    def _run(self, k):
        conn, i = None, 0
        while not self.stopping:
            rid = "%d-%d" % (k, i)
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(LOOP4, self.port, timeout=20)
                conn.request("GET", self.path, headers={"Host": self.host, "X-Req": rid})
                r = conn.getresponse()
                body = r.read()
                with self.lock:
                    if r.status == 200:
                        self.answers[rid] = json.loads(body)["backend"]
                    else:
                        self.failures.append((rid, r.status, body[:80]))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failures.append((rid, repr(e)))
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    def served_by(self, name):
        with self.lock:
            return sum(1 for b in self.answers.values() if b == name)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stopping = True
        for t in self.threads:
            t.join(30)


def metrics(admin_port):
    with urllib.request.urlopen("http://%s:%d/metrics" % (LOOP4, admin_port), timeout=10) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^(onegate_server_\w+)\{pool="([^"]*)",server="([^"]*)"\} (\d+)$', text, re.M):
        out[(m.group(1), m.group(2), m.group(3))] = int(m.group(4))
    return out


def access_lines(og, count=0):
    """The access lines, once there are count of them (or 5 s passed): an answer that closes
    its connection is logged when its client has taken it, which may be after the client read it."""
    lines = []

    def enough():
        lines[:] = [f for f in og.conn_logs() if f.get("method") and f.get("method") != "-"]
        return len(lines) >= count
    wait_until(enough, 5)
    return lines


class ProcessBackend:
    """httpback.py as a process of its own, so that it can be SIGKILLed; the requests it
    got (one JSON line each) are read as they come."""

    def __init__(self, name, delay_ms=0):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "httpback.py"), name, "--delay",
                                      str(delay_ms)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.requests = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            info = json.loads(line)
            if info["answered"]:
                for r in reversed(self.requests):
                    if r["req"] == info["req"]:
                        r["answered"] = True
                        break
            else:
                self.requests.append(info)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.thread.join(5)
        self.proc.stdout.close()


class RetryCase(OnegateTestCase):
    def serve(self, servers, pool_extra="", route_extra="", workers=2, admin=True):
        self.port = free_port()
        self.admin_port = free_port()
        conf = """
onegate = { workers = %d; %s };
pools = ( { name = "app"; servers = ( %s ); %s } );
services = ( { name = "web"; listen = [ "127.0.0.1:%d" ];
  routes = ( { host = "app.test"; pool = "app"; %s } ); } );
""" % (workers, 'admin = { listen = "127.0.0.1:%d"; };' % self.admin_port if admin else "",
       ", ".join(servers), pool_extra, self.port, route_extra)
        og = self.start_onegate(conf, self.port)
        if admin:
            og.wait_ready(self.admin_port, 10)
        return og

    def backend(self, name, **kw):
        b = HTTPBackend(name, **kw)
        self.addCleanup(b.kill)
        return b

    def assert_each_answered_once(self, load, backends):
        """Every request the load got an answer to was answered by exactly one back end."""
        answered, received = {}, set()
        for b in backends:
            for r in list(b.requests):
                if r.get("req"):
                    received.add((r["req"], r["backend"]))
                if r.get("answered") and r.get("req"):
                    answered.setdefault(r["req"], []).append(r["backend"])
        twice = {k: v for k, v in answered.items() if len(v) > 1}
        self.assertEqual(twice, {}, "requests answered more than once")
        # A back end SIGKILLed between its send and its note that it answered loses the note,
        # not the answer: the body the client got names the back end that sent it.
        missing = [k for k, by in load.answers.items() if k not in answered and (k, by) not in received]
        self.assertEqual(missing, [], "answers no back end gave")


class DyingServerUnderLoad(RetryCase):
    """Eight keep-alive clients through a pool of two; one server goes away mid-load."""

    def run_load_and(self, stop_b, a, b_requests, b_name, backends):
        with KeepAliveLoad(self.port) as load:
            self.assertTrue(wait_until(lambda: load.served_by("a") > 20 and load.served_by(b_name) > 20, 20),
                            (load.served_by("a"), load.served_by(b_name), load.failures[:5]))
            stop_b()
            before = load.served_by("a")
            self.assertTrue(wait_until(lambda: load.served_by("a") > before + 100, 30), load.failures[:5])
        return load

    def test_sigkill(self):
        a = self.backend("a")
        b = ProcessBackend("b")
        self.addCleanup(b.kill)
        og = self.serve(['"127.0.0.1:%d"' % a.port, '"127.0.0.1:%d"' % b.port],
                        'health = { path = "/health"; interval = "500ms"; timeout = "400ms"; };')
        load = self.run_load_and(b.kill, a, b.requests, "b", [a, b])
        fault_report("SIGKILL of one of two servers under 8 keep-alive clients",
                     "%d GETs" % (len(load.answers) + len(load.failures)), "%d" % len(load.failures))
        self.assertEqual(load.failures, [])
        self.assert_each_answered_once(load, [a, b])
        # Requests were in flight on b when it died, and went to a instead.
        self.assertTrue(any("127.0.0.1:%d: " % b.port in l and "before the response head" in l for l in og.log_lines()),
                        "\n".join(og.log_lines()[-30:]))
        retried = [f for f in access_lines(og) if f.get("retries") != "0"]
        self.assertTrue(retried, "\n".join(og.log_lines()[-30:]))
        self.assertTrue(all(f["status"] == "200" and f["server"] == "127.0.0.1:%d" % a.port for f in retried),
                        [f["_line"] for f in retried])
        m = metrics(self.admin_port)
        self.assertGreater(m[("onegate_server_retries_total", "app", "127.0.0.1:%d" % b.port)], 0)
        self.assertEqual(m[("onegate_server_retries_total", "app", "127.0.0.1:%d" % a.port)], 0)

    def test_graceful_close(self):
        a, b = self.backend("a"), self.backend("b")
        self.serve(['"127.0.0.1:%d"' % a.port, '"127.0.0.1:%d"' % b.port],
                   'health = { path = "/health"; interval = "500ms"; timeout = "400ms"; };')
        load = self.run_load_and(b.graceful, a, b.requests, "b", [a, b])
        fault_report("graceful stop of one of two servers under 8 keep-alive clients",
                     "%d GETs" % (len(load.answers) + len(load.failures)), "%d" % len(load.failures))
        self.assertEqual(load.failures, [])
        self.assert_each_answered_once(load, [a, b])


class MisbehavingServers(RetryCase):
    def test_server_closing_kept_connections_at_random(self):
        # One server only: a kept connection it closes as a request goes out is tried again on a
        # new connection to it, and is not its failure.
        a = self.backend("a", close_kept=0.3)
        og = self.serve(['"127.0.0.1:%d"' % a.port], 'health = { type = "tcp"; interval = "60s"; passive_fall = 2; };')
        with KeepAliveLoad(self.port, path="/") as load:
            self.assertTrue(wait_until(lambda: len(load.answers) > 400, 60), (len(load.answers), load.failures[:5]))
        name = "127.0.0.1:%d" % a.port
        # The back end marks a request answered once its sendall() returns, and the client may
        # have the answer (and the load be over) first: what it dropped is read once settled.
        dropped = []

        def settled():
            dropped[:] = [r for r in a.requests if not r["answered"]]
            return metrics(self.admin_port)[("onegate_server_retries_total", "app", name)] >= len(dropped)
        wait_until(settled, 5)
        fault_report("a server closing kept connections at random under 8 keep-alive clients",
                     "%d GETs, %d of them on a connection the server closed" % (len(load.answers) + len(load.failures),
                                                                                 len(dropped)),
                     "%d" % len(load.failures))
        self.assertGreater(len(dropped), 10)
        self.assertEqual(load.failures, [])
        self.assert_each_answered_once(load, [a])
        m = metrics(self.admin_port)
        self.assertEqual(m[("onegate_server_failures_total", "app", name)], 0)
        self.assertGreaterEqual(m[("onegate_server_retries_total", "app", name)], len(dropped))
        self.assertTrue(any("closed on a kept connection before the response head: trying a new one" in l
                            for l in og.log_lines()), "\n".join(og.log_lines()[-30:]))
        self.assertFalse(any("DOWN" in l for l in og.log_lines()))
        retried = [f for f in access_lines(og) if f.get("retries") == "1"]
        self.assertGreaterEqual(len(retried), len(dropped))
        self.assertTrue(all(f["server"] == name and f["outcome"] == "ok" for f in retried))

    def test_server_resetting_after_reading_each_request(self):
        bad, good = self.backend("bad", reset=True), self.backend("good")
        og = self.serve(['"127.0.0.1:%d"' % bad.port, '"127.0.0.1:%d"' % good.port],
                        'health = { type = "tcp"; interval = "60s"; passive_fall = 3; };')
        with KeepAliveLoad(self.port) as load:
            self.assertTrue(wait_until(lambda: len(load.answers) > 200, 60), (len(load.answers), load.failures[:5]))
        fault_report("a server resetting after reading each request, under 8 keep-alive clients",
                     "%d GETs, %d reached the resetting server" % (len(load.answers) + len(load.failures),
                                                                    len(bad.requests)),
                     "%d" % len(load.failures))
        self.assertEqual(load.failures, [])
        self.assert_each_answered_once(load, [bad, good])
        self.assertGreaterEqual(len(bad.requests), 3)
        # Whatever the resetting server got was answered by the other one.
        self.assertTrue(all(load.answers.get(r["req"]) == "good" for r in bad.requests))
        name = "127.0.0.1:%d" % bad.port
        self.assertTrue(any("pool app server %s DOWN: 3 failures in a row on live traffic" % name in l
                            for l in og.log_lines()), "\n".join(og.log_lines()[-30:]))
        m = metrics(self.admin_port)
        self.assertGreaterEqual(m[("onegate_server_failures_total", "app", name)], 3)
        self.assertEqual(m[("onegate_server_retries_total", "app", name)], len(bad.requests))


def send(port, method, path, body=b"", chunked=False, headers=None, timeout=20):
    """One request on its own connection; (status, body) or (None, error text)."""
    c = http.client.HTTPConnection(LOOP4, port, timeout=timeout)
    try:
        h = {"Host": "app.test", **(headers or {})}
        if chunked:
            c.putrequest(method, path, skip_host=True)
            for k, v in h.items():
                c.putheader(k, v)
            c.putheader("Transfer-Encoding", "chunked")
            c.endheaders()
            for i in range(0, len(body), 300):
                part = body[i:i + 300]
                c.send(b"%x\r\n%s\r\n" % (len(part), part))
            c.send(b"0\r\n\r\n")
        else:
            c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e)
    finally:
        c.close()


class WhatGoesAgain(RetryCase):
    """One worker, the resetting server first in every pick (weight 256 against 1)."""

    def setUp(self):
        self.bad, self.good = self.backend("bad", reset=True), self.backend("good")

    def serve_bad_first(self, pool_extra=""):
        return self.serve(['{ address = "127.0.0.1:%d"; weight = 256; }' % self.bad.port,
                           '"127.0.0.1:%d"' % self.good.port], pool_extra, workers=1)

    def got(self, backend, rid):
        return [r for r in backend.requests if r["req"] == rid]

    def test_small_post_goes_again_streamed_one_never(self):
        og = self.serve_bad_first()
        for rid, chunked in (("small", False), ("small-chunked", True)):
            st, body = send(self.port, "POST", "/form", b"x" * 1000, chunked, {"X-Req": rid})
            self.assertEqual(st, 200, body)
            self.assertEqual(json.loads(body)["backend"], "good")
            self.assertEqual([r["body_len"] for r in self.got(self.bad, rid)], [1000])
            self.assertEqual([r["body_len"] for r in self.got(self.good, rid)], [1000])
        # A body past retry_body (16 KiB) streams to the server and is never sent twice.
        st, body = send(self.port, "POST", "/upload", b"y" * (1 << 20), headers={"X-Req": "large"})
        self.assertEqual(st, 502, body)
        self.assertEqual([r["body_len"] for r in self.got(self.bad, "large")], [1 << 20])
        self.assertEqual(self.got(self.good, "large"), [])
        lines = {f["path"]: f for f in access_lines(og, 3)}
        self.assertEqual((lines["/form"]["retries"], lines["/form"]["outcome"]), ("1", "ok"))
        self.assertEqual((lines["/upload"]["retries"], lines["/upload"]["outcome"], lines["/upload"]["in"]),
                         ("0", "server-closed", str(1 << 20)))

    def test_pool_that_keeps_no_body_sends_no_post_twice(self):
        self.serve_bad_first("retry_body = 0;")
        st, body = send(self.port, "POST", "/form", b"x" * 10, headers={"X-Req": "post"})
        self.assertEqual(st, 502, body)
        st, body = send(self.port, "POST", "/empty", headers={"X-Req": "empty"})
        self.assertEqual(st, 502, body)
        self.assertEqual(len(self.got(self.bad, "post")) + len(self.got(self.bad, "empty")), 2)
        self.assertEqual(self.got(self.good, "post") + self.got(self.good, "empty"), [])
        # An idempotent request without a body still goes again.
        st, body = send(self.port, "GET", "/", headers={"X-Req": "get"})
        self.assertEqual((st, json.loads(body)["backend"]), (200, "good"))

    def test_upgrade_never_goes_twice(self):
        self.serve_bad_first()
        st, body = send(self.port, "GET", "/ws", headers={"X-Req": "ws", "Connection": "Upgrade",
                                                          "Upgrade": "websocket"})
        self.assertEqual(st, 502, body)
        self.assertEqual(len(self.got(self.bad, "ws")), 1)
        self.assertEqual(self.got(self.good, "ws"), [])

    def test_request_on_a_private_connection_never_goes_elsewhere(self):
        # NTLM credentials make the server connection private to the client's: what they
        # authenticate is on that connection alone.
        self.serve_bad_first()
        st, body = send(self.port, "GET", "/ews", headers={"X-Req": "ntlm",
                                                           "Authorization": "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw=="})
        self.assertEqual(st, 502, body)
        self.assertEqual(len(self.got(self.bad, "ntlm")), 1)
        self.assertEqual(self.got(self.good, "ntlm"), [])

    def test_pool_that_shares_no_connection_sends_nothing_elsewhere(self):
        self.serve_bad_first("share_connections = false;")
        st, body = send(self.port, "GET", "/", headers={"X-Req": "get"})
        self.assertEqual(st, 502, body)
        self.assertEqual(len(self.got(self.bad, "get")), 1)
        self.assertEqual(self.got(self.good, "get"), [])

    def test_retries_zero_never_tries_again(self):
        og = self.serve_bad_first("retries = 0;")
        st, body = send(self.port, "GET", "/", headers={"X-Req": "get"})
        self.assertEqual(st, 502, body)
        self.assertEqual(self.got(self.good, "get"), [])
        self.assertEqual([f["retries"] for f in access_lines(og, 1)], ["0"])

    def test_budget_bounds_resends_under_way(self):
        # The other server holds each answer 5 s: resends stay under way, and with retry_budget = 0
        # only the floor of 10 may be at once; the rest of 14 failing at once get 502.
        self.good.delay_ms = 5000
        og = self.serve_bad_first("retry_budget = 0;")
        results = []
        threads = [threading.Thread(target=lambda k=k: results.append(send(self.port, "GET", "/",
                                                                            headers={"X-Req": "b%d" % k})))
                   for k in range(14)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(st for st, _ in results)
        self.assertEqual(statuses, [200] * 10 + [502] * 4, results)
        self.assertEqual(len([l for l in og.log_lines() if "pool app: retry budget spent" in l]), 4)


class FirstByteTimeout(RetryCase):
    def setUp(self):
        self.slow, self.fast = self.backend("slow", delay_ms=6000), self.backend("fast")

    def serve_slow_first(self, route_extra):
        return self.serve(['{ address = "127.0.0.1:%d"; weight = 256; }' % self.slow.port,
                           '"127.0.0.1:%d"' % self.fast.port], route_extra='request_timeout = "2s"; ' + route_extra,
                          workers=1)

    def test_not_retried_by_default(self):
        og = self.serve_slow_first("")
        st, body = send(self.port, "GET", "/", headers={"X-Req": "t"})
        self.assertEqual(st, 504, body)
        self.assertEqual(len([r for r in self.slow.requests if r["req"] == "t"]), 1)
        self.assertEqual(self.fast.requests, [])
        self.assertEqual([(f["retries"], f["outcome"]) for f in access_lines(og, 1)], [("0", "backend-timeout")])

    def test_retried_for_idempotent_requests_when_the_route_says_so(self):
        og = self.serve_slow_first("retry_on_timeout = true;")
        st, body = send(self.port, "GET", "/", headers={"X-Req": "t"})
        self.assertEqual((st, json.loads(body)["backend"]), (200, "fast"))
        st, body = send(self.port, "POST", "/", b"x" * 10, headers={"X-Req": "p"})
        self.assertEqual(st, 504, body)
        self.assertEqual([r["req"] for r in self.fast.requests], ["t"])
        self.assertEqual([(f["method"], f["retries"], f["outcome"]) for f in access_lines(og, 2)],
                         [("GET", "1", "ok"), ("POST", "0", "backend-timeout")])


if __name__ == "__main__":
    unittest.main()
