#!/usr/bin/env python3
"""A/B of two onegate binaries on the same scenarios of run.py, in one run.

The two binaries take turns (A B B A A B ...) so that a drift of the machine during the run
(another job, the CPU's clock) falls on both alike; each turn is one timed load of run.py's
scenario against the same back end. Reported per scenario: the median gateway CPU per unit of
work of each binary, B/A, and the spread of the turns, so a reader sees whether a difference is
larger than the noise. Everything listens and connects on 127.0.0.1 only, as in run.py.

On a busy machine CPU time per request moves by more than the changes it should judge; --icount
counts instead the instructions the gateway executes per request under callgrind (a fixed number
of keep-alive requests after a warm-up, counters zeroed in between), which another job on the
machine does not disturb. The keep-alive scenarios (1, 4, 6a, 6b) count per request; so does 10
(HTTP/2: 32 connections of 10 streams, as in run.py, N requests per name in all); scenario 2a
(full handshakes) counts per new connection (a handshake and its one request), over --seconds, and
3b (passthrough, a new connection per 1 KiB exchange) per new connection over N connections, and
so do 7a and 7b (one name against 10,000, each with its own certificate; the name in the middle of
the list), which tells what 10,000 certificates cost a handshake without the machine's noise. The
gateway starts with callgrind's instrumentation off (10,000 certificates load in seconds, not
minutes) and has it turned on before the warm-up.

--log-a / --log-b: that binary logs every request to a file (run.py's "+log" modes), so that
`ab.py X X --log-b` is the cost of the access log, and `ab.py OLD NEW --log-a --log-b` the cost of
a change to the log path.
"""
import argparse
import datetime
import os
import re
import shutil
import glob
import statistics
import subprocess
import sys
import tempfile

import run


def turns(rounds):
    """A B B A, repeated: each binary goes first as often as second."""
    order = []
    for i in range(rounds):
        order += ["A", "B"] if i % 2 == 0 else ["B", "A"]
    return order


# Scenarios whose unit is a new connection (a full handshake and one request).
HANDSHAKES = ("handshakes_ecdsa", "hosting_1", "hosting_10k")


class Icount:
    """Instructions per request of a gateway run under callgrind, for run.py's keep-alive
    scenarios: a warm-up, the counters zeroed, `requests` requests per name over 4 kept
    connections with h2load (a count, so every request counted was answered), a dump."""

    def __init__(self, bench, requests, keep=None):
        self.bench = bench
        self.requests = requests
        self.keep = keep            # a folder for each turn's callgrind dump (callgrind_annotate)
        # Valgrind starts a gateway in seconds, not the milliseconds run.py waits for.
        run.wait_port.__defaults__ = (120.0,)

    def wrap(self, who, binary, fn):
        out = os.path.join(self.bench.d, "cg.%p")
        # 10's 32 connections and 1's 4 are new for each client run: their TLS handshakes (2.3
        # million instructions each) would be a quarter of 10's count at 1000 requests per name
        # and a sixth of 1's at 2000, so both count nothing inside SSL_do_handshake (collection
        # toggles off there; --toggle-collect turns collection off at start, so
        # --collect-atstart=yes must come after it) and so what a request costs on a kept
        # connection. (1's counts before 2026-12-07's evening include its 12 handshakes.)
        skip = (" --toggle-collect=SSL_do_handshake --collect-atstart=yes"
                if fn in ("https_h2", "https_keepalive") else "")
        path = self.bench.write(f"vg-{who}.sh",
                                f'#!/bin/sh\nexec valgrind -q --tool=callgrind --instr-atstart=no '
                                f'--callgrind-out-file={out}{skip} "{binary}" "$@"\n')
        os.chmod(path, 0o755)
        return path

    def load(self, port, scheme, per_name):
        if scheme == "h2":
            # Scenario 10's shape: 32 connections of 10 streams, the names split over them.
            done = self.bench.h2load_split(port, 32, 10, ["-n", str(per_name)])[0]
            if done != per_name * len(run.NAMES):
                raise RuntimeError(f"h2load finished {done:.0f} of {per_name * len(run.NAMES)} requests")
            return
        for name in run.NAMES:
            r = self.bench.client(["h2load", "--h1", "-n", str(per_name), "-c", "4",
                                   f"--connect-to=127.0.0.1:{port}", f"{scheme}://{name}:{port}/1k"],
                                  timeout=600)
            done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", r.stdout)
            if not done or int(done.group(1)) != per_name:
                raise RuntimeError("h2load did not complete every request:\n" + r.stdout + r.stderr)

    def handshakes(self, port, mode):
        """Scenario 2a's or 7's load: full handshakes, each with one request, for --seconds; how many."""
        name = run.NAMES[0]
        if mode.startswith("hosting:"):
            name = run.hosting_name(int(mode.split(":")[1]) // 2)
        return self.bench._handshakes(port, None, "full", name, "1.3", "ec")["work"]

    def passthrough(self, port, conns):
        """Scenario 3b's load: conns new connections, each one TLS exchange relayed to the back end."""
        r = self.bench.client(["h2load", "--h1", "-n", str(conns), "-c", "32", "-H", "Connection: close",
                               f"--connect-to=127.0.0.1:{port}", f"https://{run.NAMES[1]}:{port}/1k"],
                              timeout=600)
        done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", r.stdout)
        if not done or int(done.group(1)) != conns:
            raise RuntimeError("h2load did not complete every connection:\n" + r.stdout + r.stderr)

    def measure(self, who, binary, mode, fn):
        self.bench.kind = "onegate"
        self.bench.bin = self.wrap(who, binary, fn)
        proc, port = self.bench.start_gateway("onegate", mode)
        scheme = {"https": "https", "h2": "h2"}.get(mode.partition("+")[0], "http")
        try:
            subprocess.run(["callgrind_control", "--instr=on", str(proc.pid)], check=True, capture_output=True)
            if fn in HANDSHAKES:
                self.handshakes(port, mode)
            elif fn == "passthrough_connections":
                self.passthrough(port, max(1, self.requests // 10))
            else:
                self.load(port, scheme, max(1, self.requests // 10))
            subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
            if fn in HANDSHAKES:
                work = self.handshakes(port, mode)
            elif fn == "passthrough_connections":
                self.passthrough(port, self.requests)
                work = self.requests
            else:
                self.load(port, scheme, self.requests)
                work = self.requests * len(run.NAMES)
            before = set(glob.glob(os.path.join(self.bench.d, f"cg.{proc.pid}*")))
            subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True)
            dump = sorted(set(glob.glob(os.path.join(self.bench.d, f"cg.{proc.pid}*"))) - before)[-1]
            with open(dump) as f:
                total = re.search(r"^(?:totals|summary): (\d+)", f.read(), re.M)
            if self.keep:
                shutil.copy(dump, os.path.join(self.keep, f"callgrind.{fn}.{who}.{proc.pid}"))
            return int(total.group(1)) / work
        finally:
            proc.close()
            self.bench.procs.remove(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("a", help="the onegate binary before the change")
    ap.add_argument("b", help="the onegate binary after the change")
    ap.add_argument("--only", default="1,4", help="comma-separated scenario ids of run.py (default 1,4)")
    ap.add_argument("--rounds", type=int, default=4, help="turns of each binary per scenario")
    ap.add_argument("--seconds", type=int, default=5, help="length of each timed load")
    ap.add_argument("--note", default="", help="a line for the results file: the machine's load, what A and B are")
    ap.add_argument("--out", help="write the Markdown table to this file as well")
    ap.add_argument("--icount", type=int, metavar="N",
                    help="count instructions per request under callgrind over N requests per name instead")
    ap.add_argument("--keep-dumps", metavar="DIR",
                    help="with --icount: keep each turn's callgrind dump in DIR, for callgrind_annotate")
    ap.add_argument("--log-a", action="store_true", help="A logs every request to a file")
    ap.add_argument("--log-b", action="store_true", help="B logs every request to a file")
    args = ap.parse_args()
    logs = {"A": args.log_a, "B": args.log_b}
    bins = {"A": os.path.abspath(args.a), "B": os.path.abspath(args.b)}
    wanted = args.only.split(",")
    scenarios = [s for s in run.SCENARIOS if s[0] in wanted and not s[4]]
    if args.icount:
        scenarios = [s for s in scenarios if s[2] in ("https_keepalive", "http_keepalive", "https_h2",
                                                 "passthrough_connections") + HANDSHAKES]
    if not scenarios:
        sys.exit(f"ab: no scenario among {args.only}")

    d = tempfile.mkdtemp(prefix="onegate-ab-")
    bench = run.Bench(bins["A"], d, args.seconds)
    per = {}
    if args.keep_dumps:
        os.makedirs(args.keep_dumps, exist_ok=True)
    counter = Icount(bench, args.icount, args.keep_dumps) if args.icount else None
    try:
        run.make_pki(d)
        bench.start_backend()
        for sid, title, fn, mode, _ in scenarios:
            per[sid] = {"A": [], "B": []}
            for who in turns(args.rounds):
                turn_mode = mode + "+log" if logs[who] else mode
                if counter:
                    cost = counter.measure(who, bins[who], turn_mode, fn)
                    print(f"  {sid} {who}: {cost:.0f} instructions/req", file=sys.stderr)
                else:
                    bench.bin = bins[who]
                    res = bench.measure("onegate", getattr(bench, fn), turn_mode)
                    cost = res["cpu"] / res["work"] * 1e6
                    print(f"  {sid} {who}: {cost:.2f} us/{res['per']} ({res['value']:.0f} {res['unit']})",
                          file=sys.stderr)
                per[sid][who].append(cost)
    finally:
        bench.close()
        shutil.rmtree(d, ignore_errors=True)

    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [f"# onegate A/B {now:%Y-%m-%d %H:%M} UTC", "",
             f"- A: {run.versions(bins['A'])['onegate']} ({bins['A']}){', access log to a file' if logs['A'] else ''}",
             f"- B: {run.versions(bins['B'])['onegate']} ({bins['B']}){', access log to a file' if logs['B'] else ''}",
             (f"- {args.rounds} turns each of {args.icount} requests per name (3 names, 4 kept connections; "
              f"10: 32 HTTP/2 connections of 10 streams) "
              f"under callgrind after a warm-up of a tenth of that; instructions per request "
              f"(2a, 7a, 7b: per new connection, full handshake and one request, over {args.seconds} s after as long a warm-up; "
              f"3b: per relayed connection, over N connections)"
              if args.icount else
              f"- {args.rounds} turns each of {args.seconds} s per scenario, A and B alternating; "
              f"gateway on CPU {run.GATEWAY_CPU}, client and back end on CPU {run.CLIENT_CPU}")]
    if args.note:
        lines.append(f"- {args.note}")
    what, unit, prec = ("instructions/req", "", 0) if args.icount else ("CPU/unit", " us", 2)
    lines += ["", f"| scenario | A {what} (median) | B {what} (median) | B/A | turns A | turns B |",
              "|---|---|---|---|---|---|"]
    for sid, title, *_ in scenarios:
        a, b = statistics.median(per[sid]["A"]), statistics.median(per[sid]["B"])
        fmt = lambda xs: " ".join(f"{x:.{prec}f}" for x in xs)
        lines.append(f"| {sid} {title} | {a:.{prec}f}{unit} | {b:.{prec}f}{unit} | {b / a:.4f} | "
                     f"{fmt(per[sid]['A'])} | {fmt(per[sid]['B'])} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
