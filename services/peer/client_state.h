// The client's own state, in one SQLite file in its state folder: for each
// user, what it shares (a local path for each file) and, for a download in
// progress, which pieces are verified, so that a client that crashed resumes
// where it stopped and shares everything again at the next login; and the
// downloads it completed.
//
// Thread-safe.
#ifndef GROUPSHARE_SERVICES_PEER_CLIENT_STATE_H_
#define GROUPSHARE_SERVICES_PEER_CLIENT_STATE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/sqlite.h"

namespace groupshare::peer {

struct ShareRecord {
  std::string user_id;
  std::string group_id;
  std::string name;
  std::string sha1;
  uint64_t size = 0;
  uint32_t piece_size = 0;
  std::vector<std::string> piece_sha1;  // lower-case hex
  std::string path;  // the complete file; a download writes to path + ".part"
  bool complete = false;
  std::string have;  // bitfield bytes of verified pieces, while incomplete
  // The complete file's modification time (ns since the epoch) when it was
  // hashed or finished; with `size`, how a changed file is recognised. 0:
  // not recorded (a record of an older client).
  int64_t mtime_ns = 0;
  // The whole file's SHA1 chain (tv1::FileInfo.sha1_chain), lower-case
  // hex; empty when the file was shared without one, or by an older client.
  std::vector<std::string> sha1_chain;
};

// A download that completed, as show_downloads keeps listing it (across
// restarts and stop_share) until cleared.
struct CompletedRecord {
  std::string user_id;
  std::string group_id;
  std::string name;
  std::string path;
  uint64_t size = 0;
};

// A change of this client's shares that the tracker has not acknowledged
// (no tracker answered): kept until one does, and sent again with the same
// request-id, so that a first attempt that did land is not applied twice.
// The latest change of a file replaces any earlier one.
struct PendingChange {
  enum Kind { kAnnouncePartial = 0, kAnnounceComplete = 1, kStopShare = 2, kLast = kStopShare };
  std::string user_id;
  std::string group_id;
  std::string name;
  Kind change = kAnnouncePartial;
  std::string request_id;
};

class ClientState {
 public:
  static absl::StatusOr<std::unique_ptr<ClientState>> Open(const std::string& path);

  // This client's name among a user's clients, made on first use and kept:
  // the tracker keeps each client's shares apart.
  absl::StatusOr<std::string> ClientId() ABSL_LOCKS_EXCLUDED(mu_);

  // Inserts or replaces the record of (user, group, sha1).
  absl::Status Put(const ShareRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status UpdateHave(const std::string& user, const std::string& group,
                          const std::string& sha1, const std::string& have)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The download is complete, and its file's modification time is
  // `mtime_ns`.
  absl::Status MarkComplete(const std::string& user, const std::string& group,
                            const std::string& sha1, int64_t mtime_ns) ABSL_LOCKS_EXCLUDED(mu_);
  // Records the modification time of a complete share's file.
  absl::Status SetMtime(const std::string& user, const std::string& group,
                        const std::string& sha1, int64_t mtime_ns) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Remove(const std::string& user, const std::string& group,
                      const std::string& sha1) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets every record of the user in the group.
  absl::Status RemoveGroup(const std::string& user, const std::string& group)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<ShareRecord>> List(const std::string& user)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The history of completed downloads, oldest first.
  absl::Status AddCompleted(const CompletedRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<CompletedRecord>> ListCompleted(const std::string& user)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ClearCompleted(const std::string& user) ABSL_LOCKS_EXCLUDED(mu_);

  // Changes the tracker missed (see PendingChange).
  absl::Status PutPending(const PendingChange& change) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<PendingChange>> ListPending(const std::string& user)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets `change` once it landed, unless a later change replaced it;
  // with an empty request_id, any change of the file.
  absl::Status RemovePending(const PendingChange& change) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit ClientState(std::unique_ptr<sqlite::Database> db) : db_(std::move(db)) {}
  // Runs a statement that changes the state; its error tells the user where
  // the write failed (a full disk, most often).
  template <typename... Args>
  absl::Status Write(absl::string_view sql, const Args&... args)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Status status = db_->Run(sql, args...);
    if (status.ok()) return status;
    return absl::Status(status.code(), absl::StrCat("the state folder could not be written (",
                                                    status.message(), ")"));
  }
  absl::Mutex mu_;
  std::unique_ptr<sqlite::Database> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace groupshare::peer

#endif  // GROUPSHARE_SERVICES_PEER_CLIENT_STATE_H_
