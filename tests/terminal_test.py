#!/usr/bin/python3
"""The client's shell in a real terminal (tmux): Tab completes a command's
name, a path with blanks (in quotes) and a group id, passwords never reach the history file, a download that finishes
while a command is half typed is announced above the prompt, the typed text
kept, and Ctrl-C clears the line without ending the client.

usage: terminal_test.py TRACKER_BIN CLIENT_BIN
"""

import os
import subprocess
import sys
import tempfile
import time

failures = []


def check(condition, what):
    print(("ok: " if condition else "FAILED: ") + what)
    if not condition:
        failures.append(what)


def wait_until(predicate, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Pane:
    """A client running in its own tmux server and window."""

    def __init__(self, socket, command, env):
        self.socket = socket
        subprocess.run(["tmux", "-S", socket, "new-session", "-d", "-x", "150", "-y", "30",
                        " ".join(command)], check=True, env=env)
        # The window stays once the client ended, to see what it left.
        subprocess.run(["tmux", "-S", socket, "set-option", "-g", "remain-on-exit", "on"],
                       check=True)

    def keys(self, *keys):
        subprocess.run(["tmux", "-S", self.socket, "send-keys"] + list(keys), check=True)

    def text(self):
        return subprocess.run(["tmux", "-S", self.socket, "capture-pane", "-p", "-S", "-100"],
                              check=True, capture_output=True, text=True).stdout

    def dead(self):
        return subprocess.run(["tmux", "-S", self.socket, "display-message", "-p",
                               "#{pane_dead}"], capture_output=True, text=True).stdout.strip() == "1"

    def last_line(self):
        lines = self.text().rstrip().splitlines()
        return lines[-1] if lines else ""

    def close(self):
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


def piped_client(client_bin, info, tmp, name, flags=()):
    return subprocess.Popen(
        [client_bin, "127.0.0.1:0", info, "--state_dir", os.path.join(tmp, name)] + list(flags),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=dict(os.environ, HOME=tmp))


def member(pane, client_bin, info, tmp, name, flags=()):
    """A piped client of a new user `name` whom eve (in `pane`) lets into g."""
    client = piped_client(client_bin, info, tmp, name, flags)
    check(run(client, "create_user %s pw%s" % (name, name)).startswith("user %s created" % name),
          name)
    check(run(client, "login %s pw%s" % (name, name)).startswith("logged in as " + name),
          name + " logs in")
    check(run(client, "join_group g").startswith("asked to join g"), name + " asks to join")
    pane.keys("accept_request g " + name, "Enter")
    check(wait_until(lambda: "%s is now a member of g" % name in pane.text()),
          "eve lets %s in" % name)
    return client


def share(client, tmp, name, size):
    """`client` shares a new file of `size` random bytes, `name`, in g."""
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    check(run(client, "upload_file %s g" % path).startswith("shared " + name),
          "a member shares " + name)


def run(client, command):
    """The first line of the answer to `command`; notices, which come when
    they come, are skipped."""
    client.stdin.write(command + "\n")
    client.stdin.flush()
    while True:
        line = client.stdout.readline()
        if not line.startswith("notice: "):
            return line.strip()


def main():
    tracker_bin, client_bin = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        bind = os.path.join(tmp, "bind.txt")
        with open(bind, "w") as f:
            f.write("127.0.0.1:0\n")
        port_file = os.path.join(tmp, "tracker.port")
        tracker = subprocess.Popen(
            [tracker_bin, bind, "1", "--db", os.path.join(tmp, "t.db"), "--port_file", port_file,
             "--password_iterations", "1000"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pane = None
        sharer = None
        others = []
        try:
            check(wait_until(lambda: os.path.exists(port_file) and
                             open(port_file).read().strip()), "the tracker starts")
            info = os.path.join(tmp, "tracker_info.txt")
            with open(info, "w") as f:
                f.write("127.0.0.1:%s\n" % open(port_file).read().strip())
            env = dict(os.environ, HOME=tmp, TERM="xterm")
            pane = Pane(os.path.join(tmp, "tmux.sock"),
                        [client_bin, "127.0.0.1:0", info, "--state_dir",
                         os.path.join(tmp, "eve")], env)
            check(wait_until(lambda: "groupshare>" in pane.text()), "the prompt shows")
            for line in ["create_user eve pweve", "login eve wrong", "login eve pweve",
                         "create_group g"]:
                pane.keys(line, "Enter")
            check(wait_until(lambda: "group g created" in pane.text()), "commands run")

            pane.keys("show_d", "Tab")
            check(wait_until(lambda: "groupshare> show_downloads" in pane.text()),
                  "Tab completes show_d to show_downloads")
            pane.keys("Enter")
            check(wait_until(lambda: "no downloads yet" in pane.text()), "the completed command runs")

            # A path with blanks is completed in quotes the shell reads back.
            folder = os.path.join(tmp, "my files")
            os.mkdir(folder)
            with open(os.path.join(folder, "clip one.bin"), "wb") as f:
                f.write(os.urandom(4096))
            pane.keys("upload_file %s/my" % tmp, "Tab")
            check(wait_until(lambda: pane.last_line().endswith('upload_file "%s/my files/' % tmp)),
                  "Tab completes a folder with a blank, quoted")
            pane.keys("cl", "Tab")
            check(wait_until(lambda: pane.last_line().endswith(
                'upload_file "%s/my files/clip one.bin"' % tmp)),
                "Tab completes the file and closes the quote")
            pane.keys("g", "Enter")
            check(wait_until(lambda: "shared clip one.bin in g" in pane.text()),
                  "the completed path uploads")
            pane.keys("upload_file %s/my\\ files/cl" % tmp, "Tab")
            check(wait_until(lambda: pane.last_line().endswith(
                'upload_file "%s/my files/clip one.bin"' % tmp)),
                "a path typed with backslashes is completed too: %s" % pane.last_line())
            pane.keys("C-u")
            # A large file hashes in the background, its progress in the
            # prompt; other commands run meanwhile, and it is announced when
            # shared. stop_share cancels one being hashed.
            big = os.path.join(tmp, "big.bin")
            with open(big, "wb") as f:
                f.truncate(2 << 30)  # sparse: a few seconds to read
            pane.keys("upload_file %s g" % big, "Enter")
            check(wait_until(lambda: "hashing big.bin (2.0 GiB) for g in the background" in
                             pane.text()), "upload_file of a large file answers at once")
            check(wait_until(lambda: pane.last_line().startswith("hashing big.bin [")),
                  "the prompt shows the hashing: %r" % pane.last_line())
            before = pane.text().count("no downloads yet")
            pane.keys("show_downloads", "Enter")
            check(wait_until(lambda: pane.text().count("no downloads yet") > before),
                  "a command typed meanwhile runs")
            check(pane.last_line().startswith("hashing big.bin ["),
                  "while the file still hashes: %r" % pane.last_line())
            check(wait_until(lambda: "notice: shared big.bin in g (2.0 GiB" in pane.text(), 120),
                  "the share is announced once hashed")
            huge = os.path.join(tmp, "huge.bin")
            with open(huge, "wb") as f:
                f.truncate(8 << 30)
            pane.keys("upload_file %s g" % huge, "Enter")
            check(wait_until(lambda: pane.last_line().startswith("hashing huge.bin [")),
                  "the second one hashes")
            pane.keys("stop_share g huge.bin", "Enter")
            check(wait_until(lambda: "stopped sharing huge.bin in g" in pane.text()),
                  "stop_share cancels the hashing")
            check(wait_until(lambda: pane.last_line() == "groupshare>"),
                  "the prompt is plain again: %r" % pane.last_line())
            pane.keys("list_files g", "Enter")
            check(wait_until(lambda: "big.bin size=" in pane.text()), "big.bin is listed")
            check("huge.bin size=" not in pane.text() and "shared huge.bin" not in pane.text(),
                  "huge.bin was never shared")

            # Group ids come from the last list_groups.
            pane.keys("create_group movies", "Enter", "list_groups", "Enter")
            check(wait_until(lambda: "movies owner=eve" in pane.text()), "groups listed")
            pane.keys("list_files mo", "Tab")
            check(wait_until(lambda: pane.last_line().endswith("groupshare> list_files movies")),
                  "Tab completes a group id")
            pane.keys("Enter")
            check(wait_until(lambda: "no files in movies yet" in pane.text()),
                  "the completed group id runs")

            # A member shares a file; eve starts its download, then types
            # half a command while it finishes.
            sharer = member(pane, client_bin, info, tmp, "sam")
            share(sharer, tmp, "film.bin", 1 << 20)
            pane.keys("download_file g film.bin %s" % os.path.join(tmp, "out.bin"), "Enter")
            pane.keys("list_gr")
            check(wait_until(lambda: "notice: download of film.bin from g complete" in
                             pane.text()), "the finished download is announced")
            lines = [l for l in pane.text().splitlines() if l.strip()]
            check(lines[-1].rstrip().endswith("groupshare> list_gr"),
                  "below the notice, the prompt and the half-typed command: %r" % lines[-1])
            pane.keys("oups", "Enter")
            check(wait_until(lambda: "owner=eve" in pane.text()), "the kept text runs as typed")

            # Ctrl-C clears the half-typed line, as in bash, and ends nothing.
            pane.keys("list_gro")
            check(wait_until(lambda: pane.text().rstrip().endswith("groupshare> list_gro")),
                  "a half-typed command")
            pane.keys("C-c")
            check(wait_until(lambda: "^C" in pane.text()), "Ctrl-C is shown")
            pane.keys("help", "Enter")
            check(wait_until(lambda: "log out and leave the shell" in pane.text()),
                  "after Ctrl-C the client still runs, and the cleared line was not kept")
            check("list_grohelp" not in pane.text(), "the line was cleared")

            # quit during a download leaves nothing of the progress prompt.
            slow = member(pane, client_bin, info, tmp, "sue", ["--max_upload_rate", "256"])
            others.append(slow)
            share(slow, tmp, "slow.bin", 8 << 20)
            pane.keys("download_file g slow.bin %s" % os.path.join(tmp, "slow-out.bin"), "Enter")
            check(wait_until(lambda: pane.last_line().startswith("slow.bin [")),
                  "the download's progress is in the prompt: %r" % pane.last_line())
            pane.keys("quit", "Enter")
            check(wait_until(pane.dead), "the client ends")
            after = pane.text().split("| groupshare> quit")[-1]
            check("groupshare>" not in after and "slow.bin [" not in after and "MiB" not in after,
                  "nothing of the prompt is left after quit: %r" % after)
            history = os.path.join(tmp, "eve", "history")
            check(wait_until(lambda: os.path.exists(history)), "the history is written")
            text = open(history).read()
            check("pweve" not in text and "wrong" not in text,
                  "no password in the history file: %r" % text)
            check("login eve ********" in text and "create_user eve ********" in text,
                  "the commands are kept, masked")
        finally:
            if pane:
                pane.close()
            for client in [sharer] + others:
                if client:
                    client.stdin.close()
                    client.wait(timeout=20)
            tracker.stdin.write(b"quit\n")
            tracker.stdin.flush()
            tracker.wait(timeout=20)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
