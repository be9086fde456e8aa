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

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_BITFIELD_H_
