// One file's download from the members who share it: different pieces from
// several peers at once, chosen by the PiecePicker, each checked against the
// file's SHA1 chain (or, without one, its own SHA1) before it is written and
// shared at once; the whole file's SHA1 is checked before the part file is
// renamed into place.
//
// The stages, each its own unit:
//  - DownloadEnv (download_env.h): the clock, the part file and the links,
//    which a test replaces;
//  - PartFile (core/part_file.h): the "<dest>.part" file, behind an
//    interface a test can make fail;
//  - PeerLink (peer_link.h): one per peer, its gRPC streams on the callback
//    API; pieces arrive as gRPC's own buffers;
//  - PieceWriter (piece_writer.h): each piece checked and written, against
//    the SHA1 chain, or added to the whole-file SHA1
//    (core/whole_file_hasher.h) while the file arrives;
//  - DownloadTarget (download_target.h): resume (the part file and the
//    pieces it kept) and finish (the whole file's SHA1, sync, rename);
//  - PeerSet (peer_set.h): whom to connect, drop and rotate;
//  - Download (here): the coordinator. It alone owns the picker, the peer
//    set and the links: it sizes each peer's window of requests from its
//    measured rate, rotates peers in and out, and is the only one to call a
//    link or free it.
//
// Threads: per download, the coordinator, `workers` workers that verify
// and write pieces, and one that talks to the tracker, whatever the number
// of peers. A download that waits its turn (Context::slots) has only the
// coordinator and the tracker's thread, and no buffer. The links' reactions
// (on gRPC's threads), the workers and the tracker thread never touch the
// coordinator's state: they post events to its queue, which it takes in
// turn, as libtorrent's disk thread posts its results back. Every failure
// goes through Fail(): the reason is recorded, the pieces are no longer
// offered, and the tracker is told. The download ends in order: links
// closed, workers drained, links freed, events dropped.
//
// Public methods are thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_
#define GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_

#include <cstdint>
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <grpcpp/security/credentials.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/bitfield.h"
#include "core/crypto.h"
#include "core/part_file.h"
#include "core/piece_picker.h"
#include "core/piece_store.h"
#include "core/work_queue.h"
#include "groupshare/tracker/v1/tracker.pb.h"
#include "services/peer/client_state.h"
#include "services/peer/download_env.h"
#include "services/peer/download_slots.h"
#include "services/peer/download_target.h"
#include "services/peer/peer_link.h"
#include "services/peer/peer_set.h"
#include "services/peer/piece_writer.h"
#include "services/peer/rate_cap.h"

namespace groupshare::peer {

// What a download asks of the tracker; the node passes its tracker
// connection, tests a fake.
class DownloadTracker {
 public:
  virtual ~DownloadTracker() = default;
  virtual absl::StatusOr<tracker::v1::GetFilePeersResponse> GetFilePeers(
      const std::string& group_id, const std::string& name) = 0;
  virtual absl::Status AnnounceHolder(const std::string& group_id, const std::string& name,
                                      bool complete) = 0;
  // Lists the caller as a holder that has no piece yet, so that the other
  // holders connect to it now and fetch its first piece as soon as it has
  // it. Once, not sent again if no tracker answers.
  virtual absl::Status AnnounceStart(const std::string& group_id, const std::string& name) = 0;
  virtual absl::Status StopShare(const std::string& group_id, const std::string& name) = 0;
};

struct DownloadOptions {
  // Pieces in flight to one peer at most; each peer's window is sized from
  // its measured rate, up to this.
  uint32_t max_window = 32;
  // Pieces one GetPiece call asks for at most, and calls open to one peer.
  uint32_t max_pieces_per_call = 16;
  uint32_t max_calls_per_peer = 4;
  // Peers connected at once; more holders wait in reserve and are rotated
  // in when a link fails or is much slower than the others.
  uint32_t max_peers = 16;
  // Pieces picked at random before rarest-first takes over.
  uint32_t random_first = 4;
  // Bytes requested from all peers and not yet written, at most, beyond
  // the two pieces each link may always have asked for: what the download
  // holds in memory, wherever it waits.
  uint64_t max_bytes_in_flight = 16 << 20;
  // The largest piece this client accepts from a tracker.
  uint32_t max_piece_size = kMaxPieceSize;
  // A call that brings nothing for this long is cancelled and its pieces go
  // to other peers.
  absl::Duration piece_timeout = absl::Seconds(20);
  // How often the tracker is asked for new sharers (and fresh tickets);
  // more often while there is room for more peers, and most often at the
  // start: the first refresh comes after first_refresh, each next one
  // twice as late, up to the interval. So downloaders who start together
  // (a flash crowd) find each other while it matters: soon after each has
  // its first piece and is listed.
  absl::Duration refresh_interval = absl::Seconds(5);
  absl::Duration refresh_interval_with_room = absl::Milliseconds(500);
  absl::Duration first_refresh = absl::Milliseconds(100);
  // When missing pieces have had no source for this long, the download fails.
  absl::Duration no_source_timeout = absl::Seconds(30);
  // How often the slowest peer may be swapped for one in reserve.
  absl::Duration rotate_interval = absl::Seconds(10);
  // A peer whose pieces fail their SHA1 this often is dropped.
  int max_strikes = 3;
  // A peer whose calls fail this often in a row is dropped.
  int max_failures = 3;
  // Threads that verify and write pieces.
  int workers = 2;
  // What gRPC may hold for one peer at once (see PeerLink::Target); 0 sizes
  // it from the budget above, so that an honest peer is never cut off.
  uint64_t link_memory_quota = 0;
};

enum class DownloadState { kRunning, kComplete, kFailed, kStopped };

// What a download has met with, for tests and the log.
struct DownloadCounters {
  uint32_t peers_connected = 0;   // links ever opened
  uint32_t peers_dropped = 0;
  uint32_t corrupt_pieces = 0;    // failed their SHA1
  uint32_t cancelled_copies = 0;  // endgame duplicates cancelled
  uint32_t stalled_calls = 0;     // cancelled for bringing nothing
  uint32_t calls = 0;             // GetPiece calls made
  uint32_t pieces_read_back = 0;  // for the whole file's SHA1, once complete
};

struct DownloadProgress {
  std::string group_id;
  std::string name;
  std::string dest;
  DownloadState state = DownloadState::kRunning;
  uint32_t pieces_done = 0;
  uint32_t piece_count = 0;
  uint64_t bytes_done = 0;
  uint64_t size = 0;
  double bytes_per_second = 0;
  double eta_bytes_per_second = 0;  // smoothed over several seconds, for the ETA
  int peers = 0;  // connected now
  uint32_t links_open = 0;  // peer links not yet freed (a dropped one goes within a tick)
  uint32_t pieces_held = 0;  // received, not yet verified and written
  // Waiting for its turn under the limit of downloads at once, behind this
  // many others; empty once it runs.
  std::optional<uint32_t> queued_ahead;
  // No peer can send what is missing: the download fails if that lasts
  // `gives_up_in` longer.
  bool waiting_for_sharer = false;
  absl::Duration gives_up_in = absl::ZeroDuration();
  std::string error;
  // The part file this download opened as its own ("<dest>.part"), while it
  // holds one: empty before, and once complete.
  std::string part_file;
  // Complete at once, made from a file this client shares already: "hard
  // link" or "copy"; empty for a download.
  std::string local_copy;
  // Failed because no online peer had what was missing: the client starts
  // it again once the tracker lists a sharer.
  bool no_source = false;
  // Verified bytes received from each peer (by user id).
  std::map<std::string, uint64_t> bytes_by_peer;
  // The peers dropped (by user id), and why the last time.
  std::map<std::string, std::string> dropped;
  DownloadCounters counters;
};

class Download : public PeerLink::Owner {
 public:
  // What the download works with; all must outlive it.
  struct Context {
    DownloadTracker* tracker;
    PieceStore* store;
    ClientState* state;
    std::string user_id;
    DownloadEnv* env;  // its clock, part file and peer links
    // What this client's downloads may receive together; null: no cap.
    RateCap* cap = nullptr;
    // How many of its downloads run at once; null: no limit.
    DownloadSlots* slots = nullptr;
  };

  // `first` is the tracker's answer to GetFilePeers for the file, already
  // checked by the caller; `dest` the final path.
  Download(Context context, DownloadOptions options, std::string group_id,
           tracker::v1::GetFilePeersResponse first, std::string dest);
  ~Download() override;  // Stop()s and waits for the threads
  Download(const Download&) = delete;
  Download& operator=(const Download&) = delete;

  void Start();
  // Stops early; the verified pieces stay recorded for a later resume.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the download is no longer running, up to `timeout`.
  bool WaitUntilDone(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  DownloadProgress Progress() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& dest() const { return dest_; }
  const std::string& group_id() const { return group_id_; }
  const std::string& name() const { return file_.name(); }
  const std::string& sha1() const { return file_.sha1(); }
  // Peers connected at once from now on (see DownloadOptions::max_peers).
  void SetMaxPeers(uint32_t max_peers) { max_peers_ = max_peers; }

 private:
  // What the coordinator is told, in the order it happened.
  struct BitfieldEvent {
    uint32_t link;
    pv1::BitfieldUpdate update;
  };
  struct BitfieldEndEvent {
    uint32_t link;
    absl::Status status;
  };
  struct CallEndEvent {
    uint32_t link;
    std::vector<uint32_t> undelivered;
    absl::Status status;
  };
  // A worker's verdict on a piece: OK (verified, written and hashed),
  // DATA_LOSS (its SHA1 failed) or why its write failed.
  struct VerifiedEvent {
    uint32_t link;
    uint32_t piece;
    absl::Status status;
  };
  // The tracker's answer to a refresh of the sharers.
  struct PeersEvent {
    absl::StatusOr<tracker::v1::GetFilePeersResponse> answer;
  };
  using Event =
      std::variant<BitfieldEvent, BitfieldEndEvent, CallEndEvent, VerifiedEvent, PeersEvent>;
  void Post(Event event) ABSL_LOCKS_EXCLUDED(mu_);

  // PeerLink::Owner, on gRPC's threads: posts (a piece goes to a worker).
  void OnBitfield(PeerLink* link, const pv1::BitfieldUpdate& update) override;
  void OnBitfieldEnd(PeerLink* link, const absl::Status& status) override;
  void OnPiece(PeerLink* link, PeerLink::Piece piece) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnCallEnd(PeerLink* link, std::vector<uint32_t> undelivered,
                 const absl::Status& status) override;

  // The coordinator's thread.
  void Run();
  void Handle(BitfieldEvent& e);
  void Handle(BitfieldEndEvent& e);
  void Handle(CallEndEvent& e);
  void Handle(VerifiedEvent& e);
  void Handle(PeersEvent& e);
  // Waits for a slot among the downloads that run at once (see
  // Context::slots), then takes a fresh list of holders if it waited;
  // false when the download was stopped first.
  bool AwaitTurn();
  // Opens the part file, reusing the verified pieces a crash left behind.
  absl::Status Prepare();
  // Checks the whole file and renames it into place.
  absl::Status Finish();
  // The one failure path: records the reason and ends the download, which
  // then withdraws its pieces here and at the tracker.
  void Fail(const absl::Status& status);
  // Why the download gives up when no peer has what is missing.
  absl::Status NoSourceError() const;
  void Withdraw();
  // New sharers become links (or wait in reserve); tickets are renewed.
  void AddPeers(const tracker::v1::GetFilePeersResponse& response);
  void Connect(const tracker::v1::Peer& holder);
  // Fills the window of the peer `id` with GetPiece calls.
  void Fill(uint32_t id);
  void FillAll();
  // Whether `piece`, asked of `holder`, waits there (the picker's copies
  // go only for those): its call brought nothing for twice the time a
  // piece takes at the holder's rate (see kLeastWait, kMostWait).
  bool PieceWaits(PeerId holder, PieceIndex piece);
  // Drops the peer: closes its link, frees its pieces, and connects one in
  // reserve in its place (see PeerSet::Drop).
  void Drop(uint32_t id, const std::string& why, bool rotated = false);
  // A call to the peer failed for `why`; PeerSet::Blame says whether it is
  // dropped.
  void Blame(uint32_t id, const absl::Status& why);
  // Frees the links dropped so far.
  void FreeDroppedLinks();
  void Tick(absl::Time now);
  // Makes what Progress() returns from the coordinator's state.
  void Publish() ABSL_LOCKS_EXCLUDED(mu_);
  // Saves the record of verified pieces, if it changed, on the tracker
  // thread.
  void SaveProgress();
  // Records the verified pieces (`have`, as bytes) in the state folder.
  void WriteHave(const std::string& have);

  // On a worker: the piece through the writer, and its verdict posted, now
  // or once the piece's turn in the whole file's SHA1 comes.
  void Verify(uint32_t link, PeerLink::Piece piece);
  // On a worker: checks alone the pieces that waited too long for their
  // turn. One such task at a time, due PieceWriter::kTurnWait after it is
  // scheduled, as long as any piece waits: a piece waits from kTurnWait to
  // twice that.
  void ScheduleCheckWaiting() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckWaiting() ABSL_LOCKS_EXCLUDED(mu_);

  const Context context_;
  DownloadEnv* const env_;
  const DownloadOptions options_;
  const std::string group_id_;
  const tracker::v1::FileInfo file_;
  const FileLayout layout_;
  const ShareKey key_;
  const std::string dest_;
  const std::string part_path_;
  tracker::v1::GetFilePeersResponse first_;  // used once, by Run()
  std::atomic<uint32_t> max_peers_;
  std::unique_ptr<DownloadTarget> target_;  // set by Prepare, before any worker runs
  // An announcement (at the start or at the first piece) reached the tracker,
  // so a failure withdraws it.
  std::atomic<bool> announced_{false};

  // Only the coordinator's thread touches these.
  std::optional<uint32_t> queued_ahead_;  // see DownloadProgress::queued_ahead
  bool has_slot_ = false;                 // one of Context::slots, to give back
  bool ending_ = false;  // stopped, failed or every piece in
  DownloadState state_ = DownloadState::kRunning;
  std::string error_;
  PiecePicker picker_;
  PeerSet peers_;
  std::vector<std::unique_ptr<PeerLink>> links_;  // by peer id - 1; null once freed
  uint64_t bytes_done_ = 0;
  double rate_ = 0;
  double eta_rate_ = 0;
  absl::Time last_tick_;
  bool announcing_ = false;  // the partial announcement was sent for
  bool have_dirty_ = false;
  absl::Time no_source_since_ = absl::InfiniteFuture();
  bool no_source_failure_ = false;
  // NOT_FOUND when the last refresh found the file gone from the group (or
  // the user gone from it): then nobody is coming, and a download with no
  // source gives up at once rather than at the no-source timeout.
  absl::Status unlisted_;
  std::map<std::string, uint64_t> bytes_by_peer_;
  std::map<std::string, std::string> dropped_;
  DownloadCounters counters_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // an event, or a stop
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;   // Stop() was called
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // Run returned
  DownloadProgress published_ ABSL_GUARDED_BY(mu_);
  // Verifying, writing and hashing pieces; taken away when the download ends.
  std::unique_ptr<WorkQueue> workers_ ABSL_GUARDED_BY(mu_);
  uint32_t pieces_held_ ABSL_GUARDED_BY(mu_) = 0;  // handed to the workers, no verdict yet
  // A worker is to check the pieces that wait for their turn too long.
  bool check_waiting_due_ ABSL_GUARDED_BY(mu_) = false;

  // The last refresh's failure, logged once rather than at every refresh.
  // Only the tracker thread touches it.
  absl::Status last_refresh_failure_;
  // Calls to the tracker and state writes, which must not hold up events.
  std::unique_ptr<WorkQueue> tracker_thread_ = std::make_unique<WorkQueue>(1);
  std::thread coordinator_;
};

const char* DownloadStateLetter(DownloadState state);

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_
