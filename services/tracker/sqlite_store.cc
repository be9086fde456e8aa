// The tracker's store on one SQLite file (WAL, synchronous=FULL): every
// acknowledged change is on disk before the call returns.

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/crypto.h"
#include "core/sqlite.h"
#include "core/status_macros.h"
#include "services/tracker/store.h"

namespace groupshare::tracker {
namespace {

using sqlite::Blob;
using sqlite::Database;
using sqlite::Transaction;

constexpr absl::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  user_id TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  token_hash BLOB PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(user_id),
  peer_address TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_id, expires_at);
CREATE TABLE IF NOT EXISTS groups_ (
  group_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES users(user_id),
  created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  group_id TEXT NOT NULL REFERENCES groups_(group_id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(user_id),
  joined_at INTEGER NOT NULL,
  UNIQUE (group_id, user_id));
CREATE TABLE IF NOT EXISTS requests (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  group_id TEXT NOT NULL REFERENCES groups_(group_id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(user_id),
  requested_at INTEGER NOT NULL,
  UNIQUE (group_id, user_id));
CREATE TABLE IF NOT EXISTS rejections (
  group_id TEXT NOT NULL REFERENCES groups_(group_id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(user_id),
  rejected_at INTEGER NOT NULL,
  PRIMARY KEY (group_id, user_id));
CREATE TABLE IF NOT EXISTS files (
  group_id TEXT NOT NULL REFERENCES groups_(group_id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  piece_size INTEGER NOT NULL,
  sha1 TEXT NOT NULL,
  piece_sha1 BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (group_id, name));
CREATE TABLE IF NOT EXISTS shares (
  group_id TEXT NOT NULL,
  name TEXT NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(user_id),
  complete INTEGER NOT NULL,
  PRIMARY KEY (group_id, name, user_id),
  FOREIGN KEY (group_id, name) REFERENCES files(group_id, name) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS shares_by_user ON shares(user_id);
)sql";

int64_t Secs(absl::Time t) { return absl::ToUnixSeconds(t); }

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}

  absl::StatusOr<std::string> GetOrPutMeta(const std::string& key,
                                           const std::string& initial) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    RETURN_IF_ERROR(db_->Run("INSERT OR IGNORE INTO meta(key, value) VALUES(?, ?)",
                             key, Blob{initial}));
    ASSIGN_OR_RETURN(auto q, db_->Query("SELECT value FROM meta WHERE key = ?", key));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return absl::InternalError("meta value vanished");
    std::string value = q.Text(0);
    RETURN_IF_ERROR(tx.Commit());
    return value;
  }

  absl::Status CreateUser(const std::string& user_id, const std::string& password_hash,
                          absl::Time now) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    ASSIGN_OR_RETURN(bool exists, UserExists(user_id));
    if (exists) {
      return absl::AlreadyExistsError(absl::StrCat(
          "user '", user_id, "' already exists; choose another user id or log in"));
    }
    RETURN_IF_ERROR(db_->Run(
        "INSERT INTO users(user_id, password_hash, created_at) VALUES(?, ?, ?)",
        user_id, password_hash, Secs(now)));
    return tx.Commit();
  }

  absl::StatusOr<std::string> GetPasswordHash(const std::string& user_id) override {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(auto q, db_->Query(
        "SELECT password_hash FROM users WHERE user_id = ?", user_id));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return NoSuchUser(user_id);
    return q.Text(0);
  }

  absl::Status CreateSession(const std::string& token_hash, const Session& session,
                             absl::Time now) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    // Sessions long gone are of no use to anybody.
    RETURN_IF_ERROR(db_->Run("DELETE FROM sessions WHERE expires_at < ?",
                             Secs(now - absl::Hours(24))));
    RETURN_IF_ERROR(db_->Run(
        "INSERT INTO sessions(token_hash, user_id, peer_address, created_at, expires_at) "
        "VALUES(?, ?, ?, ?, ?)",
        Blob{token_hash}, session.user_id, session.peer_address, Secs(now),
        Secs(session.expires)));
    return tx.Commit();
  }

  absl::StatusOr<Session> GetSession(const std::string& token_hash,
                                     absl::Time now) override {
    absl::MutexLock lock(&mu_);
    return LiveSession(token_hash, now);
  }

  absl::Status ExtendSession(const std::string& token_hash, absl::Time now,
                             absl::Time expires) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    RETURN_IF_ERROR(LiveSession(token_hash, now).status());
    RETURN_IF_ERROR(db_->Run("UPDATE sessions SET expires_at = ? WHERE token_hash = ?",
                             Secs(expires), Blob{token_hash}));
    return tx.Commit();
  }

  absl::Status DeleteSession(const std::string& token_hash) override {
    absl::MutexLock lock(&mu_);
    return db_->Run("DELETE FROM sessions WHERE token_hash = ?", Blob{token_hash});
  }

  absl::Status CreateGroup(const std::string& owner, const std::string& group_id,
                           absl::Time now) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    ASSIGN_OR_RETURN(auto found, GroupOwner(group_id));
    if (found.has_value()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "group '", group_id, "' already exists; choose another group id or join it"));
    }
    RETURN_IF_ERROR(db_->Run(
        "INSERT INTO groups_(group_id, owner, created_at) VALUES(?, ?, ?)",
        group_id, owner, Secs(now)));
    RETURN_IF_ERROR(db_->Run(
        "INSERT INTO members(group_id, user_id, joined_at) VALUES(?, ?, ?)",
        group_id, owner, Secs(now)));
    return tx.Commit();
  }

  absl::StatusOr<std::vector<GroupView>> ListGroups(const std::string& user_id) override {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(auto q, db_->Query(R"sql(
        SELECT g.group_id, g.owner,
               (SELECT COUNT(*) FROM members m WHERE m.group_id = g.group_id),
               EXISTS(SELECT 1 FROM members m WHERE m.group_id = g.group_id AND m.user_id = ?1),
               EXISTS(SELECT 1 FROM requests r WHERE r.group_id = g.group_id AND r.user_id = ?1),
               EXISTS(SELECT 1 FROM rejections j WHERE j.group_id = g.group_id AND j.user_id = ?1)
        FROM groups_ g ORDER BY g.group_id)sql", user_id));
    std::vector<GroupView> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      GroupView g{q.Text(0), q.Text(1), q.Int(2), Relation::kNone};
      if (g.owner == user_id) {
        g.relation = Relation::kOwner;
      } else if (q.Int(3)) {
        g.relation = Relation::kMember;
      } else if (q.Int(4)) {
        g.relation = Relation::kPending;
      } else if (q.Int(5)) {
        g.relation = Relation::kRejected;
      }
      out.push_back(std::move(g));
    }
    return out;
  }

  absl::Status RequestJoin(const std::string& user_id, const std::string& group_id,
                           absl::Time now) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    RETURN_IF_ERROR(RequireGroup(group_id).status());
    ASSIGN_OR_RETURN(bool member, IsMember(user_id, group_id));
    if (member) {
      return absl::AlreadyExistsError(
          absl::StrCat("you are already a member of group '", group_id, "'"));
    }
    ASSIGN_OR_RETURN(bool pending, HasRequest(user_id, group_id));
    if (pending) {
      return absl::AlreadyExistsError(absl::StrCat(
          "you already asked to join group '", group_id,
          "'; wait for its owner to accept"));
    }
    RETURN_IF_ERROR(db_->Run(
        "INSERT INTO requests(group_id, user_id, requested_at) VALUES(?, ?, ?)",
        group_id, user_id, Secs(now)));
    // Asking again: an earlier rejection is history.
    RETURN_IF_ERROR(db_->Run("DELETE FROM rejections WHERE group_id = ? AND user_id = ?",
                             group_id, user_id));
    return tx.Commit();
  }

  absl::StatusOr<LeaveResult> LeaveGroup(const std::string& user_id,
                                         const std::string& group_id) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    ASSIGN_OR_RETURN(std::string owner, RequireGroup(group_id));
    ASSIGN_OR_RETURN(bool member, IsMember(user_id, group_id));
    if (!member) {
      return absl::NotFoundError(
          absl::StrCat("you are not a member of group '", group_id, "'"));
    }
    RETURN_IF_ERROR(db_->Run("DELETE FROM members WHERE group_id = ? AND user_id = ?",
                             group_id, user_id));
    RETURN_IF_ERROR(db_->Run("DELETE FROM shares WHERE group_id = ? AND user_id = ?",
                             group_id, user_id));
    RETURN_IF_ERROR(DropUnsharedFiles(group_id));
    LeaveResult result;
    if (owner == user_id) {
      ASSIGN_OR_RETURN(auto q, db_->Query(
          "SELECT user_id FROM members WHERE group_id = ? ORDER BY seq LIMIT 1", group_id));
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (row) {
        result.new_owner = q.Text(0);
        RETURN_IF_ERROR(db_->Run("UPDATE groups_ SET owner = ? WHERE group_id = ?",
                                 result.new_owner, group_id));
      } else {
        RETURN_IF_ERROR(db_->Run("DELETE FROM groups_ WHERE group_id = ?", group_id));
        result.group_deleted = true;
      }
    }
    RETURN_IF_ERROR(tx.Commit());
    return result;
  }

  absl::StatusOr<std::vector<JoinRequestView>> ListRequests(
      const std::string& owner, const std::string& group_id) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(RequireOwner(owner, group_id));
    ASSIGN_OR_RETURN(auto q, db_->Query(
        "SELECT user_id, requested_at FROM requests WHERE group_id = ? ORDER BY seq",
        group_id));
    std::vector<JoinRequestView> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      out.push_back({q.Text(0), absl::FromUnixSeconds(q.Int(1))});
    }
    return out;
  }

  absl::Status AnswerRequest(const std::string& owner, const std::string& group_id,
                             const std::string& user_id, bool accept,
                             absl::Time now) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    RETURN_IF_ERROR(RequireOwner(owner, group_id));
    RETURN_IF_ERROR(db_->Run("DELETE FROM requests WHERE group_id = ? AND user_id = ?",
                             group_id, user_id));
    if (db_->Changes() == 0) {
      ASSIGN_OR_RETURN(bool member, IsMember(user_id, group_id));
      if (member) {
        return absl::AlreadyExistsError(
            absl::StrCat("'", user_id, "' is a member of group '", group_id, "' already"));
      }
      return absl::NotFoundError(absl::StrCat(
          "no pending request from '", user_id, "' to join group '", group_id,
          "'; the requests: list_requests ", group_id, " (ListRequests)"));
    }
    if (accept) {
      RETURN_IF_ERROR(db_->Run(
          "INSERT INTO members(group_id, user_id, joined_at) VALUES(?, ?, ?)",
          group_id, user_id, Secs(now)));
    } else {
      // Kept, so that the requester can see it, until it asks again.
      RETURN_IF_ERROR(db_->Run(
          "INSERT OR REPLACE INTO rejections(group_id, user_id, rejected_at) VALUES(?, ?, ?)",
          group_id, user_id, Secs(now)));
    }
    return tx.Commit();
  }

  absl::StatusOr<bool> AddFile(const std::string& user_id, const std::string& group_id,
                               const FileRecord& file, absl::Time now) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    RETURN_IF_ERROR(RequireMember(user_id, group_id));
    ASSIGN_OR_RETURN(auto existing, FindFile(group_id, file.name));
    bool created = !existing.has_value();
    if (existing.has_value()) {
      if (existing->sha1 != file.sha1 || existing->size != file.size ||
          existing->piece_size != file.piece_size) {
        return absl::AlreadyExistsError(absl::StrCat(
            "group '", group_id, "' already has a different file named '", file.name,
            "'; rename yours and upload it again"));
      }
      // Same content, other piece hashes: one of the two registrations is
      // wrong, and the first one stands.
      if (existing->piece_sha1 != file.piece_sha1) {
        return absl::FailedPreconditionError(absl::StrCat(
            "'", file.name, "' in group '", group_id,
            "' is registered with the same SHA1 but other piece hashes; hash the file "
            "again (upload_file, or UploadFile with the piece hashes of that content)"));
      }
    } else {
      RETURN_IF_ERROR(db_->Run(
          "INSERT INTO files(group_id, name, size, piece_size, sha1, piece_sha1, "
          "created_at) VALUES(?, ?, ?, ?, ?, ?, ?)",
          group_id, file.name, file.size, file.piece_size, file.sha1,
          Blob{PackSha1Hex(file.piece_sha1)}, Secs(now)));
    }
    RETURN_IF_ERROR(db_->Run(
        "INSERT INTO shares(group_id, name, user_id, complete) VALUES(?, ?, ?, 1) "
        "ON CONFLICT DO UPDATE SET complete = 1",
        group_id, file.name, user_id));
    RETURN_IF_ERROR(tx.Commit());
    return created;
  }

  absl::StatusOr<std::vector<FileSummaryView>> ListFiles(const std::string& user_id,
                                                         const std::string& group_id,
                                                         absl::Time now) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(RequireMember(user_id, group_id));
    ASSIGN_OR_RETURN(auto q, db_->Query(R"sql(
        SELECT f.name, f.size, f.sha1,
          (SELECT COUNT(*) FROM shares s WHERE s.group_id = f.group_id AND s.name = f.name
             AND s.complete = 1 AND EXISTS(SELECT 1 FROM sessions x
               WHERE x.user_id = s.user_id AND x.expires_at > ?2)),
          (SELECT COUNT(*) FROM shares s WHERE s.group_id = f.group_id AND s.name = f.name
             AND s.complete = 0 AND EXISTS(SELECT 1 FROM sessions x
               WHERE x.user_id = s.user_id AND x.expires_at > ?2))
        FROM files f WHERE f.group_id = ?1 ORDER BY f.name)sql",
        group_id, Secs(now)));
    std::vector<FileSummaryView> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      out.push_back({q.Text(0), static_cast<uint64_t>(q.Int(1)), q.Text(2), q.Int(3),
                     q.Int(4)});
    }
    return out;
  }

  absl::StatusOr<FileRecord> GetFile(const std::string& user_id,
                                     const std::string& group_id,
                                     const std::string& name) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(RequireMember(user_id, group_id));
    ASSIGN_OR_RETURN(auto file, FindFile(group_id, name));
    if (!file.has_value()) return NoSuchFile(group_id, name);
    return *std::move(file);
  }

  absl::StatusOr<std::vector<PeerView>> GetPeers(const std::string& user_id,
                                                 const std::string& group_id,
                                                 const std::string& name,
                                                 absl::Time now) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(RequireMember(user_id, group_id));
    // Each holder once, at the address of its newest live session.
    ASSIGN_OR_RETURN(auto q, db_->Query(R"sql(
        SELECT s.user_id,
          (SELECT x.peer_address FROM sessions x WHERE x.user_id = s.user_id
             AND x.expires_at > ?4 AND x.peer_address != ''
             ORDER BY x.created_at DESC, x.rowid DESC LIMIT 1) AS address,
          s.complete
        FROM shares s WHERE s.group_id = ?1 AND s.name = ?2 AND s.user_id != ?3
          AND address IS NOT NULL
        ORDER BY s.complete DESC, s.user_id)sql",
        group_id, name, user_id, Secs(now)));
    std::vector<PeerView> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      out.push_back({q.Text(0), q.Text(1), q.Int(2) != 0});
    }
    return out;
  }

  absl::Status RemoveShare(const std::string& user_id, const std::string& group_id,
                           const std::string& name) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    RETURN_IF_ERROR(RequireMember(user_id, group_id));
    RETURN_IF_ERROR(db_->Run(
        "DELETE FROM shares WHERE group_id = ? AND name = ? AND user_id = ?",
        group_id, name, user_id));
    if (db_->Changes() == 0) {
      return absl::NotFoundError(absl::StrCat("you do not share '", name,
                                              "' in group '", group_id, "'"));
    }
    RETURN_IF_ERROR(DropUnsharedFiles(group_id));
    return tx.Commit();
  }

  absl::Status AddHolder(const std::string& user_id, const std::string& group_id,
                         const std::string& name, bool complete) override {
    absl::MutexLock lock(&mu_);
    Transaction tx(*db_);
    RETURN_IF_ERROR(tx.status());
    RETURN_IF_ERROR(RequireMember(user_id, group_id));
    ASSIGN_OR_RETURN(auto file, FindFile(group_id, name));
    if (!file.has_value()) return NoSuchFile(group_id, name);
    RETURN_IF_ERROR(db_->Run(
        "INSERT INTO shares(group_id, name, user_id, complete) VALUES(?, ?, ?, ?) "
        "ON CONFLICT DO UPDATE SET complete = MAX(complete, excluded.complete)",
        group_id, name, user_id, complete));
    return tx.Commit();
  }

  absl::StatusOr<std::vector<ShareView>> ListShares(const std::string& user_id) override {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(auto q, db_->Query(R"sql(
        SELECT s.group_id, s.name, f.sha1, f.size, s.complete
        FROM shares s JOIN files f ON f.group_id = s.group_id AND f.name = s.name
        WHERE s.user_id = ? ORDER BY s.group_id, s.name)sql", user_id));
    std::vector<ShareView> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      out.push_back({q.Text(0), q.Text(1), q.Text(2), static_cast<uint64_t>(q.Int(3)),
                     q.Int(4) != 0});
    }
    return out;
  }

  absl::Status Init() {
    absl::MutexLock lock(&mu_);
    return db_->Exec(kSchema);
  }

 private:
  static absl::Status NoSuchUser(const std::string& user_id) {
    return absl::NotFoundError(absl::StrCat(
        "no user '", user_id, "'; create it first (create_user, or CreateUser)"));
  }
  static absl::Status NoSuchGroup(const std::string& group_id) {
    return absl::NotFoundError(absl::StrCat(
        "no group '", group_id, "'; the groups there are: list_groups (ListGroups)"));
  }
  static absl::Status NoSuchFile(const std::string& group_id, const std::string& name) {
    return absl::NotFoundError(absl::StrCat(
        "group '", group_id, "' has no file '", name, "'; its files: list_files ", group_id,
        " (ListFiles)"));
  }

  absl::StatusOr<bool> Exists(absl::string_view sql, const std::string& a,
                              const std::string& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(auto q, db_->Query(sql, a, b));
    return q.Step();
  }
  absl::StatusOr<bool> UserExists(const std::string& user_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(auto q, db_->Query("SELECT 1 FROM users WHERE user_id = ?", user_id));
    return q.Step();
  }
  absl::StatusOr<bool> IsMember(const std::string& user_id, const std::string& group_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return Exists("SELECT 1 FROM members WHERE user_id = ? AND group_id = ?", user_id,
                  group_id);
  }
  absl::StatusOr<bool> HasRequest(const std::string& user_id, const std::string& group_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return Exists("SELECT 1 FROM requests WHERE user_id = ? AND group_id = ?", user_id,
                  group_id);
  }
  absl::StatusOr<std::optional<std::string>> GroupOwner(const std::string& group_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(auto q, db_->Query("SELECT owner FROM groups_ WHERE group_id = ?",
                                        group_id));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(q.Text(0));
  }
  // The group's owner; NOT_FOUND when there is no such group.
  absl::StatusOr<std::string> RequireGroup(const std::string& group_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(auto owner, GroupOwner(group_id));
    if (!owner.has_value()) return NoSuchGroup(group_id);
    return *owner;
  }
  absl::Status RequireOwner(const std::string& user_id, const std::string& group_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(std::string owner, RequireGroup(group_id));
    if (owner != user_id) {
      return absl::PermissionDeniedError(absl::StrCat(
          "only the owner of group '", group_id, "' (", owner, ") can do that"));
    }
    return absl::OkStatus();
  }
  absl::Status RequireMember(const std::string& user_id, const std::string& group_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RETURN_IF_ERROR(RequireGroup(group_id).status());
    ASSIGN_OR_RETURN(bool member, IsMember(user_id, group_id));
    if (!member) {
      return absl::PermissionDeniedError(absl::StrCat(
          "you are not a member of group '", group_id, "'; ask to join it (join_group ",
          group_id, ", or JoinGroup) and wait for its owner to accept"));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<FileRecord>> FindFile(const std::string& group_id,
                                                     const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(auto q, db_->Query(
        "SELECT name, size, piece_size, sha1, piece_sha1 FROM files "
        "WHERE group_id = ? AND name = ?", group_id, name));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return std::optional<FileRecord>();
    return std::optional<FileRecord>(FileRecord{
        q.Text(0), static_cast<uint64_t>(q.Int(1)), static_cast<uint32_t>(q.Int(2)),
        q.Text(3), UnpackSha1Hex(q.Text(4))});
  }
  absl::Status DropUnsharedFiles(const std::string& group_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return db_->Run(
        "DELETE FROM files WHERE group_id = ?1 AND NOT EXISTS (SELECT 1 FROM shares s "
        "WHERE s.group_id = ?1 AND s.name = files.name)", group_id);
  }

  absl::StatusOr<Session> LiveSession(const std::string& token_hash, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(auto q, db_->Query(
        "SELECT user_id, peer_address, expires_at FROM sessions WHERE token_hash = ?",
        Blob{token_hash}));
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) {
      return absl::UnauthenticatedError("not logged in (unknown session); log in again");
    }
    Session s{q.Text(0), q.Text(1), absl::FromUnixSeconds(q.Int(2))};
    if (s.expires <= now) {
      return absl::UnauthenticatedError("your session expired; log in again");
    }
    return s;
  }

  absl::Mutex mu_;
  std::unique_ptr<Database> db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, Database::Open(path));
  auto store = std::make_unique<SqliteStore>(std::move(db));
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace groupshare::tracker
