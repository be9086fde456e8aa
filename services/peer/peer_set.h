// The holders of one download: those connected (peers, by id from 1), and
// those waiting in reserve for room. Decides whom to connect and when,
// whom to drop for faults, and whom to rotate out for being much slower
// than the others; sizes each peer's window of requests from its measured
// rate. Plain data, no network, no threads and no clock of its own, like
// PiecePicker: its owner (the download's coordinator) makes the links and
// applies the decisions.
#ifndef GROUPSHARE_SERVICES_PEER_PEER_SET_H_
#define GROUPSHARE_SERVICES_PEER_PEER_SET_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "groupshare/tracker/v1/tracker.pb.h"

namespace groupshare::peer {

class PeerSet {
 public:
  struct Options {
    uint32_t piece_size = 1;
    // A peer's window of requests covers about this much of its transfer
    // time, between min_window and max_window pieces; a new peer starts at
    // initial_window.
    absl::Duration pipeline_target = absl::Milliseconds(40);
    uint32_t initial_window = 4;
    uint32_t min_window = 2;
    uint32_t max_window = 32;
    // Corrupt pieces, and failed calls in a row, that drop a peer.
    int max_strikes = 3;
    int max_failures = 3;
    // How often the slowest peer may make room for one in reserve, and how
    // slow it must be: below this share of the fastest peer's rate.
    absl::Duration rotate_interval = absl::Seconds(10);
    double slow_share = 0.25;
    // A holder dropped for anything but corrupt data is tried again after
    // first_retry, doubling with each drop up to max_retry, and not after
    // max_attempts failed links.
    absl::Duration first_retry = absl::Seconds(1);
    absl::Duration max_retry = absl::Seconds(30);
    int max_attempts = 16;
  };

  struct Peer {
    uint32_t id = 0;
    tracker::v1::Peer holder;     // user, address and the current ticket
    std::string bitfield_ticket;  // the ticket the bitfield stream was opened with
    bool ready = false;           // its bitfield arrived
    bool gone = false;
    bool rotated = false;  // dropped to make room, not for a fault
    absl::Time since;      // connected
    absl::Time gone_at = absl::InfiniteFuture();
    int strikes = 0;
    int failures = 0;  // in a row
    uint32_t calls = 0;
    uint32_t window = 0;
    uint64_t bytes = 0;  // verified
    uint64_t bytes_at_tick = 0;
    double rate = 0;  // bytes a second
  };

  PeerSet(Options options, absl::Time now) : options_(options), last_rotate_(now) {}

  // Holders the tracker lists: the connected ones' tickets are renewed, and
  // those in reserve updated. Returns the holders to connect now (Connect
  // each); the others wait in reserve while `max_peers` are connected.
  std::vector<tracker::v1::Peer> Offer(const tracker::v1::GetFilePeersResponse& response,
                                       uint32_t max_peers, absl::Time now);
  // A new peer for `holder`, connected at `now`; returns its id.
  uint32_t Connect(const tracker::v1::Peer& holder, absl::Time now);

  // The peer of `id`, or null for an unknown one. Find skips those gone.
  Peer* Get(uint32_t id) { return id == 0 || id > peers_.size() ? nullptr : &peers_[id - 1]; }
  Peer* Find(uint32_t id) {
    Peer* p = Get(id);
    return p == nullptr || p->gone ? nullptr : p;
  }
  const std::deque<Peer>& peers() const { return peers_; }
  uint32_t connected() const;

  // A call to the peer failed for `why`: a strike for corrupt data
  // (DATA_LOSS), a failure otherwise. Returns why the peer is to be
  // dropped, when it is.
  std::optional<std::string> Blame(uint32_t id, const absl::Status& why);
  // The peer delivered a verified piece of `bytes`.
  void Delivered(uint32_t id, uint64_t bytes);
  // Marks the peer gone at `now` (`rotated`: to make room, not for a
  // fault); returns the holder in reserve to connect in its place, if one
  // may be connected now.
  std::optional<tracker::v1::Peer> Drop(uint32_t id, bool rotated, absl::Time now);

  // Measures rates over the `seconds` since the last tick and sizes the
  // windows from them. Returns the peer to rotate out now, if any: with
  // holders in reserve, once a rotate_interval, the slowest peer connected
  // that long, when much slower than the fastest. (Drop it, rotated.)
  std::optional<uint32_t> Tick(absl::Time now, double seconds);
  // The sum of the peers' rates at the last tick.
  double total_rate() const { return total_rate_; }

  // Whether `holder` may be connected now: not connected already, never
  // struck out, fewer than max_attempts failed links, and its backoff over.
  bool MayConnect(const tracker::v1::Peer& holder, absl::Time now) const;
  size_t reserve_size() const { return reserve_.size(); }

 private:
  const Options options_;
  // By id - 1, never reused; a deque, so that a Peer* stays valid while
  // others connect.
  std::deque<Peer> peers_;
  std::deque<tracker::v1::Peer> reserve_;
  absl::Time last_rotate_;
  double total_rate_ = 0;
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_PEER_SET_H_
