// One file's download from the members who share it: different pieces from
// several peers at once, chosen by the PiecePicker, each checked against its
// SHA1 before it is written (pwrite into a preallocated "<dest>.part") and
// shared at once; the whole file's SHA1 is checked before the rename into
// place.
//
// Threads: a coordinator; per peer, one thread reading its GetBitfield
// stream and a few workers each fetching one piece at a time with GetPiece.
// All shared state is guarded by one mutex. Public methods are thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_
#define GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_

#include <cstdint>
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
#include "core/piece_picker.h"
#include "core/piece_store.h"
#include "groupshare/peer/v1/peer.grpc.pb.h"
#include "services/peer/client_state.h"
#include "services/peer/tracker_client.h"

namespace groupshare::peer {

struct DownloadOptions {
  // Requests in flight to one peer at most; faster peers get more, up to this.
  uint32_t max_in_flight = 8;
  // Pieces picked at random before rarest-first takes over.
  uint32_t random_first = 4;
  // A piece not delivered in this time is asked of another peer.
  absl::Duration piece_timeout = absl::Seconds(20);
  // How often the tracker is asked for new sharers (and a fresh ticket).
  absl::Duration refresh_interval = absl::Seconds(5);
  // When missing pieces have had no source for this long, the download fails.
  absl::Duration no_source_timeout = absl::Seconds(30);
  // A peer whose pieces fail their SHA1 this often is dropped.
  int max_strikes = 3;
  // A peer whose requests fail this often in a row is dropped.
  int max_failures = 3;
  // How to reach peers: plaintext when null.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

enum class DownloadState { kRunning, kComplete, kFailed, kStopped };

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
  int peers = 0;
  std::string error;
  // Verified bytes received from each peer (by user id).
  std::map<std::string, uint64_t> bytes_by_peer;
};

class Download {
 public:
  struct Env {
    TrackerClient* tracker;
    PieceStore* store;
    ClientState* state;
    std::string user_id;
  };

  // `first` is the tracker's answer to GetFilePeers for the file, already
  // checked by the caller; `dest` the final path.
  Download(Env env, DownloadOptions options, std::string group_id,
           tracker::v1::GetFilePeersResponse first, std::string dest);
  ~Download();  // Stop()s and waits for the threads
  Download(const Download&) = delete;
  Download& operator=(const Download&) = delete;

  void Start();
  // Stops early; the verified pieces stay recorded for a later resume.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  DownloadProgress Progress() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& dest() const { return dest_; }
  const std::string& group_id() const { return group_id_; }
  const std::string& name() const { return file_.name(); }

 private:
  struct Peer;

  void Run();
  // Opens the .part file, reusing the verified pieces a crash left behind.
  absl::Status Prepare() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Finish() ABSL_LOCKS_EXCLUDED(mu_);
  // Feeds the whole-file SHA1, which runs in file order while the file
  // arrives: `piece` (just verified and written; `data` its bytes, or null)
  // if it is the next in order, then every following piece already on disk.
  // Called by whoever completes a piece, so hashing never lags far behind.
  void HashInOrder(uint32_t piece, const std::string* data)
      ABSL_LOCKS_EXCLUDED(mu_, hash_mu_);
  void Fail(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops offering a failed download's pieces, here and at the tracker.
  void Withdraw() ABSL_LOCKS_EXCLUDED(mu_);
  // Takes in the tracker's view: new sharers become peers, the ticket is
  // renewed.
  void AddPeers(const tracker::v1::GetFilePeersResponse& response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Refresh() ABSL_LOCKS_EXCLUDED(mu_);
  void Tick(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadBitfield(Peer* peer) ABSL_LOCKS_EXCLUDED(mu_);
  void FetchLoop(Peer* peer) ABSL_LOCKS_EXCLUDED(mu_);
  // Fetches and checks one piece outside the lock. OK with the data, or the
  // reason it failed (DATA_LOSS for a SHA1 mismatch).
  absl::StatusOr<std::string> FetchPiece(Peer* peer, uint32_t piece,
                                         grpc::ClientContext* ctx, const std::string& ticket);
  void DropPeer(Peer* peer, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A request to `peer` failed for `why`: a strike for a corrupt piece, a
  // failure otherwise; too many and the peer is dropped.
  void Blame(Peer* peer, const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes every peer's workers: pieces were freed or limits changed.
  void WakeAllPeers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopPeers() ABSL_LOCKS_EXCLUDED(mu_);
  void SaveProgress() ABSL_LOCKS_EXCLUDED(mu_);

  const Env env_;
  const DownloadOptions options_;
  const std::string group_id_;
  const tracker::v1::FileInfo file_;
  const FileLayout layout_;
  const ShareKey key_;
  const std::string dest_;
  const std::string part_;
  tracker::v1::GetFilePeersResponse first_;  // used once, by Run()
  int fd_ = -1;                               // the .part file, open while running

  absl::Mutex write_mu_;  // serialises writes to fd_
  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // for the coordinator
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  DownloadState state_ ABSL_GUARDED_BY(mu_) = DownloadState::kRunning;
  std::string error_ ABSL_GUARDED_BY(mu_);
  PiecePicker picker_ ABSL_GUARDED_BY(mu_);
  std::string ticket_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
  PeerId next_peer_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t bytes_done_ ABSL_GUARDED_BY(mu_) = 0;
  double rate_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_tick_ ABSL_GUARDED_BY(mu_) = absl::Now();
  bool announced_ ABSL_GUARDED_BY(mu_) = false;
  bool have_dirty_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time no_source_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::map<std::string, uint64_t> bytes_by_peer_ ABSL_GUARDED_BY(mu_);
  std::thread coordinator_;

  // The whole-file SHA1 so far, over pieces [0, next_hash_). Taken before mu_.
  absl::Mutex hash_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Sha1 whole_ ABSL_GUARDED_BY(hash_mu_);
  uint32_t next_hash_ ABSL_GUARDED_BY(hash_mu_) = 0;
};

const char* DownloadStateLetter(DownloadState state);

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_DOWNLOADER_H_
