// What the tracker's store needs of a SQL database, so that one set of
// rules (sql_store.cc) runs on SQLite and on PostgreSQL alike.
//
// Statements are written once, in the SQL both understand, with $1, $2 ...
// parameters. Each back-end prepares a statement once per connection and
// reuses it. Values are integers, text and bytes; results come back as text
// (integers in decimal), bytes as raw bytes.
//
// A SqlDatabase is safe for concurrent use: it hands each caller a
// connection of its own from a pool. Writes are serialised (one writer at a
// time, as SQLite has it), so the rules' read-check-write sequences are
// atomic; reads run beside writes and beside each other.
#ifndef GROUPSHARE_SERVICES_TRACKER_SQL_DATABASE_H_
#define GROUPSHARE_SERVICES_TRACKER_SQL_DATABASE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace groupshare::tracker {

// Bytes, as opposed to text (SQLite BLOB, PostgreSQL bytea).
struct SqlBytes {
  std::string bytes;
};

using SqlParam = std::variant<int64_t, std::string, SqlBytes>;

// The rows of a query, or the count of rows a change touched.
class SqlRows {
 public:
  explicit SqlRows(size_t columns = 0) : columns_(columns) {}

  size_t size() const { return columns_ == 0 ? 0 : cells_.size() / columns_; }
  bool empty() const { return cells_.empty(); }
  // Row r, column c; "" for NULL.
  const std::string& Text(size_t r, size_t c) const;
  int64_t Int(size_t r, size_t c) const;
  bool IsNull(size_t r, size_t c) const { return !cells_[r * columns_ + c].has_value(); }
  // Rows inserted, updated or deleted by the statement.
  int64_t affected() const { return affected_; }

  // Filling: a row's cells in column order, NULL as nullopt.
  void AddCell(std::optional<std::string> cell) { cells_.push_back(std::move(cell)); }
  void set_affected(int64_t n) { affected_ = n; }

 private:
  size_t columns_;
  std::vector<std::optional<std::string>> cells_;  // row after row
  int64_t affected_ = 0;
};

// One connection, used by one thread at a time.
class SqlConnection {
 public:
  virtual ~SqlConnection() = default;
  // Runs one statement. UNAVAILABLE when the database is out of reach or
  // busy past the back-end's timeout; INTERNAL for what is a bug.
  virtual absl::StatusOr<SqlRows> Execute(absl::string_view sql,
                                          absl::Span<const SqlParam> params) = 0;
  // Runs statements that take no parameters, separated by semicolons.
  virtual absl::Status ExecuteScript(absl::string_view sql) = 0;
};

class SqlDatabase {
 public:
  virtual ~SqlDatabase() = default;

  // Runs `body` in a transaction on the writer: commits when it returns OK,
  // rolls back otherwise.
  virtual absl::Status Write(const std::function<absl::Status(SqlConnection&)>& body) = 0;
  // Runs `body` on a reader, which sees committed data only, in one
  // read-only transaction (ReadLatest's, begun with BeginSnapshot()): all
  // its statements see the same state, whatever commits meanwhile.
  absl::Status Read(const std::function<absl::Status(SqlConnection&)>& body);
  // The same without a transaction: each statement sees the latest
  // committed state. For a body of one statement, which needs no more (and
  // on a database server saves two round trips).
  virtual absl::Status ReadLatest(const std::function<absl::Status(SqlConnection&)>& body) = 0;

  // The schema, as statements to run in order: element i brings version i
  // to version i + 1. A new database runs them all.
  virtual const std::vector<std::string>& Migrations() const = 0;
  // The schema version recorded in the database (0 for an empty one), and
  // recording a new one; called inside Write.
  virtual absl::StatusOr<int> SchemaVersion(SqlConnection& c) = 0;
  virtual absl::Status SetSchemaVersion(SqlConnection& c, int version) = 0;

 protected:
  // The statement that begins a read-only transaction on one snapshot.
  virtual const char* BeginSnapshot() const = 0;
};

// SQLite in WAL mode: one writer connection and `readers` reader ones.
// The busy timeout stays below the clients' deadlines, so that a write that
// waits too long answers UNAVAILABLE while the client still listens.
absl::StatusOr<std::unique_ptr<SqlDatabase>> OpenSqliteDatabase(const std::string& path,
                                                                int readers = 4);

// PostgreSQL through libpq: `connections` reader connections and two
// writer ones, made as needed and made again after a failure; writes take
// a transaction-scoped advisory lock. A call that finds every connection of
// its pool busy for 4 s answers UNAVAILABLE.
absl::StatusOr<std::unique_ptr<SqlDatabase>> OpenPostgresDatabase(
    const std::string& conninfo, int connections = 8);

}  // namespace groupshare::tracker

#endif  // GROUPSHARE_SERVICES_TRACKER_SQL_DATABASE_H_
