// The file a download writes into ("<dest>.part"), behind a narrow interface
// so that tests can put a fault-injecting fake in its place, as leveldb's
// Env does.
//
// Planted files: the part file is opened with O_NOFOLLOW and must be a
// regular file; an existing one is reused only when the caller says it is
// its own (the client's state records it), never truncated otherwise; the
// finished file is renamed only onto a name that does not exist, so a
// symlink planted at the destination is never followed or replaced.
#ifndef GROUPSHARE_CORE_PART_FILE_H_
#define GROUPSHARE_CORE_PART_FILE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace groupshare {

// Direct I/O moves whole blocks of this size from memory aligned to it. A
// write of whole blocks from memory so aligned, in one part, reaches the
// disk without a copy.
inline constexpr size_t kDirectIoBlock = 4096;

class PartFile {
 public:
  virtual ~PartFile() = default;
  // Writes the parts one after the other at `offset`. UNAVAILABLE, or
  // RESOURCE_EXHAUSTED for a full disk. Safe to call from several threads
  // for different ranges.
  virtual absl::Status Write(uint64_t offset, absl::Span<const absl::string_view> parts) = 0;
  // Reads exactly `size` bytes at `offset`; UNAVAILABLE on failure.
  virtual absl::Status Read(uint64_t offset, char* buf, size_t size) = 0;
  // Makes everything written durable (fsync); UNAVAILABLE on failure.
  virtual absl::Status Sync() = 0;
  // Moves the file onto `dest`, with the mode the umask gives new files,
  // and makes the rename durable (fsync of the folder); ALREADY_EXISTS when
  // anything (a symlink included) is there, UNAVAILABLE on other failures.
  virtual absl::Status RenameTo(const std::string& dest) = 0;
  // FAILED_PRECONDITION once the file is no longer at its path (removed,
  // moved, or replaced by another), when what it holds can never be renamed
  // into place; OK otherwise.
  virtual absl::Status CheckStillAtPath() = 0;
};

struct PartFileOpened {
  std::unique_ptr<PartFile> file;
  // False when an existing part file was reused (its pieces may be good).
  bool fresh = true;
};

// Opens the part file at `path` for a file of `size` bytes. A missing one
// is created (O_EXCL, readable by this user only while it is incomplete)
// and preallocated. An existing one is reused when
// `ours` says the client's state records it; its size must then be `size`,
// or it is emptied and preallocated anew. FAILED_PRECONDITION for an
// existing part file that is not ours, a symlink, or not a regular file;
// RESOURCE_EXHAUSTED when the disk has no room; UNAVAILABLE otherwise.
absl::StatusOr<PartFileOpened> OpenPartFile(const std::string& path, uint64_t size, bool ours);

// How a download opens its part file; tests pass a fake.
using PartFileOpener =
    std::function<absl::StatusOr<PartFileOpened>(const std::string& path, uint64_t size,
                                                 bool ours)>;

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_PART_FILE_H_
