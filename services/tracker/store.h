// The tracker's state: users, sessions, groups, memberships, join requests,
// files and who shares them. The rules that must hold atomically (only the
// owner answers requests, only members register files, ...) are enforced
// here, inside one transaction each, so every store keeps them alike.
//
// Implementations are safe for concurrent use from many threads. Times are
// passed in by the caller, so tests control the clock. Ids arrive already
// validated (core/ids.h).
#ifndef GROUPSHARE_SERVICES_TRACKER_STORE_H_
#define GROUPSHARE_SERVICES_TRACKER_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace groupshare::tracker {

// How long past its expiry a session may still come back (its client was
// cut off); after that it is over, and purged.
inline constexpr absl::Duration kSessionComeback = absl::Hours(24);

struct Session {
  std::string user_id;
  std::string peer_address;
  absl::Time expires;
  // Which of the user's clients holds the session ('' for one that does
  // not say). Shares belong to a (user, client) pair.
  std::string client_id;
};

// Bounds on what one user can make the tracker keep. RESOURCE_EXHAUSTED
// when a call would pass one.
struct StoreLimits {
  int64_t groups_per_owner = 100;
  int64_t pending_requests_per_group = 1000;
  int64_t files_per_group = 10000;
  int64_t sessions_per_user = 16;  // live ones
  // Piece hashes (20 bytes a piece) of the files a user shares, in all.
  int64_t metadata_bytes_per_user = int64_t{32} << 20;
};

// One page of a listing: items after `after` (an item's key; empty for the
// first page), at most `size` of them.
struct PageRequest {
  std::string after;
  int64_t size = 1000;
};

// The recorded answer of a call that changed state (see RunOnce).
struct RequestOutcome {
  int code = 0;  // absl::StatusCode
  std::string message;
  std::string response;  // the serialized response message
};

enum class Relation { kNone, kPending, kMember, kOwner, kRejected };

struct GroupView {
  std::string group_id;
  std::string owner;
  int64_t member_count = 0;
  Relation relation = Relation::kNone;  // the asking user's
};

struct JoinRequestView {
  std::string user_id;
  absl::Time requested_at;
};

struct LeaveResult {
  std::string new_owner;  // when the owner left and the group passed on
  bool group_deleted = false;
};

// A file's identity and piece hashes, as registered by its first sharer.
struct FileRecord {
  std::string name;
  uint64_t size = 0;
  uint32_t piece_size = 0;
  std::string sha1;                     // lower-case hex
  std::vector<std::string> piece_sha1;  // lower-case hex, one per piece
  // The whole file's SHA1 chain (tv1::FileInfo.sha1_chain), lower-case
  // hex; empty when its sharers sent none.
  std::vector<std::string> sha1_chain;
};

// A file of a listing: its strings point into the listing's source.
struct FileSummaryView {
  absl::string_view name;
  uint64_t size = 0;
  absl::string_view sha1;
  // Live clients that share the file whole / in part.
  int64_t online_seeders = 0;
  int64_t online_partial = 0;
};

// A page of a group's files, which keeps what their views point into (the
// store's copy of the group's files) alive: a listing copies no string.
class FileListing {
 public:
  FileListing() = default;
  explicit FileListing(std::shared_ptr<const void> source) : source_(std::move(source)) {}
  void push_back(const FileSummaryView& file) { files_.push_back(file); }
  void reserve(size_t n) { files_.reserve(n); }

  size_t size() const { return files_.size(); }
  bool empty() const { return files_.empty(); }
  const FileSummaryView& operator[](size_t i) const { return files_[i]; }
  const FileSummaryView& front() const { return files_.front(); }
  const FileSummaryView& back() const { return files_.back(); }
  std::vector<FileSummaryView>::const_iterator begin() const { return files_.begin(); }
  std::vector<FileSummaryView>::const_iterator end() const { return files_.end(); }

 private:
  std::vector<FileSummaryView> files_;
  std::shared_ptr<const void> source_;
};

struct PeerView {
  std::string user_id;
  std::string client_id;
  std::string address;
  bool complete = false;
  std::string relay;  // where it waits, when members cannot reach it directly
};

struct FilePeers {
  FileRecord file;
  std::vector<PeerView> peers;
};

struct ShareView {
  std::string group_id;
  std::string file_name;
  std::string sha1;
  uint64_t size = 0;
  bool complete = false;
};

// Something that concerns a user, kept until its client has seen it (see
// tracker.proto's Notice).
struct NoticeView {
  // As tracker.v1.Notice.Kind numbers them.
  enum Kind { kRequestWaiting = 1, kRequestAccepted = 2, kRequestRejected = 3,
              kGroupHandedToYou = 4 };
  int64_t seq = 0;
  int kind = 0;
  std::string group_id;
  std::string user_id;
};

class Store {
 public:
  virtual ~Store() = default;

  // A value kept for the tracker itself (its signing key): returns the
  // stored value for `key`, storing `initial` first when there is none.
  virtual absl::StatusOr<std::string> GetOrPutMeta(const std::string& key,
                                                   const std::string& initial) = 0;
  // The value for `key`; NOT_FOUND when there is none. Reads only.
  virtual absl::StatusOr<std::string> GetMeta(const std::string& key) = 0;
  // Stores `value` for `key`, replacing what was there.
  virtual absl::Status PutMeta(const std::string& key, const std::string& value) = 0;

  // Accounts. ALREADY_EXISTS for a taken user id.
  virtual absl::Status CreateUser(const std::string& user_id,
                                  const std::string& password_hash,
                                  absl::Time now) = 0;
  // NOT_FOUND for an unknown user.
  virtual absl::StatusOr<std::string> GetPasswordHash(const std::string& user_id) = 0;

  // Sessions are keyed by a hash of the token, never the token itself. A
  // new session of a named client ends that client's earlier sessions.
  // RESOURCE_EXHAUSTED when the user has sessions_per_user live ones.
  // Sessions a day past their expiry are forgotten.
  // A named client is remembered as one of the user's (the last 32 of
  // them), for IsKnownClient.
  virtual absl::Status CreateSession(const std::string& token_hash,
                                     const Session& session, absl::Time now) = 0;
  // Whether `client_id` (not empty) opened a session of `user_id` before.
  virtual absl::StatusOr<bool> IsKnownClient(const std::string& user_id,
                                             const std::string& client_id) = 0;
  // The session, expired or not (the caller decides what an expired one
  // may do). UNAUTHENTICATED when there is no such session. Reads only.
  virtual absl::StatusOr<Session> GetSession(const std::string& token_hash) = 0;
  // Moves the expiry of a session and, when given, records the relay its
  // client waits at ("" for none); UNAUTHENTICATED as GetSession.
  virtual absl::Status ExtendSession(const std::string& token_hash, absl::Time expires,
                                     const std::optional<std::string>& relay) = 0;
  virtual absl::Status DeleteSession(const std::string& token_hash) = 0;

  // Retried calls. Runs `change` once per `key` (a hash of caller, method,
  // request id and request), in one write transaction with the record of
  // its outcome, so that the change and its answer are kept together or not
  // at all. `change` makes its changes through `tx`, this store bound to
  // that transaction (each of its calls a savepoint there, which an error
  // rolls back alone), and serializes its response into `*response`. When
  // `key` has an outcome already, returns it without running `change`. A
  // change that fails with UNAVAILABLE or INTERNAL (try again) is rolled
  // back and not recorded: this returns its status. Records older than an
  // hour are forgotten.
  virtual absl::StatusOr<RequestOutcome> RunOnce(
      const std::string& key, absl::Time now,
      const std::function<absl::Status(Store& tx, std::string* response)>& change) = 0;

  // Groups. ALREADY_EXISTS for a taken group id; the creator is owner and
  // first member.
  virtual absl::Status CreateGroup(const std::string& owner,
                                   const std::string& group_id, absl::Time now) = 0;
  // Groups ordered by id, one page, with `user_id`'s relation to each.
  virtual absl::StatusOr<std::vector<GroupView>> ListGroups(
      const std::string& user_id, const PageRequest& page) = 0;
  // NOT_FOUND (group), ALREADY_EXISTS (member already, or request pending),
  // RESOURCE_EXHAUSTED (the group has too many pending requests).
  virtual absl::Status RequestJoin(const std::string& user_id,
                                   const std::string& group_id, absl::Time now) = 0;
  // NOT_FOUND (group, or not a member). Drops the user's shares in the
  // group; hands an owner's group to the oldest member or deletes it.
  virtual absl::StatusOr<LeaveResult> LeaveGroup(const std::string& user_id,
                                                 const std::string& group_id) = 0;
  // NOT_FOUND (group), PERMISSION_DENIED (not the owner). Oldest first.
  // The notices for `user_id` after `seen`, oldest first, at most `limit`;
  // those up to `seen` are forgotten. The groups' calls above add them.
  virtual absl::StatusOr<std::vector<NoticeView>> TakeNotices(const std::string& user_id,
                                                              int64_t seen, int limit) = 0;
  virtual absl::StatusOr<std::vector<JoinRequestView>> ListRequests(
      const std::string& owner, const std::string& group_id) = 0;
  // NOT_FOUND (group, or no pending request from `user_id`),
  // PERMISSION_DENIED (not the owner).
  virtual absl::Status AnswerRequest(const std::string& owner,
                                     const std::string& group_id,
                                     const std::string& user_id, bool accept,
                                     absl::Time now) = 0;

  // Files. Each needs `user_id` to be a member: NOT_FOUND (group),
  // PERMISSION_DENIED (not a member).
  //
  // Registers `file` as shared (complete) by the user's client: true when
  // it is new to the group, false when the group had it with the same SHA1
  // already. ALREADY_EXISTS when the name is taken by other content,
  // FAILED_PRECONDITION for the same content with other piece hashes,
  // RESOURCE_EXHAUSTED when the group holds files_per_group files.
  virtual absl::StatusOr<bool> AddFile(const std::string& user_id,
                                       const std::string& client_id,
                                       const std::string& group_id,
                                       const FileRecord& file, absl::Time now) = 0;
  // Ordered by name, one page; online counts as of `now`.
  virtual absl::StatusOr<FileListing> ListFiles(
      const std::string& user_id, const std::string& group_id, const PageRequest& page,
      absl::Time now) = 0;
  // Whether the session of `token_hash` and its ListFiles of `group_id` at
  // `now` would be answered from what the store keeps, without waiting on
  // the database (for a caller on a thread that must not wait).
  virtual bool CanListFilesFromCache(const std::string& token_hash, const std::string& group_id,
                                     absl::Time now) = 0;
  // NOT_FOUND for an unknown file.
  virtual absl::StatusOr<FileRecord> GetFile(const std::string& user_id,
                                             const std::string& group_id,
                                             const std::string& name) = 0;
  // The file, and its online holders other than the caller's own client
  // (the user's other clients are peers too), seeders first: both as of one
  // read. NOT_FOUND for an unknown file.
  virtual absl::StatusOr<FilePeers> GetFileAndPeers(const std::string& user_id,
                                                    const std::string& client_id,
                                                    const std::string& group_id,
                                                    const std::string& name,
                                                    absl::Time now) = 0;
  // NOT_FOUND when the file is unknown or the user does not share it.
  // Forgets the file when its last sharer stops.
  virtual absl::Status RemoveShare(const std::string& user_id,
                                   const std::string& client_id,
                                   const std::string& group_id,
                                   const std::string& name) = 0;
  // What a holder of a file holds. Kept as the number in the shares table.
  enum class Holding : int {
    // A download that has no verified piece yet: listed to the other
    // holders, so that they connect before its first piece, but it does not
    // keep the file in the group.
    kNothingYet = -1,
    kSome = 0,
    kAll = 1,
  };
  // Records the user as holding the file so (NOT_FOUND for an unknown one).
  // A holder never goes down: all stays all, some stays some.
  virtual absl::Status AddHolder(const std::string& user_id,
                                 const std::string& client_id,
                                 const std::string& group_id,
                                 const std::string& name, Holding holding) = 0;
  // Everything the user's client shares, in every group.
  virtual absl::StatusOr<std::vector<ShareView>> ListShares(
      const std::string& user_id, const std::string& client_id) = 0;
};

// Opens (creating if needed, upgrading an older schema) a SQLite store at
// `path`. Several trackers on one machine may share the file.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                       StoreLimits limits = {},
                                                       int readers = 4);

// Opens a PostgreSQL store: `conninfo` is a postgresql:// URI or a libpq
// key=value string (several hosts with target_session_attrs=read-write for
// a primary with standbys). Creates or upgrades the schema. UNAVAILABLE
// when the database cannot be reached.
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& conninfo,
                                                         StoreLimits limits = {},
                                                         int connections = 8);

// True when `db` names a PostgreSQL database rather than a SQLite file.
bool IsPostgresConninfo(absl::string_view db);

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_STORE_H_
