// SqlStore: groups, join requests and notices (see sql_store_internal.h).

#include "services/tracker/sql_store_internal.h"

#include "core/ids.h"

namespace groupshare::tracker::sql {

absl::Status SqlStore::CreateGroup(const std::string& owner, const std::string& group_id,
                                   absl::Time now) {
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
    RETURN_IF_ERROR(Q(c,
                      "INSERT INTO groups_(group_id, owner, created_at, skeleton) "
                      "VALUES($1, $2, $3, $4)",
                      group_id, owner, Secs(now), skeleton)
                        .status());
    return Q(c, "INSERT INTO members(group_id, user_id, joined_at) VALUES($1, $2, $3)", group_id,
             owner, Secs(now))
        .status();
  });
}

absl::StatusOr<std::vector<GroupView>> SqlStore::ListGroups(const std::string& user_id,
                                                            const PageRequest& page) {
  std::vector<GroupView> out;
  RETURN_IF_ERROR(ReadOne([&](SqlConnection& c) -> absl::Status {
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
        case 1:
          g.relation = Relation::kMember;
          break;
        case 2:
          g.relation = Relation::kPending;
          break;
        case 3:
          g.relation = Relation::kRejected;
          break;
        default:
          break;
      }
      if (g.owner == user_id) g.relation = Relation::kOwner;
      out.push_back(std::move(g));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqlStore::RequestJoin(const std::string& user_id, const std::string& group_id,
                                   absl::Time now) {
  return Write([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(RequireGroup(c, group_id).status());
    ASSIGN_OR_RETURN(bool member, IsMember(c, user_id, group_id));
    if (member) {
      return absl::AlreadyExistsError(
          absl::StrCat("you are already a member of group '", group_id, "'"));
    }
    ASSIGN_OR_RETURN(bool pending,
                     Exists(c, "SELECT 1 FROM requests WHERE user_id = $1 AND group_id = $2",
                            user_id, group_id));
    if (pending) {
      return absl::AlreadyExistsError(absl::StrCat("you already asked to join group '", group_id,
                                                   "'; wait for its owner to accept"));
    }
    ASSIGN_OR_RETURN(int64_t waiting,
                     Count(c, "SELECT COUNT(*) FROM requests WHERE group_id = $1", group_id));
    if (waiting >= limits_.pending_requests_per_group) {
      return Limit(
          absl::StrCat("group '", group_id, "' has ", waiting, " requests waiting for its owner"),
          limits_.pending_requests_per_group, "try again later");
    }
    RETURN_IF_ERROR(Q(c,
                      "INSERT INTO requests(group_id, user_id, requested_at) "
                      "VALUES($1, $2, $3)",
                      group_id, user_id, Secs(now))
                        .status());
    ASSIGN_OR_RETURN(std::string owner, RequireGroup(c, group_id));
    RETURN_IF_ERROR(AddNotice(c, owner, NoticeView::kRequestWaiting, group_id, user_id));
    // Asking again: an earlier rejection is history.
    return Q(c, "DELETE FROM rejections WHERE group_id = $1 AND user_id = $2", group_id, user_id)
        .status();
  });
}

absl::StatusOr<LeaveResult> SqlStore::LeaveGroup(const std::string& user_id,
                                                 const std::string& group_id) {
  LeaveResult result;
  RETURN_IF_ERROR(Write([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(std::string owner, RequireGroup(c, group_id));
    ASSIGN_OR_RETURN(bool member, IsMember(c, user_id, group_id));
    if (!member) {
      return absl::NotFoundError(absl::StrCat("you are not a member of group '", group_id, "'"));
    }
    RETURN_IF_ERROR(
        Q(c, "DELETE FROM members WHERE group_id = $1 AND user_id = $2", group_id, user_id)
            .status());
    RETURN_IF_ERROR(
        Q(c, "DELETE FROM shares WHERE group_id = $1 AND user_id = $2", group_id, user_id)
            .status());
    RETURN_IF_ERROR(BumpFiles(c, group_id));
    RETURN_IF_ERROR(DropUnsharedFiles(c, group_id));
    if (owner != user_id) return absl::OkStatus();
    ASSIGN_OR_RETURN(
        SqlRows next,
        Q(c, "SELECT user_id FROM members WHERE group_id = $1 ORDER BY seq LIMIT 1", group_id));
    if (!next.empty()) {
      result.new_owner = next.Text(0, 0);
      RETURN_IF_ERROR(
          AddNotice(c, result.new_owner, NoticeView::kGroupHandedToYou, group_id, user_id));
      return Q(c, "UPDATE groups_ SET owner = $1 WHERE group_id = $2", result.new_owner, group_id)
          .status();
    }
    result.group_deleted = true;
    return Q(c, "DELETE FROM groups_ WHERE group_id = $1", group_id).status();
  }));
  return result;
}

absl::StatusOr<std::vector<NoticeView>> SqlStore::TakeNotices(const std::string& user_id,
                                                              int64_t seen, int limit) {
  if (seen > 0) {
    RETURN_IF_ERROR(Write([&](SqlConnection& c) {
      return Q(c, "DELETE FROM notices WHERE user_id = $1 AND seq <= $2", user_id, seen).status();
    }));
  }
  std::vector<NoticeView> out;
  RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        SqlRows rows,
        Q(c,
          "SELECT seq, kind, group_id, other_user FROM notices WHERE user_id = $1 AND seq > $2 "
          "ORDER BY seq LIMIT $3",
          user_id, seen, limit));
    for (size_t r = 0; r < rows.size(); ++r) {
      out.push_back(
          {rows.Int(r, 0), static_cast<int>(rows.Int(r, 1)), rows.Text(r, 2), rows.Text(r, 3)});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<JoinRequestView>> SqlStore::ListRequests(const std::string& owner,
                                                                    const std::string& group_id) {
  std::vector<JoinRequestView> out;
  RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(RequireOwner(c, owner, group_id));
    ASSIGN_OR_RETURN(
        SqlRows rows,
        Q(c, "SELECT user_id, requested_at FROM requests WHERE group_id = $1 ORDER BY seq",
          group_id));
    for (size_t r = 0; r < rows.size(); ++r) {
      out.push_back({rows.Text(r, 0), absl::FromUnixSeconds(rows.Int(r, 1))});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqlStore::AnswerRequest(const std::string& owner, const std::string& group_id,
                                     const std::string& user_id, bool accept, absl::Time now) {
  return Write([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(RequireOwner(c, owner, group_id));
    ASSIGN_OR_RETURN(
        SqlRows deleted,
        Q(c, "DELETE FROM requests WHERE group_id = $1 AND user_id = $2", group_id, user_id));
    if (deleted.affected() == 0) {
      ASSIGN_OR_RETURN(bool member, IsMember(c, user_id, group_id));
      if (member) {
        return absl::AlreadyExistsError(
            absl::StrCat("'", user_id, "' is a member of group '", group_id, "' already"));
      }
      return absl::NotFoundError(absl::StrCat("no pending request from '", user_id,
                                              "' to join group '", group_id,
                                              "'; ListRequests lists the requests"));
    }
    RETURN_IF_ERROR(AddNotice(c, user_id,
                              accept ? NoticeView::kRequestAccepted : NoticeView::kRequestRejected,
                              group_id, owner));
    // The owner need not hear of a request it answered.
    RETURN_IF_ERROR(Q(c,
                      "DELETE FROM notices WHERE user_id = $1 AND kind = $2 AND "
                      "group_id = $3 AND other_user = $4",
                      owner, static_cast<int>(NoticeView::kRequestWaiting), group_id, user_id)
                        .status());
    if (accept) {
      return Q(c, "INSERT INTO members(group_id, user_id, joined_at) VALUES($1, $2, $3)", group_id,
               user_id, Secs(now))
          .status();
    }
    // Kept, so that the requester can see it, until it asks again.
    return Q(c,
             "INSERT INTO rejections(group_id, user_id, rejected_at) VALUES($1, $2, $3) "
             "ON CONFLICT (group_id, user_id) DO UPDATE SET rejected_at = $3",
             group_id, user_id, Secs(now))
        .status();
  });
}

}  // namespace groupshare::tracker::sql
