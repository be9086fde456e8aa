// SqlStore, the tracker's rules once over a SqlDatabase (SQLite or
// PostgreSQL): the helpers its statements share, and the class. Every change
// runs in one write transaction, so its checks and its writes are atomic;
// reads run on readers beside it.
//
// The rules are split by subject: sql_store.cc (the schema, meta values,
// retried calls and transactions), sql_store_accounts.cc (users and
// sessions), sql_store_groups.cc (groups, join requests and notices) and
// sql_store_files.cc (files, shares and holders). Only they include this;
// the rest of the tracker knows the Store interface (store.h).
#ifndef GROUPSHARE_SERVICES_TRACKER_SQL_STORE_INTERNAL_H_
#define GROUPSHARE_SERVICES_TRACKER_SQL_STORE_INTERNAL_H_

#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/crypto.h"
#include "core/status_macros.h"
#include "services/tracker/sql_database.h"
#include "services/tracker/store.h"

namespace groupshare::tracker::sql {

inline int64_t Secs(absl::Time t) { return absl::ToUnixSeconds(t); }

inline SqlParam P(const std::string& v) { return v; }
inline SqlParam P(int64_t v) { return v; }
inline SqlParam P(int v) { return int64_t{v}; }
inline SqlParam P(uint32_t v) { return int64_t{v}; }
inline SqlParam P(uint64_t v) { return static_cast<int64_t>(v); }
inline SqlParam P(bool v) { return int64_t{v ? 1 : 0}; }
inline SqlParam P(SqlBytes v) { return v; }

template <typename... Args>
inline absl::StatusOr<SqlRows> Q(SqlConnection& c, absl::string_view sql, const Args&... args) {
  const SqlParam params[] = {P(args)..., P(int64_t{0})};  // never empty
  return c.Execute(sql, absl::MakeConstSpan(params, sizeof...(Args)));
}

inline absl::Status NoSuchGroup(const std::string& group_id) {
  return absl::NotFoundError(
      absl::StrCat("no group '", group_id, "'; ListGroups lists the groups there are"));
}
inline absl::Status NoSuchFile(const std::string& group_id, const std::string& name) {
  return absl::NotFoundError(
      absl::StrCat("group '", group_id, "' has no file '", name, "'; ListFiles lists its files"));
}
inline absl::Status Limit(absl::string_view what, int64_t limit, absl::string_view then) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " (the tracker's limit is ", limit, "); ", then));
}

inline absl::StatusOr<bool> Exists(SqlConnection& c, absl::string_view sql, const std::string& a,
                                   const std::string& b) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c, sql, a, b));
  return !rows.empty();
}
inline absl::StatusOr<bool> UserExists(SqlConnection& c, const std::string& user_id) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c, "SELECT 1 FROM users WHERE user_id = $1", user_id));
  return !rows.empty();
}
inline absl::StatusOr<bool> IsMember(SqlConnection& c, const std::string& user_id,
                                     const std::string& group_id) {
  return Exists(c, "SELECT 1 FROM members WHERE user_id = $1 AND group_id = $2", user_id, group_id);
}
inline absl::StatusOr<int64_t> Count(SqlConnection& c, absl::string_view sql,
                                     const std::string& key) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c, sql, key));
  return rows.Int(0, 0);
}
inline absl::StatusOr<std::optional<std::string>> GroupOwner(SqlConnection& c,
                                                             const std::string& group_id) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c, "SELECT owner FROM groups_ WHERE group_id = $1", group_id));
  if (rows.empty()) return std::optional<std::string>();
  return std::optional<std::string>(rows.Text(0, 0));
}
// The group's owner; NOT_FOUND when there is no such group.
inline absl::StatusOr<std::string> RequireGroup(SqlConnection& c, const std::string& group_id) {
  ASSIGN_OR_RETURN(auto owner, GroupOwner(c, group_id));
  if (!owner.has_value()) return NoSuchGroup(group_id);
  return *owner;
}
inline absl::Status RequireOwner(SqlConnection& c, const std::string& user_id,
                                 const std::string& group_id) {
  ASSIGN_OR_RETURN(std::string owner, RequireGroup(c, group_id));
  if (owner != user_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("only the owner of group '", group_id, "' (", owner, ") can do that"));
  }
  return absl::OkStatus();
}
// The version of the group's files (see BumpFiles) when `user_id` is a
// member; NOT_FOUND (group) or PERMISSION_DENIED (not a member) otherwise.
// One statement: this runs before every read of a group.
inline absl::Status NotAMember(const std::string& group_id) {
  return absl::PermissionDeniedError(
      absl::StrCat("you are not a member of group '", group_id,
                   "'; ask to join it (JoinGroup) and wait for its owner to accept"));
}
inline absl::StatusOr<int64_t> RequireMemberFilesVersion(SqlConnection& c,
                                                         const std::string& user_id,
                                                         const std::string& group_id) {
  ASSIGN_OR_RETURN(
      SqlRows rows,
      Q(c,
        "SELECT CASE WHEN EXISTS(SELECT 1 FROM members m WHERE m.group_id = g.group_id "
        "AND m.user_id = $2) THEN 1 ELSE 0 END, g.files_version FROM groups_ g "
        "WHERE g.group_id = $1",
        group_id, user_id));
  if (rows.empty()) return NoSuchGroup(group_id);
  if (rows.Int(0, 0) == 0) return NotAMember(group_id);
  return rows.Int(0, 1);
}
inline absl::Status RequireMember(SqlConnection& c, const std::string& user_id,
                                  const std::string& group_id) {
  return RequireMemberFilesVersion(c, user_id, group_id).status();
}
// Gives the group's files a new version: every change to its files or
// shares calls this in its transaction. A random number, so that a group
// deleted and made again never repeats a version a cache has seen.
inline absl::Status BumpFiles(SqlConnection& c, const std::string& group_id) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* const gen = new absl::BitGen;
  int64_t version;
  {
    absl::MutexLock lock(&mu);
    version = absl::Uniform<int64_t>(*gen, 1, std::numeric_limits<int64_t>::max());
  }
  return Q(c, "UPDATE groups_ SET files_version = $2 WHERE group_id = $1", group_id, version)
      .status();
}
inline absl::StatusOr<std::optional<FileRecord>> FindFile(SqlConnection& c,
                                                          const std::string& group_id,
                                                          const std::string& name) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c,
                                   "SELECT name, size, piece_size, sha1, piece_sha1, sha1_chain "
                                   "FROM files "
                                   "WHERE group_id = $1 AND name = $2",
                                   group_id, name));
  if (rows.empty()) return std::optional<FileRecord>();
  return std::optional<FileRecord>(FileRecord{
      rows.Text(0, 0), static_cast<uint64_t>(rows.Int(0, 1)), static_cast<uint32_t>(rows.Int(0, 2)),
      rows.Text(0, 3), UnpackSha1Hex(rows.Text(0, 4)), UnpackSha1Hex(rows.Text(0, 5))});
}
// Whether the shares table's number says the holder has every piece.
inline bool HoldsAll(int64_t holding) {
  return holding == static_cast<int64_t>(Store::Holding::kAll);
}
// Forgets the group's files that nobody holds a piece of any more, with the
// downloads that have none yet.
inline absl::Status DropUnsharedFiles(SqlConnection& c, const std::string& group_id) {
  return Q(c,
           "DELETE FROM files WHERE group_id = $1 AND NOT EXISTS (SELECT 1 FROM shares s "
           "WHERE s.group_id = $1 AND s.name = files.name AND s.complete >= 0)",
           group_id)
      .status();
}

// A group's files with who holds each, as of one files_version. Which
// holders are online is read anew each time (sessions come and go without
// changing the files).
struct GroupFiles {
  struct Holder {
    std::string user_id;
    std::string client_id;
    bool complete;
  };
  struct File {
    std::string name;
    uint64_t size;
    std::string sha1;
    std::vector<Holder> holders;
  };
  int64_t version = 0;
  std::vector<File> files;  // by name
};

// Files kept in the cache of ListFiles at most; past it, it starts over.
constexpr size_t kMaxCachedFiles = 200000;

// ListFiles' cache: a group's files as of a version. Shared by a store and
// its views bound to a transaction.
struct FilesCache {
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::shared_ptr<const GroupFiles>> groups ABSL_GUARDED_BY(mu);
  size_t files ABSL_GUARDED_BY(mu) = 0;
};

// Values reads found lately, each kept for the second (an epoch, in Unix
// seconds) it was read in: nearly every call reads its caller's session, and
// every ListFiles which members of the group are online, and nearly none
// changes them. This process's changes show at once (a write forgets, and a
// read that raced it is not kept: Put takes the generation from before the
// read); another tracker's on the same database from the next second. Only
// the newest second's values are kept, so it holds what one second's calls
// read at most. Shared by a store and its views bound to a transaction.
template <typename Value>
class RecentReads {
 public:
  static constexpr size_t kMaxEntries = 100000;  // past it, it starts over

  std::optional<Value> Get(const std::string& key, int64_t epoch) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.epoch != epoch) return std::nullopt;
    return it->second.value;
  }
  // What Put must be given, taken before the read.
  uint64_t Generation() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return generation_;
  }
  // Keeps `value`, read in `epoch`, unless a write came since `generation`.
  void Put(const std::string& key, Value value, uint64_t generation, int64_t epoch)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (generation != generation_ || epoch < newest_epoch_) return;
    if (epoch > newest_epoch_ || entries_.size() >= kMaxEntries) entries_.clear();
    newest_epoch_ = epoch;
    entries_.insert_or_assign(key, Entry{std::move(value), epoch});
  }
  // Before and after a write of `key`'s value (of every one when empty).
  void Forget(const std::string& key) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ++generation_;
    if (key.empty()) {
      entries_.clear();
    } else {
      entries_.erase(key);
    }
  }

 private:
  struct Entry {
    Value value;
    int64_t epoch;
  };
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t newest_epoch_ ABSL_GUARDED_BY(mu_) = 0;
};

// Sessions by token hash, each kept for the wall clock's second it was read
// in (SessionEpoch): a session is read before a call's time is known.
using SessionCache = RecentReads<Session>;
inline int64_t SessionEpoch() { return Secs(absl::Now()); }

// What ListFiles lists of a group: its files, for each how many of its
// holders are online (complete, partial), and who may list them.
struct GroupListing {
  std::shared_ptr<const GroupFiles> files;
  std::vector<std::pair<int, int>> online;  // as files->files
  absl::flat_hash_set<std::string> members;
};
// Listings by group; every write but a session's extension forgets them all.
using ListingCache = RecentReads<std::shared_ptr<const GroupListing>>;

class SqlStore final : public Store {
 public:
  SqlStore(std::unique_ptr<SqlDatabase> db, StoreLimits limits)
      : owned_db_(std::move(db)),
        owned_cache_(std::make_unique<FilesCache>()),
        owned_sessions_(std::make_unique<SessionCache>()),
        owned_listings_(std::make_unique<ListingCache>()),
        db_(owned_db_.get()),
        limits_(limits),
        cache_(owned_cache_.get()),
        sessions_(owned_sessions_.get()),
        listings_(owned_listings_.get()) {}
  // `store` bound to the write transaction on `tx`: its writes and reads
  // run there (see Write).
  SqlStore(const SqlStore& store, SqlConnection* tx)
      : db_(store.db_),
        limits_(store.limits_),
        cache_(store.cache_),
        sessions_(store.sessions_),
        listings_(store.listings_),
        tx_(tx) {}

  // The schema, meta values and retried calls: sql_store.cc.

  // Brings the schema to the newest version, in one transaction (two
  // trackers starting at once upgrade it once).
  absl::Status Upgrade();

  absl::StatusOr<std::string> GetOrPutMeta(const std::string& key,
                                           const std::string& initial) override;
  absl::StatusOr<std::string> GetMeta(const std::string& key) override;
  absl::Status PutMeta(const std::string& key, const std::string& value) override;
  absl::StatusOr<RequestOutcome> RunOnce(
      const std::string& key, absl::Time now,
      const std::function<absl::Status(Store& tx, std::string* response)>& change) override;

  // Users and sessions: sql_store_accounts.cc.
  absl::Status CreateUser(const std::string& user_id, const std::string& password_hash,
                          absl::Time now) override;
  absl::StatusOr<std::string> GetPasswordHash(const std::string& user_id) override;
  absl::Status CreateSession(const std::string& token_hash, const Session& session,
                             absl::Time now) override;
  absl::StatusOr<bool> IsKnownClient(const std::string& user_id,
                                     const std::string& client_id) override;
  absl::StatusOr<Session> GetSession(const std::string& token_hash) override;
  absl::Status ExtendSession(const std::string& token_hash, absl::Time expires,
                             const std::optional<std::string>& relay) override;
  absl::Status DeleteSession(const std::string& token_hash) override;
  // Runs `write`, a change of `token_hash`'s session (of any when empty),
  // with the session cache forgetting it before and after (and the listings,
  // as Write does, unless `listings_too` is false).
  absl::Status WriteSession(const std::string& token_hash,
                            const std::function<absl::Status(SqlConnection&)>& write,
                            bool listings_too = true);

  // Groups, join requests and notices: sql_store_groups.cc.
  absl::Status CreateGroup(const std::string& owner, const std::string& group_id,
                           absl::Time now) override;
  absl::StatusOr<std::vector<GroupView>> ListGroups(const std::string& user_id,
                                                    const PageRequest& page) override;
  absl::Status RequestJoin(const std::string& user_id, const std::string& group_id,
                           absl::Time now) override;
  absl::StatusOr<LeaveResult> LeaveGroup(const std::string& user_id,
                                         const std::string& group_id) override;
  absl::StatusOr<std::vector<NoticeView>> TakeNotices(const std::string& user_id, int64_t seen,
                                                      int limit) override;
  absl::StatusOr<std::vector<JoinRequestView>> ListRequests(const std::string& owner,
                                                            const std::string& group_id) override;
  absl::Status AnswerRequest(const std::string& owner, const std::string& group_id,
                             const std::string& user_id, bool accept, absl::Time now) override;

  // Files, shares and holders: sql_store_files.cc.
  absl::StatusOr<bool> AddFile(const std::string& user_id, const std::string& client_id,
                               const std::string& group_id, const FileRecord& file,
                               absl::Time now) override;
  absl::StatusOr<FileListing> ListFiles(const std::string& user_id, const std::string& group_id,
                                        const PageRequest& page, absl::Time now) override;
  bool CanListFilesFromCache(const std::string& token_hash, const std::string& group_id,
                             absl::Time now) override;
  absl::StatusOr<FileRecord> GetFile(const std::string& user_id, const std::string& group_id,
                                     const std::string& name) override;
  absl::StatusOr<FilePeers> GetFileAndPeers(const std::string& user_id,
                                            const std::string& client_id,
                                            const std::string& group_id, const std::string& name,
                                            absl::Time now) override;
  absl::Status RemoveShare(const std::string& user_id, const std::string& client_id,
                           const std::string& group_id, const std::string& name) override;
  absl::Status AddHolder(const std::string& user_id, const std::string& client_id,
                         const std::string& group_id, const std::string& name,
                         Holding holding) override;
  absl::StatusOr<std::vector<ShareView>> ListShares(const std::string& user_id,
                                                    const std::string& client_id) override;

 private:
  // ALREADY_EXISTS when `table` has an id that looks like `id` (the same
  // skeleton), naming it.
  static absl::Status RequireUnlike(SqlConnection& c, const char* table, const char* column,
                                    const char* what, const std::string& skeleton,
                                    const std::string& id);

  // Tells `to` at its next keep-alive; a user keeps its last 100.
  static absl::Status AddNotice(SqlConnection& c, const std::string& to, NoticeView::Kind kind,
                                const std::string& group_id, const std::string& other);

  // Runs `body` in a write transaction, the listings cache forgetting
  // before and after; in a store bound to one (a change under RunOnce), on
  // that transaction's connection within a savepoint, which an error rolls
  // back alone.
  absl::Status Write(const std::function<absl::Status(SqlConnection&)>& body,
                     bool listings_too = true);
  // Runs `body` on a reader, its statements on one snapshot; in a store
  // bound to a transaction, there, so that it sees the transaction's own
  // changes.
  absl::Status Read(const std::function<absl::Status(SqlConnection&)>& body);
  // The same for a body of one statement, which needs no snapshot.
  absl::Status ReadOne(const std::function<absl::Status(SqlConnection&)>& body);

  // What `user_id` lists of `group_id` at `now`: from the cache, or read
  // anew (NOT_FOUND, PERMISSION_DENIED for a group it is not a member of).
  absl::StatusOr<std::shared_ptr<const GroupListing>> ListingOf(const std::string& user_id,
                                                                const std::string& group_id,
                                                                absl::Time now);
  // The group's files as of `version`, from the cache or read anew.
  absl::StatusOr<std::shared_ptr<const GroupFiles>> FilesOf(SqlConnection& c,
                                                            const std::string& group_id,
                                                            int64_t version)
      ABSL_LOCKS_EXCLUDED(cache_->mu);

  // Set in the store that owns them, null in a bound one.
  const std::unique_ptr<SqlDatabase> owned_db_;
  const std::unique_ptr<FilesCache> owned_cache_;
  const std::unique_ptr<SessionCache> owned_sessions_;
  const std::unique_ptr<ListingCache> owned_listings_;
  SqlDatabase* const db_;
  const StoreLimits limits_;
  FilesCache* const cache_;
  SessionCache* const sessions_;
  ListingCache* const listings_;
  SqlConnection* const tx_ = nullptr;  // the transaction a bound store runs in
};

}  // namespace groupshare::tracker::sql

#endif  // GROUPSHARE_SERVICES_TRACKER_SQL_STORE_INTERNAL_H_
