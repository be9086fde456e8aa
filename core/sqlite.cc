#include "core/sqlite.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace groupshare::sqlite {
namespace {

absl::Status Error(sqlite3* db, int rc, absl::string_view what) {
  const char* reason = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string message = what.empty() ? reason : absl::StrCat(what, ": ", reason);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(other.stmt_),
      cached_(other.cached_),
      next_param_(other.next_param_),
      bind_status_(std::move(other.bind_status_)) {
  other.stmt_ = nullptr;
}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  if (cached_) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  } else {
    sqlite3_finalize(stmt_);
  }
}

Statement& Statement::Bind(int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, next_param_++, value);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(db_, rc, "bind");
  return *this;
}

Statement& Statement::Bind(absl::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, next_param_++, text.data(), text.size(),
                               SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(db_, rc, "bind");
  return *this;
}

Statement& Statement::Bind(Blob blob) {
  int rc = sqlite3_bind_blob64(stmt_, next_param_++, blob.bytes.data(),
                               blob.bytes.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(db_, rc, "bind");
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(db_, rc, "");
}

absl::Status Statement::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::Int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::Text(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  return data ? std::string(static_cast<const char*>(data), size) : std::string();
}

int Statement::ColumnCount() const { return sqlite3_column_count(stmt_); }

bool Statement::IsInteger(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_INTEGER;
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

namespace {

// Readable by this user only: a tracker's database holds password hashes
// and the ticket-signing key, and SQLite gives its -wal and -shm files the
// mode of the database file. Changed by name, never through a descriptor
// of our own: POSIX locks belong to the process, and closing any
// descriptor of the file drops every lock this process's SQLite holds on
// it; another process's last connection then believes it is alone,
// checkpoints and deletes the WAL in use here.
void RestrictToOwner(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) return;
  if ((st.st_mode & 077) != 0) chmod(path.c_str(), st.st_mode & 0700);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path,
                                                         bool full_sync) {
  // Each Database is used by one thread at a time (its owner's mutex), so
  // SQLite's own locks are only cost: no per-connection mutex, and no
  // global allocator statistics, whose mutex every malloc would take.
  static const bool configured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)configured;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    const int why = raw ? sqlite3_system_errno(raw) : 0;
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "cannot open database '", path, "': ", raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc),
        why != 0 ? absl::StrCat(" (", std::strerror(why), ")") : ""));
    sqlite3_close(raw);
    return status;
  }
  std::unique_ptr<Database> db(new Database(raw));
  if (path != ":memory:") {
    // Before the journal exists, so that SQLite gives it this mode too.
    for (const char* suffix : {"", "-wal", "-shm"}) RestrictToOwner(path + suffix);
  }
  sqlite3_busy_timeout(raw, 10000);
  absl::Status status = db->Exec(
      absl::StrCat("PRAGMA journal_mode=WAL; PRAGMA synchronous=",
                   full_sync ? "FULL" : "NORMAL", "; PRAGMA foreign_keys=ON;"));
  if (!status.ok()) {
    const int rc = sqlite3_errcode(raw) & 0xff;
    const bool damaged = rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
    return absl::Status(damaged ? absl::StatusCode::kDataLoss : status.code(),
                        absl::StrCat("database '", path, "': ", status.message()));
  }
  return db;
}

Database::~Database() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

void Database::SetBusyTimeout(int milliseconds) { sqlite3_busy_timeout(db_, milliseconds); }

absl::StatusOr<Statement> Database::PrepareCached(absl::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(db_, rc, "prepare");
    it = cache_.emplace(std::string(sql), stmt).first;
  }
  return Statement(db_, it->second, true);
}

absl::Status Database::Exec(absl::string_view sql) {
  // SQLite's own message for a failed exec is sqlite3_errmsg's.
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return absl::OkStatus();
  return Error(db_, rc, "");
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()),
                              &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(db_, rc, "prepare");
  return Statement(db_, stmt, false);
}

int Database::Changes() const { return sqlite3_changes(db_); }

Transaction::Transaction(Database& db) : db_(db) {
  begin_ = db_.Exec("BEGIN IMMEDIATE");
  done_ = !begin_.ok();
}

Transaction::~Transaction() {
  if (!done_) db_.Exec("ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  absl::Status status = db_.Exec("COMMIT");
  if (status.ok()) done_ = true;
  return status;
}

}  // namespace groupshare::sqlite
