#!/usr/bin/python3
"""Reference run for the flash-crowd benchmark: the same crowd with libtorrent
(Debian's python3-libtorrent), tuned as in bench/libtorrent_reference.py and
with every session's upload capped at R. libtorrent exempts local peers
from its rate limits unless their addresses are in the global peer class,
so every address is put there.

One seeder session and N downloader sessions in this process, each on its
own loopback port; every downloader is told of the seeder and of every
other downloader (as a tracker would), all at once. Prints one line:
  libtorrent size_mib=64 downloaders=8 rate_mib_s=16 slowest_s=6.1 f_over_r_s=4.0 ratio=1.52

usage: libtorrent_flash_crowd.py FILE N RATE_MIB_PER_S
"""

import os
import shutil
import sys
import tempfile
import time

import libtorrent as lt

from libtorrent_reference import PIECE, session


def capped_session(rate):
    s = session()
    s.apply_settings({"upload_rate_limit": rate})
    everyone = lt.ip_filter()
    everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    s.set_peer_class_filter(everyone)
    return s


def main():
    path, count, rate_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rate = rate_mib << 20
    work = tempfile.mkdtemp(prefix="lt-crowd-")
    try:
        fs = lt.file_storage()
        lt.add_files(fs, path)
        t = lt.create_torrent(fs, PIECE)
        lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(path)))
        info = lt.torrent_info(lt.bencode(t.generate()))
        seeder = capped_session(rate)
        seeder.add_torrent({"ti": info, "save_path": os.path.dirname(os.path.abspath(path)),
                            "flags": lt.torrent_flags.seed_mode})
        sessions, handles = [], []
        for i in range(count):
            out = os.path.join(work, "d%d" % i)
            os.mkdir(out)
            sessions.append(capped_session(rate))
        ports = [s.listen_port() for s in sessions]
        start = time.time()
        for s in sessions:
            handles.append(s.add_torrent({"ti": lt.torrent_info(info),
                                          "save_path": os.path.join(work, "d%d" % len(handles))}))
        for i, h in enumerate(handles):
            h.connect_peer(("127.0.0.1", seeder.listen_port()))
            for j, port in enumerate(ports):
                if j != i:
                    h.connect_peer(("127.0.0.1", port))
        finished = [None] * count
        deadline = start + 600
        while None in finished:
            if time.time() > deadline:
                print("libtorrent: timed out", file=sys.stderr)
                return 1
            for i, h in enumerate(handles):
                if finished[i] is None and h.status().is_seeding:
                    finished[i] = time.time() - start
            time.sleep(0.01)
        slowest = max(finished)
        size_mib = os.path.getsize(path) / (1 << 20)
        f_over_r = size_mib / rate_mib
        print("libtorrent size_mib=%d downloaders=%d rate_mib_s=%d slowest_s=%.2f "
              "f_over_r_s=%.2f ratio=%.2f"
              % (size_mib, count, rate_mib, slowest, f_over_r, slowest / f_over_r))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
