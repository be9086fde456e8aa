#!/usr/bin/python3
"""docker-compose.yml, checked without a Docker engine.

1. `docker-compose config -q` accepts the file.
2. The very commands its services run (same binaries, flags and script
   files) start here, with a loopback address of their own in place of each
   service name and folders in place of the volumes; the PostgreSQL service
   is a local PostgreSQL server on its address. Through the clients' stdin,
   as `docker compose attach` would, alice shares the sample file and bob
   downloads it; the SHA1 must match. carol, whom nobody reaches (it
   listens on its own loopback only), serves through the relay, and bob
   downloads its file through it. The first tracker stops and the
   clients carry on at the second. Then SIGTERM stops every service cleanly
   (exit 0), and the tracker sees a stopped client go offline.

usage: compose_test.py <repository> <bin folder>
"""

import hashlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

failures = []
passes = []


def check(condition, what):
    print(("ok: " if condition else "FAILED: ") + what, flush=True)
    (passes if condition else failures).append(what)


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, name, argv, env):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.buffer = b""

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(self, pattern, timeout=30):
        """Reads output lines until one matches; returns it (None on timeout)."""
        deadline = time.time() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode(errors="replace")
                print("  %s| %s" % (self.name, text), flush=True)
                if re.search(pattern, text):
                    return text
            left = deadline - time.time()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.buffer += chunk

    def run(self, command, pattern, timeout=30):
        self.send(command)
        return self.wait_for(pattern, timeout)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def completed(client, name, timeout=60):
    """Polls show_downloads until `name` of the movies group is complete."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        client.send("show_downloads")
        if client.wait_for(r"^\[C\] \[movies\] " + re.escape(name), timeout=1) is not None:
            return True
    return False


def main():
    repo, bin_dir = sys.argv[1], sys.argv[2]
    compose_file = os.path.join(repo, "docker-compose.yml")
    config = subprocess.run(["docker-compose", "-f", compose_file, "config", "-q"],
                            capture_output=True, text=True)
    check(config.returncode == 0, "docker-compose config -q: " + config.stderr.strip())
    with open(compose_file) as f:
        services = yaml.safe_load(f)["services"]

    with tempfile.TemporaryDirectory() as tmp:
        # Each service name becomes a loopback address of its own.
        hosts = {name: "127.0.0.%d" % (10 + i) for i, name in enumerate(services)}
        ports = {}

        def address(match):
            name, port = match.group(1), match.group(2)
            if name not in hosts:
                return match.group(0)
            key = (name, port)
            if key not in ports:
                ports[key] = free_port(hosts[name])
            return "%s:%d" % (hosts[name], ports[key])

        service_address = re.compile(r"\b([a-z][a-z0-9]*):(\d+)\b")
        # The image's /etc/groupshare is the repository's deploy/, with the
        # tracker_info rewritten the same way.
        etc = os.path.join(tmp, "etc")
        os.makedirs(os.path.join(etc, "scripts"))
        for listed in ("tracker_info.txt", "relay_info.txt"):
            with open(os.path.join(repo, "deploy", listed)) as f:
                info = service_address.sub(address, f.read())
            with open(os.path.join(etc, listed), "w") as f:
                f.write(info)
        for script in os.listdir(os.path.join(repo, "deploy", "scripts")):
            os.symlink(os.path.join(repo, "deploy", "scripts", script),
                       os.path.join(etc, "scripts", script))

        started = {}
        mounts_of = {}

        def host_path(service, path):
            """Where a container path of `service` is on this machine."""
            for target, source in mounts_of[service].items():
                if path == target or path.startswith(target + "/"):
                    return source + path[len(target):]
            return path

        postgres_dir = os.path.join(tmp, "postgres")
        os.chmod(tmp, 0o755)
        try:
            # The database service: a local server where the trackers' --db
            # points, with the database POSTGRES_DB names.
            pg = services["postgres"]
            db_address = service_address.sub(address, "postgres:5432")
            host, port = db_address.split(":")
            conninfo = subprocess.run(
                [os.path.join(repo, "tests", "testing", "postgres.sh"), "start", postgres_dir,
                 host, port], check=True, capture_output=True, text=True, timeout=120).stdout
            created = subprocess.run(
                ["psql", conninfo.strip(), "-qc",
                 "CREATE DATABASE %s" % pg["environment"]["POSTGRES_DB"]],
                capture_output=True, text=True, timeout=60)
            check(created.returncode == 0, "a PostgreSQL server stands in for the postgres "
                  "service " + created.stderr.strip())
            for name in ["tracker", "tracker2", "relay", "alice", "bob", "carol"]:
                spec = services[name]
                data = os.path.join(tmp, name + "-data")
                os.makedirs(data)
                mounts = {"/data": data, "/etc/groupshare": etc}
                for volume in spec.get("volumes", []):
                    source, target = volume.split(":")[:2]
                    if source.startswith("./"):
                        mounts[target] = os.path.join(repo, source[2:])
                mounts_of[name] = mounts
                argv = [host_path(name, service_address.sub(address, arg))
                        for arg in spec["command"]]
                argv[0] = os.path.join(bin_dir, argv[0])
                print("$ " + " ".join(argv), flush=True)
                started[name] = Service(name, argv, dict(os.environ, HOME=data))
                if name.startswith("tracker"):
                    check(started[name].wait_for("listening on .* \\(database PostgreSQL\\)")
                          is not None, name + " starts as its service does, on PostgreSQL")
                if name == "relay":
                    check(started[name].wait_for("^relay 1 listening") is not None,
                          "the relay starts")
            alice, bob = started["alice"], started["bob"]
            for name in ["alice", "bob", "carol"]:
                check(started[name].wait_for("logged in as " + name) is not None,
                      name + " logs in from its script")
            # As a user in the container would type it: /files is a volume.
            sample = host_path("alice", "/files/sample.txt")
            check(alice.run("create_group movies", "group movies created") is not None,
                  "alice creates a group")
            check(alice.run("upload_file %s movies" % sample, "^shared sample.txt") is not None,
                  "alice shares the sample")
            check(bob.run("join_group movies", "asked to join") is not None, "bob asks")
            check(alice.run("accept_request movies bob", "bob is now a member") is not None,
                  "alice accepts bob")
            dest = host_path("bob", "/data")
            check(bob.run("download_file movies sample.txt " + dest, "^downloading") is not None,
                  "bob starts the download")
            check(completed(bob, "sample.txt"), "bob's download completes")
            with open(sample, "rb") as a, open(os.path.join(dest, "sample.txt"), "rb") as b:
                check(hashlib.sha1(a.read()).digest() == hashlib.sha1(b.read()).digest(),
                      "the download's SHA1 matches")
            check(bob.run("list_files movies", "peers=2") is not None, "two peers share it")
            carol = started["carol"]
            check(carol.run("show_downloads", "serving through relay") is not None,
                  "carol, whom nobody reaches, serves through the relay")
            check(carol.run("join_group movies", "asked to join") is not None, "carol asks")
            check(alice.run("accept_request movies carol", "carol is now a member") is not None,
                  "alice accepts carol")
            own = os.path.join(tmp, "carol-data", "notes.txt")
            with open(own, "w") as f:
                f.write("carol's notes\n" * 5000)
            check(carol.run("upload_file %s movies" % own, "^shared notes.txt") is not None,
                  "carol shares a file")
            check(bob.run("download_file movies notes.txt " + dest, "^downloading") is not None,
                  "bob starts downloading carol's file")
            check(completed(bob, "notes.txt") and open(own, "rb").read() ==
                  open(os.path.join(dest, "notes.txt"), "rb").read(),
                  "bob downloads carol's file through the relay, byte for byte")
            with open(os.path.join(dest, "client.log")) as f:
                check("through relay" in f.read(), "bob reached carol through the relay")
            check(started["tracker"].stop() == 0, "SIGTERM stops the first tracker cleanly")
            check(bob.run("list_files movies", "peers=2") is not None,
                  "bob carries on at the second tracker, still logged in")
            check(alice.stop() == 0, "SIGTERM stops alice cleanly")
            check(bob.run("list_files movies", "peers=1") is not None,
                  "the tracker marks the stopped client offline at once")
            for name in ["carol", "bob", "relay", "tracker2"]:
                check(started[name].stop() == 0, "SIGTERM stops %s cleanly" % name)
        finally:
            for service in started.values():
                if service.proc.poll() is None:
                    service.proc.kill()
                    service.proc.wait()
            subprocess.run([os.path.join(repo, "tests", "testing", "postgres.sh"), "stop",
                            postgres_dir], capture_output=True, timeout=60)
    print("%d passed, %d failed" % (len(passes), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
