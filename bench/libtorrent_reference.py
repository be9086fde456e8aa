#!/usr/bin/python3
"""Reference run for the download benchmark: the same download with libtorrent
(Debian's python3-libtorrent), tuned for one machine, on loopback, so that groupshare's numbers can be
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
    # Tuned as a user going for speed on one machine would tune it (the
    # defaults are made for the internet): TCP only, plaintext, no caps,
    # deep request pipelines and send buffers, both cores hashing.
    s = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "allow_multiple_connections_per_ip": True,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "out_enc_policy": 2, "in_enc_policy": 1,  # disabled / enabled
        "allowed_enc_level": 3, "prefer_rc4": False,
        "upload_rate_limit": 0, "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
        "connections_limit": 500, "unchoke_slots_limit": -1,
        "smooth_connects": False,
        "send_buffer_watermark": 32 << 20, "send_buffer_low_watermark": 1 << 20,
        "send_buffer_watermark_factor": 150,
        "max_out_request_queue": 1500, "max_allowed_in_request_queue": 4000,
        "request_queue_time": 5,
        "max_queued_disk_bytes": 64 << 20, "max_peer_recv_buffer_size": 8 << 20,
        "hashing_threads": 2, "aio_threads": 4,
        "alert_mask": 0,
    })
    return s


def cpu_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        cpu0 = cpu_of(os.getpid())
        seed_cpu0 = sum(cpu_of(p.pid) for p in procs)
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
        cpu = cpu_of(os.getpid()) - cpu0
        seed_cpu = sum(cpu_of(p.pid) for p in procs) - seed_cpu0
        size_mib = os.path.getsize(path) / (1 << 20)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("libtorrent size_mib=%d seeders=%d seconds=%.2f mib_per_s=%.1f peak_rss_mib=%.1f "
              "cpu_downloader=%.2f cpu_seeders=%.2f cpu_s_per_gib=%.2f"
              % (size_mib, count, seconds, size_mib / seconds, rss, cpu, seed_cpu,
                 cpu * 1024 / size_mib))
        return 0
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
