// Hashes a file in one streaming pass: the SHA1 of every piece and of the
// whole file, and the whole file's SHA1 chain, reading one piece at a time,
// so memory stays flat whatever the file's size.
#ifndef GROUPSHARE_CORE_FILE_HASHER_H_
#define GROUPSHARE_CORE_FILE_HASHER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/bitfield.h"

namespace groupshare {

struct HashedFile {
  uint64_t size = 0;
  uint32_t piece_size = 0;
  std::string sha1;                     // lower-case hex
  std::vector<std::string> piece_sha1;  // lower-case hex, one per piece
  // The whole file's SHA1 state after each piece but the last (see
  // Sha1Stream::Chain), lower-case hex.
  std::vector<std::string> sha1_chain;
};

// NOT_FOUND when `path` does not exist, INVALID_ARGUMENT when it is not a
// regular file, UNAVAILABLE when it cannot be read. `progress`, when set,
// is called after each piece with the bytes hashed so far; hashing stops
// (CANCELLED) when it returns false.
absl::StatusOr<HashedFile> HashFile(
    const std::string& path, uint32_t piece_size = kDefaultPieceSize,
    const std::function<bool(uint64_t done, uint64_t total)>& progress = nullptr);

// Reads exactly `size` bytes at `offset` of `fd` into `buf`; UNAVAILABLE on
// an error or a short file.
absl::Status ReadFully(int fd, char* buf, size_t size, uint64_t offset);
// Writes `size` bytes at `offset` of `fd`; UNAVAILABLE (or
// RESOURCE_EXHAUSTED for a full disk) on failure.
absl::Status WriteFully(int fd, const char* buf, size_t size, uint64_t offset);

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_FILE_HASHER_H_
