#include "core/piece_chunk.h"

namespace groupshare {
namespace {

// Walks bytes spread over several buffers.
class Reader {
 public:
  explicit Reader(absl::Span<const absl::string_view> buffers) : buffers_(buffers) { Skip0(); }

  bool AtEnd() const { return index_ == buffers_.size(); }

  bool Byte(uint8_t* out) {
    if (AtEnd()) return false;
    *out = static_cast<uint8_t>(buffers_[index_][pos_]);
    Advance(1);
    return true;
  }
  bool Varint(uint64_t* out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      value |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *out = value;
        return true;
      }
    }
    return false;
  }
  // Takes `n` bytes as views (appended to `out` when not null).
  bool Take(uint64_t n, std::vector<absl::string_view>* out) {
    while (n > 0) {
      if (AtEnd()) return false;
      size_t here = std::min<uint64_t>(n, buffers_[index_].size() - pos_);
      if (out != nullptr) out->push_back(buffers_[index_].substr(pos_, here));
      Advance(here);
      n -= here;
    }
    return true;
  }

 private:
  void Advance(size_t n) {
    pos_ += n;
    if (pos_ == buffers_[index_].size()) {
      ++index_;
      pos_ = 0;
      Skip0();
    }
  }
  void Skip0() {
    while (index_ < buffers_.size() && buffers_[index_].empty()) ++index_;
  }

  absl::Span<const absl::string_view> buffers_;
  size_t index_ = 0;
  size_t pos_ = 0;
};

absl::Status Malformed() { return absl::InvalidArgumentError("malformed PieceChunk"); }

}  // namespace

absl::StatusOr<PieceChunkView> ParsePieceChunk(absl::Span<const absl::string_view> buffers) {
  PieceChunkView out;
  Reader in(buffers);
  bool have_data = false;
  while (!in.AtEnd()) {
    uint64_t tag;
    // A tag is 32 bits (a field number below 2^29), as protobuf has it.
    if (!in.Varint(&tag) || tag > UINT32_MAX) return Malformed();
    const uint64_t field = tag >> 3;
    const int wire = static_cast<int>(tag & 7);
    uint64_t value = 0;
    if (field == 1 || field == 2) {
      if (wire != 0 || !in.Varint(&value) || value > UINT32_MAX) return Malformed();
      (field == 1 ? out.piece : out.offset) = static_cast<uint32_t>(value);
      continue;
    }
    if (field == 3) {
      if (wire != 2 || have_data || !in.Varint(&value)) return Malformed();
      if (!in.Take(value, &out.data)) return Malformed();
      out.size = value;
      have_data = true;
      continue;
    }
    if (field == 0) return Malformed();
    switch (wire) {
      case 0:
        if (!in.Varint(&value)) return Malformed();
        break;
      case 1:
        if (!in.Take(8, nullptr)) return Malformed();
        break;
      case 2:
        if (!in.Varint(&value) || !in.Take(value, nullptr)) return Malformed();
        break;
      case 5:
        if (!in.Take(4, nullptr)) return Malformed();
        break;
      default:
        return Malformed();
    }
  }
  return out;
}

}  // namespace groupshare
