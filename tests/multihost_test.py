#!/usr/bin/python3
"""Trackers on hosts of their own over PostgreSQL with a streaming standby.

The test makes its own hosts: network namespaces joined by veth pairs to two
bridges, a front one (clients and trackers) and a back one (trackers and
the databases), each host with an address of its own in 127.0.0.0/8 (routed
between namespaces with route_localnet). PostgreSQL's primary and its
synchronous standby run in namespaces of their own, a tracker in each of two
more, and the clients in another. Then:

  1. tracker 1 is killed with SIGKILL: the clients fail over to tracker 2,
     their sessions intact, every acknowledged write there, and a download
     between them works;
  2. the primary is killed and the standby promoted: the trackers find the
     new primary by themselves (multi-host conninfo, read-write), nothing
     acknowledged is lost, and writes go on;
  3. tracker 2's host is cut off from the databases: it answers UNAVAILABLE
     saying so, never a wrong answer.

Everything it made is removed at the end. Needs root (namespaces) and
PostgreSQL (scripts/setup.sh installs it).

usage: multihost_test.py <tracker binary> <client binary>
"""

import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "testing"))
from netns import Network, Process, kill_all, check, eventually, failures, sh  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
POSTGRES = os.path.join(HERE, "testing", "postgres.sh")

def main():
    tracker_bin, client_bin = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("FAILED: this test makes network namespaces and needs root", flush=True)
        return 1
    work = tempfile.mkdtemp(prefix="groupshare-multihost-")
    os.chmod(work, 0o755)
    net = Network()
    procs = []
    pg = {}
    try:
        front = {"t1": "127.77.0.11", "t2": "127.77.0.12", "clients": "127.77.0.31"}
        back = {"t1": "127.78.0.11", "t2": "127.78.0.12", "db1": "127.78.0.21",
                "db2": "127.78.0.22"}
        ns = {h: net.host(h, {"front": front[h], "back": back[h]}) for h in ("t1", "t2")}
        ns["clients"] = net.host("clients", {"front": front["clients"]})
        for h in ("db1", "db2"):
            ns[h] = net.host(h, {"back": back[h]})

        def postgres(*args, host):
            env = dict(os.environ, GS_NETNS=ns[host])
            return subprocess.run([POSTGRES] + list(args), check=True, capture_output=True,
                                  text=True, env=env, timeout=120).stdout.strip()

        pg["db1"] = os.path.join(work, "db1")
        pg["db2"] = os.path.join(work, "db2")
        admin = postgres("primary", pg["db1"], back["db1"], "5432", host="db1")
        subprocess.run(["ip", "netns", "exec", ns["t1"], "psql", admin, "-qc",
                        "CREATE DATABASE groupshare"], check=True, capture_output=True,
                       timeout=60)
        postgres("standby", pg["db2"], back["db2"], "5432", back["db1"], "5432", host="db2")
        postgres("require-sync", pg["db1"], host="db1")

        def sync_state():
            state = subprocess.run(["ip", "netns", "exec", ns["t1"], "psql", admin, "-tAc",
                                    "SELECT sync_state FROM pg_stat_replication"],
                                   capture_output=True, text=True, timeout=30).stdout.strip()
            return (state == "sync", state)

        eventually("the standby streams synchronously", sync_state, timeout=30)

        conninfo = ("host=%s,%s port=5432 user=groupshare dbname=groupshare "
                    "target_session_attrs=read-write connect_timeout=2" % (back["db1"], back["db2"]))
        ports = {}

        def start_tracker(host):
            bind = os.path.join(work, host + "-bind.txt")
            port_file = os.path.join(work, host + ".port")
            with open(bind, "w") as f:
                f.write("%s:%d\n" % (front[host], ports.get(host, 0)))
            if os.path.exists(port_file):
                os.remove(port_file)
            p = Process(ns[host], [tracker_bin, bind, "1", "--db", conninfo,
                                   "--password_iterations", "1000", "--session_ttl", "6",
                                   "--port_file", port_file], os.path.join(work, host + ".log"))
            procs.append(p)
            deadline = time.time() + 30
            while time.time() < deadline and not (os.path.exists(port_file) and
                                                   open(port_file).read().strip()):
                time.sleep(0.05)  # the port file is the tracker's only sign of life
            ports[host] = int(open(port_file).read())
            return p

        trackers = {h: start_tracker(h) for h in ("t1", "t2")}
        both = os.path.join(work, "tracker_info.txt")
        with open(both, "w") as f:
            f.write("%s:%d\n%s:%d\n" % (front["t1"], ports["t1"], front["t2"], ports["t2"]))

        def client(name, tracker_info=both):
            state = os.path.join(work, "client-" + name)
            p = Process(ns["clients"], [client_bin, front["clients"] + ":0", tracker_info,
                                        "--state_dir", state],
                        os.path.join(work, name + ".log"))
            procs.append(p)
            return p

        alice, bob = client("alice"), client("bob")
        for who, name in ((alice, "alice"), (bob, "bob")):
            check(who.run("create_user %s pw-%s" % (name, name)).startswith("user %s created" % name),
                  "%s created" % name)
            check(who.run("login %s pw-%s" % (name, name)).startswith("logged in as"),
                  "%s logged in" % name)
        check(alice.run("create_group g").startswith("group g created"), "group g created")
        bob.run("join_group g")
        check(alice.run("accept_request g bob") == "bob is now a member of g", "bob accepted")
        data = random.Random(7).randbytes(3 << 20)
        path = os.path.join(work, "movie.bin")
        with open(path, "wb") as f:
            f.write(data)
        check(alice.run("upload_file %s g" % path).startswith("shared"), "alice shares a file")

        acknowledged = []

        def write_groups(prefix, count):
            for i in range(count):
                gid = "%s%d" % (prefix, i)
                if alice.run("create_group " + gid).startswith("group %s created" % gid):
                    acknowledged.append(gid)

        def groups_present():
            out = alice.run_all("list_groups")
            have = {line.split(" ")[0] for line in out}
            missing = [g for g in acknowledged if g not in have]
            return (not missing and len(out) > 0, missing or out[:2])

        write_groups("before-kill-", 10)
        check(len(acknowledged) == 10, "10 writes acknowledged on tracker 1")

        # 1. Tracker 1 dies.
        trackers["t1"].kill()
        eventually("after tracker 1's SIGKILL, alice's session goes on at tracker 2",
                   lambda: (alice.run_all("list_groups")[:1] == ["before-kill-0 owner=alice "
                                                                  "members=1 you=owner"], ""))
        eventually("every acknowledged write is there", groups_present)
        write_groups("on-t2-", 5)
        check(len(acknowledged) == 15, "writes go on at tracker 2")
        out = os.path.join(work, "out.bin")
        check(bob.run("download_file g movie.bin " + out).startswith("downloading"),
              "bob downloads through tracker 2")
        eventually("bob's download completes byte for byte",
                   lambda: (os.path.exists(out) and
                            hashlib.sha1(open(out, "rb").read()).digest() ==
                            hashlib.sha1(data).digest(), bob.notices))
        check(not any("session" in n for n in alice.notices + bob.notices),
              "no session ended (%s)" % (alice.notices + bob.notices))
        trackers["t1"] = start_tracker("t1")

        # 2. The primary dies; the standby is promoted.
        postgres("kill", pg["db1"], host="db1")
        postgres("promote", pg["db2"], host="db2")
        eventually("after the promotion, the trackers write to the new primary",
                   lambda: (alice.run("create_group after-promotion").startswith(
                       "group after-promotion created"), alice.notices))
        acknowledged.append("after-promotion")
        eventually("nothing acknowledged was lost in the promotion", groups_present)
        write_groups("on-new-primary-", 5)
        check(len(acknowledged) == 21, "writes go on at the new primary")
        check(bob.run("list_files g").startswith("movie.bin size=3145728"),
              "bob still lists the files")

        # 3. Tracker 2's host loses the databases.
        net.cut("t2", "back")
        t2_only = os.path.join(work, "t2_only.txt")
        with open(t2_only, "w") as f:
            f.write("%s:%d\n" % (front["t2"], ports["t2"]))
        probe = client("probe", t2_only)
        answers = []

        def cut_off_answers():
            for command in ("login alice pw-alice", "create_user mallory pw-mallory"):
                answers.append(probe.run(command, timeout=30))
            return (all(a.startswith("error: no tracker can serve this now (tried %s:%d): the "
                                     "tracker's database is out of reach" % (front["t2"], ports["t2"]))
                        for a in answers[-2:]), answers[-2:])

        eventually("tracker 2, cut off from the databases, says its database is out of reach",
                   cut_off_answers, timeout=60, every=1)
        check(all(a.startswith("error:") for a in answers),
              "and never a wrong answer (%s)" % answers)
        check(alice.run_all("list_groups")[:1] == ["after-promotion owner=alice members=1 you=owner"],
              "tracker 1 still serves alice")
    finally:
        kill_all(procs)
        for d in pg.values():
            subprocess.run([POSTGRES, "stop", d], capture_output=True, timeout=60)
        net.remove()
        if failures:
            for name in sorted(os.listdir(work)):
                if name.endswith(".log"):
                    print("--- %s (last lines)" % name)
                    with open(os.path.join(work, name), errors="replace") as f:
                        print("".join(f.readlines()[-15:]))
        shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
