#!/usr/bin/python3
"""One libtorrent session on one host of bench/flash_crowd_shaped.py, tuned as
in bench/libtorrent_reference.py and listening on ADDRESS (host:port).

  libtorrent_node.py seed TORRENT SAVE_PATH ADDRESS
      seeds the torrent's file from SAVE_PATH; prints "ready", then serves
      until its stdin closes.
  libtorrent_node.py fetch TORRENT OUT ADDRESS PEER...
      prints "ready"; on a line "go" on stdin, downloads into OUT from the
      PEERs (host:port) and prints "done <Unix time>" once it has every
      piece, then serves until its stdin closes.
"""

import sys
import time

import libtorrent as lt

from libtorrent_reference import session


def main():
    mode, torrent, path, address = sys.argv[1:5]
    s = session()
    s.apply_settings({"listen_interfaces": address})
    info = lt.torrent_info(torrent)
    if mode == "seed":
        s.add_torrent({"ti": info, "save_path": path, "flags": lt.torrent_flags.seed_mode})
        print("ready", flush=True)
        sys.stdin.read()
        return 0
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    h = s.add_torrent({"ti": info, "save_path": path})
    for peer in sys.argv[5:]:
        host, port = peer.rsplit(":", 1)
        h.connect_peer((host, int(port)))
    deadline = time.time() + 600
    while not h.status().is_seeding:
        if time.time() > deadline:
            print("timed out", flush=True)
            return 1
        time.sleep(0.01)
    print("done %.3f" % time.time(), flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
