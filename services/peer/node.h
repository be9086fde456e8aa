// Everything a client does besides parsing commands: its session with the
// tracker, the files it serves (PieceStore + PeerService), its downloads,
// and the state folder that lets it share again after a restart. The shell
// calls it; it knows nothing of the shell.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_NODE_H_
#define GROUPSHARE_SERVICES_PEER_NODE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/piece_store.h"
#include "core/work_queue.h"
#include "services/peer/client_state.h"
#include "services/peer/download_env.h"
#include "services/peer/downloader.h"
#include "services/peer/peer_identity.h"
#include "services/peer/peer_service.h"
#include "services/peer/relay_client.h"
#include "services/peer/tracker_client.h"

namespace groupshare::peer {

struct NodeOptions {
  // host:port of this client's PeerService, as the other members reach it.
  std::string peer_address;
  DownloadOptions download;
  // Downloads that run at once; the others wait their turn (DownloadSlots).
  uint32_t max_active_downloads = 8;
  // This client's certificate for mutual TLS with the other members, which
  // it outlives: its downloads present it, and it is renewed with the
  // keep-alives. Plaintext when null.
  PeerIdentity* identity = nullptr;
  // The relays the tracker announces, which it outlives: a client that
  // other members cannot reach waits at one, and links reach such holders
  // through theirs. None when null.
  Relays* relays = nullptr;
  PeerServiceOptions serve;
  // How often changes no tracker heard are sent again, and downloads that
  // failed for want of a sharer look for one.
  absl::Duration retry_interval = absl::Seconds(5);
};

class TrackerForDownloads;

// What this client sent of one share since the login.
struct ShareTraffic {
  std::string group_id;
  std::string name;
  uint64_t bytes = 0;
  std::vector<UploadTraffic> now;  // the users it is sending to now
};

struct LoginSummary {
  int sharing = 0;   // files served again
  int resumed = 0;   // downloads taken up again
  std::vector<std::string> problems;  // shares that could not be restored
};

struct UploadSummary {
  std::string name;
  uint64_t size = 0;
  uint32_t pieces = 0;
  std::string sha1;
  bool created = false;  // false: the group had it already; now one more sharer
  bool already_yours = false;  // this client shared it already
};

// A file being hashed to be shared (upload_file), or just done.
struct UploadProgress {
  uint64_t id = 0;
  std::string group_id;
  std::string name;
  std::string path;  // absolute
  uint64_t bytes_hashed = 0;
  uint64_t size = 0;
  bool finished = false;
  // Once finished: what was shared, or why not (CANCELLED by stop_share or
  // logout).
  absl::StatusOr<UploadSummary> result = absl::UnknownError("still hashing");
};

class Node {
 public:
  Node(TrackerClient* tracker, std::unique_ptr<ClientState> state, NodeOptions options);
  ~Node();

  PeerServiceImpl* peer_service() { return &peer_service_; }
  // The address sent at the next login (once a port 0 is bound).
  void set_peer_address(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);
  // host:port where this machine reaches its own peer service (where it
  // listens; the advertised address may be a NAT's, which does not loop
  // back). Until set, the advertised one.
  void set_local_address(const std::string& address) ABSL_LOCKS_EXCLUDED(mu_);

  // Logs in, then serves again what this user shared from this state
  // folder and resumes its unfinished downloads.
  absl::StatusOr<LoginSummary> Login(const std::string& user_id, const std::string& password)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stops serving and downloading (downloads resume at the next login),
  // then ends the session.
  absl::Status Logout() ABSL_LOCKS_EXCLUDED(mu_);

  // Hashes the file (one streaming pass) in the background, then registers
  // it with the tracker and serves it. NOT_FOUND / INVALID_ARGUMENT at once
  // for a path that is not a regular file; ALREADY_EXISTS while it is being
  // hashed for the group already.
  absl::StatusOr<UploadProgress> StartUpload(const std::string& path,
                                             const std::string& group_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `timeout` for upload `id` to finish; returns it, now
  // forgotten, or nullopt while it still hashes.
  std::optional<UploadProgress> WaitForUpload(uint64_t id, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The uploads being hashed, for the progress prompt.
  std::vector<UploadProgress> Uploads() const ABSL_LOCKS_EXCLUDED(mu_);
  // The uploads that finished since the last call and nobody waited for.
  std::vector<UploadProgress> TakeFinishedUploads() ABSL_LOCKS_EXCLUDED(mu_);

  // Starts a download in the background and returns its first progress.
  // `dest` is a file path, or an existing folder to keep the file's name in.
  // A file this client shares already is linked or copied there at once
  // (the progress is complete, with local_copy set).
  absl::StatusOr<DownloadProgress> StartDownload(const std::string& group_id,
                                                 const std::string& name,
                                                 const std::string& dest)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The downloads of this run, as the progress prompt and the notices
  // follow them (no I/O).
  std::vector<DownloadProgress> Downloads() const ABSL_LOCKS_EXCLUDED(mu_);
  // The same, led by the completed downloads of earlier runs from the
  // state folder: what show_downloads lists.
  std::vector<DownloadProgress> DownloadsWithHistory() const ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the downloads that are not running, and the history of
  // completed ones.
  absl::Status ClearFinishedDownloads() ABSL_LOCKS_EXCLUDED(mu_);

  // Stops sharing (and downloading, or hashing) the file, here and at the
  // tracker. An unfinished download of it ends for good, its part file
  // removed, as a browser's cancel removes its partial file: returns how
  // many did (0 or 1).
  absl::StatusOr<int> StopShare(const std::string& group_id, const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);
  // What happened to shares since the last call, for the shell to tell: a
  // share whose file changed and is no longer served. One sentence each.
  std::vector<std::string> TakeNotices() ABSL_LOCKS_EXCLUDED(mu_);

  // What each share sent since the login, and to whom it sends now.
  std::vector<ShareTraffic> Traffic() const;
  // Limits, changed at run time: what all uploads send, and all downloads
  // receive, at most together (0: no cap), the peers a download connects
  // to at once, and the downloads that run at once.
  void SetMaxUploadRate(uint64_t bytes_per_second);
  void SetMaxDownloadRate(uint64_t bytes_per_second) { download_cap_.SetRate(bytes_per_second); }
  void SetMaxPeers(uint32_t max_peers) ABSL_LOCKS_EXCLUDED(mu_);
  void SetMaxActiveDownloads(uint32_t n) { download_slots_.SetMax(n); }

  // Leaves the group at the tracker and stops sharing in it here; its
  // unfinished downloads end as StopShare ends one.
  struct LeftGroup {
    tracker::v1::LeaveGroupResponse answer;
    int removed_downloads = 0;
  };
  absl::StatusOr<LeftGroup> LeaveGroup(const std::string& group_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Until the peer service shows the certificate of this login, which
  // members told of a share would be refused by (a few seconds at most).
  void AwaitServing() ABSL_LOCKS_EXCLUDED(mu_);
  // Asks the tracker whether other members reach this client at its
  // address, and tells the user (a notice). One they cannot reach waits at
  // a relay, if the tracker announced any.
  void ReportReachability() ABSL_LOCKS_EXCLUDED(mu_);
  // RelayWait's news: waiting at `relay` now, or at none (why).
  void RelayChanged(const std::string& relay, const std::string& why)
      ABSL_LOCKS_EXCLUDED(mu_, relay_mu_);
  // The relay this client waits at; empty when none.
  std::string relay() const ABSL_LOCKS_EXCLUDED(relay_mu_);
  // Stops waiting at a relay.
  void LeaveRelay() ABSL_LOCKS_EXCLUDED(mu_, relay_mu_);
  static LinkRouter RouterFor(const NodeOptions& options);
  // Removes and returns the downloads that match; the caller destroys them
  // outside the lock (that joins their threads).
  std::vector<std::unique_ptr<Download>> TakeDownloads(const std::string& group_id,
                                                       const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Shares the tracker lists for this client and the state folder does not
  // hold (the client stopped between the two) are served by nobody: the
  // tracker stops listing them, and the login says so.
  void WithdrawUnrecorded(const tracker::v1::LoginResponse& login,
                          const std::vector<ShareRecord>& records, LoginSummary* summary);
  // A download the client renamed into place but stopped before it was
  // recorded complete: its file is at its path, with no part file, and has
  // the SHA1 it was to have (read whole to check). Records it complete and
  // returns true; false for any other download.
  bool RecordFinished(const std::string& user_id, ShareRecord& record);
  // Ends taken downloads for good: each stops, and the part files of those
  // unfinished are removed. Returns how many were.
  static int EndForGood(std::vector<std::unique_ptr<Download>> downloads);
  struct Hashing {
    UploadProgress progress;  // guarded by Node::mu_
    std::atomic<uint64_t> hashed{0};
    std::atomic<bool> cancel{false};
  };
  // Hashes and shares; on `hashing_`.
  absl::StatusOr<UploadSummary> Share(const std::string& user_id, Hashing& upload)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels the uploads that match (every one when `group_id` is empty),
  // waits until they finished and forgets them; returns how many.
  int CancelUploads(const std::string& group_id, const std::string& name)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stops every download (they resume at the next login) and serves nothing.
  void StopSharing() ABSL_LOCKS_EXCLUDED(mu_);
  // Serves tickets signed with any of `keys` from now on (at login, or as a
  // keep-alive brings them when the tracker rotates its key).
  absl::Status AcceptTicketKeys(const std::vector<std::string>& keys, bool at_login)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A download of the file `peers` describes (the tracker's answer for
  // group_id and its name) into `dest`.
  absl::StatusOr<std::unique_ptr<Download>> MakeDownload(const std::string& user_id,
                                                         const std::string& group_id,
                                                         tv1::GetFilePeersResponse peers,
                                                         const std::string& dest);
  // `dest` made from the share's own file: a hard link, or a checked copy.
  absl::StatusOr<DownloadProgress> CopyShare(const std::string& user_id,
                                             const std::string& group_id,
                                             const tv1::FileInfo& file, const std::string& dest);
  void Restore(const std::string& user_id,
               const tracker::v1::LoginResponse& login, LoginSummary* summary)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The file of a share changed since it was hashed: forgets the share here
  // and at the tracker, and says so.
  void ForgetChanged(const std::string& user_id, const std::string& group_id,
                     const std::string& name, const std::string& sha1, const std::string& why)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Sends the changes no tracker heard, and starts again the downloads
  // that failed for want of a sharer once the tracker lists one. On
  // retrying_, after a login and every retry_interval (RetryEvery).
  void Retry() ABSL_LOCKS_EXCLUDED(mu_);
  void RetryEvery(WorkQueue* queue);
  void SendPending(const std::string& user_id) ABSL_LOCKS_EXCLUDED(mu_);
  void RetryFailedDownloads(const std::string& user_id) ABSL_LOCKS_EXCLUDED(mu_);

  TrackerClient* const tracker_;
  const std::unique_ptr<ClientState> state_;
  const std::unique_ptr<TrackerForDownloads> download_tracker_;  // tracker_ as downloads see it
  NodeOptions options_;  // max_peers guarded by mu_, the rest constant
  SystemDownloadEnv download_env_{RouterFor(options_)};
  RateCap download_cap_;  // outlives the downloads, as download_slots_ does
  DownloadSlots download_slots_{options_.max_active_downloads};
  PieceStore store_;
  PeerServiceImpl peer_service_{&store_, options_.serve};

  mutable absl::Mutex mu_;
  std::string peer_address_ ABSL_GUARDED_BY(mu_);
  std::string local_address_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> ticket_keys_ ABSL_GUARDED_BY(mu_);  // empty when logged out
  std::vector<std::unique_ptr<Download>> downloads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> notices_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Hashing>> uploads_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<RelayWait> relay_wait_ ABSL_GUARDED_BY(mu_);
  // Apart from mu_: asked for by the keep-alive thread under the tracker
  // client's lock.
  mutable absl::Mutex relay_mu_;
  std::string relay_ ABSL_GUARDED_BY(relay_mu_);
  bool relay_reported_ ABSL_GUARDED_BY(relay_mu_) = false;  // the login's notice said it
  uint64_t next_upload_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::CondVar upload_finished_;  // with mu_
  // Talks to the tracker, so apart from background_; ended first thing in
  // the destructor.
  std::unique_ptr<WorkQueue> retrying_ = std::make_unique<WorkQueue>(1);
  // Work that must not run where it is noticed (a peer call's reading
  // thread). Declared last: destroyed (and joined) first.
  WorkQueue background_{1};
  WorkQueue hashing_{1};  // one file at a time: the disk is the limit
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_NODE_H_
