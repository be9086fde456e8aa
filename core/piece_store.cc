#include "core/piece_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/file_hasher.h"

namespace groupshare {

struct PieceStore::File {
  int fd;
  ~File() { close(fd); }
};

PieceStore::~PieceStore() = default;

absl::Status PieceStore::Add(const ShareKey& key, const std::string& name,
                             const std::string& path, FileLayout layout, Bitfield have) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  }
  std::shared_ptr<File> file(new File{fd});
  struct stat st;
  if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < layout.size) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is shorter than the ", layout.size, " bytes shared"));
  }
  auto share = std::make_shared<Share>();
  share->name = name;
  share->file = std::move(file);
  share->layout = layout;
  share->have = std::move(have);
  absl::MutexLock lock(&mu_);
  shares_[key] = std::move(share);
  changed_.SignalAll();
  return absl::OkStatus();
}

void PieceStore::MarkHave(const ShareKey& key, uint32_t piece) {
  absl::MutexLock lock(&mu_);
  auto it = shares_.find(key);
  if (it == shares_.end() || piece >= it->second->have.size() ||
      it->second->have.Get(piece)) {
    return;
  }
  it->second->have.Set(piece);
  it->second->added.push_back(piece);
  changed_.SignalAll();
}

void PieceStore::Remove(const ShareKey& key) {
  absl::MutexLock lock(&mu_);
  shares_.erase(key);
  changed_.SignalAll();
}

void PieceStore::RemoveAll() {
  absl::MutexLock lock(&mu_);
  shares_.clear();
  changed_.SignalAll();
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
  return Snapshot{s.name, s.layout, s.have, s.added.size()};
}

absl::StatusOr<std::vector<uint32_t>> PieceStore::WaitForNew(const ShareKey& key,
                                                             size_t* cursor,
                                                             absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (true) {
    auto it = shares_.find(key);
    if (it == shares_.end()) return NotServed();
    const std::vector<uint32_t>& added = it->second->added;
    if (added.size() > *cursor) {
      std::vector<uint32_t> out(added.begin() + static_cast<long>(*cursor), added.end());
      *cursor = added.size();
      return out;
    }
    if (changed_.WaitWithDeadline(&mu_, deadline)) return std::vector<uint32_t>();
  }
}

absl::Status PieceStore::ReadPiece(const ShareKey& key, uint32_t piece,
                                   std::string* out) const {
  std::shared_ptr<File> file;
  FileLayout layout;
  {
    absl::MutexLock lock(&mu_);
    auto it = shares_.find(key);
    if (it == shares_.end()) return NotServed();
    const Share& s = *it->second;
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
  out->resize(layout.PieceLength(piece));
  return ReadFully(file->fd, out->data(), out->size(), layout.PieceOffset(piece));
}

}  // namespace groupshare
