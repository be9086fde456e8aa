#!/usr/bin/python3
"""Relay benchmark: a relayed download against a direct one, in one run.

Hosts of their own (network namespaces, loopback addresses only, as
tests/nat_test.py makes them), every host's link shaped by tbf to --mbit
(100): a tracker, a relay, a downloader, and two holders of one file each:
one anybody reaches, one behind a stateful firewall that lets nothing in.
Each run downloads the reachable holder's file (directly) and the other's
(through the relay), alternating; then bench/relay_load loads the relay
with --holders waiting clients and --sessions sessions at once (on
loopback, unshaped). Prints a line per download and at the end:

  relayed/direct: direct_mib_per_s=11.2 relayed_mib_per_s=11.0 ratio=0.98 link_fraction=0.92
  relay cpu_s_per_gib=0.40 (shaped download)
  relay idle holders=200 threads=... rss_mib=...
  relay busy holders=200 sessions=20 threads=... peak_rss_mib=... mib_per_s=... cpu_s_per_gib=...

usage (root): bench/relay_bench.py [--bin build/bin] [--size_mib 128] [--runs 3]
                                   [--mbit 100] [--holders 200] [--sessions 20]
"""

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "testing"))
from netns import Network, Process, kill_all  # noqa: E402

def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin"))
    parser.add_argument("--size_mib", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mbit", type=int, default=100)
    parser.add_argument("--holders", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("relay_bench.py makes network namespaces: run it as root")
    binary = {name: os.path.abspath(os.path.join(args.bin, name))
              for name in ("tracker", "client", "relay", "relay_load")}
    # The load generator is not part of a default build.
    subprocess.run(["cmake", "--build", os.path.join(args.bin, ".."), "--target", "relay_load"],
                   check=True, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="groupshare-relay-bench-")
    os.chmod(work, 0o755)
    net = Network(bridges=("internet",))
    procs = []
    try:
        addr = {"tracker": "127.2.0.1", "relay": "127.2.0.2", "open": "127.2.0.3",
                "home": "127.2.1.1", "down": "127.2.2.1"}
        ns = {h: net.host(h, {"internet": a}) for h, a in addr.items()}
        for host in ns.values():
            subprocess.run(["ip", "netns", "exec", host, "tc", "qdisc", "add", "dev", "eth0",
                            "root", "tbf", "rate", "%dmbit" % args.mbit, "burst", "64kb",
                            "latency", "100ms"], check=True, timeout=30)
        net.firewall("home")
        tracker_info = os.path.join(work, "tracker_info.txt")
        relay_info = os.path.join(work, "relay_info.txt")
        open(tracker_info, "w").write("%s:6000\n" % addr["tracker"])
        open(relay_info, "w").write("%s:7000\n" % addr["relay"])

        def log(name):
            return os.path.join(work, name + ".log")

        tracker = Process(ns["tracker"], [binary["tracker"], tracker_info, "1", "--db",
                                          os.path.join(work, "tracker.db"), "--relays",
                                          relay_info, "--password_iterations", "1000"],
                          log("tracker"))
        procs.append(tracker)
        tracker.line(30)
        relay = Process(ns["relay"], [binary["relay"], relay_info, "1", "--trackers",
                                      tracker_info, "--state_dir", os.path.join(work, "relay")],
                        log("relay"))
        procs.append(relay)
        relay.line(30)

        def client(name, user):
            p = Process(ns[name], [binary["client"], "%s:5000" % addr[name], tracker_info,
                                   "--state_dir", os.path.join(work, "client-" + name)],
                        log(name))
            procs.append(p)
            p.run("create_user %s pw" % user)
            p.run("login %s pw" % user)
            return p

        open_holder, home_holder, down = (client("open", "olga"), client("home", "hugo"),
                                          client("down", "dana"))
        open_holder.run("create_group g")
        for who, user in ((home_holder, "hugo"), (down, "dana")):
            who.run("join_group g")
            open_holder.run("accept_request g " + user)
        files = {}
        for who, name in ((open_holder, "direct.bin"), (home_holder, "relayed.bin")):
            path = os.path.join(work, name)
            with open(path, "wb") as f:
                f.write(random.Random(name).randbytes(args.size_mib << 20))
            files[name] = hashlib.sha1(open(path, "rb").read()).digest()
            said = who.run("upload_file %s g" % path, timeout=120)
            if not said.startswith("shared"):
                sys.exit("%s was not shared: %s" % (name, said))

        relay_pid = relay.proc.pid  # `ip netns exec` execs the relay: the same process
        rates = {"direct.bin": [], "relayed.bin": []}
        relay_cpu = []
        for run in range(args.runs):
            for name in ("direct.bin", "relayed.bin"):
                out = os.path.join(work, "got-%d-%s" % (run, name))
                cpu_before = cpu_seconds(relay_pid)
                start = time.time()
                down.run("download_file g %s %s" % (name, out))
                deadline = start + 600
                while time.time() < deadline:
                    lines = down.run_all("show_downloads", timeout=10)
                    if any(l.startswith("[C]") and out in l for l in lines):
                        break
                    if any(l.startswith("[F]") and name in l for l in lines) or not any(
                            name in l for l in lines):
                        sys.exit("the download failed or did not start: %s" % lines)
                    time.sleep(0.05)  # show_downloads is polled; the client has no event
                seconds = time.time() - start
                ok = hashlib.sha1(open(out, "rb").read()).digest() == files[name]
                os.remove(out)
                # The downloader shares what it downloaded: it forgets it,
                # so that the next run downloads it again.
                down.run("stop_share g " + name)
                down.run_all("show_downloads --clear", timeout=10)
                rate = args.size_mib / seconds
                rates[name].append(rate)
                if name == "relayed.bin":
                    relay_cpu.append((cpu_seconds(relay_pid) - cpu_before) /
                                     (args.size_mib / 1024))
                print("run %d %s seconds=%.2f mib_per_s=%.2f sha1_ok=%s" %
                      (run + 1, name.split(".")[0], seconds, rate, ok), flush=True)
        link = args.mbit * 1e6 / 8 / (1 << 20)
        direct, relayed = statistics.median(rates["direct.bin"]), statistics.median(
            rates["relayed.bin"])
        print("relayed/direct: direct_mib_per_s=%.2f relayed_mib_per_s=%.2f ratio=%.3f "
              "link_fraction=%.3f (link %.2f MiB/s)" %
              (direct, relayed, relayed / direct, relayed / link, link), flush=True)
        print("relay cpu_s_per_gib=%.3f (shaped download, median)" % statistics.median(relay_cpu),
              flush=True)

        # The relay under load, on loopback with its own tracker and relay.
        load = os.path.join(work, "load")
        os.makedirs(load)
        open(os.path.join(load, "tracker_info.txt"), "w").write("127.0.0.1:16000\n")
        open(os.path.join(load, "relay_info.txt"), "w").write("127.0.0.1:17000\n")
        t = subprocess.Popen([binary["tracker"], os.path.join(load, "tracker_info.txt"), "1",
                              "--db", os.path.join(load, "tracker.db"), "--password_iterations",
                              "1000", "--signups_per_address", "1000"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(t)
        t.stdout.readline()
        r = subprocess.Popen([binary["relay"], os.path.join(load, "relay_info.txt"), "1",
                              "--trackers", os.path.join(load, "tracker_info.txt"),
                              "--state_dir", os.path.join(load, "relay"),
                              "--max_sessions_per_user", "100"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(r)
        r.stdout.readline()
        subprocess.run([binary["relay_load"], "--tracker", "127.0.0.1:16000", "--relay",
                        "127.0.0.1:17000", "--relay_pid", str(r.pid), "--dir", load,
                        "--holders", str(args.holders), "--sessions", str(args.sessions)],
                       check=True, timeout=600)
    finally:
        kill_all(procs)
        net.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
