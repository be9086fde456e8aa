#include "core/piece_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <atomic>
#include <thread>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/file_hasher.h"
#include "core/status_macros.h"

namespace groupshare {

struct PieceStore::File {
  int fd;
  ~File() { close(fd); }
};

// Calls to a listener go through its subscription, one at a time under the
// subscription's lock, so that Unsubscribe can wait for one under way and
// bar the next. A listener that ends its subscription from within a call
// to it (on the calling thread) is not waited for: that would deadlock.
class PieceStore::Subscription {
 public:
  explicit Subscription(std::shared_ptr<Listener> listener) : listener_(std::move(listener)) {}

  void Have(uint32_t piece) ABSL_LOCKS_EXCLUDED(mu_) {
    Call([&] { listener_->OnHave(piece); });
  }
  void Gone() ABSL_LOCKS_EXCLUDED(mu_) {
    Call([&] { listener_->OnGone(); });
  }
  // No call is under way or starts once this returns.
  void End() ABSL_LOCKS_EXCLUDED(mu_) {
    active_ = false;
    if (caller_.load() == std::this_thread::get_id()) return;
    absl::MutexLock lock(&mu_);  // waits for a call under way
  }

 private:
  template <class F>
  void Call(F f) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (!active_) return;
    caller_ = std::this_thread::get_id();
    f();
    caller_ = std::thread::id();
  }

  const std::shared_ptr<Listener> listener_;
  absl::Mutex mu_;  // held across a call
  std::atomic<bool> active_{true};
  std::atomic<std::thread::id> caller_{};
};

PieceStore::~PieceStore() = default;

namespace {

FileStamp StampOf(const struct stat& st) {
  return {static_cast<uint64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

absl::Status ChangedError(const std::string& name) {
  return absl::DataLossError(absl::StrCat(
      "the sharer's copy of ", name, " changed since it was shared; it no longer shares it"));
}

}  // namespace

absl::StatusOr<FileStamp> StampOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("'", path, "': ", std::strerror(errno)));
  }
  return StampOf(st);
}

void PieceStore::SetChangedCallback(
    std::function<void(const ShareKey&, const std::string& name)> callback) {
  absl::MutexLock lock(&mu_);
  changed_ = std::move(callback);
}

void PieceStore::Changed(const ShareKey& key, const std::shared_ptr<Share>& share) {
  std::function<void(const ShareKey&, const std::string&)> callback;
  {
    absl::MutexLock lock(&mu_);
    auto it = shares_.find(key);
    if (it == shares_.end() || it->second != share) return;  // said already
    callback = changed_;
  }
  Remove(key);
  if (callback) callback(key, share->name);
}

absl::Status PieceStore::Add(const ShareKey& key, const std::string& name,
                             const std::string& path, FileLayout layout, Bitfield have,
                             std::optional<FileStamp> stamp) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open '", path, "': ",
                     errno == ELOOP ? "it is a symbolic link" : std::strerror(errno)));
  }
  std::shared_ptr<File> file(new File{fd});
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("'", path, "' is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) < layout.size) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is shorter than the ", layout.size, " bytes shared"));
  }
  if (stamp.has_value() && StampOf(st) != *stamp) {
    return absl::DataLossError(absl::StrCat(
        "'", path, "' changed since it was shared (its size or modification time)"));
  }
  auto share = std::make_shared<Share>();
  share->stamp = stamp;
  share->name = name;
  share->file = std::move(file);
  share->layout = layout;
  share->have = std::move(have);
  std::vector<std::shared_ptr<Share>> replaced;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<Share>& slot = shares_[key];
    if (slot != nullptr) replaced.push_back(std::move(slot));
    slot = std::move(share);
  }
  Gone(replaced);
  return absl::OkStatus();
}

void PieceStore::Gone(const std::vector<std::shared_ptr<Share>>& shares) {
  for (const auto& share : shares) {
    for (const auto& subscription : share->listeners) subscription->Gone();
  }
}

void PieceStore::MarkHave(const ShareKey& key, uint32_t piece) {
  std::vector<std::shared_ptr<Subscription>> listeners;
  {
    absl::MutexLock lock(&mu_);
    auto it = shares_.find(key);
    if (it == shares_.end() || piece >= it->second->have.size() ||
        it->second->have.Get(piece)) {
      return;
    }
    it->second->have.Set(piece);
    listeners = it->second->listeners;
  }
  for (const auto& subscription : listeners) subscription->Have(piece);
}

void PieceStore::Remove(const ShareKey& key) {
  std::vector<std::shared_ptr<Share>> removed;
  {
    absl::MutexLock lock(&mu_);
    auto it = shares_.find(key);
    if (it == shares_.end()) return;
    removed.push_back(std::move(it->second));
    shares_.erase(it);
  }
  Gone(removed);
}

void PieceStore::RemoveAll() {
  std::vector<std::shared_ptr<Share>> removed;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, share] : shares_) removed.push_back(std::move(share));
    shares_.clear();
  }
  Gone(removed);
}

std::vector<ShareKey> PieceStore::Keys() const {
  absl::MutexLock lock(&mu_);
  std::vector<ShareKey> out;
  for (const auto& [key, share] : shares_) out.push_back(key);
  return out;
}

std::optional<ShareKey> PieceStore::FindByName(const std::string& group_id,
                                               const std::string& name) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, share] : shares_) {
    if (key.group_id == group_id && share->name == name) return key;
  }
  return std::nullopt;
}

namespace {
absl::Status NotServed() {
  return absl::NotFoundError("this peer does not share that file (any more)");
}
}  // namespace

absl::StatusOr<PieceStore::Snapshot> PieceStore::Get(const ShareKey& key) const {
  absl::MutexLock lock(&mu_);
  auto it = shares_.find(key);
  if (it == shares_.end()) return NotServed();
  const Share& s = *it->second;
  return Snapshot{s.name, s.layout, s.have};
}

absl::StatusOr<PieceStore::Snapshot> PieceStore::Subscribe(
    const ShareKey& key, std::shared_ptr<Listener> listener) {
  absl::MutexLock lock(&mu_);
  auto it = shares_.find(key);
  if (it == shares_.end()) return NotServed();
  Share& s = *it->second;
  const Listener* id = listener.get();
  auto subscription = std::make_shared<Subscription>(std::move(listener));
  subscriptions_[id] = subscription;
  s.listeners.push_back(std::move(subscription));
  return Snapshot{s.name, s.layout, s.have};
}

void PieceStore::Unsubscribe(const ShareKey& key, const Listener* listener) {
  std::shared_ptr<Subscription> subscription;
  {
    absl::MutexLock lock(&mu_);
    auto found = subscriptions_.find(listener);
    if (found == subscriptions_.end()) return;
    subscription = std::move(found->second);
    subscriptions_.erase(found);
    if (auto it = shares_.find(key); it != shares_.end()) {
      std::erase(it->second->listeners, subscription);
    }
  }
  subscription->End();
}

absl::Status PieceStore::Read(const ShareKey& key, uint32_t piece, uint32_t offset,
                              uint32_t length, std::string* out) {
  std::shared_ptr<Share> share;
  std::shared_ptr<File> file;
  FileLayout layout;
  {
    absl::MutexLock lock(&mu_);
    auto it = shares_.find(key);
    if (it == shares_.end()) return NotServed();
    share = it->second;
    const Share& s = *share;
    if (piece >= s.layout.PieceCount()) {
      return absl::OutOfRangeError(absl::StrCat(
          "piece ", piece, " is out of range; the file has ", s.layout.PieceCount()));
    }
    if (!s.have.Get(piece)) {
      return absl::FailedPreconditionError(absl::StrCat("piece ", piece, " is not held yet"));
    }
    file = s.file;
    layout = s.layout;
  }
  const uint64_t piece_length = layout.PieceLength(piece);
  if (length == 0 && offset < piece_length) length = static_cast<uint32_t>(piece_length - offset);
  if (static_cast<uint64_t>(offset) + length > piece_length) {
    return absl::OutOfRangeError(absl::StrCat("bytes ", offset, "+", length, " are beyond piece ",
                                              piece, "'s ", piece_length));
  }
  // A stamped file is checked before and after the read: pieces that no
  // longer match their hashes are never sent as the shared file's.
  auto unchanged = [&] {
    struct stat st;
    return !share->stamp.has_value() ||
           (fstat(file->fd, &st) == 0 && StampOf(st) == *share->stamp);
  };
  if (!unchanged()) {
    Changed(key, share);
    return ChangedError(share->name);
  }
  out->resize(length);
  RETURN_IF_ERROR(ReadFully(file->fd, out->data(), out->size(), layout.PieceOffset(piece) + offset));
  if (!unchanged()) {
    Changed(key, share);
    return ChangedError(share->name);
  }
  return absl::OkStatus();
}

}  // namespace groupshare
