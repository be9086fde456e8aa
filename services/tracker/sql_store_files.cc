// SqlStore: files, shares and holders (see sql_store_internal.h).

#include "services/tracker/sql_store_internal.h"

#include "absl/container/flat_hash_set.h"

namespace groupshare::tracker::sql {
namespace {

// A group's files version, its members, and their clients that have a live
// session at `now` (a share is online while its client is), in one
// statement: one round trip to a database server, not three.
struct GroupMembersOnline {
  int64_t version = 0;
  SqlRows rows;
  absl::flat_hash_set<std::string> members;
  // (user, client): views into `rows`, whose cells stay where they are when
  // it moves.
  absl::flat_hash_set<std::pair<absl::string_view, absl::string_view>> online;
};
absl::StatusOr<GroupMembersOnline> ReadGroupMembersOnline(SqlConnection& c,
                                                          const std::string& group_id,
                                                          absl::Time now) {
  ASSIGN_OR_RETURN(SqlRows rows,
                   Q(c,
                     "SELECT g.files_version, m.user_id, x.user_id, x.client_id FROM groups_ g "
                     "LEFT JOIN members m ON m.group_id = g.group_id "
                     "LEFT JOIN sessions x ON x.user_id = m.user_id AND x.expires_at > $2 "
                     "WHERE g.group_id = $1",
                     group_id, Secs(now)));
  if (rows.empty()) return NoSuchGroup(group_id);
  GroupMembersOnline out;
  out.version = rows.Int(0, 0);
  out.rows = std::move(rows);
  for (size_t r = 0; r < out.rows.size(); ++r) {
    if (out.rows.IsNull(r, 1)) continue;
    out.members.insert(out.rows.Text(r, 1));
    if (!out.rows.IsNull(r, 2)) out.online.emplace(out.rows.Text(r, 2), out.rows.Text(r, 3));
  }
  return out;
}

}  // namespace

absl::StatusOr<bool> SqlStore::AddFile(const std::string& user_id, const std::string& client_id,
                                       const std::string& group_id, const FileRecord& file,
                                       absl::Time now) {
  bool created = false;
  RETURN_IF_ERROR(Write([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
    ASSIGN_OR_RETURN(auto existing, FindFile(c, group_id, file.name));
    created = !existing.has_value();
    if (existing.has_value()) {
      if (existing->sha1 != file.sha1 || existing->size != file.size ||
          existing->piece_size != file.piece_size) {
        return absl::AlreadyExistsError(
            absl::StrCat("group '", group_id, "' already has a different file named '", file.name,
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
      // The chain is what the file was registered with, or none: a later
      // sharer's never replaces it, since a wrong one would fail every
      // piece of every download. One that differs is refused as other
      // piece hashes are.
      if (!existing->sha1_chain.empty() && !file.sha1_chain.empty() &&
          existing->sha1_chain != file.sha1_chain) {
        return absl::FailedPreconditionError(absl::StrCat(
            "'", file.name, "' in group '", group_id,
            "' is registered with the same SHA1 but another SHA1 chain; hash the file "
            "again (upload_file, or UploadFile with the chain of that content)"));
      }
    } else {
      ASSIGN_OR_RETURN(int64_t files,
                       Count(c, "SELECT COUNT(*) FROM files WHERE group_id = $1", group_id));
      if (files >= limits_.files_per_group) {
        return Limit(absl::StrCat("group '", group_id, "' has ", files, " files"),
                     limits_.files_per_group, "stop sharing one (stop_share) first");
      }
      // What the tracker keeps for a user's files is bounded too.
      ASSIGN_OR_RETURN(
          int64_t held,
          Count(c,
                "SELECT COALESCE(SUM(LENGTH(f.piece_sha1) + LENGTH(f.sha1_chain)), 0) "
                "FROM files f WHERE EXISTS "
                "(SELECT 1 FROM shares s WHERE s.group_id = f.group_id AND s.name = f.name "
                "AND s.user_id = $1)",
                user_id));
      const int64_t adding =
          static_cast<int64_t>(file.piece_sha1.size() + file.sha1_chain.size()) * 20;
      if (held + adding > limits_.metadata_bytes_per_user) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the files you share take ", held >> 10, " KiB of hashes here and this one ",
            adding >> 10, " KiB more, past the tracker's limit of ",
            limits_.metadata_bytes_per_user >> 10,
            " KiB a user; stop sharing some (stop_share), or share larger pieces"));
      }
      RETURN_IF_ERROR(Q(c,
                        "INSERT INTO files(group_id, name, size, piece_size, sha1, piece_sha1, "
                        "created_at, sha1_chain) VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
                        group_id, file.name, file.size, file.piece_size, file.sha1,
                        SqlBytes{PackSha1Hex(file.piece_sha1)}, Secs(now),
                        SqlBytes{PackSha1Hex(file.sha1_chain)})
                          .status());
    }
    RETURN_IF_ERROR(BumpFiles(c, group_id));
    return Q(c,
             "INSERT INTO shares(group_id, name, user_id, client_id, complete) "
             "VALUES($1, $2, $3, $4, 1) ON CONFLICT (group_id, name, user_id, client_id) "
             "DO UPDATE SET complete = 1",
             group_id, file.name, user_id, client_id)
        .status();
  }));
  return created;
}

absl::StatusOr<FileListing> SqlStore::ListFiles(const std::string& user_id,
                                                const std::string& group_id,
                                                const PageRequest& page, absl::Time now) {
  ASSIGN_OR_RETURN(std::shared_ptr<const GroupListing> listing,
                   ListingOf(user_id, group_id, now));
  const std::vector<GroupFiles::File>& files = listing->files->files;
  auto it = std::upper_bound(
      files.begin(), files.end(), page.after,
      [](const std::string& after, const GroupFiles::File& f) { return after < f.name; });
  const auto end = it + std::min<int64_t>(files.end() - it, page.size);
  FileListing out(listing);
  out.reserve(end - it);
  for (; it != end; ++it) {
    const auto [seeders, partial] = listing->online[it - files.begin()];
    out.push_back({it->name, it->size, it->sha1, seeders, partial});
  }
  return out;
}

bool SqlStore::CanListFilesFromCache(const std::string& token_hash, const std::string& group_id,
                                     absl::Time now) {
  if (tx_ != nullptr) return false;
  const std::optional<Session> session = sessions_->Get(token_hash, SessionEpoch());
  if (!session.has_value() || session->expires <= now) return false;
  const auto listing = listings_->Get(group_id, Secs(now));
  return listing.has_value() && (*listing)->members.contains(session->user_id);
}

absl::StatusOr<std::shared_ptr<const GroupListing>> SqlStore::ListingOf(
    const std::string& user_id, const std::string& group_id, absl::Time now) {
  // A store bound to a transaction reads there: it sees the transaction's
  // own changes.
  const bool cached = tx_ == nullptr;
  const int64_t epoch = Secs(now);
  std::optional<std::shared_ptr<const GroupListing>> listing;
  if (cached) listing = listings_->Get(group_id, epoch);
  if (!listing.has_value()) {
    const uint64_t generation = listings_->Generation();
    auto read = std::make_shared<GroupListing>();
    RETURN_IF_ERROR(ReadOne([&](SqlConnection& c) -> absl::Status {
      ASSIGN_OR_RETURN(GroupMembersOnline group, ReadGroupMembersOnline(c, group_id, now));
      ASSIGN_OR_RETURN(read->files, FilesOf(c, group_id, group.version));
      read->members = std::move(group.members);
      read->online.reserve(read->files->files.size());
      for (const GroupFiles::File& f : read->files->files) {
        auto& [seeders, partial] = read->online.emplace_back(0, 0);
        for (const GroupFiles::Holder& h : f.holders) {
          if (group.online.contains(
                  std::pair<absl::string_view, absl::string_view>(h.user_id, h.client_id))) {
            ++(h.complete ? seeders : partial);
          }
        }
      }
      return absl::OkStatus();
    }));
    if (cached) listings_->Put(group_id, read, generation, epoch);
    listing = std::move(read);
  }
  if (!(*listing)->members.contains(user_id)) return NotAMember(group_id);
  return *std::move(listing);
}

absl::StatusOr<FileRecord> SqlStore::GetFile(const std::string& user_id,
                                             const std::string& group_id, const std::string& name) {
  std::optional<FileRecord> file;
  RETURN_IF_ERROR(Read([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
    ASSIGN_OR_RETURN(file, FindFile(c, group_id, name));
    return absl::OkStatus();
  }));
  if (!file.has_value()) return NoSuchFile(group_id, name);
  return *std::move(file);
}

absl::StatusOr<FilePeers> SqlStore::GetFileAndPeers(const std::string& user_id,
                                                    const std::string& client_id,
                                                    const std::string& group_id,
                                                    const std::string& name, absl::Time now) {
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
                       HoldsAll(rows.Int(r, 3)), rows.Text(r, 4)});
    }
    return absl::OkStatus();
  }));
  if (!file.has_value()) return NoSuchFile(group_id, name);
  return FilePeers{*std::move(file), std::move(peers)};
}

absl::Status SqlStore::RemoveShare(const std::string& user_id, const std::string& client_id,
                                   const std::string& group_id, const std::string& name) {
  return Write([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
    ASSIGN_OR_RETURN(SqlRows deleted,
                     Q(c,
                       "DELETE FROM shares WHERE group_id = $1 AND name = $2 AND user_id = $3 "
                       "AND client_id = $4",
                       group_id, name, user_id, client_id));
    if (deleted.affected() == 0) {
      return absl::NotFoundError(
          absl::StrCat("you do not share '", name, "' in group '", group_id, "' from this client"));
    }
    RETURN_IF_ERROR(BumpFiles(c, group_id));
    return DropUnsharedFiles(c, group_id);
  });
}

absl::Status SqlStore::AddHolder(const std::string& user_id, const std::string& client_id,
                                 const std::string& group_id, const std::string& name,
                                 Holding holding) {
  return Write([&](SqlConnection& c) -> absl::Status {
    RETURN_IF_ERROR(RequireMember(c, user_id, group_id));
    ASSIGN_OR_RETURN(auto file, FindFile(c, group_id, name));
    if (!file.has_value()) return NoSuchFile(group_id, name);
    RETURN_IF_ERROR(BumpFiles(c, group_id));
    return Q(c,
             "INSERT INTO shares(group_id, name, user_id, client_id, complete) "
             "VALUES($1, $2, $3, $4, $5) ON CONFLICT (group_id, name, user_id, client_id) "
             "DO UPDATE SET complete = CASE WHEN shares.complete > $5 THEN shares.complete "
             "ELSE $5 END",
             group_id, name, user_id, client_id, static_cast<int64_t>(holding))
        .status();
  });
}

absl::StatusOr<std::vector<ShareView>> SqlStore::ListShares(const std::string& user_id,
                                                            const std::string& client_id) {
  std::vector<ShareView> out;
  RETURN_IF_ERROR(ReadOne([&](SqlConnection& c) -> absl::Status {
    ASSIGN_OR_RETURN(SqlRows rows, Q(c, R"sql(
        SELECT s.group_id, s.name, f.sha1, f.size, s.complete
        FROM shares s JOIN files f ON f.group_id = s.group_id AND f.name = s.name
        WHERE s.user_id = $1 AND s.client_id = $2 ORDER BY s.group_id, s.name)sql",
                                     user_id, client_id));
    for (size_t r = 0; r < rows.size(); ++r) {
      out.push_back({rows.Text(r, 0), rows.Text(r, 1), rows.Text(r, 2),
                     static_cast<uint64_t>(rows.Int(r, 3)), HoldsAll(rows.Int(r, 4))});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::shared_ptr<const GroupFiles>> SqlStore::FilesOf(SqlConnection& c,
                                                                    const std::string& group_id,
                                                                    int64_t version) {
  {
    absl::MutexLock lock(&cache_->mu);
    auto it = cache_->groups.find(group_id);
    if (it != cache_->groups.end() && it->second->version == version) return it->second;
  }
  // Read after the version: what is read is that version or newer, and a
  // newer one has another version in the database, so it is read again.
  ASSIGN_OR_RETURN(
      SqlRows rows,
      Q(c,
        "SELECT f.name, f.size, f.sha1, s.user_id, s.client_id, s.complete FROM files f "
        "LEFT JOIN shares s ON s.group_id = f.group_id AND s.name = f.name "
        "WHERE f.group_id = $1 ORDER BY f.group_id, f.name",
        group_id));
  auto files = std::make_shared<GroupFiles>();
  files->version = version;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (files->files.empty() || files->files.back().name != rows.Text(r, 0)) {
      files->files.push_back(
          {rows.Text(r, 0), static_cast<uint64_t>(rows.Int(r, 1)), rows.Text(r, 2), {}});
    }
    if (!rows.IsNull(r, 3)) {
      files->files.back().holders.push_back(
          {rows.Text(r, 3), rows.Text(r, 4), HoldsAll(rows.Int(r, 5))});
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

}  // namespace groupshare::tracker::sql
