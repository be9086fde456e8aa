// A thin RAII layer over SQLite 3 that reports errors as absl::Status.
// Used by the tracker's store and by the client's state folder.
//
// Not thread-safe: a Database and its statements belong to one thread at a
// time; owners serialise access with their own mutex.
#ifndef GROUPSHARE_CORE_SQLITE_H_
#define GROUPSHARE_CORE_SQLITE_H_

#include <cstdint>
#include <memory>
#include <string>
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace groupshare::sqlite {

// A text value bound as a BLOB rather than TEXT.
struct Blob {
  absl::string_view bytes;
};

class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  // Binds parameters 1..n in order.
  Statement& Bind(int64_t value);
  Statement& Bind(int value) { return Bind(static_cast<int64_t>(value)); }
  Statement& Bind(bool value) { return Bind(static_cast<int64_t>(value)); }
  Statement& Bind(uint64_t value) { return Bind(static_cast<int64_t>(value)); }
  Statement& Bind(uint32_t value) { return Bind(static_cast<int64_t>(value)); }
  Statement& Bind(absl::string_view text);
  Statement& Bind(const std::string& text) { return Bind(absl::string_view(text)); }
  Statement& Bind(const char* text) { return Bind(absl::string_view(text)); }
  Statement& Bind(Blob blob);

  // Advances to the next row: true when there is one, false when done.
  absl::StatusOr<bool> Step();
  // Steps to the end, for statements that return no rows.
  absl::Status Run();

  int64_t Int(int column) const;
  std::string Text(int column) const;
  bool IsNull(int column) const;
  int ColumnCount() const;
  bool IsInteger(int column) const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt, bool cached)
      : db_(db), stmt_(stmt), cached_(cached) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  bool cached_;  // owned by the Database's cache: reset, not finalized
  int next_param_ = 1;
  absl::Status bind_status_;
};

class Database {
 public:
  // Opens (creating if needed) the database at `path` in WAL mode with
  // foreign keys on and a busy timeout, so that several processes may share
  // it. With `full_sync` every commit is on disk before it returns (it
  // survives a power cut); without, a commit survives a crash of the process
  // but may be lost with the machine, and is much cheaper. DATA_LOSS for a
  // file that is no database, or a damaged one.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path,
                                                        bool full_sync = true);
  ~Database();

  // Runs one or more statements that take no parameters.
  absl::Status Exec(absl::string_view sql);
  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  // As Prepare, but keeps the compiled statement for the next call with the
  // same text. One Statement per text may be alive at a time.
  absl::StatusOr<Statement> PrepareCached(absl::string_view sql);

  // How long a statement waits for another connection's lock before it
  // fails with UNAVAILABLE (10 s unless set).
  void SetBusyTimeout(int milliseconds);

  // Prepares `sql`, binds `args` and runs it to the end.
  template <typename... Args>
  absl::Status Run(absl::string_view sql, const Args&... args) {
    auto stmt = Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    (stmt->Bind(args), ...);
    return stmt->Run();
  }
  // Prepares `sql` and binds `args`, ready for Step().
  template <typename... Args>
  absl::StatusOr<Statement> Query(absl::string_view sql, const Args&... args) {
    auto stmt = Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    (stmt->Bind(args), ...);
    return stmt;
  }

  // Rows changed by the last INSERT, UPDATE or DELETE.
  int Changes() const;

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> cache_;
};

// BEGIN IMMEDIATE on construction; rolls back on destruction unless
// Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  // The status of BEGIN; check before doing work.
  const absl::Status& status() const { return begin_; }
  absl::Status Commit();

 private:
  Database& db_;
  absl::Status begin_;
  bool done_ = false;
};

}  // namespace groupshare::sqlite

#endif  // GROUPSHARE_CORE_SQLITE_H_
