#include "services/peer/node.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/crypto.h"
#include "core/file_hasher.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/part_file.h"
#include "core/status_macros.h"
#include "core/ticket.h"
#include "services/common/file_info.h"

namespace groupshare::peer {

namespace tv1 = ::groupshare::tracker::v1;
using Stub = tv1::TrackerService::Stub;

namespace {

absl::StatusOr<std::string> LoggedIn(TrackerClient* tracker) {
  auto user = tracker->user();
  if (!user.has_value()) {
    return absl::FailedPreconditionError(
        "not logged in; log in first with login <user_id> <password>");
  }
  return *user;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The absolute path a download is written to: inside `dest` when it is a
// folder, else `dest` itself, whose folder must exist.
absl::StatusOr<std::string> ResolveDestination(const std::string& dest, const std::string& name) {
  if (dest.empty()) return absl::InvalidArgumentError("the destination path is empty");
  std::string path = IsDir(dest) ? absl::StrCat(dest, "/", name) : dest;
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  char real[PATH_MAX];
  if (realpath(dir.c_str(), real) == nullptr || !IsDir(real)) {
    return absl::NotFoundError(absl::StrCat("no folder '", dir, "' to download into"));
  }
  // Checked now, not when the first piece arrives.
  if (access(real, W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot write into '", real, "': ", std::strerror(errno),
        "; choose another destination"));
  }
  if (base.empty() || base == "." || base == "..") {
    return absl::InvalidArgumentError(absl::StrCat("'", dest, "' does not name a file"));
  }
  std::string out = std::string(real) == "/" ? "/" + base : absl::StrCat(real, "/", base);
  struct stat st;
  if (stat(out.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("'", out, "' exists already; remove it or choose another destination"));
  }
  return out;
}

// The piece size a file of `size` bytes at `path` is shared in;
// INVALID_ARGUMENT when it is too large to share.
absl::StatusOr<uint32_t> PieceSizeToShare(const std::string& path, uint64_t size) {
  if (const uint32_t piece_size = PieceSizeFor(size); piece_size != 0) return piece_size;
  return absl::InvalidArgumentError(absl::StrCat("'", path, "' is ", size,
                                                 " bytes; the largest file that can be shared is ",
                                                 kMaxShareBytes >> 40, " TiB"));
}

// Only a regular file is shared, read from where it is: not a folder, a
// FIFO or a device (reading one may never end), not a file of the kernel's
// (/proc, /sys: their sizes say 0), and not through a symbolic link, which
// would share the target under the target's name.
absl::Status CheckShareable(const std::string& path, const std::string& resolved) {
  struct stat st;
  if (lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is a symbolic link to '", resolved,
        "'; upload_file the file itself"));
  }
  if (stat(resolved.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("no file '", path, "'"));
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is a folder; upload_file takes a file"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is not a regular file (",
        S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : "a device",
        "); upload_file shares regular files only"));
  }
  struct statfs fs;
  if (statfs(resolved.c_str(), &fs) == 0 &&
      (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is a file of the kernel's, whose size says nothing of its content; "
        "copy it into a file first"));
  }
  return absl::OkStatus();
}

// A notice of the tracker as the shell tells it ("" for a kind this client
// does not know).
std::string DescribeNotice(const tv1::Notice& n) {
  switch (n.kind()) {
    case tv1::Notice::KIND_REQUEST_WAITING:
      return absl::StrCat(n.user_id(), " asks to join ", n.group_id(), "; accept_request ",
                          n.group_id(), " ", n.user_id(), " lets them in");
    case tv1::Notice::KIND_REQUEST_ACCEPTED:
      return absl::StrCat(n.user_id(), " accepted you into ", n.group_id());
    case tv1::Notice::KIND_REQUEST_REJECTED:
      return absl::StrCat(n.user_id(), " refused your request to join ", n.group_id());
    case tv1::Notice::KIND_GROUP_HANDED_TO_YOU:
      return absl::StrCat(n.user_id(), " left ", n.group_id(), "; you own it now");
    default:
      return "";
  }
}

// The tracker is trusted for hashes, but what it says of a file is held to
// the rules it holds sharers to: a name from the network never becomes a
// path unchecked, nor a piece size a buffer.
absl::Status CheckFileInfo(const tv1::FileInfo& f) {
  absl::Status valid = ValidateFileInfo(f);
  if (valid.ok()) return valid;
  return absl::InvalidArgumentError(
      absl::StrCat("the tracker sent inconsistent file metadata (", valid.message(), ")"));
}

// The request that registers `name` in `group_id` as `hashes` describe it:
// a HashedFile, or the record of a share (which keeps what hashing gave).
template <typename Hashes>
tv1::UploadFileRequest UploadRequest(const std::string& group_id, const std::string& name,
                                     const Hashes& hashes) {
  tv1::UploadFileRequest req;
  req.set_group_id(group_id);
  tv1::FileInfo* f = req.mutable_file();
  f->set_name(name);
  f->set_size(hashes.size);
  f->set_piece_size(hashes.piece_size);
  f->set_sha1(hashes.sha1);
  for (const std::string& p : hashes.piece_sha1) f->add_piece_sha1(p);
  for (const std::string& c : hashes.sha1_chain) f->add_sha1_chain(c);
  return req;
}

// FAILED_PRECONDITION unless the file at `path` is still as `before` found
// it, and `hashed` read it all: a hash is vouched for only by the stamp the
// file kept while it was read.
absl::Status UnchangedWhileHashed(const std::string& path, const FileStamp& before,
                                  const HashedFile& hashed) {
  if (absl::StatusOr<FileStamp> after = StampOf(path);
      !after.ok() || *after != before || hashed.size != before.size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' changed while it was hashed; upload it again once nothing writes to it"));
  }
  return absl::OkStatus();
}

}  // namespace

// The tracker as a download sees it. Changes of what this client holds are
// written ahead to the state folder and forgotten once a tracker answered:
// what no tracker heard is sent again by Node::SendPending, with its
// request-id, until one does.
class TrackerForDownloads final : public DownloadTracker {
 public:
  // `await_serving` returns once the peer service shows this login's
  // certificate: a holder is listed only once others can connect to it.
  TrackerForDownloads(TrackerClient* tracker, ClientState* state,
                      std::function<void()> await_serving)
      : tracker_(tracker), state_(state), await_serving_(std::move(await_serving)) {}
  absl::StatusOr<tv1::GetFilePeersResponse> GetFilePeers(const std::string& group_id,
                                                         const std::string& name) override {
    tv1::GetFilePeersRequest req;
    req.set_group_id(group_id);
    req.set_file_name(name);
    return tracker_->Call(&Stub::GetFilePeers, req);
  }
  absl::Status AnnounceHolder(const std::string& group_id, const std::string& name,
                              bool complete) override {
    await_serving_();
    return Change(group_id, name,
                  complete ? PendingChange::kAnnounceComplete : PendingChange::kAnnouncePartial);
  }
  absl::Status AnnounceStart(const std::string& group_id, const std::string& name) override {
    tv1::AnnounceHolderRequest req;
    req.set_group_id(group_id);
    req.set_file_name(name);
    req.set_no_piece_yet(true);
    await_serving_();
    return tracker_->Call(&Stub::AnnounceHolder, req).status();
  }
  absl::Status StopShare(const std::string& group_id, const std::string& name) override {
    return Change(group_id, name, PendingChange::kStopShare);
  }

  // Sends `change` (again). UNAVAILABLE while no tracker answers; any other
  // answer is final and the change is forgotten.
  absl::Status Send(const PendingChange& change) {
    absl::Status status = Call(change);
    if (status.code() != absl::StatusCode::kUnavailable &&
        status.code() != absl::StatusCode::kUnauthenticated) {
      state_->RemovePending(change).IgnoreError();
    }
    return status;
  }

 private:
  absl::Status Change(const std::string& group_id, const std::string& name,
                      PendingChange::Kind kind) {
    std::optional<std::string> user = tracker_->user();
    PendingChange change{user.value_or(""), group_id, name, kind, NewRequestId()};
    if (!user.has_value() || !state_->PutPending(change).ok()) return Call(change);
    absl::Status status = Send(change);
    if (status.code() == absl::StatusCode::kUnavailable) {
      GS_LOG(kInfo) << "no tracker heard of this change of " << name << " in " << group_id
                    << " (" << status.message() << "); it is sent again until one does";
      return absl::OkStatus();
    }
    return status;
  }

  absl::Status Call(const PendingChange& change) {
    if (change.change == PendingChange::kStopShare) {
      tv1::StopShareRequest req;
      req.set_group_id(change.group_id);
      req.set_file_name(change.name);
      return tracker_->Call(&Stub::StopShare, req, change.request_id).status();
    }
    tv1::AnnounceHolderRequest req;
    req.set_group_id(change.group_id);
    req.set_file_name(change.name);
    req.set_complete(change.change == PendingChange::kAnnounceComplete);
    return tracker_->Call(&Stub::AnnounceHolder, req, change.request_id).status();
  }

  TrackerClient* const tracker_;
  ClientState* const state_;
  const std::function<void()> await_serving_;
};

Node::Node(TrackerClient* tracker, std::unique_ptr<ClientState> state, NodeOptions options)
    : tracker_(tracker),
      state_(std::move(state)),
      download_tracker_(std::make_unique<TrackerForDownloads>(tracker, state_.get(),
                                                              [this] { AwaitServing(); })),
      options_(std::move(options)),
      peer_address_(options_.peer_address) {
  peer_service_.SetSelfAddress(peer_address_);
  tracker_->SetSessionLostCallback([this] { StopSharing(); });
  store_.SetChangedCallback([this](const ShareKey& key, const std::string& name) {
    std::optional<std::string> user = tracker_->user();
    if (!user.has_value()) return;
    background_.Run([this, user = *user, key, name] {
      ForgetChanged(user, key.group_id, name, key.sha1,
                    "it changed since it was shared (a peer asked for a piece)");
    });
  });
  tracker_->SetKeepAliveFields([this](tv1::KeepAliveRequest* request) {
    if (options_.identity != nullptr) {
      request->set_peer_public_key(options_.identity->RenewalKey(absl::Now()));
    }
    request->set_relay(relay());
  });
  tracker_->SetKeepAliveCallback([this](const tv1::KeepAliveResponse& response) {
    if (options_.identity != nullptr) {
      absl::Status s = options_.identity->Accept(
          response.peer_certificate(),
          {response.peer_ca_certificates().begin(), response.peer_ca_certificates().end()});
      if (!s.ok()) GS_LOG(kWarning) << "keeping the peer certificate of before: " << s;
    }
    if (response.ticket_public_keys_size() > 0) {
      std::vector<std::string> keys(response.ticket_public_keys().begin(),
                                    response.ticket_public_keys().end());
      if (absl::Status s = AcceptTicketKeys(keys, /*at_login=*/false); !s.ok()) {
        GS_LOG(kWarning) << "the tracker sent bad ticket keys; keeping the ones of before: "
                         << s;
      }
    }
    std::vector<std::string> told;
    for (const tv1::Notice& n : response.notices()) {
      if (std::string line = DescribeNotice(n); !line.empty()) told.push_back(std::move(line));
    }
    absl::MutexLock lock(&mu_);
    notices_.insert(notices_.end(), told.begin(), told.end());
  });
  RetryEvery(retrying_.get());
}

void Node::RetryEvery(WorkQueue* queue) {
  // The queue itself, not retrying_: the destructor has already cleared
  // that pointer while the queue ends the task under way.
  queue->RunAt(absl::Now() + options_.retry_interval, [this, queue] {
    Retry();
    RetryEvery(queue);
  });
}

void Node::Retry() {
  if (std::optional<std::string> user = tracker_->user(); user.has_value()) {
    SendPending(*user);
    RetryFailedDownloads(*user);
  }
}

void Node::SendPending(const std::string& user_id) {
  auto pending = state_->ListPending(user_id);
  if (!pending.ok()) return;
  for (const PendingChange& change : *pending) {
    absl::Status status = download_tracker_->Send(change);
    if (status.code() == absl::StatusCode::kUnavailable) return;  // later
    GS_LOG(kInfo) << "the tracker heard at last of the change of " << change.name << " in "
                  << change.group_id
                  << (status.ok() ? "" : absl::StrCat(": ", status.message()));
  }
}

void Node::RetryFailedDownloads(const std::string& user_id) {
  std::vector<std::pair<const Download*, DownloadProgress>> failed;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& d : downloads_) {
      DownloadProgress p = d->Progress();
      if (p.state == DownloadState::kFailed && p.no_source) failed.emplace_back(d.get(), p);
    }
  }
  for (auto& [old, p] : failed) {
    auto peers = download_tracker_->GetFilePeers(p.group_id, p.name);
    if (!peers.ok() || peers->peers().empty()) continue;
    auto download = MakeDownload(user_id, p.group_id, *std::move(peers), p.dest);
    if (!download.ok()) continue;
    std::unique_ptr<Download> unused = *std::move(download);
    unused->Start();
    {
      absl::MutexLock lock(&mu_);
      // Unless a command took the failed one away (stop_share, a new
      // download_file) meanwhile.
      auto it = std::find_if(downloads_.begin(), downloads_.end(),
                             [old = old](const auto& d) { return d.get() == old; });
      if (it != downloads_.end()) {
        std::swap(*it, unused);
        notices_.push_back(absl::StrCat("a sharer of ", p.name, " in ", p.group_id,
                                        " is back: its download goes on"));
      }
    }
    // `unused` (the failed download, or the new one if not needed) ends
    // here, outside the lock.
  }
}

void Node::StopSharing() {
  LeaveRelay();
  CancelUploads("", "");
  std::vector<std::unique_ptr<Download>> downloads;
  {
    absl::MutexLock lock(&mu_);
    downloads.swap(downloads_);
  }
  downloads.clear();  // each stops; its verified pieces stay recorded
  store_.RemoveAll();
  absl::MutexLock lock(&mu_);
  ticket_keys_.clear();
  peer_service_.SetTicketVerifier(nullptr);
}

void Node::set_peer_address(const std::string& address) {
  absl::MutexLock lock(&mu_);
  peer_address_ = address;
  peer_service_.SetSelfAddress(address);
}

void Node::set_local_address(const std::string& address) {
  absl::MutexLock lock(&mu_);
  local_address_ = address;
}

Node::~Node() {
  retrying_.reset();  // a retry under way ends first; none starts after
  store_.SetChangedCallback(nullptr);
  tracker_->SetSessionLostCallback(nullptr);
  tracker_->SetKeepAliveCallback(nullptr);
  tracker_->SetKeepAliveFields(nullptr);
  StopSharing();
  peer_service_.Shutdown();
}

absl::Status Node::AcceptTicketKeys(const std::vector<std::string>& keys, bool at_login) {
  absl::MutexLock lock(&mu_);
  // After a logout (no keys), a late keep-alive must not open the door.
  if (!at_login && ticket_keys_.empty()) return absl::OkStatus();
  if (keys == ticket_keys_) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto verifier, TicketVerifier::Create(keys));
  peer_service_.SetTicketVerifier(std::shared_ptr<const TicketVerifier>(std::move(verifier)));
  if (!ticket_keys_.empty()) GS_LOG(kInfo) << "the tracker's ticket keys changed";
  ticket_keys_ = keys;
  return absl::OkStatus();
}

void Node::AwaitServing() {
  if (options_.identity == nullptr) return;
  std::string address;
  {
    absl::MutexLock lock(&mu_);
    address = local_address_.empty() ? peer_address_ : local_address_;
  }
  if (absl::Status s = options_.identity->AwaitServed(address, absl::Seconds(3)); !s.ok()) {
    GS_LOG(kWarning) << s.message();
  }
}

absl::StatusOr<LoginSummary> Node::Login(const std::string& user_id,
                                         const std::string& password) {
  std::string address;
  {
    absl::MutexLock lock(&mu_);
    address = peer_address_;
  }
  ASSIGN_OR_RETURN(std::string client_id, state_->ClientId());
  PeerIdentity* identity = options_.identity;
  ASSIGN_OR_RETURN(tv1::LoginResponse login,
                   tracker_->Login(user_id, password, address, client_id,
                                   identity != nullptr ? identity->public_key_pem() : ""));
  if (identity != nullptr) {
    absl::Status s = identity->Accept(
        login.peer_certificate(),
        {login.peer_ca_certificates().begin(), login.peer_ca_certificates().end()});
    if (!s.ok() || login.peer_certificate().empty()) {
      tracker_->Logout().IgnoreError();
      return absl::InternalError(absl::StrCat(
          "the tracker issued no usable peer certificate (", s.ok() ? "none" : s.message(),
          "); is it an older tracker, or run with --plaintext while this client is not?"));
    }
  }
  std::vector<std::string> keys(login.ticket_public_keys().begin(),
                                login.ticket_public_keys().end());
  if (keys.empty()) keys.push_back(login.ticket_public_key());  // an older tracker
  if (absl::Status s = AcceptTicketKeys(keys, /*at_login=*/true); !s.ok()) {
    tracker_->Logout().IgnoreError();
    return absl::InternalError("the tracker sent a bad ticket key; try another tracker");
  }
  if (options_.relays != nullptr) {
    options_.relays->Set({login.relays().begin(), login.relays().end()});
  }
  peer_service_.ResetTraffic();  // show_uploads counts from the login
  LoginSummary summary;
  Restore(user_id, login, &summary);
  retrying_->Run([this] { ReportReachability(); });
  retrying_->Run([this] { Retry(); });  // what the tracker missed before
  return summary;
}

void Node::Restore(const std::string& user_id, const tv1::LoginResponse& login,
                   LoginSummary* summary) {
  auto records = state_->List(user_id);
  if (!records.ok()) {
    summary->problems.push_back(absl::StrCat("state folder: ", records.status().message()));
    return;
  }
  WithdrawUnrecorded(login, *records, summary);
  for (ShareRecord& r : *records) {
    if (!r.complete && !RecordFinished(user_id, r)) {
      auto peers = download_tracker_->GetFilePeers(r.group_id, r.name);
      auto download = peers.ok() ? MakeDownload(user_id, r.group_id, *std::move(peers), r.path)
                                 : peers.status();
      if (!download.ok()) {
        summary->problems.push_back(
            absl::StrCat(r.name, " in ", r.group_id, ": ", download.status().message()));
        continue;
      }
      (*download)->Start();
      absl::MutexLock lock(&mu_);
      downloads_.push_back(*std::move(download));
      ++summary->resumed;
      continue;
    }
    FileLayout layout{r.size, r.piece_size};
    FileStamp stamp{r.size, r.mtime_ns};
    if (r.mtime_ns == 0) {
      // Recorded by an older client: the file as it is now, if its size
      // still fits, is taken as the one shared.
      if (auto now = StampOf(r.path); now.ok() && now->size == r.size) {
        stamp = *now;
        state_->SetMtime(user_id, r.group_id, r.sha1, stamp.mtime_ns).IgnoreError();
      }
    }
    absl::Status served = store_.Add({r.group_id, r.sha1}, r.name, r.path, layout,
                                     Bitfield(layout.PieceCount(), true), stamp);
    if (served.code() == absl::StatusCode::kDataLoss || served.code() == absl::StatusCode::kNotFound) {
      ForgetChanged(user_id, r.group_id, r.name, r.sha1,
                    served.code() == absl::StatusCode::kNotFound
                        ? "its file is gone"
                        : "its file changed since it was shared (its size or modification time)");
      continue;
    }
    if (!served.ok()) {
      summary->problems.push_back(absl::StrCat(r.name, " in ", r.group_id, ": ",
                                               served.message()));
      continue;
    }
    const tv1::Share* known = nullptr;
    for (const tv1::Share& s : login.shares()) {
      if (s.group_id() == r.group_id && s.sha1() == r.sha1 && s.file_name() == r.name) known = &s;
    }
    if (known != nullptr && !known->complete()) {
      // Completed while no tracker answered.
      download_tracker_->AnnounceHolder(r.group_id, r.name, true).IgnoreError();
    } else if (known == nullptr) {
      // The tracker forgot the share (or never heard of it): register again.
      if (auto up = tracker_->Call(&Stub::UploadFile, UploadRequest(r.group_id, r.name, r));
          !up.ok()) {
        store_.Remove({r.group_id, r.sha1});
        summary->problems.push_back(
            absl::StrCat(r.name, " in ", r.group_id, ": ", up.status().message()));
        continue;
      }
    }
    ++summary->sharing;
  }
}

void Node::WithdrawUnrecorded(const tv1::LoginResponse& login,
                              const std::vector<ShareRecord>& records, LoginSummary* summary) {
  // A tracker lists only what this client registered, but a hostile one
  // could list anything: a set to look up, and a bound on what one login
  // withdraws (the rest goes at the next).
  constexpr int kMaxWithdrawn = 64;
  absl::flat_hash_set<std::pair<std::string, std::string>> recorded;
  for (const ShareRecord& r : records) recorded.insert({r.group_id, r.sha1});
  std::vector<std::string> withdrawn;
  for (const tv1::Share& s : login.shares()) {
    if (recorded.contains({s.group_id(), s.sha1()})) continue;
    if (withdrawn.size() == kMaxWithdrawn) break;
    download_tracker_->StopShare(s.group_id(), s.file_name()).IgnoreError();
    withdrawn.push_back(absl::StrCat(s.file_name(), " in ", s.group_id()));
  }
  if (withdrawn.size() == 1) {
    summary->problems.push_back(
        absl::StrCat(withdrawn[0], ": the state folder holds no record of it"));
  } else if (!withdrawn.empty()) {
    summary->problems.push_back(absl::StrCat(
        withdrawn.size(), " files the state folder holds no record of, such as ", withdrawn[0]));
  }
}

bool Node::RecordFinished(const std::string& user_id, ShareRecord& r) {
  // The file itself, never one a symlink planted there names.
  struct stat st;
  if (lstat((r.path + ".part").c_str(), &st) == 0 || lstat(r.path.c_str(), &st) != 0 ||
      !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != r.size) {
    return false;
  }
  absl::StatusOr<FileStamp> stamp = StampOf(r.path);
  if (!stamp.ok()) return false;
  absl::StatusOr<HashedFile> hashed = HashFile(r.path, r.piece_size);
  if (!hashed.ok() || hashed->sha1 != r.sha1 ||
      !UnchangedWhileHashed(r.path, *stamp, *hashed).ok() ||
      !state_->MarkComplete(user_id, r.group_id, r.sha1, stamp->mtime_ns).ok()) {
    return false;
  }
  state_->AddCompleted({user_id, r.group_id, r.name, r.path, r.size}).IgnoreError();
  GS_LOG(kInfo) << "the download of " << r.name << " in " << r.group_id
                << " was complete in place; recorded so now";
  r.complete = true;
  r.mtime_ns = stamp->mtime_ns;
  return true;
}

void Node::ForgetChanged(const std::string& user_id, const std::string& group_id,
                         const std::string& name, const std::string& sha1,
                         const std::string& why) {
  store_.Remove({group_id, sha1});
  state_->Remove(user_id, group_id, sha1).IgnoreError();
  std::string notice = absl::StrCat("stopped sharing ", name, " in ", group_id, ": ", why,
                                    "; upload_file it again to share what it holds now");
  if (absl::Status s = download_tracker_->StopShare(group_id, name);
      !s.ok() && s.code() != absl::StatusCode::kNotFound) {
    absl::StrAppend(&notice, " (the tracker could not be told: ", s.message(), ")");
  }
  GS_LOG(kWarning) << notice;
  absl::MutexLock lock(&mu_);
  notices_.push_back(std::move(notice));
}

void Node::ReportReachability() {
  absl::StatusOr<tv1::CheckReachableResponse> found =
      tracker_->Call(&Stub::CheckReachable, tv1::CheckReachableRequest());
  std::string notice;
  if (found.status().code() == absl::StatusCode::kUnauthenticated) {
    return;  // the session ended meanwhile, which the user is told of
  }
  if (!found.ok()) {
    notice = absl::StrCat("could not learn whether other members reach this client: ",
                          found.status().message());
  } else if (found->reachable()) {
    notice = absl::StrCat("reachable at ", found->address(),
                          ": other members connect to this client directly");
  } else {
    notice = absl::StrCat("not reachable from outside at ", found->address(), " (",
                          found->detail(), ")");
    std::vector<TrackerAddress> relays;
    if (options_.relays != nullptr) relays = options_.relays->List();
    if (relays.empty()) {
      absl::StrAppend(&notice, "; the tracker announces no relay, so other members cannot "
                               "download from this client. It downloads all the same");
    } else {
      std::string local;
      {
        absl::MutexLock lock(&mu_);
        local = local_address_.empty() ? peer_address_ : local_address_;
        if (relay_wait_ == nullptr) {
          relay_wait_ = std::make_unique<RelayWait>(
              options_.relays, found->address(), local,
              [this](const std::string& relay, const std::string& why) {
                RelayChanged(relay, why);
              });
        }
      }
      // The first relay answers within a few seconds, unless none can.
      absl::MutexLock lock(&relay_mu_);
      auto joined = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(relay_mu_) { return !relay_.empty(); };
      relay_mu_.AwaitWithTimeout(absl::Condition(&joined), absl::Seconds(5));
      relay_reported_ = true;
      if (!relay_.empty()) {
        absl::StrAppend(&notice, "; serving through relay ", relay_);
      } else {
        std::vector<std::string> names;
        for (const TrackerAddress& r : relays) names.push_back(r.ToString());
        absl::StrAppend(&notice, "; no relay took this client yet (tried ",
                        absl::StrJoin(names, ", "),
                        "): other members cannot download from it until one does");
      }
    }
  }
  GS_LOG(kInfo) << notice;
  absl::MutexLock lock(&mu_);
  notices_.push_back(std::move(notice));
}

void Node::RelayChanged(const std::string& relay, const std::string& why) {
  std::string notice;
  {
    absl::MutexLock lock(&relay_mu_);
    if (!relay.empty() && relay_reported_) {
      notice = absl::StrCat("serving through relay ", relay,
                            ": other members reach this client through it");
    } else if (relay.empty()) {
      notice = absl::StrCat("relay ", relay_, " let this client go (", why,
                            "); waiting at the next relay");
    }
    relay_ = relay;
  }
  tracker_->KeepAliveNow();
  if (notice.empty()) return;
  GS_LOG(kInfo) << notice;
  absl::MutexLock lock(&mu_);
  notices_.push_back(std::move(notice));
}

std::string Node::relay() const {
  absl::MutexLock lock(&relay_mu_);
  return relay_;
}

void Node::LeaveRelay() {
  std::unique_ptr<RelayWait> wait;
  {
    absl::MutexLock lock(&mu_);
    wait.swap(relay_wait_);
  }
  wait.reset();  // outside mu_: its news takes mu_
  absl::MutexLock lock(&relay_mu_);
  relay_.clear();
  relay_reported_ = false;
}

LinkRouter Node::RouterFor(const NodeOptions& options) {
  if (options.relays != nullptr) {
    return [relays = options.relays](const tv1::Peer& holder, bool direct_only) {
      return relays->Route(holder, direct_only);
    };
  }
  if (options.identity == nullptr) return nullptr;
  return [identity = options.identity](const tv1::Peer& holder,
                                        bool) -> absl::StatusOr<LinkRoute> {
    LinkRoute route;
    ASSIGN_OR_RETURN(route.credentials, identity->LinkCredentials(holder.user_id()));
    return route;
  };
}

std::vector<std::string> Node::TakeNotices() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  out.swap(notices_);
  return out;
}

absl::Status Node::Logout() {
  StopSharing();
  return tracker_->Logout();
}

absl::StatusOr<UploadProgress> Node::StartUpload(const std::string& path,
                                                 const std::string& group_id) {
  ASSIGN_OR_RETURN(std::string user, LoggedIn(tracker_));
  RETURN_IF_ERROR(ValidateId("group id", group_id));
  char real[PATH_MAX];
  if (realpath(path.c_str(), real) == nullptr) {
    return absl::NotFoundError(absl::StrCat("no file '", path, "'"));
  }
  std::string abs = real;
  RETURN_IF_ERROR(CheckShareable(path, abs));
  std::string name = abs.substr(abs.rfind('/') + 1);
  RETURN_IF_ERROR(ValidateFileName(name));
  ASSIGN_OR_RETURN(FileStamp stamp, StampOf(abs));
  RETURN_IF_ERROR(PieceSizeToShare(abs, stamp.size).status());
  auto upload = std::make_shared<Hashing>();
  {
    absl::MutexLock lock(&mu_);
    for (const auto& u : uploads_) {
      if (!u->progress.finished && u->progress.group_id == group_id &&
          u->progress.name == name) {
        return absl::AlreadyExistsError(
            absl::StrCat("already hashing ", name, " for ", group_id, "; see the prompt"));
      }
    }
    upload->progress.id = next_upload_id_++;
    upload->progress.group_id = group_id;
    upload->progress.name = name;
    upload->progress.path = abs;
    upload->progress.size = stamp.size;
    uploads_.push_back(upload);
  }
  hashing_.Run([this, user, upload] {
    absl::StatusOr<UploadSummary> result = Share(user, *upload);
    absl::MutexLock lock(&mu_);
    upload->progress.finished = true;
    upload->progress.result = std::move(result);
    upload->progress.bytes_hashed = upload->hashed.load();
    upload_finished_.SignalAll();
  });
  return upload->progress;
}

absl::StatusOr<UploadSummary> Node::Share(const std::string& user, Hashing& upload) {
  const std::string& abs = upload.progress.path;
  const std::string& group_id = upload.progress.group_id;
  const std::string& name = upload.progress.name;
  ASSIGN_OR_RETURN(FileStamp before, StampOf(abs));
  ASSIGN_OR_RETURN(uint32_t piece_size, PieceSizeToShare(abs, before.size));
  ASSIGN_OR_RETURN(HashedFile hashed,
                   HashFile(abs, piece_size, [&upload](uint64_t done, uint64_t) {
                     upload.hashed = done;
                     return !upload.cancel;
                   }));
  RETURN_IF_ERROR(UnchangedWhileHashed(abs, before, hashed));
  if (upload.cancel) return absl::CancelledError("cancelled");

  AwaitServing();
  ASSIGN_OR_RETURN(auto resp,
                   tracker_->Call(&Stub::UploadFile, UploadRequest(group_id, name, hashed)));
  // A stop_share no tracker heard yet must not undo this.
  state_->RemovePending({user, group_id, name, PendingChange::kStopShare, ""}).IgnoreError();

  FileLayout layout{hashed.size, hashed.piece_size};
  const bool already = store_.Get({group_id, hashed.sha1}).ok();
  if (absl::Status recorded = state_->Put({user, group_id, name, hashed.sha1, hashed.size,
                                            hashed.piece_size, hashed.piece_sha1, abs, true,
                                            "", before.mtime_ns, hashed.sha1_chain});
      !recorded.ok()) {
    // The tracker lists this client as a source now, but a share the state
    // folder does not hold is not served: withdraw it.
    if (!already) download_tracker_->StopShare(group_id, name).IgnoreError();
    return absl::Status(recorded.code(),
                        absl::StrCat(recorded.message(), "; ", name, " is not shared"));
  }
  RETURN_IF_ERROR(store_.Add({group_id, hashed.sha1}, name, abs, layout,
                             Bitfield(layout.PieceCount(), true), before));
  return UploadSummary{name, hashed.size, layout.PieceCount(), hashed.sha1, resp.created(),
                       already};
}

std::optional<UploadProgress> Node::WaitForUpload(uint64_t id, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (true) {
    auto it = std::find_if(uploads_.begin(), uploads_.end(),
                           [id](const auto& u) { return u->progress.id == id; });
    if (it == uploads_.end()) return std::nullopt;
    if ((*it)->progress.finished) {
      UploadProgress out = (*it)->progress;
      uploads_.erase(it);
      return out;
    }
    if (upload_finished_.WaitWithDeadline(&mu_, deadline)) return std::nullopt;
  }
}

std::vector<UploadProgress> Node::Uploads() const {
  absl::MutexLock lock(&mu_);
  std::vector<UploadProgress> out;
  for (const auto& u : uploads_) {
    if (u->progress.finished) continue;
    out.push_back(u->progress);
    out.back().bytes_hashed = u->hashed.load();
  }
  return out;
}

std::vector<UploadProgress> Node::TakeFinishedUploads() {
  absl::MutexLock lock(&mu_);
  std::vector<UploadProgress> out;
  for (auto it = uploads_.begin(); it != uploads_.end();) {
    if ((*it)->progress.finished) {
      out.push_back((*it)->progress);
      it = uploads_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

int Node::CancelUploads(const std::string& group_id, const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto matches = [&](const std::shared_ptr<Hashing>& u) {
    return group_id.empty() || (u->progress.group_id == group_id &&
                                (name.empty() || u->progress.name == name));
  };
  for (const auto& u : uploads_) {
    if (matches(u)) u->cancel = true;
  }
  auto all_finished = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::all_of(uploads_.begin(), uploads_.end(), [&](const auto& u) {
      return !matches(u) || u->progress.finished;
    });
  };
  while (!all_finished()) upload_finished_.Wait(&mu_);
  // What they did is undone by the caller, and told by it.
  const auto erased = std::remove_if(uploads_.begin(), uploads_.end(), matches);
  const int count = static_cast<int>(uploads_.end() - erased);
  uploads_.erase(erased, uploads_.end());
  return count;
}

absl::StatusOr<std::unique_ptr<Download>> Node::MakeDownload(const std::string& user_id,
                                                             const std::string& group_id,
                                                             tv1::GetFilePeersResponse peers,
                                                             const std::string& dest) {
  RETURN_IF_ERROR(CheckFileInfo(peers.file()));
  if (auto served = store_.Get({group_id, peers.file().sha1()}); served.ok()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "you already share this file in ", group_id, " as '", served->name, "'"));
  }
  Download::Context context{.tracker = download_tracker_.get(),
                            .store = &store_,
                            .state = state_.get(),
                            .user_id = user_id,
                            .env = &download_env_,
                            .cap = &download_cap_,
                            .slots = &download_slots_};
  DownloadOptions options;
  {
    absl::MutexLock lock(&mu_);
    options = options_.download;
  }
  return std::make_unique<Download>(context, std::move(options), group_id, std::move(peers),
                                    dest);
}

absl::StatusOr<DownloadProgress> Node::StartDownload(const std::string& group_id,
                                                     const std::string& name,
                                                     const std::string& dest) {
  ASSIGN_OR_RETURN(std::string user, LoggedIn(tracker_));
  RETURN_IF_ERROR(ValidateId("group id", group_id));
  RETURN_IF_ERROR(ValidateFileName(name));
  ASSIGN_OR_RETURN(std::string path, ResolveDestination(dest, name));
  {
    absl::MutexLock lock(&mu_);
    for (const auto& d : downloads_) {
      DownloadProgress p = d->Progress();
      if (p.state != DownloadState::kRunning) continue;
      if ((p.group_id == group_id && p.name == name) || p.dest == path) {
        return absl::AlreadyExistsError(absl::StrCat(
            "already downloading ", p.name, " from ", p.group_id, " into ", p.dest));
      }
    }
  }
  ASSIGN_OR_RETURN(tv1::GetFilePeersResponse peers,
                   download_tracker_->GetFilePeers(group_id, name));
  RETURN_IF_ERROR(CheckFileInfo(peers.file()));
  if (store_.Get({group_id, peers.file().sha1()}).ok()) {
    return CopyShare(user, group_id, peers.file(), path);
  }
  ASSIGN_OR_RETURN(auto download, MakeDownload(user, group_id, std::move(peers), path));
  download->Start();
  DownloadProgress progress = download->Progress();
  std::vector<std::unique_ptr<Download>> replaced;
  absl::MutexLock lock(&mu_);
  // A retry takes the place of the download it retries.
  for (auto it = downloads_.begin(); it != downloads_.end();) {
    const DownloadState state = (*it)->Progress().state;
    if ((state == DownloadState::kFailed || state == DownloadState::kStopped) &&
        (*it)->group_id() == group_id && (*it)->name() == name) {
      replaced.push_back(std::move(*it));
      it = downloads_.erase(it);
    } else {
      ++it;
    }
  }
  downloads_.push_back(std::move(download));
  return progress;
}

absl::StatusOr<DownloadProgress> Node::CopyShare(const std::string& user_id,
                                                 const std::string& group_id,
                                                 const tv1::FileInfo& file,
                                                 const std::string& dest) {
  ASSIGN_OR_RETURN(std::vector<ShareRecord> records, state_->List(user_id));
  auto record = std::find_if(records.begin(), records.end(), [&](const ShareRecord& r) {
    return r.group_id == group_id && r.sha1 == file.sha1();
  });
  if (record == records.end() || !record->complete) {
    return absl::AlreadyExistsError(
        absl::StrCat("already downloading ", file.name(), " from ", group_id));
  }
  const std::string& source = record->path;
  if (absl::StatusOr<FileStamp> now = StampOf(source);
      !now.ok() || now->size != record->size ||
      (record->mtime_ns != 0 && now->mtime_ns != record->mtime_ns)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "your shared file '", source, "' changed since it was shared; stop_share it first"));
  }
  DownloadProgress p;
  p.group_id = group_id;
  p.name = file.name();
  p.dest = dest;
  p.state = DownloadState::kComplete;
  p.size = p.bytes_done = file.size();
  p.piece_count = p.pieces_done = FileLayout{file.size(), file.piece_size()}.PieceCount();
  if (link(source.c_str(), dest.c_str()) == 0) {
    p.local_copy = "hard link";
  } else {
    // Another file system (or one without links): a copy, checked as a
    // download is, and durable before it has its name.
    ASSIGN_OR_RETURN(PartFileOpened part, OpenPartFile(dest + ".part", file.size(), false));
    const int fd = open(source.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::UnavailableError(absl::StrCat("cannot read '", source, "': ",
                                                 std::strerror(errno)));
    }
    std::vector<char> buf(1 << 20);
    Sha1 whole;
    absl::Status copied;
    for (uint64_t at = 0; at < file.size() && copied.ok(); at += buf.size()) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), file.size() - at));
      copied = ReadFully(fd, buf.data(), n, at);
      if (!copied.ok()) break;
      whole.Update(buf.data(), n);
      copied = part.file->Write(at, {absl::string_view(buf.data(), n)});
    }
    close(fd);
    if (copied.ok() && HexEncode(whole.Finish()) != file.sha1()) {
      copied = absl::DataLossError(
          absl::StrCat("your shared file '", source, "' no longer has the file's SHA1"));
    }
    if (copied.ok()) copied = part.file->Sync();
    if (copied.ok()) copied = part.file->RenameTo(dest);
    if (!copied.ok()) {
      unlink((dest + ".part").c_str());
      return copied;
    }
    p.local_copy = "copy";
  }
  state_->AddCompleted({user_id, group_id, file.name(), dest, file.size()}).IgnoreError();
  return p;
}

std::vector<DownloadProgress> Node::Downloads() const {
  absl::MutexLock lock(&mu_);
  std::vector<DownloadProgress> out;
  for (const auto& d : downloads_) out.push_back(d->Progress());
  return out;
}

std::vector<DownloadProgress> Node::DownloadsWithHistory() const {
  std::vector<DownloadProgress> out = Downloads();
  // Then the completed downloads of earlier runs (or whose Download is
  // gone with a stop_share), from the state folder.
  std::optional<std::string> user = tracker_->user();
  if (!user.has_value()) return out;
  auto completed = state_->ListCompleted(*user);
  if (!completed.ok()) return out;
  std::vector<DownloadProgress> earlier;
  for (const CompletedRecord& r : *completed) {
    auto same = [&](const DownloadProgress& p) {
      return p.group_id == r.group_id && p.name == r.name && p.dest == r.path;
    };
    if (std::any_of(out.begin(), out.end(), same) ||
        std::any_of(earlier.begin(), earlier.end(), same)) {
      continue;
    }
    DownloadProgress p;
    p.group_id = r.group_id;
    p.name = r.name;
    p.dest = r.path;
    p.state = DownloadState::kComplete;
    p.size = p.bytes_done = r.size;
    earlier.push_back(std::move(p));
  }
  out.insert(out.begin(), earlier.begin(), earlier.end());
  return out;
}

absl::Status Node::ClearFinishedDownloads() {
  ASSIGN_OR_RETURN(std::string user, LoggedIn(tracker_));
  std::vector<std::unique_ptr<Download>> finished;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = downloads_.begin(); it != downloads_.end();) {
      if ((*it)->Progress().state != DownloadState::kRunning) {
        finished.push_back(std::move(*it));
        it = downloads_.erase(it);
      } else {
        ++it;
      }
    }
  }
  return state_->ClearCompleted(user);
}

std::vector<std::unique_ptr<Download>> Node::TakeDownloads(const std::string& group_id,
                                                           const std::string& name) {
  std::vector<std::unique_ptr<Download>> taken;
  for (auto it = downloads_.begin(); it != downloads_.end();) {
    if ((*it)->group_id() == group_id && (name.empty() || (*it)->name() == name)) {
      taken.push_back(std::move(*it));
      it = downloads_.erase(it);
    } else {
      ++it;
    }
  }
  return taken;
}

int Node::EndForGood(std::vector<std::unique_ptr<Download>> downloads) {
  for (const auto& d : downloads) d->Stop();
  std::vector<std::string> part_files;
  for (const auto& d : downloads) {
    d->WaitUntilDone(absl::InfiniteDuration());
    if (std::string part = d->Progress().part_file; !part.empty()) {
      part_files.push_back(std::move(part));
    }
  }
  downloads.clear();  // their threads end and their files close
  int removed = 0;
  for (const std::string& part : part_files) removed += unlink(part.c_str()) == 0;
  return removed;
}

absl::StatusOr<int> Node::StopShare(const std::string& group_id, const std::string& name) {
  ASSIGN_OR_RETURN(std::string user, LoggedIn(tracker_));
  const bool hashing = CancelUploads(group_id, name) > 0;
  std::vector<std::unique_ptr<Download>> stopped;
  {
    absl::MutexLock lock(&mu_);
    stopped = TakeDownloads(group_id, name);
  }
  bool local = hashing || !stopped.empty();
  std::vector<std::string> sha1s;
  for (const auto& d : stopped) sha1s.push_back(d->sha1());
  const int removed = EndForGood(std::move(stopped));
  // A failed download is served no more, but its record would resume it.
  for (const std::string& sha1 : sha1s) RETURN_IF_ERROR(state_->Remove(user, group_id, sha1));
  if (auto key = store_.FindByName(group_id, name); key.has_value()) {
    store_.Remove(*key);
    RETURN_IF_ERROR(state_->Remove(user, group_id, key->sha1));
    local = true;
  }
  absl::Status status = download_tracker_->StopShare(group_id, name);
  if (!status.ok() && !(local && status.code() == absl::StatusCode::kNotFound)) return status;
  return removed;
}

std::vector<ShareTraffic> Node::Traffic() const {
  std::map<ShareKey, ShareTraffic> by_share;
  for (UploadTraffic& t : peer_service_.Traffic()) {
    ShareTraffic& share = by_share[t.key];
    if (share.name.empty()) {
      share.group_id = t.key.group_id;
      auto served = store_.Get(t.key);
      share.name = served.ok() ? served->name : t.key.sha1;  // no longer served
    }
    share.bytes += t.bytes;
    if (t.active) share.now.push_back(std::move(t));
  }
  std::vector<ShareTraffic> out;
  for (auto& [key, share] : by_share) out.push_back(std::move(share));
  return out;
}

void Node::SetMaxUploadRate(uint64_t bytes_per_second) {
  peer_service_.SetMaxUploadRate(bytes_per_second);
}

void Node::SetMaxPeers(uint32_t max_peers) {
  absl::MutexLock lock(&mu_);
  options_.download.max_peers = max_peers;
  for (const auto& d : downloads_) d->SetMaxPeers(max_peers);
}

absl::StatusOr<Node::LeftGroup> Node::LeaveGroup(const std::string& group_id) {
  ASSIGN_OR_RETURN(std::string user, LoggedIn(tracker_));
  tv1::LeaveGroupRequest req;
  req.set_group_id(group_id);
  LeftGroup left;
  ASSIGN_OR_RETURN(left.answer, tracker_->Call(&Stub::LeaveGroup, req));
  CancelUploads(group_id, "");
  std::vector<std::unique_ptr<Download>> stopped;
  {
    absl::MutexLock lock(&mu_);
    stopped = TakeDownloads(group_id, "");
  }
  left.removed_downloads = EndForGood(std::move(stopped));
  for (const ShareKey& key : store_.Keys()) {
    if (key.group_id == group_id) store_.Remove(key);
  }
  RETURN_IF_ERROR(state_->RemoveGroup(user, group_id));
  return left;
}

}  // namespace groupshare::peer
