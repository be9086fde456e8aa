// One file's download from the members who share it: different pieces from
// several peers at once, chosen by the PiecePicker, each checked against its
// SHA1 before it is written and shared at once; the whole file's SHA1 is
// checked before the part file is renamed into place.
//
// The stages, each its own unit:
//  - DownloadEnv (download_env.h): the clock, the part file and the links,
//    which a test replaces;
//  - PartFile (core/part_file.h): the "<dest>.part" file, behind an
//    interface a test can make fail;
//  - PeerLink (peer_link.h): one per peer, its gRPC streams on the callback
//    API; pieces arrive as gRPC's own buffers;
//  - WholeFileHasher (core/whole_file_hasher.h): the whole-file SHA1 while
//    the file arrives;
//  - Download (here): the coordinator. It owns the picker and the state,
//    sizes each peer's window of requests from its measured rate, verifies
//    and writes pieces on a few worker threads, rotates peers in and out,
//    and talks to the tracker.
//
// Threads: one coordinator and `workers` workers per download, whatever the
// number of peers; the links' reactions run on gRPC's threads and only hand
// work over. Every failure goes through Fail(): the reason is recorded, the
// pieces are no longer offered, and the tracker is told.
//
// Public methods are thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_
#define GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_

#include <cstdint>
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/security/credentials.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/bitfield.h"
#include "core/crypto.h"
#include "core/part_file.h"
#include "core/piece_picker.h"
#include "core/piece_store.h"
#include "core/whole_file_hasher.h"
#include "core/work_queue.h"
#include "groupshare/tracker/v1/tracker.pb.h"
#include "services/peer/client_state.h"
#include "services/peer/download_env.h"
#include "services/peer/peer_link.h"

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
  uint32_t max_piece_size = 16 << 20;
  // A call that brings nothing for this long is cancelled and its pieces go
  // to other peers.
  absl::Duration piece_timeout = absl::Seconds(20);
  // How often the tracker is asked for new sharers (and fresh tickets);
  // more often while there is room for more peers, so that downloaders who
  // start together (a flash crowd) find each other while it matters.
  absl::Duration refresh_interval = absl::Seconds(5);
  absl::Duration refresh_interval_with_room = absl::Milliseconds(500);
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
  // No peer can send what is missing: the download fails if that lasts
  // `gives_up_in` longer.
  bool waiting_for_sharer = false;
  absl::Duration gives_up_in = absl::ZeroDuration();
  std::string error;
  // Complete at once, made from a file this client shares already: "hard
  // link" or "copy"; empty for a download.
  std::string local_copy;
  // Failed because no online peer had what was missing: the client starts
  // it again once the tracker lists a sharer.
  bool no_source = false;
  // Verified bytes received from each peer (by user id).
  std::map<std::string, uint64_t> bytes_by_peer;
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
  struct Link;
  // gRPC work decided under the lock and done after it (gRPC may run
  // reactions inline, and they take the lock).
  struct Actions {
    struct Request {
      PeerLink* link;
      std::vector<uint32_t> pieces;
      std::string ticket;
    };
    std::vector<Request> requests;
    std::vector<std::pair<PeerLink*, std::string>> open;  // bitfield streams
    std::vector<PeerLink*> close;
    std::vector<std::pair<PeerLink*, uint32_t>> cancel;
    bool claimed = false;  // see Claim
    bool empty() const { return requests.empty() && open.empty() && close.empty() && cancel.empty(); }
  };
  // Ends deciding `actions`, under the lock: they are performed after it,
  // and StopLinks and the freeing of dropped links wait until they are. Once
  // the download stops they are dropped instead (StopLinks closes every
  // link itself).
  void Claim(Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Performs claimed actions, with no lock held.
  void Perform(Actions& actions) ABSL_LOCKS_EXCLUDED(mu_);
  // On the download's own thread: frees the links dropped so far, once no
  // actions are under way (they may name them).
  void FreeDroppedLinks() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether a holder may be connected now: not connected already, never
  // struck out, fewer than kMaxAttempts failed links, and its backoff over.
  bool MayConnect(const tracker::v1::Peer& peer, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // PeerLink::Owner, on gRPC's threads.
  void OnBitfield(PeerLink* link, const pv1::BitfieldUpdate& update) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnBitfieldEnd(PeerLink* link, const absl::Status& status) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnPiece(PeerLink* link, PeerLink::Piece piece) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnCallEnd(PeerLink* link, std::vector<uint32_t> undelivered,
                 const absl::Status& status) override ABSL_LOCKS_EXCLUDED(mu_);

  void Run();
  // Opens the part file, reusing the verified pieces a crash left behind.
  absl::Status Prepare() ABSL_LOCKS_EXCLUDED(mu_);
  // Checks the whole file and renames it into place.
  absl::Status Finish() ABSL_LOCKS_EXCLUDED(mu_);
  // The one failure path: records the reason and ends the download, which
  // then withdraws its pieces here and at the tracker.
  void Fail(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void Withdraw() ABSL_LOCKS_EXCLUDED(mu_);
  // Checks a piece's SHA1, writes it and shares it; on a worker.
  void Verify(PeerId link_id, PeerLink::Piece piece) ABSL_LOCKS_EXCLUDED(mu_);

  Link* Find(const PeerLink* link) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // New sharers become links (or wait in reserve); tickets are renewed.
  void AddPeers(const tracker::v1::GetFilePeersResponse& response, Actions* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Connect(const tracker::v1::Peer& peer, Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills the link's window with GetPiece calls.
  void Fill(Link* link, Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillAll(Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Drop(Link* link, const std::string& why, Actions* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A call to `link` failed for `why`: a strike for corrupt data, a failure
  // otherwise; too many and the peer is dropped.
  void Blame(Link* link, const absl::Status& why, Actions* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Refresh() ABSL_LOCKS_EXCLUDED(mu_);
  void Tick(absl::Time now, Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopLinks() ABSL_LOCKS_EXCLUDED(mu_);
  void SaveProgress() ABSL_LOCKS_EXCLUDED(mu_);

  const Context context_;
  DownloadEnv* const env_;
  const DownloadOptions options_;
  const std::string group_id_;
  const tracker::v1::FileInfo file_;
  const FileLayout layout_;
  const ShareKey key_;
  const std::string dest_;
  const std::string part_path_;
  std::vector<Sha1Digest> expected_;          // each piece's SHA1
  tracker::v1::GetFilePeersResponse first_;  // used once, by Run()
  std::atomic<uint32_t> max_peers_;
  std::unique_ptr<PartFile> part_;            // set by Prepare, before any worker runs
  std::unique_ptr<WholeFileHasher> hasher_;   // likewise

  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // for the coordinator
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // Run returned
  DownloadState state_ ABSL_GUARDED_BY(mu_) = DownloadState::kRunning;
  std::string error_ ABSL_GUARDED_BY(mu_);
  PiecePicker picker_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Link>> links_ ABSL_GUARDED_BY(mu_);  // by id - 1
  std::deque<tracker::v1::Peer> reserve_ ABSL_GUARDED_BY(mu_);
  uint32_t performing_ ABSL_GUARDED_BY(mu_) = 0;  // claimed actions not yet performed
  std::unique_ptr<WorkQueue> workers_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_done_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t pieces_held_ ABSL_GUARDED_BY(mu_) = 0;
  double rate_ ABSL_GUARDED_BY(mu_) = 0;
  double eta_rate_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_tick_ ABSL_GUARDED_BY(mu_);
  absl::Time last_rotate_ ABSL_GUARDED_BY(mu_);
  bool announced_ ABSL_GUARDED_BY(mu_) = false;
  bool have_dirty_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time no_source_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool no_source_failure_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, uint64_t> bytes_by_peer_ ABSL_GUARDED_BY(mu_);
  DownloadCounters counters_ ABSL_GUARDED_BY(mu_);
  std::thread coordinator_;
};

const char* DownloadStateLetter(DownloadState state);

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_
