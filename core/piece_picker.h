// Which piece to ask which peer for next. Plain data structure, no network,
// no threads, no lock: its owner (the downloader) serialises access.
// Peers are opaque ids.
//
// The policy:
//  - the first `random_first` pieces are picked at random, so a new
//    downloader soon has whole pieces to share;
//  - then rarest first: among the missing pieces the peer holds and nobody
//    is fetching, the one the fewest peers hold, ties broken in file order
//    while every known peer holds the whole file (so that the downloader
//    hashes the whole file from the pieces it receives, without reading
//    them back, and writes stay close together), and at random among the
//    first `tie_window` tied pieces in file order once a peer that is
//    downloading too is known (the file still fills roughly in order, and
//    downloaders who trade keep off each other's pieces);
//  - except in a swarm: with more than one peer, pieces that only one peer
//    holds are drawn from all of them, not a window, so that downloaders
//    fetching from one seeder each ask it for different pieces and can
//    trade them (each byte the seeder sends once is a byte it need not send
//    again);
//  - each peer has a limit of requests in flight, which the owner raises
//    for faster peers (SetMaxInFlight);
//  - endgame: once every missing piece is requested, an idle peer is given
//    a piece already in flight elsewhere (at most `max_copies` at once);
//    whoever delivers first wins and the other requests are to be
//    cancelled (Complete returns them). Before the endgame too, a peer with
//    nothing in flight and nothing unasked that it holds takes such a copy:
//    a piece held back at a slow peer (a capped seeder in a crowd) need not
//    wait there while another peer that has it idles. Either way, only of
//    a piece that waits where it was asked for (the owner says which): one
//    on its way is not fetched twice over the link both copies would share;
//  - a failed or aborted request, or a removed peer's requests, go back in
//    the queue.
//
// Cost: the missing pieces nobody is fetching are kept in buckets by
// availability, each in file order and in an array to draw from, and the
// pieces under way in file order. A pick looks at the lowest bucket that
// has a piece the peer holds, and in it at most `tie_window` pieces the
// peer holds (O(tie_window log n) from a seeder); a draw from a whole
// bucket tries random members first. Only a peer that holds few of the
// pieces in the buckets it is asked about costs a walk through them, and
// the random phase (a few picks) may walk every bucket. Endgame walks the
// pieces under way, not the file. Changes cost O(log n) a piece.
//
// Pieces and peers are told apart by type (PieceIndex, PeerId). A debug
// build recounts the picker's state after every change and aborts on the
// first disagreement (Options::check_invariants).
#ifndef GROUPSHARE_CORE_PIECE_PICKER_H_
#define GROUPSHARE_CORE_PIECE_PICKER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "core/bitfield.h"
#include "core/strong_id.h"

namespace groupshare {

using PieceIndex = StrongId<struct PieceIndexTag>;
using PeerId = StrongId<struct PeerIdTag>;

class PiecePicker {
 public:
  struct Options {
    uint32_t random_first = 4;
    uint32_t max_copies = 2;  // requests of one piece at once, in endgame
    uint32_t tie_window = 32;  // tied pieces (in file order) the random pick is among
    uint64_t seed = std::random_device{}();
#ifdef NDEBUG
    bool check_invariants = false;
#else
    bool check_invariants = true;  // O(pieces x peers) after every change
#endif
  };

  PiecePicker(uint32_t piece_count, Options options);

  uint32_t piece_count() const { return static_cast<uint32_t>(have_.size()); }

  // A piece held already (a resumed download).
  void SetHave(PieceIndex piece);
  bool Have(PieceIndex piece) const { return have_.Get(piece.value()); }
  uint32_t HaveCount() const { return have_.Count(); }
  bool Done() const { return have_.All(); }
  const Bitfield& have() const { return have_; }

  // A peer and the pieces it holds (a bitfield of piece_count() bits).
  // Adding a known peer replaces its pieces.
  void AddPeer(PeerId peer, const Bitfield& pieces, uint32_t max_in_flight = 2);
  void PeerHas(PeerId peer, PieceIndex piece);
  // The peer no longer offers `piece` (a request of it in flight stays).
  void PeerLacks(PeerId peer, PieceIndex piece);
  // Forgets the peer; its requests in flight go back in the queue.
  void RemovePeer(PeerId peer);
  bool HasPeer(PeerId peer) const { return peers_.count(peer) != 0; }
  void SetMaxInFlight(PeerId peer, uint32_t limit);
  uint32_t InFlight(PeerId peer) const;
  // Requests in flight from all peers.
  uint32_t TotalInFlight() const { return total_in_flight_; }

  // Whether `piece`, asked of `holder`, waits there: nothing of it is on
  // its way.
  using Waits = std::function<bool(PeerId holder, PieceIndex piece)>;
  // The next piece to request from `peer`, now counted in flight from it;
  // nullopt when the peer is at its limit or holds nothing we can ask for.
  // A copy of a piece under way is only of one that `waits` at every peer
  // it was asked of (without `waits`, any).
  std::optional<PieceIndex> Pick(PeerId peer, const Waits& waits = nullptr);
  // `peer` delivered `piece` and it checked out: it is held now. Returns the
  // other peers still fetching the same piece (endgame); their requests are
  // released and should be cancelled.
  std::vector<PeerId> Complete(PeerId peer, PieceIndex piece);
  // The request failed, stalled or was cancelled: the piece is free to be
  // asked for again. A request no longer in flight is ignored.
  void Abort(PeerId peer, PieceIndex piece);

  // How many known peers hold the piece.
  uint32_t Availability(PieceIndex piece) const { return availability_[piece.value()]; }
  // Missing pieces that no known peer holds.
  uint32_t UnavailableCount() const;
  // True once every missing piece is requested from somebody.
  bool InEndgame() const;

  // Recounts everything from scratch: false when the kept counts disagree.
  // O(pieces x peers).
  bool InvariantsHold() const;

  // Pieces Pick has looked at in all, to show what picks cost.
  uint64_t examined() const { return examined_; }

 private:
  struct Peer {
    Bitfield pieces;
    uint32_t in_flight = 0;
    uint32_t max_in_flight = 2;
  };
  // The missing pieces no request is out for that `availability` peers
  // hold: in file order, and in an array to draw from at random (a piece's
  // place in it is slot_[piece]).
  struct Bucket {
    absl::btree_set<uint32_t> ordered;
    std::vector<uint32_t> drawable;
  };
  // Whether the piece is in a bucket: missing, and nobody fetches it.
  bool Queued(uint32_t piece) const { return !have_.Get(piece) && requested_[piece].empty(); }
  void Enqueue(uint32_t piece);
  void Dequeue(uint32_t piece);
  // Changes the piece's availability by +1 or -1, moving it between buckets.
  void AddAvailability(uint32_t piece, int delta);
  // The rarest pieces `peer` holds in the buckets: one of the first
  // `tie_window` in file order, or one of all of them in
  // a swarm when they are held by one peer alone.
  std::optional<uint32_t> PickRarest(const Bitfield& pieces);
  // One of all the pieces in the buckets that `pieces` holds, uniformly.
  std::optional<uint32_t> PickAnyQueued(const Bitfield& pieces);
  // A copy of a piece under way at other peers that `waits` there
  // (endgame, or an idle peer).
  std::optional<uint32_t> PickCopy(const Bitfield& pieces, PeerId peer, const Waits& waits);
  bool Requested(uint32_t piece, PeerId peer) const;
  // Whether the peer lacks a piece of the file.
  bool Partial(const Peer& peer) const { return peer.pieces.Count() < piece_count(); }
  void Release(uint32_t piece, PeerId peer);
  // In a debug build, aborts when InvariantsHold() is false.
  void Check() const;

  Options options_;
  std::mt19937_64 rng_;
  Bitfield have_;
  std::vector<uint16_t> availability_;
  std::vector<std::vector<PeerId>> requested_;  // peers fetching each piece
  uint32_t unrequested_missing_;  // missing pieces with no request in flight
  std::vector<Bucket> buckets_;   // by availability
  std::vector<uint32_t> slot_;    // each queued piece's place in its bucket's drawable
  absl::btree_set<uint32_t> under_way_;  // missing pieces with requests in flight
  uint64_t examined_ = 0;
  uint32_t total_in_flight_ = 0;
  uint32_t partial_peers_ = 0;  // peers that do not hold every piece
  absl::flat_hash_map<PeerId, Peer> peers_;
};

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_PIECE_PICKER_H_
