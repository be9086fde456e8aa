// The tracker's rules, once, over a SqlDatabase (SQLite or PostgreSQL).
// Every change runs in one write transaction, so its checks and its writes
// are atomic; reads run on readers beside it.

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "services/tracker/sql_database.h"
#include "services/tracker/store.h"

namespace groupshare::tracker {
namespace {

int64_t Secs(absl::Time t) { return absl::ToUnixSeconds(t); }

SqlParam P(const std::string& v) { return v; }
SqlParam P(int64_t v) { return v; }
SqlParam P(int v) { return int64_t{v}; }
SqlParam P(uint32_t v) { return int64_t{v}; }
SqlParam P(uint64_t v) { return static_cast<int64_t>(v); }
SqlParam P(bool v) { return int64_t{v ? 1 : 0}; }
SqlParam P(SqlBytes v) { return v; }

template <typename... Args>
absl::StatusOr<SqlRows> Q(SqlConnection& c, absl::string_view sql, const Args&... args) {
  const SqlParam params[] = {P(args)..., P(int64_t{0})};  // never empty
  return c.Execute(sql, absl::MakeConstSpan(params, sizeof...(Args)));
}

absl::Status NoSuchGroup(const std::string& group_id) {
  return absl::NotFoundError(absl::StrCat(
      "no group '", group_id, "'; ListGroups lists the groups there are"));
}
absl::Status NoSuchFile(const std::string& group_id, const std::string& name) {
  return absl::NotFoundError(absl::StrCat("group '", group_id, "' has no file '", name,
                                          "'; ListFiles lists its files"));
}
absl::Status Limit(absl::string_view what, int64_t limit, absl::string_view then) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " (the tracker's limit is ", limit, "); ", then));
}

absl::StatusOr<bool> Exists(SqlConnection& c, absl::string_view sql, const std::string& a,
                            const std::string& b) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c, sql, a, b));
  return !rows.empty();
}
absl::StatusOr<bool> UserExists(SqlConnection& c, const std::string& user_id) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c, "SELECT 1 FROM users WHERE user_id = $1", user_id));
  return !rows.empty();
}
absl::StatusOr<bool> IsMember(SqlConnection& c, const std::string& user_id,
                              const std::string& group_id) {
  return Exists(c, "SELECT 1 FROM members WHERE user_id = $1 AND group_id = $2", user_id,
                group_id);
}
absl::StatusOr<int64_t> Count(SqlConnection& c, absl::string_view sql,
                              const std::string& key) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c, sql, key));
  return rows.Int(0, 0);
}
absl::StatusOr<std::optional<std::string>> GroupOwner(SqlConnection& c,
                                                      const std::string& group_id) {
  ASSIGN_OR_RETURN(SqlRows rows,
                   Q(c, "SELECT owner FROM groups_ WHERE group_id = $1", group_id));
  if (rows.empty()) return std::optional<std::string>();
  return std::optional<std::string>(rows.Text(0, 0));
}
// The group's owner; NOT_FOUND when there is no such group.
absl::StatusOr<std::string> RequireGroup(SqlConnection& c, const std::string& group_id) {
  ASSIGN_OR_RETURN(auto owner, GroupOwner(c, group_id));
  if (!owner.has_value()) return NoSuchGroup(group_id);
  return *owner;
}
absl::Status RequireOwner(SqlConnection& c, const std::string& user_id,
                          const std::string& group_id) {
  ASSIGN_OR_RETURN(std::string owner, RequireGroup(c, group_id));
  if (owner != user_id) {
    return absl::PermissionDeniedError(absl::StrCat(
        "only the owner of group '", group_id, "' (", owner, ") can do that"));
  }
  return absl::OkStatus();
}
// The version of the group's files (see BumpFiles) when `user_id` is a
// member; NOT_FOUND (group) or PERMISSION_DENIED (not a member) otherwise.
// One statement: this runs before every read of a group.
absl::StatusOr<int64_t> RequireMemberFilesVersion(SqlConnection& c, const std::string& user_id,
                                                  const std::string& group_id) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c,
      "SELECT CASE WHEN EXISTS(SELECT 1 FROM members m WHERE m.group_id = g.group_id "
      "AND m.user_id = $2) THEN 1 ELSE 0 END, g.files_version FROM groups_ g "
      "WHERE g.group_id = $1", group_id, user_id));
  if (rows.empty()) return NoSuchGroup(group_id);
  if (rows.Int(0, 0) == 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "you are not a member of group '", group_id,
        "'; ask to join it (JoinGroup) and wait for its owner to accept"));
  }
  return rows.Int(0, 1);
}
absl::Status RequireMember(SqlConnection& c, const std::string& user_id,
                           const std::string& group_id) {
  return RequireMemberFilesVersion(c, user_id, group_id).status();
}
// Gives the group's files a new version: every change to its files or
// shares calls this in its transaction. A random number, so that a group
// deleted and made again never repeats a version a cache has seen.
absl::Status BumpFiles(SqlConnection& c, const std::string& group_id) {
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
absl::StatusOr<std::optional<FileRecord>> FindFile(SqlConnection& c,
                                                   const std::string& group_id,
                                                   const std::string& name) {
  ASSIGN_OR_RETURN(SqlRows rows, Q(c,
      "SELECT name, size, piece_size, sha1, piece_sha1 FROM files "
      "WHERE group_id = $1 AND name = $2", group_id, name));
  if (rows.empty()) return std::optional<FileRecord>();
  return std::optional<FileRecord>(FileRecord{
      rows.Text(0, 0), static_cast<uint64_t>(rows.Int(0, 1)),
      static_cast<uint32_t>(rows.Int(0, 2)), rows.Text(0, 3), UnpackSha1Hex(rows.Text(0, 4))});
}
absl::Status DropUnsharedFiles(SqlConnection& c, const std::string& group_id) {
  return Q(c, "DELETE FROM files WHERE group_id = $1 AND NOT EXISTS (SELECT 1 FROM shares s "
              "WHERE s.group_id = $1 AND s.name = files.name)", group_id).status();
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
  absl::flat_hash_map<std::string, std::shared_ptr<const GroupFiles>> groups
      ABSL_GUARDED_BY(mu);
  size_t files ABSL_GUARDED_BY(mu) = 0;
};

class SqlStore final : public Store {
 public:
  SqlStore(std::unique_ptr<SqlDatabase> db, StoreLimits limits)
      : owned_db_(std::move(db)),
        owned_cache_(std::make_unique<FilesCache>()),
        db_(owned_db_.get()),
        limits_(limits),
        cache_(owned_cache_.get()) {}
  // `store` bound to the write transaction on `tx`: its writes and reads
  // run there (see Write).
  SqlStore(const SqlStore& store, SqlConnection* tx)
      : db_(store.db_), limits_(store.limits_), cache_(store.cache_), tx_(tx) {}

  // Brings the schema to the newest version, in one transaction (two
  // trackers starting at once upgrade it once).
  absl::Status Upgrade() {
    return Write([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(int version, db_->SchemaVersion(c));
      const auto& migrations = db_->Migrations();
      if (version > static_cast<int>(migrations.size())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the database has schema version ", version, ", newer than this tracker's ",
            migrations.size(), "; run a newer tracker"));
      }
      for (int v = version; v < static_cast<int>(migrations.size()); ++v) {
        RETURN_IF_ERROR(c.ExecuteScript(migrations[v]));
      }
      // Ids made before their skeletons were kept get them now.
      for (const char* table : {"users", "groups_"}) {
        const std::string key = table == std::string("users") ? "user_id" : "group_id";
        ASSIGN_OR_RETURN(SqlRows rows, Q(c, absl::StrCat("SELECT ", key, " FROM ", table,
                                                         " WHERE skeleton = ''")));
        for (size_t r = 0; r < rows.size(); ++r) {
          RETURN_IF_ERROR(Q(c, absl::StrCat("UPDATE ", table, " SET skeleton = $1 WHERE ", key,
                                            " = $2"),
                            IdSkeleton(rows.Text(r, 0)), rows.Text(r, 0)).status());
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

  absl::StatusOr<std::string> GetOrPutMeta(const std::string& key,
                                           const std::string& initial) override {
    std::string value;
    RETURN_IF_ERROR(Write([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(Q(c, "INSERT INTO meta(key, value) VALUES($1, $2) ON CONFLICT DO NOTHING",
                        key, SqlBytes{initial}).status());
      ASSIGN_OR_RETURN(SqlRows rows, Q(c, "SELECT value FROM meta WHERE key = $1", key));
      if (rows.empty()) return absl::InternalError("meta value vanished");
      value = rows.Text(0, 0);
      return absl::OkStatus();
    }));
    return value;
  }

  absl::StatusOr<std::string> GetMeta(const std::string& key) override {
    std::string value;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(SqlRows rows, Q(c, "SELECT value FROM meta WHERE key = $1", key));
      if (rows.empty()) return absl::NotFoundError(absl::StrCat("no meta value '", key, "'"));
      value = rows.Text(0, 0);
      return absl::OkStatus();
    }));
    return value;
  }

  absl::Status PutMeta(const std::string& key, const std::string& value) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      return Q(c, "INSERT INTO meta(key, value) VALUES($1, $2) "
                  "ON CONFLICT (key) DO UPDATE SET value = $2", key, SqlBytes{value}).status();
    });
  }

  absl::Status CreateUser(const std::string& user_id, const std::string& password_hash,
                          absl::Time now) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(bool exists, UserExists(c, user_id));
      if (exists) {
        return absl::AlreadyExistsError(absl::StrCat(
            "user '", user_id, "' already exists; choose another user id or log in"));
      }
      const std::string skeleton = IdSkeleton(user_id);
      RETURN_IF_ERROR(RequireUnlike(c, "users", "user_id", "user", skeleton, user_id));
      return Q(c, "INSERT INTO users(user_id, password_hash, created_at, skeleton) "
                  "VALUES($1, $2, $3, $4)",
               user_id, password_hash, Secs(now), skeleton).status();
    });
  }

  absl::StatusOr<std::string> GetPasswordHash(const std::string& user_id) override {
    std::string hash;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(SqlRows rows,
                       Q(c, "SELECT password_hash FROM users WHERE user_id = $1", user_id));
      if (rows.empty()) {
        return absl::NotFoundError(absl::StrCat(
            "no user '", user_id, "'; create it first (CreateUser)"));
      }
      hash = rows.Text(0, 0);
      return absl::OkStatus();
    }));
    return hash;
  }

  absl::Status CreateSession(const std::string& token_hash, const Session& session,
                             absl::Time now) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      // Sessions a day past their expiry cannot come back.
      RETURN_IF_ERROR(Q(c, "DELETE FROM sessions WHERE expires_at < $1",
                        Secs(now - kSessionComeback)).status());
      if (!session.client_id.empty()) {
        // The same client logging in again: its earlier session is over.
        RETURN_IF_ERROR(Q(c, "DELETE FROM sessions WHERE user_id = $1 AND client_id = $2",
                          session.user_id, session.client_id).status());
      }
      ASSIGN_OR_RETURN(SqlRows live, Q(c,
          "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires_at > $2",
          session.user_id, Secs(now)));
      if (live.Int(0, 0) >= limits_.sessions_per_user) {
        return Limit(absl::StrCat("'", session.user_id, "' is logged in from ",
                                  live.Int(0, 0), " clients"),
                     limits_.sessions_per_user, "log out from one of them first");
      }
      if (!session.client_id.empty()) {
        RETURN_IF_ERROR(Q(c, "INSERT INTO known_clients(user_id, client_id, last_login) "
                             "VALUES($1, $2, $3) ON CONFLICT (user_id, client_id) "
                             "DO UPDATE SET last_login = $3",
                          session.user_id, session.client_id, Secs(now)).status());
        RETURN_IF_ERROR(Q(c, "DELETE FROM known_clients WHERE user_id = $1 AND client_id NOT IN "
                             "(SELECT client_id FROM known_clients WHERE user_id = $1 "
                             "ORDER BY last_login DESC LIMIT 32)",
                          session.user_id).status());
      }
      return Q(c, "INSERT INTO sessions(token_hash, user_id, peer_address, created_at, "
                  "expires_at, client_id) VALUES($1, $2, $3, $4, $5, $6)",
               SqlBytes{token_hash}, session.user_id, session.peer_address, Secs(now),
               Secs(session.expires), session.client_id).status();
    });
  }

  absl::StatusOr<bool> IsKnownClient(const std::string& user_id,
                                     const std::string& client_id) override {
    bool known = false;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(known, Exists(c, "SELECT 1 FROM known_clients WHERE user_id = $1 AND "
                                        "client_id = $2", user_id, client_id));
      return absl::OkStatus();
    }));
    return known;
  }

  absl::StatusOr<Session> GetSession(const std::string& token_hash) override {
    Session s;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(SqlRows rows, Q(c,
          "SELECT user_id, peer_address, expires_at, client_id FROM sessions "
          "WHERE token_hash = $1", SqlBytes{token_hash}));
      if (rows.empty()) {
        return absl::UnauthenticatedError(
            "not logged in (the tracker knows no such session); log in again");
      }
      s = {rows.Text(0, 0), rows.Text(0, 1), absl::FromUnixSeconds(rows.Int(0, 2)),
           rows.Text(0, 3)};
      return absl::OkStatus();
    }));
    return s;
  }

  absl::Status ExtendSession(const std::string& token_hash, absl::Time expires,
                             const std::optional<std::string>& relay) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(SqlRows rows,
          relay.has_value()
              ? Q(c, "UPDATE sessions SET expires_at = $1, relay = $3 WHERE token_hash = $2",
                  Secs(expires), SqlBytes{token_hash}, *relay)
              : Q(c, "UPDATE sessions SET expires_at = $1 WHERE token_hash = $2", Secs(expires),
                  SqlBytes{token_hash}));
      if (rows.affected() == 0) {
        return absl::UnauthenticatedError(
            "not logged in (the tracker knows no such session); log in again");
      }
      return absl::OkStatus();
    });
  }

  absl::Status DeleteSession(const std::string& token_hash) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      return Q(c, "DELETE FROM sessions WHERE token_hash = $1", SqlBytes{token_hash})
          .status();
    });
  }

  absl::StatusOr<RequestOutcome> RunOnce(
      const std::string& key, absl::Time now,
      const std::function<absl::Status(Store& tx, std::string* response)>& change) override {
    RequestOutcome outcome;
    absl::Status transient;
    absl::Status status = Write([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(Q(c, "DELETE FROM request_log WHERE at < $1",
                        Secs(now - absl::Hours(1))).status());
      ASSIGN_OR_RETURN(SqlRows rows, Q(c,
          "SELECT code, message, response FROM request_log WHERE key = $1", SqlBytes{key}));
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
      return Q(c, "INSERT INTO request_log(key, at, code, message, response) "
                  "VALUES($1, $2, $3, $4, $5)", SqlBytes{key}, Secs(now), outcome.code,
               outcome.message, SqlBytes{outcome.response}).status();
    });
    if (!transient.ok()) return transient;
    RETURN_IF_ERROR(status);
    return outcome;
  }

  absl::Status CreateGroup(const std::string& owner, const std::string& group_id,
                           absl::Time now) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(auto found, GroupOwner(c, group_id));
      if (found.has_value()) {
        return absl::AlreadyExistsError(absl::StrCat(
            "group '", group_id, "' already exists; choose another group id or join it"));
      }
      ASSIGN_OR_RETURN(int64_t owned,
                       Count(c, "SELECT COUNT(*) FROM groups_ WHERE owner = $1", owner));
      if (owned >= limits_.groups_per_owner) {
        return Limit(absl::StrCat("you own ", owned, " groups"), limits_.groups_per_owner,
                     "leave one (leave_group) before creating another");
      }
      const std::string skeleton = IdSkeleton(group_id);
      RETURN_IF_ERROR(RequireUnlike(c, "groups_", "group_id", "group", skeleton, group_id));
      RETURN_IF_ERROR(Q(c, "INSERT INTO groups_(group_id, owner, created_at, skeleton) "
                           "VALUES($1, $2, $3, $4)",
                        group_id, owner, Secs(now), skeleton).status());
      return Q(c, "INSERT INTO members(group_id, user_id, joined_at) VALUES($1, $2, $3)",
               group_id, owner, Secs(now)).status();
    });
  }

  absl::StatusOr<std::vector<GroupView>> ListGroups(const std::string& user_id,
                                                    const PageRequest& page) override {
    std::vector<GroupView> out;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(SqlRows rows, Q(c, R"sql(
          SELECT g.group_id, g.owner,
            (SELECT COUNT(*) FROM members m WHERE m.group_id = g.group_id),
            CASE WHEN EXISTS(SELECT 1 FROM members m
                             WHERE m.group_id = g.group_id AND m.user_id = $1) THEN 1
                 WHEN EXISTS(SELECT 1 FROM requests r
                             WHERE r.group_id = g.group_id AND r.user_id = $1) THEN 2
                 WHEN EXISTS(SELECT 1 FROM rejections j
                             WHERE j.group_id = g.group_id AND j.user_id = $1) THEN 3
                 ELSE 0 END
          FROM groups_ g WHERE g.group_id > $2 ORDER BY g.group_id LIMIT $3)sql",
          user_id, page.after, page.size));
      for (size_t r = 0; r < rows.size(); ++r) {
        GroupView g{rows.Text(r, 0), rows.Text(r, 1), rows.Int(r, 2), Relation::kNone};
        switch (rows.Int(r, 3)) {
          case 1: g.relation = Relation::kMember; break;
          case 2: g.relation = Relation::kPending; break;
          case 3: g.relation = Relation::kRejected; break;
          default: break;
        }
        if (g.owner == user_id) g.relation = Relation::kOwner;
        out.push_back(std::move(g));
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status RequestJoin(const std::string& user_id, const std::string& group_id,
                           absl::Time now) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(RequireGroup(c, group_id).status());
      ASSIGN_OR_RETURN(bool member, IsMember(c, user_id, group_id));
      if (member) {
        return absl::AlreadyExistsError(
            absl::StrCat("you are already a member of group '", group_id, "'"));
      }
      ASSIGN_OR_RETURN(bool pending, Exists(c,
          "SELECT 1 FROM requests WHERE user_id = $1 AND group_id = $2", user_id, group_id));
      if (pending) {
        return absl::AlreadyExistsError(absl::StrCat(
            "you already asked to join group '", group_id, "'; wait for its owner to accept"));
      }
      ASSIGN_OR_RETURN(int64_t waiting, Count(c,
          "SELECT COUNT(*) FROM requests WHERE group_id = $1", group_id));
      if (waiting >= limits_.pending_requests_per_group) {
        return Limit(absl::StrCat("group '", group_id, "' has ", waiting,
                                  " requests waiting for its owner"),
                     limits_.pending_requests_per_group, "try again later");
      }
      RETURN_IF_ERROR(Q(c, "INSERT INTO requests(group_id, user_id, requested_at) "
                           "VALUES($1, $2, $3)", group_id, user_id, Secs(now)).status());
      ASSIGN_OR_RETURN(std::string owner, RequireGroup(c, group_id));
      RETURN_IF_ERROR(AddNotice(c, owner, NoticeView::kRequestWaiting, group_id, user_id));
      // Asking again: an earlier rejection is history.
      return Q(c, "DELETE FROM rejections WHERE group_id = $1 AND user_id = $2", group_id,
               user_id).status();
    });
  }

  absl::StatusOr<LeaveResult> LeaveGroup(const std::string& user_id,
                                         const std::string& group_id) override {
    LeaveResult result;
    RETURN_IF_ERROR(Write([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(std::string owner, RequireGroup(c, group_id));
      ASSIGN_OR_RETURN(bool member, IsMember(c, user_id, group_id));
      if (!member) {
        return absl::NotFoundError(
            absl::StrCat("you are not a member of group '", group_id, "'"));
      }
      RETURN_IF_ERROR(Q(c, "DELETE FROM members WHERE group_id = $1 AND user_id = $2",
                        group_id, user_id).status());
      RETURN_IF_ERROR(Q(c, "DELETE FROM shares WHERE group_id = $1 AND user_id = $2",
                        group_id, user_id).status());
      RETURN_IF_ERROR(BumpFiles(c, group_id));
      RETURN_IF_ERROR(DropUnsharedFiles(c, group_id));
      if (owner != user_id) return absl::OkStatus();
      ASSIGN_OR_RETURN(SqlRows next, Q(c,
          "SELECT user_id FROM members WHERE group_id = $1 ORDER BY seq LIMIT 1", group_id));
      if (!next.empty()) {
        result.new_owner = next.Text(0, 0);
        RETURN_IF_ERROR(AddNotice(c, result.new_owner, NoticeView::kGroupHandedToYou, group_id,
                                  user_id));
        return Q(c, "UPDATE groups_ SET owner = $1 WHERE group_id = $2", result.new_owner,
                 group_id).status();
      }
      result.group_deleted = true;
      return Q(c, "DELETE FROM groups_ WHERE group_id = $1", group_id).status();
    }));
    return result;
  }

  absl::StatusOr<std::vector<NoticeView>> TakeNotices(const std::string& user_id, int64_t seen,
                                                      int limit) override {
    if (seen > 0) {
      RETURN_IF_ERROR(Write([&](SqlConnection& c) {
        return Q(c, "DELETE FROM notices WHERE user_id = $1 AND seq <= $2", user_id, seen)
            .status();
      }));
    }
    std::vector<NoticeView> out;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(SqlRows rows, Q(c,
          "SELECT seq, kind, group_id, other_user FROM notices WHERE user_id = $1 AND seq > $2 "
          "ORDER BY seq LIMIT $3", user_id, seen, limit));
      for (size_t r = 0; r < rows.size(); ++r) {
        out.push_back({rows.Int(r, 0), static_cast<int>(rows.Int(r, 1)), rows.Text(r, 2),
                       rows.Text(r, 3)});
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<std::vector<JoinRequestView>> ListRequests(
      const std::string& owner, const std::string& group_id) override {
    std::vector<JoinRequestView> out;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(RequireOwner(c, owner, group_id));
      ASSIGN_OR_RETURN(SqlRows rows, Q(c,
          "SELECT user_id, requested_at FROM requests WHERE group_id = $1 ORDER BY seq",
          group_id));
      for (size_t r = 0; r < rows.size(); ++r) {
        out.push_back({rows.Text(r, 0), absl::FromUnixSeconds(rows.Int(r, 1))});
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status AnswerRequest(const std::string& owner, const std::string& group_id,
                             const std::string& user_id, bool accept,
                             absl::Time now) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(RequireOwner(c, owner, group_id));
      ASSIGN_OR_RETURN(SqlRows deleted, Q(c,
          "DELETE FROM requests WHERE group_id = $1 AND user_id = $2", group_id, user_id));
      if (deleted.affected() == 0) {
        ASSIGN_OR_RETURN(bool member, IsMember(c, user_id, group_id));
        if (member) {
          return absl::AlreadyExistsError(
              absl::StrCat("'", user_id, "' is a member of group '", group_id, "' already"));
        }
        return absl::NotFoundError(absl::StrCat(
            "no pending request from '", user_id, "' to join group '", group_id,
            "'; ListRequests lists the requests"));
      }
      RETURN_IF_ERROR(AddNotice(
          c, user_id, accept ? NoticeView::kRequestAccepted : NoticeView::kRequestRejected,
          group_id, owner));
      // The owner need not hear of a request it answered.
      RETURN_IF_ERROR(Q(c, "DELETE FROM notices WHERE user_id = $1 AND kind = $2 AND "
                           "group_id = $3 AND other_user = $4", owner,
                        static_cast<int>(NoticeView::kRequestWaiting), group_id, user_id)
                          .status());
      if (accept) {
        return Q(c, "INSERT INTO members(group_id, user_id, joined_at) VALUES($1, $2, $3)",
                 group_id, user_id, Secs(now)).status();
      }
      // Kept, so that the requester can see it, until it asks again.
      return Q(c, "INSERT INTO rejections(group_id, user_id, rejected_at) VALUES($1, $2, $3) "
                  "ON CONFLICT (group_id, user_id) DO UPDATE SET rejected_at = $3",
               group_id, user_id, Secs(now)).status();
    });
  }

  absl::StatusOr<bool> AddFile(const std::string& user_id, const std::string& client_id,
                               const std::string& group_id, const FileRecord& file,
                               absl::Time now) override {
    bool created = false;
    RETURN_IF_ERROR(Write([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
      ASSIGN_OR_RETURN(auto existing, FindFile(c, group_id, file.name));
      created = !existing.has_value();
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
        ASSIGN_OR_RETURN(int64_t files, Count(c,
            "SELECT COUNT(*) FROM files WHERE group_id = $1", group_id));
        if (files >= limits_.files_per_group) {
          return Limit(absl::StrCat("group '", group_id, "' has ", files, " files"),
                       limits_.files_per_group, "stop sharing one (stop_share) first");
        }
        // What the tracker keeps for a user's files is bounded too.
        ASSIGN_OR_RETURN(int64_t held, Count(c,
            "SELECT COALESCE(SUM(LENGTH(f.piece_sha1)), 0) FROM files f WHERE EXISTS "
            "(SELECT 1 FROM shares s WHERE s.group_id = f.group_id AND s.name = f.name "
            "AND s.user_id = $1)", user_id));
        const int64_t adding = static_cast<int64_t>(file.piece_sha1.size()) * 20;
        if (held + adding > limits_.metadata_bytes_per_user) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "the files you share take ", held >> 10, " KiB of piece hashes here and this one ",
              adding >> 10, " KiB more, past the tracker's limit of ",
              limits_.metadata_bytes_per_user >> 10,
              " KiB a user; stop sharing some (stop_share), or share larger pieces"));
        }
        RETURN_IF_ERROR(Q(c,
            "INSERT INTO files(group_id, name, size, piece_size, sha1, piece_sha1, "
            "created_at) VALUES($1, $2, $3, $4, $5, $6, $7)",
            group_id, file.name, file.size, file.piece_size, file.sha1,
            SqlBytes{PackSha1Hex(file.piece_sha1)}, Secs(now)).status());
      }
      RETURN_IF_ERROR(BumpFiles(c, group_id));
      return Q(c, "INSERT INTO shares(group_id, name, user_id, client_id, complete) "
                  "VALUES($1, $2, $3, $4, 1) ON CONFLICT (group_id, name, user_id, client_id) "
                  "DO UPDATE SET complete = 1",
               group_id, file.name, user_id, client_id).status();
    }));
    return created;
  }

  absl::StatusOr<std::vector<FileSummaryView>> ListFiles(const std::string& user_id,
                                                         const std::string& group_id,
                                                         const PageRequest& page,
                                                         absl::Time now) override {
    std::vector<FileSummaryView> out;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(int64_t version, RequireMemberFilesVersion(c, user_id, group_id));
      ASSIGN_OR_RETURN(std::shared_ptr<const GroupFiles> files,
                       FilesOf(c, group_id, version));
      // Each share is one client's; it is online while that client has a
      // live session.
      ASSIGN_OR_RETURN(SqlRows live, Q(c,
          "SELECT x.user_id, x.client_id FROM sessions x JOIN members m "
          "ON m.user_id = x.user_id WHERE m.group_id = $1 AND x.expires_at > $2",
          group_id, Secs(now)));
      absl::flat_hash_set<std::pair<std::string, std::string>> online;
      for (size_t r = 0; r < live.size(); ++r) online.emplace(live.Text(r, 0), live.Text(r, 1));
      auto it = std::upper_bound(
          files->files.begin(), files->files.end(), page.after,
          [](const std::string& after, const GroupFiles::File& f) { return after < f.name; });
      for (; it != files->files.end() && static_cast<int64_t>(out.size()) < page.size; ++it) {
        FileSummaryView view{it->name, it->size, it->sha1, 0, 0};
        for (const GroupFiles::Holder& h : it->holders) {
          if (!online.contains(std::make_pair(h.user_id, h.client_id))) continue;
          ++(h.complete ? view.online_seeders : view.online_partial);
        }
        out.push_back(std::move(view));
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<FileRecord> GetFile(const std::string& user_id, const std::string& group_id,
                                     const std::string& name) override {
    std::optional<FileRecord> file;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
      ASSIGN_OR_RETURN(file, FindFile(c, group_id, name));
      return absl::OkStatus();
    }));
    if (!file.has_value()) return NoSuchFile(group_id, name);
    return *std::move(file);
  }

  absl::StatusOr<FilePeers> GetFileAndPeers(const std::string& user_id,
                                            const std::string& client_id,
                                            const std::string& group_id,
                                            const std::string& name, absl::Time now) override {
    std::optional<FileRecord> file;
    std::vector<PeerView> peers;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
      ASSIGN_OR_RETURN(file, FindFile(c, group_id, name));
      if (!file.has_value()) return absl::OkStatus();
      // Each holding client once, at the address of its newest live session.
      ASSIGN_OR_RETURN(SqlRows rows, Q(c, R"sql(
          SELECT h.user_id, h.client_id, x.peer_address, h.complete, x.relay FROM (
            SELECT s.user_id, s.client_id, s.complete,
              (SELECT x.token_hash FROM sessions x
                 WHERE x.user_id = s.user_id AND x.client_id = s.client_id
                   AND x.expires_at > $5 AND x.peer_address != ''
                 ORDER BY x.created_at DESC LIMIT 1) AS token_hash
            FROM shares s WHERE s.group_id = $1 AND s.name = $2
              AND NOT (s.user_id = $3 AND s.client_id = $4)) h
          JOIN sessions x ON x.token_hash = h.token_hash
          ORDER BY h.complete DESC, h.user_id, h.client_id)sql",
          group_id, name, user_id, client_id, Secs(now)));
      for (size_t r = 0; r < rows.size(); ++r) {
        peers.push_back({rows.Text(r, 0), rows.Text(r, 1), rows.Text(r, 2),
                         rows.Int(r, 3) != 0, rows.Text(r, 4)});
      }
      return absl::OkStatus();
    }));
    if (!file.has_value()) return NoSuchFile(group_id, name);
    return FilePeers{*std::move(file), std::move(peers)};
  }

  absl::Status RemoveShare(const std::string& user_id, const std::string& client_id,
                           const std::string& group_id, const std::string& name) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
      ASSIGN_OR_RETURN(SqlRows deleted, Q(c,
          "DELETE FROM shares WHERE group_id = $1 AND name = $2 AND user_id = $3 "
          "AND client_id = $4", group_id, name, user_id, client_id));
      if (deleted.affected() == 0) {
        return absl::NotFoundError(absl::StrCat("you do not share '", name, "' in group '",
                                                group_id, "' from this client"));
      }
      RETURN_IF_ERROR(BumpFiles(c, group_id));
      return DropUnsharedFiles(c, group_id);
    });
  }

  absl::Status AddHolder(const std::string& user_id, const std::string& client_id,
                         const std::string& group_id, const std::string& name,
                         bool complete) override {
    return Write([&](SqlConnection& c) -> absl::Status {
      RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
      ASSIGN_OR_RETURN(auto file, FindFile(c, group_id, name));
      if (!file.has_value()) return NoSuchFile(group_id, name);
      RETURN_IF_ERROR(BumpFiles(c, group_id));
      // A complete holder stays complete.
      return Q(c, "INSERT INTO shares(group_id, name, user_id, client_id, complete) "
                  "VALUES($1, $2, $3, $4, $5) ON CONFLICT (group_id, name, user_id, client_id) "
                  "DO UPDATE SET complete = CASE WHEN shares.complete = 1 THEN 1 ELSE $5 END",
               group_id, name, user_id, client_id, complete).status();
    });
  }

  absl::StatusOr<std::vector<ShareView>> ListShares(const std::string& user_id,
                                                    const std::string& client_id) override {
    std::vector<ShareView> out;
    RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(SqlRows rows, Q(c, R"sql(
          SELECT s.group_id, s.name, f.sha1, f.size, s.complete
          FROM shares s JOIN files f ON f.group_id = s.group_id AND f.name = s.name
          WHERE s.user_id = $1 AND s.client_id = $2 ORDER BY s.group_id, s.name)sql",
          user_id, client_id));
      for (size_t r = 0; r < rows.size(); ++r) {
        out.push_back({rows.Text(r, 0), rows.Text(r, 1), rows.Text(r, 2),
                       static_cast<uint64_t>(rows.Int(r, 3)), rows.Int(r, 4) != 0});
      }
      return absl::OkStatus();
    }));
    return out;
  }

 private:
  // ALREADY_EXISTS when `table` has an id that looks like `id` (the same
  // skeleton), naming it.
  static absl::Status RequireUnlike(SqlConnection& c, const char* table, const char* column,
                                    const char* what, const std::string& skeleton,
                                    const std::string& id) {
    ASSIGN_OR_RETURN(SqlRows rows, Q(c, absl::StrCat("SELECT ", column, " FROM ", table,
                                                     " WHERE skeleton = $1 LIMIT 1"),
                                     skeleton));
    if (rows.empty()) return absl::OkStatus();
    return absl::AlreadyExistsError(absl::StrCat(
        what, " '", id, "' looks like the existing ", what, " '", rows.Text(0, 0),
        "' (their letters are confusable); choose another id"));
  }

  // Tells `to` at its next keep-alive; a user keeps its last 100.
  static absl::Status AddNotice(SqlConnection& c, const std::string& to, NoticeView::Kind kind,
                                const std::string& group_id, const std::string& other) {
    RETURN_IF_ERROR(Q(c, "INSERT INTO notices(user_id, kind, group_id, other_user) "
                         "VALUES($1, $2, $3, $4)", to, static_cast<int>(kind), group_id, other)
                        .status());
    return Q(c, "DELETE FROM notices WHERE user_id = $1 AND seq NOT IN "
                "(SELECT seq FROM notices WHERE user_id = $1 ORDER BY seq DESC LIMIT 100)", to)
        .status();
  }

  // Runs `body` in a write transaction; in a store bound to one (a change
  // under RunOnce), on that transaction's connection within a savepoint,
  // which an error rolls back alone.
  absl::Status Write(const std::function<absl::Status(SqlConnection&)>& body) {
    if (tx_ == nullptr) return db_->Write(body);
    RETURN_IF_ERROR(tx_->ExecuteScript("SAVEPOINT nested"));
    absl::Status status = body(*tx_);
    if (!status.ok()) tx_->ExecuteScript("ROLLBACK TO SAVEPOINT nested").IgnoreError();
    tx_->ExecuteScript("RELEASE SAVEPOINT nested").IgnoreError();
    return status;
  }
  // Runs `body` on a reader; in a store bound to a transaction, there, so
  // that it sees the transaction's own changes.
  absl::Status Read(const std::function<absl::Status(SqlConnection&)>& body) {
    return tx_ == nullptr ? db_->Read(body) : body(*tx_);
  }

  // The group's files as of `version`, from the cache or read anew.
  absl::StatusOr<std::shared_ptr<const GroupFiles>> FilesOf(SqlConnection& c,
                                                            const std::string& group_id,
                                                            int64_t version)
      ABSL_LOCKS_EXCLUDED(cache_->mu) {
    {
      absl::MutexLock lock(&cache_->mu);
      auto it = cache_->groups.find(group_id);
      if (it != cache_->groups.end() && it->second->version == version) return it->second;
    }
    // Read after the version: what is read is that version or newer, and a
    // newer one has another version in the database, so it is read again.
    ASSIGN_OR_RETURN(SqlRows rows, Q(c,
        "SELECT f.name, f.size, f.sha1, s.user_id, s.client_id, s.complete FROM files f "
        "LEFT JOIN shares s ON s.group_id = f.group_id AND s.name = f.name "
        "WHERE f.group_id = $1 ORDER BY f.group_id, f.name", group_id));
    auto files = std::make_shared<GroupFiles>();
    files->version = version;
    for (size_t r = 0; r < rows.size(); ++r) {
      if (files->files.empty() || files->files.back().name != rows.Text(r, 0)) {
        files->files.push_back(
            {rows.Text(r, 0), static_cast<uint64_t>(rows.Int(r, 1)), rows.Text(r, 2), {}});
      }
      if (!rows.IsNull(r, 3)) {
        files->files.back().holders.push_back(
            {rows.Text(r, 3), rows.Text(r, 4), rows.Int(r, 5) != 0});
      }
    }
    absl::MutexLock lock(&cache_->mu);
    auto& slot = cache_->groups[group_id];
    if (slot != nullptr) cache_->files -= slot->files.size();
    if (cache_->files + files->files.size() > kMaxCachedFiles) {
      cache_->groups.clear();
      cache_->files = 0;
    }
    cache_->files += files->files.size();
    cache_->groups[group_id] = files;
    return std::shared_ptr<const GroupFiles>(files);
  }

  // Set in the store that owns them, null in a bound one.
  const std::unique_ptr<SqlDatabase> owned_db_;
  const std::unique_ptr<FilesCache> owned_cache_;
  SqlDatabase* const db_;
  const StoreLimits limits_;
  FilesCache* const cache_;
  SqlConnection* const tx_ = nullptr;  // the transaction a bound store runs in
};

absl::StatusOr<std::unique_ptr<Store>> OpenSqlStore(
    absl::StatusOr<std::unique_ptr<SqlDatabase>> db, StoreLimits limits) {
  if (!db.ok()) return db.status();
  auto store = std::make_unique<SqlStore>(*std::move(db), limits);
  RETURN_IF_ERROR(store->Upgrade());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace

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

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                       StoreLimits limits, int readers) {
  return OpenSqlStore(OpenSqliteDatabase(path, readers), limits);
}

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& conninfo,
                                                         StoreLimits limits,
                                                         int connections) {
  return OpenSqlStore(OpenPostgresDatabase(conninfo, connections), limits);
}

}  // namespace groupshare::tracker
