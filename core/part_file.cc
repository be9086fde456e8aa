#include "core/part_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/file_hasher.h"

namespace groupshare {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  int e = errno;
  if (e == ENOSPC || e == EDQUOT) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, " '", path, "': ", std::strerror(e), "; free some space"));
  }
  return absl::UnavailableError(absl::StrCat(what, " '", path, "': ", std::strerror(e)));
}

constexpr size_t kBlock = kDirectIoBlock;
// The most a direct write or read moves at once (the bounce buffer's size).
constexpr size_t kBounceBytes = 1 << 20;

bool Aligned(uint64_t n) { return n % kBlock == 0; }

// The process's umask, read without changing it (umask() can only set).
mode_t CurrentUmask() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  }
  return 022;
}

// Scratch memory for direct I/O, one per thread that does any.
char* BounceBuffer() {
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<char, Free> buffer(
      static_cast<char*>(std::aligned_alloc(kBlock, kBounceBytes)));
  return buffer.get();
}

// A download writes each byte once, so whole blocks go around the page
// cache (O_DIRECT, through a second descriptor of the same file): copying
// them into the cache cost more CPU than hashing them, and a big download
// would fill the cache with pages nobody reads again. Whatever is not
// whole blocks (the last piece), and any file system without direct I/O,
// takes the ordinary path.
class PosixPartFile final : public PartFile {
 public:
  PosixPartFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {
    // Reopening through /proc gets the same file, not whatever the path
    // names by now.
    direct_fd_ = open(absl::StrCat("/proc/self/fd/", fd_).c_str(),
                      O_RDWR | O_DIRECT | O_CLOEXEC);
    direct_ = direct_fd_ >= 0;
  }
  ~PosixPartFile() override {
    close(fd_);
    if (direct_fd_ >= 0) close(direct_fd_);
  }

  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
    size_t total = 0;
    for (absl::string_view p : parts) total += p.size();
    if (UseDirect(offset, total)) {
      if (absl::Status s = WriteDirect(offset, parts); !s.ok() || direct_) return s;
      // The file system refused direct I/O after all: the ordinary path.
    }
    return WriteBuffered(offset, parts);
  }

  absl::Status Read(uint64_t offset, char* buf, size_t size) override {
    if (UseDirect(offset, size)) {
      if (absl::Status s = ReadDirect(offset, buf, size); !s.ok() || direct_) return s;
    }
    return ReadFully(fd_, buf, size, offset);
  }

  absl::Status Sync() override {
    if (fsync(fd_) != 0) return Errno("cannot flush", path_);
    return absl::OkStatus();
  }

  absl::Status RenameTo(const std::string& dest) override {
    // Complete: now readable as any new file of this user's.
    if (fchmod(fd_, 0666 & ~CurrentUmask()) != 0) return Errno("cannot set the mode of", path_);
    // RENAME_NOREPLACE: a name planted at the destination (a symlink to
    // something precious, say) is left alone, never replaced or followed.
    if (renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno == EEXIST) {
        return absl::AlreadyExistsError(absl::StrCat(
            "'", dest, "' appeared while downloading; the download stays in '", path_,
            "': move it away and download again"));
      }
      return absl::UnavailableError(absl::StrCat("cannot rename '", path_, "' to '", dest,
                                                 "': ", std::strerror(errno)));
    }
    path_ = dest;
    // The new name is durable once its folder is.
    const size_t slash = dest.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : dest.substr(0, slash == 0 ? 1 : slash);
    int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return Errno("cannot open the folder of", dest);
    const bool synced = fsync(dir_fd) == 0;
    close(dir_fd);
    if (!synced) return Errno("cannot flush the folder of", dest);
    return absl::OkStatus();
  }

  absl::Status CheckStillAtPath() override {
    struct stat open_file, at_path;
    if (fstat(fd_, &open_file) != 0) return Errno("cannot check", path_);
    if (lstat(path_.c_str(), &at_path) != 0) {
      if (errno != ENOENT && errno != ENOTDIR) return absl::OkStatus();  // cannot tell
    } else if (at_path.st_dev == open_file.st_dev && at_path.st_ino == open_file.st_ino) {
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path_, "' was removed or replaced while downloading; download_file again to "
        "start over"));
  }

 private:
  bool UseDirect(uint64_t offset, size_t size) const {
    return direct_.load(std::memory_order_relaxed) && Aligned(offset) && Aligned(size) &&
           size > 0 && BounceBuffer() != nullptr;
  }

  // EINVAL from a direct transfer means the file system wants other
  // alignment or none: direct I/O is off from then on (OK is returned with
  // direct_ false, for the caller to redo the transfer the ordinary way).
  absl::Status DirectFailed(absl::string_view what) {
    if (errno == EINVAL) {
      direct_ = false;
      return absl::OkStatus();
    }
    return Errno(what, path_);
  }

  absl::Status WriteDirect(uint64_t offset, absl::Span<const absl::string_view> parts) {
    // Bytes in memory aligned as direct I/O wants it go as they are.
    if (parts.size() == 1 && reinterpret_cast<uintptr_t>(parts[0].data()) % kBlock == 0) {
      return WriteDirectFrom(parts[0].data(), parts[0].size(), offset);
    }
    char* bounce = BounceBuffer();
    size_t filled = 0;
    for (absl::string_view p : parts) {
      while (!p.empty()) {
        size_t n = std::min(p.size(), kBounceBytes - filled);
        std::memcpy(bounce + filled, p.data(), n);
        filled += n;
        p.remove_prefix(n);
        if (filled == kBounceBytes) {
          if (absl::Status s = WriteDirectFrom(bounce, filled, offset); !s.ok() || !direct_) {
            return s;
          }
          offset += filled;
          filled = 0;
        }
      }
    }
    return WriteDirectFrom(bounce, filled, offset);
  }

  // Writes `size` bytes at `buf` (aligned) to `offset` around the cache.
  absl::Status WriteDirectFrom(const char* buf, size_t size, uint64_t offset) {
    for (size_t done = 0; done < size;) {
      ssize_t n = pwrite(direct_fd_, buf + done, size - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) errno = ENOSPC;
      if (n <= 0) return DirectFailed("cannot write");
      done += static_cast<size_t>(n);
      if (!Aligned(done) && done < size) {  // a short write mid-block: finish it
        return WriteBuffered(offset + done, {absl::string_view(buf + done, size - done)});
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadDirect(uint64_t offset, char* buf, size_t size) {
    char* bounce = BounceBuffer();
    while (size > 0) {
      const size_t want = std::min(size, kBounceBytes);
      ssize_t n = pread(direct_fd_, bounce, want, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return DirectFailed("cannot read");
      if (static_cast<size_t>(n) != want) return ReadFully(fd_, buf, size, offset);
      std::memcpy(buf, bounce, want);
      buf += want;
      offset += want;
      size -= want;
    }
    return absl::OkStatus();
  }

  absl::Status WriteBuffered(uint64_t offset, absl::Span<const absl::string_view> parts) {
    std::vector<iovec> iov;
    iov.reserve(parts.size());
    for (absl::string_view p : parts) {
      if (!p.empty()) iov.push_back({const_cast<char*>(p.data()), p.size()});
    }
    size_t first = 0;
    while (first < iov.size()) {
      ssize_t n = pwritev(fd_, iov.data() + first,
                          static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX)),
                          static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("cannot write", path_);
      }
      if (n == 0) {
        errno = ENOSPC;
        return Errno("cannot write", path_);
      }
      offset += static_cast<uint64_t>(n);
      // Skips what was written: whole entries, then part of one.
      size_t left = static_cast<size_t>(n);
      while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    return absl::OkStatus();
  }

  const int fd_;
  int direct_fd_ = -1;
  std::atomic<bool> direct_{false};
  std::string path_;
};

absl::Status Preallocate(int fd, uint64_t size, const std::string& path) {
  if (ftruncate(fd, 0) != 0) return Errno("cannot empty", path);
  if (size == 0) return absl::OkStatus();
  int rc = posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (rc == ENOSPC) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no room for ", size, " bytes at '", path, "'; free some space"));
  }
  if (rc != 0 && ftruncate(fd, static_cast<off_t>(size)) != 0) return Errno("cannot size", path);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PartFileOpened> OpenPartFile(const std::string& path, uint64_t size, bool ours) {
  int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  bool fresh = false;
  if (fd < 0 && errno == ENOENT) {
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    fresh = true;
  }
  if (fd < 0) {
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", path, "' is a symbolic link; remove it or choose another destination"));
    }
    return Errno("cannot create", path);
  }
  auto file = std::make_unique<PosixPartFile>(fd, path);
  struct stat st;
  if (fstat(fd, &st) != 0) return Errno("cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is not a regular file; remove it or choose another destination"));
  }
  if (!fresh && !ours) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' exists and is not a download of this client; remove it or choose another "
        "destination"));
  }
  if (fresh || static_cast<uint64_t>(st.st_size) != size) {
    if (absl::Status s = Preallocate(fd, size, path); !s.ok()) {
      if (fresh) unlink(path.c_str());
      return s;
    }
    fresh = true;
  }
  return PartFileOpened{std::move(file), fresh};
}

}  // namespace groupshare
