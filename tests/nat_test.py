#!/usr/bin/python3
"""Members behind firewalls reach each other through relays.

The test makes its own hosts (network namespaces on one "internet" bridge,
addresses in 127.0.0.0/8 only): a tracker, two relays and carol, a member
anybody can reach; and two homes, alice's and bob's, each behind a stateful
firewall at its edge that lets in only connections started inside (nftables:
established and related in, new ones dropped). Then:

  1. the shell's reachability line is right for all three: carol is
     reachable, alice and bob serve through relay 1;
  2. bob downloads alice's file through the relay, byte for byte, and a
     capture of the relay's traffic holds neither a 32-byte run of the file
     nor the start of bob's ticket in clear (while it does hold the relay's
     own plaintext, the session requests: the search would find them);
  3. bob downloads carol's file directly: no relay session for it;
  4. relay 1 is killed in the middle of a download from alice: alice waits
     at relay 2, and bob's download completes, byte for byte.

Everything it made is removed at the end. Needs root (namespaces, nftables,
tcpdump).

usage: nat_test.py <tracker> <client> <relay>
"""

import base64
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "testing"))
from netns import Network, Process, check, eventually, failures, kill_all  # noqa: E402

def main():
    tracker_bin, client_bin, relay_bin = sys.argv[1:4]
    if os.geteuid() != 0:
        print("FAILED: this test makes network namespaces and needs root", flush=True)
        return 1
    work = tempfile.mkdtemp(prefix="groupshare-nat-")
    os.chmod(work, 0o755)
    net = Network(bridges=("internet",))
    procs = []
    capture = None
    try:
        addr = {"tracker": "127.1.0.1", "relay1": "127.1.0.2", "relay2": "127.1.0.3",
                "carol": "127.1.0.4", "alice": "127.1.1.1", "bob": "127.1.2.1"}
        ns = {h: net.host(h, {"internet": a}) for h, a in addr.items()}
        for home in ("alice", "bob"):
            net.firewall(home)

        tracker_info = os.path.join(work, "tracker_info.txt")
        relay_info = os.path.join(work, "relay_info.txt")
        with open(tracker_info, "w") as f:
            f.write("%s:6000\n" % addr["tracker"])
        with open(relay_info, "w") as f:
            f.write("%s:7000\n%s:7000\n" % (addr["relay1"], addr["relay2"]))

        def log(name):
            return os.path.join(work, name + ".log")

        tracker = Process(ns["tracker"], [tracker_bin, tracker_info, "1", "--db",
                                          os.path.join(work, "tracker.db"), "--relays",
                                          relay_info, "--password_iterations", "1000",
                                          "--session_ttl", "6"], log("tracker"))
        procs.append(tracker)
        check(tracker.line(30).startswith("tracker 1 listening"), "the tracker starts")

        # The capture of everything relay 1 sends and receives.
        pcap = os.path.join(work, "relay1.pcap")
        capture = subprocess.Popen(["ip", "netns", "exec", ns["relay1"], "tcpdump", "-i", "eth0",
                                    "-w", pcap, "-U", "-B", "32768", "tcp"],
                                   stdout=subprocess.DEVNULL, stderr=open(log("tcpdump"), "ab"))
        relays = {}
        for n in (1, 2):
            name = "relay%d" % n
            relays[name] = Process(ns[name], [relay_bin, relay_info, str(n), "--trackers",
                                              tracker_info, "--state_dir",
                                              os.path.join(work, name)], log(name))
            procs.append(relays[name])
            check(relays[name].line(30).startswith("relay %d listening" % n),
                  "relay %d starts" % n)
        eventually("tcpdump listens", lambda: "listening on" in open(log("tcpdump")).read(),
                   timeout=20, every=0.1)

        def client(name):
            p = Process(ns[name], [client_bin, "%s:5000" % addr[name], tracker_info,
                                   "--state_dir", os.path.join(work, "client-" + name)],
                        log(name))
            procs.append(p)
            check(p.run("create_user %s pw-%s" % (name, name)).startswith("user %s created" % name),
                  "%s signs up" % name)
            check(p.run("login %s pw-%s" % (name, name)).startswith("logged in as"),
                  "%s logs in" % name)
            return p

        members = {name: client(name) for name in ("carol", "alice", "bob")}
        alice, bob, carol = members["alice"], members["bob"], members["carol"]

        # 1. What each shell says of its reachability.
        def reachability(who):
            def probe():
                who.run_all("show_downloads", timeout=5)  # the shell prints notices as they come
                said = [n for n in who.notices if "reachable" in n]
                return (bool(said), said)
            return probe

        for name in members:
            eventually("%s's shell says whether it is reachable" % name,
                       reachability(members[name]), timeout=30)
        relay1 = "%s:7000" % addr["relay1"]
        check(any(n.startswith("notice: reachable at %s:5000" % addr["carol"])
                  for n in carol.notices), "carol is reachable (%s)" % carol.notices)
        for name in ("alice", "bob"):
            said = [n for n in members[name].notices if "reachable" in n]
            check(any(n.startswith("notice: not reachable from outside at %s:5000" % addr[name])
                      and n.endswith("serving through relay " + relay1) for n in said),
                  "%s serves through relay 1 (%s)" % (name, said))

        check(alice.run("create_group g").startswith("group g created"), "alice makes group g")
        for who in (bob, carol):
            who.run("join_group g")
        for name in ("bob", "carol"):
            check(alice.run("accept_request g " + name) == "%s is now a member of g" % name,
                  "%s joins g" % name)

        def share(who, name, size, seed):
            data = random.Random(seed).randbytes(size)
            path = os.path.join(work, name)
            with open(path, "wb") as f:
                f.write(data)
            check(who.run("upload_file %s g" % path).startswith("shared"), "%s is shared" % name)
            return data

        def download(name, data, what, timeout=60):
            out = os.path.join(work, "bob-" + name)
            check(bob.run("download_file g %s %s" % (name, out)).startswith("downloading"),
                  "bob starts downloading " + name)
            return eventually(what, lambda: (os.path.exists(out) and hashlib.sha1(
                open(out, "rb").read()).digest() == hashlib.sha1(data).digest(), bob.notices),
                timeout=timeout)

        # 2. Through the relay, and nothing in clear on its links.
        secret = share(alice, "secret.bin", 4 << 20, 1)
        download("secret.bin", secret, "bob downloads alice's file through the relay, "
                 "byte for byte")
        bob_log = open(os.path.join(work, "client-bob", "client.log")).read()
        check("reaching alice at %s:5000 through relay %s" % (addr["alice"], relay1) in bob_log,
              "bob reached alice through relay 1")
        # tcpdump writes each packet as it takes it (-U); on a busy machine
        # it takes a moment to catch up.
        eventually("the capture holds the relayed traffic",
                   lambda: (os.path.getsize(pcap) > len(secret), os.path.getsize(pcap)),
                   timeout=20)
        captured = open(pcap, "rb").read()
        run = secret[1 << 20:(1 << 20) + 32]
        sha1 = hashlib.sha1(secret).hexdigest()
        claims = ("gs-ticket-v2\nbob\ng\n%s\n" % sha1).encode()
        ticket_start = base64.urlsafe_b64encode(claims[:len(claims) // 3 * 3]).rstrip(b"=")
        check(b"CONNECT " in captured, "the capture holds the relay's plaintext session requests")
        check(run not in captured, "no 32-byte run of the file in the capture")
        check(ticket_start not in captured and sha1.encode() not in captured,
              "neither the ticket nor the file's hash in the capture")

        # 3. carol is reached directly.
        open_file = share(carol, "open.bin", 1 << 20, 2)
        download("open.bin", open_file, "bob downloads carol's file")
        bob_log = open(os.path.join(work, "client-bob", "client.log")).read()
        check("reaching carol" not in bob_log, "bob reached carol directly")

        # 4. Relay 1 dies in the middle of a download.
        said = alice.run("set upload_rate 2048")
        check("2048" in said, "alice sends at 2 MiB/s (%s)" % said)
        big = share(alice, "big.bin", 16 << 20, 3)
        out = os.path.join(work, "bob-big.bin")
        check(bob.run("download_file g big.bin " + out).startswith("downloading"),
              "bob starts the big download")
        eventually("the download is under way",
                   lambda: (any("big.bin" in l and "%" in l and not l.endswith(" 0%")
                                for l in bob.run_all("show_downloads", timeout=5)), ""),
                   timeout=30)
        relays["relay1"].proc.send_signal(signal.SIGKILL)
        relay2 = "serving through relay %s:7000" % addr["relay2"]

        def at_relay2():
            alice.run_all("show_downloads", timeout=5)  # notices come with an answer
            return (any(relay2 in n for n in alice.notices), alice.notices)

        eventually("alice waits at relay 2", at_relay2, timeout=60)
        eventually("bob's download completes byte for byte after relay 1 died",
                   lambda: (os.path.exists(out) and hashlib.sha1(open(out, "rb").read()).digest()
                            == hashlib.sha1(big).digest(), bob.notices), timeout=120)
    finally:
        if capture is not None:
            capture.terminate()
        kill_all(procs)
        net.remove()
        if failures:
            print("logs kept in " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
