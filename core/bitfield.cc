#include "core/bitfield.h"

#include "absl/strings/str_cat.h"

namespace groupshare {

Bitfield::Bitfield(uint32_t size, bool value)
    : size_(size), count_(0), bytes_((size + 7) / 8, '\0') {
  if (value) {
    for (uint32_t i = 0; i < size; ++i) Set(i);
  }
}

absl::StatusOr<Bitfield> Bitfield::FromBytes(absl::string_view bytes, uint32_t size) {
  if (bytes.size() != (size + 7) / 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a bitfield of ", size, " pieces is ", (size + 7) / 8, " bytes, not ", bytes.size()));
  }
  Bitfield out(size);
  out.bytes_ = std::string(bytes);
  for (uint32_t i = 0; i < size; ++i) out.count_ += out.Get(i);
  for (uint32_t i = size; i < bytes.size() * 8; ++i) {
    if (out.Get(i)) return absl::InvalidArgumentError("bitfield has bits set past its end");
  }
  return out;
}

void Bitfield::Set(uint32_t i, bool value) {
  if (Get(i) == value) return;
  uint8_t mask = static_cast<uint8_t>(1u << (7 - (i & 7)));
  if (value) {
    bytes_[i >> 3] = static_cast<char>(static_cast<uint8_t>(bytes_[i >> 3]) | mask);
    ++count_;
  } else {
    bytes_[i >> 3] = static_cast<char>(static_cast<uint8_t>(bytes_[i >> 3]) & ~mask);
    --count_;
  }
}

}  // namespace groupshare
