#!/usr/bin/python3
"""Flash crowd over shaped links: one seeder and N downloaders, each a host of
its own (a network namespace, loopback addresses only, as
tests/testing/netns.py makes them), every host's link shaped by tbf to
--mbit (100) in both directions, and no application caps. All downloaders
ask for the same --size_mib file at once. The seeder alone needs F/R to send
one copy; the figure is the slowest downloader's time over F/R.

Each run does groupshare (a tracker on a host of its own, TLS, the
defaults), then libtorrent (Debian's python3-libtorrent, tuned as in
bench/libtorrent_reference.py, one session per host, every downloader told
of the seeder and of every other downloader at once). Prints a line per
run and system, with the share of the machine's CPU that was busy while it
ran (the shaped links cost the kernel CPU too; at 100% the machine, not the
links, set the pace), when each downloader finished, and what each host
sent during it, in MiB and in thousands of packets (the kernel's cost of
the links grows with the packets), then the medians:

  groupshare run=1 slowest_s=7.90 f_over_r_s=5.37 ratio=1.47 cpu_busy=93%
    finished_s: 7.61 7.70 ... 7.90
    sent_mib: seed=70 d1=60 d2=58 ...
    sent_kpackets: seed=40 d1=33 d2=30 ...
  libtorrent run=1 slowest_s=14.2 f_over_r_s=5.37 ratio=2.65 cpu_busy=71%
    finished_s: 9.95 11.2 ... 14.2
    sent_mib: seed=66 d1=62 ...
    sent_kpackets: seed=25 d1=18 ...
  median slowest/(F/R): groupshare=1.47 libtorrent=2.65 (64 MiB, 8 downloaders, 100 Mbit)

usage (root): bench/flash_crowd_shaped.py [--bin build/bin] [--size_mib 64]
                  [--downloaders 8] [--mbit 100] [--runs 3] [--no_reference]
"""

import argparse
import datetime
import hashlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "testing"))
from netns import Network, Process, kill_all  # noqa: E402

PORT = 6881  # every host's libtorrent session


def shape(net, ns, host, mbit):
    """tbf at both ends of the host's link: what it sends and what it gets."""
    for where, dev in ((ns, "eth0"), (net.hub, net.links[(host, "internet")])):
        subprocess.run(["ip", "netns", "exec", where, "tc", "qdisc", "add", "dev", dev, "root",
                        "tbf", "rate", "%dmbit" % mbit, "burst", "64kb", "latency", "100ms"],
                       check=True, timeout=30)


def sent(ns):
    """What each host sent so far: {host: (MiB, thousands of packets)}."""
    out = {}
    for host, where in ns.items():
        text = subprocess.run(["ip", "netns", "exec", where, "cat",
                               "/sys/class/net/eth0/statistics/tx_bytes",
                               "/sys/class/net/eth0/statistics/tx_packets"],
                              capture_output=True, text=True, timeout=30).stdout.split()
        out[host] = (int(text[0]) / (1 << 20), int(text[1]) / 1000)
    return out


def cpu_jiffies():
    """The machine's busy and total CPU time so far, in jiffies, all cores."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before):
    """The share of the machine's CPU time that was busy since `before`."""
    busy, total = cpu_jiffies()
    return (busy - before[0]) / max(total - before[1], 1)


def completion_times(log, name, runs_before):
    """When the client logged its downloads of `name` complete (Unix times)."""
    times = []
    try:
        text = open(log).read()
    except FileNotFoundError:
        return times
    for line in text.splitlines():
        m = re.match(r"(\S+Z) info download of %s in \S+ complete" % re.escape(name), line)
        if m:
            stamp = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
            times.append(stamp.replace(tzinfo=datetime.timezone.utc).timestamp())
    return times[runs_before:]


def groupshare_run(clients, downloaders, work, run, digest):
    """Each downloader's time, and the machine's busy share meanwhile."""
    start = time.time()
    cpu = cpu_jiffies()
    outs = {}
    for name in downloaders:
        outs[name] = os.path.join(work, "%s-%d.bin" % (name, run))
        clients[name].send("download_file crowd file.bin " + outs[name])
    finished = {}
    deadline = start + 600
    while len(finished) < len(downloaders):
        if time.time() > deadline:
            sys.exit("groupshare: not every downloader finished: %s" % sorted(finished))
        for name in downloaders:
            if name in finished:
                continue
            done = completion_times(os.path.join(work, name, "client.log"), "file.bin", run)
            if done:
                finished[name] = done[0] - start
        time.sleep(0.1)  # the clients' logs are read; nothing else to wait on
    busy = busy_share(cpu)
    for name in downloaders:
        with open(outs[name], "rb") as f:
            if hashlib.sha1(f.read()).digest() != digest:
                sys.exit("groupshare: %s's copy differs" % name)
        os.remove(outs[name])
        # Forgotten, so that the next run downloads it again.
        clients[name].run_all("stop_share crowd file.bin")
        clients[name].run_all("show_downloads --clear")
    return list(finished.values()), busy


def libtorrent_run(net, ns, addr, downloaders, work, path, run):
    node = os.path.join(HERE, "libtorrent_node.py")
    torrent = os.path.join(work, "file.torrent")
    procs = [Process(ns["seed"], ["/usr/bin/python3", node, "seed", torrent,
                                  os.path.dirname(path), "%s:%d" % (addr["seed"], PORT)],
                     os.path.join(work, "lt-seed.log"))]
    try:
        if procs[0].line(30) != "ready":
            sys.exit("libtorrent: the seeder did not start")
        peers = ["%s:%d" % (addr[n], PORT) for n in ["seed"] + downloaders]
        for name in downloaders:
            out = os.path.join(work, "lt-%s-%d" % (name, run))
            os.makedirs(out)
            others = [p for p in peers if not p.startswith(addr[name] + ":")]
            p = Process(ns[name], ["/usr/bin/python3", node, "fetch", torrent, out,
                                   "%s:%d" % (addr[name], PORT)] + others,
                        os.path.join(work, "lt-%s.log" % name))
            procs.append(p)
            if p.line(30) != "ready":
                sys.exit("libtorrent: %s did not start" % name)
        start = time.time()
        cpu = cpu_jiffies()
        for p in procs[1:]:
            p.send("go")
        finished = []
        for name, p in zip(downloaders, procs[1:]):
            said = p.line(600)
            if not said.startswith("done "):
                sys.exit("libtorrent: %s did not finish: %r" % (name, said))
            finished.append(float(said.split()[1]) - start)
        return finished, busy_share(cpu)
    finally:
        kill_all(procs)
        for name in downloaders:
            shutil.rmtree(os.path.join(work, "lt-%s-%d" % (name, run)), ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin"))
    parser.add_argument("--size_mib", type=int, default=64)
    parser.add_argument("--downloaders", type=int, default=8)
    parser.add_argument("--mbit", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no_reference", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("flash_crowd_shaped.py makes network namespaces: run it as root")
    binary = {name: os.path.abspath(os.path.join(args.bin, name)) for name in ("tracker", "client")}
    work = tempfile.mkdtemp(prefix="groupshare-crowd-")
    os.chmod(work, 0o755)
    net = Network(bridges=("internet",))
    procs = []
    try:
        downloaders = ["d%d" % i for i in range(1, args.downloaders + 1)]
        addr = {"tracker": "127.3.0.1", "seed": "127.3.0.2"}
        addr.update({name: "127.3.1.%d" % i for i, name in enumerate(downloaders, 1)})
        ns = {}
        for host, a in addr.items():
            ns[host] = net.host(host, {"internet": a})
            shape(net, ns[host], host, args.mbit)

        path = os.path.join(work, "file.bin")
        with open(path, "wb") as f:
            f.write(random.Random(1).randbytes(args.size_mib << 20))
        digest = hashlib.sha1(open(path, "rb").read()).digest()
        tracker_info = os.path.join(work, "tracker_info.txt")
        open(tracker_info, "w").write("%s:6000\n" % addr["tracker"])
        tracker = Process(ns["tracker"], [binary["tracker"], tracker_info, "1", "--db",
                                          os.path.join(work, "tracker.db"),
                                          "--password_iterations", "1000"],
                          os.path.join(work, "tracker.log"))
        procs.append(tracker)
        tracker.line(30)
        clients = {}
        for name in ["seed"] + downloaders:
            p = Process(ns[name], [binary["client"], "%s:5000" % addr[name], tracker_info,
                                   "--state_dir", os.path.join(work, name)],
                        os.path.join(work, name + ".err"))
            procs.append(p)
            clients[name] = p
            p.run("create_user %s pw" % name)
            if not p.run("login %s pw" % name).startswith("logged in"):
                sys.exit("%s could not log in" % name)
        clients["seed"].run("create_group crowd")
        for name in downloaders:
            clients[name].run("join_group crowd")
            clients["seed"].run("accept_request crowd " + name)
        said = clients["seed"].run("upload_file %s crowd" % path, timeout=120)
        if not said.startswith("shared"):
            sys.exit("the file was not shared: " + said)
        if not args.no_reference:
            import libtorrent as lt
            from libtorrent_reference import PIECE
            fs = lt.file_storage()
            lt.add_files(fs, path)
            t = lt.create_torrent(fs, PIECE)
            lt.set_piece_hashes(t, work)
            with open(os.path.join(work, "file.torrent"), "wb") as f:
                f.write(lt.bencode(t.generate()))

        f_over_r = args.size_mib / (args.mbit * 1e6 / 8 / (1 << 20))
        ratios = {"groupshare": [], "libtorrent": []}

        def measure(system, run, crowd):
            before = sent(ns)
            finished, busy = crowd()
            after = sent(ns)
            slowest = max(finished)
            ratios[system].append(slowest / f_over_r)
            print("%s run=%d slowest_s=%.2f f_over_r_s=%.2f ratio=%.2f cpu_busy=%.0f%%" %
                  (system, run + 1, slowest, f_over_r, ratios[system][-1], 100 * busy),
                  flush=True)
            print("  finished_s: " + " ".join("%.2f" % t for t in sorted(finished)))
            for i, what in enumerate(("sent_mib", "sent_kpackets")):
                print("  %s: %s" % (what, " ".join("%s=%.0f" % (h, after[h][i] - before[h][i])
                                                     for h in ["seed"] + downloaders)),
                      flush=True)

        for run in range(args.runs):
            measure("groupshare", run,
                    lambda: groupshare_run(clients, downloaders, work, run, digest))
            if not args.no_reference:
                measure("libtorrent", run,
                        lambda: libtorrent_run(net, ns, addr, downloaders, work, path, run))
        ours, theirs = ratios["groupshare"], ratios["libtorrent"]
        line = "median slowest/(F/R): groupshare=%.2f" % statistics.median(ours)
        if theirs:
            line += " libtorrent=%.2f" % statistics.median(theirs)
        print("%s (%d MiB, %d downloaders, %d Mbit)" %
              (line, args.size_mib, args.downloaders, args.mbit), flush=True)
    finally:
        kill_all(procs)
        net.remove()
        if os.environ.get("KEEP_WORK"):
            print("kept " + work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
