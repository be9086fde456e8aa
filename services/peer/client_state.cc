#include "services/peer/client_state.h"

#include "core/crypto.h"
#include "core/status_macros.h"

namespace groupshare::peer {
namespace {

using sqlite::Blob;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS shares (
  user_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  name TEXT NOT NULL,
  sha1 TEXT NOT NULL,
  size INTEGER NOT NULL,
  piece_size INTEGER NOT NULL,
  piece_sha1 BLOB NOT NULL,
  path TEXT NOT NULL,
  complete INTEGER NOT NULL,
  have BLOB NOT NULL,
  PRIMARY KEY (user_id, group_id, sha1));
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS completed (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  name TEXT NOT NULL,
  path TEXT NOT NULL,
  size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
  user_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  name TEXT NOT NULL,
  change INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  PRIMARY KEY (user_id, group_id, name));
)sql";

}  // namespace

absl::StatusOr<std::unique_ptr<ClientState>> ClientState::Open(const std::string& path) {
  // A crash of the client is what the state must survive; a lost power cut
  // costs at most the last pieces, which are fetched again.
  ASSIGN_OR_RETURN(auto db, sqlite::Database::Open(path, /*full_sync=*/false));
  RETURN_IF_ERROR(db->Exec(kSchema));
  // Version 1: the file's modification time, to recognise a changed file.
  ASSIGN_OR_RETURN(auto version, db->Query("PRAGMA user_version"));
  ASSIGN_OR_RETURN(bool row, version.Step());
  if (row && version.Int(0) < 1) {
    RETURN_IF_ERROR(db->Exec(
        "BEGIN; ALTER TABLE shares ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0; "
        "PRAGMA user_version = 1; COMMIT;"));
  }
  // Version 2: the whole file's SHA1 chain, to share it again with it.
  if (row && version.Int(0) < 2) {
    RETURN_IF_ERROR(db->Exec(
        "BEGIN; ALTER TABLE shares ADD COLUMN sha1_chain BLOB NOT NULL DEFAULT x''; "
        "PRAGMA user_version = 2; COMMIT;"));
  }
  return std::unique_ptr<ClientState>(new ClientState(std::move(db)));
}

absl::StatusOr<std::string> ClientState::ClientId() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::string fresh, RandomBytes(12));
  RETURN_IF_ERROR(
      Write("INSERT OR IGNORE INTO meta(key, value) VALUES('client_id', ?)", HexEncode(fresh)));
  ASSIGN_OR_RETURN(auto q, db_->Query("SELECT value FROM meta WHERE key = 'client_id'"));
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::InternalError("the client id vanished from the state folder");
  return q.Text(0);
}

absl::Status ClientState::Put(const ShareRecord& r) {
  absl::MutexLock lock(&mu_);
  return Write(
      "INSERT OR REPLACE INTO shares(user_id, group_id, name, sha1, size, piece_size, "
      "piece_sha1, path, complete, have, mtime_ns, sha1_chain) "
      "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      r.user_id, r.group_id, r.name, r.sha1, r.size, r.piece_size, Blob{PackSha1Hex(r.piece_sha1)},
      r.path, r.complete, Blob{r.have}, r.mtime_ns, Blob{PackSha1Hex(r.sha1_chain)});
}

absl::Status ClientState::UpdateHave(const std::string& user, const std::string& group,
                                     const std::string& sha1, const std::string& have) {
  absl::MutexLock lock(&mu_);
  return Write("UPDATE shares SET have = ? WHERE user_id = ? AND group_id = ? AND sha1 = ?",
               Blob{have}, user, group, sha1);
}

absl::Status ClientState::MarkComplete(const std::string& user, const std::string& group,
                                       const std::string& sha1, int64_t mtime_ns) {
  absl::MutexLock lock(&mu_);
  return Write(
      "UPDATE shares SET complete = 1, have = x'', mtime_ns = ? WHERE user_id = ? "
      "AND group_id = ? AND sha1 = ?",
      mtime_ns, user, group, sha1);
}

absl::Status ClientState::SetMtime(const std::string& user, const std::string& group,
                                   const std::string& sha1, int64_t mtime_ns) {
  absl::MutexLock lock(&mu_);
  return Write("UPDATE shares SET mtime_ns = ? WHERE user_id = ? AND group_id = ? AND sha1 = ?",
               mtime_ns, user, group, sha1);
}

absl::Status ClientState::Remove(const std::string& user, const std::string& group,
                                 const std::string& sha1) {
  absl::MutexLock lock(&mu_);
  return Write("DELETE FROM shares WHERE user_id = ? AND group_id = ? AND sha1 = ?", user, group,
               sha1);
}

absl::Status ClientState::RemoveGroup(const std::string& user, const std::string& group) {
  absl::MutexLock lock(&mu_);
  return Write("DELETE FROM shares WHERE user_id = ? AND group_id = ?", user, group);
}

absl::StatusOr<std::vector<ShareRecord>> ClientState::List(const std::string& user) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto q, db_->Query(
      "SELECT group_id, name, sha1, size, piece_size, piece_sha1, path, complete, have, "
      "mtime_ns, sha1_chain FROM shares WHERE user_id = ? ORDER BY group_id, name", user));
  std::vector<ShareRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({user, q.Text(0), q.Text(1), q.Text(2), static_cast<uint64_t>(q.Int(3)),
                   static_cast<uint32_t>(q.Int(4)), UnpackSha1Hex(q.Text(5)), q.Text(6),
                   q.Int(7) != 0, q.Text(8), q.Int(9), UnpackSha1Hex(q.Text(10))});
  }
  return out;
}

absl::Status ClientState::AddCompleted(const CompletedRecord& record) {
  absl::MutexLock lock(&mu_);
  return Write("INSERT INTO completed(user_id, group_id, name, path, size) VALUES(?, ?, ?, ?, ?)",
               record.user_id, record.group_id, record.name, record.path,
               static_cast<int64_t>(record.size));
}

absl::StatusOr<std::vector<CompletedRecord>> ClientState::ListCompleted(const std::string& user) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto q, db_->Query(
      "SELECT group_id, name, path, size FROM completed WHERE user_id = ? ORDER BY seq", user));
  std::vector<CompletedRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back({user, q.Text(0), q.Text(1), q.Text(2), static_cast<uint64_t>(q.Int(3))});
  }
  return out;
}

absl::Status ClientState::ClearCompleted(const std::string& user) {
  absl::MutexLock lock(&mu_);
  return Write("DELETE FROM completed WHERE user_id = ?", user);
}

absl::Status ClientState::PutPending(const PendingChange& c) {
  absl::MutexLock lock(&mu_);
  return Write(
      "INSERT OR REPLACE INTO pending(user_id, group_id, name, change, request_id) "
      "VALUES(?, ?, ?, ?, ?)",
      c.user_id, c.group_id, c.name, static_cast<int64_t>(c.change), c.request_id);
}

absl::StatusOr<std::vector<PendingChange>> ClientState::ListPending(const std::string& user) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto q, db_->Query("SELECT group_id, name, change, request_id FROM pending "
                                      "WHERE user_id = ? ORDER BY group_id, name",
                                      user));
  std::vector<PendingChange> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    const int64_t change = q.Int(2);
    if (change < 0 || change > static_cast<int64_t>(PendingChange::kLast)) continue;
    out.push_back({user, q.Text(0), q.Text(1), static_cast<PendingChange::Kind>(change),
                   q.Text(3)});
  }
  return out;
}

absl::Status ClientState::RemovePending(const PendingChange& c) {
  absl::MutexLock lock(&mu_);
  return Write(
      "DELETE FROM pending WHERE user_id = ? AND group_id = ? AND name = ? "
      "AND (? = '' OR request_id = ?)",
      c.user_id, c.group_id, c.name, c.request_id, c.request_id);
}

}  // namespace groupshare::peer
