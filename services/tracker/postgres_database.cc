// SqlDatabase on PostgreSQL through libpq: a pool of connections, each with
// its own prepared statements, made as needed and dropped after a failure
// (the next one finds the new primary of a multi-host conninfo).

#include <libpq-fe.h>

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "services/tracker/sql_database.h"

namespace groupshare::tracker {
namespace {

constexpr Oid kByteaOid = 17;
// Any number both trackers agree on: writers take it for their transaction.
constexpr int64_t kWriteLock = 0x67730001;

// Ids and names compare byte by byte (COLLATE "C"), as in SQLite, so that
// the order of a listing and its pages do not depend on the server's locale.
constexpr char kPostgresSchemaV1[] = R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value BYTEA NOT NULL);
CREATE TABLE users (
  user_id TEXT COLLATE "C" PRIMARY KEY,
  password_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL);
CREATE TABLE sessions (
  token_hash BYTEA PRIMARY KEY,
  user_id TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
  peer_address TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  client_id TEXT NOT NULL DEFAULT '');
CREATE INDEX sessions_by_user ON sessions(user_id, expires_at);
CREATE INDEX sessions_by_client ON sessions(user_id, client_id, expires_at);
CREATE TABLE groups_ (
  group_id TEXT COLLATE "C" PRIMARY KEY,
  owner TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
  created_at BIGINT NOT NULL,
  files_version BIGINT NOT NULL DEFAULT 0);
CREATE INDEX groups_by_owner ON groups_(owner);
CREATE TABLE members (
  seq BIGSERIAL PRIMARY KEY,
  group_id TEXT COLLATE "C" NOT NULL REFERENCES groups_(group_id) ON DELETE CASCADE,
  user_id TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
  joined_at BIGINT NOT NULL,
  UNIQUE (group_id, user_id));
CREATE TABLE requests (
  seq BIGSERIAL PRIMARY KEY,
  group_id TEXT COLLATE "C" NOT NULL REFERENCES groups_(group_id) ON DELETE CASCADE,
  user_id TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
  requested_at BIGINT NOT NULL,
  UNIQUE (group_id, user_id));
CREATE TABLE rejections (
  group_id TEXT COLLATE "C" NOT NULL REFERENCES groups_(group_id) ON DELETE CASCADE,
  user_id TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
  rejected_at BIGINT NOT NULL,
  PRIMARY KEY (group_id, user_id));
CREATE TABLE files (
  group_id TEXT COLLATE "C" NOT NULL REFERENCES groups_(group_id) ON DELETE CASCADE,
  name TEXT COLLATE "C" NOT NULL,
  size BIGINT NOT NULL,
  piece_size BIGINT NOT NULL,
  sha1 TEXT NOT NULL,
  piece_sha1 BYTEA NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (group_id, name));
CREATE TABLE shares (
  group_id TEXT COLLATE "C" NOT NULL,
  name TEXT COLLATE "C" NOT NULL,
  user_id TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
  client_id TEXT NOT NULL,
  complete BIGINT NOT NULL,
  PRIMARY KEY (group_id, name, user_id, client_id),
  FOREIGN KEY (group_id, name) REFERENCES files(group_id, name) ON DELETE CASCADE);
CREATE INDEX shares_by_user ON shares(user_id, client_id);
CREATE TABLE request_log (
  key BYTEA PRIMARY KEY,
  at BIGINT NOT NULL,
  code BIGINT NOT NULL,
  message TEXT NOT NULL,
  response BYTEA NOT NULL);
CREATE INDEX request_log_by_time ON request_log(at);
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (0);
)sql";

// Version 2: notices for users, told at their next keep-alive.
constexpr char kPostgresSchemaV2[] = R"sql(
CREATE TABLE notices (
  seq BIGSERIAL PRIMARY KEY,
  user_id TEXT COLLATE "C" NOT NULL,
  kind BIGINT NOT NULL,
  group_id TEXT COLLATE "C" NOT NULL,
  other_user TEXT COLLATE "C" NOT NULL);
CREATE INDEX notices_by_user ON notices(user_id, seq);
)sql";

// Version 3: ids as they look (core/ids.h's IdSkeleton), so that a new id
// confusable with an existing one is refused; filled in by the tracker.
constexpr char kPostgresSchemaV3[] = R"sql(
ALTER TABLE users ADD COLUMN skeleton TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX users_by_skeleton ON users(skeleton);
ALTER TABLE groups_ ADD COLUMN skeleton TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX groups_by_skeleton ON groups_(skeleton);
)sql";

// Version 4: the clients each user logged in from, whom the login backoff
// an attacker sets off does not hold.
constexpr char kPostgresSchemaV4[] = R"sql(
CREATE TABLE known_clients (
  user_id TEXT COLLATE "C" NOT NULL,
  client_id TEXT COLLATE "C" NOT NULL,
  last_login BIGINT NOT NULL,
  PRIMARY KEY (user_id, client_id));
INSERT INTO known_clients SELECT user_id, client_id, MAX(created_at) FROM sessions
  WHERE client_id <> '' GROUP BY user_id, client_id ON CONFLICT DO NOTHING;
)sql";

// Version 5: the relay where a session's client waits, when members cannot
// reach it directly.
constexpr char kPostgresSchemaV5[] = R"sql(
ALTER TABLE sessions ADD COLUMN relay TEXT COLLATE "C" NOT NULL DEFAULT '';
)sql";

// Version 6: a file's SHA1 chain (tv1::FileInfo.sha1_chain), empty for
// files registered without one.
constexpr char kPostgresSchemaV6[] = R"sql(
ALTER TABLE files ADD COLUMN sha1_chain BYTEA NOT NULL DEFAULT '';
)sql";

// The first line of libpq's message, which may span several.
std::string FirstLine(const char* message) {
  absl::string_view m = message ? message : "";
  return std::string(absl::StripTrailingAsciiWhitespace(m.substr(0, m.find('\n'))));
}

absl::Status Unreachable(absl::string_view why) {
  return absl::UnavailableError(
      absl::StrCat("the tracker's database is out of reach (", why,
                   "); try again, or another tracker"));
}

class PgConnection final : public SqlConnection {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  ~PgConnection() override { PQfinish(conn_); }

  // False once the connection failed: it is dropped, not pooled again.
  bool healthy() const { return healthy_ && PQstatus(conn_) == CONNECTION_OK; }

  absl::StatusOr<SqlRows> Execute(absl::string_view sql,
                                  absl::Span<const SqlParam> params) override {
    ASSIGN_OR_RETURN(const std::string* name, Prepared(sql, params.size()));
    std::vector<std::string> texts(params.size());
    std::vector<const char*> values(params.size());
    std::vector<int> lengths(params.size());
    std::vector<int> formats(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      if (auto* n = std::get_if<int64_t>(&params[i])) {
        texts[i] = std::to_string(*n);
      } else if (auto* t = std::get_if<std::string>(&params[i])) {
        texts[i] = *t;
      } else {
        texts[i] = std::get<SqlBytes>(params[i]).bytes;
        formats[i] = 1;
      }
      values[i] = texts[i].data();
      lengths[i] = static_cast<int>(texts[i].size());
    }
    PGresult* res = PQexecPrepared(conn_, name->c_str(), static_cast<int>(params.size()),
                                   values.data(), lengths.data(), formats.data(), 0);
    return Collect(res);
  }

  absl::Status ExecuteScript(absl::string_view sql) override {
    return Collect(PQexec(conn_, std::string(sql).c_str())).status();
  }

 private:
  absl::StatusOr<const std::string*> Prepared(absl::string_view sql, size_t params) {
    auto it = prepared_.find(sql);
    if (it != prepared_.end()) return &it->second;
    std::string name = absl::StrCat("s", prepared_.size());
    std::string text(sql);
    RETURN_IF_ERROR(Collect(PQprepare(conn_, name.c_str(), text.c_str(),
                                      static_cast<int>(params), nullptr))
                        .status());
    return &prepared_.emplace(std::move(text), std::move(name)).first->second;
  }

  absl::StatusOr<SqlRows> Collect(PGresult* res) {
    std::unique_ptr<PGresult, decltype(&PQclear)> owned(res, &PQclear);
    const ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return Failure(res);
    const int n = PQntuples(res), columns = PQnfields(res);
    SqlRows rows(columns);
    for (int r = 0; r < n; ++r) {
      for (int c = 0; c < columns; ++c) {
        if (PQgetisnull(res, r, c)) {
          rows.AddCell(std::nullopt);
          continue;
        }
        const char* v = PQgetvalue(res, r, c);
        if (PQftype(res, c) == kByteaOid) {
          size_t size = 0;
          unsigned char* raw =
              PQunescapeBytea(reinterpret_cast<const unsigned char*>(v), &size);
          if (raw == nullptr) return absl::InternalError("bad bytea from the database");
          rows.AddCell(std::string(reinterpret_cast<const char*>(raw), size));
          PQfreemem(raw);
        } else {
          rows.AddCell(std::string(v, PQgetlength(res, r, c)));
        }
      }
    }
    const char* tuples = PQcmdTuples(res);
    rows.set_affected(tuples && *tuples ? std::strtoll(tuples, nullptr, 10) : 0);
    return rows;
  }

  absl::Status Failure(PGresult* res) {
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string message = FirstLine(res ? PQresultErrorMessage(res) : PQerrorMessage(conn_));
    if (message.empty()) message = FirstLine(PQerrorMessage(conn_));
    absl::string_view code = state ? state : "";
    if (PQstatus(conn_) != CONNECTION_OK || code.empty() || absl::StartsWith(code, "08") ||
        absl::StartsWith(code, "57P") || code == "25006") {
      // Gone, shutting down, or a standby now (read only): never reuse.
      healthy_ = false;
      return Unreachable(message);
    }
    if (code == "40001" || code == "40P01" || code == "55P03") {
      return absl::UnavailableError(absl::StrCat("the database is busy (", message,
                                                 "); try again"));
    }
    if (code == "23505") return absl::AlreadyExistsError(message);
    return absl::InternalError(absl::StrCat("database: ", message, " (", code, ")"));
  }

  PGconn* const conn_;
  bool healthy_ = true;
  absl::flat_hash_map<std::string, std::string> prepared_;
};

// Connections to one database, made as needed up to a number, dropped
// after a failure.
class PgPool {
 public:
  PgPool(std::string conninfo, int max_connections)
      : conninfo_(std::move(conninfo)), max_connections_(max_connections) {}

  // A connection, or UNAVAILABLE when none frees up within `wait` (every
  // one is stuck: a commit waiting for a synchronous standby that is down,
  // say) or the database cannot be reached.
  absl::StatusOr<std::unique_ptr<PgConnection>> Acquire(absl::Duration wait) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < max_connections_;
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&ready), wait)) {
        return absl::UnavailableError(
            "the tracker's database does not answer in time (is its synchronous standby "
            "down?); try again later");
      }
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      ++open_;
    }
    // Earlier keywords are defaults that the conninfo's own override.
    const char* keys[] = {"connect_timeout", "tcp_user_timeout", "keepalives_idle",
                          "keepalives_interval", "keepalives_count",
                          "application_name", "dbname", nullptr};
    const char* values[] = {"3", "4000", "5", "1", "3", "groupshare-tracker",
                            conninfo_.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, 1);
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
      std::string why = conn ? FirstLine(PQerrorMessage(conn)) : "out of memory";
      PQfinish(conn);
      absl::MutexLock lock(&mu_);
      --open_;
      return Unreachable(why);
    }
    return std::make_unique<PgConnection>(conn);
  }

  void Release(std::unique_ptr<PgConnection> c) {
    if (!c->healthy()) {
      GS_LOG(kWarning) << "dropped a database connection that failed";
      c.reset();
    }
    absl::MutexLock lock(&mu_);
    if (c != nullptr) {
      idle_.push_back(std::move(c));
    } else {
      --open_;
    }
  }

 private:
  const std::string conninfo_;
  const int max_connections_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

// How long a call waits for a connection of its pool.
constexpr absl::Duration kPoolWait = absl::Seconds(4);

class PostgresDatabase final : public SqlDatabase {
 public:
  // Writes are serialised anyway (the advisory lock), so two writer
  // connections are enough; readers have their own, so that reads go on
  // while writes wait (for a synchronous standby, say).
  PostgresDatabase(const std::string& conninfo, int readers)
      : writers_(conninfo, 2), readers_(conninfo, readers) {}

  absl::Status Connect() {
    ASSIGN_OR_RETURN(auto c, readers_.Acquire(kPoolWait));
    readers_.Release(std::move(c));
    return absl::OkStatus();
  }

  absl::Status Write(const std::function<absl::Status(SqlConnection&)>& body) override {
    ASSIGN_OR_RETURN(auto c, writers_.Acquire(kPoolWait));
    absl::Status status = c->ExecuteScript("BEGIN");
    if (status.ok()) {
      status = c->Execute("SELECT pg_advisory_xact_lock($1)", {SqlParam{kWriteLock}}).status();
    }
    if (status.ok()) status = body(*c);
    if (status.ok()) {
      status = c->ExecuteScript("COMMIT");
    } else if (c->healthy()) {
      c->ExecuteScript("ROLLBACK").IgnoreError();
    }
    writers_.Release(std::move(c));
    return status;
  }

  absl::Status ReadLatest(const std::function<absl::Status(SqlConnection&)>& body) override {
    ASSIGN_OR_RETURN(auto c, readers_.Acquire(kPoolWait));
    absl::Status status = body(*c);
    readers_.Release(std::move(c));
    return status;
  }

  const std::vector<std::string>& Migrations() const override {
    static const auto* const kMigrations = new std::vector<std::string>{
        kPostgresSchemaV1, kPostgresSchemaV2, kPostgresSchemaV3, kPostgresSchemaV4,
        kPostgresSchemaV5, kPostgresSchemaV6};
    return *kMigrations;
  }

  absl::StatusOr<int> SchemaVersion(SqlConnection& c) override {
    ASSIGN_OR_RETURN(SqlRows t, c.Execute(
        "SELECT CASE WHEN to_regclass('schema_version') IS NULL THEN 0 ELSE 1 END", {}));
    if (t.Int(0, 0) == 0) return 0;
    ASSIGN_OR_RETURN(SqlRows v, c.Execute("SELECT version FROM schema_version", {}));
    return v.empty() ? 0 : static_cast<int>(v.Int(0, 0));
  }

  absl::Status SetSchemaVersion(SqlConnection& c, int version) override {
    return c.Execute("UPDATE schema_version SET version = $1", {SqlParam{int64_t{version}}})
        .status();
  }

 protected:
  const char* BeginSnapshot() const override {
    return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
  }

 private:
  PgPool writers_;
  PgPool readers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqlDatabase>> OpenPostgresDatabase(const std::string& conninfo,
                                                                  int connections) {
  auto db = std::make_unique<PostgresDatabase>(conninfo, connections);
  RETURN_IF_ERROR(db->Connect());
  return std::unique_ptr<SqlDatabase>(std::move(db));
}

}  // namespace groupshare::tracker
