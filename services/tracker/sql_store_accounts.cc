// SqlStore: users and sessions (see sql_store_internal.h).

#include "services/tracker/sql_store_internal.h"

#include "core/ids.h"

namespace groupshare::tracker::sql {

absl::Status SqlStore::CreateUser(const std::string& user_id, const std::string& password_hash,
                                  absl::Time now) {
  return Write([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(bool exists, UserExists(c, user_id));
    if (exists) {
      return absl::AlreadyExistsError(
          absl::StrCat("user '", user_id, "' already exists; choose another user id or log in"));
    }
    const std::string skeleton = IdSkeleton(user_id);
    RETURN_IF_ERROR(RequireUnlike(c, "users", "user_id", "user", skeleton, user_id));
    return Q(c,
             "INSERT INTO users(user_id, password_hash, created_at, skeleton) "
             "VALUES($1, $2, $3, $4)",
             user_id, password_hash, Secs(now), skeleton)
        .status();
  });
}

absl::StatusOr<std::string> SqlStore::GetPasswordHash(const std::string& user_id) {
  std::string hash;
  RETURN_IF_ERROR(ReadOne([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(SqlRows rows,
                     Q(c, "SELECT password_hash FROM users WHERE user_id = $1", user_id));
    if (rows.empty()) {
      return absl::NotFoundError(
          absl::StrCat("no user '", user_id, "'; create it first (CreateUser)"));
    }
    hash = rows.Text(0, 0);
    return absl::OkStatus();
  }));
  return hash;
}

absl::Status SqlStore::WriteSession(const std::string& token_hash,
                                    const std::function<absl::Status(SqlConnection&)>& write,
                                    bool listings_too) {
  sessions_->Forget(token_hash);
  absl::Status status = Write(write, listings_too);
  sessions_->Forget(token_hash);
  return status;
}

absl::Status SqlStore::CreateSession(const std::string& token_hash, const Session& session,
                                     absl::Time now) {
  // It ends the sessions that expired long ago and the client's earlier one.
  return WriteSession("", [&](SqlConnection& c) -> absl::Status {
    // Sessions a day past their expiry cannot come back.
    RETURN_IF_ERROR(
        Q(c, "DELETE FROM sessions WHERE expires_at < $1", Secs(now - kSessionComeback)).status());
    if (!session.client_id.empty()) {
      // The same client logging in again: its earlier session is over.
      RETURN_IF_ERROR(Q(c, "DELETE FROM sessions WHERE user_id = $1 AND client_id = $2",
                        session.user_id, session.client_id)
                          .status());
    }
    ASSIGN_OR_RETURN(SqlRows live,
                     Q(c, "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires_at > $2",
                       session.user_id, Secs(now)));
    if (live.Int(0, 0) >= limits_.sessions_per_user) {
      return Limit(
          absl::StrCat("'", session.user_id, "' is logged in from ", live.Int(0, 0), " clients"),
          limits_.sessions_per_user, "log out from one of them first");
    }
    if (!session.client_id.empty()) {
      RETURN_IF_ERROR(Q(c,
                        "INSERT INTO known_clients(user_id, client_id, last_login) "
                        "VALUES($1, $2, $3) ON CONFLICT (user_id, client_id) "
                        "DO UPDATE SET last_login = $3",
                        session.user_id, session.client_id, Secs(now))
                          .status());
      RETURN_IF_ERROR(Q(c,
                        "DELETE FROM known_clients WHERE user_id = $1 AND client_id NOT IN "
                        "(SELECT client_id FROM known_clients WHERE user_id = $1 "
                        "ORDER BY last_login DESC LIMIT 32)",
                        session.user_id)
                          .status());
    }
    return Q(c,
             "INSERT INTO sessions(token_hash, user_id, peer_address, created_at, "
             "expires_at, client_id) VALUES($1, $2, $3, $4, $5, $6)",
             SqlBytes{token_hash}, session.user_id, session.peer_address, Secs(now),
             Secs(session.expires), session.client_id)
        .status();
  });
}

absl::StatusOr<bool> SqlStore::IsKnownClient(const std::string& user_id,
                                             const std::string& client_id) {
  bool known = false;
  RETURN_IF_ERROR(ReadOne([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(known, Exists(c,
                                   "SELECT 1 FROM known_clients WHERE user_id = $1 AND "
                                   "client_id = $2",
                                   user_id, client_id));
    return absl::OkStatus();
  }));
  return known;
}

absl::StatusOr<Session> SqlStore::GetSession(const std::string& token_hash) {
  // A store bound to a transaction reads there: it sees the transaction's
  // own changes.
  const bool cached = tx_ == nullptr;
  const int64_t epoch = SessionEpoch();
  if (cached) {
    if (std::optional<Session> session = sessions_->Get(token_hash, epoch)) return *session;
  }
  const uint64_t generation = sessions_->Generation();
  Session s;
  RETURN_IF_ERROR(ReadOne([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(SqlRows rows,
                     Q(c,
                       "SELECT user_id, peer_address, expires_at, client_id FROM sessions "
                       "WHERE token_hash = $1",
                       SqlBytes{token_hash}));
    if (rows.empty()) {
      return absl::UnauthenticatedError(
          "not logged in (the tracker knows no such session); log in again");
    }
    s = {rows.Text(0, 0), rows.Text(0, 1), absl::FromUnixSeconds(rows.Int(0, 2)), rows.Text(0, 3)};
    return absl::OkStatus();
  }));
  if (cached) sessions_->Put(token_hash, s, generation, epoch);
  return s;
}

absl::Status SqlStore::ExtendSession(const std::string& token_hash, absl::Time expires,
                                     const std::optional<std::string>& relay) {
  // A live session stays live, so what ListFiles counts online stays; each
  // client's keep-alives would otherwise empty the listings cache all the
  // time. (One that had lapsed counts again from the next second.)
  return WriteSession(token_hash, [&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        SqlRows rows,
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
  }, /*listings_too=*/false);
}

absl::Status SqlStore::DeleteSession(const std::string& token_hash) {
  return WriteSession(token_hash, [&](SqlConnection& c) -> absl::Status {
    return Q(c, "DELETE FROM sessions WHERE token_hash = $1", SqlBytes{token_hash}).status();
  });
}

}  // namespace groupshare::tracker::sql
