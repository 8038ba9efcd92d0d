"""
netns.py - small virtual networks for the topology tests, built with `ip netns`
and veth pairs, and removed whole afterwards.

Every namespace is named ogt-PID-NAME (PID: the test process), so parallel runs
never share one, and a run's leftovers are recognised by a PID that no longer
runs: Topology() deletes those first. Links are created inside their
namespaces (`ip -n A link add ... peer ... netns B`), never in the host's, so
their short names cannot clash. Only documentation ranges are addressed
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), and only
inside these namespaces. Topology.close() ends every process started in them
(then whatever else is left inside), and deletes the namespaces, which takes
their links, addresses, routes and nftables tables with them.
"""
import os
import re
import signal
import subprocess
import time

PREFIX = "ogt-%d-" % os.getpid()
_NAME = re.compile(r"^ogt-(\d+)-")


def _ip(*args, check=True, timeout=20):
    r = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.decode(errors="replace").strip()))
    return r


def netns_unavailable():
    """None when this process may build namespaces, else why not (a skip reason)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run the suite as root"
    probe = PREFIX + "probe"
    try:
        r = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cannot run ip netns: %s" % e
    if r.returncode != 0:
        return "ip netns add is not allowed here: %s" % r.stderr.decode(errors="replace").strip()
    _ip("netns", "del", probe, check=False)
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_inside(ns):
    """SIGKILL whatever still runs in namespace ns."""
    r = _ip("netns", "pids", ns, check=False)
    for tok in r.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def _delete(ns):
    _kill_inside(ns)
    for _ in range(50):
        if _ip("netns", "del", ns, check=False).returncode == 0:
            return
        time.sleep(0.1)


def remove_leftovers():
    """Deletes namespaces a test run that no longer exists left behind (its PID is gone)."""
    r = _ip("netns", "list", check=False)
    for line in r.stdout.decode(errors="replace").splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NAME.match(name)
        if m and (int(m.group(1)) == os.getpid() or not _pid_alive(int(m.group(1)))):
            _delete(name)


class Topology:
    """Namespaces, links and processes of one test; close() removes them all."""

    def __init__(self, tag):
        remove_leftovers()
        self.tag = tag
        self.names = []
        self.procs = []

    def ns(self, name):
        """Creates a namespace (loopback up, forwarding as asked later); returns its full name."""
        full = "%s%s-%s" % (PREFIX, self.tag, name)
        _delete(full) if full in _ip("netns", "list", check=False).stdout.decode() else None
        _ip("netns", "add", full)
        self.names.append(full)
        self.run(full, "ip", "link", "set", "lo", "up")
        return full

    def link(self, a, if_a, b, if_b):
        """A veth pair: if_a in namespace a, if_b in namespace b, both up."""
        _ip("-n", a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", b)
        _ip("-n", a, "link", "set", if_a, "up")
        _ip("-n", b, "link", "set", if_b, "up")

    def addr(self, ns, dev, cidr):
        _ip("-n", ns, "addr", "add", cidr, "dev", dev)

    def run(self, ns, *cmd, check=True, input_text=None, timeout=30):
        """Runs cmd inside ns; returns the CompletedProcess (stdout and stderr as text)."""
        r = subprocess.run(["ip", "netns", "exec", ns] + list(cmd), input=input_text, text=True,
                           stdin=None if input_text is not None else subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("in %s: %s: %s%s" % (ns, " ".join(cmd), r.stdout, r.stderr))
        return r

    def sysctl(self, ns, key, value):
        self.run(ns, "sysctl", "-q", "-w", "%s=%s" % (key, value))

    def popen(self, ns, cmd, **kw):
        """Starts cmd inside ns; close() ends it."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(["ip", "netns", "exec", ns] + list(cmd), **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for ns in reversed(self.names):
            _delete(ns)
        self.names = []
