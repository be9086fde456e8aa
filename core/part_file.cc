#include "core/part_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

class PosixPartFile final : public PartFile {
 public:
  PosixPartFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixPartFile() override { close(fd_); }

  absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) override {
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

  absl::Status Read(uint64_t offset, char* buf, size_t size) override {
    return ReadFully(fd_, buf, size, offset);
  }

  absl::Status RenameTo(const std::string& dest) override {
    // RENAME_NOREPLACE: a name planted at the destination (a symlink to
    // something precious, say) is left alone, never replaced or followed.
    if (renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno == EEXIST) {
        return absl::AlreadyExistsError(absl::StrCat(
            "'", dest, "' appeared while downloading; the download stays in '", path_,
            "': move it away and download again"));
      }
      return Errno(absl::StrCat("cannot rename to '", dest, "'"), path_);
    }
    path_ = dest;
    return absl::OkStatus();
  }

 private:
  const int fd_;
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
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
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
