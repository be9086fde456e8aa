// Which pieces of a file are held: one bit a piece, most significant bit
// first (as on the wire, see peer.proto). Not thread-safe.
#ifndef GROUPSHARE_CORE_BITFIELD_H_
#define GROUPSHARE_CORE_BITFIELD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace groupshare {

class Bitfield {
 public:
  Bitfield() = default;
  explicit Bitfield(uint32_t size, bool value = false);

  // From the wire form; INVALID_ARGUMENT when the length does not fit
  // `size` bits or a bit past the end is set.
  static absl::StatusOr<Bitfield> FromBytes(absl::string_view bytes, uint32_t size);
  std::string ToBytes() const { return bytes_; }

  uint32_t size() const { return size_; }
  bool Get(uint32_t i) const {
    return (static_cast<uint8_t>(bytes_[i >> 3]) >> (7 - (i & 7))) & 1;
  }
  void Set(uint32_t i, bool value = true);
  uint32_t Count() const { return count_; }
  bool All() const { return count_ == size_; }

 private:
  uint32_t size_ = 0;
  uint32_t count_ = 0;
  std::string bytes_;
};

// How a file of `size` bytes splits into pieces of `piece_size` bytes; every
// piece but the last is full.
struct FileLayout {
  uint64_t size = 0;
  uint32_t piece_size = 0;

  uint32_t PieceCount() const {
    return static_cast<uint32_t>((size + piece_size - 1) / piece_size);
  }
  uint64_t PieceOffset(uint32_t piece) const {
    return static_cast<uint64_t>(piece) * piece_size;
  }
  uint32_t PieceLength(uint32_t piece) const {
    uint64_t rest = size - PieceOffset(piece);
    return rest < piece_size ? static_cast<uint32_t>(rest) : piece_size;
  }
};

inline constexpr uint32_t kDefaultPieceSize = 512 << 10;
inline constexpr uint32_t kMinPieceSize = 16 << 10;
inline constexpr uint32_t kMaxPieceSize = 16 << 20;
// The most pieces a shared file has. Each piece's SHA1 and its SHA1 chain
// value travel in every UploadFile request and GetFilePeers reply for the
// file (42 bytes each on the wire), so this bounds those messages.
inline constexpr uint32_t kMaxPieceCount = 1 << 16;
// The largest description of a file on the wire (tracker.v1.FileInfo),
// under 6 MiB: its hashes, and room for its name and the rest.
inline constexpr int kMaxFileInfoBytes = kMaxPieceCount * 2 * 42 + (4 << 10);
// The largest file groupshare shares: 1 TiB.
inline constexpr uint64_t kMaxShareBytes = uint64_t{kMaxPieceCount} * kMaxPieceSize;

// The piece size a file of `size` bytes is shared in: kDefaultPieceSize, or
// for a file of more than kMaxPieceCount such pieces the smallest power of
// two that keeps it within that many (as BitTorrent clients grow pieces
// with the file); 0 for a file larger than kMaxShareBytes.
constexpr uint32_t PieceSizeFor(uint64_t size) {
  if (size > kMaxShareBytes) return 0;
  uint32_t piece_size = kDefaultPieceSize;
  while (size / piece_size + (size % piece_size != 0) > kMaxPieceCount) piece_size *= 2;
  return piece_size;
}

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_BITFIELD_H_
