#!/usr/bin/python3
"""Reference run for the download benchmark: the same download with libtorrent
(Debian's python3-libtorrent) on loopback, so that groupshare's numbers can be
given as a ratio to it, measured on the same machine in the same invocation.

N seeder processes serve FILE (512 KiB pieces, like groupshare); one
downloader session connects to all of them and fetches the file into a
temporary folder. Prints one line:
  libtorrent size_mib=1024 seeders=4 seconds=3.80 mib_per_s=269.5 peak_rss_mib=40.1

usage: libtorrent_reference.py FILE SEEDERS
"""

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import libtorrent as lt

PIECE = 512 * 1024


def session():
    s = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "allow_multiple_connections_per_ip": True,
        # TCP only, as groupshare's gRPC; uTP over loopback is far slower.
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "alert_mask": 0,
    })
    return s


def seeder(torrent_path, save_path):
    s = session()
    info = lt.torrent_info(torrent_path)
    h = s.add_torrent({"ti": info, "save_path": save_path,
                       "flags": lt.torrent_flags.seed_mode})
    print(s.listen_port(), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    del h


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--seed":
        seeder(sys.argv[2], sys.argv[3])
        return 0
    path, count = sys.argv[1], int(sys.argv[2])
    work = tempfile.mkdtemp(prefix="lt-reference-")
    procs = []
    try:
        fs = lt.file_storage()
        lt.add_files(fs, path)
        t = lt.create_torrent(fs, PIECE)
        lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(path)))
        torrent = os.path.join(work, "file.torrent")
        with open(torrent, "wb") as f:
            f.write(lt.bencode(t.generate()))
        ports = []
        for _ in range(count):
            p = subprocess.Popen([sys.executable, __file__, "--seed", torrent,
                                  os.path.dirname(os.path.abspath(path))],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(p)
            ports.append(int(p.stdout.readline()))
        s = session()
        out = os.path.join(work, "out")
        os.mkdir(out)
        start = time.time()
        h = s.add_torrent({"ti": lt.torrent_info(torrent), "save_path": out})
        for port in ports:
            h.connect_peer(("127.0.0.1", port))
        deadline = start + 600
        while not h.status().is_seeding:
            if time.time() > deadline:
                print("libtorrent: timed out", file=sys.stderr)
                return 1
            time.sleep(0.01)
        seconds = time.time() - start
        size_mib = os.path.getsize(path) / (1 << 20)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("libtorrent size_mib=%d seeders=%d seconds=%.2f mib_per_s=%.1f peak_rss_mib=%.1f"
              % (size_mib, count, seconds, size_mib / seconds, rss))
        return 0
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
