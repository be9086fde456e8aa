#!/usr/bin/env python3
"""Calls whose request declares a message it never finishes, over raw HTTP/2.

Opens --connections connections to 127.0.0.1:--port; on each, --streams calls
to --path, whose request declares a message of --declared bytes and sends all
of it but the last byte, as fast as the server's flow-control windows allow.
Holds them for --seconds (at most 120), then closes them and prints the bytes
the server let in. Loopback only.
"""
import argparse
import select
import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 7, 8


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def headers(path, authority):
    # HPACK literals without indexing, new names (all under 127 bytes).
    block = b""
    for name, value in ((":method", "POST"), (":scheme", "http"), (":path", path),
                        (":authority", authority), ("content-type", "application/grpc"),
                        ("te", "trailers")):
        name, value = name.encode(), value.encode()
        block += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return block


class Connection:
    def __init__(self, port, path, streams, declared):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.inbox, self.out = b"", PREFACE + frame(SETTINGS, 0, 0)
        self.window, self.initial = 65535, 65535
        self.windows, self.left = {}, {}
        self.declared, self.closed = declared, False
        for i in range(streams):
            stream = 1 + 2 * i
            self.out += frame(HEADERS, 4, stream, headers(path, "127.0.0.1:%d" % port))
            self.windows[stream], self.left[stream] = self.initial, declared + 5 - 1

    def read(self):
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        self.inbox += data
        while len(self.inbox) >= 9:
            length = int.from_bytes(self.inbox[:3], "big")
            if len(self.inbox) < 9 + length:
                break
            kind, flags = self.inbox[3], self.inbox[4]
            stream = int.from_bytes(self.inbox[5:9], "big") & 0x7FFFFFFF
            payload, self.inbox = self.inbox[9:9 + length], self.inbox[9 + length:]
            if kind == SETTINGS and not flags & 1:
                for k in range(0, len(payload) - 5, 6):
                    key, value = struct.unpack(">HI", payload[k:k + 6])
                    if key == 4:  # INITIAL_WINDOW_SIZE
                        for s in self.windows:
                            self.windows[s] += value - self.initial
                        self.initial = value
                self.out += frame(SETTINGS, 1, 0)
            elif kind == WINDOW_UPDATE:
                increment = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
                if stream == 0:
                    self.window += increment
                elif stream in self.windows:
                    self.windows[stream] += increment
            elif kind == RST_STREAM:
                self.left.pop(stream, None)
            elif kind == GOAWAY:
                self.closed = True

    def write(self):
        sent = 0
        for stream, left in list(self.left.items()):
            while len(self.out) < (1 << 20):
                n = min(left, self.windows[stream], self.window, 16384)
                if n <= 0:
                    break
                if left == self.declared + 5 - 1:  # the message's prefix first
                    chunk = b"\x00" + struct.pack(">I", self.declared) + b"a" * (n - 5)
                else:
                    chunk = b"a" * n
                self.out += frame(DATA, 0, stream, chunk)
                self.windows[stream] -= n
                self.window -= n
                left -= n
                sent += n
            self.left[stream] = left
        if self.out:
            try:
                n = self.sock.send(self.out)
                self.out = self.out[n:]
            except BlockingIOError:
                pass
            except OSError:
                self.closed = True
        return sent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="e.g. /groupshare.peer.v1.PeerService/GetPiece")
    parser.add_argument("--connections", type=int, default=6)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--declared", type=int, default=4 << 20)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    conns = [Connection(args.port, args.path, args.streams, args.declared)
             for _ in range(args.connections)]
    sent = 0
    end = time.time() + min(args.seconds, 120)
    while time.time() < end:
        live = [c for c in conns if not c.closed]
        if not live:
            break
        readable, _, _ = select.select([c.sock for c in live], [], [], 0.02)
        for c in live:
            if c.sock in readable:
                c.read()
            if not c.closed:
                sent += c.write()
    for c in conns:
        c.sock.close()
    print("sent_mib=%.1f closed_by_server=%d" % (sent / 2 ** 20, sum(c.closed for c in conns)))


if __name__ == "__main__":
    main()
