// Bounds the connections a server process accepts, in all and per source
// address, below its limit of open files.
//
// gRPC 1.51 counts no connections. When accept() fails for want of a file
// descriptor it leaves the connection in the listen queue and waits for
// the next readiness edge, which a full queue never brings: the listener
// stops for good. So the count lives where the descriptors are made. This
// file defines accept4() for the process: gRPC's listener calls it (through
// the dynamic linker, as any caller from a shared library); it accepts with
// the C library's, and closes at once a connection past a limit, which
// drains the queue instead of letting it fill. When descriptors run out
// anyway, a spare one is given up to accept and close the next connection.
//
// Owning accept this way keeps gRPC's own listener and transport, with or
// without TLS (a listener of our own would hand gRPC plaintext sockets
// only), at the cost of one lookup per accept.
//
// Past the total, a source that holds less than its fair share of it (the
// total over the sources) may still connect, out of the reserve of
// descriptors: a burst from some addresses does not keep a new honest
// client out.
//
// A connection is counted from its accept until gRPC closes it; closed ones
// are found by a sweep (their descriptor no longer names the same socket)
// when a limit is reached, at most every 100 ms.
#ifndef GROUPSHARE_SERVICES_COMMON_CONNECTION_GUARD_H_
#define GROUPSHARE_SERVICES_COMMON_CONNECTION_GUARD_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace groupshare {

struct ConnectionLimits {
  // Connections open at once, in all (further capped by the limit of open
  // files, less a reserve for the process's own files) and from one
  // source address.
  int max_connections = 4096;
  int max_per_address = 256;
};

// Raises the soft limit of open files to the hard one, then enforces
// `limits` on every connection accepted from now on. Call once, before the
// server starts. Returns the total the process enforces.
int GuardConnections(const ConnectionLimits& limits);

struct ConnectionCounts {
  int open = 0;      // accepted and not yet seen closed
  uint64_t refused = 0;  // closed at accept for a limit
};
ConnectionCounts CurrentConnections();

// The source a per-address limit counts for a peer address: an IPv4
// address, an IPv6 /64 (one host's share of addresses), or "local".
std::string SourceAddressOf(const sockaddr_storage& peer);

}  // namespace groupshare

#endif  // GROUPSHARE_SERVICES_COMMON_CONNECTION_GUARD_H_
