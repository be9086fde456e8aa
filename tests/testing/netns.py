"""Hosts of their own for tests: network namespaces on bridges, addresses in
127.0.0.0/8 only (route_localnet), and the binaries run in them.

Needs root. Used by multihost_test.py and nat_test.py.
"""

import os
import queue
import subprocess
import threading
import time

failures = []


def check(condition, what):
    print(("ok: " if condition else "FAILED: ") + what, flush=True)
    if not condition:
        failures.append(what)
    return condition


def sh(*args):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=60)


class Network:
    """Namespaces named <prefix>-<host>, each on the bridges it needs."""

    def __init__(self, bridges=("front", "back")):
        self.prefix = "gs%05d" % (os.getpid() % 100000)
        self.hub = self.prefix + "-hub"
        self.names = []
        self.links = {}  # (host, bridge) -> the hub's end
        self._add(self.hub)
        for bridge in bridges:
            sh("ip", "-n", self.hub, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", self.hub, "link", "set", bridge, "up")

    def _add(self, name):
        sh("ip", "netns", "add", name)
        self.names.append(name)

    def host(self, host, addresses):
        """A host with {bridge: address}; returns its namespace."""
        ns = "%s-%s" % (self.prefix, host)
        self._add(ns)
        script = ["ip link set lo up",
                  # lo keeps 127.0.0.1 alone, so that the rest of
                  # 127.0.0.0/8 is routed out of the veths.
                  "ip addr del 127.0.0.1/8 dev lo", "ip addr add 127.0.0.1/32 dev lo",
                  "sysctl -qw net.ipv4.conf.all.route_localnet=1"]
        for i, (bridge, address) in enumerate(addresses.items()):
            inside, outside = "eth%d" % i, "%s%d%s" % (host[:6], i, bridge[:2])
            sh("ip", "link", "add", inside, "netns", ns, "type", "veth", "peer", "name", outside,
               "netns", self.hub)
            sh("ip", "-n", self.hub, "link", "set", outside, "master", bridge, "up")
            script += ["sysctl -qw net.ipv4.conf.%s.route_localnet=1" % inside,
                       "ip addr add %s/16 dev %s" % (address, inside),
                       "ip link set %s up" % inside]
            self.links[(host, bridge)] = outside
        sh("ip", "netns", "exec", ns, "sh", "-ec", "; ".join(script))
        return ns

    def firewall(self, host):
        """Lets into `host` only connections it started, as a home's stateful
        firewall or NAT does (nftables: established and related in, the rest
        of what arrives on its links dropped)."""
        rules = """
        table inet home {
          chain input {
            type filter hook input priority 0; policy accept;
            iifname "eth*" ct state established,related accept
            iifname "eth*" drop
          }
        }
        """
        subprocess.run(["ip", "netns", "exec", "%s-%s" % (self.prefix, host), "nft", "-f", "-"],
                       input=rules, text=True, check=True, timeout=30)

    def cut(self, host, bridge):
        sh("ip", "-n", self.hub, "link", "set", self.links[(host, bridge)], "down")

    def remove(self):
        for ns in reversed(self.names):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class Process:
    """A binary in a namespace; stdout lines arrive on a queue."""

    def __init__(self, ns, argv, log):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True,
                                     bufsize=1)
        self.lines = queue.Queue()
        self.notices = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def line(self, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                return ""
            if line is None:
                return ""
            if line.startswith("notice: "):
                self.notices.append(line)
                continue
            return line

    def run(self, command, timeout=20):
        """Sends a command; its first line."""
        self.send(command)
        return self.line(timeout)

    def run_all(self, command, timeout=20):
        """Sends a command; all its lines (up to a marker command's answer)."""
        self.send(command)
        self.send("end-of-answer")
        out = []
        while True:
            line = self.line(timeout)
            if line == "" or "end-of-answer" in line:
                return out
            out.append(line)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=20)


def kill_all(procs):
    """Kills what a test or benchmark started, whatever state each is in."""
    for p in procs:
        try:
            p.kill()
        except Exception:
            pass


def eventually(what, probe, timeout=40, every=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = probe()
        if last is True or (last and last is not False and last[0]):
            break
        time.sleep(every)  # the databases and trackers have no event to wait on
    ok = last is True or (isinstance(last, tuple) and last[0])
    check(ok, what + ("" if ok or not isinstance(last, tuple) else " (last: %r)" % (last[1],)))
    return ok
