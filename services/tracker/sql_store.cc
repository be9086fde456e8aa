// SqlStore: the schema and its upgrades, meta values, retried calls and
// transactions; and the store's constructors (see sql_store_internal.h).

#include "absl/strings/match.h"
#include "core/ids.h"
#include "core/log.h"
#include "services/tracker/sql_store_internal.h"

namespace groupshare::tracker {
namespace sql {

absl::Status SqlStore::Upgrade() {
  return Write([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(int version, db_->SchemaVersion(c));
    const auto& migrations = db_->Migrations();
    if (version > static_cast<int>(migrations.size())) {
      return absl::FailedPreconditionError(
          absl::StrCat("the database has schema version ", version, ", newer than this tracker's ",
                       migrations.size(), "; run a newer tracker"));
    }
    for (int v = version; v < static_cast<int>(migrations.size()); ++v) {
      RETURN_IF_ERROR(c.ExecuteScript(migrations[v]));
    }
    // Ids made before their skeletons were kept get them now.
    for (const char* table : {"users", "groups_"}) {
      const std::string key = table == std::string("users") ? "user_id" : "group_id";
      ASSIGN_OR_RETURN(SqlRows rows,
                       Q(c, absl::StrCat("SELECT ", key, " FROM ", table, " WHERE skeleton = ''")));
      for (size_t r = 0; r < rows.size(); ++r) {
        RETURN_IF_ERROR(Q(c,
                          absl::StrCat("UPDATE ", table, " SET skeleton = $1 WHERE ", key, " = $2"),
                          IdSkeleton(rows.Text(r, 0)), rows.Text(r, 0))
                            .status());
      }
    }
    if (version != static_cast<int>(migrations.size())) {
      GS_LOG(kInfo) << "database schema upgraded from version " << version << " to "
                    << migrations.size();
      return db_->SetSchemaVersion(c, static_cast<int>(migrations.size()));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> SqlStore::GetOrPutMeta(const std::string& key,
                                                   const std::string& initial) {
  std::string value;
  RETURN_IF_ERROR(Write([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(Q(c, "INSERT INTO meta(key, value) VALUES($1, $2) ON CONFLICT DO NOTHING", key,
                      SqlBytes{initial})
                        .status());
    ASSIGN_OR_RETURN(SqlRows rows, Q(c, "SELECT value FROM meta WHERE key = $1", key));
    if (rows.empty()) return absl::InternalError("meta value vanished");
    value = rows.Text(0, 0);
    return absl::OkStatus();
  }));
  return value;
}

absl::StatusOr<std::string> SqlStore::GetMeta(const std::string& key) {
  std::string value;
  RETURN_IF_ERROR(ReadOne([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(SqlRows rows, Q(c, "SELECT value FROM meta WHERE key = $1", key));
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("no meta value '", key, "'"));
    value = rows.Text(0, 0);
    return absl::OkStatus();
  }));
  return value;
}

absl::Status SqlStore::PutMeta(const std::string& key, const std::string& value) {
  return Write([&](SqlConnection& c) -> absl::Status {
    return Q(c,
             "INSERT INTO meta(key, value) VALUES($1, $2) "
             "ON CONFLICT (key) DO UPDATE SET value = $2",
             key, SqlBytes{value})
        .status();
  });
}

absl::StatusOr<RequestOutcome> SqlStore::RunOnce(
    const std::string& key, absl::Time now,
    const std::function<absl::Status(Store& tx, std::string* response)>& change) {
  RequestOutcome outcome;
  absl::Status transient;
  absl::Status status = Write([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(
        Q(c, "DELETE FROM request_log WHERE at < $1", Secs(now - absl::Hours(1))).status());
    ASSIGN_OR_RETURN(
        SqlRows rows,
        Q(c, "SELECT code, message, response FROM request_log WHERE key = $1", SqlBytes{key}));
    if (!rows.empty()) {
      // A retry: the first call's answer. (A copy that ran at the same
      // time waited for the write lock, and reads this too.)
      outcome = {static_cast<int>(rows.Int(0, 0)), rows.Text(0, 1), rows.Text(0, 2)};
      return absl::OkStatus();
    }
    SqlStore tx(*this, &c);
    absl::Status changed = change(tx, &outcome.response);
    if (changed.code() == absl::StatusCode::kUnavailable ||
        changed.code() == absl::StatusCode::kInternal) {
      transient = changed;
      return changed;  // rolled back; a retry runs it anew
    }
    outcome.code = static_cast<int>(changed.code());
    outcome.message = std::string(changed.message());
    if (!changed.ok()) outcome.response.clear();
    return Q(c,
             "INSERT INTO request_log(key, at, code, message, response) "
             "VALUES($1, $2, $3, $4, $5)",
             SqlBytes{key}, Secs(now), outcome.code, outcome.message, SqlBytes{outcome.response})
        .status();
  });
  if (!transient.ok()) return transient;
  RETURN_IF_ERROR(status);
  return outcome;
}

absl::Status SqlStore::RequireUnlike(SqlConnection& c, const char* table, const char* column,
                                     const char* what, const std::string& skeleton,
                                     const std::string& id) {
  ASSIGN_OR_RETURN(
      SqlRows rows,
      Q(c, absl::StrCat("SELECT ", column, " FROM ", table, " WHERE skeleton = $1 LIMIT 1"),
        skeleton));
  if (rows.empty()) return absl::OkStatus();
  return absl::AlreadyExistsError(
      absl::StrCat(what, " '", id, "' looks like the existing ", what, " '", rows.Text(0, 0),
                   "' (their letters are confusable); choose another id"));
}

absl::Status SqlStore::AddNotice(SqlConnection& c, const std::string& to, NoticeView::Kind kind,
                                 const std::string& group_id, const std::string& other) {
  RETURN_IF_ERROR(Q(c,
                    "INSERT INTO notices(user_id, kind, group_id, other_user) "
                    "VALUES($1, $2, $3, $4)",
                    to, static_cast<int>(kind), group_id, other)
                      .status());
  return Q(c,
           "DELETE FROM notices WHERE user_id = $1 AND seq NOT IN "
           "(SELECT seq FROM notices WHERE user_id = $1 ORDER BY seq DESC LIMIT 100)",
           to)
      .status();
}

absl::Status SqlStore::Write(const std::function<absl::Status(SqlConnection&)>& body,
                             bool listings_too) {
  if (tx_ == nullptr) {
    if (!listings_too) return db_->Write(body);
    listings_->Forget("");
    absl::Status status = db_->Write(body);
    listings_->Forget("");
    return status;
  }
  RETURN_IF_ERROR(tx_->ExecuteScript("SAVEPOINT nested"));
  absl::Status status = body(*tx_);
  if (!status.ok()) tx_->ExecuteScript("ROLLBACK TO SAVEPOINT nested").IgnoreError();
  tx_->ExecuteScript("RELEASE SAVEPOINT nested").IgnoreError();
  return status;
}

absl::Status SqlStore::Read(const std::function<absl::Status(SqlConnection&)>& body) {
  return tx_ == nullptr ? db_->Read(body) : body(*tx_);
}

absl::Status SqlStore::ReadOne(const std::function<absl::Status(SqlConnection&)>& body) {
  return tx_ == nullptr ? db_->ReadLatest(body) : body(*tx_);
}

absl::StatusOr<std::unique_ptr<Store>> OpenSqlStore(absl::StatusOr<std::unique_ptr<SqlDatabase>> db,
                                                    StoreLimits limits) {
  if (!db.ok()) return db.status();
  auto store = std::make_unique<SqlStore>(*std::move(db), limits);
  RETURN_IF_ERROR(store->Upgrade());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace sql

absl::Status SqlDatabase::Read(const std::function<absl::Status(SqlConnection&)>& body) {
  return ReadLatest([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(c.ExecuteScript(BeginSnapshot()));
    absl::Status status = body(c);
    absl::Status ended = c.ExecuteScript(status.ok() ? "COMMIT" : "ROLLBACK");
    return status.ok() ? ended : status;
  });
}

const std::string& SqlRows::Text(size_t r, size_t c) const {
  static const std::string* const kEmpty = new std::string;
  const auto& v = cells_[r * columns_ + c];
  return v.has_value() ? *v : *kEmpty;
}

int64_t SqlRows::Int(size_t r, size_t c) const {
  const auto& v = cells_[r * columns_ + c];
  return v.has_value() ? std::strtoll(v->c_str(), nullptr, 10) : 0;
}

bool IsPostgresConninfo(absl::string_view db) {
  return absl::StartsWith(db, "postgresql://") || absl::StartsWith(db, "postgres://") ||
         db.find('=') != absl::string_view::npos;
}

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, StoreLimits limits,
                                                       int readers) {
  return sql::OpenSqlStore(OpenSqliteDatabase(path, readers), limits);
}

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& conninfo,
                                                         StoreLimits limits, int connections) {
  return sql::OpenSqlStore(OpenPostgresDatabase(conninfo, connections), limits);
}

}  // namespace groupshare::tracker
