// SqlDatabase on one SQLite file in WAL mode (synchronous=FULL, so that
// every acknowledged change is on disk before the call returns): a writer
// connection behind a mutex and a pool of reader connections, which WAL
// lets read while the writer writes.

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/sqlite.h"
#include "core/status_macros.h"
#include "services/tracker/sql_database.h"

namespace groupshare::tracker {
namespace {

// Below the client's 5 s deadline, so that a write stuck behind another
// process's lock fails while the client still waits for the answer (and the
// client's retry, with its request id, is not applied twice).
constexpr int kBusyTimeoutMs = 2000;

// The first schema, as trackers before versioning made it (IF NOT EXISTS:
// such a database is at version 0 with these tables in it).
constexpr char kSchemaV1[] = R"sql(
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

// Version 2: shares and sessions belong to a client of a user; calls that
// change state are remembered by request id; groups are counted by owner;
// a group's files have a version that changes with them (for caches).
constexpr char kSchemaV2[] = R"sql(
ALTER TABLE sessions ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_by_client ON sessions(user_id, client_id, expires_at);
CREATE TABLE shares_v2 (
  group_id TEXT NOT NULL,
  name TEXT NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(user_id),
  client_id TEXT NOT NULL,
  complete INTEGER NOT NULL,
  PRIMARY KEY (group_id, name, user_id, client_id),
  FOREIGN KEY (group_id, name) REFERENCES files(group_id, name) ON DELETE CASCADE);
INSERT INTO shares_v2 SELECT group_id, name, user_id, '', complete FROM shares;
DROP TABLE shares;
ALTER TABLE shares_v2 RENAME TO shares;
CREATE INDEX shares_by_user ON shares(user_id, client_id);
CREATE INDEX groups_by_owner ON groups_(owner);
ALTER TABLE groups_ ADD COLUMN files_version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE request_log (
  key BLOB PRIMARY KEY,
  at INTEGER NOT NULL,
  code INTEGER NOT NULL,
  message TEXT NOT NULL,
  response BLOB NOT NULL);
CREATE INDEX request_log_by_time ON request_log(at);
)sql";

// Version 3: notices for users, told at their next keep-alive.
constexpr char kSchemaV3[] = R"sql(
CREATE TABLE notices (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id TEXT NOT NULL,
  kind INTEGER NOT NULL,
  group_id TEXT NOT NULL,
  other_user TEXT NOT NULL);
CREATE INDEX notices_by_user ON notices(user_id, seq);
)sql";

// Version 4: ids as they look (core/ids.h's IdSkeleton), so that a new id
// confusable with an existing one is refused; filled in by the tracker.
constexpr char kSchemaV4[] = R"sql(
ALTER TABLE users ADD COLUMN skeleton TEXT NOT NULL DEFAULT '';
CREATE INDEX users_by_skeleton ON users(skeleton);
ALTER TABLE groups_ ADD COLUMN skeleton TEXT NOT NULL DEFAULT '';
CREATE INDEX groups_by_skeleton ON groups_(skeleton);
)sql";

// Version 5: the clients each user logged in from, whom the login backoff
// an attacker sets off does not hold.
constexpr char kSchemaV5[] = R"sql(
CREATE TABLE known_clients (
  user_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  last_login INTEGER NOT NULL,
  PRIMARY KEY (user_id, client_id));
INSERT OR IGNORE INTO known_clients SELECT user_id, client_id, MAX(created_at) FROM sessions
  WHERE client_id <> '' GROUP BY user_id, client_id;
)sql";

// Version 6: the relay where a session's client waits, when members cannot
// reach it directly.
constexpr char kSchemaV6[] = R"sql(
ALTER TABLE sessions ADD COLUMN relay TEXT NOT NULL DEFAULT '';
)sql";

// Version 7: a file's SHA1 chain (tv1::FileInfo.sha1_chain), empty for
// files registered without one.
constexpr char kSchemaV7[] = R"sql(
ALTER TABLE files ADD COLUMN sha1_chain BLOB NOT NULL DEFAULT x'';
)sql";

// "$1" as SQLite's "?1": the same parameter index whatever the order.
std::string ToSqlite(absl::string_view sql) {
  std::string out(sql);
  for (char& c : out) {
    if (c == '$') c = '?';
  }
  return out;
}

class SqliteConnection final : public SqlConnection {
 public:
  explicit SqliteConnection(std::unique_ptr<sqlite::Database> db) : db_(std::move(db)) {}

  absl::StatusOr<SqlRows> Execute(absl::string_view sql,
                                  absl::Span<const SqlParam> params) override {
    ASSIGN_OR_RETURN(sqlite::Statement stmt, db_->PrepareCached(Translated(sql)));
    for (const SqlParam& p : params) {
      if (auto* i = std::get_if<int64_t>(&p)) {
        stmt.Bind(*i);
      } else if (auto* t = std::get_if<std::string>(&p)) {
        stmt.Bind(*t);
      } else {
        stmt.Bind(sqlite::Blob{std::get<SqlBytes>(p).bytes});
      }
    }
    const int columns = stmt.ColumnCount();
    SqlRows rows(columns);
    while (true) {
      ASSIGN_OR_RETURN(bool more, stmt.Step());
      if (!more) break;
      for (int c = 0; c < columns; ++c) {
        if (stmt.IsNull(c)) {
          rows.AddCell(std::nullopt);
        } else {
          rows.AddCell(stmt.IsInteger(c) ? std::to_string(stmt.Int(c)) : stmt.Text(c));
        }
      }
    }
    rows.set_affected(columns == 0 ? db_->Changes() : 0);
    return rows;
  }

  absl::Status ExecuteScript(absl::string_view sql) override { return db_->Exec(sql); }

  sqlite::Database& db() { return *db_; }

 private:
  // The statement texts are the store's constants: translate each once.
  const std::string& Translated(absl::string_view sql) {
    auto it = translated_.find(sql);
    if (it == translated_.end()) it = translated_.emplace(sql, ToSqlite(sql)).first;
    return it->second;
  }

  std::unique_ptr<sqlite::Database> db_;
  absl::flat_hash_map<std::string, std::string> translated_;
};

class SqliteDatabase final : public SqlDatabase {
 public:
  SqliteDatabase(std::unique_ptr<SqliteConnection> writer,
                 std::vector<std::unique_ptr<SqliteConnection>> readers)
      : writer_(std::move(writer)) {
    for (auto& r : readers) idle_readers_.push_back(std::move(r));
  }

  absl::Status Write(const std::function<absl::Status(SqlConnection&)>& body) override {
    absl::MutexLock lock(&write_mu_);
    sqlite::Transaction tx(writer_->db());
    RETURN_IF_ERROR(tx.status());
    RETURN_IF_ERROR(body(*writer_));
    return tx.Commit();
  }

  absl::Status ReadLatest(const std::function<absl::Status(SqlConnection&)>& body) override {
    std::unique_ptr<SqliteConnection> reader;
    {
      absl::MutexLock lock(&pool_mu_);
      auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
        return !idle_readers_.empty();
      };
      pool_mu_.Await(absl::Condition(&available));
      reader = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
    absl::Status status = body(*reader);
    absl::MutexLock lock(&pool_mu_);
    idle_readers_.push_back(std::move(reader));
    return status;
  }

  const std::vector<std::string>& Migrations() const override {
    static const auto* const kMigrations =
        new std::vector<std::string>{kSchemaV1, kSchemaV2, kSchemaV3, kSchemaV4, kSchemaV5,
                                     kSchemaV6, kSchemaV7};
    return *kMigrations;
  }

  absl::StatusOr<int> SchemaVersion(SqlConnection& c) override {
    ASSIGN_OR_RETURN(SqlRows rows, c.Execute("PRAGMA user_version", {}));
    return static_cast<int>(rows.Int(0, 0));
  }

  absl::Status SetSchemaVersion(SqlConnection& c, int version) override {
    return c.ExecuteScript(absl::StrCat("PRAGMA user_version = ", version));
  }

 protected:
  // In WAL mode a read transaction keeps the snapshot of its first read.
  const char* BeginSnapshot() const override { return "BEGIN"; }

 private:
  absl::Mutex write_mu_;
  const std::unique_ptr<SqliteConnection> writer_ ABSL_PT_GUARDED_BY(write_mu_);
  absl::Mutex pool_mu_;
  std::vector<std::unique_ptr<SqliteConnection>> idle_readers_ ABSL_GUARDED_BY(pool_mu_);
};

absl::StatusOr<std::unique_ptr<SqliteConnection>> Connect(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, sqlite::Database::Open(path));
  db->SetBusyTimeout(kBusyTimeoutMs);
  return std::make_unique<SqliteConnection>(std::move(db));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqlDatabase>> OpenSqliteDatabase(const std::string& path,
                                                                int readers) {
  ASSIGN_OR_RETURN(auto writer, Connect(path));
  std::vector<std::unique_ptr<SqliteConnection>> pool;
  for (int i = 0; i < readers; ++i) {
    ASSIGN_OR_RETURN(auto reader, Connect(path));
    pool.push_back(std::move(reader));
  }
  return std::unique_ptr<SqlDatabase>(
      new SqliteDatabase(std::move(writer), std::move(pool)));
}

}  // namespace groupshare::tracker
