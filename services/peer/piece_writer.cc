#include "services/peer/piece_writer.h"

namespace groupshare::peer {

bool PieceWriter::Check(uint32_t index, absl::Span<const absl::string_view> data,
                        bool* joined) {
  // Next in file order, it is checked and hashed into the whole in one pass.
  const std::optional<Sha1Digest> next = hasher_.AddIfNext(index, data, expected_[index]);
  *joined = next.has_value();
  return (next.has_value() ? *next : Sha1Of(data)) == expected_[index];
}

absl::Status PieceWriter::Write(uint32_t index, absl::Span<const absl::string_view> data) {
  if (index >= expected_.size()) return absl::DataLossError("no such piece");
  bool joined;
  if (!Check(index, data, &joined)) return absl::DataLossError("its SHA1 check failed");
  absl::Status written = file_->Write(layout_.PieceOffset(index), data);
  if (written.ok() && !joined) hasher_.Add(index, data);
  return written;
}

bool PieceWriter::Kept(uint32_t index) {
  if (index >= expected_.size()) return false;
  std::string data(layout_.PieceLength(index), '\0');
  if (!file_->Read(layout_.PieceOffset(index), data.data(), data.size()).ok()) return false;
  const absl::string_view bytes = data;
  bool joined;
  if (!Check(index, {bytes}, &joined)) return false;
  if (!joined) hasher_.Add(index, {});  // read back when its turn comes
  return true;
}

}  // namespace groupshare::peer
