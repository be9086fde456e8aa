#include "core/file_hasher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/sha1_stream.h"

namespace groupshare {

absl::Status ReadFully(int fd, char* buf, size_t size, uint64_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, buf + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::UnavailableError(absl::StrCat("read failed: ", std::strerror(errno)));
    if (n == 0) return absl::UnavailableError("the file is shorter than expected");
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteFully(int fd, const char* buf, size_t size, uint64_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(fd, buf + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string why = absl::StrCat("write failed: ", std::strerror(errno));
      return errno == ENOSPC ? absl::ResourceExhaustedError(why) : absl::UnavailableError(why);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<HashedFile> HashFile(
    const std::string& path, uint32_t piece_size,
    const std::function<bool(uint64_t, uint64_t)>& progress) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no file '", path, "'"));
    return absl::UnavailableError(
        absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a regular file"));
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  HashedFile out;
  out.size = static_cast<uint64_t>(st.st_size);
  out.piece_size = piece_size;
  FileLayout layout{out.size, piece_size};
  out.piece_sha1.reserve(layout.PieceCount());
  out.sha1_chain.reserve(layout.PieceCount());

  auto buf_owner = std::make_unique<char[]>(piece_size);
  char* buf = buf_owner.get();
  Sha1Stream whole;
  for (uint32_t i = 0; i < layout.PieceCount(); ++i) {
    uint32_t len = layout.PieceLength(i);
    if (absl::Status s = ReadFully(fd, buf, len, layout.PieceOffset(i)); !s.ok()) {
      return absl::UnavailableError(absl::StrCat("'", path, "': ", s.message()));
    }
    const absl::string_view piece(buf, len);
    out.piece_sha1.push_back(HexEncode(whole.UpdateAndHash({piece})));
    if (i + 1 < layout.PieceCount()) out.sha1_chain.push_back(HexEncode(whole.Chain()));
    if (progress && !progress(layout.PieceOffset(i) + len, out.size)) {
      return absl::CancelledError(absl::StrCat("hashing '", path, "' was cancelled"));
    }
  }
  out.sha1 = HexEncode(whole.Finish());
  return out;
}

}  // namespace groupshare
